// The data-access layer (store.hpp): column list, trigger protocol check,
// plan cache and writers.
#include "pg/store.hpp"

#include "pg/module.hpp"

#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_inherits.h"
#include "funcapi.h"
#include "pgstat.h"
#include "parser/parse_coerce.h"
#include "nodes/pg_list.h"
#include "rewrite/rewriteHandler.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/ruleutils.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"
}
#pragma GCC diagnostic pop

#include "pg/citus_shards.hpp"
#include "pg/guard.hpp"
#include "pg/index_pins.hpp"
#include "pg/retired_plans.hpp"
#include "pg/store_sql.hpp"
#include "pg/trigger_stats.hpp"

namespace crm::pg::store {

namespace {

// ---------------------------------------------------------------------------
// The column list
// ---------------------------------------------------------------------------

const char* const kTableName[] = {"VC Usage", "customers", "customer_matching_keys", "customer_events",
                                  "customer_audit_log", "customer_metrics"};
constexpr int kTableCount = sizeof kTableName / sizeof kTableName[0];

struct ColumnSpec {
    Table table;
    const char* column;
    Oid types[5];  // accepted types (and domains over them); the first is the documented one
    // citext (or a domain over it) accepted too: contact columns the
    // triggers only read, write and trim, never look up through an index
    // (a citext column compared with a text value falls back to text
    // equality, which a citext index cannot serve) and never compare
    // themselves (citext's equality ignores case, the plpgsql triggers' does not).
    bool citext = false;
};
constexpr bool kCitext = true;

// Every column the native triggers read or write, with the types they accept.
// install() validates the application schema against this same list
// (crm_native.required_column, a view of crm_native.required_columns()).
const ColumnSpec kColumns[] = {
    {Table::Customers, "id", {UUIDOID}},
    {Table::Customers, "company_id", {UUIDOID}},
    {Table::Customers, "customer_name", {TEXTOID, VARCHAROID}, kCitext},
    {Table::Customers, "customer_email", {TEXTOID, VARCHAROID}, kCitext},
    {Table::Customers, "customer_phone", {TEXTOID, VARCHAROID}, kCitext},
    {Table::Customers, "lifecycle_stage", {TEXTOID, VARCHAROID}},
    {Table::Customers, "lifecycle_stage_changed_at", {TIMESTAMPTZOID}},
    {Table::Customers, "source", {TEXTOID, VARCHAROID}},
    {Table::Customers, "created_by_user_id", {UUIDOID}},
    {Table::Customers, "created_at", {TIMESTAMPTZOID}},
    {Table::Customers, "updated_at", {TIMESTAMPTZOID}},
    {Table::Customers, "deleted_at", {TIMESTAMPTZOID}},
    {Table::Customers, "merged_into_customer_id", {UUIDOID}},
    // only compared with itself (pairing an UPDATE's old and new rows) and
    // ordered (relink_chats): any of the usual key types
    {Table::Chats, "id", {INT8OID, INT4OID, UUIDOID, TEXTOID, VARCHAROID}},
    {Table::Chats, "company_id", {UUIDOID}},
    {Table::Chats, "customer_id", {UUIDOID}},
    {Table::Chats, "customer_name", {TEXTOID, VARCHAROID}, kCitext},
    {Table::Chats, "customer_email", {TEXTOID, VARCHAROID}, kCitext},
    {Table::Chats, "customer_phone", {TEXTOID, VARCHAROID}, kCitext},
    {Table::Chats, "session_id", {TEXTOID, VARCHAROID}},
    {Table::Chats, "view_count", {INT4OID, INT2OID, INT8OID}},
    {Table::Chats, "created_at", {TIMESTAMPTZOID}},
    {Table::MatchingKeys, "customer_id", {UUIDOID}},
    {Table::MatchingKeys, "company_id", {UUIDOID}},
    {Table::MatchingKeys, "key_type", {TEXTOID, VARCHAROID}},
    {Table::MatchingKeys, "key_value", {TEXTOID, VARCHAROID}},
    {Table::MatchingKeys, "normalized_value", {TEXTOID, VARCHAROID}},
    {Table::Events, "customer_id", {UUIDOID}},
    {Table::Events, "company_id", {UUIDOID}},
    {Table::Events, "event_type", {TEXTOID, VARCHAROID}},
    {Table::Events, "event_data", {JSONBOID}},
    {Table::AuditLog, "table_name", {TEXTOID, VARCHAROID}},
    {Table::AuditLog, "record_id", {UUIDOID}},
    {Table::AuditLog, "company_id", {UUIDOID}},
    {Table::AuditLog, "operation", {TEXTOID, VARCHAROID}},
    {Table::AuditLog, "old_data", {JSONBOID}},
    {Table::AuditLog, "new_data", {JSONBOID}},
    {Table::AuditLog, "changed_fields", {TEXTARRAYOID}},
    {Table::AuditLog, "changed_by_user_id", {UUIDOID}},
    {Table::Metrics, "customer_id", {UUIDOID}},
    {Table::Metrics, "company_id", {UUIDOID}},
    {Table::Metrics, "total_conversations", {INT8OID}},
    {Table::Metrics, "total_sessions", {INT8OID}},
    {Table::Metrics, "total_views", {INT8OID}},
    {Table::Metrics, "first_interaction_at", {TIMESTAMPTZOID}},
    {Table::Metrics, "last_interaction_at", {TIMESTAMPTZOID}},
    {Table::Metrics, "refreshed_at", {TIMESTAMPTZOID}},
};
constexpr int kColumnCount = sizeof kColumns / sizeof kColumns[0];

const ColumnSpec* column_spec(Table table, const char* column) {
    for (const ColumnSpec& spec : kColumns)
        if (spec.table == table && std::strcmp(spec.column, column) == 0) return &spec;
    elog(ERROR, "crm_native: column %s.%s is not in the column list", kTableName[static_cast<int>(table)], column);
    return nullptr;  // not reached
}

// citext, the contrib type, by what it is (its OID differs per database).
bool is_citext(Oid type) {
    HeapTuple tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
    if (!HeapTupleIsValid(tuple)) return false;
    Form_pg_type t = reinterpret_cast<Form_pg_type>(GETSTRUCT(tuple));
    bool citext = std::strcmp(NameStr(t->typname), "citext") == 0 && t->typtype == TYPTYPE_BASE && t->typlen == -1 &&
                  t->typcategory == TYPCATEGORY_STRING;
    ReleaseSysCache(tuple);
    return citext;
}

// A column of `type` serves `spec`: one of its types, a domain over one
// (the same datums; writes go through SQL, which checks the domain), or
// where the spec allows it citext.
bool accepts(const ColumnSpec* spec, Oid type) {
    Oid base = getBaseType(type);
    for (Oid t : spec->types)
        if (OidIsValid(t) && (t == type || t == base)) return true;
    return spec->citext && is_citext(base);
}

// The live attribute named `column`, or null.
Form_pg_attribute find_attribute(Relation rel, const char* column) {
    TupleDesc desc = RelationGetDescr(rel);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped && std::strcmp(NameStr(att->attname), column) == 0) return att;
    }
    return nullptr;
}

// ---------------------------------------------------------------------------
// The plan cache
// ---------------------------------------------------------------------------

struct PlanKey {
    Oid relid;  // the table the trigger fires on
    uint16 statement;
    uint16 size_class;
};

struct PlanEntry {
    PlanKey key;  // hash key
    SPIPlanPtr plan;
    char* text;       // the statement as prepared (TopMemoryContext)
    TupleDesc desc;   // reads_transition_tables: the row type it was planned for
    // The invalidation count when the text was last found current. An
    // invalidation that arrives while we compare or prepare (catalog access
    // processes them) moves the count on, so the next use compares again.
    uint64 checked_at;
};

HTAB* plans = nullptr;
// Invalidations seen: relcache (any relation: the trigger table's own
// rename, ALTER, SET SCHEMA) and pg_namespace (a schema renamed). Comparing
// a statement's text is cheap, so every invalidation makes every entry
// compare again at its next use.
uint64 invalidations = 1;

void invalidate_relation(Datum, Oid) { invalidations++; }
void invalidate_namespaces(Datum, int, uint32) { invalidations++; }

void watch_invalidations() {
    static bool watching = false;
    if (watching) return;
    CacheRegisterRelcacheCallback(invalidate_relation, (Datum)0);
    CacheRegisterSyscacheCallback(NAMESPACEOID, invalidate_namespaces, (Datum)0);
    watching = true;
}

// Whether the planned row type still matches rel's: what a plan over the
// transition tables depends on (names, types, typmods, collations, dropped
// columns), not defaults or NOT NULL.
bool same_row_type(TupleDesc planned, TupleDesc current) {
    if (planned == nullptr || planned->natts != current->natts) return false;
    for (int i = 0; i < current->natts; i++) {
        Form_pg_attribute a = TupleDescAttr(planned, i);
        Form_pg_attribute b = TupleDescAttr(current, i);
        if (a->attisdropped != b->attisdropped || a->atttypid != b->atttypid || a->atttypmod != b->atttypmod ||
            a->attcollation != b->attcollation || std::strcmp(NameStr(a->attname), NameStr(b->attname)) != 0)
            return false;
    }
    return true;
}

// A hash table for the backend's life (keys compared as bytes).
HTAB* backend_map(const char* name, Size keysize, Size entrysize, long size) {
    HASHCTL ctl;
    std::memset(&ctl, 0, sizeof ctl);
    ctl.keysize = keysize;
    ctl.entrysize = entrysize;
    ctl.hcxt = TopMemoryContext;
    return hash_create(name, size, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

PlanEntry* plan_entry(Relation rel, Statement statement, int size_class) {
    if (plans == nullptr) {
        plans = backend_map("crm_native plans", sizeof(PlanKey), sizeof(PlanEntry), 64);
        watch_invalidations();
    }
    PlanKey key;
    std::memset(&key, 0, sizeof key);
    key.relid = RelationGetRelid(rel);
    key.statement = static_cast<uint16>(statement);
    key.size_class = static_cast<uint16>(size_class);
    bool found;
    PlanEntry* entry = static_cast<PlanEntry*>(hash_search(plans, &key, HASH_ENTER, &found));
    if (!found) {
        entry->plan = nullptr;
        entry->text = nullptr;
        entry->desc = nullptr;
        entry->checked_at = 0;
    }
    return entry;
}

// The CRM table a placeholder names (its index in kTableName), or -1.
int table_index(const char* name) {
    for (int t = 1; t < kTableCount; t++)
        if (std::strcmp(name, kTableName[t]) == 0) return t;
    return -1;
}

// The table the application attached a trigger to, its "home": its schema
// holds the CRM tables, and {self} names it. A row trigger attached to a
// partitioned table fires on the partition a row lands in (PostgreSQL clones
// it onto each partition, at any depth), and a partition may live in any
// schema and holds only part of the rows; a trigger attached to a table that
// is itself a partition (install() on a schema whose "VC Usage" is a
// partition of another schema's table) is at home there. So the home is the
// table of the trigger a clone was cloned from, recorded per relation by
// trigger_call(), which every native trigger runs first. A statement trigger
// install() attached to a partition (argument 'partition', kOnPartitions) is
// at home on the nearest ancestor that has the same trigger function without
// arguments (PostgreSQL does not clone statement triggers). A
// partition has one home: install() on two schemas, one's "VC Usage" a
// partition of the other's, is not supported. Neither map goes stale: a
// trigger's origin never changes (DETACH drops the clones), and a
// partition's home is written at every call. Both lose the entries of a
// dropped partition ("Forgetting dropped relations", below).
struct OidToOid {
    Oid key;  // hash key
    Oid value;
};
HTAB* homes = nullptr;          // partition -> its home, for partitions only
HTAB* clone_origins = nullptr;  // trigger OID -> the table of the trigger it was cloned from

HTAB* oid_map(const char* name) { return backend_map(name, sizeof(Oid), sizeof(OidToOid), 16); }

// The table of the trigger that `trigger` was cloned from, following
// pg_trigger.tgparentid to the top (a clone of a clone on a sub-partition).
Oid clone_origin(Oid trigger) {
    if (clone_origins == nullptr) clone_origins = oid_map("crm_native trigger clone origins");
    bool found;
    OidToOid* entry = static_cast<OidToOid*>(hash_search(clone_origins, &trigger, HASH_FIND, &found));
    if (found) return entry->value;
    Oid relid = InvalidOid;
    Relation pg_trigger = table_open(TriggerRelationId, AccessShareLock);
    for (Oid oid = trigger; OidIsValid(oid);) {
        CHECK_FOR_INTERRUPTS();
        ScanKeyData key;
        ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(oid));
        SysScanDesc scan = systable_beginscan(pg_trigger, TriggerOidIndexId, true, nullptr, 1, &key);
        HeapTuple tuple = systable_getnext(scan);
        oid = InvalidOid;
        if (HeapTupleIsValid(tuple)) {
            Form_pg_trigger t = reinterpret_cast<Form_pg_trigger>(GETSTRUCT(tuple));
            relid = t->tgrelid;
            oid = t->tgparentid;
        }
        systable_endscan(scan);
    }
    table_close(pg_trigger, AccessShareLock);
    if (!OidIsValid(relid)) elog(ERROR, "crm_native: trigger %u not found", trigger);
    entry = static_cast<OidToOid*>(hash_search(clone_origins, &trigger, HASH_ENTER, &found));
    entry->value = relid;
    return relid;
}

bool on_partition(const Trigger* trigger) {
    return trigger->tgnargs == 1 && std::strcmp(trigger->tgargs[0], "partition") == 0;
}

// The table install() attached a partition's trigger of `function` to: the
// nearest ancestor of rel that has a trigger of that function without
// arguments, or InvalidOid (none: rel is detached, or being detached
// CONCURRENTLY, whose parent get_partition_ancestors() no longer reports).
Oid attached_ancestor(Relation rel, Oid function) {
    List* ancestors = get_partition_ancestors(RelationGetRelid(rel));
    Oid attached = InvalidOid;
    Relation pg_trigger = table_open(TriggerRelationId, AccessShareLock);
    ListCell* cell;
    foreach (cell, ancestors) {
        CHECK_FOR_INTERRUPTS();
        Oid ancestor = lfirst_oid(cell);
        ScanKeyData key;
        ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ancestor));
        SysScanDesc scan = systable_beginscan(pg_trigger, TriggerRelidNameIndexId, true, nullptr, 1, &key);
        for (HeapTuple tuple; HeapTupleIsValid(tuple = systable_getnext(scan));) {
            Form_pg_trigger t = reinterpret_cast<Form_pg_trigger>(GETSTRUCT(tuple));
            if (t->tgfoid == function && t->tgnargs == 0) {
                attached = ancestor;
                break;
            }
        }
        systable_endscan(scan);
        if (OidIsValid(attached)) break;
    }
    table_close(pg_trigger, AccessShareLock);
    list_free(ancestors);
    return attached;
}

// attached_ancestor(), kept until the next invalidation (ATTACH, DETACH,
// CREATE or DROP TRIGGER all invalidate the relations they change): a
// statement trigger on a partition runs it at every statement otherwise.
struct PartitionHomeKey {
    Oid rel;
    Oid function;
};
struct PartitionHome {
    PartitionHomeKey key;  // hash key
    Oid home;
    uint64 checked_at;
};
HTAB* partition_homes = nullptr;

Oid attached_ancestor_cached(Relation rel, Oid function) {
    if (partition_homes == nullptr) {
        partition_homes = backend_map("crm_native partition homes", sizeof(PartitionHomeKey), sizeof(PartitionHome), 16);
        watch_invalidations();
    }
    PartitionHomeKey key;
    std::memset(&key, 0, sizeof key);
    key.rel = RelationGetRelid(rel);
    key.function = function;
    bool found;
    PartitionHome* entry = static_cast<PartitionHome*>(hash_search(partition_homes, &key, HASH_ENTER, &found));
    if (!found) entry->checked_at = 0;
    if (entry->checked_at == invalidations) return entry->home;
    uint64 checking_at = invalidations;
    Oid home = attached_ancestor(rel, function);  // dynahash never moves an entry
    entry->home = home;
    entry->checked_at = checking_at;
    return home;
}

// Records the home of the relation `data`'s trigger fired on.
void note_home(const TriggerData* data) {
    Relation rel = data->tg_relation;
    if (!rel->rd_rel->relispartition) return;  // its own triggers only: at home
    Oid relid = RelationGetRelid(rel);
    const Trigger* trigger = data->tg_trigger;
    Oid home = relid;
    if (trigger->tgisclone) {
        home = clone_origin(trigger->tgoid);
    } else if (on_partition(trigger)) {
        Oid attached = attached_ancestor_cached(rel, trigger->tgfoid);
        if (OidIsValid(attached)) home = attached;
    }
    if (homes == nullptr) homes = oid_map("crm_native trigger homes");
    bool found;
    OidToOid* entry = static_cast<OidToOid*>(hash_search(homes, &relid, HASH_ENTER, &found));
    entry->value = home;
}

Oid home_relid(Relation rel) {
    if (!rel->rd_rel->relispartition || homes == nullptr) return RelationGetRelid(rel);
    Oid relid = RelationGetRelid(rel);
    bool found;
    OidToOid* entry = static_cast<OidToOid*>(hash_search(homes, &relid, HASH_FIND, &found));
    return found ? entry->value : relid;
}

// The schema of rel's home table (above), by name.
char* home_schema(Oid home) {
    char* schema = get_namespace_name(get_rel_namespace(home));
    if (schema == nullptr) elog(ERROR, "crm_native: schema of relation %u not found", home);
    return schema;
}

// The relation that plays table t for a trigger on rel: the table of that
// name in the schema of rel's home table, or on a Citus shard its
// co-located shard.
Oid target_relid(Relation rel, const citus::Placement* placement, int t) {
    if (placement->is_shard) return placement->shard[t];
    Oid nsp = get_rel_namespace(home_relid(rel));
    Oid relid = get_relname_relid(kTableName[t], nsp);
    if (!OidIsValid(relid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("crm_native: table \"%s\".\"%s\" does not exist", get_namespace_name(nsp),
                               kTableName[t])));
    return relid;
}

// {default_columns:T} / {default_values:T}, before an INSERT's column and
// value lists: the columns whose default the distributed table has and its
// shard lacks (Citus creates shards without sequence defaults), with the
// distributed table's default expressions, so that a row written to a shard
// gets what the same row written through the coordinator would. Columns the
// INSERT sets itself (the list after the placeholder) are left out. Empty
// when rel is no shard.
void shell_defaults(const citus::Placement* placement, int t, const char* column_list, StringInfo columns,
                    StringInfo values) {
    if (!placement->is_shard) return;
    const char* close = std::strchr(column_list, ')');
    if (close == nullptr) elog(ERROR, "crm_native: {default_columns} must precede a column list");
    Relation shell = relation_open(placement->shell[t], AccessShareLock);
    Relation shard = relation_open(placement->shard[t], AccessShareLock);
    // Deparsed with an empty search_path: every name comes out schema-
    // qualified (pg_catalog.nextval('public.customer_events_id_seq'::...)).
    OverrideSearchPath* path = GetOverrideSearchPath(CurrentMemoryContext);
    path->schemas = NIL;
    path->addCatalog = false;
    path->addTemp = false;
    PushOverrideSearchPath(path);
    TupleDesc desc = RelationGetDescr(shell);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped || !att->atthasdef || att->attgenerated) continue;
        const char* name = NameStr(att->attname);
        Form_pg_attribute on_shard = find_attribute(shard, name);
        if (on_shard == nullptr || on_shard->atthasdef) continue;
        // set by the INSERT itself?
        size_t len = std::strlen(name);
        bool listed = false;
        for (const char* p = column_list; p < close && !listed; p++)
            listed = (p == column_list || p[-1] == ' ' || p[-1] == ',') && std::strncmp(p, name, len) == 0 &&
                     (p[len] == ',' || p[len] == ')' || p[len] == ' ');
        if (listed) continue;
        Node* expr = build_column_default(shell, att->attnum);
        if (expr == nullptr) continue;
        appendStringInfo(columns, "%s, ", quote_identifier(name));
        appendStringInfo(values, "%s, ", deparse_expression(expr, NIL, false, false));
    }
    PopOverrideSearchPath();
    relation_close(shard, NoLock);
    relation_close(shell, NoLock);
}

// {conflict_key:T}: the ON CONFLICT target of table T, from its actual keys:
// the unique index on customer_id, or on a Citus shard (where every key
// carries company_id) the one on (customer_id, company_id). Not on a single
// node: there a per-company key would let a customer's row under another
// company through as a second row.
void conflict_key(Relation rel, const citus::Placement* placement, int t, StringInfo sql) {
    Relation target = relation_open(target_relid(rel, placement, t), AccessShareLock);
    Form_pg_attribute customer_att = find_attribute(target, "customer_id");
    Form_pg_attribute company_att = find_attribute(target, "company_id");
    AttrNumber customer = customer_att != nullptr ? customer_att->attnum : 0;
    AttrNumber company = company_att != nullptr ? company_att->attnum : 0;
    int best = 0;  // key columns of the best index found: 1 or 2
    bool deferrable = false;  // a key that would do, but is DEFERRABLE
    List* indexes = RelationGetIndexList(target);
    ListCell* lc;
    foreach (lc, indexes) {
        HeapTuple tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
        if (!HeapTupleIsValid(tuple)) continue;
        Form_pg_index index = reinterpret_cast<Form_pg_index>(GETSTRUCT(tuple));
        bool usable = index->indisunique && index->indisvalid &&
                      heap_attisnull(tuple, Anum_pg_index_indexprs, nullptr) &&
                      heap_attisnull(tuple, Anum_pg_index_indpred, nullptr) &&
                      index->indnkeyatts <= (placement->is_shard ? 2 : 1);
        bool has_customer = false;
        for (int k = 0; usable && k < index->indnkeyatts; k++) {
            AttrNumber a = index->indkey.values[k];
            has_customer |= (a == customer && customer != 0);
            usable = (a == customer && customer != 0) || (a == company && company != 0);
        }
        if (usable && has_customer && !index->indimmediate) deferrable = true;
        else if (usable && has_customer && (best == 0 || index->indnkeyatts < best)) best = index->indnkeyatts;
        ReleaseSysCache(tuple);
    }
    list_free(indexes);
    relation_close(target, NoLock);
    if (best == 0 && deferrable)
        ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                        errmsg("crm_native: the unique key of table \"%s\" on %s is DEFERRABLE", kTableName[t],
                               placement->is_shard ? "customer_id or (customer_id, company_id)" : "customer_id"),
                        errdetail("The metrics triggers insert-or-update one row per customer with INSERT ... "
                                  "ON CONFLICT, which cannot use a deferrable key."),
                        errhint("Add a unique index that is not deferrable: CREATE UNIQUE INDEX CONCURRENTLY ON "
                                "%s (%s).",
                                kTableName[t], placement->is_shard ? "customer_id, company_id" : "customer_id")));
    if (best == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                        errmsg("crm_native: table \"%s\" has no unique key on %s", kTableName[t],
                               placement->is_shard ? "customer_id or on (customer_id, company_id)" : "customer_id"),
                        errhint("The metrics triggers insert-or-update one row per customer: add %s "
                                "(crm_native.verify_schema() lists what is missing).",
                                placement->is_shard ? "PRIMARY KEY (customer_id, company_id)"
                                                    : "PRIMARY KEY (customer_id)")));
    appendStringInfoString(sql, best == 1 ? "(customer_id)" : "(customer_id, company_id)");
}

// The statement's text for rel: each {table} placeholder becomes the quoted,
// schema-qualified table name in the schema of rel's home table ({self}: the
// home table itself, home_relid()), on a Citus shard the co-located shard's;
// {default_columns:T}, {default_values:T} and {conflict_key:T} as above.
char* expand(const StatementSpec* spec, Relation rel) {
    Oid home = home_relid(rel);
    char* schema = home_schema(home);
    const citus::Placement* placement = citus::placement_for(rel, kTableName, kTableCount, invalidations);
    StringInfoData defaults[kTableCount];  // per table: the {default_values} of its {default_columns}
    for (int t = 0; t < kTableCount; t++) defaults[t].data = nullptr;
    StringInfoData sql;
    initStringInfo(&sql);
    for (const char* p = spec->text; *p != '\0'; ++p) {
        if (*p != '{') {
            appendStringInfoChar(&sql, *p);
            continue;
        }
        const char* end = std::strchr(p, '}');
        if (end == nullptr) elog(ERROR, "crm_native: unterminated placeholder in %s", spec->name);
        char name[2 * NAMEDATALEN];
        int len = static_cast<int>(end - p - 1);
        if (len <= 0 || len >= static_cast<int>(sizeof name)) elog(ERROR, "crm_native: bad placeholder in %s", spec->name);
        std::memcpy(name, p + 1, len);
        name[len] = '\0';
        // {table} or {kind:table}
        char* colon = std::strchr(name, ':');
        if (colon != nullptr) *colon = '\0';
        const char* kind = colon != nullptr ? name : "";
        int t = table_index(colon != nullptr ? colon + 1 : name);
        if (colon == nullptr && std::strcmp(name, "self") == 0) {
            const char* self = placement->is_shard ? RelationGetRelationName(rel) : get_rel_name(home);
            if (self == nullptr) elog(ERROR, "crm_native: relation %u not found", home);
            appendStringInfoString(&sql, quote_qualified_identifier(schema, self));
        } else if (t < 0) {
            elog(ERROR, "crm_native: unknown placeholder {%s} in %s", name, spec->name);
        } else if (colon == nullptr) {
            const char* table = placement->is_shard ? NameStr(placement->shard_name[t]) : kTableName[t];
            appendStringInfoString(&sql, quote_qualified_identifier(schema, table));
        } else if (std::strcmp(kind, "default_columns") == 0) {
            initStringInfo(&defaults[t]);
            shell_defaults(placement, t, end + 1, &sql, &defaults[t]);
        } else if (std::strcmp(kind, "default_values") == 0) {
            if (defaults[t].data == nullptr)
                elog(ERROR, "crm_native: {default_values:%s} before its {default_columns} in %s", colon + 1,
                     spec->name);
            appendStringInfoString(&sql, defaults[t].data);
        } else if (std::strcmp(kind, "conflict_key") == 0) {
            conflict_key(rel, placement, t, &sql);
        } else {
            elog(ERROR, "crm_native: unknown placeholder {%s} in %s", name, spec->name);
        }
        p = end;
    }
    return sql.data;
}

SPIPlanPtr plan_for(Relation rel, Statement statement, int size_class, const StatementSpec* spec) {
    PlanEntry* entry = plan_entry(rel, statement, size_class);
    if (entry->plan != nullptr && entry->checked_at == invalidations) return entry->plan;

    uint64 checking_at = invalidations;
    char* text = expand(spec, rel);
    if (entry->plan != nullptr && std::strcmp(text, entry->text) == 0 &&
        (!spec->reads_transition_tables || same_row_type(entry->desc, RelationGetDescr(rel)))) {
        pfree(text);
        entry->checked_at = checking_at;
        return entry->plan;
    }
    if (!crm::pg::index_pins::well_formed(text))
        elog(ERROR, "crm_native: malformed index pins in statement \"%s\"", spec->name);
    // Replace it. An outer call of the same trigger may still be running the
    // old plan (a nested chat after DDL): retire it, freed at transaction end.
    // The entry is left empty until the new plan is complete, so an error on
    // the way leaves nothing half-set.
    crm::pg::retire_plan(entry->plan);
    entry->plan = nullptr;
    if (entry->desc != nullptr) crm::pg::retire_tuple_desc(entry->desc);
    entry->desc = nullptr;
    if (entry->text != nullptr) pfree(entry->text);
    entry->text = nullptr;

    Oid types[kMaxStatementArgs];
    for (int i = 0; i < spec->nargs; i++)
        types[i] = spec->argtypes[i] == kSelfRowType ? RelationGetDescr(rel)->tdtypeid : spec->argtypes[i];
    int cursor_options = spec->plan_mode == PlanMode::Generic ? CURSOR_OPT_GENERIC_PLAN : 0;
    SPIPlanPtr plan = SPI_prepare_cursor(text, spec->nargs, types, cursor_options);
    if (plan == nullptr)
        elog(ERROR, "crm_native: could not prepare %s: %s", spec->name, SPI_result_code_string(SPI_result));
    char* kept_text = MemoryContextStrdup(TopMemoryContext, text);
    TupleDesc kept_desc = nullptr;
    if (spec->reads_transition_tables) {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        kept_desc = CreateTupleDescCopy(RelationGetDescr(rel));
        MemoryContextSwitchTo(old);
    }
    if (SPI_keepplan(plan) != 0) elog(ERROR, "crm_native: SPI_keepplan failed for %s", spec->name);
    pfree(text);
    entry->text = kept_text;
    entry->desc = kept_desc;
    entry->plan = plan;
    entry->checked_at = checking_at;
    return plan;
}

Datum text_array(Datum* elements, int n) {
    return PointerGetDatum(construct_array(elements, n, TEXTOID, -1, false, TYPALIGN_INT));
}

// The heaps whose row changes count as the chat table's: the home table,
// or every leaf partition of a partitioned one (cached until the next
// invalidation; a partitioned table has no heap of its own).
struct ChatHeaps {
    Oid home;  // hash key
    uint64 checked_at;
    int count;
    Oid* heaps;  // TopMemoryContext
};
HTAB* chat_heaps = nullptr;

const ChatHeaps* chat_heaps_of(Oid home) {
    if (chat_heaps == nullptr) {
        chat_heaps = backend_map("crm_native chat heaps", sizeof(Oid), sizeof(ChatHeaps), 16);
        watch_invalidations();
    }
    bool found;
    ChatHeaps* entry = static_cast<ChatHeaps*>(hash_search(chat_heaps, &home, HASH_ENTER, &found));
    if (!found) {
        entry->checked_at = 0;
        entry->count = 0;
        entry->heaps = nullptr;
    }
    if (entry->checked_at == invalidations) return entry;
    uint64 checking_at = invalidations;
    // has_subclass (pg_class.relhassubclass, from the syscache): most chat
    // tables have no partition, and need no pg_inherits scan.
    List* all = has_subclass(home) ? find_all_inheritors(home, NoLock, nullptr) : list_make1_oid(home);  // home first
    Oid* heaps = static_cast<Oid*>(MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * (list_length(all) + 1)));
    int n = 0;
    ListCell* cell;
    foreach (cell, all) {
        Oid relid = lfirst_oid(cell);
        if (get_rel_relkind(relid) == RELKIND_RELATION) heaps[n++] = relid;
    }
    list_free(all);
    if (entry->heaps != nullptr) pfree(entry->heaps);
    entry->heaps = heaps;
    entry->count = n;
    entry->checked_at = checking_at;
    return entry;
}

// ---------------------------------------------------------------------------
// Forgetting dropped relations
// ---------------------------------------------------------------------------

// The caches above and the trigger files' per-relation caches are keyed by
// relation, and a relation's entries stay after it is dropped: a connection
// that saw partitions created and dropped kept about 90 kB of plans for each
// (found by an independent review). After an invalidation, the next trigger
// call removes every entry of a relation that no longer exists. No running
// call can be using one: a relation a statement of this backend has open
// cannot be dropped (CheckTableNotInUse), nor one another backend's
// statement has locked. Plans and what a plan may point into are retired
// all the same, freed at the end of the top-level transaction.
// forget_gone_entries() reads the relation at the start of each key.
static_assert(offsetof(PlanEntry, key) == 0 && offsetof(PlanKey, relid) == 0, "plans are keyed by relation first");
static_assert(offsetof(PartitionHome, key) == 0 && offsetof(PartitionHomeKey, rel) == 0, "so are partition homes");
static_assert(offsetof(OidToOid, key) == 0 && offsetof(ChatHeaps, home) == 0, "and homes and chat heaps");
constexpr int kMaxForgetters = 8;
ForgetDropped forgetters[kMaxForgetters];
int forgetter_count = 0;
uint64 swept_at = 0;

bool relation_gone(Oid relid) { return !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)); }

void forget_dropped_relations() {
    if (swept_at == invalidations) return;
    const uint64 sweeping_at = invalidations;  // a lookup below may move it on: then again next time
    bool forgot = false;
    forgot |= forget_gone_entries(plans, relation_gone, [](void* entry) {
        PlanEntry* e = static_cast<PlanEntry*>(entry);  // each field cleared at once: an error half-way frees nothing twice
        crm::pg::retire_plan(e->plan);
        e->plan = nullptr;
        if (e->desc != nullptr) crm::pg::retire_tuple_desc(e->desc);
        e->desc = nullptr;
        if (e->text != nullptr) pfree(e->text);
        e->text = nullptr;
    });
    forgot |= forget_gone_entries(partition_homes, relation_gone);
    forgot |= forget_gone_entries(homes, relation_gone);
    forgot |= forget_gone_entries(chat_heaps, relation_gone, [](void* entry) {
        ChatHeaps* e = static_cast<ChatHeaps*>(entry);
        if (e->heaps != nullptr) pfree(e->heaps);
        e->heaps = nullptr;
    });
    // Keyed by trigger, and a dropped partition's clones are gone with it;
    // recomputed on demand, so all go.
    if (forgot && clone_origins != nullptr) {
        hash_destroy(clone_origins);
        clone_origins = nullptr;
    }
    citus::forget_dropped_placements(relation_gone);
    for (int i = 0; i < forgetter_count; i++) forgetters[i](relation_gone);
    swept_at = sweeping_at;
}

}  // namespace

// ---------------------------------------------------------------------------

AttrNumber require_column(const char* trigger, Relation rel, Table table, const char* column) {
    const ColumnSpec* spec = column_spec(table, column);
    Form_pg_attribute att = find_attribute(rel, column);
    if (att == nullptr)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("%s: table \"%s\".\"%s\" has no column \"%s\"", trigger,
                               get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel), column),
                        errhint("crm_native.install() checks the application schema before attaching the "
                                "triggers; crm_native.required_column lists what they need.")));
    if (!accepts(spec, att->atttypid))
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("%s: column \"%s\" of table \"%s\" has type %s, expected %s", trigger, column,
                               RelationGetRelationName(rel), format_type_be(att->atttypid),
                               format_type_be(spec->types[0])),
                        errhint("crm_native.required_column lists the types each column may have.")));
    return att->attnum;
}

AttrNumber optional_column(Relation rel, Table table, const char* column) {
    Form_pg_attribute att = find_attribute(rel, column);
    return att != nullptr && accepts(column_spec(table, column), att->atttypid) ? att->attnum : InvalidAttrNumber;
}

AttrNumber column_number(Relation rel, const char* column) {
    Form_pg_attribute att = find_attribute(rel, column);
    return att != nullptr ? att->attnum : InvalidAttrNumber;
}

HeapTuple set_column(Relation rel, HeapTuple row, AttrNumber attnum, Datum value) {
    TupleDesc desc = RelationGetDescr(rel);
    Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
    // The value is of the column's base type (uuid, timestamptz). Its type
    // modifier: the column's own, or for a domain column (which has none)
    // the domain's.
    int32 typmod = att->atttypmod;
    Oid base = getBaseTypeAndTypmod(att->atttypid, &typmod);
    if (typmod >= 0) {
        Oid length_function = InvalidOid;
        if (find_typmod_coercion_function(base, &length_function) == COERCION_PATH_FUNC &&
            OidIsValid(length_function)) {
            value = get_func_nargs(length_function) >= 3
                        ? OidFunctionCall3(length_function, value, Int32GetDatum(typmod), BoolGetDatum(false))
                        : OidFunctionCall2(length_function, value, Int32GetDatum(typmod));
        }
    }
    if (base != att->atttypid) domain_check(value, false, att->atttypid, nullptr, CurrentMemoryContext);
    bool isnull = false;
    int column = attnum;
    return heap_modify_tuple_by_cols(row, desc, 1, &column, &value, &isnull);
}

TriggerData* trigger_call(FunctionCallInfo fcinfo, const char* trigger, uint32 fires) {
    crm::pg::tune_malloc_once();  // preloaded, the postmaster did not
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s: not called by the trigger manager", trigger)));
    TriggerData* data = reinterpret_cast<TriggerData*>(fcinfo->context);
    TriggerEvent event = data->tg_event;
    bool timing_ok = (fires & kBefore) ? TRIGGER_FIRED_BEFORE(event) : TRIGGER_FIRED_AFTER(event);
    bool level_ok = (fires & kForEachRow) ? TRIGGER_FIRED_FOR_ROW(event) : TRIGGER_FIRED_FOR_STATEMENT(event);
    bool event_ok = ((fires & kOnInsert) && TRIGGER_FIRED_BY_INSERT(event)) ||
                    ((fires & kOnUpdate) && TRIGGER_FIRED_BY_UPDATE(event)) ||
                    ((fires & kOnDelete) && TRIGGER_FIRED_BY_DELETE(event)) ||
                    ((fires & kOnTruncate) && TRIGGER_FIRED_BY_TRUNCATE(event));
    if (!timing_ok || !level_ok || !event_ok) {
        StringInfoData events;
        initStringInfo(&events);
        const char* names[4] = {"INSERT", "UPDATE", "DELETE", "TRUNCATE"};
        const uint32 bits[4] = {kOnInsert, kOnUpdate, kOnDelete, kOnTruncate};
        for (int i = 0; i < 4; i++)
            if (fires & bits[i]) appendStringInfo(&events, "%s%s", events.len > 0 ? " OR " : "", names[i]);
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s: must be declared %s %s FOR EACH %s", trigger,
                               (fires & kBefore) ? "BEFORE" : "AFTER", events.data,
                               (fires & kForEachRow) ? "ROW" : "STATEMENT"),
                        errhint("crm_native.install() attaches the native triggers as they must be declared.")));
    }
    const Trigger* declared = data->tg_trigger;
    if (declared->tgnargs != 0 && !((fires & kOnPartitions) && on_partition(declared)))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s: trigger \"%s\" on \"%s\" must be declared %s", trigger, declared->tgname,
                               RelationGetRelationName(data->tg_relation),
                               (fires & kOnPartitions) ? "with no argument or the argument 'partition'"
                                                       : "with no arguments"),
                        errhint("crm_native.install() attaches the native triggers as they must be declared.")));
    forget_dropped_relations();
    note_home(data);
    return data;
}

bool forget_gone_entries(HTAB* map, bool (*gone)(Oid), void (*release)(void*)) {
    if (map == nullptr) return false;
    bool forgot = false;
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, map);
    for (void* entry; (entry = hash_seq_search(&scan)) != nullptr;) {
        if (!gone(*static_cast<const Oid*>(entry))) continue;  // the key begins with the relation
        if (release != nullptr) release(entry);
        hash_search(map, entry, HASH_REMOVE, nullptr);  // the entry just returned: allowed
        forgot = true;
    }
    return forgot;
}

void on_dropped_relations(ForgetDropped forget) {
    for (int i = 0; i < forgetter_count; i++)
        if (forgetters[i] == forget) return;
    if (forgetter_count == kMaxForgetters) elog(ERROR, "crm_native: too many caches forget dropped relations");
    forgetters[forgetter_count++] = forget;
}

bool detached_from_home(const TriggerData* data) {
    return on_partition(data->tg_trigger) && home_relid(data->tg_relation) == RelationGetRelid(data->tg_relation);
}

uint64 run(Relation rel, Statement statement, Datum* values, const char* nulls, long tcount, Snapshot snapshot,
           int size_class) {
    const StatementSpec* spec = statement_spec(statement);
    SPIPlanPtr plan = plan_for(rel, statement, size_class, spec);
    // read_only = false: under READ COMMITTED every statement takes a fresh
    // snapshot, which the lock-then-read protocols of the triggers rely on.
    int rc = snapshot != InvalidSnapshot
                 ? SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot, false, true, tcount)
                 : SPI_execute_plan(plan, values, nulls, false, tcount);
    crm::pg::trigger_stats::statement_completed();  // trigger_stats
    // An application's unconditional DO INSTEAD rule on the table (NOTHING,
    // or a command that does not set the tag) rewrote a plain write away:
    // it wrote nothing here, as the plpgsql trigger's INSERT did not.
    if (rc == SPI_OK_REWRITTEN &&
        (spec->expected == SPI_OK_INSERT || spec->expected == SPI_OK_UPDATE || spec->expected == SPI_OK_DELETE))
        return 0;
    if (rc != spec->expected)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("crm_native: %s failed: %s", spec->name, SPI_result_code_string(rc))));
    return SPI_processed;
}

void insert_matching_keys(Relation customers, Datum customer_id, Datum company_id, Datum* key_types, Datum* raw,
                          Datum* normalized, int n) {
    Datum values[5] = {customer_id, company_id, text_array(key_types, n), text_array(raw, n),
                       text_array(normalized, n)};
    // Fewer rows than keys only when an application's BEFORE INSERT trigger
    // on customer_matching_keys skipped some, which is its call, as with
    // the plpgsql trigger.
    run(customers, Statement::KeysInsert, values, nullptr);
}

void delete_matching_keys(Relation customers, Datum customer_id, Datum* key_types, int n) {
    Datum values[2] = {customer_id, text_array(key_types, n)};
    run(customers, Statement::KeysDelete, values, nullptr);
}

void insert_stage_event(Relation customers, Datum customer_id, bool customer_null, Datum company_id,
                        bool company_null, Datum from, bool from_null, Datum to, bool to_null) {
    Datum values[4] = {customer_id, company_id, from, to};
    const char nulls[5] = {customer_null ? 'n' : ' ', company_null ? 'n' : ' ', from_null ? 'n' : ' ',
                           to_null ? 'n' : ' ', '\0'};
    run(customers, Statement::StageEventInsert, values, nulls);
}

void insert_audit_row(Relation customers, const AuditRow* row) {
    // The table's name as the application knows it: on a Citus shard
    // ("customers_102009"), its distributed table's; on a partition
    // ("customers_h0"), its partitioned table's.
    const citus::Placement* placement = citus::placement_for(customers, kTableName, kTableCount, invalidations);
    const char* table_name = placement->is_shard                      ? get_rel_name(placement->self_shell)
                             : customers->rd_rel->relispartition ? get_rel_name(home_relid(customers))
                                                                 : nullptr;
    if (table_name == nullptr) table_name = RelationGetRelationName(customers);
    Datum values[8] = {CStringGetTextDatum(table_name),
                       row->record_id,
                       row->company_id,
                       CStringGetTextDatum(row->operation),
                       row->old_row,
                       row->new_row,
                       row->changed_fields,
                       row->changed_by};
    const char nulls[9] = {' ',
                           row->record_id_null ? 'n' : ' ',
                           row->company_id_null ? 'n' : ' ',
                           ' ',
                           row->old_row_null ? 'n' : ' ',
                           row->new_row_null ? 'n' : ' ',
                           row->changed_fields_null ? 'n' : ' ',
                           row->changed_by_null ? 'n' : ' ',
                           '\0'};
    run(customers, Statement::AuditInsert, values, nulls);
}

Oid crm_schema(Relation rel) { return get_rel_namespace(home_relid(rel)); }

bool row_security_applies(Relation rel, Table table) {
    const citus::Placement* placement = citus::placement_for(rel, kTableName, kTableCount, invalidations);
    return check_enable_rls(target_relid(rel, placement, static_cast<int>(table)), InvalidOid, true) == RLS_ENABLED;
}

int64 chat_row_changes(Relation rel, Oid* home) {
    *home = home_relid(rel);
    const ChatHeaps* heaps = chat_heaps_of(*home);
    int64 changes = 0;
    for (int i = 0; i < heaps->count; i++) {
        PgStat_TableStatus* status = find_tabstat_entry(heaps->heaps[i]);
        if (status == nullptr) continue;
        for (PgStat_TableXactStatus* level = status->trans; level != nullptr; level = level->upper)
            changes += level->tuples_inserted + level->tuples_updated + level->tuples_deleted;
    }
    return changes;
}

}  // namespace crm::pg::store

// crm_native.required_columns(): the column list, for install() and the
// crm_native.required_column view.
extern "C" {
PG_FUNCTION_INFO_V1(crm_required_columns);
Datum crm_required_columns(PG_FUNCTION_ARGS);
}

namespace crm::pg::store {
namespace {
// This database's types that accepts() may take beyond the static list: the
// domains (not the system's own: information_schema has domains over
// varchar and int4) and citext, by OID.
List* database_types() {
    List* found = NIL;
    Oid information_schema = LookupNamespaceNoError("information_schema");
    Relation pg_type = table_open(TypeRelationId, AccessShareLock);
    SysScanDesc scan = systable_beginscan(pg_type, InvalidOid, false, nullptr, 0, nullptr);
    HeapTuple tuple;
    while ((tuple = systable_getnext(scan)) != nullptr) {
        Form_pg_type t = reinterpret_cast<Form_pg_type>(GETSTRUCT(tuple));
        if (t->typnamespace == PG_CATALOG_NAMESPACE || t->typnamespace == information_schema) continue;
        if (t->typtype == TYPTYPE_DOMAIN || std::strcmp(NameStr(t->typname), "citext") == 0)
            found = lappend_oid(found, t->oid);
    }
    systable_endscan(scan);
    table_close(pg_type, AccessShareLock);
    list_sort(found, list_oid_cmp);
    return found;
}

// The column list, each column with every type accepts() takes for it in
// this database: install() and verify_schema() compare types in SQL, so a
// domain or citext column they accept is one the triggers accept.
Datum required_columns(FunctionCallInfo fcinfo) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    List* more = database_types();
    Datum* types = static_cast<Datum*>(palloc(sizeof(Datum) * (lengthof(kColumns[0].types) + list_length(more))));
    for (int i = 0; i < kColumnCount; i++) {
        const ColumnSpec* spec = &kColumns[i];
        int ntypes = 0;
        for (Oid t : spec->types)
            if (OidIsValid(t)) types[ntypes++] = ObjectIdGetDatum(t);
        ListCell* cell;
        foreach (cell, more)
            if (accepts(spec, lfirst_oid(cell))) types[ntypes++] = ObjectIdGetDatum(lfirst_oid(cell));
        Datum values[4] = {Int32GetDatum((i + 1) * 10), CStringGetTextDatum(kTableName[static_cast<int>(spec->table)]),
                           CStringGetTextDatum(spec->column),
                           PointerGetDatum(construct_array(types, ntypes, REGTYPEOID, 4, true, TYPALIGN_INT))};
        bool nulls[4] = {false, false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
}  // namespace
}  // namespace crm::pg::store

Datum crm_required_columns(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum { return crm::pg::store::required_columns(fcinfo); });
}

// crm_native._written_here(xid): whether a row's xmin is this transaction
// or one of its subtransactions (relink_chats counts the customers it
// created; its batches run inside subtransactions, whose rows carry their
// own xid, not pg_current_xact_id()).
extern "C" {
PG_FUNCTION_INFO_V1(crm_written_here);
Datum crm_written_here(PG_FUNCTION_ARGS);
}

Datum crm_written_here(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(DatumGetTransactionId(PG_GETARG_DATUM(0))));
    });
}
