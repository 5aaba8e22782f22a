"""tests/e2e/test_cli_timeouts.py - what `agentry invoke` and `agentry spawn` say when --timeout
passes (issue point 12): exactly what happened, never "cannot reach hub" for a hub that is up.

With --timeout 1ms on a fresh connection to a live hub, gRPC reports DEADLINE_EXCEEDED with the
channel still CONNECTING; the CLI used to call that "cannot reach hub", and said "the agent keeps
running" when no agent had been created. Now every invoke and spawn carries a request id (made
up when --request-id is not given), and after a deadline the CLI says exactly one of:
  - nothing was sent (could not connect within the deadline), so no agent was created;
  - agent <id> was created (keeps running / is now <state>): follow it with agentry trace -f <id>;
  - the hub has no agent for request id R yet: retry with --request-id R (at most one agent);
  - asking the hub about R failed: retry likewise.
Each claim is checked against the hub: a named agent exists with that request id; "no agent was
created" means ListAgents by that request id stays empty; "retry" creates exactly one agent.

Hubs: a real one (repeated 1ms calls, and one with no node so a turn cannot end), a fake hub in
this process (a hub that got the request but answers late, and lists what a test chooses), a
silent TCP listener (never connects), and a closed port ("cannot reach hub").
"""
import collections
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fakehub import FakeHub, SilentListener, wait_until_cancelled  # noqa: E402

import grpc  # noqa: E402

ID = r"[0-9a-z]{16}"
MADE_UP = re.compile(r"^cli-" + ID + "$")
NOT_SENT = re.compile(
    r"^error: could not connect to hub at '(?P<addr>[^']+)' within (?P<dur>\S+) \(see "
    r"--timeout\); nothing was sent, so no agent was created \(request id '(?P<rid>[^']+)'\)$")
CREATED = re.compile(
    r"^error: (?P<late>.+); agent '(?P<id>" + ID + r")' was created and (?:keeps running|is now "
    r"(?P<state>[a-z]+)): follow it with 'agentry trace -f (?P=id)'$")
NOT_YET = re.compile(
    r"^error: (?P<late>.+), and the hub has no agent for request id '(?P<rid>[^']+)' yet: it may "
    r"still create one, so retry with --request-id (?P=rid) \(safe: at most one agent\)$")
UNKNOWN = re.compile(
    r"^error: (?P<late>.+), and asking the hub about request id '(?P<rid>[^']+)' failed "
    r"\((?P<why>.+)\): it may have created an agent, so retry with --request-id (?P=rid) "
    r"\(safe: at most one agent\)$")


def late_re(cmd, addr, dur):
    if cmd == "invoke":
        return r"^the turn did not end within %s \(see --timeout\)$" % re.escape(dur)
    return r"^no answer from hub at '%s' within %s \(see --timeout\)$" % (re.escape(addr),
                                                                        re.escape(dur))


def classify(line):
    for name, rx in (("not_sent", NOT_SENT), ("created", CREATED), ("not_yet", NOT_YET),
                     ("unknown", UNKNOWN)):
        m = rx.match(line)
        if m:
            return name, m
    return None, None


class TimeoutMixin:
    """Runs the CLI and checks the shape every failure must have."""

    def cli_run(self, cmd, addr, timeout, *extra, text="final hi"):
        return H.run_cli([cmd, "--hub", addr, "--timeout", timeout] + list(extra) + [text],
                         timeout=60)

    def one_line(self, r, partial_stdout=None):
        """The one stderr line of a failed run. stdout must be empty, unless partial_stdout (a
        regex) says what each line a stream printed before its deadline must look like."""
        lines = r.stderr.splitlines()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(lines), 1, "exactly one stderr line, got %r" % r.stderr)
        if partial_stdout is None:
            self.assertEqual(r.stdout, "")
        else:
            for out in r.stdout.splitlines():
                self.assertRegex(out, partial_stdout)
        self.assertNotIn("cannot reach hub", lines[0])
        return lines[0]


class LiveHubTest(TimeoutMixin, H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def list_rid(self, rid):
        return list(self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(request_id=rid),
                                          timeout=10).agents)

    def check_outcome(self, cmd, r, given_rid, not_sent):
        """Checks one run's claim against the hub; returns the outcome's name."""
        if r.returncode == 0:  # it finished in time: fine, and the agent carries a request id
            self.assertEqual(r.stderr, "")
            if cmd == "invoke":
                self.assertEqual(r.stdout, "hi\n")
            else:
                aid = r.stdout.strip()
                rid = self.c.get(aid).request_id
                self.assertTrue(rid == given_rid if given_rid else MADE_UP.match(rid), rid)
            return "ok"
        line = self.one_line(r)
        kind, m = classify(line)
        self.assertIsNotNone(kind, "not one of the truthful outcomes: %r" % line)
        if kind != "not_sent":
            self.assertRegex(m.group("late"), late_re(cmd, self.c.addr, "1ms"))
        if kind == "created":
            a = self.c.get(m.group("id"))
            rid = a.request_id
            self.assertTrue(rid == given_rid if given_rid else MADE_UP.match(rid),
                            "agent %s has request id %r" % (a.id, rid))
            self.assertEqual([x.id for x in self.list_rid(rid)], [a.id])
            if m.group("state"):  # "is now idle": the turn had ended, and nothing restarts it
                self.assertNotIn(a.state, (self.T.AGENT_STATE_PENDING,
                                           self.T.AGENT_STATE_RUNNING), a)
            return kind
        rid = m.group("rid")
        if given_rid:
            self.assertEqual(rid, given_rid)
        else:
            self.assertRegex(rid, MADE_UP, "a made-up request id was sent")
        if kind == "not_sent":
            self.assertEqual(m.group("addr"), self.c.addr)
            self.assertEqual(self.list_rid(rid), [], "nothing was sent, yet an agent exists")
            not_sent.append(rid)
            return kind
        # not_yet / unknown: the retry it advises finishes and leaves exactly one agent.
        again = H.run_cli([cmd, "--hub", self.c.addr, "--timeout", "30s", "--request-id", rid,
                           "final hi"], timeout=60)
        self.assertEqual(again.returncode, 0, again.stderr)
        agents = self.list_rid(rid)
        self.assertEqual(len(agents), 1, "the retry must not create a second agent")
        if cmd == "spawn":
            self.assertEqual(again.stdout.strip(), agents[0].id)
        return kind

    def repeat(self, cmd, n=16):
        seen = collections.Counter()
        not_sent = []
        for i in range(n):
            given = "to-%s-%s-%d" % (cmd, uuid.uuid4().hex[:8], i) if i % 2 else None
            extra = ["--request-id", given] if given else []
            r = self.cli_run(cmd, self.c.addr, "1ms", *extra)
            with self.subTest(cmd=cmd, i=i, stderr=r.stderr):
                seen[self.check_outcome(cmd, r, given, not_sent)] += 1
        # Nothing was sent, so nothing can turn up later either.
        for rid in not_sent:
            self.assertEqual(self.list_rid(rid), [], rid)
        sys.stderr.write("%s --timeout 1ms outcomes: %s\n" % (cmd, dict(seen)))
        return seen

    def test_invoke_1ms_never_cannot_reach_and_says_what_happened(self):
        self.repeat("invoke")

    def test_spawn_1ms_never_cannot_reach_and_says_what_happened(self):
        self.repeat("spawn")

    def test_other_commands_1ms(self):
        """Commands without effects: a deadline is "could not connect ... nothing was sent" or
        "no answer ... within 1ms", never "cannot reach hub"."""
        aid = self.c.spawn("").agent_id
        ok = re.compile(r"^error: (could not connect to hub at '%s' within 1ms \(see --timeout\); "
                        r"nothing was sent|no answer from hub at '%s' within 1ms \(see "
                        r"--timeout\))$" % (re.escape(self.c.addr), re.escape(self.c.addr)))
        for argv in (["get", aid], ["ps"], ["send", aid, "final x"], ["trace", aid]):
            # A trace is a stream: events that arrived before the deadline are printed whole.
            partial = r"^#\d+ " if argv[0] == "trace" else None
            for _ in range(4):
                r = H.run_cli(argv + ["--hub", self.c.addr, "--timeout", "1ms"])
                if r.returncode == 0:
                    continue
                with self.subTest(argv=argv):
                    self.assertRegex(self.one_line(r, partial), ok)


class NoNodeTest(TimeoutMixin, H.ClusterTestCase):
    """No node: an invoked agent is created and waits as pending, so its turn cannot end and the
    deadline passes after the hub created it."""
    NODES = 0

    def test_invoke_deadline_after_creation_names_the_agent(self):
        for given in (None, "nonode-" + uuid.uuid4().hex[:8]):
            extra = ["--request-id", given] if given else []
            r = self.cli_run("invoke", self.c.addr, "2s", *extra)
            line = self.one_line(r)
            m = CREATED.match(line)
            self.assertIsNotNone(m, line)
            self.assertRegex(m.group("late"), late_re("invoke", self.c.addr, "2s"))
            self.assertIn("keeps running", line)
            a = self.c.get(m.group("id"))
            self.assertEqual(a.state, self.T.AGENT_STATE_PENDING)
            if given:
                self.assertEqual(a.request_id, given)
            else:
                self.assertRegex(a.request_id, MADE_UP)


class FakeHubTest(TimeoutMixin, unittest.TestCase):
    """Hubs that answer late on purpose, or never connect, or are not there."""

    def slow(self, listed):
        """Spawn and Invoke get the request and never answer in time; ListAgents answers
        listed(request) -> [Agent] (or raises through context.abort)."""
        s = H.stubs()

        def late(req, ctx):
            wait_until_cancelled(ctx)
            return s.hub.SpawnResponse()

        def late_invoke(req, ctx):
            wait_until_cancelled(ctx)
            return s.hub.InvokeResponse()

        def list_agents(req, ctx):
            return s.hub.ListAgentsResponse(agents=listed(req, ctx))
        return FakeHub(Spawn=late, Invoke=late_invoke, ListAgents=list_agents)

    def sent_rid(self, hub, cmd):
        reqs = hub.requests("Spawn" if cmd == "spawn" else "Invoke")
        self.assertEqual(len(reqs), 1)
        return reqs[0].request_id

    def test_not_created_yet(self):
        for cmd in ("invoke", "spawn"):
            with self.subTest(cmd=cmd), self.slow(lambda req, ctx: []) as hub:
                line = self.one_line(self.cli_run(cmd, hub.addr, "300ms"))
                m = NOT_YET.match(line)
                self.assertIsNotNone(m, line)
                self.assertRegex(m.group("late"), late_re(cmd, hub.addr, "300ms"))
                rid = self.sent_rid(hub, cmd)
                self.assertRegex(rid, MADE_UP, "a request id is always sent")
                self.assertEqual(m.group("rid"), rid)
                asked = hub.requests("ListAgents")
                self.assertEqual([q.request_id for q in asked], [rid])

    def test_created_is_named_only_with_the_same_request_id(self):
        s = H.stubs()
        for cmd in ("invoke", "spawn"):
            # The hub lists an agent with the request id: it is named, with its state.
            def mine(req, ctx):
                return [s.hub.Agent(id="0123456789abcdef", request_id=req.request_id,
                                    state=s.types.AGENT_STATE_RUNNING)]
            with self.subTest(cmd=cmd, listed="same"), self.slow(mine) as hub:
                line = self.one_line(self.cli_run(cmd, hub.addr, "300ms", "--request-id", "r 1'x"))
                m = CREATED.match(line)
                self.assertIsNotNone(m, line)
                self.assertEqual(m.group("id"), "0123456789abcdef")
                self.assertIn("keeps running", line)
                self.assertEqual(self.sent_rid(hub, cmd), "r 1'x")

            def done(req, ctx):
                return [s.hub.Agent(id="0123456789abcdef", request_id=req.request_id,
                                    state=s.types.AGENT_STATE_IDLE)]
            with self.subTest(cmd=cmd, listed="idle"), self.slow(done) as hub:
                m = CREATED.match(self.one_line(self.cli_run(cmd, hub.addr, "300ms")))
                self.assertIsNotNone(m)
                self.assertEqual(m.group("state"), "idle")

            # A hub that ignores the filter lists someone else's agent: never taken for ours.
            def other(req, ctx):
                return [s.hub.Agent(id="0123456789abcdef", request_id="someone-else",
                                    state=s.types.AGENT_STATE_RUNNING)]
            with self.subTest(cmd=cmd, listed="other"), self.slow(other) as hub:
                line = self.one_line(self.cli_run(cmd, hub.addr, "300ms"))
                m = UNKNOWN.match(line)
                self.assertIsNotNone(m, line)
                self.assertNotIn("0123456789abcdef", line)
                self.assertEqual(m.group("rid"), self.sent_rid(hub, cmd))

    def test_asking_fails(self):
        def broken(req, ctx):
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "the hub is shutting down")
        for cmd in ("invoke", "spawn"):
            with self.subTest(cmd=cmd), self.slow(broken) as hub:
                line = self.one_line(self.cli_run(cmd, hub.addr, "300ms"))
                m = UNKNOWN.match(line)
                self.assertIsNotNone(m, line)
                self.assertIn("the hub is shutting down", m.group("why"))
                self.assertEqual(m.group("rid"), self.sent_rid(hub, cmd))

    def test_retry_command_is_one_shell_word(self):
        with self.slow(lambda req, ctx: []) as hub:
            line = self.one_line(self.cli_run("spawn", hub.addr, "300ms", "--request-id", "a b'c"))
            self.assertTrue(line.endswith("retry with --request-id 'a b'\\''c' (safe: at most "
                                          "one agent)"), line)

    def test_never_connected_means_nothing_sent(self):
        with SilentListener() as silent:
            for cmd in ("invoke", "spawn"):
                with self.subTest(cmd=cmd):
                    line = self.one_line(self.cli_run(cmd, silent.addr, "300ms"))
                    m = NOT_SENT.match(line)
                    self.assertIsNotNone(m, line)
                    self.assertEqual((m.group("addr"), m.group("dur")), (silent.addr, "300ms"))
                    self.assertRegex(m.group("rid"), MADE_UP)

    def test_closed_port_cannot_reach_hub(self):
        addr = "127.0.0.1:%d" % H.free_port()  # nothing listens there
        for cmd in ("invoke", "spawn"):
            for timeout in ("1ms", "5s"):
                with self.subTest(cmd=cmd, timeout=timeout):
                    r = self.cli_run(cmd, addr, timeout)
                    lines = r.stderr.splitlines()
                    self.assertEqual((r.returncode, len(lines), r.stdout), (1, 1, ""), r.stderr)
                    self.assertTrue(lines[0].startswith(
                        "error: cannot reach hub at '%s': nothing listens there (is 'agentry hub' "
                        "running? check --hub) (detail: " % addr), lines[0])


if __name__ == "__main__":
    H.main()
