"""tests/e2e/test_cli_output.py - the CLI's output conventions (issue 19, point 3).

-o table|wide|json|yaml|jsonl on the listing and showing commands (json on one line, yaml that a
YAML reader loads with the same values, jsonl one object per line, wide with more columns);
send and kill say what happened; empty lists say so on stderr and print an empty list in json;
trace shows the date of an event that is not from today; colour only on a terminal and never
with NO_COLOR (a pty gives the terminal); ps --watch; -l on nodes; 'agentry help CMD'; '-' reads
INPUT and --spec from stdin. A real hub and node serve most tests; a fake hub in this process
serves the answers a real one cannot be made to give (an event from three days ago).
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fakehub import FakeHub  # noqa: E402

try:
    import yaml
except ImportError:  # python3-yaml is a test package (deploy/deps.sh); without it, no YAML checks
    yaml = None

AID = "01m0000000000042"
ESC = "\x1b["


def run_pty(argv, env=None, timeout=20):
    """Runs the CLI with stdout (and stderr) on a pseudo-terminal; returns (rc, output)."""
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    master, slave = pty.openpty()
    p = subprocess.Popen([H.AGENTRY_BIN] + argv, stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave, env=e)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(timeout=10), out.decode(errors="replace")


class CliOutputTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def cli(self, *args, **kw):
        return H.run_cli(list(args) + ["--hub", self.c.addr], **kw)

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, "agentry %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def spawn_done(self, text="hello", label="app=demo"):
        aid = self.ok("spawn", "--tool", "echo", "--label", label, text).strip()
        self.c.wait_turn_end(aid)
        return aid

    def assert_one_json_line(self, out):
        self.assertEqual(out.count("\n"), 1, "one line: %r" % out[:200])
        self.assertNotIn("\t", out)
        return json.loads(out)

    # --- formats -------------------------------------------------------------------------------

    def test_ps_formats_parse(self):
        aid = self.spawn_done()
        j = self.assert_one_json_line(self.ok("ps", "--all", "-o", "json"))
        self.assertIn(aid, [a["id"] for a in j["agents"]])
        self.assertEqual(json.loads(self.ok("ps", "--all", "--json")), j, "--json is -o json")
        lines = self.ok("ps", "--all", "-o", "jsonl").splitlines()
        self.assertEqual([json.loads(x)["id"] for x in lines], [a["id"] for a in j["agents"]])
        wide = self.ok("ps", "--all", "-o", "wide").splitlines()
        self.assertEqual(wide[0].split(), ["NAMESPACE", "ID", "NAME", "STATE", "NODE", "SEQ",
                                           "AGE", "MODEL", "PARENT", "LABELS", "UPDATED"])
        row = [x for x in wide if aid in x][0].split()
        self.assertEqual((row[7], row[9]), ("mock", "app=demo"))
        if yaml is None:
            self.skipTest("python3-yaml is not installed: no YAML checks")
        y = yaml.safe_load(self.ok("ps", "--all", "-o", "yaml"))
        self.assertEqual(y, j, "the YAML reads back as the same values as the JSON")

    def test_get_nodes_trace_formats(self):
        aid = self.spawn_done("for get")
        g = self.assert_one_json_line(self.ok("get", "-o", "json", aid))
        self.assertEqual((g["id"], g["last_output"]), (aid, "for get"))
        n = self.assert_one_json_line(self.ok("nodes", "-o", "json"))
        self.assertEqual([x["node_id"] for x in n["nodes"]], ["n1"])
        self.assertEqual(json.loads(self.ok("nodes", "-o", "jsonl"))["node_id"], "n1")
        self.assertIn("ADDRESS", self.ok("nodes", "-o", "wide").splitlines()[0].split())
        events = [json.loads(x) for x in self.ok("trace", "-o", "jsonl", aid).splitlines()]
        self.assertEqual(events[-1]["kind"], "final")
        self.assertEqual([json.loads(x) for x in self.ok("trace", "-o", "json", aid).splitlines()],
                         events, "a trace is a stream: -o json is one event per line too")
        if yaml is None:
            self.skipTest("python3-yaml is not installed: no YAML checks")
        self.assertEqual(yaml.safe_load(self.ok("get", "-o", "yaml", aid)), g)
        self.assertEqual(yaml.safe_load(self.ok("nodes", "-o", "yaml")), n)
        self.assertEqual(list(yaml.safe_load_all(self.ok("trace", "-o", "yaml", aid))), events)

    def test_bad_format_is_a_usage_error(self):
        for argv in (["ps", "-o", "xml"], ["get", "-o", "", AID], ["nodes", "--color", "maybe"]):
            with self.subTest(argv=argv):
                r = self.cli(*argv)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertRegex(r.stderr, r"^error: invalid value '.*' for --(output|color)")

    # --- send and kill -------------------------------------------------------------------------

    def test_send_and_kill_say_what_happened(self):
        aid = self.spawn_done()
        out = self.ok("send", aid, "final", "again")
        self.assertRegex(out, r"^agent %s input stored at seq 11 \((running|pending)\)\n$" % aid)
        self.c.wait_turn_end(aid, after_seq=11)
        j = self.assert_one_json_line(self.ok("send", "-o", "json", aid, "final", "more"))
        self.assertEqual((j["agent_id"], j["seq"]), (aid, 16))
        self.c.wait_turn_end(aid, after_seq=16)
        self.assertRegex(self.ok("kill", aid),
                         r"^agent %s killed at seq \d+ \(was idle\)\n$" % aid)
        self.assertRegex(self.ok("kill", aid),
                         r"^agent %s was already killed \(at seq \d+\); nothing changed\n$" % aid)
        k = self.assert_one_json_line(self.ok("kill", "-o", "json", aid))
        self.assertEqual((k["agent_id"], k["already_killed"]), (aid, True))

    # --- empty lists ---------------------------------------------------------------------------

    def test_empty_lists_say_so(self):
        hub = FakeHub(ListAgents=lambda req, ctx: self.s.hub.ListAgentsResponse(),
                      ListNodes=lambda req, ctx: self.s.hub.ListNodesResponse(),
                      ListApprovals=lambda req, ctx: self.s.hub.ListApprovalsResponse(),
                      ListSchedules=lambda req, ctx: self.s.hub.ListSchedulesResponse())
        with hub:
            for argv, said, key in ((["ps"], "No agents found", "agents"),
                                    (["nodes"], "No nodes found", "nodes"),
                                    (["approvals"], "No approvals waiting", "approvals"),
                                    (["schedule", "ls"], "No schedules found", None)):
                with self.subTest(argv=argv):
                    r = H.run_cli(argv + ["--hub", hub.addr])
                    self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", said + "\n"))
                    r = H.run_cli(argv + ["--hub", hub.addr, "-o", "json"])
                    self.assertEqual((r.returncode, r.stderr), (0, ""))
                    j = json.loads(r.stdout)
                    self.assertEqual(j[key] if key else j, [])
        self.assertEqual(self.ok("nodes", "-l", "zone=nowhere", "-o", "json"), '{"nodes":[]}\n')

    # --- trace dates ---------------------------------------------------------------------------

    def test_trace_shows_the_date_when_not_today(self):
        now = time.time_ns()
        old = now - 3 * 86400 * 10**9
        T = self.s.types
        evs = [T.TraceEvent(agent_id=AID, seq=1, time_unix_nano=old, kind=T.EVENT_KIND_SPAWNED,
                            payload="{}"),
               T.TraceEvent(agent_id=AID, seq=2, time_unix_nano=now, kind=T.EVENT_KIND_INPUT,
                            payload='{"text":"hi"}')]
        with FakeHub(Trace=lambda req, ctx: iter(evs)) as hub:
            r = H.run_cli(["trace", AID, "--hub", hub.addr])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        day = time.strftime("%Y-%m-%d", time.localtime(old / 1e9))
        self.assertRegex(lines[0], r"^#1 +%s \d\d:\d\d:\d\d\.\d{3}  spawned" % day)
        self.assertRegex(lines[1], r"^#2 +\d\d:\d\d:\d\d\.\d{3}  input ", "today: no date")

    # --- colour --------------------------------------------------------------------------------

    def test_colour_only_on_a_terminal_and_never_with_no_color(self):
        T = self.s.types
        failed = self.s.hub.Agent(id=AID, state=T.AGENT_STATE_FAILED, spec=T.AgentSpec(model="m"))
        with FakeHub(ListAgents=lambda req, ctx: self.s.hub.ListAgentsResponse(
                agents=[failed])) as hub:
            argv = ["ps", "--hub", hub.addr]
            rc, out = run_pty(argv)
            self.assertEqual(rc, 0, out)
            self.assertIn(ESC + "31mfailed" + ESC + "0m", out, "a failed agent is red")
            rc, out = run_pty(argv, env={"NO_COLOR": "1"})
            self.assertEqual(rc, 0, out)
            self.assertIn("failed", out)
            self.assertNotIn(ESC, out, "NO_COLOR")
            rc, out = run_pty(argv + ["--color", "never"])
            self.assertNotIn(ESC, out)
            r = H.run_cli(argv)
            self.assertNotIn(ESC, r.stdout, "not a terminal")
            r = H.run_cli(argv + ["--color", "always"])
            self.assertIn(ESC + "31m", r.stdout)

    # --- ps --watch ----------------------------------------------------------------------------

    def test_ps_watch_prints_changes_and_exits_130(self):
        p = subprocess.Popen([H.AGENTRY_BIN, "ps", "--watch", "--interval", "200ms", "-o", "json",
                              "-l", "watch=yes", "--hub", self.c.addr],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = json.loads(p.stdout.readline())
            self.assertEqual(first["agents"], [])
            aid = self.ok("spawn", "--label", "watch=yes").strip()
            ids = []
            while aid not in ids:
                line = p.stdout.readline()
                if not line:
                    self.fail("ps --watch ended early: %s" % p.stderr.read())
                ids = [a["id"] for a in json.loads(line)["agents"]]
            time.sleep(0.5)  # two more intervals: nothing changed, so nothing printed
            p.send_signal(signal.SIGINT)
            rest, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 130, err)
        self.assertEqual(rest, "", "a list is printed only when it changed")

    # --- selectors -----------------------------------------------------------------------------

    def test_nodes_selector(self):
        out = self.ok("nodes", "-l", "zone=nowhere")
        self.assertEqual(out, "")
        self.assertEqual([x["node_id"] for x in json.loads(
            self.ok("nodes", "-l", "!zone", "-o", "json"))["nodes"]], ["n1"])
        r = self.cli("nodes", "-l", "a=b,!!")
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_ps_selector(self):
        aid = self.spawn_done(label="tier=db")
        ids = [a["id"] for a in json.loads(self.ok("ps", "--all", "-l", "tier=db", "-o",
                                                   "json"))["agents"]]
        self.assertEqual(ids, [aid])
        self.assertNotIn(aid, [a["id"] for a in json.loads(
            self.ok("ps", "--all", "-l", "tier!=db", "-o", "json"))["agents"]])

    # --- help ----------------------------------------------------------------------------------

    def test_help_cmd(self):
        for cmd in (["ps"], ["trace"], ["node", "drain"], ["schedule", "create"], ["memory", "ls"]):
            with self.subTest(cmd=cmd):
                via_help = H.run_cli(["help"] + cmd)
                direct = H.run_cli(cmd + ["--help"])
                self.assertEqual((via_help.returncode, via_help.stderr), (0, ""))
                self.assertEqual(via_help.stdout, direct.stdout)
                self.assertTrue(via_help.stdout.startswith("usage: agentry " + cmd[0]))
        r = H.run_cli(["help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("completion", r.stdout)
        self.assertNotIn("__complete", r.stdout, "the completion helper is hidden")
        r = H.run_cli(["help", "bogus"])
        self.assertEqual(r.returncode, 2, r.stderr)

    # --- stdin ---------------------------------------------------------------------------------

    def test_stdin_dash(self):
        aid = self.ok("spawn", "--tool", "echo", "-", input="final from a pipe\n").strip()
        end = self.c.wait_turn_end(aid)
        self.assertEqual(H.payload(end)["output"], "from a pipe", "the newline is cut")
        seq = json.loads(self.ok("send", "-o", "json", aid, "-", input="final second\nline\n"))["seq"]
        end = self.c.wait_turn_end(aid, after_seq=seq)
        self.assertEqual(H.payload(end)["output"], "second\nline")
        self.assertEqual(self.ok("invoke", "-", input="final invoked"), "invoked\n")
        spec = "name: from-stdin\nmodel: mock\ntools: [echo]\n"
        j = json.loads(self.ok("spawn", "--spec", "-", "-o", "json", input=spec))
        self.assertEqual(self.c.get(j["agent_id"]).spec.name, "from-stdin")
        r = self.cli("spawn", "--spec", "-", "-", input=spec)
        self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    H.main()
