"""tests/e2e/test_dead_letter.py - a turn that can never succeed ends, and says why.

Regressions (issue points 2 and 3):
- `agentry invoke --model nosuch "hi"` failed, but the agent stayed running and was re-placed at
  once after each failure (epoch ~11k in 10 s, the store growing by MBs), `ps` saying failed
  while `get` said running. Now Spawn of a model or tool no connected node offers is
  INVALID_ARGUMENT (or, while nodes may still be joining, the agent waits as pending with that
  reason), and a failed turn is never re-placed by the hub.
- The dead-letter rule: a turn interrupted N times in a row for the same reason ends the agent
  as failed with that reason, re-placement backs off, and get and ps agree.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402


class UnknownModelTest(H.ClusterTestCase):
    NODES = 1
    HUB_ARGS = ("--join-grace", "0s")

    def assert_invalid(self, fn, *parts):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                         cm.exception.details())
        for p in parts:
            self.assertIn(p, cm.exception.details())

    def test_unknown_model_or_tool_is_refused_and_creates_nothing(self):
        before = len(self.c.list_all())
        spec = self.s.types.AgentSpec(model="nosuch", tools=["echo"])
        self.assert_invalid(lambda: self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec,
                                                                              input="hi"),
                                                     timeout=10),
                            "no connected node offers model 'nosuch' (nodes offer: mock, openai, "
                            "anthropic)")
        self.assert_invalid(lambda: self.c.hub.Invoke(self.s.hub.InvokeRequest(spec=spec,
                                                                                input="hi"),
                                                      timeout=10),
                            "model 'nosuch'")
        tools = self.s.types.AgentSpec(tools=["echo", "nosuch"])
        self.assert_invalid(lambda: self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=tools),
                                                     timeout=10),
                            # The node's whole tool table follows; it grows with the tools.
                            "no connected node offers tool 'nosuch' (nodes offer: echo, append, ",
                            "http_request")
        # A model of a provider the node offers is fine: "mock" offers "mock/anything".
        r = self.c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=self.s.types.AgentSpec(model="mock/large"), input="final fine"), timeout=10)
        self.assertEqual(H.payload(self.c.wait_turn_end(r.agent_id))["output"], "fine")
        self.assertEqual(len(self.c.list_all()), before + 1)
        # The CLI: one line on stderr, exit 1, and no agent left running.
        res = H.run_cli(["invoke", "--hub", self.c.addr, "--model", "nosuch", "hi"])
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)
        self.assertIn("no connected node offers model 'nosuch'", res.stderr)
        self.assertEqual(len(self.c.list_all()), before + 1)

    def test_a_failed_turn_is_never_placed_again_by_the_hub(self):
        r = self.c.spawn("sleep 500; fail boom", tools=())
        self.c.wait_kind(r.agent_id, self.T.EVENT_KIND_MODEL_REQUEST)
        waiting = self.c.send(r.agent_id, "final later")  # arrives while the turn runs
        end = self.c.wait_turn_end(r.agent_id)
        self.assertEqual(H.kind_name(end.kind), "error")
        a = self.c.get(r.agent_id)
        self.assertEqual((a.state, a.pending_inputs), (self.T.AGENT_STATE_FAILED, 1))
        # The next input starts the next turn, which reads both; nothing ran in between.
        s = self.c.send(r.agent_id, "final again")
        evs = self.c.trace(r.agent_id, from_seq=end.seq + 1)
        self.assertEqual(evs[0].seq, s.seq, "nothing was stored between the ERROR and the input")
        self.assertGreater(s.seq, waiting.seq)
        end2 = self.c.wait_turn_end(r.agent_id, after_seq=s.seq)
        self.assertEqual(H.payload(end2)["output"], "again")
        self.assertEqual(self.c.get(r.agent_id).epoch, 2)


class JoiningNodesTest(H.ClusterTestCase):
    """With no node connected, or in the hub's first seconds (--join-grace, 10 s by default),
    an agent of a model no node offers yet waits, with the reason in state_reason."""
    NODES = 0

    def test_pending_with_a_reason_while_nodes_join(self):
        r = self.c.spawn("final hello")
        a = self.c.get(r.agent_id)
        self.assertEqual(a.state, self.T.AGENT_STATE_PENDING)
        self.assertEqual(a.state_reason, "waiting for a node to join")
        self.c.add_node("n1")
        self.assertEqual(H.payload(self.c.wait_turn_end(r.agent_id))["output"], "hello")
        # Within the join grace: a model no node offers yet waits instead of failing.
        odd = self.c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=self.s.types.AgentSpec(model="other/x"), input="hi"), timeout=10)
        a = self.c.get(odd.agent_id)
        self.assertEqual(a.state, self.T.AGENT_STATE_PENDING)
        self.assertEqual(a.state_reason, "waiting for a node that offers model 'other/x'")
        # ... and does not hold up agents the node can run.
        r2 = self.c.spawn("final next")
        self.assertEqual(H.payload(self.c.wait_turn_end(r2.agent_id))["output"], "next")
        self.assertEqual(self.c.get(odd.agent_id).state, self.T.AGENT_STATE_PENDING)
        self.c.kill(odd.agent_id)


class DeadLetterTest(H.ClusterTestCase):
    """A node that drops every turn it is given: the dead-letter rule ends the turn after 3
    interruptions in a row, backing off in between."""
    NODES = 0
    HUB_ARGS = ("--max-interruptions", "3", "--retry-backoff", "1s")

    def drop_next_assignment(self, instance):
        """A fake node (a new process each time) takes the next assignment and dies with it."""
        f = H.FakeNode(self.c)
        self.addCleanup(f.cancel)
        self.assertEqual(f.register("flaky", instance_id=instance).WhichOneof("msg"), "registered")
        asg = f.recv_kind("assign", timeout=15)
        f.cancel()
        return asg

    def test_turn_fails_after_three_interruptions_in_a_row(self):
        inv = self.c.hub.Invoke.future(self.s.hub.InvokeRequest(
            spec=self.c.spec(()), input="final never", request_id="dead-letter"), timeout=60)
        aid = H.wait_for(lambda: self.c.list_all(), 10, what="the agent")[0].id
        epochs = [self.drop_next_assignment("i1").epoch]
        ev = self.c.wait_kind(aid, self.T.EVENT_KIND_INTERRUPTED)
        p = H.payload(ev)
        self.assertEqual((p["attempt"], p["limit"], p["retry_in_ms"]), (1, 3, 0))
        self.assertEqual(p["reason"], "node lost (stream broken)")
        epochs.append(self.drop_next_assignment("i2").epoch)
        ev = self.c.wait_kind(aid, self.T.EVENT_KIND_INTERRUPTED, from_seq=ev.seq + 1)
        self.assertEqual((H.payload(ev)["attempt"], H.payload(ev)["retry_in_ms"]), (2, 1000))
        # Backing off: pending, and saying so.
        a = self.c.get(aid)
        self.assertEqual(a.state, self.T.AGENT_STATE_PENDING)
        self.assertRegex(a.state_reason, r"^retrying in [01]\.\ds after: node lost \(stream "
                                         r"broken\) \(attempt 3 of at most 3 in a row\)$")
        self.assertEqual(a.turn_attempt, 2)
        epochs.append(self.drop_next_assignment("i3").epoch)
        self.assertEqual(epochs, [1, 2, 3])
        end = self.c.wait_turn_end(aid)
        self.assertEqual(H.kind_name(end.kind), "error")
        self.assertEqual(end.node_id, "", "the hub ended the turn")
        msg = ("turn abandoned after 3 interruptions (3 in a row: node lost (stream broken)); "
               "send a message to try again")
        self.assertEqual(H.payload(end)["message"], msg)
        r = inv.result()
        self.assertEqual((r.state, r.error, r.seq), (self.T.AGENT_STATE_FAILED, msg, end.seq))
        # Nothing more happens by itself; get and ps agree.
        a = self.c.get(aid)
        self.assertEqual((a.state, a.epoch, a.last_seq, a.state_reason),
                         (self.T.AGENT_STATE_FAILED, 3, end.seq, msg))
        kinds = self.events_kinds(self.c.trace(aid))
        self.assertEqual(kinds, ["spawned", "input"] + ["assigned", "interrupted"] * 3 + ["error"])
        ps = json.loads(H.run_cli(["ps", "--json", "--hub", self.c.addr]).stdout)
        self.assertEqual([x["state"] for x in ps["agents"] if x["id"] == aid], ["failed"])
        got = json.loads(H.run_cli(["get", "--json", "--hub", self.c.addr, aid]).stdout)
        self.assertEqual(got["state"], "failed")
        # A new input is a new turn, with attempts counted afresh.
        self.c.add_node("n1")
        s = self.c.send(aid, "final recovered")
        self.assertEqual(H.payload(self.c.wait_turn_end(aid, after_seq=s.seq))["output"],
                         "recovered")
        self.assertEqual(self.c.get(aid).turn_attempt, 1)


if __name__ == "__main__":
    H.main()
