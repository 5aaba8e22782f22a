#!/bin/sh
# tests/package/test_deb.sh SRC BUILD - the Debian package deploy/deb/build.sh makes (make deb
# makes it from build-release; this uses the test build, already there): its control fields and
# contents, that apt can satisfy its Depends here (apt-get install --simulate: nothing is
# installed), that the binary unpacked from it (dpkg -x) runs and reports the build's version,
# that postinst makes the users in a throwaway root (DPKG_ROOT) and can run twice, and lintian,
# where installed, with these tags accepted:
#   bogus-mail-host, bogus-mail-host-in-debian-changelog: the default Maintainer
#     (DEB_MAINTAINER sets a real one);
#   no-copyright-file: the project states no license yet;
#   no-manual-page: the docs are in /usr/share/doc/agentry and in --help;
#   maintainer-script-calls-systemctl: prerm stops the units without init-system-helpers.
# shellcheck disable=SC2015 # "A && ok || fail": ok only prints, it cannot fail
set -eu
usage="usage: test_deb.sh SRC BUILD"
SRC=$(cd "${1:?$usage}" && pwd)
BUILD=$(cd "${2:?$usage}" && pwd)
for tool in dpkg-deb dpkg-shlibdeps cmake strip; do
    command -v "$tool" >/dev/null || {
        echo "$tool is not installed: cannot build the package"
        exit 77
    }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
fail() {
    echo "FAIL: $1"
    fails=$((fails + 1))
}
want() { # what command...: the command must succeed
    what=$1
    shift
    if "$@" >"$T/out" 2>&1; then ok "$what"; else
        fail "$what"
        cat "$T/out"
    fi
}

deb=$(sh "$SRC/deploy/deb/build.sh" "$BUILD" "$T")
version=$("$BUILD/agentry" version)
v=$(echo "$version" | sed -n 's/^agentry \([^ ]*\) .*/\1/p')
arch=$(dpkg --print-architecture)
[ "$(basename "$deb")" = "agentry_${v}_$arch.deb" ] && ok "named $(basename "$deb")" ||
    fail "named $(basename "$deb"), want agentry_${v}_$arch.deb"

dpkg-deb --info "$deb" >"$T/info"
for field in "Package: agentry" "Version: $v" "Architecture: $arch"; do
    grep -qx " $field" "$T/info" && ok "control: $field" || fail "control lacks '$field'"
done
depends=$(dpkg-deb --field "$deb" Depends)
for dep in libc6 libgrpc29 libprotobuf-c1 libsqlite3-0 libpq5 libseccomp2 bubblewrap passwd; do
    case ", $depends," in
    *", $dep "* | *", $dep,"*) ok "Depends: $dep" ;;
    *) fail "Depends lacks $dep: $depends" ;;
    esac
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = "/etc/default/agent-hub
/etc/default/agent-node" ] && ok "conffiles" || fail "conffiles are not the two /etc/default files"

dpkg-deb --contents "$deb" >"$T/contents"
for path in ./usr/bin/agentry "./usr/bin/agent-hub -> agentry" "./usr/bin/agent-node -> agentry" \
    ./lib/systemd/system/agent-hub.service ./lib/systemd/system/agent-node.service \
    ./etc/default/agent-hub ./etc/default/agent-node ./usr/share/doc/agentry/README.md \
    ./usr/share/doc/agentry/docs/packaging.md; do
    grep -q " $path\$" "$T/contents" && ok "contains $path" || fail "lacks $path"
done

# Depends: apt resolves them against what is installed and known; --simulate changes nothing.
want "apt-get install --simulate resolves Depends" apt-get install --simulate "$deb"

dpkg -x "$deb" "$T/x"
got=$("$T/x/usr/bin/agentry" version 2>&1) || true
[ "$got" = "$version" ] && ok "the unpacked binary runs: $got" ||
    fail "the unpacked binary says '$got', want '$version'"
"$T/x/usr/bin/agent-hub" --help | grep -q "^usage: agentry hub" && ok "agent-hub runs" ||
    fail "agent-hub --help"
cmp -s "$T/x/lib/systemd/system/agent-hub.service" "$SRC/deploy/systemd/agent-hub.service" &&
    ok "the unit is deploy/systemd's" || fail "the packaged agent-hub.service differs"

# postinst in a throwaway root: the two users, and a second run (an upgrade) adds nothing.
mkdir -p "$T/root/etc"
echo 'root:x:0:0:root:/root:/bin/sh' >"$T/root/etc/passwd"
echo 'root:x:0:' >"$T/root/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$T/root/etc/shadow"
echo 'root:*::' >"$T/root/etc/gshadow"
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst >"$T/postinst"
for s in postinst prerm postrm; do
    dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - "./$s" | sh -n && ok "$s parses" || fail "$s: sh -n"
done
if command -v useradd >/dev/null; then
    want "postinst configure" env DPKG_ROOT="$T/root" sh "$T/postinst" configure
    want "postinst configure again (upgrade)" env DPKG_ROOT="$T/root" sh "$T/postinst" configure "$v"
    users=$(cut -d: -f1,6,7 "$T/root/etc/passwd" | tr '\n' ' ')
    [ "$users" = "root:/root:/bin/sh agentry:/var/lib/agentry:/usr/sbin/nologin agentry-sbx:/nonexistent:/usr/sbin/nologin " ] &&
        ok "postinst made agentry and agentry-sbx once" || fail "users after postinst: $users"
fi

if command -v lintian >/dev/null; then
    lintian --suppress-tags bogus-mail-host,bogus-mail-host-in-debian-changelog,no-copyright-file,no-manual-page,maintainer-script-calls-systemctl \
        "$deb" >"$T/lintian" 2>&1 || true
    if grep -q '^[EW]: ' "$T/lintian"; then
        fail "lintian:"
        cat "$T/lintian"
    else
        ok "lintian (accepted tags suppressed)"
    fi
else
    echo "lintian is not installed: not run"
fi
[ "$fails" = 0 ]
