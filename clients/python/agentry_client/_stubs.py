"""agentry_client/_stubs.py - the generated modules (see _codegen.py), made first if this package
runs from a checkout whose api/ changed since."""
from . import _codegen

_codegen.ensure()

from ._pb import hub_pb2, hub_pb2_grpc, types_pb2  # noqa: E402

__all__ = ["hub_pb2", "hub_pb2_grpc", "types_pb2"]
