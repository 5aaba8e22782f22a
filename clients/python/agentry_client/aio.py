"""agentry_client/aio.py - the asyncio client (grpc.aio): the same helpers as client.Client, as
coroutines, and trace() as an async iterator that resumes after a disconnect. Use it from one
event loop (grpc.aio channels belong to the loop they were made in).

    async with connect_async("127.0.0.1:7070") as hub:
        agent = await hub.spawn(tools=["echo"], input="hello")
        async for ev in hub.trace(agent.agent_id):
            ...
"""
import asyncio
import time
from typing import (Any, AsyncIterator, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import grpc
import grpc.aio

from . import _common as C
from ._stubs import hub_pb2, hub_pb2_grpc, types_pb2
from .errors import from_rpc_error, make_error


class AsyncClient:
    """A connection to one hub (see connect_async())."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.stub = hub_pb2_grpc.AgentHubStub(channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _call(self, method: str, request: Any, timeout: Optional[float]) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e, method) from e

    async def ping(self, timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.PingResponse:
        return await self._call("Ping", hub_pb2.PingRequest(), timeout)

    async def spawn(self, spec: Optional[C.Spec] = None, input: str = "", *,
                    name: Optional[str] = None, model: Optional[str] = None,
                    tools: Optional[Iterable[str]] = None,
                    labels: Optional[Mapping[str, str]] = None,
                    system_prompt: Optional[str] = None, max_iterations: Optional[int] = None,
                    permissions: Optional[Iterable[Mapping[str, Any]]] = None,
                    namespace: str = "", request_id: str = "",
                    timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.SpawnResponse:
        """As Client.spawn."""
        req = hub_pb2.SpawnRequest(**C.spawn_fields(
            spec, input, namespace, request_id, name=name, model=model, tools=tools,
            labels=labels, system_prompt=system_prompt, max_iterations=max_iterations,
            permissions=permissions))
        return await self._call("Spawn", req, timeout)

    async def invoke(self, spec: Optional[C.Spec] = None, input: str = "", *,
                     name: Optional[str] = None, model: Optional[str] = None,
                     tools: Optional[Iterable[str]] = None,
                     labels: Optional[Mapping[str, str]] = None,
                     system_prompt: Optional[str] = None, max_iterations: Optional[int] = None,
                     permissions: Optional[Iterable[Mapping[str, Any]]] = None,
                     namespace: str = "", request_id: str = "",
                     timeout: float = C.DEFAULT_INVOKE_TIMEOUT,
                     reconnect_timeout: float = C.DEFAULT_RECONNECT_TIMEOUT
                     ) -> hub_pb2.InvokeResponse:
        """As Client.invoke: spawn and wait for the first turn's end, retrying UNAVAILABLE with
        the same request_id for at most reconnect_timeout seconds."""
        fields = C.spawn_fields(spec, input, namespace, request_id or C.new_request_id(),
                                name=name, model=model, tools=tools, labels=labels,
                                system_prompt=system_prompt, max_iterations=max_iterations,
                                permissions=permissions)
        req = hub_pb2.InvokeRequest(**fields)
        deadline = time.monotonic() + timeout
        backoff = C.Backoff(reconnect_timeout)
        while True:
            try:
                return await self.stub.Invoke(req, timeout=C.remaining(deadline))
            except grpc.aio.AioRpcError as e:
                delay = backoff.next_delay(deadline)
                if e.code() != grpc.StatusCode.UNAVAILABLE or delay is None:
                    raise from_rpc_error(e, "Invoke", "request_id '%s'" % req.request_id) from e
            await asyncio.sleep(delay)

    async def send(self, agent_id: str, text: str,
                   timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.SendMessageResponse:
        return await self._call("SendMessage", hub_pb2.SendMessageRequest(
            agent_id=agent_id, input=text), timeout)

    async def get(self, agent_id: str, timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.Agent:
        return await self._call("GetAgent", hub_pb2.GetAgentRequest(agent_id=agent_id), timeout)

    async def list_agents(self, *, namespace: str = "", state: C.State = C.ANY_STATE,
                          label_selector: str = "", name: str = "", request_id: str = "",
                          parent_id: str = "",
                          timeout: float = C.DEFAULT_TIMEOUT) -> AsyncIterator[hub_pb2.Agent]:
        """Every matching agent in creation order, fetching a page at a time."""
        req = hub_pb2.ListAgentsRequest(namespace=namespace, state=state,
                                        label_selector=label_selector, name=name,
                                        request_id=request_id, parent_id=parent_id)
        while True:
            page = await self._call("ListAgents", req, timeout)
            for agent in page.agents:
                yield agent
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token

    async def kill(self, agent_id: str, reason: str = "",
                   timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.KillAgentResponse:
        return await self._call("KillAgent", hub_pb2.KillAgentRequest(
            agent_id=agent_id, reason=reason), timeout)

    async def resume(self, agent_id: str, max_iterations: int = 0,
                     timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.ResumeAgentResponse:
        return await self._call("ResumeAgent", hub_pb2.ResumeAgentRequest(
            agent_id=agent_id, max_iterations=max_iterations), timeout)

    async def list_approvals(self, namespace: str = "", agent_id: str = "",
                             timeout: float = C.DEFAULT_TIMEOUT) -> List[hub_pb2.Approval]:
        r = await self._call("ListApprovals", hub_pb2.ListApprovalsRequest(
            namespace=namespace, agent_id=agent_id), timeout)
        return list(r.approvals)

    async def approve(self, agent_id: str, call_id: str, *,
                      arguments: Union[None, str, Mapping[str, Any]] = None, reason: str = "",
                      timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.ApproveCallResponse:
        return await self._call("ApproveCall", hub_pb2.ApproveCallRequest(
            agent_id=agent_id, call_id=call_id, arguments=C.arguments_text(arguments),
            reason=reason), timeout)

    async def deny(self, agent_id: str, call_id: str, reason: str,
                   timeout: float = C.DEFAULT_TIMEOUT) -> hub_pb2.DenyCallResponse:
        return await self._call("DenyCall", hub_pb2.DenyCallRequest(
            agent_id=agent_id, call_id=call_id, reason=reason), timeout)

    async def trace(self, agent_id: str, from_seq: int = 1, follow: bool = True, *,
                    timeout: Optional[float] = None,
                    reconnect_timeout: float = C.DEFAULT_RECONNECT_TIMEOUT
                    ) -> AsyncIterator[types_pb2.TraceEvent]:
        """As Client.trace, as an async iterator: resumes from the last seq received + 1 after
        a disconnect, for at most reconnect_timeout seconds of failures in a row."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_seq = max(from_seq, 1)
        backoff = C.Backoff(reconnect_timeout)
        while True:
            call = self.stub.Trace(C.trace_request(agent_id, next_seq, follow),
                                   timeout=C.remaining(deadline))
            try:
                async for ev in call:
                    next_seq = ev.seq + 1
                    backoff.ok()
                    yield ev
                return
            except grpc.aio.AioRpcError as e:
                delay = backoff.next_delay(deadline)
                if e.code() != grpc.StatusCode.UNAVAILABLE or delay is None:
                    raise from_rpc_error(e, "Trace") from e
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    async def wait(self, agent_id: str, from_seq: int = 1,
                   timeout: Optional[float] = None) -> types_pb2.TraceEvent:
        """As Client.wait: the event that ends the next turn."""
        async for ev in self.trace(agent_id, from_seq, timeout=timeout):
            if ev.kind in C.TURN_END_KINDS:
                return ev
        raise make_error(grpc.StatusCode.INTERNAL,
                         "the trace of '%s' ended before its turn did" % agent_id, "Trace")


def connect_async(addr: str, *, tls_dir: Optional[str] = None, ca: Optional[str] = None,
                  cert: Optional[str] = None, key: Optional[str] = None,
                  token: Optional[str] = None,
                  options: Optional[Sequence[Tuple[str, Any]]] = None) -> AsyncClient:
    """An AsyncClient for the hub at addr; the arguments are connect()'s. Call it inside the
    event loop that will use it."""
    creds = C.credentials(tls_dir, ca, cert, key, token)
    opts = C.channel_options(options)
    if creds is None:
        return AsyncClient(grpc.aio.insecure_channel(addr, options=opts))
    return AsyncClient(grpc.aio.secure_channel(addr, creds, options=opts))
