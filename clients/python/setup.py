"""clients/python/setup.py - the build hook: generate agentry_client/_pb from api/ (see
agentry_client/_codegen.py; the stubs are never committed) before setuptools looks for the
packages, which is why it runs at every setup.py invocation and not in build_py. The metadata is
in pyproject.toml."""
import importlib.util
import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "agentry_client_codegen", os.path.join(HERE, "agentry_client", "_codegen.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
api = gen.find_api()
if api is None:
    sys.exit("error: cannot find api/ to generate the agentry_client stubs: build from the "
             "repository's checkout (clients/python) or set AGENTRY_API_DIR")
gen.generate(api)

setup()
