#!/usr/bin/python3
"""deploy/local/bench_cluster.py - how long recovery takes in an etcd cluster (issue 13, point 7).

Starts a private etcd (tests/etcd_fixture.sh) and, for the hub part, a private PostgreSQL
(tests/pg_fixture.sh), then measures, --rounds times each:

  node lost, SIGSTOP  a node (registered with --lease-ttl T) is stopped while 4 agents run on
                      it: the time until every one of its turns is ASSIGNED on the other node.
                      Its stream stays open (the hub's heartbeat timeout is set to 30 s): only
                      the lease's expiry in etcd tells the hub.
  node lost, SIGKILL  the same with the process killed: its stream breaks at once.
  hub failover        a leader and a standby on PostgreSQL with --lease-ttl T; the leader
                      SIGKILLed (or SIGSTOPped) under a client sending inputs: the time until
                      the standby serves, and until its first acknowledgement.

    /usr/bin/python3 deploy/local/bench_cluster.py --binary build/agentry [--ttl 1 --ttl 5]
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness as H  # noqa: E402

ETCD_FIXTURE = os.path.join(ROOT, "tests", "etcd_fixture.sh")
PG_FIXTURE = os.path.join(ROOT, "tests", "pg_fixture.sh")


class Bench:
    def __init__(self, binary, tmp):
        self.bin, self.tmp = binary, tmp
        self.s = H.stubs()
        self.T = self.s.types
        self.procs = []
        self.n = 0
        state = os.path.join(tmp, "etcd")
        subprocess.run(["sh", ETCD_FIXTURE, "start", state], check=True, capture_output=True)
        self.etcd_state = state
        with open(state + ".url") as f:
            self.etcd = f.read().strip()

    def close(self):
        self.stop_all()
        subprocess.run(["sh", ETCD_FIXTURE, "stop", self.etcd_state], capture_output=True)

    def proc(self, name, args):
        self.n += 1
        p = H.Proc(name, [self.bin] + args, os.path.join(self.tmp, "%s.%d.log" % (name, self.n)))
        self.procs.append(p.start())
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.running():
                p.signal(signal.SIGCONT)
                p.stop()
        self.procs = []

    def wait_log(self, p, text, count=1, timeout=60):
        H.wait_for(lambda: p.text().count(text) >= count, timeout, interval=0.005,
                   what="%s to log %r" % (p.name, text))

    def stub(self, port):
        return self.s.hub_grpc.AgentHubStub(H.grpc.insecure_channel("127.0.0.1:%d" % port))

    # -- nodes --

    def node_round(self, ttl, how):
        prefix = "/b%s/" % uuid.uuid4().hex[:8]
        port = H.free_port()
        hub = self.proc("hub", ["hub", "--listen", "127.0.0.1:%d" % port, "--store",
                                "sqlite:" + os.path.join(self.tmp, "n%d.db" % self.n), "--etcd",
                                self.etcd, "--etcd-prefix", prefix, "--heartbeat", "10s"])
        self.wait_log(hub, "event=cluster.watching")
        nodes = {}
        for nid in ("n1", "n2"):
            nodes[nid] = self.proc(nid, ["node", "join", "--etcd", self.etcd, "--etcd-prefix",
                                         prefix, "--node-id", nid, "--lease-ttl", "%ds" % ttl,
                                         "--capacity", "8", "--tool-opt",
                                         "echo.latency=200ms"])
            self.wait_log(hub, "event=node.registered node=%s" % nid)
        h = self.stub(port)
        spec = self.T.AgentSpec(name="bench", tools=["echo"], max_iterations=100)
        text = "; ".join(["call echo s%d" % i for i in range(60)] + ["final done"])
        agents = [h.Spawn(self.s.hub.SpawnRequest(spec=spec, input=text), timeout=10).agent_id
                  for _ in range(8)]

        def node_of(aid):
            return h.GetAgent(self.s.hub.GetAgentRequest(agent_id=aid), timeout=10).node_id
        H.wait_for(lambda: all(node_of(a) for a in agents), 30, what="agents running")
        victims = [a for a in agents if node_of(a) == "n1"]
        t0 = time.monotonic()
        if how == "SIGSTOP":
            nodes["n1"].signal(signal.SIGSTOP)
        else:
            nodes["n1"].sigkill()
        H.wait_for(lambda: all(node_of(a) == "n2" for a in victims), 60, interval=0.005,
                   what="turns moved to n2")
        took = time.monotonic() - t0
        self.stop_all()
        return took

    # -- hubs --

    def hub_round(self, store, ttl, how):
        prefix = "/b%s/" % uuid.uuid4().hex[:8]
        ports = {"ha": H.free_port(), "hb": H.free_port()}
        hubs = {}
        for hid in ("ha", "hb"):
            hubs[hid] = self.proc(hid, ["hub", "--listen", "127.0.0.1:%d" % ports[hid],
                                        "--store", store, "--etcd", self.etcd, "--etcd-prefix",
                                        prefix, "--hub-id", hid, "--lease-ttl", "%ds" % ttl])
            self.wait_log(hubs[hid], "event=hub.started" if hid == "ha" else "cluster.standby")
        spec = self.T.AgentSpec(name="bench", tools=["echo"])
        agent = self.stub(ports["ha"]).Spawn(self.s.hub.SpawnRequest(spec=spec),
                                             timeout=10).agent_id
        acked, stop = [], threading.Event()

        def load():
            k = 0
            while not stop.is_set():
                for hid in ("ha", "hb"):
                    ch = H.grpc.insecure_channel("127.0.0.1:%d" % ports[hid])
                    try:
                        self.s.hub_grpc.AgentHubStub(ch).SendMessage(
                            self.s.hub.SendMessageRequest(agent_id=agent, input="i%d" % k),
                            timeout=1)
                        acked.append((hid, time.monotonic()))
                        break
                    except H.grpc.RpcError:
                        pass
                    finally:
                        ch.close()
                else:
                    stop.wait(0.01)
                k += 1
        t = threading.Thread(target=load)
        t.start()
        H.wait_for(lambda: len(acked) > 20, 30)
        t0 = time.monotonic()
        if how == "SIGSTOP":
            hubs["ha"].signal(signal.SIGSTOP)
        else:
            hubs["ha"].sigkill()
        self.wait_log(hubs["hb"], "event=hub.started", timeout=120)
        serving = time.monotonic() - t0
        H.wait_for(lambda: any(h == "hb" for h, _ in acked), 60, interval=0.005)
        first = min(w for h, w in acked if h == "hb") - t0
        stop.set()
        t.join()
        self.stop_all()
        return serving, first


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--ttl", type=int, action="append")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    ttls = a.ttl or [1, 5]
    only = os.environ.get("BENCH_ONLY", "")  # "nodes" or "hubs": one part
    tmp = tempfile.mkdtemp(prefix="agentry-bench-cluster-")
    print("== machine: %d cores, %s" % (os.cpu_count(), os.uname().release))
    b = Bench(os.path.abspath(a.binary), tmp)
    pg = os.path.join(tmp, "pg")
    subprocess.run(["sh", PG_FIXTURE, "start", pg], check=True, capture_output=True)
    try:
        with open(pg + ".conninfo") as f:
            conninfo = f.read().strip()
        for ttl in ttls if only != "hubs" else []:
            for how in ("SIGSTOP", "SIGKILL"):
                r = [b.node_round(ttl, how) for _ in range(a.rounds)]
                print("node lost (%s, lease TTL %ds): its turns assigned elsewhere after %s s" %
                      (how, ttl, " / ".join("%.2f" % x for x in r)))
        for ttl in ttls if only != "nodes" else []:
            for how in ("SIGKILL", "SIGSTOP"):
                rs = []
                for k in range(a.rounds):
                    db = "bench_%s_%d_%d" % (how.lower(), ttl, k)
                    subprocess.run(["psql", "-X", "-q", conninfo, "-c", "CREATE DATABASE " + db],
                                   check=True, capture_output=True)
                    rs.append(b.hub_round("postgres:%s dbname=%s" % (conninfo, db), ttl, how))
                print("hub failover (%s, lease TTL %ds): standby serving after %s s, first "
                      "acknowledgement after %s s" %
                      (how, ttl, " / ".join("%.2f" % s for s, _ in rs),
                       " / ".join("%.2f" % f for _, f in rs)))
    finally:
        b.close()
        subprocess.run(["sh", PG_FIXTURE, "stop", pg], capture_output=True)


if __name__ == "__main__":
    main()
