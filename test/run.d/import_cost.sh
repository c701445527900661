#!/usr/bin/env bash
# Cost without a clock: the table reads of a bulk import of new customers
# must not grow with the table. A plan the native triggers keep for the
# backend's life is often made on an empty table; a generic plan that reaches
# a customer through an index on company_id (and filters the company's
# customers) instead of its key makes every row cost O(customers of the
# company), i.e. the import quadratic, whatever the machine's speed.
#
# For each schema variant (test/differential/variants.sql; default: the plain
# reference schema, (a) fk_indexes, (b) deferred_fks, (d) never_analyzed and
# (e) crm_app_rls, and (e) on (a): crm_app_rls+fk_indexes, where row-level
# security's company_id meets an index on company_id alone on every table;
# (f) partitioned (each partitioned table's reads are its partitions'); (g) column_types;
# (h) uuid_chat_ids;
# and the workload shared_session: every chat has the session id 'web')
# and each size N (2,000 and 20,000):
#   - a freshly created, empty database (cloned from crm_template), the
#     variant applied, crm_native.install(), four companies;
#   - a NEW connection, without session_preload_libraries (forced empty), so
#     the import's statement is the backend's first use of the library and
#     every plan is made during it, on empty tables;
#   - one transaction: pg_stat_xact_user_tables before, one
#     INSERT INTO "VC Usage" ... SELECT of N chats of N new customers
#     (distinct names, emails and phones, spread round-robin over the four
#     companies; under crm_app_rls all in the one company crm_app may write
#     to), SET CONSTRAINTS ALL IMMEDIATE (deferred foreign-key checks run
#     now, inside the measurement), pg_stat_xact_user_tables after.
#     pg_stat_xact_* count this backend's reads, the nested statements of
#     triggers and foreign-key checks included; the delta of one transaction
#     is exactly the import's reads.
#   - then, in the same connection, returning chats of the imported
#     customers: one INSERT ... SELECT of R (= min(N, 2000)) chats (new
#     sessions) and R / 10 single-chat INSERTs, each chat of customer 1
#     (whose history grows with every one of them) or of customer i; R / 20
#     deletes of customer 1's latest single chat, each by its ctid (the
#     metrics probe the extremes; the harness's own DELETE reads no index);
#     R / 20 chats that bring a missing phone (contact fill, keys rewrite).
#     Their plans were made before the import: the connection starts with
#     plan_cache_mode = force_generic_plan and a few chats of every kind on
#     the empty tables, so every kept statement has a generic plan made on
#     empty, never-analyzed tables; for the returning chats the mode is
#     reset, and the plan cache uses that generic plan whenever it looks no
#     dearer than a custom one (the case where the planner picks an index by
#     luck: a pgbench on fresh databases once had 4,309 lock probes walk the
#     index on merged_into_customer_id instead of the primary key, and the
#     session probe walk a customer's whole history).
# Measured: tuples read from customers and customer_matching_keys
# (seq_tup_read + idx_tup_fetch) per imported chat; for the returning chats,
# from customers, customer_matching_keys, customer_metrics and "VC Usage",
# plus the index entries read from their indexes (a bitmap scan of a
# tenant's index entries fetches few rows but reads every entry).
# Required:
#   - every imported chat linked, to N distinct customers;
#   - per-chat reads >= 1 (the chat's own foreign-key check reads customers,
#     so a zero would mean the measurement sees nothing);
#   - per-chat reads <= IC_MAX_PER_ROW (default 20: the code of 2026-12 reads
#     6-8 per chat on the paths that do not grow, all foreign-key checks on;
#     20 is ~3x that);
#   - per-chat reads at 20,000 <= IC_MAX_GROWTH (1.5) x those at 2,000;
#   - the same three for the returning chats (bound IC_MAX_PER_RETURNING,
#     default 40; the code of 2026-12 reads about 16 rows and index entries
#     per returning chat), under crm_app_rls too: there the policy's
#     conditions (company_id = the tenant, deleted_at IS NULL) are part of
#     every statement, and without the statements' index pins
#     (src/pg/index_pins.hpp) PostgreSQL served them from the tenant's index
#     or a never-vacuumed partial index: 274 reads per returning chat at
#     2,000 customers, 2,060 at 20,000.
# Wall-clock times are printed, never judged.
#
# One line per variant: "PASS <variant>" or "FAIL <variant>: reason".
# Needs PGHOST etc. of a running test cluster with crm_template built
# (scripts/test.sh does both). Knobs: IC_VARIANTS, IC_SIZES ("2000 20000":
# the first is the baseline, the last the large one), IC_MAX_PER_ROW,
# IC_MAX_GROWTH, IC_TIMEOUT (statement_timeout of the import, default 300s),
# IC_EXPLAIN_MS (auto_explain the statements slower than this, into the
# log),
# IC_KEEP=1 (keep the databases).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$ROOT/test/differential
# scripts/test.sh does not export CRM_RUN_DIR: default to this checkout's
# run directory (scripts/pgenv.sh), not a /tmp path shared by every checkout
OUT=${CRM_RUN_DIR:-/tmp/crm_native.$(printf '%s' "$ROOT" | md5sum | cut -c1-10)}/import_cost
mkdir -p "$OUT"
VARIANTS=${IC_VARIANTS:-"plain fk_indexes deferred_fks never_analyzed crm_app_rls crm_app_rls+fk_indexes partitioned column_types uuid_chat_ids shared_session"}
SIZES=${IC_SIZES:-"2000 20000"}
MAX_PER_ROW=${IC_MAX_PER_ROW:-20}
MAX_GROWTH=${IC_MAX_GROWTH:-1.5}
MAX_PER_RETURNING=${IC_MAX_PER_RETURNING:-40}
TIMEOUT=${IC_TIMEOUT:-300s}
export PGTZ=UTC
export PGUSER=${PGUSER:-postgres}
SMALL=${SIZES%% *}; LARGE=${SIZES##* }

say() { echo "[import_cost] $*"; }
q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
drop() { q -d postgres -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null 2>&1; }

q -At -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'crm_template'" | grep -q 1 \
  || { say "FAIL: crm_template missing (run through scripts/test.sh)"; exit 1; }

# measure VARIANT N: prints "reads_customers reads_keys scans ms customers_of_the_chats unlinked_chats
# returning_chats returning_reads returning_unlinked"
measure() {
  local variant=$1 n=$2 db=ic_${1}_$2 log=$OUT/${1}_$2.log role_sql="" company
  drop "$db"
  # a variant "a+b" applies a, then b
  # shared_session is a workload, not a schema: every chat has the session
  # id 'web' (an application without sessions), so a session probe that
  # found its customer's chats by session id alone would read the tenant's.
  local applies=() part shared=0
  for part in ${variant//+/ }; do
    if [ "$part" = shared_session ]; then shared=1; continue; fi
    applies+=(-c "SELECT count(*) FROM schema_variant.apply('$part')")
  done
  [ ${#applies[@]} -gt 0 ] || applies=(-c "SELECT count(*) FROM schema_variant.apply('plain')")
  session() { if [ "$shared" = 1 ]; then echo "'web'"; else echo "$1"; fi; }
  q -d postgres -c "CREATE DATABASE \"$db\" TEMPLATE crm_template" >"$log" 2>&1 \
    && q -d "$db" -f "$DIR/variants.sql" >>"$log" 2>&1 \
    && q -d "$db" "${applies[@]}" \
         -c "SELECT count(*) FROM crm_native.install()" \
         -c "INSERT INTO companies (id, name) SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'Company ' || i
               FROM generate_series(1, 4) i" >>"$log" 2>&1 \
    || { echo "setup failed: $(grep -m1 ERROR "$log")"; return 1; }
  # the company of row i: round-robin over four, or the one crm_app writes to
  company="('00000000-0000-4000-8000-' || lpad((1 + i % 4)::text, 12, '0'))::uuid"
  if [[ "$variant" == *crm_app_rls* ]]; then
    company="'00000000-0000-4000-8000-000000000001'::uuid"
    role_sql="SET ROLE crm_app; SET app.current_company_id = '00000000-0000-4000-8000-000000000001';"
  fi
  local explain_sql=""
  [ -n "${IC_EXPLAIN_MS:-}" ] && explain_sql="LOAD 'auto_explain'; SET auto_explain.log_min_duration = ${IC_EXPLAIN_MS};
SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = ${IC_EXPLAIN_ANALYZE:-off}; SET client_min_messages = log;"
  local r=$(( n < 2000 ? n : 2000 )) reads_all="coalesce(sum(t.seq_tup_read + coalesce(t.idx_tup_fetch, 0) + (SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0) FROM pg_index i WHERE i.indrelid = t.relid)), 0)"
  local crm_tables="('customers', 'customer_matching_keys', 'customer_metrics', 'VC Usage')"
  # chat i of an imported customer (returning), in a new session
  local ret_cols="company_id, customer_name, customer_email, session_id, user_message"
  local ret_row="$company, 'Imported Customer ' || i, 'import.' || i || '@example.com', $(session "'ret-' || k"), 'again'"
  # a new connection; no preload library, whatever the database or role says
  PGOPTIONS="-c session_preload_libraries= -c client_min_messages=warning -c statement_timeout=$TIMEOUT" \
    psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 -d "$db" >>"$log" 2>&1 <<SQL || { echo "import failed: $(grep -m1 -E 'ERROR|FATAL' "$log")"; return 1; }
$explain_sql
$role_sql
-- Every kept plan a generic plan made now, on the empty tables: one
-- customer, a returning chat of it in a new session (single-row path), two
-- in one statement (set-wise path), a chat that fills its phone.
-- This backend's table statistics by CRM table: a partition's count under
-- its partitioned table's name (variant partitioned).
CREATE TEMP VIEW ic_stats AS
SELECT r.relname AS crm_table, t.relid, t.seq_scan, t.seq_tup_read, t.idx_scan, t.idx_tup_fetch
  FROM pg_stat_xact_user_tables t
  JOIN pg_class r ON r.oid = coalesce(pg_partition_root(t.relid), t.relid)
 WHERE r.relnamespace = 'public'::regnamespace;
SET plan_cache_mode = force_generic_plan;
BEGIN;
INSERT INTO "VC Usage" ($ret_cols) SELECT $company, 'Warm Up', 'warm.up@example.com', $(session "'warm-0'"), 'warm' FROM (SELECT 1 AS i) x;
INSERT INTO "VC Usage" ($ret_cols) SELECT $company, 'Warm Up', 'warm.up@example.com', $(session "'warm-1'"), 'warm' FROM (SELECT 1 AS i) x;
INSERT INTO "VC Usage" ($ret_cols) SELECT $company, 'Warm Up', 'warm.up@example.com', $(session "'warm-' || i"), 'warm' FROM generate_series(2, 3) i;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id, user_message)
SELECT $company, 'Warm Up', 'warm.up@example.com', '+1 212 555 0000', $(session "'warm-4'"), 'warm' FROM (SELECT 1 AS i) x;
DELETE FROM "VC Usage" WHERE customer_phone = '+1 212 555 0000';
COMMIT;
BEGIN;
SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)) FILTER (WHERE crm_table = 'customers'), 0) AS cust,
       coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)) FILTER (WHERE crm_table = 'customer_matching_keys'), 0) AS keys,
       coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) AS scans,
       extract(epoch FROM clock_timestamp()) * 1000 AS t
  FROM ic_stats
 WHERE crm_table IN ('customers', 'customer_matching_keys') \gset b_
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id, user_message)
SELECT $company, 'Imported Customer ' || i, 'import.' || i || '@example.com',
       '+1 ' || (ARRAY['212', '646', '718', '917'])[1 + i / 10000] || ' 555 ' || lpad((i % 10000)::text, 4, '0'),
       $(session "'import-' || i"), 'hello'
  FROM generate_series(1, $n) i;
SET CONSTRAINTS ALL IMMEDIATE;
SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)) FILTER (WHERE crm_table = 'customers'), 0) AS cust,
       coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)) FILTER (WHERE crm_table = 'customer_matching_keys'), 0) AS keys,
       coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) AS scans,
       extract(epoch FROM clock_timestamp()) * 1000 AS t
  FROM ic_stats
 WHERE crm_table IN ('customers', 'customer_matching_keys') \gset a_
SELECT 'RESULT', :a_cust - :b_cust, :a_keys - :b_keys, :a_scans - :b_scans, round(:a_t - :b_t),
       (SELECT count(DISTINCT customer_id) FROM "VC Usage" WHERE user_message = 'hello'),
       (SELECT count(*) FROM "VC Usage" WHERE user_message = 'hello' AND customer_id IS NULL);
COMMIT;
-- Returning chats: R in one statement (customer 1 for every tenth, so its
-- history grows; else customer i), then R / 10 single chats of customer 1.
-- Then R / 20 of customer 1's chats go, the latest first (each removes the
-- stored last interaction: the metrics probe the extremes), and R / 20
-- customers without a phone get one from a chat (contact fill: customer
-- UPDATE, keys rewrite).
UPDATE customers SET customer_phone = NULL WHERE customer_email ~ '^import[.][0-9]*0@';
-- Back to the plan cache's own choice, as in any backend: a kept generic
-- plan (made above, on the empty tables) is used again after five custom
-- plans whenever it looks no dearer; the statements crm_native prepares as
-- generic (PlanMode::Generic) keep theirs.
RESET plan_cache_mode;
-- The single chats' row addresses, so that the deletes below reach each by
-- its ctid (a TID scan): the measurement is of the triggers, and a DELETE by
-- session_id of the harness's own would, under row-level security with an
-- index on company_id alone, read the tenant's index entries itself.
CREATE TEMP TABLE ic_single_chat (single int PRIMARY KEY, chat tid);
BEGIN;
SELECT $reads_all AS reads FROM ic_stats t WHERE t.crm_table IN $crm_tables \gset rb_
INSERT INTO "VC Usage" ($ret_cols)
SELECT $ret_row FROM (SELECT CASE WHEN k % 10 = 0 THEN 1 ELSE k END AS i, k FROM generate_series(1, $r) k) x;
DO \$\$ DECLARE t tid; BEGIN FOR k IN 1..$r / 10 LOOP
  INSERT INTO "VC Usage" ($ret_cols) SELECT $ret_row FROM (SELECT 1 AS i) x RETURNING ctid INTO t;
  INSERT INTO ic_single_chat VALUES (k, t);
END LOOP; END \$\$;
SELECT $reads_all AS reads FROM ic_stats t WHERE t.crm_table IN $crm_tables \gset r2_
DO \$\$ BEGIN FOR k IN REVERSE $r / 10..$r / 10 - $r / 20 + 1 LOOP
  DELETE FROM "VC Usage" WHERE ctid = (SELECT c.chat FROM ic_single_chat c WHERE c.single = k);
  IF NOT FOUND THEN RAISE EXCEPTION 'import_cost: single chat % was not at its row address', k; END IF;
END LOOP; END \$\$;
SELECT $reads_all AS reads FROM ic_stats t WHERE t.crm_table IN $crm_tables \gset r3_
DO \$\$ BEGIN FOR k IN 1..$r / 20 LOOP
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id, user_message)
  SELECT $company, 'Imported Customer ' || i, 'import.' || i || '@example.com',
         '+1 332 555 ' || lpad(k::text, 4, '0'), $(session "'fill-' || k"), 'again'
    FROM (SELECT k * 10 AS i) x;
END LOOP; END \$\$;
SET CONSTRAINTS ALL IMMEDIATE;
SELECT $reads_all AS reads FROM ic_stats t WHERE t.crm_table IN $crm_tables \gset ra_
SELECT 'PHASES inserts', :r2_reads - :rb_reads, 'deletes', :r3_reads - :r2_reads, 'fills', :ra_reads - :r3_reads;
SELECT 'RETURNING', $r + $r / 10 + $r / 20 + $r / 20, :ra_reads - :rb_reads,
       (SELECT count(*) FROM "VC Usage" WHERE user_message = 'again' AND customer_id IS NULL);
COMMIT;
SQL
  echo "$(grep '^RESULT ' "$log" | cut -d' ' -f2-) $(grep '^RETURNING ' "$log" | cut -d' ' -f2-)"
}

say "variants: $VARIANTS   sizes: $SIZES   bound: <= $MAX_PER_ROW table reads per chat, growth <= ${MAX_GROWTH}x"
say "$(printf '%-15s %7s %12s %12s %10s %10s %9s' variant chats customers keys scans per_chat ms)"
failed=()
for variant in $VARIANTS; do
  problems=()
  declare -A per_row=() per_ret=()
  for n in $SMALL $LARGE; do
    if ! res=$(measure "$variant" "$n") || [ -z "$res" ]; then
      problems+=("$n chats: ${res:-no result} ($OUT/${variant}_$n.log)"); continue
    fi
    read -r cust keys scans ms n_customers n_unlinked ret_n ret_reads ret_unlinked <<<"$res"
    per=$(awk -v c="$cust" -v k="$keys" -v n="$n" 'BEGIN{printf "%.2f", (c + k) / n}')
    per_row[$n]=$per
    say "$(printf '%-15s %7s %12s %12s %10s %10s %9s' "$variant" "$n" "$cust" "$keys" "$scans" "$per" "$ms")"
    if [ -z "${ret_reads:-}" ]; then
      problems+=("$n chats: the returning chats gave no result ($OUT/${variant}_$n.log)")
    else
      pr=$(awk -v c="$ret_reads" -v n="$ret_n" 'BEGIN{printf "%.2f", c / n}')
      per_ret[$n]=$pr
      say "$(printf '%-15s %7s returning chats after it: %s reads from the four CRM tables, %s per chat' "$variant" "$ret_n" "$ret_reads" "$pr")"
      [ "$ret_unlinked" = 0 ] || problems+=("$ret_n returning chats: $ret_unlinked left unlinked")
      awk -v p="$pr" 'BEGIN{exit !(p >= 1)}' || problems+=("$ret_n returning chats: $pr reads per chat, under 1")
      awk -v p="$pr" -v m="$MAX_PER_RETURNING" 'BEGIN{exit !(p <= m)}' \
        || problems+=("$ret_n returning chats after $n: $pr table reads per chat, more than $MAX_PER_RETURNING")
    fi
    [ "$n_customers" = "$n" ] && [ "$n_unlinked" = 0 ] \
      || problems+=("$n chats were linked to $n_customers customers, $n_unlinked unlinked (expected $n and 0)")
    awk -v p="$per" 'BEGIN{exit !(p >= 1)}' \
      || problems+=("$n chats: $per reads per chat, under 1: the measurement does not see the import's reads")
    awk -v p="$per" -v m="$MAX_PER_ROW" 'BEGIN{exit !(p <= m)}' \
      || problems+=("$n chats: $per table reads per chat, more than $MAX_PER_ROW")
    [ "${IC_KEEP:-0}" = 1 ] || drop "ic_${variant}_$n"
  done
  if [ -n "${per_row[$SMALL]:-}" ] && [ -n "${per_row[$LARGE]:-}" ]; then
    growth=$(awk -v s="${per_row[$SMALL]}" -v l="${per_row[$LARGE]}" 'BEGIN{printf "%.2f", (s > 0 ? l / s : 999)}')
    awk -v g="$growth" -v m="$MAX_GROWTH" 'BEGIN{exit !(g <= m)}' \
      || problems+=("reads per chat grow with the table: ${per_row[$LARGE]} at $LARGE chats, ${per_row[$SMALL]} at $SMALL (${growth}x, more than ${MAX_GROWTH}x)")
    summary="${per_row[$SMALL]} reads per chat at $SMALL, ${per_row[$LARGE]} at $LARGE (${growth}x)"
  fi
  if [ -n "${per_ret[$SMALL]:-}" ] && [ -n "${per_ret[$LARGE]:-}" ]; then
    growth=$(awk -v s="${per_ret[$SMALL]}" -v l="${per_ret[$LARGE]}" 'BEGIN{printf "%.2f", (s > 0 ? l / s : 999)}')
    awk -v g="$growth" -v m="$MAX_GROWTH" 'BEGIN{exit !(g <= m)}' \
      || problems+=("reads per returning chat grow with the table: ${per_ret[$LARGE]} after $LARGE, ${per_ret[$SMALL]} after $SMALL (${growth}x, more than ${MAX_GROWTH}x)")
    summary="$summary; returning chats ${per_ret[$SMALL]} / ${per_ret[$LARGE]} (${growth}x)"
  fi
  unset per_row per_ret
  if [ ${#problems[@]} -eq 0 ]; then
    say "PASS $variant: $summary"
  else
    say "FAIL $variant: ${problems[0]}"
    for p in "${problems[@]:1}"; do say "     $variant: $p"; done
    failed+=("$variant")
  fi
done

if [ ${#failed[@]} -eq 0 ]; then say "PASS: all variants ($VARIANTS)"; exit 0; fi
say "FAIL: ${failed[*]}"; exit 1
