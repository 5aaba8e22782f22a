#!/bin/sh
# deploy/deb/build.sh BUILD OUTDIR - the Debian package agentry_VERSION_ARCH.deb, from a build
# tree whose agentry target is built (make deb passes build-release; tests/package/test_deb.sh
# the test build). Prints the package's path.
#
# What goes in: 'cmake --install BUILD --prefix /usr' staged in a temporary root (the binary,
# stripped, its agent-hub and agent-node links, the docs), the systemd units of deploy/systemd
# in /lib/systemd/system, their settings files as the conffiles /etc/default/agent-hub and
# /etc/default/agent-node, and the maintainer scripts of this folder (postinst makes the users
# agentry and agentry-sbx). The version is the one the binary prints (agentry version --json),
# Depends what dpkg-shlibdeps finds the binary links, plus bubblewrap (the node's sandbox) and
# passwd (useradd, in postinst). Built with dpkg-deb only: no debian/ source package.
set -eu
usage="usage: deploy/deb/build.sh BUILD OUTDIR"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:?$usage}" && pwd)
OUT=$(cd "${2:?$usage}" && pwd)
[ -x "$BUILD/agentry" ] || {
    echo "deb: $BUILD/agentry is missing: build the agentry target first (make deb does)" >&2
    exit 1
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
umask 022
R=$T/root

DESTDIR=$R cmake --install "$BUILD" --prefix /usr >/dev/null
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$R/usr/bin/agentry"
install -d "$R/lib/systemd/system" "$R/etc/default" "$R/DEBIAN"
install -m 0644 "$SRC/deploy/systemd/agent-hub.service" "$SRC/deploy/systemd/agent-node.service" \
    "$R/lib/systemd/system/"
install -m 0644 "$SRC/deploy/systemd/agent-hub.default" "$R/etc/default/agent-hub"
install -m 0644 "$SRC/deploy/systemd/agent-node.default" "$R/etc/default/agent-node"
for s in postinst prerm postrm; do
    install -m 0755 "$SRC/deploy/deb/$s" "$R/DEBIAN/$s"
done
printf '%s\n' /etc/default/agent-hub /etc/default/agent-node >"$R/DEBIAN/conffiles"

json=$("$R/usr/bin/agentry" version --json)
field() { printf '%s\n' "$json" | sed -n "s/.*\"$1\":[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }
version=$(field version)
rev=$(field git)
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-Agentry Cloud <agentry@localhost>}

# The changelog Debian tools expect of every package (changelog.gz: a native package, its
# version has no Debian revision): one entry, for this build.
doc=$R/usr/share/doc/agentry
{
    printf 'agentry (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built from git revision %s.\n\n' "$rev"
    printf ' -- %s  %s\n' "$maintainer" "$(date -R)"
} | gzip -9n >"$doc/changelog.gz"

# dpkg-shlibdeps reads debian/control of the directory it runs in: give it a minimal one.
mkdir "$T/debian"
printf 'Source: agentry\n\nPackage: agentry\nArchitecture: any\n' >"$T/debian/control"
shlibs=$(cd "$T" && dpkg-shlibdeps -O "$R/usr/bin/agentry" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || {
    echo "deb: dpkg-shlibdeps found no library for $R/usr/bin/agentry" >&2
    exit 1
}

(cd "$R" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort | xargs md5sum) \
    >"$R/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
cat >"$R/DEBIAN/control" <<CONTROL
Package: agentry
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $shlibs, bubblewrap, passwd
Recommends: ca-certificates
Suggests: runsc, postgresql, etcd-server
Section: net
Priority: optional
Description: distributed runtime for LLM agents (hub and node)
 Agentry Cloud runs LLM agents durably across machines: a hub stores agents
 and their event logs and schedules their turns onto worker nodes, which run
 the models and tools, programs inside a sandbox (bubblewrap).
 .
 This package has the agentry binary (also agent-hub and agent-node), the
 systemd units agent-hub.service and agent-node.service (settings in
 /etc/default), and the documentation. Built from git revision $rev.
CONTROL

deb=$OUT/agentry_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$R" "$deb" >/dev/null
echo "$deb"
