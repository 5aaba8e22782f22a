"""tests/e2e/test_hub_lifecycle.py - starting, signals and stopping, as an operator sees them.

Regressions (issue points 4, 9, 10):
- A second hub on a port in use started silently and shared it (gRPC's SO_REUSEPORT), clients
  split between two databases. It now exits with one clear line, before touching any store.
- A config error logged `hub.stopped clean=1` for a hub that never started; a listen failure
  printed a raw gRPC-core line before the clean error.
- `--listen 127.0.0.1:99999` listened on port 34463 (gRPC takes the port modulo 65536); a port
  above 65535 is now refused. `--health-listen` equal to `--listen` is refused as a usage error
  rather than reported as a port in use by another hub.
- SIGHUP killed the hub without a graceful stop (exit 129). It is now logged and ignored.
- While shutting down the hub still placed turns (interrupted, assigned epoch 2, interrupted
  again). It now stops placing first.
"""
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def stderr_lines(r):
    return [x for x in r.stderr.strip().splitlines() if x]


class StartTest(H.ClusterTestCase):
    NODES = 1

    def test_second_hub_on_a_port_in_use_exits_with_one_line(self):
        d = tempfile.mkdtemp(prefix="agentry-e2e-second-")
        other = os.path.join(d, "other.db")
        r = H.run_cli(["hub", "--listen", self.c.addr, "--store", "sqlite:" + other], timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = stderr_lines(r)
        self.assertEqual(lines, ["error: cannot listen on '%s': address already in use (is "
                                 "another agent-hub running?)" % self.c.addr], r.stderr)
        self.assertFalse(os.path.exists(other), "the store was created before the listen failed")
        # The first hub still has every client to itself.
        for i in range(5):
            self.c.assert_healthy(self, "still-me-%d" % i)
        os.rmdir(d)

    def test_bad_configuration_never_starts_and_says_so_once(self):
        d = tempfile.mkdtemp(prefix="agentry-e2e-config-")
        store = "sqlite:" + os.path.join(d, "h.db")
        cases = [
            (["--scheduler", "nope"], "unknown scheduler 'nope'"),
            (["--store", "mysql://x"], "unsupported store url scheme 'mysql'"),
            (["--store", "sqlite:" + os.path.join(d, "missing", "h.db")], "cannot open"),
            (["--listen", "256.1.1.1:1", "--insecure"], "cannot listen on '256.1.1.1:1'"),
            # gRPC takes a port modulo 65536: 99999 listened on 34463.
            (["--listen", "127.0.0.1:99999"], "not a valid host:port (a port is 0 to 65535)"),
            (["--listen", "127.0.0.1:7x"], "not a valid host:port"),
            (["--health-listen", "127.0.0.1:70000"], "--health-listen: cannot listen on"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                full = ["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store", store] + args
                if args[0] == "--listen":
                    full = ["hub", "--store", store] + args
                r = H.run_cli(full, timeout=30)
                self.assertIn(r.returncode, (1, 2), r.stderr)
                lines = stderr_lines(r)
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(want, lines[0])
                self.assertTrue(lines[0].startswith("error: "), lines[0])
                self.assertNotIn("hub.stopped", r.stderr)
        self.assertEqual(os.listdir(d), [], "a hub that did not start left files behind")
        os.rmdir(d)

    def test_health_listen_on_the_main_port_is_a_usage_error(self):
        addr = "127.0.0.1:%d" % H.free_port()
        r = H.run_cli(["hub", "--listen", addr, "--health-listen", addr], timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = stderr_lines(r)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("--health-listen %s is also --listen" % addr, lines[0])

    def test_sighup_does_not_stop(self):
        r = self.c.spawn("sleep 400; final through the hangup")
        self.c.hub_proc.signal(signal.SIGHUP)
        # Under TLS the hub re-reads its certificates (test_tls.py); it never stops.
        action = "reload_tls" if H.E2E_TLS else "ignored"
        H.wait_for(lambda: "signal=SIGHUP action=%s" % action in self.c.hub_log(), 10,
                   what="the hub to log the SIGHUP")
        self.c.nodes["n1"].signal(signal.SIGHUP)
        H.wait_for(lambda: "signal=SIGHUP action=ignored" in self.c.nodes["n1"].text(), 10,
                   what="the node to log the SIGHUP")
        end = self.c.wait_turn_end(r.agent_id)
        self.assertEqual(H.payload(end)["output"], "through the hangup")
        self.assertTrue(self.c.hub_proc.running() and self.c.nodes["n1"].running())
        self.c.assert_healthy(self)


class StopTest(H.ClusterTestCase):
    """Stopping the hub with turns running on two nodes: each turn is interrupted once, because
    the hub is shutting down, and placed nowhere until the next hub places it."""
    NODES = 2
    CAPACITY = 4

    def test_shutdown_stops_placing_first(self):
        c = self.c
        ids = [c.spawn("sleep 1500; final after restart", tools=()).agent_id for _ in range(6)]
        for aid in ids:
            c.wait_kind(aid, self.T.EVENT_KIND_MODEL_REQUEST)
        port = c.port
        c.stop_hub()
        log = c.retired[-1].text()
        self.assertIn("event=hub.stopped clean=1", log)
        c.start_hub(port=port)
        for aid in ids:
            evs = c.trace(aid)
            kinds = self.events_kinds(evs)
            first_assigned = kinds.index("assigned")
            stop = kinds.index("interrupted")
            self.assertEqual(H.payload(evs[stop])["reason"], "the hub is shutting down")
            # Nothing was placed between the interruption and the new hub's placement...
            later = kinds[stop + 1:]
            self.assertNotIn("interrupted", later[:1], kinds)
            self.assertEqual(kinds[first_assigned:stop].count("assigned"), 1, kinds)
            # ... and the old hub placed nothing more once it began to stop.
            epochs = [H.payload(e)["epoch"] for e in evs if H.kind_name(e.kind) == "assigned"]
            self.assertEqual(epochs[0], 1, kinds)
        for n in ("n1", "n2"):
            c.wait_registered(n, 1)
        for aid in ids:
            end = c.wait_turn_end(aid, after_seq=0, timeout=30)
            self.assertEqual(H.payload(end)["output"], "after restart")
            a = c.get(aid)
            self.assertEqual(a.epoch, 2, self.events_kinds(c.trace(aid)))
            # A graceful stop is not the turn's fault: it does not count toward the limit.
            interrupted = [H.payload(e) for e in c.trace(aid) if H.kind_name(e.kind) ==
                           "interrupted"]
            self.assertEqual([p["retry_in_ms"] for p in interrupted], [0])


if __name__ == "__main__":
    H.main()
