"""tests/e2e/test_sandbox.py - the shell tool under the node's sandbox, through the hub
(issue 17, points 1 and 5): a mock-model agent asks for `rm -rf /` and the rest of the
security matrix.

PolicyFirstTest: the first layer. A node whose policy file allows only `echo` and `ls` refuses
every attempt of the matrix with the rule that denied it, and nothing starts. GuardTest: a node
with its defaults. A command runs in the sandbox at /workspace as the
sandbox user, its files land in the agent's workspace on the host, and `rm -rf /` is refused
by the shell guard before anything starts. ContainedTest: a node with the guard off
(shell.guard=off), so each attempt reaches the sandbox: the canary outside the workspace stays
intact, every call ends as a tool result within its limits (saying which mechanism stopped it),
the node keeps running (tearDown checks), and KillAgent takes down a whole process tree.

Gated: when the node logs that its sandbox is unavailable (no bubblewrap, no agentry-sbx user,
no user namespaces), the tests are skipped and the file prints "SKIP: ..." and exits 77, which
ctest reports as skipped, not passed.
"""
import glob
import json
import os
import shutil
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ROOT = tempfile.mkdtemp(prefix="agentry-e2e-sandbox-")
os.chmod(ROOT, 0o755)  # the sandbox user must reach the workspaces below it
CANARY = os.path.join(ROOT, "canary")
UNAVAILABLE = []  # why the sandbox is unavailable, once a node said so


def call(tool, **args):
    # The mock model splits its script on ';': commands carry theirs as a JSON escape.
    return "call %s %s" % (tool, json.dumps(args).replace(";", "\\u003b"))


def security_matrix(port):
    """The seed's security test: what a hostile model asks the shell for (port: a loopback
    listener the network attempt aims at)."""
    return [
        # Stops at the 200th EROFS: the whole walk charges its dentries to the call's
        # memory cgroup and may meet its OOM kill on a cold cache.
        "rm -rf --no-preserve-root / 2>&1 | grep -m 200 -c 'Read-only file system'",
        "echo x > /etc/agentry-e2e; echo x > %s" % CANARY,
        "cat /etc/shadow",
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', %d), 5)\" "
        "2>&1 | tail -1" % port,
        "b(){ b|b& }; b; sleep 3",
        "tail /dev/zero",
        "while :; do :; done",
        "head -c 1073741824 /dev/zero",
        "ln -s %s link; cat link; echo overwritten > link; cat link" % CANARY,
    ]


class SandboxCase(H.ClusterTestCase):
    NODES = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        node = list(cls.c.nodes.values())[0]
        log = H.wait_for(lambda: "node.sandbox_" in node.text() and node.text(), 15,
                         what="the node's sandbox self-test")
        for line in log.splitlines():
            if "event=node.sandbox_unavailable" in line:
                UNAVAILABLE.append(line)

    def setUp(self):
        if UNAVAILABLE:
            self.skipTest("sandbox unavailable: " + UNAVAILABLE[0])
        with open(CANARY, "w") as f:
            f.write("intact")

    def run_agent(self, steps, settings=None, timeout=60, tools=("shell",)):
        spec = self.c.spec(tools=tools, max_iterations=30,
                           tool_settings={"shell": json.dumps(settings or {})})
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input="; ".join(steps)),
                             timeout=10).agent_id
        end = self.c.wait_turn_end(a, timeout=timeout)
        results = [H.payload(e) for e in self.c.trace(a)
                   if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        return a, end, results

    def assert_canary(self):
        with open(CANARY) as f:
            self.assertEqual(f.read(), "intact")


class GuardTest(SandboxCase):
    NODE_ARGS = ("--workspace-root", ROOT, "--tool-opt", "shell.timeout=20s")

    def test_command_runs_sandboxed_in_the_workspace(self):
        a, end, res = self.run_agent([
            call("shell", command="echo hi > f && cat f && pwd && id -un"), "final done"])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, res)
        out = res[0]["output"]
        self.assertFalse(res[0]["is_error"], res)
        self.assertIn("hi\n/workspace\n", out)
        self.assertIn("[exit status 0]", out)
        self.assertIn("[sandbox=bwrap", out)
        self.assertIn("net=off seccomp=on", out)
        with open(os.path.join(ROOT, a, "f")) as f:
            self.assertEqual(f.read(), "hi\n")

    def test_file_tools_and_sandbox_share_the_workspace(self):
        # Made by the node before and after the workspace went to the sandbox user's group:
        # both stay writable by the agent's commands.
        a, end, res = self.run_agent([
            call("write_file", path="a/x", content="one\n"),
            call("shell", command="echo two >> a/x && cat a/x"),
            call("write_file", path="b/y", content="three\n"),
            call("shell", command="echo four >> b/y && mkdir c && echo five > c/z && cat b/y"),
            call("read_file", path="c/z"),
            "final done"], tools=("write_file", "read_file", "shell"))
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, res)
        self.assertEqual([r["is_error"] for r in res], [False] * 5, res)
        self.assertIn("one\ntwo\n[exit status 0]", res[1]["output"])
        self.assertIn("three\nfour\n[exit status 0]", res[3]["output"])
        self.assertEqual(res[4]["output"], "five\n")

    def test_rm_rf_root_is_refused_by_the_guard(self):
        _, end, res = self.run_agent([call("shell", command="rm -rf /"),
                                      call("shell", command="rm -rf --no-preserve-root /"),
                                      "final done"])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, res)
        for r in res:
            self.assertTrue(r["is_error"], r)
            self.assertIn("the shell guard", r["output"])
        self.assertIn("rm -r of the root", res[0]["output"])
        self.assertIn("rm --no-preserve-root", res[1]["output"])
        self.assert_canary()


class PolicyFirstTest(SandboxCase):
    """The first layer: a node whose policy allows only a few commands refuses every attempt of
    the matrix before anything runs, and says which rule; an allowed command still runs."""
    POLICY = os.path.join(ROOT, "node-policy.yaml")
    NODE_ARGS = ("--workspace-root", ROOT, "--tool-opt", "shell.guard=off", "--policy", POLICY)

    @classmethod
    def setUpClass(cls):
        with open(cls.POLICY, "w") as f:
            f.write("rules:\n"
                    "  - tool: shell\n"
                    "    decision: allow\n"
                    "    patterns: ['echo *', 'ls', 'ls *']\n"
                    "  - tool: shell\n"
                    "    decision: deny\n"
                    "default: allow\n")
        super().setUpClass()

    def test_attempts_are_refused_by_the_policy(self):
        attempts = security_matrix(9)  # nothing listens: nothing may even try
        _, end, res = self.run_agent([call("shell", command=c) for c in attempts] +
                                     [call("shell", command="echo allowed"), "final done"],
                                     {"procs": 64})
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, res)
        self.assertEqual(len(res), len(attempts) + 1, res)
        for r in res[:-1]:
            self.assertTrue(r["is_error"], r)
            self.assertEqual(r["output"], "permission denied: rule 2 of the node's policy (deny "
                                          "shell) forbids this call of tool 'shell'")
        self.assertFalse(res[-1]["is_error"], res[-1])
        self.assertIn("allowed\n", res[-1]["output"])
        self.assertFalse(os.path.exists("/etc/agentry-e2e"))
        self.assert_canary()


class ContainedTest(SandboxCase):
    NODE_ARGS = ("--workspace-root", ROOT, "--tool-opt", "shell.timeout=20s",
                 "--tool-opt", "shell.guard=off")
    # cpu_limit leaves the memory bomb time to reach its OOM kill before RLIMIT_CPU ends it.
    LIMITS = {"procs": 64, "mem_limit": "128MiB", "cpu_limit": 4, "output_limit": "1MiB"}

    def test_attempts_are_contained(self):
        if os.geteuid() != 0:  # never an uncapped fork bomb
            self.skipTest("needs a root node: only its pids cgroup or its sandbox user's "
                          "RLIMIT_NPROC caps the fork bomb")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        self.addCleanup(listener.close)
        attempts = security_matrix(port)
        _, end, res = self.run_agent([call("shell", command=c) for c in attempts] +
                                     ["final done"], self.LIMITS, timeout=120)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, res)
        self.assertEqual(len(res), len(attempts), res)
        out = [r["output"] for r in res]
        self.assertEqual(out[0].split("\n")[0], "200", out[0])  # EROFS, file after file
        self.assertIn("/etc/agentry-e2e: Read-only file system", out[1])
        self.assertIn("canary: Directory nonexistent", out[1])  # the host's dirs are not there
        self.assertIn("/etc/shadow: Permission denied", out[2])
        self.assertIn("Address family not supported", out[3])  # seccomp, net off
        if "pids" in out[4]:
            self.assertIn("process limit", out[4])  # the cgroup's pids.events
        else:
            self.assertIn("fork", out[4])  # RLIMIT_NPROC
        self.assertTrue("OOM-killed" in out[5] or "memory exhausted" in out[5], out[5])
        self.assertIn("killed by signal 9 inside the sandbox", out[6])  # RLIMIT_CPU
        self.assertTrue(res[7]["is_error"])
        self.assertIn("[killed: the output passed shell.output_limit]", out[7])
        self.assertNotIn("intact", out[8])
        self.assertFalse(os.path.exists("/etc/agentry-e2e"))
        self.assert_canary()

    def test_kill_agent_kills_the_tree(self):
        spec = self.c.spec(tools=("shell",), tool_settings={"shell": "{}"})
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=spec, input=call("shell", command="(setsid sleep 300 &); sleep 300 & "
                                                   "touch started; wait")),
            timeout=10).agent_id
        H.wait_for(lambda: os.path.exists(os.path.join(ROOT, a, "started")), 15,
                   what="the command to start")
        node = list(self.c.nodes.values())[0]
        # The node's per-call cgroups (v1 or v2) exist while the call runs, and are removed
        # only once every process in them is gone.
        pattern = "/sys/fs/cgroup/**/agentry-sbx/c%d-*" % node.pid
        running = glob.glob(pattern, recursive=True)
        self.c.kill(a, "stop it")
        if running:
            H.wait_for(lambda: not glob.glob(pattern, recursive=True), 10,
                       what="the call's cgroups to be emptied and removed")


def main():
    prog = unittest.main(verbosity=2, exit=False)
    shutil.rmtree(ROOT, True)
    ok = prog.result.wasSuccessful()
    if ok and UNAVAILABLE:
        print("SKIP: the node's sandbox is unavailable: %s" % UNAVAILABLE[0])
        sys.exit(77)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
