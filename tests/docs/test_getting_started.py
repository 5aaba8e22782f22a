"""tests/docs/test_getting_started.py - docs/getting-started.md runs as printed.

The page's blocks (tests/docs/docpage.py says how each is marked) become one bash script, run with
the build installed by `cmake --install` into a temporary prefix first on PATH, in a temporary
HOME and working directory (where `deploy/` is a link to the repository's, since the page is
followed from a checkout). The files the page asks to save are written there first.

What differs from a person following the page, and why:
- ports: `agentry dev` gets a free hub port and dashboard address through AGENTRY_PORT and
  AGENTRY_HTTP_LISTEN, and the commands find the hub through AGENTRY_HUB (other tests run at
  the same time); `127.0.0.1:7070` and `:8080` in lines are replaced the same way;
- the real model: `sk-...` becomes a test key and `https://api.openai.com/v1` the address of
  tests/fake_llm.py, which answers "echo: <the question>" as an OpenAI-compatible server;
- pace: before each command the script waits until no agent is running or pending (except on a
  person's approval), as a reader would before typing on; and after starting the first terminal
  it waits for the hub and its 2 nodes;
- Ctrl-C is SIGINT to the first terminal's process group, which must then exit 130.
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import docpage  # noqa: E402
from test_real_models import FakeLLM  # noqa: E402

# The first terminal's processes outlive the bash that started them: as their subreaper we get
# them back, to check how they exit.
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

PAGE = docpage.doc("getting-started.md")

# Helpers the script starts with. __settle: the cluster is at rest (what a reader waits for);
# __ready N: the hub answers and lists N ready nodes; __term_start/__term_stop: the first terminal.
PRELUDE = r'''
set -m
__settle() {
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    if agentry ps --all -o jsonl 2>/dev/null | /usr/bin/python3 -c '
import json, sys
busy = [a for a in map(json.loads, sys.stdin) if a["state"] == "running" or (
    a["state"] == "pending" and not a["state_reason"].startswith("waiting for approval"))]
sys.exit(1 if busy else 0)'; then return 0; fi
    sleep 0.05  # a poll interval; the condition decides
  done
  echo "docs: agents still busy after 30s" >&2; return 1
}
__ready() {
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    if out=$(agentry nodes 2>/dev/null); then
      [ "$(printf '%s\n' "$out" | grep -c ' ready ')" -ge "$1" ] && return 0
    fi
    sleep 0.05  # a poll interval; the condition decides
  done
  echo "docs: the hub and $1 node(s) were not ready within 30s" >&2; return 1
}
__term_start() {
  bash --noprofile --norc -c "$1" >>"$TERM_LOG" 2>&1 &
  TERM_PID=$!
  echo $TERM_PID >"$TERM_PIDFILE"
  __ready 2
}
__term_stop() {
  kill -INT -- -$TERM_PID
  local rc=0
  wait $TERM_PID || rc=$?
  [ $rc -eq 130 ] || { echo "docs: the first terminal exited $rc after Ctrl-C, want 130" >&2; return 1; }
  : >"$TERM_PIDFILE"
}
trap 'echo "docs: FAILED (status $?): $BASH_COMMAND" >&2' ERR
set -e
'''


class GettingStartedTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-docs-gs-")
        if not H.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.dir, True)
        self.prefix = os.path.join(self.dir, "prefix")
        build = os.path.dirname(os.path.abspath(H.AGENTRY_BIN))
        r = subprocess.run(["cmake", "--install", build, "--prefix", self.prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.fake = FakeLLM()
        self.addCleanup(self.fake.stop)

    def subst(self, text):
        return (text.replace("127.0.0.1:7070", self.hub)
                .replace("127.0.0.1:8080", self.dash)
                .replace("sk-...", "sk-docs-test")
                .replace("https://api.openai.com/v1", self.fake.base + "/v1"))

    def script(self):
        lines = [PRELUDE]
        terminals = 0
        for b in docpage.blocks(PAGE):
            if b.tag == "skip":
                continue
            if b.file_name:
                with open(os.path.join(self.cwd, b.file_name), "w") as f:
                    f.write(self.subst(b.body))
            if b.lang != "sh":
                continue
            body = self.subst(b.body)
            if b.tag == "terminal":
                if terminals:
                    lines.append("__term_stop")
                terminals += 1
                lines.append("__term_start %s" % shquote(body))
                continue
            for line in body.splitlines():
                if line.strip():
                    lines += ["__settle", line]
        self.assertEqual(terminals, 2, "the page starts agentry dev, then again with a key")
        return "\n".join(lines) + "\n__settle\n"

    def stop_terminal(self, pidfile):
        """SIGINT (Ctrl-C) to the first terminal still running, if any; returns its exit code."""
        with open(pidfile) as f:
            pid = f.read().strip()
        if not pid:
            return None
        pid = int(pid)
        os.killpg(pid, signal.SIGINT)
        got = H.wait_for(lambda: (lambda r: r if r[0] else None)(os.waitpid(pid, os.WNOHANG)),
                         timeout=20, what="the first terminal to exit")
        return os.waitstatus_to_exitcode(got[1])

    def test_page_runs_as_printed(self):
        self.hub = "127.0.0.1:%d" % H.free_port()
        self.dash = "127.0.0.1:%d" % H.free_port()
        self.cwd = os.path.join(self.dir, "cwd")
        home = os.path.join(self.dir, "home")
        os.makedirs(self.cwd)
        os.makedirs(home)
        os.symlink(os.path.join(H.AGENTRY_SRC, "deploy"), os.path.join(self.cwd, "deploy"))
        path = os.path.join(self.dir, "page.sh")
        with open(path, "w") as f:
            f.write(self.script())
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AGENTRY_", "XDG_", "OPENAI_"))}
        term_log = os.path.join(self.dir, "terminal1.log")
        pidfile = os.path.join(self.dir, "terminal1.pid")
        env.update(HOME=home, AGENTRY_HUB=self.hub, AGENTRY_PORT=self.hub.split(":")[1],
                   AGENTRY_HTTP_LISTEN=self.dash, TERM_LOG=term_log, TERM_PIDFILE=pidfile,
                   PATH=os.path.join(self.prefix, "bin") + os.pathsep + env.get("PATH", ""))
        log = os.path.join(self.dir, "page.log")
        with open(log, "wb") as out:
            p = subprocess.Popen(["bash", "--noprofile", "--norc", path], cwd=self.cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = p.wait(timeout=150)
                # The page leaves agentry dev running, with its dashboard.
                if rc == 0:
                    with urllib.request.urlopen("http://%s/" % self.dash, timeout=10) as r:
                        self.assertIn(b"<!doctype html>", r.read(200))
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                code = self.stop_terminal(pidfile) if os.path.exists(pidfile) else None
        with open(log, errors="replace") as f:
            text = f.read()
        with open(term_log, errors="replace") as f:
            term = f.read()
        # agentry dev's hub and nodes log into its data directory.
        logs = os.path.join(home, ".local", "share", "agentry", "logs")
        daemons = [read(os.path.join(logs, n))
                   for n in sorted(os.listdir(logs))] if os.path.isdir(logs) else []
        for t in [text, term] + daemons:
            rep = H.sanitizer_report(t)
            self.assertIsNone(rep, rep)
        self.assertEqual(rc, 0, "the page failed:\n" + text[-6000:] + "\nterminal 1:\n" +
                         term[-2000:])
        self.assertEqual(code, 130, "agentry dev after Ctrl-C:\n" + term[-2000:])
        self.assertIn("Hello, agentry", text)
        self.assertIn("careful.yaml is a valid spec", text)
        self.assertIn("approval_decided", text)
        self.assertIn("assistant.yaml is a valid spec", text)
        # The real model's answer (here the fake server's) to the page's question.
        self.assertIn("echo: Why store each step of an agent before the next starts?", text)
        # The key reached the model server from the restarted nodes.
        last = self.fake.stats()["last"]
        self.assertEqual(last["headers"].get("authorization"), "Bearer sk-docs-test", last)
        self.assertEqual(json.dumps(last["body"]["model"]), '"gpt-4o-mini"')


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def shquote(s):
    return "'" + s.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    H.main()
