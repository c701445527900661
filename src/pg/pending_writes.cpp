// Batched writes of the customers triggers for the customers the chat sync
// creates. The why and the rules are in pending_writes.hpp.
#include "pg/pending_writes.hpp"
#include "pg/implied_references.hpp"
#include "pg/module.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "access/table.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "tcop/utility.h"
}
#pragma GCC diagnostic pop

#include <climits>
#include <cstring>

namespace crm::pg::pending {

namespace {

using customers::CustomerRel;

constexpr const char* kWho = "crm_native (batched customer writes)";

bool batch_writes = true;  // crm_native.sync_batch_writes

// Rows buffered before a new customer's rows write the batch first: bounds the
// memory of a huge import (~10,000 customers, a few MB) at no measurable cost.
constexpr int kMaxPendingRows = 50000;

// ---------------------------------------------------------------------------
// Where we are: the executor runs and utility statements this module saw
// start, innermost last. Rows may be buffered only while the innermost frame
// is the executor run of the chat statement; they are written when that frame
// (or any frame at or above the depth they were added at) ends.
// ---------------------------------------------------------------------------
enum class Frame : char { None, Run, Finish, Utility };
int depth = 0;
Frame innermost = Frame::None;
// The planner's row estimate of the innermost executor run's statement: a
// statement of one row (a single chat) has nothing to batch and runs the
// row-by-row path unchanged.
double innermost_rows = 0;

ExecutorRun_hook_type prev_executor_run = nullptr;
ExecutorFinish_hook_type prev_executor_finish = nullptr;
ProcessUtility_hook_type prev_process_utility = nullptr;

// The sync's INSERT of a customer in progress: the depth of the chat
// statement's run (its AFTER INSERT triggers fire one level deeper, in the
// INSERT's ExecutorFinish), -1 when none.
int create_depth = -1;

// ---------------------------------------------------------------------------
// The buffer: one batch per customers relation, holding three kinds of rows
// as parallel columns. Each row remembers the subtransaction that added it
// (its origin).
// ---------------------------------------------------------------------------
constexpr int kMaxColumns = 5;

struct Rows {
    int n, cap;
    int ncolumns;
    Datum* values[kMaxColumns];
    bool* nulls[kMaxColumns];
    SubTransactionId* origin;
};

// Columns of each kind, in the order of the INSERTs' parameters.
enum KeyColumn { kKeyCustomer, kKeyCompany, kKeyType, kKeyRaw, kKeyNormalized, kKeyColumns };
enum AuditColumn { kAuditId, kAuditCompany, kAuditRow, kAuditUser, kAuditColumns };
enum EventColumn { kEventCustomer, kEventCompany, kEventSession, kEventColumns };

struct Batch {
    Oid relid;
    MemoryContext cxt;  // child of TopTransactionContext: gone at transaction end
    SubTransactionId owner;  // retained batches: the subtransaction that wrote them
    Batch* next;
    Rows keys;    // matching keys of new customers
    Rows audit;   // their INSERT audit rows
    Rows events;  // their 'created' events
};

Batch* pending = nullptr;   // not yet written
Batch* retained = nullptr;  // written by a subtransaction below the one that
                            // added some rows: re-queued if it aborts
int pending_depth = -1;     // deepest frame depth whose end must write the buffer
bool flushing = false;
SubTransactionId flushing_sub = InvalidSubTransactionId;
SubTransactionId create_sub = InvalidSubTransactionId;
bool key_set_unknown = false;  // after a re-queue: every key counts as pending
HTAB* key_set = nullptr;    // uint64 key hashes of the pending keys
MemoryContext key_set_cxt = nullptr;

template <typename T>
void grow(T** array, int old_n, int new_cap) {
    T* fresh = static_cast<T*>(palloc(sizeof(T) * new_cap));
    if (*array != nullptr) {
        std::memcpy(fresh, *array, sizeof(T) * old_n);
        pfree(*array);
    }
    *array = fresh;
}

Batch* new_batch(Oid relid) {
    MemoryContext cxt = AllocSetContextCreate(TopTransactionContext, "crm_native pending customer writes",
                                              ALLOCSET_DEFAULT_SIZES);
    Batch* b = static_cast<Batch*>(MemoryContextAllocZero(cxt, sizeof(Batch)));
    b->relid = relid;
    b->cxt = cxt;
    b->keys.ncolumns = kKeyColumns;
    b->audit.ncolumns = kAuditColumns;
    b->events.ncolumns = kEventColumns;
    return b;
}

Batch* pending_batch(Oid relid) {
    for (Batch* b = pending; b != nullptr; b = b->next)
        if (b->relid == relid) return b;
    Batch* b = new_batch(relid);
    b->next = pending;
    pending = b;
    return b;
}

// Room for `more` rows of r, in the batch's context.
void reserve(MemoryContext cxt, Rows* r, int more) {
    if (r->n + more <= r->cap) return;
    int cap = r->cap == 0 ? 64 : r->cap * 2;
    while (cap < r->n + more) cap *= 2;
    MemoryContext old = MemoryContextSwitchTo(cxt);
    for (int c = 0; c < r->ncolumns; c++) {
        grow(&r->values[c], r->n, cap);
        grow(&r->nulls[c], r->n, cap);
    }
    grow(&r->origin, r->n, cap);
    MemoryContextSwitchTo(old);
    r->cap = cap;
}

// Appends one row of r (values copied into the batch's context); returns its index.
int append(Batch* b, Rows* r, const Datum* values, const bool* nulls, const int16* typlens) {
    reserve(b->cxt, r, 1);
    int j = r->n++;
    MemoryContext old = MemoryContextSwitchTo(b->cxt);
    for (int c = 0; c < r->ncolumns; c++) {
        r->nulls[c][j] = nulls[c];
        r->values[c][j] = nulls[c] ? (Datum)0 : datumCopy(values[c], false, typlens[c]);
    }
    MemoryContextSwitchTo(old);
    r->origin[j] = GetCurrentSubTransactionId();
    return j;
}

bool rows_older_than(const Rows* r, SubTransactionId sub) {
    for (int i = 0; i < r->n; i++)
        if (r->origin[i] < sub) return true;
    return false;
}

// Keeps the rows whose origin `keep` accepts, in order.
template <typename Keep>
void filter_rows(Rows* r, Keep keep) {
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        if (!keep(r->origin[i])) continue;
        for (int c = 0; c < r->ncolumns; c++) {
            r->values[c][n] = r->values[c][i];
            r->nulls[c][n] = r->nulls[c][i];
        }
        r->origin[n] = r->origin[i];
        n++;
    }
    r->n = n;
}

void adopt_rows(Rows* r, SubTransactionId sub, SubTransactionId parent) {
    for (int i = 0; i < r->n; i++)
        if (r->origin[i] == sub) r->origin[i] = parent;
}

void remember_key(uint64 hash) {
    if (key_set == nullptr) {
        key_set_cxt = AllocSetContextCreate(TopTransactionContext, "crm_native pending key hashes",
                                            ALLOCSET_DEFAULT_SIZES);
        HASHCTL ctl;
        std::memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(uint64);
        ctl.entrysize = sizeof(uint64);
        ctl.hcxt = key_set_cxt;
        key_set = hash_create("crm_native pending keys", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    (void)hash_search(key_set, &hash, HASH_ENTER, nullptr);
}

void forget_keys() {
    if (key_set_cxt != nullptr) MemoryContextDelete(key_set_cxt);
    key_set = nullptr;
    key_set_cxt = nullptr;
}

// Everything gone (transaction end: the memory goes with TopTransactionContext).
void reset_all() {
    pending = retained = nullptr;
    key_set = nullptr;
    key_set_cxt = nullptr;
    pending_depth = -1;
    create_depth = -1;
    flushing = false;
}

// ---------------------------------------------------------------------------
// Writing a batch: one INSERT per table, rows in the order they were added.
// ---------------------------------------------------------------------------
ArrayType* datum_array(const Datum* values, const bool* nulls, int n, Oid type, int16 typlen, bool typbyval,
                       char typalign) {
    int dims[1] = {n};
    int lbs[1] = {1};
    // construct_md_array replaces short-header varlena elements by detoasted
    // copies in the current (SPI) context, in the array it is given: give it
    // a copy, so that a batch kept for a re-queue never points there.
    Datum* elements = static_cast<Datum*>(palloc(sizeof(Datum) * (n + 1)));
    std::memcpy(elements, values, sizeof(Datum) * n);
    return construct_md_array(elements, const_cast<bool*>(nulls), 1, dims, lbs, type, typlen, typbyval, typalign);
}

ArrayType* column_array(const Rows* r, int column, Oid type, int16 typlen, char typalign) {
    return datum_array(r->values[column], r->nulls[column], r->n, type, typlen, false, typalign);
}

// Runs one batch INSERT (plan kept in *slot; %s in query = the schema) and
// checks that it wrote every buffered row.
void insert_rows(SPIPlanPtr* slot, const char* query, const CustomerRel* entry, int nargs, Oid* types,
                 Datum* values, int rows, const char* what) {
    SPIPlanPtr plan = customers::keep_plan(slot, query, entry->quoted_schema, nargs, types);
    uint64 n = customers::run_plan(plan, values, "     ", SPI_OK_INSERT, kWho);
    if (n != static_cast<uint64>(rows))
        elog(ERROR, "%s: wrote %llu of %d %s", kWho, static_cast<unsigned long long>(n), rows, what);
}

void write_batch(const Batch* b) {
    if (b->keys.n == 0 && b->audit.n == 0 && b->events.n == 0) return;
    Relation rel = table_open(b->relid, NoLock);  // locked: this transaction inserted into it
    CustomerRel* entry = customers::customer_rel(rel);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "%s: SPI_connect failed", kWho);

    // The audit trigger fires before the keys trigger (trigger name order):
    // write the tables in the same order.
    const Rows* audit = &b->audit;
    if (audit->n > 0) {
        Oid row_array = get_array_type(entry->rowtype);
        if (!OidIsValid(row_array))
            elog(ERROR, "%s: the row type of \"%s\" has no array type", kWho, RelationGetRelationName(rel));
        const char* query =
            "INSERT INTO %s.customer_audit_log"
            " (table_name, record_id, company_id, operation, old_data, new_data, changed_fields,"
            " changed_by_user_id)"
            " SELECT $1, a.record_id, a.company_id, 'INSERT', NULL, pg_catalog.to_jsonb(a.new_row), NULL, a.user_id"
            " FROM (SELECT pg_catalog.unnest($2) AS record_id, pg_catalog.unnest($3) AS company_id,"
            " pg_catalog.unnest($4) AS new_row, pg_catalog.unnest($5) AS user_id) a";
        Oid types[5] = {TEXTOID, UUIDARRAYOID, UUIDARRAYOID, row_array, UUIDARRAYOID};
        Datum values[5] = {
            CStringGetTextDatum(RelationGetRelationName(rel)),
            PointerGetDatum(column_array(audit, kAuditId, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
            PointerGetDatum(column_array(audit, kAuditCompany, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
            PointerGetDatum(column_array(audit, kAuditRow, entry->rowtype, -1, TYPALIGN_DOUBLE)),
            PointerGetDatum(column_array(audit, kAuditUser, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
        };
        insert_rows(&entry->audit_flush, query, entry, 5, types, values, audit->n, "audit rows");
    }
    const Rows* keys = &b->keys;
    if (keys->n > 0) {
        // %1$s = the schema, %2$s = "" or "NOT " before the guard: the
        // customers are ones this transaction created, so the keys' and
        // events' foreign-key checks are implied while they are still there
        // (implied_references.hpp). ORDER BY: ids in the order the rows came,
        // whatever join the planner picks for the guard.
        const char* query =
            "INSERT INTO %1$s.customer_matching_keys"
            " (customer_id, company_id, key_type, key_value, normalized_value)"
            " SELECT k.customer_id, k.company_id, k.key_type, k.key_value, k.normalized_value"
            " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
            " pg_catalog.unnest($4), pg_catalog.unnest($5)) WITH ORDINALITY"
            " AS k (customer_id, company_id, key_type, key_value, normalized_value, n)"
            CRM_CUSTOMER_ROW_GUARD("k.customer_id", "k.company_id") " ORDER BY k.n";
        Oid types[5] = {UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
        Datum values[5] = {
            PointerGetDatum(column_array(keys, kKeyCustomer, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
            PointerGetDatum(column_array(keys, kKeyCompany, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
            PointerGetDatum(column_array(keys, kKeyType, TEXTOID, -1, TYPALIGN_INT)),
            PointerGetDatum(column_array(keys, kKeyRaw, TEXTOID, -1, TYPALIGN_INT)),
            PointerGetDatum(column_array(keys, kKeyNormalized, TEXTOID, -1, TYPALIGN_INT)),
        };
        implied_references::insert_customer_rows(entry, "customer_matching_keys", &entry->keys_flush,
                                                 &entry->keys_flush_checked, query, 5, types, values, "     ",
                                                 static_cast<uint64>(keys->n), "matching keys", kWho);
    }
    const Rows* events = &b->events;
    if (events->n > 0) {
        const char* query =
            "INSERT INTO %1$s.customer_events (customer_id, company_id, event_type, event_data)"
            " SELECT e.customer_id, e.company_id, 'created',"
            " pg_catalog.jsonb_build_object('source', 'chat', 'session_id', e.session_id)"
            " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) WITH ORDINALITY"
            " AS e (customer_id, company_id, session_id, n)"
            CRM_CUSTOMER_ROW_GUARD("e.customer_id", "e.company_id") " ORDER BY e.n";
        Oid types[3] = {UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID};
        Datum values[3] = {
            PointerGetDatum(column_array(events, kEventCustomer, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
            PointerGetDatum(column_array(events, kEventCompany, UUIDOID, UUID_LEN, TYPALIGN_CHAR)),
            PointerGetDatum(column_array(events, kEventSession, TEXTOID, -1, TYPALIGN_INT)),
        };
        implied_references::insert_customer_rows(entry, "customer_events", &entry->events_flush,
                                                 &entry->events_flush_checked, query, 3, types, values, "   ",
                                                 static_cast<uint64>(events->n), "events", kWho);
    }
    SPI_finish();
    table_close(rel, NoLock);
}

// True when some row was added by a subtransaction that encloses `sub`
// (ids grow with nesting along the active chain): rows written by `sub`
// could then be rolled back while the customers they belong to stay.
bool has_rows_older_than(const Batch* b, SubTransactionId sub) {
    return rows_older_than(&b->keys, sub) || rows_older_than(&b->audit, sub) || rows_older_than(&b->events, sub);
}

// Drops the rows that the aborted subtransaction `sub` (or its children) added.
void drop_rows_of(Batch* b, SubTransactionId sub) {
    auto older = [sub](SubTransactionId origin) { return origin < sub; };
    filter_rows(&b->keys, older);
    filter_rows(&b->audit, older);
    filter_rows(&b->events, older);
}

// A committed subtransaction's rows now belong to its parent.
void adopt(Batch* b, SubTransactionId sub, SubTransactionId parent) {
    adopt_rows(&b->keys, sub, parent);
    adopt_rows(&b->audit, sub, parent);
    adopt_rows(&b->events, sub, parent);
}

int pending_row_count() {
    int n = 0;
    for (const Batch* b = pending; b != nullptr; b = b->next) n += b->keys.n + b->audit.n + b->events.n;
    return n;
}

bool batch_empty(const Batch* b) { return b->keys.n == 0 && b->audit.n == 0 && b->events.n == 0; }

// A retained batch whose writer aborted: its rows are gone, their customers
// are not. It goes back to the front of the pending buffer as it is.
void requeue(Batch* b) {
    b->owner = InvalidSubTransactionId;
    b->next = pending;
    pending = b;
    // Written again at the next frame end at any depth (or earlier).
    pending_depth = INT_MAX;
    // The key set does not name the re-queued keys: every key counts as
    // pending until the next flush.
    key_set_unknown = true;
}

// ---------------------------------------------------------------------------
// Hooks: frame tracking, and the write at the end of a frame.
// ---------------------------------------------------------------------------
void flush_at_frame_end() {
    if (pending != nullptr && depth < pending_depth) flush();
}

// Rows a statement is planned to write or return: a ModifyTable (no RETURNING)
// is costed at 0 rows, its input at what it writes.
double planned_rows(const Plan* plan) {
    if (plan == nullptr) return 0;
    if (IsA(plan, ModifyTable) && outerPlan(plan) != nullptr) return outerPlan(plan)->plan_rows;
    return plan->plan_rows;
}

void executor_run(QueryDesc* query, ScanDirection direction, uint64 count, bool execute_once) {
    Frame outer = innermost;
    double outer_rows = innermost_rows;
    depth++;
    innermost = Frame::Run;
    innermost_rows = planned_rows(query->plannedstmt->planTree);
    PG_TRY();
    {
        if (prev_executor_run != nullptr)
            prev_executor_run(query, direction, count, execute_once);
        else
            standard_ExecutorRun(query, direction, count, execute_once);
    }
    PG_FINALLY();
    {
        depth--;
        innermost = outer;
        innermost_rows = outer_rows;
    }
    PG_END_TRY();
    flush_at_frame_end();
}

void executor_finish(QueryDesc* query) {
    Frame outer = innermost;
    depth++;
    innermost = Frame::Finish;
    PG_TRY();
    {
        if (prev_executor_finish != nullptr)
            prev_executor_finish(query);
        else
            standard_ExecutorFinish(query);
    }
    PG_FINALLY();
    {
        depth--;
        innermost = outer;
    }
    PG_END_TRY();
    flush_at_frame_end();
}

void process_utility(PlannedStmt* stmt, const char* query_string, bool read_only_tree, ProcessUtilityContext context,
                     ParamListInfo params, QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
    Frame outer = innermost;
    depth++;
    innermost = Frame::Utility;
    PG_TRY();
    {
        if (prev_process_utility != nullptr)
            prev_process_utility(stmt, query_string, read_only_tree, context, params, env, dest, qc);
        else
            standard_ProcessUtility(stmt, query_string, read_only_tree, context, params, env, dest, qc);
    }
    PG_FINALLY();
    {
        depth--;
        innermost = outer;
    }
    PG_END_TRY();
    // A transaction-control statement (COMMIT inside a procedure) may have
    // ended the transaction that owned the buffer: then it is empty already.
    flush_at_frame_end();
}

// ---------------------------------------------------------------------------
// Transaction callbacks
// ---------------------------------------------------------------------------
void on_xact(XactEvent event, void*) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
        case XACT_EVENT_PARALLEL_PRE_COMMIT:
        case XACT_EVENT_PRE_PREPARE:
            // Every frame that buffers rows writes them when it ends; rows
            // still here would be lost, so the commit must not happen.
            if (pending != nullptr)
                ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                                errmsg("%s: customer rows were left unwritten at commit", kWho),
                                errhint("Set crm_native.sync_batch_writes = off and report this.")));
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            reset_all();
            key_set_unknown = false;
            break;
    }
}

void on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void*) {
    if (event == SUBXACT_EVENT_COMMIT_SUB) {
        // What the subtransaction added or wrote now belongs to its parent.
        for (Batch* b = pending; b != nullptr; b = b->next) adopt(b, sub, parent);
        Batch** link = &retained;
        while (*link != nullptr) {
            Batch* b = *link;
            if (b->owner == sub) b->owner = parent;
            adopt(b, sub, parent);
            // Rows owned by the subtransaction of their oldest row share
            // the fate of their customers: nothing left to watch.
            if (!has_rows_older_than(b, b->owner)) {
                *link = b->next;
                MemoryContextDelete(b->cxt);
                continue;
            }
            link = &b->next;
        }
        return;
    }
    if (event != SUBXACT_EVENT_ABORT_SUB) return;
    if (flushing && flushing_sub >= sub) flushing = false;  // that flush was aborted
    if (create_depth >= 0 && create_sub >= sub) create_depth = -1;
    // Rows the aborted subtransaction (or its children) added: their
    // customers are rolled back too.
    for (Batch* b = pending; b != nullptr; b = b->next) drop_rows_of(b, sub);
    // Rows the aborted subtransaction wrote for older rows: write them again.
    Batch** link = &retained;
    while (*link != nullptr) {
        Batch* b = *link;
        if (b->owner != sub) {
            link = &b->next;
            continue;
        }
        *link = b->next;
        drop_rows_of(b, sub);
        if (batch_empty(b))
            MemoryContextDelete(b->cxt);
        else
            requeue(b);
    }
    // Drop empty pending batches.
    link = &pending;
    while (*link != nullptr) {
        Batch* b = *link;
        if (batch_empty(b)) {
            *link = b->next;
            MemoryContextDelete(b->cxt);
        } else {
            link = &b->next;
        }
    }
    if (pending == nullptr) {
        forget_keys();
        key_set_unknown = false;
        pending_depth = -1;
        }
}

}  // namespace

// ---------------------------------------------------------------------------
// Interface
// ---------------------------------------------------------------------------

void initialize() {
    DefineCustomBoolVariable(
        "crm_native.sync_batch_writes",
        "Writes the matching keys and audit rows of the customers a chat statement creates set-wise.",
        "The rows are the same as with off; they are written when the statement's executor run ends (or earlier, "
        "when something could read them). Off: each new customer's rows are written by its own triggers "
        "right away.",
        &batch_writes, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    prev_executor_run = ExecutorRun_hook;
    ExecutorRun_hook = executor_run;
    prev_executor_finish = ExecutorFinish_hook;
    ExecutorFinish_hook = executor_finish;
    prev_process_utility = ProcessUtility_hook;
    ProcessUtility_hook = process_utility;
    RegisterXactCallback(on_xact, nullptr);
    RegisterSubXactCallback(on_subxact, nullptr);
}

uint64 key_hash(const pg_uuid_t* company, int slot, const char* key, int len) {
    uint64 seed = hash_bytes_extended(company->data, UUID_LEN, static_cast<uint64>(slot + 1));
    return hash_bytes_extended(reinterpret_cast<const unsigned char*>(key), len, seed);
}

bool begin_sync_create() {
    create_depth = -1;
    if (!batch_writes || flushing || innermost != Frame::Run || innermost_rows <= 1) return false;
    if (pending_row_count() >= kMaxPendingRows) flush();
    create_depth = depth;
    create_sub = GetCurrentSubTransactionId();
    return true;
}

void end_sync_create() { create_depth = -1; }

bool any_pending() { return pending != nullptr; }

bool key_pending(uint64 hash) {
    if (pending == nullptr) return false;
    if (key_set_unknown) return true;
    return key_set != nullptr && hash_search(key_set, &hash, HASH_FIND, nullptr) != nullptr;
}

bool defer_this_event(TriggerData* data) {
    return create_depth >= 0 && depth == create_depth + 1 && !flushing && TRIGGER_FIRED_AFTER(data->tg_event) &&
           TRIGGER_FIRED_FOR_ROW(data->tg_event) && TRIGGER_FIRED_BY_INSERT(data->tg_event);
}

void flush() {
    if (flushing) return;
    // Rows buffered while writing (a trigger on the written tables that
    // inserts chats) are written by the next round.
    while (pending != nullptr) {
        Batch* batches = pending;
        pending = nullptr;
            forget_keys();
        key_set_unknown = false;
        pending_depth = -1;
        SubTransactionId writer = GetCurrentSubTransactionId();
        int n = 0;
        for (Batch* b = batches; b != nullptr; b = b->next) n++;
        Batch** list = static_cast<Batch**>(palloc(sizeof(Batch*) * n));
        bool* watched = static_cast<bool*>(palloc(sizeof(bool) * n));
        n = 0;
        for (Batch* b = batches; b != nullptr; b = b->next) list[n++] = b;
        // Before writing: rows this subtransaction writes for entries of an
        // enclosing one are watched, so that an abort of this subtransaction
        // (even of this very write) re-queues them.
        for (int i = 0; i < n; i++) {
            watched[i] = has_rows_older_than(list[i], writer);
            if (!watched[i]) continue;
            list[i]->owner = writer;
            list[i]->next = retained;
            retained = list[i];
        }
        flushing = true;
        flushing_sub = writer;
        for (int i = 0; i < n; i++) write_batch(list[i]);
        flushing = false;
        for (int i = 0; i < n; i++)
            if (!watched[i]) MemoryContextDelete(list[i]->cxt);
        pfree(list);
        pfree(watched);
    }
}

void add_keys(Relation rel, Datum customer_id, Datum company_id, const int* slots, const Datum* key_types,
              const Datum* raw, const Datum* normalized, int n) {
    Batch* b = pending_batch(RelationGetRelid(rel));
    reserve(b->cxt, &b->keys, n);
    const int16 typlens[kKeyColumns] = {UUID_LEN, UUID_LEN, -1, -1, -1};
    const bool nulls[kKeyColumns] = {false, false, false, false, false};
    const pg_uuid_t* company = DatumGetUUIDP(company_id);
    for (int i = 0; i < n; i++) {
        Datum values[kKeyColumns] = {customer_id, company_id, key_types[i], raw[i], normalized[i]};
        append(b, &b->keys, values, nulls, typlens);
        text* key = DatumGetTextPP(normalized[i]);
        remember_key(key_hash(company, slots[i], VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
    }
    if (create_depth > pending_depth) pending_depth = create_depth;
}

void add_created_event(Oid customers_relid, Datum customer_id, Datum company_id, Datum session_id,
                       bool session_id_null) {
    Batch* b = pending_batch(customers_relid);
    const int16 typlens[kEventColumns] = {UUID_LEN, UUID_LEN, -1};
    const Datum values[kEventColumns] = {customer_id, company_id, session_id};
    const bool nulls[kEventColumns] = {false, false, session_id_null};
    append(b, &b->events, values, nulls, typlens);
    if (create_depth > pending_depth) pending_depth = create_depth;
}

void add_audit(Relation rel, Datum record_id, bool record_id_null, Datum company_id, bool company_id_null,
               HeapTuple row, Datum user_id, bool user_id_null) {
    Batch* b = pending_batch(RelationGetRelid(rel));
    const int16 typlens[kAuditColumns] = {UUID_LEN, UUID_LEN, -1, UUID_LEN};
    const Datum values[kAuditColumns] = {record_id, company_id, heap_copy_tuple_as_datum(row, RelationGetDescr(rel)),
                                         user_id};
    const bool nulls[kAuditColumns] = {record_id_null, company_id_null, false, user_id_null};
    append(b, &b->audit, values, nulls, typlens);
    if (create_depth > pending_depth) pending_depth = create_depth;
}

}  // namespace crm::pg::pending

namespace crm::pg {
void initialize_batched_customer_writes() { pending::initialize(); }
}  // namespace crm::pg
