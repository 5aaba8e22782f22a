"""tests/docs/test_cookbook.py - the recipes of docs/cookbook.md work as the page says.

One hub and three nodes (mock, and an `openai` provider pointed at tests/fake_llm.py, which
plays a team-leading model); the page's files are written into a temporary directory and each
recipe's commands run with the CLI there, taken from the page where they are one line. The
research recipe kills the node running the turn mid-step and restarts the hub, with a shorter
mock sleep than the page's (3 s for 15 s: the page leaves a person time to type). The orders API
stand-in listens on a free port instead of 9000.
"""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import docpage  # noqa: E402
from test_real_models import FakeLLM  # noqa: E402

PAGE = docpage.doc("cookbook.md")


def sh_lines(path=PAGE):
    """The page's command lines (continuations joined), in order."""
    out = []
    for b in docpage.blocks(path):
        if b.lang == "sh":
            out += b.body.replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+", " ", x).strip() for x in out if x.strip()]


def line(prefix):
    """The one command line of the page that starts with prefix."""
    got = [x for x in sh_lines() if x.startswith(prefix)]
    assert len(got) >= 1, "the cookbook has no command starting with %r" % prefix
    return got[0]


def mock_script(prefix):
    """The single-quoted mock script of the page's line starting with prefix."""
    m = re.search(r"'([^']*)'\)?$", line(prefix))
    assert m, line(prefix)
    return m.group(1)


class CookbookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeLLM()
        cls.addClassCleanup(cls.fake.stop)
        os.environ["OPENAI_API_KEY"] = "sk-docs-cookbook"
        cls.c = H.Cluster(nodes=3, capacity=4, name="cookbook",
                          node_args=["--model-opt", "openai.base_url=%s/v1" % cls.fake.base])
        cls.c.start()
        cls.addClassCleanup(cls.c.stop)
        cls.dir = tempfile.mkdtemp(prefix="agentry-docs-cookbook-")
        if not H.KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        for name, text in docpage.named_files(PAGE).items():
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)

    def cli(self, *args, ok=True, timeout=60):
        r = H.run_cli(list(args), env={"AGENTRY_HUB": self.c.addr}, cwd=self.dir,
                      timeout=timeout)
        if ok:
            self.assertEqual(r.returncode, 0, "agentry %s: %s" % (" ".join(args), r.stderr))
        return r

    def get(self, aid):
        return json.loads(self.cli("get", "-o", "json", aid).stdout)

    def events(self, aid):
        return [json.loads(x) for x in self.cli("trace", "-o", "jsonl", aid).stdout.splitlines()]

    def wait_state(self, aid, *states, timeout=30):
        return H.wait_for(lambda: (lambda a: a if a["state"] in states else None)(self.get(aid)),
                          timeout, what="agent %s to be %s" % (aid, "/".join(states)))

    def test_scheduled_agent(self):
        create = shlex.split(line("agentry schedule create --cron '0 6"))[1:]
        a = self.cli(*create).stdout.strip()
        b = self.cli(*create).stdout.strip()
        self.assertEqual(a, b, "--request-id makes a retried create return the first schedule")
        self.assertIn("0 6 * * mon-fri", self.cli("schedule", "ls").stdout)
        self.cli("schedule", "delete", a)
        s = self.cli("schedule", "create", "--cron", "*/5 * * * * *", "--input",
                     "final tick").stdout.strip()
        try:
            sel = "agentry.dev/schedule=" + s
            H.wait_for(lambda: "idle" in self.cli("ps", "-l", sel).stdout, 15,
                       what="the schedule's first agent")
        finally:
            self.cli("schedule", "delete", s)

    def test_research_survives_node_and_hub_restarts(self):
        script = mock_script("ID=$(agentry spawn --spec research.yaml --model mock")
        self.assertIn("sleep 15000", script)
        script = script.replace("sleep 15000", "sleep 3000")
        aid = self.cli("spawn", "--spec", "research.yaml", "--model", "mock", "--tool",
                       "memory_put,memory_get,memory_list", script).stdout.strip()
        # Kill the node once the first note is stored (the turn then sleeps before its next step).
        H.wait_for(lambda: any(e["kind"] == "tool_result" for e in self.events(aid)), 15,
                   what="the first memory_put's result")
        node = self.get(aid)["node_id"]
        self.c.nodes[node].sigkill()
        self.c.retired.append(self.c.nodes.pop(node))
        H.wait_for(lambda: self.get(aid)["node_id"] != node, 15, what="the turn to move")
        port = self.c.port
        self.c.stop_hub()
        self.c.start_hub(port=port)
        self.c.add_node(node)
        a = self.wait_state(aid, "idle", timeout=60)
        self.assertEqual(a["last_output"], "session 1 done")
        evs = self.events(aid)
        reasons = [e["payload"]["reason"] for e in evs if e["kind"] == "interrupted"]
        self.assertTrue(any("node lost" in r for r in reasons), reasons)
        self.assertTrue(any("shutting down" in r for r in reasons), reasons)
        calls = [e["payload"]["id"] for e in evs if e["kind"] == "tool_call"]
        self.assertEqual(calls, ["call_1", "call_2", "call_3"], "no stored step ran twice")
        keys = self.cli("memory", "ls", aid).stdout
        self.assertIn("notes/quic", keys)
        self.assertIn("plan", keys)

    def test_team_offline_and_with_a_model_that_waits(self):
        p = self.cli("spawn", "--spec", "agent0.yaml", "--model", "mock",
                     mock_script("P=$(agentry spawn --spec agent0.yaml")).stdout.strip()
        self.wait_state(p, "idle")
        kids = H.wait_for(lambda: (lambda k: k if len(k) == 2 else None)(
            self.get(p).get("children", [])), 15, what="two children")
        ks = [self.wait_state(k, "idle") for k in kids]
        self.assertEqual({k["spec"]["name"] for k in ks}, {"researcher"})
        self.assertNotEqual(ks[0]["node_id"], ks[1]["node_id"], "anti_affinity")
        trace = self.cli("trace", p).stdout
        self.assertEqual(len([x for x in trace.splitlines() if " child " in x]), 2, trace)
        # The spec as a real model drives it: spawn two researchers, wait, combine.
        r = self.cli("invoke", "--spec", "agent0.yaml", "--model", "openai/team:2:researcher",
                     "--timeout", "60s", "Compare head-of-line blocking in HTTP/2 and HTTP/3.")
        self.assertTrue(r.stdout.startswith("team: echo: part 0: Compare"), r.stdout)
        self.assertIn(" | echo: part 1: Compare", r.stdout)

    def test_approval_gate(self):
        aid = self.cli("spawn", "--spec", "deployer.yaml", "--model", "mock",
                       mock_script("ID=$(agentry spawn --spec deployer.yaml --model mock"))
        aid = aid.stdout.strip()
        H.wait_for(lambda: aid in self.cli("approvals", "--agent", aid).stdout, 15,
                   what="the deploy to wait for approval")
        self.cli("deny", aid, "call_3", "--reason", "freeze until Monday")
        self.wait_state(aid, "idle")
        res = {e["payload"]["id"]: e["payload"] for e in self.events(aid)
               if e["kind"] == "tool_result"}
        self.assertIn("[exit status", res["call_1"]["output"])  # allowed: it ran
        self.assertTrue(res["call_2"]["is_error"])
        self.assertIn("rule 3 of the agent's spec (deny shell)", res["call_2"]["output"])
        self.assertIn("freeze until Monday", res["call_3"]["output"])
        # Approving with edited arguments runs the edited command.
        b = self.cli("spawn", "--spec", "deployer.yaml", "--model", "mock",
                     'call shell {"command":"make deploy ENV=staging"}; final done').stdout.strip()
        H.wait_for(lambda: b in self.cli("approvals", "--agent", b).stdout, 15,
                   what="the second deploy to wait")
        self.cli("approve", b, "call_1", "--edit-args",
                 '{"command":"make deploy ENV=staging DRY_RUN=1"}')
        self.wait_state(b, "idle")
        calls = [e["payload"]["arguments"] for e in self.events(b) if e["kind"] == "tool_call"]
        self.assertIn("DRY_RUN=1", calls[-1])
        # The node policy of the recipe loads.
        n = self.c.add_node("policy", extra=["--policy", os.path.join(self.dir,
                                                                      "node-policy.yaml")])
        self.assertIn("node.policy_loaded", n.text())
        self.c.stop_node("policy")

    def test_agent_that_calls_your_apis(self):
        port = H.free_port()
        openapi = os.path.join(self.dir, "orders-openapi.yaml")
        with open(openapi) as f:
            text = f.read()
        self.assertIn("127.0.0.1:9000", text)
        with open(openapi, "w") as f:
            f.write(text.replace("127.0.0.1:9000", "127.0.0.1:%d" % port))
        mk = line("mkdir -p api/orders")
        subprocess.run(["bash", "-c", mk], cwd=self.dir, check=True)
        srv = line("python3 -m http.server 9000").rstrip("&").replace(" 9000 ", " %d " % port)
        p = subprocess.Popen(["bash", "-c", "exec " + srv], cwd=self.dir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(p.wait)
        self.addCleanup(p.terminate)
        H.wait_for(lambda: _reachable(port), 10, what="the API")
        r = self.cli("invoke", "--spec", "support.yaml", "--model", "mock",
                     mock_script("agentry invoke --spec support.yaml"))
        self.assertIn("HTTP 200", r.stdout)
        self.assertIn('{"id":"42","status":"shipped"}', r.stdout)

    def test_agents_from_a_script(self):
        j = json.loads(self.cli(*shlex.split(line("agentry invoke -o json"))[1:]).stdout)
        self.assertEqual((j["state"], j["output"]), ("idle", "42"))
        retry = shlex.split(line("agentry invoke --request-id build-1234-review"))[1:]
        first = self.cli(*retry).stdout
        again = self.cli(*retry).stdout
        self.assertEqual(first, again)
        self.assertEqual(first.strip(), "looks good")
        ps = self.cli("ps", "--request-id", "build-1234-review", "-o", "json").stdout
        self.assertEqual(len(json.loads(ps)["agents"]), 1, "a retry makes no second agent")
        failed = self.cli("invoke", "fail the model is down", ok=False)
        self.assertEqual(failed.returncode, 1)
        self.assertIn("failed: the model is down", failed.stderr)


def _reachable(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    H.main()
