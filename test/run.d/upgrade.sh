#!/usr/bin/env bash
# Upgrade from every released version (src/sql/released/crm_native--X.sql:
# 0.1.0 to 0.7.0) to the current one (CHANGELOG.md); UPGRADE_FROM=X checks one.
#
# Two databases from the reference schema (crm_template without crm_native):
#   up     CREATE EXTENSION crm_native VERSION 'X' from the install script
#          as released (src/sql/released/), install(), the first half of the
#          differential workload, ALTER EXTENSION crm_native UPDATE, the second
#          half;
#   fresh  CREATE EXTENSION crm_native (the current version), install(), both
#          halves.
# Before install() both get the same application-trigger customizations (a
# comment on one trigger, another one ENABLE ALWAYS). Then:
#   1. the extension's objects are the same in both (every member object, each
#      function's definition and privileges, the view, the tables' columns,
#      comments, the registered native triggers, and the triggers attached to
#      the application's tables): an updated X is a fresh install;
#   2. the data are the same (the differential dump, row for row);
#   3. status() agrees, and uninstall() puts back exactly the application's
#      triggers of before install() (definition, enabled state, comment);
#   4. pg_dump of the updated database restores into a new database with the
#      extension at the current version and its configuration table
#      (crm_native.replaced_trigger) intact, and uninstall() works there.
# An older script runs with the current library, built with the test-only
# functions, which still has every symbol the older scripts name.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -z "${UPGRADE_FROM:-}" ]; then
  rc=0
  for script in "$ROOT"/src/sql/released/crm_native--[0-9]*.sql; do
    from=$(basename "$script" .sql); from=${from#crm_native--}
    case $from in *--*) continue ;; esac   # an upgrade script, not an install script
    UPGRADE_FROM=$from bash "${BASH_SOURCE[0]}" || rc=1
  done
  exit $rc
fi
FROM=$UPGRADE_FROM
DIR=$ROOT/test/differential
CHECK=upgrade-from-$FROM
# shellcheck source=../differential/common.sh
source "$DIR/common.sh"
# shellcheck source=../../scripts/pgenv.sh
source "$ROOT/scripts/pgenv.sh"
SEED=${UPGRADE_SEED:-20240611}
STEPS=${UPGRADE_STEPS:-200}
VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/crm_native.control")
fail=0
problem() { say "FAIL: $*"; fail=1; }

qv -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'crm_template'" | grep -q 1 \
  || { say "crm_template missing (run through scripts/test.sh)"; exit 1; }

# The released install script, into the staged extension directory (the
# upgrade scripts are installed by make install).
EXTDIR=$CRM_STAGE$PG_SYS_SHAREDIR/extension
cp "$ROOT/src/sql/released/crm_native--$FROM.sql" "$EXTDIR/" || { say "cannot stage the $FROM script"; exit 1; }

# The workload, split after the middle transaction; both halves get the header.
drop upgrade_gen
q -d postgres -c "CREATE DATABASE upgrade_gen TEMPLATE crm_template" >/dev/null
q -d upgrade_gen -f "$DIR/harness.sql" -f "$DIR/generator.sql" >/dev/null || { say "cannot set up the generator"; exit 1; }
qv -d upgrade_gen -c "SELECT difftest.generate($SEED, $STEPS)" >"$OUT/workload.sql" || { say "generator failed"; exit 1; }
drop upgrade_gen
half=$((STEPS / 2))
awk -v half="$half" -v a="$OUT/part_a.sql" -v b="$OUT/part_b.sql" '
  !started && /^BEGIN/ { started = 1 }
  !started { print > a; print > b; next }
  { print > (n < half ? a : b) }
  /^COMMIT;/ { n++ }' "$OUT/workload.sql"

APP_TRIGGERS="SELECT c.relname || '.' || t.tgname || ' ' || t.tgenabled::text || ' ' || coalesce(obj_description(t.oid, 'pg_trigger'), '-')
                     || ' ' || pg_get_triggerdef(t.oid)
                FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace ORDER BY 1"

setup() {  # setup DB VERSION-CLAUSE
  drop "$1"
  q -d postgres -c "CREATE DATABASE \"$1\" TEMPLATE crm_template" >/dev/null || return 1
  q -d "$1" -c "DROP EXTENSION crm_native" -c "CREATE EXTENSION crm_native $2" >/dev/null || return 1
  q -d "$1" -f "$DIR/harness.sql" >/dev/null || return 1
  # the application's own trigger customizations, which uninstall() must restore
  q -d "$1" -c "COMMENT ON TRIGGER trg_customers_audit_log ON customers IS 'audit: keep for compliance'" \
            -c "ALTER TABLE customers ENABLE ALWAYS TRIGGER trg_customers_lifecycle_tracking" >/dev/null || return 1
  qv -d "$1" -c "$APP_TRIGGERS" >"$OUT/$1.app_triggers" || return 1
  q -d "$1" -c "SELECT crm_native.install()" >/dev/null
}
setup upgrade_up "VERSION '$FROM'" || { say "cannot create the $FROM database"; exit 1; }
setup upgrade_fresh "" || { say "cannot create the $VERSION database"; exit 1; }
say "$FROM: $(qv -d upgrade_up -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_native'"), fresh: $(qv -d upgrade_fresh -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_native'")"

q -d upgrade_up -f "$OUT/part_a.sql" >"$OUT/up_a.log" 2>&1 || { tail -5 "$OUT/up_a.log"; problem "first half failed on $FROM"; }
q -d upgrade_up -c "ALTER EXTENSION crm_native UPDATE" >"$OUT/update.log" 2>&1 \
  || { cat "$OUT/update.log"; problem "ALTER EXTENSION crm_native UPDATE failed"; }
got=$(qv -d upgrade_up -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_native'")
[ "$got" = "$VERSION" ] || problem "after the update the extension is at $got, not $VERSION"
# The update records the installed schemas as install() does (uninstall()
# refuses a schema with native triggers that no registry names).
a=$(qv -d upgrade_up -c "SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM crm_native.installed_schema")
b=$(qv -d upgrade_fresh -c "SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM crm_native.installed_schema")
if [ -n "$a" ] && [ "$a" = "$b" ]; then say "installed_schema after the update: $a, as install() records it"
else problem "installed_schema after the update: '$a'; after install(): '$b'"; fi
# Records written before 0.8.0 are replayed only once a superuser has
# checked them (README, "Upgrading"): uninstall() refuses before, and
# changes nothing; then the check is recorded, as the README says.
if q -d upgrade_up -c "SELECT crm_native.uninstall()" >/dev/null 2>&1; then
  problem "uninstall() replayed records written before 0.8.0 that nobody had checked"
else
  say "uninstall() refuses the records written before 0.8.0 until they are checked"
fi
q -d upgrade_up -c "UPDATE crm_native.replaced_trigger SET verified = true" >/dev/null \
  || problem "could not mark the records checked"
q -d upgrade_up -f "$OUT/part_b.sql" >"$OUT/up_b.log" 2>&1 || { tail -5 "$OUT/up_b.log"; problem "second half failed after the update"; }
for part in a b; do
  q -d upgrade_fresh -f "$OUT/part_$part.sql" >"$OUT/fresh_$part.log" 2>&1 || { tail -5 "$OUT/fresh_$part.log"; problem "half $part failed on $VERSION"; }
done

# 1. Same objects.
OBJECTS="
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'crm_native'),
members AS (
  SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
UNION ALL
SELECT 'function ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
       || E'\nacl ' || coalesce(p.proacl::text, 'default') || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, 'default')
       || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
       || coalesce(E'\n' || pg_get_viewdef(c.oid), '')
       || E'\n' || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                      || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''), ', ' ORDER BY a.attnum)
                      FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL
SELECT 'native_trigger ' || row_to_json(nt)::text  -- every column of the registry
  FROM crm_native.native_trigger nt
UNION ALL
SELECT 'config ' || e.extconfig::regclass[]::text || ' ' || coalesce(array_to_string(e.extcondition, ','), '') FROM pg_extension e, ext WHERE e.oid = ext.oid
UNION ALL
SELECT 'trigger ' || x FROM ($APP_TRIGGERS) t(x)
ORDER BY 1"
qv -d upgrade_up -c "$OBJECTS" >"$OUT/up.objects" 2>&1 || problem "object listing failed on the updated database"
qv -d upgrade_fresh -c "$OBJECTS" >"$OUT/fresh.objects" 2>&1 || problem "object listing failed on the fresh database"
if diff -u "$OUT/fresh.objects" "$OUT/up.objects" >"$OUT/objects.diff"; then
  say "objects: the updated $FROM and a fresh $VERSION agree ($(grep -c '^member ' "$OUT/up.objects") member objects, $(grep -c '^function ' "$OUT/up.objects") functions)"
else
  problem "objects differ between a fresh $VERSION (-) and the updated $FROM (+):"; head -40 "$OUT/objects.diff"
fi
[ "$(grep -c '^member ' "$OUT/up.objects")" -gt 10 ] || problem "too few member objects listed: the comparison proves nothing"

# 2. Same data.
qv -d upgrade_up -c "SELECT * FROM difftest.dump()" >"$OUT/up.dump" 2>&1 || problem "dump failed (updated)"
qv -d upgrade_fresh -c "SELECT * FROM difftest.dump()" >"$OUT/fresh.dump" 2>&1 || problem "dump failed (fresh)"
workload_stats upgrade_up
say "workload: $stats_line"
workload_too_thin && problem "the workload is too thin to prove anything"
if diff -u "$OUT/fresh.dump" "$OUT/up.dump" >"$OUT/dump.diff"; then
  say "data: the same $(wc -l <"$OUT/up.dump") rows"
else
  problem "data differ ($(grep -c '^[-+][a-zA-Z]' "$OUT/dump.diff") lines):"; grep '^[-+][a-zA-Z]' "$OUT/dump.diff" | head -20
fi

# 4. pg_dump / restore of the updated database (before uninstall).
drop upgrade_restored
q -d postgres -c "CREATE DATABASE upgrade_restored" >/dev/null
if "$CRM_PGBIN/pg_dump" -Fc -d upgrade_up -f "$OUT/up.dump.custom" 2>"$OUT/pg_dump.log" \
   && "$CRM_PGBIN/pg_restore" -d upgrade_restored "$OUT/up.dump.custom" 2>"$OUT/pg_restore.log"; then
  CONFIG="SELECT (SELECT extversion FROM pg_extension WHERE extname = 'crm_native'),
                 (SELECT string_agg(format('%s.%s.%s %s %s', schema_name, table_name, trigger_name, enabled, coalesce(comment, '-')), '; '
                                    ORDER BY schema_name, table_name, trigger_name) FROM crm_native.replaced_trigger)"
  a=$(qv -d upgrade_up -c "$CONFIG"); b=$(qv -d upgrade_restored -c "$CONFIG")
  if [ "$a" = "$b" ] && [ -n "$a" ]; then say "pg_dump/restore: extension and replaced_trigger round-trip ($(echo "$a" | cut -c1-80)...)"
  else problem "pg_dump/restore changed the configuration: '$a' vs '$b'"; fi
  q -d upgrade_restored -c "SELECT crm_native.uninstall()" >/dev/null 2>&1 || problem "uninstall() failed on the restored database"
  qv -d upgrade_restored -c "$APP_TRIGGERS" | diff -u "$OUT/upgrade_up.app_triggers" - >"$OUT/restored_uninstall.diff" \
    || { problem "uninstall() on the restored database did not restore the application's triggers:"; head -20 "$OUT/restored_uninstall.diff"; }
else
  problem "pg_dump or pg_restore failed:"; tail -5 "$OUT/pg_dump.log" "$OUT/pg_restore.log"
fi
drop upgrade_restored

# 3. status() and uninstall().
s_up=$(qv -d upgrade_up -c "SELECT * FROM crm_native.status() ORDER BY 1, 2"); s_fresh=$(qv -d upgrade_fresh -c "SELECT * FROM crm_native.status() ORDER BY 1, 2")
[ "$s_up" = "$s_fresh" ] && [ -n "$s_up" ] || problem "status() differs: updated '$s_up' vs fresh '$s_fresh'"
for db in upgrade_up upgrade_fresh; do
  q -d "$db" -c "SELECT crm_native.uninstall()" >/dev/null 2>&1 || problem "uninstall() failed on $db"
  qv -d "$db" -c "$APP_TRIGGERS" | diff -u "$OUT/$db.app_triggers" - >"$OUT/$db.uninstall.diff" \
    && say "uninstall() on $db: the application's $(wc -l <"$OUT/$db.app_triggers") triggers are back exactly (comment, enabled state)" \
    || { problem "uninstall() on $db did not restore the application's triggers:"; head -20 "$OUT/$db.uninstall.diff"; }
done

# 5. A partitioned "VC Usage" (two partitions): X, install(), chats, ALTER
#    EXTENSION UPDATE, install() again (needed from 0.4.0 or older, harmless
#    after), more chats. Every native trigger as this version defines it
#    (verify_schema()), the metrics exact. (The 0.1.0 -> 0.2.0 script tried to
#    drop the clones of the chat UPDATE trigger on the partitions and failed.)
#    One partition's clone of the chat UPDATE trigger ENABLE ALWAYS: the
#    update re-creates the trigger (0.8.0) and that clone keeps its state
#    (from 0.2.0 on: the 0.1.0 -> 0.2.0 script re-created it without).
drop upgrade_part
q -d postgres -c "CREATE DATABASE upgrade_part TEMPLATE crm_template" >/dev/null
PART_CHATS="INSERT INTO \"VC Usage\" (company_id, customer_email, session_id, created_at)
  SELECT (SELECT id FROM companies ORDER BY id LIMIT 1), 'p' || (i % 7) || '@example.com', 's' || i,
         CASE WHEN i % 2 = 0 THEN '2024-06-01'::timestamptz ELSE now() END FROM generate_series(1, 20) i"
if q -d upgrade_part -c "DROP EXTENSION crm_native" >/dev/null \
   && q -d upgrade_part >/dev/null <<SQL \
   && q -d upgrade_part -c "ALTER EXTENSION crm_native UPDATE" -c "SELECT crm_native.install()" -c "$PART_CHATS" >/dev/null
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Partitioned') ON CONFLICT DO NOTHING;
ALTER TABLE "VC Usage" RENAME TO vc_usage_flat;
CREATE TABLE "VC Usage" (LIKE vc_usage_flat INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at);
ALTER TABLE "VC Usage" ADD PRIMARY KEY (id, created_at),
    ADD FOREIGN KEY (company_id) REFERENCES companies (id),
    ADD FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE SET NULL;
CREATE INDEX ON "VC Usage" (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX ON "VC Usage" (session_id, customer_id);
CREATE INDEX ON "VC Usage" (company_id, customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
ALTER SEQUENCE "VC Usage_id_seq" OWNED BY "VC Usage".id;
DROP TABLE vc_usage_flat;
CREATE TABLE chats_2024 PARTITION OF "VC Usage" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE chats_recent PARTITION OF "VC Usage" DEFAULT;
CREATE EXTENSION crm_native VERSION '$FROM';
SELECT crm_native.install();
$PART_CHATS;
ALTER TABLE chats_2024 ENABLE ALWAYS TRIGGER trg_vc_usage_customer_sync_update;
SQL
then
  problems=$(qv -d upgrade_part -c "SELECT count(*) FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status NOT IN ('ok', 'enabled always')")
  differ=$(qv -d upgrade_part -c "SELECT count(*) FROM crm_native.verify_metrics()")
  states=$(qv -d upgrade_part -c "SELECT string_agg(tgrelid::regclass::text || ':' || tgenabled::text, ' ' ORDER BY tgrelid::regclass::text)
                                    FROM pg_trigger WHERE tgname = 'trg_vc_usage_customer_sync_update'")
  expected_states='"VC Usage":O chats_2024:A chats_recent:O'
  [ "$FROM" = 0.1.0 ] && expected_states='"VC Usage":O chats_2024:O chats_recent:O'
  if [ "$problems" = 0 ] && [ "$differ" = 0 ] && [ "$states" = "$expected_states" ]; then say "partitioned \"VC Usage\": updated from $FROM, every trigger as $VERSION defines it, the partition's trigger state kept ($states), metrics exact"
  else problem "partitioned \"VC Usage\" updated from $FROM: $problems trigger problems, $differ metrics rows differ, chat UPDATE trigger states $states (expected $expected_states)"; fi
else
  problem "partitioned \"VC Usage\": the update from $FROM failed"
fi
drop upgrade_part

# 6. Lock tags during the roll-out: before ALTER EXTENSION UPDATE this
#    library computes 0.7.0's unkeyed tags (so backends still running the
#    0.7.0 library and those that load this one exclude each other); after
#    it, tags keyed with the database's crm_native.lock_secret.
drop upgrade_tags
q -d postgres -c "CREATE DATABASE upgrade_tags TEMPLATE crm_template" >/dev/null
PLAIN_TAG="SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objsubid = 17234
             AND ((classid::bigint << 32) | objid::bigint)
                 = hashtextextended('tag@example.com',
                                    uuid_hash_extended('11111111-1111-1111-1111-111111111111', 1))"
TAG_CHAT="INSERT INTO \"VC Usage\" (company_id, customer_email, session_id)
          VALUES ('11111111-1111-1111-1111-111111111111', 'tag@example.com', 'tag')"
if q -d upgrade_tags -c "DROP EXTENSION crm_native" -c "CREATE EXTENSION crm_native VERSION '$FROM'" -c "SELECT crm_native.install()" \
     -c "INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Tags') ON CONFLICT DO NOTHING" >/dev/null; then
  before=$(qv -d upgrade_tags -c "BEGIN" -c "$TAG_CHAT" -c "$PLAIN_TAG" -c "ROLLBACK" | grep -x '[0-9]*' | head -1)
  # The update while a transaction holds a new customer's unkeyed key lock:
  # it waits for that transaction, and a chat of the same customer sent
  # meanwhile waits for the update, then links to that customer (the update
  # used to commit at once; the chat then computed a keyed tag, did not
  # wait, and made a second customer).
  q -d upgrade_tags -c "BEGIN" -c "$TAG_CHAT" -c "SELECT pg_sleep(6)" -c "COMMIT" >"$OUT/tags_holder.log" 2>&1 &
  holder=$!
  for _ in $(seq 1 50); do
    [ "$(qv -d upgrade_tags -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(6)'")" = 1 ] && break
    sleep 0.1
  done
  q -d upgrade_tags -c "ALTER EXTENSION crm_native UPDATE" >"$OUT/tags_update.log" 2>&1 &
  updater=$!
  for _ in $(seq 1 20); do  # until the update waits, or is done; the holder sleeps on
    kill -0 "$updater" 2>/dev/null || break
    [ "$(qv -d upgrade_tags -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'ALTER EXTENSION%' AND wait_event_type = 'Lock'")" = 1 ] && break
    sleep 0.1
  done
  q -d upgrade_tags -c "SET lock_timeout = '30s'" -c "$TAG_CHAT" >"$OUT/tags_chat.log" 2>&1 || problem "lock tags: the chat sent during the update failed: $(cat "$OUT/tags_chat.log")"
  wait "$holder" || problem "lock tags: the transaction open across the update failed: $(cat "$OUT/tags_holder.log")"
  wait "$updater" || problem "lock tags: the update failed: $(cat "$OUT/tags_update.log")"
  n=$(qv -d upgrade_tags -c "SELECT count(*) FROM customers WHERE customer_email = 'tag@example.com'")
  if [ "$n" = 1 ]; then say "lock tags: a chat sent while the update waited for an open transaction linked to its customer"
  else problem "lock tags: $n customers tag@example.com after the update with a transaction open across it"; fi
  # A second chat table, and a transaction that writes it and then the
  # first while the update runs: the update takes its locks in short tries,
  # all or none, so neither deadlocks (waiting on each table in turn, the
  # update and the chat transaction deadlocked). From 0.7.0 only: the
  # released scripts of older updates recreate the chat tables' triggers,
  # DDL that waits as any DDL does.
  [ "$FROM" = 0.7.0 ] && { q -d upgrade_tags -c "DROP EXTENSION crm_native CASCADE" -c "CREATE EXTENSION crm_native VERSION '$FROM'" -c "SELECT crm_native.install()" \
    -c "CREATE TABLE \"VC Usage 2\" (LIKE \"VC Usage\" INCLUDING ALL)" \
    -c "CREATE TRIGGER sync2 BEFORE INSERT ON \"VC Usage 2\" FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()" >/dev/null \
    || problem "lock tags: cannot set up the second chat table"
  q -d upgrade_tags -c "BEGIN" \
    -c "INSERT INTO \"VC Usage 2\" (company_id, customer_email, session_id) VALUES ('11111111-1111-1111-1111-111111111111', 'two@example.com', 't2')" \
    -c "SELECT pg_sleep(2)" \
    -c "INSERT INTO \"VC Usage\" (company_id, customer_email, session_id) VALUES ('11111111-1111-1111-1111-111111111111', 'one@example.com', 't1')" \
    -c "COMMIT" >"$OUT/tags_two.log" 2>&1 &
  two=$!
  sleep 0.5
  q -d upgrade_tags -c "ALTER EXTENSION crm_native UPDATE" >"$OUT/tags_update2.log" 2>&1 || problem "lock tags: the update beside a two-table writer failed: $(cat "$OUT/tags_update2.log")"
  if wait "$two"; then say "lock tags: a transaction writing two chat tables across the update committed"
  else problem "lock tags: the transaction writing two chat tables across the update failed: $(cat "$OUT/tags_two.log")"; fi
  }
  after=$(qv -d upgrade_tags -c "BEGIN" -c "DELETE FROM \"VC Usage\"" -c "DELETE FROM customers" -c "$TAG_CHAT" \
    -c "SELECT ($PLAIN_TAG) || '/' || (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objsubid = 17234)" \
    -c "ROLLBACK" | grep -x '[0-9]*/[0-9]*' | head -1)
  if [ "$before" = 1 ] && [ "$after" = 0/1 ]; then say "lock tags: 0.7.0's before the update, keyed after it"
  else problem "lock tags: plain tag held before the update: ${before:-?} (want 1), after: plain/all key locks ${after:-?} (want 0/1)"; fi
else
  problem "lock tags: cannot create a $FROM database"
fi
drop upgrade_tags

if [ $fail = 0 ]; then drop upgrade_up; drop upgrade_fresh; say "PASS"; else say "databases upgrade_up, upgrade_fresh kept"; fi
exit $fail
