#!/usr/bin/env bash
# The real services scalepy's tests and demo run against:
#
#   PostgreSQL     127.0.0.1:5432, database "test", roles postgres and root (no password over TCP)
#   Redis          127.0.0.1:6379, no persistence
#   Redis Cluster  127.0.0.1:7000-7002, three masters, no persistence
#
# usage: scripts/services.sh [start|stop|status]
#
#   start   (default) start whatever does not answer, installing PostgreSQL and Redis with
#           apt-get when they are missing, and wait until everything answers. A fast no-op
#           when everything already answers; a broken or half-made cluster is recreated.
#   stop    stop the cluster nodes, and PostgreSQL / Redis only if this script started them.
#   status  print each service and whether it answers; exit 1 if any does not.
#
# Environment:
#   SCALEPY_SERVICES_DIR      cluster data and logs, and the record of what this script
#                             started (default: ${TMPDIR:-/tmp}/scalepy-cluster)
#   SCALEPY_SERVICES_TIMEOUT  seconds to wait for each service (default: 30)
set -euo pipefail

readonly PG_HOST=127.0.0.1 PG_PORT=5432 PG_DB=test
readonly PG_ROLES=(postgres root)
readonly REDIS_HOST=127.0.0.1 REDIS_PORT=6379
readonly CLUSTER_PORTS=(7000 7001 7002)
readonly STATE_DIR=${SCALEPY_SERVICES_DIR:-${TMPDIR:-/tmp}/scalepy-cluster}
readonly STATE_FILE=$STATE_DIR/started
readonly TIMEOUT=${SCALEPY_SERVICES_TIMEOUT:-30}

say() { printf 'services: %s\n' "$*"; }
die() {
    printf 'services: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------- helpers

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "root (or sudo) is needed to run: $*"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null || die "$* not installed and apt-get is not available: install by hand"
    say "installing $* with apt-get"
    if ((!apt_updated)); then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null 9>&-
}

# wait_until DESCRIPTION LOGFILE COMMAND...: retry COMMAND until it succeeds or TIMEOUT.
wait_until() {
    local what=$1 log=$2
    shift 2
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            printf 'services: error: %s did not come up within %ss\n' "$what" "$TIMEOUT" >&2
            if [[ -n $log ]] && as_root test -r "$log"; then
                printf -- '--- last lines of %s ---\n' "$log" >&2
                as_root tail -n 30 "$log" >&2
            fi
            exit 1
        fi
        sleep 0.2
    done
}

# The record of what this script started: one line per service, e.g. "postgres 15 main".
record() {
    mkdir -p "$STATE_DIR"
    grep -qxF -- "$*" "$STATE_FILE" 2>/dev/null || printf '%s\n' "$*" >>"$STATE_FILE"
}
recorded() { grep -E "^$1( |\$)" "$STATE_FILE" 2>/dev/null | head -n 1 || true; }
forget() {
    [[ -f $STATE_FILE ]] || return 0
    grep -vE "^$1( |\$)" "$STATE_FILE" >"$STATE_FILE.new" || true
    mv "$STATE_FILE.new" "$STATE_FILE"
}

# Serialise concurrent runs (several test runs may start services at once). The lock is fd 9:
# every daemon this script starts gets "9>&-" so that it does not keep holding the lock.
lock() {
    mkdir -p "$STATE_DIR"
    if command -v flock >/dev/null; then
        exec 9>"$STATE_DIR/.lock"
        flock -w $((TIMEOUT * 4)) 9 || die "another services.sh still holds $STATE_DIR/.lock"
    fi
}

# ---------------------------------------------------------------------------- PostgreSQL

pg_answers() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }

pg_can_connect() {
    PGCONNECT_TIMEOUT=5 psql -w -X -h "$PG_HOST" -p "$PG_PORT" -U "$1" -d "$PG_DB" \
        -Atqc 'select 1' >/dev/null 2>&1
}

# Run SQL as the postgres superuser: over TCP when that is trusted, else on the local socket.
pg_admin_sql() {
    if PGCONNECT_TIMEOUT=5 psql -w -X -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
        -Atqc 'select 1' >/dev/null 2>&1; then
        psql -w -X -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
            -v ON_ERROR_STOP=1 -Atqc "$1"
    else
        (cd / && as_root runuser -u postgres -- psql -X -p "$PG_PORT" -d postgres \
            -v ON_ERROR_STOP=1 -Atqc "$1")
    fi
}

# Only on a cluster this script installed or created: trust TCP from this host.
pg_trust_local_tcp() {
    local hba=/etc/postgresql/$1/$2/pg_hba.conf marker='# scalepy: trust local TCP'
    if as_root grep -qF "$marker" "$hba"; then
        return 0
    fi
    say "postgres: trusting TCP connections from 127.0.0.1 and ::1 in $hba (local tests)"
    as_root sed -i "1i $marker (added by scripts/services.sh)\\
host all all 127.0.0.1/32 trust\\
host all all ::1/128 trust" "$hba"
}

pg_ensure_db_and_roles() {
    local role ok=1
    for role in "${PG_ROLES[@]}"; do
        pg_can_connect "$role" || ok=0
    done
    if ((ok)); then
        return 0
    fi
    for role in "${PG_ROLES[@]}"; do
        if [[ $(pg_admin_sql "select 1 from pg_roles where rolname = '$role'") != 1 ]]; then
            say "postgres: creating role $role"
            pg_admin_sql "create role \"$role\" superuser login" >/dev/null
        fi
    done
    if [[ $(pg_admin_sql "select 1 from pg_database where datname = '$PG_DB'") != 1 ]]; then
        say "postgres: creating database $PG_DB"
        pg_admin_sql "create database \"$PG_DB\"" >/dev/null
    fi
    for role in "${PG_ROLES[@]}"; do
        pg_can_connect "$role" || die "cannot connect to database $PG_DB on $PG_HOST:$PG_PORT as $role" \
            "without a password: allow 'trust' for 127.0.0.1 in pg_hba.conf"
    done
}

start_postgres() {
    if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
        apt_install postgresql-client
    fi
    if pg_answers; then
        say "postgres: $PG_HOST:$PG_PORT answers"
        pg_ensure_db_and_roles
        return 0
    fi
    local ours=0 ver='' cluster='' log
    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
        || ! command -v pg_ctlcluster >/dev/null; then
        apt_install postgresql
        ours=1
    fi
    read -r ver cluster < <(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }') || true
    if [[ -z $ver ]]; then
        ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
        cluster=main
        if [[ -e /etc/postgresql/$ver/main ]]; then
            cluster=scalepy
        fi
        say "postgres: creating cluster $ver/$cluster on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$ver" "$cluster" >/dev/null
        ours=1
    fi
    if ((ours)); then
        pg_trust_local_tcp "$ver" "$cluster"
    fi
    log=/var/log/postgresql/postgresql-$ver-$cluster.log
    if as_root pg_ctlcluster "$ver" "$cluster" status >/dev/null 2>&1; then
        # Running (e.g. started by the package install) but not answering yet.
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" reload 9>&-
    else
        say "postgres: starting cluster $ver/$cluster"
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start 9>&- \
            || die "pg_ctlcluster start failed; see $log"
        record postgres "$ver" "$cluster"
    fi
    wait_until "postgres on $PG_HOST:$PG_PORT" "$log" pg_answers
    pg_ensure_db_and_roles
    say "postgres: $PG_HOST:$PG_PORT answers"
}

stop_postgres() {
    local ver cluster
    read -r _ ver cluster <<<"$(recorded postgres)" || true
    if [[ -z ${ver:-} ]]; then
        say "postgres: not started by this script, left alone"
        return 0
    fi
    say "postgres: stopping cluster $ver/$cluster"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" stop || true
    forget postgres
}

# ---------------------------------------------------------------------------- Redis

rcli() {
    local port=$1
    shift
    timeout 5 redis-cli -h "$REDIS_HOST" -p "$port" "$@"
}

redis_answers() { [[ $(rcli "$1" ping 2>/dev/null) == PONG ]]; }

# Shut down the Redis on PORT; fall back to its pid file. Waits until it stops answering.
redis_shutdown() {
    local port=$1 pidfile=$2 pid
    rcli "$port" shutdown nosave >/dev/null 2>&1 || true
    if [[ -n $pidfile && -r $pidfile ]]; then
        pid=$(cat "$pidfile")
        # Only if that pid is still a redis-server on this port (pids get reused).
        if [[ -r /proc/$pid/cmdline ]] && grep -qa "redis-server.*:$port" "/proc/$pid/cmdline"; then
            kill "$pid" 2>/dev/null || true
        fi
    fi
    local deadline=$((SECONDS + TIMEOUT))
    while redis_answers "$port"; do
        ((SECONDS < deadline)) || die "redis on port $port did not stop"
        sleep 0.2
    done
}

start_redis() {
    command -v redis-cli >/dev/null || apt_install redis-tools
    if redis_answers "$REDIS_PORT"; then
        say "redis: $REDIS_HOST:$REDIS_PORT answers"
        return 0
    fi
    command -v redis-server >/dev/null || apt_install redis-server
    if ! redis_answers "$REDIS_PORT"; then # the package install may have started it
        local dir=$STATE_DIR/redis-$REDIS_PORT
        mkdir -p "$dir"
        say "redis: starting $REDIS_HOST:$REDIS_PORT (no persistence, log in $dir)"
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" \
            --pidfile "$dir/redis.pid" 9>&-
        record redis "$REDIS_PORT"
        wait_until "redis on $REDIS_HOST:$REDIS_PORT" "$dir/redis.log" redis_answers "$REDIS_PORT"
    fi
    say "redis: $REDIS_HOST:$REDIS_PORT answers"
}

stop_redis() {
    if [[ -z $(recorded redis) ]]; then
        say "redis: not started by this script, left alone"
        return 0
    fi
    say "redis: stopping $REDIS_HOST:$REDIS_PORT"
    redis_shutdown "$REDIS_PORT" "$STATE_DIR/redis-$REDIS_PORT/redis.pid"
    forget redis
}

# ---------------------------------------------------------------------------- Redis Cluster

# Healthy: cluster_state:ok, all 16384 slots served, exactly our three masters.
cluster_node_ok() {
    local info
    info=$(rcli "$1" cluster info 2>/dev/null | tr -d '\r') || return 1
    grep -qx 'cluster_state:ok' <<<"$info" \
        && grep -qx 'cluster_slots_ok:16384' <<<"$info" \
        && grep -qx "cluster_known_nodes:${#CLUSTER_PORTS[@]}" <<<"$info" \
        && grep -qx "cluster_size:${#CLUSTER_PORTS[@]}" <<<"$info"
}

cluster_ok() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        cluster_node_ok "$port" || return 1
    done
}

stop_cluster() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        redis_shutdown "$port" "$STATE_DIR/$port/redis.pid"
        rm -rf "${STATE_DIR:?}/$port"
    done
    rm -f "$STATE_DIR/cluster-create.log"
    forget cluster
}

start_cluster() {
    local ports=${CLUSTER_PORTS[0]}-${CLUSTER_PORTS[-1]} port dir
    if cluster_ok; then
        say "redis cluster: 127.0.0.1:$ports ok"
        return 0
    fi
    for port in "${CLUSTER_PORTS[@]}"; do
        if redis_answers "$port"; then
            say "redis cluster: nodes answer but the cluster is not healthy; recreating it"
            break
        fi
    done
    stop_cluster
    command -v redis-server >/dev/null || apt_install redis-server
    say "redis cluster: starting nodes on 127.0.0.1:$ports (no persistence, data in $STATE_DIR)"
    for port in "${CLUSTER_PORTS[@]}"; do
        dir=$STATE_DIR/$port
        mkdir -p "$dir"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" \
            --pidfile "$dir/redis.pid" 9>&-
    done
    record cluster "${CLUSTER_PORTS[@]}"
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_until "redis cluster node $port" "$STATE_DIR/$port/redis.log" redis_answers "$port"
    done
    local nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do
        nodes+=("127.0.0.1:$port")
    done
    say "redis cluster: creating (${#nodes[@]} masters, no replicas)"
    if ! timeout "$TIMEOUT" redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 \
        --cluster-yes >"$STATE_DIR/cluster-create.log" 2>&1; then
        cat "$STATE_DIR/cluster-create.log" >&2
        die "redis-cli --cluster create failed"
    fi
    wait_until "redis cluster state ok" "$STATE_DIR/${CLUSTER_PORTS[0]}/redis.log" cluster_ok
    say "redis cluster: 127.0.0.1:$ports ok"
}

# ---------------------------------------------------------------------------- commands

cmd_start() {
    lock
    start_postgres
    start_redis
    start_cluster
}

cmd_stop() {
    lock
    if command -v redis-cli >/dev/null; then
        say "redis cluster: stopping nodes on ${CLUSTER_PORTS[*]}"
        stop_cluster
        stop_redis
    fi
    stop_postgres
}

started_by_us() {
    if [[ -n $(recorded "$1") ]]; then
        printf ' (started by this script)'
    fi
}

cmd_status() {
    local failed=0 port state
    if command -v pg_isready >/dev/null && pg_answers; then
        state="answers$(started_by_us postgres)"
    else
        state='not answering'
        failed=1
    fi
    printf '%-14s %-22s %s\n' postgres "$PG_HOST:$PG_PORT" "$state"
    if command -v redis-cli >/dev/null && redis_answers "$REDIS_PORT"; then
        state="answers$(started_by_us redis)"
    else
        state='not answering'
        failed=1
    fi
    printf '%-14s %-22s %s\n' redis "$REDIS_HOST:$REDIS_PORT" "$state"
    for port in "${CLUSTER_PORTS[@]}"; do
        if ! command -v redis-cli >/dev/null || ! redis_answers "$port"; then
            state='not answering'
            failed=1
        elif cluster_node_ok "$port"; then
            state='answers, cluster ok'
        else
            state="answers, cluster not ok ($(rcli "$port" cluster info 2>/dev/null \
                | tr -d '\r' | grep '^cluster_state:' || echo 'not in cluster mode'))"
            failed=1
        fi
        printf '%-14s %-22s %s\n' redis-cluster "127.0.0.1:$port" "$state"
    done
    return "$failed"
}

case ${1:-start} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" ;;
    *) die "unknown command '$1' (expected start, stop or status)" ;;
esac
