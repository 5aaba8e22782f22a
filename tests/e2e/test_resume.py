"""tests/e2e/test_resume.py - ResumeAgent and `agentry resume` (issue 12, point 7).

A yielded or failed agent continues with a new turn that takes no input: the model is asked again
from the agent's checkpoint, the history is kept, a RESUMED event records it, and the resume's
max_iterations bounds that turn only. Idle, pending, running and killed agents are refused with
FAILED_PRECONDITION; unknown ids are NOT_FOUND; a limit over 1000 is INVALID_ARGUMENT (exit 2 in
the CLI).
"""
import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402


class ResumeTest(H.ClusterTestCase):
    NODES = 1

    def resume(self, agent_id, max_iterations=0):
        return self.c.hub.ResumeAgent(self.s.hub.ResumeAgentRequest(
            agent_id=agent_id, max_iterations=max_iterations), timeout=10)

    def assert_refused(self, agent_id, code, *parts, max_iterations=0):
        with self.assertRaises(grpc.RpcError) as cm:
            self.resume(agent_id, max_iterations)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        for p in parts:
            self.assertIn(p, cm.exception.details())

    def cli_resume(self, *args):
        return H.run_cli(["resume", "--hub", self.c.addr] + list(args))

    def kinds_after(self, events, seq):
        return [H.kind_name(e.kind) for e in events if e.seq > seq]

    def test_yielded_agent_runs_its_resume_limit_and_keeps_its_history(self):
        T = self.T
        a = self.c.spawn("loop", max_iterations=1).agent_id
        end = self.c.wait_turn_end(a)
        self.assertEqual(end.kind, T.EVENT_KIND_YIELD)
        self.assertEqual(H.payload(end)["iterations"], 1)
        self.c.wait_state(a, T.AGENT_STATE_YIELDED)
        first_turn = self.c.trace(a)

        res = self.cli_resume("--max-iterations", "3", a)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout.strip()
        self.assertRegex(out, r"^agent %s resumed at seq (\d+), (running|pending)$" % a)
        seq = int(out.split("seq ")[1].split(",")[0])
        self.assertEqual(seq, end.seq + 1)

        end2 = self.c.wait_turn_end(a, after_seq=seq)
        self.assertEqual(end2.kind, T.EVENT_KIND_YIELD)
        self.assertEqual(H.payload(end2)["iterations"], 3)
        evs = self.c.trace(a)
        self.assert_contiguous(evs)
        # The earlier turn is still there, byte for byte.
        self.assertEqual([(e.seq, e.kind, e.payload) for e in evs[:len(first_turn)]],
                         [(e.seq, e.kind, e.payload) for e in first_turn])
        resumed = evs[seq - 1]
        self.assertEqual(resumed.kind, T.EVENT_KIND_RESUMED)
        self.assertEqual(H.payload(resumed), {"from": "yielded", "max_iterations": 3})
        after = self.kinds_after(evs, seq)
        self.assertEqual(after[0], "assigned")
        self.assertNotIn("input", after)
        self.assertEqual(after.count("model_request"), 3)
        # The model was asked with the conversation so far: the first turn's user message,
        # the model's tool call and its result, then more of the same.
        reqs = [H.payload(e) for e in evs if e.seq > seq and e.kind == T.EVENT_KIND_MODEL_REQUEST]
        self.assertEqual(reqs[0]["messages"], 3)
        self.assertEqual([r["iteration"] for r in reqs], [1, 2, 3])

        # The limit was that turn's only: a resume without one runs the spec's (1), and so does
        # the next turn an input starts.
        r = self.resume(a)
        self.assertIn(r.state, (T.AGENT_STATE_RUNNING, T.AGENT_STATE_PENDING))
        self.assertEqual(H.payload(self.c.trace(a, r.seq)[0])["max_iterations"], 1)
        end3 = self.c.wait_turn_end(a, after_seq=r.seq)
        self.assertEqual(H.payload(end3)["iterations"], 1)
        s = self.c.send(a, "loop")
        end4 = self.c.wait_turn_end(a, after_seq=s.seq)
        self.assertEqual(H.payload(end4)["iterations"], 1)
        agent = self.c.get(a)
        self.assertEqual(agent.state, T.AGENT_STATE_YIELDED)
        self.assertEqual(agent.usage.model_calls, 1 + 3 + 1 + 1)

        # The CLI's trace names the new kind.
        res = H.run_cli(["trace", "--hub", self.c.addr, a])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("resumed", res.stdout)

    def test_failed_agent_asks_the_model_again(self):
        T = self.T
        a = self.c.spawn("fail model down", tools=()).agent_id
        end = self.c.wait_turn_end(a)
        self.assertEqual(end.kind, T.EVENT_KIND_ERROR)
        self.c.wait_state(a, T.AGENT_STATE_FAILED)
        r = self.resume(a, max_iterations=2)
        self.assertIn(r.state, (T.AGENT_STATE_RUNNING, T.AGENT_STATE_PENDING))
        end2 = self.c.wait_turn_end(a, after_seq=r.seq)
        self.assertEqual(end2.kind, T.EVENT_KIND_ERROR)
        self.assertIn("model down", H.payload(end2)["message"])
        evs = self.c.trace(a)
        self.assert_contiguous(evs)
        self.assertEqual(H.payload(evs[r.seq - 1]), {"from": "failed", "max_iterations": 2})
        self.assertEqual(self.kinds_after(evs, r.seq), ["assigned", "model_request", "error"])
        # The same conversation as before: the one user message, no new input.
        req = [H.payload(e) for e in evs if e.kind == T.EVENT_KIND_MODEL_REQUEST]
        self.assertEqual([x["messages"] for x in req], [1, 1])
        self.assertEqual(self.c.get(a).state, T.AGENT_STATE_FAILED)

    def test_states_that_cannot_be_resumed_are_refused(self):
        T = self.T
        FP = grpc.StatusCode.FAILED_PRECONDITION
        idle = self.c.spawn("final done", tools=()).agent_id
        self.c.wait_turn_end(idle)
        self.c.wait_state(idle, T.AGENT_STATE_IDLE)
        self.assert_refused(idle, FP, "agent '%s' is idle: its last turn finished; send it a "
                            "message instead" % idle)
        res = self.cli_resume(idle)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout, "")
        self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)
        self.assertIn("is idle", res.stderr)

        running = self.c.spawn("sleep 30000; final late", tools=()).agent_id
        self.c.wait_state(running, T.AGENT_STATE_RUNNING)
        self.assert_refused(running, FP, "agent '%s' is already running" % running)
        # The turn stores nothing more until its 30 s model call answers: wait for that call's
        # MODEL_REQUEST before counting, or it could land between the count and the kill.
        self.c.wait_kind(running, T.EVENT_KIND_MODEL_REQUEST)
        last = self.c.get(running).last_seq
        self.c.kill(running)
        self.assert_refused(running, FP, "agent '%s' is killed" % running)
        # Refusals store nothing.
        self.assertEqual(self.c.get(running).last_seq, last + 1)

        self.assert_refused("0000000000000000", grpc.StatusCode.NOT_FOUND)
        self.assert_refused("nope", grpc.StatusCode.NOT_FOUND)
        self.assert_refused("", grpc.StatusCode.INVALID_ARGUMENT)
        res = self.cli_resume("0000000000000000")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)

    def test_bad_limits_are_refused_before_anything_is_stored(self):
        T = self.T
        a = self.c.spawn("loop", max_iterations=1).agent_id
        self.c.wait_turn_end(a)
        self.c.wait_state(a, T.AGENT_STATE_YIELDED)
        last = self.c.get(a).last_seq
        self.assert_refused(a, grpc.StatusCode.INVALID_ARGUMENT,
                            "max_iterations is 1001; the limit is 1000", max_iterations=1001)
        for bad in (["--max-iterations", "1001", a], ["--max-iterations", "0", a],
                    ["--max-iterations", "many", a], []):
            res = self.cli_resume(*bad)
            self.assertEqual(res.returncode, 2, (bad, res.stderr))
            self.assertTrue(res.stderr.startswith("error: "), res.stderr)
        res = self.cli_resume("--help")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("agentry resume", res.stdout + res.stderr)
        self.assertEqual(self.c.get(a).last_seq, last)
        self.assertEqual(self.c.get(a).state, T.AGENT_STATE_YIELDED)

    def test_racing_resumes_start_one_turn(self):
        T = self.T
        # Each model reply takes 500 ms: the resumed turn is still running when the others
        # arrive (a resume after it ended would rightly start another).
        a = self.c.spawn("sleep 500; loop", max_iterations=1).agent_id
        self.c.wait_turn_end(a)
        self.c.wait_state(a, T.AGENT_STATE_YIELDED)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futs = [ex.submit(self.resume, a, 2) for _ in range(4)]
            ok, refused = [], []
            for f in futs:
                try:
                    ok.append(f.result())
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION, e.details())
                    self.assertIn("already running", e.details())
                    refused.append(e)
        self.assertEqual(len(ok), 1)
        self.assertEqual(len(refused), 3)
        end = self.c.wait_turn_end(a, after_seq=ok[0].seq)
        self.assertEqual(H.payload(end)["iterations"], 2)
        kinds = [H.kind_name(e.kind) for e in self.c.trace(a)]
        self.assertEqual(kinds.count("resumed"), 1)


class ResumeRestartTest(H.ClusterTestCase):
    NODES = 1

    def test_a_resumed_turn_keeps_its_limit_across_a_hub_restart(self):
        """The limit is not in the agent's row: a restarted hub reads it back from the RESUMED
        event, so the turn it places again still runs the resume's iterations."""
        T = self.T
        c = self.c
        a = c.spawn("sleep 300; loop", max_iterations=1).agent_id
        c.wait_turn_end(a)
        r = c.hub.ResumeAgent(self.s.hub.ResumeAgentRequest(agent_id=a, max_iterations=3),
                              timeout=10)
        c.wait_kind(a, T.EVENT_KIND_MODEL_REQUEST, from_seq=r.seq)
        port = c.port
        c.stop_hub()
        c.start_hub(port=port)
        end = c.wait_turn_end(a, after_seq=r.seq, timeout=30)
        self.assertEqual(end.kind, T.EVENT_KIND_YIELD)
        self.assertEqual(H.payload(end)["iterations"], 3)
        kinds = [H.kind_name(e.kind) for e in c.trace(a) if e.seq > r.seq]
        self.assertIn("interrupted", kinds)
        self.assertEqual(kinds.count("resumed"), 0)


if __name__ == "__main__":
    H.main()
