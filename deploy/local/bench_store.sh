#!/bin/sh
# deploy/local/bench_store.sh AGENTRY_BIN - the stores side by side, in one run (issue 12, point
# 10): a private PostgreSQL 15 (tests/pg_fixture.sh: fsync and synchronous_commit on, as shipped)
# and SQLite (WAL, synchronous=FULL), on this machine, one after the other:
#   0. pgbench, 1 client, one single-row INSERT per transaction, prepared: the database's own
#      durable commit rate, the anchor the hub's group commit is compared with
#   then for each store, a hub on it:
#   1. SendMessage @64 before any node joins (each input stored durably, then acknowledged)
#   2. 3 nodes join (capacity 400); Invoke @256 for BENCH_DURATION: one-step turns per second
# BENCH_DURATION (default 10s) bounds 0 and 2.
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
DUR=${BENCH_DURATION:-10s}
SECS=${DUR%s}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/agentry-bench-store.XXXXXX)
. "$HERE/cluster.sh"
sh "$HERE/../../tests/pg_fixture.sh" start "$DIR/pg.state"
trap 'cluster_stop; sh "$HERE/../../tests/pg_fixture.sh" stop "$DIR/pg.state"' EXIT INT TERM
CONN=$(cat "$DIR/pg.state.conninfo")
echo "== machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
psql -q "$CONN" -c "create table ev(id bigserial primary key, node text not null, payload text not null, ts timestamptz not null default now())"
echo "INSERT INTO ev(node, payload) VALUES ('n' || :client_id, 'payload-0123456789abcdef');" >"$DIR/ins1.sql"
echo "== 0. pgbench: 1 client, single-row INSERT per commit, ${SECS}s"
pgbench -n -M prepared -T "$SECS" -c 1 -j 1 -f "$DIR/ins1.sql" "$CONN" 2>/dev/null | grep -E "^tps"
for store in "postgres:$CONN" "sqlite:$DIR/hub.db"; do
    echo "## store ${store%%:*}"
    CLUSTER_STORE=$store cluster_start_hub "$BIN" "$DIR"
    echo "== 1. send (durable input only, no nodes), 64 concurrent, 30000 calls"
    "$BIN" bench --rpc send --concurrency 64 --calls 30000 2>/dev/null | grep -E "calls/s|latency"
    cluster_start_nodes "$BIN" "$DIR" 3 400
    echo "== 2. invoke (one-step turns), 256 concurrent, $DUR"
    "$BIN" bench --rpc invoke --concurrency 256 --duration "$DUR" 2>/dev/null |
        grep -E "calls/s|latency"
    cluster_stop
    rm -f "$DIR"/hub.log "$DIR"/node-*.log # the next hub's start line is waited for afresh
done
