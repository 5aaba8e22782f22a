"""tests/e2e/test_store_pg.py - a real hub on PostgreSQL (the ctest fixture "pg" starts the
server; its conninfo file is named by $AGENTRY_PG_CONNINFO_FILE). The class gets a database of
its own, dropped at the end.

- Agents spawned and invoked on a hub on PostgreSQL are all found again, with every event, after
  the hub is stopped by SIGTERM and after it is SIGKILLed; appends go on from the next seq.
- A follower of a running turn, its hub SIGKILLed, follows again from its last seq: every
  event once, in order; the turn goes on from its last stored step and ends once.
- A second hub on the same database exits 1 with one stderr line saying another hub uses it,
  and the first hub never notices.
- A hub whose database is not there exits 1 with one line (libpq's reason).
- The server stopped under a running hub (a private one, so other tests keep theirs): writes
  answer UNAVAILABLE, never OK, at once (backoff: most say "retrying in N ms" without a
  connection attempt), the outage logged once; once the server is back the hub writes again by
  itself, and nothing acknowledged is missing.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def conninfo():
    path = os.environ.get("AGENTRY_PG_CONNINFO_FILE", "")
    if not path or not os.path.exists(path):
        raise AssertionError("no PostgreSQL for this test: run it through ctest (fixture pg), "
                             "or set AGENTRY_PG_CONNINFO_FILE to a file holding a libpq conninfo")
    with open(path) as f:
        return f.read().strip()


def psql(sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", conninfo(), "-c", sql],
                   check=True, capture_output=True, timeout=30)


class OnPostgres:
    """Mixin for a ClusterTestCase: its hub stores in a database of its own on the fixture's
    server, created for the class and dropped after it."""

    @classmethod
    def setUpClass(cls):
        db = "e2e_%s_%d" % (cls.__name__.lower(), os.getpid())
        psql("CREATE DATABASE %s" % db)
        cls.addClassCleanup(psql, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        cls.STORE_URL = "postgres:%s dbname=%s" % (conninfo(), db)
        super().setUpClass()


class PgStoreTest(H.ClusterTestCase):
    NODES = 2
    CAPACITY = 4
    DB = "e2e_store_%d" % os.getpid()

    @classmethod
    def setUpClass(cls):
        psql("CREATE DATABASE %s" % cls.DB)
        cls.addClassCleanup(psql, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % cls.DB)
        cls.STORE_URL = "postgres:%s dbname=%s" % (conninfo(), cls.DB)
        super().setUpClass()

    def snapshot(self, ids):
        """Every agent's stored view and its whole trace."""
        c = self.c
        out = {}
        for i in ids:
            a = c.get(i)
            out[i] = ((a.state, a.last_seq, a.last_output, a.last_error),
                      [(e.seq, e.kind, e.payload) for e in c.trace(i)])
        return out

    def restart(self, kill):
        c = self.c
        port = c.port
        if kill:
            c.hub_proc.sigkill()
            c.retired.append(c.hub_proc)
            c.hub_proc = None
        else:
            c.stop_hub()
        c.start_hub(port=port)
        for n in ("n1", "n2"):
            c.wait_registered(n, 1)

    def test_1_agents_and_events_survive_restarts(self):
        c = self.c
        ids = []
        for k in range(6):
            a = c.spawn("final spawned %d" % k, tools=())
            ids.append(a.agent_id)
        for k in range(4):
            r = c.hub.Invoke(self.s.hub.InvokeRequest(spec=c.spec(()), input="final invoked %d" % k),
                             timeout=20)
            self.assertEqual(r.output, "invoked %d" % k)
            ids.append(r.agent_id)
        for i in ids:
            c.wait_turn_end(i)
        before = self.snapshot(ids)
        for i in ids:
            self.assert_contiguous(c.trace(i))

        for kill in (False, True):
            with self.subTest(kill=kill):
                self.restart(kill)
                self.assertEqual(self.snapshot(ids), before)
                listed = [a.id for a in c.list_all()]
                self.assertEqual(listed, ids)  # creation order, as stored

        # The log goes on from the next seq, and a turn still runs.
        s = c.send(ids[0], "final again")
        self.assertEqual(s.seq, before[ids[0]][0][1] + 1)
        end = c.wait_turn_end(ids[0], after_seq=s.seq)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL)
        self.assert_contiguous(c.trace(ids[0]))

    def test_1b_follower_resumes_across_a_hub_kill(self):
        # A follower of a running turn loses its stream when the hub is SIGKILLed; it follows
        # again from its last seq and sees every later event once, in order: the turn goes on
        # from its last stored step (one TOOL_CALL) with a new epoch, and ends once.
        c = self.c
        a = c.spawn("echo a; sleep 1500; final b", tools=("echo",))
        seen = c.follow_until(a.agent_id, lambda e: H.kind_name(e.kind) == "tool_result")
        self.restart(kill=True)
        rest = c.follow_until(a.agent_id, lambda e: e.kind in c.turn_end_kinds(),
                              from_seq=seen[-1].seq + 1, timeout=30)
        evs = seen + rest
        self.assertEqual([e.seq for e in evs], list(range(1, len(evs) + 1)))
        kinds = [H.kind_name(e.kind) for e in evs]
        self.assertEqual((kinds.count("tool_call"), kinds.count("final")), (1, 1), kinds)
        self.assertIn("interrupted", kinds)
        self.assertEqual(H.payload(evs[-1])["output"], "b")

    def test_2_second_hub_is_refused(self):
        c = self.c
        a = c.spawn("final before", tools=())
        c.wait_turn_end(a.agent_id)
        trace = c.trace(a.agent_id)
        r = H.run_cli(["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store",
                       c.store_url], timeout=30)
        line = H.one_error_line(self, r)
        self.assertIn("another hub is using the postgres database '%s'" % self.DB, line)
        self.assertIn("--store", line)
        self.assertTrue(c.hub_proc.running())
        self.assertEqual(c.trace(a.agent_id), trace)
        s = c.send(a.agent_id, "final after")
        self.assertEqual(s.seq, trace[-1].seq + 1)

    def test_3_database_down_at_start(self):
        for store in ("postgres://127.0.0.1:1/x", "postgres:host=127.0.0.1 port=1 dbname=x"):
            r = H.run_cli(["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store", store],
                          timeout=30)
            line = H.one_error_line(self, r)
            self.assertIn("cannot connect", line)
            self.assertIn("Connection refused", line)
        env = dict(os.environ, AGENTRY_STORE="postgres://127.0.0.1:1/fromenv")
        r = H.run_cli(["hub", "--listen", "127.0.0.1:%d" % H.free_port()], env=env, timeout=30)
        self.assertIn("'fromenv'", H.one_error_line(self, r))


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg_fixture.sh")


class PgServerRestartTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 2

    @classmethod
    def setUpClass(cls):
        cls.state = os.path.join(tempfile.mkdtemp(prefix="agentry-e2e-pg-"), "pg.state")
        subprocess.run([FIXTURE, "start", cls.state], check=True, timeout=60)
        cls.addClassCleanup(subprocess.run, [FIXTURE, "stop", cls.state], timeout=60)
        with open(cls.state) as f:
            cls.pgdir = f.read().strip()
        with open(cls.state + ".conninfo") as f:
            cls.STORE_URL = "postgres:" + f.read().strip()
        super().setUpClass()

    def pg_ctl(self, *args):
        run = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                check=True).stdout.strip()
        subprocess.run(run + [os.path.join(bindir, "pg_ctl"), "-D",
                              os.path.join(self.pgdir, "data"), "-w", "-t", "30"] + list(args),
                       check=True, capture_output=True, timeout=60)

    def test_server_restart_under_the_hub(self):
        c = self.c
        a = c.spawn("final first", tools=())
        c.wait_turn_end(a.agent_id)
        acked = [e.seq for e in c.trace(a.agent_id)]

        self.pg_ctl("-m", "fast", "stop")
        codes, retrying = set(), 0
        for k in range(20):
            try:
                acked.append(c.send(a.agent_id, "final down %d" % k).seq)
            except H.grpc.RpcError as e:
                codes.add(e.code())
                retrying += "is down; retrying in " in (e.details() or "")
        self.assertEqual(codes, {H.grpc.StatusCode.UNAVAILABLE})
        # Refused by the backoff, not by a connection attempt each (counted, not timed): the
        # first finds the session dead, then the hub tries once per wait (100 ms doubling).
        self.assertGreaterEqual(retrying, 19 - 4)

        # Same port and data: the server comes back as it was.
        self.pg_ctl("-l", os.path.join(self.pgdir, "server.log"), "start", "-o",
                    self.start_opts())

        def sends():
            try:
                return c.send(a.agent_id, "final back")
            except H.grpc.RpcError as e:
                if e.code() != H.grpc.StatusCode.UNAVAILABLE:
                    raise
                return None
        s = H.wait_for(sends, 20, interval=0.2, what="a write once the server is back")
        acked.append(s.seq)
        end = c.wait_turn_end(a.agent_id, after_seq=s.seq)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL)
        seqs = [e.seq for e in c.trace(a.agent_id)]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertTrue(set(acked) <= set(seqs), (acked, seqs))
        # One line when writes started failing, one when they came back; none per refusal.
        H.wait_for(lambda: "event=store.up " in c.hub_log(), 10, what="store.up in the log")
        self.assertEqual(c.hub_log().count("event=store.down "), 1)
        self.assertEqual(c.hub_log().count("event=store.up "), 1)

    def start_opts(self):
        with open(self.state + ".conninfo") as f:
            port = dict(kv.split("=") for kv in f.read().split())["port"]
        return "-p %s -k %s -c listen_addresses=127.0.0.1" % (port, os.path.join(self.pgdir,
                                                                                  "sock"))


if __name__ == "__main__":
    H.main()
