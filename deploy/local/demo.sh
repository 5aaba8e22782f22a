#!/bin/sh
# deploy/local/demo.sh AGENTRY_BIN - a local cluster on the embedded store, end to end:
# one hub (SQLite in a temp dir) + 3 nodes on free loopback ports, one sample agent that calls a
# tool and answers, its trace printed, then a graceful shutdown. Logs stay in the temp dir.
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
DIR=$(mktemp -d /tmp/agentry-demo.XXXXXX)
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AGENTRY_HUB=127.0.0.1:$PORT
PIDS=""
cleanup() {
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

echo "==> hub on $AGENTRY_HUB, store sqlite:$DIR/hub.db (logs in $DIR)"
"$BIN" hub --listen "$AGENTRY_HUB" --store "sqlite:$DIR/hub.db" 2>"$DIR/hub.log" &
PIDS="$!"
for i in 1 2 3; do
    "$BIN" node join --hub "$AGENTRY_HUB" --node-id "node-$i" --capacity 8 --labels demo=true \
        2>"$DIR/node-$i.log" &
    PIDS="$PIDS $!"
done

# Wait (at most 10 s) until all three nodes have registered with the hub.
i=0
until [ "$(grep -c 'event=node.registered' "$DIR/hub.log" 2>/dev/null || true)" -ge 3 ]; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "demo: nodes did not register; see $DIR" >&2; exit 1; fi
    sleep 0.1
done
echo "==> 3 nodes joined"

ID=$("$BIN" spawn --name demo --tool echo --label app=demo \
     "echo hello from an agentry node; final The cluster works: the agent called a tool and answered.")
echo "==> spawned agent $ID"
ANSWER=$("$BIN" invoke --name demo-invoke --tool echo "echo ping; final pong")
echo "==> invoke answered: $ANSWER"

# Wait for the sample agent's turn to end, then print its whole trace.
i=0
until "$BIN" get --json "$ID" | grep -q '"state":[[:space:]]*"idle"'; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "demo: agent $ID did not finish; see $DIR" >&2; exit 1; fi
    sleep 0.1
done
echo "==> trace of $ID"
"$BIN" trace "$ID"
echo "==> agents"
"$BIN" ps
echo "==> stopping (SIGTERM); logs kept in $DIR"
