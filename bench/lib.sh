# shellcheck shell=bash
# What bench/run.sh, bench/sharded.sh and bench/scatter.sh share: logging, running as the
# postgres account, the temp dir and the cleanup that stops everything by PID,
# free ports, starting Postgres primaries and streaming replicas, starting
# shardgate, pgbench in the background, means and ratios, and writing the
# report. Sourced, not run; the sourcing script sets `set -euo pipefail` and
# LOG_TAG (the word in its log lines) first.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_DIR="$BENCH_DIR/results"

export PGPASSWORD=shop # the role every benchmark connects as

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# Runs a command as the postgres account when we are root (Postgres and
# PgBouncer refuse to run as root).
as_pg() {
    if [ "$IS_ROOT" = 1 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

check_pg_bin() {
    local b
    for b in initdb pg_ctl pg_basebackup psql pgbench; do
        [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b not found (apt-get install postgresql-15, or set PG_BIN)"
    done
}

build_shardgate() { # sets SHARDGATE
    log "building shardgate (cargo build --release -p router)"
    (cd "$ROOT_DIR" && cargo build --release -q -p router) || die "cargo build failed"
    SHARDGATE="$ROOT_DIR/target/release/shardgate"
    [ -x "$SHARDGATE" ] || die "$SHARDGATE not built"
}

# --- temp dir and cleanup ----------------------------------------------------------
SHARDGATE_PID=""
PGBOUNCER_PID=""
PGBENCH_PID=""
PG_PIDS=() # postmaster PIDs of running servers, stopped in reverse order

stop_pid() { # pid signal: signal it and wait up to 15 s, then SIGKILL
    local pid=$1 sig=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "pid $pid still running after SIG$sig; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    [ -n "$PGBENCH_PID" ] && stop_pid "$PGBENCH_PID" TERM
    [ -n "$SHARDGATE_PID" ] && stop_pid "$SHARDGATE_PID" TERM
    [ -n "$PGBOUNCER_PID" ] && stop_pid "$PGBOUNCER_PID" INT
    # Postgres: SIGINT to the postmaster is a fast shutdown.
    for ((i = ${#PG_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PG_PIDS[$i]}" INT
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

make_tmp() { # name: sets TMP (owned by postgres when root) and SHARDGATE_LOG, arms the cleanup
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    chmod 755 "$TMP"
    if [ "$IS_ROOT" = 1 ]; then chown postgres:postgres "$TMP"; fi
    SHARDGATE_LOG=${SHARDGATE_LOG:-$TMP/shardgate.log}
    trap cleanup EXIT
    trap 'log "interrupted: stopping everything"; exit 130' INT
    trap 'log "terminated: stopping everything"; exit 143' TERM
}

USED_PORTS=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
            USED_PORTS="$USED_PORTS$p "
            echo "$p"
            return
        fi
    done
}

# --- Postgres ------------------------------------------------------------------------
# psql as the postgres superuser (trust over TCP from 127.0.0.1).
pg_sql() { # port sql [db]
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d "${3:-postgres}" \
        -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"
}

# initdb of a primary's data dir (no port yet: append "port = N" to its
# postgresql.conf): the bench settings, trust for postgres and replication,
# scram-sha-256 for everyone else, all over TCP from 127.0.0.1.
init_pg() { # datadir
    as_pg "$PG_BIN/initdb" -N -A trust -U postgres --locale=C -E UTF8 -D "$1" >"$TMP/initdb.log" 2>&1 \
        || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
    cat >>"$1/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 128MB
max_connections = 200
wal_level = replica
max_wal_senders = 10
hot_standby = on
logging_collector = off
password_encryption = 'scram-sha-256'
EOF
    cat >"$1/pg_hba.conf" <<EOF
local all all trust
host replication all 127.0.0.1/32 trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
EOF
}

create_shop_db() { # port: role shop (password shop) and its database shop
    pg_sql "$1" "CREATE ROLE shop LOGIN PASSWORD 'shop'"
    pg_sql "$1" "CREATE DATABASE shop OWNER shop"
}

make_template() { # datadir: an initdb with role and database shop, stopped, to copy per server
    init_pg "$1"
    local port pid
    port=$(free_port)
    echo "port = $port" >>"$1/postgresql.conf"
    as_pg "$PG_BIN/pg_ctl" start -w -t 120 -D "$1" -l "$1.log" >/dev/null \
        || { tail -n 30 "$1.log" >&2 || true; die "pg_ctl start template failed"; }
    pid=$(head -n 1 "$1/postmaster.pid")
    PG_PIDS+=("$pid")
    create_shop_db "$port"
    as_pg "$PG_BIN/pg_ctl" stop -w -m fast -D "$1" >/dev/null
    unset 'PG_PIDS[-1]'
}

start_pg() { # datadir
    as_pg "$PG_BIN/pg_ctl" start -w -t 120 -D "$1" -l "$1/server.log" >/dev/null \
        || { tail -n 30 "$1/server.log" >&2 || true; die "pg_ctl start $1 failed"; }
    PG_PIDS+=("$(head -n 1 "$1/postmaster.pid")")
}

# A streaming replica of the primary on primary_port, started on replica_port;
# name (may be empty) tells the pg_basebackup logs and errors apart.
start_replica() { # primary_port replica_port datadir name
    local log="$TMP/basebackup${4:+-$4}.log"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$1" -U postgres \
        -R -X stream -c fast -D "$3" >"$log" 2>&1 \
        || { cat "$log" >&2; die "pg_basebackup ${4:+$4 }failed"; }
    echo "port = $2" >>"$3/postgresql.conf"
    start_pg "$3"
}

wait_replica() { # primary_port replica_port what: until the replica replayed the primary's current WAL
    local lsn caught i
    lsn=$(pg_sql "$1" "SELECT pg_current_wal_lsn()")
    for i in $(seq 1 600); do
        caught=$(pg_sql "$2" "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" || true)
        [ "$caught" = t ] && break
        [ "$i" = 600 ] && die "$3 did not reach $lsn in 60 s"
        sleep 0.1
    done
    return 0
}

# --- shardgate -------------------------------------------------------------------------
# The part of shardgate.toml both benches share, up to the [[shards]]; the
# listen port is SG_PORT.
shardgate_toml_head() {
    cat <<EOF
[proxy]
listen = "127.0.0.1:$SG_PORT"
pool_mode = "session"
pool_size = 40

[admin]
user = "admin"
password = "admin"

[[users]]
name = "shop"
password = "shop"

[backend]
user = "shop"
password = "shop"
database = "shop"

EOF
}

start_shardgate() { # checks and serves $TMP/shardgate.toml until it answers; sets SHARDGATE_PID
    "$SHARDGATE" check --config "$TMP/shardgate.toml" >/dev/null || die "shardgate check failed"
    log "starting shardgate on port $SG_PORT (log: $SHARDGATE_LOG)"
    NO_COLOR=1 "$SHARDGATE" serve --config "$TMP/shardgate.toml" >"$SHARDGATE_LOG" 2>&1 &
    SHARDGATE_PID=$!
    if ! wait_ready shardgate "$SG_PORT"; then
        log "shardgate did not answer SELECT 1; its log:"
        tail -n 40 "$SHARDGATE_LOG" >&2 || true
        die "shardgate not ready"
    fi
}

shop_sql() { # port: psql as shop, SQL on stdin or -c/-f in the remaining args
    local port=$1
    shift
    "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U shop -d shop -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

wait_ready() { # name port: until SELECT 1 as shop succeeds there (10 s)
    local i
    for i in $(seq 1 100); do
        "$PG_BIN/psql" -h 127.0.0.1 -p "$2" -U shop -d shop -X -q -A -t -c "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# --- pgbench and the numbers -------------------------------------------------------------
# pgbench in the background (so the trap can stop it), output to out; sets PGBENCH_RC.
pgbench_bg() { # out pgbench-args...
    local out=$1
    shift
    "$PG_BIN/pgbench" "$@" >"$out" 2>&1 &
    PGBENCH_PID=$!
    PGBENCH_RC=0
    wait "$PGBENCH_PID" || PGBENCH_RC=$?
    PGBENCH_PID=""
}

report_pgbench_failure() { # out target message: to stderr, with shardgate's log for its runs
    {
        log "$3"
        sed 's/^/    /' "$1" | tail -n 25
        if [ "$2" = shardgate ]; then
            log "tail of the shardgate log ($SHARDGATE_LOG):"
            tail -n 40 "$SHARDGATE_LOG" | sed 's/^/    /'
        fi
    } >&2
}

mean() { # values...: mean of the numeric ones, ERR if none
    printf '%s\n' "$@" | awk '/^[0-9.]+$/ { s += $1; n++ } END { if (n) printf "%.0f", s / n; else print "ERR" }'
}
ratio() { # a b
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'
}

# --- report ----------------------------------------------------------------------------------
git_state() { # sets COMMIT and DIRTY (+dirty when anything outside untracked bench/ files changed)
    COMMIT=$(cd "$ROOT_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
    DIRTY=$(cd "$ROOT_DIR" && git status --porcelain 2>/dev/null | grep -qv '^?? bench/' && echo "+dirty" || true)
}

write_report() { # file: prints REPORT and writes it to RESULTS_DIR/file
    echo
    echo "$REPORT"
    mkdir -p "$RESULTS_DIR"
    echo "$REPORT" >"$RESULTS_DIR/$1"
    log "written to $RESULTS_DIR/$1"
}
