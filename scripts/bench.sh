#!/usr/bin/env bash
# The benchmark command (README): installs what is missing, builds crm_native,
# starts a throwaway PostgreSQL 15 cluster and runs the customer-management
# performance test plan (shared/seeds/customer-performance-test-plan.md) on
# three databases built from the reference migration (reference/*.sql):
#
#   plpgsql  the application's plpgsql triggers (reference/02)
#   native   CREATE EXTENSION crm_native; SELECT crm_native.install()
#   floor    no triggers: the same rows written set-wise by plain SQL, the
#            cost of writing those rows with every check
#
# and, as bounds: chat_only (the chat row alone) and rowwise (each chat's
# rows written while the chat row is, in the fewest SQL statements:
# bench.rowwise_sync() in bench/setup.sql).
#
# Writes bench/out/report.md (printed at the end), bench/out/history.png and
# the raw measurements (bench/out/results.tsv, pgbench logs, EXPLAIN plans).
#
# Then (scripts/bench_citus.sh, after this cluster is stopped) the Citus
# section: the bulk and single-chat pgbench through the coordinator of a
# local Citus cluster beside a single node; skipped, and said so in the
# report, when no Citus is available or with --no-citus.
#
# Usage: scripts/bench.sh [--quick | --full] [--runs N] [--pgbench-seconds N]
#                         [--synchronous-commit] [--no-build] [--keep-cluster] [--no-citus]
#   --quick   3 runs (1 for data generation, bulk 10,000 and lifecycle 10,000), shorter
#             history and pgbench: about 5 minutes after the build
#   --full    the default: 5 runs, history up to 100,000 conversations, 3 x 30 s pgbench,
#             tenants: company B's chats 30 s alone / during A's 50,000-chat import (quick: 8 s, 10,000)
#   --keep-cluster  leave the cluster running afterwards (databases bench_plpgsql,
#             bench_native, bench_floor, bench_chat_only, bench_rowwise) and print how to connect to it
#   --no-citus  skip the Citus section (quick: 1 bulk run, 1 x 5 s pgbench;
#             full: 3 bulk runs, 3 x 8 s pgbench; about 2 / 3.5 minutes on
#             the shared 2-core machine)
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MODE=full RUNS="" RUNS_SET="" PGBENCH_SECONDS="" SYNC_COMMIT=off BUILD=1 KEEP=0 CITUS=1
while [ $# -gt 0 ]; do
  case $1 in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --runs) RUNS=$2; RUNS_SET=$2; shift ;;
    --pgbench-seconds) PGBENCH_SECONDS=$2; shift ;;
    --synchronous-commit) SYNC_COMMIT=on ;;
    --no-build) BUILD=0 ;;
    --keep-cluster) KEEP=1 ;;
    --no-citus) CITUS=0 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$MODE" = quick ]; then
  RUNS=${RUNS:-3}; HEAVY_RUNS=${RUNS_SET:-1}; READ_REPS=5; GEN_COMPANIES=1; HISTORY_LEVELS=(0 1000 10000)
  PGBENCH_SECONDS=${PGBENCH_SECONDS:-5}; PGBENCH_RUNS=1
  TENANT_SECONDS=8; TENANT_IMPORT=10000
else
  RUNS=${RUNS:-5}; HEAVY_RUNS=$RUNS; READ_REPS=20; GEN_COMPANIES=10; HISTORY_LEVELS=(0 1000 20000 100000)
  PGBENCH_SECONDS=${PGBENCH_SECONDS:-30}; PGBENCH_RUNS=3
  TENANT_SECONDS=30; TENANT_IMPORT=50000
fi
# chats timed per run at a history level: fewer where plpgsql's per-chat
# cost grows with the history (its metrics trigger recounts it all)
history_chats() {
  if [ "$MODE" = quick ]; then if [ "$1" -le 1000 ]; then echo 40; else echo 10; fi
  elif [ "$1" -le 1000 ]; then echo 200; elif [ "$1" -le 20000 ]; then echo 50; else echo 20; fi
}
COMPANIES=10 CUSTOMERS_PER_COMPANY=1000   # the seed plan's data volume, in both modes
LIFECYCLE_CUSTOMERS=10000

OUT=$ROOT/bench/out
rm -rf "$OUT"; mkdir -p "$OUT/pgbench" "$OUT/explain"
RESULTS=$OUT/results.tsv; : >"$RESULTS"
META=$OUT/meta.tsv; : >"$META"
SCEN=$OUT/scenarios.tsv; : >"$SCEN"
T_START=$(date +%s)

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
say() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }

bash scripts/deps.sh
# shellcheck source=pgenv.sh
source scripts/pgenv.sh
if [ "$BUILD" = 1 ]; then say "build + stage crm_native"; crm_stage; fi
T_BUILT=$(date +%s)

# Cluster settings for a 2-core / 24 GB machine. fsync stays on (realistic);
# synchronous_commit=off by default so that a commit does not wait for the
# WAL flush: the benchmark compares the CPU cost of the triggers, which a
# flush wait of a few ms per transaction would hide (--synchronous-commit
# turns it on). jit=off: JIT compilation of the large set-based statements
# costs seconds and is the usual OLTP setting. autovacuum=off: the script
# vacuums between scenarios, so no background vacuum lands inside a timing.
SETTINGS=(shared_buffers=1GB work_mem=32MB maintenance_work_mem=256MB effective_cache_size=16GB
          fsync=on synchronous_commit=$SYNC_COMMIT full_page_writes=on wal_buffers=16MB
          max_wal_size=8GB checkpoint_timeout=30min jit=off autovacuum=off max_connections=20)
crm_cluster_start bench "${SETTINGS[@]}"
meta settings "${SETTINGS[*]}"
meta mode "$MODE"; meta runs "$RUNS"; meta heavy_runs "$HEAVY_RUNS"; meta read_reps "$READ_REPS"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta machine "$(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GB RAM, $(uname -sr)"
meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"

q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
qa() { q -At "$@"; }

# ---------------------------------------------------------------------------
# Databases. The seed database gets the reference migration, the bench
# helpers and the seed plan's data (written set-wise with triggers off, plus
# the rows the triggers would have written); the three benchmark databases
# are copies of it.
# ---------------------------------------------------------------------------
say "seed database: reference migration + ${COMPANIES} x ${CUSTOMERS_PER_COMPANY} customers"
q -d postgres -c "CREATE DATABASE bench_seed" >/dev/null
REFERENCE_DIR=${CRM_BENCH_REFERENCE_DIR:-$ROOT/reference}
for f in "$REFERENCE_DIR"/*.sql; do q -d bench_seed -f "$f" >/dev/null; done
q -d bench_seed -f bench/setup.sql >/dev/null
HISTORY_MAX=${HISTORY_LEVELS[-1]}
q -d bench_seed -v companies=$COMPANIES -v customers=$CUSTOMERS_PER_COMPANY \
  -v levels="{$(IFS=,; echo "${HISTORY_LEVELS[*]}")}" -v lifecycle=$LIFECYCLE_CUSTOMERS >/dev/null <<'EOF'
SET session_replication_role = replica;   -- no triggers: rows written explicitly
SELECT setseed(0.42);
SELECT bench.gen_data(1, :companies, :customers, true);
-- Scenario 2: the searchable customers (company 1 is the "load test company")
WITH c AS (
    INSERT INTO customers (company_id, customer_name, customer_email, customer_phone, created_by_user_id)
    VALUES (bench.company_id(1), 'John Smith', 'john.smith@example.com', '+1-555-123-4567', bench.user_id(1)),
           (bench.company_id(1), 'Johnny Smithson', 'johnny@example.com', '+1-555-123-4568', bench.user_id(1)),
           (bench.company_id(1), 'Jon Smythe', 'jon.smythe@example.com', '+1-555-123-4569', bench.user_id(1)),
           (bench.company_id(1), 'Jane Johnson', 'jane@example.com', '+1-555-987-6543', bench.user_id(1))
    RETURNING id)
SELECT bench.derive_customer_rows(array_agg(id)) FROM c;
-- Scenario 4: customers to soft-delete
WITH c AS (
    INSERT INTO customers (company_id, customer_name, created_by_user_id)
    SELECT bench.company_id(1), 'Delete Test Customer ' || i, bench.user_id(1) FROM generate_series(1, 100) i
    RETURNING id)
SELECT bench.derive_customer_rows(array_agg(id)) FROM c;
-- Returning customers with a growing history (company 2): customer
-- history_H@example.com has H prior conversations.
WITH c AS (
    INSERT INTO customers (company_id, customer_name, customer_email, source, created_at)
    SELECT bench.company_id(2), 'History Customer ' || h, 'history_' || h || '@example.com', 'chat',
           now() - interval '400 days'
      FROM unnest(:'levels'::int[]) h
    RETURNING id)
SELECT bench.derive_customer_rows(array_agg(id)) FROM c;
INSERT INTO "VC Usage" (company_id, user_id, customer_id, customer_name, customer_email, session_id,
                        interaction_number, user_message, ai_response, created_at)
SELECT c.company_id, bench.user_id(2), c.id, c.customer_name, c.customer_email,
       'history_session_' || (j / 5), j, 'Earlier question', 'Earlier answer',
       now() - interval '1 minute' * j
  FROM customers c
 CROSS JOIN LATERAL generate_series(1, substring(c.customer_email from 'history_(\d+)@')::int) j
 WHERE c.company_id = bench.company_id(2) AND c.customer_email LIKE 'history\_%';
SELECT bench.recompute_metrics(array_agg(id)) FROM customers
 WHERE company_id = bench.company_id(2) AND customer_email LIKE 'history\_%';
-- Scenario "lifecycle updates": the customers whose stage is advanced
CREATE TABLE bench.lifecycle_target AS
SELECT id FROM customers WHERE customer_name LIKE 'Test Customer %' ORDER BY id LIMIT :lifecycle;
RESET session_replication_role;
EOF
q -d bench_seed -c "VACUUM ANALYZE" >/dev/null
meta data_volume "$(qa -d bench_seed -F' ' -c "SELECT format('%s companies, %s customers, %s conversations, %s events, %s matching keys',
  (SELECT count(*) FROM companies), (SELECT count(*) FROM customers), (SELECT count(*) FROM \"VC Usage\"),
  (SELECT count(*) FROM customer_events), (SELECT count(*) FROM customer_matching_keys))")"
meta history_levels "${HISTORY_LEVELS[*]}"
if [ "$(qa -d bench_seed -c "SELECT to_regproc('public.sync_customer_from_vc_usage') IS NOT NULL")" = t ]; then
  meta plpgsql_status "reference plpgsql triggers (reference/02_plpgsql_triggers.sql)"
else
  meta plpgsql_status "MISSING: reference/02_plpgsql_triggers.sql is not there; the plpgsql database has no triggers"
fi

for db in plpgsql native floor; do
  q -d postgres -c "CREATE DATABASE bench_$db TEMPLATE bench_seed" >/dev/null
done
q -d bench_floor >/dev/null <<'EOF'
SELECT format('DROP TRIGGER %I ON %s', tgname, tgrelid::regclass) FROM pg_trigger
 WHERE NOT tgisinternal AND tgrelid IN ('public."VC Usage"'::regclass, 'public.customers'::regclass) \gexec
EOF

# native: whatever crm_native.install() installs today. Until it exists, the
# native column of the report says "not installed" (nothing is faked).
DBS=(plpgsql)
NATIVE_STATUS=""
if ! out=$(q -d bench_native -c "CREATE EXTENSION crm_native" 2>&1); then
  NATIVE_STATUS="not installed: CREATE EXTENSION crm_native failed: $out"
elif [ "$(qa -d bench_native -c "SELECT to_regprocedure('crm_native.install(text)') IS NOT NULL")" != t ]; then
  NATIVE_STATUS="not installed: crm_native.install() does not exist yet"
elif ! out=$(q -d bench_native -c "SELECT crm_native.install()" 2>&1); then
  NATIVE_STATUS="not installed: crm_native.install() failed: $out"
else
  DBS+=(native)
  NATIVE_STATUS="installed"
  # No session_preload_libraries: every timed statement is the first of its
  # connection, and must cost what any other statement costs (the library
  # load itself is paid once per backend; --quick shows it in the figures).
  meta native_preload "none (each timed statement is the first of its connection)"
fi
DBS+=(floor)
meta native_status "$NATIVE_STATUS"
# Which function each trigger runs, per database (the report lists it).
for db in "${DBS[@]}"; do
  qa -d "bench_$db" -F $'\t' -c "SELECT '$db', tgrelid::regclass, tgname, tgfoid::regproc
     FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN ('public.\"VC Usage\"'::regclass, 'public.customers'::regclass)
     ORDER BY 2, 3" >>"$OUT/triggers.tsv"
done
for db in "${DBS[@]}"; do q -d "bench_$db" -c "VACUUM ANALYZE" >/dev/null; done
say "databases: ${DBS[*]} (native: $NATIVE_STATUS)"

# ---------------------------------------------------------------------------
# Measurement. Each measurement is one psql session: a rolled-back warm-up
# that fires every trigger (plpgsql compiled, native library loaded), then
# the timed statement inside a transaction that is rolled back, so every run
# starts from the same state. Runs are interleaved across the databases.
# ---------------------------------------------------------------------------
N_SCEN=0; SCEN_I=0
progress() { printf '\r\033[K[%d/%d] %s' "$SCEN_I" "$N_SCEN" "$*" >&2; }
PHASE_T0=$(date +%s)
progress_done() {
  local now; now=$(date +%s)
  printf '\r\033[K[%d/%d] %s (%ds)\n' "$SCEN_I" "$N_SCEN" "$*" "$((now - PHASE_T0))" >&2
  PHASE_T0=$now
}

# time_stmt DB STMT REPS [ROLE COMPANY] -> milliseconds per execution.
# Repeated statements (reads, single chats) get one untimed execution first.
time_stmt() {
  local db=$1 stmt=$2 reps=$3 role=${4:-} company=${5:-}
  local setrole=""
  [ -n "$role" ] && setrole="SET ROLE $role; SET app.current_company_id = '$company';"
  q -At -d "bench_$db" -v stmt="$stmt" -v reps="$reps" <<EOF
BEGIN; SELECT bench.warmup() \gset w_
ROLLBACK;
$setrole
\if $([ "$reps" -gt 1 ] && echo true || echo false)
BEGIN; SELECT bench.time_ms(:'stmt', 1) \gset w_
ROLLBACK;
\endif
BEGIN; SELECT bench.time_ms(:'stmt', :reps) AS ms \gset
ROLLBACK;
\echo :ms
EOF
}

# The statement a database runs for a batch of chats: triggered databases
# INSERT into "VC Usage"; the floor runs bench.floor_sync_sql() on the same input.
CHAT_COLS='company_id, user_id, customer_name, customer_email, customer_phone, session_id, interaction_number, user_message, ai_response'
chat_stmt() {  # chat_stmt DB INPUT_QUERY
  if [ "$1" = floor ]; then qa -d bench_floor -v input="$2" <<<"SELECT bench.floor_sync_sql(:'input')"
  else printf 'INSERT INTO "VC Usage" (%s) %s' "$CHAT_COLS" "$2"; fi
}

scenario() {  # scenario ID TITLE TARGET_LABEL TARGET_MS PER_COUNT PER_LABEL KIND
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$SCEN"
}
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# run_scenario ID TITLE REPS STMT_FUNCTION [ROLE COMPANY]
#   STMT_FUNCTION DB RUN prints the statement for that database and run.
#   NRUNS (default RUNS) runs per database.
run_scenario() {
  local id=$1 title=$2 reps=$3 fn=$4 role=${5:-} company=${6:-} run db ms nruns=${NRUNS:-$RUNS}
  SCEN_I=$((SCEN_I + 1))
  for run in $(seq 1 "$nruns"); do
    for db in "${DBS[@]}"; do
      progress "$title: run $run/$nruns ($db)"
      ms=$(time_stmt "$db" "$($fn "$db" "$run")" "$reps" "$role" "$company")
      record "$id" "$db" "$run" "$ms"
    done
  done
  if [ "$reps" -le 1 ]; then  # writes leave dead rows behind: clean up, untimed
    for db in "${DBS[@]}"; do q -d "bench_$db" -c "VACUUM" >/dev/null; done
  fi
  progress_done "$title: done"
}

C1="bench.company_id(1)"
# --- the seed plan's queries (company 1 = the load test company) ------------
Q_LIST="SELECT c.*, m.total_conversations FROM customers c LEFT JOIN customer_metrics m ON c.id = m.customer_id
WHERE c.company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND c.deleted_at IS NULL ORDER BY c.created_at DESC LIMIT 50 OFFSET 0"
Q_COUNT="SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE lifecycle_stage = 'prospect') AS prospects,
COUNT(*) FILTER (WHERE lifecycle_stage = 'customer') AS customers, COUNT(*) FILTER (WHERE 'vip' = ANY(tags)) AS vip_customers
FROM customers WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND deleted_at IS NULL"
Q_DETAIL="SELECT c.*, array_agg(DISTINCT cs.session_id) AS sessions, COUNT(DISTINCT vc.id) AS conversation_count,
json_agg(DISTINCT e.*) AS recent_events FROM customers c LEFT JOIN \"VC Usage\" vc ON c.id = vc.customer_id
LEFT JOIN customer_conversation_summaries cs ON c.id = cs.customer_id LEFT JOIN customer_events e ON c.id = e.customer_id
WHERE c.id = (SELECT id FROM customers WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' LIMIT 1) GROUP BY c.id"
Q_FUZZY="SELECT * FROM customers WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND deleted_at IS NULL
AND customer_name % 'john' ORDER BY SIMILARITY(customer_name, 'john') DESC LIMIT 10"
Q_EMAIL="SELECT * FROM customers WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND deleted_at IS NULL
AND customer_email = 'john.smith@example.com'"
Q_PHONE="SELECT c.* FROM customers c JOIN customer_matching_keys mk ON c.id = mk.customer_id
WHERE c.company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND c.deleted_at IS NULL AND mk.key_type = 'phone'
AND mk.normalized_value = '15551234567'"
# 2.3b: the same search with the tenant on the key lookup too, so that the
# (company_id, key_type, normalized_value) index can serve it
Q_PHONE2="SELECT c.* FROM customers c JOIN customer_matching_keys mk ON c.id = mk.customer_id
WHERE c.company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND c.deleted_at IS NULL
AND mk.company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND mk.key_type = 'phone' AND mk.normalized_value = '15551234567'"
Q_COMBINED="WITH search_term AS (SELECT 'john' AS term) SELECT DISTINCT c.* FROM customers c, search_term
WHERE c.company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND c.deleted_at IS NULL AND (customer_name ILIKE '%' || term || '%'
OR customer_email ILIKE '%' || term || '%' OR EXISTS (SELECT 1 FROM customer_matching_keys mk WHERE mk.customer_id = c.id
AND mk.normalized_value LIKE '%' || LOWER(term) || '%')) LIMIT 20"
Q_TENANT="SELECT c.*, m.total_conversations FROM customers c LEFT JOIN customer_metrics m ON c.id = m.customer_id
WHERE c.company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000005' AND c.deleted_at IS NULL ORDER BY c.created_at DESC LIMIT 50"
TENANT5=aaaaaaaa-aaaa-aaaa-aaaa-000000000005
TENANT_ROLE=""
[ "$(qa -d bench_seed -c "SELECT count(*) FROM pg_roles WHERE rolname = 'crm_app'")" = 1 ] && TENANT_ROLE=crm_app
meta tenant_role "${TENANT_ROLE:-owner (role crm_app missing)}"

for v in LIST COUNT DETAIL FUZZY EMAIL PHONE PHONE2 COMBINED TENANT; do
  eval "s_$v() { printf '%s' \"\$Q_$v\"; }"
done
s_gen() { if [ "$1" = floor ]; then echo "SELECT bench.gen_data(101, $GEN_COMPANIES, $CUSTOMERS_PER_COMPANY, true)";
          else echo "SELECT bench.gen_data(101, $GEN_COMPANIES, $CUSTOMERS_PER_COMPANY, false)"; fi; }
bulk_input() {  # bulk_input N RUN: N chats from new customers, unique per run
  echo "SELECT $C1, bench.user_id(1), 'Bulk Customer ' || i, 'bulk_r$2_' || i || '@example.com',
  '+1' || (6000000000 + $2 * 100000 + i), 'bulk_session_' || i, 1, 'Bulk test message', 'Bulk test response'
  FROM generate_series(1, $1) i"
}
s_bulk100() { chat_stmt "$1" "$(bulk_input 100 "$2")"; }
s_bulk10k() { chat_stmt "$1" "$(bulk_input 10000 "$2")"; }
s_softdel() {
  local where="company_id = $C1 AND customer_name LIKE 'Delete Test Customer %'"
  if [ "$1" = floor ]; then qa -d bench_floor -v target="SELECT id FROM customers WHERE $where AND deleted_at IS NULL" \
      <<<"SELECT bench.floor_update_sql(:'target', 'deleted_at = now()', '{deleted_at}', false)"
  else echo "UPDATE customers SET deleted_at = NOW() WHERE $where"; fi
}
s_lifecycle() {
  if [ "$1" = floor ]; then qa -d bench_floor <<<"SELECT bench.floor_update_sql('SELECT id FROM bench.lifecycle_target',
      'lifecycle_stage = bench.next_stage(t.lifecycle_stage), lifecycle_stage_changed_at = now()',
      '{lifecycle_stage,lifecycle_stage_changed_at}', true)"
  else echo "UPDATE customers SET lifecycle_stage = bench.next_stage(lifecycle_stage) WHERE id IN (SELECT id FROM bench.lifecycle_target)"; fi
}
HISTORY_H=0
s_history() {  # one chat of the returning customer with HISTORY_H prior conversations
  chat_stmt "$1" "VALUES (bench.company_id(2), bench.user_id(2), 'History Customer $HISTORY_H',
    'history_$HISTORY_H@example.com', NULL, 'history_session_new', 1, 'Back again', 'Welcome back')"
}

G_LABEL="$GEN_COMPANIES company x $CUSTOMERS_PER_COMPANY customers"; [ "$GEN_COMPANIES" -gt 1 ] && G_LABEL="$GEN_COMPANIES companies x $CUSTOMERS_PER_COMPANY customers"
scenario gen "Test data generation ($G_LABEL, 3-10 conversations and 3-7 events each)" "-" "" "$((GEN_COMPANIES * CUSTOMERS_PER_COMPANY))" "customer" write
scenario list "1.1 Customer list pagination (50 of 1,000)" "<50ms" 50 1 "" read
scenario count "1.2 Customer count with filters" "<30ms" 30 1 "" read
scenario detail "1.3 Customer detail with relations" "<100ms" 100 1 "" read
scenario fuzzy "2.1 Fuzzy name search (pg_trgm)" "<30ms" 30 1 "" read
scenario email "2.2 Email exact match" "<5ms" 5 1 "" read
scenario phone "2.3 Normalized phone search (as ${TENANT_ROLE:-owner}: RLS puts the tenant on the key lookup)" "<10ms" 10 1 "" read
scenario phone_owner "2.3 Normalized phone search as the table owner (RLS bypassed: no tenant on the key lookup)" "<10ms" 10 1 "" read
scenario phone2 "2.3b Normalized phone search, tenant-scoped key lookup" "<10ms" 10 1 "" read
scenario combined "2.4 Combined OR search" "<50ms" 50 1 "" read
scenario bulk100 "3.1 Bulk insert 100 chats (new customers)" "<1000ms (<10ms/chat)" 1000 100 chat write
scenario bulk10k "Bulk insert 10,000 chats (new customers)" "<10ms/chat" 100000 10000 chat write
for h in "${HISTORY_LEVELS[@]}"; do
  scenario "history_$h" "Returning customer's chat, $(printf "%'d" "$h") prior conversations" "<10ms/chat" 10 1 chat write
done
scenario softdel "4.1 Bulk soft delete of 100 customers" "<50ms" 50 100 customer write
scenario lifecycle "Lifecycle update of $(printf "%'d" "$LIFECYCLE_CUSTOMERS") customers (audit + lifecycle)" "<10ms/customer" $((LIFECYCLE_CUSTOMERS * 10)) "$LIFECYCLE_CUSTOMERS" customer write
scenario tenant "5.2 Multi-tenant list at 10,000 customers (as ${TENANT_ROLE:-owner}, RLS)" "<50ms" 50 1 "" read
N_SCEN=$(($(wc -l <"$SCEN") + 4))   # + integrity checks, pgbench, tenants, fresh databases
[ "$NATIVE_STATUS" = installed ] && N_SCEN=$((N_SCEN + 1))   # + trigger_stats

say "scenarios ($RUNS runs each, median reported); setup took $(($(date +%s) - T_BUILT)) s"
NRUNS=$HEAVY_RUNS run_scenario gen "test data generation" 1 s_gen
C1_ID=aaaaaaaa-aaaa-aaaa-aaaa-000000000001
for v in list count detail fuzzy email phone phone_owner phone2 combined; do
  V=$(echo "$v" | tr a-z A-Z); title=$(awk -F'\t' -v id="$v" '$1==id{print $2}' "$SCEN")
  if [ "$v" = phone ] && [ -n "$TENANT_ROLE" ]; then run_scenario "$v" "$title" "$READ_REPS" s_PHONE "$TENANT_ROLE" "$C1_ID"
  elif [ "$v" = phone_owner ]; then run_scenario "$v" "$title" "$READ_REPS" s_PHONE
  else run_scenario "$v" "$title" "$READ_REPS" "s_$V"; fi
done
run_scenario bulk100 "bulk insert 100 chats" 1 s_bulk100
NRUNS=$HEAVY_RUNS run_scenario bulk10k "bulk insert 10,000 chats" 1 s_bulk10k
for h in "${HISTORY_LEVELS[@]}"; do
  HISTORY_H=$h
  run_scenario "history_$h" "returning customer's chat at $h prior conversations ($(history_chats "$h") chats)" "$(history_chats "$h")" s_history
done
run_scenario softdel "bulk soft delete of 100 customers" 1 s_softdel
NRUNS=$HEAVY_RUNS run_scenario lifecycle "lifecycle update of $LIFECYCLE_CUSTOMERS customers" 1 s_lifecycle
if [ -n "$TENANT_ROLE" ]; then run_scenario tenant "multi-tenant list" "$READ_REPS" s_TENANT "$TENANT_ROLE" "$TENANT5"
else run_scenario tenant "multi-tenant list" "$READ_REPS" s_TENANT; fi

# ---------------------------------------------------------------------------
# EXPLAIN: which index each list/search query uses (plpgsql database; the
# three databases have the same schema, data and statistics).
# ---------------------------------------------------------------------------
# The application's queries run as its role (crm_app, under RLS): the
# multi-tenant list and the phone search are explained as that role, like
# they are timed; phone_owner is the phone search as the owner.
for v in LIST COUNT DETAIL FUZZY EMAIL PHONE PHONE2 COMBINED TENANT; do
  eval "qq=\$Q_$v"
  id=$(echo "$v" | tr A-Z a-z)
  case $id in tenant) as_company=$TENANT5 ;; phone) as_company=$C1_ID ;; *) as_company="" ;; esac
  if [ "$id" = phone ]; then q -At -d bench_plpgsql -c "EXPLAIN (COSTS OFF) $qq" >"$OUT/explain/phone_owner.txt"; fi
  if [ -n "$as_company" ] && [ -n "$TENANT_ROLE" ]; then
    q -At -d bench_plpgsql -v stmt="$qq" >"$OUT/explain/$id.txt" <<EOF
SET ROLE $TENANT_ROLE; SET app.current_company_id = '$as_company';
EXPLAIN (COSTS OFF) :stmt;
EOF
  else
    q -At -d bench_plpgsql -c "EXPLAIN (COSTS OFF) $qq" >"$OUT/explain/$id.txt"
  fi
done

# ---------------------------------------------------------------------------
# Data integrity and tenant isolation (seed plan 3.2-3.4, 4.3, 4.4, 5.1, 5.3),
# each database, in rolled-back transactions.
# ---------------------------------------------------------------------------
SCEN_I=$((SCEN_I + 1))
for db in "${DBS[@]}"; do
  progress "integrity and isolation checks ($db)"
  ins=$(chat_stmt "$db" "$(bulk_input 100 99)")
  {
    q -At -F $'\t' -d "bench_$db" -v ins="$ins" <<'EOF'
BEGIN;
:ins;
SELECT 'bulk100_customers_created', COUNT(DISTINCT customer_id) FROM "VC Usage"
 WHERE session_id LIKE 'bulk_session_%' AND customer_id IS NOT NULL;
SELECT 'bulk100_matching_keys', COUNT(*) FROM customer_matching_keys mk JOIN customers c ON mk.customer_id = c.id
 WHERE c.customer_name LIKE 'Bulk Customer %';
SELECT 'bulk100_metrics_rows', COUNT(*) FROM customer_metrics m JOIN customers c ON m.customer_id = c.id
 WHERE c.customer_name LIKE 'Bulk Customer %';
ROLLBACK;
BEGIN;
UPDATE customers SET deleted_at = now() - interval '1 second'
 WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND customer_name LIKE 'Delete Test Customer %';
SELECT 'softdel_should_be_zero', COUNT(*) FROM customers
 WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND customer_name LIKE 'Delete Test Customer %' AND deleted_at IS NULL;
SELECT 'company1_expected', COUNT(*) FROM customers
 WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND deleted_at IS NULL;
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001';
SELECT 'rls_softdeleted_visible', COUNT(*) FROM customers WHERE customer_name LIKE 'Delete Test Customer %';
SELECT 'rls_company1_customers', COUNT(*) FROM customers WHERE deleted_at IS NULL;
SELECT 'rls_cross_tenant_rows', COUNT(*) FROM customers WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000002';
SELECT 'rls_cross_tenant_chats', COUNT(*) FROM "VC Usage" WHERE company_id <> 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001';
ROLLBACK;
EOF
  } 2>&1 | sed "s/^/$db\t/" >>"$OUT/integrity.tsv" || true
done
progress_done "integrity and isolation checks: done"

# ---------------------------------------------------------------------------
# pgbench: single-chat transactions (one INSERT into "VC Usage" each; 70%
# returning customers of the seed data, 30% new visitors) from 2 clients.
# The floor runs the same chats through bench.floor_sync_sql().
# ---------------------------------------------------------------------------
SCEN_I=$((SCEN_I + 1))
RETURNING_VALUES="VALUES (bench.company_id(:c::int), bench.user_id(:c::int), 'Test Customer ' || :i::int,
        'customer' || :i::int || '@example.com', NULL::text, 'pgb_' || :client_id::int || '_' || :i::int, 1,
        'Question about pavers', 'AI response with pricing details...')"
NEW_VALUES="VALUES (bench.company_id(:c::int), bench.user_id(:c::int), 'New Visitor ' || :n::bigint,
        'visitor' || :n::bigint || '_' || :client_id::int || '@example.com', '+1' || (2000000000 + :n::bigint)::text,
        'pgb_new_' || :n::bigint, 1, 'First question', 'First answer')"
pgbench_script() {  # pgbench_script DB [RETURNING_PERCENT (default 70)] > file
  local ret new pct=${2:-70}
  if [ "$1" = floor ]; then
    ret=$(qa -d bench_floor -v input="$RETURNING_VALUES" <<<"SELECT bench.floor_sync_sql(:'input')")
    new=$(qa -d bench_floor -v input="$NEW_VALUES" <<<"SELECT bench.floor_sync_sql(:'input')")
  else
    ret="INSERT INTO \"VC Usage\" ($CHAT_COLS) $RETURNING_VALUES"
    new="INSERT INTO \"VC Usage\" ($CHAT_COLS) $NEW_VALUES"
  fi
  printf '%s\n' "\\set c random(1, $COMPANIES)" "\\set i random(1, $CUSTOMERS_PER_COMPANY)" \
    "\\set n random(1, 1999999999)" "\\set r random(1, 100)" "\\if :r <= $pct" "$ret;" "\\else" "$new;" "\\endif"
}
for db in "${DBS[@]}"; do pgbench_script "$db" >"$OUT/pgbench/chat_$db.sql"; done
# chat_only: the plain chat INSERT on a copy of the floor's database (no
# trigger, no derived row). No trigger implementation can be faster than
# writing the chat alone, so its TPS bounds every ratio against plpgsql from
# above. A copy, so that its chats never change what the floor's runs see.
pgbench_script chat_only >"$OUT/pgbench/chat_chat_only.sql"
q -d postgres -c "CREATE DATABASE bench_chat_only TEMPLATE bench_floor" >/dev/null
# rowwise: the floor's database with bench.rowwise_sync(KIND), each chat's
# rows written while the chat row is, in the fewest SQL statements for the
# kind of chat the run sends (one statement per chat; no lock, no liveness
# check; every foreign-key check). What writing through SQL one chat row at
# a time costs at least; it runs in the by-kind pgbench below and the fresh
# bulk.
rowwise_trigger() {  # rowwise_trigger DB KIND (returning | new)
  q -d "$1" -c 'DROP TRIGGER IF EXISTS bench_rowwise_sync ON "VC Usage"' \
    -c "CREATE TRIGGER bench_rowwise_sync BEFORE INSERT ON \"VC Usage\" FOR EACH ROW EXECUTE FUNCTION bench.rowwise_sync('$2')" >/dev/null
}
for run in $(seq 1 "$PGBENCH_RUNS"); do
  for db in "${DBS[@]}" chat_only; do
    progress "pgbench single-chat transactions, 2 clients x ${PGBENCH_SECONDS}s: run $run/$PGBENCH_RUNS ($db)"
    (cd "$OUT/pgbench" && "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 -T "$PGBENCH_SECONDS" \
        --log --log-prefix="log_${db}_r$run" -f "chat_$db.sql" "bench_$db" >"out_${db}_r$run.txt" 2>&1) || true
  done
done
# The same transactions split by kind (only returning customers' chats, only
# new visitors'), so that the report can say where each implementation's time
# goes and how far the mix can go at best: a new customer's chat writes the
# same rows (customer, keys, event, audit row, metrics) in every
# implementation, whatever the trigger language. rowwise starts from the
# floor's database as the mixed runs left it, like the others.
q -d postgres -c "CREATE DATABASE bench_rowwise TEMPLATE bench_floor" >/dev/null
for kind in returning new; do
  pct=100; [ "$kind" = new ] && pct=0
  rowwise_trigger bench_rowwise "$kind"
  for db in "${DBS[@]}" chat_only rowwise; do
    pgbench_script "$db" "$pct" >"$OUT/pgbench/split_${kind}_$db.sql"
    progress "pgbench single-chat transactions by kind, 2 clients x ${PGBENCH_SECONDS}s: $kind ($db)"
    (cd "$OUT/pgbench" && "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 -T "$PGBENCH_SECONDS" \
        -f "split_${kind}_$db.sql" "bench_$db" >"out_split_${kind}_$db.txt" 2>&1) || true
  done
done
progress_done "pgbench: done"
meta pgbench_seconds "$PGBENCH_SECONDS"
meta pgbench "$PGBENCH_RUNS run(s) x $PGBENCH_SECONDS s per database, 2 clients (-c 2 -j 2 -M prepared)"

# ---------------------------------------------------------------------------
# Tenants never block one another: company B's single chats (the pgbench
# script above, all for company B) from 2 clients, once alone and once while
# company A imports new-customer chats in ONE open transaction (past
# crm_native.sync_key_lock_limit, so A holds its bulk lock), in a separate
# psql connection started just before pgbench and rolled back after it ends.
# pg_stat_activity / pg_locks are sampled at the start and the end of the
# window (bench/out/tenant.tsv).
# ---------------------------------------------------------------------------
SCEN_I=$((SCEN_I + 1))
TENANT_A=3 TENANT_B=4
TENANT_DBS=(); for db in "${DBS[@]}"; do [ "$db" != floor ] && TENANT_DBS+=("$db"); done
TENANT_TSV=$OUT/tenant.tsv; : >"$TENANT_TSV"
tmeta() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TENANT_TSV"; }
TENANT_SNAP="SELECT format('state=%s wait=%s bulk_lock_held=%s key_locks=%s B_backends_waiting_on_locks=%s',
    a.state, coalesce(a.wait_event_type || ':' || a.wait_event, 'none'),
    (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.objsubid = 17235 AND l.granted),
    (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.objsubid = 17234),
    (SELECT count(*) FROM pg_stat_activity b WHERE b.application_name = 'pgbench' AND b.wait_event_type = 'Lock'))
  FROM pg_stat_activity a WHERE a.application_name = 'tenant_import_A' AND a.datname = current_database()"
tenant_import_sql() {  # the import of company A: TENANT_IMPORT new customers' chats, one statement
  printf 'INSERT INTO "VC Usage" (%s) SELECT bench.company_id(%d), bench.user_id(%d), %s, %s, %s, %s, 1, %s, %s FROM generate_series(1, %d) i' \
    "$CHAT_COLS" "$TENANT_A" "$TENANT_A" "'Import Customer ' || i" "'tenant_import_' || i || '@example.com'" \
    "'+1' || (3000000000 + i)" "'tenant_import_session_' || i" "'Imported question'" "'Imported answer'" "$TENANT_IMPORT"
}
tenant_run() {  # tenant_run DB PHASE (alone | import)
  local db=$1 phase=$2 tag="tenant_${1}_$2" fifo="$OUT/pgbench/import_$1.fifo" ipid="" pgpid t0 t1 i
  if [ "$phase" = import ]; then
    rm -f "$fifo"; mkfifo "$fifo"
    PGAPPNAME=tenant_import_A q -At -F $'\t' -d "bench_$db" <"$fifo" >"$OUT/pgbench/import_$db.out" 2>&1 &
    ipid=$!
    exec 7>"$fifo"
    printf '%s\n' "BEGIN;" "SELECT 'import_begin', extract(epoch FROM clock_timestamp());" "$(tenant_import_sql);" \
      "SELECT 'import_done', extract(epoch FROM clock_timestamp());" \
      "SELECT 'import_rows', count(*) FROM \"VC Usage\" WHERE session_id LIKE 'tenant_import_session_%';" \
      "SELECT 'lock_limit', coalesce(current_setting('crm_native.sync_key_lock_limit', true), 'n/a (not defined)');" >&7 || true
    # start pgbench once the import is running (native: once it holds A's bulk lock)
    for i in $(seq 1 100); do
      st=$(qa -d "bench_$db" -c "$TENANT_SNAP" 2>/dev/null || true)
      if [ "$db" = native ]; then [[ $st == *"bulk_lock_held=1"* ]] && break
      else [[ $st == state=active* ]] && break; fi
      sleep 0.05
    done
    tmeta "$db" "$phase" pre_start "$st"
  elif [ "$phase" = cpu ]; then
    # control: one busy backend of company A's connection that takes no lock,
    # for as long as A's import ran (B's slowdown from sharing the CPU only)
    busy=$(awk -F'\t' -v db="$db" '$1==db && $2=="import" && $3=="import_begin"{b=$4} $1==db && $2=="import" && $3=="import_done"{d=$4}
           END{if (b && d) printf "%.1f", d - b; else print 0}' "$TENANT_TSV")
    [ "$busy" = 0 ] && busy=$TENANT_SECONDS
    tmeta "$db" "$phase" busy_seconds "$busy"
    PGAPPNAME=tenant_import_A q -d "bench_$db" -c "DO \$\$ DECLARE t timestamptz := clock_timestamp() + interval '$busy s'; x float8 := 0;
      BEGIN WHILE clock_timestamp() < t LOOP x := x + sqrt(x + 1); END LOOP; END \$\$" >/dev/null 2>&1 &
    ipid=$!
    for i in $(seq 1 100); do
      st=$(qa -d "bench_$db" -c "$TENANT_SNAP" 2>/dev/null || true)
      [[ $st == state=active* ]] && break
      sleep 0.05
    done
  fi
  t0=$(date +%s.%N)
  (cd "$OUT/pgbench" && exec "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 -T "$TENANT_SECONDS" \
      --log --log-prefix="log_$tag" -f "chat_B_$db.sql" "bench_$db" >"out_$tag.txt" 2>&1) &
  pgpid=$!
  # every phase: sample B's backends every 0.25 s for lock waits (same overhead in each phase)
  local samples=0 waiting=0 w now end
  end=$(awk -v t="$t0" -v n="$TENANT_SECONDS" 'BEGIN{printf "%.3f", t + n - 0.5}')
  sleep 0.5
  [ "$phase" = import ] && tmeta "$db" "$phase" window_start "$(qa -d "bench_$db" -c "$TENANT_SNAP" 2>&1 || true)"
  while now=$(date +%s.%N); awk -v a="$now" -v b="$end" 'BEGIN{exit !(a < b)}'; do
    w=$(qa -d "bench_$db" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench' AND wait_event_type = 'Lock'" 2>/dev/null || echo 0)
    samples=$((samples + 1)); [ "$w" -gt 0 ] && waiting=$((waiting + 1))
    sleep 0.25
  done
  [ "$phase" = import ] && tmeta "$db" "$phase" window_end "$(qa -d "bench_$db" -c "$TENANT_SNAP" 2>&1 || true)"
  tmeta "$db" "$phase" lock_wait_samples "$waiting/$samples"
  wait "$pgpid" || true
  [ "$phase" = cpu ] && { wait "$ipid" || true; }
  t1=$(date +%s.%N)
  tmeta "$db" "$phase" pgbench_start "$t0"; tmeta "$db" "$phase" pgbench_end "$t1"
  if [ "$phase" = import ]; then
    tmeta "$db" "$phase" after_pgbench "$(qa -d "bench_$db" -c "$TENANT_SNAP" 2>&1 || true)"
    printf '%s\n' "SELECT 'import_rollback', extract(epoch FROM clock_timestamp());" "ROLLBACK;" >&7 || true
    exec 7>&-
    wait "$ipid" || true
    rm -f "$fifo"
    while IFS=$'\t' read -r k v; do [ -n "$v" ] && tmeta "$db" "$phase" "$k" "$v"; done <"$OUT/pgbench/import_$db.out"
    grep -q ERROR "$OUT/pgbench/import_$db.out" && tmeta "$db" "$phase" import_error "$(grep -m1 ERROR "$OUT/pgbench/import_$db.out")"
    q -d "bench_$db" -c "VACUUM" >/dev/null
  fi
}
for db in "${TENANT_DBS[@]}"; do
  pgbench_script "$db" | sed "s/^\\\\set c random(1, $COMPANIES)\$/\\\\set c $TENANT_B/" >"$OUT/pgbench/chat_B_$db.sql"
done
for db in "${TENANT_DBS[@]}"; do
  for phase in alone import cpu; do
    progress "tenants: company B's chats, 2 clients x ${TENANT_SECONDS}s, $phase ($db)"
    ( trap '' PIPE; tenant_run "$db" "$phase" ) || tmeta "$db" "$phase" script_error "tenant_run failed"
  done
done
progress_done "tenants: done"
meta tenant "company B = Test Company $TENANT_B, 2 clients (-c 2 -j 2 -M prepared) x $TENANT_SECONDS s; company A = Test Company $TENANT_A importing $TENANT_IMPORT new customers' chats in one transaction"

# ---------------------------------------------------------------------------
# Fresh databases (the write path's targets): a freshly created, empty
# database (reference migration, the companies and their users, no customer,
# never analyzed; customers(company_id) indexed as the reference schema
# does), each measurement in a new connection with no preload setting.
#   bulk    one INSERT ... SELECT of 10,000 new customers' chats (FRESH_RUNS
#           databases per kind)
#   import  IMPORT_ROWS new customers' chats in statements of 1,000 in one
#           connection: does a chat cost more once the tables have grown?
#   pgbench the single-chat pgbench above on FRESH_RUNS fresh databases each
# ---------------------------------------------------------------------------
SCEN_I=$((SCEN_I + 1))
FRESH_RUNS=3
if [ "$MODE" = quick ]; then IMPORT_ROWS=20000; else IMPORT_ROWS=100000; fi
FRESH_TSV=$OUT/fresh.tsv; : >"$FRESH_TSV"
fmeta() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$FRESH_TSV"; }
q -d postgres -c "CREATE DATABASE bench_empty" >/dev/null
for f in "$REFERENCE_DIR"/*.sql; do q -d bench_empty -f "$f" >/dev/null; done
q -d bench_empty -f bench/setup.sql >/dev/null
q -d bench_empty -v companies=$COMPANIES >/dev/null <<'EOF'
INSERT INTO companies (id, name) SELECT bench.company_id(n), 'Test Company ' || n FROM generate_series(1, :companies) n;
INSERT INTO users (id, email, company_id)
SELECT bench.user_id(n), 'user' || n || '@company' || n || '.com', bench.company_id(n) FROM generate_series(1, :companies) n;
EOF
for db in "${DBS[@]}"; do
  q -d postgres -c "CREATE DATABASE fresh_tmpl_$db TEMPLATE bench_empty" >/dev/null
  case $db in
    native) q -d fresh_tmpl_native -c "CREATE EXTENSION crm_native" -c "SELECT crm_native.install()" >/dev/null ;;
    floor) q -d fresh_tmpl_floor >/dev/null <<'EOF'
SELECT format('DROP TRIGGER %I ON %s', tgname, tgrelid::regclass) FROM pg_trigger
 WHERE NOT tgisinternal AND tgrelid IN ('public."VC Usage"'::regclass, 'public.customers'::regclass) \gexec
EOF
    ;;
  esac
done
q -d postgres -c "CREATE DATABASE fresh_tmpl_rowwise TEMPLATE fresh_tmpl_floor" >/dev/null
rowwise_trigger fresh_tmpl_rowwise new
fresh_db() {  # fresh_db KIND -> name of a new database copied from the kind's template
  q -d postgres -c "DROP DATABASE IF EXISTS fresh_$1" -c "CREATE DATABASE fresh_$1 TEMPLATE fresh_tmpl_$1" >/dev/null
  echo "fresh_$1"
}
fresh_kind() {  # fresh_kind DB: whose template DB's fresh databases copy (chat_only: the floor's, no triggers)
  if [ "$1" = chat_only ]; then echo floor; else echo "$1"; fi
}
fresh_chats() {  # fresh_chats KIND N FIRST TAG: the statement writing N new customers' chats
  local input="SELECT bench.company_id(1), bench.user_id(1), 'Fresh Customer ' || i, 'fresh_$4_' || i || '@example.com',
    '+1' || (7000000000 + i), 'fresh_session_$4_' || i, 1, 'Fresh question', 'Fresh answer'
    FROM generate_series($3, $3 + $2 - 1) i"
  if [ "$1" = floor ]; then qa -d fresh_tmpl_floor -v input="$input" <<<"SELECT bench.floor_sync_sql(:'input')"
  else printf 'INSERT INTO "VC Usage" (%s) %s' "$CHAT_COLS" "$input"; fi
}
for run in $(seq 1 $FRESH_RUNS); do
  for db in "${DBS[@]}" chat_only rowwise; do
    progress "fresh databases: bulk 10,000 new customers, run $run/$FRESH_RUNS ($db)"
    name=$(fresh_db "$(fresh_kind "$db")")
    fmeta "$db" bulk10k "$run" "$(qa -d "$name" -v stmt="$(fresh_chats "$db" 10000 1 bulk)" <<<"SELECT bench.time_ms(:'stmt', 1)")"
    if [ "$db" = rowwise ] && [ "$run" = 1 ]; then  # the bound must write the rows it claims to
      meta rowwise_rows "$(qa -d "$name" -c "SELECT format('customers %s, matching keys %s, events %s, audit rows %s, metrics rows %s, linked chats %s of %s',
          (SELECT count(*) FROM customers), (SELECT count(*) FROM customer_matching_keys), (SELECT count(*) FROM customer_events),
          (SELECT count(*) FROM customer_audit_log), (SELECT count(*) FROM customer_metrics),
          (SELECT count(customer_id) FROM \"VC Usage\"), (SELECT count(*) FROM \"VC Usage\"))")"
    fi
  done
done
for db in "${DBS[@]}"; do
  progress "fresh databases: import of $IMPORT_ROWS new customers in statements of 1,000 ($db)"
  name=$(fresh_db "$db")
  for k in $(seq 0 $((IMPORT_ROWS / 1000 - 1))); do
    printf 'SELECT %d, bench.time_ms(%s, 1);\n' "$k" \
      "$(qa -d postgres -v s="$(fresh_chats "$db" 1000 $((k * 1000 + 1)) imp)" <<<"SELECT quote_literal(:'s')")"
  done | qa -F $'\t' -d "$name" >"$OUT/fresh_import_$db.tsv"
  while IFS=$'\t' read -r k ms; do fmeta "$db" import "$k" "$ms"; done <"$OUT/fresh_import_$db.tsv"
  # tuples read from customers and the matching keys over the import, per chat
  sleep 1  # let the statistics of the last statements reach the collector
  fmeta "$db" import_reads_per_chat 0 "$(qa -d "$name" -c "SELECT round(sum(coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0))::numeric / $IMPORT_ROWS, 2)
      FROM pg_stat_user_tables WHERE relname IN ('customers', 'customer_matching_keys')")"
done
for run in $(seq 1 $FRESH_RUNS); do
  for db in "${DBS[@]}" chat_only; do
    progress "fresh databases: pgbench single-chat, 2 clients x ${PGBENCH_SECONDS}s, run $run/$FRESH_RUNS ($db)"
    name=$(fresh_db "$(fresh_kind "$db")")
    (cd "$OUT/pgbench" && "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 -T "$PGBENCH_SECONDS" \
        -f "chat_$db.sql" "$name" >"fresh_${db}_r$run.txt" 2>&1) || true
    fmeta "$db" pgbench "$run" "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$OUT/pgbench/fresh_${db}_r$run.txt" | head -1)"
  done
done
for db in "${DBS[@]}" rowwise; do q -d postgres -c "DROP DATABASE IF EXISTS fresh_$db" >/dev/null; done
progress_done "fresh databases: done"
meta fresh "freshly created empty databases (reference migration, $COMPANIES companies and their users, no customer, never analyzed), each timed statement the first of a new connection, no preload; bulk: $FRESH_RUNS databases per kind; import: $IMPORT_ROWS chats in statements of 1,000 in one connection; pgbench: $FRESH_RUNS fresh databases per kind x ${PGBENCH_SECONDS} s, 2 clients"
meta import_rows "$IMPORT_ROWS"

# ---------------------------------------------------------------------------
# Operations: crm_native.search_customers at 100,000 customers in one company
# (docs/operations.md; a separate block with its own report section). Its own
# database, bench_ops (bench_seed + crm_native installed + "Search Company"
# with 100,000 customers written set-wise, keys normalized by crm_native), so
# no other scenario is affected. Each query is timed as the owner and as
# crm_app (RLS): READ_REPS executions per run after one untimed execution,
# RUNS runs, median. The plans are those of the statement search_customers
# runs (crm_native._search_query), EXPLAIN ANALYZE with the same values.
# Results: bench/out/search.tsv, bench/out/explain/search_*.txt.
# ---------------------------------------------------------------------------
SEARCH_TSV=$OUT/search.tsv; : >"$SEARCH_TSV"
SEARCH_CUSTOMERS=100000
if [ "$NATIVE_STATUS" = installed ]; then
  say "operations: search_customers at $SEARCH_CUSTOMERS customers in one company (bench_ops)"
  q -d postgres -c "CREATE DATABASE bench_ops TEMPLATE bench_seed" >/dev/null
  q -d bench_ops -v n=$SEARCH_CUSTOMERS >/dev/null <<'SQL'
CREATE EXTENSION crm_native;
SELECT crm_native.install();
GRANT USAGE ON SCHEMA crm_native TO crm_app;
SET session_replication_role = replica;   -- set-wise; the keys are written below
INSERT INTO companies (id, name) VALUES (bench.company_id(900), 'Search Company');
INSERT INTO customers (company_id, customer_name, customer_email, customer_phone, source, created_at)
SELECT bench.company_id(900), f.n || ' ' || l.n, lower(f.n || '.' || l.n || '.' || i) || '@example.com',
       '+1 212 ' || lpad(i::text, 7, '0'), 'import', now() - i * interval '1 minute'
  FROM generate_series(1, :n) i
 CROSS JOIN LATERAL (SELECT (ARRAY['James','Mary','John','Patricia','Robert','Jennifer','Michael','Linda',
        'William','Elizabeth','David','Barbara','Richard','Susan','Joseph','Jessica','Thomas','Sarah','Charles',
        'Karen','Christopher','Nancy','Daniel','Lisa','Matthew','Betty','Anthony','Margaret','Mark','Sandra',
        'Donald','Ashley','Steven','Kimberly','Paul','Emily','Andrew','Donna','Joshua','Michelle'])[1 + i % 40]) f (n)
 CROSS JOIN LATERAL (SELECT (ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis',
        'Rodriguez','Martinez','Hernandez','Lopez','Gonzalez','Wilson','Anderson','Thomas','Taylor','Moore',
        'Jackson','Martin','Lee','Perez','Thompson','White','Harris','Sanchez','Clark','Ramirez','Lewis',
        'Robinson','Walker','Young','Allen','King','Wright','Scott','Torres','Nguyen','Hill','Flores','Green',
        'Adams','Nelson','Baker','Hall','Rivera','Campbell','Mitchell','Carter','Roberts'])[1 + (i / 40) % 50]) l (n);
INSERT INTO customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
SELECT c.id, c.company_id, k.t, k.v, k.nv
  FROM customers c
 CROSS JOIN LATERAL (VALUES ('name', c.customer_name, crm_native.normalize_name(c.customer_name)),
                           ('email', c.customer_email, crm_native.normalize_email(c.customer_email)),
                           ('phone', c.customer_phone, crm_native.normalize_phone(c.customer_phone))) k (t, v, nv)
 WHERE c.company_id = bench.company_id(900) AND k.nv IS NOT NULL;
RESET session_replication_role;
SQL
  q -d bench_ops -c "VACUUM ANALYZE" >/dev/null
  SEARCH_CO=$(qa -d bench_ops -c "SELECT bench.company_id(900)")
  SEARCH_EMAIL=$(qa -d bench_ops -c "SELECT upper(left(customer_email, 1)) || substr(customer_email, 2) FROM customers
                                     WHERE company_id = bench.company_id(900) AND customer_phone = '+1 212 0004242'")
  TRGM_SCHEMA=$(qa -d bench_ops -c "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_trgm'")
  meta search_data "$(qa -d bench_ops -c "SELECT format('%s customers in Search Company (%s in the database), %s matching keys',
    (SELECT count(*) FROM customers WHERE company_id = bench.company_id(900)), (SELECT count(*) FROM customers),
    (SELECT count(*) FROM customer_matching_keys))")"
  # search_time KIND LABEL QUERY [ROLE_SQL]: RUNS timings of one search
  # (READ_REPS executions each, after one untimed) into search.tsv
  search_time() {
    local kind=$1 label=$2 query=$3 setrole=${4:-} stmt nrows run ms
    stmt="SELECT count(*) FROM crm_native.search_customers('$SEARCH_CO', \$q\$$query\$q\$)"
    nrows=$(qa -d bench_ops -c "$stmt")
    for run in $(seq 1 "$RUNS"); do
      ms=$(q -At -d bench_ops -v stmt="$stmt" -v reps="$READ_REPS" <<SQL
$setrole
SELECT bench.time_ms(:'stmt', 1) \gset w_
SELECT bench.time_ms(:'stmt', :reps) AS ms \gset
\echo :ms
SQL
)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$label" "$query" "$run" "$ms" "$nrows" >>"$SEARCH_TSV"
    done
  }
  # search_explain QUERY FILE [ROLE_SQL]: EXPLAIN ANALYZE of the statement
  # search_customers runs (crm_native._search_query), with these values
  search_explain() {
    q -At -d bench_ops -v co="$SEARCH_CO" -v query="$1" -v trgm="$TRGM_SCHEMA" >"$2" 2>&1 <<SQL || true
${3:-}
SELECT format('PREPARE search_plan (uuid, text, int, text, text, text, text, boolean) AS %s',
              crm_native._search_query('public', :'trgm')) \gexec
SELECT format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE search_plan(%L, %L, 20, %L, %L, %L, %L, %L)',
              :'co', btrim(:'query'), k.email_key, k.phone_key, k.name_key, 'public', k.try_names)
  FROM crm_native._search_keys(btrim(:'query')) k \gexec
SQL
  }
  as_crm_app="SET ROLE crm_app; SET app.current_company_id = '$SEARCH_CO';"
  for spec in "email|$SEARCH_EMAIL" "phone|(212) 000-4242" "name|John Smith" "fuzzy|Jon Smyth"; do
    kind=${spec%%|*}; query=${spec#*|}
    search_time "$kind" owner "$query"
    search_time "$kind" crm_app "$query" "$as_crm_app"
    search_explain "$query" "$OUT/explain/search_$kind.txt"
  done
  # The name searches again as crm_app with an index of crm_native's LEAKPROOF
  # trigram operator class (docs/operations.md, "Search under row-level
  # security"), which search_customers then uses; plan as crm_app.
  q -d bench_ops -c "CREATE INDEX idx_customers_name_trgm_leakproof ON customers
      USING gin (customer_name crm_native.gin_trgm_leakproof_ops) WHERE deleted_at IS NULL" -c "VACUUM ANALYZE customers" >/dev/null
  for spec in "name|John Smith" "fuzzy|Jon Smyth"; do
    kind=${spec%%|*}; query=${spec#*|}
    search_time "$kind" crm_app_leakproof "$query" "$as_crm_app"
    search_explain "$query" "$OUT/explain/search_${kind}_crm_app_leakproof.txt" "$as_crm_app"
  done
  meta search "$RUNS run(s) x $READ_REPS executions per query and role, after one untimed execution; median of the runs"
else
  meta search "not run: crm_native is not installed ($NATIVE_STATUS)"
fi
# ===========================================================================
# BEGIN trigger_stats block (issue 15; docs/observe.md). Runs last, so that
# nothing above runs with crm_native preloaded: the cluster is restarted
# (same data) with shared_preload_libraries = crm_native, then the
# single-chat pgbench of the native database (chat_native.sql above) runs
# with the statistics on and off (crm_native.trigger_stats, set per
# connection through PGOPTIONS: off skips the counting and calls the trigger
# directly, as without preloading), in alternating order, TS_PAIRS pairs of
# PGBENCH_SECONDS each. Then SELECT * FROM crm_native.trigger_stats (reset
# before the runs; it holds the "on" runs only). Files: trigger_stats_ab.tsv,
# trigger_stats.txt, trigger_stats.tsv (bench/report.py, trigger_stats_report()).
# ===========================================================================
if [ "$NATIVE_STATUS" = installed ]; then
  SCEN_I=$((SCEN_I + 1))
  TS_PAIRS=3
  progress "trigger_stats: restart with shared_preload_libraries = crm_native"
  ts_opts="-c listen_addresses='' -c unix_socket_directories='$CRM_CLUSTER_DIR/sock' -p 5432"
  for s_ in "${SETTINGS[@]}" shared_preload_libraries=crm_native; do ts_opts="$ts_opts -c $s_"; done
  crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$CRM_PGDATA" -o "$ts_opts" -l "$CRM_CLUSTER_DIR/server.log" -w -t 120 restart >/dev/null
  meta trigger_stats_preload "$(qa -d bench_native -c "SHOW shared_preload_libraries")"
  q -d bench_native -c "VACUUM ANALYZE" >/dev/null
  q -d bench_native -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
  : >"$OUT/trigger_stats_ab.tsv"
  for pair in $(seq 1 "$TS_PAIRS"); do
    if [ $((pair % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    for mode in $order; do
      progress "trigger_stats overhead: pair $pair/$TS_PAIRS, statistics $mode, 2 clients x ${PGBENCH_SECONDS}s"
      (cd "$OUT/pgbench" && PGOPTIONS="-c crm_native.trigger_stats=$mode" "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 \
          -T "$PGBENCH_SECONDS" -f chat_native.sql bench_native >"out_ts_${mode}_p$pair.txt" 2>&1) || true
      tps=$(awk '/^tps = /{print $3; exit}' "$OUT/pgbench/out_ts_${mode}_p$pair.txt")
      lat=$(awk '/^latency average = /{print $4; exit}' "$OUT/pgbench/out_ts_${mode}_p$pair.txt")
      printf '%s\t%s\t%s\t%s\n' "$mode" "$pair" "${tps:-}" "${lat:-}" >>"$OUT/trigger_stats_ab.tsv"
    done
  done
  q -d bench_native -c "SELECT * FROM crm_native.trigger_stats" >"$OUT/trigger_stats.txt" 2>&1 || true
  qa -F $'\t' -d bench_native -c "SELECT function, table_name, calls, rows, round(total_ms::numeric, 1),
      round(mean_ms::numeric, 4), round(p50_ms::numeric, 4), round(p95_ms::numeric, 4), round(p99_ms::numeric, 4),
      round(max_ms::numeric, 2), errors, serialization_failures, customers_created, customers_matched,
      unlinked_no_contact, unlinked_normalize_failed, lock_waits, round(lock_wait_ms::numeric, 2)
      FROM crm_native.trigger_stats WHERE database = 'bench_native' ORDER BY calls DESC" >"$OUT/trigger_stats.tsv" 2>&1 || true
  meta trigger_stats_ab "$TS_PAIRS pair(s) x $PGBENCH_SECONDS s per mode, 2 clients (-c 2 -j 2 -M prepared), alternating order, same server (crm_native preloaded), crm_native.trigger_stats on/off per connection"
  progress_done "trigger_stats: done"
  cat "$OUT/trigger_stats.txt" >&2
fi
# END trigger_stats block
# ===========================================================================

T_END=$(date +%s)
meta elapsed_after_build "$((T_END - T_BUILT))"
meta elapsed_total "$((T_END - T_START))"
if [ "$KEEP" = 1 ]; then
  trap - EXIT
  say "cluster left running: PGHOST=$PGHOST PGUSER=postgres psql -d bench_native"
  say "stop it with: $CRM_PGBIN/pg_ctl -D $CRM_PGDATA stop (as postgres)"
else
  crm_cluster_stop
fi

# Citus section (issue 18): its own cluster (a coordinator and 2 workers),
# started after this one is stopped; it never fails the benchmark: a skip or
# a failure is recorded in citus.tsv and the report says so.
if [ "$CITUS" = 1 ]; then
  CITUS_ARGS=()
  [ "$MODE" = quick ] && CITUS_ARGS=(--runs 1 --pgbench-seconds 5 --pgbench-runs 1)
  say "Citus section (scripts/bench_citus.sh ${CITUS_ARGS[*]})"
  bash scripts/bench_citus.sh --no-build --no-report --out "$OUT" "${CITUS_ARGS[@]}" \
    || printf 'status\tfailed: scripts/bench_citus.sh exited with an error (see its output)\n' >>"$OUT/citus.tsv"
else
  printf 'status\tskipped: scripts/bench.sh --no-citus\n' >"$OUT/citus.tsv"
fi

/usr/bin/python3 bench/report.py "$OUT"
if command -v gnuplot >/dev/null && [ -s "$OUT/history.dat" ]; then
  gnuplot "$OUT/history.gp" 2>"$OUT/gnuplot.log" || say "gnuplot failed (see $OUT/gnuplot.log)"
fi
cat "$OUT/report.md"
say "report: $OUT/report.md, plot: $OUT/history.png ($((T_END - T_BUILT)) s after the build)"
