"""tests/e2e/test_python_client.py - "a client in another language".

A user's Python program, run in a fresh interpreter against a real hub and node: it generates
its own stubs from api/*.proto with protoc, spawns an agent, follows its Trace until the final
event (resuming from its last seq if the stream breaks, as hub.proto says to) and prints what
it saw. A second user program lists agents by label selector (each form hub.proto documents:
key=value, key==value, key!=value, key, !key, several terms at once; a set-based term such as
"key in (a,b)" is not supported and answers INVALID_ARGUMENT) and kills an agent twice (the second
KillAgent answers OK with the first KILLED event's seq and already_killed, the agent stays killed
with one KILLED event). A last test checks every event payload against the keys documented in
types.proto.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

USER_PROGRAM = textwrap.dedent('''
    """What a user writes: spawn an agent and print its events until the final answer."""
    import json, os, sys, time
    import grpc
    sys.path.insert(0, sys.argv[1])          # where protoc put the generated modules
    from agentry.v1 import hub_pb2, hub_pb2_grpc, types_pb2

    addr, text = sys.argv[2], sys.argv[3]
    tls = os.environ.get("AGENTRY_TLS_DIR")  # mutual TLS: the CA and a client certificate
    if tls:
        rd = lambda n: open(os.path.join(tls, n), "rb").read()
        creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("admin.key"), rd("admin.crt"))
    with (grpc.secure_channel(addr, creds) if tls else grpc.insecure_channel(addr)) as channel:
        hub = hub_pb2_grpc.AgentHubStub(channel)
        version = hub.Ping(hub_pb2.PingRequest(payload=b"hi"), timeout=5).version
        spawned = hub.Spawn(hub_pb2.SpawnRequest(
            spec=types_pb2.AgentSpec(name="py-user", tools=["echo"], labels={"lang": "python"}),
            input=text), timeout=5)
        events, retries, next_seq = [], 0, 1
        deadline = time.monotonic() + 30
        done = False
        while not done:
            stream = hub.Trace(hub_pb2.TraceRequest(agent_id=spawned.agent_id, from_seq=next_seq,
                                                    follow=True), timeout=30)
            try:
                for ev in stream:
                    events.append({"seq": ev.seq, "kind": types_pb2.EventKind.Name(ev.kind),
                                   "node": ev.node_id, "payload": json.loads(ev.payload)})
                    next_seq = ev.seq + 1
                    if ev.kind == types_pb2.EVENT_KIND_FINAL:
                        done = True
                        stream.cancel()
                        break
            except grpc.RpcError as e:
                # Resume from the last seq received if the hub went away for a moment.
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                retries += 1
                time.sleep(0.01)
        agent = hub.GetAgent(hub_pb2.GetAgentRequest(agent_id=spawned.agent_id), timeout=5)
        print(json.dumps({"version": version, "agent_id": spawned.agent_id, "events": events,
                          "retries": retries, "state": types_pb2.AgentState.Name(agent.state),
                          "last_output": agent.last_output, "labels": dict(agent.spec.labels)}))
''')

SELECTOR_PROGRAM = textwrap.dedent('''
    """What a user writes: find agents by their labels, and kill one, twice (a retry)."""
    import json, os, sys, time, uuid
    import grpc
    sys.path.insert(0, sys.argv[1])
    from agentry.v1 import hub_pb2, hub_pb2_grpc, types_pb2

    addr = sys.argv[2]
    tls = os.environ.get("AGENTRY_TLS_DIR")
    if tls:
        rd = lambda n: open(os.path.join(tls, n), "rb").read()
        creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("admin.key"), rd("admin.crt"))
    run = uuid.uuid4().hex[:12]  # this run's agents only, whatever else the hub holds
    with (grpc.secure_channel(addr, creds) if tls else grpc.insecure_channel(addr)) as channel:
        hub = hub_pb2_grpc.AgentHubStub(channel)
        names = {}
        for name, labels in (("gold-a", {"team": "a", "tier": "gold"}), ("plain-a", {"team": "a"}),
                             ("silver-b", {"team": "b", "tier": "silver"})):
            labels["run"] = run
            r = hub.Spawn(hub_pb2.SpawnRequest(
                spec=types_pb2.AgentSpec(name=name, labels=labels), input="final ok"), timeout=5)
            names[r.agent_id] = name

        def select(selector):
            out, token = [], ""
            while True:
                try:
                    page = hub.ListAgents(hub_pb2.ListAgentsRequest(
                        label_selector=selector, page_token=token), timeout=5)
                except grpc.RpcError as e:
                    return e.code().name
                out += [names.get(a.id, "other") for a in page.agents]
                token = page.next_page_token
                if not token:
                    return sorted(out)

        found = {s: select(s % {"run": run}) for s in (
            "run=%(run)s", "run=%(run)s,team=a", "run==%(run)s,team==b", "run=%(run)s,team!=a",
            "run=%(run)s,tier", "run=%(run)s,!tier", "run=%(run)s, tier = gold ",
            "run=%(run)s,team=c", "run=%(run)s,team in (a,b)", "run=%(run)s,=a")}

        victim = hub.Spawn(hub_pb2.SpawnRequest(spec=types_pb2.AgentSpec(name="victim"),
                                                input="sleep 60000; final late"), timeout=5)
        while hub.GetAgent(hub_pb2.GetAgentRequest(agent_id=victim.agent_id),
                           timeout=5).state != types_pb2.AGENT_STATE_RUNNING:
            time.sleep(0.02)
        kills = []
        for reason in ("first", "retried"):
            k = hub.KillAgent(hub_pb2.KillAgentRequest(agent_id=victim.agent_id, reason=reason),
                              timeout=5)
            kills.append({"seq": k.seq, "already_killed": k.already_killed})
        agent = hub.GetAgent(hub_pb2.GetAgentRequest(agent_id=victim.agent_id), timeout=5)
        killed = [json.loads(ev.payload) | {"seq": ev.seq} for ev in hub.Trace(
            hub_pb2.TraceRequest(agent_id=victim.agent_id), timeout=5)
            if ev.kind == types_pb2.EVENT_KIND_KILLED]
        print(json.dumps({"found": found, "kills": kills, "killed_events": killed,
                          "state": types_pb2.AgentState.Name(agent.state)}))
''')

# Payload keys per kind, from the comments in api/agentry/v1/types.proto.
PAYLOAD_KEYS = {
    "spawned": {"name", "model", "system_prompt", "tools", "max_iterations", "labels"},
    "input": {"text"},
    "assigned": {"node", "epoch"},
    "model_request": {"model", "iteration", "messages"},
    "model_reply": {"content", "tool_calls", "usage"},
    "tool_call": {"id", "name", "arguments"},
    "tool_result": {"id", "name", "output", "is_error"},
    "final": {"output", "iterations"},
    "yield": {"reason", "iterations"},
    "error": {"message"},
    "killed": {"reason"},
    "interrupted": {"node", "epoch", "reason"},
}


class PythonClientTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def run_program(self, program, *args):
        """Generates the stubs as a user would, runs program with (stubs dir, hub address,
        *args) in a fresh interpreter, and returns what it printed, parsed as JSON."""
        with tempfile.TemporaryDirectory(prefix="agentry-user-") as d:
            # protoc -Iapi --python_out=gen --grpc_out=gen --plugin=protoc-gen-grpc=... *.proto
            stubs = os.path.join(d, "gen")
            os.makedirs(stubs)
            api = os.path.join(H.AGENTRY_SRC, "api")
            protos = sorted(os.path.join("agentry", "v1", f) for f in
                            os.listdir(os.path.join(api, "agentry", "v1")) if f.endswith(".proto"))
            g = subprocess.run(["protoc", "-I" + api, "--python_out=" + stubs,
                                "--grpc_out=" + stubs, "--plugin=protoc-gen-grpc=" +
                                shutil.which("grpc_python_plugin")] + protos,
                               capture_output=True, text=True)
            self.assertEqual(g.returncode, 0, g.stderr)
            for pkg in ("agentry", os.path.join("agentry", "v1")):
                open(os.path.join(stubs, pkg, "__init__.py"), "w").close()
            for mod in ("types_pb2", "hub_pb2", "hub_pb2_grpc", "node_pb2", "node_pb2_grpc"):
                self.assertTrue(os.path.exists(os.path.join(stubs, "agentry", "v1", mod + ".py")))
            prog = os.path.join(d, "client.py")
            with open(prog, "w") as f:
                f.write(program)
            r = subprocess.run(["/usr/bin/python3", prog, stubs, self.c.addr] + list(args),
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_user_program_follows_trace_to_final(self):
        out = self.run_program(USER_PROGRAM, "hello from python")
        self.assertEqual(out["version"], "0.1.0")
        evs = out["events"]
        self.assertEqual([e["seq"] for e in evs], list(range(1, len(evs) + 1)))
        self.assertEqual([e["kind"][len("EVENT_KIND_"):].lower() for e in evs],
                         ["spawned", "input", "assigned", "model_request", "model_reply",
                          "tool_call", "tool_result", "model_request", "model_reply", "final"])
        self.assertEqual(evs[-1]["payload"]["output"], "hello from python")
        self.assertEqual(evs[-1]["node"], "n1")
        self.assertEqual(evs[0]["payload"]["labels"], {"lang": "python"})
        self.assertEqual((out["state"], out["last_output"]),
                         ("AGENT_STATE_IDLE", "hello from python"))
        self.assertEqual(out["labels"], {"lang": "python"})
        self.assertEqual(out["retries"], 0, "the stream never broke")

    def test_user_program_selects_by_labels_and_kills_twice(self):
        out = self.run_program(SELECTOR_PROGRAM)
        found = {k.split(",", 1)[1] if "," in k else "": v for k, v in out["found"].items()}
        self.assertEqual(found, {
            "": ["gold-a", "plain-a", "silver-b"],
            "team=a": ["gold-a", "plain-a"],
            "team==b": ["silver-b"],
            "team!=a": ["silver-b"],
            "tier": ["gold-a", "silver-b"],
            "!tier": ["plain-a"],
            " tier = gold ": ["gold-a"],
            "team=c": [],
            "team in (a,b)": "INVALID_ARGUMENT",
            "=a": "INVALID_ARGUMENT",
        })
        first, again = out["kills"]
        self.assertEqual(first["already_killed"], False)
        self.assertEqual(again, {"seq": first["seq"], "already_killed": True})
        self.assertEqual(out["state"], "AGENT_STATE_KILLED")
        self.assertEqual([(e["seq"], e["reason"]) for e in out["killed_events"]],
                         [(first["seq"], "first")])

    def test_every_payload_has_the_documented_keys(self):
        c, T = self.c, self.T
        seen = {}
        r = c.spawn("hello")
        c.wait_turn_end(r.agent_id)
        y = c.spawn("loop", max_iterations=1)
        c.wait_turn_end(y.agent_id)
        e = c.spawn("fail nope")
        c.wait_turn_end(e.agent_id)
        k = c.spawn("sleep 5000; final x")
        c.wait_kind(k.agent_id, T.EVENT_KIND_MODEL_REQUEST)
        c.kill(k.agent_id, reason="contract")
        for aid in (r.agent_id, y.agent_id, e.agent_id, k.agent_id):
            for ev in c.trace(aid):
                p = H.payload(ev)
                self.assertIsInstance(p, dict)
                kind = H.kind_name(ev.kind)
                seen[kind] = True
                self.assertTrue(PAYLOAD_KEYS[kind] <= set(p), "%s payload %r lacks %s" % (
                    kind, p, PAYLOAD_KEYS[kind] - set(p)))
                if kind == "model_reply":
                    self.assertTrue({"input_tokens", "output_tokens"} <= set(p["usage"]))
                    for tc in p["tool_calls"]:
                        self.assertEqual(set(tc), {"id", "name", "arguments"})
                        json.loads(tc["arguments"])
        self.assertEqual(set(seen), set(PAYLOAD_KEYS) - {"interrupted"})


if __name__ == "__main__":
    H.main()
