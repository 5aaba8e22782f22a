"""tests/e2e/test_exactly_once.py - whichever process dies, at whatever step, no step is done
twice and nothing stored is lost (the tool journal: docs/operations.md). Every scenario runs on
SQLite and on PostgreSQL (a database per class; the ctest fixture "pg" starts the server, its
conninfo file is named by $AGENTRY_PG_CONNINFO_FILE).

The agent: a 10-step script of the mock model, "call append <token>-s1; ...; call append
<token>-s10; final done", where "append" (worker/tool_append.c, not idempotent) appends its text as
a line to the nodes' one file (--tool-opt append.path) and <token> is the agent's own. Where it is
killed is random, from a seed printed at the start (replay: AGENTRY_E2E_SEED=<seed>).

- A node SIGKILLed right after a random stored event of the turn, from its ASSIGNED to its last
  MODEL_REPLY (then started again), 20 agents one after the other.
- The hub SIGKILLed likewise, then started again on the same store and port (its node reconnects
  by itself), 20 agents one after the other.
- 20 agents running at once over 3 nodes; two of the nodes SIGKILLed one after the other while
  agents run on them (each replaced by a new node).

After each, every agent is checked: its log is gapless and holds exactly one turn end, a FINAL
"done"; each iteration's MODEL_REPLY is stored exactly once (a MODEL_REQUEST may repeat: a model
call in flight at a crash is asked again); each call id (call_1..call_10, with its own text) has
exactly one TOOL_RESULT, in order, and exactly one TOOL_CALL of append, with its text, stored
before it (an "outcome unknown" result too: no second TOOL_CALL); the file holds each of the
agent's lines at most once, exactly once when its call's result is not the "outcome unknown"
error, and no other line with its token. Each scenario's kills leave an INTERRUPTED in some logs
(the harness really killed work in flight). The hub's dead-letter rule is set out of reach
(--max-interruptions 1000), with short backoffs. Each scenario prints where its kills landed and
how many calls ended "outcome unknown". A failure lists every broken property of the agent, and
its log in one letter per event.
"""
import collections
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_store_pg import OnPostgres  # noqa: E402

STEPS = 10
NODE_ROUNDS = 20
HUB_ROUNDS = 20
SEED = int(os.environ.get("AGENTRY_E2E_SEED") or random.SystemRandom().randrange(1 << 31))
sys.stderr.write("test_exactly_once: seed %d (replay with AGENTRY_E2E_SEED=%d)\n" % (SEED, SEED))
OUTCOME_UNKNOWN = "outcome unknown"
# A log in one line, for failure messages: one letter per event.
LETTERS = {"spawned": "S", "input": "I", "assigned": "A", "model_request": "q",
           "model_reply": "r", "tool_call": "c", "tool_result": "t", "final": "F", "yield": "Y",
           "error": "E", "killed": "K", "interrupted": "X", "resumed": "R"}


def letters(evs):
    return "".join(LETTERS.get(H.kind_name(e.kind), "?") for e in evs)


def script(token, reply_ms=0):
    """reply_ms: every model reply that much later (a slower agent)."""
    calls = ["call append %s-s%d" % (token, i) for i in range(1, STEPS + 1)]
    return "; ".join(["sleep %d" % reply_ms] + calls + ["final done"])


class ExactlyOnce:
    """The scenarios; a subclass picks the store. One hub per class; each test starts its own
    nodes, all appending to one file, and stops them at its end."""

    NODES = 0
    HEARTBEAT = "200ms"
    HUB_ARGS = ("--max-interruptions", "1000", "--retry-backoff", "10ms", "--retry-backoff-max",
                "100ms")
    MODEL_LATENCY = "2ms"
    TOOL_LATENCY = "15ms"  # the window between a stored TOOL_CALL and its TOOL_RESULT
    STORE = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lines_path = os.path.join(cls.c.dir, "append.lines")

    def setUp(self):
        self.rng = random.Random("%d/%s/%s" % (SEED, self.STORE, self._testMethodName))
        self.ends = self.c.turn_end_kinds()
        self.started = []
        # Even when the test failed: a node left behind would take the next test's agents.
        self.addCleanup(self.stop_nodes)

    # -- processes --

    def node_args(self):
        return (["--tool-opt", "append.path=" + self.lines_path,
                 "--tool-opt", "append.latency=" + self.TOOL_LATENCY,
                 "--model-opt", "mock.latency=" + self.MODEL_LATENCY])

    def start_node(self, nid, capacity=1, wait=True):
        self.started.append(nid)
        return self.c.add_node(nid, capacity=capacity, wait=wait, extra=self.node_args())

    def kill_node(self, nid):
        p = self.c.nodes.pop(nid)
        p.sigkill()
        self.c.retired.append(p)

    def kill_hub(self):
        c = self.c
        port = c.port
        c.hub_proc.sigkill()
        c.retired.append(c.hub_proc)
        c.hub_proc = None
        c.start_hub(port=port)

    def stop_nodes(self):
        """Stops (SIGTERM, exit 0) the nodes this test started that still run."""
        for n in dict.fromkeys(self.started):
            if n in self.c.nodes:
                self.c.stop_node(n)

    # -- agents --

    def spawn(self, token, reply_ms=0):
        return self.c.spawn(script(token, reply_ms), tools=("append",),
                            max_iterations=2 * STEPS).agent_id

    def follow_to(self, aid, seq, timeout=30):
        """Follows aid's log until an event at seq or later, or its turn's end; returns the last
        event seen."""
        return self.c.follow_until(aid, lambda e: e.seq >= seq or e.kind in self.ends,
                                   timeout=timeout)[-1]

    def lines(self):
        try:
            with open(self.lines_path) as f:
                return collections.Counter(f.read().splitlines())
        except FileNotFoundError:
            return collections.Counter()

    # -- the checks --

    def check_agent(self, aid, token, lines):
        """Every exactly-once property of one agent's log and its lines in the file, all
        reported at once; returns how many of its calls ended "outcome unknown"."""
        evs = self.c.trace(aid)
        where = "agent %s (%s), seed %d, log %s (%s)" % (
            aid, token, SEED, letters(evs),
            " ".join("%s=%s" % (v, k) for k, v in LETTERS.items()))
        self.assert_contiguous(evs)
        bad = []
        ends = [e for e in evs if e.kind in self.ends]
        if [(H.kind_name(e.kind), H.payload(e).get("output")) for e in ends] != [("final", "done")]:
            bad.append("turn ends %s, want one FINAL 'done'" % [H.payload(e) for e in ends])
        elif ends[0] is not evs[-1]:
            bad.append("events after the FINAL")
        bad += self.check_replies(evs)
        unknown, more = self.check_tools(evs, token, lines)
        if bad + more:
            self.fail("\n  ".join(["%d problem(s):" % len(bad + more)] + bad + more + [where]))
        return unknown

    def check_replies(self, evs):
        """Each iteration's MODEL_REPLY once: a reply belongs to the latest request of its
        attempt."""
        T = self.T
        bad = []
        replies = collections.Counter()
        iteration = None
        for e in evs:
            if e.kind in (T.EVENT_KIND_ASSIGNED, T.EVENT_KIND_INTERRUPTED):
                iteration = None
            elif e.kind == T.EVENT_KIND_MODEL_REQUEST:
                iteration = H.payload(e)["iteration"]
            elif e.kind == T.EVENT_KIND_MODEL_REPLY:
                if iteration is None:
                    bad.append("MODEL_REPLY seq %d has no MODEL_REQUEST before it" % e.seq)
                replies[iteration] += 1
                iteration = None
        twice = sorted(i for i, n in replies.items() if n != 1)
        if twice or len(replies) != STEPS + 1:
            bad.append("MODEL_REPLYs per iteration %s, want %d iterations once each (not once: "
                       "%s)" % (dict(replies), STEPS + 1, twice))
        return bad

    def check_tools(self, evs, token, lines):
        """The journal of the calls and the file; returns (outcome unknowns, problems)."""
        T = self.T
        bad = []
        ids = ["call_%d" % i for i in range(1, STEPS + 1)]
        text = {"call_%d" % i: "%s-s%d" % (token, i) for i in range(1, STEPS + 1)}
        results = [e for e in evs if e.kind == T.EVENT_KIND_TOOL_RESULT]
        got = [H.payload(e)["id"] for e in results]
        if got != ids:
            bad.append("TOOL_RESULT ids %s, want each of call_1..call_%d once, in order" %
                       (got, STEPS))
        call_seqs = collections.defaultdict(list)
        for e in evs:
            if e.kind != T.EVENT_KIND_TOOL_CALL:
                continue
            p = H.payload(e)
            if (p["name"], json.loads(p["arguments"])) != ("append", {"text": text[p["id"]]}):
                bad.append("TOOL_CALL seq %d is %s" % (e.seq, p))
            call_seqs[p["id"]].append(e.seq)
        twice = {i: s for i, s in call_seqs.items() if len(s) > 1}
        if twice:
            bad.append("TOOL_CALLs of append stored more than once (id: seqs): %s" % twice)
        unknown = 0
        seen = set()
        for e in results:
            p = H.payload(e)
            cid = p["id"]
            if cid in seen:
                continue  # already reported above
            seen.add(cid)
            if not (call_seqs.get(cid) and call_seqs[cid][0] < e.seq):
                bad.append("the TOOL_RESULT of %s (seq %d) has no TOOL_CALL before it" %
                           (cid, e.seq))
            n = lines[text[cid]]
            if p["is_error"] and p["output"].startswith(OUTCOME_UNKNOWN):
                unknown += 1
                if n > 1:
                    bad.append("line %r %d times in the file, want at most once (%s ended "
                               "outcome unknown)" % (text[cid], n, cid))
            elif (p["is_error"], p["output"]) != (False, text[cid]):
                bad.append("TOOL_RESULT seq %d is %s" % (e.seq, p))
            elif n != 1:
                bad.append("line %r %d times in the file, want exactly once" % (text[cid], n))
        strays = {k: n for k, n in lines.items()
                  if k.startswith(token + "-") and k not in text.values()}
        if strays:
            bad.append("lines no call of the agent wrote: %s" % strays)
        return unknown, bad

    def report(self, what, **counts):
        sys.stderr.write("%s %s: %s\n" % (self.STORE, what, " ".join(
            "%s=%s" % kv for kv in sorted(counts.items()))))

    # -- the scenarios --

    def kill_rounds(self, rounds, kill, tag):
        """One agent at a time; kill() once the test sees a random stored event of its turn (3:
        ASSIGNED .. 4*STEPS+5: the last MODEL_REPLY). Returns the tallies (kill_after_<kind>:
        the last event the test saw before the kill; the agent may have gone further)."""
        last = 4 * STEPS + 5
        tally = collections.Counter()
        for r in range(rounds):
            token = "%s%d" % (tag, r)
            target = self.rng.randint(3, last)
            aid = self.spawn(token)
            at = self.follow_to(aid, target)
            in_turn = at.kind not in self.ends
            if in_turn:
                kill()
                tally["kills"] += 1
                tally["kill_after_" + H.kind_name(at.kind)] += 1
            self.c.wait_turn_end(aid, timeout=60)
            tally["interrupted"] += self.interrupted(aid)
            with self.subTest(agent=token, kill_at_seq=target):
                tally["outcome_unknown"] += self.check_agent(aid, token, self.lines())
        # Most kills land before the FINAL (one seen just before it may not).
        self.assertGreater(tally["interrupted"], 0, "the kills interrupted no turn: %s" % tally)
        return tally

    def interrupted(self, aid):
        return self.T.EVENT_KIND_INTERRUPTED in [e.kind for e in self.c.trace(aid)]

    def test_a_node_killed_at_a_random_step(self):
        self.start_node("a1")

        def kill():
            self.kill_node("a1")
            self.start_node("a1")
        t0 = time.monotonic()
        tally = self.kill_rounds(NODE_ROUNDS, kill, "a")
        self.report("node kills", took_s="%.1f" % (time.monotonic() - t0), **tally)

    def test_b_hub_killed_at_a_random_step(self):
        self.start_node("b1")

        def kill():
            self.kill_hub()
            self.c.wait_registered("b1", 1)
        t0 = time.monotonic()
        tally = self.kill_rounds(HUB_ROUNDS, kill, "b")
        self.report("hub kills", took_s="%.1f" % (time.monotonic() - t0), **tally)

    def running_on(self, nids, ids):
        """The agents of ids running on one of nids."""
        wanted = set(ids)
        return [a for a in self.c.list_all(state=self.T.AGENT_STATE_RUNNING)
                if a.id in wanted and a.node_id in nids]

    def kill_while_running(self, victims, ids, events):
        """Waits for an agent running on one of victims, follows it `events` events further and
        kills its node; returns the killed node's id."""
        busy = H.wait_for(lambda: self.running_on(victims, ids), 30,
                          what="an agent running on %s" % victims)
        a = self.rng.choice(busy)
        self.follow_to(a.id, a.last_seq + events)
        self.kill_node(a.node_id)
        return a.node_id

    def test_c_twenty_agents_over_three_nodes_two_killed(self):
        c = self.c
        nids = ["c1", "c2", "c3"]
        for n in nids:
            self.start_node(n, capacity=8, wait=False)
        for n in nids:
            c.wait_registered(n, 1)
        t0 = time.monotonic()
        tokens = ["c%d" % i for i in range(20)]
        # Slower agents (each reply 20 ms later), so that some still run at the second kill.
        ids = [self.spawn(t, reply_ms=20) for t in tokens]
        first = self.kill_while_running(nids, ids, self.rng.randint(1, 12))
        self.start_node("c4", capacity=8, wait=False)
        rest = [n for n in nids if n != first]
        second = self.kill_while_running(rest, ids, self.rng.randint(1, 12))
        self.start_node("c5", capacity=8, wait=False)
        for n in ("c4", "c5"):
            c.wait_registered(n, 1)
        for aid in ids:
            c.wait_turn_end(aid, timeout=60)
        lines = self.lines()
        unknown = 0
        for aid, t in zip(ids, tokens):
            with self.subTest(agent=t):
                unknown += self.check_agent(aid, t, lines)
        interrupted = sum(self.interrupted(aid) for aid in ids)
        self.report("20 agents, nodes %s and %s killed" % (first, second),
                    took_s="%.1f" % (time.monotonic() - t0), interrupted=interrupted,
                    outcome_unknown=unknown)
        self.assertGreater(interrupted, 0, "the kills interrupted no agent")


class SqliteExactlyOnceTest(ExactlyOnce, H.ClusterTestCase):
    STORE = "sqlite"


class PgExactlyOnceTest(OnPostgres, ExactlyOnce, H.ClusterTestCase):
    STORE = "postgres"


if __name__ == "__main__":
    H.main()
