"""tests/clients/test_python.py - clients/python (agentry_client) against real hubs and nodes.

The package is built as a user builds it (`pip wheel`, whose setup.py generates the stubs from
api/) from a copy of clients/python in a temp dir, so the source tree stays clean, and the wheel
is unpacked into a temp dir this process imports it from.

- PlainHub (a plaintext hub and one node, tests/e2e/harness.py): ping, spawn (keywords and a
  dict spec), get, send, kill twice, list_agents by label; invoke; errors mapped to their
  classes with the hub's message (and a token without TLS refused before any call); a tool
  call held by an "ask" rule listed, approved with edited arguments, and another denied; trace
  as an async iterator and as a sync one, each while the hub is SIGKILLed and restarted
  mid-stream: every seq once, in order, as stored; an invoke across such a restart answers from
  the one agent its request_id made; a hub that stays down makes trace give up (Unavailable)
  once reconnect_timeout passes; the README's example, run verbatim.
- TlsHub (a hub with mutual TLS and a policy holding an operator token, one node with its
  certificate; `agentry certs init`, `agentry token create`): connect with tls_dir (invoke,
  trace, the events say who spawned: "user/admin") and with a bearer token (async), a wrong
  token is Unauthenticated, plaintext to a TLS hub is Unavailable.

Must run under /usr/bin/python3 (Debian's grpcio), as ctest does.
"""
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixtures as F  # noqa: E402
from fixtures import H  # noqa: E402

CLIENT_SRC = os.path.join(H.AGENTRY_SRC, "clients", "python")
README = os.path.join(CLIENT_SRC, "README.md")
WORK = tempfile.mkdtemp(prefix="agentry-pyclient-")
if not H.KEEP_TMP:
    import atexit
    atexit.register(shutil.rmtree, WORK, True)
SITE = os.path.join(WORK, "site")


def build_wheel():
    """pip wheel a copy of clients/python (its build reads api/ through AGENTRY_API_DIR) and
    unpack the wheel into SITE."""
    src = os.path.join(WORK, "src")
    shutil.copytree(CLIENT_SRC, src, ignore=shutil.ignore_patterns("_pb", "_pb.*", "build",
                                                                    "*.egg-info", "__pycache__"))
    env = dict(os.environ, AGENTRY_API_DIR=os.path.join(H.AGENTRY_SRC, "api"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--no-cache-dir", "--no-index", "-q", "-w", os.path.join(WORK, "dist"),
                        src],
                       capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        sys.exit("error: pip wheel clients/python failed:\n%s%s" % (r.stdout, r.stderr))
    wheel, = glob.glob(os.path.join(WORK, "dist", "agentry_client-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for want in ("agentry_client/py.typed", "agentry_client/_pb/hub_pb2.py",
                     "agentry_client/_pb/hub_pb2.pyi", "agentry_client/_pb/hub_pb2_grpc.py"):
            if want not in names:
                sys.exit("error: the wheel lacks %s" % want)
        z.extractall(SITE)


build_wheel()
sys.path.insert(0, SITE)
import agentry_client as A  # noqa: E402

assert A.__file__.startswith(SITE), A.__file__
T = A.types_pb2
grpc = H.grpc


class PlainHub(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def setUp(self):
        self.hub = A.connect(self.c.addr)
        self.addCleanup(self.hub.close)

    def test_spawn_get_send_kill_list(self):
        hub = self.hub
        self.assertEqual(hub.ping().version, "0.1.0")
        a = hub.spawn(name="kw", tools=["echo"], labels={"suite": "pyclient", "way": "kw"},
                      input="one")
        self.assertEqual(a.input_seq, 2)
        end = hub.wait(a.agent_id)
        self.assertEqual((A.kind(end), A.payload(end)["output"]), ("final", "one"))
        sent = hub.send(a.agent_id, "two")
        end = hub.wait(a.agent_id, from_seq=sent.seq)
        self.assertEqual(A.payload(end)["output"], "two")
        b = hub.spawn({"name": "dict", "tools": ["echo"], "maxIterations": 3,
                       "labels": {"suite": "pyclient"}}, labels={"way": "dict"})
        got = hub.get(b.agent_id)
        self.assertEqual((got.spec.name, got.spec.max_iterations, got.state),
                         ("dict", 3, T.AGENT_STATE_IDLE))
        self.assertEqual(dict(got.spec.labels), {"suite": "pyclient", "way": "dict"})
        self.assertEqual([x.spec.name for x in hub.list_agents(label_selector="suite=pyclient")],
                         ["kw", "dict"])
        self.assertEqual([x.spec.name for x in hub.list_agents(
            label_selector="suite=pyclient,way=dict")], ["dict"])
        first = hub.kill(b.agent_id, reason="done")
        again = hub.kill(b.agent_id, reason="retry")
        self.assertEqual((again.seq, again.already_killed), (first.seq, True))
        # A followed trace of a killed agent ends after its KILLED event.
        self.assertEqual(A.kind(list(hub.trace(b.agent_id))[-1]), "killed")

    def test_invoke(self):
        r = self.hub.invoke(tools=["echo"], input="hello invoke", labels={"suite": "invoke"})
        self.assertEqual((r.state, r.output), (T.AGENT_STATE_IDLE, "hello invoke"))
        self.assertEqual(r.usage.tool_calls, 1)
        f = self.hub.invoke(input="fail the model is down")
        self.assertEqual(f.state, T.AGENT_STATE_FAILED)
        self.assertIn("the model is down", f.error)

    def test_errors_are_typed_with_the_hubs_message(self):
        hub = self.hub
        with self.assertRaises(A.NotFound) as cm:
            hub.get("0000000000000000")
        e = cm.exception
        self.assertEqual((e.code, e.method), (grpc.StatusCode.NOT_FOUND, "GetAgent"))
        self.assertIn("no agent with id '0000000000000000'", e.message)
        self.assertIsInstance(e, A.AgentryError)
        with self.assertRaises(A.InvalidArgument) as cm:
            hub.spawn(tools=["echo"], namespace="Not_A_Namespace")
        self.assertIn("Not_A_Namespace", cm.exception.message)
        with self.assertRaises(A.InvalidArgument) as cm:
            hub.spawn(tools=["echo"], labels={"not a key": "x"})
        a = hub.spawn(tools=["echo"])
        hub.kill(a.agent_id)
        with self.assertRaises(A.FailedPrecondition):
            hub.send(a.agent_id, "too late")
        with self.assertRaises(A.NotFound):
            list(hub.trace("0000000000000000"))
        with self.assertRaises(ValueError):
            A.connect(self.c.addr, token="agt_x")  # a token needs TLS
        with A.connect("127.0.0.1:%d" % H.free_port()) as nobody:
            with self.assertRaises(A.Unavailable):
                nobody.ping(timeout=5)

    def test_approve_and_deny_calls_held_by_an_ask_rule(self):
        hub = self.hub
        ask = [{"tool": "echo", "decision": "ask"}]
        a = hub.spawn(tools=["echo"], permissions=ask, input="echo ship it",
                      labels={"suite": "approve"})
        d = hub.spawn(tools=["echo"], permissions=ask, input="echo rm -rf")
        for agent in (a, d):
            asked = next(ev for ev in hub.trace(agent.agent_id)
                         if A.kind(ev) == "approval_required")
            self.assertEqual(A.payload(asked)["id"], "call_1")
        waiting = hub.list_approvals(agent_id=a.agent_id)
        self.assertEqual([(w.call_id, w.tool) for w in waiting], [("call_1", "echo")])
        self.assertEqual({w.agent_id for w in hub.list_approvals()} >= {a.agent_id, d.agent_id},
                         True)
        ok = hub.approve(a.agent_id, "call_1", arguments={"text": "shipped"}, reason="lgtm")
        self.assertEqual(hub.approve(a.agent_id, "call_1").seq, ok.seq)
        self.assertEqual(A.payload(hub.wait(a.agent_id, from_seq=ok.seq))["output"], "shipped")
        no = hub.deny(d.agent_id, "call_1", reason="never")
        end = hub.wait(d.agent_id, from_seq=no.seq)
        self.assertIn("never", A.payload(end)["output"])
        with self.assertRaises(A.FailedPrecondition):
            hub.approve(d.agent_id, "call_1")
        self.assertEqual(hub.list_approvals(agent_id=a.agent_id), [])

    def assert_as_stored(self, agent_id, seen):
        self.assertEqual([e.seq for e in seen], list(range(1, len(seen) + 1)),
                         "every seq once, in order")
        stored = list(self.hub.trace(agent_id, follow=False))
        self.assertEqual([(e.seq, e.kind, e.payload) for e in seen],
                         [(e.seq, e.kind, e.payload) for e in stored[:len(seen)]])
        self.assertEqual(A.kind(seen[-1]), "final")

    # The second echo's reply comes 1.5 s after the first call: the hub dies in that gap, while
    # the stream waits for more.
    SLOW = "echo before; sleep 1500; echo after; final done"

    def test_async_trace_resumes_after_the_hub_is_killed(self):
        async def run():
            async with A.connect_async(self.c.addr) as hub:
                a = await hub.spawn(tools=["echo"], input=self.SLOW)
                seen, killed = [], False
                async for ev in hub.trace(a.agent_id, reconnect_timeout=20):
                    seen.append(ev)
                    if A.kind(ev) == "tool_result" and not killed:
                        killed = True
                        await asyncio.get_running_loop().run_in_executor(
                            None, F.kill_and_restart_hub, self.c)
                    if A.kind(ev) == "final":
                        break
                return a.agent_id, seen
        agent_id, seen = asyncio.run(run())
        self.c._open_channel()
        self.assert_as_stored(agent_id, seen)
        self.assertEqual(A.payload(seen[-1])["output"], "done")

    def test_sync_trace_resumes_after_the_hub_is_killed(self):
        a = self.hub.spawn(tools=["echo"], input=self.SLOW)
        seen, killed = [], False
        for ev in self.hub.trace(a.agent_id, timeout=40):
            seen.append(ev)
            if A.kind(ev) == "tool_result" and not killed:
                killed = True
                F.kill_and_restart_hub(self.c)
            if A.kind(ev) == "final":
                break
        self.assert_as_stored(a.agent_id, seen)

    def test_invoke_survives_a_hub_restart(self):
        # Invoke's stream breaks with the hub; the retry with the same request_id waits on the
        # same agent instead of creating another.
        rid, box = "py-invoke-restart", {}

        def invoke():
            try:
                box["r"] = self.hub.invoke(tools=["echo"], input="echo x; sleep 1500; final slow",
                                           request_id=rid, reconnect_timeout=20, timeout=40)
            except Exception as e:  # reported below, in the test's thread
                box["e"] = e
        t = threading.Thread(target=invoke)
        t.start()
        agent = H.wait_for(lambda: next(iter(self.hub.list_agents(request_id=rid)), None), 10,
                           what="the invoked agent")
        next(ev for ev in self.hub.trace(agent.id) if A.kind(ev) == "tool_result")
        F.kill_and_restart_hub(self.c)
        t.join(45)
        self.assertNotIn("e", box)
        r = box["r"]
        self.assertEqual((r.agent_id, r.state, r.output), (agent.id, T.AGENT_STATE_IDLE, "slow"))
        self.assertEqual(len(list(self.hub.list_agents(request_id=rid))), 1)

    def test_trace_gives_up_when_the_hub_stays_down(self):
        # A hub that never answers: a port nobody listens on.
        with A.connect("127.0.0.1:%d" % H.free_port()) as hub:
            t0 = time.monotonic()
            with self.assertRaises(A.Unavailable):
                list(hub.trace("0000000000000000", reconnect_timeout=1))
            self.assertLess(time.monotonic() - t0, 5)

    def test_readme_example(self):
        prog = os.path.join(WORK, "readme_example.py")
        with open(prog, "w") as f:
            f.write(F.readme_example(README, "python"))
        env = dict(os.environ, AGENTRY_HUB=self.c.addr, PYTHONPATH=SITE)
        env.pop("AGENTRY_TLS_DIR", None)
        r = subprocess.run([sys.executable, prog], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[:3], ["answer: hello from python",
                                     'approving echo {"text":"deploy"}',
                                     "final: deploy (approved)"])
        self.assertEqual(lines[3], "1 spawned")
        self.assertEqual(lines[-1].split()[1], "final")


def ready(hub):
    """Connects hub's channel now. Under load grpc sometimes shuts a first TLS handshake down on
    the client side ("handshaker shutdown"), which a call would see as UNAVAILABLE; waiting for
    the channel lets grpc's reconnect absorb it (as harness.wait_connected does)."""
    try:
        grpc.channel_ready_future(hub.channel).result(timeout=10)
    except grpc.FutureTimeoutError:
        pass  # the test's call reports what is wrong
    return hub


class TlsHub(unittest.TestCase):
    """A hub with mutual TLS, a policy with an operator token, and one node."""

    @classmethod
    def setUpClass(cls):
        cls.t = F.TlsHub()
        cls.addClassCleanup(cls.t.stop)
        cls.t.start()
        cls.addr, cls.tls, cls.token = cls.t.addr, cls.t.tls, cls.t.token

    def test_mutual_tls(self):
        with ready(A.connect(self.addr, tls_dir=self.tls)) as hub:
            r = hub.invoke(tools=["echo"], input="over mtls")
            self.assertEqual((r.state, r.output), (T.AGENT_STATE_IDLE, "over mtls"))
            events = list(hub.trace(r.agent_id, follow=False))
            self.assertEqual(A.payload(events[0])["by"], "user/admin")
        ca, crt, key = (os.path.join(self.tls, n) for n in ("ca.crt", "admin.crt", "admin.key"))
        with ready(A.connect(self.addr, ca=ca, cert=crt, key=key)) as hub:
            self.assertEqual(hub.ping().version, "0.1.0")

    def test_token(self):
        ca = os.path.join(self.tls, "ca.crt")

        async def run():
            async with A.connect_async(self.addr, ca=ca, token=self.token) as hub:
                try:  # as ready() does
                    await asyncio.wait_for(hub.channel.channel_ready(), 10)
                except asyncio.TimeoutError:
                    pass
                a = await hub.spawn(tools=["echo"], input="by token")
                end = await hub.wait(a.agent_id)
                first = [ev async for ev in hub.trace(a.agent_id, follow=False)][0]
                return A.payload(end)["output"], A.payload(first)["by"]
        self.assertEqual(asyncio.run(run()), ("by token", "token/clients"))
        with ready(A.connect(self.addr, ca=ca, token=self.token + "x")) as hub:
            with self.assertRaises(A.Unauthenticated):
                hub.ping()
        with A.connect(self.addr) as hub:
            with self.assertRaises(A.Unavailable):
                hub.ping(timeout=5)


if __name__ == "__main__":
    H.main()
