/* worker/model_http.c - the "openai" and "anthropic" model providers: one transport for both wire
 * formats (worker/model_wire.h), on the node's HTTP client (worker/http.h).
 *
 * A chat is a POST of the wire's request body to <base_url><wire path>, streamed (server-sent
 * events through worker/sse.c into the wire's stream_event, text deltas to req->on_delta as they
 * come) or not, per the spec's settings. The call retries 429, 408, 5xx and failed connections
 * with full-jitter exponential backoff (a random wait in [0, min(retry_max, retry_base * 2^n)],
 * never less than the server's Retry-After, in seconds or as an HTTP date), at most `retries`
 * times and never past its deadline; a streamed reply is retried only while none of its body has
 * come (so no delta is ever sent twice). The backoff is a node timer (wk_call_after), ended at
 * once by cancel.
 *
 * Errors are one line naming the model: "model 'openai/gpt-4o' answered HTTP 401: <the API's
 * message>", "model 'openai/x' stalled: no data for 60s", "model 'openai/x' reply is malformed:
 * ...", "cannot reach model 'openai/x' at '<base_url>': ...". Codes: UNAVAILABLE once retries are
 * spent, CANCELLED, DEADLINE_EXCEEDED, and 4xx mapped (401 UNAUTHENTICATED, 403
 * PERMISSION_DENIED, 404 NOT_FOUND, other 4xx INVALID_ARGUMENT).
 *
 * API keys: from the node's api_key_file (read at start) or the environment variable
 * api_key_env (OPENAI_API_KEY / ANTHROPIC_API_KEY by default; unset means no key, as local
 * servers want). The node's key goes only to the node's base URL: a spec that points elsewhere
 * (settings.base_url) gets a key only from the variable its own settings.api_key_env names. A key
 * is never logged or put in an error: every message built here has any occurrence of it replaced.
 *
 * Options (--model-opt openai.KEY=VAL, checked at start): base_url, api_key_env, api_key_file,
 * header (repeatable, "Name: value"), retries (3), retry_base (500ms), retry_max (30s), stall
 * (60s: no byte for that long fails a streamed call; a non-streamed reply sends nothing until it
 * is complete, so only timeout bounds it), and the common timeout.
 *
 * Embeddings (worker/embed.h, wk_model_http_embed): POST <base_url>/embeddings with the same
 * options (base_url, key, headers), one attempt, no retry (the memory tool's caller retries).
 *
 * Threads: chat() may be called from any thread and copies everything the call needs, so a call
 * never touches its provider again (a provider freed while calls are in flight is safe). on_data
 * and the HTTP done run on the HTTP thread; the backoff timer on the timer thread; they hand the
 * call from one to the next, never running at once. done() runs on either, never inside chat().
 * A call whose cancel was requested starts no retry and no backoff, so once the node has cancelled
 * every run and flushed its timers (a retry that fired just before the cancel has then started
 * its request, which the client ends), it may free its HTTP client and timers
 * (worker/runner.c, wk_runner_free). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/embed.h"
#include "worker/http.h"
#include "worker/model.h"
#include "worker/model_rows.h"
#include "worker/model_wire.h"
#include "worker/sse.h"

#define MH_MAX_HEADERS 32
#define MH_MAX_RETRIES 20
#define MH_MAX_KEY 4096

static const char *const mh_keys[] = {"base_url",  "api_key_env", "api_key_file",
                                      "header",    "retries",     "retry_base",
                                      "retry_max", "stall",       NULL};

/* The provider: the node's options, parsed once. */
struct mh_state {
    const char *name;
    const struct wk_wire *wire;
    struct wk_http *http;     /* borrowed */
    struct ag_timers *timers; /* borrowed */
    char *base_url;           /* owned, without a trailing '/' */
    char *key;                /* owned: from api_key_file or api_key_env at start; NULL: none */
    char **headers;           /* owned "Name: value" */
    size_t nheaders;
    int retries;
    int64_t retry_base_ms, retry_max_ms, stall_ms;
};

/* One chat, from chat() to done(): owns copies of everything it sends. */
struct mh_call {
    const struct wk_wire *wire;
    struct wk_http *http;
    char label[160]; /* "openai/gpt-4o" */
    char *url;       /* owned */
    char *base_url;  /* owned, for messages */
    char *key;       /* owned, NULL: none; only to scrub messages */
    char **headers;  /* owned */
    size_t nheaders;
    char *body; /* owned */
    bool stream;
    int attempt, retries;
    int64_t retry_base_ms, retry_max_ms, stall_ms;
    struct wk_call_ctx ctx; /* timers, cancel, deadline: for the backoff timer */
    wk_model_delta_fn *on_delta;
    wk_model_done_fn *done;
    void *arg;
    uint64_t rng;

    /* One attempt's stream. */
    struct wk_sse *sse;
    struct wk_wire_stream *ws;
    bool complete; /* the wire saw the end marker */
    bool not_sse;  /* a 2xx that is not text/event-stream: collected, parsed whole */
    char *whole;   /* owned: such a body */
    size_t nwhole;
    struct ag_err stream_err;
};

/* ---- keys never leave ---------------------------------------------------------------------- */

/* Replace every occurrence of key in msg (a message about to leave) by "[redacted]". */
static void scrub(char *msg, size_t cap, const char *key)
{
    size_t kl = key ? strlen(key) : 0;
    if (kl < 4)
        return; /* a "key" this short would redact ordinary words; no API issues one */
    char *p = msg;
    while ((p = strstr(p, key))) {
        char rest[256];
        snprintf(rest, sizeof(rest), "%s", p + kl);
        snprintf(p, cap - (size_t)(p - msg), "[redacted]%s", rest);
        p += strnlen(p, sizeof("[redacted]") - 1); /* past the mark, which may hold the key */
    }
}

static void call_fail(struct mh_call *c, struct ag_err *err)
{
    scrub(err->msg, sizeof(err->msg), c->key);
    c->done(c->arg, NULL, err);
}

static void call_free(struct mh_call *c)
{
    free(c->url);
    free(c->base_url);
    free(c->key);
    for (size_t i = 0; i < c->nheaders; i++)
        free(c->headers[i]);
    free(c->headers);
    free(c->body);
    wk_sse_free(c->sse);
    c->wire->stream_free(c->ws);
    free(c->whole);
    free(c);
}

/* ---- retries ------------------------------------------------------------------------------- */

static uint64_t rng_next(struct mh_call *c)
{
    /* xorshift64*: jitter needs spread, not secrecy. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

/* Retry-After as milliseconds from now: delta-seconds or an HTTP date; -1 if absent or bad. */
static int64_t retry_after_ms(const struct wk_http_resp *resp)
{
    const char *v = wk_http_resp_header(resp, "Retry-After");
    if (!v || !*v)
        return -1;
    if (isdigit((unsigned char)*v)) {
        char *end;
        long long s = strtoll(v, &end, 10);
        return s >= 0 && s < 86400 ? s * 1000 : -1;
    }
    time_t at = curl_getdate(v, NULL);
    if (at == -1)
        return -1;
    int64_t ms = ((int64_t)at - (int64_t)time(NULL)) * 1000;
    return ms > 0 ? ms : 0;
}

/* Append text to the message; a message that fills the buffer keeps its start, the more useful
 * part. */
static void err_suffix(struct ag_err *err, const char *text)
{
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof(err->msg) - len, "%s", text);
}

static int64_t backoff_ms(struct mh_call *c, int64_t server_ms)
{
    int64_t cap = c->retry_base_ms;
    for (int i = 0; i < c->attempt && cap < c->retry_max_ms; i++)
        cap *= 2;
    if (cap > c->retry_max_ms)
        cap = c->retry_max_ms;
    int64_t d = cap > 0 ? (int64_t)(rng_next(c) % (uint64_t)(cap + 1)) : 0;
    return server_ms > d ? server_ms : d;
}

static void attempt_start(struct mh_call *c);

static void on_backoff(void *arg, enum ag_code code)
{
    struct mh_call *c = arg;
    if (code == AG_OK) {
        attempt_start(c);
        return;
    }
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, code,
               code == AG_CANCELLED ? "model call to '%s' was cancelled"
                                    : "model call to '%s' timed out",
               c->label);
    call_fail(c, &err);
    call_free(c);
}

/* Retry after a failed attempt if one is left and the wait ends before the deadline: true when
 * the retry is scheduled (the call goes on), false when why is the call's end. */
static bool maybe_retry(struct mh_call *c, int64_t server_ms, struct ag_err *why)
{
    if (wk_cancel_requested(c->ctx.cancel)) {
        /* Cancelled (a run being killed, the node stopping): end without touching the timers,
         * which a stopping node may be freeing. */
        ag_err_set(why, AG_CANCELLED, "model call to '%s' was cancelled", c->label);
        return false;
    }
    if (c->attempt >= c->retries) {
        char n[32];
        snprintf(n, sizeof(n), " (%d attempts)", c->attempt + 1);
        if (c->retries > 0)
            err_suffix(why, n);
        return false;
    }
    int64_t delay = backoff_ms(c, server_ms);
    if (c->ctx.deadline_ms > 0 && ag_now_mono_ms() + delay >= c->ctx.deadline_ms) {
        err_suffix(why, " (no time left to retry before the deadline)");
        return false;
    }
    char q[sizeof(why->msg)];
    snprintf(q, sizeof(q), "%s", why->msg);
    scrub(q, sizeof(q), c->key);
    ag_log_info("model.retried", "model=%s attempt=%d delay_ms=%lld why=%s", c->label,
                c->attempt + 1, (long long)delay, ag_log_q(q));
    c->attempt++;
    wk_call_after(&c->ctx, delay, on_backoff, c);
    return true;
}

/* ---- the response ---------------------------------------------------------------------------- */

static void on_wire_text(void *arg, const char *text, size_t len)
{
    struct mh_call *c = arg;
    if (c->on_delta && len)
        c->on_delta(c->arg, text, len);
}

static int on_event(void *arg, const char *event, const char *data, size_t len, struct ag_err *err)
{
    struct mh_call *c = arg;
    int rc = c->wire->stream_event(c->ws, event, data, len, on_wire_text, c, err);
    if (rc == 1)
        c->complete = true;
    return rc;
}

static int on_data(void *arg, const struct wk_http_resp *resp, const char *data, size_t len,
                   struct ag_err *err)
{
    struct mh_call *c = arg;
    if (resp->received == len) {
        /* The first bytes: a server that ignores "stream" answers with one JSON document. */
        const char *ct = wk_http_resp_header(resp, "Content-Type");
        c->not_sse = !ct || !strstr(ct, "text/event-stream");
    }
    if (c->not_sse) {
        c->whole = ag_xrealloc(c->whole, c->nwhole + len + 1);
        memcpy(c->whole + c->nwhole, data, len);
        c->nwhole += len;
        c->whole[c->nwhole] = '\0';
        return 0;
    }
    if (c->complete)
        return 0; /* bytes after the end marker: nothing more to learn */
    return wk_sse_feed(c->sse, data, len, on_event, c, err) < 0 ? -1 : 0;
}

static void finish_reply(struct mh_call *c, struct wk_chat_reply *reply, struct ag_err *err)
{
    if (reply) {
        c->done(c->arg, reply, NULL);
    } else {
        if (err->code == AG_UNKNOWN) {
            char m[sizeof(err->msg)];
            snprintf(m, sizeof(m), "%s", err->msg);
            ag_err_set(err, AG_UNKNOWN, "model '%s' reply is malformed: %s", c->label, m);
        } else {
            ag_err_prefix(err, "model '%s'", c->label);
        }
        call_fail(c, err);
    }
    call_free(c);
}

static void on_success(struct mh_call *c, const struct wk_http_resp *resp)
{
    struct ag_err err = AG_ERR_INIT;
    struct wk_chat_reply *reply;
    if (!c->stream)
        reply = c->wire->parse_reply(resp->body, resp->len, &err);
    else if (c->not_sse)
        reply = c->wire->parse_reply(c->whole ? c->whole : "", c->nwhole, &err);
    else
        reply = c->wire->stream_finish(c->ws, c->complete, &err);
    finish_reply(c, reply, &err);
}

static enum ag_code code_of_status(long status)
{
    switch (status) {
    case 401:
        return AG_UNAUTHENTICATED;
    case 403:
        return AG_PERMISSION_DENIED;
    case 404:
        return AG_NOT_FOUND;
    default:
        return status >= 500 || status == 429 || status == 408 ? AG_UNAVAILABLE
                                                               : AG_INVALID_ARGUMENT;
    }
}

/* The API's message, or the body's first line when the format has none. */
static void status_error(struct mh_call *c, const struct wk_http_resp *resp, struct ag_err *err)
{
    char *m = c->wire->error_message(resp->body, resp->len);
    char snippet[128];
    if (!m) {
        size_t n = strcspn(resp->body, "\r\n");
        snprintf(snippet, sizeof(snippet), "%.*s", (int)(n < 120 ? n : 120), resp->body);
    }
    ag_err_set(err, code_of_status(resp->status), "model '%s' answered HTTP %ld: %s", c->label,
               resp->status,
               m          ? m
               : *snippet ? snippet
                          : "(no message)");
    free(m);
}

static void on_status(struct mh_call *c, const struct wk_http_resp *resp)
{
    struct ag_err err = AG_ERR_INIT;
    status_error(c, resp, &err);
    bool retryable = resp->status == 429 || resp->status == 408 || resp->status >= 500;
    if (retryable && maybe_retry(c, retry_after_ms(resp), &err))
        return;
    call_fail(c, &err);
    call_free(c);
}

/* The request failed without a whole response. */
static void on_failure(struct mh_call *c, const struct wk_http_resp *resp,
                       const struct ag_err *herr)
{
    struct ag_err err = AG_ERR_INIT;
    switch (herr->code) {
    case AG_CANCELLED:
        ag_err_set(&err, AG_CANCELLED, "model call to '%s' was cancelled", c->label);
        break;
    case AG_DEADLINE_EXCEEDED:
        if (resp->stalled)
            ag_err_set(&err, AG_DEADLINE_EXCEEDED, "model '%s' %s", c->label, herr->msg);
        else
            ag_err_set(&err, AG_DEADLINE_EXCEEDED, "model call to '%s' timed out", c->label);
        break;
    case AG_UNAVAILABLE:
        if (resp->status != 0) {
            /* A stream that broke, or an error event the API sent inside it. */
            ag_err_set(&err, AG_UNAVAILABLE, "model '%s': %s", c->label, herr->msg);
        } else {
            ag_err_set(&err, AG_UNAVAILABLE, "cannot reach model '%s' at '%s': %s", c->label,
                       c->base_url, herr->msg);
        }
        if ((!c->stream || resp->received == 0) && maybe_retry(c, -1, &err))
            return;
        break;
    case AG_UNKNOWN:
        ag_err_set(&err, AG_UNKNOWN, "model '%s' reply is malformed: %s", c->label, herr->msg);
        break;
    default:
        ag_err_set(&err, herr->code, "model '%s': %s", c->label, herr->msg);
        break;
    }
    call_fail(c, &err);
    call_free(c);
}

static void on_http_done(void *arg, const struct wk_http_resp *resp, const struct ag_err *herr)
{
    struct mh_call *c = arg;
    if (herr)
        on_failure(c, resp, herr);
    else if (resp->status >= 200 && resp->status < 300)
        on_success(c, resp);
    else
        on_status(c, resp);
}

/* Start (or restart) the request; on a refusal the call ends here. Called from chat() for the
 * first attempt only through attempt_send, whose error chat() returns. */
static int attempt_send(struct mh_call *c, struct ag_err *err)
{
    wk_sse_free(c->sse);
    c->wire->stream_free(c->ws);
    free(c->whole);
    c->whole = NULL;
    c->nwhole = 0;
    c->complete = c->not_sse = false;
    c->sse = c->stream ? wk_sse_new(0) : NULL;
    c->ws = c->stream ? c->wire->stream_new() : NULL;
    struct wk_http_opts o = {
        .method = "POST",
        .url = c->url,
        .headers = (const char *const *)c->headers,
        .nheaders = c->nheaders,
        .body = c->body,
        .body_len = strlen(c->body),
        .deadline_ms = c->ctx.deadline_ms,
        /* A non-streamed reply sends nothing until it is complete, which takes a long answer
         * minutes: only the call's timeout bounds it. */
        .stall_ms = c->stream ? c->stall_ms : 0,
        .cancel = c->ctx.cancel,
        .on_data = c->stream ? on_data : NULL,
        .done = on_http_done,
        .arg = c,
    };
    return wk_http_start(c->http, &o, err);
}

static void attempt_start(struct mh_call *c)
{
    struct ag_err err = AG_ERR_INIT;
    if (wk_cancel_requested(c->ctx.cancel)) {
        /* As in maybe_retry: the node's HTTP client may be going away. */
        ag_err_set(&err, AG_CANCELLED, "model call to '%s' was cancelled", c->label);
        call_fail(c, &err);
        call_free(c);
        return;
    }
    if (attempt_send(c, &err) == 0)
        return;
    ag_err_prefix(&err, "model '%s'", c->label);
    call_fail(c, &err);
    call_free(c);
}

/* ---- chat ------------------------------------------------------------------------------------ */

static void push_header(struct mh_call *c, char *line_take)
{
    c->headers = ag_xrealloc(c->headers, (c->nheaders + 1) * sizeof(*c->headers));
    c->headers[c->nheaders++] = line_take;
}

static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    return colon && colon != h && !strpbrk(h, "\r\n");
}

static void set_headers(struct mh_call *c, const struct mh_state *st, const struct wk_chat_req *req)
{
    push_header(c, ag_xstrdup("Content-Type: application/json"));
    if (c->stream)
        push_header(c, ag_xstrdup("Accept: text/event-stream"));
    char *wire_hdrs[4];
    size_t n = c->wire->headers(c->key, wire_hdrs, AG_ARRAY_SIZE(wire_hdrs));
    for (size_t i = 0; i < n; i++)
        push_header(c, wire_hdrs[i]);
    for (size_t i = 0; i < st->nheaders; i++)
        push_header(c, ag_xstrdup(st->headers[i]));
    for (size_t i = 0; i < req->settings.nheaders; i++)
        push_header(c, ag_xstrdup(req->settings.headers[i]));
}

static char *base_without_slash(const char *url)
{
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    return ag_xstrndup(url, n);
}

/* The key this call sends (owned, NULL: none). The node's key goes to the node's base URL only. */
static char *call_key(const struct mh_state *st, const struct wk_model_settings *s,
                      const char *base_url)
{
    if (s->api_key_env && *s->api_key_env) {
        const char *v = getenv(s->api_key_env);
        return v && *v ? ag_xstrdup(v) : NULL;
    }
    return st->key && strcmp(base_url, st->base_url) == 0 ? ag_xstrdup(st->key) : NULL;
}

static int mh_chat(struct wk_provider *p, const struct wk_call_ctx *ctx,
                   const struct wk_chat_req *req, wk_model_done_fn *done, void *arg,
                   struct ag_err *err)
{
    const struct mh_state *st = p->state;
    const struct wk_model_settings *s = &req->settings;
    if (st->nheaders + s->nheaders > MH_MAX_HEADERS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "model '%s' takes at most %d extra headers",
                          st->name, MH_MAX_HEADERS);
    for (size_t i = 0; i < s->nheaders; i++)
        if (!header_ok(s->headers[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "model header '%.64s' must be one line 'Name: value'", s->headers[i]);
    char *body = st->wire->request_body(req, s->stream, err);
    if (!body)
        return -1;
    struct mh_call *c = ag_xcalloc(1, sizeof(*c));
    c->wire = st->wire;
    c->http = st->http;
    const char *model = req->model ? req->model : "";
    snprintf(c->label, sizeof(c->label), "%s%s%.120s", st->name, *model ? "/" : "", model);
    c->base_url = base_without_slash(s->base_url && *s->base_url ? s->base_url : st->base_url);
    c->url = ag_xasprintf("%s%s", c->base_url, st->wire->path);
    c->key = call_key(st, s, c->base_url);
    c->body = body;
    c->stream = s->stream;
    set_headers(c, st, req);
    c->retries = st->retries;
    c->retry_base_ms = st->retry_base_ms;
    c->retry_max_ms = st->retry_max_ms;
    c->stall_ms = st->stall_ms;
    c->ctx = *ctx;
    c->ctx.timers = ctx->timers ? ctx->timers : st->timers;
    c->on_delta = req->on_delta;
    c->done = done;
    c->arg = arg;
    c->rng = (uint64_t)ag_now_mono_ns() ^ ((uint64_t)(uintptr_t)c << 17) ^ 0x9E3779B97F4A7C15ULL;
    if (attempt_send(c, err) != 0) {
        ag_err_prefix(err, "model '%s'", c->label);
        call_free(c);
        return -1;
    }
    return 0; /* from here the HTTP thread owns c */
}

/* ---- options ------------------------------------------------------------------------------- */

static void state_free(struct mh_state *st)
{
    if (!st)
        return;
    free(st->base_url);
    if (st->key) {
        memset(st->key, 0, strlen(st->key));
        free(st->key);
    }
    for (size_t i = 0; i < st->nheaders; i++)
        free(st->headers[i]);
    free(st->headers);
    free(st);
}

static int read_key_file(const struct wk_config *c, const char *path, char **key,
                         struct ag_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read option '%s.api_key_file' '%s': %s",
                          c->owner, path, strerror(errno));
    char buf[MH_MAX_KEY + 2];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    int rc = 0;
    if (n == 0 || n > MH_MAX_KEY || strpbrk(buf, "\r\n"))
        rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                        "option '%s.api_key_file': '%s' must hold one key on one line", c->owner,
                        path);
    else
        *key = ag_xstrdup(buf);
    memset(buf, 0, sizeof(buf));
    return rc;
}

static int parse_retries(const struct wk_config *c, int *out, struct ag_err *err)
{
    const char *v = wk_config_get(c, "retries");
    if (!v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > MH_MAX_RETRIES)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option '%s.retries=%s' wants a number from 0 to %d", c->owner, v,
                          MH_MAX_RETRIES);
    *out = (int)n;
    return 0;
}

static int parse_headers(const struct wk_config *c, struct mh_state *st, struct ag_err *err)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->items[i].key, "header") != 0)
            continue;
        if (!header_ok(c->items[i].value))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "option '%s.header=%.64s' wants one line 'Name: value'", c->owner,
                              c->items[i].value);
        if (st->nheaders == MH_MAX_HEADERS)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "%s takes at most %d header options",
                              c->owner, MH_MAX_HEADERS);
        st->headers = ag_xrealloc(st->headers, (st->nheaders + 1) * sizeof(*st->headers));
        st->headers[st->nheaders++] = ag_xstrdup(c->items[i].value);
    }
    return 0;
}

static int parse_key(const struct wk_config *c, struct mh_state *st, struct ag_err *err)
{
    const char *file = wk_config_get(c, "api_key_file");
    const char *env = wk_config_get(c, "api_key_env");
    if (file && env)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "options '%s.api_key_file' and '%s.api_key_env' exclude each other: "
                          "give one",
                          c->owner, c->owner);
    if (file)
        return read_key_file(c, file, &st->key, err);
    if (!env)
        env = strcmp(c->owner, "anthropic") == 0 ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
    const char *v = getenv(env);
    st->key = v && *v ? ag_xstrdup(v) : NULL; /* none: fine for a local server */
    return 0;
}

/* The node's options into st (whose name and wire are set). */
static int state_parse(const struct wk_config *c, struct mh_state *st, struct ag_err *err)
{
    if (wk_config_check_keys(c, mh_keys, err) != 0)
        return -1;
    const char *base = wk_config_get(c, "base_url");
    if (base && strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option '%s.base_url=%s' wants an http:// or https:// URL", c->owner,
                          base);
    st->base_url = base_without_slash(base ? base : st->wire->default_base_url);
    st->retries = 3;
    st->retry_base_ms = 500;
    st->retry_max_ms = 30000;
    st->stall_ms = 60000;
    if (parse_retries(c, &st->retries, err) != 0 ||
        wk_config_duration(c, "retry_base", &st->retry_base_ms, err) != 0 ||
        wk_config_duration(c, "retry_max", &st->retry_max_ms, err) != 0 ||
        wk_config_duration(c, "stall", &st->stall_ms, err) != 0 || parse_headers(c, st, err) != 0)
        return -1;
    return parse_key(c, st, err);
}

static const struct wk_wire *wire_of(const char *name)
{
    return strcmp(name, "anthropic") == 0 ? &wk_wire_anthropic : &wk_wire_openai;
}

int wk_model__http_check_config(const struct wk_config *c, struct ag_err *err)
{
    struct mh_state *st = ag_xcalloc(1, sizeof(*st));
    st->wire = wire_of(c->owner);
    int rc = state_parse(c, st, err);
    state_free(st);
    return rc;
}

static void mh_free(struct wk_provider *p)
{
    if (p)
        state_free(p->state);
    free(p);
}

static struct wk_provider *mh_create(const struct wk_provider_ctx *ctx, const char *name,
                                     struct ag_err *err)
{
    if (!ctx || !ctx->http || !ctx->timers)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "model provider '%s' needs the node's HTTP client and timers", name),
               NULL;
    struct mh_state *st = ag_xcalloc(1, sizeof(*st));
    st->name = name;
    st->wire = wire_of(name);
    st->http = ctx->http;
    st->timers = ctx->timers;
    struct wk_config none = {name, NULL, 0, 0};
    if (state_parse(ctx->config ? ctx->config : &none, st, err) != 0) {
        state_free(st);
        return NULL;
    }
    struct wk_provider *p = ag_xcalloc(1, sizeof(*p));
    p->name = name;
    p->chat = mh_chat;
    p->free = mh_free;
    p->state = st;
    return p;
}

/* ---- embeddings (worker/embed.h) ----------------------------------------------------------- */

/* One embeddings request: the provider's options parsed for it (state_parse: the same base_url,
 * key and headers as its chats), one attempt. */
struct mh_embed {
    char label[160]; /* "openai/text-embedding-3-small" */
    char *base_url;  /* owned, for messages */
    char *key;       /* owned, NULL: none; only to scrub messages */
    wk_embed_done_fn *done;
    void *arg;
};

static void embed_free(struct mh_embed *e)
{
    free(e->base_url);
    if (e->key) {
        memset(e->key, 0, strlen(e->key));
        free(e->key);
    }
    free(e);
}

static void embed_fail(struct mh_embed *e, struct ag_err *err)
{
    scrub(err->msg, sizeof(err->msg), e->key);
    e->done(e->arg, NULL, 0, err);
    embed_free(e);
}

static void on_embed_done(void *arg, const struct wk_http_resp *resp, const struct ag_err *herr)
{
    struct mh_embed *e = arg;
    struct ag_err err = AG_ERR_INIT;
    if (herr) {
        ag_err_set(&err, herr->code, "embedding model '%s' at '%s': %s", e->label, e->base_url,
                   herr->msg);
        embed_fail(e, &err);
        return;
    }
    if (resp->status < 200 || resp->status >= 300) {
        char *m = wk_wire_openai.error_message(resp->body, resp->len);
        ag_err_set(&err, code_of_status(resp->status), "embedding model '%s' answered HTTP %ld: %s",
                   e->label, resp->status, m ? m : "(no message)");
        free(m);
        embed_fail(e, &err);
        return;
    }
    uint32_t dims = 0;
    float *v = wk_wire_openai_parse_embedding(resp->body, resp->len, WK_EMBED_MAX_DIMS, &dims,
                                              &err);
    if (!v) {
        ag_err_prefix(&err, "embedding model '%s'", e->label);
        embed_fail(e, &err);
        return;
    }
    e->done(e->arg, v, dims, NULL);
    embed_free(e);
}

int wk_model_http_embed(const struct wk_config *config, const struct wk_call_ctx *ctx,
                        const char *model, const char *text, wk_embed_done_fn *done, void *arg,
                        struct ag_err *err)
{
    if (!ctx->http)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "embeddings need the node's HTTP client");
    struct mh_state *st = ag_xcalloc(1, sizeof(*st));
    st->name = config->owner;
    st->wire = &wk_wire_openai;
    if (state_parse(config, st, err) != 0) {
        state_free(st);
        return -1;
    }
    struct mh_embed *e = ag_xcalloc(1, sizeof(*e));
    snprintf(e->label, sizeof(e->label), "%s/%.120s", st->name, model ? model : "");
    e->base_url = ag_xstrdup(st->base_url);
    e->key = st->key ? ag_xstrdup(st->key) : NULL;
    e->done = done;
    e->arg = arg;
    char *hdrs[MH_MAX_HEADERS + 8];
    size_t nh = 0;
    hdrs[nh++] = ag_xstrdup("Content-Type: application/json");
    nh += wk_wire_openai.headers(st->key, hdrs + nh, 4);
    for (size_t i = 0; i < st->nheaders && nh < AG_ARRAY_SIZE(hdrs); i++)
        hdrs[nh++] = ag_xstrdup(st->headers[i]);
    char *url = ag_xasprintf("%s/embeddings", st->base_url);
    char *body = wk_wire_openai_embed_body(model, text);
    struct wk_http_opts o = {.method = "POST",
                             .url = url,
                             .headers = (const char *const *)hdrs,
                             .nheaders = nh,
                             .body = body,
                             .body_len = strlen(body),
                             .deadline_ms = ctx->deadline_ms,
                             .stall_ms = st->stall_ms,
                             .cancel = ctx->cancel,
                             .done = on_embed_done,
                             .arg = e};
    int rc = wk_http_start(ctx->http, &o, err);
    for (size_t i = 0; i < nh; i++)
        free(hdrs[i]);
    free(url);
    free(body);
    state_free(st);
    if (rc != 0) {
        ag_err_prefix(err, "embedding model '%s'", e->label);
        scrub(err->msg, sizeof(err->msg), e->key);
        embed_free(e);
    }
    return rc;
}

struct wk_provider *wk_model__openai_create(const struct wk_provider_ctx *ctx, struct ag_err *err)
{
    return mh_create(ctx, "openai", err);
}

struct wk_provider *wk_model__anthropic_create(const struct wk_provider_ctx *ctx,
                                               struct ag_err *err)
{
    return mh_create(ctx, "anthropic", err);
}
