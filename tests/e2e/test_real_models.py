"""tests/e2e/test_real_models.py - agents on the openai and anthropic providers (issue 15, points
1 and 5), end to end: a hub, one node pointed at tests/fake_llm.py (a local server speaking both
APIs' wire formats exactly; the only stand-in the project allows, for a paid service), and agents
whose spec.model picks the server's behaviour ("openai/tools2", "anthropic/slow:1500", ...).

What is checked: a reply with two tool calls runs both and the turn goes on; a streamed reply
reaches a Trace follower as a few MODEL_DELTA events before its MODEL_REPLY; KillAgent aborts the
HTTP request in flight; 429 is retried after Retry-After; a malformed reply fails the turn with a
clear error while the node goes on serving; the API key reaches the server in the right header
and nowhere else (no event, no log line); the spec's model settings reach the request.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "sk-test-e2e-0123456789secret"


class FakeLLM:
    """tests/fake_llm.py on a free loopback port, stopped by PID."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-fake-llm-")
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "fake.log"), "w")
        self.p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "..", "fake_llm.py"),
                                   "--port-file", port_file], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        H.wait_for(lambda: self._port(port_file), 10, what="the fake model server to listen")
        self.base = "http://127.0.0.1:%d" % self.port

    def _port(self, path):
        if self.p.poll() is not None:
            raise AssertionError("fake_llm.py exited: %s" % open(self.log.name).read())
        try:
            self.port = int(open(path).read().strip())
            return True
        except (OSError, ValueError):
            return False

    def stats(self):
        with urllib.request.urlopen(self.base + "/_stats", timeout=5) as r:
            return json.load(r)

    def stop(self):
        self.p.terminate()
        self.p.wait(10)
        self.log.close()


class RealModelsTest(H.ClusterTestCase):
    NODES = 1

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeLLM()
        cls.addClassCleanup(cls.fake.stop)
        os.environ["OPENAI_API_KEY"] = KEY  # the node inherits it (openai.api_key_env default)
        cls.NODE_ARGS = ("--model-opt", "openai.base_url=%s/v1" % cls.fake.base,
                         "--model-opt", "anthropic.base_url=%s/v1" % cls.fake.base,
                         "--model-opt", "openai.retry_base=50ms")
        super().setUpClass()

    def spawn(self, model, text="hi", tools=("echo",), stream=False, **settings):
        spec = self.c.spec(tools=tools, model=model,
                           model_settings=self.T.ModelSettings(stream=stream, **settings))
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=text),
                                timeout=10).agent_id

    def events(self, agent_id, kind):
        return [e for e in self.c.trace(agent_id) if e.kind == kind]

    def check_two_tool_calls(self, model, stream):
        a = self.spawn(model, stream=stream)
        end = self.c.wait_turn_end(a)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual(H.payload(end)["output"], "tools: a,b")
        first = H.payload(self.events(a, self.T.EVENT_KIND_MODEL_REPLY)[0])
        self.assertEqual([(c["name"], json.loads(c["arguments"])) for c in first["tool_calls"]],
                         [("echo", {"text": "a"}), ("echo", {"text": "b"})])
        results = [H.payload(e) for e in self.events(a, self.T.EVENT_KIND_TOOL_RESULT)]
        self.assertEqual([r["output"] for r in results], ["a", "b"])
        self.assertGreater(first["usage"]["input_tokens"], 0)

    def test_openai_two_tool_calls_in_one_reply(self):
        self.check_two_tool_calls("openai/tools2", stream=False)

    def test_openai_two_tool_calls_streamed(self):
        self.check_two_tool_calls("openai/tools2", stream=True)

    def test_anthropic_two_tool_calls_in_one_reply(self):
        self.check_two_tool_calls("anthropic/tools2", stream=False)

    def test_anthropic_two_tool_calls_streamed(self):
        self.check_two_tool_calls("anthropic/tools2", stream=True)

    def test_a_follower_sees_the_reply_while_it_is_written(self):
        for model in ("openai/slow:1500", "anthropic/slow:1500"):
            with self.subTest(model=model):
                a = self.spawn(model, tools=(), stream=True)
                seen = self.c.follow_until(a, lambda e: e.kind == self.T.EVENT_KIND_MODEL_REPLY)
                deltas = [H.payload(e) for e in seen if e.kind == self.T.EVENT_KIND_MODEL_DELTA]
                reply = H.payload(seen[-1])
                self.assertGreaterEqual(len(deltas), 2, "the text came in pieces, live")
                self.assertLess(len(deltas), reply["usage"]["output_tokens"],
                                "coalesced: fewer events than tokens")
                text = "".join(d["text"] for d in deltas)
                self.assertTrue(reply["content"].startswith(text), (text, reply["content"]))
                self.assertEqual({d["iteration"] for d in deltas}, {1})

    def test_kill_aborts_the_http_request_in_flight(self):
        before = self.fake.stats()["aborted"]
        a = self.spawn("openai/stall", tools=(), stream=True)
        self.c.wait_kind(a, self.T.EVENT_KIND_MODEL_REQUEST)
        H.wait_for(lambda: self.fake.stats()["by_model"].get("stall", 0) >= 1, 10,
                   what="the request to reach the server")
        self.c.kill(a, "enough")
        H.wait_for(lambda: self.fake.stats()["aborted"] > before, 10,
                   what="the server to see the request aborted")
        self.assertEqual(self.c.get(a).state, self.T.AGENT_STATE_KILLED)

    def test_429_is_retried_after_retry_after(self):
        a = self.spawn("openai/429:2", tools=())
        end = self.c.wait_turn_end(a, timeout=20)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual(self.fake.stats()["by_model"]["429:2"], 3)

    def test_a_malformed_reply_fails_the_turn_clearly_and_the_node_serves_on(self):
        for stream in (False, True):
            with self.subTest(stream=stream):
                a = self.spawn("openai/malformed", tools=(), stream=stream)
                end = self.c.wait_turn_end(a)
                self.assertEqual(end.kind, self.T.EVENT_KIND_ERROR)
                msg = H.payload(end)["message"]
                self.assertIn("malformed", msg)
                self.assertIn("openai/malformed", msg)
        b = self.spawn("openai/echo", text="still here", tools=())
        self.assertEqual(H.payload(self.c.wait_turn_end(b))["output"], "echo: still here")

    def test_the_api_key_goes_in_its_header_and_nowhere_else(self):
        a = self.spawn("openai/echo", text="key check", tools=())
        self.c.wait_turn_end(a)
        last = self.fake.stats()["last"]
        self.assertEqual(last["headers"]["authorization"], "Bearer " + KEY)
        b = self.spawn("openai/500:10", tools=())  # fails after its retries: an error message
        self.c.wait_turn_end(b, timeout=30)
        for agent in (a, b):
            for e in self.c.trace(agent):
                self.assertNotIn(KEY, e.payload)
        self.assertNotIn(KEY, self.c.nodes["n1"].text())
        self.assertNotIn(KEY, self.c.hub_log())

    def test_spec_model_settings_reach_the_request(self):
        a = self.spawn("openai/echo", tools=(), temperature=0.0, temperature_set=True,
                       max_tokens=77, headers={"X-Agentry-Test": "yes"})
        self.c.wait_turn_end(a)
        last = self.fake.stats()["last"]
        self.assertEqual(last["body"]["temperature"], 0.0)
        self.assertEqual(last["body"]["max_tokens"], 77)
        self.assertEqual(last["headers"]["x-agentry-test"], "yes")
        self.assertEqual(last["body"]["model"], "echo")
        b = self.spawn("anthropic/echo", tools=())
        self.c.wait_turn_end(b)
        last = self.fake.stats()["last"]
        self.assertEqual(last["body"]["max_tokens"], 4096, "anthropic requires one: the default")
        self.assertIn("anthropic-version", last["headers"])

    def test_usage_is_what_the_api_reported(self):
        a = self.spawn("openai/usage:100:7", tools=())
        self.c.wait_turn_end(a)
        u = self.c.get(a).usage
        self.assertEqual((u.input_tokens, u.output_tokens, u.model_calls), (100, 7, 1))


if __name__ == "__main__":
    H.main()
