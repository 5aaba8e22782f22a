# deploy/local/cluster.sh - sourced by demo.sh and bench.sh: start a hub and nodes on loopback,
# wait for them, and stop them all with SIGTERM when the script exits.
#   cluster_start_hub BIN DIR [extra hub flags...]  -> exports AGENTRY_HUB
#   cluster_start_nodes BIN DIR COUNT CAPACITY
# With $AGENTRY_TLS_DIR (mutual TLS, inherited by every process), node K uses the certificate
# node-K.crt/.key of that directory when there is one: the hub accepts a node id only from it.
# The hub's store is $CLUSTER_STORE when set (any --store URL), else sqlite:DIR/hub.db.
CLUSTER_PIDS=""

cluster_stop() {
    for p in $CLUSTER_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $CLUSTER_PIDS; do wait "$p" 2>/dev/null || true; done
    CLUSTER_PIDS=""
}

# Poll (up to 10 s) until PATTERN occurs N times in the files matching GLOB. The glob is expanded
# on every poll: a background process creates its log file only once it has started.
cluster_wait_lines() {
    _n=$1 _pat=$2 _glob=$3
    _i=0
    # shellcheck disable=SC2086 # the glob must expand here; mktemp paths have no spaces
    until [ "$(cat $_glob 2>/dev/null | grep -c "$_pat")" -ge "$_n" ]; do
        _i=$((_i + 1))
        if [ $_i -gt 100 ]; then echo "cluster: timed out waiting for '$_pat'" >&2; return 1; fi
        sleep 0.1
    done
}

cluster_start_hub() {
    _bin=$1 _dir=$2; shift 2
    _port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    export AGENTRY_HUB=127.0.0.1:$_port
    trap cluster_stop EXIT INT TERM
    "$_bin" hub --listen "$AGENTRY_HUB" --store "${CLUSTER_STORE:-sqlite:$_dir/hub.db}" "$@" \
        2>"$_dir/hub.log" &
    CLUSTER_PIDS="$CLUSTER_PIDS $!"
    cluster_wait_lines 1 'event=hub.started' "$_dir/hub.log"
}

cluster_start_nodes() {
    _bin=$1 _dir=$2 _count=$3 _cap=$4
    for _k in $(seq 1 "$_count"); do
        set --
        if [ -n "${AGENTRY_TLS_DIR:-}" ] && [ -f "$AGENTRY_TLS_DIR/node-$_k.crt" ]; then
            set -- --cert "node-$_k.crt"
        fi
        "$_bin" node join --hub "$AGENTRY_HUB" --node-id "node-$_k" --capacity "$_cap" \
            --labels demo=true "$@" 2>"$_dir/node-$_k.log" &
        CLUSTER_PIDS="$CLUSTER_PIDS $!"
    done
    cluster_wait_lines "$_count" 'event=node.registered' "$_dir/node-*.log"
}
