// Native maintenance of customer_metrics: statement-level AFTER triggers on
// "VC Usage" with transition tables (docs/metrics.md has the full design).
//
//   crm_native.metrics_insert()    AFTER INSERT   REFERENCING NEW TABLE
//   crm_native.metrics_update()    AFTER UPDATE   REFERENCING OLD TABLE NEW TABLE
//   crm_native.metrics_delete()    AFTER DELETE   REFERENCING OLD TABLE
//   crm_native.metrics_truncate()  AFTER TRUNCATE
//
// A statement fires the statement triggers of the table it names only, so
// install() also attaches the first three to each partition of a partitioned
// "VC Usage", with the argument 'partition' (store::kOnPartitions): a chat
// written straight into a partition is counted like one routed through
// "VC Usage", and exactly once. A partition created or attached later gets
// them from the event trigger crm_native_partition_triggers (50_install.sql),
// unless crm_native.attach_partition_triggers (defined here) is off. Not TRUNCATE: a TRUNCATE of "VC Usage" fires
// the TRUNCATE triggers of every partition too.
//
// Per statement: one SPI query folds the transition table(s) into one delta
// per touched customer, sorted by customer_id. Then, customer by customer in
// that order (so two statements always lock metrics rows in the same order
// and cannot deadlock on them):
//   1. lock the customer's metrics row (SELECT ... FOR NO KEY UPDATE);
//   2. only now probe the conversation indexes (distinct sessions; min/max
//      only when a removed created_at was the stored extreme). Under READ
//      COMMITTED each SPI query takes a fresh snapshot, so a probe made after
//      the lock sees every transaction that wrote this row before us: no
//      lost or doubled session;
//   3. write the row once (UPDATE, or DELETE when no conversation is left).
// A customer without a row is recomputed from its conversations (which, with
// no row, are only the ones this statement added) and inserted with ON
// CONFLICT DO NOTHING; if a concurrent statement created the row meanwhile,
// we go back to step 1 (under REPEATABLE READ the insert raises a
// serialization failure instead).
//
// The code is C-style: no C++ object with a destructor is alive in any frame
// that calls the backend, so an ereport (longjmp) skips nothing. The pure
// arithmetic is src/core/metrics_delta (noexcept, unit-tested).
// utils/rel.h drags in storage headers that are not C++17-clean ("register",
// unused parameters): silence exactly those, for these includes only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}
#pragma GCC diagnostic pop

#include <cstring>

#include "core/metrics_delta.hpp"
#include "pg/customer_sync.hpp"
#include "pg/retired_plans.hpp"
#include "pg/guard.hpp"
#include "pg/module.hpp"
#include "pg/store.hpp"
#include "pg/trigger_stats.hpp"  // trigger_stats

namespace {

using crm::core::CustomerDelta;
using crm::core::MetricsAction;
using crm::core::MetricsOutcome;
using crm::core::MetricsRow;
using crm::core::OptTimestamp;

// Our own names for the transition tables: registered by us, so the queries do
// not depend on the names written in the trigger's REFERENCING clause.
constexpr const char* kNewRows = "crm_metrics_new";
constexpr const char* kOldRows = "crm_metrics_old";

// Statements changing more rows than this use their own set of kept plans.
constexpr int64 kBulkRows = 64;

// Columns of every fold query (one row per customer, ORDER BY customer_id).
enum FoldColumn {
    kFoldCustomer = 1,     // uuid
    kFoldConversations,    // int8: |A| - |R|
    kFoldViews,            // int8
    kFoldAddedMin,         // timestamptz: min/max created_at over A and R
    kFoldAddedMax,
    kFoldRemovedMin,
    kFoldRemovedMax,
    kFoldAddedOnly,        // text[]: sessions in A and not in R
    kFoldRemovedOnly,      // text[]: sessions in R and not in A
    kFoldAddedIds,         // id[]: ids of the A rows that carry a session (the id column's type)
    kFoldCompanies,        // uuid[]: company_id of the statement's rows
    kFoldPureAddition,     // bool: only A (the customer gains whole conversations)
    kFoldAddedSessions,    // int8: distinct sessions in A
    kFoldCompany,          // uuid: one company of the statement's rows (a new row's)
    kFoldNewCompany,       // uuid: the company of the rows the customer has after the statement, or NULL
                           // (it only lost rows): the company its metrics row takes
};

// Columns of the existing-rows query (phase 2).
enum ExistingColumn {
    kExCustomer = 1,
    kExConversations,
    kExSessions,
    kExViews,
    kExFirst,
    kExLast,
    kExCompany,
    kExDeltaConversations,
    kExDeltaViews,
    kExAddedMin,
    kExAddedMax,
    kExRemovedMin,
    kExRemovedMax,
    kExSessionsDelta,
    kExProbed,
    kExProbedFirst,
    kExProbedLast,
    kExCompanyGone,  // bool: the statement only took chats away, and none of the stored company is left
};

using crm::pg::store::Statement;
using crm::pg::store::Table;

// What the metrics triggers know of one chat table (their statements and
// plans are the data-access layer's, store.hpp). Rebuilt when its row type
// changes.
struct ChatTable {
    Oid relid;
    Relation rel;  // of the statement being processed
    TupleDesc desc;  // copy, in TopMemoryContext
    // Of the statement being processed: 0 up to kBulkRows changed rows, 1
    // above. The planner sizes the transition table when it plans, and a
    // kept plan made for a 10,000-row statement is a poor plan for a single
    // chat (and the other way round): store::run keeps one plan per class.
    int size_class;
    // Attribute numbers of the columns the single-chat fast path reads from
    // the transition tuple; chat_columns_ok when all exist with the expected
    // types (otherwise every statement takes the general path).
    AttrNumber att_id, att_customer, att_company, att_session, att_views, att_created;
    Oid views_type;    // int2, int4 or int8 (a domain's base type)
    FmgrInfo id_output;  // the id column's output function: the fast path passes the id as text
    bool chat_columns_ok;
    ChatTable* next;
};

ChatTable* chat_tables = nullptr;

// An integer column's value as int64; type: int2, int4 or int8.
int64 integer_value(Oid type, Datum value) {
    switch (type) {
        case INT2OID: return DatumGetInt16(value);
        case INT4OID: return DatumGetInt32(value);
        default: return DatumGetInt64(value);
    }
}

// The columns the single-chat fast path reads, with the types the column list
// accepts (the ones install() accepts); otherwise the general path.
void find_chat_columns(ChatTable* set, Relation rel) {
    set->att_id = crm::pg::store::optional_column(rel, Table::Chats, "id");
    set->att_customer = crm::pg::store::optional_column(rel, Table::Chats, "customer_id");
    set->att_company = crm::pg::store::optional_column(rel, Table::Chats, "company_id");
    set->att_session = crm::pg::store::optional_column(rel, Table::Chats, "session_id");  // text or varchar
    set->att_views = crm::pg::store::optional_column(rel, Table::Chats, "view_count");
    set->att_created = crm::pg::store::optional_column(rel, Table::Chats, "created_at");
    set->chat_columns_ok = set->att_id > 0 && set->att_customer > 0 && set->att_company > 0 &&
                           set->att_session > 0 && set->att_views > 0 && set->att_created > 0;
    if (set->chat_columns_ok) {
        Oid output;
        bool varlena;
        getTypeOutputInfo(TupleDescAttr(set->desc, set->att_id - 1)->atttypid, &output, &varlena);
        fmgr_info_cxt(output, &set->id_output, TopMemoryContext);
        set->views_type = getBaseType(TupleDescAttr(set->desc, set->att_views - 1)->atttypid);
    }
}

HTAB* counted_changes = nullptr;  // see alone(), below

void forget_dropped(bool (*gone)(Oid)) {
    crm::pg::store::forget_gone_entries(counted_changes, gone);
    for (ChatTable** link = &chat_tables; *link != nullptr;) {
        ChatTable* set = *link;
        if (!gone(set->relid)) {
            link = &set->next;
            continue;
        }
        *link = set->next;
        if (set->desc != nullptr) crm::pg::retire_tuple_desc(set->desc);
        pfree(set);
    }
}

ChatTable* chat_table_for(Relation rel) {
    if (chat_tables == nullptr) crm::pg::store::on_dropped_relations(forget_dropped);
    ChatTable* set = chat_tables;
    for (; set != nullptr; set = set->next)
        if (set->relid == RelationGetRelid(rel)) break;
    if (set != nullptr && !equalTupleDescs(set->desc, RelationGetDescr(rel))) {
        crm::pg::retire_tuple_desc(set->desc);  // an outer call may have a slot on it
        set->desc = nullptr;
    }
    if (set == nullptr) {
        set = static_cast<ChatTable*>(MemoryContextAllocZero(TopMemoryContext, sizeof(ChatTable)));
        set->relid = RelationGetRelid(rel);
        set->next = chat_tables;
        chat_tables = set;
    }
    if (set->desc == nullptr) {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        set->desc = CreateTupleDescCopyConstr(RelationGetDescr(rel));
        MemoryContextSwitchTo(old);
        find_chat_columns(set, rel);
    }
    set->rel = rel;
    return set;
}

// Runs one of the metrics statements for the statement being processed.
void run_plan(ChatTable* set, Statement statement, Datum* values, const char* nulls) {
    crm::pg::store::run(set->rel, statement, values, nulls, 0, InvalidSnapshot, set->size_class);
}

void register_transition_table(const char* name, Tuplestorestate* rows, Relation rel) {
    if (rows == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("crm_native metrics trigger on \"%s\" has no transition table",
                               RelationGetRelationName(rel)),
                        errhint("Create it FOR EACH STATEMENT with REFERENCING %s TABLE, "
                                "as crm_native.native_trigger does.",
                                name == kNewRows ? "NEW" : "OLD")));
    EphemeralNamedRelation enr =
        static_cast<EphemeralNamedRelation>(palloc0(sizeof(EphemeralNamedRelationData)));
    enr->md.name = const_cast<char*>(name);
    enr->md.reliddesc = RelationGetRelid(rel);
    enr->md.tupdesc = nullptr;
    enr->md.enrtype = ENR_NAMED_TUPLESTORE;
    enr->md.enrtuples = static_cast<double>(tuplestore_tuple_count(rows));
    enr->reldata = rows;
    int rc = SPI_register_relation(enr);
    if (rc != SPI_OK_REL_REGISTER)
        elog(ERROR, "crm_native: could not register transition table: %s", SPI_result_code_string(rc));
}

// A result column read as `expected` must be of that type (or a domain
// over it): a column of customer_metrics or "VC Usage" whose type was
// changed after install() (total_views to numeric, created_at to timestamp)
// would otherwise be read as the wrong datum (a numeric's pointer taken for
// a count). install() checks the types; this catches a later ALTER.
void require_result_type(TupleDesc desc, int col, Oid expected) {
    Oid type = TupleDescAttr(desc, col - 1)->atttypid;
    if (type == expected || getBaseType(type) == expected) return;
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("crm_native metrics: column \"%s\" of a metrics query has type %s, expected %s",
                           NameStr(TupleDescAttr(desc, col - 1)->attname), format_type_be(type),
                           format_type_be(expected)),
                    errhint("A column of customer_metrics or \"VC Usage\" was given another type after install(); "
                            "crm_native.required_column lists the types the triggers accept.")));
}

OptTimestamp opt_ts(HeapTuple tuple, TupleDesc desc, int col) {
    require_result_type(desc, col, TIMESTAMPTZOID);
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, col, &isnull);
    return isnull ? OptTimestamp::none() : OptTimestamp::of(DatumGetTimestampTz(d));
}

int64 int8_col(HeapTuple tuple, TupleDesc desc, int col) {
    require_result_type(desc, col, INT8OID);
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, col, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

// Columns 1-5 of a metrics query (conversations, sessions, views, first,
// last), as the recompute and the stored-row reads both return them.
MetricsRow metrics_columns(HeapTuple tuple, TupleDesc desc) {
    MetricsRow row;
    row.conversations = int8_col(tuple, desc, 1);
    row.sessions = int8_col(tuple, desc, 2);
    row.views = int8_col(tuple, desc, 3);
    row.first = opt_ts(tuple, desc, 4);
    row.last = opt_ts(tuple, desc, 5);
    return row;
}

// The parameters $1-$7 of the one-row metrics writes (MetricsUpdateRow,
// MetricsChatCreate): customer, company, then the row's five columns.
constexpr int kRowParams = 7;
void metrics_row_values(Datum customer, Datum company, bool company_null, const MetricsRow& row, Datum* values,
                        char* nulls) {
    values[0] = customer;
    values[1] = company;
    values[2] = Int64GetDatum(row.conversations);
    values[3] = Int64GetDatum(row.sessions);
    values[4] = Int64GetDatum(row.views);
    values[5] = TimestampTzGetDatum(row.first.value);
    values[6] = TimestampTzGetDatum(row.last.value);
    const char given[kRowParams] = {' ', company_null ? 'n' : ' ', ' ', ' ', ' ', row.first.present ? ' ' : 'n',
                           row.last.present ? ' ' : 'n'};
    std::memcpy(nulls, given, sizeof given);
}

bool bool_col(HeapTuple tuple, TupleDesc desc, int col) {
    require_result_type(desc, col, BOOLOID);
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, col, &isnull);
    return !isnull && DatumGetBool(d);
}

// Column buffers for MetricsLockOrCreate's unnest(): customers, companies,
// totals and extremes, one element per customer.
struct RowBatch {
    int count;
    Datum* customer;
    Datum* company;
    bool* company_null;
    Datum* conversations;
    Datum* sessions;
    Datum* views;
    Datum* first;
    bool* first_null;
    Datum* last;
    bool* last_null;
};

void batch_init(RowBatch* b, int capacity) {
    int cap = capacity > 0 ? capacity : 1;
    b->count = 0;
    b->customer = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->company = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->company_null = static_cast<bool*>(palloc(sizeof(bool) * cap));
    b->conversations = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->sessions = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->views = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->first = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->first_null = static_cast<bool*>(palloc(sizeof(bool) * cap));
    b->last = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
    b->last_null = static_cast<bool*>(palloc(sizeof(bool) * cap));
}

void batch_add(RowBatch* b, Datum customer, Datum company, bool company_null, const MetricsRow& row) {
    int i = b->count++;
    b->customer[i] = customer;
    b->company[i] = company;
    b->company_null[i] = company_null;
    b->conversations[i] = Int64GetDatum(row.conversations);
    b->sessions[i] = Int64GetDatum(row.sessions);
    b->views[i] = Int64GetDatum(row.views);
    b->first[i] = TimestampTzGetDatum(row.first.value);
    b->first_null[i] = !row.first.present;
    b->last[i] = TimestampTzGetDatum(row.last.value);
    b->last_null[i] = !row.last.present;
}

Datum make_array(Datum* elems, bool* nulls, int n, Oid type) {
    int16 len;
    bool byval;
    char align;
    get_typlenbyvalalign(type, &len, &byval, &align);
    int dims[1] = {n};
    int lbs[1] = {1};
    if (n == 0) return PointerGetDatum(construct_empty_array(type));
    return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, type, len, byval, align));
}

// Runs MetricsLockOrCreate over the batch (pure: one flag per customer).
void lock_or_create(ChatTable* set, const RowBatch* b, const bool* pure) {
    Datum values[8];
    values[0] = make_array(b->customer, nullptr, b->count, UUIDOID);
    values[1] = make_array(b->company, b->company_null, b->count, UUIDOID);
    values[2] = make_array(b->conversations, nullptr, b->count, INT8OID);
    values[3] = make_array(b->sessions, nullptr, b->count, INT8OID);
    values[4] = make_array(b->views, nullptr, b->count, INT8OID);
    values[5] = make_array(b->first, b->first_null, b->count, TIMESTAMPTZOID);
    values[6] = make_array(b->last, b->last_null, b->count, TIMESTAMPTZOID);
    Datum* flags = static_cast<Datum*>(palloc(sizeof(Datum) * (b->count > 0 ? b->count : 1)));
    for (int i = 0; i < b->count; ++i) flags[i] = BoolGetDatum(pure[i]);
    values[7] = make_array(flags, nullptr, b->count, BOOLOID);
    run_plan(set, Statement::MetricsLockOrCreate, values, nullptr);
}

// Full recomputation of one customer from the conversations (index
// idx_vc_usage_customer_fk), written over its (locked or just inserted) row.
// The fallback when a stored row contradicts the delta, or when a customer
// without a row lost conversations in this statement.
// The customer's metrics as its conversations give them (MetricsRecompute),
// and the company of its first one.
MetricsRow recomputed(ChatTable* set, Datum customer, Datum* company, bool* company_null) {
    Datum key[1] = {customer};
    run_plan(set, Statement::MetricsRecompute, key, nullptr);
    HeapTuple t = SPI_tuptable->vals[0];
    TupleDesc d = SPI_tuptable->tupdesc;
    MetricsRow row = metrics_columns(t, d);
    *company = SPI_getbinval(t, d, 6, company_null);
    if (!*company_null) *company = datumCopy(*company, false, 16);
    SPI_freetuptable(SPI_tuptable);
    return row;
}

void recompute_customer(ChatTable* set, Datum customer) {
    Datum key[1] = {customer};
    Datum company;
    bool company_null = false;
    MetricsRow row = recomputed(set, customer, &company, &company_null);
    if (row.conversations == 0) {
        run_plan(set, Statement::MetricsDeleteRow, key, nullptr);
        return;
    }
    Datum values[kRowParams];
    char nulls[kRowParams];
    metrics_row_values(customer, company, company_null, row, values, nulls);
    run_plan(set, Statement::MetricsUpdateRow, values, nulls);
}

// A metrics row from its values; false when one exists already (ON
// CONFLICT DO NOTHING).
bool create_row(ChatTable* set, Datum customer, Datum company, bool company_null, const MetricsRow& row) {
    Datum values[kRowParams];
    char nulls[kRowParams];
    metrics_row_values(customer, company, company_null, row, values, nulls);
    run_plan(set, Statement::MetricsChatCreate, values, nulls);
    uint64 created = SPI_processed;
    SPI_freetuptable(SPI_tuptable);
    return created == 1;
}

// Exact mode (see alone() below): the customer's row recomputed from its
// conversations as they are now, whatever it held, under the row's lock;
// created when missing, deleted when no conversation is left. Idempotent:
// several statements that recompute one customer leave the same row.
void recompute_exact(ChatTable* set, Datum customer) {
    Datum key[1] = {customer};
    for (int attempt = 0; attempt < 3; ++attempt) {
        CHECK_FOR_INTERRUPTS();
        run_plan(set, Statement::MetricsChatLock, key, nullptr);
        uint64 locked = SPI_processed;
        SPI_freetuptable(SPI_tuptable);
        if (locked > 0) {
            recompute_customer(set, customer);
            return;
        }
        Datum company;
        bool company_null = false;
        MetricsRow row = recomputed(set, customer, &company, &company_null);
        if (row.conversations == 0) return;  // no conversation, no row
        if (create_row(set, customer, company, company_null, row)) return;
        // created concurrently: lock it and recompute it
    }
    // Under READ COMMITTED each attempt reads what committed before it, so a
    // row that conflicts three times and is never seen is hidden from this
    // role: row-level security, the row being another company's (a customer
    // whose company changed while chats stayed in the old one). Retrying
    // would fail the same way: say so, rather than 40001 (found by an
    // independent tester).
    if (!IsolationUsesXactSnapshot() && crm::pg::store::row_security_applies(set->rel, Table::Metrics))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("crm_native: the customer's metrics row exists but row-level security hides it from "
                               "this role"),
                        errdetail("The row belongs to another company than the chats this statement changed: the "
                                  "customer has chats in two companies."),
                        errhint("A customer's chats belong to its company: move them (or the customer) as a role "
                                "that sees both companies.")));
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("crm_native: the customer's metrics row kept appearing and vanishing concurrently"),
                    errhint("The transaction might succeed if retried.")));
}

bool same_uuid(Datum a, Datum b) { return memcmp(DatumGetPointer(a), DatumGetPointer(b), 16) == 0; }

// One statement: fold, lock-or-create (phase 1), probe (phase 2), write
// (phase 3). The fold's tuptable stays alive until the end: the customer
// Datums point into it.
void maintain(ChatTable* set, Statement fold_plan, Statement existing_plan, bool exact) {
    run_plan(set, fold_plan, nullptr, nullptr);
    SPITupleTable* fold = SPI_tuptable;
    int customers = static_cast<int>(SPI_processed);
    if (customers == 0) {
        SPI_freetuptable(fold);
        return;
    }
    if (static_cast<uint64>(customers) != SPI_processed)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("crm_native: too many customers in one statement")));
    if (exact) {
        // Each touched customer, in customer_id order (the lock order).
        for (int i = 0; i < customers; ++i) {
            bool isnull = false;
            Datum customer = SPI_getbinval(fold->vals[i], fold->tupdesc, kFoldCustomer, &isnull);
            if (!isnull) recompute_exact(set, customer);
        }
        SPI_freetuptable(fold);
        return;
    }

    // Phase 1, in customer_id order: a customer that gains whole
    // conversations and has no row gets its row now, with the aggregate of
    // what it gained (with no row, it had no conversation). Every existing
    // row is locked, not written.
    RowBatch candidates;
    batch_init(&candidates, customers);
    bool* pure = static_cast<bool*>(palloc(sizeof(bool) * customers));
    for (int i = 0; i < customers; ++i) {
        HeapTuple t = fold->vals[i];
        TupleDesc d = fold->tupdesc;
        bool isnull = false;
        Datum customer = SPI_getbinval(t, d, kFoldCustomer, &isnull);
        bool company_null = false;
        Datum company = SPI_getbinval(t, d, kFoldCompany, &company_null);
        pure[i] = bool_col(t, d, kFoldPureAddition);
        MetricsRow gained;
        if (pure[i]) {
            gained.conversations = int8_col(t, d, kFoldConversations);
            gained.sessions = int8_col(t, d, kFoldAddedSessions);
            gained.views = int8_col(t, d, kFoldViews);
            gained.first = opt_ts(t, d, kFoldAddedMin);
            gained.last = opt_ts(t, d, kFoldAddedMax);
        }
        batch_add(&candidates, customer, company, company_null, gained);
    }
    lock_or_create(set, &candidates, pure);
    SPITupleTable* inserted_rows = SPI_tuptable;
    int inserted = static_cast<int>(SPI_processed);
    Datum* inserted_ids = static_cast<Datum*>(palloc(sizeof(Datum) * (inserted > 0 ? inserted : 1)));
    for (int j = 0; j < inserted; ++j) {
        bool isnull = false;
        inserted_ids[j] =
            datumCopy(SPI_getbinval(inserted_rows->vals[j], inserted_rows->tupdesc, 1, &isnull), false, 16);
    }
    SPI_freetuptable(inserted_rows);
    // RETURNING comes in insertion order, which is the fold's order.
    for (int i = 0, j = 0; i < customers && j < inserted; ++i) {
        CHECK_FOR_INTERRUPTS();
        if (!same_uuid(candidates.customer[i], inserted_ids[j])) continue;
        ++j;
        // Only a row deleted concurrently between the EXISTS check and the
        // insert lets a customer that did not only gain conversations get a
        // (zero) row here: recompute it.
        if (!pure[i]) recompute_customer(set, candidates.customer[i]);
    }
    if (inserted == customers) {
        SPI_freetuptable(fold);
        return;
    }

    // Phase 2: the locked rows, with the deltas and the probes (fresh
    // snapshot under READ COMMITTED: after our locks).
    Datum skip[1] = {make_array(inserted_ids, nullptr, inserted, UUIDOID)};
    run_plan(set, existing_plan, skip, nullptr);
    SPITupleTable* existing = SPI_tuptable;
    int rows = static_cast<int>(SPI_processed);

    // Phase 3 writes each row by its primary key, one statement per row: a
    // statement over an array of customers would leave the planner a choice
    // that depends on statistics (under row-level security the policy's
    // company_id can make the tenant's index look as cheap as the keys).
    Datum* updates = static_cast<Datum*>(palloc(sizeof(Datum) * kRowParams * (rows > 0 ? rows : 1)));
    char* update_nulls = static_cast<char*>(palloc(kRowParams * (rows > 0 ? rows : 1)));
    int update_count = 0;
    Datum* deletes = static_cast<Datum*>(palloc(sizeof(Datum) * (rows > 0 ? rows : 1)));
    int delete_count = 0;
    Datum* recomputes = static_cast<Datum*>(palloc(sizeof(Datum) * (rows > 0 ? rows : 1)));
    int recompute_count = 0;
    for (int i = 0; i < rows; ++i) {
        CHECK_FOR_INTERRUPTS();
        HeapTuple t = existing->vals[i];
        TupleDesc d = existing->tupdesc;
        bool isnull = false;
        Datum customer = SPI_getbinval(t, d, kExCustomer, &isnull);
        bool company_null = false;
        Datum company = SPI_getbinval(t, d, kExCompany, &company_null);
        MetricsRow old_row;
        old_row.conversations = int8_col(t, d, kExConversations);
        old_row.sessions = int8_col(t, d, kExSessions);
        old_row.views = int8_col(t, d, kExViews);
        old_row.first = opt_ts(t, d, kExFirst);
        old_row.last = opt_ts(t, d, kExLast);
        CustomerDelta delta;
        delta.conversations = int8_col(t, d, kExDeltaConversations);
        delta.views = int8_col(t, d, kExDeltaViews);
        delta.added_min = opt_ts(t, d, kExAddedMin);
        delta.added_max = opt_ts(t, d, kExAddedMax);
        delta.removed_min = opt_ts(t, d, kExRemovedMin);
        delta.removed_max = opt_ts(t, d, kExRemovedMax);
        int64 sessions_delta = int8_col(t, d, kExSessionsDelta);
        // The query decided whether to probe the extremes; the core decides
        // whether it had to. If they disagree the core refuses to guess.
        bool probed = bool_col(t, d, kExProbed);
        OptTimestamp probed_first = opt_ts(t, d, kExProbedFirst);
        OptTimestamp probed_last = opt_ts(t, d, kExProbedLast);
        MetricsOutcome out = crm::core::apply_delta(old_row, delta, sessions_delta,
                                                    probed ? &probed_first : nullptr,
                                                    probed ? &probed_last : nullptr);
        // The row's company has no chat of the customer left (the customer
        // was moved to another company and this statement took away its
        // last chat of the stored one): the company must come from the
        // chats that are left, so recount the customer.
        if (out.action == MetricsAction::Update && bool_col(t, d, kExCompanyGone))
            out.action = MetricsAction::Recompute;
        switch (out.action) {
            case MetricsAction::Update:
                metrics_row_values(customer, company, company_null, out.new_row, &updates[kRowParams * update_count],
                                   &update_nulls[kRowParams * update_count]);
                ++update_count;
                break;
            case MetricsAction::Delete:
                deletes[delete_count++] = customer;
                break;
            case MetricsAction::Recompute:
                recomputes[recompute_count++] = customer;
                break;
        }
    }

    // Phase 3: write each row once, by its primary key. A write may fire an
    // application's trigger on customer_metrics that writes chats, whose own
    // metrics trigger updates rows this one read in phase 2; once the chat
    // table has changed, the rows still to write are recomputed from the
    // conversations instead (they are locked).
    Oid home = InvalidOid;
    const int64 changes_read = crm::pg::store::chat_row_changes(set->rel, &home);
    bool stale = false;
    for (int i = 0; i < update_count; ++i) {
        CHECK_FOR_INTERRUPTS();
        stale = stale || crm::pg::store::chat_row_changes(set->rel, &home) != changes_read;
        if (stale)
            recompute_exact(set, updates[kRowParams * i]);
        else
            run_plan(set, Statement::MetricsUpdateRow, &updates[kRowParams * i], &update_nulls[kRowParams * i]);
    }
    for (int i = 0; i < delete_count; ++i) {
        CHECK_FOR_INTERRUPTS();
        stale = stale || crm::pg::store::chat_row_changes(set->rel, &home) != changes_read;
        if (stale)
            recompute_exact(set, deletes[i]);
        else
            run_plan(set, Statement::MetricsDeleteRow, &deletes[i], nullptr);
    }
    // The stored row was wrong (edited by hand, or written while the
    // triggers were off): heal it from the conversations.
    for (int i = 0; i < recompute_count; ++i) recompute_customer(set, recomputes[i]);
    SPI_freetuptable(existing);
    SPI_freetuptable(fold);
}

// The most common statement: an INSERT of one chat. Two SPI queries whatever
// the customer's history, and no fold (the chat is read straight from the
// transition tuplestore):
//   - the customer has a row: lock it (MetricsChatLock), then write it with the
//     session probe inside the same statement (MetricsChatUpdate);
//   - it has none: MetricsChatLock finds nothing, MetricsChatCreate inserts the chat's
//     aggregate (with no row, the customer had no conversation). If a
//     concurrent transaction created the row first (ON CONFLICT DO NOTHING
//     waited for it), lock that row and update it instead.
// The metrics row of a customer's first chat; false when it exists already
// (ON CONFLICT DO NOTHING).
bool create_chat_row(ChatTable* set, Datum customer, Datum company, bool company_null, bool has_session,
                     const CustomerDelta& delta) {
    MetricsRow first_chat;
    first_chat.conversations = 1;
    first_chat.sessions = has_session ? 1 : 0;
    first_chat.views = delta.views;
    first_chat.first = delta.added_min;
    first_chat.last = delta.added_max;
    return create_row(set, customer, company, company_null, first_chat);
}


// Returns false when the general path must handle the statement.
bool insert_one_chat(ChatTable* set, Tuplestorestate* rows) {
    if (!set->chat_columns_ok) return false;
    TupleTableSlot* slot = MakeSingleTupleTableSlot(set->desc, &TTSOpsMinimalTuple);
    // Our own read pointer, rewound: other readers of this transition table
    // (another statement trigger) keep theirs.
    int reader = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
    tuplestore_select_read_pointer(rows, reader);
    tuplestore_rescan(rows);
    if (!tuplestore_gettupleslot(rows, true, false, slot)) {
        ExecDropSingleTupleTableSlot(slot);
        return false;
    }
    slot_getallattrs(slot);
    Datum* v = slot->tts_values;
    bool* n = slot->tts_isnull;
    if (n[set->att_id - 1]) {  // no id to tell the chat from the others: general path
        ExecDropSingleTupleTableSlot(slot);
        return false;
    }
    int c = set->att_customer - 1;
    if (n[c]) {  // an unlinked chat has no metrics
        ExecDropSingleTupleTableSlot(slot);
        return true;
    }
    Datum customer = v[c];
    Datum company = v[set->att_company - 1];
    bool company_null = n[set->att_company - 1];
    bool has_session = !n[set->att_session - 1];
    // Everything read through set's column numbers is read now: the
    // statements below run application code (a trigger on customer_metrics),
    // which may rename a chat column and write chats, and the nested call
    // rebuilds set for the new columns (found by an independent tester: the
    // outer call then read the slot at index -1 and the server crashed).
    Datum session = v[set->att_session - 1];
    Datum chat_id = CStringGetTextDatum(OutputFunctionCall(&set->id_output, v[set->att_id - 1]));
    CustomerDelta delta;
    delta.conversations = 1;
    delta.views = n[set->att_views - 1] ? 0 : integer_value(set->views_type, v[set->att_views - 1]);
    if (!n[set->att_created - 1]) {
        delta.added_min = OptTimestamp::of(DatumGetTimestampTz(v[set->att_created - 1]));
        delta.added_max = delta.added_min;
    }

    // A customer the chat sync created in this transaction (a new
    // customer's first chat) has no metrics row yet, and no other
    // transaction can see it to make one: insert first, not lock-then-insert.
    // Should a row exist after all, the insert does nothing and the loop
    // below updates it.
    if (crm::pg::sync::created_in_this_transaction(DatumGetUUIDP(customer)) &&
        create_chat_row(set, customer, company, company_null, has_session, delta)) {
        ExecDropSingleTupleTableSlot(slot);
        return true;
    }
    Datum key[1] = {customer};
    for (int attempt = 0; attempt < 3; ++attempt) {
        CHECK_FOR_INTERRUPTS();
        run_plan(set, Statement::MetricsChatLock, key, nullptr);
        if (SPI_processed == 0) {
            SPI_freetuptable(SPI_tuptable);
            if (create_chat_row(set, customer, company, company_null, has_session, delta)) {
                ExecDropSingleTupleTableSlot(slot);
                return true;
            }
            continue;  // created concurrently: lock it and update it
        }
        HeapTuple t = SPI_tuptable->vals[0];
        TupleDesc d = SPI_tuptable->tupdesc;
        MetricsRow old_row = metrics_columns(t, d);
        // The row takes the chat's company (the sync linked the chat to a
        // customer of that company), not the stored one: a customer moved
        // to another company moves its metrics row with its next chat.
        SPI_freetuptable(SPI_tuptable);
        // Both outcomes of the session probe, decided by the core; the
        // probe itself runs in the UPDATE, after the lock.
        MetricsOutcome if_new = crm::core::apply_delta(old_row, delta, has_session ? 1 : 0, nullptr, nullptr);
        MetricsOutcome if_known = crm::core::apply_delta(old_row, delta, 0, nullptr, nullptr);
        if (if_new.action != MetricsAction::Update || if_known.action != MetricsAction::Update) {
            // The stored row contradicts the delta: heal it (row locked).
            recompute_customer(set, customer);
        } else {
            const MetricsRow& r = if_known.new_row;
            Datum values[10] = {customer,
                                company,
                                Int64GetDatum(r.conversations),
                                Int64GetDatum(if_new.new_row.sessions),
                                Int64GetDatum(r.sessions),
                                Int64GetDatum(r.views),
                                TimestampTzGetDatum(r.first.value),
                                TimestampTzGetDatum(r.last.value),
                                session,
                                chat_id};
            char nulls[10] = {' ', company_null ? 'n' : ' ', ' ', ' ', ' ', ' ',
                              r.first.present ? ' ' : 'n', r.last.present ? ' ' : 'n',
                              has_session ? ' ' : 'n', ' '};
            run_plan(set, Statement::MetricsChatUpdate, values, nulls);
        }
        ExecDropSingleTupleTableSlot(slot);
        return true;
    }
    ExecDropSingleTupleTableSlot(slot);
    return false;  // the row keeps appearing and vanishing: general path
}

// Whether this statement's changes are the only ones to the chat table not
// yet counted in customer_metrics. The deltas below rest on it: the session
// and extreme probes read the chat table as it is now, and take it for "as
// counted, plus this statement". Not so when one query changes the table
// more than once (INSERT ... ON CONFLICT DO UPDATE, MERGE, writable CTEs:
// every statement trigger of the query fires after all of its changes) or
// when a statement runs inside another that changed it and whose triggers
// have not fired yet (an application's row trigger, a function the
// statement calls). So each metrics trigger compares the transaction's row
// changes to the table since the last metrics trigger ended (the statistics
// collector counts every insert, update and delete, store::chat_row_changes)
// with its own transition tables: equal, it is alone and takes the delta
// path; otherwise it recomputes each customer it touched from the
// conversations: exact whatever the others did. Once one trigger has taken
// that path, every later metrics trigger of a query that was already
// running then takes it too: a recomputation in the middle of an enclosing
// statement (from an application's row trigger) counts part of that
// statement's changes, and the enclosing statement's own comparison could
// then balance by chance (a cross-partition UPDATE is two counted changes
// for one transition row); the other triggers of the same query (an
// upsert's INSERT after its UPDATE) likewise. Such a query started before
// the decision, so its snapshot's command id is at most the command id of
// the decision; a query started after it (the next statement of a plpgsql
// loop, or of the client) has a later one, and is judged by the counts
// again (it used to stay exact until the client's statement ended: after
// one caught error, every chat of a loop recomputed its customer's whole
// history). A change no metrics trigger ever sees (triggers disabled) also
// leaves the next statement on the exact path, once.
//
// A subtransaction that aborts takes its changes out of the count (its
// level of the statistics is dropped) and its metrics writes out of the
// table: the baseline goes back with them. Each entry keeps the state it had
// before the first change of each open subtransaction (pushed lazily, by
// alone()); an abort restores it, a commit hands it to the parent. (Every
// abort used to send the next statement to the exact path, an unrelated one
// too: a loop catching errors recomputed a customer's whole history per
// chat; found by an independent tester.) A subtransaction that truncated
// the chat table replaces its parent's counts with its own when it commits
// (the statistics' rule for TRUNCATE), which lowers the count by what the
// parent had counted: the next statement is not trusted (found by an
// independent review).
struct BaselineState {
    int64 changes;       // chat_row_changes() when the last metrics trigger on home ended
    bool exact;          // a metrics trigger on home took the exact path in this transaction
    CommandId exact_at;  // at this command id: queries whose snapshot is not later stay exact
    bool distrusted;     // the next trigger takes the exact path
    SubTransactionId truncated_in;  // an open subtransaction that truncated the table, or Invalid
};
struct SavedBaseline {
    SubTransactionId subxact;  // the state before this subtransaction's first change
    BaselineState state;
};
struct CountedChanges {
    Oid home;  // hash key
    LocalTransactionId lxid;
    BaselineState now;
    // Innermost last, subtransaction ids ascending; in TopTransactionContext
    // (valid while lxid is this transaction's).
    SavedBaseline* saved;
    int saved_count;
    int saved_capacity;
};

// Subtransaction end: an abort puts back each entry's state from before
// the subtransaction's first change; a commit hands the saved state to the
// parent (which keeps its own, older one if it has one).
void on_subxact_end(SubXactEvent event, SubTransactionId mine, SubTransactionId parent, void*) {
    if (counted_changes == nullptr || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)) return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, counted_changes);
    CountedChanges* e;
    while ((e = static_cast<CountedChanges*>(hash_seq_search(&status))) != nullptr) {
        if (e->lxid != MyProc->lxid) continue;
        if (event == SUBXACT_EVENT_ABORT_SUB) {
            int keep = e->saved_count;
            while (keep > 0 && e->saved[keep - 1].subxact >= mine) keep--;
            if (keep < e->saved_count) e->now = e->saved[keep].state;
            e->saved_count = keep;
            continue;
        }
        if (e->saved_count > 0 && e->saved[e->saved_count - 1].subxact == mine) {
            if (e->saved_count > 1 && e->saved[e->saved_count - 2].subxact == parent)
                e->saved_count--;
            else
                e->saved[e->saved_count - 1].subxact = parent;
        }
        if (e->now.truncated_in == mine) {
            e->now.distrusted = true;
            e->now.truncated_in = parent == TopSubTransactionId ? InvalidSubTransactionId : parent;
        }
    }
}

CountedChanges* counted_entry(Oid home) {
    if (counted_changes == nullptr) {
        HASHCTL ctl;
        std::memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(Oid);
        ctl.entrysize = sizeof(CountedChanges);
        counted_changes = hash_create("crm_native counted chat changes", 16, &ctl, HASH_ELEM | HASH_BLOBS);
        RegisterSubXactCallback(on_subxact_end, nullptr);
    }
    bool found;
    CountedChanges* entry = static_cast<CountedChanges*>(hash_search(counted_changes, &home, HASH_ENTER, &found));
    if (!found || entry->lxid != MyProc->lxid) {
        // Nothing counted yet in this transaction: its count starts at 0.
        // (A previous transaction's saved states went with its context.)
        entry->lxid = MyProc->lxid;
        entry->now = BaselineState{0, false, InvalidCommandId, false, InvalidSubTransactionId};
        entry->saved = nullptr;
        entry->saved_count = 0;
        entry->saved_capacity = 0;
    }
    // Inside a subtransaction: the state before its first change, for an abort.
    const SubTransactionId subxact = GetCurrentSubTransactionId();
    if (subxact != TopSubTransactionId &&
        (entry->saved_count == 0 || entry->saved[entry->saved_count - 1].subxact != subxact)) {
        if (entry->saved_count == entry->saved_capacity) {
            const int capacity = entry->saved_capacity == 0 ? 8 : entry->saved_capacity * 2;
            const Size bytes = sizeof(SavedBaseline) * static_cast<Size>(capacity);
            entry->saved = static_cast<SavedBaseline*>(
                entry->saved == nullptr ? MemoryContextAlloc(TopTransactionContext, bytes) : repalloc(entry->saved, bytes));
            entry->saved_capacity = capacity;
        }
        entry->saved[entry->saved_count++] = SavedBaseline{subxact, entry->now};
    }
    return entry;
}

bool alone(Relation rel, int64 own_changes, CountedChanges** counted = nullptr) {
    Oid home = InvalidOid;
    const int64 now = crm::pg::store::chat_row_changes(rel, &home);
    CountedChanges* entry = counted_entry(home);
    if (counted != nullptr) *counted = entry;
    const int64 before = entry->now.changes;
    // The query this trigger belongs to started before the last exact
    // decision: its snapshot's command id is not later (no snapshot: as if so).
    const bool exact_already =
        entry->now.exact && (!ActiveSnapshotSet() || GetActiveSnapshot()->curcid <= entry->now.exact_at);
    const bool is_alone = !entry->now.distrusted && !exact_already && now - before == own_changes;
    entry->now.distrusted = false;
    entry->now.changes = now;
    if (!is_alone) {
        entry->now.exact = true;
        entry->now.exact_at = GetCurrentCommandId(false);
    }
    return is_alone;
}

// After a TRUNCATE of the chat table: count from here (no row left), and
// remember a subtransaction that did it (on_subxact_end).
void count_from_truncate(Relation rel) {
    CountedChanges* entry = nullptr;
    (void)alone(rel, 0, &entry);
    const SubTransactionId subxact = GetCurrentSubTransactionId();
    if (subxact != TopSubTransactionId) entry->now.truncated_in = subxact;
}

Datum run_fold(FunctionCallInfo fcinfo, const char* fn, TriggerEvent event, Statement fold, Statement existing) {
    uint32 on = event == TRIGGER_EVENT_INSERT   ? crm::pg::store::kOnInsert
                : event == TRIGGER_EVENT_UPDATE ? crm::pg::store::kOnUpdate
                                                : crm::pg::store::kOnDelete;
    TriggerData* td = crm::pg::store::trigger_call(
        fcinfo, fn,
        crm::pg::store::kAfter | crm::pg::store::kForEachStatement | on | crm::pg::store::kOnPartitions);
    if (crm::pg::store::detached_from_home(td)) return PointerGetDatum(nullptr);
    Relation rel = td->tg_relation;
    // One row change per transition-table row (an UPDATE's old and new
    // version are one change).
    int64 changed = 0;
    if (td->tg_newtable != nullptr) changed = tuplestore_tuple_count(td->tg_newtable);
    if (td->tg_oldtable != nullptr) changed = Max(changed, tuplestore_tuple_count(td->tg_oldtable));
    // No row changed: no customer to maintain (as the plpgsql row trigger,
    // which did not fire), and the baseline stays as it is: an upsert that
    // only inserts fires its UPDATE trigger first with no row, and that
    // trigger, counting the insert against its none, sent the INSERT
    // trigger after it to the exact path (a whole history read per chat;
    // found by an independent tester).
    if (changed == 0) return PointerGetDatum(nullptr);
    bool exact = !alone(rel, changed);
    // A column renamed after install(): the error names it, not the SQL of
    // the statements below (found by an independent tester). (A column of
    // another type is left to them: they may still work with it.)
    if (!chat_table_for(rel)->chat_columns_ok) {
        static const char* const kChatColumns[] = {"id", "customer_id", "company_id", "session_id", "view_count",
                                                   "created_at"};
        for (const char* column : kChatColumns)
            if (get_attnum(RelationGetRelid(rel), column) == InvalidAttrNumber)
                (void)crm::pg::store::require_column(fn, rel, Table::Chats, column);  // raises "no column"
    }
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    if (!exact && event == TRIGGER_EVENT_INSERT && td->tg_newtable != nullptr &&
        tuplestore_tuple_count(td->tg_newtable) == 1) {
        ChatTable* set = chat_table_for(rel);
        const int outer_class = set->size_class;  // as below
        set->size_class = 0;
        const bool done = insert_one_chat(set, td->tg_newtable);
        set->size_class = outer_class;
        if (done) {
            SPI_finish();
            return PointerGetDatum(nullptr);
        }
    }
    if (event == TRIGGER_EVENT_INSERT || event == TRIGGER_EVENT_UPDATE)
        register_transition_table(kNewRows, td->tg_newtable, rel);
    if (event == TRIGGER_EVENT_DELETE || event == TRIGGER_EVENT_UPDATE)
        register_transition_table(kOldRows, td->tg_oldtable, rel);
    ChatTable* set = chat_table_for(rel);
    // A nested statement on the same table (an application trigger that
    // writes chats) sets its own class: the outer one's is put back, so
    // that its remaining statements use the plans made for its size. (An
    // error in between ends the outer statement too, unless an exception
    // block catches it; then only the choice of plan is off.)
    const int outer_class = set->size_class;
    set->size_class = changed > kBulkRows ? 1 : 0;
    maintain(set, fold, existing, exact);
    set->size_class = outer_class;
    SPI_finish();
    return PointerGetDatum(nullptr);
}

// TRUNCATE leaves no conversation, so no customer keeps a metrics row.
Datum metrics_truncate(FunctionCallInfo fcinfo) {
    TriggerData* td = crm::pg::store::trigger_call(
        fcinfo, "crm_native.metrics_truncate",
        crm::pg::store::kAfter | crm::pg::store::kForEachStatement | crm::pg::store::kOnTruncate);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    ChatTable* set = chat_table_for(td->tg_relation);
    const int outer_class = set->size_class;  // as in run_fold
    set->size_class = 0;
    run_plan(set, Statement::MetricsDeleteAll, nullptr, nullptr);
    set->size_class = outer_class;
    // TRUNCATE resets the table's counters: count from here (no row left).
    count_from_truncate(td->tg_relation);
    SPI_finish();
    return PointerGetDatum(nullptr);
}

}  // namespace

namespace crm::pg {

void define_metrics_gucs() {
    // Only SQL reads it (crm_native._partition_ddl_end()); defined here so
    // that SHOW and pg_settings know it once the library is loaded.
    static bool attach_partition_triggers = true;
    DefineCustomBoolVariable(
        "crm_native.attach_partition_triggers",
        "Put the metrics triggers on partitions of \"VC Usage\" created or attached after install().",
        "Read by the event trigger crm_native_partition_triggers at the end of CREATE TABLE and ALTER TABLE. "
        "Off: new partitions lack them until install() runs again (verify_schema() reports them), and "
        "chats written straight into those partitions are not counted in customer_metrics.",
        &attach_partition_triggers, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

}  // namespace crm::pg

extern "C" {

PG_FUNCTION_INFO_V1(crm_metrics_insert);
Datum crm_metrics_insert(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded(
        [&]() -> Datum { return run_fold(fcinfo, "crm_native.metrics_insert", TRIGGER_EVENT_INSERT, Statement::MetricsFoldInsert, Statement::MetricsExistingInsert); }); });  // trigger_stats
}

PG_FUNCTION_INFO_V1(crm_metrics_update);
Datum crm_metrics_update(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded(
        [&]() -> Datum { return run_fold(fcinfo, "crm_native.metrics_update", TRIGGER_EVENT_UPDATE, Statement::MetricsFoldUpdate, Statement::MetricsExistingUpdate); }); });  // trigger_stats
}

PG_FUNCTION_INFO_V1(crm_metrics_delete);
Datum crm_metrics_delete(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded(
        [&]() -> Datum { return run_fold(fcinfo, "crm_native.metrics_delete", TRIGGER_EVENT_DELETE, Statement::MetricsFoldDelete, Statement::MetricsExistingDelete); }); });  // trigger_stats
}

PG_FUNCTION_INFO_V1(crm_metrics_truncate);
Datum crm_metrics_truncate(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded([&]() -> Datum { return metrics_truncate(fcinfo); }); });  // trigger_stats
}

}  // extern "C"
