// Index pins (index_pins.hpp). C-style: the hooks run inside the planner,
// which may ereport, so no C++ object with a destructor lives in these frames.
#include "pg/index_pins.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "commands/defrem.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/plancat.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
}
#pragma GCC diagnostic pop

#include <cstring>

namespace crm::pg::index_pins {

namespace {

constexpr char kPrefix[] = "/* crm_native pins: ";
constexpr int kMaxPins = 6;
constexpr int kMaxColumns = 4;
constexpr int kMaxNamedTables = 16;

// One alias and the key columns its scans were written for (the first one
// leads the index), and the index access method when the scan needs one
// ("n:gin=customer_name": a trigram search; a btree on the name could only
// be read whole).
struct Pin {
    char alias[NAMEDATALEN];
    char access_method[NAMEDATALEN];  // empty: any
    int columns;
    char column[kMaxColumns][NAMEDATALEN];
};

struct Pins {
    bool no_seqscan;     // planned with enable_seqscan off
    bool no_bitmapscan;  // and enable_bitmapscan off
    int count;
    Pin pin[kMaxPins];
    // The tables the statement itself names (its range tables, subqueries,
    // CTEs and sublinks; not the queries a row-level security policy
    // adds): only their scans are pinned. An application's policy may
    // read a table of its own under a pinned alias; its indexes are left
    // alone. More than kMaxNamedTables references: no table is pinned (the
    // triggers' and operations' statements name far fewer; narrowing a
    // policy's table would be worse than planning without pins).
    int named_count;
    Oid named[kMaxNamedTables];
};

// Collects into pins->named the relations of a query and of the queries it
// contains, without the security quals of its range table entries.
bool collect_named_tables(Node* node, void* context);
// PostgreSQL 15 declares the walkers' callback without a prototype.
const auto kWalker = reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(collect_named_tables));
bool collect_named_tables(Node* node, void* context) {
    if (node == nullptr) return false;
    Pins* pins = static_cast<Pins*>(context);
    if (IsA(node, Query)) {
        Query* query = reinterpret_cast<Query*>(node);
        ListCell* lc;
        foreach (lc, query->rtable) {
            RangeTblEntry* rte = static_cast<RangeTblEntry*>(lfirst(lc));
            switch (rte->rtekind) {
                case RTE_RELATION:
                    if (pins->named_count < kMaxNamedTables)
                        pins->named[pins->named_count] = rte->relid;
                    pins->named_count++;
                    break;
                case RTE_SUBQUERY:
                    if (collect_named_tables(reinterpret_cast<Node*>(rte->subquery), context)) return true;
                    break;
                case RTE_FUNCTION:
                    if (expression_tree_walker(reinterpret_cast<Node*>(rte->functions), kWalker, context))
                        return true;
                    break;
                case RTE_VALUES:
                    if (expression_tree_walker(reinterpret_cast<Node*>(rte->values_lists), kWalker, context))
                        return true;
                    break;
                default:
                    break;
            }
        }
        // The rest of the query (target list, quals, CTEs, ...), not its
        // range table again (that would walk the security quals), nor the
        // policies' WITH CHECK options (set aside for the walk: the walker
        // raises nothing).
        List* with_check = query->withCheckOptions;
        query->withCheckOptions = NIL;
        const bool stop = query_tree_walker(query, kWalker, context, QTW_IGNORE_RANGE_TABLE);
        query->withCheckOptions = with_check;
        return stop;
    }
    return expression_tree_walker(node, kWalker, context);
}


// The pins of the statement being planned; nullptr while any other statement
// is planned (saved and restored around each planner call, so a query planned
// inside ours, such as a function body, has none).
const Pins* active = nullptr;

// The append relation that makes rel a partition or inheritance child of a
// table, or nullptr. Only a table's children: a UNION ALL branch's
// parent_colnos number the branch's output columns, not a table's
// (PostgreSQL's ruleutils maps up the same way).
const AppendRelInfo* table_parent(const PlannerInfo* root, const RelOptInfo* rel) {
    if (rel == nullptr || rel->reloptkind != RELOPT_OTHER_MEMBER_REL || root->append_rel_array == nullptr) return nullptr;
    const AppendRelInfo* up = root->append_rel_array[rel->relid];
    return up != nullptr && up->parent_reloid != InvalidOid ? up : nullptr;
}

const RelOptInfo* parent_rel(const PlannerInfo* root, const AppendRelInfo* up) {
    return static_cast<int>(up->parent_relid) < root->simple_rel_array_size ? root->simple_rel_array[up->parent_relid]
                                                                            : nullptr;
}

// Whether the scanned relation is one the statement names, or a partition or
// inheritance child of one.
bool named_by_statement(PlannerInfo* root, const RelOptInfo* rel, Oid relation) {
    if (active->named_count > kMaxNamedTables) return false;
    for (;;) {
        for (int i = 0; i < active->named_count; i++)
            if (active->named[i] == relation) return true;
        const AppendRelInfo* up = table_parent(root, rel);
        if (up == nullptr) return false;
        relation = up->parent_reloid;
        rel = parent_rel(root, up);
    }
}

planner_hook_type prev_planner = nullptr;
get_relation_info_hook_type prev_get_relation_info = nullptr;

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// Copies a name of [a-z0-9_] into out; returns the first character after it,
// or nullptr when there is none or it is too long.
const char* read_name(const char* p, char* out) {
    int n = 0;
    while (is_name_char(p[n])) {
        if (n >= NAMEDATALEN - 1) return nullptr;
        out[n] = p[n];
        ++n;
    }
    if (n == 0) return nullptr;
    out[n] = '\0';
    return p + n;
}

// Reads "/* crm_native pins: [no_seqscan] alias[:am]=col[,col...] ... */" at the
// start of the text. False (no pins: the planner decides alone) for any
// other text, and for a comment it cannot read whole.
bool parse(const char* text, Pins* pins) {
    if (text == nullptr || std::strncmp(text, kPrefix, sizeof kPrefix - 1) != 0) return false;
    const char* p = text + sizeof kPrefix - 1;
    constexpr char kNoSeqscan[] = "no_seqscan ";
    // the same, but bitmap scans stay (a GIN index serves only those)
    constexpr char kNoSeqscanButBitmap[] = "no_seqscan_but_bitmap ";
    pins->no_seqscan = pins->no_bitmapscan = std::strncmp(p, kNoSeqscan, sizeof kNoSeqscan - 1) == 0;
    if (pins->no_seqscan) {
        p += sizeof kNoSeqscan - 1;
    } else if (std::strncmp(p, kNoSeqscanButBitmap, sizeof kNoSeqscanButBitmap - 1) == 0) {
        pins->no_seqscan = true;
        p += sizeof kNoSeqscanButBitmap - 1;
    }
    pins->count = 0;
    for (;;) {
        while (*p == ' ') ++p;
        if (p[0] == '*' && p[1] == '/') return pins->count > 0;
        if (pins->count == kMaxPins) return false;
        Pin* pin = &pins->pin[pins->count++];
        p = read_name(p, pin->alias);
        if (p == nullptr) return false;
        pin->access_method[0] = '\0';
        if (*p == ':') p = read_name(p + 1, pin->access_method);
        if (p == nullptr || *p != '=') return false;
        pin->columns = 0;
        do {
            if (pin->columns == kMaxColumns) return false;
            p = read_name(p + 1, pin->column[pin->columns++]);
            if (p == nullptr) return false;
        } while (*p == ',');
    }
}

PlannedStmt* plan_with_pins(Query* parse_tree, const char* query_string, int cursor_options,
                            ParamListInfo bound_params) {
    Pins pins;
    const Pins* outer = active;
    active = parse(query_string, &pins) ? &pins : nullptr;
    if (active != nullptr) {
        pins.named_count = 0;
        (void)collect_named_tables(reinterpret_cast<Node*>(parse_tree), &pins);
    }
    // no_seqscan (no_seqscan_but_bitmap): for the planning of this statement only, never while it
    // runs (an application's trigger or policy it fires plans as it always
    // does). An error unwinds the setting with the (sub)transaction.
    int guc_level = -1;
    if (active != nullptr && pins.no_seqscan) {
        guc_level = NewGUCNestLevel();
        (void)set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
        if (pins.no_bitmapscan)
            (void)set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                                    false);
    }
    PlannedStmt* volatile result = nullptr;
    PG_TRY();
    {
        result = prev_planner != nullptr
                     ? prev_planner(parse_tree, query_string, cursor_options, bound_params)
                     : standard_planner(parse_tree, query_string, cursor_options, bound_params);
    }
    PG_FINALLY();
    {
        active = outer;
    }
    PG_END_TRY();
    if (guc_level >= 0) AtEOXact_GUC(true, guc_level);
    return result;
}

// Whether the join tree reaches range table entry rtindex through inner
// joins only (no outer join can make its rows NULL).
bool inner_member(const Node* node, Index rtindex) {
    if (node == nullptr) return false;
    if (IsA(node, RangeTblRef))
        return static_cast<Index>(reinterpret_cast<const RangeTblRef*>(node)->rtindex) == rtindex;
    if (IsA(node, FromExpr)) {
        ListCell* lc;
        foreach (lc, reinterpret_cast<const FromExpr*>(node)->fromlist)
            if (inner_member(static_cast<const Node*>(lfirst(lc)), rtindex)) return true;
        return false;
    }
    if (IsA(node, JoinExpr)) {
        const JoinExpr* join = reinterpret_cast<const JoinExpr*>(node);
        return join->jointype == JOIN_INNER && (inner_member(join->larg, rtindex) || inner_member(join->rarg, rtindex));
    }
    return false;
}

// Whether the statement's own WHERE clause (one of its top-level AND-ed
// conditions, at the query level being planned) is "column IS [NOT] NULL"
// on the scanned relation, as `test` is: then the relation's scan is
// restricted by it, and the planner proves a partial index with that
// predicate usable. The conditions PostgreSQL adds (row-level security)
// are not looked at.
bool stated_by_statement(PlannerInfo* root, const RelOptInfo* rel, const NullTest* test, AttrNumber column) {
    // A partition's (or inheritance child's) scan: the statement states its
    // conditions on the table it names, the top parent, whose column numbers
    // may differ from the partition's.
    while (const AppendRelInfo* up = table_parent(root, rel)) {
        if (column <= 0 || column > up->num_child_cols || up->parent_colnos == nullptr) return false;
        column = up->parent_colnos[column - 1];
        rel = column != 0 ? parent_rel(root, up) : nullptr;
        if (rel == nullptr) return false;
    }
    const Index relid = rel->relid;
    const Query* query = root->parse;
    if (rel->reloptkind != RELOPT_BASEREL || query == nullptr || query->jointree == nullptr ||
        !inner_member(reinterpret_cast<const Node*>(query->jointree), relid))
        return false;
    Node* quals = query->jointree->quals;
    if (quals == nullptr) return false;
    List* conditions = IsA(quals, List) ? reinterpret_cast<List*>(quals) : make_ands_implicit(reinterpret_cast<Expr*>(quals));
    ListCell* lc;
    foreach (lc, conditions) {
        const Node* condition = static_cast<const Node*>(lfirst(lc));
        if (!IsA(condition, NullTest)) continue;
        const NullTest* stated = reinterpret_cast<const NullTest*>(condition);
        if (stated->nulltesttype != test->nulltesttype || stated->argisrow || stated->arg == nullptr ||
            !IsA(stated->arg, Var))
            continue;
        const Var* var = reinterpret_cast<const Var*>(stated->arg);
        if (var->varlevelsup == 0 && var->varno == static_cast<int>(relid) && var->varattno == column) return true;
    }
    return false;
}

// A partial index's predicate that every pinned scan implies: none, or only
// conditions "column IS [NOT] NULL" that the scan implies: "pinned column IS
// NOT NULL" (the scans compare the pinned columns with =), or one the
// statement's own WHERE clause states on the relation (the search's names:
// WHERE deleted_at IS NULL). Any other predicate may not hold for the
// statement; such an index alone would leave the scan sequential.
bool predicate_implied(PlannerInfo* root, const RelOptInfo* rel, const IndexOptInfo* index, const AttrNumber* key,
                       int columns) {
    ListCell* lc;
    foreach (lc, index->indpred) {
        const Node* clause = static_cast<const Node*>(lfirst(lc));
        if (!IsA(clause, NullTest)) return false;
        const NullTest* test = reinterpret_cast<const NullTest*>(clause);
        if (test->argisrow || test->arg == nullptr || !IsA(test->arg, Var)) return false;
        AttrNumber column = reinterpret_cast<const Var*>(test->arg)->varattno;
        bool pinned = false;
        if (test->nulltesttype == IS_NOT_NULL)
            for (int c = 0; c < columns && !pinned; c++) pinned = column == key[c];
        if (!pinned && !stated_by_statement(root, rel, test, column)) return false;
    }
    return true;
}

// Keeps, of the scanned relation's indexes, those its pin names, when it has
// one and the relation has such an index.
void narrow_indexes(PlannerInfo* root, Oid relation, bool inhparent, RelOptInfo* rel) {
    if (prev_get_relation_info != nullptr) prev_get_relation_info(root, relation, inhparent, rel);
    if (active == nullptr || rel->indexlist == NIL) return;
    RangeTblEntry* rte = planner_rt_fetch(rel->relid, root);
    if (rte->eref == nullptr) return;
    const Pin* pin = nullptr;
    for (int i = 0; i < active->count && pin == nullptr; i++)
        if (std::strcmp(active->pin[i].alias, rte->eref->aliasname) == 0) pin = &active->pin[i];
    if (pin == nullptr || !named_by_statement(root, rel, relation)) return;
    AttrNumber key[kMaxColumns];
    for (int c = 0; c < pin->columns; c++) {
        key[c] = get_attnum(relation, pin->column[c]);
        if (key[c] == InvalidAttrNumber) return;
    }
    Oid access_method = pin->access_method[0] != '\0' ? get_am_oid(pin->access_method, true) : InvalidOid;
    if (pin->access_method[0] != '\0' && access_method == InvalidOid) return;
    List* kept = NIL;
    ListCell* lc;
    foreach (lc, rel->indexlist) {
        IndexOptInfo* index = static_cast<IndexOptInfo*>(lfirst(lc));
        bool fits = index->nkeycolumns > 0 && index->indexkeys[0] == key[0] &&
                    (access_method == InvalidOid || index->relam == access_method);
        for (int c = 1; c < pin->columns && fits; c++) {
            bool found = false;
            for (int k = 1; k < index->nkeycolumns && !found; k++) found = index->indexkeys[k] == key[c];
            fits = found;
        }
        if (fits && predicate_implied(root, rel, index, key, pin->columns)) kept = lappend(kept, index);
    }
    if (kept != NIL) rel->indexlist = kept;
}

}  // namespace

bool well_formed(const char* text) {
    Pins pins;
    return std::strncmp(text, kPrefix, sizeof kPrefix - 1) != 0 || parse(text, &pins);
}

void install() {
    prev_planner = planner_hook;
    planner_hook = plan_with_pins;
    prev_get_relation_info = get_relation_info_hook;
    get_relation_info_hook = narrow_indexes;
}

}  // namespace crm::pg::index_pins
