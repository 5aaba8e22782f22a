#!/bin/sh
# deploy/local/bench_send.sh AGENTRY_BIN [AGENTRY_BIN...] - SendMessage against Ping on SQLite
# (issue 12, point 10: durable SendMessage/s >= 1/2 Ping/s, same machine, same concurrency).
# For each binary in turn, BENCH_ROUNDS times (default 3), a fresh hub on SQLite (WAL,
# synchronous=FULL) with no node, and the first binary's client (one load generator for all):
#   ping  Ping @64, BENCH_CALLS calls (default 60,000)
#   send  SendMessage @64, BENCH_CALLS calls: each input stored durably, then acknowledged (64
#         agents of at most 1,024 waiting inputs: at most 65,536 calls)
# Each line gives the rate and, per call, what the hub process spent meanwhile: CPU (utime +
# stime) and context switches (voluntary + involuntary, summed over its threads), from /proc.
# Then, with `perf` installed, one more round counts the hub's syscalls per call by kind (perf's
# tracepoints slow every syscall, so rates are never taken from that round).
set -eu
CALLS=${BENCH_CALLS:-60000}
ROUNDS=${BENCH_ROUNDS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cluster.sh"
CLIENT=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
echo "== machine: $(nproc) cores, $(uname -sr)," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# "voluntary involuntary cpu-ticks" of process PID so far.
counters() {
    _t=$(awk '{ print $14 + $15 }' /proc/"$1"/stat)
    cat /proc/"$1"/task/*/status 2>/dev/null | awk -v t="$_t" '
        /^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 }
        END { print v + 0, n + 0, t }'
}

# measure NAME PID RPC: one bench run against the hub PID, one line.
measure() {
    _out=$(mktemp)
    _c0=$(counters "$2")
    "$CLIENT" bench --rpc "$3" --concurrency 64 --calls "$CALLS" --json >"$_out" 2>/dev/null
    _c1=$(counters "$2")
    /usr/bin/python3 - "$1" "$_out" "$CALLS" "$_c0" "$_c1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, out, calls, c0, c1, hz = sys.argv[1:]
r = json.load(open(out))
calls = int(calls)
vol, invol, ticks = (int(b) - int(a) for a, b in zip(c0.split(), c1.split()))
print("%-5s %7.0f calls/s  p50 %5.2f ms | per call: hub cpu %5.1f us, ctx switches %.2f "
      "(voluntary %.2f)" % (name, r["calls_per_s"], r["latency_ms"]["p50"],
                            ticks * 1e6 / int(hz) / calls, (vol + invol) / calls, vol / calls))
PY
    rm -f "$_out"
}

# syscalls NAME PID RPC: the hub's syscalls per call, most frequent first.
syscalls() {
    _perf=$(mktemp)
    perf stat -x, -o "$_perf" -p "$2" -e 'syscalls:sys_enter_*' -- \
        "$CLIENT" bench --rpc "$3" --concurrency 64 --calls "$CALLS" >/dev/null 2>&1
    awk -F, -v n="$CALLS" -v name="$1" '
        $1 ~ /^[0-9]+$/ && $1 > 0 { sub(/.*sys_enter_/, "", $3); total += $1; c[$3] = $1 }
        END {
            line = sprintf("%-5s syscalls per call %.2f:", name, total / n)
            m = 0
            for (k in c) if (c[k] / n >= 0.01) { keys[++m] = k }
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
                if (c[keys[j]] > c[keys[i]]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
            for (i = 1; i <= m; i++) line = line sprintf(" %s %.2f", keys[i], c[keys[i]] / n)
            print line
        }' "$_perf"
    rm -f "$_perf"
}

# hub BIN: a fresh hub on SQLite in a temp dir; its pid in HUB_PID.
hub() {
    DIR=$(mktemp -d /tmp/agentry-bench-send.XXXXXX)
    cluster_start_hub "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" "$DIR"
    HUB_PID=$CLUSTER_PIDS
}

unhub() {
    cluster_stop
    grep -o 'event=store.closed.*' "$DIR/hub.log" | sed 's/^/      /'
    rm -rf "$DIR"
}

r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    for bin in "$@"; do
        echo "## round $r: $bin"
        hub "$bin"
        measure ping "$HUB_PID" ping
        measure send "$HUB_PID" send
        unhub
    done
done
if command -v perf >/dev/null 2>&1; then
    for bin in "$@"; do
        echo "## syscalls (perf): $bin"
        hub "$bin"
        syscalls ping "$HUB_PID" ping
        syscalls send "$HUB_PID" send
        unhub
    done
fi
