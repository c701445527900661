#!/usr/bin/env bash
# Customer sync, plan-shape regression guard. The sync keeps its plans for
# the backend's life (SPI_keepplan), and they are often made while the tables
# are empty: a generic plan that scans a company's customers or keys instead
# of probing an index makes every lookup O(customers), i.e. a bulk import
# quadratic (10,000 new customers once took 68 s instead of ~4 s).
#
# In one session whose plans are made on empty tables:
#  1. per-chat cost of a 300-row new-customer bulk insert at ~0 and at ~4,300
#     customers: the second must not be more than 3x the first (+ 0.3 ms);
#     a scan per lookup makes it ~15x;
#  2. auto_explain (log_nested_statements) of every statement the native
#     triggers run (their query texts use OPERATOR(pg_catalog.=)) for a new
#     customer, a returning one whose email has two holders (full lookup),
#     and a name-only chat: no Seq Scan on customers or
#     customer_matching_keys, and the probe uses idx_matching_keys_normalized;
#     for the metrics statements of chat INSERTs, an UPDATE and a DELETE: no
#     Seq Scan or Bitmap Heap Scan on "VC Usage" or customer_metrics.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PGUSER=${PGUSER:-postgres}
DB=sync_plan_shape_$$
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; }
trap cleanup EXIT

psql_q -d postgres -c "CREATE DATABASE $DB" >/dev/null
for f in "$ROOT"/reference/*.sql; do
  PGOPTIONS="-c client_min_messages=warning" psql_q -d "$DB" -f "$f" >/dev/null
done
PGOPTIONS="-c client_min_messages=error" psql_q -d "$DB" \
  -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" -c "CREATE EXTENSION crm_native" -c "SELECT crm_native.install()" >/dev/null

out=$(psql_q -d "$DB" -At 2>&1 <<'SQL'
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
CREATE TEMP TABLE t (label text, ms float8);
CREATE FUNCTION pg_temp.bulk(p_from int, p_n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
    SELECT '00000000-0000-0000-0000-00000000000a', 'Customer ' || i, 'c' || i || '@example.com',
           '+1 212 555 ' || lpad(i::text, 4, '0'), 's' || i
      FROM generate_series(p_from, p_from + p_n - 1) i;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000 / p_n;
END $$;
-- The kept plans are made here, on empty tables.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'First', 'first@example.com', 's0');
-- the best of three batches on each side (one batch can meet an autoanalyze)
INSERT INTO t SELECT 'small', least(pg_temp.bulk(1, 300), pg_temp.bulk(301, 300), pg_temp.bulk(601, 300));
SELECT pg_temp.bulk(1000, 4000) IS NOT NULL;
INSERT INTO t SELECT 'large', least(pg_temp.bulk(6000, 300), pg_temp.bulk(6300, 300), pg_temp.bulk(6600, 300));
SELECT 'per_chat_small=' || round(ms::numeric, 3) FROM t WHERE label = 'small';
SELECT 'per_chat_large=' || round(ms::numeric, 3) FROM t WHERE label = 'large';
SELECT 'not_quadratic=' || ((SELECT ms FROM t WHERE label = 'large')
                            <= 3 * (SELECT ms FROM t WHERE label = 'small') + 0.3);
SELECT 'customers=' || count(*) FROM customers;
-- A second holder of c7's email: the returning chat below needs the full lookup.
INSERT INTO customers (company_id, customer_name, customer_email)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Customer 7 again', 'C7@example.com');
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET client_min_messages = log;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'New One', 'new.one@example.com', '+1 212 555 9999', 'n1');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Customer 7', 'c7@example.com', 'r1');
INSERT INTO "VC Usage" (company_id, customer_name, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Customer 8', 'm1');
-- the metrics triggers' statement paths: several chats, an UPDATE that moves
-- sessions and a DELETE (fold, existing rows with their probes, row writes)
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '00000000-0000-0000-0000-00000000000a', 'Customer ' || i, 'c' || i || '@example.com', 'b' || i
  FROM generate_series(20, 22) i;
UPDATE "VC Usage" SET view_count = 3, session_id = 'u1' WHERE session_id IN ('s20', 's21');
DELETE FROM "VC Usage" WHERE session_id IN ('s22', 'b22');
SQL
)
fail=0
grep -E '^(per_chat|not_quadratic|customers)' <<<"$out"
grep -qx 'not_quadratic=true' <<<"$out" || { echo "FAIL: per-chat cost grew with the number of customers"; fail=1; }
grep -qx 'customers=5801' <<<"$out" || { echo "FAIL: expected 5801 customers"; fail=1; }
# The plans of the native triggers' own statements (auto_explain blocks whose
# query text is one of theirs).
native_plans=$(awk '/LOG:  duration:/ {if (blk ~ /OPERATOR\(pg_catalog\.=\)/) print blk; blk=""} {blk = blk "\n" $0}
                    END {if (blk ~ /OPERATOR\(pg_catalog\.=\)/) print blk}' <<<"$out")
n=$(grep -c 'Query Text:' <<<"$native_plans" || true)
echo "native statements explained: $n"
[ "$n" -ge 6 ] || { echo "FAIL: expected the native triggers' statements in auto_explain output"; echo "$out" | tail -40; fail=1; }
if grep -E 'Seq Scan on (customers|customer_matching_keys)' <<<"$native_plans"; then
  echo "FAIL: a native trigger statement scans customers or customer_matching_keys sequentially"; fail=1
fi
# The metrics statements, planned with enable_seqscan and enable_bitmapscan
# off (their no_seqscan pin, src/pg/index_pins.hpp) while the tables were
# empty, probe the chat and metrics indexes.
grep -q 'crm_native pins: no_seqscan' <<<"$native_plans" \
  || { echo "FAIL: the metrics statements are not in auto_explain output"; fail=1; }
if grep -E '(Seq Scan|Bitmap Heap Scan) on ("VC Usage"|customer_metrics)' <<<"$native_plans"; then
  echo "FAIL: a native trigger statement scans \"VC Usage\" or customer_metrics sequentially or by bitmap"; fail=1
fi
# Every probe of the keys index is by the whole key, not a scan of the company.
weak=$(awk '/(Index Scan|Bitmap Index Scan) (using|on) idx_matching_keys_normalized/ {want=1; next}
            want && /Index Cond:/ {if ($0 !~ /normalized_value/) print; want=0}' <<<"$native_plans")
[ -z "$weak" ] || { echo "FAIL: a key lookup's index condition lacks normalized_value:"; echo "$weak"; fail=1; }
grep -q 'Index Scan using idx_matching_keys_normalized on customer_matching_keys' <<<"$native_plans" \
  || { echo "FAIL: the key lookups do not use idx_matching_keys_normalized"; fail=1; }
# The full lookup ran for the returning chat (two holders of its email).
grep -q 'ORDER BY' <<<"$native_plans" || { echo "FAIL: the full lookup did not run"; fail=1; }
[ $fail -eq 0 ] && echo "PASS"
exit $fail
