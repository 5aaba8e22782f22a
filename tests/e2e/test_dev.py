"""tests/e2e/test_dev.py - `agentry dev`: a hub, nodes and the dashboard as one command.

Each test runs `agentry dev` in a temp HOME (no XDG_* variables, so the data directory is
HOME/.local/share/agentry) on free ports, and talks to it with the CLI. The TLS run of this file
is the same as the plaintext one: dev serves plaintext on loopback and hands its children no
AGENTRY_* variable, so the tests drop AGENTRY_TLS_DIR for their own CLI calls too.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.request

import harness as H


class DevTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-e2e-dev-")
        if not H.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.dir, True)
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AGENTRY_") and not k.startswith("XDG_")}
        # Empty is unset, also where run_cli starts from this process's environment.
        self.env.update(HOME=self.home, AGENTRY_TLS_DIR="", XDG_DATA_HOME="", XDG_CONFIG_HOME="")
        self.data = os.path.join(self.home, ".local", "share", "agentry")
        self.procs = []

    def start(self, *args, nodes=2):
        port, http = H.free_port(), H.free_port()
        self.addr = "127.0.0.1:%d" % port
        self.http = "127.0.0.1:%d" % http
        argv = [H.AGENTRY_BIN, "dev", "--port", str(port), "--http-listen", self.http,
                "--nodes", str(nodes)] + list(args)
        self.out = open(os.path.join(self.dir, "dev.out.%d" % len(self.procs)), "w+")
        self.err = open(os.path.join(self.dir, "dev.err.%d" % len(self.procs)), "w+")
        self.addCleanup(self.out.close)
        self.addCleanup(self.err.close)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                             env=self.env, text=True)
        self.procs.append(p)
        self.addCleanup(self.kill, p)
        return p

    def kill(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def read(self, f):
        f.seek(0)
        return f.read()

    def wait_banner(self, p):
        return H.wait_for(lambda: p.poll() is None and "dashboard" in self.read(self.out)
                          and self.read(self.out), timeout=60, what="the banner of agentry dev "
                          "(stderr: %r)" % self.read(self.err))

    def cli(self, *args, **kw):
        env = dict(self.env, AGENTRY_HUB=self.addr)
        return H.run_cli(list(args), env=env, **kw)

    def test_a_runs_agents_and_stops_on_ctrl_c(self):
        p = self.start()
        banner = self.wait_banner(p)
        self.assertIn(self.addr, banner)
        self.assertIn("http://%s/" % self.http, banner)
        self.assertIn(self.data, banner)
        self.assertEqual(self.read(self.err), "", "nothing but the banner in the terminal")
        # Both nodes registered before the banner, so a turn runs at once.
        r = self.cli("nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(re.findall(r"^(n\d)\s+ready", r.stdout, re.M)), ["n1", "n2"])
        r = self.cli("invoke", "--tool", "echo", "echo ping; final pong")
        self.assertEqual((r.returncode, r.stdout), (0, "pong\n"), r.stderr)
        r = self.cli("spawn", "--tool", "echo", "final hi")
        self.assertEqual(r.returncode, 0, r.stderr)
        with urllib.request.urlopen("http://%s/" % self.http, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
        # The store and the logs are files in the data directory; the logs are the children's.
        self.assertTrue(os.path.isfile(os.path.join(self.data, "dev.db")))
        self.assertEqual(os.stat(self.data).st_mode & 0o777, 0o700)
        logs = os.path.join(self.data, "logs")
        self.assertEqual(sorted(os.listdir(logs)), ["hub.log", "n1.log", "n2.log"])
        with open(os.path.join(logs, "hub.log")) as f:
            self.assertIn("event=hub.started", f.read())
        children = self.children(p.pid)
        self.assertEqual(len(children), 3, children)
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(30), 130, self.read(self.err))
        for pid in children:
            self.assertFalse(os.path.exists("/proc/%d" % pid) and not self.zombie(pid),
                             "child %d still runs" % pid)
        with open(os.path.join(logs, "hub.log")) as f:
            text = f.read()
        self.assertIn("event=hub.stopped clean=1", text)
        self.assertIsNone(H.sanitizer_report(text))
        # The agents are still there at the next start: the store is the data directory's.
        p = self.start()
        self.wait_banner(p)
        r = self.cli("ps", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(len(r.stdout.splitlines()), 3, r.stdout)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.read(self.err))

    def children(self, pid):
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]

    def zombie(self, pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    def test_b_port_in_use_is_one_line(self):
        p = self.start(nodes=1)
        self.wait_banner(p)
        # The same port: refused before anything starts.
        port = self.addr.rsplit(":", 1)[1]
        r = H.run_cli(["dev", "--port", port, "--http-listen",
                       "127.0.0.1:%d" % H.free_port()], env=self.env, timeout=30)
        line = H.one_error_line(self, r, rc=2)
        self.assertIn("127.0.0.1:%s is in use" % port, line)
        # Another port, the same data directory: the hub refuses the store the first one holds,
        # and its error line is shown.
        r = H.run_cli(["dev", "--port", str(H.free_port()), "--http-listen",
                       "127.0.0.1:%d" % H.free_port()], env=self.env, timeout=60)
        line = H.one_error_line(self, r, rc=1)
        self.assertIn("the hub did not start", line)
        self.assertIn("is in use by another process", line)
        self.assertEqual(p.poll(), None, "the first one still runs")

    def test_c_a_child_that_dies_stops_the_others(self):
        p = self.start(nodes=2)
        self.wait_banner(p)
        node = self.children(p.pid)[1]
        os.kill(node, signal.SIGKILL)
        self.assertEqual(p.wait(30), 1)
        err = self.read(self.err)
        self.assertRegex(err, r"^error: node n\d exited \(killed by signal 9\) "
                              r"\(see .*/logs/n\d\.log\)$")
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_d_flags_and_environment(self):
        r = H.run_cli(["dev", "--nodes", "99"], env=self.env)
        self.assertIn("--nodes", H.one_error_line(self, r, rc=2))
        r = H.run_cli(["dev", "--log-level", "loud"], env=self.env)
        self.assertIn("--log-level", H.one_error_line(self, r, rc=2))
        r = H.run_cli(["dev"], env=dict(self.env, AGENTRY_NODES="many"))
        self.assertIn("AGENTRY_NODES: invalid value 'many'", H.one_error_line(self, r, rc=2))
        # --data-dir, also as AGENTRY_DATA_DIR.
        d = os.path.join(self.dir, "elsewhere")
        self.env["AGENTRY_DATA_DIR"] = d
        p = self.start(nodes=0)
        self.assertIn(d, self.wait_banner(p))
        self.assertTrue(os.path.isfile(os.path.join(d, "dev.db")))
        self.assertFalse(os.path.exists(self.data))
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(30), 130)


if __name__ == "__main__":
    H.main()
