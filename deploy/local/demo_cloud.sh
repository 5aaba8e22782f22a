#!/bin/sh
# deploy/local/demo_cloud.sh [--headless] AGENTRY_BIN - the whole cluster on this machine, as
# `make demo-cloud` runs it (docs/demo-cloud.md): in a fresh temp dir, a private PostgreSQL and a
# private etcd, certificates for mutual TLS, a hub on PostgreSQL with the dashboard (https),
# joined to etcd, and 3 nodes that find the hub through etcd. Then a team: agent_0
# (deploy/local/demo_cloud.yaml) gives two researchers, which run in parallel on two nodes, half
# of a question each, waits for them, and asks to write a report, which this script approves
# when the approval appears. The trace streams to the terminal; the final answer and the
# dashboard's URL and sign-in token are printed. Then everything keeps running until Ctrl-C
# (or SIGTERM), which stops the nodes, the hub, etcd and PostgreSQL in that order, by PID.
#
# --headless (or DEMO_EXIT=1): stop everything once the flow has answered, and exit 0.
# The model is the offline `mock` unless OPENAI_API_KEY or OPENAI_BASE_URL is set: then every
# agent runs openai/$OPENAI_MODEL (default gpt-4o-mini) at $OPENAI_BASE_URL (default OpenAI's).
#
# Every server runs in its own session (setsid), so a Ctrl-C in the terminal reaches this script
# and its trace followers only, and the stop is ordered. Every wait has a deadline and fails naming
# the log to read. On exit the data (PostgreSQL's and etcd's, the workspaces) is removed; the logs
# and certificates stay in the temp dir, and DIR/demo.env lists what ran (the test reads it).
set -eu

HEADLESS=${DEMO_EXIT:-0}
case "${1:-}" in
--headless) HEADLESS=1; shift ;;
esac
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: deploy/local/demo_cloud.sh [--headless] AGENTRY_BIN" >&2
    exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
START_S=30  # each process is up within this
FLOW_S=${DEMO_FLOW_TIMEOUT:-300}  # the team answers within this
for tool in "$PGBIN/initdb" etcd python3 setsid timeout; do
    command -v "$tool" >/dev/null || {
        echo "demo-cloud: '$tool' is not installed; run: sh deploy/deps.sh --cloud" >&2
        exit 1
    }
done
# What the processes do is decided here, not by the caller's AGENTRY_* variables (a leftover
# AGENTRY_TOKEN or AGENTRY_TLS_DIR would change who the CLI is, or every node's identity).
for v in $(env | sed -n 's/^\(AGENTRY_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

DIR=$(mktemp -d /tmp/agentry-demo-cloud.XXXXXX)
chmod 755 "$DIR" # PostgreSQL runs as the user postgres when we are root
LOGS=$DIR/logs
TLS=$DIR/tls
mkdir -p "$LOGS" "$DIR/work"
NODE_PIDS="" HUB_PID="" ETCD_PID="" PG_PID="" FOLLOW_PID="" EVENTS_PID=""

say() { printf '==> %s ... ' "$*"; }
ok() { echo "${1:-ok}"; }
die() {
    echo "failed" >&2
    echo "demo-cloud: $*" >&2
    exit 1
}
freeport() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# wait_log PID SECONDS PATTERN LOG WHAT: until LOG has PATTERN; fails if PID exits first or
# the deadline passes, naming LOG.
wait_log() {
    _end=$(($(date +%s) + $2))
    until grep -q "$3" "$4" 2>/dev/null; do
        kill -0 "$1" 2>/dev/null || die "$5 exited; read $4"
        [ "$(date +%s)" -lt "$_end" ] || die "$5 did not start within $2 s; read $4"
        sleep 0.1
    done
}

# shellcheck disable=SC2317 # called from stop_all
# stop_pid PID WHAT: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    _i=0
    while kill -0 "$1" 2>/dev/null && [ "$_i" -lt 100 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    if kill -0 "$1" 2>/dev/null; then
        echo "demo-cloud: $2 did not stop within 10 s; killing it" >&2
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called from the EXIT trap
stop_all() {
    # Another Ctrl-C must not leave servers behind: each stop below has its own deadline.
    trap - EXIT
    trap '' INT TERM
    set +e
    printf '\n==> stopping the nodes, the hub, etcd and PostgreSQL ... '
    for p in $FOLLOW_PID $EVENTS_PID; do kill -TERM "$p" 2>/dev/null; done
    for p in $NODE_PIDS; do kill -TERM "$p" 2>/dev/null; done # they drain at once
    for p in $NODE_PIDS; do stop_pid "$p" "node (pid $p)"; done
    stop_pid "$HUB_PID" "the hub"
    stop_pid "$ETCD_PID" "etcd"
    if [ -n "$PG_PID" ]; then # fast shutdown; not our child (pg_ctl started it)
        kill -INT "$PG_PID" 2>/dev/null
        _i=0
        while kill -0 "$PG_PID" 2>/dev/null && [ "$_i" -lt 100 ]; do
            sleep 0.1
            _i=$((_i + 1))
        done
        kill -KILL "$PG_PID" 2>/dev/null
    fi
    for p in $FOLLOW_PID $EVENTS_PID; do wait "$p" 2>/dev/null; done
    rm -rf "$DIR/pg" "$DIR/etcd" "$DIR/work" "$DIR/events"
    echo "ok"
    echo "==> logs and certificates kept in $DIR (the data was removed)"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> working directory $DIR (logs in $LOGS)"

# --- etcd: one member on loopback, plaintext (only the hub and nodes talk to it). Launched
# first and waited for after PostgreSQL, which starts meanwhile. A single member elects itself:
# short election settings only make it ready sooner. -------------------------------------------
ETCD_PORT=$(freeport)
ETCD_PEER=$(freeport)
ETCD=http://127.0.0.1:$ETCD_PORT
mkdir -p "$DIR/etcd"
setsid etcd --name demo --data-dir "$DIR/etcd/data" \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" --initial-cluster-state new \
    --heartbeat-interval 50 --election-timeout 250 \
    --logger zap --log-outputs "$LOGS/etcd.log" >"$LOGS/etcd.stdout" 2>&1 &
ETCD_PID=$!

# --- PostgreSQL: initdb as the user postgres when we are root (initdb refuses root) ----------
say "starting PostgreSQL"
RUN=""
mkdir -p "$DIR/pg/data" "$DIR/pg/sock"
if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown -R postgres: "$DIR/pg"
    RUN="runuser -u postgres --"
fi
PG_PORT=$(freeport)
$RUN "$PGBIN/initdb" -D "$DIR/pg/data" -A trust -U postgres -E UTF8 --no-locale --no-sync \
    >"$LOGS/initdb.log" 2>&1 || die "initdb failed; read $LOGS/initdb.log"
touch "$LOGS/postgresql.log"
[ -z "$RUN" ] || chown postgres: "$LOGS/postgresql.log"
$RUN "$PGBIN/pg_ctl" -D "$DIR/pg/data" -l "$LOGS/postgresql.log" -w -t "$START_S" \
    -o "-p $PG_PORT -k $DIR/pg/sock -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 ||
    die "PostgreSQL did not start; read $LOGS/postgresql.log"
PG_PID=$(head -1 "$DIR/pg/data/postmaster.pid")
ok "ok (127.0.0.1:$PG_PORT)"

say "starting etcd"
_end=$(($(date +%s) + START_S))
HEALTHY='import sys, urllib.request as u
sys.exit(b"\"health\":\"true\"" not in u.urlopen(sys.argv[1], timeout=1).read())'
until python3 -c "$HEALTHY" "$ETCD/health" 2>/dev/null; do
    kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited; read $LOGS/etcd.log"
    [ "$(date +%s)" -lt "$_end" ] || die "etcd was not healthy within $START_S s; read $LOGS/etcd.log"
    sleep 0.1
done
ok "ok ($ETCD)"

# --- certificates: CA, hub, admin (this script's CLI calls), one per node; a dashboard token --
say "making certificates (agentry certs) and a dashboard token"
"$BIN" certs init --dir "$TLS" >"$LOGS/certs.log" 2>&1 || die "agentry certs init failed; read $LOGS/certs.log"
for k in 1 2 3; do
    "$BIN" certs issue --dir "$TLS" --role node --name "node-$k" >>"$LOGS/certs.log" 2>&1 ||
        die "agentry certs issue failed; read $LOGS/certs.log"
done
"$BIN" token create --role admin --namespace '*' --name dashboard >"$TLS/token.txt" 2>>"$LOGS/certs.log" ||
    die "agentry token create failed; read $LOGS/certs.log"
TOKEN=$(sed -n 's/^token: //p' "$TLS/token.txt")
{
    echo "# deploy/local/demo_cloud.sh: the dashboard's sign-in token (admin, every namespace)"
    echo "tokens:"
    sed -n '/^  - name:/,$p' "$TLS/token.txt"
} >"$DIR/policy.yaml"
chmod 600 "$TLS/token.txt"
ok

# --- the hub: mutual TLS, PostgreSQL, etcd, the dashboard over https -------------------------
say "starting the hub (PostgreSQL store, etcd, mutual TLS, dashboard)"
HUB=127.0.0.1:$(freeport)
WEB_PORT=$(freeport)
setsid "$BIN" hub --listen "$HUB" --hub-id demo-hub \
    --store "postgresql://postgres@127.0.0.1:$PG_PORT/postgres" \
    --etcd "$ETCD" --tls-dir "$TLS" --policy "$DIR/policy.yaml" \
    --http-listen "127.0.0.1:$WEB_PORT" --scheduler spread 2>"$LOGS/hub.log" &
HUB_PID=$!
wait_log "$HUB_PID" "$START_S" 'event=hub.started' "$LOGS/hub.log" "the hub"
ok "ok ($HUB, leader in etcd)"

# --- 3 nodes that find the hub through etcd -------------------------------------------------
MODEL=mock
set --
if [ -n "${OPENAI_API_KEY:-}${OPENAI_BASE_URL:-}" ]; then
    MODEL=openai/${OPENAI_MODEL:-gpt-4o-mini}
    # A local server (Ollama, vLLM) needs no key, but the provider wants one to send.
    [ -n "${OPENAI_API_KEY:-}" ] || export OPENAI_API_KEY=unused
    set -- --model-opt "openai.base_url=${OPENAI_BASE_URL:-https://api.openai.com/v1}"
else
    # Paced so that a person can follow it: every mock reply takes 200 ms, every echo 1 s.
    set -- --model-opt mock.latency=200ms --tool-opt echo.latency=1s
fi
say "starting 3 nodes (found through etcd; model $MODEL)"
for k in 1 2 3; do
    setsid "$BIN" node join --etcd "$ETCD" --tls-dir "$TLS" --cert "node-$k.crt" \
        --key "node-$k.key" --node-id "node-$k" --labels "zone=zone-$k,demo=cloud" \
        --capacity 4 --workspace-root "$DIR/work/node-$k" "$@" 2>"$LOGS/node-$k.log" &
    NODE_PIDS="$NODE_PIDS $!"
done
k=0
for p in $NODE_PIDS; do
    k=$((k + 1))
    wait_log "$p" "$START_S" 'event=node.registered' "$LOGS/node-$k.log" "node-$k"
done
ok

export AGENTRY_HUB="$HUB" AGENTRY_TLS_DIR="$TLS" # the CLI below: admin.crt
URL=https://127.0.0.1:$WEB_PORT/
cat >"$DIR/demo.env" <<EOF
DIR=$DIR
HUB=$HUB
TLS_DIR=$TLS
DASHBOARD=$URL
TOKEN=$TOKEN
ETCD=$ETCD
PG_PORT=$PG_PORT
PORTS=${HUB#*:} $WEB_PORT $PG_PORT $ETCD_PORT $ETCD_PEER
PIDS=$NODE_PIDS $HUB_PID $ETCD_PID $PG_PID
MODEL=$MODEL
EOF

# --- the flow --------------------------------------------------------------------------------
SPEC=$DIR/team.yaml
sed "s|^\([[:space:]]*model:\) mock\$|\1 $MODEL|" "$HERE/demo_cloud.yaml" >"$SPEC"
if [ "$MODEL" = mock ]; then
    # The mock's script (worker/model_mock.c): the calls a real model would make.
    INPUT='call spawn_agent {"template":"researcher","name":"researcher-store","input":"echo The hub commits every event of every agent to PostgreSQL before it answers, so a turn survives a crash of its node or of the hub."};'
    INPUT="$INPUT"' call spawn_agent {"template":"researcher","name":"researcher-sched","input":"echo The spread scheduler places each turn on the least busy node, and anti-affinity keeps the two researchers apart."};'
    INPUT="$INPUT"' wait; call write_file {"path":"report.md","content":"# How agentry keeps a team running\n\n- storage: every event is in PostgreSQL before the hub answers\n- scheduling: researchers run on separate nodes, at the same time\n"};'
    INPUT="$INPUT"' final Two researchers answered in parallel on separate nodes: every event is committed to PostgreSQL before the hub answers, and the spread scheduler keeps the researchers apart. The report is in report.md.'
else
    INPUT="How does a distributed agent runtime keep an agent's work safe when a machine fails, and how should it spread agents over machines?"
fi
say "spawning agent_0 (a team of two researchers)"
ID=$("$BIN" spawn --spec "$SPEC" "$INPUT" 2>"$LOGS/spawn.log") || die "agentry spawn failed; read $LOGS/spawn.log"
echo "AGENT=$ID" >>"$DIR/demo.env"
ok "$ID"
cat <<EOF

    dashboard: ${URL}#/agent/$ID
    sign in with the token: $TOKEN
    (the certificate is self-signed: accept it, or trust $TLS/ca.crt)
    the CLI:   export AGENTRY_HUB=$HUB AGENTRY_TLS_DIR=$TLS
               $BIN ps --tree

==> trace of agent_0 (agentry trace -f $ID):
EOF
"$BIN" trace -f "$ID" &
FOLLOW_PID=$!

# Follow agent_0's events (one JSON line each): approve its call when the approval appears,
# stop at the end of its turn. The follower ends there, or at the flow's deadline.
ANSWER=$DIR/answer.json
: >"$ANSWER"
mkfifo "$DIR/events"
timeout "$FLOW_S" "$BIN" trace -f -o jsonl "$ID" >"$DIR/events" 2>"$LOGS/follow.log" &
EVENTS_PID=$!
while IFS= read -r line; do
    case "$line" in
    *'"kind":"approval_required"'*)
        call=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["payload"]["id"])')
        echo "==> approval asked for call $call; approving it (agentry approve $ID $call)"
        "$BIN" approve "$ID" "$call" >>"$LOGS/approve.log" 2>&1 ||
            echo "demo-cloud: agentry approve failed; read $LOGS/approve.log" >&2
        ;;
    *'"kind":"final"'* | *'"kind":"yield"'* | *'"kind":"error"'* | *'"kind":"killed"'*)
        printf '%s\n' "$line" >"$ANSWER"
        break
        ;;
    esac
done <"$DIR/events"
kill -TERM "$EVENTS_PID" 2>/dev/null || true
wait "$EVENTS_PID" 2>/dev/null || true
EVENTS_PID=""
[ -s "$ANSWER" ] || die "agent_0's trace ended (after at most $FLOW_S s) before its turn did; read $LOGS/follow.log, $LOGS/hub.log and $LOGS/node-*.log"
sleep 0.5 # the trace on screen catches up with the turn's end
kind=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kind"])' "$ANSWER")
[ "$kind" = final ] || die "agent_0's turn ended with '$kind', not an answer: $(cat "$ANSWER")"
echo
echo "==> final answer of agent_0:"
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload"]["output"])' "$ANSWER"
echo "==> the team (agentry ps --tree):"
"$BIN" ps --tree
echo "DONE=1" >>"$DIR/demo.env"

if [ "$HEADLESS" = 1 ]; then
    exit 0
fi
cat <<EOF

==> the cluster keeps running: open ${URL}#/agent/$ID
    (token $TOKEN); Ctrl-C stops everything.
EOF
# wait returns when a trapped signal comes; the hub exiting by itself is a failure.
wait "$HUB_PID" || true
HUB_PID=""
die "the hub exited; read $LOGS/hub.log"
