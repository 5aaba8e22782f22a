"""tests/e2e/test_readme_tour.py - the README's "A short CLI tour" runs as printed.

The tour's shell block is taken from README.md and run by bash line by line, with the binaries
installed by `cmake --install` into a temp prefix first on PATH, in a temp HOME and working
directory (so the hub's default store goes to the temp HOME's data directory, as the tour says).

What differs from a person typing the block, and why:
- the port: 127.0.0.1:7070 becomes a free port in the lines, and AGENTRY_HUB names it for the lines
  that rely on the default (the plaintext and TLS runs of this file, and other tests, run at once);
- after a line that starts a daemon in the background (`... &`), the script waits until the hub
  answers and lists as many ready nodes as were started, as a person would before typing on (the
  wait is a line of its own between the tour's lines, not a change to them);
- the TLS run drops AGENTRY_TLS_DIR: the tour is about plaintext on loopback, and its two nodes
  would share one certificate, hence one node id.
The daemons are stopped by their PIDs (noted from $!) with SIGTERM, and must exit 0.
"""
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness as H

# The tour's daemons are started by bash, which exits before they stop: as their subreaper we
# inherit them, so that their exit statuses can be checked.
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

README = os.path.join(H.AGENTRY_SRC, "README.md")


def tour_lines():
    """The lines of the first ```sh block after the "## A short CLI tour" heading."""
    with open(README) as f:
        text = f.read()
    m = re.search(r"^## A short CLI tour\n.*?^```sh\n(.*?)^```", text, re.S | re.M)
    if not m:
        raise AssertionError("README.md has no sh block under '## A short CLI tour'")
    return m.group(1).splitlines()


# Wait (at most 30 s) until the hub answers `agentry nodes` with at least $1 ready nodes.
READY_FN = r'''
__tour_ready() {
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    if out=$(agentry nodes 2>/dev/null); then
      [ "$(printf '%s\n' "$out" | grep -c ' ready ')" -ge "$1" ] && return 0
    fi
    sleep 0.05  # a poll interval; the condition decides
  done
  echo "tour: the hub and $1 node(s) were not ready within 30s" >&2
  return 1
}
trap 'echo "tour: FAILED (status $?): $BASH_COMMAND" >&2' ERR
set -e
'''


class ReadmeTourTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-e2e-tour-")
        if not H.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.dir, True)
        self.prefix = os.path.join(self.dir, "prefix")
        build = os.path.dirname(os.path.abspath(H.AGENTRY_BIN))
        r = subprocess.run(["cmake", "--install", build, "--prefix", self.prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.pids = []

    def stop_daemons(self):
        """SIGTERM each daemon and reap it (we are their subreaper); returns the problems."""
        problems = []
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                problems.append("pid %d had already exited" % pid)
        for pid in self.pids:
            got = H.wait_for(lambda: (lambda r: r if r[0] else None)(os.waitpid(pid, os.WNOHANG)),
                             timeout=15, what="pid %d to exit" % pid)
            code = os.waitstatus_to_exitcode(got[1])
            if code != 0:
                problems.append("pid %d exited with %d after SIGTERM, want 0" % (pid, code))
        return problems

    def test_tour_runs_as_printed(self):
        port = H.free_port()
        addr = "127.0.0.1:%d" % port
        pidfile = os.path.join(self.dir, "pids")
        script = [READY_FN]
        daemons = 0
        for line in tour_lines():
            line = line.replace("127.0.0.1:7070", addr)
            script.append(line)
            if re.search(r"&\s*(#.*)?$", line) and not re.search(r"&&", line):
                daemons += 1
                script.append("echo $! >> %s" % pidfile)
                # The hub first (0 nodes), then each node once it is ready.
                script.append("__tour_ready %d" % (daemons - 1))
        path = os.path.join(self.dir, "tour.sh")
        with open(path, "w") as f:
            f.write("\n".join(script) + "\n")
        home = os.path.join(self.dir, "home")
        cwd = os.path.join(self.dir, "cwd")
        os.makedirs(home)
        os.makedirs(cwd)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AGENTRY_") and not k.startswith("XDG_")}
        env.update(HOME=home, AGENTRY_HUB=addr,
                   PATH=os.path.join(self.prefix, "bin") + os.pathsep + env.get("PATH", ""))
        log = os.path.join(self.dir, "tour.log")
        with open(log, "wb") as out:
            p = subprocess.Popen(["bash", "--noprofile", "--norc", path], cwd=cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = p.wait(timeout=150)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                if os.path.exists(pidfile):
                    with open(pidfile) as f:
                        self.pids = [int(x) for x in f.read().split()]
                leftover = self.stop_daemons()
        with open(log, errors="replace") as f:
            text = f.read()
        rep = H.sanitizer_report(text)
        self.assertIsNone(rep, rep)
        self.assertEqual(rc, 0, "the tour failed:\n" + text[-6000:])
        self.assertEqual(leftover, [], text[-3000:])
        self.assertEqual(daemons, 3, "the tour starts a hub and two nodes")
        self.assertIn("pong", text)
        # The hub's store went to the data directory, not the working directory.
        self.assertTrue(os.path.exists(os.path.join(home, ".local", "share", "agentry",
                                                    "agentry.db")), os.listdir(home))
        self.assertFalse(os.path.exists(os.path.join(cwd, "agentry.db")))


if __name__ == "__main__":
    H.main()
