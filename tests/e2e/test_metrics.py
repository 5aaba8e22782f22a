"""tests/e2e/test_metrics.py - Prometheus /metrics on the hub and a node (issue 18, point 1).

A hub and one node run with --metrics-listen on free ports. After an agent's turn (a model call,
an echo tool call, another model call) the hub's page shows the Spawn RPC, store commits, the
placement, the node and the agent by state, and the node's shows the model calls, tokens and the
tool call with its latency; both carry the process's own series and every queue's depth and
refusals by queue name. `promtool check metrics`
accepts both pages, and a real Prometheus server scraping both every second returns a hub and a
node series through its HTTP API. Any other path is 404, and a metrics address in use stops the
command with one error line.

Needs Debian's prometheus package (promtool and prometheus); exits 77 (skipped) without it.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def get(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def value(text, series):
    """The value of one exact series line (name{labels}), or None."""
    m = re.search(r"^%s (\S+)$" % re.escape(series), text, re.M)
    return float(m.group(1)) if m else None


class MetricsTest(H.ClusterTestCase):
    NODES = 0
    HUB_METRICS = H.free_port()
    HUB_ARGS = ("--metrics-listen", "127.0.0.1:%d" % HUB_METRICS)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.node_metrics = H.free_port()
        cls.c.add_node("n1", extra=("--metrics-listen", "127.0.0.1:%d" % cls.node_metrics))

    def run_agent(self):
        c = self.c
        aid = c.spawn("echo one; final two").agent_id
        end = c.wait_turn_end(aid)
        self.assertEqual(H.payload(end)["output"], "two")
        return aid

    def test_pages_count_what_happened_and_pass_promtool(self):
        self.run_agent()
        ctype, hub = get(self.HUB_METRICS)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        spawn = 'agentry_rpc_server_handled_total{method="agentry.v1.AgentHub/Spawn",code="OK"}'
        self.assertGreaterEqual(value(hub, spawn) or 0, 1, hub)
        self.assertGreaterEqual(value(hub, 'agentry_rpc_server_handling_seconds_count'
                                      '{method="agentry.v1.AgentHub/Spawn"}') or 0, 1)
        self.assertGreaterEqual(value(hub, "agentry_store_commits_total") or 0, 1)
        self.assertGreaterEqual(value(hub, "agentry_store_commit_seconds_count") or 0, 1)
        self.assertGreaterEqual(value(hub, "agentry_scheduler_placements_total") or 0, 1)
        self.assertEqual(value(hub, "agentry_nodes"), 1)
        self.assertGreaterEqual(value(hub, 'agentry_agents{state="idle"}') or 0, 1)
        self.assertGreater(value(hub, "process_resident_memory_bytes") or 0, 1 << 20)
        self.assertGreater(value(hub, "process_open_fds") or 0, 3)
        # Every queue by name (the mailboxes of all agents add up in one series).
        for q in ("store.writes", "agent.mailbox"):
            self.assertIsNotNone(value(hub, 'agentry_queue_depth{queue="%s"}' % q), hub)
            self.assertIsNotNone(value(hub, 'agentry_queue_refusals_total{queue="%s"}' % q))

        # The node's page is read after the turn ended: its counts are final.
        _, node = get(self.node_metrics)
        self.assertGreaterEqual(value(node, 'agentry_model_calls_total{model="mock",outcome="ok"}')
                                or 0, 2, node)
        self.assertGreater(value(node, 'agentry_model_tokens_total{model="mock",type="input"}')
                           or 0, 0)
        self.assertGreaterEqual(value(node, 'agentry_tool_calls_total{tool="echo",outcome="ok"}')
                                or 0, 1)
        self.assertGreaterEqual(value(node, 'agentry_tool_call_seconds_count{tool="echo"}') or 0, 1)
        self.assertEqual(value(node, 'agentry_tool_call_seconds_bucket{tool="echo",le="+Inf"}'),
                         value(node, 'agentry_tool_call_seconds_count{tool="echo"}'))
        self.assertIsNotNone(value(node, "agentry_node_running_turns"))
        self.assertGreater(value(node, "process_threads") or 0, 1)
        for q in ("runner.ready", "node.outbox"):
            self.assertIsNotNone(value(node, 'agentry_queue_depth{queue="%s"}' % q), node)
            self.assertIsNotNone(value(node, 'agentry_queue_refusals_total{queue="%s"}' % q))

        for name, text in (("hub", hub), ("node", node)):
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 0, "promtool on the %s's page: %s%s" % (
                name, r.stdout, r.stderr))

    def test_trace_followers_are_counted_while_they_follow(self):
        aid = self.run_agent()
        followers = lambda: value(get(self.HUB_METRICS)[1],  # noqa: E731
                                  'agentry_trace_followers{reader="grpc"}')
        # wait_turn_end's own follow may still be ending
        H.wait_for(lambda: followers() == 0, 10, what="no follower")
        call = self.c.hub.Trace(self.s.hub.TraceRequest(agent_id=aid, follow=True), timeout=30)
        next(call)  # the stream is open: the follower is registered before the first event
        self.assertEqual(followers(), 1)
        self.assertEqual(value(get(self.HUB_METRICS)[1],
                               'agentry_trace_followers{reader="dashboard"}'), 0)
        call.cancel()
        H.wait_for(lambda: followers() == 0, 10, what="the cancelled follower to be gone")

    def test_other_paths_are_404(self):
        with self.assertRaises(urllib.error.HTTPError) as e:
            get(self.HUB_METRICS, "/")
        self.assertEqual(e.exception.code, 404)

    def test_address_in_use_is_one_error_line(self):
        taken = "127.0.0.1:%d" % self.HUB_METRICS
        r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "dup",
                       "--metrics-listen", taken], timeout=30)
        line = H.one_error_line(self, r)
        self.assertIn(taken, line)
        r = H.run_cli(["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store",
                       "sqlite:" + os.path.join(self.c.dir, "other.db"), "--metrics-listen",
                       taken], timeout=30)
        line = H.one_error_line(self, r)
        self.assertIn(taken, line)

    def test_prometheus_scrapes_both(self):
        self.run_agent()
        d = tempfile.mkdtemp(prefix="agentry-prometheus-", dir=self.c.dir)
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: agentry-hub\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n"
                    "  - job_name: agentry-node\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % (self.HUB_METRICS, self.node_metrics))
        port = H.free_port()
        log = open(os.path.join(d, "prometheus.log"), "w")
        p = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + d,
                              "--web.listen-address=127.0.0.1:%d" % port], stdout=log,
                             stderr=subprocess.STDOUT)
        try:
            def query(q):
                url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(q))
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = json.load(r)
                return body["data"]["result"] if body.get("status") == "success" else []

            hub = H.wait_for(lambda: query('agentry_store_commits_total{job="agentry-hub"}'), 60,
                             interval=0.2, what="Prometheus to return a hub series")
            self.assertGreaterEqual(float(hub[0]["value"][1]), 1)
            node = H.wait_for(lambda: query('agentry_model_calls_total{job="agentry-node"}'), 60,
                              interval=0.2, what="Prometheus to return a node series")
            self.assertEqual(node[0]["metric"]["model"], "mock")
            up = H.wait_for(lambda: len(query("up == 1")) == 2 and query("up == 1"), 30,
                            interval=0.2, what="both targets up")
            self.assertEqual(sorted(u["metric"]["job"] for u in up),
                             ["agentry-hub", "agentry-node"])
        finally:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
            log.close()


if __name__ == "__main__":
    if not PROMTOOL or not PROMETHEUS:
        print("skipped: promtool and prometheus are not installed (Debian package prometheus; "
              "deploy/deps.sh --test)")
        sys.exit(77)
    H.main()
