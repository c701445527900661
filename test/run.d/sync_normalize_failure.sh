#!/usr/bin/env bash
# Customer sync, issue 4 item 6: a chat row whose matching fails for a reason
# other than a database error is still inserted, unlinked, with a WARNING that
# names the reason. A real such failure: in a LATIN1 database, normalize_key
# refuses non-ASCII text (the normalizers read UTF-8). Runs against the test
# cluster named by PGHOST etc.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PGUSER=${PGUSER:-postgres}
DB=sync_latin1_$$
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; }
trap cleanup EXIT

psql_q -d postgres -c "CREATE DATABASE $DB TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
for f in "$ROOT"/reference/*.sql; do
  PGOPTIONS="-c client_min_messages=warning" psql_q -d "$DB" -f "$f" >/dev/null
done
PGOPTIONS="-c client_min_messages=error" psql_q -d "$DB" \
  -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" -c "CREATE EXTENSION crm_native" -c "SELECT crm_native.install()" >/dev/null

out=$(PGCLIENTENCODING=UTF8 psql_q -d "$DB" -At 2>&1 <<'SQL'
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Jose', 'josé@example.com', 's1');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@example.com', 's2');
SELECT 'chats=' || count(*) FROM "VC Usage";
SELECT 'unlinked=' || count(*) FROM "VC Usage" WHERE customer_id IS NULL AND session_id = 's1';
SELECT 'linked=' || count(*) FROM "VC Usage" WHERE customer_id IS NOT NULL AND session_id = 's2';
SELECT 'customers=' || count(*) FROM customers;
SQL
)
echo "$out"
fail=0
grep -q 'WARNING:  crm_native: customer sync skipped for this chat row: could not normalize its customer_email: .*UTF8' <<<"$out" \
  || { echo "FAIL: no WARNING naming the reason"; fail=1; }
for want in chats=2 unlinked=1 linked=1 customers=1; do
  grep -qx "$want" <<<"$out" || { echo "FAIL: expected $want"; fail=1; }
done
[ $fail -eq 0 ] && echo "sync_normalize_failure: ok"
exit $fail
