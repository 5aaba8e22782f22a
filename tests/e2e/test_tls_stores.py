"""tests/e2e/test_tls_stores.py - the hub's other hops under TLS (issue 14, point 2).

A private PostgreSQL that rejects plaintext TCP (tests/pg_fixture.sh start-tls) and a private
etcd over https with client-certificate auth (tests/etcd_fixture.sh start-tls); a hub whose
--store URL says sslmode=verify-full&sslrootcert=CA and whose --etcd is https with --etcd-ca,
--etcd-cert and --etcd-key leads, stores and runs agents. The same store URL with another CA is
refused at start in one line.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PG_FIXTURE = os.path.join(H.AGENTRY_SRC, "tests", "pg_fixture.sh")


class TlsStoresTest(H.ClusterTestCase):
    NODES = 1

    @classmethod
    def setUpClass(cls):
        fd, cls.pg_state = tempfile.mkstemp(prefix="agentry-pg-tls-state-")
        os.close(fd)
        cls.addClassCleanup(lambda: subprocess.run(["sh", PG_FIXTURE, "stop", cls.pg_state],
                                                   capture_output=True, timeout=60))
        subprocess.run(["sh", PG_FIXTURE, "start-tls", cls.pg_state], check=True,
                       capture_output=True, timeout=120)
        with open(cls.pg_state + ".url") as f:
            cls.STORE_URL = f.read().strip()
        cls.etcd = H.Etcd(tls=True)
        cls.addClassCleanup(cls.etcd.fixture, "stop")
        f = cls.etcd.files
        cls.HUB_ARGS = ("--etcd", cls.etcd.url, "--etcd-ca", f["ca.crt"], "--etcd-cert",
                        f["client.crt"], "--etcd-key", f["client.key"], "--etcd-prefix",
                        "/tls-stores/", "--hub-id", "tls-hub")
        super().setUpClass()

    def test_agents_run_on_tls_postgres_and_https_etcd(self):
        self.assertIn("sslmode=verify-full", self.STORE_URL)
        aid = self.c.spawn("stored over TLS").agent_id
        end = self.c.wait_turn_end(aid)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL)
        leader = self.etcd.get("/tls-stores/leader")
        self.assertIsNotNone(leader, "the hub did not publish its leadership in etcd")

    def test_postgres_certificate_from_another_ca_is_refused(self):
        other = tempfile.mkdtemp(prefix="agentry-other-ca-")
        self.addCleanup(subprocess.run, ["rm", "-rf", other])
        subprocess.run(["sh", H.TLS_FIXTURE, "init", other], check=True, capture_output=True)
        url = self.STORE_URL.split("sslrootcert=")[0] + "sslrootcert=" + os.path.join(other,
                                                                                  "ca.crt")
        r = H.run_cli(["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store", url],
                      timeout=60)
        line = H.one_error_line(self, r)
        self.assertIn("certificate verify failed", line)


if __name__ == "__main__":
    H.main()
