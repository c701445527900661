#!/usr/bin/env bash
# Runs the SQL-level suites against the running server named by PGHOST/PGPORT
# (scripts/test.sh starts a throwaway one; `make installcheck` uses yours):
#
#   pg_regress   sql/NAME.sql        -> expected/NAME.out
#   isolation    specs/NAME.spec     -> expected/NAME.out
#   pgTAP        test/pgtap/NAME.sql  (pg_prove)
#
# Every test runs in a fresh database cloned from crm_template: the reference
# application schema (reference/*.sql, in order, with its plpgsql triggers)
# plus the extensions pg_trgm, pgtap and crm_native (not yet install()ed).
#
# Usage: run_sql_suites.sh [-k PATTERN] [-t SUITE:GLOB]...
#   -k PATTERN     only tests whose name contains PATTERN
#   -t SUITE:GLOB  only tests matching one of the -t selectors: SUITE is
#                  regress, isolation or pgtap (or a glob of them; omitted: any),
#                  GLOB a shell glob on the whole test name, e.g. -t regress:guard
#                  -t 'isolation:*batch*' (scripts/memcheck.sh)
# Writes "suite name PASS|FAIL" lines to $CRM_RESULTS (default: stdout only).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGXS_DIR=$(dirname "$(dirname "$(dirname "$($PG_CONFIG --pgxs)")")")   # .../lib/pgxs
BINDIR=$($PG_CONFIG --bindir)
OUT=${CRM_OUT:-$ROOT/.build/sql-suites}
RESULTS=${CRM_RESULTS:-/dev/null}
PATTERN=""
SELECTORS=()
while [ $# -gt 0 ]; do
  case $1 in
    -k) PATTERN=$2; shift 2 ;;
    -t) SELECTORS+=("$2"); shift 2 ;;
    *) echo "usage: $0 [-k PATTERN] [-t SUITE:GLOB]..." >&2; exit 2 ;;
  esac
done
export PGUSER=${PGUSER:-postgres}
rm -rf "$OUT"; mkdir -p "$OUT"

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== building crm_template"
psql_q -d postgres -c "DROP DATABASE IF EXISTS crm_template" -c "CREATE DATABASE crm_template" >/dev/null || exit 1
for f in "$ROOT"/reference/*.sql; do
  [ -e "$f" ] || continue
  psql_q -d crm_template -f "$f" >"$OUT/template.log" 2>&1 || { cat "$OUT/template.log"; exit 1; }
done
psql_q -d crm_template -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" \
  -c "CREATE EXTENSION IF NOT EXISTS pgtap" -c "CREATE EXTENSION IF NOT EXISTS crm_native" >/dev/null || exit 1

fresh_db() {  # fresh_db NAME: a new database cloned from crm_template
  psql_q -d postgres -c "DROP DATABASE IF EXISTS \"$1\"" -c "CREATE DATABASE \"$1\" TEMPLATE crm_template" >/dev/null
}
drop_db() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null 2>&1 || true; }

pass=0; fail=0
record() {  # record SUITE NAME OK?
  if [ "$3" -eq 0 ]; then pass=$((pass+1)); echo "ok      $1 $2"; echo "$1 $2 PASS" >>"$RESULTS"
  else fail=$((fail+1)); echo "FAILED  $1 $2"; echo "$1 $2 FAIL" >>"$RESULTS"; fi
}
selected() {  # selected SUITE NAME
  [ -z "$PATTERN" ] || [[ "$2" == *$PATTERN* ]] || return 1
  [ ${#SELECTORS[@]} -eq 0 ] && return 0
  local sel
  for sel in "${SELECTORS[@]}"; do
    [[ "$sel" == *:* ]] || sel="*:$sel"
    # shellcheck disable=SC2053
    [[ "$1" == ${sel%%:*} && "$2" == ${sel#*:} ]] && return 0
  done
  return 1
}

# run_regress SUITE DIR EXT RUNNER DBPREFIX: pg_regress-style runners (one
# fresh database per test, outputs compared with expected/NAME.out)
run_regress() {
  local suite=$1 dir=$2 ext=$3 runner=$4 prefix=$5 f name db rc
  echo "== $suite"
  for f in "$ROOT/$dir"/*."$ext"; do
    [ -e "$f" ] || continue
    name=$(basename "$f" ".$ext"); selected "$suite" "$name" || continue
    db="${prefix}_$name"; fresh_db "$db" || { record "$suite" "$name" 1; continue; }
    mkdir -p "$OUT/$suite/$name"
    "$runner" --bindir="$BINDIR" --inputdir="$ROOT" --outputdir="$OUT/$suite/$name" \
      --use-existing --dbname="$db" "$name" >"$OUT/$suite/$name/run.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && { cat "$OUT/$suite/$name/run.log"; head -200 "$OUT/$suite/$name/regression.diffs" 2>/dev/null; }
    record "$suite" "$name" $rc; drop_db "$db"
  done
}
run_regress regress sql sql "$PGXS_DIR/src/test/regress/pg_regress" regress
run_regress isolation specs spec "$PGXS_DIR/src/test/isolation/pg_isolation_regress" iso

echo "== pgTAP"
for f in "$ROOT"/test/pgtap/*.sql; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .sql); selected pgtap "$name" || continue
  db="tap_$name"; fresh_db "$db" || { record pgtap "$name" 1; continue; }
  pg_prove -d "$db" "$f" >"$OUT/pgtap_$name.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && cat "$OUT/pgtap_$name.log"
  record pgtap "$name" $rc; drop_db "$db"
done

echo "sql suites: $pass passed, $fail failed"
[ $fail -eq 0 ]
