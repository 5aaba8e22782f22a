#!/bin/sh
# tests/package/test_version.sh SRC - how cmd/agentry/version.cmake finds the revision that
# 'agentry version' prints: in a throwaway git repository (clean, a tracked change, only an
# untracked file, a new commit), outside git, and with the AGENTRY_GIT_REV override; and that
# the header is not rewritten when nothing changed (so an unchanged tree relinks nothing).
# tests/e2e/test_cli.py checks the built binary's output.
set -eu
SRC=$(cd "${1:?usage: test_version.sh SRC}" && pwd)
SCRIPT=$SRC/cmd/agentry/version.cmake
T=$(mktemp -d)
export GIT_CEILING_DIRECTORIES="$T" # "outside git" even when TMPDIR is in a repository
trap 'rm -rf "$T"' EXIT
fails=0
check() { # what got want
    if [ "$2" = "$3" ]; then
        echo "ok: $1 ($2)"
    else
        echo "FAIL: $1: got '$2', want '$3'"
        fails=$((fails + 1))
    fi
}
rev() { cmake -DSRC="$1" ${2:+-DGIT_REV="$2"} -DPRINT=1 -P "$SCRIPT"; }
header() { cmake -DSRC="$1" -DVERSION=9.8.7 -DOUT="$T/v.h" ${2:+-DGIT_REV="$2"} -P "$SCRIPT"; }

mkdir "$T/plain"
check "outside git" "$(rev "$T/plain")" unknown
header "$T/plain"
check "outside git: the node's version has no build metadata" \
    "$(sed -n 's/^#define AGENTRY_VERSION_GIT //p' "$T/v.h")" '"9.8.7"'
check "override" "$(rev "$T/plain" 1a2b3c4-dirty)" 1a2b3c4-dirty
if cmake -DSRC="$T/plain" -DGIT_REV='x"y' -DPRINT=1 -P "$SCRIPT" >/dev/null 2>&1; then
    check "an override with a quote is refused" accepted refused
else
    check "an override with a quote is refused" refused refused
fi

if command -v git >/dev/null; then
    R=$T/repo
    git init -q "$R"
    git -C "$R" -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
    echo a >"$R/f"
    git -C "$R" add f
    git -C "$R" -c user.name=t -c user.email=t@t commit -q -m two
    h=$(git -C "$R" rev-parse --short HEAD)
    check "clean" "$(rev "$R")" "$h"
    echo untracked >"$R/u"
    check "an untracked file is not a change" "$(rev "$R")" "$h"
    touch "$R/f"
    check "a touched, unchanged file is not a change" "$(rev "$R")" "$h"
    echo b >"$R/f"
    check "a tracked change" "$(rev "$R")" "$h-dirty"
    check "the override wins over git" "$(rev "$R" abc)" abc
    header "$R"
    check "header" "$(grep -c "AGENTRY_GIT_REV \"$h-dirty\"\|AGENTRY_VERSION_GIT \"9.8.7+$h-dirty\"" "$T/v.h")" 2
    touch -d '2000-01-01' "$T/v.h"
    header "$R"
    check "an unchanged header is not rewritten" "$(date -r "$T/v.h" +%Y)" 2000
    git -C "$R" -c user.name=t -c user.email=t@t commit -q -am three
    h3=$(git -C "$R" rev-parse --short HEAD)
    header "$R"
    check "a new commit rewrites it" "$(sed -n 's/^#define AGENTRY_GIT_REV //p' "$T/v.h")" "\"$h3\""
else
    echo "git is not installed: the repository cases are not checked"
fi
[ "$fails" = 0 ] || exit 1
