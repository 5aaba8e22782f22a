#!/usr/bin/python3
"""deploy/local/bench_models.py - a node relaying real model calls (issue 15, point 6).

Starts the local fake model server (tests/fake_llm.py: the OpenAI wire format over HTTP on
loopback) and a hub with one node pointed at it, then measures:

  wait      N agents (default 2,000) on the one node, each spawned with a streaming model that
            answers in 1 s ("openai/slow:1000"): the time from the last Spawn's answer until
            every agent is idle, the spread of each turn's ASSIGNED->FINAL time, and the node's
            peak RSS and thread count while they wait (sampled every 20 ms from /proc).
  relay     one agent streaming from a model that writes as fast as it can ("openai/fast:T"),
            followed live through Trace: the tokens per second a follower receives as
            MODEL_DELTA text, and how many delta events carried them.
  cpu       node CPU time (utime + stime from /proc/<pid>/stat) per model call, for the wait
            run (streamed) and for N quick non-streamed calls ("openai/echo").

    /usr/bin/python3 deploy/local/bench_models.py --binary build/agentry [--agents 2000]
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness as H  # noqa: E402

FAKE = os.path.join(ROOT, "tests", "fake_llm.py")
TICK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return int(out["VmRSS"].split()[0]) * 1024, int(out["Threads"])


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_rss, self.threads = pid, threading.Event(), 0, set()

    def run(self):
        while not self.stop.is_set():
            rss, thr = proc_status(self.pid)
            self.peak_rss = max(self.peak_rss, rss)
            self.threads.add(thr)
            time.sleep(0.02)


def spawn_many(c, spec, n, text="go"):
    req = c.s.hub.SpawnRequest(spec=spec, input=text)
    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        return list(ex.map(lambda _: c.hub.Spawn(req, timeout=60).agent_id, range(n)))


def wait_idle(c, n, timeout=120):
    T = c.s.types
    H.wait_for(lambda: len(c.list_all(state=T.AGENT_STATE_IDLE, page_size=1000)) >= n, timeout,
               interval=0.02, what="%d agents idle" % n)


def turn_times(c, agents):
    T = c.s.types
    out = []
    for a in agents:
        ev = c.trace(a)
        t0 = next(e.time_unix_nano for e in ev if e.kind == T.EVENT_KIND_ASSIGNED)
        t1 = next(e.time_unix_nano for e in ev if e.kind == T.EVENT_KIND_FINAL)
        out.append((t1 - t0) / 1e9)
    return sorted(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "agentry"))
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=20000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="agentry-bench-models-")
    port_file = os.path.join(tmp, "fake.port")
    fake = subprocess.Popen(["/usr/bin/python3", FAKE, "--port-file", port_file],
                            stdout=open(os.path.join(tmp, "fake.log"), "w"),
                            stderr=subprocess.STDOUT)
    try:
        H.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10,
                   what="fake model server")
        base = "http://127.0.0.1:%s/v1" % open(port_file).read().strip()
        c = H.Cluster(nodes=1, capacity=args.agents + 16, name="bench-models",
                      binary=os.path.abspath(args.binary),
                      node_args=["--model-opt", "openai.base_url=" + base])
        c.start()
        try:
            run(c, args, fake.pid)
        finally:
            c.stop()
    finally:
        fake.terminate()
        fake.wait()


def run(c, args, fake_pid):
    T = c.s.types
    node = c.nodes["n1"]
    print("== machine: %d cores, %s" % (os.cpu_count(), os.uname().release))
    rss0, thr0 = proc_status(node.pid)
    print("node at rest: RSS %.1f MiB, %d threads" % (rss0 / 2**20, thr0))

    # 1. wait: N agents on a streamed model that answers in 1 s.
    spec = T.AgentSpec(name="wait", model="openai/slow:1000",
                       model_settings=T.ModelSettings(stream=True))
    sampler = Sampler(node.pid)
    sampler.start()
    cpu0 = cpu_seconds(node.pid)
    others0 = cpu_seconds(c.hub_proc.pid), cpu_seconds(fake_pid)
    t0 = time.monotonic()
    agents = spawn_many(c, spec, args.agents)
    t_spawned = time.monotonic()
    wait_idle(c, args.agents)
    t_done = time.monotonic()
    cpu_wait = cpu_seconds(node.pid) - cpu0
    hub_cpu = cpu_seconds(c.hub_proc.pid) - others0[0]
    fake_cpu = cpu_seconds(fake_pid) - others0[1]
    sampler.stop.set()
    sampler.join()
    tt = turn_times(c, agents)
    print("wait: %d agents, spawned in %.2f s, all idle %.2f s after the last spawn "
          "(%.2f s after the first)" % (args.agents, t_spawned - t0, t_done - t_spawned,
                                        t_done - t0))
    print("wait: turn ASSIGNED->FINAL p50 %.3f s, p99 %.3f s, max %.3f s" % (
        tt[len(tt) // 2], tt[int(len(tt) * 0.99)], tt[-1]))
    print("wait: node peak RSS %.1f MiB, threads %s" % (sampler.peak_rss / 2**20,
                                                       sorted(sampler.threads)))
    print("cpu: %.2f ms of node CPU per streamed model call (%d calls); in the same run the hub "
          "used %.2f s and the fake server %.2f s of CPU, on %d cores" % (
              cpu_wait * 1000 / args.agents, args.agents, hub_cpu, fake_cpu, os.cpu_count()))

    # 2. cpu for quick non-streamed calls.
    spec = T.AgentSpec(name="quick", model="openai/echo")
    cpu0 = cpu_seconds(node.pid)
    before = len(c.list_all(state=T.AGENT_STATE_IDLE, page_size=1000))
    spawn_many(c, spec, args.agents)
    wait_idle(c, before + args.agents)
    print("cpu: %.2f ms of node CPU per non-streamed model call (%d calls)" % (
        (cpu_seconds(node.pid) - cpu0) * 1000 / args.agents, args.agents))

    # 3. relay: tokens/s to a live follower.
    spec = T.AgentSpec(name="relay", model="openai/fast:%d" % args.tokens,
                       model_settings=T.ModelSettings(stream=True))
    a = c.hub.Spawn(c.s.hub.SpawnRequest(spec=spec, input="go"), timeout=10).agent_id
    deltas, chars, first = 0, 0, None
    for ev in c.hub.Trace(c.s.hub.TraceRequest(agent_id=a, follow=True), timeout=120):
        if ev.kind == T.EVENT_KIND_MODEL_DELTA:
            deltas += 1
            chars += len(H.payload(ev)["text"])
            first = first or time.monotonic()
        if ev.kind == T.EVENT_KIND_MODEL_REPLY:
            last = time.monotonic()
            tokens = H.payload(ev)["usage"]["output_tokens"]
            break
    took = last - (first or last)
    print("relay: %d tokens (%d chars) in %.2f s from the first delta to the reply: "
          "%.0f tokens/s to a follower, in %d MODEL_DELTA events" % (
              tokens, chars, took, tokens / took if took else 0, deltas))


if __name__ == "__main__":
    main()
