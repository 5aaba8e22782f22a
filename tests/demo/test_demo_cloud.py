"""tests/demo/test_demo_cloud.py - `make demo-cloud` end to end (issue 20, point 1): runs
deploy/local/demo_cloud.sh against the build's binary (not through make, which would rebuild),
on the offline mock model, and while it keeps running checks what it printed and did:

- agent_0's final answer is printed, and is the mock script's answer;
- its two researchers ran on two different nodes, in parallel (both started before either ended),
  and the wait_agent result holds both their answers;
- the write_file call asked for approval and the demo approved it (an APPROVAL_DECIDED event by
  the admin certificate), and the call then ran;
- the dashboard (https, signed in with the printed token) shows agent_0's final answer in its
  timeline, and its two sub-agents in the tree, in the system Chromium with playwright-core
  (tests/demo/dashboard_final.mjs; installed as tests/e2e/test_dashboard.py installs it);
- SIGINT (a Ctrl-C) stops the demo: it exits 130, every process it listed in demo.env is gone,
  and no port it used still accepts connections.

Skipped (exit 77, the reason printed) without PostgreSQL, etcd, chromium, node or npm, or when
npm cannot install playwright-core. Not under tests/e2e: that directory runs every file twice.
"""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SKIP = 77
SRC = os.environ.get("AGENTRY_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BIN = os.environ.get("AGENTRY_BIN") or os.path.join(SRC, "build", "agentry")
BUILD = os.path.dirname(os.path.abspath(BIN))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import harness as H  # noqa: E402  (npm_ci: the dashboard test's playwright-core install)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CACHE = os.path.join(BUILD, "browser-tests")  # shared with tests/e2e/test_dashboard.py
PLAYWRIGHT = os.path.join(CACHE, "node_modules", "playwright-core", "package.json")
ARTIFACTS = os.path.join(BUILD, "artifacts", "demo-cloud")
ANSWER = ("Two researchers answered in parallel on separate nodes: every event is committed to "
          "PostgreSQL before the hub answers, and the spread scheduler keeps the researchers "
          "apart. The report is in report.md.")
UP_S = 120    # the demo is up and its flow has answered
STOP_S = 40   # the demo has stopped everything after SIGINT


def pg_bindir():
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    return out.strip() or "/usr/lib/postgresql/15/bin"


def skip_reason():
    d = pg_bindir()
    if not os.access(os.path.join(d, "initdb"), os.X_OK) and not os.access(
            "/usr/lib/postgresql/15/bin/initdb", os.X_OK):
        return "PostgreSQL is not installed (sh deploy/deps.sh --cloud)"
    if not shutil.which("etcd"):
        return "etcd is not installed (sh deploy/deps.sh --cloud)"
    if not os.access(CHROMIUM, os.X_OK):
        return "chromium is not installed (apt-get install chromium)"
    return H.npm_ci(os.path.join(SRC, "tests", "browser"), CACHE, PLAYWRIGHT)


class Demo:
    """The demo script as a child process; its output is read on a thread, line by line."""

    def __init__(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AGENTRY_", "OPENAI_", "DEMO_"))}
        self.p = subprocess.Popen(["sh", os.path.join(SRC, "deploy", "local", "demo_cloud.sh"), BIN],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env)
        self.lines = []
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait_line(self, prefix, timeout):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("the demo did not print %r within %d s:\n%s" % (
                    prefix, timeout, self.output()))
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("the demo exited (%s) before printing %r:\n%s" % (
                    self.p.wait(), prefix, self.output()))
            if line.startswith(prefix):
                return line

    def output(self):
        return "\n".join(self.lines[-60:])


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


def cli(env, *args):
    r = subprocess.run([BIN] + list(args) + ["--hub", env["HUB"], "--tls-dir", env["TLS_DIR"]],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("agentry %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def events(env, agent):
    return [json.loads(x) for x in cli(env, "trace", "-o", "jsonl", agent).splitlines() if x]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def check_flow(env, demo):
    agent = env["AGENT"]
    printed = demo.lines[demo.lines.index("==> final answer of agent_0:") + 1]
    check(printed == ANSWER, "the printed final answer: %r" % printed)
    evs = events(env, agent)
    final = [e for e in evs if e["kind"] == "final"]
    check(len(final) == 1 and final[0]["payload"]["output"] == ANSWER, "agent_0's FINAL: %s" % final)
    # The approval: asked for write_file, decided 'approved' by the demo's admin certificate,
    # then the call ran.
    asked = [e["payload"] for e in evs if e["kind"] == "approval_required"]
    decided = [e["payload"] for e in evs if e["kind"] == "approval_decided"]
    check(len(asked) == 1 and asked[0]["name"] == "write_file", "approval_required: %s" % asked)
    check(len(decided) == 1 and decided[0].get("decision") == "approved", "decided: %s" % decided)
    results = {e["payload"]["name"]: e["payload"] for e in evs if e["kind"] == "tool_result"}
    check("(created)" in results["write_file"]["output"], "write_file ran: %s" % results)
    # The team: two children on two nodes, working at once, both answers in the wait's result.
    kids = [e["payload"]["agent_id"] for e in evs if e["kind"] == "child"]
    check(len(kids) == 2, "two CHILD events: %s" % kids)
    spans, nodes = [], set()
    for k in kids:
        kev = events(env, k)
        nodes.update(e["node_id"] for e in kev if e["kind"] == "model_request")
        times = [e["time"] for e in kev]
        spans.append((times[0], [e["time"] for e in kev if e["kind"] == "final"][0]))
    check(len(nodes) >= 2, "the children ran on %s" % sorted(nodes))
    check(max(s[0] for s in spans) < min(s[1] for s in spans), "not in parallel: %s" % spans)
    answers = json.loads(results["wait_agent"]["output"])
    check(sorted(a["agent_id"] for a in answers) == sorted(kids)
          and all(a["state"] == "idle" and a["output"] for a in answers),
          "wait_agent's result: %s" % answers)
    print("flow: final answer ok; children %s on nodes %s; approval %s" % (
        kids, sorted(nodes), decided[0].get("by")))


def check_dashboard(env):
    os.makedirs(ARTIFACTS, exist_ok=True)
    cfg = os.path.join(env["DIR"], "browser.json")
    with open(cfg, "w") as f:
        json.dump({"url": "%s#/agent/%s" % (env["DASHBOARD"], env["AGENT"]), "token": env["TOKEN"],
                   "chromium": CHROMIUM, "answer": ANSWER,
                   "screenshot": os.path.join(ARTIFACTS, "agent0.png")}, f)
    script = os.path.join(CACHE, "dashboard_final.mjs")
    shutil.copy(os.path.join(SRC, "tests", "demo", "dashboard_final.mjs"), script)
    p = subprocess.run(["node", script, cfg], capture_output=True, text=True, timeout=90, cwd=CACHE)
    check(p.returncode == 0, "dashboard_final.mjs failed:\n%s\n%s" % (p.stderr[-3000:],
                                                                      p.stdout[-2000:]))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    print("dashboard: the timeline shows the final answer; tree of %d agents; screenshot: %s" % (
        out["tree_nodes"], out["screenshot"]))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def check_stop(env, demo):
    t0 = time.monotonic()
    demo.p.send_signal(signal.SIGINT)
    try:
        rc = demo.p.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        raise AssertionError("the demo did not stop within %d s of SIGINT:\n%s" % (
            STOP_S, demo.output()))
    check(rc == 130, "the demo exited %d after SIGINT, not 130:\n%s" % (rc, demo.output()))
    pids = [int(p) for p in env["PIDS"].split()]
    # PostgreSQL's postmaster is not the demo's child: give its exit a moment to show.
    end = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    check(not [p for p in pids if alive(p)], "still running after the demo stopped: %s" % (
        [p for p in pids if alive(p)]))
    ports = [int(p) for p in env["PORTS"].split()]
    check(not [p for p in ports if listening(p)], "ports still served: %s" % (
        [p for p in ports if listening(p)]))
    check(any("logs and certificates kept in" in x for x in demo.lines), demo.output())
    print("stop: exit 130 in %.1f s; %d processes gone, %d ports free" % (
        time.monotonic() - t0, len(pids), len(ports)))


def main():
    reason = skip_reason()
    if reason:
        print("skipped: %s" % reason)
        return SKIP
    t0 = time.monotonic()
    demo = Demo()
    env = None
    try:
        line = demo.wait_line("==> working directory ", 30)
        state = os.path.join(line.split()[3], "demo.env")
        demo.wait_line("==> the cluster keeps running", UP_S)
        env = read_env(state)
        print("demo up and answered in %.1f s (%s)" % (time.monotonic() - t0, env["DIR"]))
        check_flow(env, demo)
        check_dashboard(env)
        check_stop(env, demo)
    except BaseException:
        print(demo.output())
        raise
    finally:
        if demo.p.poll() is None:
            demo.p.send_signal(signal.SIGINT)
            try:
                demo.p.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                demo.p.kill()
    shutil.rmtree(env["DIR"], ignore_errors=True)
    print("ok in %.1f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
