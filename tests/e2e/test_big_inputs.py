"""tests/e2e/test_big_inputs.py - inputs at the hub's limits, on a real hub and node.

Regression (issue "a turn that can never succeed must not run forever", point 1): an agent
spawned with a 1,048,476-byte input made its node's stream fail ("message of 6291070 bytes is
over the limit of 4194304 bytes"); the turn moved to the next node and failed the same way,
forever, and four bystanders on the node were interrupted 1,650 times. Now every input the hub
accepts runs to completion: at the 1 MiB limit to its final answer, and a turn whose events
cannot fit ends with one clear ERROR, on its node, without touching anyone else's turn.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402

LIMIT = 1 << 20  # SpawnRequest.input: at most 1 MiB


def text_of(n):
    """n bytes of plain text that is not a mock script (its first word is not a keyword)."""
    line = "the quick brown fox jumps over the lazy dog; "
    return ("hello " + line * (n // len(line) + 1))[:n]


class BigInputTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 8

    def start_bystanders(self, n=4):
        """n agents mid-turn on the node: each answers after 2 s."""
        ids = [self.c.spawn("sleep 2000; final bystander-%d" % i, tools=()).agent_id
               for i in range(n)]
        for aid in ids:
            self.c.wait_kind(aid, self.T.EVENT_KIND_MODEL_REQUEST)
        return ids

    def assert_bystanders_untouched(self, ids):
        for i, aid in enumerate(ids):
            end = self.c.wait_turn_end(aid, timeout=30)
            self.assertEqual(H.payload(end)["output"], "bystander-%d" % i)
            kinds = self.events_kinds(self.c.trace(aid))
            self.assertNotIn("interrupted", kinds, "a bystander was interrupted: %s" % kinds)
            self.assertEqual(kinds.count("assigned"), 1, kinds)

    def assert_stream_never_broke(self):
        self.assertNotIn("event=node.lost", self.c.hub_log())
        self.assertNotIn("event=node.disconnected", self.c.nodes["n1"].text())

    def test_input_at_the_limit_runs_to_its_final_answer(self):
        bystanders = self.start_bystanders()
        text = text_of(LIMIT)
        r = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=self.c.spec(("echo",)), input=text),
                             timeout=30)
        end = self.c.wait_turn_end(r.agent_id, timeout=60)
        self.assertEqual(H.kind_name(end.kind), "final", H.payload(end))
        self.assertEqual(H.payload(end)["output"], text)  # echoed through the tool and back
        a = self.c.get(r.agent_id)
        self.assertEqual((a.state, a.epoch, a.last_output), (self.T.AGENT_STATE_IDLE, 1, text))
        self.assert_bystanders_untouched(bystanders)
        self.assert_stream_never_broke()
        # Every message fits a client's default 4 MiB: trace it on a channel with no options.
        ch = grpc.insecure_channel(self.c.addr)
        try:
            stub = self.s.hub_grpc.AgentHubStub(ch)
            evs = list(stub.Trace(self.s.hub.TraceRequest(agent_id=r.agent_id), timeout=30))
            self.assertEqual(H.kind_name(evs[-1].kind), "final")
            self.assertEqual(stub.GetAgent(self.s.hub.GetAgentRequest(agent_id=r.agent_id),
                                           timeout=10).last_output, text)
        finally:
            ch.close()

    def test_a_turn_whose_event_cannot_fit_fails_alone(self):
        bystanders = self.start_bystanders()
        # Quotes escape twice in the echo tool call's payload (4 bytes each): 4 MiB, over 3 MiB.
        r = self.c.spawn('"' * LIMIT, tools=("echo",))
        end = self.c.wait_turn_end(r.agent_id, timeout=60)
        self.assertEqual(H.kind_name(end.kind), "error")
        msg = H.payload(end)["message"]
        self.assertRegex(msg, r"turn stopped: its model_reply event would carry \d+ bytes of JSON "
                              r"payload, over the hub's limit of 3145728")
        a = self.c.get(r.agent_id)
        self.assertEqual((a.state, a.epoch), (self.T.AGENT_STATE_FAILED, 1))
        self.assertEqual(a.last_error, msg)
        self.assertEqual(a.state_reason, msg)
        self.assertNotIn("interrupted", self.events_kinds(self.c.trace(r.agent_id)))
        self.assert_bystanders_untouched(bystanders)
        self.assert_stream_never_broke()
        # The turn read its input (it is not read again): the agent carries on.
        s = self.c.send(r.agent_id, "final small")
        end = self.c.wait_turn_end(r.agent_id, after_seq=s.seq)
        self.assertEqual(H.payload(end)["output"], "small")

    def test_input_too_big_as_json_is_refused(self):
        before = len(self.c.list_all())
        for call in (lambda t: self.c.spawn(t),
                     lambda t: self.c.hub.Invoke(self.s.hub.InvokeRequest(
                         spec=self.c.spec(), input=t), timeout=10)):
            with self.assertRaises(grpc.RpcError) as cm:
                call("\x01" * LIMIT)  # 6 bytes each as JSON
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("input is 6291467 bytes as a JSON event payload", cm.exception.details())
        self.assertEqual(len(self.c.list_all()), before, "nothing was created")
        idle = self.c.spawn("")
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.send(idle.agent_id, "\x01" * LIMIT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.spawn("x" * (LIMIT + 1))
        self.assertIn("the limit is 1048576", cm.exception.details())
        self.c.assert_healthy(self)

    def test_waiting_input_is_bounded_in_bytes(self):
        big = "y" * LIMIT
        # Inputs sent while a turn runs wait in the hub until a checkpoint covers them.
        busy = self.c.spawn("sleep 60000; final busy", tools=())  # runs until killed below
        self.c.wait_kind(busy.agent_id, self.T.EVENT_KIND_MODEL_REQUEST)
        # 16 MiB may wait: the turn's own input (read, but in no checkpoint yet) and 15 more.
        for _ in range(15):
            self.c.send(busy.agent_id, big)
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.send(busy.agent_id, big)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("bytes of input waiting and this would pass the limit of 16777216",
                      cm.exception.details())
        self.assertEqual(self.c.get(busy.agent_id).pending_inputs, 16)
        self.c.kill(busy.agent_id)
        self.c.assert_healthy(self)


if __name__ == "__main__":
    H.main()
