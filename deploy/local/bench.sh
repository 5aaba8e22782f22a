#!/bin/sh
# deploy/local/bench.sh AGENTRY_BIN - the benchmarks recorded in docs/benchmarks.md, on a local
# cluster: a hub on SQLite (WAL, synchronous=FULL) in a temp dir, then 3 nodes on loopback.
#   1. Ping at 64 concurrent callers (transport baseline, no store work)
#   2. SendMessage at 64 concurrent callers, before any node joins: each input is stored durably
#      and acknowledged, nothing else (60,000 calls: 64 agents x at most 1,024 waiting inputs)
#   3. 3 nodes join; SendMessage at 64 concurrent callers where every input starts a turn
#   4. a burst of 1,000 concurrent Invoke calls (spawn + one-step agent + wait) on 3 nodes
# BENCH_CLIENT=PATH runs the load generator from another binary than the cluster: comparing two
# versions of the hub with one and the same client, "before and after in one run".
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
CLIENT=${BENCH_CLIENT:-$BIN}
DUR=${BENCH_DURATION:-10s}
DIR=$(mktemp -d /tmp/agentry-bench.XXXXXX)
. "$(dirname "$0")/cluster.sh"
cluster_start_hub "$BIN" "$DIR" --log-level info
echo "== machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== 1. ping, 64 concurrent, $DUR"
"$CLIENT" bench --rpc ping --concurrency 64 --duration "$DUR"
echo "== 2. send (durable input only, no nodes), 64 concurrent, 60000 calls"
"$CLIENT" bench --rpc send --concurrency 64 --calls 60000
cluster_start_nodes "$BIN" "$DIR" 3 400
echo "== 3. send (every input starts a turn on a node), 64 concurrent, $DUR"
"$CLIENT" bench --rpc send --concurrency 64 --duration "$DUR"
echo "== 4. invoke burst: 1000 concurrent calls, 3 nodes"
"$CLIENT" bench --rpc invoke --concurrency 1000 --calls 1000
