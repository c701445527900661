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

#include <cstring>

#include "core/metrics_delta.hpp"
#include "pg/customer_sync.hpp"
#include "pg/retired_plans.hpp"
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
    kFoldAddedIds,         // int8[]: ids of the A rows that carry a session
    kFoldCompanies,        // uuid[]: company_id of the statement's rows
    kFoldPureAddition,     // bool: only A (the customer gains whole conversations)
    kFoldAddedSessions,    // int8: distinct sessions in A
    kFoldCompany,          // uuid: one company of the statement's rows
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
};

enum Plan {
    kFoldInsert,
    kFoldUpdate,
    kFoldDelete,
    kExistingInsert,  // phase 2, one per fold
    kExistingUpdate,
    kExistingDelete,
    kLockOrCreate,
    kUpdateMany,
    kDeleteMany,
    kRecompute,
    kUpdateRow,
    kDeleteRow,
    kDeleteAll,
    kChatLock,    // single-chat INSERT fast path (insert_one_chat)
    kChatCreate,
    kChatUpdate,
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
    // [0]: statements of at most kBulkRows changed rows, [1]: larger ones.
    // The planner sizes the transition table when it plans, and a kept plan
    // made for a 10,000-row statement is a poor plan for a single chat (and
    // the other way round).
    SPIPlanPtr plans[2][kPlanCount];
    int size_class;  // of the statement being processed
    // Attribute numbers of the columns the single-chat fast path reads from
    // the transition tuple; chat_columns_ok when all exist with the expected
    // types (otherwise every statement takes the general path).
    AttrNumber att_id, att_customer, att_company, att_session, att_views, att_created;
    bool chat_columns_ok;
    PlanSet* next;
};

PlanSet* plan_sets = nullptr;

const char* qualified(const char* nsp, const char* rel) { return quote_qualified_identifier(nsp, rel); }

// Column lookup for the fast path: an attribute of that name, not dropped,
// of one of the types install() accepts for it (crm_native.required_column),
// else 0.
AttrNumber chat_column(TupleDesc desc, const char* name, Oid type1, Oid type2 = InvalidOid,
                       Oid type3 = InvalidOid) {
    for (int i = 0; i < desc->natts; ++i) {
        Form_pg_attribute a = TupleDescAttr(desc, i);
        if (a->attisdropped || strcmp(NameStr(a->attname), name) != 0) continue;
        Oid t = a->atttypid;
        return (t == type1 || t == type2 || t == type3) ? a->attnum : 0;
    }
    return 0;
}

// An integer column's value (int2, int4 or int8) as int64.
int64 integer_value(TupleDesc desc, AttrNumber attnum, Datum value) {
    switch (TupleDescAttr(desc, attnum - 1)->atttypid) {
        case INT2OID: return DatumGetInt16(value);
        case INT4OID: return DatumGetInt32(value);
        default: return DatumGetInt64(value);
    }
}

void find_chat_columns(PlanSet* set) {
    set->att_id = chat_column(set->desc, "id", INT8OID, INT4OID);
    set->att_customer = chat_column(set->desc, "customer_id", UUIDOID);
    set->att_company = chat_column(set->desc, "company_id", UUIDOID);
    set->att_session = chat_column(set->desc, "session_id", TEXTOID, VARCHAROID);  // binary-compatible
    set->att_views = chat_column(set->desc, "view_count", INT4OID, INT2OID, INT8OID);
    set->att_created = chat_column(set->desc, "created_at", TIMESTAMPTZOID);
    set->chat_columns_ok = set->att_id > 0 && set->att_customer > 0 && set->att_company > 0 &&
                           set->att_session > 0 && set->att_views > 0 && set->att_created > 0;
}

PlanSet* plan_set_for(Relation rel) {
    const char* nsp = get_namespace_name(RelationGetNamespace(rel));
    if (nsp == nullptr) elog(ERROR, "crm_native: schema of relation %u not found", RelationGetRelid(rel));
    PlanSet* set = plan_sets;
    for (; set != nullptr; set = set->next)
        if (set->relid == RelationGetRelid(rel)) break;
    if (set != nullptr && (strcmp(set->nspname, nsp) != 0 ||
                           strcmp(set->relname, RelationGetRelationName(rel)) != 0 ||
                           !equalTupleDescs(set->desc, RelationGetDescr(rel)))) {
        for (int c = 0; c < 2; ++c)
            for (int i = 0; i < kPlanCount; ++i) {
                crm::pg::retire_plan(set->plans[c][i]);  // an outer call may be running it
                set->plans[c][i] = nullptr;
            }
        crm::pg::retire_tuple_desc(set->desc);  // likewise its slots
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
        find_chat_columns(set);
    }
    return set;
}

// The fold: the transition table(s) grouped by customer. Each variant yields
// the same named columns (FoldColumn order after the wrapper below).
const char* kGroupInsert =
    "SELECT n.customer_id, count(*)::int8 AS dn, coalesce(sum(n.view_count), 0)::int8 AS dv,"
    " min(n.created_at) AS add_min, max(n.created_at) AS add_max,"
    " NULL::timestamptz AS rem_min, NULL::timestamptz AS rem_max,"
    " array_agg(DISTINCT n.session_id) FILTER (WHERE n.session_id IS NOT NULL) AS add_s,"
    " NULL::text[] AS rem_s,"
    " array_agg(n.id::int8) FILTER (WHERE n.session_id IS NOT NULL) AS add_ids,"
    " array_agg(DISTINCT n.company_id) AS companies, true AS pure"
    " FROM crm_metrics_new n WHERE n.customer_id IS NOT NULL GROUP BY n.customer_id";
const char* kGroupDelete =
    "SELECT o.customer_id, -count(*)::int8 AS dn, -coalesce(sum(o.view_count), 0)::int8 AS dv,"
    " NULL::timestamptz AS add_min, NULL::timestamptz AS add_max,"
    " min(o.created_at) AS rem_min, max(o.created_at) AS rem_max,"
    " NULL::text[] AS add_s,"
    " array_agg(DISTINCT o.session_id) FILTER (WHERE o.session_id IS NOT NULL) AS rem_s,"
    " NULL::int8[] AS add_ids,"
    " array_agg(DISTINCT o.company_id) AS companies, false AS pure"
    " FROM crm_metrics_old o WHERE o.customer_id IS NOT NULL GROUP BY o.customer_id";
// Old and new versions are paired by id. A conversation that stays with its
// customer contributes only the attributes that changed (so an UPDATE of
// view_count probes nothing, and one of user_message touches nothing); one
// that moves is a removal from the old customer and an addition to the new
// one. Unpaired rows (the UPDATE changed id) are plain removal/addition.
const char* kGroupUpdate =
    "WITH p AS ("
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
    " SELECT customer_id, sum(dn)::int8 AS dn, sum(dv)::int8 AS dv,"
    "  min(add_ts) AS add_min, max(add_ts) AS add_max, min(rem_ts) AS rem_min, max(rem_ts) AS rem_max,"
    "  array_agg(DISTINCT add_sess) FILTER (WHERE add_sess IS NOT NULL) AS add_s,"
    "  array_agg(DISTINCT rem_sess) FILTER (WHERE rem_sess IS NOT NULL) AS rem_s,"
    "  array_agg(add_id) FILTER (WHERE add_sess IS NOT NULL) AS add_ids,"
    "  array_agg(DISTINCT company_id) AS companies, bool_and(dn = 1) AS pure"
    " FROM ch WHERE changed GROUP BY customer_id";

// %s = one of the groups above.
const char* kFoldWrapper =
    "SELECT g.customer_id, g.dn, g.dv, g.add_min, g.add_max, g.rem_min, g.rem_max,"
    " ARRAY(SELECT unnest(g.add_s) EXCEPT SELECT unnest(g.rem_s)) AS added_only,"
    " ARRAY(SELECT unnest(g.rem_s) EXCEPT SELECT unnest(g.add_s)) AS removed_only,"
    " g.add_ids, g.companies, g.pure, coalesce(cardinality(g.add_s), 0)::int8 AS add_s_count,"
    " g.companies[1] AS company"
    " FROM (%s) g";

// Phase 2, after phase 1 has locked every existing row: the locked rows with
// their deltas and the index probes. $1 = customers inserted by phase 1 (not
// probed). Distinct sessions: a session only added is new unless a
// conversation the statement did not add carries it (idx_vc_usage_session_
// customer (session_id, customer_id); the added ids are hashed once); a
// session only removed is gone unless a conversation still carries it.
// Extremes, only when a removed created_at was the stored one: forward and
// backward probes of idx_vc_usage_company_customer (company_id, customer_id,
// created_at DESC) per company of the customer (a customer's chats share its
// company). %s = the fold; %1$s / %2$s as everywhere.
const char* kExistingTemplate =
    "WITH f AS (%s), ids AS (SELECT unnest(f.add_ids) AS id FROM f)"
    " SELECT f.customer_id, m.total_conversations, m.total_sessions, m.total_views,"
    "  m.first_interaction_at, m.last_interaction_at, coalesce(m.company_id, f.company),"
    "  f.dn, f.dv, f.add_min, f.add_max, f.rem_min, f.rem_max,"
    "  (SELECT count(*) FROM unnest(f.added_only) a(s) WHERE NOT EXISTS ("
    "     SELECT 1 FROM %1$s v WHERE v.session_id = a.s AND v.customer_id = f.customer_id"
    "        AND v.id NOT IN (SELECT ids.id FROM ids)))"
    "  - (SELECT count(*) FROM unnest(f.removed_only) r(s) WHERE NOT EXISTS ("
    "     SELECT 1 FROM %1$s v WHERE v.session_id = r.s AND v.customer_id = f.customer_id)),"
    "  nd.probe, pr.lo, pr.hi"
    " FROM f JOIN %2$s m ON m.customer_id = f.customer_id"
    " CROSS JOIN LATERAL (SELECT (f.rem_min IS NOT NULL AND (m.first_interaction_at IS NULL"
    "                                 OR f.rem_min <= m.first_interaction_at))"
    "                         OR (f.rem_max IS NOT NULL AND (m.last_interaction_at IS NULL"
    "                                 OR f.rem_max >= m.last_interaction_at)) AS probe) nd"
    " LEFT JOIN LATERAL (SELECT min(x.lo) AS lo, max(x.hi) AS hi"
    "    FROM (SELECT DISTINCT c FROM unnest(array_append(f.companies, m.company_id)) c"
    "          WHERE c IS NOT NULL) k,"
    "    LATERAL (SELECT min(v.created_at) AS lo, max(v.created_at) AS hi FROM %1$s v"
    "             WHERE v.company_id = k.c AND v.customer_id = f.customer_id) x"
    "    WHERE nd.probe) pr ON true"
    " WHERE f.customer_id NOT IN (SELECT unnest($1::uuid[]))";

// Returns the SQL of a plan, with %s expanded (fold into wrapper/template);
// %1$s / %2$s are expanded later by get_plan.
char* plan_sql(Plan plan) {
    const char* group = nullptr;
    switch (plan) {
        case kFoldInsert:
        case kExistingInsert:
            group = kGroupInsert;
            break;
        case kFoldUpdate:
        case kExistingUpdate:
            group = kGroupUpdate;
            break;
        case kFoldDelete:
        case kExistingDelete:
            group = kGroupDelete;
            break;
        default:
            break;
    }
    switch (plan) {
        case kFoldInsert:
        case kFoldUpdate:
        case kFoldDelete:
            return psprintf("%s ORDER BY 1", psprintf(kFoldWrapper, group));
        case kExistingInsert:
        case kExistingUpdate:
        case kExistingDelete: {
            // kExistingTemplate has positional %1$s/%2$s for get_plan: splice
            // the fold in by hand at its single plain %s.
            const char* at = strstr(kExistingTemplate, "(%s)");
            return psprintf("%.*s(%s)%s", static_cast<int>(at - kExistingTemplate), kExistingTemplate,
                            psprintf(kFoldWrapper, group), at + 4);
        }
        case kLockOrCreate:
            // Phase 1: in customer_id order, insert the row of a customer that
            // has none (its conversations are the ones this statement added:
            // $3..$7 are their aggregate) or lock the existing row without
            // writing it (DO UPDATE ... WHERE false locks and skips). A
            // customer that only lost or changed conversations ($8 false) is
            // skipped when it has no row (e.g. its row went with the customer
            // in the ON DELETE CASCADE that is nulling these chats).
            return pstrdup(
                "INSERT INTO %2$s AS m (customer_id, company_id, total_conversations, total_sessions,"
                " total_views, first_interaction_at, last_interaction_at, refreshed_at)"
                " SELECT u.c, u.co, u.n, u.s, u.v, u.f, u.l, now()"
                " FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::int8[], $5::int8[],"
                "             $6::timestamptz[], $7::timestamptz[], $8::bool[])"
                "      WITH ORDINALITY AS u(c, co, n, s, v, f, l, pure, ord)"
                " WHERE u.pure OR EXISTS (SELECT 1 FROM %2$s x WHERE x.customer_id = u.c)"
                " ORDER BY u.ord"
                " ON CONFLICT (customer_id) DO UPDATE SET refreshed_at = m.refreshed_at WHERE false"
                " RETURNING m.customer_id");
        case kUpdateMany:
            return pstrdup(
                "UPDATE %2$s m SET company_id = u.co, total_conversations = u.n, total_sessions = u.s,"
                " total_views = u.v, first_interaction_at = u.f, last_interaction_at = u.l,"
                " refreshed_at = now()"
                " FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::int8[], $5::int8[],"
                "             $6::timestamptz[], $7::timestamptz[]) AS u(c, co, n, s, v, f, l)"
                " WHERE m.customer_id = u.c");
        case kDeleteMany:
            return pstrdup("DELETE FROM %2$s WHERE customer_id = ANY ($1::uuid[])");
        case kRecompute:
            // Same definition as the reference refresh_customer_metrics().
            return pstrdup(
                "SELECT count(*)::int8, count(DISTINCT v.session_id)::int8,"
                " coalesce(sum(v.view_count), 0)::int8, min(v.created_at), max(v.created_at),"
                " (array_agg(v.company_id))[1]"
                " FROM %1$s v WHERE v.customer_id = $1");
        case kUpdateRow:
            return pstrdup(
                "UPDATE %2$s SET company_id = $2, total_conversations = $3, total_sessions = $4,"
                " total_views = $5, first_interaction_at = $6, last_interaction_at = $7,"
                " refreshed_at = now() WHERE customer_id = $1");
        case kDeleteRow:
            return pstrdup("DELETE FROM %2$s WHERE customer_id = $1");
        case kDeleteAll:
            return pstrdup("DELETE FROM %2$s");
        // Single-chat INSERT: lock the customer's row (its values as they are
        // once we hold the lock), then write it in ONE statement that probes
        // the session. Under READ COMMITTED that statement takes its snapshot
        // after the lock, so it sees every chat committed by a transaction
        // that wrote this row before us. $9/$10 = the chat's session and id
        // (the chat itself is excluded); $4/$5 = sessions if the session is
        // new / already counted.
        case kChatLock:
            return pstrdup(
                "SELECT total_conversations, total_sessions, total_views, first_interaction_at,"
                " last_interaction_at, company_id FROM %2$s WHERE customer_id = $1 FOR NO KEY UPDATE");
        case kChatCreate:
            return pstrdup(
                "INSERT INTO %2$s AS m (customer_id, company_id, total_conversations, total_sessions,"
                " total_views, first_interaction_at, last_interaction_at, refreshed_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
                " ON CONFLICT (customer_id) DO NOTHING RETURNING m.customer_id");
        case kChatUpdate:
            return pstrdup(
                "UPDATE %2$s SET company_id = $2, total_conversations = $3,"
                " total_sessions = CASE WHEN $9::text IS NOT NULL AND NOT EXISTS ("
                "   SELECT 1 FROM %1$s v WHERE v.session_id = $9::text AND v.customer_id = $1"
                "      AND v.id <> $10) THEN $4 ELSE $5 END,"
                " total_views = $6, first_interaction_at = $7, last_interaction_at = $8,"
                " refreshed_at = now() WHERE customer_id = $1");
        case kPlanCount:
            break;
    }
    elog(ERROR, "crm_native: unknown metrics plan %d", static_cast<int>(plan));
    return nullptr;
}

// The parameters of a whole metrics row (customer_id, company_id,
// total_conversations, total_sessions, total_views, first/last interaction),
// one value each or one array each.
void metrics_row_types(Oid* types, bool arrays) {
    static const Oid kScalar[7] = {UUIDOID, UUIDOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
    static const Oid kArray[7] = {UUIDARRAYOID,      UUIDARRAYOID,       INT8ARRAYOID,       INT8ARRAYOID,
                                  INT8ARRAYOID,      TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
    memcpy(types, arrays ? kArray : kScalar, sizeof kScalar);
}

int plan_nargs(Plan plan, Oid* types) {
    switch (plan) {
        case kExistingInsert:
        case kExistingUpdate:
        case kExistingDelete:
        case kDeleteMany:
            types[0] = UUIDARRAYOID;
            return 1;
        case kRecompute:
        case kDeleteRow:
        case kChatLock:
            types[0] = UUIDOID;
            return 1;
        case kChatUpdate:
            types[0] = UUIDOID;
            types[1] = UUIDOID;
            types[2] = INT8OID;
            types[3] = INT8OID;
            types[4] = INT8OID;
            types[5] = INT8OID;
            types[6] = TIMESTAMPTZOID;
            types[7] = TIMESTAMPTZOID;
            types[8] = TEXTOID;
            types[9] = INT8OID;
            return 10;
        case kLockOrCreate:
            metrics_row_types(types, true);
            types[7] = BOOLARRAYOID;
            return 8;
        case kUpdateMany:
            metrics_row_types(types, true);
            return 7;
        case kChatCreate:
        case kUpdateRow:
            metrics_row_types(types, false);
            return 7;
        default:
            return 0;
    }
}

SPIPlanPtr get_plan(PlanSet* set, Plan plan) {
    if (set->plans[set->size_class][plan] != nullptr) return set->plans[set->size_class][plan];
    StringInfoData sql;
    initStringInfo(&sql);
    // plan_sql is a fixed template of ours; the two names are quoted.
    const char* conversations = qualified(set->nspname, set->relname);
    const char* metrics = qualified(set->nspname, "customer_metrics");
    const char* customers = qualified(set->nspname, "customers");
    char* tmpl = plan_sql(plan);
    for (const char* p = tmpl; *p != '\0'; ++p) {
        if (p[0] == '%' && (p[1] == '1' || p[1] == '2' || p[1] == '3') && p[2] == '$' && p[3] == 's') {
            appendStringInfoString(&sql, p[1] == '1' ? conversations : p[1] == '2' ? metrics : customers);
            p += 3;
        } else {
            appendStringInfoChar(&sql, *p);
        }
    }
    Oid types[10];
    int nargs = plan_nargs(plan, types);
    // Generic plans: the parameters are arrays whose values never change the
    // best plan, and replanning these queries per statement costs more than
    // running them.
    SPIPlanPtr prepared = SPI_prepare_cursor(sql.data, nargs, types, CURSOR_OPT_GENERIC_PLAN);
    if (prepared == nullptr)
        elog(ERROR, "crm_native: could not prepare metrics query: %s", SPI_result_code_string(SPI_result));
    if (SPI_keepplan(prepared) != 0) elog(ERROR, "crm_native: SPI_keepplan failed");
    set->plans[set->size_class][plan] = prepared;
    pfree(sql.data);
    pfree(tmpl);
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

// The parameters $1-$7 of the one-row metrics writes (kUpdateRow,
// kChatCreate): customer, company, then the row's five columns.
void metrics_row_values(Datum customer, Datum company, bool company_null, const MetricsRow& row, Datum* values,
                        char* nulls) {
    values[0] = customer;
    values[1] = company;
    values[2] = Int64GetDatum(row.conversations);
    values[3] = Int64GetDatum(row.sessions);
    values[4] = Int64GetDatum(row.views);
    values[5] = TimestampTzGetDatum(row.first.value);
    values[6] = TimestampTzGetDatum(row.last.value);
    const char given[7] = {' ', company_null ? 'n' : ' ', ' ', ' ', ' ', row.first.present ? ' ' : 'n',
                           row.last.present ? ' ' : 'n'};
    std::memcpy(nulls, given, sizeof given);
}

bool bool_col(HeapTuple tuple, TupleDesc desc, int col) {
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, col, &isnull);
    return !isnull && DatumGetBool(d);
}

// Column buffers for the unnest()-based statements: customers, companies,
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

// Runs kLockOrCreate (with pure: one flag per customer) or kUpdateMany
// (pure = nullptr) over the batch.
void run_batch(PlanSet* set, Plan plan, const RowBatch* b, bool* pure) {
    Datum values[8];
    values[0] = make_array(b->customer, nullptr, b->count, UUIDOID);
    values[1] = make_array(b->company, b->company_null, b->count, UUIDOID);
    values[2] = make_array(b->conversations, nullptr, b->count, INT8OID);
    values[3] = make_array(b->sessions, nullptr, b->count, INT8OID);
    values[4] = make_array(b->views, nullptr, b->count, INT8OID);
    values[5] = make_array(b->first, b->first_null, b->count, TIMESTAMPTZOID);
    values[6] = make_array(b->last, b->last_null, b->count, TIMESTAMPTZOID);
    if (pure != nullptr) {
        Datum* flags = static_cast<Datum*>(palloc(sizeof(Datum) * (b->count > 0 ? b->count : 1)));
        for (int i = 0; i < b->count; ++i) flags[i] = BoolGetDatum(pure[i]);
        values[7] = make_array(flags, nullptr, b->count, BOOLOID);
    }
    run_plan(get_plan(set, plan), values, nullptr,
             plan == kLockOrCreate ? SPI_OK_INSERT_RETURNING : SPI_OK_UPDATE);
}

// Full recomputation of one customer from the conversations (index
// idx_vc_usage_customer_fk), written over its (locked or just inserted) row.
// The fallback when a stored row contradicts the delta, or when a customer
// without a row lost conversations in this statement.
void recompute_customer(PlanSet* set, Datum customer) {
    Datum key[1] = {customer};
    run_plan(get_plan(set, kRecompute), key, nullptr, SPI_OK_SELECT);
    HeapTuple t = SPI_tuptable->vals[0];
    TupleDesc d = SPI_tuptable->tupdesc;
    MetricsRow row = metrics_columns(t, d);
    bool company_null = false;
    Datum company = SPI_getbinval(t, d, 6, &company_null);
    if (!company_null) company = datumCopy(company, false, 16);
    SPI_freetuptable(SPI_tuptable);
    if (row.conversations == 0) {
        run_plan(get_plan(set, kDeleteRow), key, nullptr, SPI_OK_DELETE);
        return;
    }
    Datum values[7];
    char nulls[7];
    metrics_row_values(customer, company, company_null, row, values, nulls);
    run_plan(get_plan(set, kUpdateRow), values, nulls, SPI_OK_UPDATE);
}

bool same_uuid(Datum a, Datum b) { return memcmp(DatumGetPointer(a), DatumGetPointer(b), 16) == 0; }

// One statement: fold, lock-or-create (phase 1), probe (phase 2), write
// (phase 3). The fold's tuptable stays alive until the end: the customer
// Datums point into it.
void maintain(PlanSet* set, Plan fold_plan, Plan existing_plan) {
    run_plan(get_plan(set, fold_plan), nullptr, nullptr, SPI_OK_SELECT);
    SPITupleTable* fold = SPI_tuptable;
    int customers = static_cast<int>(SPI_processed);
    if (customers == 0) {
        SPI_freetuptable(fold);
        return;
    }
    if (static_cast<uint64>(customers) != SPI_processed)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("crm_native: too many customers in one statement")));

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
    run_batch(set, kLockOrCreate, &candidates, pure);
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
    run_plan(get_plan(set, existing_plan), skip, nullptr, SPI_OK_SELECT);
    SPITupleTable* existing = SPI_tuptable;
    int rows = static_cast<int>(SPI_processed);

    RowBatch updates;
    batch_init(&updates, rows);
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
        switch (out.action) {
            case MetricsAction::Update:
                batch_add(&updates, customer, company, company_null, out.new_row);
                break;
            case MetricsAction::Delete:
                deletes[delete_count++] = customer;
                break;
            case MetricsAction::Recompute:
                recomputes[recompute_count++] = customer;
                break;
        }
    }

    // Phase 3: write each row once.
    if (updates.count > 0) run_batch(set, kUpdateMany, &updates, nullptr);
    if (delete_count > 0) {
        Datum values[1] = {make_array(deletes, nullptr, delete_count, UUIDOID)};
        run_plan(get_plan(set, kDeleteMany), values, nullptr, SPI_OK_DELETE);
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
//   - the customer has a row: lock it (kChatLock), then write it with the
//     session probe inside the same statement (kChatUpdate);
//   - it has none: kChatLock finds nothing, kChatCreate inserts the chat's
//     aggregate (with no row, the customer had no conversation). If a
//     concurrent transaction created the row first (ON CONFLICT DO NOTHING
//     waited for it), lock that row and update it instead.
// The metrics row of a customer's first chat; false when it exists already
// (ON CONFLICT DO NOTHING).
bool create_chat_row(PlanSet* set, Datum customer, Datum company, bool company_null, bool has_session,
                     const CustomerDelta& delta) {
    MetricsRow first_chat;
    first_chat.conversations = 1;
    first_chat.sessions = has_session ? 1 : 0;
    first_chat.views = delta.views;
    first_chat.first = delta.added_min;
    first_chat.last = delta.added_max;
    Datum values[7];
    char nulls[7];
    metrics_row_values(customer, company, company_null, first_chat, values, nulls);
    run_plan(get_plan(set, kChatCreate), values, nulls, SPI_OK_INSERT_RETURNING);
    uint64 created = SPI_processed;
    SPI_freetuptable(SPI_tuptable);
    return created == 1;
}

// Returns false when the general path must handle the statement.
bool insert_one_chat(PlanSet* set, Tuplestorestate* rows) {
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
    int c = set->att_customer - 1;
    if (n[c]) {  // an unlinked chat has no metrics
        ExecDropSingleTupleTableSlot(slot);
        return true;
    }
    Datum customer = v[c];
    Datum company = v[set->att_company - 1];
    bool company_null = n[set->att_company - 1];
    bool has_session = !n[set->att_session - 1];
    CustomerDelta delta;
    delta.conversations = 1;
    delta.views = n[set->att_views - 1] ? 0 : integer_value(set->desc, set->att_views, v[set->att_views - 1]);
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
        run_plan(get_plan(set, kChatLock), key, nullptr, SPI_OK_SELECT);
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
        bool stored_company_null = false;
        Datum stored_company = SPI_getbinval(t, d, 6, &stored_company_null);
        if (!stored_company_null) {
            company = datumCopy(stored_company, false, 16);
            company_null = false;
        }
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
                                v[set->att_session - 1],
                                Int64GetDatum(integer_value(set->desc, set->att_id, v[set->att_id - 1]))};
            char nulls[10] = {' ', company_null ? 'n' : ' ', ' ', ' ', ' ', ' ',
                              r.first.present ? ' ' : 'n', r.last.present ? ' ' : 'n',
                              has_session ? ' ' : 'n', ' '};
            run_plan(get_plan(set, kChatUpdate), values, nulls, SPI_OK_UPDATE);
        }
        ExecDropSingleTupleTableSlot(slot);
        return true;
    }
    ExecDropSingleTupleTableSlot(slot);
    return false;  // the row keeps appearing and vanishing: general path
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

Datum run_fold(FunctionCallInfo fcinfo, const char* fn, TriggerEvent event, Plan fold, Plan existing) {
    TriggerData* td = check_trigger(fcinfo, fn, event);
    Relation rel = td->tg_relation;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    if (event == TRIGGER_EVENT_INSERT && td->tg_newtable != nullptr &&
        tuplestore_tuple_count(td->tg_newtable) == 1) {
        PlanSet* set = plan_set_for(rel);
        set->size_class = 0;
        if (insert_one_chat(set, td->tg_newtable)) {
            SPI_finish();
            return PointerGetDatum(nullptr);
        }
    }
    if (event == TRIGGER_EVENT_INSERT || event == TRIGGER_EVENT_UPDATE)
        register_transition_table(kNewRows, td->tg_newtable, rel);
    if (event == TRIGGER_EVENT_DELETE || event == TRIGGER_EVENT_UPDATE)
        register_transition_table(kOldRows, td->tg_oldtable, rel);
    PlanSet* set = plan_set_for(rel);
    int64 changed = 0;
    if (td->tg_newtable != nullptr) changed = tuplestore_tuple_count(td->tg_newtable);
    if (td->tg_oldtable != nullptr) changed = Max(changed, tuplestore_tuple_count(td->tg_oldtable));
    set->size_class = changed > kBulkRows ? 1 : 0;
    maintain(set, fold, existing);
    SPI_finish();
    return PointerGetDatum(nullptr);
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(crm_metrics_insert);
Datum crm_metrics_insert(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return run_fold(fcinfo, "crm_native.metrics_insert", TRIGGER_EVENT_INSERT, kFoldInsert, kExistingInsert); });  // trigger_stats
}

PG_FUNCTION_INFO_V1(crm_metrics_update);
Datum crm_metrics_update(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return run_fold(fcinfo, "crm_native.metrics_update", TRIGGER_EVENT_UPDATE, kFoldUpdate, kExistingUpdate); });  // trigger_stats
}

PG_FUNCTION_INFO_V1(crm_metrics_delete);
Datum crm_metrics_delete(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return run_fold(fcinfo, "crm_native.metrics_delete", TRIGGER_EVENT_DELETE, kFoldDelete, kExistingDelete); });  // trigger_stats
}

// TRUNCATE leaves no conversation, so no customer keeps a metrics row.
PG_FUNCTION_INFO_V1(crm_metrics_truncate);
static Datum metrics_truncate(PG_FUNCTION_ARGS);  // trigger_stats
Datum crm_metrics_truncate(PG_FUNCTION_ARGS) { return crm::pg::trigger_stats::measured(fcinfo, metrics_truncate); }  // trigger_stats
static Datum metrics_truncate(PG_FUNCTION_ARGS) {  // trigger_stats: the body of crm_metrics_truncate
    TriggerData* td = check_trigger(fcinfo, "crm_native.metrics_truncate", TRIGGER_EVENT_TRUNCATE);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    PlanSet* set = plan_set_for(td->tg_relation);
    set->size_class = 0;
    run_plan(get_plan(set, kDeleteAll), nullptr, nullptr, SPI_OK_DELETE);
    SPI_finish();
    return PointerGetDatum(nullptr);
}

}  // extern "C"
