#!/usr/bin/env bash
# The key of the customer sync's lock tags survives a failover
# (src/sql/25_lock_secret.sql). A transaction prepared on the primary holds
# the key lock of the new customer it creates; after the standby is
# promoted, a chat of the same customer must wait for that prepared
# transaction, and link to its customer once it commits. The key used to be
# a file beside the data, made by the first new customer: a standby made
# before that had none, made its own, computed other tags, did not wait,
# and COMMIT PREPARED left two customers (found by an independent tester).
# Also: a tenant's role cannot read the key.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../scripts/pgenv.sh
source "$ROOT/scripts/pgenv.sh"
D=$CRM_RUN_DIR/lock_secret_failover
say() { echo "lock_secret_failover: $*"; }
stop_all() {
  for dir in "$D/primary" "$D/standby"; do
    [ -f "$dir/postmaster.pid" ] && crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1
  done
}
trap stop_all EXIT
stop_all; rm -rf "$D"; mkdir -p "$D/s1" "$D/s2"; chmod 755 "$D"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$D"
start() {  # start DATADIR SOCKETDIR
  crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start \
    -o "-c listen_addresses='' -c unix_socket_directories='$2' -p 5432 -c max_prepared_transactions=5 -c wal_level=replica -c fsync=off" \
    >/dev/null || { cat "$1.log"; exit 1; }
}
P() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$D/s1" -p 5432 -U postgres "$@"; }
S() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$D/s2" -p 5432 -U postgres "$@"; }

crm_as_server_user "$CRM_PGBIN/initdb" -D "$D/primary" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$D/initdb.log" 2>&1 \
  || { cat "$D/initdb.log"; exit 1; }
start "$D/primary" "$D/s1"
P -d postgres -c "CREATE DATABASE app" >/dev/null || exit 1
for f in "$ROOT"/reference/*.sql; do P -d app -f "$f" >/dev/null || exit 1; done
# a "read-only role" set-up: every new table of the installing role readable by crm_app
P -d app -c "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO crm_app" >/dev/null || exit 1
P -d app -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" -c "CREATE EXTENSION crm_native" -c "SELECT crm_native.install()" \
  -c "INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A')" >/dev/null || exit 1

fail=0
# a tenant's role (reference/03_rls.sql) cannot read the key, even with the
# default privileges above and USAGE on the schema
out=$(P -d app -c "GRANT USAGE ON SCHEMA crm_native TO crm_app" -c "SET ROLE crm_app" -c "SELECT * FROM crm_native.lock_secret" 2>&1)
if grep -q "permission denied for table lock_secret" <<<"$out"; then say "crm_app cannot read the key"
else say "FAIL: crm_app read crm_native.lock_secret: $out"; fail=1; fi

# the standby, made before any customer exists
crm_as_server_user "$CRM_PGBIN/pg_basebackup" -h "$D/s1" -p 5432 -U postgres -D "$D/standby" -R -X stream \
  >"$D/basebackup.log" 2>&1 || { cat "$D/basebackup.log"; exit 1; }
start "$D/standby" "$D/s2"

CHAT="INSERT INTO \"VC Usage\" (company_id, customer_email, session_id)
      VALUES ('00000000-0000-0000-0000-00000000000a', 'pat@example.com', 's-' || pg_catalog.gen_random_uuid())"
P -d app -c "BEGIN" -c "$CHAT" -c "PREPARE TRANSACTION 'pat'" >/dev/null || exit 1
lsn=$(P -d app -At -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 100); do
  [ "$(S -d app -At -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break
  sleep 0.1
done
crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$D/primary" -m fast -w stop >/dev/null || exit 1
crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$D/standby" -w promote >/dev/null || { say "promote failed"; exit 1; }

# the promoted standby: the prepared transaction holds pat's key lock
out=$(S -d app -c "SET lock_timeout = '3s'" -c "$CHAT" 2>&1)
if grep -q "lock timeout" <<<"$out"; then say "a chat of the prepared transaction's new customer waits for it"
else say "FAIL: the chat did not wait for the prepared transaction (${out:-it committed})"; fail=1; fi
S -d app -c "COMMIT PREPARED 'pat'" -c "$CHAT" >/dev/null || { say "FAIL: COMMIT PREPARED or the next chat failed"; fail=1; }
n=$(S -d app -At -c "SELECT count(*) FROM customers WHERE customer_email = 'pat@example.com'")
linked=$(S -d app -At -c "SELECT count(*) FROM \"VC Usage\" v JOIN customers c ON c.id = v.customer_id WHERE c.customer_email = 'pat@example.com'")
if [ "$n" = 1 ]; then say "one customer pat@example.com, $linked chats linked to it"
else say "FAIL: $n customers pat@example.com"; fail=1; fi
[ "$fail" -eq 0 ] && say "ok"
exit $fail
