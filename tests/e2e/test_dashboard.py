"""tests/e2e/test_dashboard.py - the hub's web dashboard in a real browser (issue 18, point 3): a
hub serving `--http-listen` and 3 nodes, and Debian's Chromium driven over the DevTools protocol
by Playwright (tests/browser/dashboard.mjs, playwright-core only, with the system browser).

The script opens the dashboard (in TLS mode over https with the harness CA, signing in with a
bearer token from a policy file), spawns an agent from the page whose echo call asks for
approval, sees its steps appear live in the timeline, approves the call there and sees the final
answer; checks the tool log, that the heat-map has cells with usage, that the nodes panel lists
the 3 nodes (cordoning one and lifting it), and the sub-agent tree of a team (a parent this test
spawned through the API, whose two children ran by themselves); denies, from the approvals panel,
the call of an agent this test spawned through the API; and, with every API call failing as if
the hub were gone, replays a file `agentry trace --jsonl` wrote, dropped on the page. This test
then checks through gRPC that the page's actions took effect.

Screenshots of each panel go to <build>/artifacts/dashboard[-tls]/ (their paths are printed), and
the page's first paint and event-to-screen latencies (the hub's time of each event to the frame
that shows it) are printed; no timing is asserted.

playwright-core comes from npm, pinned by tests/browser/package.json and package-lock.json,
installed with `npm ci` into <build>/browser-tests (again only when the lock changes). Without
node, npm or chromium, or without the registry, the test is skipped (exit 77, ctest's
SKIP_RETURN_CODE) with the reason printed.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SKIP = 77
BROWSER_DIR = os.path.join(H.AGENTRY_SRC, "tests", "browser")
BUILD = os.path.dirname(os.path.abspath(H.AGENTRY_BIN))
CACHE = os.path.join(BUILD, "browser-tests")
PLAYWRIGHT = os.path.join(CACHE, "node_modules", "playwright-core", "package.json")
ARTIFACTS = os.path.join(BUILD, "artifacts", "dashboard-tls" if H.E2E_TLS else "dashboard")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HTTP_PORT = H.free_port()
WORK = tempfile.mkdtemp(prefix="agentry-e2e-dashboard-")


def install_playwright():
    """The reason to skip (no chromium, node or npm; npm ci failed), or None once playwright-core
    is installed in CACHE."""
    if not os.access(CHROMIUM, os.X_OK):
        return "chromium is not installed (apt-get install chromium)"
    return H.npm_ci(BROWSER_DIR, CACHE, PLAYWRIGHT)


def token_policy():
    """TLS mode: an admin token for the page and the policy file that holds it (the harness's
    certificates keep their own roles: the policy binds no identity)."""
    r = H.run_cli(["token", "create", "--role", "admin", "--namespace", "*", "--name", "dashboard"])
    if r.returncode != 0:
        raise AssertionError("agentry token create: %s" % r.stderr)
    token = r.stdout.splitlines()[0].split()[1]
    entry = r.stdout.split("\n\n", 1)[1].split("\n", 1)[1]
    path = os.path.join(WORK, "policy.yaml")
    with open(path, "w") as f:
        f.write("tokens:\n" + entry)
    return token, path


TOKEN, POLICY = token_policy() if H.E2E_TLS else ("", None)


class DashboardTest(H.ClusterTestCase):
    NODES = 3
    HUB_ARGS = ("--http-listen", "127.0.0.1:%d" % HTTP_PORT) + (
        ("--policy", POLICY) if POLICY else ())

    def test_dashboard_in_chromium(self):
        T, hub = self.T, self.s.hub
        # Usage for the heat-map, an agent for the list, and its trace for the replay.
        warm = self.c.hub.Invoke(hub.InvokeRequest(spec=self.c.spec(name="warmup"), input="hello"),
                                 timeout=20)
        self.assertEqual(warm.state, T.AGENT_STATE_IDLE, warm)
        r = H.run_cli(["trace", "--hub", self.c.addr, "--jsonl", warm.agent_id])
        self.assertEqual(r.returncode, 0, r.stderr)
        jsonl = os.path.join(WORK, "trace.jsonl")
        with open(jsonl, "w") as f:
            f.write(r.stdout)
        # A team for the sub-agent tree: a parent whose two children run on any node.
        kids = ";".join('call spawn_agent {"input":"hi","name":"child-%d","tools":["echo"]}' % i
                        for i in (1, 2))
        team = self.c.hub.Invoke(hub.InvokeRequest(
            spec=self.c.spec(tools=("spawn_agent", "echo"), name="team"), input=kids), timeout=20)
        self.assertEqual(team.state, T.AGENT_STATE_IDLE, team)
        # A call waiting for approval, which the page denies.
        spec = self.c.spec(name="to-deny", permissions=[T.PermissionRule(tool="echo", decision="ask")])
        waiter = self.c.hub.Spawn(hub.SpawnRequest(spec=spec, input='call echo {"text":"deny me"}'),
                                  timeout=10).agent_id
        self.c.wait_kind(waiter, T.EVENT_KIND_APPROVAL_REQUIRED, timeout=20)

        os.makedirs(ARTIFACTS, exist_ok=True)
        cfg = os.path.join(WORK, "config.json")
        with open(cfg, "w") as f:
            json.dump({"url": "%s://127.0.0.1:%d/" % ("https" if H.E2E_TLS else "http", HTTP_PORT),
                       "token": TOKEN, "chromium": CHROMIUM, "out_dir": ARTIFACTS,
                       "jsonl": jsonl, "deny_agent": waiter, "team_agent": team.agent_id,
                       "nodes": self.NODES}, f)
        script = os.path.join(CACHE, "dashboard.mjs")
        shutil.copy(os.path.join(BROWSER_DIR, "dashboard.mjs"), script)
        p = subprocess.run(["node", script, cfg], capture_output=True, text=True, timeout=120,
                           cwd=CACHE)
        lines = p.stdout.strip().splitlines()
        out = json.loads(lines[-1]) if lines else {}
        for path in out.get("screenshots", []):
            print("screenshot: %s" % path)
        self.assertEqual(p.returncode, 0, "dashboard.mjs failed:\n%s\n%s" % (p.stderr[-3000:],
                                                                            p.stdout[-2000:]))
        self.report(out)

        # What the page did, seen through gRPC.
        mine = self.c.get(out["agent_id"])
        self.assertEqual(mine.state, T.AGENT_STATE_IDLE, mine)
        self.assertEqual(mine.spec.name, "dash-e2e")
        self.assertEqual(mine.last_output, "approved from the page")
        end = self.c.wait_turn_end(waiter, timeout=20)
        self.assertEqual(end.kind, T.EVENT_KIND_FINAL, end)
        self.assertIn("not from a browser test", H.payload(end)["output"])
        nodes = self.c.hub.ListNodes(hub.ListNodesRequest(), timeout=10).nodes
        self.assertEqual(sorted(n.state for n in nodes), ["ready"] * 3)
        self.assertEqual(out["replay_events"], len(r.stdout.strip().splitlines()))
        self.assertGreater(out["heatmap_nonzero_cells"], 0)

    def report(self, out):
        paint = out.get("paint", {})
        print("first paint: %.0f ms, first contentful paint: %.0f ms, DOMContentLoaded: %.0f ms" % (
            paint.get("first-paint", -1), paint.get("first-contentful-paint", -1),
            out.get("dom_content_loaded_ms", -1)))
        # Events after the approval arrive while the page watches: the live path.
        lat = [x["ms"] for x in out.get("latencies", [])]
        live = [x["ms"] for x in out.get("latencies", []) if x["seq"] > 7]
        if lat:
            print("event-to-screen latency over %d events: median %.1f ms, max %.1f ms; "
                  "after the approval (%d events): median %.1f ms" % (
                      len(lat), statistics.median(lat), max(lat), len(live),
                      statistics.median(live) if live else -1))
        print("heat-map: %d cells with usage (%s)" % (out.get("heatmap_nonzero_cells", 0),
                                                       out.get("usage_source", "")))


if __name__ == "__main__":
    why = install_playwright()
    if why:
        print("SKIP: the browser test cannot run: %s" % why)
        sys.exit(SKIP)
    try:
        H.main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
