"""tests/e2e/test_drain.py - cordon, uncordon and drain (hub.proto CordonNode, DrainNode;
`agentry nodes`, `agentry node cordon|uncordon|drain`).

The agents: a 6-step script of the mock model, "call append <token>-s1; ...; final done", where
"append" (not idempotent) appends its text as a line to the nodes' one file. A drain moves each
turn at a step boundary: every call id has exactly one TOOL_CALL and one TOOL_RESULT, none is
"outcome unknown", each line is in the file exactly once, and the turn went on on the other node
after an INTERRUPTED whose reason says the node is draining.
"""
import collections
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

STEPS = 6


def script(token):
    return "; ".join(["call append %s-s%d" % (token, i) for i in range(1, STEPS + 1)] +
                     ["final done"])


class Drain(H.ClusterTestCase):
    NODES = 0
    HEARTBEAT = "200ms"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lines_path = os.path.join(cls.c.dir, "append.lines")

    def setUp(self):
        self.started = []
        self.addCleanup(self.stop_nodes)

    def start_node(self, nid, capacity=8, latency="40ms"):
        self.started.append(nid)
        return self.c.add_node(nid, capacity=capacity, extra=[
            "--tool-opt", "append.path=" + self.lines_path,
            "--tool-opt", "append.latency=" + latency, "--model-opt", "mock.latency=5ms"])

    def stop_nodes(self):
        for n in dict.fromkeys(self.started):
            if n in self.c.nodes:
                self.c.stop_node(n)

    def cli(self, *args, timeout=60):
        return H.run_cli(list(args) + ["--hub", self.c.addr], timeout=timeout)

    def nodes(self):
        r = self.cli("nodes", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {n["node_id"]: n for n in json.loads(r.stdout)["nodes"]}

    def spawn(self):
        token = uuid.uuid4().hex[:8]
        aid = self.c.spawn(script(token), tools=("append",), max_iterations=2 * STEPS).agent_id
        return aid, token

    def lines(self):
        try:
            with open(self.lines_path) as f:
                return collections.Counter(f.read().splitlines())
        except FileNotFoundError:
            return collections.Counter()

    def check_moved(self, aid, token, src, dst):
        """The agent finished 'done'; its turn left src at a step boundary for dst."""
        T = self.T
        evs = self.c.trace(aid)
        self.assert_contiguous(evs)
        ends = [e for e in evs if e.kind in self.c.turn_end_kinds()]
        self.assertEqual([(H.kind_name(e.kind), H.payload(e).get("output")) for e in ends],
                         [("final", "done")], aid)
        inter = [H.payload(e) for e in evs if e.kind == T.EVENT_KIND_INTERRUPTED]
        self.assertEqual(len(inter), 1, "%s: %s" % (aid, inter))
        self.assertIn("node %s is draining" % src, inter[0]["reason"])
        self.assertEqual(inter[0]["node"], src)
        after = evs[[e.kind for e in evs].index(T.EVENT_KIND_INTERRUPTED) + 1:]
        self.assertEqual({e.node_id for e in after if e.node_id}, {dst}, aid)
        calls = collections.Counter(H.payload(e)["id"] for e in evs
                                    if e.kind == T.EVENT_KIND_TOOL_CALL)
        results = [H.payload(e) for e in evs if e.kind == T.EVENT_KIND_TOOL_RESULT]
        self.assertEqual(set(calls.values()), {1}, "a tool call stored twice: %s" % calls)
        self.assertEqual([r["id"] for r in results],
                         ["call_%d" % i for i in range(1, STEPS + 1)])
        self.assertFalse([r for r in results if r.get("is_error")], aid)
        lines = self.lines()
        for i in range(1, STEPS + 1):
            self.assertEqual(lines["%s-s%d" % (token, i)], 1, "line %d of %s" % (i, aid))

    def test_drain_moves_turns_at_step_boundaries(self):
        T = self.T
        # Each step takes a second, so the drain (a CLI process, on a loaded machine too) comes
        # while most of every turn is still ahead.
        self.start_node("d1", latency="1s")
        self.start_node("d2", latency="1s")
        # d2 waits cordoned while the agents start on d1, so that the drain finds every one of
        # them a step in, with most of its steps still ahead.
        self.assertEqual(self.cli("node", "cordon", "d2").returncode, 0)
        agents = [self.spawn() for _ in range(5)]
        for aid, _ in agents:
            self.c.wait_kind(aid, T.EVENT_KIND_TOOL_RESULT, timeout=60)
        self.assertEqual(self.cli("node", "uncordon", "d2").returncode, 0)
        r = self.cli("node", "drain", "--drain-timeout", "60s", "d1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("node d1 drained", r.stdout)
        for aid, _ in agents:
            self.c.wait_turn_end(aid, timeout=60)
        for aid, token in agents:
            self.check_moved(aid, token, "d1", "d2")
        nodes = self.nodes()
        self.assertEqual((nodes["d1"]["state"], nodes["d1"]["running"]), ("drained", 0))
        self.assertEqual(nodes["d2"]["state"], "ready")
        # A drained node is cordoned: new turns go elsewhere.
        aid, _ = self.spawn()
        self.c.wait_turn_end(aid, timeout=60)
        self.assertEqual({e.node_id for e in self.c.trace(aid) if e.node_id}, {"d2"})

    def test_drain_without_another_node_then_uncordon(self):
        T = self.T
        self.start_node("e1", latency="300ms")  # slow enough for the drain to find it mid-turn
        aid, token = self.spawn()
        self.c.wait_kind(aid, T.EVENT_KIND_TOOL_RESULT, timeout=60)
        r = self.cli("node", "drain", "e1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_state(aid, T.AGENT_STATE_PENDING)
        self.assertIn("cordoned", self.c.get(aid).state_reason)
        self.assertEqual(self.nodes()["e1"]["state"], "drained")
        r = self.cli("node", "uncordon", "e1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("node e1 is ready", r.stdout)
        self.c.wait_turn_end(aid, timeout=60)
        self.check_moved(aid, token, "e1", "e1")

    def test_cordon_is_kept_across_a_reconnect(self):
        self.start_node("f1")
        self.start_node("f2")
        r = self.cli("node", "cordon", "f1")
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "node f1 is cordoned (0 of 8 slots running)"), r.stderr)
        self.c.stop_node("f1")
        self.start_node("f1")
        self.assertEqual(self.nodes()["f1"]["state"], "cordoned")
        ids = [self.spawn()[0] for _ in range(4)]
        for aid in ids:
            self.c.wait_turn_end(aid, timeout=60)
            self.assertEqual({e.node_id for e in self.c.trace(aid) if e.node_id}, {"f2"})
        r = self.cli("node", "uncordon", "f1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.nodes()["f1"]["state"], "ready")

    def test_nodes_table_and_errors(self):
        self.start_node("g1")
        r = self.cli("nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        head, row = r.stdout.splitlines()[0].split(), None
        self.assertEqual(head, ["NODE", "STATE", "RUNNING", "LABELS", "VERSION", "AGE"])
        row = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.startswith("g1 ")][0]
        self.assertEqual(row[:3], ["g1", "ready", "0/8"])
        n = self.nodes()["g1"]
        self.assertTrue(n["address"])
        self.assertIn("started_at", n)
        self.assertIn("append", n["tools"])
        for args, code, text in ((("node", "drain", "nope"), 1, "no node 'nope' is connected"),
                                 (("node", "cordon", "nope"), 1, "no node 'nope' is connected"),
                                 (("node", "drain"), 2, "missing NODE_ID"),
                                 (("node", "frobnicate", "g1"), 2, "unknown node command")):
            r = self.cli(*args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(text, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


if __name__ == "__main__":
    H.main()
