"""tests/e2e/test_completion.py - shell completion (issue 19, point 5).

'agentry completion bash' is sourced into a real bash, whose completion function is called as
bash calls it at a TAB (COMP_WORDS, COMP_CWORD); the candidates it leaves in COMPREPLY are
checked: commands, subcommands, flags (read from each command's flag table), flag values and
agent ids (from a fake hub's ListAgents). zsh likewise when it is installed (deploy/deps.sh
--test installs it); else that test is skipped, saying so.
"""
import os
import shlex
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fakehub import FakeHub  # noqa: E402

IDS = ["01m0000000000041", "01m0000000000042", "01m9999999999999"]


class CompletionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = H.stubs()

    def bash(self, *words):
        """COMPREPLY after a TAB on the last word of `agentry WORDS...` (sorted)."""
        argv = [H.AGENTRY_BIN] + list(words)
        script = ("source <(%s completion bash) || exit 3\n"
                  "COMP_WORDS=(%s); COMP_CWORD=%d; _agentry\n"
                  "printf '%%s\\n' \"${COMPREPLY[@]}\"\n"
                  % (shlex.quote(H.AGENTRY_BIN), " ".join(shlex.quote(w) for w in argv),
                     len(argv) - 1))
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(x for x in r.stdout.split("\n") if x)

    def test_commands_and_subcommands(self):
        self.assertEqual(self.bash("tr"), ["trace"])
        self.assertEqual(self.bash("no"), ["node", "nodes"])
        self.assertIn("completion", self.bash(""))
        self.assertNotIn("__complete", self.bash(""))
        self.assertEqual(self.bash("node", ""), ["cordon", "drain", "join", "uncordon"])
        self.assertEqual(self.bash("schedule", "p"), ["pause"])
        self.assertEqual(self.bash("memory", ""), ["get", "ls"])
        self.assertEqual(self.bash("help", "sp"), ["spawn", "spec"])
        self.assertEqual(self.bash("completion", ""), ["bash", "zsh"])

    def test_flags_from_the_flag_tables(self):
        self.assertEqual(self.bash("ps", "--wa"), ["--watch"])
        self.assertIn("--selector", self.bash("ps", "--s"))
        self.assertIn("--output", self.bash("get", "--o"))
        self.assertEqual(self.bash("node", "drain", "--dr"), ["--drain-timeout"])
        self.assertEqual(self.bash("node", "join", "--cap"), ["--capacity"])
        self.assertEqual(self.bash("hub", "--sto"), ["--store"])
        self.assertEqual(self.bash("ps", "-o", "j"), ["json", "jsonl"])
        self.assertEqual(self.bash("ps", "--state", "r"), ["running"])
        self.assertEqual(self.bash("spawn", "--scheduler", "b"), ["binpack"])
        self.assertEqual(self.bash("ps", "--color", ""), ["always", "auto", "never"])
        # Every candidate is a flag: none is a word of a wrapped help line ("--tls-dir)").
        flags = self.bash("ps", "--")
        self.assertIn("--tls-dir", flags)
        for f in flags:
            self.assertRegex(f, r"^--[a-z][a-z0-9-]*$")
        self.assertEqual(len(flags), len(set(flags)))

    def test_agent_ids_from_the_hub(self):
        agents = [self.s.hub.Agent(id=i) for i in IDS]
        with FakeHub(ListAgents=lambda req, ctx: self.s.hub.ListAgentsResponse(
                agents=agents)) as hub:
            h = ["--hub", hub.addr]
            self.assertEqual(self.bash("get", *h, ""), IDS)
            self.assertEqual(self.bash("kill", *h, "01m0"), IDS[:2])
            self.assertEqual(self.bash("memory", "ls", *h, "01m9"), IDS[2:])
            self.assertEqual(self.bash("send", *h, IDS[0], ""), [],
                             "the second argument of send is its input")
        port = H.free_port()  # nothing listens: no ids, and the shell falls back to files
        self.assertEqual(self.bash("get", "--hub", "127.0.0.1:%d" % port, "zz-no-such-file"), [])

    def test_zsh(self):
        zsh = shutil.which("zsh")
        if not zsh:
            self.skipTest("zsh is not installed (deploy/deps.sh --test installs it)")
        agents = [self.s.hub.Agent(id=i) for i in IDS]
        with FakeHub(ListAgents=lambda req, ctx: self.s.hub.ListAgentsResponse(
                agents=agents)) as hub:
            # compadd only works inside a completion widget: stand in for it, recording what
            # the function offers.
            script = ("source <(%s completion zsh) || exit 3\n"
                      "compadd() { shift; print -l -- ${(P)1}; }\n"
                      "_files() { print FILES; }\n"
                      "words=(%s get --hub %s 01m0); CURRENT=5; _agentry\n"
                      % (shlex.quote(H.AGENTRY_BIN), shlex.quote(H.AGENTRY_BIN), hub.addr))
            r = subprocess.run([zsh, "-f", "-c", script], capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.split()), IDS[:2])


if __name__ == "__main__":
    H.main()
