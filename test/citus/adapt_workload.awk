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
#
# The hard delete's NOT EXISTS (nobody merged into the customer) gets the
# tenant condition m.company_id = c.company_id: Citus plans a correlated
# subquery on a distributed table only when it is joined on the distribution
# column ("complex joins are only supported when all distributed tables are
# co-located and joined on their distribution columns"). The same on a
# single node: a customer is only ever merged into one of its own company
# (reference/citus/04_distribute.sql makes that a foreign key).
# Likewise the move of a conversation to the customer of another chat gets
# v.company_id = u.company_id (both chats are of the same company).
{ sub(/WHERE m\.merged_into_customer_id = c\.id\)/, "WHERE m.merged_into_customer_id = c.id AND m.company_id = c.company_id)")
  sub(/AND c\.company_id = u\.company_id AND c\.deleted_at IS NULL WHERE v\.user_message = /,
      "AND c.company_id = u.company_id AND c.deleted_at IS NULL WHERE v.company_id = u.company_id AND v.user_message = ") }
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
END { printf "-- adapt_workload: %d owner deletes moved out of crm_app transactions\n", split_count }
