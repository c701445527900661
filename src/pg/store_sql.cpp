// Every SQL statement the native triggers run, in one catalogue (store.hpp).
//
// Placeholders {self}, {customers}, ... become quoted, schema-qualified table
// names (store.cpp; on a Citus shard, the co-located shards); functions and
// operators are named with pg_catalog where a search_path could otherwise
// redirect them. Every INSERT carries {default_columns:T} and
// {default_values:T} (the distributed table's defaults a Citus shard lacks;
// empty elsewhere), every ON CONFLICT {conflict_key:T} (the table's actual
// key: (customer_id), or (customer_id, company_id) on Citus).
//
// Plan shape: plans are kept for the backend's life and often made while the
// tables are small or empty, so each statement is written to leave the
// planner one sane choice whatever the statistics: a customer is always
// fetched by primary key (the tenant and liveness checks are written
// "... IS TRUE": a filter, never an index condition or a partial-index
// predicate match), keys by every column of the matching-key index, metrics
// rows by customer_id (test/run.d/sync_plan_shape.sh, import_cost.sh). The
// conditions PostgreSQL adds itself (row-level security's policies) cannot
// be fenced that way, so each statement also starts with PINS(...): the
// index each of its scans was written for, by alias, and the planner is
// offered no other (index_pins.hpp).
#include "pg/store_sql.hpp"

#include <cstring>

namespace crm::pg::store {

namespace {

#define EQ " OPERATOR(pg_catalog.=) "
// The indexes a statement's scans were written for, by alias (index_pins.hpp):
// the planner considers no other index for them, and no sequential scan
// (a custom plan for a key many customers share chose one over the whole
// keys table, every tenant's; found by an independent tester).
#define PINS(pins) "/* crm_native pins: no_seqscan " pins " */ "
#define KEY_INDEX "company_id,key_type,normalized_value"
// "Missing" contact info: NULL or blank (only whitespace; \x0B is the
// vertical tab: in a SQL escape string "\v" is the letter v). Compared
// under "C": a nondeterministic collation on the column (one that ignores
// punctuation, say) must not call "-" blank.
#define MISSING(col) \
    "(" col " IS NULL OR pg_catalog.btrim(" col ", E' \\t\\r\\n\\f\\x0B') COLLATE pg_catalog.\"C\"" EQ "'')"
#define CUSTOMER_IN_COMPANY(param) "(c.company_id" EQ param ") IS TRUE"
#define CUSTOMER_LIVE "(c.deleted_at IS NULL) IS TRUE"
// Plans are kept for the backend's life and often made on empty tables, where
// every index looks as cheap as the intended one. So a condition that must
// not become an index condition is written as "(...) IS TRUE", which no index
// matches: the planner's one choice is then the intended index (the primary
// key, the keys index), never e.g. the index on merged_into_customer_id for
// "IS NULL" (all unmerged customers). The pins (PINS above) do the same for
// the conditions row-level security adds. Checked without a clock by
// test/run.d/import_cost.sh (returning chats).
// A chat v of customer `param` in the session probes: an index condition
// beside session_id. Their pins (v=session_id,customer_id) offer only an
// index that leads with session_id and holds customer_id (verify_schema's
// required index 6): the customer's own index (its whole history) and an
// application's index on session_id alone (every chat of the session:
// chosen by a plan made on the empty table, 40,000 entries read per chat
// in a 20,000-chat session; found by an independent tester) stay out, so
// the probe reads only this customer's chats of the session.
#define SAME_CUSTOMER(param) "v.customer_id" EQ param
// The live customer of a matching-key row k, read by primary key in a
// LATERAL subquery fenced by OFFSET 0 (never a scan of the company).
#define CUSTOMER_BY_KEY(company)                                                                          \
    ", LATERAL (SELECT c.id, c.merged_into_customer_id, c.created_at, c.deleted_at,"                      \
    " " MISSING("c.customer_email") " AS email_missing, " MISSING("c.customer_phone") " AS phone_missing" \
    " FROM {customers} c WHERE c.id" EQ "k.customer_id AND " CUSTOMER_IN_COMPANY(company) " OFFSET 0) c"  \
    " WHERE c.deleted_at IS NULL"
// Live holders of one key type in the company, oldest first ($3: how many;
// NULL for all).
#define LOOKUP_KEY(key_type)                                                                         \
    PINS("k=" KEY_INDEX " c=id")                                                                     \
    "SELECT c.id, c.merged_into_customer_id, c.email_missing, c.phone_missing"                       \
    " FROM (SELECT k.customer_id FROM {customer_matching_keys} k"                                    \
    "        WHERE k.company_id" EQ "$1 AND k.key_type" EQ "'" key_type "' AND k.normalized_value" EQ \
    "$2) k" CUSTOMER_BY_KEY("$1") " ORDER BY c.created_at, c.id LIMIT $3"

// The conditions under which a match may be linked (SyncFillContact,
// SyncLockMatch): live, unmerged when $8, and still missing exactly what the
// lookup saw missing ($5, $6).
// Each condition besides the primary key is its own IS TRUE filter: in a
// custom plan the parameters are folded, and "(NOT true OR x IS NULL)" or
// "MISSING(..) = false" would become plain, indexable conditions.
#define MATCH_UNCHANGED                                                                              \
    " WHERE c.id" EQ "$1 AND " CUSTOMER_IN_COMPANY("$2") " AND " CUSTOMER_LIVE " AND (" MISSING(    \
        "c.customer_email") EQ "$5) IS TRUE AND (" MISSING("c.customer_phone") EQ                    \
        "$6) IS TRUE AND (NOT $8 OR c.merged_into_customer_id IS NULL) IS TRUE"

// --- metrics (docs/metrics.md) ---------------------------------------------
//
// The metrics triggers run with the caller's search_path, like the others
// (an application's trigger on customer_metrics, or a row-level security
// policy, sees the search_path it always saw), so every function, operator
// and type below is named with pg_catalog. M_PINS adds no_seqscan: planned
// with enable_seqscan and enable_bitmapscan off (index_pins.hpp), so that a
// plan made while "VC Usage" or customer_metrics was empty keeps probing the
// indexes once they are large.
#define M_PINS(pins) "/* crm_native pins: no_seqscan " pins " */ "
#define NE " OPERATOR(pg_catalog.<>) "
#define LE " OPERATOR(pg_catalog.<=) "
#define GE " OPERATOR(pg_catalog.>=) "
#define MINUS " OPERATOR(pg_catalog.-) "
#define INT8 "pg_catalog.int8"
#define NUM "pg_catalog.numeric"
#define TSTZ "pg_catalog.timestamptz"
#define COUNT_ALL "pg_catalog.count(*)"

// The fold: the transition table(s) grouped by customer. Each variant yields
// the same named columns (metrics.cpp FoldColumn order after the wrapper).
#define GROUP_INSERT                                                                                      \
    "SELECT n.customer_id, " COUNT_ALL "::" INT8 " AS dn,"                                               \
    " coalesce(pg_catalog.sum(n.view_count), 0)::" INT8 " AS dv,"                                         \
    " pg_catalog.min(n.created_at) AS add_min, pg_catalog.max(n.created_at) AS add_max,"                  \
    " NULL::" TSTZ " AS rem_min, NULL::" TSTZ " AS rem_max,"                                              \
    " pg_catalog.array_agg(DISTINCT n.session_id) FILTER (WHERE n.session_id IS NOT NULL) AS add_s,"      \
    " NULL::pg_catalog.text[] AS rem_s,"                                                                  \
    " pg_catalog.array_agg(n.id) FILTER (WHERE n.session_id IS NOT NULL) AS add_ids,"                     \
    " pg_catalog.array_agg(DISTINCT n.company_id) AS companies,"                                          \
    " (pg_catalog.array_agg(DISTINCT n.company_id))[1] AS new_company, true AS pure"                      \
    " FROM crm_metrics_new n WHERE n.customer_id IS NOT NULL GROUP BY n.customer_id"
#define GROUP_DELETE                                                                                      \
    "SELECT o.customer_id, (" MINUS COUNT_ALL ")::" INT8 " AS dn,"                                       \
    " " MINUS "(coalesce(pg_catalog.sum(o.view_count), 0)::" INT8 ") AS dv,"                              \
    " NULL::" TSTZ " AS add_min, NULL::" TSTZ " AS add_max,"                                              \
    " pg_catalog.min(o.created_at) AS rem_min, pg_catalog.max(o.created_at) AS rem_max,"                  \
    " NULL::pg_catalog.text[] AS add_s,"                                                                  \
    " pg_catalog.array_agg(DISTINCT o.session_id) FILTER (WHERE o.session_id IS NOT NULL) AS rem_s,"      \
    " (pg_catalog.array_agg(o.id) FILTER (WHERE false)) AS add_ids," /* NULL, of the id's type */         \
    " pg_catalog.array_agg(DISTINCT o.company_id) AS companies, NULL::pg_catalog.uuid AS new_company,"   \
    " false AS pure"                                                                                      \
    " FROM crm_metrics_old o WHERE o.customer_id IS NOT NULL GROUP BY o.customer_id"
// Old and new versions are paired by id and company_id: the chat key may
// be (id, company_id), and companies may then repeat ids (paired by id
// alone, such a chat was counted once per company with its id; found by an
// independent tester). A conversation that stays with its customer
// contributes only the attributes that changed (so an UPDATE of view_count
// probes nothing, and one of user_message touches nothing); one that moves
// is a removal from the old customer and an addition to the new one.
// Unpaired rows (the UPDATE changed id or company) are plain
// removal/addition.
// "Changed" (DIFFERS) is IS DISTINCT FROM spelled with the pg_catalog
// operators: IS DISTINCT FROM would look "=" up in the search_path.
#define DIFFERS(a, b) "((((" a ") IS NULL)" NE "((" b ") IS NULL)) OR ((" a ")" EQ "(" b ")) IS FALSE)"
#define GROUP_UPDATE                                                                                      \
    "WITH p AS ("                                                                                         \
    "  SELECT o.customer_id AS oc, o.company_id AS oco, o.session_id AS os,"                              \
    "         o.view_count AS ov, o.created_at AS ot,"                                                    \
    "         n.customer_id AS nc, n.company_id AS nco, n.session_id AS ns,"                              \
    "         n.view_count AS nv, n.created_at AS nt, n.id AS nid"                                        \
    "    FROM crm_metrics_old o FULL JOIN crm_metrics_new n"                                              \
    "      ON n.id" EQ "o.id AND n.company_id" EQ "o.company_id),"                                         \
    " ch AS ("                                                                                            \
    "  SELECT nc AS customer_id, nco AS company_id, 0::" INT8 " AS dn,"                                   \
    "         coalesce(nv, 0)::" NUM MINUS "coalesce(ov, 0)::" NUM " AS dv,"                              \
    "         CASE WHEN " DIFFERS("nt", "ot") " THEN nt END AS add_ts,"                                   \
    "         CASE WHEN " DIFFERS("nt", "ot") " THEN ot END AS rem_ts,"                                   \
    "         CASE WHEN " DIFFERS("ns", "os") " THEN ns END AS add_sess,"                                 \
    "         CASE WHEN " DIFFERS("ns", "os") " THEN os END AS rem_sess,"                                 \
    "         CASE WHEN " DIFFERS("ns", "os") " THEN nid END AS add_id,"                                  \
    "         (" DIFFERS("nv", "ov") " OR " DIFFERS("nt", "ot") " OR " DIFFERS("ns", "os")              \
    "          OR " DIFFERS("nco", "oco") ") AS changed"                                                     \
    "    FROM p WHERE oc" EQ "nc"                                                                         \
    "  UNION ALL"                                                                                         \
    "  SELECT oc, oco, -1, " MINUS "(coalesce(ov, 0)::" NUM "), NULL, ot, NULL, os, NULL, true"           \
    "    FROM p WHERE oc IS NOT NULL AND " DIFFERS("oc", "nc")                                            \
    "  UNION ALL"                                                                                         \
    "  SELECT nc, nco, 1, coalesce(nv, 0)::" NUM ", nt, NULL, ns, NULL, nid, true"                        \
    "    FROM p WHERE nc IS NOT NULL AND " DIFFERS("nc", "oc") ")"                                        \
    " SELECT customer_id, pg_catalog.sum(dn)::" INT8 " AS dn, pg_catalog.sum(dv)::" INT8 " AS dv,"        \
    "  pg_catalog.min(add_ts) AS add_min, pg_catalog.max(add_ts) AS add_max,"                             \
    "  pg_catalog.min(rem_ts) AS rem_min, pg_catalog.max(rem_ts) AS rem_max,"                             \
    "  pg_catalog.array_agg(DISTINCT add_sess) FILTER (WHERE add_sess IS NOT NULL) AS add_s,"             \
    "  pg_catalog.array_agg(DISTINCT rem_sess) FILTER (WHERE rem_sess IS NOT NULL) AS rem_s,"             \
    "  pg_catalog.array_agg(add_id) FILTER (WHERE add_sess IS NOT NULL) AS add_ids,"                      \
    "  pg_catalog.array_agg(DISTINCT company_id) AS companies,"                                           \
    "  (pg_catalog.array_agg(DISTINCT company_id) FILTER (WHERE dn" GE "0))[1] AS new_company,"          \
    "  pg_catalog.bool_and(dn" EQ "1) AS pure"                                                            \
    " FROM ch WHERE changed GROUP BY customer_id"

#define FOLD(group)                                                                                       \
    "SELECT g.customer_id, g.dn, g.dv, g.add_min, g.add_max, g.rem_min, g.rem_max,"                       \
    " ARRAY(SELECT pg_catalog.unnest(g.add_s) EXCEPT SELECT pg_catalog.unnest(g.rem_s)) AS added_only,"   \
    " ARRAY(SELECT pg_catalog.unnest(g.rem_s) EXCEPT SELECT pg_catalog.unnest(g.add_s)) AS removed_only," \
    " g.add_ids, g.companies, g.pure, coalesce(pg_catalog.cardinality(g.add_s), 0)::" INT8 " AS add_s_count," \
    " coalesce(g.new_company, g.companies[1]) AS company, g.new_company"                                   \
    " FROM (" group ") g"

// Phase 2, after phase 1 has locked every existing row: the locked rows with
// their deltas and the index probes. Each customer's metrics row is read by
// a LATERAL primary-key probe, never by a hash join over the whole table (or
// over the tenant's rows, which row-level security would offer as an index
// path). $1 = customers inserted by phase 1 (not
// probed). Distinct sessions: a session only added is new unless a
// conversation the statement did not add carries it (idx_vc_usage_session_
// customer (session_id, customer_id); the added ids are hashed once); a
// session only removed is gone unless a conversation still carries it. Each
// probe is a scalar subquery with LIMIT 1, which the planner runs per session
// as an index probe and never turns into a merge or hash anti-join over the
// whole chat table. ("NOT (x = ANY (...))" rather than NOT IN, which would
// look "=" up in the search_path.)
// Extremes, only when a removed created_at was the stored one: forward and
// backward probes of idx_vc_usage_company_customer (company_id, customer_id,
// created_at DESC) per company of the customer (a customer's chats share its
// company), written as ORDER BY ... LIMIT 1 (min()/max() would leave the
// planner free to aggregate the customer's whole history instead). The pin
// names created_at too: an application's index on (company_id, customer_id)
// alone cannot give the order, and a plan that chose it sorted the whole
// history for each probe (found by an independent tester).
#define EXISTING(group)                                                                                   \
    M_PINS("m=customer_id v=session_id,customer_id t=company_id,customer_id,created_at")                                         \
    "WITH f AS (" FOLD(group) "),"                                                                        \
    " ids AS (SELECT a.id FROM f, pg_catalog.unnest(f.add_ids) a(id) WHERE a.id IS NOT NULL)"             \
    " SELECT f.customer_id, m.total_conversations, m.total_sessions, m.total_views,"                      \
    "  m.first_interaction_at, m.last_interaction_at, coalesce(f.new_company, m.company_id),"                 \
    "  f.dn, f.dv, f.add_min, f.add_max, f.rem_min, f.rem_max,"                                           \
    "  (SELECT " COUNT_ALL " FROM pg_catalog.unnest(f.added_only) a(s) WHERE (SELECT 1 FROM {self} v"     \
    "     WHERE v.session_id" EQ "a.s AND " SAME_CUSTOMER("f.customer_id")                                 \
    "        AND NOT (v.id" EQ "ANY (SELECT ids.id FROM ids)) LIMIT 1) IS NULL)"                                  \
    "  " MINUS "(SELECT " COUNT_ALL " FROM pg_catalog.unnest(f.removed_only) r(s) WHERE (SELECT 1 FROM {self} v" \
    "     WHERE v.session_id" EQ "r.s AND " SAME_CUSTOMER("f.customer_id") " LIMIT 1) IS NULL),"           \
    "  nd.probe, pr.lo, pr.hi, cg.company_gone"                                                           \
    " FROM f CROSS JOIN LATERAL (SELECT m.total_conversations, m.total_sessions, m.total_views,"          \
    "    m.first_interaction_at, m.last_interaction_at, m.company_id FROM {customer_metrics} m"           \
    "    WHERE m.customer_id" EQ "f.customer_id LIMIT 1) m"                                               \
    " CROSS JOIN LATERAL (SELECT (f.rem_min IS NOT NULL AND (m.first_interaction_at IS NULL"              \
    "                                 OR f.rem_min" LE "m.first_interaction_at))"                         \
    "                         OR (f.rem_max IS NOT NULL AND (m.last_interaction_at IS NULL"               \
    "                                 OR f.rem_max" GE "m.last_interaction_at)) AS probe) nd"             \
    " LEFT JOIN LATERAL (SELECT pg_catalog.min(x.lo) AS lo, pg_catalog.max(x.hi) AS hi"                   \
    "    FROM (SELECT DISTINCT c FROM pg_catalog.unnest(pg_catalog.array_append(f.companies, m.company_id)) c" \
    "          WHERE c IS NOT NULL) k,"                                                                   \
    "    LATERAL (SELECT (SELECT t.created_at FROM {self} t WHERE t.company_id" EQ "k.c"                  \
    "                       AND t.customer_id" EQ "f.customer_id AND t.created_at IS NOT NULL"            \
    "                     ORDER BY t.created_at LIMIT 1) AS lo,"                                          \
    "                    (SELECT t.created_at FROM {self} t WHERE t.company_id" EQ "k.c"                  \
    "                       AND t.customer_id" EQ "f.customer_id AND t.created_at IS NOT NULL"            \
    "                     ORDER BY t.created_at DESC LIMIT 1) AS hi) x"                                   \
    "    WHERE nd.probe) pr ON true"                                                                      \
    " CROSS JOIN LATERAL (SELECT f.new_company IS NULL AND m.company_id IS NOT NULL AND NOT EXISTS ("      \
    "    SELECT 1 FROM {self} t WHERE t.company_id" EQ "m.company_id AND t.customer_id" EQ "f.customer_id)" \
    "    AS company_gone) cg"                                                                             \
    " WHERE NOT (f.customer_id" EQ "ANY ($1::pg_catalog.uuid[]))"

// A whole metrics row: customer_id, company_id, total_conversations,
// total_sessions, total_views, first/last interaction.
#define METRICS_ROW_TYPES UUIDOID, UUIDOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID
#define METRICS_ROW_ARRAY_TYPES \
    UUIDARRAYOID, UUIDARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID

// In Statement order (checked at compile time below).
constexpr StatementSpec kStatements[] = {
    // --- customer_sync -----------------------------------------------------
    {Statement::SyncLookupEmail, "customer_sync lookup (email)", LOOKUP_KEY("email"), 3, {UUIDOID, TEXTOID, INT8OID}, SPI_OK_SELECT, PlanMode::Auto, false},
    {Statement::SyncLookupPhone, "customer_sync lookup (phone)", LOOKUP_KEY("phone"), 3, {UUIDOID, TEXTOID, INT8OID}, SPI_OK_SELECT, PlanMode::Auto, false},
    {Statement::SyncLookupName, "customer_sync lookup (name)", LOOKUP_KEY("name"), 3, {UUIDOID, TEXTOID, INT8OID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // A chat with both email and phone: both keys in one query (one index
    // scan each), email holders first, oldest first. Its first row is the
    // first candidate the per-key lookups would try.
    {Statement::SyncLookupEmailOrPhone, "customer_sync lookup (email or phone)",
     PINS("e=" KEY_INDEX " p=" KEY_INDEX " c=id")
     "SELECT c.id, c.merged_into_customer_id, c.email_missing, c.phone_missing"
     " FROM (SELECT 0 AS rank, e.customer_id FROM {customer_matching_keys} e"
     "        WHERE e.company_id" EQ "$1 AND e.key_type" EQ "'email' AND e.normalized_value" EQ "$2"
     "       UNION ALL"
     "       SELECT 1, p.customer_id FROM {customer_matching_keys} p"
     "        WHERE p.company_id" EQ "$1 AND p.key_type" EQ "'phone' AND p.normalized_value" EQ "$3) k"
     CUSTOMER_BY_KEY("$1") " ORDER BY k.rank, c.created_at, c.id LIMIT 1",
     3, {UUIDOID, TEXTOID, TEXTOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // Who holds the row's email ($2) or phone ($3) key (NULL: none): two
    // equality probes of (company_id, key_type, normalized_value). Most
    // lookups end here (a new customer: no holder) or go on with one
    // primary-key read of the single holder. Plain equalities on every index
    // column on purpose: written as "key_type = ANY (...) AND
    // normalized_value = ANY (...)", the generic plan made on small tables
    // kept only company_id as index condition and filtered all of the
    // company's keys per lookup.
    // Two holders of a key are as many as the probe needs to know of (the
    // full lookup then picks the oldest): LIMIT 2 each, not every holder.
    {Statement::SyncProbe, "customer_sync probe",
     PINS("e=" KEY_INDEX " p=" KEY_INDEX)
     "(SELECT true, e.customer_id FROM {customer_matching_keys} e"
     "  WHERE e.company_id" EQ "$1 AND e.key_type" EQ "'email' AND e.normalized_value" EQ "$2 LIMIT 2)"
     " UNION ALL"
     " (SELECT false, p.customer_id FROM {customer_matching_keys} p"
     "  WHERE p.company_id" EQ "$1 AND p.key_type" EQ "'phone' AND p.normalized_value" EQ "$3 LIMIT 2)",
     3, {UUIDOID, TEXTOID, TEXTOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // One step along merged_into_customer_id, never leaving the company.
    {Statement::SyncChain, "customer_sync merge chain",
     PINS("c=id") "SELECT c.merged_into_customer_id, c.deleted_at IS NULL, " MISSING("c.customer_email") ", " MISSING(
         "c.customer_phone") " FROM {customers} c WHERE c.id" EQ "$1 AND " CUSTOMER_IN_COMPANY("$2"),
     2, {UUIDOID, UUIDOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // Fill the customer's missing email/phone ($3/$4, NULL: keep) and set
    // updated_at. Applies only while MATCH_UNCHANGED holds; else no row
    // comes back and the caller looks up again. Being an UPDATE, it waits
    // for a concurrent soft delete or merge of the customer and then
    // re-checks the conditions on the new version. The 'contact_info_added'
    // event is a statement of its own, after this one's triggers, as in the
    // plpgsql trigger: a policy or CHECK on customer_events that reads
    // customers sees the filled row, and an event trigger sees its keys.
    {Statement::SyncFillContact, "customer_sync contact fill",
     PINS("c=id") "UPDATE {customers} c SET"
     " customer_email = CASE WHEN $3 IS NULL THEN c.customer_email ELSE $3 END,"
     " customer_phone = CASE WHEN $4 IS NULL THEN c.customer_phone ELSE $4 END,"
     " updated_at = pg_catalog.now()" MATCH_UNCHANGED,
     8, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID, TEXTARRAYOID, BOOLOID}, SPI_OK_UPDATE,
     PlanMode::Auto, false},
    // The fill's event: customer $1 of company $2 (the chat's: the fill
    // required the customer to be in it), the columns filled $3.
    {Statement::SyncContactEvent, "customer_sync contact_info_added event",
     "INSERT INTO {customer_events} ({default_columns:customer_events}customer_id, company_id, event_type,"
     " event_data) VALUES ({default_values:customer_events}$1, $2, 'contact_info_added',"
     " pg_catalog.jsonb_build_object('fields'::pg_catalog.text, $3))",
     3, {UUIDOID, UUIDOID, TEXTARRAYOID}, SPI_OK_INSERT, PlanMode::Auto, false},
    // The same match when nothing is filled (a returning customer's chat, the
    // common case): the customer row is not written (no UPDATE, no audit
    // row; docs/contract.md, sync step 4). The row lock (FOR NO KEY UPDATE,
    // the lock an UPDATE takes, so concurrent chats of one customer queue
    // instead of deadlocking when one later fills its contact data)
    // serializes the link with a concurrent soft delete or merge, and under
    // READ COMMITTED re-checks the conditions on the newest row version.
    {Statement::SyncLockMatch, "customer_sync match lock",
     PINS("c=id") "SELECT c.id FROM {customers} c" MATCH_UNCHANGED " FOR NO KEY UPDATE OF c",
     8, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID, TEXTARRAYOID, BOOLOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // A returning customer's chat in one statement: the key's single holder
    // $1 is the match when it is a live, unmerged customer of the company,
    // and the chat fills nothing when it lacks neither the email ($3: the
    // chat has one) nor the phone ($4) the chat brings. Then this locks the
    // match as above; else no row comes back and read-then-update decides.
    {Statement::SyncLockHolder, "customer_sync holder lock",
     PINS("c=id") "SELECT c.id FROM {customers} c"
     " WHERE c.id" EQ "$1 AND " CUSTOMER_IN_COMPANY("$2") " AND " CUSTOMER_LIVE
     " AND (c.merged_into_customer_id IS NULL) IS TRUE"
     " AND (NOT ($3 AND " MISSING("c.customer_email") ")) IS TRUE"
     " AND (NOT ($4 AND " MISSING("c.customer_phone") ")) IS TRUE"
     " FOR NO KEY UPDATE OF c",
     4, {UUIDOID, UUIDOID, BOOLOID, BOOLOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // A new customer from the chat. Its matching keys and audit row come
    // from the customers triggers; its 'created' event is the next
    // statement, after them, as in the plpgsql trigger.
    {Statement::SyncCreateCustomer, "customer_sync customer insert",
     "INSERT INTO {customers}"
     " ({default_columns:customers}company_id, customer_name, customer_email, customer_phone, source,"
     " created_by_user_id) VALUES ({default_values:customers}$1, $2, $3, $4, 'chat', NULL) RETURNING id, company_id",
     4, {UUIDOID, TEXTOID, TEXTOID, TEXTOID}, SPI_OK_INSERT_RETURNING, PlanMode::Auto, false},
    // The new customer's event: customer $1 of company $2, the chat's session $3.
    {Statement::SyncCreatedEvent, "customer_sync created event",
     "INSERT INTO {customer_events} ({default_columns:customer_events}customer_id, company_id, event_type,"
     " event_data) VALUES ({default_values:customer_events}$1, $2, 'created',"
     " pg_catalog.jsonb_build_object('source'::pg_catalog.text, 'chat'::pg_catalog.text,"
     " 'session_id'::pg_catalog.text, $3))",
     3, {UUIDOID, UUIDOID, TEXTOID}, SPI_OK_INSERT, PlanMode::Auto, false},
    // A chat's own customer_id (preset on INSERT, or changed by UPDATE): is it
    // a live customer of the chat's company? Primary key only; locked like a
    // match, so a concurrent soft delete waits for this chat.
    {Statement::SyncLinkedCustomer, "customer_sync linked customer",
     PINS("c=id") "SELECT c.company_id, c.deleted_at IS NULL FROM {customers} c WHERE c.id" EQ "$1 FOR NO KEY UPDATE OF c",
     1, {UUIDOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    // The two reads above without the lock. Row-level security shows a
    // locking read (as an UPDATE) only the rows the UPDATE policies allow
    // too, so an application whose UPDATE policy is narrower than its
    // SELECT policy hides a customer from the lock that it lets this role
    // see and link; customer_sync.cpp tells that apart from a concurrent
    // change with these.
    {Statement::SyncMatchVisible, "customer_sync match without lock",
     PINS("c=id") "SELECT c.id FROM {customers} c" MATCH_UNCHANGED,
     8, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID, TEXTARRAYOID, BOOLOID}, SPI_OK_SELECT, PlanMode::Auto, false},
    {Statement::SyncLinkedVisible, "customer_sync linked customer without lock",
     PINS("c=id") "SELECT c.company_id, c.deleted_at IS NULL FROM {customers} c WHERE c.id" EQ "$1",
     1, {UUIDOID}, SPI_OK_SELECT, PlanMode::Auto, false},

    // --- customers triggers ------------------------------------------------
    // All of a customer's new keys in one statement: executor start-up per
    // statement is most of a key write's cost.
    {Statement::KeysInsert, "matching_keys_sync insert",
     "INSERT INTO {customer_matching_keys} ({default_columns:customer_matching_keys}customer_id, company_id,"
     " key_type, key_value, normalized_value) SELECT {default_values:customer_matching_keys}$1, $2, k.key_type, k.key_value, k.normalized_value"
     " FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5))"
     " AS k (key_type, key_value, normalized_value)",
     5, {UUIDOID, UUIDOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID}, SPI_OK_INSERT, PlanMode::Auto, false},
    // key_type is a filter: under row-level security the policy's company_id
    // and key_type would make idx_matching_keys_normalized look as selective
    // as the customer's index, and that would scan the tenant's keys.
    {Statement::KeysDelete, "matching_keys_sync delete",
     PINS("k=customer_id") "DELETE FROM {customer_matching_keys} k"
     " WHERE k.customer_id" EQ "$1 AND (k.key_type" EQ "ANY ($2)) IS TRUE",
     2, {UUIDOID, TEXTARRAYOID}, SPI_OK_DELETE, PlanMode::Auto, false},
    // to_jsonb runs inside the INSERT, so the JSON is exactly the backend's.
    {Statement::AuditInsert, "audit_log insert",
     "INSERT INTO {customer_audit_log} ({default_columns:customer_audit_log}table_name, record_id, company_id,"
     " operation, old_data, new_data, changed_fields, changed_by_user_id) VALUES ({default_values:customer_audit_log}$1, $2, $3, $4, pg_catalog.to_jsonb($5), pg_catalog.to_jsonb($6), $7, $8)",
     8, {TEXTOID, UUIDOID, UUIDOID, TEXTOID, kSelfRowType, kSelfRowType, TEXTARRAYOID, UUIDOID}, SPI_OK_INSERT, PlanMode::Auto,
     false},
    {Statement::StageEventInsert, "lifecycle_tracking event insert",
     "INSERT INTO {customer_events} ({default_columns:customer_events}customer_id, company_id, event_type,"
     " event_data) VALUES ({default_values:customer_events}$1, $2, 'stage_changed', pg_catalog.jsonb_build_object("
     "'from'::pg_catalog.text, $3, 'to'::pg_catalog.text, $4))",
     4, {UUIDOID, UUIDOID, TEXTOID, TEXTOID}, SPI_OK_INSERT, PlanMode::Auto, false},

    // --- metrics -----------------------------------------------------------
    {Statement::MetricsFoldInsert, "metrics fold (insert)", FOLD(GROUP_INSERT) " ORDER BY 1", 0, {}, SPI_OK_SELECT, PlanMode::Generic, true},
    {Statement::MetricsFoldUpdate, "metrics fold (update)", FOLD(GROUP_UPDATE) " ORDER BY 1", 0, {}, SPI_OK_SELECT, PlanMode::Generic, true},
    {Statement::MetricsFoldDelete, "metrics fold (delete)", FOLD(GROUP_DELETE) " ORDER BY 1", 0, {}, SPI_OK_SELECT, PlanMode::Generic, true},
    {Statement::MetricsExistingInsert, "metrics existing rows (insert)", EXISTING(GROUP_INSERT), 1, {UUIDARRAYOID}, SPI_OK_SELECT, PlanMode::Generic, true},
    {Statement::MetricsExistingUpdate, "metrics existing rows (update)", EXISTING(GROUP_UPDATE), 1, {UUIDARRAYOID}, SPI_OK_SELECT, PlanMode::Generic, true},
    {Statement::MetricsExistingDelete, "metrics existing rows (delete)", EXISTING(GROUP_DELETE), 1, {UUIDARRAYOID}, SPI_OK_SELECT, PlanMode::Generic, true},
    // Phase 1: in customer_id order, insert the row of a customer that has
    // none (its conversations are the ones this statement added: $3..$7 are
    // their aggregate) or lock the existing row without writing it (DO
    // UPDATE ... WHERE false locks and skips). A customer that only lost or
    // changed conversations ($8 false) is skipped when it has no row (e.g.
    // its row went with the customer in the ON DELETE CASCADE that is nulling
    // these chats). The existence test is a scalar subquery with LIMIT 1: a
    // primary-key probe per customer. As EXISTS, the planner may hash it,
    // reading every metrics row of the table (of the tenant, under
    // row-level security) once per statement.
    {Statement::MetricsLockOrCreate, "metrics lock or create",
     M_PINS("x=customer_id") "INSERT INTO {customer_metrics} AS m ({default_columns:customer_metrics}customer_id, company_id,"
     " total_conversations, total_sessions, total_views, first_interaction_at, last_interaction_at, refreshed_at)"
     " SELECT {default_values:customer_metrics}u.c, u.co, u.n, u.s, u.v, u.f, u.l, pg_catalog.now()"
     " FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.uuid[]), pg_catalog.unnest($2::pg_catalog.uuid[]),"
     "                 pg_catalog.unnest($3::" INT8 "[]), pg_catalog.unnest($4::" INT8 "[]), pg_catalog.unnest($5::" INT8 "[]),"
     "                 pg_catalog.unnest($6::" TSTZ "[]), pg_catalog.unnest($7::" TSTZ "[]), pg_catalog.unnest($8::pg_catalog.bool[]))"
     "      WITH ORDINALITY AS u(c, co, n, s, v, f, l, pure, ord)"
     " WHERE u.pure OR (SELECT true FROM {customer_metrics} x WHERE x.customer_id" EQ "u.c LIMIT 1)"
     " ORDER BY u.ord"
     " ON CONFLICT {conflict_key:customer_metrics} DO UPDATE SET refreshed_at = m.refreshed_at WHERE false"
     " RETURNING m.customer_id",
     8, {METRICS_ROW_ARRAY_TYPES, BOOLARRAYOID}, SPI_OK_INSERT_RETURNING, PlanMode::Generic, false},
    // Same definition as the reference refresh_customer_metrics().
    {Statement::MetricsRecompute, "metrics recompute",
     M_PINS("v=customer_id") "SELECT " COUNT_ALL "::" INT8 ", pg_catalog.count(DISTINCT v.session_id)::" INT8 ","
     " coalesce(pg_catalog.sum(v.view_count), 0)::" INT8 ", pg_catalog.min(v.created_at), pg_catalog.max(v.created_at),"
     " (pg_catalog.array_agg(v.company_id))[1]"
     " FROM {self} v WHERE v.customer_id" EQ "$1",
     1, {UUIDOID}, SPI_OK_SELECT, PlanMode::Generic, false},
    {Statement::MetricsUpdateRow, "metrics update row",
     M_PINS("m=customer_id") "UPDATE {customer_metrics} m SET company_id = $2, total_conversations = $3, total_sessions = $4,"
     " total_views = $5, first_interaction_at = $6, last_interaction_at = $7,"
     " refreshed_at = pg_catalog.now() WHERE m.customer_id" EQ "$1",
     7, {METRICS_ROW_TYPES}, SPI_OK_UPDATE, PlanMode::Generic, false},
    {Statement::MetricsDeleteRow, "metrics delete row", M_PINS("m=customer_id") "DELETE FROM {customer_metrics} m WHERE m.customer_id" EQ "$1", 1, {UUIDOID}, SPI_OK_DELETE,
     PlanMode::Generic, false},
    {Statement::MetricsDeleteAll, "metrics delete all", "DELETE FROM {customer_metrics}", 0, {}, SPI_OK_DELETE, PlanMode::Generic, false},
    // Single-chat INSERT: lock the customer's row (its values as they are
    // once we hold the lock), then write it in ONE statement that probes the
    // session. Under READ COMMITTED that statement takes its snapshot after
    // the lock, so it sees every chat committed by a transaction that wrote
    // this row before us. $9/$10 = the chat's session and id as text (the
    // chat itself is excluded; text, so that any id type will do, and the id
    // is only a filter on the at most two rows the (session_id, customer_id)
    // probe reads); $4/$5 = sessions if the session is new / already counted.
    {Statement::MetricsChatLock, "metrics chat lock",
     M_PINS("m=customer_id") "SELECT m.total_conversations, m.total_sessions, m.total_views, m.first_interaction_at,"
     " m.last_interaction_at FROM {customer_metrics} m WHERE m.customer_id" EQ "$1 FOR NO KEY UPDATE",
     1, {UUIDOID}, SPI_OK_SELECT, PlanMode::Generic, false},
    {Statement::MetricsChatCreate, "metrics chat create",
     "INSERT INTO {customer_metrics} AS m ({default_columns:customer_metrics}customer_id, company_id,"
     " total_conversations, total_sessions, total_views, first_interaction_at, last_interaction_at, refreshed_at)"
     " VALUES ({default_values:customer_metrics}$1, $2, $3, $4, $5, $6, $7, pg_catalog.now())"
     " ON CONFLICT {conflict_key:customer_metrics} DO NOTHING RETURNING m.customer_id",
     7, {METRICS_ROW_TYPES}, SPI_OK_INSERT_RETURNING, PlanMode::Generic, false},
    {Statement::MetricsChatUpdate, "metrics chat update",
     M_PINS("m=customer_id v=session_id,customer_id") "UPDATE {customer_metrics} m SET company_id = $2, total_conversations = $3,"
     " total_sessions = CASE WHEN $9::pg_catalog.text IS NOT NULL AND NOT EXISTS ("
     "   SELECT 1 FROM {self} v WHERE v.session_id" EQ "$9::pg_catalog.text AND " SAME_CUSTOMER("$1")
     "      AND v.id::pg_catalog.text" NE "$10) THEN $4 ELSE $5 END,"
     " total_views = $6, first_interaction_at = $7, last_interaction_at = $8,"
     " refreshed_at = pg_catalog.now() WHERE m.customer_id" EQ "$1",
     10, {UUIDOID, UUIDOID, INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID},
     SPI_OK_UPDATE, PlanMode::Generic, false},
};

static_assert(sizeof kStatements / sizeof kStatements[0] == static_cast<size_t>(Statement::Count),
              "one catalogue entry per Statement");

constexpr bool in_statement_order() {
    for (int i = 0; i < static_cast<int>(Statement::Count); i++)
        if (static_cast<int>(kStatements[i].id) != i) return false;
    return true;
}
static_assert(in_statement_order(), "kStatements is in Statement order");

}  // namespace

const StatementSpec* statement_spec(Statement statement) {
    int i = static_cast<int>(statement);
    if (i < 0 || i >= static_cast<int>(Statement::Count)) elog(ERROR, "crm_native: unknown statement %d", i);
    return &kStatements[i];
}

}  // namespace crm::pg::store
