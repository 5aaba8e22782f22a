"""agentry_client/errors.py - the exceptions the helpers raise: one class per gRPC status the hub
answers (api/agentry/v1/hub.proto lists them and what each means), all subclasses of
AgentryError, which carries the status code, the hub's message (meant for a person) and the RPC.

    try:
        hub.get(agent_id)
    except NotFound as e:
        print(e.code, e.message)    # StatusCode.NOT_FOUND  no agent with id '...'
"""
from typing import Dict, Optional, Type

import grpc


class AgentryError(Exception):
    """A call to the hub failed. code: the gRPC status; message: the hub's words (or grpc's,
    when the hub could not be reached); method: the RPC ("Spawn", "Trace", ...)."""

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "") -> None:
        super().__init__(code, message, method)
        self.code = code
        self.message = message
        self.method = method

    def __str__(self) -> str:
        where = "%s: " % self.method if self.method else ""
        return "%s%s (%s)" % (where, self.message, self.code.name)


class InvalidArgument(AgentryError):
    """A malformed request, or a model or tool no connected node offers."""


class NotFound(AgentryError):
    """No such agent (or one the caller may not see), call or schedule."""


class AlreadyExists(AgentryError):
    pass


class PermissionDenied(AgentryError):
    """The caller's role or namespaces do not allow the call."""


class Unauthenticated(AgentryError):
    """No client certificate and no token, or a wrong or revoked token."""


class FailedPrecondition(AgentryError):
    """The agent's state does not allow the call (e.g. it was killed)."""


class ResourceExhausted(AgentryError):
    """A bounded queue is full: retry later, with backoff."""


class Unavailable(AgentryError):
    """The hub cannot be reached, or cannot make the request durable now: retry later."""


class DeadlineExceeded(AgentryError):
    """The call's deadline passed; the request may still take effect."""


class Cancelled(AgentryError):
    pass


class Internal(AgentryError):
    pass


class DataLoss(AgentryError):
    pass


_BY_CODE: Dict[grpc.StatusCode, Type[AgentryError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}


def make_error(code: grpc.StatusCode, message: str, method: str = "") -> AgentryError:
    """The exception of code's class (AgentryError itself for a code the hub does not send)."""
    return _BY_CODE.get(code, AgentryError)(code, message, method)


def from_rpc_error(e: grpc.RpcError, method: str, note: Optional[str] = None) -> AgentryError:
    """The typed exception for a grpc error (grpc.RpcError and grpc.aio.AioRpcError alike)."""
    code = e.code()
    message = e.details() or ""
    if note:
        message = "%s; %s" % (message, note)
    return make_error(code, message, method)
