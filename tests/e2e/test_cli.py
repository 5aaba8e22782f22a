"""tests/e2e/test_cli.py - the `agentry` CLI as a subprocess against a real hub and node.

Output formats (ids, --json, --jsonl), exit codes (0 ok, 1 failure, 2 usage) with exactly one
stderr line for errors, --help everywhere, and the agent-hub / agent-node symlinks.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

HELLO_KINDS = ["spawned", "input", "assigned", "model_request", "model_reply", "tool_call",
               "tool_result", "model_request", "model_reply", "final"]
ID_RE = re.compile(r"^[0-9a-z]{16}$")
UNKNOWN_ID = "01m0000000000000"
SUBCOMMANDS = [["hub"], ["node", "join"], ["spawn"], ["send"], ["invoke"], ["trace"], ["ps"],
               ["get"], ["kill"], ["bench"], ["version"]]


class CliTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def cli(self, *args, hub=True, **kw):
        argv = list(args) + (["--hub", self.c.addr] if hub else [])
        return H.run_cli(argv, **kw)

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, "agentry %s: %s" % (" ".join(args), r.stderr))
        self.assertEqual(r.stderr, "")
        return r.stdout

    def one_error_line(self, r, rc, pattern):
        lines = r.stderr.splitlines()
        self.assertEqual(r.returncode, rc, r.stderr)
        self.assertEqual(len(lines), 1, "exactly one stderr line, got %r" % r.stderr)
        self.assertRegex(lines[0], pattern)
        self.assertEqual(r.stdout, "")
        return lines[0]

    def spawn_hello(self, text="hello"):
        aid = self.ok("spawn", "--tool", "echo", text).strip()
        self.assertRegex(aid, ID_RE)
        self.c.wait_turn_end(aid)
        return aid

    # --- commands that work ------------------------------------------------------------------

    def test_spawn_prints_an_id(self):
        out = self.ok("spawn", "--name", "cli", "--tool", "echo", "--label", "team=core",
                      "say", "hi")
        self.assertEqual(out.count("\n"), 1)
        aid = out.strip()
        self.assertRegex(aid, ID_RE)
        end = self.c.wait_turn_end(aid)
        self.assertEqual(H.payload(end)["output"], "say hi", "INPUT words joined by spaces")
        a = self.c.get(aid)
        self.assertEqual((a.spec.name, list(a.spec.tools), dict(a.spec.labels)),
                         ("cli", ["echo"], {"team": "core"}))

    def test_spawn_json_and_request_id(self):
        j1 = json.loads(self.ok("spawn", "--json", "--request-id", "cli-rid", "final x"))
        self.assertRegex(j1["agent_id"], ID_RE)
        self.assertEqual((j1["input_seq"], j1["existing"]), (2, False))
        self.assertIn(j1["state"], ("running", "pending"))
        j2 = json.loads(self.ok("spawn", "--json", "--request-id", "cli-rid", "final x"))
        self.assertEqual((j2["agent_id"], j2["existing"]), (j1["agent_id"], True))
        idle = json.loads(self.ok("spawn", "--json"))
        self.assertEqual((idle["state"], idle["input_seq"]), ("idle", 0))

    def test_trace_jsonl(self):
        aid = self.spawn_hello()
        lines = self.ok("trace", "--jsonl", aid).splitlines()
        objs = [json.loads(line) for line in lines]
        self.assertEqual([o["seq"] for o in objs], list(range(1, 11)))
        self.assertEqual([o["kind"] for o in objs], HELLO_KINDS)
        for o in objs:
            self.assertEqual(o["agent_id"], aid)
            self.assertIsInstance(o["payload"], dict)
        self.assertEqual(objs[-1]["payload"]["output"], "hello")
        self.assertEqual(objs[-1]["node_id"], "n1")
        tail = [json.loads(x) for x in self.ok("trace", "--from", "5", "--json", aid).splitlines()]
        self.assertEqual(tail, objs[4:])
        human = self.ok("trace", aid).splitlines()
        self.assertEqual(len(human), 10)
        self.assertTrue(human[0].startswith("#1 ") and "spawned" in human[0], human[0])
        self.assertIn("final", human[-1])

    def test_trace_follow_then_ctrl_c(self):
        aid = self.ok("spawn").strip()
        p = subprocess.Popen([H.AGENTRY_BIN, "trace", "-f", "--jsonl", "--hub", self.c.addr, aid],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = json.loads(p.stdout.readline())
            self.assertEqual((first["seq"], first["kind"]), (1, "spawned"))
            seq = json.loads(self.ok("send", "-o", "json", aid, "echo a;", "final b"))["seq"]
            self.assertEqual(seq, 2)
            got = [first]
            while got[-1]["kind"] != "final":
                line = p.stdout.readline()
                if not line:
                    self.fail("trace -f ended early: %s" % p.stderr.read())
                got.append(json.loads(line))
            self.assertEqual([o["seq"] for o in got], list(range(1, len(got) + 1)))
            self.assertEqual(got[-1]["payload"]["output"], "b")
            p.send_signal(signal.SIGINT)
            rest, err = p.communicate(timeout=10)
            rc = p.returncode
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rest, "", "nothing after the final event")
        self.assertEqual(rc, 130, err)
        self.assertIsNone(H.sanitizer_report(err), err)

    def test_invoke(self):
        self.assertEqual(self.ok("invoke", "--tool", "echo", "hi", "cli"), "hi cli\n")
        j = json.loads(self.ok("invoke", "--json", "final structured"))
        self.assertEqual((j["state"], j["output"], j["error"]), ("idle", "structured", ""))
        self.assertEqual(j["usage"]["model_calls"], 1)
        self.assertRegex(j["agent_id"], ID_RE)
        line = self.one_error_line(self.cli("invoke", "fail boom"), 1, r"^error: .*boom")
        self.assertIn("failed", line)
        self.one_error_line(self.cli("invoke", "--max-iterations", "2", "loop"), 1,
                            r"^error: .*yield")

    def test_get_and_ps_json(self):
        aid = self.spawn_hello("for get")
        g = json.loads(self.ok("get", "--json", aid))
        self.assertEqual((g["id"], g["state"], g["last_output"], g["node_id"], g["last_seq"]),
                         (aid, "idle", "for get", "n1", 10))
        self.assertEqual(g["spec"]["tools"], ["echo"])
        self.assertEqual(g["usage"]["model_calls"], 2)
        human = self.ok("get", aid)
        self.assertIn(aid, human)
        self.assertIn("idle", human)

        ps = json.loads(self.ok("ps", "--json", "--all"))
        ids = [a["id"] for a in ps["agents"]]
        self.assertIn(aid, ids)
        self.assertEqual(ids, [a.id for a in self.c.list_all()], "same agents, same order")
        idle = json.loads(self.ok("ps", "--json", "--all", "--state", "idle"))
        self.assertTrue(idle["agents"])
        self.assertEqual({a["state"] for a in idle["agents"]}, {"idle"})
        if len(ids) > 1:
            page = json.loads(self.ok("ps", "--json", "--limit", "1"))
            self.assertEqual(len(page["agents"]), 1)
            self.assertTrue(page["next_page_token"])
        table = self.ok("ps", "--all").splitlines()
        self.assertEqual(table[0].split(), ["NAMESPACE", "ID", "NAME", "STATE", "NODE", "SEQ", "AGE"])
        self.assertEqual(len(table), len(ids) + 1)

    def test_send_and_kill(self):
        aid = self.spawn_hello("first")
        self.assertRegex(self.ok("send", aid, "final", "second"),
                         r"^agent %s input stored at seq 11 \((running|pending)\)\n$" % aid)
        seq = 11
        end = self.c.wait_turn_end(aid, after_seq=seq)
        self.assertEqual(H.payload(end)["output"], "second")
        k = json.loads(self.ok("kill", "--json", "--reason", "cli test", aid))
        self.assertEqual(k["seq"], self.c.get(aid).last_seq)
        self.assertEqual(H.payload(self.c.trace(aid)[-1])["reason"], "cli test")
        # Killing again is idempotent (hub.proto): it answers with the first KILLED event.
        again = json.loads(self.ok("kill", "--json", aid))
        self.assertEqual(again["seq"], k["seq"])
        self.one_error_line(self.cli("send", aid, "more"), 1, r"^error: .*killed")

    def test_hub_from_environment(self):
        aid = self.spawn_hello("env")
        r = H.run_cli(["get", "--json", aid], env={"AGENTRY_HUB": self.c.addr})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["id"], aid)

    def test_version(self):
        # The revision is the build's (cmd/agentry/version.cmake; tests/package/test_version.sh
        # checks how it is found): a short hash, maybe -dirty, or unknown outside git.
        text = self.ok("version", hub=False)
        m = re.fullmatch(r"agentry 0\.1\.0 \(git ([0-9a-f]{4,40}(?:-dirty)?|unknown)\)\n", text)
        self.assertIsNotNone(m, text)
        v = json.loads(self.ok("version", "--json", hub=False))
        self.assertEqual(v, {"version": "0.1.0", "git": m.group(1)})
        ping = self.c.hub.Ping(self.s.hub.PingRequest(), timeout=5)
        self.assertEqual(v["version"], ping.version)
        self.assertEqual(self.ok("--version", hub=False), text)
        # A node registers its version with the revision, as semver build metadata.
        nodes = json.loads(self.ok("nodes", "--json"))["nodes"]
        want = "0.1.0" if v["git"] == "unknown" else "0.1.0+" + v["git"]
        self.assertEqual([n["version"] for n in nodes], [want] * len(nodes))

    def test_bench(self):
        j = json.loads(self.ok("bench", "--rpc", "ping", "--calls", "200", "--concurrency", "8",
                               "--json", timeout=60))
        self.assertEqual((j["calls"], j["errors"]), (200, 0))
        self.assertGreater(j["calls_per_s"], 0)
        for rpc in ("spawn", "send", "invoke"):
            j = json.loads(self.ok("bench", "--rpc", rpc, "--calls", "20", "--concurrency", "4",
                                   "--json", timeout=60))
            self.assertEqual((j["calls"], j["errors"]), (20, 0), rpc)

    # --- errors ------------------------------------------------------------------------------

    def test_bad_flags_exit_2_with_one_line(self):
        cases = [
            ["spawn", "--bogus"],
            ["spawn", "--max-iterations", "abc", "x"],
            ["spawn", "--max-iterations"],
            ["send", "only-an-id"],
            ["get"],
            ["get", "a", "b"],
            ["kill"],
            ["trace", "--from", "x", UNKNOWN_ID],
            ["ps", "--state", "nope"],
            ["ps", "--limit", "0"],
            ["invoke"],
            ["bench"],
            ["bench", "--rpc", "nope"],
            ["version", "extra"],
            ["hub", "--bogus"],
            ["hub", "--max-message-bytes", "-1"],
            ["node", "join", "--capacity", "0"],
            ["node", "bogus"],
            ["bogus"],
        ]
        for argv in cases:
            with self.subTest(argv=argv):
                r = H.run_cli(argv + ["--hub", self.c.addr] if argv[0] not in ("hub", "node",
                                                                               "bogus") else argv,
                              timeout=20)
                self.one_error_line(r, 2, r"^error: ")

    def test_unknown_agent_exit_1(self):
        for tmpl in (["get", "{id}"], ["send", "{id}", "x"], ["kill", "{id}"], ["trace", "{id}"],
                     ["trace", "-f", "{id}"]):
            for agent_id in (UNKNOWN_ID, "nope"):
                with self.subTest(argv=tmpl, agent_id=agent_id):
                    r = self.cli(*[a.format(id=agent_id) for a in tmpl])
                    self.one_error_line(r, 1, r"^error: (no agent|.*not found)")

    def test_unreachable_hub_exit_1(self):
        port = H.free_port()  # nothing listens there
        addr = "127.0.0.1:%d" % port
        for argv in (["get", UNKNOWN_ID], ["ps"], ["spawn", "x"], ["invoke", "x"],
                     ["trace", UNKNOWN_ID], ["send", UNKNOWN_ID, "x"], ["kill", UNKNOWN_ID]):
            with self.subTest(argv=argv):
                r = H.run_cli(argv + ["--hub", addr, "--timeout", "5s"], timeout=30)
                line = self.one_error_line(r, 1, r"^error: ")
                self.assertIn(addr, line)
                self.assertIn("reach", line)

    # --- help and aliases ----------------------------------------------------------------------

    def test_help_on_every_subcommand(self):
        for cmd in SUBCOMMANDS + [["node"], []]:
            for flag in ("--help", "-h"):
                with self.subTest(cmd=cmd, flag=flag):
                    r = H.run_cli(cmd + [flag])
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stderr, "")
                    self.assertTrue(r.stdout.startswith("usage: agentry"), r.stdout[:80])
                    if cmd and cmd != ["node"]:
                        self.assertIn("example:", r.stdout)

    def test_symlinks(self):
        bindir = os.path.dirname(os.path.abspath(H.AGENTRY_BIN))
        hub_bin, node_bin = os.path.join(bindir, "agent-hub"), os.path.join(bindir, "agent-node")
        r = H.run_cli(["--help"], binary=hub_bin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("usage: agentry hub"), r.stdout[:60])
        r = H.run_cli(["join", "--help"], binary=node_bin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("usage: agentry node join"), r.stdout[:60])
        # And they run: a hub and a node started through the aliases serve an Invoke.
        d = tempfile.mkdtemp(prefix="agentry-e2e-alias-")
        port = H.free_port()
        addr = "127.0.0.1:%d" % port
        hub = H.Proc("agent-hub", [hub_bin, "--listen", addr, "--store",
                                   "sqlite:" + os.path.join(d, "hub.db")],
                     os.path.join(d, "hub.log")).start()
        node = None
        try:
            H.wait_for(lambda: "event=hub.started" in hub.text() or not hub.running(), 15,
                       what="agent-hub to start")
            self.assertTrue(hub.running(), hub.tail())
            node = H.Proc("agent-node", [node_bin, "join", "--hub", addr, "--node-id", "alias",
                                         "--capacity", "1"], os.path.join(d, "node.log")).start()
            H.wait_for(lambda: "event=node.registered node=alias " in hub.text(), 15,
                       what="agent-node to register")
            r = H.run_cli(["invoke", "--hub", addr, "--tool", "echo", "via", "aliases"])
            self.assertEqual((r.returncode, r.stdout), (0, "via aliases\n"), r.stderr)
        finally:
            errs = [p.stop() for p in (node, hub) if p is not None]
            for p in (node, hub):
                if p is not None:
                    p.kill_if_running()
        self.assertEqual([e for e in errs if e], [])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    H.main()
