#!/usr/bin/python3
"""tests/fake_llm.py - a local fake of the OpenAI chat completions and Anthropic Messages APIs.

One asyncio HTTP/1.1 server (keep-alive, standard library only) for the node's model providers,
its HTTP client and the http_request tool. It speaks each wire format as the real APIs do:
OpenAI's chat.completion objects and chat.completion.chunk events (tool_calls fragments by
index, the include_usage usage chunk, "data: [DONE]"), Anthropic's message objects and
message_start / content_block_* / message_delta / message_stop events (text_delta,
input_json_delta, ping), and both error shapes.

    /usr/bin/python3 tests/fake_llm.py --port-file F   # 127.0.0.1, a free port, written to F
    /usr/bin/python3 tests/fake_llm.py --port 8080

The reply depends on the request's model id:
    echo          final text "echo: <last user message text>"
    script:NAME   reply k of the list posted to /_script/NAME, k = assistant messages so far;
                  past the end: "script NAME done"
    tools2        two echo tool calls ("a", "b"), then "tools: " + the tool outputs joined by ","
    slow:MS       SLOW_TEXT (ten words "slow") after MS ms; streamed, its ten tokens are spread
                  over the MS ms (the last at MS), so a follower sees the text arrive
    fast:N        N tokens "tok " as fast as possible (whole events, batched)
    stall         status and headers (streamed: and one event), then nothing until the client goes
    429:N, 500:N  the first N requests for this model id answer 429 (Retry-After: 1) or 500,
                  then as echo
    429d:N        as 429:N, with Retry-After as an HTTP date 2 s ahead
    malformed     a 200 whose body (streamed: second event) is not JSON
    usage:IN:OUT  "ok", reporting those token counts
    auth:KEY      401 in the API's own error shape unless the request carries API key KEY,
                  then as echo
    slowecho:MS   as echo, after MS ms
    team:N:TPL    an agent_0 (issue 16): N spawn_agent calls in one reply ({"input": "part I:
                  <user text>", "template": TPL}; no template when TPL is empty: the child
                  then runs this same spec), then one wait_agent call on the agent_ids they
                  returned, then the final text "team: " + the children's outputs joined by
                  " | " (from wait_agent's JSON array)
Any other id answers as echo. Streamed replies are written in pieces of 1-7 bytes, each its own
HTTP chunk (splitting lines, "data:" and UTF-8 characters), except fast and slow.

Other endpoints:
    POST /_script/NAME   {"replies":[{"text":"...","tool_calls":[{"name":..,"arguments":".."}]}]}
    GET  /_stats         {"requests","connections","aborted","completed","by_model","arrivals",
                          "last"}: "aborted" counts replies the client cut off; "last" is the
                          last request's path, headers (lowercased) and body (parsed JSON)
    POST /_reset         clears counters and scripts
    /_http/status/CODE[?location=URL]  that status, with Location when given
    /_http/bytes/N       N bytes of "x"
    /_http/stream/N      N chunks "chunk I\\n", 10 ms apart
    /_http/stall         a 200, one chunk "hello", then nothing until the client goes
    /_http/slow/MS       "slow" after MS ms
    /_http/echo          JSON {"method","path","headers","body"} of the request
    POST /v1/embeddings  OpenAI's embeddings: {"model","input"} -> data[0].embedding, a hashed
                         bag of the input's words (EMBED_DIMS floats, length 1; the same idea as
                         the node's mock embedding, other hashes and size), so texts sharing
                         words score high; input not a string: 400
"""

import argparse
import asyncio
import email.utils
import hashlib
import json
import os
import random
import re
import socket
import sys
import time
import urllib.parse

START = time.monotonic()


def dumps(obj):
    """JSON as the APIs write it: compact, UTF-8 (so multi-byte characters reach the wire)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Aborted(Exception):
    """The client went away before the reply was complete."""


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = 0
        self.connections = 0
        self.aborted = 0
        self.completed = 0
        self.by_model = {}
        self.arrivals = {}
        self.scripts = {}
        self.last = None

    def stats(self):
        return {"requests": self.requests, "connections": self.connections,
                "aborted": self.aborted, "completed": self.completed,
                "by_model": self.by_model, "arrivals": self.arrivals, "last": self.last}


STATE = State()
REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
           400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error"}


class Conn:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def write(self, data):
        if self.writer.is_closing():
            raise Aborted()
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            raise Aborted()

    async def head(self, status, headers):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines += ["%s: %s" % kv for kv in headers]
        await self.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def whole(self, status, body, ctype="application/json", extra=()):
        if isinstance(body, (dict, list)):
            body = dumps(body)
        if isinstance(body, str):
            body = body.encode()
        await self.head(status, [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                 *extra])
        await self.write(body)

    async def chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        if data:
            await self.write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_chunks(self):
        await self.write(b"0\r\n\r\n")

    async def pause(self, seconds):
        """Wait, watching for the client to go away (then raise Aborted)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except asyncio.TimeoutError:
            return
        if not data:
            raise Aborted()
        # A byte of a pipelined next request: lost, so pipelining clients are not supported
        # (libcurl does not pipeline HTTP/1.1).
        await asyncio.sleep(seconds)

    async def until_gone(self):
        while True:
            data = await self.reader.read(65536)
            if not data:
                raise Aborted()


# ---- conversation reading ----------------------------------------------------------------

def text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def read_conversation(fmt, body):
    """-> (last user text, number of assistant messages, tool outputs in order, chars)."""
    user, n_assistant, outputs, chars = "", 0, [], len(text_of(body.get("system", "")))
    for m in body.get("messages", []):
        role, content = m.get("role"), m.get("content")
        chars += len(json.dumps(content)) if content is not None else 0
        if role == "assistant":
            n_assistant += 1
        elif role == "tool":
            outputs.append(text_of(content))
        elif role == "user":
            results = [p for p in content if isinstance(p, dict)
                       and p.get("type") == "tool_result"] if isinstance(content, list) else []
            for r in results:
                outputs.append(text_of(r.get("content", "")))
            if text_of(content) or not results:
                user = text_of(content)
    return user, n_assistant, outputs, chars


def api_key_of(fmt, headers):
    if fmt == "anthropic":
        return headers.get("x-api-key", "")
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else ""


def masked(key):
    return key[:4] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)


def error_body(fmt, status, message, key=None):
    if fmt == "openai":
        kind = {401: "invalid_request_error", 429: "requests", 500: "server_error"}.get(
            status, "invalid_request_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    kind = {401: "authentication_error", 429: "rate_limit_error", 500: "api_error"}.get(
        status, "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_message(fmt, status, key):
    if status == 401:
        if fmt == "openai":
            return ("Incorrect API key provided: %s. You can find your API key at "
                    "https://platform.openai.com/account/api-keys." % masked(key))
        return "invalid x-api-key"
    if status == 429:
        return ("Rate limit reached for requests" if fmt == "openai" else
                "Number of request tokens has exceeded your per-minute rate limit")
    return ("The server had an error while processing your request. Sorry about that!"
            if fmt == "openai" else "Internal server error")


# ---- replies -----------------------------------------------------------------------------

def plan(fmt, model, body, headers):
    """What to answer: ("reply", text, calls, usage_in, usage_out) or ("error", status, extra
    headers) or (kind,) for slow / fast / stall / malformed."""
    user, n_assistant, outputs, chars = read_conversation(fmt, body)
    usage_in = max(1, chars // 4)
    name, _, arg = model.partition(":")
    count = STATE.by_model.get(model, 0)
    if name in ("429", "429d", "500") and arg.isdigit() and count <= int(arg):
        status = 500 if name == "500" else 429
        extra = [("Retry-After", "1")] if name == "429" else []
        if name == "429d":
            extra = [("Retry-After", email.utils.formatdate(time.time() + 2, usegmt=True))]
        return ("error", status, extra)
    if name == "auth" and api_key_of(fmt, headers) != arg:
        return ("error", 401, [])
    if name == "script":
        replies = STATE.scripts.get(arg, [])
        if n_assistant < len(replies):
            r = replies[n_assistant]
            calls = [(c["name"], c.get("arguments", "{}")) for c in r.get("tool_calls", [])]
            return ("reply", r.get("text", ""), calls, usage_in, None)
        return ("reply", "script %s done" % arg, [], usage_in, None)
    if name == "tools2":
        if not outputs:
            return ("reply", "", [("echo", '{"text":"a"}'), ("echo", '{"text":"b"}')],
                    usage_in, None)
        return ("reply", "tools: " + ",".join(outputs), [], usage_in, None)
    if name == "usage":
        parts = arg.split(":")
        return ("reply", "ok", [], int(parts[0]), int(parts[1]))
    if name in ("slow", "fast", "stall", "malformed"):
        return (name, arg, usage_in)
    if name == "team":
        return ("reply",) + team_step(user, n_assistant, outputs, arg) + (usage_in, None)
    return ("reply", "echo: " + user, [], usage_in, None)


def team_step(user, n_assistant, outputs, arg):
    """team:N:TPL -> (text, calls) of reply n_assistant."""
    n, _, tpl = arg.partition(":")
    if n_assistant == 0:
        return "", [("spawn_agent", dumps(dict({"input": "part %d: %s" % (i, user)},
                                               **({"template": tpl} if tpl else {}))))
                    for i in range(int(n or "2"))]
    if n_assistant == 1:
        ids = []
        for o in outputs:
            try:
                ids.append(json.loads(o)["agent_id"])
            except (ValueError, KeyError, TypeError):
                return "spawn failed: " + o, []
        return "", [("wait_agent", dumps({"agents": ids}))]
    try:
        answers = json.loads(outputs[-1])
        return "team: " + " | ".join(a.get("output", a.get("error", "")) for a in answers), []
    except (ValueError, IndexError, AttributeError):
        return "wait failed: " + (outputs[-1] if outputs else ""), []


def tokens(text):
    return re.findall(r"\S+\s*|\s+", text) or ([text] if text else [])


class Ids:
    n = 0

    @classmethod
    def next(cls, prefix):
        cls.n += 1
        return "%s%024d" % (prefix, cls.n)


def out_tokens(text, calls):
    return max(1, len(tokens(text)) + sum(len(a) // 4 + 1 for _, a in calls))


def openai_whole(model, text, calls, usage_in, usage_out):
    msg = {"role": "assistant", "content": text if (text or not calls) else None,
           "refusal": None}
    if calls:
        msg["tool_calls"] = [{"id": Ids.next("call_"), "type": "function",
                              "function": {"name": n, "arguments": a}} for n, a in calls]
    out = usage_out if usage_out is not None else out_tokens(text, calls)
    return {"id": Ids.next("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": msg, "logprobs": None,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": usage_in, "completion_tokens": out,
                      "total_tokens": usage_in + out}}


def anthropic_whole(model, text, calls, usage_in, usage_out):
    content = [{"type": "text", "text": text}] if text or not calls else []
    content += [{"type": "tool_use", "id": Ids.next("toolu_01"), "name": n,
                 "input": json.loads(a)} for n, a in calls]
    out = usage_out if usage_out is not None else out_tokens(text, calls)
    return {"id": Ids.next("msg_01"), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use" if calls else "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": usage_in, "output_tokens": out}}


def openai_events(model, text, calls, usage_in, usage_out, include_usage):
    """The chat.completion.chunk events of a reply, as SSE text, one string per event."""
    cid, created = Ids.next("chatcmpl-"), int(time.time())

    def ev(delta, finish=None, choices=True, usage=None):
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": "fp_fake",
               "choices": [{"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish}] if choices else []}
        if include_usage:
            obj["usage"] = usage
        return "data: " + dumps(obj) + "\n\n"

    events = [ev({"role": "assistant", "content": "", "refusal": None})]
    for t in tokens(text):
        events.append(ev({"content": t}))
    for i, (name, args) in enumerate(calls):
        events.append(ev({"tool_calls": [{"index": i, "id": Ids.next("call_"), "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        for k in range(0, len(args), 5):
            events.append(ev({"tool_calls": [{"index": i,
                                              "function": {"arguments": args[k:k + 5]}}]}))
    events.append(ev({}, "tool_calls" if calls else "stop"))
    if include_usage:
        out = usage_out if usage_out is not None else out_tokens(text, calls)
        events.append(ev(None, choices=False, usage={"prompt_tokens": usage_in,
                                                     "completion_tokens": out,
                                                     "total_tokens": usage_in + out}))
    events.append("data: [DONE]\n\n")
    return events


def sse(event, obj):
    return "event: %s\ndata: %s\n\n" % (event, dumps(obj))


def anthropic_events(model, text, calls, usage_in, usage_out):
    out = usage_out if usage_out is not None else out_tokens(text, calls)
    events = [sse("message_start", {"type": "message_start", "message": {
        "id": Ids.next("msg_01"), "type": "message", "role": "assistant", "content": [],
        "model": model, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": usage_in, "output_tokens": 1}}})]
    index = 0
    if text or not calls:
        events.append(sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}}))
        events.append(sse("ping", {"type": "ping"}))
        for t in tokens(text):
            events.append(sse("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": t}}))
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for name, args in calls:
        events.append(sse("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": Ids.next("toolu_01"), "name": name,
                              "input": {}}}))
        for k in range(0, len(args), 5):
            events.append(sse("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": args[k:k + 5]}}))
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    events.append(sse("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": "tool_use" if calls
                                                  else "end_turn", "stop_sequence": None},
                                        "usage": {"output_tokens": out}}))
    events.append(sse("message_stop", {"type": "message_stop"}))
    return events


def reply_events(fmt, model, body, text, calls, usage_in, usage_out):
    if fmt == "openai":
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        return openai_events(model, text, calls, usage_in, usage_out, include)
    return anthropic_events(model, text, calls, usage_in, usage_out)


SSE_HEADERS = [("Content-Type", "text/event-stream; charset=utf-8"),
               ("Transfer-Encoding", "chunked"), ("Cache-Control", "no-cache")]


async def write_awkward(conn, events):
    """Every event in pieces of 1-7 bytes, each its own HTTP chunk."""
    data = "".join(events).encode()
    i, n = 0, 0
    while i < len(data):
        k = random.randint(1, 7)
        await conn.chunk(data[i:i + k])
        i += k
        n += 1
        if n % 16 == 0:
            await asyncio.sleep(0.0005)


async def answer_model(conn, fmt, body, headers):
    model = body.get("model", "")
    stream = bool(body.get("stream"))
    STATE.by_model[model] = STATE.by_model.get(model, 0) + 1
    STATE.arrivals.setdefault(model, []).append(round(time.monotonic() - START, 3))
    if model.startswith("slowecho:"):
        await asyncio.sleep(int(model.partition(":")[2] or "1000") / 1000)
    p = plan(fmt, model, body, headers)
    kind = p[0]
    if kind == "error":
        status = p[1]
        msg = error_message(fmt, status, api_key_of(fmt, headers))
        await conn.whole(status, error_body(fmt, status, msg), extra=p[2])
        return
    if kind == "reply":
        _, text, calls, usage_in, usage_out = p
        if not stream:
            build = openai_whole if fmt == "openai" else anthropic_whole
            await conn.whole(200, build(model, text, calls, usage_in, usage_out))
            return
        await conn.head(200, SSE_HEADERS)
        await write_awkward(conn, reply_events(fmt, model, body, text, calls, usage_in,
                                               usage_out))
        await conn.end_chunks()
        return
    await SPECIAL[kind](conn, fmt, model, body, stream, p[1], p[2])


SLOW_TEXT = " ".join(["slow"] * 10)


async def answer_slow(conn, fmt, model, body, stream, arg, usage_in):
    ms = int(arg or "1000")
    if not stream:
        await conn.pause(ms / 1000)
        build = openai_whole if fmt == "openai" else anthropic_whole
        await conn.whole(200, build(model, SLOW_TEXT, [], usage_in, None))
        return
    events = reply_events(fmt, model, body, SLOW_TEXT, [], usage_in, None)
    n = len(tokens(SLOW_TEXT))
    first = 1 if fmt == "openai" else 3  # after role / message_start, content_block_start, ping
    await conn.head(200, SSE_HEADERS)
    await conn.chunk("".join(events[:first]))
    # Plain sleeps, not pause(): 2,000 streams waiting must stay cheap. A client that went away
    # is seen when the next token's write fails.
    for e in events[first:first + n]:
        await asyncio.sleep(ms / 1000 / n)
        await conn.chunk(e)
    await conn.chunk("".join(events[first + n:]))
    await conn.end_chunks()


async def answer_fast(conn, fmt, model, body, stream, arg, usage_in):
    n = int(arg or "100")
    text = "tok " * n
    if not stream:
        build = openai_whole if fmt == "openai" else anthropic_whole
        await conn.whole(200, build(model, text, [], usage_in, n))
        return
    events = reply_events(fmt, model, body, text, [], usage_in, n)
    await conn.head(200, SSE_HEADERS)
    for i in range(0, len(events), 64):
        await conn.chunk("".join(events[i:i + 64]))
    await conn.end_chunks()


async def answer_stall(conn, fmt, model, body, stream, arg, usage_in):
    if stream:
        await conn.head(200, SSE_HEADERS)
        await conn.chunk(reply_events(fmt, model, body, "", [], usage_in, None)[0])
    else:
        await conn.head(200, [("Content-Type", "application/json"), ("Content-Length", "100")])
    await conn.until_gone()


async def answer_malformed(conn, fmt, model, body, stream, arg, usage_in):
    if not stream:
        await conn.whole(200, '{"id": "chatcmpl-1", "choices": [{"message": ')
        return
    events = reply_events(fmt, model, body, "never", [], usage_in, None)
    await conn.head(200, SSE_HEADERS)
    bad = ("event: content_block_delta\n" if fmt == "anthropic" else "") + \
        'data: {"choices": [{"delta": {"content": "oops"\n\n'
    await write_awkward(conn, [events[0], bad] + events[1:])
    await conn.end_chunks()


SPECIAL = {"slow": answer_slow, "fast": answer_fast, "stall": answer_stall,
           "malformed": answer_malformed}


# ---- generic endpoints for the HTTP client's tests ---------------------------------------

async def answer_http(conn, method, path, query, headers, raw):
    parts = path.split("/")[2:]  # /_http/<what>/<arg>
    what, arg = parts[0], parts[1] if len(parts) > 1 else ""
    if what == "status":
        extra = [("Location", query["location"][0])] if "location" in query else []
        await conn.whole(int(arg), "status %s\n" % arg, "text/plain", extra)
    elif what == "bytes":
        await conn.whole(200, b"x" * int(arg), "text/plain")
    elif what == "stream":
        await conn.head(200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
        for i in range(int(arg)):
            await conn.chunk("chunk %d\n" % i)
            await conn.pause(0.01)
        await conn.end_chunks()
    elif what == "stall":
        await conn.head(200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
        await conn.chunk("hello")
        await conn.until_gone()
    elif what == "slow":
        await conn.pause(int(arg) / 1000)
        await conn.whole(200, "slow", "text/plain")
    elif what == "echo":
        await conn.whole(200, {"method": method, "path": path, "headers": headers,
                               "body": raw.decode("utf-8", "replace")})
    else:
        await conn.whole(404, "no such test endpoint\n", "text/plain")


# ---- HTTP/1.1 ----------------------------------------------------------------------------

async def read_request(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    raw = await reader.readexactly(n) if n else b""
    return method, target, headers, raw


EMBED_DIMS = 64


def embedding(text):
    v = [0.0] * EMBED_DIMS
    for word in re.findall(r"[0-9a-z\u0080-\uffff]+", text.lower()):
        h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        v[h % EMBED_DIMS] += -1.0 if h >> 63 else 1.0
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v] if norm else v


async def answer_embeddings(conn, body):
    text = body.get("input") if isinstance(body, dict) else None
    if not isinstance(text, str):
        await conn.whole(400, error_body("openai", 400, "input must be a string"))
        return
    await conn.whole(200, {"object": "list", "model": body.get("model", ""),
                           "data": [{"object": "embedding", "index": 0,
                                     "embedding": embedding(text)}],
                           "usage": {"prompt_tokens": len(text.split()), "total_tokens": 0}})


async def dispatch(conn, method, target, headers, raw):
    url = urllib.parse.urlsplit(target)
    path, query = url.path, urllib.parse.parse_qs(url.query)
    if path == "/_stats":
        await conn.whole(200, STATE.stats())
        return
    if path == "/_reset":
        STATE.reset()
        await conn.whole(200, {"ok": True})
        return
    if path.startswith("/_script/"):
        STATE.scripts[path[len("/_script/"):]] = json.loads(raw or b"{}").get("replies", [])
        await conn.whole(200, {"ok": True})
        return
    STATE.requests += 1
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    STATE.last = {"path": path, "headers": headers, "body": body}
    if path.startswith("/_http/"):
        await answer_http(conn, method, path, query, headers, raw)
        return
    if path in ("/v1/embeddings", "/embeddings") and method == "POST":
        await answer_embeddings(conn, body)
        return
    fmt = {"/v1/chat/completions": "openai", "/chat/completions": "openai",
           "/v1/messages": "anthropic", "/messages": "anthropic"}.get(path)
    if fmt is None or method != "POST":
        await conn.whole(404, error_body("openai", 404, "no such endpoint: " + path))
        return
    if not isinstance(body, dict):
        await conn.whole(400, error_body(fmt, 400, "the request body is not a JSON object"))
        return
    await answer_model(conn, fmt, body, headers)


async def serve(reader, writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Conn(reader, writer)
    STATE.connections += 1
    try:
        while True:
            req = await read_request(reader)
            if req is None:
                break
            try:
                await dispatch(conn, *req)
                STATE.completed += 1
            except Aborted:
                STATE.aborted += 1
                break
            if req[2].get("connection", "").lower() == "close":
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description="a fake OpenAI / Anthropic API for tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    server = await asyncio.start_server(serve, "127.0.0.1", args.port, backlog=4096,
                                        limit=1 << 24)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    else:
        print(port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
