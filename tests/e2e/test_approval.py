"""tests/e2e/test_approval.py - human approval of tool calls (issue 17, points 4 and 5), end to
end through the hub: a mock-model agent calls `echo`, a permission rule says "ask", and a human
decides with ApproveCall / DenyCall (or `agentry approve` / `agentry deny`), or nobody does and
the call expires.

ApprovalTest: the spec's rule asks. The agent waits PENDING ("waiting for approval of call
call_1 ...") holding no node slot, its trace shows TOOL_CALL then APPROVAL_REQUIRED, and
ListApprovals lists the call (filtered by namespace and agent). An approval runs the call once
(its TOOL_CALL stored again, one TOOL_RESULT with the tool's output), as asked or with edited
arguments; a denial gives the model an error result with the reason; deciding again answers
`already` with the first decision's seq, and the other decision is FAILED_PRECONDITION; a small
spec.limits.approval_timeout_ms expires the call. A wait survives a SIGKILLed hub and node. The
CLI lists, approves and denies, and refuses a bad --edit-args or a deny without --reason (exit 2).

NodePolicyTest: a node started with `--policy FILE` whose rules ask for echo and deny read_file,
under a spec that allows every tool: the node's policy is a ceiling, so echo is asked and
read_file denied, the error naming the node's policy.

The echo tool's output is its text, and the mock's final answer (no "final" step) is the last
tool result's text, so a FINAL's output says which arguments the call ran with, or the error.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402
from fakehub import FakeHub  # noqa: E402

NS = "approvals-a"
POLICY_DIR = tempfile.mkdtemp(prefix="agentry-e2e-approval-")
NODE_POLICY = os.path.join(POLICY_DIR, "node-policy.yaml")
with open(NODE_POLICY, "w") as f:
    f.write("rules:\n"
            "  - {tool: echo, decision: ask}\n"
            "  - {tool: read_file, decision: deny}\n"
            "default: allow\n")


# After the call's result the model answers this much later, so that a test decides the call
# again both while its turn still runs and (after the FINAL) once it has ended: the hub answers
# from the agent's 8 most recent decisions either way.
SLOW_END = "sleep 3000"


def call(tool, **args):
    # The mock model splits its script on ';': arguments carry theirs as a JSON escape.
    return "call %s %s" % (tool, json.dumps(args, separators=(",", ":")).replace(";", "\\u003b"))


class ApprovalCase(H.ClusterTestCase):
    """Helpers over the hub's approval RPCs."""

    def spawn(self, script, ns=NS, rules=(("echo", "ask"),), timeout_ms=0, tools=("echo",)):
        perms = [self.T.PermissionRule(tool=t, decision=d) for t, d in rules]
        spec = self.c.spec(tools=tools, permissions=perms,
                           limits=self.T.Limits(approval_timeout_ms=timeout_ms))
        return self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=script, namespace=ns),
                                timeout=10).agent_id

    def wait_asked(self, agent_id, timeout=20):
        """The APPROVAL_REQUIRED event, once the agent waits PENDING for the decision."""
        ev = self.c.wait_kind(agent_id, self.T.EVENT_KIND_APPROVAL_REQUIRED, timeout=timeout)
        H.wait_for(lambda: self.c.get(agent_id).state == self.T.AGENT_STATE_PENDING, 10,
                   what="agent %s to wait pending" % agent_id)
        return ev

    def approvals(self, ns="", agent_id="", limit=0):
        return list(self.c.hub.ListApprovals(self.s.hub.ListApprovalsRequest(
            namespace=ns, agent_id=agent_id, limit=limit), timeout=10).approvals)

    def approve(self, agent_id, call_id="call_1", arguments="", reason=""):
        return self.c.hub.ApproveCall(self.s.hub.ApproveCallRequest(
            agent_id=agent_id, call_id=call_id, arguments=arguments, reason=reason), timeout=10)

    def deny(self, agent_id, call_id="call_1", reason="no"):
        return self.c.hub.DenyCall(self.s.hub.DenyCallRequest(
            agent_id=agent_id, call_id=call_id, reason=reason), timeout=10)

    def assert_code(self, code, fn, *a, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*a, **kw)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception.details()

    def of_kind(self, events, kind, call_id="call_1"):
        return [e for e in events if e.kind == kind and H.payload(e).get("id", call_id) == call_id]

    def finish(self, agent_id, after_seq=0, timeout=20):
        """The turn's end (FINAL required) and the whole trace."""
        end = self.c.wait_turn_end(agent_id, after_seq=after_seq, timeout=timeout)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL,
                         "%s: %s" % (H.kind_name(end.kind), end.payload))
        evs = self.c.trace(agent_id)
        self.assert_contiguous(evs)
        return end, evs

    def running_slots(self):
        nodes = self.c.hub.ListNodes(self.s.hub.ListNodesRequest(), timeout=10).nodes
        return sum(n.running for n in nodes)


class ApprovalTest(ApprovalCase):
    NODES = 2
    CAPACITY = 2

    def test_a_waiting_call_holds_no_slot_and_is_listed(self):
        T = self.T
        a = self.spawn(call("echo", text="hi"))
        asked = self.wait_asked(a)
        evs = self.c.trace(a)
        kinds = [e.kind for e in evs]
        i = kinds.index(T.EVENT_KIND_APPROVAL_REQUIRED)
        self.assertEqual(kinds[i - 1], T.EVENT_KIND_TOOL_CALL, self.events_kinds(evs))
        self.assertNotIn(T.EVENT_KIND_TOOL_RESULT, kinds)
        p = H.payload(asked)
        self.assertEqual((p["id"], p["name"]), ("call_1", "echo"))
        self.assertEqual(json.loads(p["arguments"]), {"text": "hi"})
        self.assertTrue(p["reason"], p)
        now_ms = int(time.time() * 1000)
        # No limit in the spec: the hub's default, a day.
        self.assertGreater(p["expires_at_ms"], now_ms + 23 * 3600 * 1000)
        self.assertTrue(asked.node_id, "made by the node")

        got = self.c.get(a)
        self.assertTrue(got.state_reason.startswith("waiting for approval of call call_1"),
                        got.state_reason)
        self.assertIn("echo", got.state_reason)
        H.wait_for(lambda: self.running_slots() == 0, 10, what="the node to let the turn go")

        (ap,) = self.approvals(ns=NS)
        self.assertEqual((ap.agent_id, ap.namespace, ap.call_id, ap.tool),
                         (a, NS, "call_1", "echo"))
        self.assertEqual(json.loads(ap.arguments), {"text": "hi"})
        self.assertEqual(ap.seq, asked.seq)
        self.assertEqual(ap.reason, p["reason"])
        self.assertEqual(ap.expires_at_ms, p["expires_at_ms"])
        self.assertLessEqual(ap.requested_at_ms, now_ms)
        self.assertEqual([x.agent_id for x in self.approvals(agent_id=a)], [a])
        self.assertIn(a, [x.agent_id for x in self.approvals()])
        self.assertEqual(self.approvals(ns="approvals-other"), [])
        # Clean up: deny it, and it leaves the list.
        self.deny(a, reason="test a is done")
        self.finish(a)
        self.assertEqual(self.approvals(agent_id=a), [])
        self.assert_code(grpc.StatusCode.FAILED_PRECONDITION, self.approve, a)

    def test_b_approve_runs_the_call_once(self):
        T = self.T
        a = self.spawn("; ".join([call("echo", text="hi"), SLOW_END]))
        asked = self.wait_asked(a)
        self.assert_code(grpc.StatusCode.NOT_FOUND, self.approve, a, "call_9")
        r = self.approve(a, reason="looks fine")
        self.assertFalse(r.already)
        self.assertGreater(r.seq, asked.seq)
        again = self.approve(a)
        self.assertEqual((again.seq, again.already), (r.seq, True))
        self.assert_code(grpc.StatusCode.FAILED_PRECONDITION, self.deny, a, reason="too late")
        end, evs = self.finish(a, after_seq=r.seq)
        self.assertEqual(H.payload(end)["output"], "hi")
        decided = self.of_kind(evs, T.EVENT_KIND_APPROVAL_DECIDED)
        self.assertEqual([e.seq for e in decided], [r.seq])
        d = H.payload(decided[0], by=True)
        self.assertEqual((d["id"], d["name"], d["decision"]), ("call_1", "echo", "approved"))
        self.assertEqual(d.get("reason"), "looks fine")
        self.assertNotIn("arguments", d)
        if H.E2E_TLS:
            self.assertTrue(d.get("by"), d)
        calls = self.of_kind(evs, T.EVENT_KIND_TOOL_CALL)
        results = self.of_kind(evs, T.EVENT_KIND_TOOL_RESULT)
        self.assertEqual(len(calls), 2, "stored again before it runs: %s" % self.events_kinds(evs))
        self.assertEqual(len(results), 1, self.events_kinds(evs))
        self.assertLess(calls[0].seq, asked.seq)
        self.assertTrue(r.seq < calls[1].seq < results[0].seq)
        self.assertEqual(json.loads(H.payload(calls[1])["arguments"]), {"text": "hi"})
        res = H.payload(results[0])
        self.assertEqual((res["output"], res["is_error"]), ("hi", False))
        # The turn is over: the decision is still the agent's recent one.
        again = self.approve(a)
        self.assertEqual((again.seq, again.already), (r.seq, True))
        self.assert_code(grpc.StatusCode.FAILED_PRECONDITION, self.deny, a, reason="later")
        self.assertEqual(len(self.c.trace(a)), len(evs), "nothing stored by any")

    def test_c_approve_with_edited_arguments(self):
        T = self.T
        a = self.spawn(call("echo", text="rm everything"))
        self.wait_asked(a)
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT, self.approve, a, arguments="[1]")
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT, self.approve, a, arguments="{bad")
        self.assertEqual(len(self.approvals(agent_id=a)), 1, "still waiting")
        edited = json.dumps({"text": "edited"})
        r = self.approve(a, arguments=edited)
        end, evs = self.finish(a, after_seq=r.seq)
        self.assertEqual(H.payload(end)["output"], "edited")
        (d,) = self.of_kind(evs, T.EVENT_KIND_APPROVAL_DECIDED)
        self.assertEqual(json.loads(H.payload(d)["arguments"]), {"text": "edited"})
        calls = self.of_kind(evs, T.EVENT_KIND_TOOL_CALL)
        self.assertEqual([json.loads(H.payload(e)["arguments"]) for e in calls],
                         [{"text": "rm everything"}, {"text": "edited"}])
        (res,) = self.of_kind(evs, T.EVENT_KIND_TOOL_RESULT)
        self.assertEqual(H.payload(res)["output"], "edited")
        self.assertFalse(H.payload(res)["is_error"])

    def test_d_deny_gives_the_model_the_reason(self):
        T = self.T
        a = self.spawn("; ".join([call("echo", text="hi"), SLOW_END]))
        self.wait_asked(a)
        r = self.deny(a, reason="not on a Friday")
        self.assertFalse(r.already)
        again = self.deny(a, reason="still no")
        self.assertEqual((again.seq, again.already), (r.seq, True))
        self.assert_code(grpc.StatusCode.FAILED_PRECONDITION, self.approve, a)
        end, evs = self.finish(a, after_seq=r.seq)
        (d,) = self.of_kind(evs, T.EVENT_KIND_APPROVAL_DECIDED)
        self.assertEqual(d.seq, r.seq)
        dp = H.payload(d, by=True)
        self.assertEqual((dp["decision"], dp.get("reason")), ("denied", "not on a Friday"))
        self.assertEqual(len(self.of_kind(evs, T.EVENT_KIND_TOOL_CALL)), 1, "never run")
        (res,) = self.of_kind(evs, T.EVENT_KIND_TOOL_RESULT)
        self.assertEqual(res.seq, r.seq + 1, "the error result is in the decision's write")
        rp = H.payload(res)
        self.assertTrue(rp["is_error"], rp)
        self.assertIn("not on a Friday", rp["output"])
        self.assertIn("denied by %s" % dp["by"], rp["output"], "says who denied it")
        self.assertIn("not on a Friday", H.payload(end)["output"], "the model went on with it")

    def test_e_an_undecided_call_expires(self):
        c, T = self.c, self.T
        a = self.spawn("; ".join([call("echo", text="hi"), SLOW_END]), timeout_ms=1500)
        # Not wait_asked: on a slow machine the call may expire before the agent is seen pending.
        asked = c.wait_kind(a, T.EVENT_KIND_APPROVAL_REQUIRED, timeout=20)
        p = H.payload(asked)
        self.assertAlmostEqual(p["expires_at_ms"] - asked.time_unix_nano // 1000000, 1500,
                               delta=1000)
        # Waited on by following the trace: no sleeps.
        c.wait_kind(a, T.EVENT_KIND_APPROVAL_DECIDED, from_seq=asked.seq + 1, timeout=20)
        self.assert_code(grpc.StatusCode.FAILED_PRECONDITION, self.approve, a)
        end, evs = self.finish(a, after_seq=asked.seq, timeout=20)
        (d,) = self.of_kind(evs, T.EVENT_KIND_APPROVAL_DECIDED)
        dp = H.payload(d, by=True)
        self.assertEqual((dp["decision"], dp.get("by")), ("expired", "timeout"))
        (res,) = self.of_kind(evs, T.EVENT_KIND_TOOL_RESULT)
        self.assertTrue(H.payload(res)["is_error"])
        self.assertEqual(len(self.of_kind(evs, T.EVENT_KIND_TOOL_CALL)), 1, "never run")
        self.assertEqual(self.approvals(agent_id=a), [])
        self.assert_code(grpc.StatusCode.FAILED_PRECONDITION, self.approve, a)

    def test_f_approve_after_hub_and_node_restart(self):
        c, T = self.c, self.T
        a = self.spawn(call("echo", text="survivor"))
        asked = self.wait_asked(a)
        port = c.port
        c.hub_proc.sigkill()
        c.retired.append(c.hub_proc)
        c.hub_proc = None
        victim = c.nodes.pop("n1")
        victim.sigkill()
        c.retired.append(victim)
        c.start_hub(port=port)
        c.add_node("n1")
        c.wait_registered("n2", 1)
        (ap,) = H.wait_for(lambda: self.approvals(agent_id=a), 10,
                           what="the restarted hub to list the call")
        self.assertEqual((ap.seq, ap.call_id), (asked.seq, "call_1"))
        got = c.get(a)
        self.assertEqual(got.state, T.AGENT_STATE_PENDING)
        self.assertTrue(got.state_reason.startswith("waiting for approval of call call_1"),
                        got.state_reason)
        r = self.approve(a)
        end, evs = self.finish(a, after_seq=r.seq, timeout=30)
        self.assertEqual(H.payload(end)["output"], "survivor")
        self.assertEqual(len(self.of_kind(evs, T.EVENT_KIND_TOOL_RESULT)), 1,
                         self.events_kinds(evs))
        self.assertEqual(len(self.of_kind(evs, T.EVENT_KIND_APPROVAL_REQUIRED)), 1)
        c.assert_healthy(self, "after the restart")

    def test_h_cli(self):
        c = self.c
        hub = ["--hub", c.addr]
        a = self.spawn("; ".join([call("echo", text="via cli"), SLOW_END]))
        b = self.spawn(call("echo", text="refused"))
        self.wait_asked(a)
        asked_b = self.wait_asked(b)

        r = H.run_cli(["approvals", "-n", NS] + hub)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["AGENT", "CALL", "TOOL", "ARGS", "REASON", "AGE", "EXPIRES_IN"])
        row = [ln for ln in lines if ln.startswith(a)]
        self.assertEqual(len(row), 1, r.stdout)
        self.assertIn(" call_1 ", row[0])
        self.assertIn('{"text":"via cli"}', row[0])
        self.assertRegex(row[0], r" 23h5\dm$")
        r = H.run_cli(["approvals", "--json", "--agent", b] + hub)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual([x["agent_id"] for x in j["approvals"]], [b])
        self.assertEqual(j["approvals"][0]["arguments"], {"text": "refused"})
        self.assertEqual(j["approvals"][0]["seq"], asked_b.seq)
        self.assertFalse(j["truncated"])

        r = H.run_cli(["get"] + hub + [a])
        self.assertRegex(r.stdout, r"state_reason: +waiting for approval of call call_1")
        r = H.run_cli(["trace"] + hub + [a])
        self.assertRegex(r.stdout, r"approval_required +call_1 echo \{\"text\":\"via cli\"\} "
                                   r"\(.+\), expires in 23h5\dm")

        # Usage errors: one line, exit 2, nothing sent.
        H.one_error_line(self, H.run_cli(["approve", "--edit-args", "[1]", a, "call_1"] + hub),
                         rc=2)
        H.one_error_line(self, H.run_cli(["approve", "--edit-args", "{x", a, "call_1"] + hub),
                         rc=2)
        H.one_error_line(self, H.run_cli(["deny", b, "call_1"] + hub), rc=2)
        H.one_error_line(self, H.run_cli(["approve", a] + hub), rc=2)
        self.assertEqual(sorted(x.agent_id for x in self.approvals(ns=NS) if x.agent_id in (a, b)),
                         sorted([a, b]), "both still wait")

        r = H.run_cli(["approve", "--edit-args", '{"text":"edited via cli"}'] + hub +
                      [a, "call_1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"agent %s call call_1 approved at seq (\d+)\n" % a, r.stdout)
        self.assertTrue(m, r.stdout)
        seq = int(m.group(1))
        r = H.run_cli(["approve"] + hub + [a, "call_1"])
        already = ("agent %s call call_1 was already approved (at seq %d); nothing changed\n"
                   % (a, seq))
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, already, ""))
        line = H.one_error_line(self, H.run_cli(["deny", "--reason", "x"] + hub + [a, "call_1"]))
        self.assertIn("approved", line)
        end, _ = self.finish(a, after_seq=seq)
        self.assertEqual(H.payload(end)["output"], "edited via cli")
        r = H.run_cli(["approve"] + hub + [a, "call_1"])
        self.assertEqual((r.returncode, r.stdout), (0, already), "after the turn too")
        r = H.run_cli(["approve", "-o", "json"] + hub + [a, "call_1"])
        self.assertEqual(json.loads(r.stdout), {"agent_id": a, "seq": seq,
                                                "call_id": "call_1", "already": True})

        r = H.run_cli(["deny", "--reason", "not from the CLI either"] + hub + [b, "call_1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"agent %s call call_1 denied at seq (\d+)\n" % b, r.stdout)
        self.assertTrue(m, r.stdout)
        end, _ = self.finish(b, after_seq=int(m.group(1)))
        self.assertIn("not from the CLI either", H.payload(end)["output"])
        r = H.run_cli(["trace"] + hub + [b])
        self.assertRegex(r.stdout, r"approval_decided +call_1 echo denied.*: "
                                   r"not from the CLI either\n")
        r = H.run_cli(["trace"] + hub + [a])
        self.assertRegex(r.stdout, r"approval_decided +call_1 echo approved.* with edited "
                                   r"arguments \{\"text\":\"edited via cli\"\}\n")
        r = H.run_cli(["approvals", "-n", NS] + hub)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(a, r.stdout)
        self.assertNotIn(b, r.stdout)


class NodePolicyTest(ApprovalCase):
    """The node's own policy (agent-node --policy FILE) is a ceiling over the spec's rules."""
    NODES = 1
    NODE_ARGS = ("--policy", NODE_POLICY)

    def test_g_the_node_policy_asks_and_denies_what_the_spec_allows(self):
        T = self.T
        allow_all = (("*", "allow"),)
        a = self.spawn(call("echo", text="hi"), rules=allow_all)
        asked = self.wait_asked(a)
        reason = H.payload(asked)["reason"]
        self.assertIn("node", reason)
        r = self.approve(a)
        end, _ = self.finish(a, after_seq=r.seq)
        self.assertEqual(H.payload(end)["output"], "hi")

        b = self.spawn(call("read_file", path="x.txt"), rules=allow_all, tools=("read_file",))
        end, evs = self.finish(b)
        self.assertNotIn(T.EVENT_KIND_APPROVAL_REQUIRED, [e.kind for e in evs])
        (res,) = self.of_kind(evs, T.EVENT_KIND_TOOL_RESULT)
        rp = H.payload(res)
        self.assertTrue(rp["is_error"], rp)
        self.assertTrue(re.search(r"node'?s policy", rp["output"]), rp["output"])


class CliRenderingTest(unittest.TestCase):
    """The CLI against a fake hub: what approvals, approve, deny and trace print for answers the
    real hub gives only at its own pace (an expiry a day away, an earlier decision)."""

    def setUp(self):
        self.s = H.stubs()
        self.now_ms = int(time.time() * 1000)

    def approval(self, agent_id, ns, args):
        return self.s.hub.Approval(
            agent_id=agent_id, namespace=ns, agent_name="n", call_id="call_1", tool="shell",
            arguments=args, reason="rule 1 of the spec (ask shell)", seq=7,
            requested_at_ms=self.now_ms - 90000, expires_at_ms=self.now_ms + 3 * 3600000 + 65000)

    def test_approvals_table_and_json(self):
        long_args = json.dumps({"command": "x" * 100}, separators=(",", ":"))
        resp = self.s.hub.ListApprovalsResponse(truncated=True, approvals=[
            self.approval("a1", "team-a", '{"command":"ls"}'),
            self.approval("a2", "team-b", long_args)])
        with FakeHub(ListApprovals=lambda req, ctx: resp) as hub:
            r = H.run_cli(["approvals", "--hub", hub.addr, "--agent", "a1", "--limit", "5"],
                          env={"AGENTRY_NAMESPACE": ""})
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[0].split(), ["NAMESPACE", "AGENT", "CALL", "TOOL", "ARGS",
                                                "REASON", "AGE", "EXPIRES_IN"])
            self.assertEqual(lines[1].split()[:5],
                             ["team-a", "a1", "call_1", "shell", '{"command":"ls"}'])
            self.assertRegex(lines[1], r"\(ask shell\) +1m +3h1m$")
            self.assertIn('{"command":"xxxx', lines[2])
            self.assertIn("...", lines[2])
            self.assertNotIn("x" * 60, lines[2])
            self.assertIn("more calls wait", r.stderr)
            (req,) = hub.requests("ListApprovals")
            self.assertEqual((req.namespace, req.agent_id, req.limit), ("", "a1", 5))

            r = H.run_cli(["approvals", "--hub", hub.addr, "-n", "team-a", "--json"])
            self.assertEqual(r.returncode, 0, r.stderr)
            j = json.loads(r.stdout)
            self.assertTrue(j["truncated"])
            first = j["approvals"][0]
            self.assertEqual(first["arguments"], {"command": "ls"})
            self.assertEqual((first["agent_id"], first["namespace"], first["call_id"],
                              first["seq"]), ("a1", "team-a", "call_1", 7))
            self.assertRegex(first["expires_at"], r"^\d{4}-\d\d-\d\dT.*Z$")
            self.assertEqual(hub.requests("ListApprovals")[-1].namespace, "team-a")
            r = H.run_cli(["approvals", "--hub", hub.addr, "-n", "team-a"])
            self.assertEqual(r.stdout.splitlines()[0].split()[0], "AGENT", "no NAMESPACE column")

    def test_approve_and_deny_send_and_print(self):
        answers = iter([(9, False), (9, True)])

        def approve(req, ctx):
            seq, already = next(answers)
            return self.s.hub.ApproveCallResponse(seq=seq, already=already)

        def deny(req, ctx):
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      "call 'call_1' of agent 'a1' was approved at seq 9; it cannot be denied")

        with FakeHub(ApproveCall=approve, DenyCall=deny) as hub:
            h = ["--hub", hub.addr]
            r = H.run_cli(["approve", "--edit-args", '{"command": "ls -l"}', "--reason", "ok"] +
                          h + ["a1", "call_1"])
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (0, "agent a1 call call_1 approved at seq 9\n", ""))
            r = H.run_cli(["approve"] + h + ["a1", "call_1"])
            self.assertEqual((r.returncode, r.stdout), (0, "agent a1 call call_1 was already "
                                                           "approved (at seq 9); nothing changed\n"))
            reqs = hub.requests("ApproveCall")
            self.assertEqual([(q.agent_id, q.call_id, q.arguments, q.reason) for q in reqs],
                             [("a1", "call_1", '{"command": "ls -l"}', "ok"),
                              ("a1", "call_1", "", "")])
            line = H.one_error_line(self, H.run_cli(["deny", "--reason", "no"] + h +
                                                    ["a1", "call_1"]))
            self.assertIn("cannot be denied", line)
            self.assertEqual(hub.requests("DenyCall")[0].reason, "no")
            # Refused before anything is sent.
            for bad in (["approve", "--edit-args", "[1]", "a1", "call_1"],
                        ["approve", "--edit-args", "{", "a1", "call_1"],
                        ["approve", "--edit-args", "", "a1", "call_1"],
                        ["deny", "a1", "call_1"],
                        ["approve", "a1"], ["deny", "--reason", "x", "a1"]):
                H.one_error_line(self, H.run_cli(bad + h), rc=2)
            self.assertEqual(len(hub.requests("ApproveCall")), 2)
            self.assertEqual(len(hub.requests("DenyCall")), 1)

    def test_trace_prints_approval_events_as_sentences(self):
        T = self.s.types
        t0 = int(time.time() * 1e9)

        def ev(seq, kind, p, node=""):
            return T.TraceEvent(agent_id="a1", seq=seq, kind=kind, node_id=node,
                                payload=json.dumps(p), time_unix_nano=t0)

        events = [
            ev(5, T.EVENT_KIND_APPROVAL_REQUIRED,
               {"id": "call_1", "name": "shell", "arguments": '{"command":"git push"}',
                "reason": "rule 2 of the node's policy", "iterations": 1,
                "expires_at_ms": self.now_ms + 24 * 3600000 - 30000}, node="n1"),
            ev(6, T.EVENT_KIND_APPROVAL_DECIDED,
               {"id": "call_1", "name": "shell", "decision": "approved", "by": "user/alice",
                "arguments": '{"command":"git push --dry-run"}'}),
            ev(7, T.EVENT_KIND_APPROVAL_DECIDED,
               {"id": "call_2", "name": "shell", "decision": "denied", "by": "user/bob",
                "reason": "no\npushes"}),
            ev(8, T.EVENT_KIND_APPROVAL_DECIDED,
               {"id": "call_3", "name": "shell", "decision": "expired", "by": "timeout"}),
            ev(9, T.EVENT_KIND_APPROVAL_REQUIRED,
               {"id": "call_4", "name": "echo", "arguments": "{}", "reason": "",
                "expires_at_ms": self.now_ms - 1000}),
            ev(10, T.EVENT_KIND_APPROVAL_DECIDED, {"unexpected": True}),
        ]
        with FakeHub(Trace=lambda req, ctx: iter(events)) as hub:
            r = H.run_cli(["trace", "--hub", hub.addr, "a1"])
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertRegex(lines[0], r"^#5 .* approval_required  call_1 shell "
                                       r"\{\"command\":\"git push\"\} \(rule 2 of the node's "
                                       r"policy\), expires in 23h59m$")
            self.assertRegex(lines[1], r"approval_decided  call_1 shell approved by user/alice "
                                       r"with edited arguments \{\"command\":\"git push "
                                       r"--dry-run\"\}$")
            self.assertRegex(lines[2], r"call_2 shell denied by user/bob: no pushes$")
            self.assertRegex(lines[3], r"call_3 shell expired \(no decision in time\)$")
            self.assertRegex(lines[4], r"call_4 echo \{\}, expiry \d\d:\d\d:\d\d passed$")
            self.assertIn('{"unexpected": true}', lines[5], "shown as its payload")
            r = H.run_cli(["trace", "--hub", hub.addr, "--jsonl", "a1"])
            kinds = [json.loads(x)["kind"] for x in r.stdout.splitlines()]
            self.assertEqual(kinds[:2], ["approval_required", "approval_decided"])


def main():
    prog = unittest.main(verbosity=2, exit=False)
    shutil.rmtree(POLICY_DIR, True)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
