"""tests/e2e/test_node_options.py - options given to a node's providers and tools reach every call.

`agentry node join --model-opt PROVIDER.KEY=VAL --tool-opt TOOL.KEY=VAL` (issue 11, point 3: call
contexts carry a deadline and options routed from node flags). Each class runs one hub and one
node started with the options under test, so every turn lands on that node:
- a model call past `mock.timeout` ends the turn with ERROR naming the timeout (the agent is
  FAILED); with a deadline the reply beats, the turn ends FINAL: the option bounds, it does not
  delay;
- a tool call past `echo.timeout` is an error the model sees (TOOL_RESULT is_error), and the turn
  goes on to its final answer;
- a tool step goes on only once the hub has acknowledged its events (always, issue 12), and
  turns still complete (the emit acknowledgement path over a real stream);
- an option no provider or tool takes is refused before the node starts: exit 2, one line;
- the node's permission policy (`--policy FILE`, docs/permissions.md) is a ceiling over the spec's
  rules: a call the spec allows and the node denies is an error result naming the node's rule; a
  bad or unreadable policy file stops the node before it joins: exit 2, one line naming the file,
  the line and the problem.
"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class NodeWith(H.ClusterTestCase):
    NODES = 0
    HUB_ARGS = ("--join-grace", "0s")
    NODE_EXTRA = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.c.add_node("opt", extra=cls.NODE_EXTRA)

    def events_of(self, agent_id):
        return [(H.kind_name(e.kind), H.payload(e)) for e in self.c.trace(agent_id)]


class ModelTimeoutTest(NodeWith):
    # Every reply comes 2 s late unless the script says otherwise; the deadline is 300 ms.
    NODE_EXTRA = ("--model-opt", "mock.timeout=300ms", "--model-opt", "mock.latency=2s")

    def test_model_call_past_its_deadline_ends_the_turn(self):
        a = self.c.spawn("final never", tools=())
        end = self.c.wait_turn_end(a.agent_id)
        self.assertEqual(H.kind_name(end.kind), "error", self.events_of(a.agent_id))
        self.assertIn("model call to 'mock' timed out", H.payload(end)["message"])
        self.c.wait_state(a.agent_id, self.T.AGENT_STATE_FAILED)


class QuickModelTest(NodeWith):
    # The deadline is generous: the option is a bound, not a delay.
    NODE_EXTRA = ("--model-opt", "mock.timeout=30s")

    def test_model_within_its_deadline_answers(self):
        a = self.c.spawn("final fine", tools=())
        end = self.c.wait_turn_end(a.agent_id)
        self.assertEqual((H.kind_name(end.kind), H.payload(end)["output"]), ("final", "fine"))


class ToolTimeoutTest(NodeWith):
    NODE_EXTRA = ("--tool-opt", "echo.timeout=200ms,echo.latency=5s")

    def test_tool_call_past_its_deadline_is_an_error_the_model_sees(self):
        a = self.c.spawn("echo slow; final after the tool", tools=("echo",))
        end = self.c.wait_turn_end(a.agent_id)
        evs = self.events_of(a.agent_id)
        results = [p for k, p in evs if k == "tool_result"]
        self.assertEqual(len(results), 1, evs)
        self.assertTrue(results[0]["is_error"], results[0])
        self.assertEqual(results[0]["output"], "tool 'echo' timed out")
        self.assertEqual((H.kind_name(end.kind), H.payload(end)["output"]),
                         ("final", "after the tool"))


class DurableStepsTest(NodeWith):
    # Each tool step waits for the hub's EventAck of its TOOL_CALL (before the tool runs) and of
    # its TOOL_RESULT (before the next model call): if an acknowledgement never reached the run,
    # the turn would stay parked and never end.
    NODE_EXTRA = ()

    def test_tool_steps_wait_for_the_hub_and_the_turn_completes(self):
        a = self.c.spawn("echo one; echo two; final done", tools=("echo",))
        end = self.c.wait_turn_end(a.agent_id)
        evs = self.events_of(a.agent_id)
        self.assertEqual([k for k, _ in evs],
                         ["spawned", "input", "assigned"] +
                         ["model_request", "model_reply", "tool_call", "tool_result"] * 2 +
                         ["model_request", "model_reply", "final"], evs)
        self.assertEqual([p["output"] for k, p in evs if k == "tool_result"], ["one", "two"])
        self.assertEqual(H.payload(end)["output"], "done")


class BadOptionTest(H.ClusterTestCase):
    NODES = 0

    def test_unknown_options_are_refused_before_start(self):
        cases = [
            (["--tool-opt", "echo.colour=red"],
             "error: unknown option 'echo.colour': echo takes timeout, latency"),
            (["--model-opt", "nosuch.timeout=1s"],
             "error: invalid model option 'nosuch.timeout=1s': this node has no model provider "
             "'nosuch' (it has: mock, openai, anthropic)"),
            (["--model-opt", "openai.api_key_file=/nonexistent/key"],
             "error: cannot read option 'openai.api_key_file' '/nonexistent/key': No such file or "
             "directory"),
        ]
        for extra, want in cases:
            with self.subTest(extra=extra):
                r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "bad"] + extra,
                              timeout=20)
                self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
                self.assertEqual(r.stderr.splitlines(), [want])
        self.assertEqual(self.c.registrations("bad"), 0, "a refused node never registers")


POLICY_DIR = tempfile.mkdtemp(prefix="agentry-e2e-policy-")


def policy_file(name, text):
    path = os.path.join(POLICY_DIR, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class NodePolicyTest(NodeWith):
    NODE_EXTRA = ("--policy", policy_file("deny-echo.yaml", "rules:\n"
                                          "  - {tool: echo, decision: deny}\n"
                                          "default: allow\n"))

    def test_the_node_denies_what_the_spec_allows(self):
        allow = [self.T.PermissionRule(tool="echo", decision="allow")]
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=self.c.spec(tools=("echo",), permissions=allow), input="echo hi; final done"),
            timeout=10).agent_id
        end = self.c.wait_turn_end(a)
        evs = self.events_of(a)
        results = [p for k, p in evs if k == "tool_result"]
        self.assertEqual(len(results), 1, evs)
        self.assertTrue(results[0]["is_error"], results[0])
        self.assertEqual(results[0]["output"],
                         "permission denied: rule 1 of the node's policy (deny echo) forbids this "
                         "call of tool 'echo'")
        self.assertEqual((H.kind_name(end.kind), H.payload(end)["output"]), ("final", "done"))
        log = self.c.nodes["opt"].tail(200)
        self.assertIn("event=node.policy_loaded file=\"%s\" rules=1 default=allow"
                      % self.NODE_EXTRA[1], log)


class BadPolicyTest(H.ClusterTestCase):
    NODES = 0

    def test_a_bad_policy_file_stops_the_node(self):
        missing = os.path.join(POLICY_DIR, "missing.yaml")
        cases = [
            (policy_file("typo.yaml", "rules:\n  - {tool: shell, decison: deny}\n"),
             "2: rules[0]: unknown key 'decison' (expected tool, decision, patterns)"),
            (policy_file("maybe.yaml", "rules:\n  - tool: shell\n    decision: maybe\n"),
             "3: rules[0].decision: expected allow, ask or deny, got 'maybe'"),
            (policy_file("notalist.yaml", "rules: shell\n"),
             "1: rules: expected a list of rules {tool, decision, patterns}, got 'shell'"),
        ]
        for path, want in cases:
            with self.subTest(want=want):
                r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "bad",
                               "--policy", path], timeout=20)
                self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
                self.assertEqual(r.stderr.splitlines(), ["error: %s:%s" % (path, want)])
        r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "bad",
                       "--policy", missing], timeout=20)
        self.assertEqual((r.returncode, r.stderr.splitlines()),
                         (2, ["error: cannot read policy file '%s': No such file or directory"
                              % missing]))
        self.assertEqual(self.c.registrations("bad"), 0, "a refused node never registers")


def tearDownModule():
    shutil.rmtree(POLICY_DIR, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
