"""tests/e2e/test_namespaces.py - every agent lives in a namespace (hub.proto, "Namespaces"),
through the Python stubs and through the CLI.

Spawn and Invoke take a namespace (empty: "default"), GetAgent and ListAgents show it, the
SPAWNED event carries it; ListAgents filters by it (store pages, and agents the hub holds); a
request_id is unique per namespace only, so two namespaces choosing the same one get two agents
(and a retry in each finds its own, also after a restart); export and import keep it; a malformed name is
INVALID_ARGUMENT naming the rule, and exit status 2 from the CLI before anything is sent. Each
test uses namespaces of its own, so the tests share one hub without seeing each other's agents.
"""
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

import grpc  # noqa: E402

BAD_NAMES = ["Team", "-a", "a-", "a_b", "a.b", "a/b", "x" * 64, "é"]


class NamespacesTest(H.ClusterTestCase):
    NODES = 1

    def ns(self, what):
        return "%s-%s" % (what, uuid.uuid4().hex[:8])

    def spawn(self, ns="", request_id="", text="", name=""):
        spec = self.T.AgentSpec(name=name, tools=["echo"])
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=text, namespace=ns,
                                                        request_id=request_id), timeout=10)

    def list_ids(self, **kw):
        ids, token = [], ""
        while True:
            r = self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(page_token=token, **kw),
                                      timeout=10)
            ids.extend(a.id for a in r.agents)
            token = r.next_page_token
            if not token:
                return ids

    def cli(self, *args, env=None):
        return H.run_cli(list(args) + ["--hub", self.c.addr], env=env)

    def assert_invalid(self, fn, *needles):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                         cm.exception.details())
        for n in needles:
            self.assertIn(n, cm.exception.details())

    def test_spawn_get_list_and_spawned_event(self):
        a_ns, b_ns = self.ns("a"), self.ns("b")
        a1 = self.spawn(a_ns).agent_id
        a2 = self.spawn(a_ns).agent_id
        b1 = self.spawn(b_ns).agent_id
        d1 = self.spawn().agent_id
        self.assertEqual(self.c.get(a1).namespace, a_ns)
        self.assertEqual(self.c.get(b1).namespace, b_ns)
        self.assertEqual(self.c.get(d1).namespace, "default")
        spawned = H.payload(self.c.trace(a1)[0])
        self.assertEqual(spawned["namespace"], a_ns)
        self.assertIn("max_iterations", spawned)  # the spec's keys stay
        self.assertEqual(self.list_ids(namespace=a_ns), [a1, a2])
        self.assertEqual(self.list_ids(namespace=b_ns), [b1])
        self.assertEqual(self.list_ids(namespace=self.ns("none")), [])
        everyone = self.list_ids()
        for aid in (a1, a2, b1, d1):
            self.assertIn(aid, everyone)
        self.assertIn(d1, self.list_ids(namespace="default"))
        self.assertNotIn(a1, self.list_ids(namespace="default"))
        # With a state filter too (the (namespace, state, ...) index), one agent a page.
        idle = self.T.AGENT_STATE_IDLE
        self.assertEqual(self.list_ids(namespace=a_ns, state=idle, page_size=1), [a1, a2])
        self.assertEqual(self.list_ids(namespace=b_ns, state=self.T.AGENT_STATE_KILLED), [])

    def test_same_request_id_in_two_namespaces_gives_two_agents(self):
        a_ns, b_ns = self.ns("a"), self.ns("b")
        rid = "nightly-" + uuid.uuid4().hex[:8]
        ra = self.spawn(a_ns, rid)
        rb = self.spawn(b_ns, rid)
        self.assertNotEqual(ra.agent_id, rb.agent_id)
        self.assertFalse(ra.existing or rb.existing)
        # A retry in each namespace finds its own agent; the default namespace has none.
        again = self.spawn(b_ns, rid)
        self.assertEqual((again.agent_id, again.existing), (rb.agent_id, True))
        rd = self.spawn("", rid)
        self.assertNotIn(rd.agent_id, (ra.agent_id, rb.agent_id))
        # Invoke dedups the same way: a retry in its namespace waits on the same agent.
        spec = self.T.AgentSpec(tools=["echo"])
        rid2 = rid + "-invoke"

        def invoke(ns):
            return self.c.hub.Invoke(self.s.hub.InvokeRequest(
                spec=spec, input="hello", namespace=ns, request_id=rid2), timeout=30)
        first = invoke(a_ns)
        self.assertEqual(invoke(a_ns).agent_id, first.agent_id)
        other = invoke(b_ns)
        self.assertNotEqual(other.agent_id, first.agent_id)
        self.assertEqual(self.c.get(other.agent_id).namespace, b_ns)
        self.assertEqual(other.output, first.output)
        # ListAgents by request id looks in the namespace asked for ("default" without one).
        self.assertEqual(self.list_ids(request_id=rid, namespace=b_ns), [rb.agent_id])
        self.assertEqual(self.list_ids(request_id=rid), [rd.agent_id])

    def test_bad_names_are_invalid_argument(self):
        spec = self.T.AgentSpec()
        for bad in BAD_NAMES:
            with self.subTest(namespace=bad):
                self.assert_invalid(lambda: self.spawn(bad), "namespace", "lowercase")
                self.assert_invalid(lambda: self.c.hub.Invoke(self.s.hub.InvokeRequest(
                    spec=spec, input="x", namespace=bad), timeout=10), "namespace")
                self.assert_invalid(lambda: self.c.hub.ListAgents(
                    self.s.hub.ListAgentsRequest(namespace=bad), timeout=10), "namespace")
        # 63 characters is the longest name.
        self.assertEqual(self.c.get(self.spawn("x" * 63).agent_id).namespace, "x" * 63)

    def test_cli(self):
        a_ns, b_ns = self.ns("a"), self.ns("b")
        r = self.cli("spawn", "-n", a_ns, "--request-id", "same")
        self.assertEqual(r.returncode, 0, r.stderr)
        a1 = r.stdout.strip()
        r = self.cli("spawn", "--request-id", "same", env=dict(os.environ, AGENTRY_NAMESPACE=b_ns))
        self.assertEqual(r.returncode, 0, r.stderr)
        b1 = r.stdout.strip()
        self.assertNotEqual(a1, b1)
        r = self.cli("invoke", "--namespace", b_ns, "hello")
        self.assertEqual(r.returncode, 0, r.stderr)

        r = self.cli("get", "--json", a1)
        self.assertEqual(json.loads(r.stdout)["namespace"], a_ns)
        r = self.cli("get", b1)
        self.assertRegex(r.stdout, r"(?m)^namespace: +%s$" % b_ns)

        r = self.cli("ps", "-n", a_ns)
        self.assertEqual(r.returncode, 0, r.stderr)
        table = r.stdout.splitlines()
        self.assertEqual(table[0].split()[0], "ID")
        self.assertEqual([line.split()[0] for line in table[1:]], [a1])
        r = self.cli("ps", "--all", env=dict(os.environ, AGENTRY_NAMESPACE=b_ns))
        rows = [line.split() for line in r.stdout.splitlines()[1:]]
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[0][0], b1)
        r = self.cli("ps", "--all")
        table = r.stdout.splitlines()
        self.assertEqual(table[0].split()[:2], ["NAMESPACE", "ID"])
        rows = {line.split()[1]: line.split()[0] for line in table[1:]}
        self.assertEqual((rows[a1], rows[b1]), (a_ns, b_ns))
        r = self.cli("ps", "-A", "--all", "--json", env=dict(os.environ, AGENTRY_NAMESPACE=b_ns))
        self.assertIn(a1, [a["id"] for a in json.loads(r.stdout)["agents"]])

        for argv in (["spawn", "-n", "Bad_Name"], ["invoke", "-n", "-x", "hi"],
                     ["ps", "-n", "a.b"]):
            with self.subTest(argv=argv):
                r = self.cli(*argv)
                self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
                self.assertIn("namespace", r.stderr)
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)


class NamespaceTransferTest(H.ClusterTestCase):
    """Agents that are not in the hub's memory: imported from another hub (the namespace comes
    along, and the request id is then unique within it on the importing hub), or read back from
    the store after a restart."""
    NODES = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.b = H.Cluster(nodes=0, name=cls.__name__ + "B")
        cls.addClassCleanup(cls.b.kill_all)
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()
        super().tearDownClass()

    def test_export_import_keeps_the_namespace(self):
        ns = "team-%s" % uuid.uuid4().hex[:8]
        spec = self.T.AgentSpec()
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, namespace=ns, request_id="r1"),
                             timeout=10).agent_id
        x = self.c.hub.ExportAgent(self.s.hub.ExportAgentRequest(agent_id=a), timeout=10)
        self.assertEqual(x.namespace, ns)
        p = os.path.join(self.c.dir, "ns.pb")
        r = H.run_cli(["export", "--hub", self.c.addr, "-o", p, a])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = H.run_cli(["import", "--hub", self.b.addr, p])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.b.get(a).namespace, ns)
        ids = [g.id for g in self.b.hub.ListAgents(self.s.hub.ListAgentsRequest(namespace=ns),
                                                   timeout=10).agents]
        self.assertEqual(ids, [a])
        # The request id came along within its namespace: a retry there finds the import ...
        r = self.b.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, namespace=ns, request_id="r1"),
                             timeout=10)
        self.assertEqual((r.agent_id, r.existing), (a, True))
        # ... and the same request id in "default" is another agent.
        r = self.b.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, request_id="r1"), timeout=10)
        self.assertNotEqual(r.agent_id, a)
        # An export from an older hub (no namespace) lands in "default"; a bad one is refused.
        x.agent_id, x.namespace, x.request_id = self.fresh_id(), "", ""
        self.b.hub.ImportAgent(self.s.hub.ImportAgentRequest(agent=x), timeout=10)
        self.assertEqual(self.b.get(x.agent_id).namespace, "default")
        x.agent_id, x.namespace = self.fresh_id(), "Not-Valid"
        with self.assertRaises(grpc.RpcError) as cm:
            self.b.hub.ImportAgent(self.s.hub.ImportAgentRequest(agent=x), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("namespace", cm.exception.details())

    def test_request_ids_per_namespace_after_restart(self):
        """Agents no longer in memory: the request id is looked up in its namespace in the store,
        and ListAgents pages come from the store's namespace indexes."""
        ns_a, ns_b = ("r%s-%s" % (x, uuid.uuid4().hex[:8]) for x in "ab")
        spec = self.T.AgentSpec()

        def spawn(ns):
            return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, namespace=ns,
                                                            request_id="after-restart"),
                                    timeout=10)
        a, b = spawn(ns_a).agent_id, spawn(ns_b).agent_id
        self.c.stop_hub()
        self.c.start_hub()
        ra, rb = spawn(ns_b), spawn(ns_a)
        self.assertEqual((ra.agent_id, ra.existing, rb.agent_id, rb.existing), (b, True, a, True))
        for ns, aid in ((ns_a, a), (ns_b, b)):
            got = self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(namespace=ns), timeout=10)
            self.assertEqual([(g.id, g.namespace) for g in got.agents], [(aid, ns)])

    def fresh_id(self):
        """An id hub A made (and hub B does not have): a new agent's, on A."""
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=self.T.AgentSpec()),
                                timeout=10).agent_id


if __name__ == "__main__":
    H.main()
