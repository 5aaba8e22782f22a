#!/usr/bin/python3
"""deploy/local/bench_memory.py - memory_search latency over many vectors of one agent, through
the hub.

What is measured: the round trip of a memory_search hub tool call as a node makes it
(NodeService.Connect: HubToolCall -> HubToolResult) from a Python node stand-in on loopback:
the hub's dispatch (agent and epoch check), the exact cosine scan of the agent's vectors
(hub/memory_index.c, on its search pool), the store read of the k values and the reply. The
embedding is not included (the call carries its "vector", as the node adds it); nor is a model.

How: a hub on a SQLite store in a temp directory; a stand-in node registers, takes the turn of
one agent and holds it. The hub is stopped, N entries with random vectors (float32) are written
to its store with Python's sqlite3 (as memory_put would have: the memory and memory_usage
tables), and the hub started again; the stand-in registers again and takes the turn again. The
first search loads the vectors (reported as "cold"); then --searches calls, one at a time, give
p50/p99/max. Each --dims value runs in its own hub.

    /usr/bin/python3 deploy/local/bench_memory.py [--entries 100000] [--dims 256,1536]
        [--searches 200] [--k 5] [--bin build/agentry]

Needs the build (agentry) and Debian's python3-grpcio (run with /usr/bin/python3).
"""
import argparse
import array
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))


def pool_bytes(n):
    """n random float32s (Gaussian), as bytes: vectors are slices of it at random offsets."""
    rnd = random.Random(42)
    return array.array("f", (rnd.gauss(0.0, 1.0) for _ in range(n))).tobytes()


def load_store(path, agent_id, entries, dims):
    pool = pool_bytes(max(4 * dims, 1 << 20))
    nfloats = len(pool) // 4
    rnd = random.Random(7)
    now = time.time_ns()

    def rows():
        for i in range(entries):
            off = rnd.randrange(0, nfloats - dims) * 4
            yield (agent_id, "default", "key-%06d" % i, "value of entry %d" % i,
                   pool[off:off + dims * 4], dims, now)

    db = sqlite3.connect(path)
    db.execute("BEGIN")
    db.executemany("INSERT INTO memory(agent_id, namespace, key, value, vector, dims, updated_ns)"
                   " VALUES(?, ?, ?, ?, ?, ?, ?)", rows())
    db.execute("INSERT INTO memory_usage(agent_id, entries) VALUES(?, ?) ON CONFLICT(agent_id) "
               "DO UPDATE SET entries = entries + excluded.entries", (agent_id, entries))
    db.commit()
    db.close()
    return pool


def take_turn(H, c, node_id):
    """A stand-in node registers, offering memory_search, and waits for the agent's turn."""
    node = H.FakeNode(c)
    node.register(node_id, capacity=1, tools=("memory_search",))
    a = node.recv_kind("assign", timeout=30)
    return node, a


def search(node, s, agent_id, epoch, call_no, vec, k):
    args = json.dumps({"vector": vec, "k": k})
    call = s.node.HubToolCall(id=call_no, agent_id=agent_id, epoch=epoch,
                              call_id="call_%d" % call_no, name="memory_search", arguments=args)
    t0 = time.perf_counter()
    node.send(hub_tool=call)
    while True:
        m = node.recv(timeout=120)
        if m is None:
            raise SystemExit("the hub ended the stream: %s %s" % (node.code, node.details))
        if m.WhichOneof("msg") == "hub_tool_result" and m.hub_tool_result.id == call_no:
            dt = time.perf_counter() - t0
            r = m.hub_tool_result
            if r.is_error:
                raise SystemExit("memory_search failed: %s" % r.output)
            return dt, json.loads(r.output)


def run(H, args, dims):
    c = H.Cluster(nodes=0, hub_args=("--heartbeat", "60s"), name="bench-memory",
                  binary=args.bin)
    c.start()
    try:
        spec = c.s.types.AgentSpec(tools=["memory_search"])
        agent_id = c.hub.Spawn(c.s.hub.SpawnRequest(spec=spec, input="hold"),
                               timeout=10).agent_id
        node, _ = take_turn(H, c, "bench1")
        node.cancel()
        c.stop_hub()
        t0 = time.perf_counter()
        pool = load_store(c.store, agent_id, args.entries, dims)
        load_s = time.perf_counter() - t0
        c.start_hub()
        node, a = take_turn(H, c, "bench2")
        rnd = random.Random(3)
        nfloats = len(pool) // 4

        def query():
            off = rnd.randrange(0, nfloats - dims) * 4
            return list(array.array("f", pool[off:off + dims * 4]))

        cold, out = search(node, c.s, agent_id, a.epoch, 1, query(), args.k)
        assert len(out["results"]) == args.k, out
        times = []
        for i in range(args.searches):
            dt, out = search(node, c.s, agent_id, a.epoch, i + 2, query(), args.k)
            times.append(dt * 1000)
        times.sort()
        p = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
        rss = 0
        with open("/proc/%d/status" % c.hub_proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) // 1024
        print("entries=%d dims=%d k=%d searches=%d store_write_s=%.1f cold_ms=%.1f "
              "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f mean_ms=%.2f hub_rss_mb=%d" % (
                  args.entries, dims, args.k, args.searches, load_s, cold * 1000, p(0.50),
                  p(0.99), times[-1], statistics.mean(times), rss), flush=True)
        node.cancel()
    finally:
        c.stop()
        shutil.rmtree(c.dir, True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--dims", default="256,1536")
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(SRC, "build", "agentry"))
    args = ap.parse_args()
    os.environ.setdefault("AGENTRY_SRC", SRC)
    os.environ["AGENTRY_BIN"] = os.path.abspath(args.bin)
    import harness as H
    tempfile.tempdir = tempfile.gettempdir()
    for d in args.dims.split(","):
        run(H, args, int(d))


if __name__ == "__main__":
    main()
