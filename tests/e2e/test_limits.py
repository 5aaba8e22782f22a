"""tests/e2e/test_limits.py - an agent's limits, budgets and permission rules (issue 15, point 4).

One node with a default iteration limit of 3 (`--max-iterations 3`) and a price for the mock model
of one dollar per token (`--price mock=1000000:1000000`), so that costs are easy to reckon. The
mock model counts ceil(chars / 4) tokens (worker/model_mock.c). Each limit ends the turn with a
YIELD naming it, never an ERROR; the budgets count what the agent spent over its whole life, so
a resumed agent past its budget yields again at once without calling the model.
"""
import os
import sys
import json
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class LimitsTest(H.ClusterTestCase):
    NODES = 1
    NODE_ARGS = ("--max-iterations", "3", "--price", "mock=1000000:1000000")

    def spawn(self, text, tools=("echo",), **kw):
        spec = self.c.spec(tools=tools, **kw)
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=text), timeout=10).agent_id

    def end_of_turn(self, agent_id, after_seq=0, timeout=15):
        ev = self.c.wait_turn_end(agent_id, after_seq, timeout=timeout)
        return ev, H.payload(ev)

    def kinds(self, agent_id):
        return [H.kind_name(e.kind) for e in self.c.trace(agent_id)]

    def test_a_spec_without_a_limit_takes_the_node_default(self):
        a = self.spawn("loop", max_iterations=0)
        ev, p = self.end_of_turn(a)
        self.assertEqual(ev.kind, self.T.EVENT_KIND_YIELD, p)
        self.assertEqual(p, {"reason": "max_iterations", "iterations": 3})
        # The spec's own limit wins over the node's.
        b = self.spawn("loop", max_iterations=1)
        self.assertEqual(self.end_of_turn(b)[1]["iterations"], 1)

    def test_token_budget_yields_and_stays_spent(self):
        a = self.spawn("loop", max_iterations=50, limits=self.T.Limits(max_tokens=20))
        ev, p = self.end_of_turn(a)
        self.assertEqual((ev.kind, p["reason"]), (self.T.EVENT_KIND_YIELD, "token_budget"), p)
        got = self.c.get(a)
        self.assertTrue(got.state_reason.startswith("token_budget: "), got.state_reason)
        spent = got.usage.input_tokens + got.usage.output_tokens
        self.assertGreaterEqual(spent, 20, "it stopped once the budget was spent, not before")
        calls = got.usage.model_calls
        self.assertLess(calls, 50)
        # Resumed, it is still over budget: it yields again at once, without a model call.
        r = self.c.hub.ResumeAgent(self.s.hub.ResumeAgentRequest(agent_id=a), timeout=10)
        ev, p = self.end_of_turn(a, r.seq)
        self.assertEqual(p["reason"], "token_budget")
        self.assertEqual(self.c.get(a).usage.model_calls, calls)

    def test_cost_budget_prices_replies_with_the_node_table(self):
        a = self.spawn("loop", max_iterations=50, limits=self.T.Limits(max_cost_usd=0.5))
        ev, p = self.end_of_turn(a)
        self.assertEqual(p["reason"], "cost_budget", p)
        replies = [H.payload(e) for e in self.c.trace(a) if e.kind == self.T.EVENT_KIND_MODEL_REPLY]
        self.assertEqual(len(replies), 1, "one reply already costs more than 50 cents")
        u = replies[0]["usage"]
        self.assertEqual(u["cost_usd"], u["input_tokens"] + u["output_tokens"])
        self.assertAlmostEqual(self.c.get(a).usage.cost_usd, u["cost_usd"], places=6,
                               msg="the hub adds up what the replies cost")

    def test_turn_timeout_cancels_the_call_and_yields(self):
        t0 = time.monotonic()
        a = self.spawn("sleep 30000; final late", tools=(),
                       limits=self.T.Limits(turn_timeout_ms=300))
        ev, p = self.end_of_turn(a, timeout=10)
        self.assertEqual((ev.kind, p["reason"]), (self.T.EVENT_KIND_YIELD, "turn_timeout"), p)
        self.assertLess(time.monotonic() - t0, 10, "the 30 s model call was cut short")
        self.assertEqual(self.c.get(a).state, self.T.AGENT_STATE_YIELDED)

    def test_a_denied_tool_call_is_an_error_result_and_the_turn_goes_on(self):
        rule = self.T.PermissionRule(tool="echo", decision="deny")
        a = self.spawn("echo secret; final after", permissions=[rule])
        ev, p = self.end_of_turn(a)
        self.assertEqual(ev.kind, self.T.EVENT_KIND_FINAL, p)
        results = [H.payload(e) for e in self.c.trace(a) if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertEqual(len(results), 1)
        self.assertTrue(results[0]["is_error"])
        self.assertIn("permission denied", results[0]["output"])
        self.assertIn("rule 1", results[0]["output"])

    def test_first_matching_rule_wins(self):
        rules = [self.T.PermissionRule(tool="echo", decision="allow"),
                 self.T.PermissionRule(tool="*", decision="deny")]
        a = self.spawn("echo fine; final after", permissions=rules)
        self.end_of_turn(a)
        results = [H.payload(e) for e in self.c.trace(a) if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertEqual(results[0], {"id": results[0]["id"], "name": "echo", "output": "fine",
                                      "is_error": False})

    def test_settings_a_tool_does_not_take_end_the_turn_with_an_error(self):
        a = self.spawn("hello", tool_settings={"echo": json.dumps({"colour": "red"})})
        ev, p = self.end_of_turn(a)
        self.assertEqual(ev.kind, self.T.EVENT_KIND_ERROR, p)
        self.assertIn("echo", p["message"])
        self.assertIn("settings", p["message"])


if __name__ == "__main__":
    H.main()
