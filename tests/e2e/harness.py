"""tests/e2e/harness.py - shared helpers for the end-to-end tests.

Everything here drives REAL processes: an `agentry hub` and `agentry node join` workers on free
loopback ports, talked to over gRPC with Python stubs generated at test time from api/*.proto.

- Environment (set by ctest): AGENTRY_BIN (the binary), AGENTRY_SRC (the repository root).
  Without them the defaults are <repo>/build/agentry and the repository this file lives in.
- Must run under /usr/bin/python3: Debian's grpcio is importable only there.
- No sleep() as synchronisation: wait_for() polls a condition with a deadline, and traces are
  followed (Trace follow=True) until the event that is waited for.
- AGENTRY_E2E_TLS=1 runs the same tests under mutual TLS (see "TLS mode" below): the hub, nodes,
  CLI and Python channels all use certificates made once per process by tests/tls_fixture.sh.
- Every process is stopped with SIGTERM and must exit 0: under AddressSanitizer a leak turns the
  exit code non-zero. A failure prints the tail of the process's stderr log, and any
  AddressSanitizer / LeakSanitizer / UBSan report in a log fails the test that owns the process.
"""
import atexit
import base64
import glob
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
AGENTRY_SRC = os.environ.get("AGENTRY_SRC") or os.path.dirname(os.path.dirname(HERE))
AGENTRY_BIN = os.environ.get("AGENTRY_BIN") or os.path.join(AGENTRY_SRC, "build", "agentry")
KEEP_TMP = os.environ.get("AGENTRY_E2E_KEEP") == "1"

# Each test process gives what it starts its own TMPDIR: a node's default workspace root is
# $TMPDIR/agentry-workspaces-<uid>/<node id>, one node per root, and e2e and e2e-tls run at once,
# each with a node "n1". (Python's own temp files stay in the system's: tempfile has read it.)
_CHILD_TMP = tempfile.mkdtemp(prefix="agentry-e2e-tmp-")
os.chmod(_CHILD_TMP, 0o755)  # the sandbox user reaches the workspaces below it
os.environ["TMPDIR"] = _CHILD_TMP
if not KEEP_TMP:
    atexit.register(shutil.rmtree, _CHILD_TMP, True)

# Sanitizer output that must never appear in a log. UBSan prints "runtime error:".
SANITIZER_PATTERNS = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: AddressSanitizer|"
    r"SUMMARY: UndefinedBehaviorSanitizer|runtime error:|WARNING: ThreadSanitizer|"
    r"ERROR: ThreadSanitizer)")

try:
    import grpc  # noqa: E402
except ImportError:  # another python3 first on PATH (pyenv, a venv)
    sys.exit("error: cannot import grpc with %s; run the e2e tests with /usr/bin/python3 (Debian's "
             "python3-grpcio), as ctest does" % sys.executable)


# --- TLS mode -----------------------------------------------------------------------------------
#
# With AGENTRY_E2E_TLS=1 every hop of every test runs over mutual TLS, without the tests knowing:
# - AGENTRY_TLS_DIR points at this process's certificates, so each hub, node and CLI process
#   started from here (they inherit the environment) serves or dials with TLS;
# - grpc.insecure_channel dials with the admin certificate instead (the tests' own channels),
#   and dial(..., pair="node") / FakeNode use a node certificate;
# - a `node join --node-id ID` started through subprocess gets --cert/--key of a certificate
#   naming node ID (made on first use), since the hub accepts a node_id only from its certificate.
E2E_TLS = os.environ.get("AGENTRY_E2E_TLS") == "1"
TLS_FIXTURE = os.path.join(AGENTRY_SRC, "tests", "tls_fixture.sh")
_tls_dir = None
_tls_lock = threading.Lock()
_node_id_ok = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_insecure_channel = grpc.insecure_channel


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def tls_dir():
    """The directory of this process's test certificates (ca.crt, hub, node, admin pairs)."""
    global _tls_dir
    with _tls_lock:
        if _tls_dir is None:
            d = tempfile.mkdtemp(prefix="agentry-tls-")
            subprocess.run(["sh", TLS_FIXTURE, "init", d], check=True, capture_output=True,
                           timeout=60)
            if not KEEP_TMP:
                import atexit
                atexit.register(shutil.rmtree, d, True)
            _tls_dir = d
    return _tls_dir


def tls_issue(name, kind, ident, role, days=30):
    """<tls_dir>/<name>.crt and .key for agentry://<kind>/<ident> (made once); returns paths."""
    d = tls_dir()
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    with _tls_lock:
        if not os.path.exists(crt):
            subprocess.run(["sh", TLS_FIXTURE, "issue", d, name, kind, ident, role, str(days)],
                           check=True, capture_output=True, timeout=60)
    return crt, key


def node_cert(node_id):
    return tls_issue("node-" + node_id, "node", node_id, "node")


def channel_creds(pair="admin", node_id=None):
    """grpc channel credentials with the test CA and a client pair: "admin", "node" (node1),
    or the node certificate of node_id."""
    d = tls_dir()
    if node_id:
        crt, key = node_cert(node_id)
    else:
        crt, key = os.path.join(d, pair + ".crt"), os.path.join(d, pair + ".key")
    return grpc.ssl_channel_credentials(_read(os.path.join(d, "ca.crt")), _read(key), _read(crt))


def dial(addr, options=None, pair="admin", node_id=None):
    """A channel to addr: mutual TLS in TLS mode, else plaintext."""
    if E2E_TLS:
        # A connection of its own, as a plaintext channel has: grpc would otherwise share one
        # subchannel among channels whose TLS settings compare equal.
        options = list(options or []) + [("grpc.use_local_subchannel_pool", 1)]
        return grpc.secure_channel(addr, channel_creds(pair, node_id), options=options)
    return _insecure_channel(addr, options=options)


def wait_connected(ch, timeout=10):
    """TLS mode: connect ch now (the hub is known to be up). A first handshake is sometimes
    shut down on the client side ("handshaker shutdown", seen only under load); waiting here
    lets grpc's reconnect absorb it instead of the test's first call."""
    if E2E_TLS:
        try:
            grpc.channel_ready_future(ch).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            pass  # the test's call reports what is wrong
    return ch


def add_port(server, addr):
    """Bind a Python grpc server (a fake hub): with the hub's certificate in TLS mode."""
    if not E2E_TLS:
        return server.add_insecure_port(addr)
    d = tls_dir()
    def rd(n):
        return _read(os.path.join(d, n))
    creds = grpc.ssl_server_credentials([(rd("hub.key"), rd("hub.crt"))],
                                        root_certificates=rd("ca.crt"),
                                        require_client_auth=True)
    return server.add_secure_port(addr, creds)


def _tls_argv(args):
    """`... node join ... --node-id ID ...` gets a certificate naming ID."""
    if not isinstance(args, (list, tuple)) or "join" not in args or "--node-id" not in args:
        return args
    args = list(args)
    if any(a in args for a in ("--cert", "--ca", "--tls-dir")):
        return args
    i = args.index("--node-id")
    if i + 1 >= len(args) or not _node_id_ok.match(args[i + 1]):
        return args
    crt, key = node_cert(args[i + 1])
    j = args.index("join") + 1
    return args[:j] + ["--cert", crt, "--key", key] + args[j:]


if E2E_TLS:
    os.environ["AGENTRY_TLS_DIR"] = tls_dir()
    grpc.insecure_channel = lambda target, options=None, compression=None: dial(target, options)
    _Popen = subprocess.Popen

    class _TlsPopen(_Popen):
        def __init__(self, args, *a, **kw):
            super().__init__(_tls_argv(args), *a, **kw)

    subprocess.Popen = _TlsPopen


# --- stubs ------------------------------------------------------------------------------------

_stubs = None
_stub_dir = None


def generate_stubs(dest=None):
    """Generates Python stubs for api/agentry/v1/*.proto into `dest` (a temp dir by default)
    with protoc + grpc_python_plugin, makes agentry/ and agentry/v1/ packages, and returns
    that directory."""
    if dest is None:
        dest = tempfile.mkdtemp(prefix="agentry-stubs-")
    plugin = shutil.which("grpc_python_plugin")
    if not plugin:
        raise RuntimeError("grpc_python_plugin not found on PATH (apt-get install protobuf-compiler-grpc)")
    protos = sorted(glob.glob(os.path.join(AGENTRY_SRC, "api", "agentry", "v1", "*.proto")))
    rel = [os.path.relpath(p, os.path.join(AGENTRY_SRC, "api")) for p in protos]
    cmd = ["protoc", "-I" + os.path.join(AGENTRY_SRC, "api"), "--python_out=" + dest,
           "--grpc_out=" + dest, "--plugin=protoc-gen-grpc=" + plugin] + rel
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("protoc failed (%d): %s" % (r.returncode, r.stderr))
    for pkg in ("agentry", os.path.join("agentry", "v1")):
        open(os.path.join(dest, pkg, "__init__.py"), "a").close()
    return dest


class Stubs:
    """The generated modules: types_pb2, hub_pb2, hub_pb2_grpc, node_pb2, node_pb2_grpc."""

    def __init__(self, d):
        if d not in sys.path:
            sys.path.insert(0, d)
        from agentry.v1 import hub_pb2, hub_pb2_grpc, node_pb2, node_pb2_grpc, types_pb2
        self.types = types_pb2
        self.hub = hub_pb2
        self.hub_grpc = hub_pb2_grpc
        self.node = node_pb2
        self.node_grpc = node_pb2_grpc


def stubs():
    """Generates the stubs once per process (into a temp dir removed at exit) and imports them."""
    global _stubs, _stub_dir
    if _stubs is None:
        _stub_dir = generate_stubs()
        import atexit
        atexit.register(shutil.rmtree, _stub_dir, True)
        _stubs = Stubs(_stub_dir)
    return _stubs


def kind_name(kind):
    """EVENT_KIND_MODEL_REQUEST -> "model_request"."""
    return stubs().types.EventKind.Name(kind)[len("EVENT_KIND_"):].lower()


def state_name(state):
    """AGENT_STATE_IDLE -> "idle"."""
    return stubs().types.AgentState.Name(state)[len("AGENT_STATE_"):].lower()


def payload(ev, by=False):
    """The event's payload as a dict. On a hub with TLS the events a call stores also say who
    made it ("by"); it is left out unless by=True, so a test reads the same in both modes."""
    p = json.loads(ev.payload)
    if not by and isinstance(p, dict):
        p.pop("by", None)
    return p


# --- small utilities ----------------------------------------------------------------------

def npm_ci(pkg_dir, cache, probe):
    """Install the npm packages pinned in pkg_dir (package.json + package-lock.json) into cache,
    unless cache already holds this lock's install (probe: a file the install makes). The reason
    to skip, or None. Two test processes (plaintext and TLS runs of one file) may start together:
    one installs, the other waits on the cache's lock."""
    import fcntl
    import hashlib
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        return "node and npm are not installed"
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        with open(os.path.join(pkg_dir, "package-lock.json"), "rb") as f:
            lock = hashlib.sha256(f.read()).hexdigest()
        stamp = os.path.join(cache, ".installed")
        if os.path.exists(stamp) and os.path.exists(probe):
            with open(stamp) as f:
                if f.read() == lock:
                    return None
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(pkg_dir, name), cache)
        try:
            r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                               cwd=cache, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            return "npm ci timed out (is the npm registry reachable?)"
        if r.returncode != 0:
            return "npm ci failed (is the npm registry reachable?): %s" % " ".join(
                r.stderr.split())[-300:]
        with open(stamp, "w") as f:
            f.write(lock)
    return None


def free_port():
    """A port that was free on 127.0.0.1 a moment ago (the hub start retries if it was taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value, which is returned; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as e:  # e.g. a transient RPC error while something restarts
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, "" if last_exc is None else " (last error: %r)" % (last_exc,)))
        time.sleep(interval)  # a poll interval, not synchronisation: the condition decides


def sanitizer_report(text):
    """Returns the sanitizer report in text (from its first line on), or None."""
    m = SANITIZER_PATTERNS.search(text or "")
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return text[start:start + 6000]


def one_error_line(tc, r, rc=1):
    """Asserts that a CLI run ended with status rc, nothing on stdout and exactly one stderr line
    starting with "error: " (the convention for every refusal); returns that line."""
    lines = r.stderr.splitlines()
    tc.assertEqual(r.returncode, rc, "status %d, stderr %r" % (r.returncode, r.stderr))
    tc.assertEqual(len(lines), 1, "exactly one stderr line, got %r" % r.stderr)
    tc.assertTrue(lines[0].startswith("error: "), lines[0])
    tc.assertEqual(r.stdout, "")
    return lines[0]


def run_cli(args, timeout=30, env=None, binary=None, **kw):
    """Runs the CLI; returns CompletedProcess (text). Fails the caller if a sanitizer spoke."""
    e = dict(os.environ)
    e.pop("AGENTRY_HUB", None)
    if env:
        e.update(env)
    r = subprocess.run([binary or AGENTRY_BIN] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=e, **kw)
    rep = sanitizer_report(r.stderr)
    if rep:
        raise AssertionError("sanitizer report from %r:\n%s" % (args, rep))
    return r


# --- etcd ---------------------------------------------------------------------------------

ETCD_FIXTURE = os.path.join(AGENTRY_SRC, "tests", "etcd_fixture.sh")


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """A private etcd (tests/etcd_fixture.sh) and the few gateway calls the tests need; stop it
    with fixture("stop")."""

    def __init__(self, tls=False):
        fd, self.state = tempfile.mkstemp(prefix="agentry-etcd-state-")
        os.close(fd)
        self.url = subprocess.run(["sh", ETCD_FIXTURE, "start-tls" if tls else "start", self.state],
                                  check=True, capture_output=True, text=True,
                                  timeout=60).stdout.strip()
        self.ctx = None
        if tls:  # the fixture's throwaway CA and client certificate
            with open(self.state) as f:
                d = f.read().strip()
            self.files = {n: os.path.join(d, n) for n in ("ca.crt", "client.crt", "client.key")}
            self.ctx = ssl.create_default_context(cafile=self.files["ca.crt"])
            self.ctx.load_cert_chain(self.files["client.crt"], self.files["client.key"])

    def fixture(self, cmd):
        subprocess.run(["sh", ETCD_FIXTURE, cmd, self.state], check=True, capture_output=True,
                       timeout=60)

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5, context=self.ctx) as r:
            return json.loads(r.read())

    def get(self, key):
        """(value parsed as JSON, lease id as int) of key, or None if it is absent."""
        kvs = self.call("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
        if not kvs:
            return None
        return json.loads(base64.b64decode(kvs[0]["value"])), int(kvs[0].get("lease", 0))

    def put(self, key, value):
        self.call("/v3/kv/put", {"key": b64(key), "value": b64(json.dumps(value))})

    def delete(self, key):
        self.call("/v3/kv/deleterange", {"key": b64(key)})

    def granted_ttl(self, lease):
        r = self.call("/v3/lease/timetolive", {"ID": str(lease)})
        return int(r.get("grantedTTL", 0)), int(r.get("TTL", -1))


# --- processes ------------------------------------------------------------------------------

class Proc:
    """One child process with its stderr (and stdout) in a log file."""

    def __init__(self, name, args, log_path, env=None):
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.env = env
        self.p = None
        self.expect_killed = False  # set when a test SIGKILLs it on purpose

    def start(self):
        e = dict(os.environ)
        e.pop("AGENTRY_HUB", None)
        if self.env:
            e.update(self.env)
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=e, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.p.pid

    def running(self):
        return self.p is not None and self.p.poll() is None

    def text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def tail(self, n=40):
        return "\n".join(self.text().splitlines()[-n:])

    def describe_failure(self, why):
        return "%s (pid %d, %s): %s\n--- last lines of %s ---\n%s\n---" % (
            self.name, self.p.pid, " ".join(self.args), why, self.log_path, self.tail())

    def check_sanitizers(self):
        rep = sanitizer_report(self.text())
        if rep:
            return "%s (pid %d): sanitizer report in %s:\n%s" % (self.name, self.p.pid,
                                                                 self.log_path, rep)
        return None

    def signal(self, sig):
        if self.running():
            self.p.send_signal(sig)

    def sigkill(self):
        """Kills it on purpose (a test of losing a node); its exit status is not checked."""
        self.expect_killed = True
        self.signal(signal.SIGKILL)
        self.p.wait(10)

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=15):
        """SIGTERM, wait, and return an error string if the exit was not clean (None if it was)."""
        if self.p is None:
            return None
        if self.expect_killed:
            self.p.wait(10)
            self.log.close()
            return self.check_sanitizers()
        if self.running():
            self.p.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.p.kill()
            self.p.wait(10)
            self.log.close()
            return self.describe_failure("did not exit within %ds of SIGTERM (SIGKILLed)" % timeout)
        self.log.close()
        problems = []
        if rc != 0:
            problems.append(self.describe_failure("exit status %d, want 0" % rc))
        rep = self.check_sanitizers()
        if rep:
            problems.append(rep)
        return "\n".join(problems) or None

    def kill_if_running(self):
        if self.running():
            self.p.kill()
            self.p.wait(10)


class HubStartError(Exception):
    pass


class Cluster:
    """A hub and N nodes in a temp dir.

        c = Cluster(nodes=3, capacity=2).start()
        c.hub.Spawn(...)            # AgentHub stub on a long-lived channel
        c.stop()                    # SIGTERM everything; raises AssertionError on unclean exits

    Node ids are n1..nN. Logs: <tmp>/hub.<k>.log (k counts hub starts) and <tmp>/<node>.log.
    """

    def __init__(self, nodes=3, capacity=4, hub_args=(), heartbeat="500ms", name="cluster",
                 node_threads=None, binary=None, store_url=None, node_args=()):
        self.s = stubs()
        self.nnodes = nodes
        self.capacity = capacity
        self.hub_args = list(hub_args)
        self.heartbeat = heartbeat
        self.binary = binary or AGENTRY_BIN
        self.node_threads = node_threads
        self.node_args = list(node_args)  # added to every node's command line
        self.dir = tempfile.mkdtemp(prefix="agentry-e2e-%s-" % name)
        self.store = os.path.join(self.dir, "hub.db")
        # --store: the sqlite file above unless the test brings another store (a postgres URL).
        self.store_url = store_url or "sqlite:" + self.store
        self.port = None
        self.hub_proc = None
        self.hub_starts = 0
        self.nodes = {}  # id -> Proc
        self.retired = []  # processes already stopped (their problems are reported at stop)
        self.problems = []
        self.channel = None
        self.extra_channels = []
        self.hub = None
        self.nodesvc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    # -- hub --

    def start_hub(self, port=None, timeout=15):
        """Starts the hub (on `port`, or a free one) and waits until it answers Ping."""
        for attempt in range(5):
            self.port = port or free_port()
            self.hub_starts += 1
            log = os.path.join(self.dir, "hub.%d.log" % self.hub_starts)
            args = [self.binary, "hub", "--listen", self.addr, "--store", self.store_url,
                    "--heartbeat", self.heartbeat] + self.hub_args
            self.hub_proc = Proc("hub", args, log).start()
            try:
                self._wait_ping(timeout)
                break
            except HubStartError:
                # Most likely the port was taken between free_port() and the bind: try another,
                # unless the caller asked for this port.
                if port is not None or attempt == 4:
                    raise AssertionError(self.hub_proc.describe_failure("hub did not start"))
                self.retired.append(self.hub_proc)
        self._open_channel()
        return self

    def _wait_ping(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if not self.hub_proc.running():
                self.hub_proc.wait_exit(5)
                raise HubStartError()
            ch = grpc.insecure_channel(self.addr)
            try:
                r = self.s.hub_grpc.AgentHubStub(ch).Ping(self.s.hub.PingRequest(), timeout=0.5)
                if r.version:
                    return
            except grpc.RpcError:
                pass
            finally:
                ch.close()
            if time.monotonic() >= deadline:
                raise AssertionError(self.hub_proc.describe_failure(
                    "hub did not answer Ping within %ds" % timeout))
            time.sleep(0.02)

    def _open_channel(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = wait_connected(self.new_channel())
        self.hub = self.s.hub_grpc.AgentHubStub(self.channel)
        self.nodesvc = self.s.node_grpc.NodeServiceStub(self.node_channel())

    def new_channel(self, **extra):
        opts = [("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 300)]
        opts += list(extra.items())
        return grpc.insecure_channel(self.addr, options=opts)

    def node_channel(self, node_id="node1"):
        """A channel for NodeService (in TLS mode, with the certificate of node_id), kept until
        the hub's channel is replaced."""
        if not E2E_TLS:
            return self.channel
        ch = wait_connected(dial(self.addr, node_id=node_id))
        self.extra_channels.append(ch)
        return ch

    def stop_hub(self, keep_channel=False):
        """SIGTERM the hub and require exit 0 (raises AssertionError otherwise).

        The test's channel is closed first: an idle client connection makes the hub wait its
        whole 2 s shutdown grace (gRPC's shutdown notification waits for it). keep_channel
        keeps it open until the hub is gone, so that open calls see how the hub ends them."""
        if not keep_channel and self.channel is not None:
            self.channel.close()
            self.channel = None
        for ch in self.extra_channels:
            ch.close()
        self.extra_channels = []
        p = self.hub_proc
        self.hub_proc = None
        err = p.stop()
        self.retired.append(p)
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if err:
            raise AssertionError(err)

    def hub_log(self):
        return self.hub_proc.text() if self.hub_proc else ""

    # -- nodes --

    def add_node(self, node_id, capacity=None, wait=True, extra=()):
        log = os.path.join(self.dir, "%s.log" % node_id)
        args = [self.binary, "node", "join", "--hub", self.addr, "--node-id", node_id,
                "--capacity", str(capacity or self.capacity)]
        if self.node_threads:
            args += ["--threads", str(self.node_threads)]
        args += self.node_args
        args += list(extra)
        if "--workspace-root" not in args:  # one root per node and cluster (a test may run two)
            args += ["--workspace-root", os.path.join(
                _CHILD_TMP, "ws-%s-%s" % (os.path.basename(self.dir), node_id))]
        before = self.registrations(node_id)
        self.nodes[node_id] = Proc(node_id, args, log).start()
        if wait:
            self.wait_registered(node_id, before + 1)
        return self.nodes[node_id]

    def registrations(self, node_id):
        """How often the current hub process logged `event=node.registered node=<id>`."""
        pat = re.compile(r"event=node\.registered node=%s " % re.escape(node_id))
        return len(pat.findall(self.hub_log()))

    def wait_registered(self, node_id, count=1, timeout=15):
        def ok():
            p = self.nodes.get(node_id)
            if p is not None and not p.running() and not p.expect_killed:
                raise AssertionError(p.describe_failure("node exited while joining"))
            return self.registrations(node_id) >= count
        wait_for(ok, timeout, what="node %s to register with the hub" % node_id)

    def start(self):
        try:
            self.start_hub()
            for i in range(1, self.nnodes + 1):
                self.add_node("n%d" % i, wait=False)
            for i in range(1, self.nnodes + 1):
                self.wait_registered("n%d" % i)
        except BaseException:
            self.kill_all()
            raise
        return self

    def stop_node(self, node_id):
        p = self.nodes.pop(node_id)
        err = p.stop()
        self.retired.append(p)
        if err:
            raise AssertionError(err)

    def stop(self):
        """SIGTERM nodes (all at once) then the hub; every one must exit 0 and no sanitizer may
        have spoken. Raises AssertionError listing every problem; cleans the temp dir."""
        problems = list(self.problems)
        t0 = time.monotonic()
        for p in self.nodes.values():
            if not p.expect_killed:
                p.signal(signal.SIGTERM)
        for p in self.nodes.values():
            e = p.stop()
            if e:
                problems.append(e)
        self.retired.extend(self.nodes.values())
        self.nodes = {}
        if self.hub_proc is not None:
            try:
                self.stop_hub()
            except AssertionError as e:
                problems.append(str(e))
        for p in self.retired:
            rep = p.check_sanitizers()
            if rep and rep not in problems and not any(rep in x for x in problems):
                problems.append(rep)
        self.kill_all()
        if os.environ.get("AGENTRY_E2E_TIMING"):
            sys.stderr.write("cluster %s stopped in %.2fs\n" % (self.dir, time.monotonic() - t0))
        if problems:
            msg = "\n\n".join(problems)
            sys.stderr.write("\n=== cluster %s: unclean shutdown ===\n%s\n" % (self.dir, msg))
            raise AssertionError(msg)
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill_all(self):
        """Last resort on teardown: SIGKILL whatever still runs."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        for p in list(self.nodes.values()) + self.retired + [self.hub_proc]:
            if p is not None:
                p.kill_if_running()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.kill_all()
            self.dump_logs()
            return False
        self.stop()
        return False

    def dump_logs(self, n=30):
        for p in [self.hub_proc] + list(self.nodes.values()) + self.retired:
            if p is not None:
                sys.stderr.write("--- %s (%s) ---\n%s\n" % (p.name, p.log_path, p.tail(n)))

    # -- API helpers --

    def spec(self, tools=("echo",), max_iterations=0, name="", **kw):
        return self.s.types.AgentSpec(name=name, tools=list(tools), max_iterations=max_iterations,
                                      **kw)

    def spawn(self, text="", tools=("echo",), max_iterations=0, request_id="", name=""):
        return self.hub.Spawn(self.s.hub.SpawnRequest(
            spec=self.spec(tools, max_iterations, name), input=text, request_id=request_id),
            timeout=10)

    def send(self, agent_id, text):
        return self.hub.SendMessage(self.s.hub.SendMessageRequest(agent_id=agent_id, input=text),
                                    timeout=10)

    def get(self, agent_id):
        return self.hub.GetAgent(self.s.hub.GetAgentRequest(agent_id=agent_id), timeout=10)

    def kill(self, agent_id, reason=""):
        return self.hub.KillAgent(self.s.hub.KillAgentRequest(agent_id=agent_id, reason=reason),
                                  timeout=10)

    def trace(self, agent_id, from_seq=0):
        """The stored events from from_seq (no follow)."""
        return list(self.hub.Trace(self.s.hub.TraceRequest(agent_id=agent_id, from_seq=from_seq),
                                   timeout=10))

    def follow_until(self, agent_id, pred, from_seq=0, timeout=15):
        """Follows the agent's trace until pred(event) is true; returns every event seen up to
        and including that one. Fails after timeout."""
        call = self.hub.Trace(self.s.hub.TraceRequest(agent_id=agent_id, from_seq=from_seq,
                                                      follow=True), timeout=timeout)
        seen = []
        try:
            for ev in call:
                seen.append(ev)
                if pred(ev):
                    return seen
        except grpc.RpcError as e:
            raise AssertionError("trace of %s ended with %s %r after %d events (kinds %s)" % (
                agent_id, e.code(), e.details(), len(seen), [kind_name(x.kind) for x in seen]))
        finally:
            call.cancel()
        raise AssertionError("trace of %s ended before the awaited event" % agent_id)

    def turn_end_kinds(self):
        K = self.s.types
        return (K.EVENT_KIND_FINAL, K.EVENT_KIND_YIELD, K.EVENT_KIND_ERROR, K.EVENT_KIND_KILLED)

    def wait_turn_end(self, agent_id, after_seq=0, timeout=15):
        """Follows the trace from after_seq+1 until a turn ends; returns that event."""
        ends = self.turn_end_kinds()
        return self.follow_until(agent_id, lambda e: e.kind in ends, from_seq=after_seq + 1,
                                 timeout=timeout)[-1]

    def wait_kind(self, agent_id, kind, from_seq=0, timeout=15):
        return self.follow_until(agent_id, lambda e: e.kind == kind, from_seq=from_seq,
                                 timeout=timeout)[-1]

    def wait_state(self, agent_id, state, timeout=15):
        return wait_for(lambda: self.get(agent_id).state == state, timeout,
                        what="agent %s to be %s" % (agent_id, state_name(state)))

    def list_all(self, state=0, page_size=0):
        out, token = [], ""
        while True:
            r = self.hub.ListAgents(self.s.hub.ListAgentsRequest(
                state=state, page_size=page_size, page_token=token), timeout=10)
            out.extend(r.agents)
            token = r.next_page_token
            if not token:
                return out

    def assert_healthy(self, tc, text="hello"):
        """The hub answers Ping and runs an agent to its final answer."""
        r = self.hub.Ping(self.s.hub.PingRequest(payload=b"still-there"), timeout=5)
        tc.assertEqual(r.payload, b"still-there")
        inv = self.hub.Invoke(self.s.hub.InvokeRequest(spec=self.spec(), input=text), timeout=20)
        tc.assertEqual(inv.state, self.s.types.AGENT_STATE_IDLE, inv)
        tc.assertEqual(inv.output, text)
        tc.assertTrue(self.hub_proc.running(), "the hub process exited")


class FakeNode:
    """A Python client speaking NodeService.Connect by hand.

    send() queues a NodeMessage; recv() returns the next HubMessage (or None when the stream
    ended); end() waits for the stream's final status and returns (code, details)."""

    _END = object()

    def __init__(self, cluster, channel=None):
        self.s = cluster.s
        self.out = queue.Queue()
        self.inbox = queue.Queue()
        self.code = None
        self.details = None
        self.done = threading.Event()
        self.cluster = cluster
        self.own_channel = None
        self.call = None
        if not E2E_TLS or channel is not None:
            self._open(channel or cluster.channel)

    def _open(self, ch):
        self.call = self.s.node_grpc.NodeServiceStub(ch).Connect(self._requests(), timeout=60)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _open_tls(self, node_id):
        """TLS mode: the stream opens at the first message, on a connection with the node
        certificate of the node it registers (the hub checks node_id against it)."""
        if self.call is None:
            self.own_channel = dial(self.cluster.addr, node_id=node_id or "fake")
            self._open(self.own_channel)

    def _requests(self):
        while True:
            m = self.out.get()
            if m is self._END:
                return
            yield m

    def _read(self):
        try:
            for m in self.call:
                self.inbox.put(m)
            self.code, self.details = self.call.code(), self.call.details()
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        finally:
            self.inbox.put(None)
            self.done.set()

    def send(self, **kw):
        if self.call is None:
            reg = kw.get("register")
            self._open_tls(reg.node_id if reg is not None and _node_id_ok.match(reg.node_id)
                           else None)
        self.out.put(self.s.node.NodeMessage(**kw))

    def register(self, node_id, capacity=1, models=("mock",), tools=("echo",), instance_id=""):
        """Registers offering `models` and `tools` (what a real node offers by default: the
        hub places a turn only on a node that offers its model and tools)."""
        self.send(register=self.s.node.Register(node_id=node_id, capacity=capacity,
                                                version="fake", models=list(models),
                                                tools=list(tools), instance_id=instance_id))
        return self.recv()

    def recv(self, timeout=10, skip_acks=False):
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("fake node: no message from the hub within %.1fs" % timeout)
            if m is None:
                self.inbox.put(None)  # stays ended
                return None
            if skip_acks and m.WhichOneof("msg") == "ack":
                continue
            return m

    def recv_kind(self, which, timeout=10):
        """The next message of one oneof kind ('assign', 'cancel', 'ack', ...), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m is None:
                raise AssertionError("fake node: the stream ended (%s %r) while waiting for %s" % (
                    self.code, self.details, which))
            if m.WhichOneof("msg") == which:
                return getattr(m, which)

    def close(self):
        """Half-close (a clean goodbye)."""
        self.out.put(self._END)

    def end(self, timeout=10):
        if self.call is None:
            self._open_tls(None)
        if not self.done.wait(timeout):
            raise AssertionError("fake node: the stream did not end within %.1fs" % timeout)
        return self.code, self.details

    def cancel(self):
        if self.call is None:
            self._open_tls(None)
        self.call.cancel()
        self.out.put(self._END)
        self.done.wait(5)


# --- unittest glue ----------------------------------------------------------------------------

import unittest  # noqa: E402


class ClusterTestCase(unittest.TestCase):
    """One cluster per test class: started in setUpClass, stopped (exit 0 required) in
    tearDownClass. After each test, every process that should be running must still be running
    (a crash, e.g. an ASan abort, fails the test that caused it, with the log tail)."""

    NODES = 3
    CAPACITY = 4
    HUB_ARGS = ()
    NODE_THREADS = None
    NODE_ARGS = ()
    HEARTBEAT = "500ms"
    STORE_URL = None  # None: a sqlite file in the cluster's temp dir
    c = None

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(nodes=cls.NODES, capacity=cls.CAPACITY, hub_args=cls.HUB_ARGS,
                        name=cls.__name__, node_threads=cls.NODE_THREADS,
                        heartbeat=cls.HEARTBEAT, store_url=cls.STORE_URL,
                        node_args=cls.NODE_ARGS)
        cls.addClassCleanup(cls.c.kill_all)
        cls.c.start()
        cls.s = cls.c.s
        cls.T = cls.c.s.types

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def tearDown(self):
        problems = []
        procs = ([self.c.hub_proc] if self.c.hub_proc else []) + list(self.c.nodes.values())
        for p in procs:
            if not p.expect_killed and not p.running():
                problems.append(p.describe_failure("exited during the test (status %s)" %
                                                   p.p.returncode))
            rep = p.check_sanitizers()
            if rep:
                problems.append(rep)
        if problems or self._test_failed():
            self.c.dump_logs(25)
        if problems:
            self.fail("\n".join(problems))

    def _test_failed(self):
        """Whether this test (or one of its subtests) has failed so far. (unittest resets
        _outcome.success while tearDown runs, so look at the result's lists.)"""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        for t, _ in getattr(result, "errors", []) + getattr(result, "failures", []):
            if t is self or getattr(t, "test_case", None) is self:
                return True
        return False

    # Shorthands used by every test file.
    def events_kinds(self, events):
        return [kind_name(e.kind) for e in events]

    def assert_contiguous(self, events, first=1):
        seqs = [e.seq for e in events]
        self.assertEqual(seqs, list(range(first, first + len(events))),
                         "seqs must grow by exactly 1 with no gap or duplicate")


def main():
    unittest.main(verbosity=2)
