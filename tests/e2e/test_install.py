"""tests/e2e/test_install.py - what `make install` installs, and that it runs from there.

`make install` itself builds a Release tree first (minutes on 2 cores), so this installs the build
under test with the same command it ends with, `cmake --install BUILD --prefix P` (and DESTDIR),
and checks the Makefile's recipe with `make -n`. The installed agent-hub and agent-node then run
a turn together, found through PATH only (under TLS in the e2e-tls run, as every other test).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import harness as H

BUILD = os.path.dirname(os.path.abspath(H.AGENTRY_BIN))


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-e2e-install-")
        if not H.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.dir, True)

    def install(self, prefix, destdir=None):
        env = dict(os.environ)
        env.pop("DESTDIR", None)
        if destdir:
            env["DESTDIR"] = destdir
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def check_bin(self, bindir):
        self.assertTrue(os.access(os.path.join(bindir, "agentry"), os.X_OK))
        for alias in ("agent-hub", "agent-node"):
            path = os.path.join(bindir, alias)
            self.assertTrue(os.path.islink(path), path)
            self.assertEqual(os.readlink(path), "agentry")  # relative: the tree can move

    def test_prefix_and_destdir(self):
        prefix = os.path.join(self.dir, "usr")
        self.install(prefix)
        self.check_bin(os.path.join(prefix, "bin"))
        self.assertTrue(os.path.isfile(os.path.join(prefix, "share", "doc", "agentry",
                                                    "README.md")))
        self.assertTrue(os.path.isfile(os.path.join(prefix, "share", "doc", "agentry", "docs",
                                                    "operations.md")))
        # DESTDIR: staged under it, as a package build does.
        stage = os.path.join(self.dir, "stage")
        self.install("/opt/agentry", destdir=stage)
        self.check_bin(os.path.join(stage, "opt", "agentry", "bin"))

    def test_make_install_recipe(self):
        if not shutil.which("make"):
            self.skipTest("make is not installed")
        r = subprocess.run(["make", "-n", "-C", H.AGENTRY_SRC, "install", "PREFIX=/p q",
                            "DESTDIR=/d"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('DESTDIR="/d" cmake --install build-release --prefix "/p q"', r.stdout)
        r = subprocess.run(["make", "-n", "-C", H.AGENTRY_SRC, "uninstall", "PREFIX=/p"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn('"/p/bin/agent-hub"', r.stdout)

    def test_installed_binaries_run(self):
        prefix = os.path.join(self.dir, "usr")
        self.install(prefix)
        bindir = os.path.join(prefix, "bin")
        # Under AGENTRY_E2E_TLS, AGENTRY_TLS_DIR stays: the installed hub, node and CLI use TLS.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AGENTRY_") or k == "AGENTRY_TLS_DIR"}
        env.update(PATH=bindir + os.pathsep + env.get("PATH", ""), HOME=self.dir,
                   XDG_DATA_HOME="", XDG_CONFIG_HOME="")
        for cmd in (["agentry", "version"], ["agent-hub", "--help"], ["agent-node", "--help"]):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: agentry hub", subprocess.run(
            ["agent-hub", "--help"], env=env, capture_output=True, text=True).stdout)
        port = H.free_port()
        addr = "127.0.0.1:%d" % port
        # Proc adds env to this process's environment: empty AGENTRY_* variables are unset.
        penv = dict(env, AGENTRY_STORE="", AGENTRY_HUB="")
        hub = H.Proc("hub", ["agent-hub", "--listen", addr], os.path.join(self.dir, "hub.log"),
                     env=penv).start()
        self.addCleanup(hub.kill_if_running)
        node = H.Proc("node", ["agent-node", "join", "--hub", addr, "--node-id", "i1"],
                      os.path.join(self.dir, "node.log"), env=penv).start()
        self.addCleanup(node.kill_if_running)

        def ready():
            r = subprocess.run(["agentry", "nodes", "--hub", addr], env=env, capture_output=True,
                               text=True, timeout=30)
            return r.returncode == 0 and " ready " in r.stdout
        H.wait_for(ready, timeout=30, what="the installed hub and node")
        r = subprocess.run(["agentry", "invoke", "--hub", addr, "--tool", "echo",
                            "echo x; final installed"], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "installed\n"), r.stderr)
        self.assertIsNone(node.stop())
        self.assertIsNone(hub.stop())
        self.assertTrue(os.path.isfile(os.path.join(self.dir, ".local", "share", "agentry",
                                                    "agentry.db")))


if __name__ == "__main__":
    H.main()
