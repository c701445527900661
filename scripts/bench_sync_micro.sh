#!/usr/bin/env bash
# Micro-benchmark of the chat -> customer sync on the new-customer path: one
# INSERT of N chats, each from a new customer (the shape of bench.sh's "bulk
# 10,000"), timed on the server, plpgsql triggers vs. crm_native.install(),
# in databases seeded like the benchmark's (10 x 1,000 customers, set-wise).
#
#   source scripts/pgenv.sh && crm_stage && crm_cluster_start dev fsync=off
#   bash scripts/bench_sync_micro.sh [N] [RUNS]     # default 10000 3
#
# Uses the server named by PGHOST/PGPORT. Databases: mb_seed, mb_plpgsql,
# mb_native (kept; MB_REBUILD=1 rebuilds them). Each run is a fresh session:
# a rolled-back warm-up (bench.warmup()), then the timed INSERT in a
# transaction that is rolled back. Prints each run and the median per db.
# MB_DBS="native" limits the databases; MB_KEEP_SESSION=1 prints the backend
# pid and waits MB_PAUSE seconds before the timed INSERT (for perf record -p).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-10000}
RUNS=${2:-3}
DBS=${MB_DBS:-"plpgsql native"}
q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

exists() { [ "$(q -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]; }
if [ "${MB_REBUILD:-0}" = 1 ] || ! exists mb_native; then
  for db in mb_plpgsql mb_native mb_seed; do q -d postgres -c "DROP DATABASE IF EXISTS $db"; done
  q -d postgres -c "CREATE DATABASE mb_seed"
  for f in "$ROOT"/reference/*.sql; do q -d mb_seed -f "$f" >/dev/null; done
  q -d mb_seed -f "$ROOT/bench/setup.sql" >/dev/null
  q -d mb_seed >/dev/null <<'EOF'
SET session_replication_role = replica;
SELECT setseed(0.42);
SELECT bench.gen_data(1, 10, 1000, true);
RESET session_replication_role;
VACUUM ANALYZE;
EOF
  q -d postgres -c "CREATE DATABASE mb_plpgsql TEMPLATE mb_seed" -c "CREATE DATABASE mb_native TEMPLATE mb_seed"
  q -d mb_native -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >/dev/null
  for db in mb_plpgsql mb_native; do q -d $db -c "VACUUM ANALYZE"; done
fi

# The backend's CPU time (user + system, ms) from /proc: steadier than wall
# time on a shared machine.
cpu="(SELECT (split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint) * 1000 / $(getconf CLK_TCK)
        FROM pg_read_file('/proc/self/stat') s)"
cols='company_id, user_id, customer_name, customer_email, customer_phone, session_id, interaction_number, user_message, ai_response'
# Values are unique per run (a rolled-back run leaves dead index entries
# that a run with the same keys would have to visit), and each database is
# vacuumed (untimed) before each run.
stmt_for() {  # stmt_for NONCE
  echo "INSERT INTO \"VC Usage\" ($cols) SELECT bench.company_id(1), bench.user_id(1), 'Bulk Customer ' || i,
  'mb_$1_' || i || '@example.com', '+1' || ($(( 2000000000 + ($1 % 7000) * 100000 )) + i), 'mb_session_' || i, 1,
  'Bulk test message', 'Bulk test response' FROM generate_series(1, $N) i"
}

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Runs are interleaved across the databases (the machine's speed drifts).
for r in $(seq "$RUNS"); do
  for db in $DBS; do
    pause=""
    if [ "${MB_KEEP_SESSION:-0}" = 1 ]; then pause="SELECT pg_backend_pid() AS pid \\gset
\\warn backend :pid
SELECT pg_sleep(${MB_PAUSE:-3}) \\gset w_"; fi
    nonce=$(( $(date +%s%N) / 1000 % 1000000007 ))
    stmt=$(stmt_for "$nonce")
    q -d "mb_$db" -c "VACUUM"
    out=$(q -At -d "mb_$db" -v stmt="$stmt" <<EOF
BEGIN; SELECT bench.warmup() \gset w_
ROLLBACK;
$pause
SELECT $cpu AS cpu0 \gset
BEGIN; SELECT bench.time_ms(:'stmt', 1) AS ms \gset
ROLLBACK;
SELECT $cpu - :cpu0 AS cpu \gset
\echo :ms :cpu
EOF
)
    read -r wall cpu_ms <<<"$out"
    printf '%s run %d: %.1f ms (backend CPU %d ms)\n' "$db" "$r" "$wall" "$cpu_ms"
    echo "$wall" >>"$tmp/$db.wall"; echo "$cpu_ms" >>"$tmp/$db.cpu"
  done
done
median() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for db in $DBS; do
  w=$(median "$tmp/$db.wall"); c=$(median "$tmp/$db.cpu")
  printf '%s median: %.1f ms for %d chats (%.3f ms/chat), backend CPU %d ms\n' "$db" "$w" "$N" "$(echo "$w / $N" | bc -l)" "$c"
done
