// Native maintenance of customer_metrics: statement-level AFTER triggers on
// "VC Usage" with transition tables (docs/metrics.md has the full design).
//
//   crm_native.metrics_insert()    AFTER INSERT   REFERENCING NEW TABLE
//   crm_native.metrics_update()    AFTER UPDATE   REFERENCING OLD TABLE NEW TABLE
//   crm_native.metrics_delete()    AFTER DELETE   REFERENCING OLD TABLE
//   crm_native.metrics_truncate()  AFTER TRUNCATE
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
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}
#pragma GCC diagnostic pop

#include "core/metrics_delta.hpp"

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

// Columns of every fold query (one row per customer, ORDER BY customer_id).
enum FoldColumn {
    kFoldCustomer = 1,    // uuid
    kFoldConversations,   // int8: |A| - |R|
    kFoldViews,           // int8
    kFoldAddedMin,        // timestamptz
    kFoldAddedMax,
    kFoldRemovedMin,
    kFoldRemovedMax,
    kFoldAddedSessions,   // text[]: distinct sessions in A
    kFoldRemovedSessions, // text[]: distinct sessions in R
    kFoldAddedIds,        // int8[]: ids of A rows that carry a session
    kFoldCompanies,       // uuid[]: company_id of the statement's rows
};

enum Plan {
    kFoldInsert,
    kFoldUpdate,
    kFoldDelete,
    kLockRow,
    kSessionProbe,
    kExtremeProbe,
    kRecompute,
    kInsertRow,
    kUpdateRow,
    kDeleteRow,
    kDeleteAll,
    kPlanCount
};

// Plans for one triggering relation, prepared on first use and kept for the
// life of the backend (PostgreSQL replans them itself when a table they read
// changes). Rebuilt when the relation's schema name or row type changes.
struct PlanSet {
    Oid relid;
    char nspname[NAMEDATALEN];
    char relname[NAMEDATALEN];
    TupleDesc desc;  // copy, in TopMemoryContext
    SPIPlanPtr plans[kPlanCount];
    PlanSet* next;
};

PlanSet* plan_sets = nullptr;

const char* qualified(const char* nsp, const char* rel) { return quote_qualified_identifier(nsp, rel); }

PlanSet* plan_set_for(Relation rel) {
    const char* nsp = get_namespace_name(RelationGetNamespace(rel));
    if (nsp == nullptr) elog(ERROR, "crm_native: schema of relation %u not found", RelationGetRelid(rel));
    PlanSet* set = plan_sets;
    for (; set != nullptr; set = set->next)
        if (set->relid == RelationGetRelid(rel)) break;
    if (set != nullptr && (strcmp(set->nspname, nsp) != 0 ||
                           strcmp(set->relname, RelationGetRelationName(rel)) != 0 ||
                           !equalTupleDescs(set->desc, RelationGetDescr(rel)))) {
        for (int i = 0; i < kPlanCount; ++i) {
            if (set->plans[i] != nullptr) SPI_freeplan(set->plans[i]);
            set->plans[i] = nullptr;
        }
        FreeTupleDesc(set->desc);
        set->desc = nullptr;
    }
    if (set == nullptr) {
        set = static_cast<PlanSet*>(MemoryContextAllocZero(TopMemoryContext, sizeof(PlanSet)));
        set->relid = RelationGetRelid(rel);
        set->next = plan_sets;
        plan_sets = set;
    }
    if (set->desc == nullptr) {
        strlcpy(set->nspname, nsp, NAMEDATALEN);
        strlcpy(set->relname, RelationGetRelationName(rel), NAMEDATALEN);
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        set->desc = CreateTupleDescCopyConstr(RelationGetDescr(rel));
        MemoryContextSwitchTo(old);
    }
    return set;
}

// The SQL of each plan. %1$s = the conversations table, %2$s = customer_metrics,
// both schema-qualified with the triggering relation's schema; the trigger
// functions run with search_path = pg_catalog, pg_temp.
const char* plan_sql(Plan plan) {
    switch (plan) {
        case kFoldInsert:
            return "SELECT n.customer_id, count(*)::int8, coalesce(sum(n.view_count), 0)::int8,"
                   " min(n.created_at), max(n.created_at), NULL::timestamptz, NULL::timestamptz,"
                   " array_agg(DISTINCT n.session_id) FILTER (WHERE n.session_id IS NOT NULL),"
                   " NULL::text[],"
                   " array_agg(n.id::int8) FILTER (WHERE n.session_id IS NOT NULL),"
                   " array_agg(DISTINCT n.company_id)"
                   " FROM crm_metrics_new n WHERE n.customer_id IS NOT NULL"
                   " GROUP BY n.customer_id ORDER BY n.customer_id";
        case kFoldDelete:
            return "SELECT o.customer_id, -count(*)::int8, -coalesce(sum(o.view_count), 0)::int8,"
                   " NULL::timestamptz, NULL::timestamptz, min(o.created_at), max(o.created_at),"
                   " NULL::text[],"
                   " array_agg(DISTINCT o.session_id) FILTER (WHERE o.session_id IS NOT NULL),"
                   " NULL::int8[],"
                   " array_agg(DISTINCT o.company_id)"
                   " FROM crm_metrics_old o WHERE o.customer_id IS NOT NULL"
                   " GROUP BY o.customer_id ORDER BY o.customer_id";
        case kFoldUpdate:
            // Old and new versions are paired by id. A conversation that stays
            // with its customer contributes only the attributes that changed
            // (so an UPDATE of view_count probes nothing); one that moves is a
            // removal from the old customer and an addition to the new one.
            // Unpaired rows (the UPDATE changed id) are plain removal/addition.
            return "WITH p AS ("
                   "  SELECT o.customer_id AS oc, o.company_id AS oco, o.session_id AS os,"
                   "         o.view_count AS ov, o.created_at AS ot,"
                   "         n.customer_id AS nc, n.company_id AS nco, n.session_id AS ns,"
                   "         n.view_count AS nv, n.created_at AS nt, n.id::int8 AS nid"
                   "    FROM crm_metrics_old o FULL JOIN crm_metrics_new n ON n.id = o.id),"
                   " ch AS ("
                   "  SELECT nc AS customer_id, nco AS company_id, 0::int8 AS dn,"
                   "         coalesce(nv, 0)::int8 - coalesce(ov, 0)::int8 AS dv,"
                   "         CASE WHEN nt IS DISTINCT FROM ot THEN nt END AS add_ts,"
                   "         CASE WHEN nt IS DISTINCT FROM ot THEN ot END AS rem_ts,"
                   "         CASE WHEN ns IS DISTINCT FROM os THEN ns END AS add_sess,"
                   "         CASE WHEN ns IS DISTINCT FROM os THEN os END AS rem_sess,"
                   "         CASE WHEN ns IS DISTINCT FROM os THEN nid END AS add_id,"
                   "         (nv IS DISTINCT FROM ov OR nt IS DISTINCT FROM ot OR ns IS DISTINCT FROM os) AS changed"
                   "    FROM p WHERE oc = nc"
                   "  UNION ALL"
                   "  SELECT oc, oco, -1, -coalesce(ov, 0)::int8, NULL, ot, NULL, os, NULL, true"
                   "    FROM p WHERE oc IS NOT NULL AND oc IS DISTINCT FROM nc"
                   "  UNION ALL"
                   "  SELECT nc, nco, 1, coalesce(nv, 0)::int8, nt, NULL, ns, NULL, nid, true"
                   "    FROM p WHERE nc IS NOT NULL AND nc IS DISTINCT FROM oc)"
                   " SELECT customer_id, sum(dn)::int8, sum(dv)::int8,"
                   "  min(add_ts), max(add_ts), min(rem_ts), max(rem_ts),"
                   "  array_agg(DISTINCT add_sess) FILTER (WHERE add_sess IS NOT NULL),"
                   "  array_agg(DISTINCT rem_sess) FILTER (WHERE rem_sess IS NOT NULL),"
                   "  array_agg(add_id) FILTER (WHERE add_sess IS NOT NULL),"
                   "  array_agg(DISTINCT company_id)"
                   " FROM ch WHERE changed GROUP BY customer_id ORDER BY customer_id";
        case kLockRow:
            return "SELECT total_conversations, total_sessions, total_views,"
                   " first_interaction_at, last_interaction_at, company_id"
                   " FROM %2$s WHERE customer_id = $1 FOR NO KEY UPDATE";
        case kSessionProbe:
            // Net change in distinct sessions. A session only added by the
            // statement is new unless a conversation the statement did not add
            // carries it ($4: ids of the added rows); a session only removed is
            // gone unless a conversation still carries it. Index probes on
            // idx_vc_usage_session_customer (session_id, customer_id).
            return "SELECT (SELECT count(*) FROM (SELECT unnest($2::text[]) EXCEPT SELECT unnest($3::text[])) a(s)"
                   "         WHERE NOT EXISTS (SELECT 1 FROM %1$s v WHERE v.session_id = a.s"
                   "                           AND v.customer_id = $1 AND v.id <> ALL (coalesce($4::int8[], '{}'))))"
                   "     - (SELECT count(*) FROM (SELECT unnest($3::text[]) EXCEPT SELECT unnest($2::text[])) r(s)"
                   "         WHERE NOT EXISTS (SELECT 1 FROM %1$s v WHERE v.session_id = r.s"
                   "                           AND v.customer_id = $1))";
        case kExtremeProbe:
            // min/max created_at of the customer's current conversations: one
            // forward and one backward probe of idx_vc_usage_company_customer
            // (company_id, customer_id, created_at DESC) per company involved.
            return "SELECT min(x.lo), max(x.hi)"
                   " FROM (SELECT DISTINCT c FROM unnest(array_append($2::uuid[], $3::uuid)) c"
                   "       WHERE c IS NOT NULL) k,"
                   " LATERAL (SELECT min(v.created_at) AS lo, max(v.created_at) AS hi FROM %1$s v"
                   "          WHERE v.company_id = k.c AND v.customer_id = $1) x";
        case kRecompute:
            // Same definition as the reference refresh_customer_metrics().
            return "SELECT count(*)::int8, count(DISTINCT v.session_id)::int8,"
                   " coalesce(sum(v.view_count), 0)::int8, min(v.created_at), max(v.created_at),"
                   " (array_agg(v.company_id))[1]"
                   " FROM %1$s v WHERE v.customer_id = $1";
        case kInsertRow:
            return "INSERT INTO %2$s AS m (customer_id, company_id, total_conversations, total_sessions,"
                   " total_views, first_interaction_at, last_interaction_at, refreshed_at)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (customer_id) DO NOTHING";
        case kUpdateRow:
            return "UPDATE %2$s SET company_id = $2, total_conversations = $3, total_sessions = $4,"
                   " total_views = $5, first_interaction_at = $6, last_interaction_at = $7,"
                   " refreshed_at = now() WHERE customer_id = $1";
        case kDeleteRow:
            return "DELETE FROM %2$s WHERE customer_id = $1";
        case kDeleteAll:
            return "DELETE FROM %2$s";
        case kPlanCount:
            break;
    }
    elog(ERROR, "crm_native: unknown metrics plan %d", static_cast<int>(plan));
    return nullptr;
}

int plan_nargs(Plan plan, Oid* types) {
    switch (plan) {
        case kLockRow:
        case kRecompute:
        case kDeleteRow:
            types[0] = UUIDOID;
            return 1;
        case kSessionProbe:
            types[0] = UUIDOID;
            types[1] = TEXTARRAYOID;
            types[2] = TEXTARRAYOID;
            types[3] = INT8ARRAYOID;
            return 4;
        case kExtremeProbe:
            types[0] = UUIDOID;
            types[1] = UUIDARRAYOID;
            types[2] = UUIDOID;
            return 3;
        case kInsertRow:
        case kUpdateRow:
            types[0] = UUIDOID;
            types[1] = UUIDOID;
            types[2] = INT8OID;
            types[3] = INT8OID;
            types[4] = INT8OID;
            types[5] = TIMESTAMPTZOID;
            types[6] = TIMESTAMPTZOID;
            return 7;
        default:
            return 0;
    }
}

SPIPlanPtr get_plan(PlanSet* set, Plan plan) {
    if (set->plans[plan] != nullptr) return set->plans[plan];
    StringInfoData sql;
    initStringInfo(&sql);
    // plan_sql is a fixed template of ours; the two names are quoted.
    const char* conversations = qualified(set->nspname, set->relname);
    const char* metrics = qualified(set->nspname, "customer_metrics");
    const char* tmpl = plan_sql(plan);
    // Expand %1$s / %2$s by hand (appendStringInfo has no positional args
    // that we want to rely on across platforms).
    for (const char* p = tmpl; *p != '\0'; ++p) {
        if (p[0] == '%' && (p[1] == '1' || p[1] == '2') && p[2] == '$' && p[3] == 's') {
            appendStringInfoString(&sql, p[1] == '1' ? conversations : metrics);
            p += 3;
        } else {
            appendStringInfoChar(&sql, *p);
        }
    }
    Oid types[8];
    int nargs = plan_nargs(plan, types);
    SPIPlanPtr prepared = SPI_prepare(sql.data, nargs, types);
    if (prepared == nullptr)
        elog(ERROR, "crm_native: could not prepare metrics query: %s", SPI_result_code_string(SPI_result));
    if (SPI_keepplan(prepared) != 0) elog(ERROR, "crm_native: SPI_keepplan failed");
    set->plans[plan] = prepared;
    pfree(sql.data);
    return prepared;
}

void run_plan(SPIPlanPtr plan, Datum* values, const char* nulls, int expected) {
    // read_only = false: under READ COMMITTED every query takes a fresh
    // snapshot, which is what makes "lock, then probe" correct.
    int rc = SPI_execute_plan(plan, values, nulls, false, 0);
    if (rc != expected) elog(ERROR, "crm_native: metrics query failed: %s", SPI_result_code_string(rc));
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

OptTimestamp opt_ts(HeapTuple tuple, TupleDesc desc, int col) {
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, col, &isnull);
    return isnull ? OptTimestamp::none() : OptTimestamp::of(DatumGetTimestampTz(d));
}

int64 int8_col(HeapTuple tuple, TupleDesc desc, int col) {
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, col, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

// Writes (UPDATE or INSERT) one customer's row from absolute values.
void write_row(PlanSet* set, Plan plan, Datum customer, Datum company, bool company_null,
               const MetricsRow& row) {
    Datum values[7];
    char nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
    values[0] = customer;
    values[1] = company;
    if (company_null) nulls[1] = 'n';
    values[2] = Int64GetDatum(row.conversations);
    values[3] = Int64GetDatum(row.sessions);
    values[4] = Int64GetDatum(row.views);
    values[5] = TimestampTzGetDatum(row.first.value);
    if (!row.first.present) nulls[5] = 'n';
    values[6] = TimestampTzGetDatum(row.last.value);
    if (!row.last.present) nulls[6] = 'n';
    run_plan(get_plan(set, plan), values, nulls, plan == kInsertRow ? SPI_OK_INSERT : SPI_OK_UPDATE);
}

void delete_row(PlanSet* set, Datum customer) {
    Datum values[1] = {customer};
    run_plan(get_plan(set, kDeleteRow), values, nullptr, SPI_OK_DELETE);
}

// Full recomputation of one customer from the conversations (index
// idx_vc_usage_customer_fk). Used when the customer has no row yet (then its
// conversations are the ones this statement added) and as the fallback when
// a stored row contradicts the delta.
MetricsRow recompute(PlanSet* set, Datum customer, Datum* company, bool* company_null) {
    Datum values[1] = {customer};
    run_plan(get_plan(set, kRecompute), values, nullptr, SPI_OK_SELECT);
    HeapTuple t = SPI_tuptable->vals[0];
    TupleDesc d = SPI_tuptable->tupdesc;
    MetricsRow row;
    row.conversations = int8_col(t, d, 1);
    row.sessions = int8_col(t, d, 2);
    row.views = int8_col(t, d, 3);
    row.first = opt_ts(t, d, 4);
    row.last = opt_ts(t, d, 5);
    bool isnull = false;
    Datum c = SPI_getbinval(t, d, 6, &isnull);
    *company_null = isnull;
    *company = isnull ? Datum(0) : datumCopy(c, false, 16);
    SPI_freetuptable(SPI_tuptable);
    return row;
}

// Applies one customer's delta (one row of a fold query). fold/fold_desc stay
// valid: they belong to the fold query's tuptable, which we do not free here.
void apply_customer(PlanSet* set, HeapTuple fold, TupleDesc fold_desc) {
    bool isnull = false;
    Datum customer = SPI_getbinval(fold, fold_desc, kFoldCustomer, &isnull);
    CustomerDelta delta;
    delta.conversations = int8_col(fold, fold_desc, kFoldConversations);
    delta.views = int8_col(fold, fold_desc, kFoldViews);
    delta.added_min = opt_ts(fold, fold_desc, kFoldAddedMin);
    delta.added_max = opt_ts(fold, fold_desc, kFoldAddedMax);
    delta.removed_min = opt_ts(fold, fold_desc, kFoldRemovedMin);
    delta.removed_max = opt_ts(fold, fold_desc, kFoldRemovedMax);
    bool added_sessions_null = false, removed_sessions_null = false, added_ids_null = false,
         companies_null = false;
    Datum added_sessions = SPI_getbinval(fold, fold_desc, kFoldAddedSessions, &added_sessions_null);
    Datum removed_sessions = SPI_getbinval(fold, fold_desc, kFoldRemovedSessions, &removed_sessions_null);
    Datum added_ids = SPI_getbinval(fold, fold_desc, kFoldAddedIds, &added_ids_null);
    Datum companies = SPI_getbinval(fold, fold_desc, kFoldCompanies, &companies_null);

    for (int attempt = 0;; ++attempt) {
        CHECK_FOR_INTERRUPTS();
        // 1. Lock the row.
        Datum key[1] = {customer};
        run_plan(get_plan(set, kLockRow), key, nullptr, SPI_OK_SELECT);
        if (SPI_processed == 0) {
            SPI_freetuptable(SPI_tuptable);
            // No row: the customer had no conversation that we can see.
            Datum company = 0;
            bool company_null = true;
            MetricsRow fresh = recompute(set, customer, &company, &company_null);
            if (fresh.conversations == 0) return;  // e.g. moved in and out again
            write_row(set, kInsertRow, customer, company, company_null, fresh);
            if (SPI_processed == 1) return;
            // A concurrent statement inserted the row after our snapshot and
            // has committed (ON CONFLICT waited for it): lock it and apply our
            // delta to its values.
            if (attempt >= 100)
                ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                                errmsg("crm_native: customer_metrics row keeps changing under us")));
            continue;
        }
        HeapTuple t = SPI_tuptable->vals[0];
        TupleDesc d = SPI_tuptable->tupdesc;
        MetricsRow old_row;
        old_row.conversations = int8_col(t, d, 1);
        old_row.sessions = int8_col(t, d, 2);
        old_row.views = int8_col(t, d, 3);
        old_row.first = opt_ts(t, d, 4);
        old_row.last = opt_ts(t, d, 5);
        bool company_null = false;
        Datum company = SPI_getbinval(t, d, 6, &company_null);
        if (!company_null) company = datumCopy(company, false, 16);
        SPI_freetuptable(SPI_tuptable);
        if (company_null && !companies_null) {
            // A row without a company (written by something else): take the
            // statement's, as the reference does.
            ArrayType* arr = DatumGetArrayTypeP(companies);
            Datum* elems;
            bool* elem_nulls;
            int n;
            deconstruct_array(arr, UUIDOID, 16, false, TYPALIGN_CHAR, &elems, &elem_nulls, &n);
            if (n > 0 && !elem_nulls[0]) {
                company = elems[0];
                company_null = false;
            }
        }

        // 2. Probes, after the lock.
        int64 sessions_delta = 0;
        if (!added_sessions_null || !removed_sessions_null) {
            Datum values[4] = {customer, added_sessions, removed_sessions, added_ids};
            char nulls[4] = {' ', added_sessions_null ? 'n' : ' ', removed_sessions_null ? 'n' : ' ',
                             added_ids_null ? 'n' : ' '};
            run_plan(get_plan(set, kSessionProbe), values, nulls, SPI_OK_SELECT);
            sessions_delta = int8_col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
            SPI_freetuptable(SPI_tuptable);
        }
        OptTimestamp probed_first, probed_last;
        bool probed = false;
        if (crm::core::needs_extreme_probe(old_row, delta)) {
            // The companies of the customer's conversations: the row's ($3)
            // and the statement's ($2); a customer's chats share its company.
            Datum values[3] = {customer, companies, company};
            char nulls[3] = {' ', companies_null ? 'n' : ' ', company_null ? 'n' : ' '};
            run_plan(get_plan(set, kExtremeProbe), values, nulls, SPI_OK_SELECT);
            probed_first = opt_ts(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
            probed_last = opt_ts(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
            SPI_freetuptable(SPI_tuptable);
            probed = true;
        }

        // 3. Write once.
        MetricsOutcome out = crm::core::apply_delta(old_row, delta, sessions_delta,
                                                    probed ? &probed_first : nullptr,
                                                    probed ? &probed_last : nullptr);
        switch (out.action) {
            case MetricsAction::Delete:
                delete_row(set, customer);
                return;
            case MetricsAction::Update:
                write_row(set, kUpdateRow, customer, company, company_null, out.new_row);
                return;
            case MetricsAction::Recompute: {
                // The stored row was wrong (edited by hand, or written while
                // the triggers were off): heal it from the conversations.
                Datum fresh_company = 0;
                bool fresh_company_null = true;
                MetricsRow fresh = recompute(set, customer, &fresh_company, &fresh_company_null);
                if (fresh.conversations == 0)
                    delete_row(set, customer);
                else
                    write_row(set, kUpdateRow, customer, fresh_company, fresh_company_null, fresh);
                return;
            }
        }
        return;
    }
}

TriggerData* check_trigger(FunctionCallInfo fcinfo, const char* fn, TriggerEvent event) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() must be called as a trigger", fn)));
    TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
        (td->tg_event & TRIGGER_EVENT_OPMASK) != event)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() must be an AFTER ... FOR EACH STATEMENT trigger for its own event", fn)));
    return td;
}

Datum run_fold(FunctionCallInfo fcinfo, const char* fn, TriggerEvent event, Plan fold) {
    TriggerData* td = check_trigger(fcinfo, fn, event);
    Relation rel = td->tg_relation;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    if (event == TRIGGER_EVENT_INSERT || event == TRIGGER_EVENT_UPDATE)
        register_transition_table(kNewRows, td->tg_newtable, rel);
    if (event == TRIGGER_EVENT_DELETE || event == TRIGGER_EVENT_UPDATE)
        register_transition_table(kOldRows, td->tg_oldtable, rel);
    PlanSet* set = plan_set_for(rel);
    run_plan(get_plan(set, fold), nullptr, nullptr, SPI_OK_SELECT);
    SPITupleTable* deltas = SPI_tuptable;
    uint64 customers = SPI_processed;
    for (uint64 i = 0; i < customers; ++i) {
        CHECK_FOR_INTERRUPTS();
        apply_customer(set, deltas->vals[i], deltas->tupdesc);
    }
    SPI_freetuptable(deltas);
    SPI_finish();
    return PointerGetDatum(nullptr);
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(crm_metrics_insert);
Datum crm_metrics_insert(PG_FUNCTION_ARGS) {
    return run_fold(fcinfo, "crm_native.metrics_insert", TRIGGER_EVENT_INSERT, kFoldInsert);
}

PG_FUNCTION_INFO_V1(crm_metrics_update);
Datum crm_metrics_update(PG_FUNCTION_ARGS) {
    return run_fold(fcinfo, "crm_native.metrics_update", TRIGGER_EVENT_UPDATE, kFoldUpdate);
}

PG_FUNCTION_INFO_V1(crm_metrics_delete);
Datum crm_metrics_delete(PG_FUNCTION_ARGS) {
    return run_fold(fcinfo, "crm_native.metrics_delete", TRIGGER_EVENT_DELETE, kFoldDelete);
}

// TRUNCATE leaves no conversation, so no customer keeps a metrics row.
PG_FUNCTION_INFO_V1(crm_metrics_truncate);
Datum crm_metrics_truncate(PG_FUNCTION_ARGS) {
    TriggerData* td = check_trigger(fcinfo, "crm_native.metrics_truncate", TRIGGER_EVENT_TRUNCATE);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    PlanSet* set = plan_set_for(td->tg_relation);
    run_plan(get_plan(set, kDeleteAll), nullptr, nullptr, SPI_OK_DELETE);
    SPI_finish();
    return PointerGetDatum(nullptr);
}

}  // extern "C"
