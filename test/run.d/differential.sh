#!/usr/bin/env bash
# Differential test (issue 4 item 4; docs/differential.md).
#
# The same randomized CRM workload runs against two databases cloned from
# crm_template: "ref" keeps the plpgsql triggers of reference/02_*.sql, "cmp"
# runs `SELECT crm_native.install()` first. Their final states are dumped in
# a canonical form (generated ids and wall-clock times factored out,
# test/differential/harness.sql) and must be identical, line for line.
# While crm_native.install() does not exist yet, "cmp" keeps the plpgsql
# triggers too (plpgsql vs plpgsql), which checks the harness' determinism.
# Either way a self-test perturbs single rows of "cmp" and requires the
# comparison to notice each one.
#
# Needs PGHOST etc. of a running test cluster with crm_template built
# (scripts/test.sh does both). Environment knobs:
#   DIFF_SEEDS="1 2 3"   seeds to run (default: fixed seed 20240611 + 3 random)
#   DIFF_STEPS=300       transactions per workload
#   DIFF_MODE=auto       auto | native | self (self = plpgsql vs plpgsql)
#   DIFF_KEEP=1          keep the databases of passing seeds too
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$ROOT/test/differential
CHECK=differential
# shellcheck source=../differential/common.sh
source "$DIR/common.sh"
STEPS=${DIFF_STEPS:-300}
SEEDS=${DIFF_SEEDS:-"20240611 $((RANDOM * 32768 + RANDOM)) $((RANDOM * 32768 + RANDOM)) $((RANDOM * 32768 + RANDOM))"}
MODE=${DIFF_MODE:-auto}

mkdb() {  # mkdb NAME: clone crm_template, load the harness
  drop "$1"
  q -d postgres -c "CREATE DATABASE \"$1\" TEMPLATE crm_template" >/dev/null || return 1
  q -d "$1" -f "$DIR/harness.sql" >/dev/null || return 1
}

qv -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'crm_template'" | grep -q 1 \
  || { say "crm_template missing (run through scripts/test.sh)"; exit 1; }

# The generator runs in its own database (it only computes text).
mkdb diff_gen && q -d diff_gen -f "$DIR/generator.sql" >/dev/null || { say "cannot set up generator"; exit 1; }
has_install=$(qv -d diff_gen -c "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                 WHERE n.nspname = 'crm_native' AND p.proname = 'install'")
case $MODE in
  auto) if [ "$has_install" -gt 0 ]; then MODE=native; else MODE=self; fi ;;
  native) [ "$has_install" -gt 0 ] || { say "DIFF_MODE=native but crm_native.install() does not exist"; exit 1; } ;;
  self) ;;
  *) say "unknown DIFF_MODE=$MODE"; exit 1 ;;
esac
if [ "$MODE" = native ]; then
  say "mode: plpgsql (ref) vs native (cmp, after crm_native.install())"
else
  say "mode: plpgsql vs plpgsql (crm_native.install() not available: harness self-check only)"
fi
say "seeds: $SEEDS   steps per seed: $STEPS"

failures=0
self_test_db=""
for seed in $SEEDS; do
  ref=diffref_$seed; cmp=diffcmp_$seed; work=$OUT/seed_$seed
  mkdir -p "$work"
  qv -d diff_gen -c "SELECT difftest.generate($seed, $STEPS)" >"$work/workload.sql" \
    || { say "seed $seed: generator failed"; failures=$((failures + 1)); continue; }
  mkdb "$ref" && mkdb "$cmp" || { say "seed $seed: cannot create databases"; failures=$((failures + 1)); continue; }
  if [ "$MODE" = native ]; then
    q -d "$cmp" -c "SELECT crm_native.install()" >"$work/install.log" 2>&1 \
      || { say "seed $seed: crm_native.install() failed:"; cat "$work/install.log"; failures=$((failures + 1)); continue; }
    # which application triggers are native now (pg_trigger, so it does not
    # depend on status()'s columns)
    [ -n "${printed_triggers:-}" ] || say "cmp triggers: $(qv -d "$cmp" -c "SELECT string_agg(tgname || '=' || tgfoid::regproc, ', ' ORDER BY tgname)
                                                                 FROM pg_trigger WHERE NOT tgisinternal")"
    printed_triggers=1
  fi
  ok=1
  for side in ref cmp; do
    db=$ref; [ $side = cmp ] && db=$cmp
    start=$(date +%s.%N)
    if ! q -d "$db" -f "$work/workload.sql" >"$work/$side.log" 2>&1; then
      say "seed $seed: workload failed on $side ($db):"; tail -5 "$work/$side.log"; ok=0; continue
    fi
    say "seed $seed: $side workload ran in $(awk -v s="$start" -v e="$(date +%s.%N)" "BEGIN{printf \"%.1f\", e-s}") s"
    qv -d "$db" -c "SELECT * FROM difftest.invariant_violations()" >"$work/$side.invariants" 2>&1
    if [ -s "$work/$side.invariants" ]; then
      say "seed $seed: invariant violations on $side ($db):"; head -20 "$work/$side.invariants"; ok=0
    fi
    qv -d "$db" -c "SELECT * FROM difftest.dump()" >"$work/$side.dump" 2>&1 || { say "dump failed on $side"; ok=0; }
  done
  if [ $ok = 1 ]; then
    # the workload must have exercised what it claims to
    workload_stats "$ref"
    say "seed $seed: $stats_line dump_lines=$(wc -l <"$work/ref.dump")"
    if workload_too_thin 2; then
      say "seed $seed: workload too thin to prove anything (raise DIFF_STEPS)"; ok=0
    fi
    if ! diff -u "$work/ref.dump" "$work/cmp.dump" >"$work/dump.diff"; then
      say "seed $seed: MISMATCH ref vs cmp ($(grep -c '^[-+][a-z]' "$work/dump.diff") differing lines; full diff: $work/dump.diff)"
      grep '^[-+][a-z]' "$work/dump.diff" | head -40
      ok=0
    else
      say "seed $seed: ref and cmp agree ($(wc -l <"$work/ref.dump") rows)"
    fi
  fi
  if [ $ok = 1 ]; then
    self_test_db=$cmp; self_test_ref=$work/ref.dump
    [ "${DIFF_KEEP:-0}" = 1 ] || drop "$ref"
  else
    failures=$((failures + 1)); say "seed $seed: FAILED; databases $ref and $cmp kept; workload $work/workload.sql"
  fi
done

# Self-test: the comparison must notice a single perturbed row of each kind.
if [ -n "$self_test_db" ]; then
  perturbations=(
    "UPDATE customer_matching_keys SET normalized_value = normalized_value || 'x' WHERE id = (SELECT max(id) FROM customer_matching_keys)"
    "UPDATE customer_events SET event_data = event_data || '{\"x\": 1}' WHERE id = (SELECT min(id) FROM customer_events)"
    "DELETE FROM customer_audit_log WHERE id = (SELECT max(id) FROM customer_audit_log WHERE operation = 'UPDATE')"
    "UPDATE customer_metrics SET total_views = total_views + 1 WHERE customer_id = (SELECT min(customer_id::text)::uuid FROM customer_metrics)"
    "UPDATE customers SET customer_phone = coalesce(customer_phone, '') || '9' WHERE id = (SELECT max(id) FROM customers)"
    "UPDATE \"VC Usage\" SET customer_id = NULL WHERE id = (SELECT max(id) FROM \"VC Usage\" WHERE customer_id IS NOT NULL)"
  )
  for p in "${perturbations[@]}"; do
    # triggers off (replica): exactly one row changes; rolled back afterwards
    if psql -X -q -At -v ON_ERROR_STOP=1 -d "$self_test_db" \
         -c "BEGIN" -c "SET LOCAL session_replication_role = replica" -c "$p" \
         -c "SELECT * FROM difftest.dump()" -c "ROLLBACK" 2>&1 | diff -q "$self_test_ref" - >/dev/null; then
      say "self-test: perturbation NOT detected: $p"; failures=$((failures + 1))
    else
      say "self-test: detected: ${p:0:70}..."
    fi
  done
  # control: a perturbation that changes nothing must compare equal, or the
  # detections above prove nothing
  if psql -X -q -At -v ON_ERROR_STOP=1 -d "$self_test_db" \
       -c "BEGIN" -c "SET LOCAL session_replication_role = replica" -c "UPDATE customers SET status = status WHERE false" \
       -c "SELECT * FROM difftest.dump()" -c "ROLLBACK" 2>&1 | diff -q "$self_test_ref" - >/dev/null; then
    say "self-test: control (no change) compares equal"
  else
    say "self-test: control (no change) compares UNEQUAL: the comparison is noisy"; failures=$((failures + 1))
  fi
  # behavioural perturbation: a database whose name normalization does not
  # collapse whitespace (a plausible native bug) must not compare equal
  mut_seed=${self_test_db#diffcmp_}
  if mkdb diff_mutant && q -d diff_mutant -c "CREATE OR REPLACE FUNCTION public.crm_normalize_name(raw text)
         RETURNS text LANGUAGE sql IMMUTABLE RETURN NULLIF(lower(btrim(raw)), '')" >/dev/null \
     && q -d diff_mutant -f "$OUT/seed_$mut_seed/workload.sql" >/dev/null 2>&1; then
    if qv -d diff_mutant -c "SELECT * FROM difftest.dump()" | diff -q "$self_test_ref" - >/dev/null; then
      say "self-test: behavioural mutation (name whitespace) NOT detected"; failures=$((failures + 1))
    else
      say "self-test: detected: behavioural mutation (name normalization keeps inner whitespace)"
    fi
  else
    say "self-test: could not run the behavioural mutation"; failures=$((failures + 1))
  fi
  drop diff_mutant
  [ "${DIFF_KEEP:-0}" = 1 ] || for seed in $SEEDS; do
    [ -f "$OUT/seed_$seed/dump.diff" ] && [ ! -s "$OUT/seed_$seed/dump.diff" ] && drop "diffcmp_$seed"
  done
else
  say "self-test skipped: no seed passed"; failures=$((failures + 1))
fi
drop diff_gen

if [ $failures -eq 0 ]; then say "PASS ($MODE mode)"; exit 0; fi
say "FAIL: $failures problem(s) ($MODE mode)"; exit 1
