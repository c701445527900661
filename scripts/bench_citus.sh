#!/usr/bin/env bash
# Citus section of the benchmark (issue 18): the seed's bulk and single-chat
# workloads through the coordinator of a local Citus cluster (scripts/citus.sh:
# a coordinator and 2 workers on 127.0.0.1, ONE machine), beside the same
# workloads on a single node. Called by scripts/bench.sh after its own
# cluster is stopped, or alone:
#
#   scripts/bench_citus.sh                 about 3.5 minutes (shared 2-core machine) after the build
#   scripts/bench_citus.sh --runs 1 --pgbench-seconds 5 --pgbench-runs 1   (about 2 minutes)
#
# Options: --runs N (bulk runs per database and kind, default 3),
#   --pgbench-seconds N (default 8), --pgbench-runs N (default 3),
#   --no-build (reuse the staged crm_native), --no-report (do not run
#   bench/report.py; bench.sh runs it), --out DIR (default bench/out).
#
# Databases (all on the local Citus cluster's servers, same settings):
#   citus_native    reference/01..03 + reference/citus/04_distribute.sql on
#                   the coordinator, then crm_native installed (its triggers
#                   run on the shards, on the workers). Before the install,
#                   with the application's plpgsql triggers (reference/02) on
#                   the shards, one attempt of each workload ("citus_plpgsql"):
#                   they fail on Citus; the exact errors are recorded, nothing
#                   is adapted
#   single_native   plain databases (no citus extension in them) on the
#   single_plpgsql  coordinator's server: the single node, reached the same
#                   way (TCP 127.0.0.1)
# Each starts with 10 companies x 1,000 customers, each customer written by
# one chat through the database's own triggers (single_native is a copy of
# single_plpgsql with crm_native.install() run on it).
#
# Measured (pgbench first, on the seed's customers; then the bulks):
#   bulk    one INSERT ... SELECT of 10,000 new-customer chats, through the
#           coordinator: over the 10 companies (1,000 each) and in one company;
#           timed by the client (psql \timing, autocommit: the commit, on
#           Citus a two-phase commit, is included), after a rolled-back warm-up of 100 chats in the same
#           session; committed, new customers every run; runs interleaved
#   pgbench the single-chat pgbench of scripts/bench.sh (one chat INSERT per
#           transaction, 70% returning customers, 30% new, 10 companies),
#           2 clients, -M prepared
#   what happens: citus.log_remote_commands on the coordinator for a single
#           chat and for small bulks (commands sent to the workers, 2PC or
#           not), EXPLAIN of the bulk, pg_stat_statements on every node
#           (track = all only for this probe) over 400 single chats (pgbench
#           -t 200 -c 2) on Citus and on the single node, and which worker
#           holds each company's shard
#
# Writes into OUT (default bench/out): rows of results.tsv (id db run value;
# ids citus_*; rows of an earlier run of this script are replaced), citus.tsv
# (status, settings, errors, evidence summaries), citus_evidence.txt (the
# raw probes), pgbench/citus_*; then bench/report.py (section "Citus (local
# cluster)") unless --no-report. Without Citus (scripts/citus.sh, citus_find)
# it records "skipped: <why>" and the report says so.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUNS=3 PGB_SECONDS=8 PGB_RUNS=3 BUILD=1 REPORT=1 OUT=$ROOT/bench/out
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift ;;
    --pgbench-seconds) PGB_SECONDS=$2; shift ;;
    --pgbench-runs) PGB_RUNS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-report) REPORT=0 ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
    *) echo "bench_citus.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$OUT/pgbench"
RESULTS=$OUT/results.tsv
CMETA=$OUT/citus.tsv
EVID=$OUT/citus_evidence.txt
touch "$RESULTS"
# replace the rows of an earlier run of this script
grep -v '^citus_' "$RESULTS" >"$RESULTS.tmp" || true; mv "$RESULTS.tmp" "$RESULTS"
: >"$CMETA"; : >"$EVID"
rm -f "$OUT"/pgbench/citus_*
T0=$SECONDS

say() { printf '\033[1m[bench-citus %3ds]\033[0m %s\n' "$((SECONDS - T0))" "$*" >&2; }
cmeta() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\t\n' '  ')" >>"$CMETA"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
finish() {  # finish STATUS: record, report, exit 0 (a skip or failure here never fails bench.sh)
  cmeta status "$1"
  cmeta elapsed "$((SECONDS - T0))"
  say "$1 ($((SECONDS - T0)) s)"
  citus_cluster_stop 2>/dev/null || true
  [ "$REPORT" = 1 ] && /usr/bin/python3 bench/report.py "$OUT" && say "report: $OUT/report.md"
  exit 0
}

# shellcheck source=pgenv.sh
source scripts/pgenv.sh
# shellcheck source=citus.sh
source scripts/citus.sh
if ! citus_find; then finish "skipped: Citus not available ($CITUS_WHY)"; fi
if [ "$BUILD" = 1 ]; then say "build + stage crm_native"; crm_stage || finish "failed: crm_stage (see $CRM_RUN_DIR/build.log)"; fi
[ -f "$CRM_STAGE$PG_SYS_PKGLIBDIR/crm_native.so" ] || finish "skipped: crm_native is not staged in $CRM_STAGE (run without --no-build)"
citus_stage || finish "failed: could not build or stage Citus ($CITUS_SOURCE)"
cmeta citus "Citus $CITUS_VERSION from $CITUS_SOURCE"

# The servers' settings: scripts/citus.sh's (fsync=off, synchronous_commit=off,
# full_page_writes=off, max_prepared_transactions=100) plus these. The single
# node lives on the coordinator's server, so both sides run with the same
# settings. pg_stat_statements is loaded for the probe only (track = none
# while timing).
SETTINGS=(shared_preload_libraries=citus,pg_stat_statements
          shared_buffers=256MB work_mem=32MB jit=off autovacuum=off)
citus_cluster_start "${SETTINGS[@]}" >/dev/null 2>"$OUT/citus_cluster.log" \
  || finish "failed: could not start the Citus cluster: $(tail -3 "$OUT/citus_cluster.log" | tr '\n' ' ')"
cmeta settings "citus.sh defaults (fsync=off synchronous_commit=off full_page_writes=off max_prepared_transactions=100 citus.enable_unsafe_triggers=on) + ${SETTINGS[*]} pg_stat_statements.track=none (all during the probe only)"
cmeta machine "$(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GB RAM; coordinator and both workers on this one machine"
cmeta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
cmeta date "$(date -u '+%Y-%m-%d %H:%M UTC')"

PSQL=$CRM_PGBIN/psql
# cq DB NODE [psql args]: TCP to a node, as postgres (the single node: NODE coord)
cq() { local db=$1 node=$2; shift 2
       PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(citus_port "$node")" -U postgres -d "$db" "$@"; }
first_error() {  # first_error FILE: the ERROR line with its DETAIL and HINT, one line
  # (CONTEXT up to its first "PL/pgSQL function ..." line: the failing statement and its function)
  awk '/ERROR:/{p=1} p&&/^(DETAIL|HINT):/{print; next} p&&/ERROR:/{print; next}
       p&&/^CONTEXT:/{c=1} c{print; if (/PL\/pgSQL function/ || ++n >= 8) exit}' "$1" \
    | tr '\n' ' ' | sed 's/  */ /g' | cut -c1-1200
}

# pg_stat_statements.track through ALTER SYSTEM (a -c option would override
# the probe's ALTER SYSTEM below)
for n in "${CITUS_NODES[@]}"; do
  cq postgres "$n" -c "ALTER SYSTEM SET pg_stat_statements.track = 'none'" -c "SELECT pg_reload_conf()" >/dev/null
done

CO="('aaaaaaaa-aaaa-aaaa-aaaa-' || lpad(n::text, 12, '0'))::uuid"
US="('bbbbbbbb-bbbb-bbbb-bbbb-' || lpad(n::text, 12, '0'))::uuid"
CHAT_COLS='company_id, user_id, customer_name, customer_email, customer_phone, session_id, interaction_number, user_message, ai_response'
COMPANIES=10 CUSTOMERS=1000
# chats TAG N_COMPANIES PER_COMPANY: one INSERT ... SELECT of new customers' chats
chats() {
  printf 'INSERT INTO "VC Usage" (%s) SELECT %s, %s, %s, %s, %s, %s, 1, %s, %s FROM generate_series(1, %d) n, generate_series(1, %d) i' \
    "$CHAT_COLS" "$CO" "$US" "'Bulk Customer $1 ' || n || '.' || i" "'bulk_$1_' || n || '_' || i || '@example.com'" \
    "'+1' || (6000000000 + n * 100000 + i)" "'bulk_session_$1_' || n || '_' || i" "'Bulk test message'" "'Bulk test response'" "$2" "$3"
}
SEED_SQL="INSERT INTO companies (id, name) SELECT $CO, 'Test Company ' || n FROM generate_series(1, $COMPANIES) n;
INSERT INTO users (id, email, company_id) SELECT $US, 'user' || n || '@company' || n || '.com', $CO FROM generate_series(1, $COMPANIES) n;"
SEED_CHATS="INSERT INTO \"VC Usage\" ($CHAT_COLS) SELECT $CO, $US, 'Test Customer ' || i, 'customer' || i || '@example.com', NULL,
  'seed_' || n || '_' || i, 1, 'Question about pavers', 'AI response' FROM generate_series(1, $COMPANIES) n, generate_series(1, $CUSTOMERS) i"

# ---------------------------------------------------------------------------
# pgbench: scripts/bench.sh's single-chat transactions (inline company ids:
# no bench schema on the cluster)
# ---------------------------------------------------------------------------
PGB_SCRIPT=$OUT/pgbench/citus_chat.sql
{
  printf '%s\n' "\\set c random(1, $COMPANIES)" "\\set i random(1, $CUSTOMERS)" "\\set n random(1, 1999999999)" \
    "\\set r random(1, 100)" "\\if :r <= 70"
  echo "INSERT INTO \"VC Usage\" ($CHAT_COLS) VALUES (('aaaaaaaa-aaaa-aaaa-aaaa-' || lpad(:c::text, 12, '0'))::uuid,
        ('bbbbbbbb-bbbb-bbbb-bbbb-' || lpad(:c::text, 12, '0'))::uuid, 'Test Customer ' || :i::int,
        'customer' || :i::int || '@example.com', NULL::text, 'pgb_' || :client_id::int || '_' || :i::int, 1,
        'Question about pavers', 'AI response with pricing details...');"
  echo "\\else"
  echo "INSERT INTO \"VC Usage\" ($CHAT_COLS) VALUES (('aaaaaaaa-aaaa-aaaa-aaaa-' || lpad(:c::text, 12, '0'))::uuid,
        ('bbbbbbbb-bbbb-bbbb-bbbb-' || lpad(:c::text, 12, '0'))::uuid, 'New Visitor ' || :n::bigint,
        'visitor' || :n::bigint || '_' || :client_id::int || '@example.com', '+1' || (2000000000 + :n::bigint)::text,
        'pgb_new_' || :n::bigint, 1, 'First question', 'First answer');"
  echo "\\endif"
} >"$PGB_SCRIPT"
pgb() {  # pgb DB TAG [pgbench args...]
  local db=$1 tag=$2; shift 2
  (cd "$OUT/pgbench" && "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 -h 127.0.0.1 -p "$CITUS_COORD_PORT" -U postgres \
     "$@" -f citus_chat.sql "$db" >"citus_pgbench_${db}_$tag.txt" 2>&1)
}
# ---------------------------------------------------------------------------
# databases
# ---------------------------------------------------------------------------
say "databases: citus_native (distributed), single_plpgsql, single_native"
mk_citus() {  # mk_citus NAME: reference 01..03 + 04_distribute, companies and users
  local db=$1 f
  citus_setup_db "$db" >/dev/null 2>"$OUT/citus_$db.setup.log" || return 1
  for f in reference/01_schema.sql reference/02_plpgsql_triggers.sql reference/03_rls.sql reference/citus/04_distribute.sql; do
    cq "$db" coord -f "$f" >>"$OUT/citus_$db.setup.log" 2>&1 || { echo "$f: $(first_error "$OUT/citus_$db.setup.log")"; return 1; }
  done
  cq postgres coord -c "ALTER DATABASE \"$db\" SET citus.propagate_set_commands = 'local'" >/dev/null || return 1
  cq "$db" coord -c "$SEED_SQL" >/dev/null || return 1
}
if ! err=$(mk_citus citus_native); then finish "failed: setting up citus_native: $err"; fi

# The application's plpgsql triggers on Citus (reference/02, on the shards
# after 04_distribute.sql), before crm_native replaces them: one attempt of
# each workload, its exact error recorded (label citus_plpgsql). A returning
# customer is written first with the triggers off (SET LOCAL
# session_replication_role, propagated to the worker) and removed afterwards.
attempt() {  # attempt LABEL SQL: run through the coordinator; the error, if any, goes to citus.tsv
  local log=$OUT/citus_plpgsql_$1.log
  if cq citus_native coord -c "$2" >"$log" 2>&1; then cmeta "plpgsql_ran_$1" "ran without error"
  else cmeta "error_$1_citus_plpgsql" "$(first_error "$log")"; fi
}
say "plpgsql triggers on Citus: one attempt of each workload"
RET_ROW="('aaaaaaaa-aaaa-aaaa-aaaa-000000000001', 'Returning Probe', 'returning.probe@example.com', 'chat')"
cq citus_native coord -c "BEGIN" -c "SET LOCAL session_replication_role = replica" \
  -c "INSERT INTO customers (company_id, customer_name, customer_email, source) VALUES $RET_ROW" \
  -c "INSERT INTO customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
      SELECT id, company_id, 'email', customer_email, lower(customer_email) FROM customers
       WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND customer_email = 'returning.probe@example.com'" \
  -c "COMMIT" >/dev/null 2>"$OUT/citus_plpgsql_setup.log"
attempt chat_returning "INSERT INTO \"VC Usage\" ($CHAT_COLS) VALUES ('aaaaaaaa-aaaa-aaaa-aaaa-000000000001',
  'bbbbbbbb-bbbb-bbbb-bbbb-000000000001', 'Returning Probe', 'returning.probe@example.com', NULL, 'probe_r', 1, 'q', 'a')"
attempt chat_new "INSERT INTO \"VC Usage\" ($CHAT_COLS) VALUES ('aaaaaaaa-aaaa-aaaa-aaaa-000000000001',
  'bbbbbbbb-bbbb-bbbb-bbbb-000000000001', 'New Probe', 'new.probe@example.com', '+12125550100', 'probe_n', 1, 'q', 'a')"
attempt bulk_multi "$(chats plpgsql_m "$COMPANIES" $((10000 / COMPANIES)))"
attempt bulk_single "$(chats plpgsql_s 1 10000)"
say "pgbench single-chat: plpgsql on Citus (one attempt, 10 transactions per client)"
pgb citus_native plpgsql -t 10
f=$OUT/pgbench/citus_pgbench_citus_native_plpgsql.txt
if grep -q 'ERROR\|aborted' "$f" || ! grep -q '^tps = ' "$f"; then
  cmeta error_pgbench_citus_plpgsql "$(first_error "$f")"
else
  record citus_pgbench_tps citus_plpgsql 1 "$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$f")"
fi
cq citus_native coord -c "BEGIN" -c "SET LOCAL session_replication_role = replica" \
  -c "DELETE FROM customer_matching_keys WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001'" \
  -c "DELETE FROM customers WHERE company_id = 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001' AND customer_email = 'returning.probe@example.com'" \
  -c "COMMIT" >/dev/null 2>>"$OUT/citus_plpgsql_setup.log"
[ "$(cq citus_native coord -At -c "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM customer_matching_keys)
      + (SELECT count(*) FROM \"VC Usage\") + (SELECT count(*) FROM customer_events)")" = 0 ] \
  || finish "failed: citus_native is not empty after the plpgsql attempts: $(cat "$OUT/citus_plpgsql_setup.log")"

if ! cq citus_native coord -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >"$OUT/citus_install.log" 2>&1; then
  finish "failed: crm_native.install() on Citus: $(first_error "$OUT/citus_install.log")"
fi
# install()'s warnings on Citus (its checks of the keys), as they are
grep -E '^WARNING' "$OUT/citus_install.log" | while read -r l; do cmeta install_warning "$l"; done
cq postgres coord -c "CREATE DATABASE single_plpgsql" >/dev/null || finish "failed: CREATE DATABASE single_plpgsql"
for f in reference/01_schema.sql reference/02_plpgsql_triggers.sql reference/03_rls.sql; do
  cq single_plpgsql coord -f "$f" >/dev/null || finish "failed: loading $f into single_plpgsql"
done
cq single_plpgsql coord -c "$SEED_SQL" >/dev/null || finish "failed: seeding single_plpgsql"

# the seed's customers, one chat each, through each database's own triggers
seed() {  # seed DB -> ms, or records the error
  local log=$OUT/citus_seed_$1.log
  if cq "$1" coord -c '\timing on' -c "$SEED_CHATS" >"$log" 2>&1; then
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$log" | tail -1
  else
    cmeta "error_seed_$1" "$(first_error "$log")"; return 1
  fi
}
t=$(seed single_plpgsql) || finish "failed: seeding single_plpgsql: $(first_error "$OUT/citus_seed_single_plpgsql.log")"
cmeta seed_ms_single_plpgsql "$t"
cq postgres coord -c "CREATE DATABASE single_native TEMPLATE single_plpgsql" >/dev/null || finish "failed: CREATE DATABASE single_native"
cq single_native coord -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >/dev/null 2>"$OUT/single_install.log" \
  || finish "failed: crm_native.install() on single_native: $(first_error "$OUT/single_install.log")"
t=$(seed citus_native) || finish "failed: seeding citus_native through the coordinator: $(first_error "$OUT/citus_seed_citus_native.log")"
cmeta seed_ms_citus_native "$t"
for db in citus_native single_native single_plpgsql; do cq "$db" coord -c "ANALYZE" >/dev/null 2>&1; done
cmeta data "$COMPANIES companies x $CUSTOMERS customers (one chat each) for pgbench, which runs first; then the bulks, each run adding 10,000 new customers"
cmeta data_citus_native "$(cq citus_native coord -At -c "SELECT format('%s customers, %s chats, %s matching keys, %s metrics rows',
  (SELECT count(*) FROM customers), (SELECT count(*) FROM \"VC Usage\"), (SELECT count(*) FROM customer_matching_keys),
  (SELECT count(*) FROM customer_metrics))")"
cmeta data_single_native "$(cq single_native coord -At -c "SELECT format('%s customers, %s chats, %s matching keys, %s metrics rows',
  (SELECT count(*) FROM customers), (SELECT count(*) FROM \"VC Usage\"), (SELECT count(*) FROM customer_matching_keys),
  (SELECT count(*) FROM customer_metrics))")"
# where each company lives
cq citus_native coord -At -F $'\t' -c "SELECT n, s.shardid, nd.nodename || ':' || nd.nodeport
    FROM generate_series(1, $COMPANIES) n
    CROSS JOIN LATERAL (SELECT get_shard_id_for_distribution_column('customers', $CO) AS shardid) s
    JOIN pg_dist_placement p ON p.shardid = s.shardid JOIN pg_dist_node nd ON nd.groupid = p.groupid ORDER BY n" >"$OUT/citus_placement.tsv"
cmeta placement "$(awk -F'\t' -v w1="127.0.0.1:$CITUS_W1_PORT" -v w2="127.0.0.1:$CITUS_W2_PORT" '
  {sh[$2]=1; if ($3==w1) {a=a" "$1} else if ($3==w2) {b=b" "$1} else {c=c" "$1}}
  END {n=0; for (k in sh) n++; printf "%d shards of customers for the 10 companies; worker 1 holds companies%s, worker 2 holds companies%s%s", n, (a?a:" none"), (b?b:" none"), (c?"; elsewhere:"c:"")}' "$OUT/citus_placement.tsv")"
cmeta shard_count "$(cq citus_native coord -At -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'customers'::regclass")"
say "setup done after $((SECONDS - T0)) s"

# ---------------------------------------------------------------------------
# pgbench single-chat (the script above), on the seed's 10,000 customers
# ---------------------------------------------------------------------------
DBS=(citus_native single_native single_plpgsql)
for run in $(seq 1 "$PGB_RUNS"); do
  for db in "${DBS[@]}"; do
    say "pgbench single-chat, 2 clients x ${PGB_SECONDS} s, run $run/$PGB_RUNS: $db"
    pgb "$db" "r$run" -T "$PGB_SECONDS"
    f=$OUT/pgbench/citus_pgbench_${db}_r$run.txt
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$f")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$f")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$f")
    if [ -n "$tps" ]; then record citus_pgbench_tps "$db" "$run" "$tps"; record citus_pgbench_latency_ms "$db" "$run" "$lat"; fi
    if grep -q 'ERROR\|aborted' "$f" || [ "${failed:-0}" != 0 ]; then
      cmeta "error_pgbench_$db" "run $run: $(first_error "$f")"
    fi
  done
done
cmeta pgbench "$PGB_RUNS run(s) x $PGB_SECONDS s per database, 2 clients (-c 2 -j 2 -M prepared), TCP to the coordinator's server; 70% returning customers (10 x 1,000), 30% new; runs interleaved"

# ---------------------------------------------------------------------------
# bulk: one INSERT ... SELECT of 10,000 new customers' chats
# ---------------------------------------------------------------------------
# bulk_once DB TAG NCOMP PER -> ms (client side, autocommit), or "ERROR" with the error recorded
bulk_once() {
  local db=$1 tag=$2 log=$OUT/pgbench/citus_bulk_$1_$2.log
  cq "$db" coord >"$log" 2>&1 <<EOF
BEGIN;
$(chats "w$tag" "$3" $((100 / $3)));
ROLLBACK;
\\timing on
$(chats "$tag" "$3" "$4");
EOF
  local rc=$?
  if [ $rc -eq 0 ]; then sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$log" | tail -1
  else echo ERROR; fi
}
DBS=(citus_native single_native single_plpgsql)
for run in $(seq 1 "$RUNS"); do
  for kind in multi single; do
    if [ "$kind" = multi ]; then nc=$COMPANIES per=$((10000 / COMPANIES)); else nc=1 per=10000; fi
    for db in "${DBS[@]}"; do
      say "bulk 10,000 chats ($kind company), run $run/$RUNS: $db"
      ms=$(bulk_once "$db" "${kind}_r$run" "$nc" "$per")
      if [ "$ms" = ERROR ]; then
        cmeta "error_bulk_${kind}_$db" "$(first_error "$OUT/pgbench/citus_bulk_${db}_${kind}_r$run.log")"
      else
        record "citus_bulk10k_$kind" "$db" "$run" "$ms"
      fi
    done
  done
done
cmeta bulk "$RUNS run(s) per database and kind, interleaved; client-side time of the autocommit INSERT ... SELECT (commit included) after a rolled-back 100-chat warm-up in the same session"


# ---------------------------------------------------------------------------
# what actually happens: the coordinator's remote commands, EXPLAIN, the
# workers' statements
# ---------------------------------------------------------------------------
say "probes: citus.log_remote_commands, EXPLAIN, the workers' pg_stat_statements"
# remote DB LABEL SQL: the commands the coordinator sends for SQL (autocommit), summarized
remote() {
  local db=$1 label=$2 sql=$3 log
  log=$(cq "$db" coord -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" -c "$sql" 2>&1)
  { echo "=== $label ($db): $sql"; printf '%s\n' "$log" | cut -c1-240; echo; } >>"$EVID"
  # "verb xN" over the issued commands; connections and servers
  local verbs servers conns
  verbs=$(printf '%s\n' "$log" | sed -n 's/^NOTICE:  issuing \(PREPARE TRANSACTION\|COMMIT PREPARED\|BEGIN\|COMMIT\|ROLLBACK\|COPY\|INSERT\|SELECT\|UPDATE\|DELETE\)\b.*/\1/p' \
          | sort | uniq -c | awk '{n=$1; $1=""; sub(/^ /,""); printf "%s%s x%d", (NR>1?", ":""), $0, n}')
  servers=$(printf '%s\n' "$log" | sed -n 's/^DETAIL:  on server [^@]*@\([0-9.:]*\) connectionId: \([0-9]*\).*/\1/p' | sort -u | wc -l)
  conns=$(printf '%s\n' "$log" | sed -n 's/^DETAIL:  on server .* connectionId: \([0-9]*\).*/\1/p' | sort -u | wc -l)
  local err; err=$(printf '%s\n' "$log" | grep -m1 ERROR || true)
  cmeta "remote_$label" "${verbs:-no remote command}; $conns connection(s) to $servers worker(s)${err:+; $err}"
}
C1="'aaaaaaaa-aaaa-aaaa-aaaa-000000000001'"
remote citus_native chat_returning "INSERT INTO \"VC Usage\" ($CHAT_COLS) VALUES ($C1, 'bbbbbbbb-bbbb-bbbb-bbbb-000000000001', 'Test Customer 7', 'customer7@example.com', NULL, 'probe_1', 1, 'q', 'a')"
remote citus_native chat_new "INSERT INTO \"VC Usage\" ($CHAT_COLS) VALUES ($C1, 'bbbbbbbb-bbbb-bbbb-bbbb-000000000001', 'Probe Visitor', 'probe.visitor@example.com', '+12125550199', 'probe_2', 1, 'q', 'a')"
remote citus_native bulk100_multi "$(chats probe_m 10 10)"
remote citus_native bulk100_single "$(chats probe_s 1 100)"
{ echo "=== EXPLAIN (COSTS OFF) of the 10-company bulk on citus_native"
  cq citus_native coord -c "EXPLAIN (COSTS OFF) $(chats explain 10 1000)" 2>&1
  echo; } >>"$EVID"
cmeta explain_bulk "$(cq citus_native coord -At -c "EXPLAIN (COSTS OFF) $(chats explain 10 1000)" 2>&1 | grep -m1 -i 'INSERT/SELECT method' | sed 's/^ *//')"
# The statements each node runs for single chats, and their server-side time:
# pgbench -t PROBE_TX per client (2 clients) with pg_stat_statements.track =
# all, on citus_native through the coordinator and on single_native. (CREATE
# EXTENSION is refused on a worker; on the coordinator Citus propagates it.)
PROBE_TX=200
for db in citus_native single_native; do
  cq "$db" coord -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>>"$EVID"
done
for n in "${CITUS_NODES[@]}"; do
  cq postgres "$n" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
done
sleep 1
# per node: chats (top-level chat INSERTs), their mean ms, foreign-key checks,
# crm_native's catalog lookup of co-located shards, the triggers' other
# statements, and how many of those name a distributed table (not a shard)
STMT_SQL="WITH s AS (SELECT * FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
 c AS (SELECT CASE
     WHEN toplevel AND query ~ '^INSERT INTO (public\.)?\"VC Usage(_[0-9]+)?\"' THEN 'chat'
     WHEN toplevel THEN 'other_top'
     WHEN query ~ 'FOR KEY SHARE OF x' THEN 'fk'
     WHEN query ~ 'pg_dist_shard' THEN 'shard_lookup'
     WHEN query ~* '(pg_stat_statements|citus|pg_dist_)' THEN 'other_top'
     ELSE 'trigger' END AS kind, calls, total_exec_time, query FROM s)
SELECT kind, sum(calls)::bigint, round(sum(total_exec_time)::numeric, 1),
       sum(calls) FILTER (WHERE kind = 'trigger' AND query ~ '(customers|\"VC Usage\"|customer_matching_keys|customer_metrics|customer_events|customer_audit_log|customer_conversation_summaries)([^_0-9]|\$)')::bigint
  FROM c GROUP BY kind ORDER BY kind"
probe() {  # probe DB NODES...: reset, PROBE_TX chats per client through the coordinator's server, collect
  local db=$1 n; shift
  for n in "$@"; do cq "$db" "$n" -c "SELECT pg_stat_statements_reset()" >/dev/null; done
  pgb "$db" probe -t "$PROBE_TX"
  for n in "$@"; do
    { echo "=== pg_stat_statements on $n (database $db) after $((2 * PROBE_TX)) single chats (pgbench -t $PROBE_TX -c 2; track = all)"
      cq "$db" "$n" -c "SELECT toplevel, calls, rows, round(total_exec_time::numeric, 1) AS ms, left(regexp_replace(query, '\s+', ' ', 'g'), 150) AS query
          FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY calls DESC LIMIT 30" 2>&1
      echo; } >>"$EVID"
    cq "$db" "$n" -At -F $'\t' -c "$STMT_SQL" | sed "s/^/$db\t$n\t/" >>"$OUT/citus_statements.tsv"
  done
}
: >"$OUT/citus_statements.tsv"
probe citus_native "${CITUS_NODES[@]}"
probe single_native coord
for n in "${CITUS_NODES[@]}"; do
  cq postgres "$n" -c "ALTER SYSTEM SET pg_stat_statements.track = 'none'" -c "SELECT pg_reload_conf()" >/dev/null
done
# summaries: per chat, per side
stmt_summary() {  # stmt_summary DB NODE_RE [citus] -> "N chat INSERTs (mean X ms ...); per chat: ..."
  awk -F'\t' -v db="$1" -v re="$2" -v citus="${3:-}" -v tx=$((2 * PROBE_TX)) '
    $1==db && $2~re { calls[$3]+=$4; ms[$3]+=$5; dist+=$6 }
    END { c=calls["chat"]; if (c==0) c=tx;
          printf "%d chat INSERTs (mean %.2f ms each, server side); per chat %.2f foreign-key checks, %.2f trigger statements",
            calls["chat"], (calls["chat"] ? ms["chat"]/calls["chat"] : 0), calls["fk"]/c, calls["trigger"]/c
          if (citus) printf " (%d naming a distributed table instead of a shard), %.3f shard-placement lookups", dist, calls["shard_lookup"]/c }' "$OUT/citus_statements.tsv"
}
chat_mean() {  # chat_mean DB NODE_RE -> mean ms of the top-level chat INSERTs
  awk -F'\t' -v db="$1" -v re="$2" '$1==db && $2~re && $3=="chat" { n+=$4; ms+=$5 } END { if (n) printf "%.3f", ms/n }' "$OUT/citus_statements.tsv"
}
cmeta statements_single "$(stmt_summary single_native '^coord$')"
cmeta statements_coordinator "$(stmt_summary citus_native '^coord$' citus)"
cmeta statements_workers "$(stmt_summary citus_native '^w[12]$' citus)"
cmeta chat_ms_single "$(chat_mean single_native '^coord$')"
cmeta chat_ms_coordinator "$(chat_mean citus_native '^coord$')"
cmeta chat_ms_workers "$(chat_mean citus_native '^w[12]$')"
cmeta probe_tx "$((2 * PROBE_TX))"
cmeta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
finish ran
