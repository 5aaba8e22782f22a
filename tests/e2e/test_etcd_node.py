"""tests/e2e/test_etcd_node.py - `agentry node join --etcd`: the node's key, its lease, and
finding the hub through etcd, against a real etcd (tests/etcd_fixture.sh, started here on free
ports) and hubs that know nothing of etcd (the node's half only).

Keys (docs/operations.md, "Nodes through etcd"): P nodes/<id> (the node's JSON record, under its
own lease) and P leader ({"hub_id", "address"}, written here by the test in the hub's place).
Each test uses its own prefix P so that no test sees another's keys. etcd is read and written over
its JSON gateway (/v3/kv/range, /v3/kv/put, /v3/lease/timetolive), as an operator's curl would.
"""
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

Etcd = H.Etcd
b64 = H.b64


class EtcdNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.etcd = Etcd()
        try:
            cls.c = H.Cluster(nodes=0, name="etcd-node").start()
        except BaseException:
            cls.etcd.fixture("stop")
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.stop()
        finally:
            cls.etcd.fixture("stop")

    def setUp(self):
        self.procs = []
        self.prefix = "/t-%s/" % self._testMethodName

    def tearDown(self):
        problems = []
        for p in self.procs:
            e = p.stop()
            if e:
                problems.append(e)
        if problems or self.c.problems:
            self.c.dump_logs(25)
        self.assertFalse(problems, "\n".join(problems))

    def node(self, node_id, *args, hub=True, prefix=None):
        """Starts `node join --etcd URL --etcd-prefix P` (and --hub <the cluster's hub>)."""
        prefix = prefix or self.prefix
        argv = [H.AGENTRY_BIN, "node", "join", "--etcd", self.etcd.url, "--node-id", node_id,
                "--capacity", "2"]
        if prefix != "/agentry/":
            argv += ["--etcd-prefix", prefix]
        if hub:
            argv += ["--hub", self.c.addr]
        log = os.path.join(self.c.dir, "%s.%d.log" % (node_id, len(self.procs)))
        p = H.Proc(node_id, argv + list(args), log).start()
        self.procs.append(p)
        return p

    def key(self, node_id, prefix=None):
        return (prefix or self.prefix) + "nodes/" + node_id

    def wait_key(self, node_id, prefix=None, timeout=15, other_than_lease=None):
        def ok():
            v = self.etcd.get(self.key(node_id, prefix))
            return v if v and v[1] != other_than_lease else None
        return H.wait_for(ok, timeout, what="etcd key %s" % self.key(node_id, prefix))

    def wait_log(self, p, pattern, timeout=15):
        H.wait_for(lambda: re.search(pattern, p.text()), timeout,
                   what="%r in %s's log" % (pattern, p.name))

    # -- (a) + (b) --

    def test_registers_its_record_under_a_lease_and_revokes_it_on_sigterm(self):
        """(a) With --etcd and --hub, the node writes /agentry/nodes/<id> (the default prefix):
        the JSON record with node_id, the same instance_id the hub got in Register, address,
        capacity, cpu_milli, memory_bytes, labels, version and started_ns (an int, ~now), under
        a lease granted with --lease-ttl (timetolive). (b) SIGTERM revokes the lease: the key is
        gone the moment the node has exited (no waiting for a TTL), and the node exits 0."""
        t0 = time.time_ns()
        p = self.node("ea", "--lease-ttl", "7s", "--labels", "zone=a,gpu=false", "--address",
                      "host-a:9", "--cpu", "1500m", "--memory", "8Gi",
                      prefix="/agentry/")
        self.c.wait_registered("ea")
        rec, lease = self.wait_key("ea", prefix="/agentry/")
        self.assertEqual(rec["node_id"], "ea")
        self.assertEqual(rec["address"], "host-a:9")
        self.assertEqual(rec["capacity"], 2)
        self.assertEqual(rec["cpu_milli"], 1500)
        self.assertEqual(rec["memory_bytes"], 8589934592)
        self.assertEqual(rec["labels"], {"zone": "a", "gpu": "false"})
        self.assertTrue(rec["version"])
        self.assertIsInstance(rec["started_ns"], int)
        self.assertTrue(t0 - 60 * 10**9 < rec["started_ns"] < time.time_ns())
        m = re.search(r"event=node\.registered node=ea .*instance=\"?(\w+)", self.c.hub_log())
        self.assertEqual(rec["instance_id"], m.group(1), "the same instance id as Register's")
        self.assertNotEqual(lease, 0)
        granted, left = self.etcd.granted_ttl(lease)
        self.assertEqual(granted, 7)
        self.assertGreater(left, 0)
        self.assertRegex(p.text(), r"event=registry\.registered node=ea lease=%d ttl=7 "
                         r"key=/agentry/nodes/ea" % lease)

        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(15), 0, p.tail())
        self.assertIsNone(self.etcd.get(self.key("ea", "/agentry/")), "revoked at once")
        self.assertIn("event=registry.revoked node=ea", p.text())
        # The lease went before the goodbye to the hub.
        text = p.text()
        self.assertLess(text.index("registry.revoked"), text.index("node.stopped"))

    # -- (c) --

    def test_a_node_stopped_longer_than_its_ttl_loses_its_key_and_registers_again(self):
        """(c) SIGSTOP the node (--lease-ttl 2s) for longer than its TTL: etcd expires the lease
        and the key disappears. SIGCONT: the node notices the lost lease (logged), registers
        again under a new lease with the same record, and still exits 0 on SIGTERM."""
        p = self.node("ec", "--lease-ttl", "2s")
        rec, lease = self.wait_key("ec")
        p.signal(signal.SIGSTOP)
        try:
            H.wait_for(lambda: self.etcd.get(self.key("ec")) is None, 15,
                       what="the stopped node's key to expire")
        finally:
            p.signal(signal.SIGCONT)
        rec2, lease2 = self.wait_key("ec", other_than_lease=lease)
        self.assertNotEqual(lease2, lease)
        self.assertEqual(rec2, rec)
        self.assertEqual(self.etcd.granted_ttl(lease2)[0], 2)
        self.wait_log(p, r"event=registry\.lease_lost node=ec lease=%d" % lease)

    # -- (d) --

    def test_without_hub_the_node_follows_the_leader_key(self):
        """(d) Without --hub the node registers in etcd at once but waits for P leader (logged
        once: "waiting for a hub to lead (etcd key P leader)"); once the test writes
        P leader = {"hub_id", "address" of the cluster's hub}, it registers with that hub. A
        second hub becomes leader (P leader rewritten): the node drops its stream and registers
        with the second hub. Deleting P leader and writing it again with the same value is a new
        leader too: the node reconnects (a new registration on the second hub)."""
        p = self.node("ed", "--lease-ttl", "5s", hub=False)
        self.wait_key("ed")
        self.wait_log(p, re.escape("waiting for a hub to lead (etcd key %sleader)" % self.prefix))
        self.assertEqual(self.c.registrations("ed"), 0)
        self.etcd.put(self.prefix + "leader", {"hub_id": "h1", "address": self.c.addr})
        self.c.wait_registered("ed")

        c2 = H.Cluster(nodes=0, name="etcd-node-hub2").start()
        try:
            self.etcd.put(self.prefix + "leader", {"hub_id": "h2", "address": c2.addr})
            c2.wait_registered("ed")
            self.wait_log(p, r"event=node\.leader_changed node=ed")
            # The first hub saw the node go.
            H.wait_for(lambda: re.search(r"event=node\.lost node=ed ",
                                         self.c.hub_log()), 15, what="hub 1 to see ed leave")
            # Deleted and created again (a new election), same address: a new leader.
            self.etcd.delete(self.prefix + "leader")
            self.etcd.put(self.prefix + "leader", {"hub_id": "h2", "address": c2.addr})
            c2.wait_registered("ed", 2)
            self.assertEqual(len(re.findall("waiting for a hub to lead", p.text())), 1,
                             "logged once")
            self.procs.remove(p)
            e = p.stop()
            self.assertIsNone(e, e)
        finally:
            c2.stop()

    # -- (e) --

    def test_a_second_process_with_the_same_id_waits_then_gives_up(self):
        """(e) A second process with the node id of a live one (--lease-ttl 1s) does not take
        the key: it logs that the id is taken and, after 3 x TTL of waiting, exits 1 with one
        error line naming the id and what to do. The first keeps its key, its lease and its
        record throughout. (The second has no --hub and no leader to dial, so it is etcd alone
        that refuses it, not the hub.)"""
        first = self.node("ee", "--lease-ttl", "1s")
        rec, lease = self.wait_key("ee")
        t0 = time.monotonic()
        # Its own workspace root: on one host the first's, locked, would refuse it at once.
        second = self.node("ee", "--lease-ttl", "1s", "--workspace-root",
                           os.path.join(self.c.dir, "second-ee"), hub=False)
        rc = second.wait_exit(30)
        elapsed = time.monotonic() - t0
        self.procs.remove(second)
        second.log.close()
        self.assertEqual(rc, 1, second.tail())
        self.assertGreaterEqual(elapsed, 2.5)
        text = second.text()
        self.assertIn("event=registry.id_taken node=ee", text)
        self.assertRegex(text, r"error: node id 'ee' is held by another live process .*"
                               r"--node-id")
        self.assertIsNone(second.check_sanitizers())
        self.assertEqual(self.etcd.get(self.key("ee")), (rec, lease))
        self.assertTrue(first.running())

    # -- (f) --

    def test_bad_flags_exit_2_with_one_line(self):
        """(f) Bad --etcd values are refused before anything starts: exit 2 and one error line
        naming the flag (a URL that is not http(s), a TTL outside 1s..1h, a missing certificate
        file, a prefix without its slashes)."""
        url = self.etcd.url
        cases = [
            (["--etcd", "ftp://x:1"], "--etcd"),
            (["--etcd", url, "--lease-ttl", "500ms"], "--lease-ttl"),
            (["--etcd", url, "--lease-ttl", "2h"], "--lease-ttl"),
            (["--etcd", url, "--etcd-cert", "/nonexistent.crt", "--etcd-key",
              "/nonexistent.key"], "/nonexistent.crt"),
            (["--etcd", url, "--etcd-prefix", "agentry"], "--etcd-prefix"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                r = H.run_cli(["node", "join"] + args, timeout=30)
                line = H.one_error_line(self, r, rc=2)
                self.assertIn(want, line)
        r = H.run_cli(["node", "join", "--help"])
        self.assertEqual(r.returncode, 0)
        for flag in ("--etcd ", "--etcd-ca", "--etcd-cert", "--etcd-key", "--etcd-prefix",
                     "--lease-ttl"):
            self.assertIn(flag, r.stdout)

    def test_over_tls_with_a_client_certificate(self):
        """--etcd https://... with --etcd-ca, --etcd-cert and --etcd-key, against an etcd that
        requires client certificates: the node registers its key, and revokes it on SIGTERM."""
        etcd = Etcd(tls=True)
        try:
            f = etcd.files
            argv = [H.AGENTRY_BIN, "node", "join", "--etcd", etcd.url, "--etcd-ca", f["ca.crt"],
                    "--etcd-cert", f["client.crt"], "--etcd-key", f["client.key"], "--node-id",
                    "et", "--hub", self.c.addr, "--lease-ttl", "3s"]
            p = H.Proc("et", argv, os.path.join(self.c.dir, "et.log")).start()
            self.procs.append(p)
            rec, lease = H.wait_for(lambda: etcd.get("/agentry/nodes/et"), 15,
                                    what="the key over TLS")
            self.assertEqual(rec["node_id"], "et")
            self.assertEqual(etcd.granted_ttl(lease)[0], 3)
            self.procs.remove(p)
            self.assertIsNone(p.stop())
            self.assertIsNone(etcd.get("/agentry/nodes/et"))
            self.assertNotIn("registry.etcd_unavailable", p.text())
        finally:
            etcd.fixture("stop")

    # -- etcd restarts --

    def test_the_key_survives_an_etcd_restart(self):
        """etcd halted and restarted under a running node: the node's key is there afterwards
        (etcd keeps the lease across a short restart, or the node registers again), and the
        node keeps serving its hub: it never left it."""
        p = self.node("er", "--lease-ttl", "3s")
        self.c.wait_registered("er")
        self.wait_key("er")
        before = self.c.registrations("er")
        self.etcd.fixture("halt")
        self.etcd.fixture("restart")
        rec, _ = self.wait_key("er", timeout=20)
        self.assertEqual(rec["node_id"], "er")
        # And it stays (its lease, old or new, is kept alive): still there after two TTLs.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            self.assertIsNotNone(self.etcd.get(self.key("er")), "the key must stay")
            time.sleep(0.2)  # sampling a condition that must hold for a while
        self.assertEqual(self.c.registrations("er"), before, "the hub stream was not touched")
        self.assertTrue(p.running())

    def test_etcd_away_longer_than_the_ttl(self):
        """etcd unreachable for longer than the TTL (--lease-ttl 2s): the node reports the lease
        lost, logs etcd's error once (not once per retry) while it retries, keeps serving its
        hub (no new registration there), and when etcd is back writes its key again (over what
        its own old lease may still hold) and logs that etcd answers again."""
        p = self.node("eu", "--lease-ttl", "2s")
        self.c.wait_registered("eu")
        _, lease = self.wait_key("eu")
        before = self.c.registrations("eu")
        self.etcd.fixture("halt")
        try:
            self.wait_log(p, r"event=registry\.lease_lost node=eu lease=%d" % lease)
            self.wait_log(p, r"event=registry\.etcd_unavailable node=eu ")
            # Retries (200 ms doubling) are not logged, so nothing marks them: let 1.5 s of
            # them go by, then the log must still hold one line.
            time.sleep(1.5)
            self.assertEqual(len(re.findall(r"registry\.etcd_unavailable", p.text())), 1)
        finally:
            self.etcd.fixture("restart")
        self.wait_key("eu", timeout=20, other_than_lease=lease)
        self.wait_log(p, r"event=registry\.etcd_available node=eu ")
        self.assertEqual(self.c.registrations("eu"), before, "the hub stream was not touched")
        self.assertTrue(p.running())

    def test_etcd_unreachable_at_start_the_node_still_serves_its_hub(self):
        """--etcd names a URL where nothing listens, with --hub: the node joins the hub anyway
        and logs the etcd error once while it retries; SIGTERM still ends it with 0, promptly."""
        port = H.free_port()
        argv = [H.AGENTRY_BIN, "node", "join", "--etcd", "http://127.0.0.1:%d" % port,
                "--node-id", "ez", "--hub", self.c.addr, "--lease-ttl", "1s"]
        p = H.Proc("ez", argv, os.path.join(self.c.dir, "ez.log")).start()
        self.procs.append(p)
        self.c.wait_registered("ez")
        self.wait_log(p, r"event=registry\.etcd_unavailable node=ez .*127\.0\.0\.1:%d" % port)
        t0 = time.monotonic()
        self.procs.remove(p)
        self.assertIsNone(p.stop())
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(len(re.findall(r"registry\.etcd_unavailable", p.text())), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
