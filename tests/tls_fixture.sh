#!/bin/sh
# tests/tls_fixture.sh - test certificates made with the openssl program, in the layout of a TLS
# directory (docs/operations.md, "TLS everywhere"): ca.crt, hub.crt/hub.key, node.crt/node.key,
# admin.crt/admin.key. EC P-256 keys, identities as SAN URIs agentry://<kind>/<name> plus
# agentry://role/<role> (and agentry://namespace/<ns>). Tests only: `agentry certs` makes them
# for real deployments.
#
#   tls_fixture.sh init DIR                 CA (ca.key kept for issue) and the four pairs above
#   tls_fixture.sh issue DIR FILE KIND NAME ROLE [DAYS] [NS]
#                                           FILE.crt/FILE.key signed by DIR's CA; DAYS -1 gives a
#                                           certificate that expired yesterday
#   tls_fixture.sh server DIR FILE          another hub server pair (rotation tests)
#   tls_fixture.sh foreign DIR              DIR/foreign/: another CA with its own admin pair
set -eu

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

ca() { # DIR CN
    key "$1/ca.key"
    openssl req -x509 -new -key "$1/ca.key" -out "$1/ca.crt" -days 30 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

sign() { # DIR FILE DAYS CN EXT
    key "$1/$2.key"
    openssl req -new -key "$1/$2.key" -subj "/CN=$4" -out "$1/$2.csr"
    printf '%s\n' "$5" >"$1/$2.ext"
    openssl x509 -req -in "$1/$2.csr" -CA "$1/ca.crt" -CAkey "$1/ca.key" -CAcreateserial \
        -days "$3" -out "$1/$2.crt" -extfile "$1/$2.ext" 2>/dev/null
    rm -f "$1/$2.csr" "$1/$2.ext"
}

server() { # DIR FILE
    sign "$1" "$2" 30 hub "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,URI:agentry://hub/hub,URI:agentry://role/admin
extendedKeyUsage=serverAuth,clientAuth"
}

issue() { # DIR FILE KIND NAME ROLE DAYS [NS]
    sans="URI:agentry://$3/$4,URI:agentry://role/$5"
    [ -n "${7:-}" ] && sans="$sans,URI:agentry://namespace/$7"
    sign "$1" "$2" "$6" "$4" "subjectAltName=$sans
extendedKeyUsage=clientAuth"
}

cmd=${1:-}
case "$cmd" in
init)
    mkdir -p "$2"
    ca "$2" "agentry test CA"
    server "$2" hub
    issue "$2" node node node1 node 30
    issue "$2" admin user admin admin 30
    ;;
issue) issue "$2" "$3" "$4" "$5" "$6" "${7:-30}" "${8:-}" ;;
server) server "$2" "$3" ;;
foreign)
    mkdir -p "$2/foreign"
    ca "$2/foreign" "another CA"
    issue "$2/foreign" admin user admin admin 30
    ;;
*)
    echo "usage: tls_fixture.sh init|issue|server|foreign DIR ..." >&2
    exit 2
    ;;
esac
