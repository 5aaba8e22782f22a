"""tests/e2e/test_health.py - the standard gRPC health checking protocol (grpc.health.v1) on the
hub and the node (docs/operations.md "Health checks and reflection").

Clients are built only from api/grpc/**.proto (protoc --python_out at test time, no agentry
stubs) with grpc's generic calls, as any standard tool would be.

- Check and Watch on the hub's main port (mutual TLS in e2e-tls mode, where a node's certificate
  may ask too) and on its plaintext --health-listen port: 'liveness', '' and agentry.v1.AgentHub
  SERVING; an unknown service NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch).
- A node's --health-listen: readiness SERVING once registered, NOT_SERVING after `agentry node
  drain` (Watch sees it), SERVING again after uncordon, NOT_SERVING on SIGTERM.
- SIGTERM: a Watch on either hub port sees NOT_SERVING before its stream ends.
- A second hub on the same health port exits 1 with one line naming the address.
- A standby hub (etcd) answers liveness SERVING and readiness NOT_SERVING on its health port,
  and SERVING once the leader is SIGKILLed and it takes over.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

grpc = H.grpc
PROTO_FILES = ("grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
               "grpc/reflection/v1alpha/reflection.proto")
SERVING, NOT_SERVING, SERVICE_UNKNOWN = 1, 2, 3


def _load_protos():
    """The Python messages of api/grpc's protos, generated now, loaded under names of their own
    (a directory named grpc on sys.path would hide the grpc package)."""
    d = tempfile.mkdtemp(prefix="agentry-health-pb-")
    api = os.path.join(H.AGENTRY_SRC, "api")
    subprocess.run(["protoc", "-I" + api, "--python_out=" + d] + list(PROTO_FILES), check=True,
                   capture_output=True, timeout=60)
    mods = {}
    for rel, name in zip(PROTO_FILES, ("health", "refl_v1", "refl_v1alpha")):
        path = os.path.join(d, rel.replace(".proto", "_pb2.py"))
        spec = importlib.util.spec_from_file_location("agentry_test_" + name + "_pb2", path)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        mods[name] = m
    shutil.rmtree(d, True)
    return mods


PB = _load_protos()
HP = PB["health"]


def plain(addr):
    """A plaintext channel, also in e2e-tls mode: the health port speaks no TLS."""
    return H._insecure_channel(addr)


def check(ch, service, timeout=5):
    call = ch.unary_unary("/grpc.health.v1.Health/Check",
                          request_serializer=HP.HealthCheckRequest.SerializeToString,
                          response_deserializer=HP.HealthCheckResponse.FromString)
    return call(HP.HealthCheckRequest(service=service), timeout=timeout).status


def check_code(ch, service):
    try:
        return check(ch, service)
    except grpc.RpcError as e:
        return e.code()


class Watch:
    """A Watch stream read on its own thread: statuses seen so far, and how it ended."""

    def __init__(self, ch, service, timeout=120):
        call = ch.unary_stream("/grpc.health.v1.Health/Watch",
                               request_serializer=HP.HealthCheckRequest.SerializeToString,
                               response_deserializer=HP.HealthCheckResponse.FromString)
        self.it = call(HP.HealthCheckRequest(service=service), timeout=timeout)
        self.statuses, self.end = [], None
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for r in self.it:
                self.statuses.append(r.status)
            self.end = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.end = e.code()

    def wait(self, statuses, what, timeout=20):
        H.wait_for(lambda: self.statuses == list(statuses), timeout,
                   what="%s: Watch to see %r (saw %r)" % (what, statuses, self.statuses))

    def cancel(self):
        self.it.cancel()
        self.t.join(10)


class HubAndNode(H.ClusterTestCase):
    NODES = 0
    HEALTH_PORT = H.free_port()
    HUB_ARGS = ("--health-listen", "127.0.0.1:%d" % HEALTH_PORT)

    def health_addr(self):
        return "127.0.0.1:%d" % self.HEALTH_PORT

    def channels(self):
        main = H.wait_connected(H.dial(self.c.addr))
        hp = plain(self.health_addr())
        self.addCleanup(main.close)
        self.addCleanup(hp.close)
        # Ready just after the hub answers its first call (hub_start serves, then says so).
        H.wait_for(lambda: check(hp, "") == SERVING, 10, what="the hub to be ready")
        return {"main": main, "health": hp}

    def test_hub_check_and_watch_on_both_ports(self):
        for port, ch in self.channels().items():
            for svc in ("", "liveness", "agentry.v1.AgentHub"):
                self.assertEqual(check(ch, svc), SERVING, (port, svc))
            for svc in ("nope", "agentry.v1.Node", "LIVENESS"):
                self.assertEqual(check_code(ch, svc), grpc.StatusCode.NOT_FOUND, (port, svc))
            w = Watch(ch, "")
            w.wait([SERVING], port)
            u = Watch(ch, "nope")
            u.wait([SERVICE_UNKNOWN], port)  # Watch keeps an unknown service open
            w.cancel()
            u.cancel()
            self.assertEqual((w.end, u.end), (grpc.StatusCode.CANCELLED,) * 2)

    @unittest.skipUnless(H.E2E_TLS, "a node certificate exists only under mutual TLS")
    def test_hub_main_port_answers_a_node_certificate(self):
        # A node certificate may call only NodeService, but health is for every verified peer.
        ch = H.wait_connected(H.dial(self.c.addr, pair="node"))
        self.addCleanup(ch.close)
        self.assertEqual(check(ch, ""), SERVING)

    def test_second_hub_on_the_health_port_fails_with_one_line(self):
        store = "sqlite:" + os.path.join(self.c.dir, "second.db")
        r = H.run_cli(["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store", store,
                       "--health-listen", self.health_addr()], timeout=30)
        line = H.one_error_line(self, r)
        self.assertIn("--health-listen", line)
        self.assertIn(self.health_addr(), line)
        self.assertIn("address already in use", line)
        self.assertFalse(os.path.exists(os.path.join(self.c.dir, "second.db")))

    def test_node_readiness_follows_registration_and_drain(self):
        port = H.free_port()
        addr = "127.0.0.1:%d" % port
        node = self.c.add_node("hn1", extra=["--health-listen", addr])
        ch = plain(addr)
        self.addCleanup(ch.close)
        H.wait_for(lambda: check(ch, "") == SERVING, 15, what="node hn1 ready")
        self.assertEqual(check(ch, "agentry.v1.Node"), SERVING)
        self.assertEqual(check(ch, "liveness"), SERVING)
        self.assertEqual(check_code(ch, "agentry.v1.AgentHub"), grpc.StatusCode.NOT_FOUND)
        w = Watch(ch, "agentry.v1.Node")
        w.wait([SERVING], "hn1 before drain")
        cli = ["--hub", self.c.addr]
        r = H.run_cli(["node", "drain", "hn1"] + cli, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        w.wait([SERVING, NOT_SERVING], "hn1 drained")
        self.assertEqual(check(ch, ""), NOT_SERVING)
        self.assertEqual(check(ch, "liveness"), SERVING)
        self.assertIn("event=health.readiness_changed node=hn1 status=NOT_SERVING", node.text())
        r = H.run_cli(["node", "uncordon", "hn1"] + cli, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        w.wait([SERVING, NOT_SERVING, SERVING], "hn1 uncordoned")
        node.signal(signal.SIGTERM)
        w.wait([SERVING, NOT_SERVING, SERVING, NOT_SERVING], "hn1 SIGTERMed")
        self.c.stop_node("hn1")
        H.wait_for(lambda: w.end is not None, 10, what="the Watch to end")


class Lifecycle(unittest.TestCase):
    """Hubs of their own: SIGTERM, and a standby in an etcd cluster."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="agentry-e2e-health-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.n = 0

    def setUp(self):
        self.procs = []
        self.addCleanup(self.stop_all)

    def stop_all(self):
        procs, self.procs = self.procs[::-1], []
        problems = [e for e in (p.stop() for p in procs) if e]
        if problems:
            self.fail("\n".join(problems))

    def hub(self, name, extra=(), store=None):
        Lifecycle.n += 1
        port, hport = H.free_port(), H.free_port()
        store = store or "sqlite:" + os.path.join(self.dir, "%s-%d.db" % (name, self.n))
        p = H.Proc(name, [H.AGENTRY_BIN, "hub", "--listen", "127.0.0.1:%d" % port, "--store",
                          store, "--health-listen", "127.0.0.1:%d" % hport] + list(extra),
                   os.path.join(self.dir, "%s.%d.log" % (name, self.n))).start()
        self.procs.append(p)
        p.addr, p.health = "127.0.0.1:%d" % port, "127.0.0.1:%d" % hport
        return p

    def test_sigterm_turns_readiness_off_first(self):
        p = self.hub("term")
        hp = plain(p.health)
        self.addCleanup(hp.close)
        H.wait_for(lambda: check(hp, "") == SERVING, 15, what="the hub to be ready")
        main = H.wait_connected(H.dial(p.addr))
        self.addCleanup(main.close)
        watches = [Watch(hp, ""), Watch(hp, "liveness"), Watch(main, "agentry.v1.AgentHub")]
        for w in watches:
            w.wait([SERVING], "before SIGTERM")
        self.assertEqual(p.stop(), None)
        self.procs.remove(p)
        for w in watches[::2]:
            H.wait_for(lambda: w.end is not None, 10, what="the Watch to end")
            self.assertEqual(w.statuses, [SERVING, NOT_SERVING])
            self.assertEqual(w.end, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(watches[1].statuses, [SERVING])  # alive to the end
        log = p.text()
        self.assertLess(log.index("status=NOT_SERVING why=\"SIGTERM\""),
                        log.index("event=hub.stopping"))

    def test_standby_is_alive_not_ready_until_it_leads(self):
        etcd = H.Etcd()
        self.addCleanup(etcd.fixture, "stop")
        self.addCleanup(self.stop_all)  # the hubs before etcd: a leader must not lose its lease
        store = "sqlite:" + os.path.join(self.dir, "shared.db")
        args = ["--etcd", etcd.url, "--etcd-prefix", "/health%d/" % os.getpid(), "--lease-ttl",
                "2s"]
        ha = self.hub("ha", args + ["--hub-id", "ha"], store)
        ca = plain(ha.health)
        self.addCleanup(ca.close)
        H.wait_for(lambda: check(ca, "") == SERVING, 20, what="ha to lead")
        hb = self.hub("hb", args + ["--hub-id", "hb"], store)
        H.wait_for(lambda: "event=cluster.standby" in hb.text(), 20, what="hb to be a standby")
        cb = plain(hb.health)
        self.addCleanup(cb.close)
        self.assertEqual(check(cb, "liveness"), SERVING)
        self.assertEqual(check(cb, ""), NOT_SERVING)
        self.assertEqual(check(cb, "agentry.v1.AgentHub"), NOT_SERVING)
        w = Watch(cb, "")
        w.wait([NOT_SERVING], "standby")
        t0 = time.monotonic()
        ha.sigkill()
        w.wait([NOT_SERVING, SERVING], "standby after the leader's death", timeout=30)
        print("standby ready %.1fs after the leader was killed" % (time.monotonic() - t0))
        self.assertEqual(check(cb, "agentry.v1.AgentHub"), SERVING)
        self.assertIn("event=health.readiness_changed hub=hb status=SERVING", hb.text())
        w.cancel()


if __name__ == "__main__":
    H.main()
