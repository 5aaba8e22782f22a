"""tests/e2e/test_transfer.py - ExportAgent / ImportAgent and `agentry export` / `agentry import`
(issue 12, point 7): an agent's whole state moves between two hubs with their own stores.

Hub A runs an agent; its export, imported on hub B, has the same fields and the same trace event
by event (seq, kind, payload, time, node), and continues on B with its history: the model sees the
earlier conversation. Idle, killed and yielded agents round-trip; a running agent, an unknown id,
an id B already has, and a file that is not a whole export are refused with nothing created.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402


class TransferTest(H.ClusterTestCase):
    NODES = 1
    # Hub A's request limit, which also bounds its exports (hub.proto, ExportAgent).
    HUB_ARGS = ("--max-message-bytes", "262144")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.b = H.Cluster(nodes=1, name=cls.__name__ + "B")
        cls.addClassCleanup(cls.b.kill_all)
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()
        super().tearDownClass()

    def path(self, name):
        return os.path.join(self.c.dir, name)

    def export(self, agent_id, name="agent.pb"):
        p = self.path(name)
        r = H.run_cli(["export", "--hub", self.c.addr, "-o", p, agent_id])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(),
                         r"^agent %s exported: \d+ events, state \w+, \d+ bytes to " % agent_id)
        return p

    def cli_import(self, path, cluster=None):
        return H.run_cli(["import", "--hub", (cluster or self.b).addr, path])

    def assert_one_line_refusal(self, r, *parts):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("error: "), r.stderr)
        for p in parts:
            self.assertIn(p, lines[0])

    def rpc_export(self, agent_id):
        return self.c.hub.ExportAgent(self.s.hub.ExportAgentRequest(agent_id=agent_id),
                                      timeout=10)

    def rpc_import(self, x):
        return self.b.hub.ImportAgent(self.s.hub.ImportAgentRequest(agent=x), timeout=10)

    def assert_code(self, fn, code, *parts):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        for p in parts:
            self.assertIn(p, cm.exception.details())

    def assert_same_agent(self, a_id):
        """GetAgent and Trace agree on both hubs."""
        ga, gb = self.c.get(a_id), self.b.get(a_id)
        for f in ("id", "spec", "state", "usage", "request_id", "created_unix_nano", "last_seq",
                  "last_output", "last_error", "pending_inputs", "epoch", "node_id"):
            self.assertEqual(getattr(ga, f), getattr(gb, f), f)
        ta, tb = self.c.trace(a_id), self.b.trace(a_id)
        self.assertEqual(len(ta), len(tb))
        for ea, eb in zip(ta, tb):
            self.assertEqual((ea.agent_id, ea.seq, ea.kind, ea.payload, ea.time_unix_nano,
                              ea.node_id),
                             (eb.agent_id, eb.seq, eb.kind, eb.payload, eb.time_unix_nano,
                              eb.node_id))
        return ta

    def model_requests(self, events, after_seq=0):
        return [H.payload(e) for e in events
                if e.seq > after_seq and e.kind == self.T.EVENT_KIND_MODEL_REQUEST]

    def test_idle_agent_moves_and_continues_with_its_history(self):
        T = self.T
        a = self.c.spawn("hello", request_id="transfer-idle-1").agent_id
        end = self.c.wait_turn_end(a)
        self.assertEqual(end.kind, T.EVENT_KIND_FINAL)
        self.c.wait_state(a, T.AGENT_STATE_IDLE)
        self.assertEqual(self.c.get(a).usage.tool_calls, 1)

        p = self.export(a)
        r = self.cli_import(p)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(),
                         "agent %s imported: %d events, state idle" % (a, end.seq))
        evs = self.assert_same_agent(a)
        self.assert_contiguous(evs)

        # Again: the id is taken on B now. Nothing changes there.
        r = self.cli_import(p)
        self.assert_one_line_refusal(r, "already exists", a)
        self.assertEqual(self.b.get(a).last_seq, end.seq)

        # B runs the next turn, from the conversation A built: the user message, the echo call,
        # its result, the final answer, then the new input.
        before = self.model_requests(evs)
        s = self.b.send(a, "final bye")
        self.assertEqual(s.seq, end.seq + 1)
        end_b = self.b.wait_turn_end(a, after_seq=s.seq)
        self.assertEqual(end_b.kind, T.EVENT_KIND_FINAL)
        self.assertEqual(H.payload(end_b)["output"], "bye")
        evs_b = self.b.trace(a)
        self.assert_contiguous(evs_b)
        after = self.model_requests(evs_b, s.seq)
        self.assertEqual(after[0]["messages"], before[-1]["messages"] + 2)
        gb = self.b.get(a)
        self.assertEqual(gb.state, T.AGENT_STATE_IDLE)
        self.assertEqual(gb.last_output, "bye")
        self.assertEqual(gb.usage.model_calls, self.c.get(a).usage.model_calls + 1)
        # The request id came along: a Spawn retry on B finds the imported agent.
        again = self.b.spawn("hello", request_id="transfer-idle-1")
        self.assertTrue(again.existing)
        self.assertEqual(again.agent_id, a)

    def test_killed_agent_stays_killed_with_its_last_event(self):
        T = self.T
        a = self.c.spawn("hello").agent_id
        self.c.wait_turn_end(a)
        self.c.wait_state(a, T.AGENT_STATE_IDLE)
        self.c.kill(a, reason="moving on")
        p = self.export(a, "killed.pb")
        r = self.cli_import(p)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("state killed", r.stdout)
        evs = self.assert_same_agent(a)
        self.assertEqual(evs[-1].kind, T.EVENT_KIND_KILLED)
        self.assertEqual(H.payload(evs[-1])["reason"], "moving on")
        self.assert_code(lambda: self.b.send(a, "hi"), grpc.StatusCode.FAILED_PRECONDITION)
        # A follow on B ends after KILLED, as on A.
        seen = list(self.b.hub.Trace(self.s.hub.TraceRequest(agent_id=a, follow=True),
                                     timeout=10))
        self.assertEqual(seen[-1].kind, T.EVENT_KIND_KILLED)

    def test_yielded_agent_can_be_resumed_on_the_other_hub(self):
        T = self.T
        a = self.c.spawn("loop", max_iterations=1).agent_id
        end = self.c.wait_turn_end(a)
        self.assertEqual(end.kind, T.EVENT_KIND_YIELD)
        self.c.wait_state(a, T.AGENT_STATE_YIELDED)
        x = self.rpc_export(a)
        self.assertEqual(x.format_version, 1)
        self.assertEqual(x.last_seq, end.seq)
        self.assertEqual([e.seq for e in x.events], list(range(1, end.seq + 1)))
        self.assertTrue(x.checkpoint)
        r = self.rpc_import(x)
        self.assertEqual((r.agent_id, r.events, r.state), (a, end.seq, T.AGENT_STATE_YIELDED))
        self.assert_same_agent(a)
        res = self.b.hub.ResumeAgent(self.s.hub.ResumeAgentRequest(agent_id=a, max_iterations=2),
                                     timeout=10)
        self.assertEqual(res.seq, end.seq + 1)
        end_b = self.b.wait_turn_end(a, after_seq=res.seq)
        self.assertEqual(end_b.kind, T.EVENT_KIND_YIELD)
        reqs = self.model_requests(self.b.trace(a), res.seq)
        # The first turn's user message, the model's tool call and its result.
        self.assertEqual([q["messages"] for q in reqs], [3, 5])
        self.assertEqual(self.b.get(a).usage.model_calls, 3)

    def test_failed_agent_keeps_its_waiting_input(self):
        T = self.T
        a = self.c.spawn("sleep 800; fail boom").agent_id
        self.c.wait_state(a, T.AGENT_STATE_RUNNING)
        s = self.c.send(a, "final later")  # waits: the turn fails before reading it
        end = self.c.wait_turn_end(a)
        self.assertEqual(end.kind, T.EVENT_KIND_ERROR)
        self.c.wait_state(a, T.AGENT_STATE_FAILED)
        self.assertEqual(self.c.get(a).pending_inputs, 1)
        r = self.cli_import(self.export(a, "failed.pb"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("state failed", r.stdout)
        self.assert_same_agent(a)
        # On B the resumed turn reads the input that waited on A.
        res = self.b.hub.ResumeAgent(self.s.hub.ResumeAgentRequest(agent_id=a), timeout=10)
        end_b = self.b.wait_turn_end(a, after_seq=res.seq)
        self.assertEqual(end_b.kind, T.EVENT_KIND_FINAL)
        self.assertEqual(H.payload(end_b)["output"], "later")
        self.assertGreater(res.seq, s.seq)
        self.assertEqual(self.b.get(a).pending_inputs, 0)

    def test_running_agent_is_refused(self):
        T = self.T
        a = self.c.spawn("sleep 20000").agent_id
        self.c.wait_state(a, T.AGENT_STATE_RUNNING)
        self.assert_code(lambda: self.rpc_export(a), grpc.StatusCode.FAILED_PRECONDITION,
                         "stop or wait for the turn to end")
        p = self.path("running.pb")
        r = H.run_cli(["export", "--hub", self.c.addr, "-o", p, a])
        self.assert_one_line_refusal(r, "running")
        self.assertFalse(os.path.exists(p))
        self.c.kill(a)

    def test_export_over_the_request_limit_is_refused(self):
        T = self.T
        # The text comes back as the echo call, its result and the final answer: > 256 KiB.
        a = self.c.spawn("x" * 80000).agent_id
        self.c.wait_turn_end(a)
        self.c.wait_state(a, T.AGENT_STATE_IDLE)
        self.assert_code(lambda: self.rpc_export(a), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         "262144 bytes", "--max-message-bytes")
        p = self.path("big.pb")
        self.assert_one_line_refusal(
            H.run_cli(["export", "--hub", self.c.addr, "-o", p, a]), "exports to")
        self.assertFalse(os.path.exists(p))

    def test_unknown_id_and_bad_usage(self):
        r = H.run_cli(["export", "--hub", self.c.addr, "-o", self.path("x.pb"),
                       "0000000000000000"])
        self.assert_one_line_refusal(r, "0000000000000000")
        self.assert_code(lambda: self.rpc_export("0000000000000000"), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(H.run_cli(["export", "--hub", self.c.addr]).returncode, 2)
        self.assertEqual(H.run_cli(["import", "--hub", self.b.addr]).returncode, 2)
        self.assertEqual(H.run_cli(["export", "--help"]).returncode, 0)
        self.assertEqual(H.run_cli(["import", "--help"]).returncode, 0)
        r = self.cli_import(self.path("no-such-file.pb"))
        self.assert_one_line_refusal(r, "cannot open")

    def test_bad_files_create_nothing(self):
        T = self.T
        a = self.c.spawn("hello").agent_id
        self.c.wait_turn_end(a)
        self.c.wait_state(a, T.AGENT_STATE_IDLE)
        p = self.export(a, "whole.pb")
        with open(p, "rb") as f:
            data = f.read()
        n_before = len(self.b.list_all())
        bad = {"garbage.pb": b"\xff\xfe this is not an export \x00\x01",
               "empty.pb": b"",
               "half.pb": data[:len(data) // 2],
               "short.pb": data[:-1]}
        for name, content in bad.items():
            q = self.path(name)
            with open(q, "wb") as f:
                f.write(content)
            r = self.cli_import(q)
            self.assert_one_line_refusal(r)
        self.assertEqual(len(self.b.list_all()), n_before)
        self.assert_code(lambda: self.b.get(a), grpc.StatusCode.NOT_FOUND)

        # Decodable but wrong, straight to the RPC: nothing stored either.
        x = self.rpc_export(a)
        x.format_version = 2
        self.assert_code(lambda: self.rpc_import(x), grpc.StatusCode.INVALID_ARGUMENT,
                         "format_version 2")
        x = self.rpc_export(a)
        x.events[1].seq, x.events[2].seq = x.events[2].seq, x.events[1].seq
        self.assert_code(lambda: self.rpc_import(x), grpc.StatusCode.INVALID_ARGUMENT,
                         "in order")
        x = self.rpc_export(a)
        del x.events[-1]
        self.assert_code(lambda: self.rpc_import(x), grpc.StatusCode.INVALID_ARGUMENT,
                         "truncated")
        x = self.rpc_export(a)
        x.spec.max_iterations = 5000
        self.assert_code(lambda: self.rpc_import(x), grpc.StatusCode.INVALID_ARGUMENT)
        self.assert_code(lambda: self.b.get(a), grpc.StatusCode.NOT_FOUND)
        # The good file still imports afterwards, and B keeps it over a restart.
        r = self.cli_import(p)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_agent(a)
        port = self.b.port
        self.b.stop_hub()
        self.b.start_hub(port=port)
        self.b.wait_registered("n1", 1)
        self.assert_same_agent(a)
        s = self.b.send(a, "final again")
        self.assertEqual(self.b.wait_turn_end(a, after_seq=s.seq).kind, T.EVENT_KIND_FINAL)


if __name__ == "__main__":
    H.main()
