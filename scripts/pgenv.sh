# Sourced by the test and benchmark commands: builds a private, staged copy of
# PostgreSQL 15 with crm_native installed into it, and runs throwaway
# clusters on it. Nothing is written to the system's PostgreSQL directories,
# so several checkouts can build and test side by side.
#
#   crm_stage                  build crm_native (with the test-only functions,
#                              CRM_TEST_FUNCTIONS=1) and install it into the stage
#   crm_cluster_start [opts]   initdb + start a fresh cluster; exports PG* vars
#   crm_cluster_stop           stop it (also done by an EXIT trap)
#
# The server listens on a Unix socket in a private directory only (no TCP).
# PostgreSQL refuses to run as root: as root, the server runs as "postgres".
#
# Set before sourcing / calling (scripts/memcheck.sh uses them for its own,
# instrumented stage): CRM_RUN_DIR (work directory, holds the stage and the
# clusters), CRM_BUILD_DIR (where crm_stage runs make; default the checkout),
# CRM_MAKE_ARGS (extra make variables, e.g. SANITIZE=address,undefined),
# CRM_SERVER_ENV (VAR=value words in the environment of the server only, not
# of initdb or the clients: LD_PRELOAD of the ASan runtime).

CRM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PG_CONFIG
# Work files live outside the checkout: the "postgres" user must be able to
# reach them, and a checkout under /root is not reachable.
CRM_RUN_DIR=${CRM_RUN_DIR:-/tmp/crm_native.$(printf '%s' "$CRM_ROOT" | md5sum | cut -c1-10)}
CRM_STAGE=$CRM_RUN_DIR/stage
PG_SYS_BINDIR=$($PG_CONFIG --bindir)
PG_SYS_SHAREDIR=$($PG_CONFIG --sharedir)
PG_SYS_PKGLIBDIR=$($PG_CONFIG --pkglibdir)
# PostgreSQL finds share/ and lib/ relative to its own binary, so a copy of
# the tree at $CRM_STAGE/<same paths> is a complete, relocated installation.
CRM_PGBIN=$CRM_STAGE$PG_SYS_BINDIR
CRM_PGXS_DIR=$(dirname "$(dirname "$(dirname "$($PG_CONFIG --pgxs)")")")   # .../lib/pgxs

crm_log() { printf '\033[1m[crm_native]\033[0m %s\n' "$*" >&2; }

crm_as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# crm_stage_postgres: the private copy of PostgreSQL 15 at $CRM_STAGE (once).
crm_stage_postgres() {
  mkdir -p "$CRM_RUN_DIR"
  chmod 755 "$CRM_RUN_DIR"
  local pgroot
  pgroot=$(dirname "$PG_SYS_BINDIR")          # /usr/lib/postgresql/15
  if [ ! -x "$CRM_PGBIN/postgres" ]; then
    crm_log "staging PostgreSQL from $pgroot and $PG_SYS_SHAREDIR"
    mkdir -p "$CRM_STAGE$(dirname "$pgroot")" "$CRM_STAGE$(dirname "$PG_SYS_SHAREDIR")"
    cp -a "$pgroot" "$CRM_STAGE$(dirname "$pgroot")/"
    cp -a "$PG_SYS_SHAREDIR" "$CRM_STAGE$(dirname "$PG_SYS_SHAREDIR")/"
    chmod -R a+rX "$CRM_STAGE"
  fi
}

crm_stage() {
  crm_stage_postgres
  crm_log "building crm_native"
  local builddir=${CRM_BUILD_DIR:-$CRM_ROOT}
  # The same variables for build and install: the Makefile relinks when they
  # differ from the last build's.
  local -a makeargs=(WERROR=1 CRM_TEST_FUNCTIONS=1 PG_CONFIG="$PG_CONFIG")
  # shellcheck disable=SC2206
  makeargs+=(${CRM_MAKE_ARGS:-})
  make -C "$builddir" -j"$(nproc)" "${makeargs[@]}" >"$CRM_RUN_DIR/build.log" 2>&1 \
    || { cat "$CRM_RUN_DIR/build.log" >&2; return 1; }
  if grep -E 'warning:' "$CRM_RUN_DIR/build.log" >&2; then crm_log "build has warnings"; return 1; fi
  make -C "$builddir" install DESTDIR="$CRM_STAGE" "${makeargs[@]}" >>"$CRM_RUN_DIR/build.log" 2>&1 \
    || { cat "$CRM_RUN_DIR/build.log" >&2; return 1; }
  chmod -R a+rX "$CRM_STAGE"
}

crm_cluster_stop() {
  if [ -n "${CRM_PGDATA:-}" ] && [ -f "$CRM_PGDATA/postmaster.pid" ]; then
    crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$CRM_PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# crm_cluster_start NAME [postgres -c settings...]
crm_cluster_start() {
  local name=$1; shift
  CRM_CLUSTER_DIR=$CRM_RUN_DIR/cluster-$name
  CRM_PGDATA=$CRM_CLUSTER_DIR/data
  crm_cluster_stop
  rm -rf "$CRM_CLUSTER_DIR"
  mkdir -p "$CRM_CLUSTER_DIR/sock"
  chmod 755 "$CRM_CLUSTER_DIR"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$CRM_CLUSTER_DIR"
  crm_as_server_user "$CRM_PGBIN/initdb" -D "$CRM_PGDATA" -A trust -U postgres -E UTF8 \
    --locale=C.UTF-8 >"$CRM_CLUSTER_DIR/initdb.log" 2>&1 \
    || { cat "$CRM_CLUSTER_DIR/initdb.log" >&2; return 1; }
  local opts="-c listen_addresses='' -c unix_socket_directories='$CRM_CLUSTER_DIR/sock' -p 5432"
  local s
  for s in "$@"; do opts="$opts -c $s"; done
  # shellcheck disable=SC2086
  crm_as_server_user env ${CRM_SERVER_ENV:-} "$CRM_PGBIN/pg_ctl" -D "$CRM_PGDATA" -o "$opts" -l "$CRM_CLUSTER_DIR/server.log" -w -t 60 start >/dev/null \
    || { cat "$CRM_CLUSTER_DIR/server.log" >&2; return 1; }
  export PGHOST=$CRM_CLUSTER_DIR/sock PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
  trap crm_cluster_stop EXIT
  crm_log "cluster '$name' up (socket $PGHOST)"
}
