#!/usr/bin/env bash
# Cross-shard (scatter/gather) queries: through shardgate on THREE shards
# (primaries only) vs directly on one reference Postgres holding all the rows.
#
# Starts everything in a temp dir and creates
#   events (id bigint primary key, user_id bigint, kind int, amount numeric(12,2),
#           at timestamptz, note text)
# through shardgate (DDL runs on every shard) and directly on the reference,
# sharded by hash on id over 1024 slots split evenly (s0 0-341, s1 342-682,
# s2 683-1023). The ROWS rows are made by generate_series on each server, not
# sent through the proxy: each shard keeps the ids whose slot it owns, computed
# in SQL from PostgreSQL's own partition hash (see "placement" below), and the
# reference keeps them all. The placement is checked three ways: the slot
# expression agrees with satisfies_hash_partition for every id, the shards hold
# ROWS rows between them, and point reads through shardgate find sampled ids.
#
# Then each query in QUERIES runs WARMUPS times per target unmeasured (the
# first warm-up's answers are compared between shardgate and the reference)
# and RUNS times measured, the order of the two targets alternating from run to
# run. Each run is one psql (`-X -q -At`, rows to /dev/null) with `\timing on`:
# the latency psql measures for the query, connection not included. The report
# has the median per target, the ratio shardgate/reference measured in this
# one run, shardgate's CPU per execution (utime+stime from /proc/<pid>/stat)
# and its peak RSS during the query: VmHWM from /proc/<pid>/status, reset
# before each run by writing 5 to /proc/<pid>/clear_refs.
#
# This is a benchmark, not a test: it asserts no time. It exits non-zero if a
# query failed through either target or the answers differed. Everything it
# started is stopped by PID and the temp dir removed on exit.
#
# Environment:
#   ROWS          rows in events                                    (default 1000000)
#   RUNS          measured runs per query and target                (default 5)
#   WARMUPS       unmeasured runs per query and target, first compared (default 1)
#   QUERIES       which queries: top10 groupby total scatter sorted (default all)
#   PG_BIN        Postgres binaries                 (default /usr/lib/postgresql/15/bin)
#   SHARDGATE_LOG shardgate's log file; set it to keep the log      (default: in the temp dir)
#   RUST_LOG      shardgate's log filter                            (default: shardgate's own, info)
#   KEEP_TMP=1    leave the temp dir in place (servers are still stopped)

set -euo pipefail

ROWS=${ROWS:-1000000}
RUNS=${RUNS:-5}
WARMUPS=${WARMUPS:-1}
QUERIES=${QUERIES:-"top10 groupby total scatter sorted"}
SHARDS=3
SLOTS=1024 # shardgate's default; the slot expression below relies on a power of two

LOG_TAG=scatter
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

declare -A SQL=(
    [top10]="SELECT id, amount FROM events ORDER BY amount DESC, id LIMIT 10"
    [groupby]="SELECT kind, count(*), sum(amount), min(at), max(at) FROM events GROUP BY kind ORDER BY kind"
    [total]="SELECT count(*), sum(amount) FROM events"
    [scatter]="SELECT * FROM events"
    [sorted]="SELECT * FROM events ORDER BY id"
)
# Queries whose row order is unspecified: their answers are compared sorted.
declare -A UNORDERED=([scatter]=1)

check_pg_bin
for q in $QUERIES; do
    [ -n "${SQL[$q]:-}" ] || die "unknown query '$q' in QUERIES (top10 groupby total scatter sorted)"
done
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || die "ROWS must be a positive integer"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ "$WARMUPS" =~ ^[1-9][0-9]*$ ]] || die "WARMUPS must be at least 1 (the first warm-up's answers are compared)"
CLK_TCK=$(getconf CLK_TCK)
T_START=$(date +%s)

# --- shardgate, temp dir ---------------------------------------------------------
build_shardgate
make_tmp shardgate-scatter

# --- Postgres: the shards s0..s2 and the reference, primaries only -----------------
# One initdb with the role and database, copied to every server.
log "initdb template in $TMP"
make_template "$TMP/template"

SHARD_NAMES=()
for ((i = 0; i < SHARDS; i++)); do SHARD_NAMES+=("s$i"); done
declare -A PORT
for s in "${SHARD_NAMES[@]}" ref; do
    PORT[$s]=$(free_port)
    as_pg cp -a "$TMP/template" "$TMP/$s"
    echo "port = ${PORT[$s]}" >>"$TMP/$s/postgresql.conf"
    log "$s: primary on port ${PORT[$s]}"
    start_pg "$TMP/$s"
done
rm -rf "$TMP/template"

# --- shardgate ---------------------------------------------------------------------
SG_PORT=$(free_port)
{
    shardgate_toml_head
    for s in "${SHARD_NAMES[@]}"; do
        printf '[[shards]]\nname = "%s"\nprimary = "127.0.0.1:%s"\n\n' "$s" "${PORT[$s]}"
    done
    cat <<EOF
[routing]
default_shard = "s0"

# hash on id, $SLOTS slots split evenly over the shards in order (the defaults)
[tables.events]
sharding_key = "id"
EOF
} >"$TMP/shardgate.toml"
start_shardgate
PORT[sg]=$SG_PORT

rss_kib() { # field (VmRSS, VmHWM) of shardgate, in KiB
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SHARDGATE_PID/status"
}
mib() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.1f", k / 1024; else print "-" }'; }
BASE_RSS=$(rss_kib VmRSS)
BASE_HWM=$(rss_kib VmHWM)
log "shardgate after startup: VmRSS $(mib "$BASE_RSS") MiB, VmHWM $(mib "$BASE_HWM") MiB"

# --- the table and its rows -----------------------------------------------------------
DDL="CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint, kind int, amount numeric(12,2), at timestamptz, note text)"
log "creating events through shardgate (DDL runs on every shard) and on the reference"
shop_sql "$SG_PORT" -c "$DDL" || { tail -n 20 "$SHARDGATE_LOG" >&2; die "CREATE TABLE through shardgate failed"; }
shop_sql "${PORT[ref]}" -c "$DDL"

# Placement. shardgate puts key k in slot partition_hash(k) % SLOTS, the
# REMAINDER PostgreSQL's `PARTITION BY HASH` with MODULUS SLOTS gives it
# (shard-config/src/hash.rs). For one bigint column that hash is
# hash_combine64(0, hashint8extended(k, HASH_PARTITION_SEED))
#   = hashint8extended(k, seed) + 0x49a0f4dd15e5a8e3   (mod 2^64),
# and with SLOTS a power of two the remainder is the low bits of that sum:
# (hashint8extended(k, seed) & 1023) + (0x49a0f4dd15e5a8e3 & 1023 = 227), & 1023.
# bigint & works on the two's complement, so negative hashes are right too.
SLOT_EXPR="(((hashint8extended(id, 8816678312871386365) & $((SLOTS - 1))) + $((0x49a0f4dd15e5a8e3 & (SLOTS - 1)))) & $((SLOTS - 1)))"
ROW_SELECT="SELECT id, id % 50000, (id % 100)::int, ((id * 7919) % 1000000) / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + id * interval '30 seconds', md5(id::text)
  FROM generate_series(1, $ROWS::bigint) AS id"

log "checking the slot expression against satisfies_hash_partition for ids 1..$ROWS (on the reference)"
BAD=$(shop_sql "${PORT[ref]}" <<EOF
CREATE TABLE slot_probe (id bigint) PARTITION BY HASH (id);
SELECT count(*) FROM generate_series(1, $ROWS::bigint) AS id
 WHERE NOT satisfies_hash_partition('slot_probe'::regclass, $SLOTS, $SLOT_EXPR::int, id);
DROP TABLE slot_probe;
EOF
)
[ "$BAD" = 0 ] || die "the slot expression disagrees with satisfies_hash_partition for $BAD ids"

# The even split of shard-config's even_split: shard i gets one contiguous
# range, the first SLOTS % SHARDS shards one slot more.
declare -A LO HI
lo=0
for ((i = 0; i < SHARDS; i++)); do
    n=$((SLOTS / SHARDS + (i < SLOTS % SHARDS ? 1 : 0)))
    LO[s$i]=$lo
    HI[s$i]=$((lo + n - 1))
    lo=$((lo + n))
done

secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
LOAD=()
for s in "${SHARD_NAMES[@]}"; do
    log "loading $s: ids 1..$ROWS whose slot is in ${LO[$s]}..${HI[$s]}"
    t0=$(date +%s.%N)
    shop_sql "${PORT[$s]}" -c "INSERT INTO events $ROW_SELECT WHERE $SLOT_EXPR BETWEEN ${LO[$s]} AND ${HI[$s]}"
    LOAD+=("$s $(secs_since "$t0")s")
done
log "loading ref: all $ROWS rows"
t0=$(date +%s.%N)
shop_sql "${PORT[ref]}" -c "INSERT INTO events $ROW_SELECT"
LOAD+=("ref $(secs_since "$t0")s")
for s in "${SHARD_NAMES[@]}" ref; do
    shop_sql "${PORT[$s]}" -c "VACUUM ANALYZE events"
done

# Counted directly on each server.
SUM=0
PLACEMENT="rows counted directly:"
for s in "${SHARD_NAMES[@]}"; do
    n=$(shop_sql "${PORT[$s]}" -c "SELECT count(*) FROM events")
    SUM=$((SUM + n))
    PLACEMENT="$PLACEMENT $s $n ($(awk -v a="$n" -v b="$ROWS" 'BEGIN { printf "%.1f%%", 100 * a / b }')),"
done
NREF=$(shop_sql "${PORT[ref]}" -c "SELECT count(*) FROM events")
PLACEMENT="$PLACEMENT sum $SUM of $ROWS; ref $NREF"
log "$PLACEMENT"
[ "$SUM" = "$ROWS" ] || die "the shards hold $SUM rows, not $ROWS"
[ "$NREF" = "$ROWS" ] || die "the reference holds $NREF rows, not $ROWS"

# Point reads through shardgate go to the one shard owning the key: if a row
# were on the wrong shard, shardgate would not find it.
NPROBE=200
awk -v n="$ROWS" -v k="$NPROBE" 'BEGIN { for (i = 0; i < k; i++) printf "SELECT id FROM events WHERE id = %d;\n", 1 + int(i * n / k) }' >"$TMP/probe.sql"
FOUND=$(shop_sql "$SG_PORT" -f "$TMP/probe.sql" | grep -c . || true)
log "point reads through shardgate: $FOUND of $NPROBE sampled ids found"
[ "$FOUND" = "$NPROBE" ] || die "shardgate found $FOUND of $NPROBE sampled ids by point read: placement is wrong"
SG_COUNT=$(shop_sql "$SG_PORT" -c "SELECT count(*) FROM events" 2>&1) || SG_COUNT="error: $SG_COUNT"
log "SELECT count(*) FROM events through shardgate: $SG_COUNT"

# --- the queries ------------------------------------------------------------------------
cpu_ticks() { # utime + stime of shardgate (all its threads), in clock ticks
    sed 's/^.*) //' "/proc/$SHARDGATE_PID/stat" | awk '{ print $12 + $13 }'
}
# Reset shardgate's VmHWM to its current RSS (Linux: "5" to clear_refs).
CLEAR_REFS=1
echo 5 >"/proc/$SHARDGATE_PID/clear_refs" 2>/dev/null || CLEAR_REFS=0
[ "$CLEAR_REFS" = 1 ] || log "cannot reset VmHWM (/proc/$SHARDGATE_PID/clear_refs): peaks are cumulative"

# One run: psql with \timing, rows to the file out (default /dev/null). Sets
# MS to psql's "Time:" in ms, or ERR (the error is in $TMP/err).
run_query() { # target query [out]
    local out=${3:-/dev/null} t
    if t=$("$PG_BIN/psql" -h 127.0.0.1 -p "${PORT[$1]}" -U shop -d shop -X -q -A -t \
        -v ON_ERROR_STOP=1 -o "$out" -c '\timing on' -c "${SQL[$2]}" 2>"$TMP/err"); then
        MS=$(printf '%s\n' "$t" | awk '/^Time: / { print $2; exit }')
        [ -n "$MS" ] || MS=ERR
    else
        MS=ERR
    fi
}

median() { # values...: median of the numeric ones, ERR if none
    printf '%s\n' "$@" | awk '/^[0-9.]+$/' | sort -g | awk '{ a[NR] = $1 }
        END { if (!NR) print "ERR"; else if (NR % 2) printf "%.1f", a[(NR + 1) / 2]; else printf "%.1f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

TABLE=()
FAILURES=()
NOTES=()
SIZE_NOTES=()
for q in $QUERIES; do
    # Warm-ups; the first one's answers are compared.
    declare -A ERRMSG=()
    for ((w = 1; w <= WARMUPS; w++)); do
        for t in ref sg; do
            out=/dev/null
            [ "$w" = 1 ] && out="$TMP/answer-$q-$t"
            log "$q: warm-up $w/$WARMUPS -> $t"
            run_query "$t" "$q" "$out"
            if [ "$MS" = ERR ] && [ -z "${ERRMSG[$t]:-}" ]; then
                ERRMSG[$t]=$(head -n 1 "$TMP/err")
                log "    $t failed: ${ERRMSG[$t]}"
            fi
        done
    done
    nrows=$(wc -l <"$TMP/answer-$q-ref")
    size=$(wc -c <"$TMP/answer-$q-ref")
    if [ -n "${ERRMSG[ref]:-}${ERRMSG[sg]:-}" ]; then
        agree=-
    elif [ -n "${UNORDERED[$q]:-}" ]; then
        # Compare sorted, by checksum, without keeping the sorted copies.
        a=$(LC_ALL=C sort "$TMP/answer-$q-ref" | md5sum)
        b=$(LC_ALL=C sort "$TMP/answer-$q-sg" | md5sum)
        [ "$a" = "$b" ] && agree=yes || agree=NO
    else
        cmp -s "$TMP/answer-$q-ref" "$TMP/answer-$q-sg" && agree=yes || agree=NO
    fi
    if [ "$agree" = NO ]; then
        FAILURES+=("$q: the answers through shardgate differ from the reference's")
        { log "$q: answers differ (first lines, ref < > sg):"; diff "$TMP/answer-$q-ref" "$TMP/answer-$q-sg" | head -n 10; } >&2 || true
    fi
    rm -f "$TMP/answer-$q-ref" "$TMP/answer-$q-sg"
    [ "$size" -gt 100000 ] && SIZE_NOTES+=("$q: $nrows rows, $(mib $((size / 1024))) MiB as psql's unaligned text")

    # Measured runs, alternating which target goes first.
    REF_MS=()
    SG_MS=()
    ticks=0
    peak=0
    before=0
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then order="ref sg"; else order="sg ref"; fi
        for t in $order; do
            if [ "$t" = sg ]; then
                [ "$CLEAR_REFS" = 1 ] && echo 5 >"/proc/$SHARDGATE_PID/clear_refs"
                rss=$(rss_kib VmRSS)
                ((rss > before)) && before=$rss
                t0=$(cpu_ticks)
                run_query sg "$q"
                ticks=$((ticks + $(cpu_ticks) - t0))
                hwm=$(rss_kib VmHWM)
                ((hwm > peak)) && peak=$hwm
                SG_MS+=("$MS")
            else
                run_query ref "$q"
                REF_MS+=("$MS")
            fi
            if [ "$MS" = ERR ]; then
                [ -n "${ERRMSG[$t]:-}" ] || ERRMSG[$t]=$(head -n 1 "$TMP/err")
            fi
        done
        log "$q: run $r/$RUNS  ref ${REF_MS[-1]} ms  sg ${SG_MS[-1]} ms"
    done
    for t in ref sg; do
        if [ -n "${ERRMSG[$t]:-}" ]; then
            FAILURES+=("$q through $t: ${ERRMSG[$t]}")
        fi
    done
    ref_med=$(median "${REF_MS[@]}")
    sg_med=$(median "${SG_MS[@]}")
    cpu=$(awk -v t="$ticks" -v n="$RUNS" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t / hz * 1000 / n }')
    TABLE+=("$(printf '%-8s %9s %11s %11s %7s %10s %11s %11s %6s' "$q" "$nrows" "$ref_med" "$sg_med" \
        "$(ratio "$sg_med" "$ref_med")" "$cpu" "$(mib "$before")" "$(mib "$peak")" "$agree")")
    unset ERRMSG
done

# --- report -------------------------------------------------------------------------------
git_state
MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
ELAPSED=$(($(date +%s) - T_START))
REPORT=$(
    echo "shardgate scatter bench: cross-shard queries through shardgate on $SHARDS shards vs one reference Postgres with all rows"
    echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $COMMIT$DIRTY  machine: $(nproc) cores, $MEM_GIB GiB  $("$PG_BIN/postgres" --version)"
    echo "events: $ROWS rows; $WARMUPS warm-up + $RUNS measured runs per query and target, targets alternating; script ran ${ELAPSED}s"
    echo "shardgate: $SHARDS shards (primaries only), hash on id over $SLOTS slots split evenly, pool_size 40 session; ref = one primary, used directly"
    echo "load (generate_series on each server, each shard keeping its slots): ${LOAD[*]}"
    echo "$PLACEMENT"
    echo "placement checks: slot expression = satisfies_hash_partition for all ids; $FOUND of $NPROBE sampled point reads through shardgate found; count(*) through shardgate: $SG_COUNT"
    echo
    printf '%-8s %9s %11s %11s %7s %10s %11s %11s %6s\n' query rows "ref ms" "sg ms" sg/ref "sg cpu ms" "sg rss MiB" "sg peak MiB" agree
    printf '%s\n' "${TABLE[@]}"
    echo
    echo "ms: median of psql's \\timing (query sent to last row received; connection not included), rows printed to /dev/null (-At)."
    echo "sg cpu ms: shardgate utime+stime per execution (/proc/<pid>/stat, CLK_TCK $CLK_TCK), mean over the measured runs."
    if [ "$CLEAR_REFS" = 1 ]; then
        echo "sg rss / sg peak: shardgate's VmRSS before a run and its VmHWM after it (reset before each run via clear_refs), max over the runs;"
    else
        echo "sg rss / sg peak: shardgate's VmRSS before a run and its VmHWM after it (cumulative: clear_refs not writable), max over the runs;"
    fi
    echo "  after startup: VmRSS $(mib "$BASE_RSS") MiB, VmHWM $(mib "$BASE_HWM") MiB."
    [ ${#SIZE_NOTES[@]} -eq 0 ] || printf '  result size, %s\n' "${SIZE_NOTES[@]}"
    echo "agree: the first warm-up's answers, shardgate vs ref, byte for byte (scatter: sorted first)."
    echo "queries:"
    for q in $QUERIES; do printf '  %-8s %s\n' "$q" "${SQL[$q]}"; done
    echo "notes: 4 Postgres servers, psql and the proxy share the cores; each server may use parallel workers (defaults);"
    echo "  through shardgate each shard scans a third of the rows, but all of them on the same cores, so sg/ref is the proxy's"
    echo "  cost (hop, merge, re-framing rows) plus three servers' overhead, not what three machines would give."
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo
        echo "FAILURES:"
        printf '  %s\n' "${FAILURES[@]}"
    fi
)
write_report scatter-latest.txt

[ ${#FAILURES[@]} -eq 0 ]
