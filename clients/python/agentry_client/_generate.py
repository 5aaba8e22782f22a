"""agentry_client/_generate.py - regenerate the stubs on demand (the work is _codegen's):

    python3 -m agentry_client._generate [--api DIR] [--out DIR]
"""
import argparse
import sys
from typing import List, Optional

from . import _codegen


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m agentry_client._generate",
                                 description="Generate the agentry_client stubs from api/.")
    ap.add_argument("--api", default=None, help="the api/ directory (default: $AGENTRY_API_DIR "
                    "or the repository's)")
    ap.add_argument("--out", default=_codegen.STUBS_DIR,
                    help="where to write them (default: %(default)s)")
    args = ap.parse_args(argv)
    api = args.api or _codegen.find_api()
    if api is None:
        ap.error("cannot find api/: give --api DIR")
    _codegen.generate(api, args.out)
    print("agentry_client: stubs of %s written to %s" % (api, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
