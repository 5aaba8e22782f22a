"""tests/e2e/test_delete.py - DeleteAgent and the nodes' workspaces (issue 17, point 2), end to
end: a hub and one node with its own --workspace-root, a fake OpenAI server for the teams.

What is checked: deleting an idle agent removes its row, events and workspace directory (never
following a symbolic link out of it), GetAgent and SendMessage then answer NOT_FOUND and
ListAgents omits it; a running agent is refused until it is killed; a parent is deleted with its
sub-agents, and a sub-agent alone is refused naming its root; an agent deleted while its node is
down has its workspace removed once that node registers again (and so does any stray workspace
of an agent the hub does not have); a deletion survives a hub restart; the CLI's delete and rm.
"""
import os
import shutil
import sys
import tempfile
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_real_models import FakeLLM  # noqa: E402
from test_restart import restart_hub  # noqa: E402

ROOT = tempfile.mkdtemp(prefix="agentry-e2e-ws-")
os.chmod(ROOT, 0o755)


class DeleteTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeLLM()
        cls.addClassCleanup(cls.fake.stop)
        cls.addClassCleanup(shutil.rmtree, ROOT, True)
        os.environ["OPENAI_API_KEY"] = "sk-test-delete"
        cls.NODE_ARGS = ("--model-opt", "openai.base_url=%s/v1" % cls.fake.base,
                         "--workspace-root", ROOT)
        super().setUpClass()

    # -- helpers --

    def delete(self, agent_id):
        r = self.c.hub.DeleteAgent(self.s.hub.DeleteAgentRequest(agent_id=agent_id), timeout=10)
        return list(r.deleted)

    def refused(self, agent_id, code):
        with self.assertRaises(grpc.RpcError) as cm:
            self.delete(agent_id)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception.details()

    def idle_agent(self, text="hi"):
        a = self.c.spawn(text).agent_id
        self.c.wait_state(a, self.T.AGENT_STATE_IDLE)
        return a

    def workspace(self, agent_id):
        """A workspace as a turn leaves it: files, a subdirectory, and a link out of it."""
        d = os.path.join(ROOT, agent_id)
        os.makedirs(os.path.join(d, "sub"), exist_ok=True)
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("x" * 100)
        with open(os.path.join(d, "sub", "more.txt"), "w") as f:
            f.write("y" * 20)
        os.symlink(self.canary_dir, os.path.join(d, "sub", "out"))
        return d

    def setUp(self):
        self.canary_dir = tempfile.mkdtemp(prefix="agentry-e2e-canary-")
        self.canary = os.path.join(self.canary_dir, "keep.txt")
        with open(self.canary, "w") as f:
            f.write("keep")

    def tearDown(self):
        super().tearDown()
        self.assertTrue(os.path.exists(self.canary), "a file outside the workspace was removed")
        shutil.rmtree(self.canary_dir, ignore_errors=True)

    def assert_gone(self, agent_id):
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.get(agent_id)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertNotIn(agent_id, [x.id for x in self.c.list_all()])

    def node_log(self):
        return self.c.nodes["n1"].text()

    # -- tests --

    def test_deleting_an_idle_agent_removes_it_and_its_workspace(self):
        a = self.idle_agent()
        d = self.workspace(a)
        self.assertEqual(self.delete(a), [a])
        H.wait_for(lambda: not os.path.exists(d), 10, what="workspace %s removed" % d)
        self.assert_gone(a)
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.send(a, "more")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.trace(a)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        H.wait_for(lambda: "event=node.workspace_removed agent=%s bytes=120" % a in
                   self.node_log(), 10, what="the node's workspace_removed line")
        self.refused(a, grpc.StatusCode.NOT_FOUND)

    def test_a_running_agent_is_refused_until_killed(self):
        a = self.c.spawn("sleep 30000; final late", tools=()).agent_id
        self.c.wait_state(a, self.T.AGENT_STATE_RUNNING)
        msg = self.refused(a, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("running", msg)
        self.c.kill(a)
        self.c.wait_state(a, self.T.AGENT_STATE_KILLED)
        self.assertEqual(self.delete(a), [a])
        self.assert_gone(a)

    def test_a_parent_goes_with_its_sub_agents(self):
        worker = self.T.AgentSpec(model="openai/slowecho:10")
        spec = self.T.AgentSpec(model="openai/team:2:worker", tools=["spawn_agent", "wait_agent"],
                                templates={"worker": worker})
        parent = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input="go"),
                                  timeout=10).agent_id
        self.c.wait_state(parent, self.T.AGENT_STATE_IDLE, timeout=30)
        children = list(self.c.get(parent).children)
        self.assertEqual(len(children), 2)
        for k in children:
            self.c.wait_state(k, self.T.AGENT_STATE_IDLE)
        dirs = [self.workspace(x) for x in [parent] + children]
        msg = self.refused(children[0], grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("delete from its root %s" % parent, msg)
        deleted = self.delete(parent)
        self.assertEqual(deleted[0], parent)
        self.assertEqual(sorted(deleted[1:]), sorted(children))
        for d in dirs:
            H.wait_for(lambda: not os.path.exists(d), 10, what="workspace %s removed" % d)
        for x in deleted:
            self.assert_gone(x)

    def test_a_node_that_was_down_removes_the_workspace_when_it_registers(self):
        a = self.idle_agent()
        d = self.workspace(a)
        stray = os.path.join(ROOT, "0000000000zzzzzz")  # an agent id this hub never had
        os.makedirs(stray)
        self.c.stop_node("n1")
        try:
            self.assertEqual(self.delete(a), [a])
            self.assertTrue(os.path.exists(d))
        finally:
            self.c.add_node("n1")
        H.wait_for(lambda: not os.path.exists(d) and not os.path.exists(stray), 15,
                   what="workspaces removed after the node registered")
        # The next registration lists `keep` too: the hub has it, so its workspace stays (the
        # second stray's removal shows the listing was answered).
        keep = self.idle_agent()
        kept = self.workspace(keep)
        stray = os.path.join(ROOT, "0000000000yyyyyy")
        os.makedirs(stray)
        self.c.stop_node("n1")
        self.c.add_node("n1")
        H.wait_for(lambda: not os.path.exists(stray), 15, what="the second stray removed")
        self.assertTrue(os.path.exists(kept))

    def test_a_deletion_survives_a_hub_restart(self):
        a = self.idle_agent()
        b = self.idle_agent()
        self.assertEqual(self.delete(a), [a])
        restart_hub(self.c)
        self.c.wait_registered("n1")
        self.assert_gone(a)
        self.assertEqual(self.c.get(b).id, b)
        self.assertTrue(self.c.trace(b))

    def test_a_root_belongs_to_one_node(self):
        """Regression: every node on a host shared $TMPDIR/agentry-workspaces-<uid>, so a node of
        another cluster listed this cluster's workspaces to its hub, which told it to remove
        them. A root now takes one node, and the default root is per node id."""
        r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "n2",
                       "--workspace-root", ROOT], timeout=30)
        line = H.one_error_line(self, r)
        self.assertIn("the workspace root '%s' is in use by another node (pid %d)"
                      % (ROOT, self.c.nodes["n1"].pid), line)
        # Two nodes with default roots, beside another hub: each its own root, both run.
        tmp = tempfile.mkdtemp(prefix="agentry-e2e-tmpdir-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        other = H.Proc("other-hub", [H.AGENTRY_BIN, "hub", "--listen", "127.0.0.1:%d"
                                     % H.free_port(), "--store", "sqlite:" + os.path.join(
                                         tmp, "other.db")], os.path.join(tmp, "hub.log")).start()
        self.addCleanup(other.stop)
        nodes = []
        for i, hub in enumerate((self.c.addr, other.args[3])):
            p = H.Proc("d%d" % i, [H.AGENTRY_BIN, "node", "join", "--hub", hub, "--node-id",
                                   "d%d" % i], os.path.join(tmp, "d%d.log" % i),
                       env={"TMPDIR": tmp}).start()
            self.addCleanup(p.stop)
            nodes.append(p)
        base = os.path.join(tmp, "agentry-workspaces-%d" % os.getuid())
        for i, p in enumerate(nodes):
            lock = os.path.join(base, "d%d" % i, ".lock")
            H.wait_for(lambda: os.path.exists(lock) and H._read(lock) == b"%d\n" % p.pid, 15,
                       what="node d%d to claim its default root" % i)
        self.assertTrue(nodes[0].running() and nodes[1].running(), nodes[0].tail())

    def test_the_cli(self):
        env = {"AGENTRY_HUB": self.c.addr}
        a = self.idle_agent()
        r = H.run_cli(["delete", a], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, a + "\n")
        line = H.one_error_line(self, H.run_cli(["rm", a], env=env))
        self.assertIn(a, line)
        r = H.run_cli(["delete", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("sub-agents", r.stdout)
        self.assertIn("rm", H.run_cli(["--help"]).stdout)


if __name__ == "__main__":
    unittest.main()
