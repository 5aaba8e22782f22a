"""tests/e2e/test_cli_flags.py - CLI flag values the CLI used to misread, as real processes.

A duration flag given a bare number ("--duration 5") used to be read as milliseconds, silently:
a 5 s benchmark ran for 5 ms, and a node with "--handshake-timeout 1" reconnected forever. Every
such value is now refused as bad usage (exit 2, one stderr line saying "missing unit"), except
"0", which means zero or none in any unit.

Commands that would run on (a hub, a node, a long bench) when a bad value is accepted are run
with a bound: a process still running at the bound fails the test instead of hanging it.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

UNKNOWN_ID = "01m0000000000000"
MISSING_UNIT = re.compile(r"^error: invalid value '([0-9.]+)' for --([a-z-]+): missing unit "
                          r"\(want \1s, \1ms, 2m or 1h\)$")


class CliFlagsTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 2

    def run_bounded(self, argv, bound=20.0):
        """Runs the CLI; fails the test (instead of hanging) if it is still running at bound."""
        t0 = time.monotonic()
        try:
            r = H.run_cli(argv, timeout=bound)
        except subprocess.TimeoutExpired:
            self.fail("agentry %s was still running after %.0fs (killed)" % (" ".join(argv), bound))
        return r, time.monotonic() - t0

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
                r, _ = self.run_bounded(argv)
                line = self.one_error_line(r, 2)
                m = MISSING_UNIT.match(line)
                self.assertIsNotNone(m, "want a 'missing unit' usage error, got %r" % line)
                self.assertEqual((m.group(2), m.group(1)), (flag, value))

    def test_zero_and_units_are_accepted(self):
        # "0" needs no unit: for --timeout it means no deadline, and the call still completes.
        r, _ = self.run_bounded(["invoke", "--timeout", "0", "--hub", self.c.addr, "final zero"])
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "zero\n", ""))
        r, _ = self.run_bounded(["get", "--timeout", "1500ms", "--hub", self.c.addr, UNKNOWN_ID])
        line = self.one_error_line(r, 1)  # the flag parsed; the hub said there is no such agent
        self.assertRegex(line, r"^error: (no agent|.*not found)")


if __name__ == "__main__":
    H.main()
