#!/usr/bin/env bash
# The test command (README): on a fresh Debian bookworm machine, installs what
# is missing, builds crm_native warning-free, runs the Boost.Test unit tests,
# starts a throwaway PostgreSQL 15 cluster with the extension installed, runs
# the pg_regress, isolation and pgTAP suites and every test/run.d/*.sh check
# (fuzzers, differential workload, ...). Exits non-zero if anything fails.
#
# Usage: scripts/test.sh [-k PATTERN]   (PATTERN filters the SQL suites)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/deps.sh || { echo "dependency install failed"; exit 1; }
# shellcheck source=pgenv.sh
source scripts/pgenv.sh
export CRM_RESULTS=$CRM_RUN_DIR/results.txt
mkdir -p "$CRM_RUN_DIR"   # on a fresh machine the run directory does not exist yet
: >"$CRM_RESULTS"
record() { if [ "$3" -eq 0 ]; then echo "$1 $2 PASS" >>"$CRM_RESULTS"; else echo "$1 $2 FAIL" >>"$CRM_RESULTS"; fi; }

crm_log "build + stage"
crm_stage
record build crm_native $? 
grep -q FAIL "$CRM_RESULTS" && { echo "0 passed, 1 failed"; exit 1; }

crm_log "Boost.Test unit tests (meson)"
MESON_DIR=$CRM_RUN_DIR/meson
if [ ! -d "$MESON_DIR" ]; then meson setup "$MESON_DIR" "$ROOT" --buildtype=debugoptimized >"$CRM_RUN_DIR/meson-setup.log" 2>&1 || cat "$CRM_RUN_DIR/meson-setup.log"; fi
meson compile -C "$MESON_DIR" >"$CRM_RUN_DIR/meson-build.log" 2>&1 && meson test -C "$MESON_DIR" --print-errorlogs
rc=$?; [ $rc -ne 0 ] && tail -50 "$CRM_RUN_DIR/meson-build.log"
record unit boost_test $rc

crm_cluster_start test fsync=off synchronous_commit=off full_page_writes=off max_connections=50 \
  || { echo "0 passed, 1 failed"; exit 1; }

crm_log "SQL suites"
CRM_OUT=$CRM_RUN_DIR/sql-suites bash scripts/run_sql_suites.sh "$@"

for check in "$ROOT"/test/run.d/*.sh; do
  [ -e "$check" ] || continue
  name=$(basename "$check" .sh)
  crm_log "check $name"
  bash "$check"
  record check "$name" $?
done

crm_cluster_stop
echo
echo "== summary"
grep FAIL "$CRM_RESULTS" | sed 's/^/  FAILED: /'
passed=$(grep -c ' PASS$' "$CRM_RESULTS"); failed=$(grep -c ' FAIL$' "$CRM_RESULTS")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
