#!/bin/sh
# tests/pg_fixture.sh start|start-tls|stop STATE - a private PostgreSQL 15 server for tests.
#   start: initdb in a fresh temp dir (as the unprivileged `postgres` user when run as root:
#          initdb refuses root), on a free loopback port with its socket in the temp dir,
#          trust auth, no fsync (a throwaway cluster). Writes the temp dir to STATE and a libpq
#          keyword conninfo to STATE.conninfo. Tests read the conninfo file.
#   start-tls: the same, but TCP clients must use TLS (hostnossl rejected): a CA and a server
#          certificate for 127.0.0.1/localhost made by tests/tls_fixture.sh in DIR/tls, and a
#          URI in STATE.url with sslmode=verify-full&sslrootcert=DIR/tls/ca.crt.
#   stop:  stops that server by the PID in its postmaster.pid and removes the temp dir and STATE.
# CTest runs it as the setup and cleanup of fixture "pg" (tests/CMakeLists.txt).
set -eu
BIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$BIN/initdb" ] || BIN=/usr/lib/postgresql/15/bin
RUN=""
if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    RUN="runuser -u postgres --"
fi
case "${1:-}:${2:-}" in
start:?* | start-tls:?*)
    MODE=$1
    STATE=$2
    DIR=$(mktemp -d /tmp/agentry-pg-XXXXXX)
    echo "$DIR" >"$STATE"
    PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    mkdir -p "$DIR/data" "$DIR/sock"
    [ -z "$RUN" ] || chown -R postgres: "$DIR"
    $RUN "$BIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 --no-locale --no-sync \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    OPTS=""
    if [ "$MODE" = start-tls ]; then
        sh "$(dirname "$0")/tls_fixture.sh" init "$DIR/tls" >/dev/null
        cp "$DIR/tls/hub.crt" "$DIR/data/server.crt"
        cp "$DIR/tls/hub.key" "$DIR/data/server.key"
        chmod 600 "$DIR/data/server.key"
        chmod 755 "$DIR/tls"
        chmod 644 "$DIR/tls/ca.crt"
        [ -z "$RUN" ] || chown postgres: "$DIR/data/server.crt" "$DIR/data/server.key"
        printf 'local all all trust\nhostnossl all all 0.0.0.0/0 reject\nhostssl all all 127.0.0.1/32 trust\n' >"$DIR/data/pg_hba.conf"
        OPTS="-c ssl=on"
        echo "postgresql://postgres@127.0.0.1:$PORT/postgres?sslmode=verify-full&sslrootcert=$DIR/tls/ca.crt" >"$STATE.url"
    fi
    $RUN "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
        -o "-p $PORT -k $DIR/sock -c listen_addresses=127.0.0.1 $OPTS" start >/dev/null ||
        { cat "$DIR/server.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" >"$STATE.conninfo"
    ;;
stop:?*)
    STATE=$2
    [ -f "$STATE" ] || exit 0
    DIR=$(cat "$STATE")
    if [ -f "$DIR/data/postmaster.pid" ]; then
        PID=$(head -1 "$DIR/data/postmaster.pid")
        kill -INT "$PID" 2>/dev/null || true # fast shutdown
        i=0
        while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$DIR" "$STATE" "$STATE.conninfo" "$STATE.url"
    ;;
*)
    echo "usage: tests/pg_fixture.sh start|start-tls|stop STATE" >&2
    exit 2
    ;;
esac
