#!/bin/sh
# deploy/local/bench_cpu.sh AGENTRY_BIN [BURSTS] - the CPU a fixed amount of work costs: a hub on
# SQLite and 3 nodes (capacity 400) on loopback, then BURSTS (default 8) bursts of 1,000 concurrent
# Invoke calls (spawn + one-step mock agent + answer). Prints the user+system CPU time of the hub
# and of the 3 nodes together, in clock ticks (/proc/PID/stat; usually 10 ms each), read after
# the last burst. Unlike calls/s on a shared machine, CPU per unit of work barely depends on what
# else the host runs, so two versions compare well (BENCH_CLIENT=PATH: load from another binary).
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
CLIENT=${BENCH_CLIENT:-$BIN}
BURSTS=${2:-8}
DIR=$(mktemp -d /tmp/agentry-bench-cpu.XXXXXX)
. "$(dirname "$0")/cluster.sh"
cluster_start_hub "$BIN" "$DIR"
HUB_PID=$CLUSTER_PIDS
cluster_start_nodes "$BIN" "$DIR" 3 400
NODE_PIDS=${CLUSTER_PIDS#"$HUB_PID"}
for _b in $(seq 1 "$BURSTS"); do
    "$CLIENT" bench --rpc invoke --concurrency 1000 --calls 1000 >/dev/null
done
# Fields 14 and 15 of /proc/PID/stat (utime, stime); the command field has no spaces here.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
nodes=0
for p in $NODE_PIDS; do nodes=$((nodes + $(ticks "$p"))); done
echo "bursts=$BURSTS invokes=$((BURSTS * 1000)) hub_ticks=$(ticks "$HUB_PID") node_ticks=$nodes"
