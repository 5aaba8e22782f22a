"""tests/e2e/test_mcp.py - MCP servers and OpenAPI documents as an agent's tools (issue 16, points
2 and 5), end to end: a hub and one node running agents whose specs list MCP servers the project
did not write (the reference servers @modelcontextprotocol/server-everything, over stdio and over
streamable HTTP, and @modelcontextprotocol/server-filesystem over stdio) and an OpenAPI document
served, with its endpoints, by a small HTTP server in this file.

The servers come from npm at test time, pinned by tests/mcp/package.json and package-lock.json,
installed with `npm ci` into <build>/mcp-servers (again only when the lock changes). Without node
and npm, or without the registry, the test is skipped (exit 77, ctest's SKIP_RETURN_CODE) with the
reason printed.

Agents use the mock model's `call TOOL {json}` steps; the tools the model is offered are read from
tests/fake_llm.py's record of the last request it got.

Stdio servers run in the node's sandbox (issue 17, point 1): the node binds the installed servers
and FS_ROOT read-only into it (mcp.ro_paths), and SandboxedServerTest's cases show, with a probe
server of this file's own, what a server there can and cannot reach. When the node says its
sandbox is unavailable, the McpTest node is started again with --sandbox=unsafe (so the other
cases still run) and the sandboxed cases are skipped, saying why.
"""
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SKIP = 77
MCP_DIR = os.path.join(H.AGENTRY_SRC, "tests", "mcp")
CACHE = os.path.join(os.path.dirname(os.path.abspath(H.AGENTRY_BIN)), "mcp-servers")
PKG = os.path.join(CACHE, "node_modules", "@modelcontextprotocol")
EVERYTHING = os.path.join(PKG, "server-everything", "dist", "index.js")
FILESYSTEM = os.path.join(PKG, "server-filesystem", "dist", "index.js")
FS_ROOT = tempfile.mkdtemp(prefix="agentry-e2e-mcp-fs-")
WORKSPACES = tempfile.mkdtemp(prefix="agentry-e2e-mcp-ws-")
os.chmod(FS_ROOT, 0o755)  # the sandbox user reads the servers' files and workspaces below them
os.chmod(WORKSPACES, 0o755)
CANARY = os.path.join(WORKSPACES, "canary")  # outside every workspace
UNAVAILABLE = []  # why the node's sandbox is unavailable, once it said so


def install_servers():
    """The reason to skip (no node or npm; npm ci failed), or None once the servers are
    installed in CACHE."""
    return H.npm_ci(MCP_DIR, CACHE, EVERYTHING)


# --- the OpenAPI server ---------------------------------------------------------------------

OPENAPI_YAML = """
openapi: 3.0.3
info: {title: shop, version: "1"}
servers:
  - url: /api
paths:
  /items/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getItem
      summary: Get one item.
      parameters:
        - {name: verbose, in: query, schema: {type: boolean}}
      responses: {"200": {description: ok}}
  /items/{id}/notes:
    post:
      operationId: addNote
      summary: Add a note to an item.
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: tag, in: query, schema: {type: array, items: {type: string}}}
        - {name: X-Trace, in: header, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Note"}
      responses: {"201": {description: created}}
components:
  schemas:
    Note:
      type: object
      properties:
        text: {type: string}
        author: {$ref: "#/components/schemas/Person"}
      required: [text]
    Person:
      type: object
      properties: {name: {type: string}}
"""


class ShopHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/openapi.yaml":
            return self.reply(200, OPENAPI_YAML, "application/yaml")
        self.reply(200, {"method": "GET", "path": self.path, "key": self.headers.get("X-Key")})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null")
        self.reply(201, {"method": "POST", "path": self.path, "body": body,
                         "trace": self.headers.get("X-Trace"), "key": self.headers.get("X-Key")})


def start_shop():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShopHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_everything_http():
    port = H.free_port()
    path = os.path.join(FS_ROOT, "everything-http.log")
    with open(path, "w") as log:
        p = subprocess.Popen(["node", EVERYTHING, "streamableHttp"],
                             env=dict(os.environ, PORT=str(port)), stdout=log,
                             stderr=subprocess.STDOUT)

    def up():
        if p.poll() is not None:
            with open(path) as f:
                raise AssertionError("server-everything (HTTP) exited: %s" % f.read())
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/mcp" % port, timeout=1)
        except urllib.error.HTTPError:
            return True  # it answers (a GET without a session is refused)
        except OSError:
            return False
        return True
    H.wait_for(up, 30, what="server-everything's HTTP endpoint")
    return p, "http://127.0.0.1:%d/mcp" % port


class SandboxedServerCases:
    """What a stdio server in the node's sandbox can reach: its own agent's workspace at
    /workspace (its cwd), as the sandbox user; not another agent's workspace, not a file beside
    the workspaces, not the host's loopback (unless its settings say net); and with the settings
    {"privileged": true}, all of it, as the node. Cases of McpTest, on its node.
    The probe server is PROBE_SERVER, below."""

    def probe(self, settings="", **args):
        if UNAVAILABLE:
            self.skipTest("sandbox unavailable: " + UNAVAILABLE[0])
        srv = self.T.McpServer(name="p", command=["/usr/bin/python3", "-u", PROBE],
                               settings=settings)
        step = "call mcp__p__probe %s" % json.dumps(args)
        s = self.T.AgentSpec(model="mock", max_iterations=5, mcp_servers=[srv])
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=s, input=step), timeout=10).agent_id
        end = self.c.wait_turn_end(a, timeout=90)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        res = [H.payload(e) for e in self.c.trace(a) if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertFalse(res[0]["is_error"], res)
        return a, json.loads(res[0]["output"])

    def test_a_server_sees_only_its_agents_workspace(self):
        a, got = self.probe(write="mine.txt")
        self.assertEqual(got["cwd"], "/workspace")
        if os.geteuid() == 0:
            import pwd
            self.assertEqual(got["uid"], pwd.getpwnam("agentry-sbx").pw_uid)
        with open(os.path.join(WORKSPACES, a, "mine.txt")) as f:
            self.assertEqual(f.read(), "from the server")
        other = os.path.join(WORKSPACES, a, "mine.txt")
        b, got = self.probe(read=other)
        self.assertNotEqual(a, b)
        self.assertNotIn("mine.txt", got["files"])
        self.assertIn("read_error", got, "another agent's workspace is out of sight")
        _, got = self.probe(read=CANARY)
        self.assertIn("read_error", got)
        _, got = self.probe(read="/etc/shadow")
        self.assertIn("read_error", got)
        with open(CANARY) as f:
            self.assertEqual(f.read(), "intact")
        self.assertRegex(self.node_log(), r"event=mcp\.started server=p pid=\d+ command=\S+ "
                                          r"applied=\"sandbox=bwrap .*net=off seccomp=on")

    def test_the_network_is_off_unless_the_settings_say_net(self):
        port = self.shop.server_address[1]
        _, got = self.probe(connect=port)
        self.assertIn("connect_error", got)
        _, got = self.probe(settings='{"net": true}', connect=port)
        self.assertTrue(got.get("connected"), got)

    def test_a_privileged_server_runs_with_the_nodes_rights(self):
        _, got = self.probe(settings='{"privileged": true, "mem_limit": "1GiB"}', read=CANARY)
        self.assertEqual(got.get("read"), "intact")
        self.assertEqual(got["uid"], os.geteuid())
        self.assertNotEqual(got["cwd"], "/workspace")

    def test_deleting_the_agent_stops_its_server(self):
        a, got = self.probe(write="gone.txt")
        pids = re.findall(r"event=mcp\.started server=p pid=(\d+)", self.node_log())
        pid = int(pids[-1])
        self.assertTrue(os.path.exists("/proc/%d" % pid), "the server still serves its agent")
        self.c.hub.DeleteAgent(self.s.hub.DeleteAgentRequest(agent_id=a), timeout=10)
        # The node's Forget stops the agent's own server, which held its workspace open.
        H.wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z", 30,
                   what="the deleted agent's MCP server to stop")
        H.wait_for(lambda: not os.path.exists(os.path.join(WORKSPACES, a)), 30,
                   what="the deleted agent's workspace to go")


class McpTest(SandboxedServerCases, H.ClusterTestCase):
    NODES = 1

    @classmethod
    def setUpClass(cls):
        from test_real_models import FakeLLM
        cls.fake = FakeLLM()
        cls.addClassCleanup(cls.fake.stop)
        cls.shop = start_shop()
        cls.addClassCleanup(cls.shop.shutdown)
        cls.http_server, cls.http_url = start_everything_http()
        cls.addClassCleanup(cls.http_server.wait, 10)
        cls.addClassCleanup(cls.http_server.kill)
        cls.addClassCleanup(shutil.rmtree, FS_ROOT, True)
        cls.addClassCleanup(shutil.rmtree, WORKSPACES, True)
        with open(os.path.join(FS_ROOT, "hello.txt"), "w") as f:
            f.write("hello from the file system\n")
        os.environ["OPENAI_API_KEY"] = "sk-test-mcp"
        with open(CANARY, "w") as f:
            f.write("intact")
        with open(PROBE, "w") as f:
            f.write(PROBE_SERVER)
        cls.NODE_ARGS = ("--workspace-root", WORKSPACES,
                         "--model-opt", "openai.base_url=%s/v1" % cls.fake.base,
                         "--tool-opt", "mcp.ro_paths=%s:%s" % (CACHE, FS_ROOT))
        super().setUpClass()
        node = cls.c.nodes["n1"]
        log = H.wait_for(lambda: "node.sandbox_" in node.text() and node.text(), 15,
                         what="the node's sandbox self-test")
        for line in log.splitlines():
            if "event=node.sandbox_unavailable" in line:
                UNAVAILABLE.append(line)
        if UNAVAILABLE:
            cls.c.stop_node("n1")
            cls.c.add_node("n1", extra=("--sandbox", "unsafe"))

    # -- helpers --

    def everything(self, name="ev", **kw):
        return self.T.McpServer(name=name, command=["node", EVERYTHING, "stdio"], **kw)

    def shop_api(self, **kw):
        return self.T.OpenApiSource(
            name="shop", url="http://127.0.0.1:%d/openapi.yaml" % self.shop.server_address[1],
            **kw)

    def run_agent(self, steps, model="mock", **spec):
        spec.setdefault("max_iterations", 10)
        s = self.T.AgentSpec(model=model, **spec)
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=s, input="; ".join(steps)),
                             timeout=10).agent_id
        end = self.c.wait_turn_end(a, timeout=90)
        events = self.c.trace(a)
        calls = [H.payload(e) for e in events if e.kind == self.T.EVENT_KIND_TOOL_CALL]
        results = [H.payload(e) for e in events if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        return end, calls, results

    def node_log(self):
        with open(self.c.nodes["n1"].log_path) as f:
            return f.read()

    def started_pids(self, server):
        text = self.node_log()
        return [int(p) for p in re.findall(
            r"event=mcp\.started server=%s pid=(\d+)" % re.escape(server), text)]

    # -- tests --

    def test_the_model_is_offered_the_servers_and_the_operations_tools(self):
        end, _, _ = self.run_agent(["hi"], model="openai/echo",
                                   mcp_servers=[self.everything(tools=["echo", "get-sum"])],
                                   openapi=[self.shop_api()])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        req = self.fake.stats()["last"]["body"]
        tools = {t["function"]["name"]: t["function"] for t in req["tools"]}
        self.assertEqual(sorted(tools), ["mcp__ev__echo", "mcp__ev__get-sum", "shop__addNote",
                                         "shop__getItem"])
        self.assertIn("message", tools["mcp__ev__echo"]["parameters"]["properties"])
        note = tools["shop__addNote"]["parameters"]
        self.assertEqual(sorted(note["required"]), ["body", "id"])
        self.assertEqual(note["properties"]["body"]["properties"]["author"]["properties"],
                         {"name": {"type": "string"}}, "the $refs are inlined")

    def test_a_stdio_call_returns_the_servers_answer(self):
        end, calls, res = self.run_agent([
            'call mcp__ev__echo {"message": "hello over stdio"}',
            'call mcp__ev__get-sum {"a": 2, "b": 3}'], mcp_servers=[self.everything()])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual([c["name"] for c in calls], ["mcp__ev__echo", "mcp__ev__get-sum"])
        self.assertEqual([r["is_error"] for r in res], [False, False], res)
        self.assertIn("hello over stdio", res[0]["output"])
        self.assertIn("5", res[1]["output"])

    def test_an_http_call_returns_the_servers_answer(self):
        srv = self.T.McpServer(name="web", url=self.http_url)
        end, calls, res = self.run_agent([
            'call mcp__web__echo {"message": "hello over http"}',
            'call mcp__web__echo {"message": "again"}'], mcp_servers=[srv])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual([r["is_error"] for r in res], [False, False], res)
        self.assertIn("hello over http", res[0]["output"])
        self.assertIn("again", res[1]["output"])

    def test_the_filesystem_server_reads_a_file(self):
        fs = self.T.McpServer(name="fs", command=["node", FILESYSTEM, FS_ROOT])
        end, _, res = self.run_agent([
            'call mcp__fs__read_text_file {"path": "%s"}' % os.path.join(FS_ROOT, "hello.txt"),
            'call mcp__fs__read_text_file {"path": "/etc/passwd"}'], mcp_servers=[fs])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual(res[0]["output"], "hello from the file system\n")
        self.assertTrue(res[1]["is_error"], "outside its allowed directories: %r" % res[1])

    def test_a_crashed_stdio_server_is_started_again(self):
        srv = self.everything(name="crashy")
        end, _, res = self.run_agent(['call mcp__crashy__echo {"message": "one"}'],
                                     mcp_servers=[srv])
        self.assertFalse(res[0]["is_error"], res)
        pids = self.started_pids("crashy")
        self.assertEqual(len(pids), 1, pids)
        os.kill(pids[0], signal.SIGKILL)
        H.wait_for(lambda: "pid=%d status=\"was killed by signal 9\"" % pids[0] in
                   self.node_log(), 10, what="the node to see the crash")
        end, _, res = self.run_agent(['call mcp__crashy__echo {"message": "two"}'],
                                     mcp_servers=[srv])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertFalse(res[0]["is_error"], res)
        self.assertIn("two", res[0]["output"])
        again = self.started_pids("crashy")
        self.assertEqual(len(again), 2, again)
        self.assertNotEqual(again[0], again[1])

    def test_a_call_in_flight_when_the_server_dies_is_an_error_result(self):
        srv = self.everything(name="dying")
        s = self.T.AgentSpec(model="mock", max_iterations=10, mcp_servers=[srv])
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=s, input=(
            'call mcp__dying__trigger-long-running-operation {"duration": 30, "steps": 3}')),
            timeout=10).agent_id
        self.c.wait_kind(a, self.T.EVENT_KIND_TOOL_CALL, timeout=60)
        H.wait_for(lambda: self.started_pids("dying"), 10, what="the server to start")
        time.sleep(0.5)  # the call reaches the server
        os.kill(self.started_pids("dying")[0], signal.SIGKILL)
        end = self.c.wait_turn_end(a, timeout=30)
        res = [H.payload(e) for e in self.c.trace(a) if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertTrue(res[0]["is_error"], res)
        self.assertIn("while the call was in flight", res[0]["output"])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL)

    def test_killing_the_agent_cancels_its_call_and_the_server_goes_on(self):
        srv = self.everything(name="slow")
        s = self.T.AgentSpec(model="mock", max_iterations=10, mcp_servers=[srv])
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=s, input=(
            'call mcp__slow__trigger-long-running-operation {"duration": 60, "steps": 2}')),
            timeout=10).agent_id
        self.c.wait_kind(a, self.T.EVENT_KIND_TOOL_CALL, timeout=60)
        t0 = time.monotonic()
        self.c.kill(a, reason="enough")
        self.c.wait_kind(a, self.T.EVENT_KIND_KILLED, timeout=15)
        self.assertLess(time.monotonic() - t0, 10)
        H.wait_for(lambda: "agent=%s epoch=1 outcome=cancelled" % a in self.node_log(), 10,
                   what="the node to drop the cancelled turn")
        pid = self.started_pids("slow")[0]
        self.assertNotIn("event=mcp.exited server=slow pid=%d " % pid, self.node_log(),
                         "the cancel stopped the call, not the server")
        # another agent: its own process (a stdio server serves one agent)
        end, _, res = self.run_agent(['call mcp__slow__echo {"message": "after"}'],
                                     mcp_servers=[srv])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertIn("after", res[0]["output"])
        self.assertEqual(len(self.started_pids("slow")), 2)
        self.assertNotIn("event=mcp.exited server=slow pid=%d " % pid, self.node_log())

    def test_a_permission_rule_denies_an_mcp_tool_by_glob(self):
        rules = [self.T.PermissionRule(tool="mcp__ev__get-*", decision="deny")]
        end, _, res = self.run_agent([
            'call mcp__ev__get-sum {"a": 1, "b": 1}',
            'call mcp__ev__echo {"message": "allowed"}'],
            mcp_servers=[self.everything()], permissions=rules)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertTrue(res[0]["is_error"])
        self.assertIn("permission denied", res[0]["output"])
        self.assertFalse(res[1]["is_error"], res)

    def test_an_openapi_operation_is_called_with_path_query_header_and_body(self):
        api = self.shop_api(headers={"X-Key": "k1"})
        end, calls, res = self.run_agent([
            'call shop__addNote {"id": "a b/c", "tag": ["x", "y"], "X-Trace": "t1", '
            '"body": {"text": "hi", "author": {"name": "ann"}}}',
            'call shop__getItem {"id": "7", "verbose": true}',
            'call shop__getItem {"verbose": true}'], openapi=[api])
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        self.assertEqual(calls[0]["name"], "shop__addNote")
        self.assertFalse(res[0]["is_error"], res)
        self.assertTrue(res[0]["output"].startswith("HTTP 201"), res[0])
        got = json.loads(res[0]["output"].split("\n\n", 1)[1])
        self.assertEqual(got, {"method": "POST", "path": "/api/items/a%20b%2Fc/notes?tag=x&tag=y",
                               "body": {"text": "hi", "author": {"name": "ann"}},
                               "trace": "t1", "key": "k1"})
        got = json.loads(res[1]["output"].split("\n\n", 1)[1])
        self.assertEqual(got["path"], "/api/items/7?verbose=true")
        self.assertTrue(res[2]["is_error"])
        self.assertIn("needs the argument 'id'", res[2]["output"])

    def test_a_spec_file_with_servers_and_a_document_runs_and_shows_them(self):
        with open(os.path.join(FS_ROOT, "shop.yaml"), "w") as f:
            f.write(OPENAPI_YAML)
        path = os.path.join(FS_ROOT, "agent.yaml")
        with open(path, "w") as f:
            f.write("""name: mcp-from-file
model: mock
mcp_servers:
  - name: ev
    command: [node, %s, stdio]
    tools: [echo]
    timeout: 20s
openapi:
  - name: shop
    document_file: shop.yaml
    base_url: http://127.0.0.1:%d/api
    headers: {X-Key: k-secret}
""" % (EVERYTHING, self.shop.server_address[1]))
        r = H.run_cli(["spec", "check", path])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        j = json.loads(r.stdout)
        self.assertEqual(j["mcp_servers"][0]["tools"], ["echo"])
        self.assertEqual(j["mcp_servers"][0]["timeout_ms"], 20000)
        self.assertEqual(j["openapi"][0]["document_bytes"], len(OPENAPI_YAML))
        r = H.run_cli(["spawn", "--spec", path, "--hub", self.c.addr,
                       'call shop__getItem {"id": "9"}; call mcp__ev__echo {"message": "m"}'])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        a = r.stdout.strip()
        end = self.c.wait_turn_end(a, timeout=90)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        res = [H.payload(e) for e in self.c.trace(a) if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertEqual([x["is_error"] for x in res], [False, False], res)
        self.assertIn('"key": "k-secret"', res[0]["output"])
        r = H.run_cli(["get", a, "--hub", self.c.addr])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"mcp_servers: +ev: node \S+ stdio \(tools: echo\) "
                                   r"\(timeout 20000 ms\)")
        self.assertRegex(r.stdout, r"openapi: +shop: \(a document of \d+ bytes\) \(base_url ")
        self.assertNotIn("k-secret", r.stdout, "header values are not shown")

    def test_a_listing_that_fails_ends_the_turn_saying_why(self):
        cases = [(self.everything(name="typo", tools=["echo", "ehco"]),
                  "MCP server 'typo' lists no tool 'ehco'"),
                 # found by the node (direct) or by bwrap inside the sandbox
                 (self.T.McpServer(name="gone", command=["/nonexistent/mcp-server"]),
                  "cannot start '/nonexistent/mcp-server'|execvp /nonexistent/mcp-server"),
                 (self.T.McpServer(name="bad", command=["node"], settings='{"net": "yes"}'),
                  r"spec.mcp_servers\[0\].settings: 'net' must be true or false")]
        for srv, want in cases:
            end, _, _ = self.run_agent(["hi"], mcp_servers=[srv])
            self.assertEqual(end.kind, self.T.EVENT_KIND_ERROR, H.payload(end))
            self.assertRegex(H.payload(end)["message"], want)

    def test_a_bad_server_entry_is_refused_naming_the_field(self):
        bad = self.T.McpServer(name="x", command=["node"], url="http://127.0.0.1:1/mcp")
        spec = self.T.AgentSpec(mcp_servers=[bad])
        with self.assertRaises(H.grpc.RpcError) as cm:
            self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input="hi"), timeout=10)
        self.assertEqual(cm.exception.code(), H.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("spec.mcp_servers[0]", cm.exception.details())


# A stdio MCP server that reports what it can reach: its uid and cwd, whether it can read a path,
# write a file in its cwd, and connect to a TCP port on the host's loopback.
PROBE = os.path.join(FS_ROOT, "probe.py")
PROBE_SERVER = r"""
import json, os, socket, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def probe(a):
    out = {"uid": os.getuid(), "cwd": os.getcwd(), "files": sorted(os.listdir("."))}
    if "read" in a:
        try:
            with open(a["read"]) as f:
                out["read"] = f.read()
        except OSError as e:
            out["read_error"] = e.strerror
    if "write" in a:
        with open(a["write"], "w") as f:
            f.write("from the server")
    if "connect" in a:
        try:
            socket.create_connection(("127.0.0.1", a["connect"]), timeout=5).close()
            out["connected"] = True
        except OSError as e:
            out["connect_error"] = str(e)
    return out
for line in sys.stdin:
    m = json.loads(line)
    meth, i = m.get("method"), m.get("id")
    if meth == "initialize":
        send({"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2025-03-26",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "probe", "version": "1"}}})
    elif meth == "tools/list":
        send({"jsonrpc": "2.0", "id": i, "result": {"tools": [
            {"name": "probe", "inputSchema": {"type": "object"}}]}})
    elif meth == "tools/call":
        text = json.dumps(probe(m["params"].get("arguments") or {}))
        send({"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text", "text": text}]}})
"""


# A stdio MCP server of the test's own, for what the reference servers cannot show: a call that
# is still running when its node dies. The first call of each tool writes MARK.<tool> (the test
# waits for it: the server has the call) and then takes a minute; later calls answer at once.
# slow_read says it is read-only, slow_write says nothing.
SLOW_SERVER = r"""
import json, os, sys, time
MARK = sys.argv[1]
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    m = json.loads(line)
    meth, i = m.get("method"), m.get("id")
    if meth == "initialize":
        send({"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2025-03-26",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "slow", "version": "1"}}})
    elif meth == "tools/list":
        send({"jsonrpc": "2.0", "id": i, "result": {"tools": [
            {"name": "slow_read", "inputSchema": {"type": "object"},
             "annotations": {"readOnlyHint": True}},
            {"name": "slow_write", "inputSchema": {"type": "object"}}]}})
    elif meth == "tools/call":
        name = m["params"]["name"]
        mark = MARK + "." + name
        if not os.path.exists(mark):
            open(mark, "w").close()
            time.sleep(60)
        send({"jsonrpc": "2.0", "id": i, "result": {"content": [
            {"type": "text", "text": name + " done"}]}})
"""


class McpResumeTest(H.ClusterTestCase):
    """A turn whose node dies during an MCP call goes on elsewhere: the call runs again only if
    the server's annotations say it is read-only or idempotent (known once the new node has
    listed the server), else its result is "outcome unknown"."""
    NODES = 2

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="agentry-e2e-mcp-resume-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.script = os.path.join(cls.dir, "slow.py")
        with open(cls.script, "w") as f:
            f.write(SLOW_SERVER)
        cls.addClassCleanup(cls.kill_orphans)
        super().setUpClass()

    @classmethod
    def kill_orphans(cls):
        """The servers of the killed nodes, still in their minute-long call."""
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if cls.script.encode() in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def kill_node_of(self, agent_id):
        call = self.c.wait_kind(agent_id, self.T.EVENT_KIND_TOOL_CALL, timeout=60)
        p = self.c.nodes.pop(call.node_id)
        p.sigkill()
        self.c.retired.append(p)
        self.addCleanup(self.c.add_node, call.node_id)
        return call.node_id

    def check(self, tool, runs_again):
        mark = os.path.join(self.dir, "mark")
        # privileged: the script and its marks are in a temp dir the sandbox does not show
        srv = self.T.McpServer(name="t", command=["/usr/bin/python3", "-u", self.script, mark],
                               settings='{"privileged": true}')
        s = self.T.AgentSpec(model="mock", max_iterations=10, mcp_servers=[srv])
        a = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=s, input="call mcp__t__%s {}" % tool),
                             timeout=10).agent_id
        H.wait_for(lambda: os.path.exists(mark + "." + tool), 60, what="the server to get the call")
        lost = self.kill_node_of(a)
        end = self.c.wait_turn_end(a, timeout=60)
        self.assertEqual(end.kind, self.T.EVENT_KIND_FINAL, H.payload(end))
        events = self.c.trace(a)
        calls = [e for e in events if e.kind == self.T.EVENT_KIND_TOOL_CALL]
        res = [H.payload(e) for e in events if e.kind == self.T.EVENT_KIND_TOOL_RESULT]
        self.assertEqual(len(res), 1, res)
        self.assertNotEqual(end.node_id, lost)
        with open(self.c.nodes[end.node_id].log_path) as f:  # decided once it had listed
            self.assertRegex(f.read(), r"event=run\.resumed agent=%s epoch=\d+ steps=\d+ "
                                       r"iterations=\d+ next=tool_once_listed" % a)
        if runs_again:
            self.assertEqual(len(calls), 2, "the call ran again on the other node")
            self.assertEqual((res[0]["output"], res[0]["is_error"]), (tool + " done", False))
        else:
            self.assertEqual(len(calls), 1, "not run again")
            self.assertTrue(res[0]["is_error"])
            self.assertTrue(res[0]["output"].startswith("outcome unknown"), res[0])

    def test_a_read_only_tool_runs_again_on_another_node(self):
        self.check("slow_read", True)

    def test_another_tool_is_outcome_unknown(self):
        self.check("slow_write", False)


if __name__ == "__main__":
    why = install_servers()
    if why:
        print("SKIP: MCP servers unavailable: %s" % why)
        sys.exit(SKIP)
    H.main()
