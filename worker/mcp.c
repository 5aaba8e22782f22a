/* worker/mcp.c - the MCP client object and the operations the node uses (tools/list,
 * tools/call), over the transport its row names (worker/mcp_stdio.c or worker/mcp_http.c, picked
 * once by wk_mcp_new). See worker/mcp.h for the contract, worker/mcp_rpc.h for the JSON-RPC core
 * the files share and how they stand in layers. */
#include "worker/mcp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/mcp_rpc.h"

/* The object is the connection its transport shares; the operations keep their state per call. */
struct wk_mcp {
    struct wk_mcp_rpc rpc;
};

/* A server that pages forever is cut off here. */
#define MCP_MAX_PAGES 100
#define MCP_MAX_TOOLS 1024

/* --- tool results and listings ------------------------------------------------------------- */

struct text_buf {
    struct ag_strbuf sb;
    bool cut;
};

/* Appends up to WK_MCP_MAX_OUTPUT in all; past it, b->cut and nothing more. */
static void buf_add(struct text_buf *b, const char *s, size_t n)
{
    if (b->cut)
        return;
    if (b->sb.len + n > WK_MCP_MAX_OUTPUT) {
        n = ag_utf8_prefix(s, WK_MCP_MAX_OUTPUT - b->sb.len);
        b->cut = true;
    }
    ag_strbuf_add(&b->sb, s, n);
}

static void buf_addf(struct text_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void buf_addf(struct text_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One content item: text as it is; what a model cannot read here is named, not pasted. */
static void content_item(struct text_buf *b, const cJSON *c)
{
    const char *type = str_item(c, "type");
    const char *text = str_item(c, "text");
    if (type && strcmp(type, "text") == 0 && text) {
        buf_add(b, text, strlen(text));
    } else if (type && (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0)) {
        const char *data = str_item(c, "data");
        buf_addf(b, "[%s content: %s, %zu bytes of base64]", type,
                 str_item(c, "mimeType") ? str_item(c, "mimeType") : "unknown type",
                 data ? strlen(data) : 0);
    } else if (type && strcmp(type, "resource") == 0) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "resource");
        const char *rt = str_item(r, "text");
        if (rt)
            buf_add(b, rt, strlen(rt));
        else
            buf_addf(b, "[resource %.300s: binary]", str_item(r, "uri") ? str_item(r, "uri") : "");
    } else if (type && strcmp(type, "resource_link") == 0) {
        buf_addf(b, "[resource link %.300s%s%.200s]", str_item(c, "uri") ? str_item(c, "uri") : "",
                 str_item(c, "name") ? ": " : "", str_item(c, "name") ? str_item(c, "name") : "");
    } else {
        buf_addf(b, "[content of type '%.40s']", type ? type : "?");
    }
}

char *wk_mcp_call_text(const cJSON *result, bool *is_error)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(result, "isError");
    *is_error = cJSON_IsTrue(e);
    struct text_buf b = {0};
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content");
    const cJSON *c;
    int k = 0;
    cJSON_ArrayForEach(c, content)
    {
        if (k++)
            buf_add(&b, "\n", 1);
        content_item(&b, c);
    }
    /* A result with only structured content (a server of the 2025-06-18 revision) shows it. */
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
    if (k == 0 && sc) {
        char *s = cJSON_PrintUnformatted(sc);
        buf_add(&b, s, strlen(s));
        cJSON_free(s);
    }
    if (b.cut) {
        char note[64];
        int n = snprintf(note, sizeof(note), "\n[output cut at %u bytes]", WK_MCP_MAX_OUTPUT);
        ag_strbuf_add(&b.sb, note, (size_t)n);
    }
    return b.sb.s ? b.sb.s : ag_xstrdup("");
}

void wk_mcp_tools_free(struct wk_mcp_tool *tools, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tools[i].name);
        free(tools[i].description);
        free(tools[i].schema_json);
    }
    free(tools);
}

/* The inputSchema as the model gets it: "$schema" dropped (some model APIs refuse keywords they
 * do not know at the top), "type": "object" ensured. */
static char *schema_text(const cJSON *schema)
{
    cJSON *s = cJSON_IsObject(schema) ? cJSON_Duplicate(schema, true) : cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(s, "$schema");
    if (!cJSON_GetObjectItemCaseSensitive(s, "type"))
        cJSON_AddStringToObject(s, "type", "object");
    if (!cJSON_GetObjectItemCaseSensitive(s, "properties"))
        cJSON_AddObjectToObject(s, "properties");
    char *t = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    char *out = ag_xstrdup(t);
    cJSON_free(t);
    return out;
}

int wk_mcp_list_page(const cJSON *result, struct wk_mcp_tool **tools, size_t *n, size_t *cap,
                     char **cursor, struct ag_err *err)
{
    *cursor = NULL;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(result, "tools");
    if (!cJSON_IsArray(list))
        return ag_err_set(err, AG_UNKNOWN, "tools/list answered without a tools array");
    const cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        const char *name = str_item(t, "name");
        if (!name || !*name || *n >= MCP_MAX_TOOLS)
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *tools = ag_xrealloc(*tools, *cap * sizeof(**tools));
        }
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(t, "annotations");
        const char *desc = str_item(t, "description") ? str_item(t, "description")
                                                      : str_item(t, "title");
        (*tools)[(*n)++] = (struct wk_mcp_tool){
            .name = ag_xstrdup(name),
            .description = ag_xstrdup(desc ? desc : ""),
            .schema_json = schema_text(cJSON_GetObjectItemCaseSensitive(t, "inputSchema")),
            .idempotent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ann, "readOnlyHint")) ||
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ann, "idempotentHint")),
        };
    }
    const char *next = str_item(result, "nextCursor");
    if (next && *next)
        *cursor = ag_xstrdup(next);
    return 0;
}

/* --- requests ------------------------------------------------------------------------------ */

static int submit(struct wk_mcp *m, struct wk_mcp_rpc_req *r, struct ag_err *err)
{
    int rc = m->rpc.transport->submit(&m->rpc, r, err);
    if (rc != 0) {
        free(r->line);
        free(r);
    }
    return rc;
}

/* The call's deadline: the server's timeout from now, or the caller's if sooner. */
static int64_t deadline_for(const struct wk_mcp *m, int64_t caller)
{
    int64_t d = ag_now_mono_ms() + m->rpc.timeout_ms;
    return caller && caller < d ? caller : d;
}

/* --- tools/list ---------------------------------------------------------------------------- */

struct list_op {
    struct wk_mcp *m;
    int64_t deadline_ms;
    wk_mcp_list_fn *done;
    void *arg;
    struct wk_mcp_tool *tools;
    size_t n, cap;
    int pages;
};

/* err: why it failed, NULL if it listed. A transport's error names the server already; the
 * server's own answer (a JSON-RPC error, a malformed result) does not. */
static void list_end(struct list_op *op, const struct ag_err *err)
{
    if (err) {
        struct ag_err e = *err;
        if (strncmp(e.msg, "MCP server '", 12) != 0)
            ag_err_prefix(&e, "MCP server '%s': tools/list", op->m->rpc.name);
        wk_mcp_tools_free(op->tools, op->n);
        op->done(op->arg, NULL, 0, &e);
    } else {
        op->done(op->arg, op->tools, op->n, NULL);
    }
    free(op);
}

static int list_next(struct list_op *op, const char *cursor, struct ag_err *err);

static void on_list_page(void *arg, cJSON *msg, const struct ag_err *err)
{
    struct list_op *op = arg;
    struct ag_err e = AG_ERR_INIT;
    cJSON *result = msg ? wk_mcp_rpc_result(msg, &e) : NULL;
    cJSON_Delete(msg);
    char *cursor = NULL;
    if (!result) {
        list_end(op, err ? err : &e);
    } else if (wk_mcp_list_page(result, &op->tools, &op->n, &op->cap, &cursor, &e) != 0) {
        list_end(op, &e);
    } else if (!cursor || ++op->pages >= MCP_MAX_PAGES) {
        list_end(op, NULL);
    } else if (list_next(op, cursor, &e) != 0) {
        list_end(op, &e);
    }
    free(cursor);
    cJSON_Delete(result);
}

static int list_next(struct list_op *op, const char *cursor, struct ag_err *err)
{
    cJSON *params = NULL;
    if (cursor) {
        params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "cursor", cursor);
    }
    struct wk_mcp_rpc_req *r = wk_mcp_rpc_req_new(&op->m->rpc, "tools/list", params, false,
                                                  op->deadline_ms, NULL, on_list_page, op);
    return submit(op->m, r, err);
}

int wk_mcp_list(struct wk_mcp *m, int64_t deadline_ms, wk_mcp_list_fn *done, void *arg,
                struct ag_err *err)
{
    struct list_op *op = ag_xcalloc(1, sizeof(*op));
    *op = (struct list_op){
        .m = m, .deadline_ms = deadline_for(m, deadline_ms), .done = done, .arg = arg};
    if (list_next(op, NULL, err) != 0) {
        free(op);
        return -1;
    }
    return 0;
}

/* --- tools/call ---------------------------------------------------------------------------- */

struct call_op {
    struct wk_mcp *m;
    char *tool; /* owned */
    wk_tool_done_fn *done;
    void *arg;
};

static void on_call(void *arg, cJSON *msg, const struct ag_err *err)
{
    struct call_op *op = arg;
    struct ag_err e = AG_ERR_INIT;
    cJSON *result = msg ? wk_mcp_rpc_result(msg, &e) : NULL;
    cJSON_Delete(msg);
    if (!result) {
        const struct ag_err *why = err ? err : &e;
        op->done(
            op->arg,
            why->code == AG_CANCELLED ? ag_xasprintf("tool '%s' of MCP server '%s' was cancelled",
                                                     op->tool, op->m->rpc.name)
            : why->code == AG_DEADLINE_EXCEEDED
                ? ag_xasprintf("tool '%s' of MCP server '%s' timed out", op->tool, op->m->rpc.name)
                : ag_xasprintf("tool '%s' of MCP server '%s' failed: %s", op->tool, op->m->rpc.name,
                               why->msg),
            true);
    } else {
        bool is_error;
        char *text = wk_mcp_call_text(result, &is_error);
        cJSON_Delete(result);
        op->done(op->arg, text, is_error);
    }
    free(op->tool);
    free(op);
}

int wk_mcp_call(struct wk_mcp *m, const char *tool, const char *args_json,
                const struct wk_call_ctx *ctx, wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    cJSON *args = cJSON_Parse(args_json && *args_json ? args_json : "{}");
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        args = cJSON_CreateObject(); /* the server says what it misses */
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", tool);
    cJSON_AddItemToObject(params, "arguments", args);
    struct call_op *op = ag_xcalloc(1, sizeof(*op));
    *op = (struct call_op){.m = m, .tool = ag_xstrdup(tool), .done = done, .arg = arg};
    struct wk_mcp_rpc_req *r = wk_mcp_rpc_req_new(&m->rpc, "tools/call", params, false,
                                                  deadline_for(m, ctx ? ctx->deadline_ms : 0),
                                                  ctx ? ctx->cancel : NULL, on_call, op);
    if (submit(m, r, err) != 0) {
        free(op->tool);
        free(op);
        return -1;
    }
    return 0;
}

/* --- the object ---------------------------------------------------------------------------- */

static char **strv_dup(char **v, size_t n)
{
    char **out = ag_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = ag_xstrdup(v[i] ? v[i] : "");
    return out;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Privileged: PATH and HOME as the node has them (a server found on the node's PATH runs).
 * Sandboxed: the sandbox's PATH, HOME its workspace (the node's paths mean nothing inside).
 * Then the spec's variables, which may override them. */
static char **stdio_env(const Agentry__V1__McpServer *srv, const struct wk_mcp_rpc *c)
{
    char **env = ag_xcalloc(srv->n_env + 3, sizeof(*env));
    size_t k = 0;
    const char *path = c->privileged ? getenv("PATH") : NULL;
    const char *home = c->privileged ? getenv("HOME")
                       : c->cwd      ? wk_sandbox_workdir(c->sandbox, false, c->cwd)
                                     : NULL;
    env[k++] = ag_xasprintf("PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
    if (home)
        env[k++] = ag_xasprintf("HOME=%s", home);
    for (size_t i = 0; i < srv->n_env; i++)
        env[k++] = ag_xasprintf("%s=%s", srv->env[i]->key, srv->env[i]->value);
    return env;
}

static char **ro_paths_dup(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n ? strv_dup((char **)v, n) : NULL;
}

struct wk_mcp *wk_mcp_new(const Agentry__V1__McpServer *srv, const char *cwd, struct wk_http *http,
                          const struct wk_mcp_exec *exec)
{
    struct wk_mcp *m = ag_xcalloc(1, sizeof(*m));
    struct wk_mcp_rpc *c = &m->rpc;
    c->name = ag_xstrdup(srv->name ? srv->name : "");
    c->cwd = cwd && *cwd ? ag_xstrdup(cwd) : NULL;
    c->sandbox = exec ? exec->sandbox : NULL;
    c->privileged = !exec || exec->privileged;
    c->net = exec && exec->net;
    c->limits = exec ? exec->limits : wk_sandbox_limits_server();
    c->ro_paths = ro_paths_dup(exec ? exec->ro_paths : NULL);
    if (srv->url && *srv->url) {
        c->url = ag_xstrdup(srv->url);
        c->headers = ag_xcalloc(srv->n_headers + 1, sizeof(*c->headers));
        for (size_t i = 0; i < srv->n_headers; i++)
            c->headers[c->nheaders++] = ag_xasprintf("%s: %s", srv->headers[i]->key,
                                                     srv->headers[i]->value);
    } else {
        c->argv = strv_dup(srv->command, srv->n_command);
        c->envp = stdio_env(srv, c);
    }
    c->transport = c->url ? &wk_mcp_http_transport : &wk_mcp_stdio_transport;
    c->timeout_ms = srv->timeout_ms ? srv->timeout_ms : WK_MCP_DEFAULT_TIMEOUT_MS;
    c->http = http;
    atomic_init(&c->next_id, 1);
    pthread_mutex_init(&c->mu, NULL);
    c->incoming_tail = &c->incoming;
    c->hwait_tail = &c->hwait;
    c->wake_fd = -1;
    return m;
}

const char *wk_mcp_name(const struct wk_mcp *m)
{
    return m->rpc.name;
}

void wk_mcp_stop(struct wk_mcp *m)
{
    m->rpc.transport->stop(&m->rpc);
}

void wk_mcp_free(struct wk_mcp *m)
{
    if (!m)
        return;
    wk_mcp_stop(m);
    struct wk_mcp_rpc *c = &m->rpc;
    free(c->name);
    strv_free(c->argv);
    strv_free(c->envp);
    free(c->cwd);
    strv_free(c->ro_paths);
    free(c->url);
    for (size_t i = 0; i < c->nheaders; i++)
        free(c->headers[i]);
    free(c->headers);
    free(c->session);
    free(c->protocol);
    pthread_mutex_destroy(&c->mu);
    free(m);
}
