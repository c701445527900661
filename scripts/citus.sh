# Sourced after scripts/pgenv.sh by test/run.d/citus.sh: Citus for the staged
# PostgreSQL 15, and a local Citus cluster (a coordinator and two workers).
#
#   citus_find            where Citus comes from: sets CITUS_SOURCE to
#                         "tarball:<path>" or "installed", or returns 1 with
#                         the reason in CITUS_WHY
#   citus_build           build Citus from the tarball once into a cache
#                         directory outside the checkout (keyed by the
#                         tarball's checksum and the PostgreSQL version)
#   citus_stage           put Citus into $CRM_STAGE (build first if needed)
#   citus_cluster_start   initdb + start coordinator and 2 workers on free
#                         127.0.0.1 ports, CREATE EXTENSION citus, add the nodes
#   citus_cluster_stop    stop the three servers (also done by an EXIT trap)
#   citus_psql NODE ...   psql on node coord|w1|w2 (database $CITUS_DB)
#
# Where Citus comes from, in this order: $CITUS_TARBALL when set; a Citus
# installed into the system's PostgreSQL 15 (citus.so in its pkglibdir); the
# project's vendored tarball $CRM_ROOT/../shared/vendor/citus-13.2.2.tar.gz,
# else /work/shared/vendor/citus-13.2.2.tar.gz (both outside the repository;
# upstream: https://github.com/citusdata/citus/archive/refs/tags/v13.2.2.tar.gz,
# named by CITUS_TARBALL; docs/citus.md). None of its code is copied into
# the project; the tarball is unpacked and built under the cache directory.
#
# Settings: CITUS_CACHE_ROOT (default /var/cache/crm_native when writable,
# else $CRM_RUN_DIR/../crm_native-cache), CITUS_DB (default postgres).

CITUS_VERSION=13.2.2
CITUS_DB=${CITUS_DB:-postgres}

citus_log() { printf '\033[1m[citus]\033[0m %s\n' "$*" >&2; }

citus_find() {
  CITUS_WHY=""
  if [ -n "${CITUS_TARBALL:-}" ]; then
    if [ -r "$CITUS_TARBALL" ]; then CITUS_SOURCE="tarball:$CITUS_TARBALL"; return 0; fi
    CITUS_WHY="CITUS_TARBALL=$CITUS_TARBALL is not readable"
    return 1
  fi
  if [ -f "$PG_SYS_PKGLIBDIR/citus.so" ] && [ -f "$PG_SYS_SHAREDIR/extension/citus.control" ]; then
    CITUS_SOURCE="installed"; return 0
  fi
  local t
  for t in "$CRM_ROOT/../shared/vendor/citus-$CITUS_VERSION.tar.gz" "/work/shared/vendor/citus-$CITUS_VERSION.tar.gz"; do
    if [ -r "$t" ]; then CITUS_SOURCE="tarball:$(cd "$(dirname "$t")" && pwd)/$(basename "$t")"; return 0; fi
  done
  CITUS_WHY="no Citus in $PG_SYS_PKGLIBDIR, \$CITUS_TARBALL unset, and no citus-$CITUS_VERSION.tar.gz in $CRM_ROOT/../shared/vendor or /work/shared/vendor; set CITUS_TARBALL to Citus $CITUS_VERSION's source tarball, docs/citus.md \"The check\""
  return 1
}

citus_cache_root() {
  if [ -n "${CITUS_CACHE_ROOT:-}" ]; then echo "$CITUS_CACHE_ROOT"; return; fi
  if mkdir -p /var/cache/crm_native 2>/dev/null && [ -w /var/cache/crm_native ]; then
    echo /var/cache/crm_native
  else
    echo "$(dirname "$CRM_RUN_DIR")/crm_native-cache.$(id -u)"
  fi
}

# citus_build: sets CITUS_DEST, the DESTDIR tree of "make install" (same paths
# as the system PostgreSQL), building it unless the cache has it.
citus_build() {
  local tarball=${CITUS_SOURCE#tarball:}
  local sum pgver key root
  sum=$(sha256sum "$tarball" | cut -c1-16)
  pgver=$("$PG_CONFIG" --version | tr -c 'A-Za-z0-9.\n' '_')
  key="citus-$CITUS_VERSION-$sum-${pgver}"
  root=$(citus_cache_root)
  mkdir -p "$root"
  CITUS_DEST=$root/$key/dest
  # One build at a time per cache (several checkouts may share it).
  exec {citus_lock_fd}>"$root/$key.lock"
  flock "$citus_lock_fd"
  if [ -f "$root/$key/ok" ]; then
    citus_log "using cached build $root/$key"
    flock -u "$citus_lock_fd"; exec {citus_lock_fd}>&-
    return 0
  fi
  citus_log "building Citus $CITUS_VERSION from $tarball into $root/$key (a few minutes, once)"
  local t0=$SECONDS work=$root/$key.build
  rm -rf "$work" "$root/$key"
  mkdir -p "$work" "$root/$key"
  local log=$root/$key/build.log
  (
    set -e
    cd "$work"
    tar xzf "$tarball"
    cd "citus-$CITUS_VERSION"
    # PostgreSQL 15.19+ exports have_createdb_privilege() (commands/dbcommands.h);
    # Citus 13.2.2's compat header defines a static inline of the same name.
    # Remove it from this build copy when the server declares it.
    if grep -q 'have_createdb_privilege' "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"; then
      perl -0pi -e 's/static inline bool\s*\nhave_createdb_privilege\(void\)\s*\n\{.*?\n\}\n//s' \
        src/include/pg_version_compat.h
      if grep -q '^have_createdb_privilege(void)' src/include/pg_version_compat.h; then
        echo "could not remove have_createdb_privilege() from pg_version_compat.h"; exit 1
      fi
    fi
    PG_CONFIG="$PG_CONFIG" ./configure --without-libcurl
    # with_llvm=no: no JIT bitcode (the tests never JIT)
    make -j"$(nproc)" with_llvm=no
    make install DESTDIR="$CITUS_DEST" with_llvm=no
  ) >"$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    tail -40 "$log" >&2
    citus_log "Citus build failed (log: $log)"
    flock -u "$citus_lock_fd"; exec {citus_lock_fd}>&-
    return 1
  fi
  rm -rf "$work"
  echo "$tarball $(date -u +%FT%TZ) $((SECONDS - t0))s" >"$root/$key/ok"
  citus_log "Citus built in $((SECONDS - t0)) s"
  flock -u "$citus_lock_fd"; exec {citus_lock_fd}>&-
}

citus_stage() {
  crm_stage_postgres
  citus_find || return 1
  if [ "$CITUS_SOURCE" = installed ]; then
    # what "make install" of Citus puts there: citus*.so, citus_decoders/,
    # the citus and citus_columnar extensions and columnar's scripts
    cp -a "$PG_SYS_PKGLIBDIR"/citus* "$CRM_STAGE$PG_SYS_PKGLIBDIR/"
    cp -a "$PG_SYS_SHAREDIR"/extension/citus* "$PG_SYS_SHAREDIR"/extension/columnar* "$CRM_STAGE$PG_SYS_SHAREDIR/extension/" 2>/dev/null
    [ -f "$CRM_STAGE$PG_SYS_SHAREDIR/extension/citus.control" ] || { citus_log "citus.control missing"; return 1; }
  else
    citus_build || return 1
    # The DESTDIR tree has the system's paths, like the stage.
    cp -a "$CITUS_DEST"/. "$CRM_STAGE"/
  fi
  chmod -R a+rX "$CRM_STAGE"
  [ -f "$CRM_STAGE$PG_SYS_PKGLIBDIR/citus.so" ] || { citus_log "citus.so missing from the stage"; return 1; }
}

citus_free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

CITUS_NODES=(coord w1 w2)

citus_cluster_stop() {
  local n
  for n in "${CITUS_NODES[@]}"; do
    local d=${CITUS_DIR:-/nonexistent}/$n/data
    if [ -f "$d/postmaster.pid" ]; then
      crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
    fi
  done
}

citus_port() {
  case $1 in coord) echo "$CITUS_COORD_PORT" ;; w1) echo "$CITUS_W1_PORT" ;; w2) echo "$CITUS_W2_PORT" ;; esac
}

# citus_psql NODE [psql args...]: TCP to 127.0.0.1 (as Citus itself connects).
citus_psql() {
  local node=$1; shift
  "$CRM_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(citus_port "$node")" -U postgres -d "$CITUS_DB" "$@"
}

# citus_cluster_start [postgres -c settings...]
citus_cluster_start() {
  CITUS_DIR=$CRM_RUN_DIR/citus
  citus_cluster_stop
  rm -rf "$CITUS_DIR"
  mkdir -p "$CITUS_DIR"
  chmod 755 "$CITUS_DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$CITUS_DIR"
  CITUS_COORD_PORT=$(citus_free_port)
  CITUS_W1_PORT=$(citus_free_port)
  while [ "$CITUS_W1_PORT" = "$CITUS_COORD_PORT" ]; do CITUS_W1_PORT=$(citus_free_port); done
  CITUS_W2_PORT=$(citus_free_port)
  while [ "$CITUS_W2_PORT" = "$CITUS_COORD_PORT" ] || [ "$CITUS_W2_PORT" = "$CITUS_W1_PORT" ]; do
    CITUS_W2_PORT=$(citus_free_port)
  done
  export CITUS_COORD_PORT CITUS_W1_PORT CITUS_W2_PORT CITUS_DIR
  trap citus_cluster_stop EXIT
  local n
  for n in "${CITUS_NODES[@]}"; do
    local d=$CITUS_DIR/$n
    crm_as_server_user mkdir -p "$d/sock"
    crm_as_server_user "$CRM_PGBIN/initdb" -D "$d/data" -A trust -U postgres -E UTF8 \
      --locale=C.UTF-8 >"$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; return 1; }
    # trust for 127.0.0.1 only: the nodes connect to each other over TCP,
    # as postgres and as the application role.
    crm_as_server_user sh -c "printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' >'$d/data/pg_hba.conf'"
    local opts="-c listen_addresses=127.0.0.1 -c port=$(citus_port "$n") -c unix_socket_directories='$d/sock'"
    opts="$opts -c shared_preload_libraries=citus -c citus.enable_unsafe_triggers=on"
    opts="$opts -c max_connections=100 -c max_prepared_transactions=100"
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    opts="$opts -c wal_level=logical -c max_wal_senders=10 -c max_replication_slots=10"
    local s
    for s in "$@"; do opts="$opts -c $s"; done
    crm_as_server_user "$CRM_PGBIN/pg_ctl" -D "$d/data" -o "$opts" -l "$d/server.log" -w -t 60 start >/dev/null \
      || { cat "$d/server.log" >&2; return 1; }
  done
  citus_setup_db "$CITUS_DB" || return 1
  citus_log "Citus cluster up: coordinator 127.0.0.1:$CITUS_COORD_PORT, workers :$CITUS_W1_PORT :$CITUS_W2_PORT ($CITUS_DIR)"
}

# citus_setup_db DB: CREATE EXTENSION citus on every node's DB, register the
# nodes (a Citus cluster is per database).
citus_setup_db() {
  local db=$1 n
  for n in "${CITUS_NODES[@]}"; do
    if [ "$db" != postgres ]; then
      CITUS_DB=postgres citus_psql "$n" -c "CREATE DATABASE $db" || return 1
    fi
    CITUS_DB=$db citus_psql "$n" -c "CREATE EXTENSION IF NOT EXISTS citus" || return 1
  done
  CITUS_DB=$db citus_psql coord <<EOF || return 1
SELECT citus_set_coordinator_host('127.0.0.1', $CITUS_COORD_PORT);
SELECT citus_add_node('127.0.0.1', $CITUS_W1_PORT);
SELECT citus_add_node('127.0.0.1', $CITUS_W2_PORT);
EOF
}
