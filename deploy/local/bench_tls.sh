#!/bin/sh
# deploy/local/bench_tls.sh AGENTRY_BIN - issue 14's benchmark (docs/benchmarks.md, "Issue 14:
# mTLS"): two identical local clusters (a hub on SQLite and 3 nodes each), one in plaintext and
# one under mutual TLS, measured alternately in the same run on long-lived channels:
#   1. Ping at 64 concurrent callers
#   2. SendMessage at 64 concurrent callers, every input starting a turn
#   3. a burst of 1,000 concurrent Invoke calls
#   4. a reconnect storm: 1,000 new connections at once, one Ping each (handshakes/s)
# The certificates come from tests/tls_fixture.sh (the openssl program). ROUNDS=N repeats 1-4,
# alternating which cluster is measured first.
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
DUR=${BENCH_DURATION:-5s}
ROUNDS=${ROUNDS:-4}
DIR=$(mktemp -d /tmp/agentry-bench-tls.XXXXXX)
TLS=$DIR/tls
sh "$HERE/../../tests/tls_fixture.sh" init "$TLS"
for k in 1 2 3; do sh "$HERE/../../tests/tls_fixture.sh" issue "$TLS" "node-$k" node "node-$k" node; done
. "$HERE/cluster.sh"
mkdir -p "$DIR/plain" "$DIR/mtls"
AGENTRY_TLS_DIR="" cluster_start_hub "$BIN" "$DIR/plain"
PLAIN=$AGENTRY_HUB
AGENTRY_TLS_DIR="" cluster_start_nodes "$BIN" "$DIR/plain" 3 400
export AGENTRY_TLS_DIR="$TLS"
cluster_start_hub "$BIN" "$DIR/mtls"
MTLS=$AGENTRY_HUB
cluster_start_nodes "$BIN" "$DIR/mtls" 3 400
echo "== machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
plain() { echo "== $1: plaintext"; shift; AGENTRY_TLS_DIR="" "$BIN" bench --hub "$PLAIN" "$@"; }
mtls() { echo "== $1: mTLS"; shift; "$BIN" bench --hub "$MTLS" --tls-dir "$TLS" "$@"; }
# Odd rounds measure plaintext first, even rounds mTLS first: whichever cluster goes first pays
# for the page cache, the SQLite WAL growing and the CPU's clock ramp, so alternating keeps that
# cost from landing on one side (the first round showed it as a 34-37% "loss" on Ping).
both() { # TITLE BENCH-ARGS...
    if [ $((r % 2)) -eq 1 ]; then plain "$@"; mtls "$@"; else mtls "$@"; plain "$@"; fi
}
for r in $(seq 1 "$ROUNDS"); do
    echo "#### round $r"
    both "1. ping, 64 concurrent, $DUR" --rpc ping --concurrency 64 --duration "$DUR"
    both "2. send (every input starts a turn), 64 concurrent, $DUR" --rpc send --concurrency 64 --duration "$DUR"
    both "3. invoke burst, 1000 concurrent" --rpc invoke --concurrency 1000 --calls 1000
    both "4. reconnect storm, 1000 new connections, one ping each" --rpc ping --channels 1000 --concurrency 1000 --calls 1000
done
