"""tests/e2e/test_restart.py - stopping the hub (SIGTERM, exit 0) and starting it again on the
same store and port while the nodes stay up and reconnect by themselves.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402


def restart_hub(c, timeout=15):
    """SIGTERM the hub (it must exit 0), start it again on the same port and store. A hub that
    does not come up is SIGKILLed (it may not answer SIGTERM) and the failure re-raised."""
    port = c.port
    c.stop_hub()
    try:
        c.start_hub(port=port, timeout=timeout)
    except AssertionError:
        if c.hub_proc is not None:
            c.hub_proc.sigkill()
            c.retired.append(c.hub_proc)
            c.hub_proc = None
        raise


class RestartEmptyStoreTest(H.ClusterTestCase):
    NODES = 2
    CAPACITY = 2

    def test_nodes_reconnect_and_shutdown_ends_streams(self):
        c = self.c
        restart_hub(c)
        for n in ("n1", "n2"):
            c.wait_registered(n, 1)
            H.wait_for(lambda: "the hub is shutting down" in c.nodes[n].text(), 5,
                       what="%s to log why its stream ended" % n)
        c.assert_healthy(self, "after restart")

        # Long-lived calls end with UNAVAILABLE and a message a client can act on.
        idle = c.spawn("")
        follow = c.hub.Trace(self.s.hub.TraceRequest(agent_id=idle.agent_id, follow=True),
                             timeout=30)
        self.assertEqual(next(follow).seq, 1)
        waiting = c.hub.Invoke.future(self.s.hub.InvokeRequest(
            spec=c.spec(()), input="sleep 5000; final never"), timeout=30)
        busy = H.wait_for(lambda: [a for a in c.list_all() if a.state ==
                                   self.T.AGENT_STATE_RUNNING], 10, what="the invoked turn")
        self.assertEqual(len(busy), 1)
        done = threading.Event()
        result = {}

        def drain():
            try:
                list(follow)
            except grpc.RpcError as e:
                result["trace"] = (e.code(), e.details())
            try:
                waiting.result()
            except grpc.RpcError as e:
                result["invoke"] = (e.code(), e.details())
            done.set()
        threading.Thread(target=drain, daemon=True).start()
        c.stop_hub(keep_channel=True)  # exit 0 required
        self.assertTrue(done.wait(10))
        for what in ("trace", "invoke"):
            code, details = result[what]
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, "%s: %s" % (what, details))
            self.assertIn("shutting down", details)
        self.assertRegex(c.retired[-1].text(), r"event=hub\.stopped clean=1")


class RestartWithAgentsTest(H.ClusterTestCase):
    NODES = 2
    CAPACITY = 2

    def test_agents_and_traces_survive_restart(self):
        # Regression: hub_new() deadlocked on any store that held an agent (load_agent called
        # hub_store_scan_events inside hub_store_load_agents, both taking st->rconn_mu); the
        # restarted hub hung after "store.opened", never listened, ignored SIGTERM. Fixed in
        # 26f8256.
        c, T = self.c, self.T
        a = c.spawn("hello")
        c.wait_turn_end(a.agent_id)
        b = c.spawn("final one", tools=())
        c.wait_turn_end(b.agent_id)
        sb = c.send(b.agent_id, "final two")
        c.wait_turn_end(b.agent_id, after_seq=sb.seq)
        k = c.spawn("")
        c.kill(k.agent_id, reason="before restart")
        d = c.spawn("final d", tools=(), request_id="restart-rid")
        c.wait_turn_end(d.agent_id)
        e = c.spawn("fail oops")
        c.wait_turn_end(e.agent_id)
        # One turn is running when the hub goes down: it is interrupted and run again.
        r = c.spawn("sleep 800; final slow", tools=())
        c.wait_kind(r.agent_id, T.EVENT_KIND_MODEL_REQUEST)

        before = {x.id: x for x in c.list_all()}
        order = [x.id for x in c.list_all()]
        traces = {i: c.trace(i) for i in order}
        self.assertEqual(before[r.agent_id].state, T.AGENT_STATE_RUNNING)

        restart_hub(c, timeout=5)
        H.wait_for(lambda: "hub.loaded" in c.hub_log(), 5, what="hub.loaded")
        m = H.re.search(r"event=hub\.loaded .*agents=(\d+) interrupted=(\d+) pending=(\d+)",
                        c.hub_log())
        self.assertTrue(m, c.hub_log())
        # Only the active agent is loaded at start (the others when asked for). Its turn was
        # interrupted either while the hub stopped (its node's stream closed first) or at load:
        # either way exactly one turn waits to run again.
        self.assertEqual((int(m.group(1)), int(m.group(2)) + int(m.group(3))), (1, 1))
        for n in ("n1", "n2"):
            c.wait_registered(n, 1)

        self.assertEqual([x.id for x in c.list_all()], order, "same agents, same order")
        for i in order:
            if i == r.agent_id:
                continue
            now = c.get(i)
            was = before[i]
            self.assertEqual((now.state, now.last_seq, now.epoch, now.node_id, now.last_output,
                              now.last_error, now.usage, now.spec),
                             (was.state, was.last_seq, was.epoch, was.node_id, was.last_output,
                              was.last_error, was.usage, was.spec), "agent %s" % i)
            self.assertEqual(c.trace(i), traces[i], "the full trace of %s survived" % i)

        # The running turn: interrupted by the restart, then run again to its end.
        end = c.wait_turn_end(r.agent_id, timeout=20)
        self.assertEqual(H.payload(end)["output"], "slow")
        evs = c.trace(r.agent_id)
        self.assert_contiguous(evs)
        n0 = len(traces[r.agent_id])
        self.assertEqual(evs[:n0], traces[r.agent_id])
        self.assertEqual(H.kind_name(evs[n0].kind), "interrupted")
        intr = H.payload(evs[n0])
        self.assertEqual((intr["epoch"], evs[n0].node_id), (1, ""))
        self.assertIn(intr["node"], ("n1", "n2"))
        self.assertTrue(intr["reason"])
        self.assertEqual(H.payload(evs[n0 + 1])["epoch"], 2)

        # The log goes on where it stopped; a new turn gets a new epoch.
        s = c.send(a.agent_id, "final again")
        self.assertEqual(s.seq, before[a.agent_id].last_seq + 1)
        end = c.wait_turn_end(a.agent_id, after_seq=s.seq)
        self.assertEqual(H.payload(end)["output"], "again")
        self.assertEqual(c.get(a.agent_id).epoch, 2)
        # B keeps its conversation: its third turn's model sees the earlier turns.
        s = c.send(b.agent_id, "final three")
        c.wait_turn_end(b.agent_id, after_seq=s.seq)
        req = [x for x in c.trace(b.agent_id, from_seq=s.seq)
               if x.kind == T.EVENT_KIND_MODEL_REQUEST][0]
        self.assertEqual(H.payload(req)["messages"], 5)
        # The idempotency key, the killed state and the failed state survived.
        again = c.spawn("final d", tools=(), request_id="restart-rid")
        self.assertEqual((again.agent_id, again.existing), (d.agent_id, True))
        killed_seq = c.get(k.agent_id).last_seq
        again = c.kill(k.agent_id)
        self.assertEqual((again.seq, again.already_killed), (killed_seq, True))
        s = c.send(e.agent_id, "final fixed")
        end = c.wait_turn_end(e.agent_id, after_seq=s.seq)
        self.assertEqual(H.payload(end)["output"], "fixed")
        c.assert_healthy(self)



class RestartUnplacedTurnTest(H.ClusterTestCase):
    NODES = 1

    def test_input_stored_for_an_idle_agent_runs_after_restart(self):
        # A turn that ends with input waiting has the hub place the next one after its commit;
        # a hub stopped in between leaves an idle agent with input waiting. Made here by storing
        # the input while the hub is down (the store is the truth); the restarted hub runs that
        # turn by itself.
        import sqlite3
        c = self.c
        a = c.spawn("final one", tools=())
        c.wait_turn_end(a.agent_id)
        last = c.get(a.agent_id).last_seq
        port = c.port
        c.stop_hub()
        db = sqlite3.connect(c.store)
        db.execute("INSERT INTO events(agent_id, seq, kind, payload, node_id, time_ns) "
                   "VALUES(?, ?, ?, ?, '', 0)",
                   (a.agent_id, last + 1, self.T.EVENT_KIND_INPUT, '{"text":"final two"}'))
        # As the write that ended a turn with input waiting leaves the row: the restarted hub
        # loads the agents marked so, with the pending and the running ones.
        db.execute("UPDATE agents SET waiting_input = 1 WHERE id = ?", (a.agent_id,))
        db.commit()
        db.close()
        c.start_hub(port=port)
        end = c.wait_turn_end(a.agent_id, after_seq=last + 1)
        self.assertEqual(H.payload(end)["output"], "two")
        self.assertEqual(c.get(a.agent_id).state, self.T.AGENT_STATE_IDLE)


if __name__ == "__main__":
    H.main()
