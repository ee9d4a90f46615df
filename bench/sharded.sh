#!/usr/bin/env bash
# pgbench point reads and point writes by random key on a sharded table:
# through shardgate on TWO shards (each a primary + one streaming replica,
# reads go to the replicas) vs directly on one Postgres server holding all
# the rows (its primary; point reads also on its streaming replica).
#
# Starts everything in a temp dir, loads the same NACCOUNTS rows of
# `accounts (aid bigint primary key, abalance int, filler text)` through
# shardgate (split over the shards by hash of aid) and directly into the
# single reference server, then runs pgbench custom scripts
# (bench/sharded/*.sql) against each target in alternating rounds. Prints
# the mean TPS, the ratios measured in this one run, and shardgate's CPU time
# per statement (utime+stime from /proc/<pid>/stat around the measured runs,
# divided by the number of statements pgbench reports). Everything it started
# is stopped by PID and the temp dir removed on exit.
#
# This is a benchmark, not a test: it asserts no time. See bench/README.md.
#
# Environment:
#   DURATION      seconds per pgbench run                        (default 5)
#   ROUNDS        rounds over the targets per cell               (default 2)
#   NACCOUNTS     rows in accounts                               (default 200000)
#   CLIENTS       client counts to run, space-separated          (default "16 1")
#   MODES         pgbench query modes                            (default "simple prepared")
#   SCRIPTS       which scripts: read write                      (default "read write")
#   WARMUP        seconds of unmeasured warm-up per target       (default 2; 0 = none)
#   ROUTING_CHECK 1: count where shardgate's statements landed (adds ~11 s; 0 = skip)
#   PG_BIN        Postgres binaries                              (default /usr/lib/postgresql/15/bin)
#   SHARDGATE_LOG shardgate's log file; set it to keep the log   (default: in the temp dir)
#   RUST_LOG      shardgate's log filter                         (default: shardgate's own, info)
#   KEEP_TMP=1    leave the temp dir in place (servers are still stopped)

set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
NACCOUNTS=${NACCOUNTS:-200000}
CLIENTS=${CLIENTS:-"16 1"}
MODES=${MODES:-"simple prepared"}
SCRIPTS=${SCRIPTS:-"read write"}
WARMUP=${WARMUP:-2}
ROUTING_CHECK=${ROUTING_CHECK:-1}
BATCH=1000 # rows per INSERT of the load

LOG_TAG=sharded
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
declare -A SCRIPT_FILE=([read]="$BENCH_DIR/sharded/point-read.sql" [write]="$BENCH_DIR/sharded/point-write.sql")

check_pg_bin
for s in $SCRIPTS; do
    [ -n "${SCRIPT_FILE[$s]:-}" ] || die "unknown script '$s' in SCRIPTS (read, write)"
    [ -r "${SCRIPT_FILE[$s]}" ] || die "${SCRIPT_FILE[$s]} missing"
done
CLK_TCK=$(getconf CLK_TCK)

# --- shardgate, temp dir ---------------------------------------------------------
build_shardgate
make_tmp shardgate-sharded

# --- Postgres: three primaries (shard s0, shard s1, the reference), each with a replica
# One initdb with the role and database, copied to the three primaries.
log "initdb template in $TMP"
make_template "$TMP/template"

declare -A PRIMARY_PORT REPLICA_PORT
SERVERS="s0 s1 ref"
for s in $SERVERS; do
    PRIMARY_PORT[$s]=$(free_port)
    REPLICA_PORT[$s]=$(free_port)
    as_pg cp -a "$TMP/template" "$TMP/$s-primary"
    echo "port = ${PRIMARY_PORT[$s]}" >>"$TMP/$s-primary/postgresql.conf"
    log "$s: primary on port ${PRIMARY_PORT[$s]}, replica on port ${REPLICA_PORT[$s]}"
    start_pg "$TMP/$s-primary"
    start_replica "${PRIMARY_PORT[$s]}" "${REPLICA_PORT[$s]}" "$TMP/$s-replica" "$s"
done
rm -rf "$TMP/template"

# --- shardgate ---------------------------------------------------------------------
SG_PORT=$(free_port)
{
    shardgate_toml_head
    cat <<EOF
[[shards]]
name = "s0"
primary = "127.0.0.1:${PRIMARY_PORT[s0]}"
replicas = ["127.0.0.1:${REPLICA_PORT[s0]}"]

[[shards]]
name = "s1"
primary = "127.0.0.1:${PRIMARY_PORT[s1]}"
replicas = ["127.0.0.1:${REPLICA_PORT[s1]}"]

[routing]
default_shard = "s0"
read_from = "replicas"

# hash on aid, 1024 slots split evenly over s0 and s1 (the defaults)
[tables.accounts]
sharding_key = "aid"
EOF
} >"$TMP/shardgate.toml"
start_shardgate


# --- the table and its rows -----------------------------------------------------------
DDL="CREATE TABLE accounts (aid bigint primary key, abalance int, filler text)"
log "creating accounts through shardgate (DDL runs on every shard) and on the reference"
shop_sql "$SG_PORT" -c "$DDL" || die "CREATE TABLE through shardgate failed"
shop_sql "${PRIMARY_PORT[ref]}" -c "$DDL"

# Multi-row INSERT ... VALUES statements of $BATCH rows (the proxy splits each
# one per shard; INSERT ... SELECT across shards is refused). The filler is 84
# characters, like pgbench_accounts'.
awk -v n="$NACCOUNTS" -v b="$BATCH" 'BEGIN {
    f = sprintf("%84s", ""); gsub(/ /, "x", f)
    for (i = 1; i <= n; i++) {
        if ((i - 1) % b == 0) printf "INSERT INTO accounts (aid, abalance, filler) VALUES "
        printf "(%d,0,'\''%s'\'')", i, f
        if (i % b == 0 || i == n) print ";"; else printf ","
    }
}' >"$TMP/load.sql"
log "loading $NACCOUNTS rows through shardgate ($BATCH rows per INSERT)"
LOAD_T0=$(date +%s.%N)
shop_sql "$SG_PORT" -f "$TMP/load.sql" >/dev/null || {
    tail -n 40 "$SHARDGATE_LOG" >&2 || true
    die "load through shardgate failed"
}
LOAD_SG=$(awk -v a="$LOAD_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "loading the same rows directly into the reference primary"
LOAD_T0=$(date +%s.%N)
shop_sql "${PRIMARY_PORT[ref]}" -f "$TMP/load.sql" >/dev/null || die "load into the reference failed"
LOAD_REF=$(awk -v a="$LOAD_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
rm -f "$TMP/load.sql"
# Placement, counted directly on the shard primaries.
N0=$(shop_sql "${PRIMARY_PORT[s0]}" -c "SELECT count(*) FROM accounts")
N1=$(shop_sql "${PRIMARY_PORT[s1]}" -c "SELECT count(*) FROM accounts")
NREF=$(shop_sql "${PRIMARY_PORT[ref]}" -c "SELECT count(*) FROM accounts")
PLACEMENT=$(printf 'rows on the shard primaries (counted directly): s0 %d (%.1f%%), s1 %d (%.1f%%), sum %d of %d; reference %d' \
    "$N0" "$(awk -v a="$N0" -v n="$NACCOUNTS" 'BEGIN { print 100 * a / n }')" \
    "$N1" "$(awk -v a="$N1" -v n="$NACCOUNTS" 'BEGIN { print 100 * a / n }')" \
    $((N0 + N1)) "$NACCOUNTS" "$NREF")
log "$PLACEMENT"
[ $((N0 + N1)) = "$NACCOUNTS" ] || die "the shards hold $((N0 + N1)) rows, not $NACCOUNTS"
[ "$NREF" = "$NACCOUNTS" ] || die "the reference holds $NREF rows, not $NACCOUNTS"
# "Roughly half": a hash over 1024 slots; anything outside 40-60% is a placement bug, not noise.
awk -v a="$N0" -v n="$NACCOUNTS" 'BEGIN { exit !(a > 0.4 * n && a < 0.6 * n) }' \
    || die "uneven split: s0 holds $N0 of $NACCOUNTS rows"

# After the counts: on a vacuumed table they could be index-only scans, which
# the routing check below would take for reads that reached a primary.
for s in $SERVERS; do
    shop_sql "${PRIMARY_PORT[$s]}" -c "VACUUM ANALYZE accounts"
done

log "waiting for the replicas to catch up"
for s in $SERVERS; do
    wait_replica "${PRIMARY_PORT[$s]}" "${REPLICA_PORT[$s]}" "replica of $s"
done

# --- pgbench runs ----------------------------------------------------------------------
declare -A PORT=([direct]=${PRIMARY_PORT[ref]} [replica]=${REPLICA_PORT[ref]} [shardgate]=$SG_PORT)

FAILURES=()
RUN_NO=0
RUNS_OK=0
FAILED_TX=0      # sum of pgbench's "number of failed transactions"
SG_READ_STMTS=0  # statements sent through shardgate, warm-up included (routing check)
SG_WRITE_STMTS=0

cpu_ticks() { # utime + stime of shardgate (all its threads), in clock ticks
    sed 's/^.*) //' "/proc/$SHARDGATE_PID/stat" | awk '{ print $12 + $13 }'
}

# Runs pgbench. Sets TPS to its TPS (or "ERR" after reporting what went wrong),
# XACTS to its transaction count (= statements: each script has one) and TICKS
# to shardgate's CPU ticks spent during the run (only for the shardgate target).
pgbench_run() { # target script mode clients seconds
    local target=$1 script=$2 mode=$3 c=$4 t=$5 j out rc tps failed t0=0
    j=$((c < 2 ? c : 2))
    RUN_NO=$((RUN_NO + 1))
    out="$TMP/pgbench-$RUN_NO-$target-$script-$mode-c$c.log"
    [ "$target" = shardgate ] && t0=$(cpu_ticks)
    pgbench_bg "$out" -n -f "${SCRIPT_FILE[$script]}" -D naccounts="$NACCOUNTS" \
        -M "$mode" -T "$t" -c "$c" -j "$j" \
        -h 127.0.0.1 -p "${PORT[$target]}" -U shop shop
    rc=$PGBENCH_RC
    TICKS=0
    if [ "$target" = shardgate ]; then
        # Let the proxy finish with the closed sessions before reading its CPU time.
        sleep 0.5
        TICKS=$(($(cpu_ticks) - t0))
    fi
    tps=$(awk '/^tps = / { print $3; exit }' "$out")
    XACTS=$(awk -F': ' '/^number of transactions actually processed/ { split($2, a, "/"); print a[1]; exit }' "$out")
    failed=$(awk -F': ' '/^number of failed transactions/ { split($2, a, " "); print a[1]; exit }' "$out")
    [ -n "$XACTS" ] || XACTS=0
    case "$target:$script" in
        shardgate:read) SG_READ_STMTS=$((SG_READ_STMTS + XACTS)) ;;
        shardgate:write) SG_WRITE_STMTS=$((SG_WRITE_STMTS + XACTS)) ;;
    esac
    if [ "$rc" != 0 ] || [ -z "$tps" ] || [ -z "$failed" ] || [ "$failed" != 0 ] \
        || grep -q "client [0-9]* aborted\|error" "$out"; then
        report_pgbench_failure "$out" "$target" \
            "pgbench $script against $target (-M $mode -c $c) failed (exit $rc, failed transactions: ${failed:-?}):"
        [[ "${failed:-}" =~ ^[0-9]+$ ]] && FAILED_TX=$((FAILED_TX + failed))
        FAILURES+=("$script against $target -M $mode -c $c: exit $rc, failed transactions ${failed:-?}, see above")
        TPS=ERR
        return
    fi
    RUNS_OK=$((RUNS_OK + 1))
    TPS=$tps
}

us_per_stmt() { # ticks statements
    awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}

targets_for() { # script
    if [ "$1" = read ]; then echo "direct replica shardgate"; else echo "direct shardgate"; fi
}

if [ "$WARMUP" -gt 0 ]; then
    log "warm-up: ${WARMUP}s per target and script"
    for script in $SCRIPTS; do
        for target in $(targets_for "$script"); do
            pgbench_run "$target" "$script" simple 2 "$WARMUP"
        done
    done
fi

ROWS=()
SG_TICKS_ALL=0
SG_STMTS_ALL=0
for script in $SCRIPTS; do
    for mode in $MODES; do
        for c in $CLIENTS; do
            read -r -a targets <<<"$(targets_for "$script")"
            declare -A SAMPLES=()
            ticks=0
            stmts=0
            for ((r = 1; r <= ROUNDS; r++)); do
                # Rotate the order each round so that no target always goes first.
                n=${#targets[@]}
                for ((k = 0; k < n; k++)); do
                    target=${targets[$(((k + r - 1) % n))]}
                    log "round $r/$ROUNDS: $script -M $mode -c $c -> $target (${DURATION}s)"
                    pgbench_run "$target" "$script" "$mode" "$c" "$DURATION"
                    SAMPLES[$target]="${SAMPLES[$target]:-} $TPS"
                    if [ "$target" = shardgate ] && [ "$TPS" != ERR ]; then
                        ticks=$((ticks + TICKS))
                        stmts=$((stmts + XACTS))
                    fi
                    log "    tps = $TPS"
                done
            done
            SG_TICKS_ALL=$((SG_TICKS_ALL + ticks))
            SG_STMTS_ALL=$((SG_STMTS_ALL + stmts))
            # shellcheck disable=SC2086
            d=$(mean ${SAMPLES[direct]})
            # shellcheck disable=SC2086
            s=$(mean ${SAMPLES[shardgate]})
            if [ -n "${SAMPLES[replica]:-}" ]; then
                # shellcheck disable=SC2086
                rp=$(mean ${SAMPLES[replica]})
                rr=$(ratio "$s" "$rp")
            else
                rp="-"
                rr="-"
            fi
            ROWS+=("$(printf '%-6s %-9s %7s %10s %10s %10s %9s %10s %10s' \
                "$script" "$mode" "$c" "$d" "$rp" "$s" "$(ratio "$s" "$d")" "$rr" \
                "$(us_per_stmt "$ticks" "$stmts")")")
            unset SAMPLES
        done
    done
done

# --- routing check ------------------------------------------------------------------------
# Where did shardgate's statements land? idx_scan and n_tup_upd of accounts on
# each shard server, cumulative over the whole run (warm-up included). Every
# statement is one index scan; an UPDATE also updates one row, so reads that
# reached a primary show as idx_scan - n_tup_upd there. Idle pooled backends
# flush their counters up to 10 s late, hence the wait.
ROUTING=()
if [ "$ROUTING_CHECK" = 1 ]; then
    log "routing check: waiting 11 s for the statistics counters to settle"
    sleep 11
    tbl_stat() { # port
        shop_sql "$1" -F ' ' -c "SELECT coalesce(idx_scan, 0), n_tup_upd FROM pg_stat_user_tables WHERE relname = 'accounts'"
    }
    tot_p_reads=0
    tot_r_reads=0
    tot_upd=0
    for s in s0 s1; do
        read -r pi pu <<<"$(tbl_stat "${PRIMARY_PORT[$s]}")"
        read -r ri _ <<<"$(tbl_stat "${REPLICA_PORT[$s]}")"
        tot_p_reads=$((tot_p_reads + pi - pu))
        tot_r_reads=$((tot_r_reads + ri))
        tot_upd=$((tot_upd + pu))
        ROUTING+=("$(printf '  %s  primary: %8d updates %8d other index scans   replica: %8d index scans' "$s" "$pu" $((pi - pu)) "$ri")")
    done
    ROUTING+=("$(printf '  sum   updates %d (pgbench sent %d writes through shardgate); reads: %d on replicas, %d on primaries (pgbench sent %d reads)' \
        "$tot_upd" "$SG_WRITE_STMTS" "$tot_r_reads" "$tot_p_reads" "$SG_READ_STMTS")")
fi

# --- report -------------------------------------------------------------------------------
git_state
RUNS_TOTAL=$RUN_NO
REPORT=$(
    echo "shardgate sharded bench: pgbench point reads / point writes by random aid, mean TPS of $ROUNDS round(s) x ${DURATION}s per target"
    echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $COMMIT$DIRTY  accounts $NACCOUNTS rows  cores $(nproc)  $("$PG_BIN/postgres" --version)"
    echo "shardgate: 2 shards (primary + 1 streaming replica each), hash on aid over 1024 slots, reads to replicas, pool_size 40 session"
    echo "direct = one primary holding all rows; replica = its streaming replica (reads only); scripts bench/sharded/point-{read,write}.sql"
    echo "load: $NACCOUNTS rows in INSERTs of $BATCH rows, ${LOAD_SG}s through shardgate, ${LOAD_REF}s directly"
    echo "$PLACEMENT"
    echo
    printf '%-6s %-9s %7s %10s %10s %10s %9s %10s %10s\n' script mode clients direct replica shardgate sg/direct sg/replica "sg us/stmt"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "sg us/stmt: shardgate CPU time (utime+stime, /proc/<pid>/stat, CLK_TCK $CLK_TCK) during its measured runs / statements pgbench reports;"
    printf '            over all measured shardgate runs: %s us/statement (%d statements, %.2f s CPU)\n' \
        "$(us_per_stmt "$SG_TICKS_ALL" "$SG_STMTS_ALL")" "$SG_STMTS_ALL" "$(awk -v t="$SG_TICKS_ALL" -v hz="$CLK_TCK" 'BEGIN { print t / hz }')"
    echo
    if [ "$FAILED_TX" = 0 ] && [ ${#FAILURES[@]} -eq 0 ]; then
        echo "pgbench: 0 failed transactions and no aborted clients in all $RUNS_TOTAL runs (warm-up included)"
    else
        echo "pgbench: $FAILED_TX failed transactions; ${#FAILURES[@]} of $RUNS_TOTAL runs failed (excluded from the means):"
        printf '  %s\n' "${FAILURES[@]}"
    fi
    if [ ${#ROUTING[@]} -gt 0 ]; then
        echo
        echo "where shardgate's statements landed (pg_stat_user_tables of accounts on the shard servers, whole run):"
        printf '%s\n' "${ROUTING[@]}"
    fi
)
write_report sharded-latest.txt

[ ${#FAILURES[@]} -eq 0 ]
