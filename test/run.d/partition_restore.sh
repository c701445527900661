#!/usr/bin/env bash
# pg_dump / restore of a database whose "VC Usage" is partitioned and whose
# metrics triggers are disabled (install() copies a disabled application
# trigger's state; operators disable them for loads). The dump creates each
# trigger, then runs ALTER TABLE ... DISABLE TRIGGER; that ALTER TABLE fires
# the event trigger crm_native_partition_triggers, which must not create the
# partitions' triggers ahead of the dump (it did: "trigger ... already
# exists"). The restore runs in one transaction with ON_ERROR_STOP, and
# every native trigger comes back with its enabled state. Runs against the
# test cluster named by PGHOST etc.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../scripts/pgenv.sh
source "$ROOT/scripts/pgenv.sh"   # $CRM_PGBIN: the staged server's pg_dump
export PGUSER=${PGUSER:-postgres}
SRC=partition_restore_src_$$
DST=partition_restore_dst_$$
DUMP=$(mktemp)
q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() {
  for db in "$SRC" "$DST"; do psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1; done
  rm -f "$DUMP"
}
trap cleanup EXIT
say() { echo "[partition_restore] $*"; }

q -d postgres -c "CREATE DATABASE $SRC" >/dev/null || exit 1
for f in "$ROOT"/reference/*.sql "$ROOT"/test/differential/variants.sql; do q -d "$SRC" -f "$f" >/dev/null || exit 1; done
q -d "$SRC" >/dev/null <<'SQL' || { say "FAIL: cannot set up the source database"; exit 1; }
SELECT count(*) FROM schema_variant.apply('partitioned');
CREATE EXTENSION crm_native CASCADE;
SELECT count(*) FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('aaaaaaaa-0000-4000-8000-00000000000a', 'A');
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
VALUES ('aaaaaaaa-0000-4000-8000-00000000000a', 'ann@example.com', 's1', '2023-06-01'),
       ('aaaaaaaa-0000-4000-8000-00000000000a', 'ann@example.com', 's2', '2025-06-01');
-- the metrics INSERT trigger disabled on the table and its partitions, the
-- UPDATE trigger ENABLE ALWAYS on one partition
SELECT format('ALTER TABLE %s DISABLE TRIGGER trg_vc_usage_metrics_refresh_ins', t.tgrelid::regclass)
  FROM pg_trigger t WHERE t.tgname = 'trg_vc_usage_metrics_refresh_ins' \gexec
ALTER TABLE public.vc_usage_later ENABLE ALWAYS TRIGGER trg_vc_usage_metrics_refresh_upd;
SQL
triggers() {
  q -d "$1" -At -c "SELECT string_agg(x, ' ' ORDER BY x) FROM (
                      SELECT format('%s.%s=%s', t.tgrelid::regclass, t.tgname, t.tgenabled) AS x
                        FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                       WHERE p.pronamespace = 'crm_native'::regnamespace AND NOT t.tgisinternal AND t.tgparentid = 0) s"
}
before=$(triggers "$SRC")
"$CRM_PGBIN/pg_dump" -d "$SRC" -f "$DUMP" || { say "FAIL: pg_dump"; exit 1; }
q -d postgres -c "CREATE DATABASE $DST TEMPLATE template0" >/dev/null || exit 1
if ! out=$(psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$DST" -f "$DUMP" 2>&1 >/dev/null); then
  say "FAIL: the restore failed: $(grep -m3 ERROR <<<"$out")"
  exit 1
fi
after=$(triggers "$DST")
fail=0
[ -n "$before" ] && grep -q '=D' <<<"$before" || { say "FAIL: the source has no disabled native trigger: $before"; fail=1; }
[ "$before" = "$after" ] || { say "FAIL: native triggers differ after the restore"; say "before: $before"; say "after:  $after"; fail=1; }
# verify_schema() says the same of both (the ENABLE ALWAYS partition
# trigger is 'different' from its table's: as it was)
report() { q -d "$1" -At -c "SELECT string_agg(object || '=' || status, ' ' ORDER BY object) FROM crm_native.verify_schema() WHERE kind = 'trigger'"; }
[ "$(report "$SRC")" = "$(report "$DST")" ] || { say "FAIL: verify_schema() differs after the restore: $(report "$DST")"; fail=1; }
[ $fail -eq 0 ] && say "PASS: restored in one transaction; $(grep -o "=[OADR]" <<<"$after" | wc -l) native triggers with their enabled states"
exit $fail
