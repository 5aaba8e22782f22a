"""tests/e2e/test_single_instance.py - one hub per store, and a hub that notices losing it.

- A second `agentry hub` on the same --store (another port) exits 1 with one stderr line naming
  the store, and the first hub neither notices nor loses anything. Once the first hub is gone,
  by SIGTERM or by SIGKILL, a new one takes the store at once.
- `rm hub.db` under a running hub: the next write is refused with UNAVAILABLE and a message that
  says what to do, every later write too, with a single store error in the hub's log; the hub
  keeps answering what it knows from memory and still exits 0 on SIGTERM.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402

STORE_ERROR = re.compile(r"level=error comp=hub event=store\.")


def agent_view(a):
    """What the hub reports about an agent, minus what a read may refresh (nothing today)."""
    return (a.id, a.state, a.last_seq, a.epoch, a.node_id, a.last_output, a.last_error, a.spec)


class SecondHubTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 2

    def second_hub(self):
        """Runs another hub on the same store and a fresh port; returns CompletedProcess."""
        port = H.free_port()
        return H.run_cli(["hub", "--listen", "127.0.0.1:%d" % port, "--store",
                          "sqlite:" + self.c.store, "--heartbeat", "500ms"], timeout=30)

    def test_second_hub_on_the_same_store_is_refused(self):
        c = self.c
        a = c.spawn("final before", tools=())
        c.wait_turn_end(a.agent_id)
        before, trace = agent_view(c.get(a.agent_id)), c.trace(a.agent_id)

        r = self.second_hub()
        # Exactly one line: a hub that never started logs nothing else (no hub.stopped).
        line = H.one_error_line(self, r)
        self.assertIn("'%s'" % c.store, line)
        self.assertIn("in use by another process", line)
        self.assertIn("--store", line)  # says what to do

        # The first hub never noticed: same agent, same log, and it still commits and runs turns.
        self.assertTrue(c.hub_proc.running())
        self.assertEqual(agent_view(c.get(a.agent_id)), before)
        self.assertEqual(c.trace(a.agent_id), trace)
        s = c.send(a.agent_id, "final after")
        self.assertEqual(s.seq, before[2] + 1)
        end = c.wait_turn_end(a.agent_id, after_seq=s.seq)
        self.assertEqual(H.payload(end)["output"], "after")
        c.assert_healthy(self)
        self.assertNotRegex(c.hub_log(), STORE_ERROR)

    def test_the_store_is_free_once_the_hub_is_gone(self):
        c = self.c
        a = c.spawn("final kept", tools=())
        c.wait_turn_end(a.agent_id)
        before = agent_view(c.get(a.agent_id))
        port = c.port

        # SIGTERM: the next hub starts on this store (on the same port, so no start is retried).
        c.stop_hub()
        c.start_hub(port=port, timeout=15)
        self.assertEqual(agent_view(c.get(a.agent_id)), before)

        # SIGKILL leaves no clean close behind, and still no lock: the kernel drops it with the
        # process, so a new hub starts at once, without waiting for anything to time out.
        c.hub_proc.sigkill()
        c.retired.append(c.hub_proc)
        c.hub_proc = None
        c.start_hub(port=port, timeout=15)
        self.assertNotIn("in use", c.hub_log())
        self.assertEqual(agent_view(c.get(a.agent_id)), before)
        c.wait_registered("n1", 1)
        c.assert_healthy(self)


class StoreDeletedTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 2

    def assert_refused(self, fn, what):
        with self.assertRaises(grpc.RpcError, msg=what) as cm:
            fn()
        e = cm.exception
        self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, "%s: %s" % (what, e.details()))
        return e.details()

    def test_rm_store_under_a_running_hub(self):
        c = self.c
        a = c.spawn("final one", tools=())
        c.wait_turn_end(a.agent_id)
        quiet = c.spawn("", tools=())  # no turn yet
        known = {x: agent_view(c.get(x)) for x in (a.agent_id, quiet.agent_id)}
        trace = c.trace(a.agent_id)

        os.unlink(c.store)
        details = [self.assert_refused(lambda: c.spawn("final lost", tools=()), "spawn")]
        for i in range(4):
            details.append(self.assert_refused(lambda: c.send(a.agent_id, "final %d" % i),
                                               "send %d" % i))
            details.append(self.assert_refused(lambda: c.spawn("final %d" % i, tools=()),
                                               "spawn %d" % i))
        for d in details:
            self.assertIn("'%s'" % c.store, d)
            self.assertIn("deleted", d)
            self.assertRegex(d, r"restart|start it")  # says what to do

        # Reads are answered from what the hub knows; it neither crashed nor forgot anything.
        r = c.hub.Ping(self.s.hub.PingRequest(payload=b"ping"), timeout=5)
        self.assertEqual(r.payload, b"ping")
        for x, view in known.items():
            self.assertEqual(agent_view(c.get(x)), view)
        self.assertEqual(c.trace(a.agent_id), trace)
        self.assertTrue(c.hub_proc.running())

        # One store error in the log, however many writes were refused: the store logs when it
        # notices, not per write (each refused write is the caller's to report).
        errors = [l for l in c.hub_log().splitlines() if STORE_ERROR.search(l)]
        self.assertEqual(len(errors), 1, "\n".join(errors) or c.hub_log())
        self.assertIn("event=store.lost", errors[0])
        self.assertIn(c.store, errors[0])

        c.stop_hub()  # SIGTERM, exit 0 required
        self.assertFalse(os.path.exists(c.store), "a hub must not recreate a deleted store")
        # Nor leave the deleted file's log behind, to be replayed into a backup restored there.
        wal = c.store + "-wal"
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        self.assertEqual(size, 0, "%s left with %d bytes" % (wal, size))


if __name__ == "__main__":
    H.main()
