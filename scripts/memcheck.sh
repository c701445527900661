#!/usr/bin/env bash
# Memory check (make memcheck; also run by the test command through
# test/run.d/memcheck.sh): builds crm_native with AddressSanitizer and
# UndefinedBehaviorSanitizer into its own stage, starts a throwaway PostgreSQL
# 15 cluster whose server runs with the ASan runtime preloaded, and runs a
# subset of the pg_regress and isolation suites against it. Fails if a suite
# fails, if a server process crashed, or if any ASan/UBSan report appears.
# Then a self-test requires the sanitizers to catch real bugs: three test-only
# kinds of crm_native._guard_test (src/pg/guard_test.cpp) read freed memory,
# read past the end of a heap block and shift an int by 40; each must produce
# its report and kill its backend.
#
# Usage: scripts/memcheck.sh [SUITE:GLOB ...]   (default: $MEMCHECK_TESTS)
#   MEMCHECK_TESTS     the tests, as run_sql_suites.sh -t selectors (below)
#   MEMCHECK_SELFTEST  1 (default) or 0: the injected-bug self-test
#   MEMCHECK_TIMEOUT   seconds the suites may take (default 600)
#   MEMCHECK_DIR       work directory (default /tmp/crm_native_memcheck.<hash>)
#
# Why ASan on Debian's uninstrumented postgres works: only crm_native.so is
# instrumented (g++ -fsanitize=address,undefined; SANITIZE= in the Makefile).
# Its heap is malloc/new, which the preloaded runtime replaces process-wide,
# so use-after-free, overflows and double frees in its C++ code and in its
# own allocations are caught; palloc'd memory is only checked at the
# granularity of PostgreSQL's memory-context blocks. LD_PRELOAD is needed
# because libasan must be the first library of the process; fork() without
# exec (every backend) inherits it. PostgreSQL's memory contexts free their
# blocks at exit only, which LeakSanitizer would report: detect_leaks=0.
# JIT is off (its bitcode of crm_native would be uninstrumented).
# Two work-arounds are needed: test/memcheck/asan_preload_fix.c.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

# guard (the C++ boundary), metrics, metrics_bounded (the saved baselines of
# nested subtransactions), sync_cancel (a cancel in the middle of a
# bulk insert), install, data_access (plans replaced after renames),
# index_pins (the planner hook), ops_search (the pins of search_customers:
# partial indexes a WHERE clause states), partitioned_tables (statements of a trigger
# fired on a partition), schema_types (chat ids of every accepted type through
# the single-chat metrics path), custtrig_vs_plpgsql (the audit's to_jsonb()
# comparison of changed columns), two isolation races, and any regress or
# isolation test whose name says nesting, invalidation or batch.
DEFAULT_TESTS="regress:guard regress:metrics regress:metrics_shapes regress:metrics_bounded regress:sync_cancel regress:install regress:data_access regress:index_pins
  regress:partitioned_tables regress:schema_types regress:app_constraints regress:ops_search pgtap:custtrig_vs_plpgsql
  isolation:sync_race_read_committed isolation:metrics_read_committed
  regress:*nesting* isolation:*nesting* regress:*invalidation* isolation:*invalidation*
  regress:*batch* isolation:*batch*"
if [ $# -gt 0 ]; then TESTS="$*"; else TESTS=${MEMCHECK_TESTS:-$DEFAULT_TESTS}; fi
SELFTEST=${MEMCHECK_SELFTEST:-1}
MEMCHECK_DIR=${MEMCHECK_DIR:-/tmp/crm_native_memcheck.$(printf '%s' "$ROOT" | md5sum | cut -c1-10)}
START=$(date +%s)

say() { echo "[memcheck] $*"; }
bash scripts/deps.sh || { say "dependency install failed"; exit 1; }

# A stage of its own (scripts/pgenv.sh), built from a copy of the sources:
# the checkout's own objects (the test command's build) stay untouched.
# shellcheck disable=SC2034  # read by pgenv.sh
CRM_RUN_DIR=$MEMCHECK_DIR
CRM_BUILD_DIR=$MEMCHECK_DIR/build
# shellcheck disable=SC2034  # read by pgenv.sh
CRM_MAKE_ARGS="SANITIZE=address,undefined with_llvm=no"
# shellcheck source=scripts/pgenv.sh
source scripts/pgenv.sh
REPORTS=$MEMCHECK_DIR/reports

# copy what the PGXS build reads; only changed files, so make's timestamps work
sync_sources() {
  local f list
  mkdir -p "$CRM_BUILD_DIR"
  list=$(find Makefile ./*.control src -type f \( -name Makefile -o -name '*.control' \
           -o -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.sql' \) | sed 's|^\./||')
  while read -r f; do
    cmp -s "$f" "$CRM_BUILD_DIR/$f" && continue
    mkdir -p "$CRM_BUILD_DIR/$(dirname "$f")" && cp "$f" "$CRM_BUILD_DIR/$f" || return 1
  done <<<"$list"
  # sources gone from the checkout go from the copy, with their objects
  (cd "$CRM_BUILD_DIR" && find src -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.sql' \)) |
    while read -r f; do [ -e "$f" ] || rm -f "$CRM_BUILD_DIR/$f" "$CRM_BUILD_DIR/${f%.*}.o" "$CRM_BUILD_DIR/${f%.*}.d"; done
}

mkdir -p "$MEMCHECK_DIR"; chmod 755 "$MEMCHECK_DIR"
sync_sources || { say "cannot copy the sources to $CRM_BUILD_DIR"; exit 1; }
say "building crm_native with -fsanitize=address,undefined (log: $MEMCHECK_DIR/build.log)"
crm_stage || { say "FAIL: sanitized build"; exit 1; }
LIB=$CRM_STAGE$PG_SYS_PKGLIBDIR/crm_native.so
[ "$(nm -D "$LIB" | grep -c ' U __asan_report_load')" -gt 0 ] || { say "FAIL: $LIB is not instrumented"; exit 1; }

# The ASan runtime of the compiler that built the library (PGXS uses g++).
LIBASAN=$(readlink -f "$(g++ -print-file-name=libasan.so)")
[ -f "$LIBASAN" ] || { say "FAIL: g++ has no libasan.so"; exit 1; }
needed=$(ldd "$LIB" | awk '$1 ~ /^libasan/ {print $3}')
[ "$(readlink -f "$needed")" = "$LIBASAN" ] \
  || { say "FAIL: $LIB needs ${needed:-no libasan}, g++ uses $LIBASAN"; exit 1; }
SHIM=$MEMCHECK_DIR/asan_preload_fix.so
gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$SHIM" test/memcheck/asan_preload_fix.c \
  || { say "FAIL: cannot build $SHIM"; exit 1; }
chmod a+rx "$SHIM"

rm -rf "$REPORTS"; mkdir -p "$REPORTS"
[ "$(id -u)" -eq 0 ] && chown postgres: "$REPORTS"
# abort_on_error: a report kills the backend with SIGABRT, which the
# postmaster logs (and answers with a crash restart); log_path: one report
# file per process. allocator_may_return_null: a failed malloc is PostgreSQL's
# "out of memory" error, as without ASan. A smaller quarantine than the
# 256 MB default, per backend, on a shared machine. UBSan reports go to the
# server log: beside libasan, gcc 12's libubsan ignores its log_path (its
# report path is set in libasan's copy of the runtime instead).
# shellcheck disable=SC2034  # read by pgenv.sh's crm_cluster_start
CRM_SERVER_ENV="LD_PRELOAD=$LIBASAN:$SHIM
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:disable_coredump=1:allocator_may_return_null=1:quarantine_size_mb=64:log_path=$REPORTS/asan
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1:disable_coredump=1"
if ! crm_cluster_start memcheck jit=off fsync=off synchronous_commit=off full_page_writes=off max_connections=50 \
    shared_preload_libraries=crm_native; then  # trigger_stats: its counting runs under ASan too
  say "FAIL: the server did not start with the ASan runtime preloaded"
  # gcc 12's ASan cannot map its shadow memory with more ASLR entropy
  [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ] \
    && say "(vm.mmap_rnd_bits is $(cat /proc/sys/vm/mmap_rnd_bits); gcc 12's ASan needs 28 or less)"
  exit 1
fi
SERVER_LOG=$CRM_CLUSTER_DIR/server.log
postmaster=$(head -1 "$CRM_PGDATA/postmaster.pid")
grep -q libasan "/proc/$postmaster/maps" || { say "FAIL: the postmaster has no ASan runtime"; exit 1; }

selectors=()
set -f  # the selectors are globs for run_sql_suites.sh, not for the shell
for t in $TESTS; do selectors+=(-t "$t"); done
# shellcheck disable=SC2086
say "suites:" $TESTS
set +f
RESULTS=$MEMCHECK_DIR/results.txt
: >"$RESULTS"
CRM_OUT=$MEMCHECK_DIR/sql-suites CRM_RESULTS=$RESULTS \
  timeout -k 10 "${MEMCHECK_TIMEOUT:-600}" bash scripts/run_sql_suites.sh "${selectors[@]}"
suites_rc=$?
fail=0
npass=$(grep -c ' PASS$' "$RESULTS"); nfail=$(grep -c ' FAIL$' "$RESULTS")
[ "$suites_rc" -eq 124 ] && { say "FAIL: the suites took more than ${MEMCHECK_TIMEOUT:-600} s"; fail=1; }
[ "$suites_rc" -ne 0 ] && [ "$nfail" -eq 0 ] && [ "$suites_rc" -ne 124 ] && { say "FAIL: run_sql_suites.sh exited $suites_rc"; fail=1; }
[ "$nfail" -gt 0 ] && { say "FAIL: $nfail suite(s) failed:"; grep ' FAIL$' "$RESULTS" | sed 's/^/  /'; fail=1; }
[ "$npass" -eq 0 ] && { say "FAIL: no suite ran (selectors: $TESTS)"; fail=1; }

# any sanitizer report, and any server process that died
reports=$(find "$REPORTS" -type f -size +0 | sort)
if [ -n "$reports" ]; then
  say "FAIL: sanitizer report(s):"
  for r in $reports; do echo "---- $r"; head -60 "$r"; done
  fail=1
fi
crashes=$(grep -E 'was terminated by signal|exited with exit code|terminating any other active server processes|AddressSanitizer|runtime error:' "$SERVER_LOG")
if [ -n "$crashes" ]; then
  say "FAIL: server log ($SERVER_LOG):"; echo "$crashes" | head -20; fail=1
fi
psql -X -q -At -d postgres -c "SELECT 1" >/dev/null 2>&1 || { say "FAIL: the server does not answer"; fail=1; }
# trigger_stats: the suites ran with the statistics counting (crm_native preloaded)
ts_calls=$(psql -X -q -At -d crm_template -c "SELECT coalesce(sum(calls), 0) FROM crm_native.trigger_stats" 2>&1)
[[ "$ts_calls" =~ ^[1-9][0-9]*$ ]] || { say "FAIL: no native trigger call was counted (crm_native.trigger_stats: $ts_calls)"; fail=1; }
say "trigger_stats: $ts_calls native trigger calls counted under the sanitizers"
say "$npass suite(s) passed, $nfail failed; $(echo -n "$reports" | grep -c .) sanitizer report(s); $(echo -n "$crashes" | grep -c .) crash line(s) in the server log"

# Self-test: each injected bug must be reported, naming its source line.
if [ "$SELFTEST" = 1 ]; then
  SELF=$MEMCHECK_DIR/selftest; rm -rf "$SELF"; mkdir -p "$SELF"
  q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
  wait_ready() { for _ in $(seq 1 60); do q -d postgres -c "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
  # synchronous_commit: the function must survive the crash restarts
  if ! q -d postgres -c "DROP DATABASE IF EXISTS memcheck_selftest" \
         -c "CREATE DATABASE memcheck_selftest TEMPLATE crm_template" >/dev/null \
     || ! q -d memcheck_selftest -c "SET synchronous_commit = on" \
         -c "CREATE FUNCTION crm_native._guard_test(kind text) RETURNS text
               AS 'crm_native', 'crm_guard_test' LANGUAGE C STRICT VOLATILE" >/dev/null; then
    say "FAIL: self-test set-up"; fail=1; SELFTEST=0
  fi
fi
if [ "$SELFTEST" = 1 ]; then
  detected=0
  # kind:where the report goes:what it must say
  for spec in "memcheck_use_after_free:asan:ERROR: AddressSanitizer: heap-use-after-free" \
              "memcheck_out_of_bounds:asan:ERROR: AddressSanitizer: heap-buffer-overflow" \
              "memcheck_shift:server log:runtime error: shift exponent 40 is too large"; do
    kind=${spec%%:*}; rest=${spec#*:}; where=${rest%%:*}; want=${rest#*:}
    log_offset=$(( $(stat -c %s "$SERVER_LOG") + 1 ))
    out=$(q -d memcheck_selftest -c "SELECT crm_native._guard_test('$kind')" 2>&1)
    if [ "$where" = asan ]; then
      report=$(find "$REPORTS" -type f -name 'asan.*' -size +0 | head -1)
      [ -n "$report" ] && mv "$report" "$SELF/$kind.txt"
    else
      tail -c +"$log_offset" "$SERVER_LOG" >"$SELF/$kind.txt"
    fi
    find "$REPORTS" -type f -exec mv {} "$SELF/" \;
    if grep -q "$want" "$SELF/$kind.txt" 2>/dev/null && grep -q 'guard_test\.cpp:[0-9]' "$SELF/$kind.txt" \
       && grep -q 'connection to server was lost\|server closed the connection' <<<"$out"; then
      detected=$((detected + 1))
      say "self-test: $kind: caught in the $where report ($want, at $(grep -m1 -oE 'guard_test\.cpp:[0-9]+' "$SELF/$kind.txt"); backend killed)"
    else
      say "FAIL: self-test: $kind was not caught (client: ${out:-nothing}; $where report: $SELF/$kind.txt)"; fail=1
    fi
    wait_ready || { say "FAIL: the server did not come back after $kind"; fail=1; break; }
  done
  say "self-test: $detected of 3 injected bugs caught (reports in $SELF)"
fi

crm_cluster_stop
say "took $(( $(date +%s) - START )) s"
if [ $fail -eq 0 ]; then say "PASS"; exit 0; fi
say "FAIL (suite outputs: $MEMCHECK_DIR/sql-suites, reports: $REPORTS, server log: $SERVER_LOG)"
exit 1
