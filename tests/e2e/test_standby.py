"""tests/e2e/test_standby.py - a leader and a standby hub on one PostgreSQL database, elected
through a real etcd (tests/etcd_fixture.sh; PostgreSQL from the ctest fixture "pg").

- Election: the first hub leads (P leader names it, its fencing token in the database), the
  second waits as a standby and does not listen; `--hub a,b` finds the leader.
- Failover under load, leader SIGKILLed: a client sends inputs to 20 agents without pause; the
  standby leads within the lease TTL plus a little, the client goes on through it, and every
  input that was acknowledged, before or after, is stored at its seq with its text (none lost,
  none changed). The killed hub, started again, waits as the standby.
- Leader SIGSTOPped (a partition, to etcd): the standby takes over after the TTL; the old
  leader, continued, finds it no longer leads and exits 1 without committing anything (the
  fence), and everything acknowledged by the new leader is stored.
- A hub without --etcd is refused a database a leader took over (exit 1, one line).
Each step's time is printed (failover: kill to first acknowledgement by the new leader).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_store_pg import conninfo, psql  # noqa: E402

TTL = "2s"


class Standby(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = H.stubs()
        cls.T = cls.s.types
        cls.dir = tempfile.mkdtemp(prefix="agentry-e2e-standby-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.etcd_srv = H.Etcd()
        cls.addClassCleanup(cls.etcd_srv.fixture, "stop")
        cls.etcd = cls.etcd_srv.url
        db = "e2e_standby_%d" % os.getpid()
        psql("CREATE DATABASE %s" % db)
        cls.addClassCleanup(psql, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        cls.store = "postgres:%s dbname=%s" % (conninfo(), db)
        cls.ports = {"ha": H.free_port(), "hb": H.free_port()}
        cls.procs = {}
        cls.starts = 0

    def setUp(self):
        self.errors = []
        self.retired = []
        self.addCleanup(self.stop_all)

    # -- processes --

    def addr(self, hub_id):
        return "127.0.0.1:%d" % self.ports[hub_id]

    def start_hub(self, hub_id):
        Standby.starts += 1
        log = os.path.join(self.dir, "%s.%d.log" % (hub_id, self.starts))
        p = H.Proc(hub_id, [H.AGENTRY_BIN, "hub", "--listen", self.addr(hub_id), "--store",
                            self.store, "--etcd", self.etcd, "--hub-id", hub_id, "--lease-ttl",
                            TTL, "--heartbeat", "200ms"], log).start()
        old = self.procs.get(hub_id)
        if old is not None:
            self.retired.append(old)
        self.procs[hub_id] = p
        return p

    def stop_all(self):
        problems = []
        for p in self.retired:
            p.stop()
        for hub_id, p in list(self.procs.items()):
            if p.running():
                p.signal(signal.SIGCONT)
            err = p.stop()
            if err and not p.expect_killed:
                problems.append(err)
        self.procs.clear()
        if problems:
            self.fail("\n".join(problems))

    def wait_log(self, hub_id, text, timeout=30):
        p = self.procs[hub_id]
        H.wait_for(lambda: text in p.text(), timeout, what="%s to log %r" % (hub_id, text))

    def stub(self, hub_id):
        ch = H.grpc.insecure_channel(self.addr(hub_id))
        self.addCleanup(ch.close)
        return self.s.hub_grpc.AgentHubStub(ch)

    def etcd_leader(self):
        """The value of /agentry/leader, parsed ({} if absent)."""
        got = self.etcd_srv.get("/agentry/leader")
        return got[0] if got else {}

    # -- load --

    def spawn_agents(self, hub, n):
        spec = self.T.AgentSpec(name="standby", tools=["echo"])
        return [hub.Spawn(self.s.hub.SpawnRequest(spec=spec), timeout=10).agent_id
                for _ in range(n)]

    def load(self, hub_ids, agents, acked, stop):
        """Sends inputs round-robin through the first hub that answers; records every one
        acknowledged as (agent, seq, text, when). A hub that fails gets a fresh channel, as a
        client of an HA pair does (a gRPC channel that failed to connect backs off on its
        own)."""
        chans = {}

        def stub(hub_id):
            if hub_id not in chans:
                chans[hub_id] = H.grpc.insecure_channel(self.addr(hub_id))
            return self.s.hub_grpc.AgentHubStub(chans[hub_id])

        k = 0
        try:
            while not stop.is_set():
                aid = agents[k % len(agents)]
                text = "in-%d" % k
                k += 1
                for hub_id in hub_ids:
                    try:
                        r = stub(hub_id).SendMessage(
                            self.s.hub.SendMessageRequest(agent_id=aid, input=text), timeout=2)
                        acked.append((aid, r.seq, text, time.monotonic()))
                        break
                    except H.grpc.RpcError as e:
                        self.errors.append((time.monotonic(), e.code().name, e.details()))
                        chans.pop(hub_id).close()
                else:  # no hub answered: a client's retry backoff, not a spin
                    stop.wait(0.05)
        finally:
            for ch in chans.values():
                ch.close()

    def check_acked(self, hub, acked):
        by_agent = {}
        for aid, seq, text, _ in acked:
            by_agent.setdefault(aid, {})[seq] = text
        for aid, want in by_agent.items():
            evs = {e.seq: e for e in hub.Trace(self.s.hub.TraceRequest(agent_id=aid),
                                                timeout=10)}
            for seq, text in want.items():
                self.assertIn(seq, evs, "acknowledged input %s of %s is missing" % (seq, aid))
                self.assertEqual(evs[seq].kind, self.T.EVENT_KIND_INPUT)
                self.assertEqual(H.payload(evs[seq]).get("text"), text)

    # -- tests (run in name order: a_, b_, c_) --

    def test_a_election_and_failover_under_load(self):
        self.start_hub("ha")
        self.wait_log("ha", "event=hub.started")
        self.start_hub("hb")
        self.wait_log("hb", "event=cluster.standby")
        self.assertEqual(self.etcd_leader().get("hub_id"), "ha")
        self.assertNotIn("event=hub.started", self.procs["hb"].text())
        r = H.run_cli(["ps", "--hub", "%s,%s" % (self.addr("hb"), self.addr("ha"))])
        self.assertEqual(r.returncode, 0, r.stderr)  # the standby does not listen: ha answers

        ha, hb = self.stub("ha"), self.stub("hb")
        agents = self.spawn_agents(ha, 20)
        acked, stop = [], threading.Event()
        t = threading.Thread(target=self.load, args=(["ha", "hb"], agents, acked, stop))
        t.start()
        try:
            H.wait_for(lambda: len(acked) >= 200, 30, what="200 acknowledged inputs")
            killed_at = time.monotonic()
            before = len(acked)
            self.procs["ha"].sigkill()
            self.wait_log("hb", "event=hub.started")
            served_at = time.monotonic()
            H.wait_for(lambda: len(acked) >= before + 200, 60, what="200 inputs after failover")
        finally:
            stop.set()
            t.join(30)
        first_after = min(a[3] for a in acked[before:])
        sys.stderr.write("failover: %.2f s from SIGKILL to the standby serving, %.2f s to its "
                         "first acknowledgement (lease TTL %s)\n" %
                         (served_at - killed_at, first_after - killed_at, TTL))
        self.assertEqual(self.etcd_leader().get("hub_id"), "hb")
        self.check_acked(hb, acked)
        # The old leader, started again, is the standby now.
        self.start_hub("ha")
        self.wait_log("ha", "event=cluster.standby")

    def test_b_stopped_leader_is_fenced(self):
        self.start_hub("hb")
        self.wait_log("hb", "event=hub.started")
        self.start_hub("ha")
        self.wait_log("ha", "event=cluster.standby")
        hb, ha = self.stub("hb"), self.stub("ha")
        agents = self.spawn_agents(hb, 5)
        self.procs["hb"].signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        self.wait_log("ha", "event=hub.started")
        sys.stderr.write("takeover of a stopped leader: %.2f s (lease TTL %s)\n" %
                         (time.monotonic() - stopped_at, TTL))
        acked, stop = [], threading.Event()
        stop_soon = threading.Timer(1.0, stop.set)
        stop_soon.start()
        self.load(["ha"], agents, acked, stop)
        self.assertTrue(acked)
        self.procs["hb"].signal(signal.SIGCONT)
        rc = self.procs["hb"].wait_exit(30)
        self.assertEqual(rc, 1, self.procs["hb"].tail())
        self.assertIn("event=cluster.leadership_lost", self.procs["hb"].text())
        self.procs["hb"].expect_killed = True  # its exit status was checked here
        self.check_acked(ha, acked)

    def test_c_hub_without_etcd_is_refused(self):
        r = subprocess.run([H.AGENTRY_BIN, "hub", "--listen", "127.0.0.1:%d" % H.free_port(),
                            "--store", self.store], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("start this hub with --etcd too", r.stderr)
        self.assertEqual(len([ln for ln in r.stderr.splitlines() if "error" in ln]), 1,
                         r.stderr)


if __name__ == "__main__":
    H.main()
