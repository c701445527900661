# Citus adaptation of a differential workload (test/differential/generator.sql),
# applied to the script of BOTH sides of test/run.d/citus.sh.
#
# Citus refuses to touch, in one transaction, shard placements that another
# role modified earlier in it ("cannot perform query on placements that were
# modified in this transaction by a different user"): it reaches the workers
# over one connection per role. The generator's steps as crm_app may contain
# the owner's hard delete ("RESET ROLE; DELETE FROM customers ..."). Such a
# delete is moved into a transaction of its own, and the ops after it into
# another one; each new transaction records its own clock row (step number
# 100000 * part + step) and repeats the step's app.current_user_id.
/^BEGIN;$/ { in_app = 0; user_line = ""; print; next }
/^INSERT INTO difftest\.clock VALUES \(/ {
    step = $0; sub(/^INSERT INTO difftest\.clock VALUES \(/, "", step); sub(/,.*/, "", step)
    part = 0; print; next
}
/^SET LOCAL app\.current_user_id = / { user_line = $0; print; next }
/^SET LOCAL ROLE crm_app;/ {
    if (after_delete) { split_tx(); after_delete = 0 }
    in_app = 1; print; next
}
/^RESET ROLE; DELETE FROM customers / {
    if (in_app) { split_tx(); print; after_delete = 1; in_app = 0; split_count++; next }
}
/^COMMIT;$/ { after_delete = 0; in_app = 0; print; next }
{ print }
function split_tx() {
    part++
    print "COMMIT;"
    print "BEGIN;"
    printf "INSERT INTO difftest.clock VALUES (%d, now());\n", 100000 * part + step
    if (user_line != "") print user_line
}
END { printf "-- split_mixed_roles: %d owner deletes moved out of crm_app transactions\n", split_count }
