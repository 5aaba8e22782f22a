#!/usr/bin/python3
"""deploy/local/bench_observe.py - what watching the cluster costs the hot path (issue 18, point 6).

Starts a hub (SQLite) and 3 nodes on loopback, fresh for every run, and measures SendMessage
(`agentry bench --rpc send`) and one-step turns (`agentry bench --rpc invoke`) in three setups,
interleaved round by round so that drift in the machine hits them alike:

  off        no --metrics-listen, no --http-listen: the hub does not even time its RPCs
  scraped    hub and nodes serve /metrics and a scraper GETs all four every second
  viewers    scraped, plus the hub's --http-listen with 50 dashboard viewers: each polls
             ListAgents (page of 50) every 2 s, as the page does, and follows one of the bench's
             agents live over SSE (Trace, follow=true)
  followers  for comparison, no HTTP: 50 gRPC clients each following one of the bench's agents
             with Trace (follow=true), as `agentry trace -f` does

Prints one table of medians (calls/s, p50, p99) per RPC and setup, and what the scraper and
viewers received (so a run where they silently failed is visible). With --before BINARY (an
older build), every setup also runs on that binary, as "SETUP@before", in the same rounds.

    /usr/bin/python3 deploy/local/bench_observe.py --binary build/agentry [--rounds 3]
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
import harness as H  # noqa: E402

SETUPS = tuple(os.environ.get("BENCH_SETUPS", "off,scraped,viewers,followers").split(","))
VIEWERS = 50


class Cluster:
    def __init__(self, binary, tmp, setup):
        self.bin, self.tmp, self.setup = binary, tmp, setup
        self.procs = []
        self.addr = "127.0.0.1:%d" % H.free_port()
        self.metrics = []
        self.web = None
        args = ["hub", "--listen", self.addr, "--store", "sqlite:" + os.path.join(tmp, "hub.db"),
                "--log-level", "warn"]
        if setup in ("scraped", "viewers"):
            m = "127.0.0.1:%d" % H.free_port()
            self.metrics.append(m)
            args += ["--metrics-listen", m]
        if setup == "viewers":
            self.web = "127.0.0.1:%d" % H.free_port()
            args += ["--http-listen", self.web]
        self.start("hub", args)
        H.wait_for(self.ping, 15, what="the hub to answer")
        for i in range(1, 4):
            args = ["node", "join", "--hub", self.addr, "--node-id", "n%d" % i, "--capacity",
                    "64", "--workspace-root", os.path.join(tmp, "ws%d" % i), "--log-level", "warn"]
            if setup in ("scraped", "viewers"):
                m = "127.0.0.1:%d" % H.free_port()
                self.metrics.append(m)
                args += ["--metrics-listen", m]
            self.start("n%d" % i, args)
        H.wait_for(self.nodes_up, 15, what="3 nodes to register")

    def start(self, name, args):
        p = H.Proc(name, [self.bin] + args, os.path.join(self.tmp, name + ".log")).start()
        self.procs.append(p)

    def cli(self, args, timeout=120):
        return subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, AGENTRY_HUB=self.addr))

    def ping(self):
        return self.cli(["nodes"], timeout=10).returncode == 0

    def nodes_up(self):
        r = self.cli(["nodes"], timeout=10)
        return r.returncode == 0 and sum(1 for l in r.stdout.splitlines() if l.startswith("n")) >= 3

    def cpu_seconds(self, name):
        """User + system CPU the process has used so far (/proc/PID/stat)."""
        p = next(p for p in self.procs if p.name == name)
        with open("/proc/%d/stat" % p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        for p in self.procs[::-1]:
            p.stop()


class Watchers:
    """The scraper and the viewers: threads that count what they received until stopped."""

    def __init__(self, c):
        self.c = c
        self.stop_ev = threading.Event()
        self.scrapes = self.scrape_errors = self.lists = self.events = self.view_errors = 0
        self.lock = threading.Lock()
        self.threads = []

    def add(self, attr, n=1):
        with self.lock:
            setattr(self, attr, getattr(self, attr) + n)

    def run(self, fn, *a):
        t = threading.Thread(target=fn, args=a, daemon=True)
        t.start()
        self.threads.append(t)

    def scraper(self):
        while not self.stop_ev.is_set():
            for m in self.c.metrics:
                try:
                    with urllib.request.urlopen("http://%s/metrics" % m, timeout=5) as r:
                        r.read()
                    self.add("scrapes")
                except OSError:
                    self.add("scrape_errors")
            self.stop_ev.wait(1.0)

    def api(self, method, body):
        conn = http.client.HTTPConnection(self.c.web, timeout=10)
        try:
            conn.request("POST", "/api/v1/agentry.v1.AgentHub/" + method, json.dumps(body),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise OSError("%s: HTTP %d %s" % (method, r.status, data[:200]))
            return json.loads(data or b"{}")
        finally:
            conn.close()

    def viewer(self, i):
        agent = None
        follow = None
        next_list = 0.0
        while not self.stop_ev.is_set():
            try:
                if time.monotonic() >= next_list:
                    agents = self.api("ListAgents", {"page_size": 50}).get("agents", [])
                    self.add("lists")
                    next_list = time.monotonic() + 2.0
                    if agent is None and agents:
                        agent = agents[i % len(agents)]["id"]
                if agent and follow is None:
                    follow = threading.Thread(target=self.follow, args=(agent,), daemon=True)
                    follow.start()
                    self.threads.append(follow)
            except OSError:
                self.add("view_errors")
            self.stop_ev.wait(0.2)

    def follow(self, agent):
        conn = http.client.HTTPConnection(self.c.web, timeout=30)
        try:
            conn.request("GET", "/api/v1/agentry.v1.AgentHub/Trace?agent_id=%s&follow=true"
                         % agent, headers={"Accept": "text/event-stream"})
            r = conn.getresponse()
            if r.status != 200:
                raise OSError("Trace: HTTP %d" % r.status)
            while not self.stop_ev.is_set():
                line = r.fp.readline()
                if not line:
                    break
                if line.startswith(b"data:"):
                    self.add("events")
        except OSError:
            if not self.stop_ev.is_set():
                self.add("view_errors")
        finally:
            conn.close()

    def grpc_follower(self, i):
        s = H.stubs()
        ch = H.grpc.insecure_channel(self.c.addr)
        hub = s.hub_grpc.AgentHubStub(ch)
        stream = None
        try:
            agents = []
            while not agents and not self.stop_ev.is_set():
                agents = hub.ListAgents(s.hub.ListAgentsRequest(page_size=50), timeout=10).agents
                self.stop_ev.wait(0.2)
            if not agents:
                return
            stream = hub.Trace(s.hub.TraceRequest(agent_id=agents[i % len(agents)].id,
                                                  follow=True))
            threading.Thread(target=lambda: (self.stop_ev.wait(), stream.cancel()),
                             daemon=True).start()
            for _ in stream:
                self.add("events")
        except H.grpc.RpcError as e:
            if e.code() != H.grpc.StatusCode.CANCELLED:
                self.add("view_errors")
        finally:
            ch.close()

    def start(self):
        if self.c.metrics:
            self.run(self.scraper)
        if self.c.web:
            for i in range(VIEWERS):
                self.run(self.viewer, i)
        if self.c.setup == "followers":
            for i in range(VIEWERS):
                self.run(self.grpc_follower, i)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(35)


def one(binary, setup, rpc, duration):
    tmp = tempfile.mkdtemp(prefix="agentry-bench-observe-")
    c = Cluster(binary, tmp, setup.split("@")[0])
    w = Watchers(c)
    try:
        w.start()
        hub0, watch0 = c.cpu_seconds("hub"), time.process_time()
        r = c.cli(["bench", "--rpc", rpc, "-c", "64", "-d", duration, "--json"])
        hub_cpu, watch_cpu = c.cpu_seconds("hub") - hub0, time.process_time() - watch0
        if r.returncode != 0:
            sys.exit("bench failed (%s, %s): %s" % (setup, rpc, r.stderr.strip()))
        out = json.loads(r.stdout)
        res = {"calls_per_second": out["calls_per_s"], "p50_ms": out["latency_ms"]["p50"],
               "p99_ms": out["latency_ms"]["p99"],
               "hub_cpu_ms_per_call": 1000.0 * hub_cpu / max(out["calls"], 1),
               "watchers_cpu_s": watch_cpu}
    finally:
        w.stop()
        c.stop()
        shutil.rmtree(tmp, True)
    res["watch"] = {"scrapes": w.scrapes, "scrape_errors": w.scrape_errors, "lists": w.lists,
                    "sse_events": w.events, "viewer_errors": w.view_errors}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=H.AGENTRY_BIN)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--before", metavar="BINARY", help="an older build to run every setup on too")
    o = ap.parse_args()
    runs = [(s, o.binary) for s in SETUPS]
    if o.before:
        runs = [r for s in SETUPS for r in ((s + "@before", o.before), (s, o.binary))]
    rows = {}
    for rnd in range(o.rounds):
        for rpc in ("send", "invoke"):
            for setup, binary in runs:
                res = one(binary, setup, rpc, o.duration)
                rows.setdefault((rpc, setup), []).append(res)
                print("round %d %-6s %-8s %8.0f/s p50 %.2f ms p99 %.2f ms hub %.3f ms CPU/call "
                      "watchers %.1f s CPU  %s" % (
                          rnd + 1, rpc, setup, res["calls_per_second"], res["p50_ms"],
                          res["p99_ms"], res["hub_cpu_ms_per_call"], res["watchers_cpu_s"],
                          json.dumps(res["watch"])), file=sys.stderr, flush=True)
    print("| RPC | setup | calls/s (median) | p50 ms | p99 ms | hub CPU ms/call | watchers' CPU s "
          "| scrapes | ListAgents | SSE events |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (rpc, setup), rs in rows.items():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print("| %s | %s | %.0f | %.2f | %.2f | %.3f | %.1f | %d | %d | %d |" % (
            rpc, setup, med("calls_per_second"), med("p50_ms"), med("p99_ms"),
            med("hub_cpu_ms_per_call"), med("watchers_cpu_s"),
            sum(r["watch"]["scrapes"] for r in rs), sum(r["watch"]["lists"] for r in rs),
            sum(r["watch"]["sse_events"] for r in rs)))


if __name__ == "__main__":
    main()
