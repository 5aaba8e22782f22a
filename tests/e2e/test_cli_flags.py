"""tests/e2e/test_cli_flags.py - CLI flag values the CLI used to misread, as real processes.

A duration flag given a bare number ("--duration 5") used to be read as milliseconds, silently:
a 5 s benchmark ran for 5 ms, and a node with "--handshake-timeout 1" reconnected forever. Every
such value is now refused as bad usage (exit 2, one stderr line saying "missing unit"), except
"0", which means zero or none in any unit.

`agentry bench` against a hub it cannot reach used to spin at 100% CPU through failed calls until
its budget ran out (182k calls in a few seconds). It now checks the hub first and exits 1 with
one line naming the address, and a hub that goes away during a run ends the run with a report.

Commands that would run on (a hub, a node, a long bench) when a bad value is accepted are run
with a bound: a process still running at the bound fails the test instead of hanging it.
"""
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

BENCH_BOUND = 10.0  # a hang guard for a bench that must fail fast, not a speed requirement

UNKNOWN_ID = "01m0000000000000"
MISSING_UNIT = re.compile(r"^error: invalid value '([0-9.]+)' for --([a-z-]+): missing unit "
                          r"\(want \1s, \1ms, 2m or 1h\)$")


class CliFlagsTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 2

    def run_bounded(self, argv, bound=20.0):
        """Runs the CLI; fails the test (instead of hanging) if it is still running at bound."""
        try:
            return H.run_cli(argv, timeout=bound)
        except subprocess.TimeoutExpired:
            self.fail("agentry %s was still running after %.0fs (killed)" % (" ".join(argv), bound))

    def one_error_line(self, r, rc):
        lines = r.stderr.splitlines()
        self.assertEqual(r.returncode, rc, r.stderr)
        self.assertEqual(len(lines), 1, "exactly one stderr line, got %r" % r.stderr)
        self.assertEqual(r.stdout, "")
        return lines[0]

    # --- durations -------------------------------------------------------------------------------

    def test_bare_number_duration_is_refused(self):
        hub = ["--hub", self.c.addr]
        tmp = tempfile.mkdtemp(prefix="agentry-e2e-flags-")
        self.addCleanup(shutil.rmtree, tmp, True)
        store = "sqlite:" + os.path.join(tmp, "hub.db")
        # (argv, the flag the message must name, the value it must quote)
        cases = [
            (["bench", "--rpc", "ping", "--duration", "5"] + hub, "duration", "5"),
            (["bench", "--rpc", "ping", "-d", "5"] + hub, "duration", "5"),
            (["get", "--timeout", "1500", UNKNOWN_ID] + hub, "timeout", "1500"),
            (["invoke", "--timeout=2", "final x"] + hub, "timeout", "2"),
            (["ps", "--timeout", "1.5"] + hub, "timeout", "1.5"),
            # Accepted, these would run until killed: the bound turns that into a failure. The
            # hub gets its own port and store so that it could not disturb anything else.
            (["node", "join", "--node-id", "flags", "--handshake-timeout", "1"] + hub,
             "handshake-timeout", "1"),
            (["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store", store,
              "--heartbeat", "2"], "heartbeat", "2"),
        ]
        for argv, flag, value in cases:
            with self.subTest(argv=argv):
                r = self.run_bounded(argv)
                line = self.one_error_line(r, 2)
                m = MISSING_UNIT.match(line)
                self.assertIsNotNone(m, "want a 'missing unit' usage error, got %r" % line)
                self.assertEqual((m.group(2), m.group(1)), (flag, value))

    def test_zero_and_units_are_accepted(self):
        # "0" needs no unit: for --timeout it means no deadline, and the call still completes.
        r = self.run_bounded(["invoke", "--timeout", "0", "--hub", self.c.addr, "final zero"])
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "zero\n", ""))
        r = self.run_bounded(["get", "--timeout", "1500ms", "--hub", self.c.addr, UNKNOWN_ID])
        line = self.one_error_line(r, 1)  # the flag parsed; the hub said there is no such agent
        self.assertRegex(line, r"^error: (no agent|.*not found)")

    def test_unknown_log_level_is_refused(self):
        # Both daemons refuse it before starting anything, naming the levels they know.
        tmp = tempfile.mkdtemp(prefix="agentry-e2e-flags-")
        self.addCleanup(shutil.rmtree, tmp, True)
        store = "sqlite:" + os.path.join(tmp, "hub.db")
        for argv in (["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store", store,
                      "--log-level", "loud"],
                     ["node", "join", "--hub", self.c.addr, "--log-level", "loud"]):
            with self.subTest(argv=argv):
                line = self.one_error_line(self.run_bounded(argv), 2)
                self.assertEqual(line, "error: invalid value 'loud' for --log-level: want debug, "
                                       "info, warn, error or off")
        self.assertFalse(os.path.exists(os.path.join(tmp, "hub.db")), "no store was created")

    # --- bench -----------------------------------------------------------------------------------

    def test_bench_unreachable_hub_fails_fast(self):
        addr = "127.0.0.1:%d" % H.free_port()  # nothing listens there
        # A budget of an hour (or a million calls): only failing fast can finish within the bound.
        for budget in (["--duration", "1h"], ["--calls", "1000000"]):
            for rpc in ("ping", "send", "spawn", "invoke"):
                argv = ["bench", "--rpc", rpc, "--hub", addr, "--json"] + budget
                with self.subTest(argv=argv):
                    r = self.run_bounded(argv, BENCH_BOUND)
                    line = self.one_error_line(r, 1)
                    self.assertTrue(line.startswith("error: cannot reach hub at '%s'" % addr), line)

    def test_bench_against_a_hub(self):
        argv = ["bench", "--rpc", "ping", "--hub", self.c.addr, "--concurrency", "4", "--json"]
        r = self.run_bounded(argv + ["--calls", "300"], 60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        j = json.loads(r.stdout)
        self.assertEqual((j["calls"], j["errors"], j["hub_lost"]), (300, 0, False))
        # A duration is honoured in its unit: "1s" runs about a second, not 1 ms.
        r = self.run_bounded(argv + ["--duration", "1s"], 60)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual((j["errors"], j["settings"]["duration_ms"]), (0, 1000))
        self.assertGreater(j["calls"], 0)
        self.assertGreaterEqual(j["elapsed_s"], 0.95)
        # --duration 0 would measure nothing: bad usage, not an empty report.
        r = self.run_bounded(argv + ["--duration", "0"])
        line = self.one_error_line(r, 2)
        self.assertIn("--duration", line)

    def test_bench_stops_when_the_hub_goes_away(self):
        c = H.Cluster(nodes=0, name="bench-lost")
        self.addCleanup(c.kill_all)
        c.start()
        err_lines = queue.Queue()
        p = subprocess.Popen([H.AGENTRY_BIN, "bench", "--rpc", "ping", "--hub", c.addr,
                              "--duration", "1h", "--concurrency", "8", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        reader = threading.Thread(target=lambda: [err_lines.put(x) for x in p.stderr], daemon=True)
        reader.start()
        # The run is under way once bench prints its first progress line (after one second).
        try:
            first = err_lines.get(timeout=15)
        except queue.Empty:
            self.fail("bench printed no progress line within 15s (exit status %s)" % p.poll())
        self.assertRegex(first, r"^bench: [1-9][0-9]* calls, 0 errors$")
        c.stop_hub()
        try:
            rc = p.wait(BENCH_BOUND)  # its stdout is one JSON object at the end: no pipe stall
        except subprocess.TimeoutExpired:
            self.fail("bench was still running %.0fs after its hub stopped" % BENCH_BOUND)
        out = p.stdout.read()
        p.stdout.close()
        reader.join(5)
        p.stderr.close()
        rest = []
        while not err_lines.empty():
            rest.append(err_lines.get())
        rep = H.sanitizer_report("".join(rest))
        self.assertIsNone(rep, rep)
        self.assertEqual(rc, 1, "".join(rest))
        errors = [x for x in rest if x.startswith("error: ")]
        self.assertEqual(len(errors), 1, rest)
        self.assertRegex(errors[0], r"^error: hub at '%s' stopped answering after [1-9][0-9]* "
                         r"calls, so the run stopped: UNAVAILABLE: " % re.escape(c.addr))
        j = json.loads(out)
        self.assertTrue(j["hub_lost"], j)
        self.assertGreater(j["calls"], 0)
        # The first error may be UNAVAILABLE or a call the stopping hub CANCELLED; either way the
        # failed calls are a handful of slots' worth, not a spin through thousands.
        self.assertGreater(j["errors"], 0)
        self.assertLessEqual(j["errors"], 8 * 4, j)
        c.stop()


if __name__ == "__main__":
    H.main()
