#!/bin/sh
# deploy/deps.sh [--test] [--cloud] [--image] - install the Debian 12 packages agentry builds
# and tests with. --test adds what only the test path needs (make test passes it; make deps does
# not, so a job that only builds installs no more than it did). --cloud adds the servers make
# demo-cloud runs privately, --image the container builder of make image. Idempotent: installs only what is missing, and says so. Uses sudo when not root.
set -eu
PKGS="build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf libsqlite3-dev
libcjson-dev libcmocka-dev libpq-dev libcurl4-openssl-dev libyaml-dev libssl-dev bubblewrap
libseccomp-dev runsc libmicrohttpd-dev libgnutls28-dev libjs-bootstrap5 libjs-d3"
# libpq-dev: the hub links libpq (its PostgreSQL store); a PostgreSQL server is the operator's.
# libcurl4-openssl-dev: common/etcd.c talks to etcd's JSON gateway over HTTP(S) with libcurl.
# libyaml-dev: the hub's RBAC policy file (hub/policy.c) and agent spec files
# (cmd/agentry/spec.c). libssl-dev: libcrypto (token hashes; common/certs.c makes and reads
# X.509 certificates with it for 'agentry certs').
# bubblewrap, libseccomp-dev: the node's default sandbox for tools that run programs
# (worker/sandbox.h; docs/sandbox.md), and its seccomp filter. runsc: gVisor, the node's
# --sandbox=runsc. The sandbox runs commands as the system user agentry-sbx, made below.
# libmicrohttpd-dev: the hub's and nodes' --metrics-listen serve GET /metrics with it
# (common/metrics_http.c), and the hub's --http-listen its dashboard (hub/web.c).
# libgnutls28-dev: libmicrohttpd's TLS library; hub/web.c verifies browsers' client certificates.
# libjs-bootstrap5, libjs-d3: the dashboard's styles and charts, built into the hub from
# /usr/share/javascript (CMakeLists.txt, hub/web_assets.cmake).
# Test-only:
# clang: make test also compiles the tree with clang, whose warnings are not GCC's.
# clang-format: make lint checks the formatting with it (Debian 12 ships version 14).
# postgresql: the server the tests start privately (tests/pg_fixture.sh); the package's own
# cluster is not used, nor started.
# etcd-server: the etcd the tests start privately (tests/etcd_fixture.sh); the hub and nodes only
# talk to an operator's etcd, so they need no binary. Its systemd unit is not used.
# openssl: tests/etcd_fixture.sh start-tls makes a throwaway CA and certificates with it.
# prometheus: tests/e2e/test_metrics.py checks /metrics with its promtool and scrapes the hub
# and a node with a private server (its packaged service is not used).
# python3-jsonschema, python3-yaml: tests/e2e/test_spec_files.py checks the templates and the
# docs' examples against docs/agent-spec.schema.json.
# chromium, nodejs, npm: tests/e2e/test_dashboard.py drives the web dashboard in Chromium with
# playwright-core from npm (installed at test time into the build directory).
# zsh: tests/e2e/test_completion.py loads 'agentry completion zsh' in it (skipped without).
TEST_PKGS="clang clang-format postgresql etcd-server openssl python3-jsonschema python3-yaml prometheus
chromium nodejs npm zsh"
# golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev,
# golang-github-xeipuuv-gojsonschema-dev: tests/helm builds its helm-template stand-in (Go's
# text/template + sprig, values checked against values.schema.json) offline from /usr/share/gocode.
# yamllint: tests/helm lints the chart's values and what it renders.
TEST_PKGS="$TEST_PKGS golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev
golang-github-xeipuuv-gojsonschema-dev yamllint"
# python3-pip, python3-setuptools, python3-wheel: tests/clients/test_python.py builds the
# clients/python wheel (pip wheel --no-build-isolation), whose setup.py generates the stubs.
TEST_PKGS="$TEST_PKGS python3-pip python3-setuptools python3-wheel"
# --cloud (make demo-cloud, deploy/local/demo_cloud.sh):
# postgresql, etcd-server: the hub's store and its etcd, started privately in a temp dir on free
# ports (the packages' own services are not used). python3: the demo's free-port probe and
# JSON reading (already pulled in by python3-grpcio, named for a machine that only runs it).
CLOUD_PKGS="postgresql etcd-server python3"
# lintian: tests/package/test_deb.sh checks the Debian package with it.
TEST_PKGS="$TEST_PKGS lintian"
# --image (make image, make test-image): podman, runc, debootstrap build the container image and
# run a hub and a node from it (runc: crun refuses this machine's hybrid cgroups; debootstrap
# makes the Debian 12 base image where no registry is reachable). Not in --test: the image's
# build and smoke test take 5-10 minutes on 2 cores, so make test skips it (saying so) and
# make test-image runs it.
IMAGE_PKGS="podman runc debootstrap"
for arg in "$@"; do
    case "$arg" in
    --test) PKGS="$PKGS $TEST_PKGS" ;;
    --cloud) PKGS="$PKGS $CLOUD_PKGS" ;;
    --image) PKGS="$PKGS $IMAGE_PKGS" ;;
    *)
        echo "usage: deploy/deps.sh [--test] [--cloud] [--image]" >&2
        exit 2
        ;;
    esac
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# The unprivileged host user a root node's sandbox runs commands as (docs/sandbox.md): no home,
# no shell, no password. Made once; a node started as another user needs none.
sandbox_user() {
    getent passwd agentry-sbx >/dev/null && return 0
    command -v useradd >/dev/null || return 0
    echo "deps: adding the system user agentry-sbx (the sandbox's uid)"
    $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin agentry-sbx
}
missing=""
for p in $PKGS; do
    # A node.js from elsewhere (NodeSource's nodejs package bundles npm, and conflicts with
    # Debian's npm): the command is what the tests need.
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    sandbox_user
    exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
sandbox_user
