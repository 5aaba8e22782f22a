"""tests/e2e/test_cost.py - what model calls cost, as the hub counts it (types.proto,
Usage.cost_usd).

A fake node (harness.FakeNode) runs the agent's turns and reports each MODEL_REPLY's price in its
payload ("usage": {"cost_usd"}). The hub must add the prices up into the agent's usage (Invoke,
GetAgent, ListAgents), send the sum in the next Assignment (node.proto, Assignment.usage: what a
node checks budgets against), keep it across a restart (the store's cost columns), and count
again from the stored payloads what a turn spent after its row was last written, when the hub
was killed in the middle of it.
"""
import concurrent.futures
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class CostTest(H.ClusterTestCase):
    NODES = 0

    def model_call(self, f, asg, batch_id, cost, final):
        """One model call of asg's turn on the fake node, its reply priced `cost` USD; then the
        turn's FINAL if final."""
        T, node = self.T, self.s.node
        reply = {"content": "ok", "tool_calls": [],
                 "usage": {"input_tokens": 10, "output_tokens": 2, "cost_usd": cost}}
        evs = [node.NodeEvent(agent_id=asg.agent_id, epoch=asg.epoch,
                              kind=T.EVENT_KIND_MODEL_REQUEST, payload='{"iteration":1}'),
               node.NodeEvent(agent_id=asg.agent_id, epoch=asg.epoch,
                              kind=T.EVENT_KIND_MODEL_REPLY, payload=json.dumps(reply),
                              usage=T.Usage(input_tokens=10, output_tokens=2))]
        if final:
            evs.append(node.NodeEvent(
                agent_id=asg.agent_id, epoch=asg.epoch, kind=T.EVENT_KIND_FINAL,
                payload='{"output":"ok","iterations":1}',
                checkpoint=T.Checkpoint(input_seq=asg.inputs[-1].seq),
                result=node.TurnResult(output="ok")))
        f.send(events=node.EventBatch(batch_id=batch_id, events=evs))
        ack = f.recv_kind("ack")
        self.assertEqual(ack.batch_id, batch_id)
        self.assertNotIn(0, list(ack.seqs), "every event stored")

    def test_cost_is_counted_sent_and_kept(self):
        c = self.c
        f = H.FakeNode(c)
        self.addCleanup(f.cancel)
        self.assertIsNotNone(f.register("fake", 1), "the hub ended the stream: %s" % f.details)

        # Turn 1 through Invoke, which answers when the fake node ends the turn.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            inv = pool.submit(c.hub.Invoke, self.s.hub.InvokeRequest(
                spec=c.spec(tools=()), input="hello"), timeout=20)
            asg = f.recv_kind("assign")
            self.assertEqual(asg.usage.cost_usd, 0)
            self.model_call(f, asg, 1, 0.0125, final=True)
            r = inv.result()
        agent = r.agent_id
        self.assertAlmostEqual(r.usage.cost_usd, 0.0125, places=12)
        self.assertEqual((r.usage.model_calls, r.usage.input_tokens), (1, 10))
        self.assertAlmostEqual(c.get(agent).usage.cost_usd, 0.0125, places=12)
        listed = [a for a in c.list_all() if a.id == agent]
        self.assertAlmostEqual(listed[0].usage.cost_usd, 0.0125, places=12)

        # Turn 2: its Assignment carries what the agent spent so far. Its reply (half a
        # micro-dollar: nano-dollars keep it) is stored, then the hub dies mid-turn.
        c.send(agent, "again")
        asg = f.recv_kind("assign")
        self.assertAlmostEqual(asg.usage.cost_usd, 0.0125, places=12)
        self.assertEqual(asg.usage.model_calls, 1)
        self.model_call(f, asg, 2, 0.0000005, final=False)
        self.assertAlmostEqual(c.get(agent).usage.cost_usd, 0.0125005, places=12)
        # SIGKILL: the row holds what was spent when turn 2 was placed (0.0125, the cost
        # column); the reply after it is counted again from its stored payload.
        port = c.port
        c.hub_proc.sigkill()
        c.retired.append(c.hub_proc)
        c.hub_proc = None
        c.start_hub(port=port)
        a = c.get(agent)
        self.assertAlmostEqual(a.usage.cost_usd, 0.0125005, places=12)
        self.assertEqual(a.usage.model_calls, 2)


if __name__ == "__main__":
    unittest.main()
