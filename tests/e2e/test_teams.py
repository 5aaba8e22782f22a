"""tests/e2e/test_teams.py - sub-agents (issue 16, points 1 and 5), end to end: a hub, three
nodes pointed at tests/fake_llm.py, and an agent_0 whose model ("openai/team:N:TPL") spawns N
sub-agents with spawn_agent in one reply, waits for them with wait_agent on the ids it got back,
and answers with their answers combined. The children's model answers "echo: <input>" after a
delay (slowecho:MS), so a node can be lost while they work.

What is checked: two children run in parallel on different nodes (anti-affinity) and the parent
combines their answers, also when a child's node is SIGKILLed mid-way, and no child step is
stored twice; the waiting parent holds no node slot and its wait survives a hub restart; a killed
parent kills its children; the depth and fan-out limits give the model a clear tool error; the
CLI shows the tree, the parent and children, and the CHILD events.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_real_models import FakeLLM  # noqa: E402
from test_restart import restart_hub  # noqa: E402


class TeamsTest(H.ClusterTestCase):
    NODES = 3
    CAPACITY = 2

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeLLM()
        cls.addClassCleanup(cls.fake.stop)
        os.environ["OPENAI_API_KEY"] = "sk-test-teams"
        cls.NODE_ARGS = ("--model-opt", "openai.base_url=%s/v1" % cls.fake.base)
        super().setUpClass()

    # -- helpers --

    def worker(self, ms, apart=True):
        """The template of the children: echo after ms; apart: never two on one node."""
        kw = {"labels": {"team": "t"}, "anti_affinity": ["team"]} if apart else {}
        return self.T.AgentSpec(model="openai/slowecho:%d" % ms, **kw)

    def parent_spec(self, n, tpl="worker", worker=None, **kw):
        templates = {tpl: worker} if worker is not None else {}
        return self.T.AgentSpec(model="openai/team:%d:%s" % (n, tpl),
                                tools=["spawn_agent", "wait_agent", "send_agent"],
                                templates=templates, **kw)

    def spawn(self, spec, text="go"):
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=text),
                                timeout=10).agent_id

    def events(self, agent_id, kind):
        return [e for e in self.c.trace(agent_id) if e.kind == kind]

    def wait_children(self, parent, n):
        H.wait_for(lambda: len(self.c.get(parent).children) == n, 15,
                   what="%d children of %s" % (n, parent))
        return list(self.c.get(parent).children)

    def wait_waiting(self, parent):
        return self.c.wait_kind(parent, self.T.EVENT_KIND_WAITING, timeout=20)

    def running_slots(self):
        nodes = self.c.hub.ListNodes(self.s.hub.ListNodesRequest(), timeout=10).nodes
        return {n.node_id: n.running for n in nodes}

    def assert_no_step_twice(self, agent_id):
        """Each model reply (by iteration) and each tool call (by id) is stored once."""
        evs = self.c.trace(agent_id)
        replies = [H.payload(e) for e in evs if e.kind == self.T.EVENT_KIND_MODEL_REPLY]
        requests = [H.payload(e)["iteration"] for e in evs
                    if e.kind == self.T.EVENT_KIND_MODEL_REQUEST]
        calls = [H.payload(e)["id"] for e in evs if e.kind == self.T.EVENT_KIND_TOOL_CALL]
        results = [H.payload(e)["id"] for e in evs if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertEqual(len(calls), len(set(calls)), calls)
        self.assertEqual(len(results), len(set(results)), results)
        self.assertLessEqual(len(replies), len(set(requests)), (replies, requests))

    # -- tests --

    def test_parallel_children_on_different_nodes_and_a_node_killed(self):
        c = self.c
        parent = self.spawn(self.parent_spec(2, worker=self.worker(2500)))
        self.wait_waiting(parent)
        kids = self.wait_children(parent, 2)
        # Both work at once, each on its own node, while the parent holds none.
        firsts = [c.wait_kind(k, self.T.EVENT_KIND_MODEL_REQUEST) for k in kids]
        nodes = [f.node_id for f in firsts]
        self.assertNotEqual(nodes[0], nodes[1])
        got = c.get(parent)
        self.assertEqual(got.state, self.T.AGENT_STATE_PENDING)
        self.assertEqual(got.state_reason, "waiting for 2 sub-agents")
        for k in kids:
            g = c.get(k)
            self.assertEqual((g.parent_id, g.depth, g.namespace), (parent, 1, "default"))
        # The node of the first child dies mid-reply; it goes on elsewhere.
        victim = nodes[0]
        c.nodes[victim].sigkill()
        c.retired.append(c.nodes.pop(victim))
        end = c.wait_turn_end(parent, timeout=30)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual(H.payload(end)["output"], "team: echo: part 0: go | echo: part 1: go")
        self.assertNotEqual(c.get(kids[0]).node_id, victim)
        kinds = [H.kind_name(e.kind) for e in c.trace(kids[0])]
        self.assertIn("interrupted", kinds)
        for a in kids + [parent]:
            self.assert_no_step_twice(a)
        # The parent's log holds each child's end by reference, then the hub's wait result.
        children = [H.payload(e) for e in self.events(parent, self.T.EVENT_KIND_CHILD)]
        self.assertEqual(sorted(ch["agent_id"] for ch in children), sorted(kids))
        self.assertEqual({ch["state"] for ch in children}, {"idle"})
        waits = [H.payload(e) for e in self.events(parent, self.T.EVENT_KIND_TOOL_RESULT)
                 if H.payload(e)["name"] == "wait_agent"]
        self.assertEqual(len(waits), 1)
        self.assertEqual([a["agent_id"] for a in json.loads(waits[0]["output"])], kids)
        spawns = [e for e in self.events(parent, self.T.EVENT_KIND_TOOL_RESULT)
                  if H.payload(e)["name"] == "spawn_agent"]
        self.assertEqual(len(spawns), 2)
        c.add_node(victim)
        TeamsTest.done_team = (parent, kids)

    def test_waiting_parent_holds_no_slot_and_survives_a_hub_restart(self):
        c = self.c
        parent = self.spawn(self.parent_spec(2, worker=self.worker(4000, apart=False)))
        self.wait_waiting(parent)
        kids = self.wait_children(parent, 2)
        for k in kids:
            c.wait_kind(k, self.T.EVENT_KIND_MODEL_REQUEST)
        self.assertEqual(sum(self.running_slots().values()), 2, "the children's, not the parent's")
        restart_hub(c)
        got = c.get(parent)
        self.assertEqual(got.state, self.T.AGENT_STATE_PENDING)
        self.assertEqual(got.state_reason, "waiting for 2 sub-agents")
        end = c.wait_turn_end(parent, timeout=40)
        self.assertEqual(H.payload(end)["output"], "team: echo: part 0: go | echo: part 1: go")
        for a in kids + [parent]:
            self.assert_no_step_twice(a)

    def test_children_done_while_the_hub_was_down_finish_the_wait(self):
        c = self.c
        parent = self.spawn(self.parent_spec(1, worker=self.worker(1500, apart=False)))
        self.wait_waiting(parent)
        (kid,) = self.wait_children(parent, 1)
        c.wait_kind(kid, self.T.EVENT_KIND_MODEL_REQUEST)
        port = c.port
        c.stop_hub()  # the child's turn dies with it; the next hub places it again
        c.start_hub(port=port)
        end = c.wait_turn_end(parent, timeout=40)
        self.assertEqual(H.payload(end)["output"], "team: echo: part 0: go")

    def test_a_killed_parent_kills_its_children(self):
        c = self.c
        parent = self.spawn(self.parent_spec(2, worker=self.worker(60000, apart=False)))
        self.wait_waiting(parent)
        kids = self.wait_children(parent, 2)
        c.kill(parent, "enough")
        for k in kids:
            c.wait_state(k, self.T.AGENT_STATE_KILLED)
            self.assertEqual(c.get(k).last_error, "parent %s was killed" % parent)
        self.assertEqual(c.get(parent).state, self.T.AGENT_STATE_KILLED)
        H.wait_for(lambda: sum(self.running_slots().values()) == 0, 15,
                   what="the children's slots to come back")

    def test_fan_out_limit_is_a_clear_tool_error(self):
        c = self.c
        spec = self.parent_spec(2, worker=self.worker(10, apart=False),
                                limits=self.T.Limits(max_children=1))
        a = self.spawn(spec)
        end = c.wait_turn_end(a, timeout=30)
        self.assertIn("spawn failed", H.payload(end)["output"])
        errors = [H.payload(e) for e in self.events(a, self.T.EVENT_KIND_TOOL_RESULT)
                  if H.payload(e)["is_error"]]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("spawned 1 sub-agents, its limit (spec.limits.max_children)",
                      errors[0]["output"])
        self.assertEqual(len(c.get(a).children), 1)

    def test_depth_limit_is_a_clear_tool_error(self):
        c = self.c
        # No template: each child runs the same spec, and would spawn one of its own.
        spec = self.T.AgentSpec(model="openai/team:1:", tools=["spawn_agent", "wait_agent"],
                                limits=self.T.Limits(max_depth=2))
        root = self.spawn(spec)
        end = c.wait_turn_end(root, timeout=30)
        out = H.payload(end)["output"]
        self.assertIn("a sub-agent of this agent would be at depth 3, past the limit of 2 "
                      "(spec.limits.max_depth along its line)", out)
        (child,) = c.get(root).children
        (grandchild,) = c.get(child).children
        self.assertEqual(c.get(grandchild).depth, 2)
        self.assertEqual(list(c.get(grandchild).children), [])

    def test_spec_validation(self):
        bad = [self.T.AgentSpec(templates={"no spaces": self.T.AgentSpec()}),
               self.T.AgentSpec(limits=self.T.Limits(max_depth=65)),
               self.T.AgentSpec(limits=self.T.Limits(max_children=100001)),
               self.T.AgentSpec(templates={"w": self.T.AgentSpec(max_iterations=5000)})]
        for spec in bad:
            with self.assertRaises(H.grpc.RpcError) as cm:
                self.spawn(spec)
            self.assertEqual(cm.exception.code(), H.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("spec.templates['w']: spec.max_iterations", cm.exception.details())

    def test_cli_shows_the_tree(self):
        team = getattr(TeamsTest, "done_team", None)
        if team is None:
            parent = self.spawn(self.parent_spec(2, worker=self.worker(10, apart=False)))
            self.c.wait_turn_end(parent, timeout=30)
            team = (parent, list(self.c.get(parent).children))
        parent, kids = team
        cli = ["--hub", self.c.addr]
        r = H.run_cli(["ps", "--tree", "--parent", parent] + cli)
        self.assertEqual(r.returncode, 0, r.stderr)
        for k in kids:
            self.assertIn(k, r.stdout)
        r = H.run_cli(["ps", "--tree"] + cli)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("DEPTH", lines[0])
        at = [i for i, ln in enumerate(lines) if parent in ln][0]
        for k, ln in zip(kids, lines[at + 1:at + 3]):
            self.assertIn("\\_ " + k, ln)
        r = H.run_cli(["get", kids[0]] + cli)
        self.assertIn("parent:", r.stdout)
        self.assertIn(parent, r.stdout)
        r = H.run_cli(["get", parent] + cli)
        self.assertIn("children:       2: %s %s" % (kids[0], kids[1]), r.stdout)
        r = H.run_cli(["trace", parent] + cli)
        child_lines = [ln for ln in r.stdout.splitlines() if " child " in ln]
        self.assertEqual(len(child_lines), 2, r.stdout)
        self.assertIn("idle (its #", child_lines[0])
        self.assertIn("echo: part", child_lines[0])
        r = H.run_cli(["get", "--json", parent] + cli)
        self.assertEqual(json.loads(r.stdout)["children"], kids)


class TeamToolsTest(H.ClusterTestCase):
    """The hub tools called by hand from a fake node that runs the parent: spawn_agent's replay,
    send_agent, and the refusals a model reads."""
    NODES = 1

    def call(self, f, asg, name, args, call_id):
        self.n = getattr(self, "n", 0) + 1
        f.send(hub_tool=self.s.node.HubToolCall(id=self.n, agent_id=asg.agent_id,
                                                 epoch=asg.epoch, call_id=call_id, name=name,
                                                 arguments=json.dumps(args)))
        r = f.recv_kind("hub_tool_result")
        self.assertEqual(r.id, self.n)
        return r

    def test_tools(self):
        c = self.c
        f = H.FakeNode(c)
        self.addCleanup(f.cancel)
        tools = ("spawn_agent", "send_agent", "wait_agent")
        self.assertIsNotNone(f.register("fake", 1, models=("fake-parent",), tools=tools))
        worker = self.T.AgentSpec(model="mock")
        spec = self.T.AgentSpec(model="fake-parent", tools=list(tools),
                                templates={"w": worker})
        parent = c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input="lead"),
                             timeout=10).agent_id
        asg = f.recv_kind("assign")
        self.assertEqual(asg.agent_id, parent)

        r = self.call(f, asg, "spawn_agent", {"input": "final one", "template": "w"}, "c1")
        self.assertFalse(r.is_error, r.output)
        kid = json.loads(r.output)
        self.assertFalse(kid["existing"])
        again = self.call(f, asg, "spawn_agent", {"input": "final one", "template": "w"}, "c1")
        self.assertEqual(json.loads(again.output), {"agent_id": kid["agent_id"], "existing": True})
        kid = kid["agent_id"]
        self.assertEqual(list(c.get(parent).children), [kid])
        c.wait_state(kid, self.T.AGENT_STATE_IDLE)
        self.assertEqual(c.get(kid).last_output, "one")
        got = self.call(f, asg, "wait_agent", {"agents": [kid]}, "c2")
        self.assertFalse(got.wait)
        self.assertEqual(json.loads(got.output),
                         [{"agent_id": kid, "state": "idle", "output": "one"}])

        r = self.call(f, asg, "send_agent", {"agent_id": kid, "text": "final two"}, "c3")
        self.assertFalse(r.is_error, r.output)
        seq = json.loads(r.output)["seq"]
        self.assertEqual(H.payload(c.trace(kid, from_seq=seq)[0], by=True)["by"],
                         "agent/" + parent)
        c.wait_turn_end(kid, after_seq=seq)
        self.assertEqual(c.get(kid).last_output, "two")

        refusals = [
            ("send_agent", {"agent_id": parent, "text": "x"}, "is not a sub-agent of this agent"),
            ("wait_agent", {"agents": ["0000000000000000"]}, "is not a sub-agent"),
            ("wait_agent", {"agents": []}, "wait_agent needs \"agents\""),
            ("spawn_agent", {"input": "x", "template": "nope"}, "names no template"),
            ("spawn_agent", {"input": "x", "tools": ["shell"]}, "only tools this agent has"),
            ("spawn_agent", {"template": "w"}, "spawn_agent needs \"input\""),
            ("spawn_agent", {"input": "x", "labels": {"bad key": "v"}}, "label"),
        ]
        for i, (tool, args, want) in enumerate(refusals):
            with self.subTest(tool=tool, args=args):
                r = self.call(f, asg, tool, args, "r%d" % i)
                self.assertTrue(r.is_error, r.output)
                self.assertIn(want, r.output)
        self.assertEqual(list(c.get(parent).children), [kid])


if __name__ == "__main__":
    unittest.main(verbosity=2)
