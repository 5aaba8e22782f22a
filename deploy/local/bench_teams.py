#!/usr/bin/python3
"""deploy/local/bench_teams.py - a fan-out of sub-agents (issue 16, point 6).

Starts the local fake model server (tests/fake_llm.py) and a hub with three nodes, then runs one
agent_0 whose model ("openai/team:N:worker") asks for N spawn_agent calls in one reply, then one
wait_agent on all N children, then answers with their answers combined. The children use the
"mock" model (no HTTP: each answers its input at once), so what is measured is the hub's and the
nodes' own work per child: a spawn through the parent's node, a child's turn on one of three
nodes, its CHILD event in the parent's log, and its share of the wait's result.

Reported: the time from the parent's Spawn to its FINAL (all answers in), the time its N spawns
took, and CPU (utime + stime from /proc/<pid>/stat) of the hub and of the three nodes, per
child.

    /usr/bin/python3 deploy/local/bench_teams.py --binary build/agentry [--children 1000]
        [--child-model openai/slowecho:3000]   # children that answer after 3 s: the parent waits
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness as H  # noqa: E402

FAKE = os.path.join(ROOT, "tests", "fake_llm.py")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def start_fake(d):
    port_file = os.path.join(d, "fake.port")
    log = open(os.path.join(d, "fake.log"), "w")
    p = subprocess.Popen(["/usr/bin/python3", FAKE, "--port-file", port_file], stdout=log,
                         stderr=subprocess.STDOUT)
    H.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10,
               what="the fake model server")
    return p, "http://127.0.0.1:%s" % open(port_file).read().strip()


def run(c, n, child_model):
    T = c.s.types
    worker = T.AgentSpec(model=child_model, name="worker")
    spec = T.AgentSpec(model="openai/team:%d:worker" % n, name="agent0",
                       tools=["spawn_agent", "wait_agent"], templates={"worker": worker},
                       limits=T.Limits(max_children=max(n, 1000)))
    hub_pid = c.hub_proc.pid
    node_pids = [p.pid for p in c.nodes.values()]
    cpu0 = [cpu_seconds(hub_pid)] + [cpu_seconds(p) for p in node_pids]
    t0 = time.monotonic()
    parent = c.hub.Spawn(c.s.hub.SpawnRequest(spec=spec, input="go"), timeout=30).agent_id
    end = c.wait_turn_end(parent, timeout=600)
    t1 = time.monotonic()
    evs = c.trace(parent)
    spawns = [e.time_unix_nano for e in evs if e.kind == T.EVENT_KIND_TOOL_RESULT
              and H.payload(e)["name"] == "spawn_agent"]
    first_reply = [e.time_unix_nano for e in evs if e.kind == T.EVENT_KIND_MODEL_REPLY][0]
    waited = any(e.kind == T.EVENT_KIND_WAITING for e in evs)
    cpu1 = [cpu_seconds(hub_pid)] + [cpu_seconds(p) for p in node_pids]
    out = H.payload(end).get("output", "")
    answers = out[len("team: "):].split(" | ") if out.startswith("team: ") else []
    kids = c.hub.ListAgents(c.s.hub.ListAgentsRequest(parent_id=parent, page_size=1000),
                            timeout=30).agents
    per_node = {}
    for k in kids:
        per_node[k.node_id] = per_node.get(k.node_id, 0) + 1
    return {
        "children": n,
        "answers": len(answers),
        "final_kind": H.kind_name(end.kind),
        "seconds_to_all_answers": round(t1 - t0, 3),
        "seconds_spawning": round((max(spawns) - first_reply) / 1e9, 3) if spawns else None,
        "parent_waited": waited,
        "hub_cpu_ms_per_child": round((cpu1[0] - cpu0[0]) * 1000 / n, 3),
        "nodes_cpu_ms_per_child": round(sum(cpu1[1:]) * 1000 / n - sum(cpu0[1:]) * 1000 / n, 3),
        "children_per_node": per_node,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "agentry"))
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--child-model", default="mock",
                    help="the children's model; e.g. openai/slowecho:3000 makes the parent wait")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="agentry-bench-teams-")
    fake, base = start_fake(d)
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    c = H.Cluster(nodes=3, capacity=args.capacity, binary=os.path.abspath(args.binary),
                  name="bench-teams", node_args=("--model-opt", "openai.base_url=%s/v1" % base))
    try:
        c.start()
        print(json.dumps(run(c, args.children, args.child_model), indent=2))
    finally:
        try:
            c.stop()
        finally:
            fake.terminate()
            fake.wait(10)


if __name__ == "__main__":
    main()
