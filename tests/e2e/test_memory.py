"""tests/e2e/test_memory.py - an agent's durable memory: the memory_* tools end to end (mock model
scripts calling them through the node and the hub), the operator RPCs and CLI.

- KV and vector memory survive a hub restart: an agent puts entries (with the mock's embeddings)
  and searches; the hub is SIGKILLed and started again on the same store; a new turn's
  memory_get and memory_search still find them, and so do `agentry memory ls|get`.
- The embeddings endpoint of an OpenAI-compatible provider (tests/fake_llm.py's /v1/embeddings):
  memory_put stores its vector, memory_search finds by it.
- Limits give clear tool errors (key, namespace, value size, k, search without a model); an
  agent's memory namespaces are separate.
- ListMemory / GetMemory: NOT_FOUND for an unknown agent or key, pages, a killed agent's memory
  still readable; with RBAC (own TLS hub) an agent of another namespace is NOT_FOUND.
- All of MemoryTest again on PostgreSQL (the ctest fixture "pg"), when its server is there.
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_real_models import FakeLLM  # noqa: E402
from test_store_pg import OnPostgres  # noqa: E402

grpc = H.grpc
TOOLS = ("memory_put", "memory_get", "memory_list", "memory_delete", "memory_search")


def call(tool, **args):
    return "call %s %s" % (tool, json.dumps(args))


class MemoryTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeLLM()
        cls.addClassCleanup(cls.fake.stop)
        cls.NODE_ARGS = ("--model-opt", "openai.base_url=%s/v1" % cls.fake.base)
        super().setUpClass()

    def spec(self, embedding="mock"):
        settings = {}
        if embedding:
            settings["memory_search"] = json.dumps({"embedding_model": embedding})
        return self.c.spec(TOOLS, tool_settings=settings)

    def turn(self, steps, agent_id=None, embedding="mock"):
        """Runs one turn of the mock script; returns (agent id, [tool results' payloads])."""
        script = "; ".join(steps + ["final done"])
        h = self.s.hub
        if agent_id is None:
            agent_id = self.c.hub.Spawn(h.SpawnRequest(spec=self.spec(embedding), input=script),
                                        timeout=10).agent_id
            after = 0
        else:
            after = self.c.get(agent_id).last_seq
            self.c.send(agent_id, script)
        end = self.c.wait_turn_end(agent_id, after_seq=after, timeout=30)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        results = [H.payload(e) for e in self.c.trace(agent_id, from_seq=after + 1)
                   if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        return agent_id, results

    def out(self, result):
        self.assertFalse(result["is_error"], result["output"])
        return json.loads(result["output"])

    def cli(self, *args):
        return H.run_cli(list(args) + ["--hub", self.c.addr])

    def get_memory(self, agent_id, key, ns=""):
        return self.c.hub.GetMemory(self.s.hub.GetMemoryRequest(agent_id=agent_id, key=key,
                                                                namespace=ns), timeout=10)

    def list_memory(self, agent_id, **kw):
        return self.c.hub.ListMemory(self.s.hub.ListMemoryRequest(agent_id=agent_id, **kw),
                                     timeout=10)

    def kill_hub(self):
        c = self.c
        port = c.port
        c.hub_proc.sigkill()
        c.retired.append(c.hub_proc)
        c.hub_proc = None
        c.start_hub(port=port)
        c.wait_registered("n1", 1)

    def test_survives_hub_restart(self):
        a, res = self.turn([
            call("memory_put", key="fruit", value="apples and pears are sweet fruit"),
            call("memory_put", key="car", value="a red car drives fast on the road"),
            call("memory_put", key="todo", namespace="notes", value="buy milk\nand bread"),
            call("memory_put", key="car", value="a blue car drives slowly on the road"),
            call("memory_search", query="sweet fruit", k=2),
        ])
        put = self.out(res[0])
        self.assertEqual((put["stored"], put["key"], put["dims"]), (True, "fruit", 256))
        hits = self.out(res[4])["results"]
        self.assertEqual([r["key"] for r in hits], ["fruit", "car"])
        self.assertGreater(hits[0]["score"], hits[1]["score"])

        self.kill_hub()  # SIGKILL: what was acknowledged must be in the store

        _, res = self.turn([
            call("memory_get", key="car"),
            call("memory_get", key="todo", namespace="notes"),
            call("memory_get", key="todo"),  # another namespace: not there
            call("memory_search", query="blue car slowly", k=1),
            call("memory_list", limit=1),
            call("memory_delete", key="fruit"),
            call("memory_search", query="sweet fruit"),
        ], agent_id=a)
        got = self.out(res[0])
        self.assertEqual((got["found"], got["value"]), (True, "a blue car drives slowly on the road"))
        self.assertEqual(self.out(res[1])["value"], "buy milk\nand bread")
        self.assertFalse(self.out(res[2])["found"])
        self.assertEqual([r["key"] for r in self.out(res[3])["results"]], ["car"])
        page = self.out(res[4])
        self.assertEqual(([e["key"] for e in page["entries"]], page["next_after"]), (["car"], "car"))
        self.assertTrue(self.out(res[5])["deleted"])
        self.assertEqual([r["key"] for r in self.out(res[6])["results"]], ["car"])

        # The operators' view, through the RPCs and the CLI.
        e = self.get_memory(a, "todo", "notes")
        self.assertEqual((e.value, e.has_vector, e.dimensions), ("buy milk\nand bread", True, 256))
        r = self.cli("memory", "get", a, "car")
        self.assertEqual((r.returncode, r.stdout), (0, "a blue car drives slowly on the road\n"),
                         r.stderr)
        r = self.cli("memory", "ls", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split()[:5], ["NAMESPACE", "KEY", "BYTES", "VECTOR", "UPDATED"])
        self.assertEqual([ln.split()[:2] for ln in lines[1:]],
                         [["default", "car"], ["notes", "todo"]])
        self.assertIn("buy milk...", lines[2])
        r = self.cli("memory", "ls", "--json", "--namespace", "notes", a)
        self.assertEqual([x["key"] for x in json.loads(r.stdout)["entries"]], ["todo"])

    def test_openai_embeddings(self):
        a, res = self.turn([
            call("memory_put", key="k1", value="the cat sleeps on the mat"),
            call("memory_put", key="k2", value="stock prices fell sharply today"),
            call("memory_search", query="a cat on a mat", k=1, min_score=0.2),
            call("memory_search", query="zebra", min_score=0.9),
        ], embedding="openai/text-embedding-fake")
        self.assertEqual(self.out(res[0])["dims"], 64)  # the fake server's size
        self.assertEqual([r["key"] for r in self.out(res[2])["results"]], ["k1"])
        self.assertEqual(self.out(res[3])["results"], [])
        last = self.fake.stats()["last"]
        self.assertEqual((last["path"], last["body"]["model"]),
                         ("/v1/embeddings", "text-embedding-fake"))

    def test_limits_and_errors(self):
        a, res = self.turn([
            call("memory_put", key="", value="x"),
            call("memory_put", key="k" * 513, value="x"),
            call("memory_put", key="k", namespace="bad ns", value="x"),
            call("memory_put", key="big", value="v" * (64 * 1024 + 1)),
            call("memory_put", key="k"),
            call("memory_list", limit=101),
            call("memory_get", key="k", namespace="n" * 65),
        ])
        errors = [r["output"] for r in res]
        self.assertTrue(all(r["is_error"] for r in res), errors)
        self.assertIn("memory key must be 1 to 512 bytes (this one is 0)", errors[0])
        self.assertIn("(this one is 513)", errors[1])
        self.assertIn("memory namespace 'bad ns' is not 1 to 64 bytes", errors[2])
        self.assertIn("\"value\" is 65537 bytes, over the limit of 65536", errors[3])
        self.assertIn("\"value\" (a string) is required", errors[4])
        self.assertIn("\"limit\" must be 1 to 100", errors[5])
        self.assertIn("is not 1 to 64 bytes", errors[6])
        _, res = self.turn([call("memory_search", query="x")], embedding="")
        self.assertTrue(res[0]["is_error"])
        self.assertIn("no embedding model: set tool_settings.memory_search.embedding_model",
                      res[0]["output"])
        _, res = self.turn([call("memory_search", query="x", k=51)])
        self.assertIn("\"k\" must be 1 to 50", res[0]["output"])
        # Nothing was stored by the refusals.
        self.assertEqual(len(self.list_memory(a).entries), 0)

    def test_rpcs(self):
        h = self.s.hub
        a, _ = self.turn([call("memory_put", key="k%02d" % i, value="v%d" % i, namespace=ns)
                          for ns in ("a", "b") for i in range(3)], embedding="")
        for fn, req, want in (
                (self.c.hub.GetMemory, h.GetMemoryRequest(agent_id="nosuch", key="k"),
                 "no agent with id 'nosuch'"),
                (self.c.hub.ListMemory, h.ListMemoryRequest(agent_id="nosuch"),
                 "no agent with id 'nosuch'"),
                (self.c.hub.GetMemory, h.GetMemoryRequest(agent_id=a, key="k00"),
                 "no key 'k00' in memory namespace 'default' of agent '%s'" % a)):
            with self.assertRaises(grpc.RpcError) as cm:
                fn(req, timeout=10)
            self.assertEqual((cm.exception.code(), cm.exception.details()),
                             (grpc.StatusCode.NOT_FOUND, want))
        with self.assertRaises(grpc.RpcError) as cm:
            self.list_memory(a, page_size=1001)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        # Pages of 4 over (namespace, key): a/k00..k02, b/k00 | b/k01, b/k02.
        first = self.list_memory(a, page_size=4)
        self.assertEqual([(e.namespace, e.key) for e in first.entries],
                         [("a", "k00"), ("a", "k01"), ("a", "k02"), ("b", "k00")])
        self.assertEqual(first.next_page_token, "b/k00")
        second = self.list_memory(a, page_size=4, page_token=first.next_page_token)
        self.assertEqual([e.key for e in second.entries], ["k01", "k02"])
        self.assertEqual(second.next_page_token, "")
        self.assertEqual([e.key for e in self.list_memory(a, namespace="b", prefix="k0",
                                                          page_size=2).entries], ["k00", "k01"])
        # Kept after the agent is killed: operators read it.
        self.c.kill(a)
        self.c.wait_state(a, self.T.AGENT_STATE_KILLED)
        self.assertEqual(self.get_memory(a, "k02", "b").value, "v2")
        r = self.cli("memory", "get", a, "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("error: no key 'nope' in memory namespace 'default'", r.stderr)


PG_CONNINFO = os.environ.get("AGENTRY_PG_CONNINFO_FILE", "")


@unittest.skipUnless(PG_CONNINFO and os.path.exists(PG_CONNINFO),
                     "no PostgreSQL (ctest's fixture pg starts one)")
class MemoryOnPostgresTest(OnPostgres, MemoryTest):
    pass


@unittest.skipIf(H.E2E_TLS, "runs its own TLS hub with a policy in both modes")
class MemoryNamespacesTest(unittest.TestCase):
    """ListMemory and GetMemory scoped like GetAgent: a caller bound to another namespace gets
    NOT_FOUND, as if the agent did not exist."""

    def test_other_namespace_is_not_found(self):
        s = H.stubs()
        d = tempfile.mkdtemp(prefix="agentry-e2e-memory-rbac-")
        self.addCleanup(shutil.rmtree, d, True)
        certs = os.path.join(d, "tls")
        for args in (["certs", "init", "--dir", certs],
                     ["certs", "issue", "--dir", certs, "--role", "viewer", "--name", "bob",
                      "--namespace", "team-b"]):
            r = H.run_cli(args)
            self.assertEqual(r.returncode, 0, r.stderr)
        addr = "127.0.0.1:%d" % H.free_port()
        hub = H.Proc("hub", [H.AGENTRY_BIN, "hub", "--listen", addr, "--store",
                             "sqlite:" + os.path.join(d, "hub.db"), "--tls-dir", certs,
                             "--policy", os.path.join(d, "policy.yaml")],
                     os.path.join(d, "hub.log"))
        with open(os.path.join(d, "policy.yaml"), "w") as f:
            f.write("bindings: []\n")
        hub.start()
        self.addCleanup(lambda: self.assertIsNone(hub.stop()))
        H.wait_for(lambda: "event=hub.started" in hub.text(), 15, what="the hub to start")

        def stub(name):
            rd = H._read
            creds = grpc.ssl_channel_credentials(rd(os.path.join(certs, "ca.crt")),
                                                 rd(os.path.join(certs, name + ".key")),
                                                 rd(os.path.join(certs, name + ".crt")))
            ch = grpc.secure_channel(addr, creds, options=[("grpc.use_local_subchannel_pool", 1)])
            self.addCleanup(ch.close)
            return s.hub_grpc.AgentHubStub(ch)

        admin, bob = stub("admin"), stub("bob")
        aid = admin.Spawn(s.hub.SpawnRequest(spec=s.types.AgentSpec(tools=["memory_get"]),
                                             namespace="team-a"), timeout=10).agent_id
        self.assertEqual(len(admin.ListMemory(s.hub.ListMemoryRequest(agent_id=aid),
                                              timeout=10).entries), 0)
        for fn, req in ((bob.ListMemory, s.hub.ListMemoryRequest(agent_id=aid)),
                        (bob.GetMemory, s.hub.GetMemoryRequest(agent_id=aid, key="k"))):
            with self.assertRaises(grpc.RpcError) as cm:
                fn(req, timeout=10)
            self.assertEqual((cm.exception.code(), cm.exception.details()),
                             (grpc.StatusCode.NOT_FOUND, "no agent with id '%s'" % aid))


if __name__ == "__main__":
    unittest.main(verbosity=2)
