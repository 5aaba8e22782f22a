"""tests/e2e/test_otlp.py - logs and traces out (issue 18 point 4).

- A hub with --otlp-endpoint exports each agent turn as OpenTelemetry spans over OTLP/HTTP JSON:
  a local receiver here speaks the protocol (POST /v1/traces, JSON body, answer 200 `{}`) and
  the test checks the span tree of one turn with a model call and a tool call.
- SIGTERM exports what is queued before the hub exits.
- With the collector down the hub keeps serving (an agent still completes) and says so in one
  otlp.dropped warning.
- A hub started with --log-format json writes one JSON object per line, hub.started among them.
"""
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class Receiver:
    """An OTLP/HTTP JSON traces receiver on a free loopback port; keeps every span posted."""

    def __init__(self):
        self.spans = []
        self.posts = 0
        self.bad = []  # requests that did not follow the protocol
        self.lock = threading.Lock()
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ctype = self.headers.get("Content-Type", "")
                try:
                    doc = json.loads(body)
                    spans = [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"]
                             for s in ss["spans"]]
                except (ValueError, KeyError, TypeError) as e:
                    spans = None
                    err = str(e)
                with rcv.lock:
                    rcv.posts += 1
                    if self.path != "/v1/traces" or ctype != "application/json" or spans is None:
                        rcv.bad.append((self.path, ctype, spans is None and err))
                    else:
                        rcv.spans.extend(spans)
                out = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.spans)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue"))
    return out


class OtlpCase(H.ClusterTestCase):
    """A hub exporting to its own receiver, and one node (no tests of its own)."""
    NODES = 1

    @classmethod
    def setUpClass(cls):
        cls.rcv = Receiver()
        cls.addClassCleanup(cls.rcv.close)
        cls.HUB_ARGS = ("--otlp-endpoint", cls.rcv.url)
        super().setUpClass()

    def turn_spans(self, agent_id):
        """Every span of agent_id's turn, once its root span arrived."""
        def root():
            return [s for s in self.rcv.snapshot() if "parentSpanId" not in s and
                    attrs(s).get("agentry.agent_id") == agent_id]
        H.wait_for(lambda: root(), timeout=15, what="the turn's root span")
        tid = root()[0]["traceId"]
        return [s for s in self.rcv.snapshot() if s["traceId"] == tid]


class OtlpExportTest(OtlpCase):
    def test_a_turn_is_a_trace_of_model_and_tool_spans(self):
        r = self.c.spawn("echo hi", tools=("echo",))
        self.assertEqual(self.c.wait_turn_end(r.agent_id).kind, self.T.EVENT_KIND_FINAL)
        spans = self.turn_spans(r.agent_id)
        self.assertEqual(self.rcv.bad, [])
        roots = [s for s in spans if "parentSpanId" not in s]
        self.assertEqual(len(roots), 1, spans)
        root = roots[0]
        self.assertRegex(root["traceId"], r"^[0-9a-f]{32}$")
        self.assertRegex(root["spanId"], r"^[0-9a-f]{16}$")
        self.assertEqual(root["name"], "invoke_agent")
        self.assertEqual(attrs(root)["agentry.node_id"], "n1")
        self.assertEqual(root["status"].get("code", 0), 0)
        children = [s for s in spans if s is not root]
        for s in children:
            self.assertEqual(s["parentSpanId"], root["spanId"], s)
            self.assertRegex(s["spanId"], r"^[0-9a-f]{16}$")
            self.assertLessEqual(int(root["startTimeUnixNano"]), int(s["startTimeUnixNano"]))
            self.assertLessEqual(int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]))
            self.assertLessEqual(int(s["endTimeUnixNano"]), int(root["endTimeUnixNano"]))
            self.assertEqual(attrs(s)["agentry.agent_id"], r.agent_id)
        self.assertEqual(len({s["spanId"] for s in spans}), len(spans))
        models = [s for s in children if "gen_ai.request.model" in attrs(s)]
        tools = [s for s in children if attrs(s).get("agentry.tool.name") == "echo"]
        # echo call, then the final answer: two model calls around one tool call.
        self.assertEqual(len(models), 2, children)
        self.assertEqual(len(tools), 1, children)
        self.assertEqual(attrs(models[0])["gen_ai.request.model"], "mock")
        self.assertIn("gen_ai.usage.input_tokens", attrs(models[0]))
        self.assertIn("gen_ai.usage.output_tokens", attrs(models[0]))
        self.assertEqual(attrs(tools[0])["agentry.tool.is_error"], "false")
        first_model = min(models, key=lambda s: int(s["startTimeUnixNano"]))
        self.assertLessEqual(int(first_model["endTimeUnixNano"]),
                             int(tools[0]["startTimeUnixNano"]))

    def test_a_failed_turn_has_error_status(self):
        r = self.c.spawn("fail the model is down", tools=())
        self.assertEqual(self.c.wait_turn_end(r.agent_id).kind, self.T.EVENT_KIND_ERROR)
        root = [s for s in self.turn_spans(r.agent_id) if "parentSpanId" not in s][0]
        self.assertEqual(root["status"]["code"], 2)
        self.assertIn("the model is down", root["status"].get("message", ""))


class StopFlushTest(OtlpCase):
    """A turn that ended just before SIGTERM is exported by the hub's graceful stop."""

    def test_stop_exports_what_is_queued(self):
        r = self.c.spawn("echo bye", tools=("echo",))
        self.assertEqual(self.c.wait_turn_end(r.agent_id).kind, self.T.EVENT_KIND_FINAL)
        self.c.stop_hub()
        roots = [s for s in self.rcv.snapshot() if "parentSpanId" not in s and
                 attrs(s).get("agentry.agent_id") == r.agent_id]
        self.assertEqual(len(roots), 1)
        self.c.start_hub()


class CollectorDownTest(H.ClusterTestCase):
    NODES = 1
    HUB_ARGS = ("--otlp-endpoint", "http://127.0.0.1:%d" % H.free_port())

    def test_the_hub_keeps_serving_and_warns(self):
        for i in range(3):
            r = self.c.spawn("echo down %d" % i, tools=("echo",))
            self.assertEqual(self.c.wait_turn_end(r.agent_id).kind, self.T.EVENT_KIND_FINAL)
        H.wait_for(lambda: "event=otlp.dropped" in self.c.hub_log(), timeout=20,
                   what="an otlp.dropped warning")
        line = [x for x in self.c.hub_log().splitlines() if "event=otlp.dropped" in x][0]
        self.assertIn("level=warn", line)
        self.assertRegex(line, r"spans_dropped=[1-9]")


class JsonLogTest(unittest.TestCase):

    def test_hub_json_lines_parse(self):
        d = tempfile.mkdtemp(prefix="agentry-e2e-jsonlog-")
        self.addCleanup(shutil.rmtree, d, True)
        log = os.path.join(d, "hub.log")
        args = [H.AGENTRY_BIN, "hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store",
                "sqlite:" + os.path.join(d, "h.db"), "--log-format", "json"]
        p = H.Proc("hub", args, log).start()
        try:
            H.wait_for(lambda: '"event":"hub.started"' in p.text(), timeout=15,
                       what="hub.started in JSON")
        finally:
            problem = p.stop()
        self.assertIsNone(problem)
        lines = [x for x in p.text().splitlines() if x.strip()]
        objs = [json.loads(x) for x in lines]  # every line is one JSON object
        started = [o for o in objs if o.get("event") == "hub.started"]
        self.assertEqual(len(started), 1, lines)
        o = started[0]
        self.assertEqual((o["level"], o["comp"]), ("info", "hub"))
        self.assertRegex(o["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(re.match(r"^\d+$", o["port"]), o)
        self.assertIn("hub.stopped", [x.get("event") for x in objs])


if __name__ == "__main__":
    H.main()
