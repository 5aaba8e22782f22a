"""tests/e2e/test_retention.py - the hub's retention (--retention, hub/retention.c) and a backup of
its SQLite store taken while it runs (docs/operations.md), end to end: a hub and one node.

- Retention at 2s: failed and killed agents go (GetAgent and Trace answer NOT_FOUND) once they
  ended 2s ago; idle, yielded and running agents stay; the metrics count what went and when the
  last sweep ended, and each batch logs one line.
- A failed parent whose sub-agent still runs stays, sweep after sweep, and goes with its
  sub-agent once that one is killed (DeleteAgent's rules: a tree goes whole, at rest).
- A restarted hub finds what is left: nothing of a sweep is kept in memory.
- Only the leader sweeps: a standby (etcd) waits without touching the store, and sweeps once it
  leads.
- Backup: `sqlite3 DB ".backup FILE"` and `VACUUM INTO` while agents are being written; a second
  hub on each copy (another port) serves every agent acknowledged before the backup began. The
  same with `pg_dump` and `pg_restore` into a new database.
- RetentionTest and the pg_dump case run on PostgreSQL too (the ctest fixture "pg"), when its
  server is there.
"""
import os
import re
import sqlite3
import subprocess
import sys
import threading
import unittest
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_restart import restart_hub  # noqa: E402
from test_store_pg import OnPostgres, conninfo, psql  # noqa: E402

PG_CONNINFO = os.environ.get("AGENTRY_PG_CONNINFO_FILE", "")
ON_PG = unittest.skipUnless(PG_CONNINFO and os.path.exists(PG_CONNINFO),
                            "no PostgreSQL (ctest's fixture pg starts one)")

METRICS = H.free_port()


def metric(name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


class RetentionTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 8
    HUB_ARGS = ("--retention", "2s", "--metrics-listen", "127.0.0.1:%d" % METRICS)

    def gone(self, agent_id):
        try:
            self.c.get(agent_id)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, e.details())
            return True
        return False

    def sweeps(self):
        return len(re.findall(r"event=retention\.swept", self.c.hub_log()))

    def test_ended_agents_go_and_the_others_stay(self):
        c, T = self.c, self.T
        idle = c.spawn("hello").agent_id
        yielded = c.spawn("loop", max_iterations=1).agent_id
        running = c.spawn("sleep 60000; final late", tools=()).agent_id
        failed = c.spawn("fail boom").agent_id
        killed = c.spawn("sleep 60000; final x", tools=()).agent_id
        c.wait_state(killed, T.AGENT_STATE_RUNNING)
        c.kill(killed, reason="done with it")
        c.wait_state(failed, T.AGENT_STATE_FAILED)
        c.wait_state(idle, T.AGENT_STATE_IDLE)
        c.wait_state(yielded, T.AGENT_STATE_YIELDED)
        before = metric("agentry_retention_deleted_total") or 0
        H.wait_for(lambda: self.gone(failed) and self.gone(killed), 20,
                   what="the failed and the killed agent deleted")
        for a in (failed, killed):
            with self.assertRaises(grpc.RpcError) as cm:
                c.trace(a)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
            self.assertNotIn(a, [x.id for x in c.list_all()])
        # Two more sweeps (a sweep that finds nothing logs nothing; the gauge says it ended):
        # what did not end is still there.
        last = metric("agentry_retention_last_sweep_timestamp_seconds")
        H.wait_for(lambda: metric("agentry_retention_last_sweep_timestamp_seconds") >= last + 2,
                   10, what="two more sweeps")
        self.assertEqual(c.get(idle).state, T.AGENT_STATE_IDLE)
        self.assertEqual(c.get(yielded).state, T.AGENT_STATE_YIELDED)
        self.assertEqual(c.get(running).state, T.AGENT_STATE_RUNNING)
        self.assertGreaterEqual(metric("agentry_retention_deleted_total"), before + 2)
        self.assertGreater(metric("agentry_retention_last_sweep_timestamp_seconds"), 1.7e9)
        line = re.search(r"event=retention\.swept roots=\d+ deleted=\d+ kept=\d+ "
                         r"oldest_ended_s_ago=\d+ retention_ms=2000", c.hub_log())
        self.assertIsNotNone(line, c.hub_log()[-2000:])
        self.assertIn("agent=%s agents=1 by=retention" % failed, c.hub_log())
        c.kill(running)

    def test_a_failed_parent_stays_while_its_sub_agent_runs(self):
        c, T = self.c, self.T
        spec = T.AgentSpec(tools=["spawn_agent"], templates={"w": T.AgentSpec(tools=[])})
        parent = c.hub.Spawn(self.s.hub.SpawnRequest(
            spec=spec, input='call spawn_agent {"input":"sleep 60000","template":"w"}; fail boom'),
            timeout=10).agent_id
        c.wait_state(parent, T.AGENT_STATE_FAILED)
        children = list(c.get(parent).children)
        self.assertEqual(len(children), 1)
        child = children[0]
        c.wait_state(child, T.AGENT_STATE_RUNNING)
        # The parent is old enough after 2s; two sweeps later it is still there, kept.
        H.wait_for(lambda: re.search(r"event=retention\.swept roots=\d+ deleted=0 kept=1",
                                     c.hub_log()), 15, what="a sweep that kept the parent")
        n = self.sweeps()
        H.wait_for(lambda: self.sweeps() >= n + 1, 10, what="one more sweep")
        self.assertEqual(c.get(parent).state, T.AGENT_STATE_FAILED)
        self.assertEqual(c.get(child).state, T.AGENT_STATE_RUNNING)
        c.kill(child)
        H.wait_for(lambda: self.gone(parent) and self.gone(child), 15,
                   what="the parent deleted with its sub-agent")
        self.assertIn("agent=%s agents=2 by=retention" % parent, c.hub_log())

    def test_a_restarted_hub_deletes_what_is_left(self):
        c, T = self.c, self.T
        failed = [c.spawn("fail boom %d" % i).agent_id for i in range(3)]
        for a in failed:
            c.wait_state(a, T.AGENT_STATE_FAILED)
        restart_hub(c)  # before they are 2s old: the next hub's sweeps find them
        H.wait_for(lambda: all(self.gone(a) for a in failed), 20,
                   what="the failed agents deleted by the restarted hub")
        c.assert_healthy(self)


class StandbyTest(unittest.TestCase):
    """A leader (3s) and a standby (1s) on one SQLite file through a real etcd."""

    def test_only_the_leader_sweeps(self):
        etcd = H.Etcd()
        self.addCleanup(etcd.fixture, "stop")
        common = ["--etcd", etcd.url, "--lease-ttl", "2s"]
        c = H.Cluster(nodes=1, name="retention-standby",
                      hub_args=common + ["--hub-id", "ha", "--retention", "3s"])
        self.addCleanup(c.kill_all)
        c.start()
        T = c.s.types
        port = H.free_port()
        standby = H.Proc("hb", [H.AGENTRY_BIN, "hub", "--listen", "127.0.0.1:%d" % port,
                                "--store", c.store_url, "--hub-id", "hb", "--retention", "1s",
                                "--heartbeat", "500ms"] + common,
                         os.path.join(c.dir, "hb.log")).start()
        self.addCleanup(standby.kill_if_running)
        H.wait_for(lambda: "event=cluster.standby" in standby.text(), 15, what="hb on standby")
        first = c.spawn("fail boom").agent_id
        c.wait_state(first, T.AGENT_STATE_FAILED)
        H.wait_for(lambda: "agent=%s agents=1 by=retention" % first in c.hub_log(), 15,
                   what="the leader's sweep")
        self.assertNotIn("retention", standby.text())
        second = c.spawn("fail boom").agent_id
        c.wait_state(second, T.AGENT_STATE_FAILED)
        c.stop_hub()  # within 3s: the standby, leading, finds it
        H.wait_for(lambda: "agent=%s agents=1 by=retention" % second in standby.text(), 15,
                   what="the new leader's sweep")
        ch = H.wait_connected(grpc.insecure_channel("127.0.0.1:%d" % port))
        with self.assertRaises(grpc.RpcError) as cm:
            c.s.hub_grpc.AgentHubStub(ch).GetAgent(c.s.hub.GetAgentRequest(agent_id=second),
                                                    timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        ch.close()
        self.assertIsNone(standby.stop(), standby.tail())
        c.stop()


@ON_PG
class RetentionOnPostgresTest(OnPostgres, RetentionTest):
    pass


class Backups:
    """docs/operations.md, "Backups": a copy taken while the hub writes opens as a store."""
    NODES = 1
    CAPACITY = 8

    def backup_serves(self, how, take):
        """take(dest) copies the running hub's store; returns the copy's store URL."""
        c = self.c
        acked = [c.spawn("hello %d" % i).agent_id for i in range(20)]
        for a in acked:
            c.wait_state(a, self.T.AGENT_STATE_IDLE)
        stop = threading.Event()
        more = []

        def write():  # agents still being written while the copy is taken
            while not stop.is_set():
                more.append(c.spawn("more").agent_id)

        t = threading.Thread(target=write)
        t.start()
        try:
            H.wait_for(lambda: len(more) >= 5, 10, what="writes under way")
            url = take(os.path.join(c.dir, "backup-%s" % how))
        finally:
            stop.set()
            t.join()
        copy = H.Cluster(nodes=0, name="backup-" + how, store_url=url)
        self.addCleanup(copy.kill_all)
        copy.start()
        ids = {a.id for a in copy.list_all()}
        self.assertTrue(set(acked) <= ids, "agents missing from the copy: %s" % (
            set(acked) - ids))
        self.assertEqual(copy.get(acked[0]).last_output, "hello 0")
        self.assertGreater(len(copy.trace(acked[0])), 3)
        copy.stop()



class BackupTest(Backups, H.ClusterTestCase):
    def test_sqlite3_backup_while_the_hub_writes(self):
        def take(dest):
            r = subprocess.run(["sqlite3", self.c.store, ".backup '%s'" % dest],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            return "sqlite:" + dest
        self.backup_serves("shell", take)

    def test_vacuum_into_while_the_hub_writes(self):
        def take(dest):
            db = sqlite3.connect(self.c.store, timeout=10)
            db.execute("VACUUM INTO ?", (dest,))
            db.close()
            return "sqlite:" + dest
        self.backup_serves("vacuum", take)


@ON_PG
class BackupOnPostgresTest(OnPostgres, Backups, H.ClusterTestCase):
    def test_pg_dump_while_the_hub_writes(self):
        def take(dest):
            src = self.c.store_url[len("postgres:"):]
            r = subprocess.run(["pg_dump", "-Fc", "-d", src, "-f", dest],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            db = "e2e_restored_%d" % os.getpid()
            psql("CREATE DATABASE %s" % db)
            self.addCleanup(psql, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
            url = "%s dbname=%s" % (conninfo(), db)
            r = subprocess.run(["pg_restore", "--no-owner", "-d", url, dest],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            return "postgres:" + url
        self.backup_serves("pg_dump", take)


if __name__ == "__main__":
    H.main()
