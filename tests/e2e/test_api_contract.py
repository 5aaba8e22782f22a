"""tests/e2e/test_api_contract.py - the API does what the .proto says (issue points 8, 11, 14).

Regressions:
- Trace with follow on a killed agent never ended, though KILLED is terminal.
- A Spawn retried with the same request_id returned input_seq = 0 (0 means "no input").
- Usage under-counted re-run work (model_calls=4 where the trace held 8): usage is what was
  really spent, also in interrupted turns.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class ContractTest(H.ClusterTestCase):
    NODES = 2
    CAPACITY = 4

    def test_trace_follow_ends_after_killed(self):
        r = self.c.spawn("sleep 10000; final never", tools=())
        self.c.wait_kind(r.agent_id, self.T.EVENT_KIND_MODEL_REQUEST)
        call = self.c.hub.Trace(self.s.hub.TraceRequest(agent_id=r.agent_id, follow=True),
                                timeout=20)
        got, done = [], threading.Event()

        def read():
            for ev in call:  # raises on anything but a clean end
                got.append(ev)
            done.set()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        H.wait_for(lambda: len(got) >= 3, 10, what="the replay")
        k = self.c.kill(r.agent_id)
        self.assertTrue(done.wait(10), "the follow did not end after KILLED")
        self.assertEqual(H.kind_name(got[-1].kind), "killed")
        self.assertEqual(got[-1].seq, k.seq)
        self.assertEqual(call.code(), H.grpc.StatusCode.OK)
        # Following a killed agent from past its end ends at once, from before it after KILLED.
        past = list(self.c.hub.Trace(self.s.hub.TraceRequest(
            agent_id=r.agent_id, from_seq=k.seq + 1, follow=True), timeout=10))
        self.assertEqual(past, [])
        tail = list(self.c.hub.Trace(self.s.hub.TraceRequest(
            agent_id=r.agent_id, from_seq=k.seq - 1, follow=True), timeout=10))
        self.assertEqual([e.seq for e in tail], [k.seq - 1, k.seq])

    def test_an_unknown_method_is_unimplemented_at_once(self):
        """Regression: the hub never answered a method it does not have, so a newer client's
        call waited out its whole deadline (DEADLINE_EXCEEDED) instead of hearing why."""
        ch = H.grpc.insecure_channel(self.c.addr)
        self.addCleanup(ch.close)
        for method in ("/agentry.v1.AgentHub/NoSuchMethod", "/agentry.v2.AgentHub/Spawn"):
            with self.assertRaises(H.grpc.RpcError) as cm:
                ch.unary_unary(method)(b"", timeout=30)
            self.assertEqual(cm.exception.code(), H.grpc.StatusCode.UNIMPLEMENTED)
            self.assertIn("unknown method '%s'" % method, cm.exception.details())
        self.assertEqual(self.c.hub.Ping(self.s.hub.PingRequest(), timeout=10).__class__.__name__,
                         "PingResponse", "the hub serves on")

    def test_spawn_retry_answers_the_first_input_seq(self):
        first = self.c.spawn("final once", tools=(), request_id="contract-rid")
        self.assertEqual((first.input_seq, first.existing), (2, False))
        again = self.c.spawn("final once", tools=(), request_id="contract-rid")
        self.assertEqual((again.agent_id, again.input_seq, again.existing),
                         (first.agent_id, 2, True))
        self.assertEqual(self.c.get(first.agent_id).request_id, "contract-rid")
        empty = self.c.spawn("", request_id="contract-rid-empty")
        self.assertEqual(self.c.spawn("", request_id="contract-rid-empty").input_seq, 0)
        self.assertEqual(empty.input_seq, 0)

    def test_usage_counts_interrupted_attempts(self):
        # Two tool rounds, then a long wait for the last reply: the node running it is killed
        # during the wait, and the turn goes on on the other node from its last stored step: only
        # the model call in flight is asked again (and counted again).
        r = self.c.spawn("echo a; echo b; sleep 60000; final done", tools=("echo",))
        evs = self.c.follow_until(r.agent_id, lambda e: H.kind_name(e.kind) == "model_request" and
                                  H.payload(e)["iteration"] == 3)
        node = evs[-1].node_id
        killed = self.c.nodes.pop(node)
        killed.sigkill()
        self.assertIsNone(killed.stop())
        self.c.retired.append(killed)
        self.c.wait_kind(r.agent_id, self.T.EVENT_KIND_INTERRUPTED)
        # The second attempt would wait a minute too: end it by killing the agent once it is
        # back at the same point, then compare what was spent with what the trace holds.
        self.c.follow_until(r.agent_id, lambda e: H.kind_name(e.kind) == "model_request" and
                            H.payload(e)["iteration"] == 3 and e.node_id != node)
        self.c.kill(r.agent_id)
        evs = self.c.trace(r.agent_id)
        kinds = self.events_kinds(evs)
        self.assertEqual(kinds.count("model_request"), 4, kinds)
        self.assertEqual(kinds.count("tool_call"), 2, kinds)
        a = self.c.get(r.agent_id)
        self.assertEqual((a.usage.model_calls, a.usage.tool_calls), (4, 2))
        tokens = sum(H.payload(e)["usage"]["input_tokens"] for e in evs
                     if H.kind_name(e.kind) == "model_reply")
        self.assertEqual(a.usage.input_tokens, tokens)
        self.assertGreater(tokens, 0)
        # The count survives a restart.
        from test_restart import restart_hub
        restart_hub(self.c)
        a2 = self.c.get(r.agent_id)
        self.assertEqual((a2.usage.model_calls, a2.usage.tool_calls, a2.usage.input_tokens),
                         (4, 2, tokens))
        self.c.add_node(node)  # back to two nodes for the next test


class UsageRestartTest(H.ClusterTestCase):
    """A hub killed mid-turn counts what the running attempt spent (its events are stored, its
    row not yet rewritten) when it loads again."""
    NODES = 1

    def test_usage_of_a_running_attempt_survives_a_hub_crash(self):
        c = self.c
        r = c.spawn("echo a; sleep 60000; final done", tools=("echo",))
        c.follow_until(r.agent_id, lambda e: H.kind_name(e.kind) == "model_request" and
                       H.payload(e)["iteration"] == 2)
        before = c.get(r.agent_id).usage
        self.assertEqual((before.model_calls, before.tool_calls), (2, 1))
        port = c.port
        crashed = c.hub_proc
        crashed.sigkill()
        self.assertIsNone(crashed.stop())
        c.retired.append(crashed)
        c.hub_proc = None
        c.start_hub(port=port)
        # The turn runs again meanwhile: stop it, then what was spent must match the trace, the
        # first attempt's events (stored, but not in the row when the hub died) included.
        c.kill(r.agent_id)
        a = c.get(r.agent_id)
        kinds = self.events_kinds(c.trace(r.agent_id))
        self.assertGreaterEqual(a.usage.model_calls, 2)
        self.assertEqual(a.usage.model_calls, kinds.count("model_request"), kinds)
        self.assertEqual(a.usage.tool_calls, kinds.count("tool_call"), kinds)


if __name__ == "__main__":
    H.main()
