"""tests/e2e/test_certs.py - `agentry certs init|issue|show` as a user runs them.

init writes the CA and the hub, node and admin certificates with the promised modes, issue signs
more with namespaces, show --json reads back what was issued, and bad values (exit 2) and files
that cannot be read or would be overwritten (exit 1) are refused with one stderr line. The
`openssl` program checks the chain independently here; agentry itself never runs it.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

def read(path):
    with open(path) as f:
        return f.read()


INIT_FILES = ["ca.crt", "ca.key", "hub.crt", "hub.key", "node.crt", "node.key", "admin.crt",
              "admin.key"]


class CertsTest(unittest.TestCase):
    def setUp(self):
        os.umask(0o022)  # the modes promised (0644 certificates) are before the umask
        self.tmp = tempfile.mkdtemp(prefix="agentry-e2e-certs-")
        if not H.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dir = os.path.join(self.tmp, "tls")

    def cli(self, *args, rc=0):
        r = H.run_cli(list(args))
        self.assertEqual(r.returncode, rc, "agentry %s: %r" % (" ".join(args), r.stderr))
        return r

    def show(self, path):
        return json.loads(self.cli("certs", "show", "--json", path).stdout)

    def init(self, *extra):
        return self.cli("certs", "init", "--dir", self.dir, *extra)

    def openssl_verify(self, *certs):
        return subprocess.run(["openssl", "verify", "-CAfile", os.path.join(self.dir, "ca.crt")] +
                              [os.path.join(self.dir, c) for c in certs],
                              capture_output=True, text=True, timeout=30)

    def test_init_writes_the_set(self):
        r = self.init("--hosts", "hub.example.com,10.1.2.3", "--days", "40")
        for f in INIT_FILES:
            path = os.path.join(self.dir, f)
            self.assertIn("wrote %s" % path, r.stdout)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            self.assertEqual(mode, 0o600 if f.endswith(".key") else 0o644, f)
        self.assertIn("next:", r.stdout)
        self.assertEqual(r.stderr, "")

        v = self.openssl_verify("hub.crt", "node.crt", "admin.crt")
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

        hub = self.show(os.path.join(self.dir, "hub.crt"))
        self.assertEqual((hub["kind"], hub["name"], hub["role"]), ("hub", "hub.example.com", "none"))
        self.assertEqual(hub["sans"], ["URI:agentry://hub/hub.example.com", "DNS:hub.example.com",
                                       "IP:10.1.2.3", "DNS:localhost", "IP:127.0.0.1", "IP:::1"])
        self.assertEqual(hub["issuer"], "CN=agentry CA")
        want = time.time() + 40 * 86400
        self.assertLess(abs(hub["not_after_unix"] - want), 300)
        node = self.show(os.path.join(self.dir, "node.crt"))
        self.assertEqual((node["kind"], node["name"], node["role"]), ("node", "node1", "node"))
        admin = self.show(os.path.join(self.dir, "admin.crt"))
        self.assertEqual((admin["kind"], admin["name"], admin["role"]), ("user", "admin", "admin"))
        ca = self.show(os.path.join(self.dir, "ca.crt"))
        self.assertTrue(ca["is_ca"])
        self.assertEqual(ca["kind"], "none")
        self.assertIn("no agentry identity", ca["identity_error"])
        # The CA outlives its leaves: 3650 days by default.
        self.assertLess(abs(ca["not_after_unix"] - (time.time() + 3650 * 86400)), 300)

        # Without --force nothing is touched, and the message names the first existing file.
        before = read(os.path.join(self.dir, "hub.crt"))
        line = H.one_error_line(self, H.run_cli(["certs", "init", "--dir", self.dir]), rc=1)
        self.assertIn(os.path.join(self.dir, "ca.crt"), line)
        self.assertIn("--force", line)
        self.assertEqual(read(os.path.join(self.dir, "hub.crt")), before)
        # With --force everything is new, keys still 0600.
        self.init("--force")
        self.assertNotEqual(read(os.path.join(self.dir, "hub.crt")), before)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, "ca.key")).st_mode), 0o600)
        self.assertEqual(self.show(os.path.join(self.dir, "hub.crt"))["name"], "hub")
        # Leaves as long as the CA's default: the CA gets a day more.
        self.init("--force", "--days", "3650")
        ca = self.show(os.path.join(self.dir, "ca.crt"))
        self.assertLess(abs(ca["not_after_unix"] - (time.time() + 3651 * 86400)), 300)

    def test_issue_with_namespaces(self):
        self.init()
        r = self.cli("certs", "issue", "--dir", self.dir, "--role", "operator", "--name", "ci",
                     "--namespace", "team-a", "--namespace", "team-b,team-c", "--days", "7")
        crt = os.path.join(self.dir, "ci.crt")
        self.assertIn("wrote " + crt, r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, "ci.key")).st_mode), 0o600)
        got = self.show(crt)
        self.assertEqual((got["kind"], got["name"], got["role"]), ("user", "ci", "operator"))
        self.assertEqual(got["namespaces"], ["team-a", "team-b", "team-c"])
        self.assertIn("URI:agentry://namespace/team-b", got["sans"])
        self.assertLess(abs(got["not_after_unix"] - (time.time() + 7 * 86400)), 300)

        # A node certificate, to a prefix of our choice.
        prefix = os.path.join(self.tmp, "n7")
        self.cli("certs", "issue", "--dir", self.dir, "--role", "node", "--name", "node-7",
                 "--out", prefix)
        got = self.show(prefix + ".crt")
        self.assertEqual((got["kind"], got["name"], got["role"]), ("node", "node-7", "node"))
        self.assertEqual(got["namespaces"], [])
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(self.dir, "ca.crt"),
                            prefix + ".crt", crt], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

        # Issuing the same name again is refused, then allowed with --force.
        argv = ["certs", "issue", "--dir", self.dir, "--role", "viewer", "--name", "ci"]
        line = H.one_error_line(self, H.run_cli(argv), rc=1)
        self.assertIn(crt, line)
        self.cli(*(argv + ["--force"]))
        self.assertEqual(self.show(crt)["role"], "viewer")

        # No certificate outlives the CA (3650 days here).
        line = H.one_error_line(self, H.run_cli(["certs", "issue", "--dir", self.dir, "--role",
                                                 "viewer", "--name", "v", "--days", "4000"]), rc=1)
        self.assertIn("outlive its CA", line)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "v.key")))

        # The text form names the same things.
        out = self.cli("certs", "show", crt).stdout
        self.assertIn("kind:        user", out)
        self.assertIn("role:        viewer", out)

    def test_bad_usage_exits_2(self):
        self.init()
        d = self.dir
        cases = [
            (["certs", "init"], "missing --dir"),
            (["certs", "init", "--dir", d, "--days", "0"], "--days"),
            (["certs", "init", "--dir", d, "--hosts", "a b"], "--hosts"),
            (["certs", "init", "--dir", d, "--frob"], "unknown flag"),
            (["certs", "issue", "--dir", d, "--name", "x"], "missing --role"),
            (["certs", "issue", "--dir", d, "--role", "root", "--name", "x"], "unknown role 'root'"),
            (["certs", "issue", "--dir", d, "--role", "admin", "--name", "a/b"], "invalid name"),
            (["certs", "issue", "--dir", d, "--role", "admin", "--name", "x", "--namespace",
              "bad ns"], "invalid namespace"),
            (["certs", "issue", "--dir", d, "--role", "admin"], "missing --name"),
            (["certs", "show"], "missing FILE"),
            (["certs", "frob"], "unknown certs command"),
        ]
        for argv, part in cases:
            with self.subTest(argv=argv):
                line = H.one_error_line(self, H.run_cli(argv), rc=2)
                self.assertIn(part, line)

    def test_io_errors_exit_1(self):
        missing = os.path.join(self.tmp, "nope")
        cases = [
            (["certs", "show", os.path.join(missing, "x.crt")],
             "cannot open '%s/x.crt': No such file or directory" % missing),
            (["certs", "issue", "--dir", missing, "--role", "admin", "--name", "x"],
             "cannot open '%s/ca.crt': No such file or directory" % missing),
            (["certs", "init", "--dir", os.path.join(missing, "a", "b")],
             "cannot create '%s/a/b': No such file or directory" % missing),
        ]
        notcert = os.path.join(self.tmp, "notes.txt")
        with open(notcert, "w") as f:
            f.write("hello\n")
        cases.append((["certs", "show", notcert], "no PEM certificate"))
        for argv, part in cases:
            with self.subTest(argv=argv):
                line = H.one_error_line(self, H.run_cli(argv), rc=1)
                self.assertIn(part, line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
