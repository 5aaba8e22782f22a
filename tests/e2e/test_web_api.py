"""tests/e2e/test_web_api.py - the dashboard's HTTP side (agentry hub --http-listen; the contract
is docs/dashboard.md, "The HTTP API").

- Files: / is the page, /static/... its files and the Debian libraries, each with its type,
  nosniff, a Content-Security-Policy and an ETag that answers 304.
- Unary methods: Spawn by POST then GetAgent; ListAgents pages; an error is its HTTP status with
  {"code","message"}; a body that is not JSON, or names an unknown field, is 400 naming the
  problem; an unknown method 404; a GET of a unary method 405.
- Trace as Server-Sent Events: events arrive live with their seq as id, Last-Event-ID resumes
  without a repeat, an unknown agent is a 404 before any stream, and clients that hang up
  mid-stream leave the hub healthy (their calls are cancelled: no thread or call leaks, which
  the sanitizer build checks at the hub's exit; the hub's metrics count them cancelled).
- TLS mode (the harness's hub serves TLS; this class gives it a --policy with tokens): the page is
  https with the harness's CA; no credentials 401, a bad token 401, login sets an HttpOnly
  cookie that then works, logout clears it, and a namespace-scoped token sees only its namespace.
- Client certificates (TLS mode): a certificate of the hub's CA signs in without a token and
  sees only its namespaces (unary and Trace), a token sent with it wins; a certificate of another
  CA is 401; a gRPC client forging the forwarded-certificate metadata, without the hub's secret,
  is refused UNAUTHENTICATED whether it comes with a certificate of its own or without one.
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import harness as H  # noqa: E402

API = "/api/v1/agentry.v1.AgentHub/"


def make_token(role, namespaces, name):
    args = ["token", "create", "--role", role, "--name", name]
    for ns in namespaces:
        args += ["--namespace", ns]
    r = H.run_cli(args)
    if r.returncode != 0:
        raise AssertionError("token create: %s" % r.stderr)
    token = r.stdout.splitlines()[0].split()[1]
    entry = r.stdout.split("\n\n", 1)[1].split("\n", 1)[1]  # the YAML lines
    return token, entry


class WebCase(H.ClusterTestCase):
    """A cluster whose hub serves the dashboard on self.port; in TLS mode with a policy holding
    an admin token (TOKEN, used by every request unless told otherwise) and a viewer token of
    namespace team-a (team_token)."""
    NODES = 1
    TOKEN = None
    policy = None

    @classmethod
    def setUpClass(cls):
        cls.port = H.free_port()
        cls.metrics_port = H.free_port()
        args = ["--http-listen", "127.0.0.1:%d" % cls.port,
                "--metrics-listen", "127.0.0.1:%d" % cls.metrics_port]
        if H.E2E_TLS:
            cls.TOKEN, admin = make_token("admin", ["*"], "web")
            cls.team_token, team = make_token("viewer", ["team-a"], "team")
            d = tempfile.mkdtemp(prefix="agentry-web-policy-")
            cls.addClassCleanup(shutil.rmtree, d, True)
            cls.policy = os.path.join(d, "policy.yaml")
            with open(cls.policy, "w") as f:
                f.write("tokens:\n" + admin + team)
            args += ["--policy", cls.policy]
        cls.HUB_ARGS = tuple(args)
        super().setUpClass()

    # -- HTTP helpers --

    def conn(self, timeout=15, cert=None):
        """cert: (crt, key) to present as the client certificate (TLS mode)."""
        if H.E2E_TLS:
            ctx = ssl.create_default_context(cafile=os.path.join(H.tls_dir(), "ca.crt"))
            if cert:
                ctx.load_cert_chain(cert[0], cert[1])
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def auth(self, headers, token=None):
        if token is None:  # "" sends none
            token = self.TOKEN
        if token:
            headers["Authorization"] = "Bearer " + token
        return headers

    def request(self, method, path, body=None, headers=None, token=None, cert=None):
        """(status, headers, body bytes)."""
        c = self.conn(cert=cert)
        try:
            c.request(method, path, body=body, headers=self.auth(dict(headers or {}), token))
            r = c.getresponse()
            return r.status, r, r.read()
        finally:
            c.close()

    def call(self, method, req=None, token=None, status=200, cert=None):
        st, _, body = self.request("POST", API + method, json.dumps(req or {}),
                                   {"Content-Type": "application/json"}, token, cert)
        self.assertEqual(st, status, body)
        return json.loads(body)

    def sse(self, query, last_event_id=None, token=None):
        """An open SSE response (the caller reads and closes it)."""
        c = self.conn(timeout=20)
        h = self.auth({"Accept": "text/event-stream"}, token)
        if last_event_id is not None:
            h["Last-Event-ID"] = str(last_event_id)
        c.request("GET", API + "Trace?" + query, headers=h)
        r = c.getresponse()
        self.assertEqual(r.status, 200, r.read() if r.status != 200 else "")
        self.assertTrue(r.getheader("Content-Type").startswith("text/event-stream"))
        return c, r

    def too_large(self):
        """The status of a POST announcing a body over 1 MiB (answered before it is sent)."""
        c = self.conn()
        try:
            c.putrequest("POST", API + "Ping")
            for k, v in self.auth({"Content-Type": "application/json",
                                   "Content-Length": str((1 << 20) + 1)}).items():
                c.putheader(k, v)
            c.endheaders()
            return c.getresponse().status
        finally:
            c.close()

    @staticmethod
    def read_event(r):
        """The next SSE event as a dict of its fields (comments skipped)."""
        ev = {}
        while True:
            line = r.fp.readline()
            if not line:
                return ev or None
            line = line.decode().rstrip("\n")
            if line == "":
                if ev:
                    return ev
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            ev[k] = v[1:] if v.startswith(" ") else v

    def spawn(self, text="hi", ns=""):
        req = {"spec": {"tools": ["echo"]}, "input": text}
        if ns:
            req["namespace"] = ns
        return self.call("Spawn", req)["agent_id"]


class WebApi(WebCase):
    def test_static_files(self):
        for path, ctype in (("/", "text/html"), ("/static/index.html", "text/html"),
                            ("/static/lib/bootstrap.min.css", "text/css"),
                            ("/static/lib/bootstrap.bundle.min.js", "text/javascript"),
                            ("/static/lib/d3.min.js", "text/javascript")):
            st, r, body = self.request("GET", path, token="")
            self.assertEqual(st, 200, path)
            self.assertTrue(r.getheader("Content-Type").startswith(ctype), path)
            self.assertEqual(r.getheader("X-Content-Type-Options"), "nosniff")
            self.assertIn("default-src 'self'", r.getheader("Content-Security-Policy"))
            self.assertGreater(len(body), 0)
            etag = r.getheader("ETag")
            st, _, body = self.request("GET", path, headers={"If-None-Match": etag}, token="")
            self.assertEqual((st, body), (304, b""), path)
        with open("/usr/share/javascript/d3/d3.min.js", "rb") as f:
            self.assertEqual(self.request("GET", "/static/lib/d3.min.js")[2], f.read())
        self.assertEqual(self.request("GET", "/static/nope.js")[0], 404)
        self.assertEqual(self.request("GET", "/static/../CMakeLists.txt")[0], 404)
        self.assertEqual(self.request("DELETE", "/")[0], 405)

    # -- unary --

    def test_spawn_then_get(self):
        aid = self.spawn("hello")
        a = self.call("GetAgent", {"agentId": aid})  # lowerCamelCase is accepted
        self.assertEqual(a["id"], aid)
        self.assertTrue(a["state"].startswith("AGENT_STATE_"), a)
        self.assertEqual(a["spec"]["tools"], ["echo"])

    def test_list_agents_pages(self):
        ids = {self.spawn("page %d" % i, ns="paging") for i in range(5)}
        seen, token, pages = [], "", 0
        while True:
            resp = self.call("ListAgents", {"namespace": "paging", "page_size": 2,
                                            "page_token": token})
            seen += [a["id"] for a in resp.get("agents", [])]
            self.assertLessEqual(len(resp.get("agents", [])), 2)
            pages += 1
            token = resp.get("next_page_token", "")
            if not token:
                break
        self.assertEqual(set(seen), ids)
        self.assertEqual(len(seen), 5)
        self.assertGreaterEqual(pages, 3)

    def test_errors(self):
        body = self.call("GetAgent", {"agent_id": "no-such-agent"}, status=404)
        self.assertEqual(body["code"], "NOT_FOUND")
        self.assertIn("no-such-agent", body["message"])
        h = {"Content-Type": "application/json"}
        st, r, body = self.request("POST", API + "GetAgent", "{not json", h)
        self.assertEqual(st, 400)
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertIn("not JSON", json.loads(body)["message"])
        body = self.call("GetAgent", {"agent_id": "x", "bogus_field": 1}, status=400)
        self.assertEqual(body["code"], "INVALID_ARGUMENT")
        self.assertIn("bogus_field", body["message"])
        body = self.call("ListAgents", {"page_size": "many"}, status=400)
        self.assertIn("page_size", body["message"])
        self.assertEqual(self.request("POST", API + "NoSuchMethod", "{}", h)[0], 404)
        self.assertEqual(self.request("POST", API + "ImportAgent", "{}", h)[0], 404)
        self.assertEqual(self.request("POST", "/api/v2/whatever", "{}", h)[0], 404)
        self.assertEqual(self.request("GET", API + "GetAgent")[0], 405)
        self.assertEqual(self.request("POST", API + "Ping", "{}",
                                      {"Content-Type": "text/plain"})[0], 415)
        self.assertEqual(self.too_large(), 413)
        self.assertEqual(self.call("Ping")["version"], self.call("Ping", {})["version"])

    # -- SSE --

    def test_trace_live_and_resume(self):
        aid = self.spawn("first")
        self.c.wait_turn_end(aid)
        c, r = self.sse("agent_id=%s&follow=true" % aid)
        try:
            events = []
            while True:  # the stored events, then a live one
                ev = self.read_event(r)
                data = json.loads(ev["data"])
                self.assertEqual(int(ev["id"]), int(data["seq"]))
                events.append(data)
                if data["kind"] in ("EVENT_KIND_FINAL", "EVENT_KIND_YIELD"):
                    break
            self.assertEqual([int(e["seq"]) for e in events], list(range(1, len(events) + 1)))
            last = int(events[-1]["seq"])
            self.call("SendMessage", {"agent_id": aid, "input": "second"})
            ev = self.read_event(r)  # live: sent after the stream was open
            self.assertEqual(int(ev["id"]), last + 1)
            self.assertEqual(json.loads(ev["data"])["agent_id"], aid)
        finally:
            c.close()
        self.c.wait_turn_end(aid, after_seq=last)
        # A reconnect with Last-Event-ID resumes right after it: nothing lost, nothing repeated.
        c, r = self.sse("agent_id=%s&from_seq=1" % aid, last_event_id=last)
        try:
            seqs = []
            while True:
                ev = self.read_event(r)
                if ev.get("event") == "end":
                    self.assertEqual(json.loads(ev["data"])["code"], "OK")
                    break
                seqs.append(int(ev["id"]))
            self.assertEqual(seqs[0], last + 1)
            self.assertEqual(seqs, list(range(last + 1, last + 1 + len(seqs))))
        finally:
            c.close()

    def test_trace_errors(self):
        st, _, body = self.request("GET", API + "Trace?agent_id=nope&follow=true")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["code"], "NOT_FOUND")
        st, _, body = self.request("GET", API + "Trace?agent_id=x&bogus=1")
        self.assertEqual(st, 400)
        self.assertIn("bogus", json.loads(body)["message"])
        aid = self.spawn("last event ids")
        for bad in ("x", "-1", "18446744073709551615", "99999999999999999999"):
            st, _, body = self.request("GET", API + "Trace?agent_id=" + aid, None,
                                       {"Last-Event-ID": bad})
            self.assertEqual(st, 400, bad)
            self.assertIn("Last-Event-ID", json.loads(body)["message"])
        self.assertEqual(self.request("POST", API + "Trace", "{}",
                                      {"Content-Type": "application/json"})[0], 405)

    def dashboard_followers(self):
        """How many dashboard streams follow an agent's log now (the hub's metrics)."""
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        m = re.search(r'^agentry_trace_followers\{reader="dashboard"\} (\d+)', text, re.M)
        return int(m.group(1))

    def test_clients_hanging_up_leave_the_hub_healthy(self):
        aid = self.spawn("hang up")
        self.c.wait_turn_end(aid)
        H.wait_for(lambda: self.dashboard_followers() == 0, 10, what="no dashboard follower")
        c, r = self.sse("agent_id=%s&follow=true" % aid)
        self.read_event(r)
        self.assertEqual(self.dashboard_followers(), 1)  # what the waits below count down
        c.close()
        for _ in range(20):
            c, r = self.sse("agent_id=%s&follow=true" % aid)
            self.read_event(r)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        # Many at once, in threads, each dropping mid-stream.
        def one():
            c, r = self.sse("agent_id=%s&follow=true" % aid)
            self.read_event(r)
            c.close()
        ts = [threading.Thread(target=one) for _ in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        # Each hang-up ended its follower (within a second: the stream looks that often).
        H.wait_for(lambda: self.dashboard_followers() == 0, 10,
                   what="the 41 followers to end")
        self.assertEqual(self.call("GetAgent", {"agent_id": aid})["id"], aid)
        t0 = time.monotonic()
        self.call("Ping")
        self.assertLess(time.monotonic() - t0, 2)

    # -- sign-in (TLS mode only: a plaintext hub's callers are all the anonymous admin) --

    @unittest.skipUnless(H.E2E_TLS, "sign-in exists only on a hub serving TLS")
    def test_no_credentials_is_401(self):
        st, r, body = self.request("POST", API + "Ping", "{}",
                                   {"Content-Type": "application/json"}, token="")
        self.assertEqual(st, 401, body)
        self.assertEqual(json.loads(body)["code"], "UNAUTHENTICATED")
        self.assertEqual(r.getheader("WWW-Authenticate"), "Bearer")
        st, _, _ = self.request("GET", API + "Trace?agent_id=x", token="")
        self.assertEqual(st, 401)

    @unittest.skipUnless(H.E2E_TLS, "sign-in exists only on a hub serving TLS")
    def test_bad_token_is_401(self):
        body = self.call("Ping", token="agt_" + "0" * 64, status=401)
        self.assertEqual(body["code"], "UNAUTHENTICATED")
        st, _, _ = self.request("POST", "/api/v1/login", json.dumps({"token": "agt_bad"}),
                                {"Content-Type": "application/json"}, token="")
        self.assertEqual(st, 401)

    @unittest.skipUnless(H.E2E_TLS, "sign-in exists only on a hub serving TLS")
    def test_login_sets_a_cookie_that_works(self):
        st, r, _ = self.request("POST", "/api/v1/login", json.dumps({"token": self.TOKEN}),
                                {"Content-Type": "application/json"}, token="")
        self.assertEqual(st, 200)
        cookie = r.getheader("Set-Cookie")
        for attr in ("HttpOnly", "Secure", "SameSite=Strict"):
            self.assertIn(attr, cookie)
        value = cookie.split(";")[0]
        st, _, body = self.request("POST", API + "Ping", "{}",
                                   {"Content-Type": "application/json", "Cookie": value},
                                   token="")
        self.assertEqual(st, 200, body)
        st, r, _ = self.request("POST", "/api/v1/logout", "{}",
                                {"Content-Type": "application/json", "Cookie": value}, token="")
        self.assertEqual(st, 200)
        self.assertIn("Max-Age=0", r.getheader("Set-Cookie"))

    @unittest.skipUnless(H.E2E_TLS, "sign-in exists only on a hub serving TLS")
    def test_namespace_scoped_token(self):
        mine = self.spawn("team a", ns="team-a")
        other = self.spawn("elsewhere", ns="team-b")
        listed = self.call("ListAgents", {"namespace": "team-a"}, token=self.team_token)
        self.assertEqual([a["id"] for a in listed["agents"]], [mine])
        self.call("GetAgent", {"agent_id": other}, token=self.team_token, status=404)
        self.call("ListAgents", {"namespace": "team-b"}, token=self.team_token, status=403)
        self.call("KillAgent", {"agent_id": mine}, token=self.team_token, status=403)
        st, _, _ = self.request("GET", API + "Trace?agent_id=%s" % other, token=self.team_token)
        self.assertEqual(st, 404)

    # -- client certificates (TLS mode) --

    @staticmethod
    def fixture(*args):
        subprocess.run(["sh", H.TLS_FIXTURE] + list(args), check=True, capture_output=True,
                       timeout=60)

    @unittest.skipUnless(H.E2E_TLS, "client certificates exist only on a hub serving TLS")
    def test_client_certificate_signs_in(self):
        d = H.tls_dir()
        if not os.path.exists(os.path.join(d, "web-carol.crt")):
            self.fixture("issue", d, "web-carol", "user", "carol", "operator", "30", "team-c")
        carol = (os.path.join(d, "web-carol.crt"), os.path.join(d, "web-carol.key"))
        mine = self.spawn("team c", ns="team-c")
        other = self.spawn("elsewhere", ns="team-d")
        listed = self.call("ListAgents", {"namespace": "team-c"}, token="", cert=carol)
        self.assertEqual([a["id"] for a in listed["agents"]], [mine])
        self.call("GetAgent", {"agent_id": other}, token="", cert=carol, status=404)
        self.call("ListAgents", {"namespace": "team-d"}, token="", cert=carol, status=403)
        made = self.call("Spawn", {"spec": {"tools": ["echo"]}, "input": "x",
                                   "namespace": "team-c"}, token="", cert=carol)
        self.call("Spawn", {"spec": {}, "namespace": "team-d"}, token="", cert=carol,
                  status=403)
        self.assertEqual(self.call("GetAgent", {"agent_id": made["agent_id"]})["namespace"],
                         "team-c")
        st, _, _ = self.request("GET", API + "Trace?agent_id=%s" % mine, token="", cert=carol)
        self.assertEqual(st, 200)
        st, _, _ = self.request("GET", API + "Trace?agent_id=%s" % other, token="", cert=carol)
        self.assertEqual(st, 404)
        # A token sent with a certificate wins, as on gRPC: the admin token sees team-d.
        self.assertEqual(self.call("GetAgent", {"agent_id": other}, cert=carol)["id"], other)

    @unittest.skipUnless(H.E2E_TLS, "client certificates exist only on a hub serving TLS")
    def test_certificate_of_another_ca_is_401(self):
        d = H.tls_dir()
        f = os.path.join(d, "foreign")
        if not os.path.exists(os.path.join(f, "admin.crt")):
            self.fixture("foreign", d)
        foreign = (os.path.join(f, "admin.crt"), os.path.join(f, "admin.key"))
        body = self.call("Ping", token="", cert=foreign, status=401)
        self.assertEqual(body["code"], "UNAUTHENTICATED")
        self.assertIn("client certificate was not accepted", body["message"])
        st, _, _ = self.request("GET", API + "Trace?agent_id=x", token="", cert=foreign)
        self.assertEqual(st, 401)

    @unittest.skipUnless(H.E2E_TLS, "forwarded certificates exist only on a hub serving TLS")
    def test_forged_forwarded_certificate_is_refused(self):
        """Over plain gRPC to the hub's port: the admin certificate as the forwarded one, with a
        made-up secret or none, from a client with no certificate and from one with its own."""
        d = H.tls_dir()
        with open(os.path.join(d, "admin.crt"), "rb") as f:
            admin_pem = f.read()
        with open(os.path.join(d, "ca.crt"), "rb") as f:
            ca = f.read()
        s = H.stubs()
        opts = [("grpc.use_local_subchannel_pool", 1)]
        bare = grpc.secure_channel(self.c.addr, grpc.ssl_channel_credentials(ca), options=opts)
        own = H.dial(self.c.addr)
        try:
            for ch in (bare, own):
                hub = s.hub_grpc.AgentHubStub(ch)
                for md in ([("agentry-forwarded-cert-bin", admin_pem),
                            ("agentry-forward-secret", "0" * 64)],
                           [("agentry-forwarded-cert-bin", admin_pem)]):
                    with self.assertRaises(grpc.RpcError) as e:
                        hub.ListAgents(s.hub.ListAgentsRequest(), metadata=md, timeout=10)
                    self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
                    self.assertIn("forwarded client certificate", e.exception.details())
            # The same client without the forged metadata is what it always was.
            with self.assertRaises(grpc.RpcError) as e:
                s.hub_grpc.AgentHubStub(bare).Ping(s.hub.PingRequest(), timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            s.hub_grpc.AgentHubStub(own).Ping(s.hub.PingRequest(), timeout=10)
        finally:
            bare.close()
            own.close()

    def test_address_in_use_is_one_error_line(self):
        def hub(http, store=os.path.join(self.c.dir, "other.db")):
            args = ["hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store",
                    "sqlite:" + store, "--http-listen", http]
            return H.run_cli(args + (["--policy", self.policy] if self.policy else []),
                             timeout=30)
        taken = "127.0.0.1:%d" % self.port
        self.assertIn(taken, H.one_error_line(self, hub(taken)))
        self.assertIn("'nonsense'", H.one_error_line(self, hub("nonsense")))
        # Regression: a second hub on this hub's store served (and logged) its dashboard before
        # the store refused it. The dashboard is served only once the store is the hub's.
        free = "127.0.0.1:%d" % H.free_port()
        self.assertIn("in use by another process", H.one_error_line(self, hub(free, self.c.store)))


class WebStop(WebCase):
    def test_sigterm_ends_open_streams(self):
        aid = self.spawn("before the stop")
        self.c.wait_turn_end(aid)
        c, r = self.sse("agent_id=%s&follow=true" % aid)
        try:
            ev = self.read_event(r)
            self.assertEqual(ev["id"], "1")
            self.c.stop_hub()  # exit 0 required: the open stream did not hold it up
            while ev is not None and ev.get("event") is None:
                ev = self.read_event(r)
            self.assertEqual(ev["event"], "error")
            self.assertEqual(json.loads(ev["data"])["code"], "UNAVAILABLE")
        finally:
            c.close()


if __name__ == "__main__":
    H.main()
