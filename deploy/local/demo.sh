#!/bin/sh
# deploy/local/demo.sh AGENTRY_BIN - a local cluster on the embedded store, end to end:
# one hub (SQLite in a temp dir) + 3 nodes on free loopback ports, one sample agent that calls a
# tool and answers, its trace printed, then a graceful shutdown. Logs stay in the temp dir.
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
DIR=$(mktemp -d /tmp/agentry-demo.XXXXXX)
. "$(dirname "$0")/cluster.sh"

echo "==> hub and 3 nodes on loopback, store sqlite:$DIR/hub.db (logs in $DIR)"
cluster_start_hub "$BIN" "$DIR"
cluster_start_nodes "$BIN" "$DIR" 3 8
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
