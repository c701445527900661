#!/usr/bin/env bash
# Per-chat cost of keeping customer_metrics, by customer history, and bulk
# insert cost: plpgsql (reference trg_vc_usage_metrics_refresh, row level)
# vs native (crm_native.metrics_* statement-level triggers) vs no metrics
# trigger at all (the base cost of the INSERT). A measurement, not a test.
#
# Usage: bench/metrics_history.sh [-t TRANSACTIONS] [-r REPEATS] [-m "MODES"] [-B]
#   -m: which triggers to measure, default "none plpgsql native" (e.g.
#   -m "none native" for a quick native-only run); -B: skip the bulk inserts.
#   Uses the server in PGHOST/PGPORT if one answers; otherwise builds and
#   stages crm_native and starts a throwaway cluster (scripts/pgenv.sh).
#   CRM_REFERENCE_DIR: where reference/*.sql are (default: ./reference); it
#   must contain the plpgsql triggers (reference/02_plpgsql_triggers.sql).
#   CRM_BENCH_DB: database to (re)create (default crm_bench_metrics).
#
# Per-chat: each pgbench transaction is BEGIN; INSERT one chat; ROLLBACK, so a
# customer's history stays exactly 0 / 1,000 / 20,000 / 100,000 conversations
# (in sessions of 10) during the run. Reported: mean latency per transaction
# (pgbench, one client; median of REPEATS interleaved rounds) and the metrics
# share of it (minus the no-trigger run).
# Bulk: one INSERT of 10,000 chats for 10,000 customers (1 chat each, on top
# of 1 prior chat) and for 10 customers (1,000 each, on top of 1,000 prior
# chats), in a rolled-back transaction; median of REPEATS runs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TX=300
REPEATS=3
MODES="none plpgsql native"
BULK_RUNS=1
while getopts "t:r:m:B" opt; do
  case $opt in
    t) TX=$OPTARG ;;
    r) REPEATS=$OPTARG ;;
    m) MODES=$OPTARG ;;
    B) BULK_RUNS=0 ;;
    *) echo "usage: $0 [-t transactions] [-r repeats]" >&2; exit 2 ;;
  esac
done
REF=${CRM_REFERENCE_DIR:-$ROOT/reference}
DB=${CRM_BENCH_DB:-crm_bench_metrics}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$($PG_CONFIG --bindir)

if ! psql -X -q -d postgres -c "SELECT 1" >/dev/null 2>&1; then
  # shellcheck source=../scripts/pgenv.sh
  source "$ROOT/scripts/pgenv.sh"
  crm_stage
  crm_cluster_start bench fsync=off synchronous_commit=off max_connections=20
fi
export PGUSER=${PGUSER:-postgres}
[ -f "$REF/02_plpgsql_triggers.sql" ] || { echo "need $REF/02_plpgsql_triggers.sql (set CRM_REFERENCE_DIR)" >&2; exit 1; }

q() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
for f in "$REF"/*.sql; do q -f "$f" >/dev/null; done
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS crm_native" >/dev/null

COMPANY=a0000000-0000-0000-0000-000000000001
# Customers: h0 / h1k / h20k / h100k with that many prior chats; bulk10k_*
# (10,000 customers, 1 prior chat each) and bulk10_* (10 customers, 1,000
# prior chats each). History is loaded with triggers off, then the metrics are
# rebuilt once.
q <<SQL >/dev/null
SET client_min_messages = warning;
INSERT INTO companies (id, name) VALUES ('$COMPANY', 'Bench');
INSERT INTO customers (id, company_id, customer_name) VALUES
  ('c0000000-0000-0000-0000-000000000000', '$COMPANY', 'h0'),
  ('c0000000-0000-0000-0000-000000001000', '$COMPANY', 'h1k'),
  ('c0000000-0000-0000-0000-000000020000', '$COMPANY', 'h20k'),
  ('c0000000-0000-0000-0000-000000100000', '$COMPANY', 'h100k');
INSERT INTO customers (id, company_id, customer_name)
SELECT ('b1000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, '$COMPANY', 'bulk10k_' || i
  FROM generate_series(1, 10000) i;
INSERT INTO customers (id, company_id, customer_name)
SELECT ('b2000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, '$COMPANY', 'bulk10_' || i
  FROM generate_series(1, 10) i;
SET session_replication_role = replica;   -- no triggers while loading history
INSERT INTO "VC Usage" (company_id, customer_id, session_id, view_count, created_at, user_message)
SELECT '$COMPANY', c.id, c.customer_name || '-s' || (g / 10), g % 7,
       now() - (g || ' minutes')::interval, 'prior chat ' || g
  FROM customers c
  JOIN LATERAL generate_series(1, CASE c.customer_name WHEN 'h0' THEN 0 WHEN 'h1k' THEN 1000
                                       WHEN 'h20k' THEN 20000 WHEN 'h100k' THEN 100000
                                       ELSE CASE WHEN c.customer_name LIKE 'bulk10\_%' THEN 1000 ELSE 1 END END) g ON true;
RESET session_replication_role;
SELECT crm_native.rebuild_metrics();
VACUUM ANALYZE;
SQL

use_mode() {  # none | plpgsql | native
  q <<SQL >/dev/null
SET client_min_messages = warning;
DROP TRIGGER IF EXISTS trg_vc_usage_metrics_refresh ON public."VC Usage";
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT trigger_name FROM crm_native.native_trigger WHERE replaces = 'trg_vc_usage_metrics_refresh' LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON public."VC Usage"', r.trigger_name);
  END LOOP;
  IF '$1' = 'plpgsql' THEN
    CREATE TRIGGER trg_vc_usage_metrics_refresh AFTER INSERT OR UPDATE OR DELETE ON public."VC Usage"
      FOR EACH ROW EXECUTE FUNCTION public.trigger_refresh_customer_metrics();
  ELSIF '$1' = 'native' THEN
    FOR r IN SELECT ddl FROM crm_native.native_trigger WHERE replaces = 'trg_vc_usage_metrics_refresh' LOOP
      EXECUTE format(r.ddl, '"public"."VC Usage"');
    END LOOP;
  END IF;
END \$\$;
SQL
}

# Only the metrics trigger is measured: the customer sync trigger returns at
# once for chats that carry customer_id, but keep it out of the figures.
q -c 'ALTER TABLE "VC Usage" DISABLE TRIGGER trg_vc_usage_customer_sync_insert' >/dev/null 2>&1 || true

per_chat() {  # per_chat CUSTOMER_UUID -> mean latency in ms
  local script
  script=$(mktemp)
  cat >"$script" <<SQL
\set s random(1, 20)
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_id, session_id, view_count, user_message)
VALUES ('$COMPANY', '$1', 'bench-' || :s, 1, 'hello');
ROLLBACK;
SQL
  "$BINDIR/pgbench" -n -c 1 -t "$TX" -f "$script" "$DB" 2>/dev/null | awk '/latency average/ {print $4}'
  rm -f "$script"
}

bulk() {  # bulk 10k|10 -> median ms of REPEATS rolled-back inserts
  local sel
  if [ "$1" = 10k ]; then
    sel="SELECT '$COMPANY'::uuid, ('b1000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'bulk-' || g, 1 FROM generate_series(1, 10000) g"
  else
    sel="SELECT '$COMPANY'::uuid, ('b2000000-0000-0000-0000-' || lpad((1 + g % 10)::text, 12, '0'))::uuid, 'bulk-' || (g % 50), 1 FROM generate_series(1, 10000) g"
  fi
  for _ in $(seq "$REPEATS"); do
    q -At <<SQL | awk '/^Time:/ {print $2}'
BEGIN;
\timing on
INSERT INTO "VC Usage" (company_id, customer_id, session_id, view_count) $sel;
\timing off
ROLLBACK;
SQL
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

declare -A LAT BULK
for mode in $MODES; do
  use_mode "$mode"
  # REPEATS rounds over the four customers, median per customer: a burst of
  # load from elsewhere on a shared machine then skews one round, not one point.
  declare -A RUNS=()
  for h in 0 1000 20000 100000; do
    per_chat "$(printf 'c0000000-0000-0000-0000-%012d' "$h")" >/dev/null   # warm-up (plans, caches)
  done
  for _ in $(seq "$REPEATS"); do
    for h in 0 1000 20000 100000; do
      RUNS[$h]="${RUNS[$h]:-} $(per_chat "$(printf 'c0000000-0000-0000-0000-%012d' "$h")")"
    done
  done
  for h in 0 1000 20000 100000; do
    LAT[$mode,$h]=$(printf '%s\n' ${RUNS[$h]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  done
  if [ "$BULK_RUNS" = 1 ]; then
    BULK[$mode,10k]=$(bulk 10k)
    BULK[$mode,10]=$(bulk 10)
  fi
done
use_mode native
bad=$(q -At -c "SELECT count(*) FROM crm_native.verify_metrics()")

echo "Per-chat latency, ms (pgbench, 1 client, $TX transactions of BEGIN; INSERT 1 chat; ROLLBACK; median of $REPEATS rounds)"
printf '%-22s %10s %10s %10s %14s %14s\n' "prior conversations" none plpgsql native "plpgsql extra" "native extra"
for h in 0 1000 20000 100000; do
  extra() { if [ -n "${LAT[$1,$h]:-}" ] && [ -n "${LAT[none,$h]:-}" ]; then
      echo "${LAT[$1,$h]} - ${LAT[none,$h]}" | bc -l | xargs printf '%.3f'; else echo -; fi; }
  printf '%-22s %10s %10s %10s %14s %14s\n' "$h" "${LAT[none,$h]:--}" "${LAT[plpgsql,$h]:--}" "${LAT[native,$h]:--}" \
    "$(extra plpgsql)" "$(extra native)"
done
if [ -n "${LAT[native,0]:-}" ]; then
  printf 'native per-chat latency at 100,000 / at 0 prior conversations: %.2fx\n' \
    "$(echo "${LAT[native,100000]} / ${LAT[native,0]}" | bc -l)"
fi
if [ "$BULK_RUNS" = 1 ]; then
echo
echo "Bulk INSERT of 10,000 chats, ms (median of $REPEATS, rolled back)"
printf '%-34s %10s %10s %10s\n' "" none plpgsql native
printf '%-34s %10s %10s %10s\n' "10,000 customers (1 chat each)" "${BULK[none,10k]:--}" "${BULK[plpgsql,10k]:--}" "${BULK[native,10k]:--}"
printf '%-34s %10s %10s %10s\n' "10 customers (1,000 chats each)" "${BULK[none,10]:--}" "${BULK[plpgsql,10]:--}" "${BULK[native,10]:--}"
fi
echo
echo "verify_metrics() after the run: $bad mismatching customers"
