"""tests/e2e/test_tools.py - the builtin tools inside a real node (issue 15, point 3), driven by
the mock model's `call TOOL {json}` step: each agent gets its own workspace under the node's
--workspace-root, the file tools stay inside it, shell runs in the node's sandbox unless the
spec's settings say privileged (tests/e2e/test_sandbox.py tests the sandbox itself), and
permission rules match a call's subject (the path, the command).

The tools themselves are tested call by call in tests/unit/test-wk-files.c and test-wk-shell.c;
here the point is the wiring: workspace, settings, pool, rules, journal.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ROOT = tempfile.mkdtemp(prefix="agentry-e2e-workspaces-")
os.chmod(ROOT, 0o755)  # the sandbox user must reach the workspaces below it


def call(tool, **args):
    return "call %s %s" % (tool, json.dumps(args))


class ToolsTest(H.ClusterTestCase):
    NODES = 1
    NODE_ARGS = ("--workspace-root", ROOT, "--tool-opt", "shell.timeout=20s")

    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(shutil.rmtree, ROOT, True)
        super().setUpClass()

    def run_agent(self, steps, tools, **kw):
        spec = self.c.spec(tools=tools, max_iterations=20, **kw)
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input="; ".join(steps)),
                             timeout=10).agent_id
        end = self.c.wait_turn_end(a, timeout=30)
        results = [H.payload(e) for e in self.c.trace(a)
                   if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        return a, end, results

    def test_file_tools_work_in_the_agent_workspace(self):
        tools = ("write_file", "read_file", "edit_range", "read_lines", "list_dir",
                 "search_files")
        a, end, res = self.run_agent([
            call("write_file", path="notes/a.txt", content="one\ntwo\nthree\n"),
            call("edit_range", path="notes/a.txt", start=2, end=2, replacement="TWO"),
            call("read_file", path="notes/a.txt"),
            call("read_lines", path="notes/a.txt", start=3, end=3),
            call("list_dir", path="notes"),
            call("search_files", pattern="TWO"),
            "final done"], tools)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, [end, res])
        self.assertEqual([r["is_error"] for r in res], [False] * 6, res)
        self.assertEqual(res[2]["output"], "one\nTWO\nthree\n")
        self.assertIn("three", res[3]["output"])
        self.assertIn("a.txt", res[4]["output"])
        self.assertIn("notes/a.txt:2", res[5]["output"])
        with open(os.path.join(ROOT, a, "notes", "a.txt")) as f:
            self.assertEqual(f.read(), "one\nTWO\nthree\n", "the file is in ROOT/<agent id>")
        self.assertEqual(os.stat(os.path.join(ROOT, a)).st_mode & 0o777, 0o700)

    def test_a_path_out_of_the_workspace_is_an_error_result(self):
        outside = os.path.join(ROOT, "canary")
        with open(outside, "w") as f:
            f.write("intact")
        a, end, res = self.run_agent([
            call("read_file", path="../canary"),
            call("write_file", path="../canary", content="overwritten"),
            call("write_file", path=outside, content="overwritten"),
            "final done"], ("read_file", "write_file"))
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL)
        self.assertEqual([r["is_error"] for r in res], [True, True, True], res)
        for r in res:
            self.assertIn("outside the workspace", r["output"])
        with open(outside) as f:
            self.assertEqual(f.read(), "intact")

    def test_shell_runs_sandboxed_unless_privileged(self):
        _, _, res = self.run_agent([call("shell", command="echo hi && pwd"), "final done"],
                                   ("shell",))
        if "is unavailable" in res[0]["output"]:  # no bubblewrap here: refused, saying why
            self.assertTrue(res[0]["is_error"])
        else:
            self.assertIn("hi\n/workspace\n[exit status 0]\n[sandbox=bwrap", res[0]["output"])
        a, _, res = self.run_agent([call("shell", command="echo hi > f && cat f && pwd"),
                                    "final done"], ("shell",),
                                   tool_settings={"shell": json.dumps({"privileged": True})})
        self.assertFalse(res[0]["is_error"], res)
        self.assertIn("hi\n", res[0]["output"])
        self.assertIn(os.path.join(ROOT, a), res[0]["output"])
        self.assertIn("[exit status 0]\n[sandbox=direct", res[0]["output"])

    def test_permission_patterns_match_the_subject(self):
        rules = [self.T.PermissionRule(tool="write_file", decision="deny",
                                       patterns=["secrets/*"]),
                 self.T.PermissionRule(tool="shell", decision="deny", patterns=["rm *"])]
        _, end, res = self.run_agent([
            call("write_file", path="secrets/key", content="x"),
            call("write_file", path="public/readme", content="x"),
            call("shell", command="rm -rf /"),
            call("shell", command="true"),
            "final done"], ("write_file", "shell"), permissions=rules,
            tool_settings={"shell": json.dumps({"privileged": True})})
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL)
        self.assertEqual([r["is_error"] for r in res], [True, False, True, False], res)
        self.assertIn("rule 1", res[0]["output"])
        self.assertIn("rule 2", res[2]["output"])

    def test_kill_stops_a_running_shell(self):
        spec = self.c.spec(tools=("shell",), tool_settings={"shell": json.dumps(
            {"privileged": True})})
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=spec, input=call("shell", command="echo $$ > pid && exec sleep 300")),
            timeout=10).agent_id
        pid_file = os.path.join(ROOT, a, "pid")
        H.wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read().strip(), 15,
                   what="the shell to start")
        pid = int(open(pid_file).read())
        self.c.kill(a, "stop it")
        H.wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10,
                   what="the shell's process to be gone")


if __name__ == "__main__":
    H.main()
