"""tests/e2e/test_tls.py - mutual TLS on the gRPC hops (issue 14).

A hub serving only mTLS (the harness's TLS mode, forced on here) refuses, each with its status:
a client without a certificate, with one from another CA or an expired one (UNAVAILABLE: the
handshake fails), a node certificate calling AgentHub, a user certificate calling NodeService and
a node registering under another node's id (PERMISSION_DENIED). The CLI says in one line which
side refused. The plaintext hub listens only on loopback unless --insecure. Certificates rotate
without a restart: new connections get the new pair after the files change, or after SIGHUP when
they look unchanged, while a stream opened before keeps running.
"""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

os.environ["AGENTRY_E2E_TLS"] = "1"  # this file is about TLS, whichever ctest entry runs it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

grpc = H.grpc


def rd(path):
    with open(path, "rb") as f:
        return f.read()


class TlsTest(H.ClusterTestCase):
    NODES = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d = H.tls_dir()
        subprocess.run(["sh", H.TLS_FIXTURE, "foreign", cls.d], check=True, capture_output=True)
        H.tls_issue("expired", "user", "old", "admin", days=-1)

    def ping(self, creds):
        ch = grpc.secure_channel(self.c.addr, creds)
        try:
            return self.s.hub_grpc.AgentHubStub(ch).Ping(self.s.hub.PingRequest(), timeout=5)
        finally:
            ch.close()

    def assert_refused(self, creds, code):
        with self.assertRaises(grpc.RpcError) as cm:
            self.ping(creds)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception.details()

    def creds(self, crt, key, ca=None):
        return grpc.ssl_channel_credentials(rd(ca or os.path.join(self.d, "ca.crt")), rd(key),
                                            rd(crt))

    def cli(self, *extra, env=None):
        return H.run_cli(["ps", "--hub", self.c.addr] + list(extra), env=env)

    # -- the handshake ---------------------------------------------------------------------

    def test_admin_certificate_works_python_and_cli(self):
        self.assertTrue(self.ping(H.channel_creds("admin")).version)
        r = self.cli()
        self.assertEqual(r.returncode, 0, r.stderr)
        # The table, or (no agent yet) the line saying the list is empty.
        self.assertTrue("ID" in r.stdout or r.stderr == "No agents found\n", r)

    def test_no_client_certificate(self):
        self.assert_refused(grpc.ssl_channel_credentials(rd(os.path.join(self.d, "ca.crt"))),
                            grpc.StatusCode.UNAVAILABLE)

    def test_certificate_of_another_ca(self):
        f = os.path.join(self.d, "foreign")
        self.assert_refused(self.creds(os.path.join(f, "admin.crt"), os.path.join(f, "admin.key")),
                            grpc.StatusCode.UNAVAILABLE)
        line = H.one_error_line(self, self.cli("--cert", os.path.join(f, "admin.crt")))
        self.assertIn("refused our certificate", line)

    def test_expired_certificate(self):
        crt, key = H.tls_issue("expired", "user", "old", "admin", days=-1)
        self.assert_refused(self.creds(crt, key), grpc.StatusCode.UNAVAILABLE)
        line = H.one_error_line(self, self.cli("--cert", crt, "--key", key))
        self.assertIn("refused our certificate", line)

    def test_hub_not_signed_by_our_ca(self):
        line = H.one_error_line(self, self.cli("--ca", os.path.join(self.d, "foreign", "ca.crt")))
        self.assertIn("is not signed by --ca", line)

    def test_plaintext_client(self):
        env = {"AGENTRY_TLS_DIR": ""}
        line = H.one_error_line(self, self.cli(env=env))
        self.assertIn("may require TLS", line)

    # -- identities ------------------------------------------------------------------------

    def test_node_certificate_cannot_spawn(self):
        ch = H.dial(self.c.addr, node_id="node1")
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                self.s.hub_grpc.AgentHubStub(ch).Spawn(
                    self.s.hub.SpawnRequest(spec=self.c.spec(), input="hi"), timeout=5)
        finally:
            ch.close()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("node 'node1'", cm.exception.details())
        line = H.one_error_line(self, self.cli("--cert", "node.crt"))
        self.assertIn("may not call", line)

    def test_user_certificate_cannot_connect_as_node(self):
        fake = H.FakeNode(self.c, channel=self.c.channel)  # the admin channel
        fake.send(register=self.s.node.Register(node_id="node1", capacity=1, version="x"))
        code, details = fake.end()
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, details)
        self.assertIn("user 'admin'", details)

    def test_forged_node_id(self):
        fake = H.FakeNode(self.c, channel=self.c.node_channel("node1"))
        fake.send(register=self.s.node.Register(node_id="someone-else", capacity=1, version="x"))
        code, details = fake.end()
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, details)
        self.assertIn("names node 'node1'", details)
        # A real node says so in one line and exits instead of retrying forever.
        crt, key = H.node_cert("node1")
        r = H.run_cli(["node", "join", "--hub", self.c.addr, "--node-id", "forged", "--cert", crt,
                       "--key", key], timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does not match this node's certificate", r.stderr)

    def test_node_id_defaults_to_certificate(self):
        crt, key = H.node_cert("from-cert")
        p = H.Proc("from-cert", [H.AGENTRY_BIN, "node", "join", "--hub", self.c.addr, "--cert",
                                 crt, "--key", key], os.path.join(self.c.dir, "from-cert.log"))
        p.start()
        try:
            self.c.wait_registered("from-cert")
        finally:
            err = p.stop()
        self.assertFalse(err, err)

    def test_python_mtls_client_spawns_and_traces(self):
        aid = self.c.spawn("over mtls").agent_id
        final = self.c.wait_turn_end(aid)
        self.assertTrue(final.seq > 0)

    # -- rotation --------------------------------------------------------------------------

    def served_cert(self):
        """The DER certificate the hub presents to a new connection."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.d, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.d, "admin.crt"), os.path.join(self.d, "admin.key"))
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", self.c.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.getpeercert(binary_form=True)

    def der(self, name):
        pem = rd(os.path.join(self.d, name + ".crt")).decode()
        return ssl.PEM_cert_to_DER_cert(pem)

    def install(self, name, keep_stat=False):
        """Copy <name>.crt/.key over hub.crt/.key: atomically by rename, or in place keeping
        size and mtime (so only SIGHUP can tell)."""
        for ext in (".crt", ".key"):
            dst = os.path.join(self.d, "hub" + ext)
            data = rd(os.path.join(self.d, name + ext))
            if keep_stat:
                st = os.stat(dst)
                self.assertEqual(st.st_size, len(data))
                with open(dst, "r+b") as f:
                    f.write(data)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            else:
                tmp = dst + ".new"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.rename(tmp, dst)

    def same_size_pair(self, name):
        """A new hub pair whose files have the sizes of the ones in use."""
        for i in range(20):
            n = "%s-%d" % (name, i)
            subprocess.run(["sh", H.TLS_FIXTURE, "server", self.d, n], check=True,
                           capture_output=True)
            if all(os.path.getsize(os.path.join(self.d, n + e)) ==
                   os.path.getsize(os.path.join(self.d, "hub" + e)) for e in (".crt", ".key")):
                return n
        self.skipTest("no same-size certificate in 20 tries")

    def test_rotation_keeps_streams(self):
        self.assertEqual(self.served_cert(), self.der("hub"))
        aid = self.c.spawn("before rotation").agent_id
        first = self.c.wait_turn_end(aid)
        # A stream opened before the rotation, on its own connection.
        old_ch = self.c.new_channel()
        stream = self.s.hub_grpc.AgentHubStub(old_ch).Trace(
            self.s.hub.TraceRequest(agent_id=aid, from_seq=first.seq + 1, follow=True),
            timeout=60)

        # 1. The files change: the next handshake serves the new pair, no signal needed.
        subprocess.run(["sh", H.TLS_FIXTURE, "server", self.d, "rot1"], check=True,
                       capture_output=True)
        self.install("rot1")
        H.wait_for(lambda: self.served_cert() == self.der("rot1"), 10,
                   what="the new certificate on a new connection")

        # 2. Same size, same mtime: invisible to the change check; SIGHUP re-reads.
        rot2 = self.same_size_pair("rot2")
        self.install(rot2, keep_stat=True)
        self.assertEqual(self.served_cert(), self.der("rot1"))
        self.c.hub_proc.signal(signal.SIGHUP)
        H.wait_for(lambda: self.served_cert() == self.der(rot2), 10,
                   what="the SIGHUP certificate on a new connection")
        self.assertIn("action=reload_tls", self.c.hub_log())

        # The old stream still works: a new turn's events reach it.
        self.c.send(aid, "after rotation")
        kinds = []
        for ev in stream:
            kinds.append(ev.kind)
            if ev.kind in self.c.turn_end_kinds():
                break
        self.assertTrue(kinds, "the stream opened before the rotation saw no events")
        old_ch.close()
        # And the CLI (a new connection) verifies the new certificate.
        r = self.cli()
        self.assertEqual(r.returncode, 0, r.stderr)


class LoopbackRuleTest(H.ClusterTestCase):
    """Without TLS the hub serves only loopback, unless --insecure."""
    NODES = 0

    def test_plaintext_needs_loopback_or_insecure(self):
        env = {"AGENTRY_TLS_DIR": ""}
        store = "sqlite:" + os.path.join(self.c.dir, "plain.db")
        r = H.run_cli(["hub", "--listen", "0.0.0.0:%d" % H.free_port(), "--store", store],
                      env=env)
        line = H.one_error_line(self, r, rc=2)
        self.assertIn("--insecure", line)
        # On loopback it starts, with one warning; --insecure lets it serve every interface.
        for listen, extra in (("127.0.0.1:%d", []), ("0.0.0.0:%d", ["--insecure"])):
            addr = listen % H.free_port()
            e = dict(os.environ, AGENTRY_TLS_DIR="")
            p = subprocess.Popen([H.AGENTRY_BIN, "hub", "--listen", addr, "--store", store] +
                                 extra, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 env=e, text=True)
            try:
                H.wait_for(lambda: socket.create_connection(
                    ("127.0.0.1", int(addr.rsplit(":", 1)[1])), 0.2).close() or True, 10,
                    what="the plaintext hub to listen")
            finally:
                p.send_signal(signal.SIGTERM)
                _, err = p.communicate(timeout=15)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(err.count("event=hub.plaintext"), 1, err)


if __name__ == "__main__":
    H.main()
