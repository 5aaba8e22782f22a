#!/bin/sh
# tests/etcd_fixture.sh start|start-tls|halt|restart|stop STATE - a private etcd for tests.
#   start:     a one-member etcd in a fresh temp dir, on free loopback ports, with fast elections
#              (--heartbeat-interval 10 --election-timeout 100: ready in ~0.1 s, and a lease TTL
#              of 1 s is granted as 1 s). Waits for /health. Writes the temp dir to STATE and the
#              client URL to STATE.url, and prints the URL.
#   start-tls: the same over https with client-certificate auth: makes a throwaway CA, a server
#              certificate (SAN 127.0.0.1 and localhost) and a client certificate (clientAuth) in
#              the temp dir as ca.crt, client.crt and client.key. Peer traffic stays plain http.
#   halt:      stops the server (SIGTERM, then waits for the PID) but keeps its data and ports.
#   restart:   starts it again on the same data dir and URLs, and waits for /health.
#   stop:      halts and removes the temp dir, STATE and STATE.url.
# tests/unit/test-common-etcd.c drives it (AGENTRY_SRC names the source tree).
set -eu

freeport() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# make_certs DIR: EC P-256 CA, server and client certificates, valid one day. The server
# certificate is also a client certificate: etcd 3.4's JSON gateway dials its own gRPC server with
# it, and under --client-cert-auth a serverAuth-only certificate makes every /v3 call answer
# {"error":"connection closed","code":14}.
make_certs() {
    d=$1
    subj() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$d/$2.key" -out "$d/$2.csr" 2>/dev/null; }
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj "/CN=agentry test CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    subj localhost server
    subj agentry-test-client client
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/server.ext"
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
    for c in server client; do
        openssl x509 -req -in "$d/$c.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
            -days 1 -extfile "$d/$c.ext" -out "$d/$c.crt" 2>/dev/null
    done
}

# launch DIR: start etcd with the settings in DIR/env and wait until it is healthy.
launch() {
    d=$1
    # shellcheck disable=SC1091
    . "$d/env"
    set -- --name test --data-dir "$d/data" \
        --listen-client-urls "$URL" --advertise-client-urls "$URL" \
        --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
        --initial-cluster "test=$PEER" --initial-cluster-state new \
        --initial-cluster-token "agentry-test" \
        --heartbeat-interval 10 --election-timeout 100 \
        --logger zap --log-outputs "$d/etcd.log"
    curl_tls=""
    if [ "$TLS" = 1 ]; then
        set -- "$@" --cert-file "$d/server.crt" --key-file "$d/server.key" \
            --trusted-ca-file "$d/ca.crt" --client-cert-auth
        curl_tls="--cacert $d/ca.crt --cert $d/client.crt --key $d/client.key"
    fi
    etcd "$@" >>"$d/etcd.stdout" 2>&1 &
    echo $! >"$d/etcd.pid"
    i=0
    # shellcheck disable=SC2086
    until curl -fsS $curl_tls "$URL/health" 2>/dev/null | grep -q '"health":"true"'; do
        if ! kill -0 "$(cat "$d/etcd.pid")" 2>/dev/null || [ $i -ge 200 ]; then
            halt "$d"
            return 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
}

# halt DIR: SIGTERM the server and wait for it (it takes 1-2 s), SIGKILL after 10 s.
halt() {
    d=$1
    [ -f "$d/etcd.pid" ] || return 0
    pid=$(cat "$d/etcd.pid")
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$d/etcd.pid"
}

# start STATE TLS: the free-port probe is racy (another process may take the port between the
# probe and etcd's bind), so try a few times on fresh ports.
start() {
    state=$1
    tls=$2
    d=$(mktemp -d /tmp/agentry-etcd-XXXXXX)
    echo "$d" >"$state"
    scheme=http
    if [ "$tls" = 1 ]; then
        make_certs "$d"
        scheme=https
    fi
    for _ in 1 2 3; do
        rm -rf "$d/data"
        printf 'URL=%s://127.0.0.1:%s\nPEER=http://127.0.0.1:%s\nTLS=%s\n' \
            "$scheme" "$(freeport)" "$(freeport)" "$tls" >"$d/env"
        if launch "$d"; then
            # shellcheck disable=SC1091
            . "$d/env"
            echo "$URL" >"$state.url"
            echo "$URL"
            return 0
        fi
    done
    cat "$d/etcd.stdout" "$d/etcd.log" >&2 || true
    return 1
}

case "${1:-}:${2:-}" in
start:?*) start "$2" 0 ;;
start-tls:?*) start "$2" 1 ;;
halt:?*) halt "$(cat "$2")" ;;
restart:?*) launch "$(cat "$2")" ;;
stop:?*)
    [ -f "$2" ] || exit 0
    d=$(cat "$2")
    halt "$d"
    rm -rf "$d" "$2" "$2.url"
    ;;
*)
    echo "usage: tests/etcd_fixture.sh start|start-tls|halt|restart|stop STATE" >&2
    exit 2
    ;;
esac
