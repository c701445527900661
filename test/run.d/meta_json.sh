#!/usr/bin/env bash
# META.json (PGXN Meta Spec 1.0.0) is valid and names the release's version:
# test/meta_json.py (PGXN::Meta::Validator is on CPAN only, not in Debian).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec python3 "$ROOT/test/meta_json.py" "$ROOT"
