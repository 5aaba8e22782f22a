"""tests/e2e/test_top.py - `agentry top` (cmd/agentry/cmd_top.c): one frame with --once (and
when stdout is not a terminal, as here: a pipe), its refusals, and a hub that is down.

A hub with 2 nodes; an agent whose mock script sleeps before its first reply stays running
while the frame is read, so it must be in the agents table, on its node, and counted. Live mode
runs on a pseudo-terminal: frames are redrawn, the rates appear from the second one on, and
SIGINT/SIGTERM restore the terminal and exit 130/143, also while the hub cannot be reached.
"""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ENTER = "\033[?1049h\033[?25l"
LEAVE = "\033[?25h\033[?1049l"
HOME_CLEAR = "\033[H\033[2J"


class Live:
    """`agentry top ARGS` with its stdout on a pseudo-terminal; read_until() gathers what it drew."""

    def __init__(self, args):
        self.master, slave = pty.openpty()
        self.p = subprocess.Popen([H.AGENTRY_BIN, "top"] + args, stdin=subprocess.DEVNULL,
                                  stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        self.out = ""

    def read_until(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while not pred(self.out):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out; the terminal got %r" % self.out[-2000:])
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.out += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    pass

    def stop(self, sig):
        self.p.send_signal(sig)
        rc = self.p.wait(15)
        try:
            while select.select([self.master], [], [], 0.2)[0]:
                data = os.read(self.master, 65536)
                if not data:
                    break
                self.out += data.decode(errors="replace")
        except OSError:
            pass
        os.close(self.master)
        err = self.p.stderr.read().decode()
        self.p.stderr.close()
        return rc, err

    def frames(self):
        return [f for f in self.out.split(HOME_CLEAR)[1:] if f]


class Top(H.ClusterTestCase):
    NODES = 2
    CAPACITY = 2

    def top(self, *args):
        return H.run_cli(["top", "--hub", self.c.addr] + list(args))

    def test_once_shows_nodes_agents_and_counts(self):
        busy = self.c.spawn("sleep 60000; final done", tools=(), name="slow-one").agent_id
        idle = self.c.spawn("hello", tools=(), name="quick-one").agent_id
        self.addCleanup(self.c.kill, busy)
        self.c.wait_state(busy, self.T.AGENT_STATE_RUNNING)
        self.c.wait_state(idle, self.T.AGENT_STATE_IDLE)
        r = self.top("--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        out = r.stdout
        self.assertNotIn("\033", out, "no control sequence with --once")
        self.assertIn("hub " + self.c.addr, out)
        for n in ("n1", "n2"):
            self.assertRegex(out, r"(?m)^%s\s+ready\s+\d/2\s" % n)
        self.assertIn("nodes: 2 connected (2 ready)", out)
        self.assertRegex(out, r"agents:  pending 0  running 1  idle [1-9]")
        self.assertIn("approvals pending 0", out)
        self.assertIn("rates: -", out)
        node = self.c.get(busy).node_id
        self.assertRegex(out, r"(?m)^%s\s+slow-one\s+running\s+%s\s" % (busy, node))
        self.assertNotIn(idle, out, "at-rest agents are counted, not listed")

    def test_no_tty_is_once_and_limit_cuts(self):
        ids = [self.c.spawn("sleep 60000; final done", tools=()).agent_id for _ in range(2)]
        for a in ids:
            self.addCleanup(self.c.kill, a)
            self.c.wait_state(a, self.T.AGENT_STATE_RUNNING)
        r = self.top("--limit", "1", "--interval", "200ms")  # a pipe: one frame, then exit
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(r"(?m)^\S+\s+-\s+running\s", r.stdout)), 1, r.stdout)
        self.assertRegex(r.stdout, r"\(1 of [2-9] running or pending agents shown")

    def test_live_redraws_rates_and_restores_on_sigint(self):
        steps = "; ".join(["sleep 150"] + ["echo s%d" % i for i in range(8)] + ["final done"])
        live = Live(["--hub", self.c.addr, "--interval", "200ms"])
        live.read_until(lambda o: "rates: -" in o)
        a = self.c.spawn(steps, tools=("echo",), name="stepper").agent_id
        self.c.wait_turn_end(a, timeout=30)

        def seen_both(o):
            tok = [float(x) for x in re.findall(r"([0-9.]+) tokens/s", o)]
            turns = [float(x) for x in re.findall(r"([0-9.]+) turns ended/s", o)]
            return tok and max(tok) > 0 and turns and max(turns) > 0
        live.read_until(seen_both)
        rc, err = live.stop(signal.SIGINT)
        self.assertEqual(rc, 130, err)
        self.assertEqual(err, "")
        self.assertTrue(live.out.startswith(ENTER), live.out[:40])
        self.assertTrue(live.out.endswith(LEAVE), live.out[-40:])
        self.assertGreater(len(live.frames()), 2)
        self.assertIn("stepper", live.out)

    def test_namespace_filter(self):
        r = self.top("-n", "nobody-here")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("namespace nobody-here", r.stdout)
        self.assertIn("No agent running or pending.", r.stdout)

    def test_bad_usage(self):
        for args in (["--bogus"], ["--interval", "5ms"], ["--limit", "0"], ["--json"],
                     ["-o", "json"], ["-n", "Bad Name"]):
            with self.subTest(args=args):
                H.one_error_line(self, self.top(*args), rc=2)

    def test_help(self):
        r = H.run_cli(["top", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--once", r.stdout)
        self.assertNotIn("--json", r.stdout)
        self.assertNotIn("--output", r.stdout)


class TopHubDown(unittest.TestCase):
    def test_hub_down_live_keeps_trying(self):
        addr = "127.0.0.1:%d" % H.free_port()
        live = Live(["--hub", addr, "--interval", "100ms", "--timeout", "300ms"])
        live.read_until(lambda o: o.count("error: ") >= 2)
        rc, err = live.stop(signal.SIGTERM)
        self.assertEqual(rc, 143, err)
        self.assertTrue(live.out.endswith(LEAVE), live.out[-40:])
        self.assertIn("hub " + addr, live.frames()[0])
        self.assertIn("retrying every 100ms", live.frames()[0])

    def test_hub_down_once(self):
        r = H.run_cli(["top", "--once", "--hub", "127.0.0.1:%d" % H.free_port(),
                       "--timeout", "2s"])
        line = H.one_error_line(self, r, rc=1)
        self.assertIn("cannot reach hub", line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
