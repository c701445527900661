#!/usr/bin/env bash
# Customer sync, issue 4 item 6: a chat row whose matching fails for a reason
# other than a database error is still inserted, unlinked, with a WARNING that
# names the reason. Real such failures: in a LATIN1 database, a key whose
# normalized form has a character LATIN1 cannot store (the micro sign's NFKC
# case-fold is a Greek mu); in a SQL_ASCII database, text that is not valid
# UTF-8. In LATIN1 other non-ASCII text is normalized (converted to UTF-8 for
# the normalizers and back; before 0.7.0 it was refused and every such chat
# stayed unlinked), and search_customers() and health() work. Runs against
# the test cluster named by PGHOST etc.
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
VALUES ('00000000-0000-0000-0000-00000000000a', 'José', 'josé@example.com', 's1');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'JOSÉ', 'JOSÉ@EXAMPLE.COM', 's3');
INSERT INTO "VC Usage" (company_id, customer_name, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'µ', 's4');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@example.com', 's2');
SELECT 'chats=' || count(*) FROM "VC Usage";
SELECT 'jose_one_customer=' || count(DISTINCT customer_id) FROM "VC Usage" WHERE session_id IN ('s1', 's3') AND customer_id IS NOT NULL;
SELECT 'micro_unlinked=' || count(*) FROM "VC Usage" WHERE customer_id IS NULL AND session_id = 's4';
SELECT 'linked=' || count(*) FROM "VC Usage" WHERE customer_id IS NOT NULL AND session_id = 's2';
SELECT 'customers=' || count(*) FROM customers;
SELECT 'keys=' || string_agg(key_type || ':' || normalized_value, ',' ORDER BY key_type)
  FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id WHERE c.customer_name = 'José';
SELECT 'search=' || count(*) FROM crm_native.search_customers('00000000-0000-0000-0000-00000000000a', 'JOSÉ@example.com');
-- a customer whose name key LATIN1 cannot store gets no name key, and does
-- not fail the rebuild, health() or a search for the whole database (the
-- search still finds it by trigram similarity of the name)
INSERT INTO customers (company_id, customer_name, customer_email)
VALUES ('00000000-0000-0000-0000-00000000000a', 'µ Tech', 'info@mu.example');
SELECT 'rebuilt_keys=' || crm_native.rebuild_matching_keys();
SELECT 'micro_keys=' || string_agg(k.key_type, ',' ORDER BY k.key_type)
  FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id WHERE c.customer_name = 'µ Tech';
SELECT 'micro_search=' || count(*) FROM crm_native.search_customers('00000000-0000-0000-0000-00000000000a', 'µ Tech');
SELECT 'health_runs=' || (count(*) > 0) FROM crm_native.health();
SQL
)
echo "$out"
fail=0
grep -q "WARNING:  crm_native: customer sync skipped for this chat row: could not normalize its customer_name: .*cannot store" <<<"$out" \
  || { echo "FAIL: no WARNING naming the reason"; fail=1; }
for want in chats=4 jose_one_customer=1 micro_unlinked=1 linked=1 customers=2 keys=email:josé@example.com,name:josé search=1 \
            rebuilt_keys=5 micro_keys=email micro_search=1 health_runs=true; do
  grep -qx "$want" <<<"$out" || { echo "FAIL: expected $want"; fail=1; }
done

# A SQL_ASCII database stores any bytes. Text that is not UTF-8 (Latin-1
# "m\xfcller" and "m\xf6ller") is refused the same way, not read as U+FFFD,
# which gave both one key (one customer for two people); UTF-8 text is
# normalized as in a UTF8 database.
DB2=sync_sqlascii_$$
cleanup2() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB2" >/dev/null 2>&1 || true; cleanup; }
trap cleanup2 EXIT
psql_q -d postgres -c "CREATE DATABASE $DB2 TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
for f in "$ROOT"/reference/*.sql; do
  PGOPTIONS="-c client_min_messages=warning" psql_q -d "$DB2" -f "$f" >/dev/null
done
PGOPTIONS="-c client_min_messages=error" psql_q -d "$DB2" \
  -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" -c "CREATE EXTENSION crm_native" -c "SELECT crm_native.install()" >/dev/null
out2=$(PGCLIENTENCODING=SQL_ASCII psql_q -d "$DB2" -At 2>&1 <<'SQL'
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', E'm\xfcller@example.com', 'l1');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', E'm\xf6ller@example.com', 'l2');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', E'jos\xc3\xa9@example.com', 'u1');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', E'JOS\xc3\x89@example.com', 'u2');
SELECT 'latin1_unlinked=' || count(*) FROM "VC Usage" WHERE customer_id IS NULL AND session_id IN ('l1', 'l2');
SELECT 'utf8_one_customer=' || count(DISTINCT customer_id) FROM "VC Usage" WHERE session_id IN ('u1', 'u2');
SELECT 'customers=' || count(*) FROM customers;
-- text too long for the core is refused by length before it is checked for
-- UTF-8 (which reads all of it): the reason names the length
INSERT INTO "VC Usage" (company_id, customer_name, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', repeat(E'\xfc', 140000), 'big');
SELECT 'long_name_stored_unlinked=' || count(*) FROM "VC Usage" WHERE customer_id IS NULL AND session_id = 'big';
SQL
)
echo "$out2"
grep -q 'WARNING:  crm_native: customer sync skipped for this chat row: could not normalize its customer_name: .*name of 140000 bytes is too long' <<<"$out2" \
  || { echo "FAIL: SQL_ASCII: the 140,000-byte name was not refused by its length"; fail=1; }
grep -qx 'long_name_stored_unlinked=1' <<<"$out2" || { echo "FAIL: SQL_ASCII: the chat with a long name was not stored unlinked"; fail=1; }
[ "$(grep -c 'WARNING:  crm_native: customer sync skipped for this chat row: could not normalize its customer_email: .*not valid UTF-8' <<<"$out2")" -eq 2 ] \
  || { echo "FAIL: SQL_ASCII: no WARNING for each non-UTF-8 email"; fail=1; }
for want in latin1_unlinked=2 utf8_one_customer=1 customers=1; do
  grep -qx "$want" <<<"$out2" || { echo "FAIL: SQL_ASCII: expected $want"; fail=1; }
done

# In a database that is neither UTF-8 nor SQL_ASCII, text the core refuses by
# its length is refused before it is converted to UTF-8 (converting 300 MB
# took seconds that no cancel could stop). Told apart without a clock: a
# WIN1252 byte with no Unicode equivalent (0x81) fails the conversion, so
# the reason names the conversion if it ran and the length if it did not.
DB3=sync_win1252_$$
cleanup3() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB3" >/dev/null 2>&1 || true; cleanup2; }
trap cleanup3 EXIT
psql_q -d postgres -c "CREATE DATABASE $DB3 TEMPLATE template0 ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
PGOPTIONS="-c client_min_messages=error" psql_q -d "$DB3" -c "CREATE EXTENSION crm_native CASCADE" >/dev/null
for case in "normalize_name:140000:name of 140000 bytes is too long" \
            "normalize_email:140000:email of 140000 bytes is too long" \
            "normalize_name:100:could not be converted to UTF-8" \
            "normalize_phone:501:^\$"; do
  IFS=: read -r fn n want <<<"$case"
  got=$(psql -X -At -d "$DB3" -c "SELECT crm_native.$fn(repeat(convert_from('\\x81'::bytea, 'WIN1252'), $n))" 2>&1 || true)
  grep -q "$want" <<<"$got" || { echo "FAIL: WIN1252: $fn of $n bytes: expected '$want', got '$got'"; fail=1; }
done
[ $fail -eq 0 ] && echo "sync_normalize_failure: ok"
exit $fail
