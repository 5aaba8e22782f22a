"""tests/e2e/test_cli_config.py - the config file's contexts, AGENTRY_* variables, and the order
flag > environment > config file > default (docs/cli.md).

A real hub and node (H.Cluster); the CLI runs with its own temp HOME and XDG dirs, so that the
config file it reads is the test's. In the TLS run the CLI's certificates come from the context's
tls-dir instead of AGENTRY_TLS_DIR, which is dropped: that is how a context carries credentials.
"""
import json
import os
import re
import shutil
import stat
import tempfile
import unittest

import harness as H


class ConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = H.Cluster(nodes=1, name="cliconfig").start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-e2e-cliconfig-")
        if not H.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.dir, True)
        self.cfg = os.path.join(self.dir, "config", "agentry", "config.yaml")
        # A dead address: nothing listens there (a port just freed).
        self.dead = "127.0.0.1:%d" % H.free_port()
        self.tls = H.tls_dir() if H.E2E_TLS else None

    def run_cli(self, *args, env=None, **kw):
        e = {"HOME": self.dir, "XDG_CONFIG_HOME": os.path.join(self.dir, "config"),
             "XDG_DATA_HOME": os.path.join(self.dir, "data"), "AGENTRY_TLS_DIR": "",
             "AGENTRY_NAMESPACE": "", "AGENTRY_CONFIG": "", "AGENTRY_CONTEXT": ""}
        e.update(env or {})
        return H.run_cli(list(args), env=e, **kw)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def set_context(self, name, *args):
        tls = ["--tls-dir", self.tls] if self.tls else []
        return self.ok(self.run_cli("config", "set-context", name, *args, *tls))

    def namespace_of(self, *args, env=None):
        """Spawns an agent with args; returns the namespace it got."""
        out = self.ok(self.run_cli("spawn", "final hi", *args, env=env))
        agent = re.search(r"\b[0-9a-z]{16}\b", out).group(0)
        r = self.run_cli("get", "--json", agent, "--hub", self.c.addr, env=env)
        return json.loads(self.ok(r))["namespace"]

    def test_a_contexts_and_use_context(self):
        self.set_context("live", "--hub", self.c.addr, "--namespace", "team-a")
        self.set_context("dead", "--hub", self.dead)
        self.ok(self.run_cli("config", "set-context", "tok", "--token", "s3cret"))
        st = os.stat(self.cfg)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        out = self.ok(self.run_cli("config", "get-contexts"))
        self.assertRegex(out, r"(?m)^\*\s+live\s+%s\s+team-a$" % self.c.addr)
        # The first context set became current: commands use it.
        self.ok(self.run_cli("ps"))
        self.assertEqual(self.namespace_of(), "team-a")
        # use-context switches, atomically rewriting the file (still 0600, no temp left over).
        self.assertIn("dead", self.ok(self.run_cli("config", "use-context", "dead")))
        self.assertEqual(stat.S_IMODE(os.stat(self.cfg).st_mode), 0o600)
        self.assertEqual(os.listdir(os.path.dirname(self.cfg)), ["config.yaml"])
        with open(self.cfg) as f:
            self.assertIn("current-context: dead\n", f.read())
        r = self.run_cli("ps", "--timeout", "2s")
        self.assertIn(self.dead, H.one_error_line(self, r))
        # --context and AGENTRY_CONTEXT pick another, flag first.
        self.ok(self.run_cli("ps", "--context", "live"))
        self.ok(self.run_cli("ps", env={"AGENTRY_CONTEXT": "live"}))
        r = self.run_cli("ps", "--context", "dead", "--timeout", "2s",
                         env={"AGENTRY_CONTEXT": "live"})
        self.assertIn(self.dead, H.one_error_line(self, r))
        # view shows the file with tokens redacted; --raw shows them.
        out = self.ok(self.run_cli("config", "view"))
        self.assertTrue(out.startswith("# %s\n" % self.cfg), out)
        self.assertIn("token: REDACTED", out)
        self.assertNotIn("s3cret", out)
        self.assertIn("token: s3cret", self.ok(self.run_cli("config", "view", "--raw")))
        # Unknown contexts are usage errors.
        r = self.run_cli("config", "use-context", "nope")
        self.assertIn("no context 'nope'", H.one_error_line(self, r, rc=2))
        r = self.run_cli("ps", "--context", "nope")
        self.assertIn("no context 'nope'", H.one_error_line(self, r, rc=2))

    def test_b_precedence_flag_env_file_default(self):
        self.set_context("ctx", "--hub", self.dead, "--namespace", "from-file")
        live = {"AGENTRY_HUB": self.c.addr}
        # hub: file (dead) < env (live) < flag.
        r = self.run_cli("ps", "--timeout", "2s")
        self.assertIn(self.dead, H.one_error_line(self, r))
        self.ok(self.run_cli("ps", env=live))
        r = self.run_cli("ps", "--hub", self.dead, "--timeout", "2s", env=live)
        self.assertIn(self.dead, H.one_error_line(self, r))
        self.ok(self.run_cli("ps", "--hub", self.c.addr))
        # namespace: file < env < flag.
        self.assertEqual(self.namespace_of(env=live), "from-file")
        self.assertEqual(self.namespace_of(env=dict(live, AGENTRY_NAMESPACE="from-env")),
                         "from-env")
        self.assertEqual(self.namespace_of("-n", "from-flag",
                                           env=dict(live, AGENTRY_NAMESPACE="from-env")),
                         "from-flag")
        # default: no file at all.
        os.remove(self.cfg)
        r = self.run_cli("ps", "--timeout", "1s")
        if r.returncode != 0:  # unless some hub happens to listen on the default address
            self.assertIn("127.0.0.1:7070", r.stderr)
        self.assertEqual(self.namespace_of("--hub", self.c.addr,
                                           env={"AGENTRY_TLS_DIR": self.tls or ""}), "default")

    def test_c_bad_config_files(self):
        os.makedirs(os.path.dirname(self.cfg))
        with open(self.cfg, "w") as f:
            f.write("current-context: a\ncontexts:\n  - name: a\n    hub: x:1\n    hubb: y\n")
        r = self.run_cli("ps")
        self.assertEqual(H.one_error_line(self, r, rc=2),
                         "error: %s:5: contexts[0]: unknown key 'hubb' (expected name, hub, "
                         "namespace, token, tls-dir, ca, cert, key)" % self.cfg)
        with open(self.cfg, "w") as f:
            f.write("contexts: [\n")
        r = self.run_cli("config", "view")
        self.assertIn("%s:2: not YAML" % self.cfg, H.one_error_line(self, r, rc=2))
        # --help needs no config file, broken or not.
        for argv in (["node", "join", "--help"], ["ps", "--help"], ["config", "view", "--help"]):
            r = self.run_cli(*argv)
            self.assertEqual((r.returncode, r.stderr), (0, ""), argv)
            self.assertIn("usage:", r.stdout)
        # A file named by --config or AGENTRY_CONFIG must exist; the default one need not.
        missing = os.path.join(self.dir, "missing.yaml")
        for r in (self.run_cli("ps", "--config", missing),
                  self.run_cli("ps", env={"AGENTRY_CONFIG": missing})):
            self.assertIn("cannot read config file '%s'" % missing,
                          H.one_error_line(self, r, rc=2))
        os.remove(self.cfg)
        self.ok(self.run_cli("ps", "--hub", self.c.addr, env={"AGENTRY_TLS_DIR": self.tls or ""}))
        # --config names another file, for writing too.
        other = os.path.join(self.dir, "other.yaml")
        self.ok(self.run_cli("config", "set-context", "o", "--hub", self.c.addr, "--config", other))
        self.assertIn("name: o", self.ok(self.run_cli("config", "view", "--config", other)))
        # A hub address no client could use is refused when it is set, not at every use.
        r = self.run_cli("config", "set-context", "u", "--hub", "http://x:1", "--config", other)
        self.assertIn("want host:port, not a URL", H.one_error_line(self, r, rc=2))
        self.assertNotIn("name: u", self.ok(self.run_cli("config", "view", "--config", other)))

    def test_d_daemon_flags_from_the_environment(self):
        port = H.free_port()
        data = os.path.join(self.dir, "data")
        env = {"AGENTRY_LISTEN": "127.0.0.1:%d" % port, "AGENTRY_HEARTBEAT": "500ms",
               "XDG_DATA_HOME": data}
        hub = H.Proc("envhub", [H.AGENTRY_BIN, "hub"], os.path.join(self.dir, "hub.log"),
                     env=dict(env, HOME=self.dir, AGENTRY_TLS_DIR=os.environ.get(
                         "AGENTRY_TLS_DIR", ""))).start()
        self.addCleanup(hub.kill_if_running)
        H.wait_for(lambda: self.run_cli("nodes", "--hub", "127.0.0.1:%d" % port,
                                        *(["--tls-dir", self.tls] if self.tls else []))
                   .returncode == 0 or not hub.running(), timeout=30, what="the hub")
        self.assertTrue(hub.running(), hub.tail())
        # No --store: the data directory's agentry.db, made 0700.
        self.assertTrue(os.path.isfile(os.path.join(data, "agentry", "agentry.db")))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(data, "agentry")).st_mode), 0o700)
        self.assertIsNone(hub.stop())
        # A malformed variable is a usage error naming it; a flag hides it.
        r = self.run_cli("hub", env={"AGENTRY_THREADS": "lots"})
        self.assertEqual(H.one_error_line(self, r, rc=2),
                         "error: AGENTRY_THREADS: invalid value 'lots' for --threads: want an "
                         "integer in 1..256")
        r = self.run_cli("node", "join", env={"AGENTRY_CAPACITY": "0"})
        self.assertIn("AGENTRY_CAPACITY: invalid value '0' for --capacity",
                      H.one_error_line(self, r, rc=2))
        r = self.run_cli("hub", "--threads", "x", env={"AGENTRY_THREADS": "lots"})
        self.assertIn("'x' for --threads", H.one_error_line(self, r, rc=2))


if __name__ == "__main__":
    H.main()
