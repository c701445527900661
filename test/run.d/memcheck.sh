#!/usr/bin/env bash
# The memory check (scripts/memcheck.sh) as part of the test command: the
# sanitized build on its own cluster, a subset of the SQL suites under
# ASan/UBSan, and the self-test that requires injected bugs to be caught.
# Knobs: MEMCHECK_TESTS, MEMCHECK_SELFTEST, MEMCHECK_TIMEOUT (see the script).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec bash "$ROOT/scripts/memcheck.sh"
