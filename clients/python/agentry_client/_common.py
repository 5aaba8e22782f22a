"""agentry_client/_common.py - what the sync Client and the AsyncClient share: credentials and
channel options, the requests each helper sends, and the bounded backoff of the calls that
resume (trace, invoke). No I/O here: the clients own their channels.

Retry rule: only UNAVAILABLE is retried (the hub is down or restarting; hub.proto: "retry
later"), only by the helpers that can do so safely (Trace from the last seq + 1, Invoke with the
same request_id), and only for `reconnect_timeout` seconds of consecutive failures, with a delay
doubling from 0.05 s to 2 s. Then the last error is raised. Nothing retries forever.
"""
import json
import os
import time
import uuid
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
from google.protobuf import json_format

from ._stubs import hub_pb2, types_pb2

DEFAULT_TIMEOUT = 30.0
DEFAULT_INVOKE_TIMEOUT = 300.0
DEFAULT_RECONNECT_TIMEOUT = 30.0

# A client that outlives a hub restart should find it again within a second or two, not after
# grpc's default reconnect backoff (up to 120 s).
CHANNEL_OPTIONS: List[Tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

# The events that end a turn (types.proto: exactly one of them ends each turn).
TURN_END_KINDS = frozenset((types_pb2.EVENT_KIND_FINAL, types_pb2.EVENT_KIND_YIELD,
                            types_pb2.EVENT_KIND_ERROR, types_pb2.EVENT_KIND_KILLED))

Spec = Union[types_pb2.AgentSpec, Mapping[str, Any]]
# A ListAgents state filter: the enum's value or its name; unspecified means any state.
State = Union[types_pb2.AgentState, str]
ANY_STATE = types_pb2.AGENT_STATE_UNSPECIFIED


def _read(path: str) -> bytes:
    with open(os.path.expanduser(path), "rb") as f:
        return f.read()


def credentials(tls_dir: Optional[str], ca: Optional[str], cert: Optional[str],
                key: Optional[str], token: Optional[str]) -> Optional[grpc.ChannelCredentials]:
    """Channel credentials as the CLI makes them, or None for plaintext.

    tls_dir: a directory with ca.crt, admin.crt and admin.key (`agentry certs init`); ca, cert
    and key override its files one by one. token: a bearer token (`agentry token create`), sent
    as `authorization: Bearer <token>` on every call; it needs TLS (a CA), and then the client
    certificate is optional."""
    if tls_dir:
        ca = ca or os.path.join(tls_dir, "ca.crt")
        if not token:
            cert = cert or os.path.join(tls_dir, "admin.crt")
            key = key or os.path.join(tls_dir, "admin.key")
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs both cert and key")
    if ca is None:
        if cert is not None or token:
            raise ValueError("a client certificate or a token needs TLS: give tls_dir or ca "
                             "(the hub refuses tokens over plaintext)")
        return None
    creds = grpc.ssl_channel_credentials(_read(ca), _read(key) if key else None,
                                         _read(cert) if cert else None)
    if token:
        creds = grpc.composite_channel_credentials(creds,
                                                   grpc.access_token_call_credentials(token))
    return creds


def channel_options(extra: Optional[Sequence[Tuple[str, Any]]]) -> List[Tuple[str, Any]]:
    return CHANNEL_OPTIONS + list(extra or [])


def agent_spec(spec: Optional[Spec], name: Optional[str], model: Optional[str],
               tools: Optional[Iterable[str]], labels: Optional[Mapping[str, str]],
               system_prompt: Optional[str], max_iterations: Optional[int],
               permissions: Optional[Iterable[Mapping[str, Any]]]) -> types_pb2.AgentSpec:
    """An AgentSpec from a message or a dict in the spec's JSON form (snake_case or camelCase
    keys, as docs/agent-spec.md), with the keyword fields set over it."""
    out = types_pb2.AgentSpec()
    if isinstance(spec, types_pb2.AgentSpec):
        out.CopyFrom(spec)
    elif spec is not None:
        json_format.ParseDict(dict(spec), out)
    if name is not None:
        out.name = name
    if model is not None:
        out.model = model
    if tools is not None:
        out.ClearField("tools")
        out.tools.extend(tools)
    if labels is not None:
        out.labels.update(labels)
    if system_prompt is not None:
        out.system_prompt = system_prompt
    if max_iterations is not None:
        out.max_iterations = max_iterations
    if permissions is not None:
        out.ClearField("permissions")
        for rule in permissions:
            json_format.ParseDict(dict(rule), out.permissions.add())
    return out


def new_request_id() -> str:
    return "py-" + uuid.uuid4().hex


def arguments_text(arguments: Union[None, str, Mapping[str, Any]]) -> str:
    """ApproveCall's arguments: a JSON object's text, or a mapping to encode; None: as asked."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments)


def trace_request(agent_id: str, next_seq: int, follow: bool) -> hub_pb2.TraceRequest:
    return hub_pb2.TraceRequest(agent_id=agent_id, from_seq=next_seq, follow=follow)


def kind(ev: types_pb2.TraceEvent) -> str:
    """An event's kind as a short name: EVENT_KIND_TOOL_CALL -> "tool_call"."""
    return types_pb2.EventKind.Name(ev.kind)[len("EVENT_KIND_"):].lower()


def payload(ev: types_pb2.TraceEvent) -> Any:
    """An event's payload, parsed (a dict with the keys types.proto lists for its kind)."""
    return json.loads(ev.payload)


class Backoff:
    """Consecutive failures of one resumable call: how long to wait before the next attempt,
    or None once `limit` seconds have passed since the first failure (then give up).
    ok() starts over after progress (an event received)."""

    FIRST, MAX = 0.05, 2.0

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.ok()

    def ok(self) -> None:
        self.since: Optional[float] = None
        self.delay = self.FIRST

    def next_delay(self, deadline: Optional[float] = None) -> Optional[float]:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        end = self.since + self.limit
        if deadline is not None:
            end = min(end, deadline)
        if now >= end:
            return None
        d = min(self.delay, end - now)
        self.delay = min(self.delay * 2, self.MAX)
        return d


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left before a monotonic deadline (None: no deadline), at least a millisecond."""
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.001)


def spawn_fields(spec: Optional[Spec], input: str, namespace: str, request_id: str,
                 **fields: Any) -> Mapping[str, Any]:
    """The fields SpawnRequest and InvokeRequest share."""
    return {"spec": agent_spec(spec, **fields), "input": input, "namespace": namespace,
            "request_id": request_id}
