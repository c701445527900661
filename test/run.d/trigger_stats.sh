#!/usr/bin/env bash
# crm_native.trigger_stats on a server that preloads crm_native (the test
# cluster of scripts/test.sh does not: sql/trigger_stats_no_preload checks the
# error there). Starts its own throwaway cluster with
# shared_preload_libraries = crm_native (scripts/pgenv.sh), then:
#   1. exact counts after a known workload: N chats of K new customers in one
#      statement (N calls of customer_sync, K created, N-K matched), chats
#      without contact data (unlinked, by reason), K calls of the customers
#      triggers, one metrics_insert call of N+U rows; an UPDATE of the stage of
#      every customer (K lifecycle calls); a failed statement (errors);
#      health()'s p99 rows against the budgets; a chat whose email cannot
#      be normalized (LATIN1 database) is counted under its reason;
#      trigger_stats_reset() empties the view;
#   2. crm_native.trigger_stats = off: nothing is counted;
#   3. the isolation spec test/trigger_stats/specs/*.spec (lock waits,
#      serialization failures, concurrent sessions on one entry);
#   4. concurrent updates lose nothing: pgbench, 4 clients x 250 single-chat
#      transactions: exactly 1,000 calls;
#   5. overhead, informational (the benchmark measures it: scripts/bench.sh):
#      single-chat pgbench TPS with crm_native.trigger_stats on and off;
#   6. the pg_cron recipe of docs/observe.md (pg_cron also preloaded): a job
#      scheduled at the start writes health() into a log table within ~60 s.
# Knobs: TS_PGBENCH_SECONDS (overhead runs, default 5; 0 skips them).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=../../scripts/pgenv.sh
source scripts/pgenv.sh
PGBENCH_SECONDS=${TS_PGBENCH_SECONDS:-5}
OUT=$CRM_RUN_DIR/trigger_stats
rm -rf "$OUT"; mkdir -p "$OUT"; chmod 777 "$OUT"
say() { echo "[trigger_stats] $*"; }
fail=0
check() {  # check NAME ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then say "ok: $1 ($2)"; else say "FAIL: $1: got '$2', expected '$3'"; fail=1; fi
}

[ -f "$CRM_STAGE$PG_SYS_PKGLIBDIR/crm_native.so" ] || crm_stage || { say "FAIL: build"; exit 1; }
# pg_cron (postgresql-15-cron, scripts/deps.sh) for the health() recipe of
# docs/observe.md; a stage made before it was installed gets its files now.
if [ -f "$PG_SYS_PKGLIBDIR/pg_cron.so" ] && [ ! -f "$CRM_STAGE$PG_SYS_PKGLIBDIR/pg_cron.so" ]; then
  cp "$PG_SYS_PKGLIBDIR/pg_cron.so" "$CRM_STAGE$PG_SYS_PKGLIBDIR/" &&
    cp "$PG_SYS_SHAREDIR"/extension/pg_cron* "$CRM_STAGE$PG_SYS_SHAREDIR/extension/" && chmod -R a+rX "$CRM_STAGE"
fi
[ -f "$CRM_STAGE$PG_SYS_PKGLIBDIR/pg_cron.so" ] || { say "FAIL: pg_cron is not installed (scripts/deps.sh installs postgresql-15-cron)"; exit 1; }
crm_cluster_start trigger_stats fsync=off synchronous_commit=off full_page_writes=off max_connections=30 \
  shared_preload_libraries=crm_native,pg_cron cron.database_name=postgres cron.use_background_workers=on \
  || { say "FAIL: the server did not start with crm_native preloaded"; exit 1; }

q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
qa() { q -At "$@"; }
DB=ts_workload
q -d postgres -c "CREATE DATABASE $DB" || exit 1
for f in reference/*.sql; do q -d "$DB" -f "$f" >/dev/null || exit 1; done
q -d "$DB" -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >/dev/null || exit 1
q -d "$DB" -c "INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A')" || exit 1

# --- 0. the pg_cron recipe of docs/observe.md: health() every minute into a
# log table (checked at the end: pg_cron 1.4 runs jobs at minute boundaries)
HC_DB=ts_cron
q -d postgres -c "CREATE DATABASE $HC_DB" || exit 1
for f in reference/*.sql; do q -d "$HC_DB" -f "$f" >/dev/null || exit 1; done
q -d "$HC_DB" -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >/dev/null || exit 1
q -d "$HC_DB" -c "CREATE TABLE public.crm_health_log (checked_at timestamptz NOT NULL DEFAULT now(),
    check_name text, status text, value numeric, detail text)" || exit 1
q -d postgres -c "CREATE EXTENSION pg_cron" || exit 1
q -d postgres -c "SELECT cron.schedule_in_database('crm-health', '* * * * *',
    \$\$INSERT INTO public.crm_health_log (check_name, status, value, detail) SELECT * FROM crm_native.health('public', 1000)\$\$,
    '$HC_DB')" >/dev/null || exit 1
CRON_T0=$(date +%s)

# --- 1. exact counts -------------------------------------------------------
N=50 K=20 U=3
q -d "$DB" -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
q -d "$DB" <<SQL || exit 1
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '00000000-0000-0000-0000-00000000000a'::uuid, 'Customer ' || (i % $K), 'customer' || (i % $K) || '@example.com', 's' || i
  FROM generate_series(0, $N - 1) i
UNION ALL
SELECT '00000000-0000-0000-0000-00000000000a'::uuid, NULL, NULL, 'no contact ' || i FROM generate_series(1, $U) i;
UPDATE customers SET lifecycle_stage = 'lead';
SQL
# a statement that fails in the sync: a chat naming another company's customer
q -d "$DB" -c "INSERT INTO \"VC Usage\" (company_id, customer_id, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', gen_random_uuid(), 'bad')" >/dev/null 2>&1 || true
stat() {  # stat FUNCTION COLUMNS
  qa -F ' ' -d "$DB" -c "SELECT $2 FROM crm_native.trigger_stats WHERE database = current_database() AND function = 'crm_native.$1'"
}
qa -d "$DB" -c "SELECT * FROM crm_native.trigger_stats" >"$OUT/workload.txt"
cat "$OUT/workload.txt"
check "customer_sync calls rows created matched unlinked(no contact, normalize) errors" \
  "$(stat customer_sync 'calls, rows, customers_created, customers_matched, unlinked_no_contact, unlinked_normalize_failed, errors')" \
  "$((N + U + 1)) $((N + U + 1)) $K $((N - K)) $U 0 1"
check "customer_sync times: 0 < min <= p50 <= p95 <= p99 <= max, mean in [min, max]" \
  "$(stat customer_sync '0 < min_ms AND min_ms <= p50_ms AND p50_ms <= p95_ms AND p95_ms <= p99_ms AND p99_ms <= max_ms AND mean_ms BETWEEN min_ms AND max_ms')" t
check "matching_keys_sync calls (inserts of the new customers + the stage update)" "$(stat matching_keys_sync 'calls, rows')" "$((2 * K)) $((2 * K))"
check "audit_log calls" "$(stat audit_log 'calls')" "$((2 * K))"
check "lifecycle_tracking calls" "$(stat lifecycle_tracking 'calls')" "$K"
check "metrics_insert: one statement, its rows" "$(stat metrics_insert 'calls, rows')" "1 $((N + U))"
check "table of customer_sync" "$(stat customer_sync 'table_name')" "public.VC Usage"
check "entries in use" "$(qa -d "$DB" -c "SELECT entries, dropped_calls FROM crm_native.trigger_stats_info()" -F ' ')" "5 0"
# health(): one p99 row per trigger function, judged against the budgets
check "health(): p99 rows" "$(qa -d "$DB" -c "SELECT count(*) FROM crm_native.health() WHERE check_name LIKE 'trigger p99: %'")" 5
check "health(): p99 over a budget is a warning" "$(qa -d "$DB" <<'SQL'
BEGIN;
UPDATE crm_native.trigger_budget SET budget_ms = 1e-9;
SELECT string_agg(DISTINCT status, ',') FROM crm_native.health() WHERE check_name LIKE 'trigger p99: %';
UPDATE crm_native.trigger_budget SET budget_ms = 1e9;
SELECT string_agg(DISTINCT status, ',') FROM crm_native.health() WHERE check_name LIKE 'trigger p99: %';
ROLLBACK;
SQL
)" "$(printf 'warning\nok')"
check "health(): unlinked chats by reason" \
  "$(qa -d "$DB" -c "SELECT detail ~ 'left 3 without usable contact data and 0 whose' FROM crm_native.health() WHERE check_name = 'chats left unlinked'")" t
q -d "$DB" -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
check "after trigger_stats_reset()" "$(qa -d "$DB" -c "SELECT count(*) FROM crm_native.trigger_stats")" 0

# a chat whose only key cannot be normalized: in a LATIN1 database, a name
# whose key LATIN1 cannot store (the micro sign case-folds to a Greek mu; as
# test/run.d/sync_normalize_failure.sh)
L1=ts_latin1
q -d postgres -c "CREATE DATABASE $L1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" || exit 1
for f in reference/*.sql; do q -d "$L1" -f "$f" >/dev/null || exit 1; done
q -d "$L1" -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >/dev/null || exit 1
PGCLIENTENCODING=UTF8 q -d "$L1" -c "INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A')" \
  -c "INSERT INTO \"VC Usage\" (company_id, customer_name, customer_email, session_id)
      VALUES ('00000000-0000-0000-0000-00000000000a', 'µ', NULL, 's1')" 2>/dev/null || exit 1
check "customer_sync in LATIN1: unlinked because not normalized" \
  "$(qa -F ' ' -d "$L1" -c "SELECT calls, unlinked_no_contact, unlinked_normalize_failed FROM crm_native.trigger_stats
     WHERE database = current_database() AND function = 'crm_native.customer_sync'")" "1 0 1"

# --- 1b. an error caught inside a trigger, then the outer call's own error --
# (the inner chat's error, caught by the application's exception block,
# left the outer chat's error uncounted: each is counted once now)
E=ts_errors
q -d postgres -c "CREATE DATABASE $E" || exit 1
for f in reference/*.sql; do q -d "$E" -f "$f" >/dev/null || exit 1; done
q -d "$E" <<'SQL' >/dev/null || exit 1
CREATE EXTENSION crm_native CASCADE;
SELECT crm_native.install();
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
-- after the native triggers on customers (z_): a new customer's welcome chat
-- names no company, its sync fails, and the application catches that
CREATE FUNCTION welcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO "VC Usage" (company_id, customer_email, session_id)
    VALUES ('99999999-9999-9999-9999-999999999999', 'welcome@example.com', 'welcome');
  EXCEPTION WHEN foreign_key_violation THEN NULL;
  END;
  RETURN NULL;
END $$;
CREATE TRIGGER z_welcome AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION welcome();
-- then the outer chat's 'created' event is refused
CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no events today'; END $$;
CREATE TRIGGER refuse_event BEFORE INSERT ON customer_events FOR EACH ROW EXECUTE FUNCTION refuse_event();
SELECT crm_native.trigger_stats_reset();
SQL
outer_chat_errors() {  # outer_chat_errors EMAIL ERROR-TEXT WHAT: the chat fails with it; 2 calls, 2 errors
  local err
  err=$(q -d "$E" -c "INSERT INTO \"VC Usage\" (company_id, customer_email, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', '$1', '$1')" 2>&1)
  check "the outer chat fails with the application's error ($2)" "$(grep -c "$2" <<<"$err")" 1
  check "customer_sync: the inner and the outer call, each error counted once ($3)" \
    "$(qa -F ' ' -d "$E" -c "SELECT calls, errors FROM crm_native.trigger_stats
       WHERE database = current_database() AND function = 'crm_native.customer_sync'")" "2 2"
}
outer_chat_errors outer@example.com 'no events today' 'the outer error in a later statement'
# and when the application raises its own error right after catching the
# inner one, in the same statement (found by an independent review)
q -d "$E" <<'SQL' >/dev/null || exit 1
DROP TRIGGER refuse_event ON customer_events;
CREATE OR REPLACE FUNCTION welcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO "VC Usage" (company_id, customer_email, session_id)
    VALUES ('99999999-9999-9999-9999-999999999999', 'welcome@example.com', 'welcome');
  EXCEPTION WHEN foreign_key_violation THEN
    RAISE EXCEPTION 'no welcome today';
  END;
  RETURN NULL;
END $$;
SELECT crm_native.trigger_stats_reset();
SQL
outer_chat_errors outer2@example.com 'no welcome today' 'the application raises right after catching'

# --- 1c. a lock wait that ends in an error is counted, with its time ---------
# (lock_waits counted only waits that ended with the lock)
W=ts_waits
q -d postgres -c "CREATE DATABASE $W" || exit 1
for f in reference/*.sql; do q -d "$W" -f "$f" >/dev/null || exit 1; done
q -d "$W" -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" \
  -c "INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A')" >/dev/null || exit 1
# a transaction that creates the customer and holds its key lock for 4 s
q -d "$W" -c "BEGIN" -c "INSERT INTO \"VC Usage\" (company_id, customer_email, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'waited@example.com', 'holder')" -c "SELECT pg_sleep(4)" -c "COMMIT" \
  >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 50); do
  [ "$(qa -d "$W" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17234")" = 1 ] && break
  sleep 0.1
done
q -d "$W" -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
err=$(q -d "$W" -c "SET lock_timeout = '300ms'" -c "INSERT INTO \"VC Usage\" (company_id, customer_email, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'waited@example.com', 'waiter')" 2>&1)
wait "$holder"
check "the waiting chat ends with the lock timeout" "$(grep -c 'lock timeout' <<<"$err")" 1
check "customer_sync: the failed call, its error and its wait (with at least 0.25 s of it)" \
  "$(qa -F ' ' -d "$W" -c "SELECT calls, errors, lock_waits, lock_wait_ms >= 250 FROM crm_native.trigger_stats
     WHERE database = current_database() AND function = 'crm_native.customer_sync'")" "1 1 1 t"

# --- 1d. calls past the counted depth are nobody's -----------------------------
# (an application trigger on customers that writes a chat, 40 levels deep:
# the levels past the 32 counted ones credited their new customers to the
# 32nd; found by an independent review)
q -d "$W" >/dev/null <<'SQL' || exit 1
CREATE FUNCTION chain_chat() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n int := split_part(split_part(NEW.customer_email, '@', 1), '-', 2)::int;
BEGIN
  IF NEW.customer_email LIKE 'chain-%' AND n < 40 THEN
    INSERT INTO "VC Usage" (company_id, customer_email, session_id)
    VALUES (NEW.company_id, 'chain-' || (n + 1) || '@example.com', 'chain');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER a_chain AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION chain_chat();
SELECT crm_native.trigger_stats_reset();
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'chain-1@example.com', 'chain');
DROP TRIGGER a_chain ON customers;
SQL
check "40 nested chats, 40 customers: 32 calls counted, each with its own customer" \
  "$(qa -F ' ' -d "$W" -c "SELECT (SELECT count(*) FROM customers WHERE customer_email LIKE 'chain-%'), calls, customers_created
     FROM crm_native.trigger_stats WHERE database = current_database() AND function = 'crm_native.customer_sync'")" "40 32 32"

# --- 2. crm_native.trigger_stats = off ----------------------------------------
q -d "$DB" -c "SET crm_native.trigger_stats = off" -c "INSERT INTO \"VC Usage\" (company_id, customer_email, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'off@example.com', 'off')" || exit 1
check "nothing counted with crm_native.trigger_stats = off" \
  "$(qa -d "$DB" -c "SELECT count(*) FROM crm_native.trigger_stats WHERE database = current_database()")" 0
check "the chat was still linked" "$(qa -d "$DB" -c "SELECT count(customer_id) FROM \"VC Usage\" WHERE session_id = 'off'")" 1

# --- 3. isolation spec ------------------------------------------------------
ISO_DB=ts_isolation
q -d postgres -c "CREATE DATABASE $ISO_DB TEMPLATE $DB" || exit 1
q -d "$ISO_DB" -c 'TRUNCATE "VC Usage", customers, customer_matching_keys, customer_events, customer_audit_log, customer_metrics CASCADE' || exit 1
for spec in test/trigger_stats/specs/*.spec; do
  name=$(basename "$spec" .spec)
  mkdir -p "$OUT/iso"
  "$CRM_PGXS_DIR/src/test/isolation/pg_isolation_regress" --bindir="$($PG_CONFIG --bindir)" \
    --inputdir="$ROOT/test/trigger_stats" --outputdir="$OUT/iso" --use-existing --dbname="$ISO_DB" "$name" \
    >"$OUT/iso/$name.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then say "ok: isolation $name"
  else say "FAIL: isolation $name"; cat "$OUT/iso/$name.log"; head -100 "$OUT/iso/regression.diffs" 2>/dev/null; fail=1; fi
done

# --- 4. concurrent sessions lose no update ------------------------------------
q -d "$DB" -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
cat >"$OUT/chat.sql" <<'SQL'
\set n random(1, 1000000000)
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Visitor ' || (:n % 50), 'visitor' || (:n % 50) || '@example.com', 'pgb_' || :n);
SQL
"$CRM_PGBIN/pgbench" -n -c 4 -j 4 -t 250 -f "$OUT/chat.sql" "$DB" >"$OUT/pgbench_exact.txt" 2>&1 \
  || { say "FAIL: pgbench"; cat "$OUT/pgbench_exact.txt"; fail=1; }
check "4 clients x 250 chats: calls, created + matched" \
  "$(stat customer_sync 'calls, customers_created + customers_matched')" "1000 1000"

# 300 tables (more than the 256 entries) named PREFIX_1..300 in $FULL_DB,
# each with a native trigger that has run once
measured_tables() {
  q -d "$FULL_DB" -v prefix="$1" <<'SQL'
SELECT format('CREATE TABLE %I (LIKE "VC Usage")', :'prefix' || '_' || i),
       format('CREATE TRIGGER t AFTER TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_truncate()',
              :'prefix' || '_' || i),
       format('TRUNCATE %I', :'prefix' || '_' || i)
  FROM generate_series(1, 300) i \gexec
SQL
}

# --- 4b. a full table takes over the slots of dropped tables -----------------
# (hourly partitions dropped left their slots taken: once 256 were, live
# tables were no longer counted, and every call of theirs took the
# exclusive lock again; found by an independent tester)
FULL_DB=ts_full
q -d postgres -c "CREATE DATABASE $FULL_DB" || exit 1
for f in reference/*.sql; do q -d "$FULL_DB" -f "$f" >/dev/null || exit 1; done
q -d "$FULL_DB" -c "CREATE EXTENSION crm_native CASCADE" -c "SELECT crm_native.install()" >/dev/null || exit 1
q -d "$FULL_DB" -c "INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A')" || exit 1
q -d "$DB" -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
measured_tables scratch || exit 1
check "300 tables measured: the table is full, calls not counted" \
  "$(qa -d "$FULL_DB" -c "SELECT entries = max_entries AND dropped_calls > 0 FROM crm_native.trigger_stats_info()")" t
q -d "$FULL_DB" >/dev/null <<'SQL' || exit 1
SELECT format('DROP TABLE scratch_%s', i) FROM generate_series(1, 300) i \gexec
SQL
q -d "$FULL_DB" -c "INSERT INTO \"VC Usage\" (company_id, customer_email, session_id) VALUES ('00000000-0000-0000-0000-00000000000a', 'full@example.com', 'f1')" || exit 1
check "after the tables were dropped, a chat into a live table is counted" \
  "$(qa -d "$FULL_DB" -c "SELECT calls FROM crm_native.trigger_stats WHERE function = 'crm_native.customer_sync' AND database = current_database()")" 1

# --- 4d. a table created in a transaction still open keeps its slot --------
# (the take-over read the catalog alone, where a table created in another
# backend's open transaction is not yet: once the entries were full, any new
# table took the open table's slot and its calls were no longer counted)
mkfifo "$OUT/open_tx.fifo"
qa -d "$FULL_DB" <"$OUT/open_tx.fifo" >"$OUT/open_tx.out" 2>&1 &
OPEN_PID=$!
exec 7>"$OUT/open_tx.fifo"
cat >&7 <<'SQL'
BEGIN;
CREATE SCHEMA open_s;  -- its own customer_metrics, the table the trigger empties: no lock the others need
CREATE TABLE open_s.customer_metrics (LIKE public.customer_metrics);
CREATE TABLE open_s.open_chats (LIKE "VC Usage");
CREATE TRIGGER t AFTER TRUNCATE ON open_s.open_chats FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_truncate();
TRUNCATE open_s.open_chats;
SELECT 'open table counted: ' || count(*) FROM crm_native.trigger_stats WHERE table_name LIKE '%open_chats' AND calls = 1;
SQL
for i in $(seq 1 100); do grep -q 'open table counted' "$OUT/open_tx.out" && break; sleep 0.1; done
measured_tables later || exit 1
cat >&7 <<'SQL'
TRUNCATE open_s.open_chats;
SELECT 'open table calls: ' || coalesce(max(calls), 0) FROM crm_native.trigger_stats WHERE table_name LIKE '%open_chats';
COMMIT;
SQL
exec 7>&-
wait $OPEN_PID
check "a table in a transaction still open keeps its entry when the others fill the table" \
  "$(grep -E '^open table' "$OUT/open_tx.out" | tr '\n' ' ')" "open table counted: 1 open table calls: 2 "

# and a table this transaction drops is not gone while the DROP can roll
# back (found by an independent review: its slot was taken, and lost)
check "a table dropped in a transaction that rolls back keeps its entry" "$(qa -d "$FULL_DB" <<'SQL'
SELECT split_part(table_name, '.', 2) AS kept FROM crm_native.trigger_stats
 WHERE table_name LIKE 'public.later\_%' ORDER BY table_name LIMIT 1 \gset
SELECT 'later_' || i AS unkept FROM generate_series(1, 300) i
 WHERE NOT EXISTS (SELECT FROM crm_native.trigger_stats WHERE table_name = 'public.later_' || i) LIMIT 1 \gset
BEGIN;
DROP TABLE :"kept";
TRUNCATE :"unkept";
ROLLBACK;
SELECT count(*) FROM crm_native.trigger_stats WHERE table_name = 'public.' || :'kept';
SQL
)" 1

# --- 4c. temporary tables take no slot --------------------------------------
# (any role can put the native triggers on temporary tables: they filled the
# 256 slots for as long as their session lived; found by an independent tester)
q -d "$DB" -c "SELECT crm_native.trigger_stats_reset()" >/dev/null
check "triggers on temporary tables are not counted" "$(qa -F ' ' -d "$DB" <<'SQL'
CREATE TEMP TABLE scratch_chat (LIKE "VC Usage");
CREATE TEMP TABLE customer_metrics (LIKE public.customer_metrics);  -- what the trigger empties beside it
CREATE TRIGGER t AFTER TRUNCATE ON scratch_chat FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_truncate();
TRUNCATE scratch_chat;
TRUNCATE scratch_chat;
SELECT entries, dropped_calls FROM crm_native.trigger_stats_info();
SQL
)" "0 0"

# --- 5. overhead (informational) ----------------------------------------------
if [ "$PGBENCH_SECONDS" != 0 ]; then
  for run in 1 2; do
    for mode in on off; do
      PGOPTIONS="-c crm_native.trigger_stats=$mode" "$CRM_PGBIN/pgbench" -n -M prepared -c 2 -j 2 -T "$PGBENCH_SECONDS" \
        -f "$OUT/chat.sql" "$DB" >"$OUT/pgbench_${mode}_$run.txt" 2>&1
      say "overhead run $run, trigger_stats=$mode: $(grep -E '^tps' "$OUT/pgbench_${mode}_$run.txt" | head -1)"
    done
  done
fi

# --- 6. the pg_cron job ran health() ------------------------------------------
for i in $(seq 1 100); do
  [ "$(qa -d "$HC_DB" -c "SELECT count(*) > 0 FROM public.crm_health_log")" = t ] && break
  [ $(( $(date +%s) - CRON_T0 )) -gt 95 ] && break
  sleep 1
done
qa -d postgres -c "SELECT status, return_message FROM cron.job_run_details ORDER BY runid" >"$OUT/cron_runs.txt" 2>&1
check "pg_cron ran health() into crm_health_log (schema checks + data checks + p99 rows)" \
  "$(qa -d "$HC_DB" -c "SELECT count(*) >= 9 AND bool_and(status IN ('ok', 'warning')) FROM public.crm_health_log
                        WHERE checked_at = (SELECT min(checked_at) FROM public.crm_health_log)")" t
[ -s "$OUT/cron_runs.txt" ] && say "cron.job_run_details: $(head -3 "$OUT/cron_runs.txt" | tr '\n' ' ')"
q -d postgres -c "SELECT cron.unschedule('crm-health')" >/dev/null

crm_cluster_stop
[ $fail -eq 0 ] && say "all checks passed"
exit $fail
