#!/usr/bin/env bash
# Installs the Debian packages crm_native needs to build, test and benchmark,
# when any is missing. Safe to run again; does nothing when all are present.
set -euo pipefail

PACKAGES=(
  build-essential g++ clang clang-14 libclang-rt-14-dev llvm-14-dev pkg-config make git
  postgresql-15 postgresql-client-15 postgresql-server-dev-15 postgresql-contrib
  postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  libphonenumber-dev libprotobuf-dev libicu-dev libboost-test-dev
  meson ninja-build gnuplot-nox python3
  debhelper postgresql-server-dev-all
  postgresql-15-cron
  # building Citus from ../shared/vendor for test/run.d/citus.sh (scripts/citus.sh)
  liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libpam0g-dev libssl-dev libreadline-dev libxslt1-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# postgresql-common would create and start a "main" cluster; we never use it.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/crm_native.conf >/dev/null
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
