/* tests/unit/test-wk-mcp.c - the MCP client (worker/mcp*.c): its JSON-RPC framing, result and
 * listing conversion, and both transports against scripted servers (short Python programs
 * written by the test). stdio: initialize, a server's own request (ping) answered, paged
 * tools/list, tools/call with text and isError, a crash in flight (an error result, then a
 * restart), a timeout and a cancel. Streamable HTTP: the session id and protocol version sent
 * back, an event-stream answer read without waiting for the stream's end, a JSON answer, and an
 * expired session initialized again. Also the tool names the node derives (worker/tool_ext.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/timers.h"
#include "tool_call.h"
#include "worker/cancel.h"
#include "worker/http.h"
#include "worker/mcp.h"
#include "worker/mcp_rpc.h"
#include "worker/tool_ext.h"

/* --- framing ------------------------------------------------------------------------------- */

static void test_frame(void **state)
{
    (void)state;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "cursor", "c\n2");
    size_t len;
    char *line = wk_mcp_rpc_frame(7, "tools/list", p, &len);
    assert_string_equal(line, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{"
                              "\"cursor\":\"c\\n2\"}}\n");
    assert_int_equal(len, strlen(line));
    assert_null(memchr(line, '\n', len - 1)); /* one message, one line */
    free(line);
    line = wk_mcp_rpc_frame(-1, "notifications/initialized", NULL, &len);
    assert_string_equal(line, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
    free(line);
}

static void parse_ok(const char *text, enum wk_mcp_rpc_kind kind, int64_t id, const char *method)
{
    cJSON *msg;
    enum wk_mcp_rpc_kind k;
    int64_t i;
    const char *m;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_mcp_rpc_parse(text, strlen(text), &msg, &k, &i, &m, &err), 0);
    assert_int_equal(k, kind);
    assert_int_equal(i, id);
    if (method)
        assert_string_equal(m, method);
    else
        assert_null(m);
    cJSON_Delete(msg);
}

static void parse_bad(const char *text)
{
    cJSON *msg = NULL;
    enum wk_mcp_rpc_kind k;
    int64_t i;
    const char *m;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_mcp_rpc_parse(text, strlen(text), &msg, &k, &i, &m, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_null(msg);
}

static void test_parse(void **state)
{
    (void)state;
    parse_ok("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", WK_MCP_RPC_RESPONSE, 3, NULL);
    parse_ok("{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-1,\"message\":\"x\"}}",
             WK_MCP_RPC_RESPONSE, 4, NULL);
    parse_ok("{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"ping\"}", WK_MCP_RPC_REQUEST, -1,
             "ping");
    parse_ok("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"roots/list\"}", WK_MCP_RPC_REQUEST, 9,
             "roots/list");
    parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}",
             WK_MCP_RPC_NOTIFICATION, -1, "notifications/progress");
    parse_bad("[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]"); /* a batch */
    parse_bad("{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}");
    parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}");
    parse_bad("{\"jsonrpc\":\"2.0\",\"result\":{}}");
    parse_bad("not json");
}

static void test_result(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    cJSON *msg = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,"
                             "\"message\":\"Unknown tool: nope\"}}");
    assert_null(wk_mcp_rpc_result(msg, &err));
    assert_string_equal(err.msg, "MCP error -32602: Unknown tool: nope");
    cJSON_Delete(msg);
    msg = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1}}");
    cJSON *r = wk_mcp_rpc_result(msg, &err);
    assert_non_null(cJSON_GetObjectItem(r, "a"));
    cJSON_Delete(r);
    cJSON_Delete(msg);
}

static void call_text_is(const char *result_json, const char *want, bool want_error)
{
    cJSON *r = cJSON_Parse(result_json);
    bool is_error = !want_error;
    char *t = wk_mcp_call_text(r, &is_error);
    assert_string_equal(t, want);
    assert_int_equal(is_error, want_error);
    free(t);
    cJSON_Delete(r);
}

static void test_call_text(void **state)
{
    (void)state;
    call_text_is("{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":"
                 "\"b\"}]}",
                 "a\nb", false);
    call_text_is("{\"content\":[{\"type\":\"text\",\"text\":\"no such file\"}],\"isError\":true}",
                 "no such file", true);
    call_text_is("{\"content\":[{\"type\":\"image\",\"data\":\"AAAA\",\"mimeType\":\"image/png\"},"
                 "{\"type\":\"resource\",\"resource\":{\"uri\":\"file:///x\",\"text\":\"body\"}},"
                 "{\"type\":\"resource_link\",\"uri\":\"file:///y\",\"name\":\"y\"}]}",
                 "[image content: image/png, 4 bytes of base64]\nbody\n[resource link "
                 "file:///y: y]",
                 false);
    call_text_is("{\"content\":[],\"structuredContent\":{\"n\":1}}", "{\"n\":1}", false);
    /* Past WK_MCP_MAX_OUTPUT the text is cut, saying so. */
    size_t n = WK_MCP_MAX_OUTPUT + 100;
    char *big = malloc(n + 64);
    memcpy(big, "{\"content\":[{\"type\":\"text\",\"text\":\"", 35);
    memset(big + 35, 'x', n);
    strcpy(big + 35 + n, "\"}]}");
    cJSON *r = cJSON_Parse(big);
    bool is_error;
    char *t = wk_mcp_call_text(r, &is_error);
    assert_non_null(strstr(t, "[output cut at"));
    assert_true(strlen(t) < WK_MCP_MAX_OUTPUT + 100);
    free(t);
    cJSON_Delete(r);
    free(big);
}

static void test_list_page(void **state)
{
    (void)state;
    cJSON *r = cJSON_Parse(
        "{\"tools\":[{\"name\":\"read\",\"description\":\"Reads.\",\"inputSchema\":{\"$schema\":"
        "\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\",\"properties\":{\"p\":{"
        "\"type\":\"string\"}}},\"annotations\":{\"readOnlyHint\":true}},{\"name\":\"put\","
        "\"inputSchema\":{\"type\":\"object\"},\"annotations\":{\"idempotentHint\":true}},{"
        "\"name\":\"rm\",\"title\":\"Remove\"},{\"description\":\"no name: skipped\"}],"
        "\"nextCursor\":\"p2\"}");
    struct wk_mcp_tool *tools = NULL;
    size_t n = 0, cap = 0;
    char *cursor;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_mcp_list_page(r, &tools, &n, &cap, &cursor, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(cursor, "p2");
    assert_string_equal(tools[0].schema_json,
                        "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\"}}}");
    assert_true(tools[0].idempotent);
    assert_true(tools[1].idempotent);
    assert_string_equal(tools[1].schema_json, "{\"type\":\"object\",\"properties\":{}}");
    assert_false(tools[2].idempotent);
    assert_string_equal(tools[2].description, "Remove");
    free(cursor);
    wk_mcp_tools_free(tools, n);
    cJSON_Delete(r);
    r = cJSON_Parse("{\"nope\":[]}");
    tools = NULL;
    n = cap = 0;
    assert_int_equal(wk_mcp_list_page(r, &tools, &n, &cap, &cursor, &err), -1);
    cJSON_Delete(r);
}

static void test_tool_names(void **state)
{
    (void)state;
    char *s = wk_tool_ext_name("mcp", "fs", "read_file");
    assert_string_equal(s, "mcp__fs__read_file");
    free(s);
    s = wk_tool_ext_name("shop", "getItem", NULL);
    assert_string_equal(s, "shop__getItem");
    free(s);
    /* A character a model API refuses: replaced, and a hash keeps "a.b" apart from "a_b". */
    char *dot = wk_tool_ext_name("mcp", "fs", "a.b");
    char *under = wk_tool_ext_name("mcp", "fs", "a_b");
    assert_int_equal(strncmp(dot, "mcp__fs__a_b_", 13), 0);
    assert_int_equal(strlen(dot), 13 + 8);
    assert_string_equal(under, "mcp__fs__a_b");
    free(under);
    char *again = wk_tool_ext_name("mcp", "fs", "a.b");
    assert_string_equal(dot, again); /* stable */
    free(again);
    free(dot);
    /* Too long: cut to 64 with the hash. */
    char longname[100];
    memset(longname, 'x', 80);
    longname[80] = '\0';
    s = wk_tool_ext_name("mcp", "srv", longname);
    assert_int_equal(strlen(s), WK_TOOL_EXT_NAME_MAX);
    assert_int_equal(strncmp(s, "mcp__srv__xxx", 13), 0);
    assert_int_equal(s[WK_TOOL_EXT_NAME_MAX - 9], '_');
    free(s);
}

/* --- stdio against a scripted server -------------------------------------------------------- */

/* A stdio MCP server: answers initialize (checking the client's protocol version), pings the
 * client before the first tools/list page (and checks the pong), pages tools/list, and for
 * tools/call: "echo" answers its text, "fail" isError, "crash" exits 3 without answering,
 * "slow" never answers. Writes a line to stderr at start. */
static const char server_py[] =
    "import json, sys\n"
    "sys.stderr.write('fake server up\\n'); sys.stderr.flush()\n"
    "def send(m):\n"
    "    sys.stdout.write(json.dumps(m) + '\\n'); sys.stdout.flush()\n"
    "for line in sys.stdin:\n"
    "    m = json.loads(line)\n"
    "    meth, i = m.get('method'), m.get('id')\n"
    "    if meth == 'initialize':\n"
    "        ok = m['params']['protocolVersion'] == '" WK_MCP_RPC_PROTOCOL "'\n"
    "        send({'jsonrpc': '2.0', 'id': i, 'result': {'protocolVersion': '" WK_MCP_RPC_PROTOCOL
    "', 'capabilities': {'tools': {}}, 'serverInfo': {'name': 'fake', 'version': '1'}}}"
    " if ok else {'jsonrpc': '2.0', 'id': i, 'error': {'code': -32602, 'message': 'version'}})\n"
    "    elif meth == 'tools/list':\n"
    "        cur = (m.get('params') or {}).get('cursor')\n"
    "        if cur is None:\n"
    "            send({'jsonrpc': '2.0', 'id': 's1', 'method': 'ping'})\n"
    "            pong = json.loads(sys.stdin.readline())\n"
    "            assert pong.get('id') == 's1' and pong.get('result') == {}, pong\n"
    "            send({'jsonrpc': '2.0', 'method': 'notifications/message', 'params': {}})\n"
    "            send({'jsonrpc': '2.0', 'id': i, 'result': {'tools': [{'name': 'echo', "
    "'inputSchema': {'type': 'object'}}], 'nextCursor': 'p2'}})\n"
    "        else:\n"
    "            send({'jsonrpc': '2.0', 'id': i, 'result': {'tools': [{'name': 'fail'}, "
    "{'name': 'crash'}]}})\n"
    "    elif meth == 'tools/call':\n"
    "        n, a = m['params']['name'], m['params']['arguments']\n"
    "        if n == 'echo':\n"
    "            send({'jsonrpc': '2.0', 'id': i, 'result': {'content': [{'type': 'text', "
    "'text': 'echo: ' + a.get('text', '')}]}})\n"
    "        elif n == 'fail':\n"
    "            send({'jsonrpc': '2.0', 'id': i, 'result': {'content': [{'type': 'text', "
    "'text': 'it failed'}], 'isError': True}})\n"
    "        elif n == 'crash':\n"
    "            sys.exit(3)\n";

struct fix {
    char path[64];
    struct ag_timers *timers;
    struct wk_mcp *m;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/test-wk-mcp-%d.py", (int)getpid());
    FILE *fp = fopen(f->path, "w");
    if (!fp)
        return -1;
    fputs(server_py, fp);
    fclose(fp);
    f->timers = ag_timers_new(NULL);
    char *argv[] = {"/usr/bin/python3", "-u", f->path};
    Agentry__V1__McpServer srv = AGENTRY__V1__MCP_SERVER__INIT;
    srv.name = "fake";
    srv.command = argv;
    srv.n_command = 3;
    srv.timeout_ms = 5000;
    f->m = wk_mcp_new(&srv, "/tmp", NULL, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    wk_mcp_free(f->m);
    ag_timers_free(f->timers);
    unlink(f->path);
    free(f);
    return 0;
}

struct list_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct wk_mcp_tool *tools;
    size_t n;
    struct ag_err err;
};

static void on_list(void *arg, struct wk_mcp_tool *tools, size_t n, const struct ag_err *err)
{
    struct list_result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->tools = tools;
    r->n = n;
    if (err)
        r->err = *err;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void list_all(struct fix *f, struct list_result *r)
{
    *r = (struct list_result){.done = false};
    pthread_mutex_init(&r->mu, NULL);
    ag_cond_init_mono(&r->cv);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_mcp_list(f->m, 0, on_list, r, &err), 0);
    int64_t deadline = ag_now_mono_ns() + 10 * 1000000000LL;
    pthread_mutex_lock(&r->mu);
    while (!r->done && ag_cond_wait_until(&r->cv, &r->mu, deadline))
        ;
    pthread_mutex_unlock(&r->mu);
    assert_true(r->done);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* The server's tools as a run sees a tool: a row whose run() is the MCP call. */
static struct wk_mcp *current;

static int mcp_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args,
                   wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    return wk_mcp_call(current, t->name, args, ctx, done, arg, err);
}

/* Call tool with args on f's server; the output (owned) and its is_error. */
static char *call(struct fix *f, const char *tool, const char *args, struct wk_cancel *cancel,
                  int64_t deadline_ms, bool *is_error)
{
    struct wk_call_ctx ctx = {.timers = f->timers, .cancel = cancel, .deadline_ms = deadline_ms};
    struct wk_tool t = {.name = tool, .run = mcp_run};
    struct tool_call_result r;
    tool_call_result_init(&r);
    struct ag_err err = AG_ERR_INIT;
    current = f->m;
    assert_int_equal(tool_call_start(&t, &ctx, args, &r, &err), 0);
    return tool_call_finish(&r, 10, is_error);
}

static void test_stdio_list_and_call(void **state)
{
    struct fix *f = *state;
    struct list_result r;
    list_all(f, &r);
    assert_int_equal(r.err.code, AG_OK);
    assert_int_equal(r.n, 3); /* two pages */
    assert_string_equal(r.tools[0].name, "echo");
    assert_string_equal(r.tools[2].name, "crash");
    wk_mcp_tools_free(r.tools, r.n);
    bool is_error;
    char *out = call(f, "echo", "{\"text\":\"hi\"}", NULL, 0, &is_error);
    assert_string_equal(out, "echo: hi");
    assert_false(is_error);
    free(out);
    out = call(f, "fail", "{}", NULL, 0, &is_error);
    assert_string_equal(out, "it failed");
    assert_true(is_error);
    free(out);
}

static void test_stdio_crash_then_restart(void **state)
{
    struct fix *f = *state;
    bool is_error;
    char *out = call(f, "echo", "{\"text\":\"one\"}", NULL, 0, &is_error);
    free(out);
    out = call(f, "crash", "{}", NULL, 0, &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "exited with status 3 while the call was in flight"));
    free(out);
    out = call(f, "echo", "{\"text\":\"two\"}", NULL, 0, &is_error); /* started again */
    assert_false(is_error);
    assert_string_equal(out, "echo: two");
    free(out);
}

static void test_stdio_timeout_and_cancel(void **state)
{
    struct fix *f = *state;
    bool is_error;
    char *out = call(f, "slow", "{}", NULL, ag_now_mono_ms() + 300, &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "timed out"));
    free(out);
    struct wk_cancel c;
    wk_cancel_init(&c);
    struct wk_call_ctx ctx = {.timers = f->timers, .cancel = &c};
    struct wk_tool t = {.name = "slow", .run = mcp_run};
    struct tool_call_result r;
    tool_call_result_init(&r);
    struct ag_err err = AG_ERR_INIT;
    current = f->m;
    assert_int_equal(tool_call_start(&t, &ctx, "{}", &r, &err), 0);
    wk_cancel_request(&c);
    out = tool_call_finish(&r, 10, &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "cancelled"));
    free(out);
    wk_cancel_release(&c);
    /* The server is still fine for the next call. */
    out = call(f, "echo", "{\"text\":\"still\"}", NULL, 0, &is_error);
    assert_string_equal(out, "echo: still");
    free(out);
}

static void test_stdio_cannot_start(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/mcp-server"};
    Agentry__V1__McpServer srv = AGENTRY__V1__MCP_SERVER__INIT;
    srv.name = "missing";
    srv.command = argv;
    srv.n_command = 1;
    struct wk_mcp *m = wk_mcp_new(&srv, NULL, NULL, NULL);
    struct list_result r;
    struct fix f = {.m = m};
    list_all(&f, &r);
    assert_int_equal(r.err.code, AG_UNAVAILABLE);
    assert_non_null(strstr(r.err.msg, "cannot start '/nonexistent/mcp-server'"));
    wk_mcp_free(m);
}

/* --- streamable HTTP against a scripted server ---------------------------------------------- */

/* An MCP endpoint at POST /mcp: initialize gives a new Mcp-Session-Id; any other message needs a
 * session it knows (404 otherwise) and the agreed MCP-Protocol-Version (400). tools/list answers
 * as an event stream (a notification first) and then keeps the connection open for 5 s;
 * tools/call answers a JSON body: "echo" its text and how many times initialize came, "expire"
 * forgets every session. Writes its port to argv[1] once it listens. */
static const char http_server_py[] =
    "import http.server, json, sys, time, uuid\n"
    "sessions, inits = set(), [0]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def whole(self, status, obj, extra=()):\n"
    "        body = json.dumps(obj).encode() if obj is not None else b''\n"
    "        self.send_response(status)\n"
    "        for k, v in extra: self.send_header(k, v)\n"
    "        if obj is not None: self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def do_POST(self):\n"
    "        m = json.loads(self.rfile.read(int(self.headers['Content-Length'])))\n"
    "        meth, i = m.get('method'), m.get('id')\n"
    "        if meth == 'initialize':\n"
    "            inits[0] += 1; s = uuid.uuid4().hex; sessions.add(s)\n"
    "            return self.whole(200, {'jsonrpc': '2.0', 'id': i, 'result': {'protocolVersion': "
    "'" WK_MCP_RPC_PROTOCOL "', 'capabilities': {}, 'serverInfo': {'name': 'h', 'version': '1'}}}, "
    "[('Mcp-Session-Id', s)])\n"
    "        if self.headers.get('Mcp-Session-Id') not in sessions:\n"
    "            return self.whole(404, {'jsonrpc': '2.0', 'id': None, 'error': {'code': -32001, "
    "'message': 'Session not found'}})\n"
    "        if self.headers.get('MCP-Protocol-Version') != '" WK_MCP_RPC_PROTOCOL "':\n"
    "            return self.whole(400, None)\n"
    "        if i is None:\n"
    "            return self.whole(202, None)\n"
    "        if meth == 'tools/list':\n"
    "            self.send_response(200)\n"
    "            self.send_header('Content-Type', 'text/event-stream')\n"
    "            self.send_header('Connection', 'close')\n"
    "            self.end_headers()\n"
    "            note = {'jsonrpc': '2.0', 'method': 'notifications/message', 'params': {}}\n"
    "            res = {'jsonrpc': '2.0', 'id': i, 'result': {'tools': [{'name': 'echo'}]}}\n"
    "            self.wfile.write(('event: message\\ndata: ' + json.dumps(note) + '\\n\\n').encode())\n"
    "            self.wfile.write(('data: ' + json.dumps(res) + '\\r\\n\\r\\n').encode())\n"
    "            self.wfile.flush(); time.sleep(5); return\n"
    "        a = m['params']['arguments']\n"
    "        if m['params']['name'] == 'expire': sessions.clear()\n"
    "        text = 'echo: %s (inits %d)' % (a.get('text', ''), inits[0])\n"
    "        self.whole(200, {'jsonrpc': '2.0', 'id': i, 'result': {'content': [{'type': 'text', "
    "'text': text}]}})\n"
    "srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(srv.server_address[1]))\n"
    "import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "srv.serve_forever()\n";

struct http_fix {
    char script[64], portfile[64];
    pid_t pid;
    struct wk_http *http;
    struct ag_timers *timers;
    struct wk_mcp *m;
};

static int http_setup(void **state)
{
    struct http_fix *f = calloc(1, sizeof(*f));
    snprintf(f->script, sizeof(f->script), "/tmp/test-wk-mcp-http-%d.py", (int)getpid());
    snprintf(f->portfile, sizeof(f->portfile), "/tmp/test-wk-mcp-http-%d.port", (int)getpid());
    FILE *fp = fopen(f->script, "w");
    if (!fp)
        return -1;
    fputs(http_server_py, fp);
    fclose(fp);
    unlink(f->portfile);
    f->pid = fork();
    if (f->pid == 0) {
        execl("/usr/bin/python3", "python3", f->script, f->portfile, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 400 && !port; i++) {
        fp = fopen(f->portfile, "r");
        if (!fp || fscanf(fp, "%d", &port) != 1)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        if (fp)
            fclose(fp);
    }
    if (!port)
        return -1;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", port);
    Agentry__V1__McpServer srv = AGENTRY__V1__MCP_SERVER__INIT;
    srv.name = "web";
    srv.url = url;
    f->http = wk_http_new(NULL);
    f->timers = ag_timers_new(NULL);
    f->m = wk_mcp_new(&srv, NULL, f->http, NULL);
    *state = f;
    return 0;
}

static int http_teardown(void **state)
{
    struct http_fix *f = *state;
    wk_mcp_stop(f->m);
    wk_http_free(f->http); /* ends what is in flight before the client's memory goes */
    wk_mcp_free(f->m);
    ag_timers_free(f->timers);
    kill(f->pid, SIGTERM);
    waitpid(f->pid, NULL, 0);
    unlink(f->script);
    unlink(f->portfile);
    free(f);
    return 0;
}

static void test_http_list_call_and_expired_session(void **state)
{
    struct http_fix *f = *state;
    /* The event stream's answer ends the read: the 5 s the server keeps it open are not waited. */
    int64_t t0 = ag_now_mono_ms();
    struct list_result r;
    struct fix lf = {.m = f->m};
    list_all(&lf, &r);
    assert_int_equal(r.err.code, AG_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.tools[0].name, "echo");
    wk_mcp_tools_free(r.tools, r.n);
    assert_true(ag_now_mono_ms() - t0 < 3000);
    struct fix cf = {.m = f->m, .timers = f->timers};
    bool is_error;
    char *out = call(&cf, "echo", "{\"text\":\"hi\"}", NULL, 0, &is_error);
    assert_string_equal(out, "echo: hi (inits 1)");
    assert_false(is_error);
    free(out);
    /* The server forgets its sessions: the next call's 404 brings a new initialize, then the
     * call again, once. */
    out = call(&cf, "expire", "{}", NULL, 0, &is_error);
    free(out);
    out = call(&cf, "echo", "{\"text\":\"again\"}", NULL, 0, &is_error);
    assert_string_equal(out, "echo: again (inits 2)");
    assert_false(is_error);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_result),
        cmocka_unit_test(test_call_text),
        cmocka_unit_test(test_list_page),
        cmocka_unit_test(test_tool_names),
        cmocka_unit_test_setup_teardown(test_stdio_list_and_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_crash_then_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_timeout_and_cancel, setup, teardown),
        cmocka_unit_test(test_stdio_cannot_start),
        cmocka_unit_test_setup_teardown(test_http_list_call_and_expired_session, http_setup,
                                        http_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
