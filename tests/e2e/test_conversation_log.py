"""tests/e2e/test_conversation_log.py - the conversation is the log (issue 12, point 4).

Turn-ending checkpoints carry no conversation; nodes keep it between turns and the hub sends a
node only what it lacks (node.proto, Assignment.state_epoch and steps). The model sees the same
conversation whichever path a turn takes; the MODEL_REQUEST payload's "messages" counts it:
- on one node, turn after turn, the kept conversation grows by each turn's messages, and the
  stored checkpoint stays small (the hub's memory does not grow with history);
- a node that never ran the agent gets its whole log from the store (cold), including a turn
  interrupted mid-way on another node;
- after a hub restart (the hub forgets who keeps what) the next turn is rebuilt from the log;
- a node that no longer keeps a conversation the hub thinks it keeps (its small cache evicted
  it) asks with StateRequest and the turn goes on with the right conversation;
- a node started with --keep-state-mib 0 keeps nothing and always gets the log.
The first two also run on PostgreSQL (a database per class on the ctest fixture's server).
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_store_pg import OnPostgres  # noqa: E402


def last_request_messages(c, agent_id):
    reqs = [H.payload(e) for e in c.trace(agent_id) if H.kind_name(e.kind) == "model_request"]
    return reqs[-1]["messages"]


class LogTestCase(H.ClusterTestCase):
    NODES = 0

    def turn(self, agent_id, text):
        seq = self.c.send(agent_id, text).seq
        end = self.c.wait_turn_end(agent_id, after_seq=seq)
        self.assertEqual(H.kind_name(end.kind), "final", H.payload(end))
        return H.payload(end)["output"]


class WarmColdRestartTest(LogTestCase):
    def test_warm_cold_and_restart(self):
        c = self.c
        c.add_node("a")
        r = c.spawn("echo one; final two", tools=("echo",))
        c.wait_turn_end(r.agent_id)
        agent = r.agent_id
        # Turn 1 left user, assistant(call), tool, assistant: 4 messages.
        self.assertEqual(self.turn(agent, "final three"), "three")
        self.assertEqual(last_request_messages(c, agent), 5)
        self.assertEqual(self.turn(agent, "final four"), "four")
        self.assertEqual(last_request_messages(c, agent), 7)
        log = c.nodes["a"].text()
        self.assertEqual(len(re.findall(r"event=run.started agent=%s .*kept_state=yes" % agent,
                                        log)), 2, "turns 2 and 3 start from the kept state")

        # Another node, which never ran it: the hub reads the log (cold). Its tool is slow; it
        # is killed once the TOOL_CALL is stored, and a third node (cold too) goes on from the
        # stored steps: echo is idempotent, so the call runs again there.
        c.stop_node("a")
        c.add_node("b", extra=("--tool-opt", "echo.latency=60s"))
        seq = c.send(agent, "echo five; final six").seq
        call = c.follow_until(agent, lambda e: H.kind_name(e.kind) == "tool_call",
                              from_seq=seq)[-1]
        self.assertEqual(call.node_id, "b")
        c.nodes["b"].sigkill()
        c.retired.append(c.nodes.pop("b"))
        c.add_node("c")
        end = c.wait_turn_end(agent, after_seq=seq)
        self.assertEqual(H.payload(end)["output"], "six")
        kinds = [H.kind_name(e.kind) for e in c.trace(agent, from_seq=seq)]
        self.assertEqual(kinds.count("model_reply"), 2, kinds)
        self.assertEqual(kinds.count("tool_call"), 2, kinds)
        self.assertEqual(kinds.count("tool_result"), 1, kinds)
        # 8 after turn 3, + user, assistant(call), tool = 11 when asked for the final answer.
        self.assertEqual(last_request_messages(c, agent), 11)

        # The hub restarts: it no longer knows who keeps what, so the next turn is cold.
        from test_restart import restart_hub
        restart_hub(c)
        c.wait_registered("c", 1)
        self.assertEqual(self.turn(agent, "final seven"), "seven")
        self.assertEqual(last_request_messages(c, agent), 13)
        self.assertIn("kept_state=no", c.nodes["c"].text())


class EvictedStateTest(LogTestCase):
    def test_evicted_state_is_asked_for(self):
        c = self.c
        # 1 MiB of kept conversations: two agents with ~600 KB each cannot both stay.
        c.add_node("small", extra=("--keep-state-mib", "1"))
        big = "final " + "x" * 600_000
        ids = []
        for _ in range(2):
            r = c.spawn(big, tools=())
            c.wait_turn_end(r.agent_id)
            ids.append(r.agent_id)
        # The first agent's conversation was evicted when the second's was kept; the hub still
        # names it (state_epoch): the node asks, and the turn sees both earlier messages.
        self.assertEqual(self.turn(ids[0], "final again"), "again")
        self.assertEqual(last_request_messages(c, ids[0]), 3)
        H.wait_for(lambda: "event=assign.state_requested agent=%s" % ids[0] in c.hub_log(),
                   what="the hub to log the StateRequest")
        self.assertIn("event=conn.state_requested", c.nodes["small"].text())


class KeepNothingTest(LogTestCase):
    def test_node_that_keeps_nothing(self):
        c = self.c
        c.add_node("cold", extra=("--keep-state-mib", "0"))
        r = c.spawn("final one", tools=())
        c.wait_turn_end(r.agent_id)
        self.assertEqual(self.turn(r.agent_id, "final two"), "two")
        self.assertEqual(self.turn(r.agent_id, "final three"), "three")
        self.assertEqual(last_request_messages(c, r.agent_id), 5)
        log = c.nodes["cold"].text()
        self.assertEqual(len(re.findall(r"event=run.started agent=%s .*kept_state=no" %
                                        r.agent_id, log)), 3)
        self.assertNotIn("state_requested", log)


class PgWarmColdRestartTest(OnPostgres, WarmColdRestartTest):
    """The same on PostgreSQL: the cold path reads the log through its reader connection."""


class PgEvictedStateTest(OnPostgres, EvictedStateTest):
    pass


if __name__ == "__main__":
    unittest.main()
