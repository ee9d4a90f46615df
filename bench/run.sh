#!/usr/bin/env bash
# pgbench, read-only (-S), against: Postgres directly, shardgate, PgBouncer.
#
# Starts its own Postgres 15 primary + streaming replica, shardgate (primary +
# replica, reads go to the replica) and PgBouncer (session mode, primary) in a
# temp dir, runs pgbench against each target in alternating rounds and prints
# the mean TPS and the ratios to "direct" measured in this one run. Everything
# it started is stopped by PID and the temp dir removed on exit.
#
# This is a benchmark, not a test: it asserts no time. See bench/README.md.
#
# Environment:
#   DURATION      seconds per pgbench run                        (default 10)
#   ROUNDS        rounds over the targets per (mode, clients)   (default 2)
#   SCALE         pgbench -i scale factor                        (default 10)
#   CLIENTS       client counts to run, space-separated          (default "16 1")
#   MODES         pgbench query modes                            (default "simple prepared")
#   WARMUP        seconds of unmeasured warm-up per target       (default 2; 0 = none)
#   PG_BIN        Postgres binaries                              (default /usr/lib/postgresql/15/bin)
#   SHARDGATE_LOG shardgate's log file; set it to keep the log   (default: in the temp dir)
#   RUST_LOG      shardgate's log filter                         (default: shardgate's own, info)
#   ROUTING_CHECK 1: count where shardgate's reads landed (adds ~25 s per mode; 0 = skip)
#   ROUTING_SECS  seconds of pgbench for that check              (default 3)
#   KEEP_TMP=1    leave the temp dir in place (servers are still stopped)

set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-"16 1"}
MODES=${MODES:-"simple prepared"}
WARMUP=${WARMUP:-2}

LOG_TAG=bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_pg_bin

# --- PgBouncer -----------------------------------------------------------------
PGBOUNCER=$(command -v pgbouncer || true)
[ -z "$PGBOUNCER" ] && [ -x /usr/sbin/pgbouncer ] && PGBOUNCER=/usr/sbin/pgbouncer
if [ -z "$PGBOUNCER" ]; then
    log "pgbouncer not found; installing it (apt-get install -y pgbouncer)"
    if [ "$IS_ROOT" = 1 ] \
        && DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; then
        PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    else
        log "could not install pgbouncer: PgBouncer is skipped"
        PGBOUNCER=""
    fi
fi
[ -n "$PGBOUNCER" ] && [ ! -x "$PGBOUNCER" ] && PGBOUNCER=""

# --- shardgate, temp dir ---------------------------------------------------------
build_shardgate
make_tmp shardgate-bench

# --- Postgres primary + replica ----------------------------------------------------
PRIMARY_PORT=$(free_port)
REPLICA_PORT=$(free_port)
log "initdb primary (port $PRIMARY_PORT) in $TMP"
init_pg "$TMP/primary"
echo "port = $PRIMARY_PORT" >>"$TMP/primary/postgresql.conf"
start_pg "$TMP/primary"
create_shop_db "$PRIMARY_PORT"

log "pg_basebackup replica (port $REPLICA_PORT)"
start_replica "$PRIMARY_PORT" "$REPLICA_PORT" "$TMP/replica" ""

log "pgbench -i -s $SCALE on the primary"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PRIMARY_PORT" -U shop shop >"$TMP/pgbench-init.log" 2>&1 \
    || { cat "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }

log "waiting for the replica to catch up"
wait_replica "$PRIMARY_PORT" "$REPLICA_PORT" replica

# --- shardgate ---------------------------------------------------------------------
SG_PORT=$(free_port)
{
    shardgate_toml_head
    cat <<EOF
[[shards]]
name = "s0"
primary = "127.0.0.1:$PRIMARY_PORT"
replicas = ["127.0.0.1:$REPLICA_PORT"]

[routing]
default_shard = "s0"
read_from = "replicas"
EOF
} >"$TMP/shardgate.toml"
start_shardgate

# --- PgBouncer -----------------------------------------------------------------------
PGB_PORT=""
if [ -n "$PGBOUNCER" ]; then
    PGB_PORT=$(free_port)
    mkdir -p "$TMP/pgbouncer"
    printf '"shop" "shop"\n' >"$TMP/pgbouncer/userlist.txt"
    cat >"$TMP/pgbouncer/pgbouncer.ini" <<EOF
[databases]
shop = host=127.0.0.1 port=$PRIMARY_PORT dbname=shop

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $TMP/pgbouncer/userlist.txt
pool_mode = session
default_pool_size = 40
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = $TMP/pgbouncer/pgbouncer.log
pidfile = $TMP/pgbouncer/pgbouncer.pid
EOF
    [ "$IS_ROOT" = 1 ] && chown -R postgres:postgres "$TMP/pgbouncer"
    chmod 600 "$TMP/pgbouncer/userlist.txt"
    log "starting PgBouncer on port $PGB_PORT"
    if as_pg "$PGBOUNCER" -d -q "$TMP/pgbouncer/pgbouncer.ini" >"$TMP/pgbouncer/start.log" 2>&1; then
        for i in $(seq 1 50); do
            [ -s "$TMP/pgbouncer/pgbouncer.pid" ] && break
            sleep 0.1
        done
        PGBOUNCER_PID=$(cat "$TMP/pgbouncer/pgbouncer.pid" 2>/dev/null || true)
    fi
    if [ -z "$PGBOUNCER_PID" ] || ! wait_ready pgbouncer "$PGB_PORT"; then
        cat "$TMP/pgbouncer/start.log" "$TMP/pgbouncer/pgbouncer.log" >&2 2>/dev/null || true
        log "PgBouncer did not start: it is skipped"
        [ -n "$PGBOUNCER_PID" ] && stop_pid "$PGBOUNCER_PID" INT
        PGBOUNCER_PID=""
        PGB_PORT=""
    fi
fi

# --- pgbench runs ----------------------------------------------------------------------
declare -A PORT=([direct]=$PRIMARY_PORT [replica]=$REPLICA_PORT [shardgate]=$SG_PORT)
[ -n "$PGB_PORT" ] && PORT[pgbouncer]=$PGB_PORT

FAILURES=()
RUN_NO=0

# Runs pgbench and sets TPS to its TPS, or to "ERR" after reporting what went wrong.
pgbench_tps() { # target mode clients seconds
    local target=$1 mode=$2 c=$3 t=$4 j out rc tps
    j=$((c < 2 ? c : 2))
    RUN_NO=$((RUN_NO + 1))
    out="$TMP/pgbench-$RUN_NO-$target-$mode-c$c.log"
    pgbench_bg "$out" -n -S -M "$mode" -T "$t" -c "$c" -j "$j" \
        -h 127.0.0.1 -p "${PORT[$target]}" -U shop shop
    rc=$PGBENCH_RC
    tps=$(awk '/^tps = / { print $3; exit }' "$out")
    if [ "$rc" != 0 ] || [ -z "$tps" ] || grep -q "client [0-9]* aborted\|error" "$out"; then
        report_pgbench_failure "$out" "$target" "pgbench against $target (-M $mode -c $c) failed (exit $rc):"
        FAILURES+=("$target -M $mode -c $c: exit $rc, see above")
        TPS=ERR
        return
    fi
    TPS=$tps
}

TARGETS=(direct shardgate)
[ -n "$PGB_PORT" ] && TARGETS+=(pgbouncer)

if [ "$WARMUP" -gt 0 ]; then
    log "warm-up: ${WARMUP}s per target"
    for target in replica "${TARGETS[@]}"; do
        pgbench_tps "$target" simple 2 "$WARMUP"
    done
fi

# The replica line is measured once, in simple mode, with the largest client count.
REPLICA_CLIENTS=$(printf '%s\n' $CLIENTS | sort -n | tail -n 1)
REPLICA_TPS=""

ROWS=()
for mode in $MODES; do
    for c in $CLIENTS; do
        targets=("${TARGETS[@]}")
        [ "$mode" = simple ] && [ "$c" = "$REPLICA_CLIENTS" ] && targets+=(replica)
        declare -A SAMPLES=()
        for ((r = 1; r <= ROUNDS; r++)); do
            # Rotate the order each round so that no target always goes first.
            n=${#targets[@]}
            for ((k = 0; k < n; k++)); do
                target=${targets[$(((k + r - 1) % n))]}
                log "round $r/$ROUNDS: -M $mode -c $c -> $target (${DURATION}s)"
                pgbench_tps "$target" "$mode" "$c" "$DURATION"
                SAMPLES[$target]="${SAMPLES[$target]:-} $TPS"
                log "    tps = $TPS"
            done
        done
        # shellcheck disable=SC2086
        d=$(mean ${SAMPLES[direct]})
        # shellcheck disable=SC2086
        s=$(mean ${SAMPLES[shardgate]})
        if [ -n "$PGB_PORT" ]; then
            # shellcheck disable=SC2086
            p=$(mean ${SAMPLES[pgbouncer]})
        else
            p="skipped"
        fi
        if [ -n "${SAMPLES[replica]:-}" ]; then
            # shellcheck disable=SC2086
            REPLICA_TPS=$(mean ${SAMPLES[replica]})
            REPLICA_SG=$s
        fi
        ROWS+=("$(printf '%-9s %7s %12s %14s %9s %14s %9s' \
            "$mode" "$c" "$d" "$s" "$(ratio "$s" "$d")" "$p" "$(ratio "$p" "$d")")")
        unset SAMPLES
    done
done

# --- routing check ------------------------------------------------------------------------
# Which server did shardgate's reads reach? Counted from pg_stat_database on the
# primary and the replica around a short shardgate run of its own: idle backends
# (PgBouncer's and shardgate's pooled ones) flush their counters up to 10 s late,
# so the counters are left to settle first; that is why this is not done
# around the timed runs.
ROUTING=()
ROUTING_SECS=${ROUTING_SECS:-3}
xacts() { # primary and replica xact_commit of db shop
    echo "$(pg_sql "$PRIMARY_PORT" "SELECT xact_commit FROM pg_stat_database WHERE datname = 'shop'")" \
        "$(pg_sql "$REPLICA_PORT" "SELECT xact_commit FROM pg_stat_database WHERE datname = 'shop'")"
}
if [ "${ROUTING_CHECK:-1}" = 1 ]; then
    for mode in $MODES; do
        log "routing check: -M $mode via shardgate (${ROUTING_SECS}s, with 11 s for the counters to settle on each side)"
        sleep 11
        read -r p0 r0 <<<"$(xacts)"
        pgbench_tps shardgate "$mode" 2 "$ROUTING_SECS"
        sleep 11
        read -r p1 r1 <<<"$(xacts)"
        ROUTING+=("$(printf '  -M %-9s primary %8d  replica %8d  (%s%% on the replica)' "$mode" \
            $((p1 - p0)) $((r1 - r0)) \
            "$(awk -v p=$((p1 - p0)) -v r=$((r1 - r0)) 'BEGIN { printf "%.1f", (p + r) ? 100 * r / (p + r) : 0 }')")")
    done
fi

# --- report -------------------------------------------------------------------------------
git_state
PGB_VERSION=$([ -n "$PGBOUNCER" ] && "$PGBOUNCER" --version 2>/dev/null | head -n 1 || echo "not installed")
REPORT=$(
    echo "shardgate bench: pgbench -S (select-only), mean TPS of $ROUNDS round(s) x ${DURATION}s per target"
    echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $COMMIT$DIRTY  scale $SCALE  cores $(nproc)"
    echo "$("$PG_BIN/postgres" --version)  |  $PGB_VERSION  |  shardgate pool_size 40 session, PgBouncer pool 40 session"
    echo "direct = the primary; shardgate sends these reads to the replica; PgBouncer points at the primary"
    echo
    printf '%-9s %7s %12s %14s %9s %14s %9s\n' mode clients direct shardgate sg/direct pgbouncer pgb/direct
    printf '%s\n' "${ROWS[@]}"
    if [ -n "$REPLICA_TPS" ]; then
        echo
        printf 'direct replica (simple, %s clients): %s TPS; shardgate/replica = %s\n' \
            "$REPLICA_CLIENTS" "$REPLICA_TPS" "$(ratio "$REPLICA_SG" "$REPLICA_TPS")"
    fi
    if [ ${#ROUTING[@]} -gt 0 ]; then
        echo
        echo "where shardgate sent pgbench's reads (transactions in db shop, ${ROUTING_SECS}s of -c 2 per mode):"
        printf '%s\n' "${ROUTING[@]}"
    fi
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo
        echo "FAILED runs (excluded from the means):"
        printf '  %s\n' "${FAILURES[@]}"
    fi
)
write_report latest.txt

[ ${#FAILURES[@]} -eq 0 ]
