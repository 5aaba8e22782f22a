#!/usr/bin/python3
"""deploy/local/bench_startup.py - hub start-up time and memory against stored agents.

Writes a SQLite store of --agents agents (a real AgentSpec each, one SPAWNED event each), of which
--active are pending (they must be loaded and queued at start) and the rest idle, straight into
the database (as many hubs would have left it). Then, for each --binary in turn, on its own copy
of that file: starts `agentry hub`, and reports the time from exec until it answers Ping, the
hub's `hub.loaded` line, and its RSS then; the same again for a second start (the first one of a
newer binary also migrates the schema). The schema is created by the first binary given, so an
older one can be compared with a newer one that migrates it.

    /usr/bin/python3 deploy/local/bench_startup.py --binary OLD --binary build/agentry
"""
import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
import harness as H  # noqa: E402

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def agent_id(i):
    s = ""
    for _ in range(15):
        s = ALPHABET[i % 32] + s
        i //= 32
    return "b" + s


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(binary, store, log):
    """Starts a hub; returns it once its log says hub.started (loaded and serving), with the time
    that took from exec."""
    port = H.free_port()
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "hub", "--listen", "127.0.0.1:%d" % port, "--store",
                          "sqlite:" + store], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    while "event=hub.started" not in open(log).read():
        if p.poll() is not None:
            raise RuntimeError("hub exited: %s" % open(log).read()[-2000:])
        time.sleep(0.005)
    return p, time.monotonic() - t0


def stop(p):
    p.terminate()
    p.wait(timeout=120)


def calls(log, n):
    """What reads of agents cost on that store: a page of ListAgents by state (an index range)
    and a GetAgent of an agent not in memory (loaded from the store)."""
    port = re.search(r"listen=127\.0\.0\.1:(\d+)", open(log).read()).group(1)
    s = H.stubs()
    ch = H.grpc.insecure_channel("127.0.0.1:" + port)
    H.grpc.channel_ready_future(ch).result(timeout=10)
    stub = s.hub_grpc.AgentHubStub(ch)
    for state, name in ((s.types.AGENT_STATE_PENDING, "pending"), (s.types.AGENT_STATE_IDLE,
                                                                  "idle")):
        t0 = time.monotonic()
        r = stub.ListAgents(s.hub.ListAgentsRequest(state=state, page_size=100), timeout=60)
        print("    ListAgents(state=%s, page_size=100): %d agents in %.1f ms" % (
            name, len(r.agents), (time.monotonic() - t0) * 1000))
    t0 = time.monotonic()
    stub.GetAgent(s.hub.GetAgentRequest(agent_id=agent_id(n // 2 + 1)), timeout=60)
    print("    GetAgent of an agent not in memory: %.1f ms" % ((time.monotonic() - t0) * 1000))
    ch.close()


def make_schema(binary, store, tmp):
    p, _ = start(binary, store, os.path.join(tmp, "schema.log"))
    stop(p)


def fill(store, n, active):
    spec = H.stubs().types.AgentSpec(name="bench", model="mock", max_iterations=10,
                                     tools=["echo"]).SerializeToString()
    db = sqlite3.connect(store)
    cols = [r[1] for r in db.execute("PRAGMA table_info(agents)")]
    base = 1_700_000_000_000_000_000
    with db:
        for start_i in range(0, n, 100_000):
            rows, evs = [], []
            for i in range(start_i, min(n, start_i + 100_000)):
                aid = agent_id(i)
                state = 1 if i % (n // active) == 0 else 3  # pending : idle
                row = {"id": aid, "request_id": None, "spec": spec, "state": state, "node_id": "",
                       "epoch": 0, "checkpoint": None, "last_output": "", "last_error": "",
                       "created_ns": base + i, "updated_ns": base + i}
                rows.append(tuple(row.get(c, 0) for c in cols))
                evs.append((aid, 1, 1, "{}", "", base + i))
            db.executemany("INSERT INTO agents(%s) VALUES(%s)" % (
                ",".join(cols), ",".join("?" * len(cols))), rows)
            db.executemany("INSERT INTO events(agent_id, seq, kind, payload, node_id, time_ns) "
                           "VALUES(?, ?, ?, ?, ?, ?)", evs)
    db.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", action="append", required=True)
    ap.add_argument("--agents", type=int, default=1_000_000)
    ap.add_argument("--active", type=int, default=1000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="agentry-bench-startup-")
    try:
        base = os.path.join(tmp, "base.db")
        make_schema(os.path.abspath(args.binary[0]), base, tmp)
        t0 = time.monotonic()
        fill(base, args.agents, args.active)
        print("store: %d agents (%d pending), %.0f MB, written in %.1f s" % (
            args.agents, args.active, os.path.getsize(base) / 1e6, time.monotonic() - t0))
        for b in args.binary:
            b = os.path.abspath(b)
            store = os.path.join(tmp, "copy.db")
            shutil.copy(base, store)
            for run in (1, 2):
                log = os.path.join(tmp, "hub.%d.log" % run)
                p, took = start(b, store, log)
                rss = rss_mb(p.pid)
                m = re.search(r"event=hub\.loaded .*", open(log).read())
                print("%s start %d: serving after %.2f s, RSS %.0f MB, %s" % (
                    b, run, took, rss, m.group(0) if m else "(no hub.loaded line)"), flush=True)
                try:
                    if run == 2:
                        calls(log, args.agents)
                finally:
                    stop(p)
            os.unlink(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
