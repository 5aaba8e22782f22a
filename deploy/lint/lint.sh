#!/bin/sh
# deploy/lint/lint.sh [--fix] - the habits CI enforces on the C sources (make lint, make format).
#
# Checks, in order, and reports every failure before exiting 1:
#   1. include direction: hub/ never includes worker/ and worker/ never includes hub/, since a hub
#      and a node share only the protobuf contract; common/ includes none of hub/, worker/, cmd/
#      or the generated agentry/v1 headers, since the RPC layer moves bytes and calls handlers
#      from a table; api/ (the protocol and its JSON forms) includes none of them. A broken rule
#      is printed as file:line: the rule: the include line.
#   2. formatting: clang-format --dry-run -Werror with the repository's .clang-format.
# --fix rewrites the files in place with clang-format instead of checking them (make format); the
# include check still runs, since no formatter can fix a layering mistake.
# Files: every .c and .h under api/ hub/ worker/ common/ cmd/ tests/unit/. Run from anywhere.
set -eu
cd "$(dirname "$0")/../.."
fix=false
case "${1:-}" in
"") ;;
--fix) fix=true ;;
*)
    echo "usage: deploy/lint/lint.sh [--fix]" >&2
    exit 2
    ;;
esac
CLANG_FORMAT="${CLANG_FORMAT:-clang-format}"
files=$(find api hub worker common cmd tests/unit -name '*.[ch]' -type f | LC_ALL=C sort)
status=0

# forbid DIR PATTERN WHY: every #include in DIR whose path starts with PATTERN (an ERE, after any
# "../") breaks the rule WHY.
forbid() {
    # The paths have no spaces (find above): word splitting the list is what is wanted.
    # shellcheck disable=SC2046
    hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<](\.\./)*($2)/" \
        $(echo "$files" | grep "^$1/") /dev/null || true)
    [ -z "$hits" ] && return 0
    echo "$hits" | sed "s|^\([^:]*:[0-9]*\):[[:space:]]*|\1: $3: |"
    status=1
}
forbid hub 'worker' "hub/ must not include worker/ (hub and node share only the protobuf API)"
forbid worker 'hub' "worker/ must not include hub/ (hub and node share only the protobuf API)"
forbid common 'hub|worker|cmd' "common/ must not include hub/, worker/ or cmd/ (it knows neither)"
forbid common 'agentry/v1' "common/ must not include agentry/v1 (it moves bytes, not messages)"
forbid api 'hub|worker|common|cmd' "api/ must not include hub/, worker/, common/ or cmd/ (it is the contract they share)"
[ "$status" = 0 ] && echo "lint: include direction ok"

if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
    echo "lint: $CLANG_FORMAT not found; run 'sh deploy/deps.sh --test' (make lint does)" >&2
    exit 1
fi
# shellcheck disable=SC2086
if $fix; then
    $CLANG_FORMAT -i $files
    echo "lint: formatted $(echo "$files" | wc -l) files"
elif $CLANG_FORMAT --dry-run -Werror $files; then
    echo "lint: formatting ok"
else
    echo "lint: formatting differs from .clang-format; 'make format' rewrites the files" >&2
    status=1
fi
exit "$status"
