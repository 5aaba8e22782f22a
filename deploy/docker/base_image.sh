#!/bin/sh
# deploy/docker/base_image.sh - makes the Debian 12 base images the Dockerfile starts from
# (debian:12 and debian:12-slim, as localhost/debian:12[-slim]) with debootstrap, for a machine
# that reaches Debian's package mirror but no container registry. Needs root, debootstrap and
# podman; takes a few minutes. Both tags are the same minbase system (what -slim trims is docs
# and locales, which the runtime stage does not need either way).
#   sh deploy/docker/base_image.sh [MIRROR]   (default http://deb.debian.org/debian)
set -eu
MIRROR=${1:-http://deb.debian.org/debian}
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || {
        echo "base_image: $tool is not installed (apt-get install $tool)" >&2
        exit 1
    }
done
T=$(mktemp -d /var/tmp/agentry-base.XXXXXX)
trap 'rm -rf "$T"' EXIT
echo "base_image: debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase bookworm "$T/root" "$MIRROR" >"$T/log" 2>&1 || {
    tail -20 "$T/log" >&2
    exit 1
}
# The sources of Debian's own debian:12 image: the release, its updates and security.
rm -f "$T/root/etc/apt/sources.list"
cat >"$T/root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
rm -rf "$T/root/var/cache/apt/archives"/*.deb "$T/root/var/lib/apt/lists"/*
tar -C "$T/root" -c . | podman import --change 'CMD ["bash"]' - localhost/debian:12 >/dev/null
podman tag localhost/debian:12 localhost/debian:12-slim
echo "base_image: made localhost/debian:12 and localhost/debian:12-slim"
