"""tests/e2e/test_cli_agent_fields.py - the CLI shows and sends the contract's new fields.

`agentry get` shows request_id, state_reason and turn_attempt (human and JSON); `agentry kill`
says when KillAgentResponse.already_killed is set, and exits 0; `agentry ps` passes --selector,
--name and --request-id to ListAgents. A fake hub in this process answers, so the fields can
hold values the test chooses; the CLI is the real binary.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fakehub import FakeHub  # noqa: E402

AID = "01m0000000000042"


class CliAgentFieldsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = H.stubs()

    def cli(self, hub, *args):
        return H.run_cli(list(args) + ["--hub", hub.addr], timeout=30)

    def agent(self):
        T = self.s.types
        return self.s.hub.Agent(id=AID, request_id="nightly-42", state=T.AGENT_STATE_PENDING,
                                state_reason="retrying in 2s after: node lost (stream broken)",
                                turn_attempt=3, spec=T.AgentSpec(name="n", model="mock"))

    def test_get_shows_the_new_fields(self):
        with FakeHub(GetAgent=lambda req, ctx: self.agent()) as hub:
            r = self.cli(hub, "get", AID)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            lines = r.stdout.splitlines()
            self.assertIn("request_id:     nightly-42", lines)
            self.assertIn("state_reason:   retrying in 2s after: node lost (stream broken)", lines)
            self.assertIn("turn_attempt:   3", lines)
            r = self.cli(hub, "get", "--json", AID)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            j = json.loads(r.stdout)
            self.assertEqual((j["request_id"], j["state_reason"], j["turn_attempt"], j["state"]),
                             ("nightly-42", "retrying in 2s after: node lost (stream broken)", 3,
                              "pending"))

    def test_kill_says_already_killed_and_exits_0(self):
        K = self.s.hub.KillAgentResponse
        with FakeHub(KillAgent=lambda req, ctx: K(seq=7, already_killed=True)) as hub:
            r = self.cli(hub, "kill", AID)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout,
                             "agent %s was already killed (at seq 7); nothing changed\n" % AID)
            self.assertEqual(r.stderr, "")
            r = self.cli(hub, "kill", "--json", AID)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            self.assertEqual(json.loads(r.stdout),
                             {"agent_id": AID, "seq": 7, "already_killed": True})
        with FakeHub(KillAgent=lambda req, ctx: K(seq=9)) as hub:
            r = self.cli(hub, "kill", "--reason", "done", AID)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (0, "agent %s killed at seq 9\n" % AID, ""))
            self.assertEqual([(q.agent_id, q.reason) for q in hub.requests("KillAgent")],
                             [(AID, "done")])
            r = self.cli(hub, "kill", "--json", AID)
            self.assertFalse(json.loads(r.stdout)["already_killed"])

    def test_ps_sends_the_filters(self):
        with FakeHub(ListAgents=lambda req, ctx: self.s.hub.ListAgentsResponse(
                agents=[self.agent()])) as hub:
            r = self.cli(hub, "ps", "-l", "team=core,!draft", "--name", "n", "--request-id",
                         "nightly-42", "--state", "pending")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(AID, r.stdout)
            r = self.cli(hub, "ps", "--selector", "a!=b")
            self.assertEqual(r.returncode, 0, r.stderr)
            sent = hub.requests("ListAgents")
            self.assertEqual([(q.label_selector, q.name, q.request_id, q.state) for q in sent],
                             [("team=core,!draft", "n", "nightly-42",
                               self.s.types.AGENT_STATE_PENDING), ("a!=b", "", "", 0)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
