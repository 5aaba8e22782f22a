"""agentry_client/client.py - the blocking client: one grpc channel to a hub and a method per
thing a program does with agents. Thread-safe as grpc channels are (one Client may serve many
threads). Every method raises an AgentryError subclass (errors.py) when the hub refuses or
cannot be reached.

    with connect("127.0.0.1:7070") as hub:
        print(hub.invoke(tools=["echo"], input="hello").output)

Anything without a helper: hub.stub is the generated AgentHubStub on the same channel.
"""
import time
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from . import _common as C
from ._stubs import hub_pb2, hub_pb2_grpc, types_pb2
from .errors import from_rpc_error, make_error


class Client:
    """A connection to one hub (see connect())."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.stub = hub_pb2_grpc.AgentHubStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, request: Any, timeout: Optional[float]) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e, method) from e

    def ping(self, timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.PingResponse:
        """The hub's version; answers without touching the store."""
        return self._call("Ping", hub_pb2.PingRequest(), timeout)

    def spawn(self, spec: Optional[C.Spec] = None, input: str = "", *,
              name: Optional[str] = None, model: Optional[str] = None,
              tools: Optional[Iterable[str]] = None, labels: Optional[Mapping[str, str]] = None,
              system_prompt: Optional[str] = None, max_iterations: Optional[int] = None,
              permissions: Optional[Iterable[Mapping[str, Any]]] = None, namespace: str = "",
              request_id: str = "", timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.SpawnResponse:
        """Creates an agent (spec: an AgentSpec or its dict form; the keywords set fields over
        it) and queues its first turn when input is given. Answers once the agent is stored."""
        req = hub_pb2.SpawnRequest(**C.spawn_fields(
            spec, input, namespace, request_id, name=name, model=model, tools=tools,
            labels=labels, system_prompt=system_prompt, max_iterations=max_iterations,
            permissions=permissions))
        return self._call("Spawn", req, timeout)

    def invoke(self, spec: Optional[C.Spec] = None, input: str = "", *,
               name: Optional[str] = None, model: Optional[str] = None,
               tools: Optional[Iterable[str]] = None, labels: Optional[Mapping[str, str]] = None,
               system_prompt: Optional[str] = None, max_iterations: Optional[int] = None,
               permissions: Optional[Iterable[Mapping[str, Any]]] = None, namespace: str = "",
               request_id: str = "", timeout: float = C.DEFAULT_INVOKE_TIMEOUT,
               reconnect_timeout: float = C.DEFAULT_RECONNECT_TIMEOUT) -> hub_pb2.InvokeResponse:
        """Spawns an agent and waits for the end of its first turn, as `agentry invoke`: the
        answer's state is IDLE with the final answer in .output, or YIELDED, FAILED or KILLED
        with .error. With a request_id (one is made up otherwise) an UNAVAILABLE hub is retried
        safely: at most one agent is created. timeout bounds the whole wait; on DeadlineExceeded
        the agent keeps running (find it by its request_id)."""
        fields = C.spawn_fields(spec, input, namespace, request_id or C.new_request_id(),
                                name=name, model=model, tools=tools, labels=labels,
                                system_prompt=system_prompt, max_iterations=max_iterations,
                                permissions=permissions)
        req = hub_pb2.InvokeRequest(**fields)
        deadline = time.monotonic() + timeout
        backoff = C.Backoff(reconnect_timeout)
        while True:
            try:
                return self.stub.Invoke(req, timeout=C.remaining(deadline))
            except grpc.RpcError as e:
                delay = backoff.next_delay(deadline)
                if e.code() != grpc.StatusCode.UNAVAILABLE or delay is None:
                    raise from_rpc_error(e, "Invoke", "request_id '%s'" % req.request_id) from e
            time.sleep(delay)

    def send(self, agent_id: str, text: str,
             timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.SendMessageResponse:
        """Stores an input for the agent; an idle agent starts its next turn."""
        return self._call("SendMessage", hub_pb2.SendMessageRequest(agent_id=agent_id,
                                                                    input=text), timeout)

    def get(self, agent_id: str, timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.Agent:
        return self._call("GetAgent", hub_pb2.GetAgentRequest(agent_id=agent_id), timeout)

    def list_agents(self, *, namespace: str = "", state: C.State = C.ANY_STATE,
                    label_selector: str = "", name: str = "", request_id: str = "",
                    parent_id: str = "",
                    timeout: float = C.DEFAULT_TIMEOUT) -> Iterator[hub_pb2.Agent]:
        """Every matching agent in creation order, fetching a page at a time."""
        req = hub_pb2.ListAgentsRequest(namespace=namespace, state=state,
                                        label_selector=label_selector, name=name,
                                        request_id=request_id, parent_id=parent_id)
        while True:
            page = self._call("ListAgents", req, timeout)
            yield from page.agents
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token

    def kill(self, agent_id: str, reason: str = "",
             timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.KillAgentResponse:
        """Stops the agent (idempotent: already_killed on a second call)."""
        return self._call("KillAgent", hub_pb2.KillAgentRequest(agent_id=agent_id,
                                                                reason=reason), timeout)

    def resume(self, agent_id: str, max_iterations: int = 0,
               timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.ResumeAgentResponse:
        """Continues a YIELDED or FAILED agent's work without new input."""
        return self._call("ResumeAgent", hub_pb2.ResumeAgentRequest(
            agent_id=agent_id, max_iterations=max_iterations), timeout)

    def list_approvals(self, namespace: str = "", agent_id: str = "",
                       timeout: float = C.DEFAULT_TIMEOUT) -> List[hub_pb2.Approval]:
        """Tool calls waiting for a human decision, oldest first."""
        return list(self._call("ListApprovals", hub_pb2.ListApprovalsRequest(
            namespace=namespace, agent_id=agent_id), timeout).approvals)

    def approve(self, agent_id: str, call_id: str, *,
                arguments: Union[None, str, Mapping[str, Any]] = None, reason: str = "",
                timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.ApproveCallResponse:
        """Runs a waiting tool call, as asked or with other arguments (a dict or JSON text)."""
        return self._call("ApproveCall", hub_pb2.ApproveCallRequest(
            agent_id=agent_id, call_id=call_id, arguments=C.arguments_text(arguments),
            reason=reason), timeout)

    def deny(self, agent_id: str, call_id: str, reason: str,
             timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.DenyCallResponse:
        """Refuses a waiting tool call; the model reads the reason."""
        return self._call("DenyCall", hub_pb2.DenyCallRequest(agent_id=agent_id,
                                                              call_id=call_id, reason=reason),
                          timeout)

    def trace(self, agent_id: str, from_seq: int = 1, follow: bool = True, *,
              timeout: Optional[float] = None,
              reconnect_timeout: float = C.DEFAULT_RECONNECT_TIMEOUT
              ) -> Iterator[types_pb2.TraceEvent]:
        """The agent's events from from_seq on, in order, each once. With follow it waits for
        new ones until the agent is killed (or the caller stops iterating). A broken stream is
        opened again from the last seq received + 1 (see _common's retry rule); timeout bounds
        the whole iteration."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_seq = max(from_seq, 1)
        backoff = C.Backoff(reconnect_timeout)
        while True:
            call = self.stub.Trace(C.trace_request(agent_id, next_seq, follow),
                                   timeout=C.remaining(deadline))
            try:
                for ev in call:
                    next_seq = ev.seq + 1
                    backoff.ok()
                    yield ev
                return
            except grpc.RpcError as e:
                delay = backoff.next_delay(deadline)
                if e.code() != grpc.StatusCode.UNAVAILABLE or delay is None:
                    raise from_rpc_error(e, "Trace") from e
            finally:
                call.cancel()
            time.sleep(delay)

    def wait(self, agent_id: str, from_seq: int = 1,
             timeout: Optional[float] = None) -> types_pb2.TraceEvent:
        """Follows the trace from from_seq until a turn ends (FINAL, YIELD, ERROR or KILLED)
        and returns that event."""
        for ev in self.trace(agent_id, from_seq, timeout=timeout):
            if ev.kind in C.TURN_END_KINDS:
                return ev
        # A followed trace ends (OK) only after KILLED, a turn end: the hub broke its contract.
        raise make_error(grpc.StatusCode.INTERNAL,
                         "the trace of '%s' ended before its turn did" % agent_id, "Trace")


def connect(addr: str, *, tls_dir: Optional[str] = None, ca: Optional[str] = None,
            cert: Optional[str] = None, key: Optional[str] = None, token: Optional[str] = None,
            options: Optional[Sequence[Tuple[str, Any]]] = None) -> Client:
    """A Client for the hub at addr (host:port). Plaintext unless given TLS: tls_dir (ca.crt,
    admin.crt, admin.key) and/or ca, cert, key files; token: a bearer token over TLS. options:
    extra grpc channel options. Connecting is lazy: the first call reports an unreachable hub."""
    creds = C.credentials(tls_dir, ca, cert, key, token)
    opts = C.channel_options(options)
    if creds is None:
        return Client(grpc.insecure_channel(addr, options=opts))
    return Client(grpc.secure_channel(addr, creds, options=opts))
