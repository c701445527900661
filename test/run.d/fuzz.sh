#!/usr/bin/env bash
# libFuzzer check for the normalizers (fuzz/): builds the targets with clang
# (-fsanitize=fuzzer,address,undefined) in a meson build dir under
# $CRM_RUN_DIR (or /tmp), replays each seed corpus in fuzz/corpus/<target>/,
# then fuzzes each target briefly. Fails on any crash, sanitizer report,
# violated property (fuzz/fuzz_check.hpp), timeout or leak.
#
#   FUZZ_SECONDS   seconds of fuzzing per target (default 20)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../scripts/pgenv.sh
[ -n "${CRM_RUN_DIR:-}" ] || source "$ROOT/scripts/pgenv.sh" 2>/dev/null || true
BASE=${CRM_RUN_DIR:-/tmp/crm_native_fuzz.$(id -u)}
BUILD=$BASE/meson-fuzz
WORK=$BASE/fuzz-work
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
TARGETS="fuzz_normalize_email fuzz_normalize_phone fuzz_normalize_name"
mkdir -p "$BASE"

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found"; exit 1; }
if [ ! -f "$BUILD/build.ninja" ]; then
  CXX=clang++ meson setup "$BUILD" "$ROOT" -Dfuzzers=true --buildtype=debugoptimized >"$BASE/fuzz-setup.log" 2>&1 \
    || { cat "$BASE/fuzz-setup.log"; exit 1; }
fi
# shellcheck disable=SC2086
meson compile -C "$BUILD" $(for t in $TARGETS; do printf 'fuzz/%s ' "$t"; done) >"$BASE/fuzz-build.log" 2>&1 \
  || { tail -60 "$BASE/fuzz-build.log"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in $TARGETS; do
  bin=$BUILD/fuzz/$t
  seeds=$ROOT/fuzz/corpus/$t
  # Fuzz into a scratch corpus, so the checked-in seeds stay small.
  rm -rf "${WORK:?}/$t"; mkdir -p "$WORK/$t/corpus" "$WORK/$t/artifacts"
  if ! "$bin" -runs=0 "$seeds" >"$WORK/$t/replay.log" 2>&1; then
    echo "fuzz: $t crashed replaying its corpus:"; tail -40 "$WORK/$t/replay.log"; status=1; continue
  fi
  # -timeout: one input taking over 10 s is a hang (the phone bound must
  # keep libphonenumber far below that).
  if ! "$bin" -seed="${FUZZ_SEED:-1}" -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$WORK/$t/artifacts/" "$WORK/$t/corpus" "$seeds" >"$WORK/$t/fuzz.log" 2>&1; then
    echo "fuzz: $t failed (artifacts in $WORK/$t/artifacts):"; tail -40 "$WORK/$t/fuzz.log"; status=1; continue
  fi
  echo "fuzz: $t ok ($(grep -Eo '#[0-9]+' "$WORK/$t/fuzz.log" | tail -1 | tr -d '#') runs in ${SECONDS_PER_TARGET}s, corpus replayed)"
done
exit $status
