#!/bin/sh
# deploy/local/bench.sh AGENTRY_BIN - the benchmarks recorded in docs/benchmarks.md, on a local
# cluster: a hub on SQLite (WAL, synchronous=FULL) in a temp dir, then 3 nodes on loopback.
#   1. Ping at 64 concurrent callers (transport baseline, no store work)
#   2. SendMessage at 64 concurrent callers, before any node joins: each input is stored durably
#      and acknowledged, nothing else (60,000 calls: 64 agents x at most 1,024 waiting inputs)
#   3. 3 nodes join; SendMessage at 64 concurrent callers where every input starts a turn
#   4. a burst of 1,000 concurrent Invoke calls (spawn + one-step agent + wait) on 3 nodes
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
DUR=${BENCH_DURATION:-10s}
DIR=$(mktemp -d /tmp/agentry-bench.XXXXXX)
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AGENTRY_HUB=127.0.0.1:$PORT
PIDS=""
cleanup() {
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
"$BIN" hub --listen "$AGENTRY_HUB" --store "sqlite:$DIR/hub.db" --log-level warn 2>"$DIR/hub.log" &
PIDS="$!"
i=0
until "$BIN" ps >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -le 100 ] || { echo "bench: hub did not start" >&2; exit 1; }; sleep 0.1
done
echo "== machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== 1. ping, 64 concurrent, $DUR"
"$BIN" bench --rpc ping --concurrency 64 --duration "$DUR"
echo "== 2. send (durable input only, no nodes), 64 concurrent, 60000 calls"
"$BIN" bench --rpc send --concurrency 64 --calls 60000
for i in 1 2 3; do
    "$BIN" node join --hub "$AGENTRY_HUB" --node-id "bench-$i" --capacity 400 \
        2>"$DIR/node-$i.log" &
    PIDS="$PIDS $!"
done
i=0
until [ "$(cat "$DIR"/node-*.log | grep -c 'event=node.registered')" -ge 3 ]; do
    i=$((i + 1)); [ $i -le 100 ] || { echo "bench: nodes did not register" >&2; exit 1; }; sleep 0.1
done
echo "== 3. send (every input starts a turn on a node), 64 concurrent, $DUR"
"$BIN" bench --rpc send --concurrency 64 --duration "$DUR"
echo "== 4. invoke burst: 1000 concurrent calls, 3 nodes"
"$BIN" bench --rpc invoke --concurrency 1000 --calls 1000
