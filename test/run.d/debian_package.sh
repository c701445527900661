#!/usr/bin/env bash
# The Debian package (issue 17): builds postgresql-15-crm-native the way a
# Debian builder would, checks what it contains, and runs a smoke test on a
# throwaway server of its own that loads only the packaged files.
#
#   1. build dependencies (debian/control): installed with apt-get build-dep
#      when dpkg-checkbuilddeps reports any missing (scripts/deps.sh installs
#      them already);
#   2. a clean copy of this checkout (the files git tracks or would track:
#      no build outputs, uncommitted edits included) is built with
#      dpkg-buildpackage -b; the .deb is cached under the run directory, keyed
#      by the copy's contents and the build dependencies' versions;
#   3. dpkg-deb -c: the library, the control file and every crm_native--*.sql
#      of the tree are in it; no test-only symbol in the library; Depends pulls
#      libphonenumber and ICU; the package version is the extension's (while
#      debian/changelog is UNRELEASED, a release in preparation, the package
#      may be ahead of crm_native.control);
#   4. dpkg-deb -x into a private copy of PostgreSQL 15 (as scripts/pgenv.sh
#      stages one), a throwaway cluster on its own socket directory, the
#      reference schema, debian/tests/smoke.sql (CREATE EXTENSION, install(),
#      a chat creates its customer with keys and metrics, version_info(), no
#      crm_native._guard_test), and version_info() against the package.
#
# Runs on its own: it does not use the test cluster of scripts/test.sh.
# Prints PASS/FAIL lines; exits non-zero when anything fails.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${CRM_RUN_DIR:-/tmp/crm_native.$(printf '%s' "$ROOT" | md5sum | cut -c1-10)}
CRM_RUN_DIR=$BASE/debian_package
# shellcheck source=../../scripts/pgenv.sh
source "$ROOT/scripts/pgenv.sh"
mkdir -p "$CRM_RUN_DIR" && chmod 755 "$BASE" "$CRM_RUN_DIR"

fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
finish() {
  if [ "$fails" -eq 0 ]; then echo "debian_package: ok"; else echo "debian_package: $fails failed"; fi
  exit $(( fails > 0 ))
}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# ---- 1. build dependencies
if ! command -v dpkg-checkbuilddeps >/dev/null; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
fi
if ! unmet=$(cd "$ROOT" && dpkg-checkbuilddeps 2>&1); then
  echo "installing build dependencies (${unmet#*: })"
  apt_build_dep() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 build-dep -y -qq \
      --no-install-recommends "$ROOT" >"$CRM_RUN_DIR/build-dep.log" 2>&1
  }
  apt_build_dep || { $SUDO apt-get update -qq && apt_build_dep; } \
    || { cat "$CRM_RUN_DIR/build-dep.log"; fail "build dependencies could not be installed"; finish; }
fi
pass "build dependencies installed"

# ---- 2. the package, from a clean copy of the tree
SRC_PARENT=$CRM_RUN_DIR/src
SRC=$SRC_PARENT/crm-native
rm -rf "$SRC_PARENT" && mkdir -p "$SRC"
if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  fail "$ROOT is not a git checkout: cannot tell sources from build outputs"; finish
fi
(cd "$ROOT" && git ls-files -z -c -o --exclude-standard) |
  while IFS= read -r -d '' f; do [ -e "$ROOT/$f" ] && printf '%s\0' "$f"; done |
  (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC" \
  || { fail "copying the source tree"; finish; }
# The extension's SQL scripts (listed before the build writes copies under
# debian/): the ones the Makefile installs (DATA_built and DATA: the install
# script of EXTVERSION and the upgrade scripts, generated or not), and every
# crm_native--*.sql the tree holds. An upgrade script must be in the package;
# a released version's install script kept in the tree (for the upgrade test)
# is not shipped, but the package must have an update path from that version.
# shellcheck disable=SC2016  # $(DATA_built) is make's, not the shell's
make_sql=$(make -s --no-print-directory -C "$SRC" PG_CONFIG="$PG_CONFIG" \
             --eval 'crm-print-data: ; @echo $(DATA_built) $(DATA)' crm-print-data 2>/dev/null |
           tr ' ' '\n' | sed -n 's|.*/||; /^crm_native--.*\.sql$/p' | sort -u)
tree_sql=$(cd "$SRC" && find . -name 'crm_native--*.sql' -type f -printf '%f\n' | sort -u)

key=$( { (cd "$SRC" && find . -type f -printf '%m %p\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum);
         dpkg-query -W debhelper postgresql-server-dev-all postgresql-server-dev-15 libphonenumber-dev \
           libicu-dev g++ clang-14 dpkg-dev 2>/dev/null; } | sha256sum | cut -c1-16)
CACHE=$CRM_RUN_DIR/deb-$key
if compgen -G "$CACHE/postgresql-15-crm-native_*.deb" >/dev/null; then
  pass "package built before from the same tree (cached: $CACHE)"
else
  rm -rf "$CRM_RUN_DIR"/deb-*
  echo "building the package (dpkg-buildpackage -b, log $CRM_RUN_DIR/build.log)"
  start=$SECONDS
  if (cd "$SRC" && DEB_BUILD_OPTIONS="noautodbgsym" dpkg-buildpackage -us -uc -b -j"$(nproc)") \
       >"$CRM_RUN_DIR/build.log" 2>&1; then
    mkdir -p "$CACHE" && mv "$SRC_PARENT"/*.deb "$CACHE"/
    pass "dpkg-buildpackage -b ($((SECONDS - start)) s)"
  else
    tail -40 "$CRM_RUN_DIR/build.log"
    fail "dpkg-buildpackage -b (log $CRM_RUN_DIR/build.log)"; finish
  fi
fi
DEB=$(compgen -G "$CACHE/postgresql-15-crm-native_*.deb" | head -1)
echo "package: $(basename "$DEB")"

# ---- 3. contents
EXTVERSION=$(sed -n 's/^EXTVERSION *= *//p' "$SRC/Makefile")
LIBDIR=$PG_SYS_PKGLIBDIR                    # /usr/lib/postgresql/15/lib
EXTDIR=$PG_SYS_SHAREDIR/extension           # /usr/share/postgresql/15/extension
listing=$(dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|')
want=("$LIBDIR/crm_native.so" "$EXTDIR/crm_native.control")
released=()
# shellcheck disable=SC2086  # one file name per word
for f in $(printf '%s\n' "crm_native--$EXTVERSION.sql" $make_sql $tree_sql | sort -u); do
  case $f in
    crm_native--*--*.sql) want+=("$EXTDIR/$f"); v=${f#crm_native--}; released+=("${v%%--*}") ;;
    "crm_native--$EXTVERSION.sql") want+=("$EXTDIR/$f") ;;
    *) v=${f#crm_native--}; released+=("${v%.sql}") ;;   # a released version's install script
  esac
done
mapfile -t released < <(printf '%s\n' "${released[@]}" | sed '/^$/d' | sort -u)
missing=()
for f in "${want[@]}"; do grep -qxF "$f" <<<"$listing" || missing+=("$f"); done
if [ ${#missing[@]} -eq 0 ]; then
  pass "the package holds $(printf '%s ' "${want[@]##*/}")"
else
  fail "the package lacks ${missing[*]}"
fi

PKGROOT=$CRM_RUN_DIR/pkgroot
rm -rf "$PKGROOT" && dpkg-deb -x "$DEB" "$PKGROOT"
if nm -D --defined-only "$PKGROOT$LIBDIR/crm_native.so" | grep -q guard_test; then
  fail "the packaged library exports a test-only symbol: $(nm -D --defined-only "$PKGROOT$LIBDIR/crm_native.so" | grep guard_test | tr '\n' ' ')"
else
  pass "no test-only symbol (guard_test) in the packaged library"
fi
depends=$(dpkg-deb -f "$DEB" Depends)
if grep -q 'libphonenumber' <<<"$depends" && grep -q 'libicu' <<<"$depends" && grep -q 'postgresql-15' <<<"$depends"; then
  pass "Depends: $depends"
else
  fail "Depends lacks libphonenumber, ICU or postgresql-15: $depends"
fi

control_version=$(sed -n "s/^ *default_version *= *'\(.*\)'.*/\1/p" "$PKGROOT$EXTDIR/crm_native.control")
deb_version=$(dpkg-deb -f "$DEB" Version)
upstream=${deb_version#*:}; upstream=${upstream%-*}
distribution=$(cd "$SRC" && dpkg-parsechangelog -S Distribution)
# version_matches VERSION WHAT: the package's upstream version is VERSION, or
# ahead of it while the release is being prepared (changelog UNRELEASED)
version_matches() {
  if [ "$upstream" = "$1" ]; then
    pass "package $deb_version: $2 is $1"
  elif [ "$distribution" = UNRELEASED ] && dpkg --compare-versions "$upstream" gt "$1"; then
    pass "package $deb_version: $2 is $1 (NOTE: release $upstream in preparation, debian/changelog UNRELEASED)"
  else
    fail "package $deb_version ($distribution): $2 is $1"
  fi
}
if [ "$control_version" = "$EXTVERSION" ]; then
  version_matches "$control_version" "the packaged control file's default_version"
else
  fail "the packaged control file says $control_version, the Makefile's EXTVERSION $EXTVERSION"
fi

# ---- 4. a throwaway server on a private PostgreSQL with the packaged files
crm_stage_postgres
# Only the package's crm_native: none of an earlier run's, nor one a
# `make install` put into the system PostgreSQL the stage was copied from.
rm -rf "$CRM_STAGE$LIBDIR"/crm_native.so "$CRM_STAGE$LIBDIR"/bitcode/crm_native* "$CRM_STAGE$EXTDIR"/crm_native[.-]*
dpkg-deb -x "$DEB" "$CRM_STAGE"
chmod -R a+rX "$CRM_STAGE"

if ! crm_cluster_start deb fsync=off synchronous_commit=off full_page_writes=off >"$CRM_RUN_DIR/cluster.log" 2>&1; then
  cat "$CRM_RUN_DIR/cluster.log"; fail "throwaway server did not start"; finish
fi
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
libdir=$(psql_q -At -d postgres -c "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")
if [ "$libdir" = "$CRM_STAGE$LIBDIR" ]; then
  pass "server (socket $PGHOST) loads extensions from the staged package: $libdir"
else
  fail "server's PKGLIBDIR is $libdir, not $CRM_STAGE$LIBDIR"
fi

for v in "${released[@]}"; do
  path=$(psql_q -At -d postgres -c "SELECT path FROM pg_extension_update_paths('crm_native')
                                     WHERE source = '$v' AND target = '$control_version'")
  if [ -n "$path" ]; then
    pass "update path from released $v: $path"
  else
    fail "no update path from released $v to $control_version in the package"
  fi
done

psql_q -d postgres -c "CREATE DATABASE smoke" >/dev/null
ref_ok=1
for f in "$SRC"/reference/*.sql; do
  PGOPTIONS="-c client_min_messages=warning" psql_q -d smoke -f "$f" >/dev/null || { ref_ok=0; fail "loading $(basename "$f")"; }
done
[ $ref_ok -eq 1 ] && pass "reference schema loaded"
if out=$(psql -X -v ON_ERROR_STOP=1 -d smoke -f "$SRC/debian/tests/smoke.sql" 2>&1) && tail -1 <<<"$out" | grep -qx 'smoke: ok'; then
  pass "smoke test: CREATE EXTENSION, install(), a chat creates its customer with keys and metrics, uninstall(), no _guard_test"
else
  echo "$out"
  fail "smoke test (debian/tests/smoke.sql)"
fi

info=$(psql_q -At -d postgres -c "SET client_min_messages = warning" -c "CREATE EXTENSION crm_native CASCADE" \
  -c "SELECT crm_native.version_info()" 2>&1)
reported=$(sed -n 's/.*"crm_native": "\([^"]*\)".*/\1/p' <<<"$info")
echo "version_info(): $info"
if [ -n "$reported" ] && [ "$reported" = "$control_version" ]; then
  version_matches "$reported" "version_info()'s crm_native"
else
  fail "version_info() reports '${reported}', the control file $control_version"
fi

crm_cluster_stop
finish
