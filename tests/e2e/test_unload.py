"""tests/e2e/test_unload.py - idle agents leave the hub's memory and come back when asked for
(issue 12, point 5).

The hub runs with --unload-idle-after 0: every agent at rest (idle, yielded, failed or killed,
nobody following or waiting on it) leaves memory at the next sweep (one heartbeat). Each API then
works on an agent that is only in the store: GetAgent, ListAgents (paged, by state and by label,
from the store's indexes), a Spawn and an Invoke retried with the agent's request id (the same
agent), SendMessage (its conversation rebuilt from the log), Trace following a new turn,
KillAgent, ResumeAgent of a failed agent, ExportAgent, and ImportAgent refusing its id. A
restarted hub loads only the active agents.
"""
import os
import re
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class UnloadTest(H.ClusterTestCase):
    NODES = 1
    HEARTBEAT = "200ms"
    HUB_ARGS = ("--unload-idle-after", "0", "--log-level", "debug")

    def unloaded(self, agent_id):
        """Waits until the hub holds agent_id no more: it was created (or loaded) once more often
        than let go (debug lines agent.loaded / agent.unloaded)."""
        c = self.c

        def gone():
            log = c.hub_log()
            return (log.count("event=agent.unloaded agent=%s" % agent_id) ==
                    log.count("event=agent.loaded agent=%s " % agent_id) + 1)
        H.wait_for(gone, 10, what="agent %s to leave the hub's memory" % agent_id)

    def test_every_call_on_an_unloaded_agent(self):
        c, T = self.c, self.T
        spec = c.s.types.AgentSpec(tools=["echo"], labels={"team": "unload"})
        first = c.hub.Spawn(c.s.hub.SpawnRequest(spec=spec, input="echo one; final two",
                                                 request_id="unload-rid"), timeout=10)
        aid = first.agent_id
        end = c.wait_turn_end(aid)
        self.assertEqual(H.payload(end)["output"], "two")
        self.unloaded(aid)

        a = c.get(aid)
        self.assertEqual((a.state, a.last_seq, a.request_id), (T.AGENT_STATE_IDLE, end.seq,
                                                                "unload-rid"))
        # Retries with its request id find it in the store: the same agent, nothing new.
        self.unloaded(aid)
        again = c.hub.Spawn(c.s.hub.SpawnRequest(spec=spec, input="ignored",
                                                 request_id="unload-rid"), timeout=10)
        self.assertEqual((again.agent_id, again.existing), (aid, True))
        self.unloaded(aid)
        inv = c.hub.Invoke(c.s.hub.InvokeRequest(spec=spec, input="ignored",
                                                 request_id="unload-rid"), timeout=20)
        self.assertEqual((inv.agent_id, inv.output), (aid, "two"))

        # Listed from the store: by state, by label, a page at a time.
        others = [c.spawn("final o%d" % i, tools=()).agent_id for i in range(3)]
        for o in others:
            c.wait_turn_end(o)
        self.unloaded(aid)
        idle = [x.id for x in c.list_all(state=T.AGENT_STATE_IDLE, page_size=1)]
        self.assertEqual(idle, [aid] + others)
        r = c.hub.ListAgents(c.s.hub.ListAgentsRequest(label_selector="team=unload"), timeout=10)
        self.assertEqual([x.id for x in r.agents], [aid])
        self.assertEqual(list(c.hub.ListAgents(c.s.hub.ListAgentsRequest(
            state=T.AGENT_STATE_RUNNING), timeout=10).agents), [])

        # A new turn: its conversation comes back from the log, and a follower sees it live.
        self.unloaded(aid)
        s = c.send(aid, "final three")
        evs = c.follow_until(aid, lambda e: e.kind == T.EVENT_KIND_FINAL, from_seq=s.seq)
        self.assertEqual([e.seq for e in evs], list(range(s.seq, s.seq + len(evs))))
        req = [H.payload(e) for e in evs if e.kind == T.EVENT_KIND_MODEL_REQUEST][0]
        self.assertEqual(req["messages"], 5)  # user, assistant(call), tool, assistant, user
        self.assertEqual(H.payload(evs[-1])["output"], "three")

        # Export reads it back; an import of the same id is refused, as the store has it.
        self.unloaded(aid)
        x = c.hub.ExportAgent(c.s.hub.ExportAgentRequest(agent_id=aid), timeout=10)
        self.assertEqual(len(x.events), c.get(aid).last_seq)
        self.unloaded(aid)
        with self.assertRaises(grpc.RpcError) as cm:
            c.hub.ImportAgent(c.s.hub.ImportAgentRequest(agent=x), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)

        # A failed agent is resumed, and a killed one stays killed, after leaving memory.
        f = c.spawn("fail boom", tools=())
        c.wait_turn_end(f.agent_id)
        self.unloaded(f.agent_id)
        self.assertEqual(c.get(f.agent_id).state, T.AGENT_STATE_FAILED)
        rs = c.hub.ResumeAgent(c.s.hub.ResumeAgentRequest(agent_id=f.agent_id), timeout=10)
        self.assertTrue(rs.seq > 0)
        c.wait_turn_end(f.agent_id, after_seq=rs.seq)
        self.unloaded(aid)
        k = c.kill(aid, "done")
        self.unloaded(aid)
        self.assertEqual(c.get(aid).state, T.AGENT_STATE_KILLED)
        again = c.kill(aid)
        self.assertEqual((again.seq, again.already_killed), (k.seq, True))
        c.assert_healthy(self)

    def test_restart_loads_only_active_agents(self):
        c, T = self.c, self.T
        done = c.spawn("final x", tools=())
        c.wait_turn_end(done.agent_id)
        slow = c.spawn("sleep 60000; final never", tools=())
        c.wait_kind(slow.agent_id, T.EVENT_KIND_MODEL_REQUEST)
        from test_restart import restart_hub
        restart_hub(c)
        m = re.search(r"event=hub\.loaded .*agents=(\d+) interrupted=(\d+)", c.hub_log())
        self.assertTrue(m, c.hub_log())
        self.assertEqual(int(m.group(1)), 1, "only the running agent is loaded at start")
        c.wait_registered("n1", 1)
        self.assertEqual(c.get(done.agent_id).state, T.AGENT_STATE_IDLE)
        c.kill(slow.agent_id)


if __name__ == "__main__":
    H.main()
