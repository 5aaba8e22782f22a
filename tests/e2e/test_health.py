"""tests/e2e/test_health.py - the standard gRPC health checking protocol (grpc.health.v1) on the
hub and the node, and gRPC server reflection on the hub (docs/operations.md "Health checks and
reflection").

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
- Reflection (v1 and v1alpha): list_services names AgentHub, Health and reflection;
  file_by_filename and file_containing_symbol (service, method, message, enum) return
  descriptors from which python's descriptor_pool builds AgentHub, and a Ping made only from
  those descriptors (message_factory, no generated agentry code) succeeds: what grpcurl does.
  An unknown symbol or file answers error_response NOT_FOUND on a stream that goes on.
- Under a --policy, a bearer token of a role with no right to anything may check health and
  reflect; a wrong token, or neither token nor certificate, is UNAUTHENTICATED.
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
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

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


class Reflection(H.ClusterTestCase):
    NODES = 0

    def reflect(self, version, *reqs, pair="admin"):
        """The responses to reqs, asked on one stream of the hub's main port."""
        rp = PB["refl_" + version]
        ch = H.wait_connected(H.dial(self.c.addr, pair=pair))
        self.addCleanup(ch.close)
        call = ch.stream_stream("/grpc.reflection.%s.ServerReflection/ServerReflectionInfo"
                                % version,
                                request_serializer=rp.ServerReflectionRequest.SerializeToString,
                                response_deserializer=rp.ServerReflectionResponse.FromString)
        return list(call(iter([rp.ServerReflectionRequest(**r) for r in reqs]), timeout=10))

    def files(self, resp):
        self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response", resp)
        return [descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in resp.file_descriptor_response.file_descriptor_proto]

    def test_list_services(self):
        for version in ("v1", "v1alpha"):
            (r,) = self.reflect(version, {"list_services": ""})
            names = {s.name for s in r.list_services_response.service}
            self.assertEqual(names, {"agentry.v1.AgentHub", "agentry.v1.NodeService",
                                     "grpc.health.v1.Health",
                                     "grpc.reflection.v1.ServerReflection",
                                     "grpc.reflection.v1alpha.ServerReflection"}, version)

    def test_symbols_files_and_not_found_on_one_stream(self):
        asks = [{"file_containing_symbol": "agentry.v1.AgentHub"},
                {"file_containing_symbol": "agentry.v1.AgentHub.Spawn"},
                {"file_containing_symbol": "agentry.v1.SpawnRequest"},
                {"file_containing_symbol": "agentry.v1.AgentSpec"},
                {"file_containing_symbol": "agentry.v1.EventKind"},
                {"file_containing_symbol": "agentry.v1.NoSuchThing"},
                {"file_by_filename": "agentry/v1/node.proto"},
                {"file_by_filename": "nope.proto"},
                {"file_containing_symbol": "grpc.health.v1.HealthCheckResponse.ServingStatus"}]
        rs = self.reflect("v1", *asks)
        self.assertEqual(len(rs), len(asks))
        want_first = ["agentry/v1/hub.proto"] * 3 + ["agentry/v1/types.proto"] * 2
        for r, first in zip(rs, want_first):
            names = [f.name for f in self.files(r)]
            self.assertEqual(names[0], first)
            if first == "agentry/v1/hub.proto":  # with what it imports
                self.assertEqual(sorted(names), ["agentry/v1/hub.proto", "agentry/v1/types.proto"])
        for r, what in ((rs[5], "agentry.v1.NoSuchThing"), (rs[7], "nope.proto")):
            self.assertEqual(r.WhichOneof("message_response"), "error_response")
            self.assertEqual(r.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
            self.assertIn(what, r.error_response.error_message)
        self.assertEqual([f.name for f in self.files(rs[6])],
                         ["agentry/v1/node.proto", "agentry/v1/types.proto"])
        self.assertEqual(self.files(rs[8])[0].name, "grpc/health/v1/health.proto")
        self.assertEqual(rs[0].original_request.file_containing_symbol, "agentry.v1.AgentHub")

    def test_dynamic_ping_from_reflected_descriptors_only(self):
        (r,) = self.reflect("v1alpha", {"file_containing_symbol": "agentry.v1.AgentHub"})
        pool = descriptor_pool.DescriptorPool()  # not the default one the agentry stubs fill
        pending, have = self.files(r), set()
        while pending:  # imports first
            f = next(f for f in pending if set(f.dependency) <= have)
            pool.Add(f)
            have.add(f.name)
            pending.remove(f)
        svc = pool.FindServiceByName("agentry.v1.AgentHub")
        ping = svc.methods_by_name["Ping"]
        req_cls, resp_cls = (message_class(ping.input_type), message_class(ping.output_type))
        ch = H.wait_connected(H.dial(self.c.addr))
        self.addCleanup(ch.close)
        call = ch.unary_unary("/%s/%s" % (svc.full_name, ping.name),
                              request_serializer=req_cls.SerializeToString,
                              response_deserializer=resp_cls.FromString)
        resp = call(req_cls(payload=b"reflected"), timeout=10)
        self.assertEqual(resp.payload, b"reflected")
        self.assertTrue(resp.version)
        self.assertIsNot(resp_cls, self.s.hub.PingResponse)

    @unittest.skipUnless(H.E2E_TLS, "identities exist only under mutual TLS")
    def test_any_authenticated_identity_may_reflect(self):
        (r,) = self.reflect("v1", {"list_services": ""}, pair="node")
        self.assertTrue(r.list_services_response.service)


def message_class(desc):
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)


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

    def test_policy_tokens_may_check_and_reflect_whatever_their_role(self):
        certs = os.path.join(self.dir, "tls-%d" % os.getpid())
        for args in (["certs", "init", "--dir", certs],
                     ["token", "create", "--role", "viewer", "--namespace", "nobody",
                      "--name", "probe"]):
            r = H.run_cli(args)
            self.assertEqual(r.returncode, 0, r.stderr)
        token, entry = r.stdout.splitlines()[0].split()[1], r.stdout.split("\n\n", 1)[1]
        policy = os.path.join(self.dir, "policy.yaml")
        with open(policy, "w") as f:
            f.write("tokens:\n" + entry.split("\n", 1)[1])
        p = self.hub("policy", ["--tls-dir", certs, "--policy", policy])
        H.wait_for(lambda: "event=hub.started" in p.text(), 15, what="the hub to start")
        ca = H._read(os.path.join(certs, "ca.crt"))

        def channel(tok):
            creds = grpc.ssl_channel_credentials(ca)
            if tok:
                creds = grpc.composite_channel_credentials(
                    creds, grpc.access_token_call_credentials(tok))
            ch = grpc.secure_channel("localhost:" + p.addr.split(":")[1], creds,
                                     options=[("grpc.use_local_subchannel_pool", 1)])
            self.addCleanup(ch.close)
            return ch
        ok = channel(token)
        self.assertEqual(check(ok, ""), SERVING)
        rp = PB["refl_v1"]
        call = ok.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                request_serializer=rp.ServerReflectionRequest.SerializeToString,
                                response_deserializer=rp.ServerReflectionResponse.FromString)
        (r,) = list(call(iter([rp.ServerReflectionRequest(list_services="")]), timeout=10))
        self.assertTrue(r.list_services_response.service)
        for tok in ("not-a-token", None):
            self.assertEqual(check_code(channel(tok), ""), grpc.StatusCode.UNAUTHENTICATED, tok)

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
