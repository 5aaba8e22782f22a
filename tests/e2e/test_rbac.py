"""tests/e2e/test_rbac.py - roles, namespaces, bearer tokens and the audit log on a hub with
mutual TLS (agentry certs for the identities, --policy, --audit-log).

Identities: alice (a user certificate, bound by the policy to operator in team-a), bob (a
viewer certificate of team-b, no binding: the certificate's own role), carol (an operator
certificate of team-b), node1 (a node certificate), and a viewer token for team-a.

- Roles: a viewer cannot Kill, a node certificate cannot Spawn (PERMISSION_DENIED).
- Tenants: an agent of team-a is NOT_FOUND for team-b's callers on Get, Trace, SendMessage,
  KillAgent and ResumeAgent (as if it did not exist), absent from their ListAgents, and
  listing or creating (Spawn, Invoke) in team-a is PERMISSION_DENIED for them.
- Tokens: the team-a token lists alice's agent (through the CLI's --token too); a wrong token
  is UNAUTHENTICATED; a policy that does not parse is refused on SIGHUP and the old one stays;
  a token removed from the policy and SIGHUP'd is UNAUTHENTICATED from then on, with no
  connection dropped.
- Audit: the file holds one JSON line per decision: alice's allowed Spawn with its namespace,
  bob's denied Kill, carol's denied Get with the agent id; and the events a call stores
  (SPAWNED, INPUT, KILLED) say who made it ("by").
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

grpc = H.grpc


class Rbac(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = H.stubs()
        cls.T = cls.s.types
        cls.dir = tempfile.mkdtemp(prefix="agentry-e2e-rbac-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.certs = os.path.join(cls.dir, "tls")
        cls.cli_ok(["certs", "init", "--dir", cls.certs])
        cls.cli_ok(["certs", "issue", "--dir", cls.certs, "--role", "operator", "--name", "alice"])
        cls.cli_ok(["certs", "issue", "--dir", cls.certs, "--role", "viewer", "--name", "bob",
                    "--namespace", "team-b"])
        cls.cli_ok(["certs", "issue", "--dir", cls.certs, "--role", "operator", "--name", "carol",
                    "--namespace", "team-b"])
        out = cls.cli_ok(["token", "create", "--role", "viewer", "--namespace", "team-a", "--name",
                          "dash"]).stdout
        cls.token = out.splitlines()[0].split()[1]
        cls.token_entry = out.split("\n\n", 1)[1].split("\n", 1)[1]  # the YAML lines
        cls.policy = os.path.join(cls.dir, "policy.yaml")
        cls.write_policy(with_token=True)
        cls.audit = os.path.join(cls.dir, "audit.log")
        cls.port = H.free_port()
        cls.addr = "127.0.0.1:%d" % cls.port
        cls.hub = H.Proc("hub", [H.AGENTRY_BIN, "hub", "--listen", cls.addr, "--store",
                                 "sqlite:" + os.path.join(cls.dir, "hub.db"), "--tls-dir",
                                 cls.certs, "--policy", cls.policy, "--audit-log", cls.audit],
                         os.path.join(cls.dir, "hub.log")).start()
        cls.addClassCleanup(cls.stop_hub)
        H.wait_for(lambda: "event=hub.started" in cls.hub.text(), 15, what="the hub to start")

    @classmethod
    def stop_hub(cls):
        err = cls.hub.stop()
        if err:
            raise AssertionError(err)

    @classmethod
    def cli_ok(cls, args):
        r = H.run_cli(args)
        if r.returncode != 0:
            raise AssertionError("agentry %s: %s" % (" ".join(args), r.stderr))
        return r

    @classmethod
    def write_policy(cls, with_token):
        text = ("bindings:\n  - identity: user/alice\n    role: operator\n"
                "    namespaces: [team-a]\n")
        if with_token:
            text += "tokens:\n" + cls.token_entry
        with open(cls.policy, "w") as f:
            f.write(text)

    def creds(self, name):
        d = self.certs
        rd = H._read
        return grpc.ssl_channel_credentials(rd(os.path.join(d, "ca.crt")),
                                            rd(os.path.join(d, name + ".key")),
                                            rd(os.path.join(d, name + ".crt")))

    def stub(self, name=None, token=None):
        if token is not None:
            ca = H._read(os.path.join(self.certs, "ca.crt"))
            creds = grpc.composite_channel_credentials(
                grpc.ssl_channel_credentials(ca), grpc.access_token_call_credentials(token))
        else:
            creds = self.creds(name)
        ch = grpc.secure_channel(self.addr, creds,
                                 options=[("grpc.use_local_subchannel_pool", 1)])
        self.addCleanup(ch.close)
        return self.s.hub_grpc.AgentHubStub(ch)

    def code(self, fn, *args):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, timeout=10)
        return cm.exception.code(), cm.exception.details()

    def spawn(self, hub, ns):
        spec = self.T.AgentSpec(name="rbac", tools=["echo"])
        return hub.Spawn(self.s.hub.SpawnRequest(spec=spec, namespace=ns), timeout=10).agent_id

    def test_roles(self):
        bob, node = self.stub("bob"), self.stub("node")
        aid = self.spawn(self.stub("alice"), "team-a")
        c, d = self.code(bob.KillAgent, self.s.hub.KillAgentRequest(agent_id=aid))
        self.assertEqual(c, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("user 'bob' (role viewer) may not call KillAgent", d)
        c, _ = self.code(node.Spawn, self.s.hub.SpawnRequest(spec=self.T.AgentSpec()))
        self.assertEqual(c, grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(bob.Ping(self.s.hub.PingRequest(), timeout=10).version != "", True)

    def test_tenants(self):
        alice, bob, carol = self.stub("alice"), self.stub("bob"), self.stub("carol")
        aid = self.spawn(alice, "team-a")
        mine = self.spawn(carol, "team-b")
        h = self.s.hub
        missing = "no agent with id '%s'" % aid
        for fn, req in ((bob.GetAgent, h.GetAgentRequest(agent_id=aid)),
                        (carol.GetAgent, h.GetAgentRequest(agent_id=aid)),
                        (carol.SendMessage, h.SendMessageRequest(agent_id=aid, input="x")),
                        (carol.KillAgent, h.KillAgentRequest(agent_id=aid)),
                        (carol.ResumeAgent, h.ResumeAgentRequest(agent_id=aid))):
            c, d = self.code(fn, req)
            self.assertEqual((c, d), (grpc.StatusCode.NOT_FOUND, missing), fn)
        c, _ = self.code(lambda r, timeout: list(carol.Trace(r, timeout=timeout)),
                         h.TraceRequest(agent_id=aid))
        self.assertEqual(c, grpc.StatusCode.NOT_FOUND)
        seen = {a.id for a in carol.ListAgents(h.ListAgentsRequest(), timeout=10).agents}
        self.assertIn(mine, seen)
        self.assertNotIn(aid, seen)
        for fn, req in ((carol.ListAgents, h.ListAgentsRequest(namespace="team-a")),
                        (carol.Spawn, h.SpawnRequest(spec=self.T.AgentSpec(), namespace="team-a")),
                        (carol.Invoke, h.InvokeRequest(spec=self.T.AgentSpec(), input="hi",
                                                        namespace="team-a")),
                        (alice.Spawn, h.SpawnRequest(spec=self.T.AgentSpec()))):  # default
            c, d = self.code(fn, req)
            self.assertEqual(c, grpc.StatusCode.PERMISSION_DENIED, (fn, d))
        # alice sees hers, and only team-a.
        seen = {a.id for a in alice.ListAgents(h.ListAgentsRequest(), timeout=10).agents}
        self.assertIn(aid, seen)
        self.assertNotIn(mine, seen)
        # Who did what is in the agent's own log too.
        alice.SendMessage(h.SendMessageRequest(agent_id=aid, input="hello"), timeout=10)
        alice.KillAgent(h.KillAgentRequest(agent_id=aid), timeout=10)
        by = {H.kind_name(e.kind): H.payload(e, by=True).get("by")
              for e in alice.Trace(h.TraceRequest(agent_id=aid), timeout=10)}
        self.assertEqual((by["spawned"], by["input"], by["killed"]),
                         ("user/alice", "user/alice", "user/alice"))

    def test_tokens_and_reload(self):
        aid = self.spawn(self.stub("alice"), "team-a")
        h = self.s.hub
        tok = self.stub(token=self.token)
        self.assertIn(aid, {a.id for a in tok.ListAgents(h.ListAgentsRequest(), timeout=10).agents})
        r = H.run_cli(["ps", "--hub", self.addr, "--ca", os.path.join(self.certs, "ca.crt"),
                       "--token", self.token, "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(aid, r.stdout)
        c, _ = self.code(self.stub(token=self.token + "x").ListAgents, h.ListAgentsRequest())
        self.assertEqual(c, grpc.StatusCode.UNAUTHENTICATED)
        # A policy that does not parse: refused, the old one stays.
        with open(self.policy, "w") as f:
            f.write("bindings: [\n")
        self.hub.signal(signal.SIGHUP)
        H.wait_for(lambda: "event=policy.reload_failed" in self.hub.text(), 10)
        tok.ListAgents(h.ListAgentsRequest(), timeout=10)
        # Revoked: the entry gone, SIGHUP; the same channel is refused from then on.
        self.write_policy(with_token=False)
        self.hub.signal(signal.SIGHUP)
        H.wait_for(lambda: "event=policy.reloaded" in self.hub.text(), 10)
        c, _ = self.code(tok.ListAgents, h.ListAgentsRequest())
        self.assertEqual(c, grpc.StatusCode.UNAUTHENTICATED)
        self.write_policy(with_token=True)
        self.hub.signal(signal.SIGHUP)
        H.wait_for(lambda: self.hub.text().count("event=policy.reloaded") >= 2, 10)
        tok.ListAgents(h.ListAgentsRequest(), timeout=10)

    def test_zz_audit(self):  # after the others: their calls are in the file
        with open(self.audit) as f:
            lines = [json.loads(ln) for ln in f]
        self.assertTrue(lines)
        self.assertTrue(all("time" in ln and ln.get("decision") in ("allow", "deny")
                            for ln in lines))

        def has(**kw):
            return any(all(ln.get(k) == v for k, v in kw.items()) for ln in lines)
        self.assertTrue(has(identity="user/alice", role="operator", rpc="Spawn",
                            namespace="team-a", decision="allow"))
        self.assertTrue(has(identity="user/bob", rpc="KillAgent", decision="deny"))
        self.assertTrue(has(identity="user/carol", rpc="GetAgent", decision="deny"))
        denied = [ln for ln in lines if ln.get("identity") == "user/carol" and
                  ln.get("rpc") == "GetAgent"]
        self.assertTrue(denied[0].get("agent_id"))
        self.assertIn("namespace 'team-a' is not the caller's", denied[0].get("reason", ""))


if __name__ == "__main__":
    H.main()
