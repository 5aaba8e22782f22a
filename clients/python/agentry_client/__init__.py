"""agentry_client - a Python client of the Agentry hub (api/agentry/v1/hub.proto): the generated
stubs and thin helpers over them. See clients/python/README.md.

    from agentry_client import connect
    with connect("127.0.0.1:7070", tls_dir="~/.agentry/tls") as hub:
        print(hub.invoke(tools=["echo"], input="hello").output)

connect() gives a blocking Client, connect_async() an asyncio one; both raise the AgentryError
subclasses of .errors. The generated modules are here too: types_pb2 (AgentSpec, TraceEvent, the
enums), hub_pb2 (requests and answers) and hub_pb2_grpc (AgentHubStub).
"""
from ._common import TURN_END_KINDS, kind, payload
from ._stubs import hub_pb2, hub_pb2_grpc, types_pb2
from .aio import AsyncClient, connect_async
from .client import Client, connect
from .errors import (AgentryError, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded,
                     FailedPrecondition, Internal, InvalidArgument, NotFound, PermissionDenied,
                     ResourceExhausted, Unauthenticated, Unavailable)

__version__ = "0.1.0"

__all__ = [
    "AgentryError", "AlreadyExists", "AsyncClient", "Cancelled", "Client", "DataLoss",
    "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument", "NotFound",
    "PermissionDenied", "ResourceExhausted", "TURN_END_KINDS", "Unauthenticated", "Unavailable",
    "connect", "connect_async", "hub_pb2", "hub_pb2_grpc", "kind", "payload", "types_pb2",
]
