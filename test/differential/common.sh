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
