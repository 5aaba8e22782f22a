#!/usr/bin/python3
"""deploy/local/bench_turns.py - does a turn cost more as an agent's history grows?

Starts a hub (SQLite, or --store URL) and one node from the given build, spawns --agents agents
and runs --turns turns on each, in lockstep: at turn k every agent gets a message of --bytes
bytes ("final <text>": the mock model answers with the text, so each turn adds two messages of
that size to the conversation), and the next turn starts once every agent has answered. For
windows of 10 turns it prints the wall time per turn (all agents together), the hub's CPU time
per turn and the hub's RSS. Flat columns mean a turn costs the same whatever the history.
With --tool-steps N each turn first calls the echo tool N times (a durable tool step costs a
round trip to the hub: compare builds with it).

    /usr/bin/python3 deploy/local/bench_turns.py --binary build/agentry [--binary OTHER ...]

Several --binary runs one after the other in the same invocation (before/after on one machine).
"""
import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
import harness as H  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def hub_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def hub_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Follower(threading.Thread):
    """One Trace stream per agent: counts its FINAL events."""

    def __init__(self, c, agent_id):
        super().__init__(daemon=True)
        self.c, self.agent_id = c, agent_id
        self.finals = 0
        self.cv = threading.Condition()
        self.error = None

    def run(self):
        req = self.c.s.hub.TraceRequest(agent_id=self.agent_id, follow=True)
        final = self.c.s.types.EVENT_KIND_FINAL
        try:
            for ev in self.c.hub.Trace(req):
                if ev.kind == final:
                    with self.cv:
                        self.finals += 1
                        self.cv.notify_all()
        except Exception as e:  # the stream ends when the cluster stops
            with self.cv:
                self.error = e
                self.cv.notify_all()

    def wait(self, n, timeout=600):
        with self.cv:
            if not self.cv.wait_for(lambda: self.finals >= n or self.error, timeout):
                raise TimeoutError("agent %s: %d finals after %ds" % (self.agent_id, self.finals,
                                                                       timeout))
            if self.finals < n:
                raise RuntimeError("agent %s: trace ended: %s" % (self.agent_id, self.error))


def run(binary, args):
    c = H.Cluster(nodes=1, capacity=max(64, args.agents), binary=binary, name="bench-turns",
                  store_url=args.store)
    c.start()
    try:
        pid = c.hub_proc.pid
        text = "final " + ("x" * (args.bytes - 6))
        if args.tool_steps:
            text = "echo a; " * args.tool_steps + text
        tools = ("echo",) if args.tool_steps else ()
        ids, fols = [], []
        for _ in range(args.agents):
            r = c.spawn("final hello", tools=tools)
            ids.append(r.agent_id)
            f = Follower(c, r.agent_id)
            f.start()
            fols.append(f)
        for f in fols:
            f.wait(1)
        print("%s: %d agents x %d turns, %d-byte messages, %d tool steps per turn, store %s" % (
            binary, args.agents, args.turns, args.bytes, args.tool_steps,
            args.store or "sqlite (temp file)"))
        print("  %-13s %12s %14s %9s" % ("turns", "ms/turn", "hub cpu ms/turn", "hub RSS"))
        t0, cpu0 = time.monotonic(), hub_cpu_s(pid)
        for k in range(1, args.turns + 1):
            for i in ids:
                c.send(i, text)
            for f in fols:
                f.wait(k + 1)
            if k % args.window == 0:
                t1, cpu1 = time.monotonic(), hub_cpu_s(pid)
                n = args.window * args.agents
                if k <= args.window or k % args.every == 0 or k == args.turns:
                    print("  %5d-%-7d %12.3f %14.3f %6.0f MB" % (
                        k - args.window + 1, k, (t1 - t0) * 1000 / n, (cpu1 - cpu0) * 1000 / n,
                        hub_rss_mb(pid)), flush=True)
                t0, cpu0 = t1, cpu1
    finally:
        c.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", action="append", required=True, help="an agentry binary")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=4096, help="each message's size")
    ap.add_argument("--window", type=int, default=10, help="turns per line")
    ap.add_argument("--every", type=int, default=100, help="print every N turns")
    ap.add_argument("--tool-steps", type=int, default=0, help="echo tool calls per turn")
    ap.add_argument("--store", default=None, help="a store URL (default: a temp SQLite file)")
    args = ap.parse_args()
    for b in args.binary:
        run(os.path.abspath(b), args)


if __name__ == "__main__":
    main()
