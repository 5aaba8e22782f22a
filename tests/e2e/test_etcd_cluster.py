"""tests/e2e/test_etcd_cluster.py - hubs and nodes meeting in a real etcd (tests/etcd_fixture.sh;
PostgreSQL from the ctest fixture "pg" for the failover).

- Discovery: nodes started with --etcd and no --hub find the leading hub through P leader and
  register; `agentry nodes` lists them.
- A node whose lease expires (SIGSTOP longer than its --lease-ttl) is lost although its stream
  looks open (the hub's own heartbeat timeout is set far beyond): its turns go on on the other
  node from their last stored step, each ends with its FINAL, and the INTERRUPTED names the etcd
  registration. The time from SIGSTOP to every turn assigned elsewhere is printed.
- The hub's watch survives an etcd restart: after halt/restart of etcd, a node's lease expiry is
  still noticed.
- Leader failover with nodes: two hubs on PostgreSQL, two nodes following P leader; the leader
  SIGKILLed while agents run; the nodes reconnect to the new leader by themselves and every
  agent finishes.
"""
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_store_pg import conninfo, psql  # noqa: E402

STEPS = 6


def script(token):
    return "; ".join(["call echo %s-s%d" % (token, i) for i in range(1, STEPS + 1)] +
                     ["final done"])


class EtcdCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = H.stubs()
        cls.T = cls.s.types
        cls.dir = tempfile.mkdtemp(prefix="agentry-e2e-etcdcluster-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.etcd_srv = H.Etcd()
        cls.addClassCleanup(cls.etcd_srv.fixture, "stop")
        cls.etcd = cls.etcd_srv.url
        cls.n = 0

    def setUp(self):
        self.procs = []
        self.prefix = "/t%s/" % uuid.uuid4().hex[:8]  # each test its own cluster in etcd
        self.addCleanup(self.stop_all)

    def stop_all(self):
        problems = []
        for p in reversed(self.procs):  # nodes first, then hubs
            if p.running():
                p.signal(signal.SIGCONT)
            err = p.stop()
            if err and not p.expect_killed:
                problems.append(err)
        if problems:
            self.fail("\n".join(problems))

    def proc(self, name, args):
        EtcdCluster.n += 1
        p = H.Proc(name, [H.AGENTRY_BIN] + args,
                   os.path.join(self.dir, "%s.%d.log" % (name, self.n))).start()
        self.procs.append(p)
        return p

    def hub(self, hub_id, store, port, extra=()):
        return self.proc(hub_id, ["hub", "--listen", "127.0.0.1:%d" % port, "--store", store,
                                  "--etcd", self.etcd, "--etcd-prefix", self.prefix, "--hub-id",
                                  hub_id, "--lease-ttl", "2s", "--retry-backoff", "10ms"] +
                         list(extra))

    def node(self, node_id, ttl="2s"):
        return self.proc(node_id, ["node", "join", "--etcd", self.etcd, "--etcd-prefix",
                                   self.prefix, "--node-id", node_id, "--lease-ttl", ttl,
                                   "--capacity", "8", "--tool-opt", "echo.latency=150ms"])

    def wait_log(self, p, text, count=1, timeout=30):
        H.wait_for(lambda: p.text().count(text) >= count, timeout,
                   what="%s to log %r %d time(s)" % (p.name, text, count))

    def stub(self, port):
        ch = H.grpc.insecure_channel("127.0.0.1:%d" % port)
        self.addCleanup(ch.close)
        return self.s.hub_grpc.AgentHubStub(ch)

    def spawn(self, hub, n):
        spec = self.T.AgentSpec(name="etcd", tools=["echo"], max_iterations=2 * STEPS)
        return [hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=script(uuid.uuid4().hex[:6])),
                          timeout=10).agent_id for _ in range(n)]

    def trace(self, hub, aid):
        return list(hub.Trace(self.s.hub.TraceRequest(agent_id=aid), timeout=10))

    def wait_done(self, hub, aid, timeout=60):
        ends = (self.T.EVENT_KIND_FINAL, self.T.EVENT_KIND_ERROR, self.T.EVENT_KIND_YIELD)

        def done():
            try:
                return any(e.kind in ends for e in self.trace(hub, aid))
            except H.grpc.RpcError:
                return False  # the hub is changing over
        H.wait_for(done, timeout, what="agent %s to end its turn" % aid)
        evs = self.trace(hub, aid)
        last = [e for e in evs if e.kind in ends][-1]
        self.assertEqual((H.kind_name(last.kind), H.payload(last).get("output")),
                         ("final", "done"), aid)
        return evs

    def test_discovery_and_lease_expiry_moves_turns(self):
        port = H.free_port()
        # Its own heartbeat timeout (30 s) out of the way; a lease that outlives etcd's restart.
        hub = self.hub("h1", "sqlite:" + os.path.join(self.dir, "h1-%s.db" % self.n), port,
                       extra=["--heartbeat", "10s", "--lease-ttl", "10s"])
        self.wait_log(hub, "event=cluster.watching")
        # The hub's watch outlives an etcd restart: every node event below comes through it.
        self.etcd_srv.fixture("halt")
        self.etcd_srv.fixture("restart")
        n1, n2 = self.node("n1"), self.node("n2")
        self.wait_log(hub, "event=node.registered node=n1")
        self.wait_log(hub, "event=node.registered node=n2")
        r = H.run_cli(["nodes", "--hub", "127.0.0.1:%d" % port])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("n1", r.stdout)
        self.assertIn("n2", r.stdout)
        h = self.stub(port)

        agents = self.spawn(h, 6)
        for aid in agents:
            H.wait_for(lambda: any(e.kind == self.T.EVENT_KIND_TOOL_RESULT
                                   for e in self.trace(h, aid)), 30,
                       what="a first step of %s" % aid)
        on_n1 = [aid for aid in agents
                 if h.GetAgent(self.s.hub.GetAgentRequest(agent_id=aid), timeout=10).node_id == "n1"]
        self.assertTrue(on_n1, "round-robin put no agent on n1")
        lost_before = hub.text().count("event=node.lost node=n1")
        stopped = time.time()
        n1.signal(signal.SIGSTOP)
        self.wait_log(hub, "event=node.lost node=n1", count=lost_before + 1)
        self.assertIn("etcd registration", hub.text().split("event=node.lost node=n1")
                      [lost_before + 1].splitlines()[0])
        moved_at = []
        for aid in on_n1:
            evs = self.wait_done(h, aid)
            inter = [H.payload(e) for e in evs if e.kind == self.T.EVENT_KIND_INTERRUPTED]
            self.assertTrue(inter, aid)
            self.assertIn("etcd registration", inter[0]["reason"])
            after = evs[[e.kind for e in evs].index(self.T.EVENT_KIND_INTERRUPTED):]
            assigned = [e for e in after if e.kind == self.T.EVENT_KIND_ASSIGNED]
            self.assertTrue(assigned, aid)
            moved_at.append(assigned[0].time_unix_nano / 1e9)
        for aid in agents:
            if aid not in on_n1:
                self.wait_done(h, aid)
        sys.stderr.write("node SIGSTOPped (lease TTL 2s): its %d turns assigned elsewhere "
                         "after %.2f s (last one)\n" % (len(on_n1), max(moved_at) - stopped))
        n1.signal(signal.SIGCONT)  # it re-registers and reconnects (its stream was closed)
        self.wait_log(hub, "event=node.registered node=n1", count=2)

    def test_leader_failover_with_nodes(self):
        db = "e2e_etcdcluster_%d" % os.getpid()
        psql("CREATE DATABASE %s" % db)
        self.addCleanup(psql, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        store = "postgres:%s dbname=%s" % (conninfo(), db)
        pa, pb = H.free_port(), H.free_port()
        ha = self.hub("ha", store, pa)
        self.wait_log(ha, "event=hub.started")
        hb = self.hub("hb", store, pb)
        self.wait_log(hb, "event=cluster.standby")
        self.node("m1", ttl="2s")
        self.node("m2", ttl="2s")
        self.wait_log(ha, "event=node.registered node=m1")
        self.wait_log(ha, "event=node.registered node=m2")
        agents = self.spawn(self.stub(pa), 6)
        for aid in agents:
            H.wait_for(lambda: any(e.kind == self.T.EVENT_KIND_TOOL_RESULT
                                   for e in self.trace(self.stub(pa), aid)), 30,
                       what="a first step of %s" % aid)
        ha.sigkill()
        self.wait_log(hb, "event=hub.started")
        self.wait_log(hb, "event=node.registered node=m1")
        self.wait_log(hb, "event=node.registered node=m2")
        h = self.stub(pb)
        for aid in agents:
            evs = self.wait_done(h, aid)
            self.assertTrue(any(e.kind == self.T.EVENT_KIND_INTERRUPTED for e in evs), aid)


if __name__ == "__main__":
    H.main()
