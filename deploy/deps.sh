#!/bin/sh
# deploy/deps.sh - install the Debian 12 packages agentry builds and tests with.
# Idempotent: installs only what is missing, and says so. Uses sudo when not root.
set -eu
PKGS="build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf libsqlite3-dev
libcjson-dev libcmocka-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
