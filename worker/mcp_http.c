/* worker/mcp_http.c - the MCP streamable HTTP transport: each message one POST on the node's
 * HTTP client (worker/http.h). worker/mcp.c reaches it through its row, wk_mcp_http_transport
 * (worker/mcp_rpc.h).
 *
 * Owns: the session (state, Mcp-Session-Id, the protocol version agreed on) and the requests
 * waiting for it to be initialized. The first request starts initialize; requests made meanwhile
 * wait (hwait) and go once notifications/initialized was posted. An answer comes as a JSON body
 * or as an event stream, read as it arrives (worker/sse.h): the event answering the request ends
 * the read, so a server that keeps the stream open does not hold the call. A 404 for a session
 * means it expired: the session is dropped and the request goes again once, after a new
 * initialize.
 *
 * Threads: submit from any thread; the callbacks run on the HTTP thread. The session state is
 * under wk_mcp_rpc.mu; a request's own answer state belongs to the HTTP thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/http.h"
#include "worker/mcp_rpc.h"
#include "worker/sse.h"

#define HTTP_MAX_HEADERS 40

static int start(struct wk_mcp_rpc *m, struct wk_mcp_rpc_req *r, struct ag_err *err);
static int begin_init(struct wk_mcp_rpc *m, struct ag_err *err);
static void flush_waiting(struct wk_mcp_rpc *m, const struct ag_err *why);

/* An answer is found (sse's callback or a JSON body): it is the response with r's id. */
static int on_event(void *arg, const char *event, const char *data, size_t len, struct ag_err *err)
{
    struct wk_mcp_rpc_req *r = arg;
    (void)event;
    (void)err;
    cJSON *msg;
    enum wk_mcp_rpc_kind kind;
    int64_t id;
    const char *method;
    struct ag_err bad = AG_ERR_INIT;
    if (wk_mcp_rpc_parse(data, len, &msg, &kind, &id, &method, &bad) != 0)
        return 0; /* not ours to judge: a server may stream other events */
    if (kind == WK_MCP_RPC_RESPONSE && id == r->id) {
        r->got = msg;
        return 1;
    }
    cJSON_Delete(msg); /* notifications (progress, logs) and server requests: not supported */
    return 0;
}

static void keep_session(struct wk_mcp_rpc *m, const struct wk_http_resp *resp)
{
    const char *sid = wk_http_resp_header(resp, "Mcp-Session-Id");
    if (!sid || !*sid)
        return;
    pthread_mutex_lock(&m->mu);
    if (!m->session || strcmp(m->session, sid) != 0) {
        free(m->session);
        m->session = ag_xstrdup(sid);
    }
    pthread_mutex_unlock(&m->mu);
}

static int on_data(void *arg, const struct wk_http_resp *resp, const char *data, size_t len,
                   struct ag_err *err)
{
    struct wk_mcp_rpc_req *r = arg;
    if (r->got)
        return 0;
    const char *ct = wk_http_resp_header(resp, "Content-Type");
    if (ct && strncasecmp(ct, "text/event-stream", 17) == 0) {
        if (!r->sse)
            r->sse = wk_sse_new(WK_MCP_RPC_MAX_LINE);
        int rc = wk_sse_feed(r->sse, data, len, on_event, r, err);
        if (rc < 0)
            return -1;
        if (rc == 1) /* answered: stop reading (done() sees r->got) */
            return ag_err_set(err, AG_ABORTED, "answered");
        return 0;
    }
    if (r->body_len + len > WK_MCP_RPC_MAX_LINE)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED, "an answer over %u bytes",
                          WK_MCP_RPC_MAX_LINE);
    r->body = ag_xrealloc(r->body, r->body_len + len + 1);
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* The response in a whole JSON body, or NULL with err. */
static cJSON *body_answer(struct wk_mcp_rpc_req *r, struct ag_err *err)
{
    cJSON *msg;
    enum wk_mcp_rpc_kind kind;
    int64_t id;
    const char *method;
    if (r->body_len == 0) {
        ag_err_set(err, AG_UNKNOWN, "the server answered with an empty body");
        return NULL;
    }
    if (wk_mcp_rpc_parse(r->body, r->body_len, &msg, &kind, &id, &method, err) != 0)
        return NULL;
    if (kind != WK_MCP_RPC_RESPONSE || id != r->id) {
        cJSON_Delete(msg);
        ag_err_set(err, AG_UNKNOWN, "the server's answer is not the response to request %lld",
                   (long long)r->id);
        return NULL;
    }
    return msg;
}

static void reset_answer(struct wk_mcp_rpc_req *r)
{
    wk_sse_free(r->sse);
    r->sse = NULL;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* The session expired: drop it, and send r again after a new initialize. */
static void retry_after_init(struct wk_mcp_rpc *m, struct wk_mcp_rpc_req *r)
{
    reset_answer(r);
    r->retried = true;
    pthread_mutex_lock(&m->mu);
    bool stopped = m->stopped;
    if (!stopped) {
        free(m->session);
        m->session = NULL;
        r->next = NULL;
        *m->hwait_tail = r;
        m->hwait_tail = &r->next;
        if (m->hstate != WK_MCP_RPC_H_INIT) {
            m->hstate = WK_MCP_RPC_H_INIT;
            pthread_mutex_unlock(&m->mu);
            struct ag_err err = AG_ERR_INIT;
            if (begin_init(m, &err) != 0)
                flush_waiting(m, &err); /* on the HTTP thread: replying here is fine */
            return;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (stopped)
        wk_mcp_rpc_fail(r, AG_UNAVAILABLE, "MCP server '%s' is stopped", m->name);
}

static void on_done(void *arg, const struct wk_http_resp *resp, const struct ag_err *err)
{
    struct wk_mcp_rpc_req *r = arg;
    struct wk_mcp_rpc *m = r->m;
    keep_session(m, resp);
    wk_sse_free(r->sse);
    r->sse = NULL;
    if (r->got) {
        cJSON *msg = r->got;
        r->got = NULL;
        wk_mcp_rpc_finish(r, msg, NULL);
        return;
    }
    if (err) {
        wk_mcp_rpc_fail(r, err->code, "MCP server '%s' at %.200s: %s", m->name, m->url, err->msg);
        return;
    }
    if (resp->status == 404 && r->had_session && !r->retried) {
        retry_after_init(m, r);
        return;
    }
    if (resp->status < 200 || resp->status > 299) {
        wk_mcp_rpc_fail(r, AG_UNAVAILABLE, "MCP server '%s' answered HTTP %ld: %.200s", m->name,
                        resp->status, resp->body);
        return;
    }
    if (r->id < 0) { /* a notification: 202 Accepted, nothing to read */
        wk_mcp_rpc_finish(r, NULL, NULL);
        return;
    }
    struct ag_err e = AG_ERR_INIT;
    cJSON *msg = body_answer(r, &e);
    if (!msg) {
        wk_mcp_rpc_fail(r, AG_UNKNOWN, "MCP server '%s': %s", m->name, e.msg);
        return;
    }
    wk_mcp_rpc_finish(r, msg, NULL);
}

static int start(struct wk_mcp_rpc *m, struct wk_mcp_rpc_req *r, struct ag_err *err)
{
    const char *lines[HTTP_MAX_HEADERS];
    size_t n = 0;
    lines[n++] = "Content-Type: application/json";
    lines[n++] = "Accept: application/json, text/event-stream";
    pthread_mutex_lock(&m->mu);
    char *sid = m->session ? ag_xasprintf("Mcp-Session-Id: %s", m->session) : NULL;
    char *ver = m->protocol ? ag_xasprintf("MCP-Protocol-Version: %s", m->protocol) : NULL;
    pthread_mutex_unlock(&m->mu);
    r->had_session = sid != NULL;
    if (sid)
        lines[n++] = sid;
    if (ver)
        lines[n++] = ver;
    for (size_t i = 0; i < m->nheaders && n < HTTP_MAX_HEADERS; i++)
        lines[n++] = m->headers[i];
    struct wk_http_opts o = {
        .method = "POST",
        .url = m->url,
        .headers = lines,
        .nheaders = n,
        .body = r->line,
        .body_len = r->len - 1, /* without the line's '\n' */
        .deadline_ms = r->deadline_ms,
        .max_bytes = WK_MCP_RPC_MAX_LINE,
        .cancel = r->cancel,
        .on_data = on_data,
        .done = on_done,
        .arg = r,
    };
    int rc = wk_http_start(m->http, &o, err);
    free(sid);
    free(ver);
    return rc;
}

/* Take the waiting requests out (under mu). */
static struct wk_mcp_rpc_req *take_waiting(struct wk_mcp_rpc *m)
{
    struct wk_mcp_rpc_req *w = m->hwait;
    m->hwait = NULL;
    m->hwait_tail = &m->hwait;
    return w;
}

static void flush_waiting(struct wk_mcp_rpc *m, const struct ag_err *why)
{
    pthread_mutex_lock(&m->mu);
    struct wk_mcp_rpc_req *w = take_waiting(m);
    m->hstate = why ? WK_MCP_RPC_H_NONE : WK_MCP_RPC_H_READY;
    pthread_mutex_unlock(&m->mu);
    while (w) {
        struct wk_mcp_rpc_req *r = w;
        w = r->next;
        struct ag_err err = AG_ERR_INIT;
        if (why)
            wk_mcp_rpc_fail(r, why->code, "%s", why->msg);
        else if (start(m, r, &err) != 0)
            wk_mcp_rpc_fail(r, err.code, "MCP server '%s': %s", m->name, err.msg);
    }
}

static void on_initialized_sent(void *arg, cJSON *msg, const struct ag_err *err)
{
    struct wk_mcp_rpc *m = arg;
    (void)msg;
    if (err) /* a server may not care for the notification: the session is up either way */
        ag_log_info("mcp.initialized_refused", "server=%s error=%s", m->name, ag_log_q(err->msg));
    flush_waiting(m, NULL);
}

static void on_init(void *arg, cJSON *msg, const struct ag_err *err)
{
    struct wk_mcp_rpc *m = arg;
    struct ag_err e = AG_ERR_INIT;
    cJSON *result = msg ? wk_mcp_rpc_result(msg, &e) : NULL;
    cJSON_Delete(msg);
    if (!result) {
        struct ag_err why = err ? *err : e;
        ag_err_prefix(&why, "MCP server '%s': initialize", m->name);
        ag_log_warn("mcp.init_failed", "server=%s error=%s", m->name, ag_log_q(why.msg));
        flush_waiting(m, &why);
        return;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(result, "protocolVersion");
    pthread_mutex_lock(&m->mu);
    free(m->protocol);
    m->protocol = ag_xstrdup(cJSON_IsString(v) ? v->valuestring : WK_MCP_RPC_PROTOCOL);
    pthread_mutex_unlock(&m->mu);
    cJSON_Delete(result);
    ag_log_info("mcp.started", "server=%s url=%s", m->name, ag_log_q(m->url));
    struct wk_mcp_rpc_req *n = wk_mcp_rpc_req_new(m, "notifications/initialized", NULL, true,
                                                  ag_now_mono_ms() + m->timeout_ms, NULL,
                                                  on_initialized_sent, m);
    struct ag_err se = AG_ERR_INIT;
    if (start(m, n, &se) != 0) {
        free(n->line);
        free(n);
        flush_waiting(m, &se);
    }
}

/* -1 with err when initialize could not even be sent: the caller ends what waits. */
static int begin_init(struct wk_mcp_rpc *m, struct ag_err *err)
{
    struct wk_mcp_rpc_req *r = wk_mcp_rpc_req_new(m, "initialize", wk_mcp_rpc_init_params(), false,
                                                  ag_now_mono_ms() + m->timeout_ms, NULL, on_init,
                                                  m);
    if (start(m, r, err) == 0)
        return 0;
    free(r->line);
    free(r);
    ag_err_prefix(err, "MCP server '%s': initialize", m->name);
    return -1;
}

static int http_submit(struct wk_mcp_rpc *m, struct wk_mcp_rpc_req *r, struct ag_err *err)
{
    if (!m->http)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "MCP server '%s': this node has no HTTP client", m->name);
    pthread_mutex_lock(&m->mu);
    if (m->stopped) {
        pthread_mutex_unlock(&m->mu);
        return ag_err_set(err, AG_UNAVAILABLE, "MCP server '%s' is stopped", m->name);
    }
    if (m->hstate == WK_MCP_RPC_H_READY) {
        pthread_mutex_unlock(&m->mu);
        return start(m, r, err);
    }
    r->next = NULL;
    *m->hwait_tail = r;
    m->hwait_tail = &r->next;
    bool begin = m->hstate == WK_MCP_RPC_H_NONE;
    m->hstate = WK_MCP_RPC_H_INIT;
    pthread_mutex_unlock(&m->mu);
    if (!begin || begin_init(m, err) == 0)
        return 0;
    /* Nothing was sent: r goes back to the caller (no reply inside its call), and the session
     * can be tried again by the next request. */
    pthread_mutex_lock(&m->mu);
    struct wk_mcp_rpc_req **p = &m->hwait;
    while (*p && *p != r)
        p = &(*p)->next;
    if (*p)
        *p = r->next;
    m->hwait_tail = &m->hwait;
    while (*m->hwait_tail)
        m->hwait_tail = &(*m->hwait_tail)->next;
    bool others = m->hwait != NULL; /* queued meanwhile: they get their own try */
    m->hstate = others ? WK_MCP_RPC_H_INIT : WK_MCP_RPC_H_NONE;
    pthread_mutex_unlock(&m->mu);
    struct ag_err again = AG_ERR_INIT;
    if (others && begin_init(m, &again) != 0)
        flush_waiting(m, &again);
    return -1;
}

static void http_stop(struct wk_mcp_rpc *m)
{
    pthread_mutex_lock(&m->mu);
    m->stopped = true;
    struct wk_mcp_rpc_req *w = take_waiting(m);
    pthread_mutex_unlock(&m->mu);
    while (w) {
        struct wk_mcp_rpc_req *r = w;
        w = r->next;
        wk_mcp_rpc_fail(r, AG_CANCELLED, "MCP server '%s' was stopped (the node is shutting down)",
                        m->name);
    }
}

const struct wk_mcp_rpc_transport wk_mcp_http_transport = {
    .submit = http_submit,
    .stop = http_stop,
};
