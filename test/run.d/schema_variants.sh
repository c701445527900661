#!/usr/bin/env bash
# Differential test on schema variants ("a write path you can trust on any
# application schema"). The randomized workload of test/run.d/differential.sh
# (test/differential/generator.sql, harness.sql) runs on variants of the
# reference schema (test/differential/variants.sql), each applied identically
# to a plpgsql database (ref) and a native one (cmp, crm_native.install()):
#
#   fk_indexes      (a) an extra single-column index on every foreign-key
#                       column of the CRM tables (customers(company_id) too),
#                       and 4 partial indexes whose predicates the triggers'
#                       conditions could prove (unmerged, live customers;
#                       unlinked, session chats)
#   deferred_fks    (b) every foreign key DEFERRABLE INITIALLY DEFERRED
#   app_triggers    (c) the application's own triggers on customers: AFTER
#                       INSERT inserts a welcome chat (a nested chat insert
#                       that creates a customer), BEFORE INSERT OR UPDATE
#                       rewrites the row (tag, notes, trimmed name)
#   never_analyzed  (d) autovacuum off on the CRM tables, no ANALYZE anywhere
#   crm_app_rls     (e) every transaction as crm_app under row-level security,
#                       app.current_company_id = the company it writes to
#   partitioned     (f) the chats, audit log, events, matching keys, metrics
#                       and customers as partitioned tables (by time, id,
#                       tenant, hash),
#                       one partition of each in another schema (crm_parts);
#                       every partition must end up with rows
#   column_types    (g) citext contact columns, varchar(200), and domains with
#                       CHECK constraints over uuid, text and int4 on columns
#                       the triggers read and write
#   uuid_chat_ids   (h) "VC Usage".id of type uuid, random (not in insertion
#                       order)
#
# and on the reference schema, five ways of delivering the same workload
# (test/differential/delivery.py rewrites the script for both databases):
#   copy            the owner's chat INSERTs as COPY ... FROM STDIN
#   savepoints      every data statement first run and rolled back in a
#                   savepoint (SQL, or a PL/pgSQL exception block), then again
#   procedures      steps run by a procedure that COMMITs after each
#   function_loop   chat INSERTs as a PL/pgSQL cursor loop, a row at a time
#   multi_change    the owner's chat INSERTs, UPDATEs and DELETEs each in a
#                   writable CTE beside an UPDATE of another chat: one query
#                   that changes "VC Usage" twice (as upserts and MERGE do)
# and on schema (f):
#   partition_writes  the owner's chat INSERTs, UPDATEs and DELETEs name the
#                   partitions of "VC Usage" instead (statement triggers fire
#                   for the table a statement names only)
#
# For each variant and seed, both databases must run every transaction of the
# workload to COMMIT (psql ON_ERROR_STOP; a failure on ref means the variant
# itself is broken), end in the same canonical state row for row, satisfy
# the harness' invariants, and have no foreign-key orphan: for every foreign
# key of the CRM tables in pg_constraint, no referencing row with a non-null
# key and no referenced row, counted by query (a deferred or skipped check
# would not have caught one). Each variant also proves it was in effect
# (what it added is in the catalogs, the app triggers fired, no table was
# ever analyzed, no statement ran as the owner).
#
# One line per variant: "PASS <variant>" or "FAIL <variant>: reason".
# Needs PGHOST etc. of a running test cluster with crm_template built
# (scripts/test.sh does both). Knobs:
#   SV_VARIANTS="fk_indexes ..."   variants to run (default: all fourteen)
#   SV_SEEDS="1 2"                 seeds (default: 20240611 + 1 random, printed)
#   SV_STEPS=500                   transactions per workload
#   SV_KEEP=1                      keep the databases of passing runs too
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$ROOT/test/differential
CHECK=schema_variants
# shellcheck source=../differential/common.sh
source "$DIR/common.sh"
VARIANTS=${SV_VARIANTS:-"fk_indexes deferred_fks app_triggers never_analyzed crm_app_rls partitioned column_types uuid_chat_ids copy savepoints procedures function_loop partition_writes multi_change"}
STEPS=${SV_STEPS:-500}
SEEDS=${SV_SEEDS:-"20240611 $((RANDOM * 32768 + RANDOM))"}

# mkdb NAME VARIANT: clone crm_template, load the harness and the variant
mkdb() {
  drop "$1"
  q -d postgres -c "CREATE DATABASE \"$1\" TEMPLATE crm_template" >/dev/null \
    && q -d "$1" -f "$DIR/harness.sql" >/dev/null \
    && q -d "$1" -f "$DIR/variants.sql" >/dev/null \
    && qv -d "$1" -c "SELECT * FROM schema_variant.apply('$2')"
}

qv -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'crm_template'" | grep -q 1 \
  || { say "FAIL: crm_template missing (run through scripts/test.sh)"; exit 1; }
mkdb sv_gen plain >/dev/null && q -d sv_gen -f "$DIR/generator.sql" >/dev/null \
  || { say "FAIL: cannot set up the generator"; exit 1; }
qv -d sv_gen -c "SELECT 1 FROM pg_proc WHERE proname = 'install' AND pronamespace = 'crm_native'::regnamespace" | grep -q 1 \
  || { say "FAIL: crm_native.install() does not exist"; exit 1; }
say "variants: $VARIANTS"
say "seeds: $SEEDS   steps per seed: $STEPS"

failed_variants=()
orphan_test_db=""
for variant in $VARIANTS; do
  vstart=$(date +%s)
  problems=()
  app_only=false; [ "$variant" = crm_app_rls ] && app_only=true
  for seed in $SEEDS; do
    ref=sv_${variant}_${seed}_ref; cmp=sv_${variant}_${seed}_cmp; work=$OUT/$variant/seed_$seed
    rm -rf "$work"; mkdir -p "$work"
    if ! qv -d sv_gen -c "SELECT difftest.generate($seed, $STEPS, $app_only)" >"$work/workload.sql"; then
      problems+=("seed $seed: generator failed"); continue
    fi
    case $variant in
      copy|savepoints|procedures|function_loop|partition_writes|multi_change)
        if ! python3 "$DIR/delivery.py" "$variant" <"$work/workload.sql" >"$work/workload.delivered.sql"; then
          problems+=("seed $seed: delivery.py $variant failed"); continue
        fi
        # the rewrite happened: count what it delivers
        case $variant in
          copy) n_delivered=$(grep -c '^COPY "VC Usage"' "$work/workload.delivered.sql") ;;
          savepoints) n_delivered=$(grep -cE '^(ROLLBACK TO SAVEPOINT delivery_try;|DO [$]try[$])' "$work/workload.delivered.sql") ;;
          procedures) n_delivered=$(grep -c '^CALL difftest.run_steps' "$work/workload.delivered.sql") ;;
          function_loop) n_delivered=$(grep -c '^DO [$]chats[$]' "$work/workload.delivered.sql") ;;
          multi_change) n_delivered=$(grep -c '^WITH delivery_main AS' "$work/workload.delivered.sql") ;;
          partition_writes) n_delivered=$(grep -cE '^(RESET ROLE; )?(INSERT INTO|UPDATE|DELETE FROM) (crm_parts[.]vc_usage_early|public[.]vc_usage_later) ' "$work/workload.delivered.sql") ;;
        esac
        say "$variant seed $seed: $n_delivered statements delivered as $variant"
        [ "$n_delivered" -ge 10 ] || problems+=("seed $seed: only $n_delivered statements delivered as $variant")
        mv "$work/workload.delivered.sql" "$work/workload.sql" ;;
    esac
    if $app_only; then
      owner_ops=$(grep -c 'RESET ROLE' "$work/workload.sql")
      app_ops=$(grep -c 'SET LOCAL ROLE crm_app' "$work/workload.sql")
      [ "$owner_ops" -eq 0 ] && [ "$app_ops" -ge "$STEPS" ] \
        || problems+=("seed $seed: workload not all crm_app ($owner_ops owner operations, $app_ops crm_app ones)")
    fi
    ok=1
    for side in ref cmp; do
      db=$ref; [ $side = cmp ] && db=$cmp
      if ! mkdb "$db" "$variant" >"$work/$side.variant.log" 2>&1; then
        problems+=("seed $seed: cannot create $side database with the variant: $(tail -3 "$work/$side.variant.log")"); ok=0; continue
      fi
      if [ $side = cmp ] && ! q -d "$db" -c "SELECT crm_native.install()" >"$work/install.log" 2>&1; then
        problems+=("seed $seed: crm_native.install() failed: $(tail -3 "$work/install.log")"); ok=0; continue
      fi
      start=$(date +%s.%N)
      if ! q -d "$db" -f "$work/workload.sql" >"$work/$side.log" 2>&1; then
        # the failing transaction is the last step that recorded its clock
        last=$(qv -d "$db" -c "SELECT coalesce(max(step), 0) + 1 FROM difftest.clock" 2>/dev/null)
        what="fails on native where plpgsql commits"; [ $side = ref ] && what="fails on plpgsql too (the variant is broken)"
        problems+=("seed $seed: workload $what, step ${last:-?} of $STEPS: $(grep -m1 -E 'ERROR|FATAL' "$work/$side.log")")
        ok=0; continue
      fi
      secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
      committed=$(qv -d "$db" -c "SELECT count(*) FROM difftest.clock")
      [ "$committed" = "$STEPS" ] || { problems+=("seed $seed: $side committed $committed of $STEPS transactions"); ok=0; }
      qv -d "$db" -c "SELECT * FROM difftest.invariant_violations()" >"$work/$side.invariants" 2>&1
      [ -s "$work/$side.invariants" ] && { problems+=("seed $seed: invariant violations on $side: $(head -3 "$work/$side.invariants" | tr '\n' ';')"); ok=0; }
      qv -d "$db" -F ' ' -c "SELECT conrelid, conname, orphans FROM schema_variant.fk_orphans()" >"$work/$side.fks" 2>&1
      n_fks=$(wc -l <"$work/$side.fks")
      orphans=$(awk '$NF != 0' "$work/$side.fks")
      if [ "$n_fks" -lt 10 ] || ! awk '{ if ($NF !~ /^[0-9]+$/) exit 1 }' "$work/$side.fks"; then
        problems+=("seed $seed: foreign-key orphan check did not run on $side: $(head -3 "$work/$side.fks")"); ok=0
      elif [ -n "$orphans" ]; then
        problems+=("seed $seed: foreign-key orphans on $side: $(tr '\n' ';' <<<"$orphans")"); ok=0
      fi
      qv -d "$db" -c "SELECT * FROM difftest.dump()" >"$work/$side.dump" 2>&1 || { problems+=("seed $seed: dump failed on $side"); ok=0; }
      desc=$(qv -d "$db" -c "SELECT schema_variant.describe('$variant')")
      say "$variant seed $seed: $side committed $committed transactions in $secs s, $n_fks foreign keys without orphans; $desc"
    done
    [ $ok = 1 ] || { say "$variant seed $seed: FAILED; databases $ref, $cmp kept; workload $work/workload.sql"; continue; }

    # the variant was in effect, on both sides
    for db in $ref $cmp; do
      case $variant in
        fk_indexes) qv -d "$db" -c "SELECT schema_variant.describe('fk_indexes')" \
                      | grep -qE '^([0-9]+) foreign keys, \1 extra indexes \(2 on customers\(company_id\)\), 4 partial' \
                      || problems+=("seed $seed: $db lacks the foreign-key indexes") ;;
        deferred_fks) qv -d "$db" -c "SELECT schema_variant.describe('deferred_fks')" \
                      | grep -qE '^([1-9][0-9]*) foreign keys, \1 deferrable' \
                      || problems+=("seed $seed: $db has foreign keys that are not deferred") ;;
        partitioned|partition_writes) qv -d "$db" -c "SELECT schema_variant.describe('partitioned')" \
                      | grep -qE '^6 partitioned CRM tables, 12 partitions with rows \(6 of them in crm_parts\)' \
                      || problems+=("seed $seed: $db: $(qv -d "$db" -c "SELECT schema_variant.describe('partitioned')")") ;;
        uuid_chat_ids) qv -d "$db" -c "SELECT schema_variant.describe('uuid_chat_ids')" | grep -qE '^chat id uuid, [1-9][0-9]* chats' \
                      || problems+=("seed $seed: $db: $(qv -d "$db" -c "SELECT schema_variant.describe('uuid_chat_ids')")") ;;
        never_analyzed) qv -d "$db" -c "SELECT schema_variant.describe('never_analyzed')" \
                      | grep -qE '^([0-9]+) CRM tables, \1 with autovacuum off, 0 ever analyzed' \
                      || problems+=("seed $seed: $db: $(qv -d "$db" -c "SELECT schema_variant.describe('never_analyzed')")") ;;
        app_triggers)
          read -r n_welcome n_untagged n_notes <<<"$(qv -d "$db" -F ' ' -c "
            SELECT (SELECT count(*) FROM \"VC Usage\" WHERE user_message = 'welcome!' AND customer_id IS NOT NULL),
                   (SELECT count(*) FROM customers WHERE NOT ('app' = ANY (tags))),
                   (SELECT count(*) FROM customers WHERE customer_notes LIKE '(email was %')")"
          say "$variant seed $seed: $db: linked welcome chats=$n_welcome customers untagged=$n_untagged with email-change notes=$n_notes"
          [ "$n_welcome" -ge 10 ] && [ "$n_untagged" -eq 0 ] && [ "$n_notes" -ge 1 ] \
            || problems+=("seed $seed: $db: the application triggers did not fire as expected") ;;
      esac
    done
    workload_stats "$ref"
    say "$variant seed $seed: $stats_line"
    if workload_too_thin; then
      problems+=("seed $seed: workload too thin to prove anything (raise SV_STEPS)")
    fi
    if ! diff -u "$work/ref.dump" "$work/cmp.dump" >"$work/dump.diff"; then
      problems+=("seed $seed: ref and cmp differ in $(grep -c '^[-+][a-z]' "$work/dump.diff") lines ($work/dump.diff)")
      grep '^[-+][a-z]' "$work/dump.diff" | head -20
      say "$variant seed $seed: FAILED; databases $ref, $cmp kept; workload $work/workload.sql"
      continue
    fi
    say "$variant seed $seed: ref and cmp agree ($(wc -l <"$work/ref.dump") rows)"
    if [ -z "$orphan_test_db" ]; then orphan_test_db=$cmp; continue; fi
    [ "${SV_KEEP:-0}" = 1 ] || { drop "$ref"; drop "$cmp"; }
  done
  if [ ${#problems[@]} -eq 0 ]; then
    say "PASS $variant ($(( $(date +%s) - vstart )) s)"
  else
    say "FAIL $variant: ${problems[0]}"
    for p in "${problems[@]:1}"; do say "     $variant: $p"; done
    failed_variants+=("$variant")
  fi
done

# The orphan check must see an orphan: one matching key whose customer does
# not exist, written with the foreign-key triggers off, rolled back.
if [ -n "$orphan_test_db" ]; then
  seen=$(qv -d "$orphan_test_db" -F ' ' -c "BEGIN" -c "SET LOCAL session_replication_role = replica" \
           -c "INSERT INTO customer_matching_keys (customer_id, company_id, key_type, normalized_value)
               VALUES ('00000000-0000-4000-8000-ffffffffffff', 'aaaaaaaa-0000-4000-8000-00000000000a', 'email', 'x')" \
           -c "SELECT conname, orphans FROM schema_variant.fk_orphans() WHERE orphans <> 0" -c "ROLLBACK" 2>&1)
  if [ "$seen" = "customer_matching_keys_customer_id_fkey 1" ]; then
    say "self-test: the orphan check finds a planted orphan"
  else
    say "FAIL self-test: the orphan check missed a planted orphan (got: $seen)"; failed_variants+=("orphan-self-test")
  fi
  [ "${SV_KEEP:-0}" = 1 ] || { drop "$orphan_test_db"; drop "${orphan_test_db%_cmp}_ref"; }
else
  say "self-test skipped: no variant passed"
fi
drop sv_gen

if [ ${#failed_variants[@]} -eq 0 ]; then say "PASS: all schema variants ($VARIANTS)"; exit 0; fi
say "FAIL: ${failed_variants[*]}"; exit 1
