"""tests/e2e/test_scheduling.py - placement across real nodes.

Round-robin placement, FIFO queueing when every slot is taken, and losing a node (SIGKILL and
a graceful SIGTERM): its running turn is interrupted and re-run elsewhere, and nothing is placed
on a dead node again. Placement rules end to end: binpack, node cpu/memory from `node join`,
resources, node selectors and anti-affinity from the spec, with Spawn's refusals and the
pending reason GetAgent shows.
"""
import os
import re
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def assigned_nodes(c, agent_id):
    return [H.payload(e)["node"] for e in c.trace(agent_id)
            if e.kind == c.s.types.EVENT_KIND_ASSIGNED]


class RoundRobinTest(H.ClusterTestCase):
    NODES = 3
    CAPACITY = 2

    def test_round_robin_placement(self):
        # 6 turns, 6 slots: all run at once, and the placement cycles over the 3 nodes.
        ids = [self.c.spawn("sleep 300; final rr", tools=()).agent_id for _ in range(6)]
        nodes = []
        for aid in ids:
            ev = self.c.wait_kind(aid, self.T.EVENT_KIND_ASSIGNED)
            nodes.append(H.payload(ev)["node"])
        self.assertEqual(set(nodes[:3]), {"n1", "n2", "n3"}, nodes)
        for i in range(5):
            self.assertNotEqual(nodes[i], nodes[i + 1], "consecutive spawns: %s" % nodes)
        self.assertEqual(nodes[3:], nodes[:3], "round robin cycles: %s" % nodes)
        for aid, node in zip(ids, nodes):
            end = self.c.wait_turn_end(aid)
            self.assertEqual(H.kind_name(end.kind), "final")
            self.assertEqual(end.node_id, node)
            self.assertEqual(self.c.get(aid).node_id, node)


class QueueTest(H.ClusterTestCase):
    NODES = 3
    CAPACITY = 1

    def spans(self, aid):
        """(node, assigned time, turn end time) of the agent's single turn."""
        evs = self.c.trace(aid)
        a = [e for e in evs if e.kind == self.T.EVENT_KIND_ASSIGNED]
        f = [e for e in evs if e.kind in self.c.turn_end_kinds()]
        self.assertEqual((len(a), len(f)), (1, 1), self.events_kinds(evs))
        return H.payload(a[0])["node"], a[0].time_unix_nano, f[0].time_unix_nano

    def test_queueing_when_capacity_is_full(self):
        T = self.T
        rs = [self.c.spawn("sleep 300; final q%d" % i, tools=()) for i in range(5)]
        ids = [r.agent_id for r in rs]
        self.assertEqual([r.state for r in rs], [T.AGENT_STATE_RUNNING] * 3 +
                         [T.AGENT_STATE_PENDING] * 2, "3 slots: the first 3 run, 2 wait")
        # Right after the spawns (each turn lasts 300 ms) the last two are still waiting.
        self.assertEqual([self.c.get(a).state for a in ids[3:]], [T.AGENT_STATE_PENDING] * 2)
        for a in ids:
            self.c.wait_turn_end(a, timeout=20)
        self.assertEqual([self.c.get(a).state for a in ids], [T.AGENT_STATE_IDLE] * 5)
        for i, a in enumerate(ids):
            self.assertEqual(self.c.get(a).last_output, "q%d" % i)

        # Concurrency from the hub's own record, [assigned, turn end) per turn: polling states
        # one agent at a time cannot tell (it straddles hand-overs).
        spans = [self.spans(a) for a in ids]
        edges = sorted([(end, -1) for _, _, end in spans] + [(start, 1) for _, start, _ in spans])
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        self.assertEqual(peak, 3, "turns running at once (3 slots)")
        by_node = {}
        for node, start, end in spans:
            by_node.setdefault(node, []).append((start, end))
        self.assertEqual(set(by_node), {"n1", "n2", "n3"})
        for node, ivs in by_node.items():
            ivs.sort()
            for (s1, e1), (s2, e2) in zip(ivs, ivs[1:]):
                self.assertLessEqual(e1, s2, "node %s ran two turns at once" % node)
        # FIFO: the waiting agents start in spawn order, each after some slot was freed.
        self.assertLess(spans[3][1], spans[4][1])
        first_end = min(s[2] for s in spans[:3])
        self.assertGreaterEqual(spans[3][1], first_end)

    def test_killed_pending_agent_never_runs_and_frees_nothing(self):
        T = self.T
        busy = [self.c.spawn("sleep 300; final busy", tools=()).agent_id for _ in range(3)]
        victim = self.c.spawn("final never", tools=())
        self.assertEqual(victim.state, T.AGENT_STATE_PENDING)
        after = self.c.spawn("final after", tools=())
        self.assertEqual(after.state, T.AGENT_STATE_PENDING)
        self.c.kill(victim.agent_id)
        end = self.c.wait_turn_end(after.agent_id)
        self.assertEqual(H.payload(end)["output"], "after")
        for a in busy:
            self.c.wait_turn_end(a)
        self.assertEqual(assigned_nodes(self.c, victim.agent_id), [])
        self.assertEqual(self.c.get(victim.agent_id).state, T.AGENT_STATE_KILLED)
        # No slot leaked or double-counted: three turns fit at once again, a fourth waits.
        rs = [self.c.spawn("sleep 200; final again", tools=()) for _ in range(4)]
        self.assertEqual([r.state for r in rs], [T.AGENT_STATE_RUNNING] * 3 +
                         [T.AGENT_STATE_PENDING])
        for r in rs:
            self.c.wait_turn_end(r.agent_id)


class NodeLossTest(H.ClusterTestCase):
    NODES = 3
    CAPACITY = 2

    def rerun_elsewhere(self, aid, lost, output):
        """The turn on `lost` is interrupted and re-run to its final answer on another node."""
        intr = self.c.wait_kind(aid, self.T.EVENT_KIND_INTERRUPTED, timeout=15)
        p = H.payload(intr)
        self.assertEqual((p["node"], p["epoch"]), (lost, 1))
        self.assertTrue(p["reason"])
        self.assertEqual(intr.node_id, "")
        end = self.c.wait_turn_end(aid, after_seq=intr.seq, timeout=20)
        self.assertEqual(H.kind_name(end.kind), "final")
        self.assertEqual(H.payload(end)["output"], output)
        self.assertNotEqual(end.node_id, lost)
        evs = self.c.trace(aid)
        self.assert_contiguous(evs)
        after = evs[intr.seq:]
        self.assertEqual(H.kind_name(after[0].kind), "assigned")
        self.assertEqual(H.payload(after[0])["epoch"], 2)
        self.assertNotEqual(H.payload(after[0])["node"], lost)
        for e in after[1:]:
            self.assertNotEqual(e.node_id, lost, "an event from the lost node after it was lost")
        a = self.c.get(aid)
        self.assertEqual((a.state, a.epoch, a.last_output), (self.T.AGENT_STATE_IDLE, 2, output))
        self.assertNotEqual(a.node_id, lost)

    def test_graceful_node_stop_moves_its_turn(self):
        r = self.c.spawn("sleep 800; final moved", tools=())
        lost = self.c.wait_kind(r.agent_id, self.T.EVENT_KIND_MODEL_REQUEST).node_id
        self.c.stop_node(lost)  # SIGTERM; must exit 0
        self.rerun_elsewhere(r.agent_id, lost, "moved")
        # It rejoins under the same id and takes work again.
        self.c.add_node(lost)
        ids = [self.c.spawn("final back", tools=()).agent_id for _ in range(3)]
        used = set()
        for aid in ids:
            self.c.wait_turn_end(aid)
            used.update(assigned_nodes(self.c, aid))
        self.assertIn(lost, used)

    def test_sigkill_node_leaves_scheduling(self):
        r = self.c.spawn("sleep 1000; final survived", tools=())
        lost = self.c.wait_kind(r.agent_id, self.T.EVENT_KIND_MODEL_REQUEST).node_id
        self.c.nodes[lost].sigkill()
        self.rerun_elsewhere(r.agent_id, lost, "survived")
        H.wait_for(lambda: re.search(r"event=node\.lost node=%s " % lost, self.c.hub_log()),
                   10, what="the hub to log the node as lost")
        survivors = {"n1", "n2", "n3"} - {lost}
        ids = [self.c.spawn("final after-loss", tools=()).agent_id for _ in range(6)]
        used = []
        for aid in ids:
            self.assertEqual(H.payload(self.c.wait_turn_end(aid))["output"], "after-loss")
            used.extend(assigned_nodes(self.c, aid))
        self.assertNotIn(lost, used)
        self.assertEqual(set(used), survivors, "both survivors take work")
        self.c.assert_healthy(self)


def real_registrations(c, node_id):
    """Registrations of the real node (the fake one registers with version "fake")."""
    return len(re.findall(r"event=node\.registered node=%s .*version=(?!fake)" % re.escape(node_id),
                          c.hub_log()))


def real_instance(c, node_id):
    """The instance id the real node registered with last (the hub logs it)."""
    found = re.findall(r"event=node\.registered node=%s .*version=(?!fake)\S* instance=\"(\w+)\""
                       % re.escape(node_id), c.hub_log())
    return found[-1]


class NodeTakeoverTest(H.ClusterTestCase):
    """node.proto: a Register with the id of a live node and its own instance id (the same
    process reconnecting) takes the id over at once; one with another instance id is refused
    with ALREADY_EXISTS while the node lives."""
    NODES = 1
    CAPACITY = 8

    def take_over(self, node_id):
        """A fake node registers with node_id and the real node's instance id (as the real node
        would after losing its stream); the real node, replaced, reconnects and replaces the fake
        in turn. Returns (fake stream status, real node re-registered in time)."""
        before = real_registrations(self.c, node_id)
        fake = H.FakeNode(self.c)
        reg = fake.register(node_id, capacity=1, instance_id=real_instance(self.c, node_id))
        self.assertEqual(reg.WhichOneof("msg"), "registered", reg)
        code, details = fake.end(10)
        try:
            H.wait_for(lambda: real_registrations(self.c, node_id) > before, 4,
                       what="the real %s to reconnect" % node_id)
            return (code, details), True
        except AssertionError:
            return (code, details), False

    def test_node_id_takeover_replaces_the_stream(self):
        (code, details), back = self.take_over("n1")
        self.assertTrue(back, "the replaced node reconnected")
        self.assertEqual(code, H.grpc.StatusCode.ABORTED, details)
        self.assertIn("replaced", details)
        self.assertRegex(self.c.hub_log(), r"event=node\.replaced node=n1")
        self.assertRegex(self.c.nodes["n1"].text(),
                         r"event=node\.disconnected node=n1 .*status=10 .*replaced")
        r = self.c.spawn("after")
        self.assertEqual(H.payload(self.c.wait_turn_end(r.agent_id))["output"], "after")
        self.assertEqual(assigned_nodes(self.c, r.agent_id), ["n1"])

    def test_another_process_with_a_live_id_is_refused(self):
        """Regression: two nodes with one --node-id flapped forever (133 node.replaced in 10 s,
        0 of 6 agents finished). Now the second is refused and exits with one line."""
        before = self.c.hub_log().count("event=node.replaced")
        fake = H.FakeNode(self.c)
        self.addCleanup(fake.cancel)
        self.assertIsNone(fake.register("n1", instance_id="someone-else"))
        code, details = fake.end()
        self.assertEqual(code, H.grpc.StatusCode.ALREADY_EXISTS, details)
        self.assertIn("node id 'n1' is in use by a live node", details)
        # A real second process: refused at once, one line on stderr, exit status 1. (Its own
        # workspace root: on one host the first node's root, locked, would refuse it first.)
        r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "n1",
                       "--workspace-root", os.path.join(self.c.dir, "second-n1"),
                       "--log-level", "error"], timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertRegex(lines[0], r"^error: the hub at '.*' refused node 'n1': node id 'n1' is "
                                   r"in use by a live node")
        # The first node never noticed: not replaced, and still runs agents.
        self.assertEqual(self.c.hub_log().count("event=node.replaced"), before)
        ids = [self.c.spawn("final ok-%d" % i, tools=()).agent_id for i in range(6)]
        for i, aid in enumerate(ids):
            self.assertEqual(H.payload(self.c.wait_turn_end(aid))["output"], "ok-%d" % i)
            self.assertEqual(assigned_nodes(self.c, aid), ["n1"])


class BusyNodeStreamLossTest(NodeTakeoverTest):
    """Its own cluster: the node it breaks is SIGKILLed at the end. Each takeover interrupts the
    loops twice for the same reason: the dead-letter rule and the back-off are set out of the
    way, so that what is tested is the node reconnecting."""
    HUB_ARGS = ("--max-interruptions", "1000", "--retry-backoff", "1ms",
                "--retry-backoff-max", "5ms")

    test_node_id_takeover_replaces_the_stream = None
    test_another_process_with_a_live_id_is_refused = None

    def test_busy_node_survives_repeated_stream_loss(self):
        # Regression (worker/conn.c): an emit could start a send on a call whose stream had just
        # ended; its completion was swallowed by the backoff wait and the per-stream count of
        # batches in flight stayed one too high, so the next stream end hung the node (no
        # reconnect, no exit on SIGTERM). A takeover ends the stream at will, while 8 loops emit.
        n1 = self.c.nodes["n1"]
        self.addCleanup(n1.sigkill)  # should it hang anyway, do not leave it behind
        ids = [self.c.spawn("loop", max_iterations=1000).agent_id for _ in range(8)]
        for k in range(12):
            H.wait_for(lambda: self.c.get(ids[0]).state == self.T.AGENT_STATE_RUNNING and
                       self.c.get(ids[0]).node_id == "n1", 10, what="n1 to run the loops")
            _, back = self.take_over("n1")
            self.assertTrue(back, "n1 did not reconnect after stream loss #%d: its connection "
                            "thread is stuck (last log lines:\n%s)" % (k + 1, n1.tail(3)))
        for a in ids:
            self.c.kill(a)
        err = self.c.stop_node("n1")  # SIGTERM; must exit 0 with no sanitizer report
        self.assertIsNone(err, "n1 did not stop cleanly: %s" % err)


class HeartbeatTest(H.ClusterTestCase):
    """A node whose connection stays open but that stops talking (a hung process, a half-open
    TCP connection) is dropped after 3 heartbeat intervals (the hub runs with 500 ms), and its
    turn moves to a live node."""
    NODES = 0

    def test_silent_node_is_dropped_and_its_turn_moves(self):
        f = H.FakeNode(self.c)
        self.addCleanup(f.cancel)
        m = f.register("silent", capacity=1)
        self.assertEqual(m.WhichOneof("msg"), "registered")
        aid = self.c.spawn("final moved").agent_id
        a = f.recv_kind("assign")
        self.assertEqual((a.agent_id, a.epoch), (aid, 1))
        # No heartbeat, no events: the hub must end the stream by itself.
        code, details = f.end(timeout=10)
        self.assertEqual(code, H.grpc.StatusCode.UNAVAILABLE)
        self.assertIn("heartbeat", details)
        self.assertIn("event=node.timed_out node=silent", self.c.hub_log())
        intr = self.c.wait_kind(aid, self.T.EVENT_KIND_INTERRUPTED, timeout=10)
        self.assertEqual(H.payload(intr)["node"], "silent")
        self.c.add_node("live", capacity=1)
        end = self.c.wait_turn_end(aid, after_seq=intr.seq, timeout=15)
        self.assertEqual((H.kind_name(end.kind), end.node_id), ("final", "live"))
        self.assertEqual(H.payload(end)["output"], "moved")


class HandshakeTest(unittest.TestCase):
    """A hub that accepts the connection but never answers (a half-open connection, a wrong
    port) must not hang a node: it gives up at the handshake deadline, backs off, retries, and
    still stops cleanly on SIGTERM."""

    def test_silent_hub_does_not_hang_the_node(self):
        srv = H.socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.addCleanup(srv.close)
        held = []

        def accept_forever():  # accept, read nothing back, answer nothing
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                held.append(conn)

        t = H.threading.Thread(target=accept_forever, daemon=True)
        t.start()
        self.addCleanup(lambda: [c.close() for c in held])
        d = H.tempfile.mkdtemp(prefix="agentry-e2e-handshake-")
        log = H.os.path.join(d, "node.log")
        node = H.Proc("silent-hub-node",
                      [H.AGENTRY_BIN, "node", "join", "--hub", "127.0.0.1:%d" % srv.getsockname()[1],
                       "--node-id", "n1", "--workspace-root", H.os.path.join(d, "ws"),
                       "--handshake-timeout", "300ms"], log).start()
        self.addCleanup(node.kill_if_running)
        # Two deadlines passed, with a reconnect in between: it neither hangs nor gives up.
        H.wait_for(lambda: node.text().count("event=node.handshake_timeout") >= 2, timeout=15,
                   what="two handshake timeouts in the node's log")
        self.assertIn("event=node.reconnecting", node.text())
        self.assertTrue(node.running())
        err = node.stop()
        self.assertIsNone(err, err)
        H.shutil.rmtree(d, ignore_errors=True)


class PlacementRulesTest(H.ClusterTestCase):
    NODES = 0
    HUB_ARGS = ("--scheduler", "binpack", "--join-grace", "0")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.c.add_node("gpu", capacity=4, extra=["--cpu", "2", "--memory", "4Gi",
                                                 "--labels", "gpu=true"])
        cls.c.add_node("plain", capacity=4, extra=["--cpu", "1000m", "--memory", "1Gi"])

    def spawn(self, text, **spec):
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=self.c.spec(tools=(), **spec), input=text), timeout=10)

    def refused(self, *details, **spec):
        with self.assertRaises(grpc.RpcError) as cm:
            self.spawn("x", **spec)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        for d in details:
            self.assertIn(d, cm.exception.details())

    def node_of(self, aid):
        return H.payload(self.c.wait_kind(aid, self.T.EVENT_KIND_ASSIGNED))["node"]

    def test_refusals_name_the_numbers_and_the_choices(self):
        self.refused("room for 1 slot, 3000 millicores", "the most a node has: 4 slots, 2000 "
                     "millicores, 4294967296 bytes of memory",
                     resources=self.T.Resources(cpu_milli=3000))
        self.refused("label 'gpu=false'", node_selector={"gpu": "false"})
        self.refused("use one of: round-robin, binpack, spread", scheduler="fastest")
        self.refused("not a key of spec.labels", anti_affinity=["team"])
        self.refused("spec.priority is 2000", priority=2000)

    def test_selector_resources_binpack_and_anti_affinity(self):
        # Binpack: two turns share a node. The selector keeps one on the gpu node; 1.5 cores
        # fit only there too.
        a = self.spawn("sleep 1500; final a").agent_id
        b = self.spawn("sleep 1500; final b").agent_id
        self.assertEqual(self.node_of(a), self.node_of(b))
        g = self.spawn("sleep 100; final g", node_selector={"gpu": "true"}).agent_id
        self.assertEqual(self.node_of(g), "gpu")
        r = self.spawn("sleep 100; final r", resources=self.T.Resources(
            cpu_milli=1500, memory_bytes=2 << 30)).agent_id
        self.assertEqual(self.node_of(r), "gpu")
        # Anti-affinity: one per node, the third waits and says why, then runs.
        team = dict(labels={"team": "x"}, anti_affinity=["team"])
        t = [self.spawn("sleep 1500; final t%d" % i, **team) for i in range(3)]
        self.assertEqual(t[2].state, self.T.AGENT_STATE_PENDING)
        self.assertEqual({self.node_of(t[0].agent_id), self.node_of(t[1].agent_id)},
                         {"gpu", "plain"})
        self.assertIn("anti-affinity", self.c.get(t[2].agent_id).state_reason)
        end = self.c.wait_turn_end(t[2].agent_id, timeout=20)
        self.assertEqual(H.kind_name(end.kind), "final")
        for aid in (a, b, g, r, t[0].agent_id, t[1].agent_id):
            self.c.wait_turn_end(aid, timeout=20)

    def test_cli_flags(self):
        r = H.run_cli(["spawn", "--hub", self.c.addr, "--cpu", "250m", "--memory", "64Mi",
                       "--selector", "gpu=true", "--label", "team=y", "--anti-affinity", "team",
                       "--priority", "3", "--scheduler", "spread", "hi"])
        self.assertEqual(r.returncode, 0, r.stderr)
        aid = r.stdout.strip()
        spec = self.c.get(aid).spec
        self.assertEqual((spec.resources.cpu_milli, spec.resources.memory_bytes),
                         (250, 64 << 20))
        self.assertEqual(dict(spec.node_selector), {"gpu": "true"})
        self.assertEqual((list(spec.anti_affinity), spec.priority, spec.scheduler),
                         (["team"], 3, "spread"))
        self.assertEqual(self.node_of(aid), "gpu")
        self.c.wait_turn_end(aid, timeout=20)
        for bad in (["--cpu", "2x"], ["--memory", "4gb"]):
            r = H.run_cli(["spawn", "--hub", self.c.addr] + bad + ["hi"])
            H.one_error_line(self, r, rc=2)


if __name__ == "__main__":
    H.main()
