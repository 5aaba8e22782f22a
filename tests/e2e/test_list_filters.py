"""tests/e2e/test_list_filters.py - ListAgents filters (issue point 11), through the Python stubs
and through `agentry ps`.

A state outside the enum is INVALID_ARGUMENT; label_selector takes every Kubernetes
equality-based form and refuses a malformed one naming the bad term; name and request_id match
exactly; the filters combine; a page stops before 4 MiB (page_size 100 of ~200 KB agents gives
fewer than 100 a page) and next_page_token reaches every agent. Each test tags its agents with a
label of its own, so the tests share one hub without seeing each other's agents.
"""
import json
import os
import sys
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

import grpc  # noqa: E402

FOUR_MIB = 4 * 1024 * 1024


class ListFiltersTest(H.ClusterTestCase):
    NODES = 0  # agents spawned without input stay idle; no turn is needed here

    # --- helpers ---------------------------------------------------------------------------

    def tag(self):
        return "t%s" % uuid.uuid4().hex[:12]

    def spawn(self, suite, name="", labels=None, request_id="", system_prompt=""):
        spec = self.T.AgentSpec(name=name, labels=dict(labels or {}, suite=suite),
                                system_prompt=system_prompt)
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, request_id=request_id),
                                timeout=10).agent_id

    def list(self, channel=None, **kw):
        """Every page of ListAgents(**kw); returns (agents, pages) with pages the raw responses."""
        stub = self.s.hub_grpc.AgentHubStub(channel) if channel else self.c.hub
        agents, pages, token = [], [], ""
        while True:
            r = stub.ListAgents(self.s.hub.ListAgentsRequest(page_token=token, **kw), timeout=30)
            pages.append(r)
            agents.extend(r.agents)
            token = r.next_page_token
            if not token:
                return agents, pages
            self.assertLess(len(pages), 1000, "paging does not end")

    def ids(self, **kw):
        return [a.id for a in self.list(**kw)[0]]

    def assert_invalid(self, req, *needles):
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.hub.ListAgents(req, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                         cm.exception.details())
        for n in needles:
            self.assertIn(n, cm.exception.details())
        return cm.exception.details()

    def cli(self, *args):
        return H.run_cli(list(args) + ["--hub", self.c.addr])

    def ps(self, *args):
        r = self.cli("ps", "--json", "--all", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return [a["id"] for a in json.loads(r.stdout)["agents"]]

    # --- state -----------------------------------------------------------------------------

    def test_state_outside_the_enum_is_invalid_argument(self):
        for state in (7, 99, 1 << 20):
            with self.subTest(state=state):
                self.assert_invalid(self.s.hub.ListAgentsRequest(state=state), "state")
        # Every value of the enum is accepted.
        for state in self.T.AgentState.values():
            self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(state=state, page_size=1),
                                  timeout=10)

    # --- label selector --------------------------------------------------------------------

    def test_selector_forms(self):
        s = self.tag()
        a = self.spawn(s, labels={"team": "core", "tier": "gold"})
        b = self.spawn(s, labels={"team": "core"})
        c = self.spawn(s, labels={"team": "ml", "tier": ""})
        d = self.spawn(s)
        e = self.spawn(s, labels={"team": "core dev", "note": "a=b!"})
        cases = [
            ("", [a, b, c, d, e]),
            ("team=core", [a, b]),
            ("team==core", [a, b]),
            ("team!=core", [c, d, e]),  # absent counts as "not core"
            ("tier", [a, c]),
            ("!tier", [b, d, e]),
            ("tier=", [c]),  # present with the empty value
            ("tier!=", [a, b, d, e]),
            ("team=core,!tier", [b]),
            ("team=core,tier=gold", [a]),
            ("  team = core ,  tier  ", [a]),
            ("team=core dev", [e]),  # values are literal, inner spaces included
            ("note=a=b!", [e]),
            ("team=Core", []),
            ("team=cor", []),
            ("team!=core,team!=ml,team!=core dev", [d]),
            ("nosuchkey", []),
            ("!nosuchkey", [a, b, c, d, e]),
        ]
        for sel, want in cases:
            with self.subTest(selector=sel):
                full = "suite=%s" % s + ("," + sel if sel else "")
                self.assertEqual(self.ids(label_selector=full), want)
                self.assertEqual(self.ids(label_selector=full, page_size=1), want,
                                 "the same agents one page at a time")
                self.assertEqual(self.ps("-l", full), want, "agentry ps -l")
        self.assertEqual(self.ps("--selector", "suite=%s,team=core" % s), [a, b])
        # The selector combines with the state filter: all of these are idle, none running.
        self.assertEqual(self.ids(label_selector="suite=" + s, state=self.T.AGENT_STATE_IDLE),
                         [a, b, c, d, e])
        self.assertEqual(self.ids(label_selector="suite=" + s,
                                  state=self.T.AGENT_STATE_RUNNING), [])

    def test_malformed_selectors(self):
        bad = [("a b", "'a b'"), ("=v", "'=v'"), ("!", "'!'"), ("!k=v", "'!k=v'"),
               ("k!", "'k!'"), ("k!v", "'k!v'"), ("team=core, x y ", "'x y'"),
               ("a=b,", "term 2 is empty"), (",a=b", "term 1 is empty"),
               ("a=b,,c=d", "term 2 is empty")]
        for sel, named in bad:
            with self.subTest(selector=sel):
                self.assert_invalid(self.s.hub.ListAgentsRequest(label_selector=sel),
                                    "label_selector", named)
                # The CLI checks with the hub's own parser before sending: a usage error (2).
                r = self.cli("ps", "-l", sel)
                lines = r.stderr.splitlines()
                self.assertEqual((r.returncode, len(lines), r.stdout), (2, 1, ""), r.stderr)
                self.assertIn(named, lines[0])
        # The length limit: 4096 bytes is fine, one more is not.
        ok = "k=" + "v" * 4094
        self.assertEqual(self.ids(label_selector=ok), [])
        self.assert_invalid(self.s.hub.ListAgentsRequest(label_selector=ok + "v"),
                            "label_selector", "4096")

    # --- name and request_id ---------------------------------------------------------------

    def test_name(self):
        s = self.tag()
        n = "name-" + s
        x = self.spawn(s, name=n, labels={"k": "1"})
        self.spawn(s, name=n + "-longer")
        self.spawn(s, name=n[:-1])
        y = self.spawn(s, name=n)
        self.assertEqual(self.ids(name=n), [x, y], "exactly this name: no prefix, no suffix")
        self.assertEqual(self.ids(name=n, label_selector="k=1"), [x], "filters combine")
        self.assertEqual(self.ids(name=n, state=self.T.AGENT_STATE_KILLED), [])
        self.assertEqual(self.ids(name=n.upper()), [])
        self.assertEqual(self.ps("--name", n), [x, y])
        self.c.kill(y)
        self.assertEqual(self.ids(name=n, state=self.T.AGENT_STATE_KILLED), [y])

    def test_request_id(self):
        s = self.tag()
        rid = "rid-" + s
        x = self.spawn(s, request_id=rid, name="with-rid", labels={"k": "1"})
        self.spawn(s, request_id=rid + "-other")
        plain = self.spawn(s)
        got = self.list(request_id=rid)[0]
        self.assertEqual([a.id for a in got], [x])
        self.assertEqual(got[0].request_id, rid, "Agent carries its request_id")
        self.assertEqual(self.c.get(x).request_id, rid)
        self.assertEqual(self.c.get(plain).request_id, "")
        self.assertEqual(self.ids(request_id=rid[:-1]), [], "exact, not a prefix")
        self.assertEqual(self.ids(request_id="no-such-" + s), [])
        # Combined with the other filters, all must hold.
        self.assertEqual(self.ids(request_id=rid, name="with-rid", label_selector="k=1",
                                  state=self.T.AGENT_STATE_IDLE), [x])
        self.assertEqual(self.ids(request_id=rid, name="other"), [])
        self.assertEqual(self.ids(request_id=rid, label_selector="k=2"), [])
        self.assertEqual(self.ids(request_id=rid, state=self.T.AGENT_STATE_RUNNING), [])
        # Past the agent's position, a page token leaves nothing.
        first = self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(page_size=1,
                                                                   label_selector="suite=" + s),
                                      timeout=10)
        self.assertEqual([a.id for a in first.agents], [x])
        self.assertEqual(self.ids(request_id=rid), [x])
        after = self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(
            request_id=rid, page_token=first.next_page_token), timeout=10)
        self.assertEqual(list(after.agents), [])
        self.assertEqual(after.next_page_token, "")
        # Through the CLI: ps --request-id, and get shows it.
        self.assertEqual(self.ps("--request-id", rid), [x])
        self.assertEqual(self.ps("--request-id", "no-such-" + s), [])
        r = self.cli("get", "--json", x)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["request_id"], rid)
        r = self.cli("get", x)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("request_id:     %s\n" % rid, r.stdout)

    def test_request_id_only_finds_visible_agents(self):
        """An agent being created is in the request-id index before its creating write commits;
        ListAgents must not return it until GetAgent can find it too. Spawns race with lookups
        of the request id being spawned; every agent returned must already be readable."""
        s = self.tag()
        n = 40
        rids = ["race-%s-%d" % (s, i) for i in range(n)]
        stop = threading.Event()
        seen = []

        def spawner():
            try:
                for rid in rids:
                    self.spawn(s, request_id=rid)
            finally:
                stop.set()

        t = threading.Thread(target=spawner)
        t.start()
        try:
            i = 0
            while i < n:
                rid = rids[i]
                done = stop.is_set()  # before the call: then every Spawn has been answered
                r = self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(request_id=rid), timeout=10)
                if r.agents:
                    self.assertEqual(len(r.agents), 1)
                    a = r.agents[0]
                    self.assertEqual(a.request_id, rid)
                    # Visible: GetAgent finds it (NOT_FOUND here would fail the test).
                    self.assertEqual(self.c.get(a.id).id, a.id)
                    seen.append(rid)
                    i += 1
                elif done:
                    self.fail("agent with request id %r not listed after its Spawn answered" % rid)
        finally:
            t.join(30)
        self.assertEqual(seen, rids)

    # --- pages capped by bytes -------------------------------------------------------------

    def test_page_stops_before_4_mib(self):
        s = self.tag()
        prompt = "p" * 200_000
        n = 45  # ~9 MB in all: at least three pages of at most ~20
        want = [self.spawn(s, labels={"big": "yes"}, system_prompt=prompt + str(i))
                for i in range(n)]
        # A channel with gRPC's default 4 MiB receive limit: a page over it would fail here.
        ch = grpc.insecure_channel(self.c.addr)
        try:
            agents, pages = self.list(channel=ch, label_selector="suite=" + s, page_size=100)
            sizes = [p.ByteSize() for p in pages]
            counts = [len(p.agents) for p in pages]
            self.assertEqual([a.id for a in agents], want, "every agent, in order, once")
            self.assertGreaterEqual(len(pages), 3, counts)
            for p, size, count in zip(pages, sizes, counts):
                self.assertLessEqual(size, FOUR_MIB)
                self.assertGreaterEqual(count, 1)
                self.assertLess(count, 100)
                if p.next_page_token:
                    # Full: one more agent would not have fitted.
                    self.assertGreater(size + 200_000, FOUR_MIB, counts)
            for i, a in enumerate(agents):
                self.assertEqual(a.spec.system_prompt, prompt + str(i), "whole agents, not cut")
            # Without a filter too: following the tokens reaches everything, every page fits.
            everything, pages = self.list(channel=ch, page_size=1000)
            self.assertTrue(all(p.ByteSize() <= FOUR_MIB for p in pages))
            ids = [a.id for a in everything]
            self.assertEqual(len(ids), len(set(ids)), "no agent twice")
            pos = [ids.index(x) for x in want]
            self.assertEqual(pos, sorted(pos))
        finally:
            ch.close()
        # agentry ps --all follows the tokens as well.
        self.assertEqual(self.ps("-l", "suite=%s,big" % s, "--limit", "100"), want)
        r = self.cli("ps", "--json", "-l", "suite=%s,big" % s, "--limit", "100")
        self.assertEqual(r.returncode, 0, r.stderr)
        page = json.loads(r.stdout)
        self.assertLess(len(page["agents"]), 100)
        self.assertTrue(page["next_page_token"])


if __name__ == "__main__":
    H.main()
