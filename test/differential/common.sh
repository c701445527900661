# Sourced by the differential checks (test/run.d/differential.sh,
# schema_variants.sh) after they set ROOT and CHECK (their name): the output
# directory and the psql helpers they share.
# scripts/test.sh does not export CRM_RUN_DIR: default to this checkout's
# run directory (scripts/pgenv.sh), not a /tmp path shared by every checkout.
OUT=${CRM_RUN_DIR:-/tmp/crm_native.$(printf '%s' "$ROOT" | md5sum | cut -c1-10)}/$CHECK
mkdir -p "$OUT"
export PGTZ=UTC PGOPTIONS="-c client_min_messages=warning"
export PGUSER=${PGUSER:-postgres}
say() { echo "[$CHECK] $*"; }
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
qv() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
drop() { q -d postgres -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null 2>&1; }

# workload_stats DB: what the workload exercised in DB, in the variables
# n_cust n_chat n_del n_merged n_fill n_stage n_hard n_tenants n_returning,
# and as one line in $stats_line.
workload_stats() {
  read -r n_cust n_chat n_del n_merged n_fill n_stage n_hard n_tenants n_returning <<<"$(qv -d "$1" -F ' ' -c "
    SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM \"VC Usage\"),
           (SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL),
           (SELECT count(*) FROM customers WHERE merged_into_customer_id IS NOT NULL),
           (SELECT count(*) FROM customer_events WHERE event_type = 'contact_info_added'),
           (SELECT count(*) FROM customer_events WHERE event_type = 'stage_changed'),
           (SELECT count(*) FROM customer_audit_log WHERE operation = 'DELETE'),
           (SELECT count(DISTINCT company_id) FROM customers),
           (SELECT count(*) FROM \"VC Usage\" v WHERE customer_id IS NOT NULL AND EXISTS
              (SELECT 1 FROM \"VC Usage\" w WHERE w.customer_id = v.customer_id AND w.id < v.id))")"
  stats_line="customers=$n_cust chats=$n_chat soft_deleted=$n_del merged=$n_merged contact_info_added=$n_fill stage_changed=$n_stage hard_deleted=$n_hard tenants=$n_tenants returning_chats=$n_returning"
}

# workload_too_thin [MIN_TENANTS]: after workload_stats, true when the
# workload did not exercise enough to prove anything.
workload_too_thin() {
  [ "$n_cust" -lt 20 ] || [ "$n_del" -lt 1 ] || [ "$n_merged" -lt 1 ] || [ "$n_fill" -lt 1 ] \
    || [ "$n_stage" -lt 1 ] || [ "$n_tenants" -lt "${1:-1}" ] || [ "$n_returning" -lt 10 ]
}
