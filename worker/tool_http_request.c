/* worker/tool_http_request.c - the "http_request" tool: one HTTP request, on the node's HTTP client.
 *
 * Arguments: {"method": "GET", "url": "https://...", "headers": {"Name": "value"}, "body": "..."};
 * only url is required (method defaults to GET, or POST when a body is given). Output: the status
 * line, a few headers (Content-Type, Content-Length, Location, Retry-After), a blank line and the
 * body as text; a body past the size limit is cut there and the output says so, a body that is
 * not UTF-8 is described, not shown. Any HTTP status is a result the model reads (is_error
 * false); is_error is for a request that got no response: refused by the allowlist, bad
 * arguments, no connection, timed out, cancelled.
 *
 * Redirects are never followed, so a redirect can never lead to a host the allowlist refuses:
 * the 3xx comes back with its Location, and the model may ask for that URL (checked again).
 *
 * Limits, node options then the spec's settings (AgentSpec.tool_settings), which may only narrow:
 *   http_request.allow_hosts=h1,h2   hosts a URL may name (exact, case-insensitive; "*.example.com"
 *                                    also matches its subdomains); unset: any host
 *   http_request.max_bytes=N         bytes of body kept (default 1 MiB)
 *   http_request.timeout=DUR         the common per-call deadline
 *   settings {"allow_hosts": [...], "max_bytes": N, "timeout_ms": N}: a host must be allowed by
 *   both lists; the smaller size and time limits win.
 * Declared not idempotent: a POST may have acted, and the tool cannot tell which requests are safe.
 *
 * Other tools' HTTP calls (an OpenAPI operation, worker/openapi.c) go through the same code path
 * and limits: wk_tool_http_request_call (worker/tool_http_request.h).
 *
 * Threads: run() may be called from any thread; done() runs on the HTTP thread (a response or a
 * failure) or on the timer thread (a call refused before any request), never inside run(). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/clock.h"
#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/http.h"
#include "worker/tool.h"
#include "worker/tool_http_request.h"
#include "worker/tool_rows.h"

#define HTTPREQ_DEFAULT_MAX_BYTES (1u << 20)
#define HTTPREQ_MAX_HEADERS 64

static const char *const httpreq_keys[] = {"allow_hosts", "max_bytes", NULL};
static const char *const shown_headers[] = {"Content-Type", "Content-Length", "Location",
                                            "Retry-After"};

struct httpreq_call {
    wk_tool_done_fn *done;
    void *arg;
    char *output; /* owned: a refusal waiting for the timer */
    size_t max_bytes;
};

/* ---- limits ------------------------------------------------------------------------------ */

static bool host_matches(const char *pattern, size_t plen, const char *host)
{
    if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
        size_t hl = strlen(host), sl = plen - 1; /* ".example.com" */
        return hl > sl && strncasecmp(host + hl - sl, pattern + 1, sl) == 0;
    }
    return strlen(host) == plen && strncasecmp(host, pattern, plen) == 0;
}

/* The node's comma-separated list: NULL (unset) allows every host. */
static bool node_allows(const char *list, const char *host)
{
    if (!list)
        return true;
    for (const char *p = list; *p;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n && host_matches(p, n, host))
            return true;
        p = e;
    }
    return false;
}

/* The spec's array: absent allows every host the node does. */
static bool spec_allows(const cJSON *list, const char *host)
{
    if (!list)
        return true;
    const cJSON *h;
    cJSON_ArrayForEach(h, list)
    {
        if (cJSON_IsString(h) && host_matches(h->valuestring, strlen(h->valuestring), host))
            return true;
    }
    return false;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || v == 0 || v > (1ull << 32) || s[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

int wk_tool__http_request_check_config(const struct wk_config *c, struct ag_err *err)
{
    if (wk_config_check_keys(c, httpreq_keys, err) != 0)
        return -1;
    const char *mb = wk_config_get(c, "max_bytes");
    size_t n;
    if (mb && parse_size(mb, &n) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option 'http_request.max_bytes=%s' wants a number of bytes from 1 to "
                          "4294967296",
                          mb);
    const char *hosts = wk_config_get(c, "allow_hosts");
    if (hosts && strspn(hosts, ", \t") == strlen(hosts))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option 'http_request.allow_hosts' names no host; leave it unset to "
                          "allow any");
    return 0;
}

static bool is_positive_number(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 4294967296.0;
}

int wk_tool__http_request_check_settings(const char *settings_json, struct ag_err *err)
{
    cJSON *s = cJSON_Parse(settings_json ? settings_json : "{}");
    int rc = 0;
    if (!cJSON_IsObject(s)) {
        rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                        "settings of tool 'http_request' must be a "
                        "JSON object");
        goto out;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, s)
    {
        bool ok;
        if (strcmp(v->string, "allow_hosts") == 0) {
            ok = cJSON_IsArray(v);
            const cJSON *h;
            cJSON_ArrayForEach(h, v) ok = ok && cJSON_IsString(h) && *h->valuestring;
        } else if (strcmp(v->string, "max_bytes") == 0 || strcmp(v->string, "timeout_ms") == 0) {
            ok = is_positive_number(v);
        } else {
            rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                            "unknown setting '%s' of tool 'http_request': it takes allow_hosts, "
                            "max_bytes, timeout_ms",
                            v->string);
            goto out;
        }
        if (!ok) {
            rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                            "setting '%s' of tool 'http_request' wants %s", v->string,
                            strcmp(v->string, "allow_hosts") == 0 ? "an array of host names"
                                                                  : "a positive whole number");
            goto out;
        }
    }
out:
    cJSON_Delete(s);
    return rc;
}

/* ---- arguments --------------------------------------------------------------------------- */

/* The URL's host, lowercased (owned), or NULL if it is not an http(s) URL with one. */
static char *url_host(const char *url)
{
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0))
        return NULL;
    CURLU *u = curl_url();
    char *host = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host) {
        out = ag_xstrdup(host);
        for (char *p = out; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    curl_free(host);
    curl_url_cleanup(u);
    return out;
}

char *wk_tool__http_request_subject(const char *args_json)
{
    cJSON *a = cJSON_Parse(args_json ? args_json : "");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(a, "url");
    char *host = cJSON_IsString(url) ? url_host(url->valuestring) : NULL;
    cJSON_Delete(a);
    return host;
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

/* The request's header lines (owned, *n of them) from the "headers" object; NULL with a message
 * (owned, in *why) if one is not a string or would break the request's framing. */
static char **header_lines(const cJSON *obj, size_t *n, char **why)
{
    *n = 0;
    int count = cJSON_GetArraySize(obj);
    if (count > HTTPREQ_MAX_HEADERS) {
        *why = ag_xasprintf("at most %d headers", HTTPREQ_MAX_HEADERS);
        return NULL;
    }
    char **lines = ag_xcalloc((size_t)count + 1, sizeof(*lines));
    const cJSON *v;
    cJSON_ArrayForEach(v, obj)
    {
        if (!cJSON_IsString(v) || !is_token(v->string) || strpbrk(v->valuestring, "\r\n")) {
            *why = ag_xasprintf("header '%.64s' must be a token with a one-line string value",
                                v->string);
            for (size_t i = 0; i < *n; i++)
                free(lines[i]);
            free(lines);
            return NULL;
        }
        lines[(*n)++] = ag_xasprintf("%s: %s", v->string, v->valuestring);
    }
    return lines;
}

/* ---- the response ------------------------------------------------------------------------ */

static char *format_output(const struct wk_http_resp *resp, size_t max_bytes)
{
    size_t cap = resp->len + 1024, off = 0;
    char *out = ag_xmalloc(cap);
    off += (size_t)snprintf(
        out + off, cap - off, "HTTP %ld%s\n", resp->status,
        resp->status >= 300 && resp->status < 400 ? " (redirects are not followed)" : "");
    for (size_t i = 0; i < AG_ARRAY_SIZE(shown_headers); i++) {
        const char *v = wk_http_resp_header(resp, shown_headers[i]);
        if (v)
            off += (size_t)snprintf(out + off, cap - off, "%s: %.300s\n", shown_headers[i], v);
    }
    out[off++] = '\n';
    if (!ag_utf8_valid(resp->body, resp->len)) {
        /* A cut may split the last character: that alone does not make the body binary. */
        size_t n = resp->truncated ? ag_utf8_prefix(resp->body, resp->len) : resp->len;
        if (ag_utf8_valid(resp->body, n)) {
            memcpy(out + off, resp->body, n);
            off += n;
        } else {
            off += (size_t)snprintf(out + off, cap - off, "[a body of %zu bytes that is not text]",
                                    resp->len);
        }
    } else {
        memcpy(out + off, resp->body, resp->len);
        off += resp->len;
    }
    if (resp->truncated)
        off += (size_t)snprintf(out + off, cap - off, "\n[body truncated at %zu bytes]", max_bytes);
    out[off] = '\0';
    return out;
}

static void on_response(void *arg, const struct wk_http_resp *resp, const struct ag_err *err)
{
    struct httpreq_call *c = arg;
    if (!err) {
        c->done(c->arg, format_output(resp, c->max_bytes), false);
    } else if (err->code == AG_CANCELLED) {
        c->done(c->arg, ag_xstrdup("tool 'http_request' was cancelled"), true);
    } else if (err->code == AG_DEADLINE_EXCEEDED) {
        c->done(c->arg, ag_xstrdup("tool 'http_request' timed out"), true);
    } else {
        c->done(c->arg, ag_xasprintf("tool 'http_request' failed: %s", err->msg), true);
    }
    free(c);
}

static void on_refusal(void *arg, enum ag_code code)
{
    struct httpreq_call *c = arg;
    (void)code; /* refused before any request: the refusal is the answer either way */
    c->done(c->arg, c->output, true);
    free(c);
}

/* ---- run --------------------------------------------------------------------------------- */

struct httpreq_plan {
    const char *method, *url, *body; /* borrowed from the arguments */
    char **headers;                  /* owned */
    size_t nheaders;
    size_t max_bytes;
    int64_t deadline_ms;
};

/* NULL when the call may go ahead (p filled), else the refusal (owned) the model gets.
 * implicit_host: a host allowed without the allowlists (NULL: none). */
static char *plan_call(const struct wk_call_ctx *ctx, const cJSON *args, const cJSON *settings,
                       const char *implicit_host, struct httpreq_plan *p)
{
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(args, "url");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(args, "method");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(args, "body");
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(args, "headers");
    if (!cJSON_IsObject(args) || !cJSON_IsString(url))
        return ag_xstrdup("tool 'http_request' needs arguments {\"url\": \"https://...\"} and "
                          "optionally method, headers (an object) and body (a string)");
    if ((method && !cJSON_IsString(method)) || (body && !cJSON_IsString(body)) ||
        (headers && !cJSON_IsObject(headers)))
        return ag_xstrdup("tool 'http_request': method and body must be strings, headers an "
                          "object of strings");
    p->url = url->valuestring;
    p->body = body ? body->valuestring : NULL;
    p->method = method ? method->valuestring : p->body ? "POST" : "GET";
    if (!is_token(p->method))
        return ag_xasprintf("tool 'http_request': '%.32s' is not an HTTP method", p->method);
    char *host = url_host(p->url);
    if (!host)
        return ag_xasprintf("tool 'http_request': '%.200s' is not an http:// or https:// URL "
                            "with a host",
                            p->url);
    const cJSON *spec_hosts = cJSON_GetObjectItemCaseSensitive(settings, "allow_hosts");
    const char *node_hosts = wk_config_get(ctx->config, "allow_hosts");
    bool implicit = implicit_host && strcasecmp(host, implicit_host) == 0;
    if (!implicit && (!node_allows(node_hosts, host) || !spec_allows(spec_hosts, host))) {
        char *why = ag_xasprintf("tool 'http_request' refused: host '%s' is not allowed (%s)", host,
                                 node_allows(node_hosts, host) ? "the agent's spec does not list it"
                                                               : "the node's "
                                                                 "http_request.allow_hosts does "
                                                                 "not list it");
        free(host);
        return why;
    }
    free(host);
    char *why = NULL;
    if (headers && !(p->headers = header_lines(headers, &p->nheaders, &why))) {
        char *msg = ag_xasprintf("tool 'http_request': %s", why);
        free(why);
        return msg;
    }
    return NULL;
}

static void plan_limits(const struct wk_call_ctx *ctx, const cJSON *settings,
                        struct httpreq_plan *p)
{
    p->max_bytes = HTTPREQ_DEFAULT_MAX_BYTES;
    const char *mb = wk_config_get(ctx->config, "max_bytes");
    if (mb)
        parse_size(mb, &p->max_bytes); /* checked at start */
    const cJSON *smb = cJSON_GetObjectItemCaseSensitive(settings, "max_bytes");
    if (is_positive_number(smb) && (size_t)smb->valuedouble < p->max_bytes)
        p->max_bytes = (size_t)smb->valuedouble;
    p->deadline_ms = ctx->deadline_ms;
    const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(settings, "timeout_ms");
    if (is_positive_number(tmo)) {
        int64_t d = ag_now_mono_ms() + (int64_t)tmo->valuedouble;
        if (p->deadline_ms == 0 || d < p->deadline_ms)
            p->deadline_ms = d;
    }
}

static int start_request(const struct wk_call_ctx *ctx, struct httpreq_plan *p,
                         struct httpreq_call *c, struct ag_err *err)
{
    c->max_bytes = p->max_bytes;
    struct wk_http_opts o = {
        .method = p->method,
        .url = p->url,
        .headers = (const char *const *)p->headers,
        .nheaders = p->nheaders,
        .body = p->body,
        .body_len = p->body ? strlen(p->body) : 0,
        .deadline_ms = p->deadline_ms,
        .max_bytes = p->max_bytes,
        .truncate = true,
        .cancel = ctx->cancel,
        .done = on_response,
        .arg = c,
    };
    return wk_http_start(ctx->http, &o, err);
}

int wk_tool_http_request_call(const struct wk_call_ctx *ctx, const cJSON *args,
                              const char *implicit_host, wk_tool_done_fn *done, void *arg,
                              struct ag_err *err)
{
    if (!ctx || !ctx->http || !ctx->timers)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot run tool 'http_request': this node has no HTTP client");
    cJSON *settings = ctx->settings_json ? cJSON_Parse(ctx->settings_json) : NULL;
    struct httpreq_plan p = {0};
    struct httpreq_call *c = ag_xcalloc(1, sizeof(*c));
    c->done = done;
    c->arg = arg;
    c->output = plan_call(ctx, args, settings, implicit_host, &p);
    int rc = 0;
    if (c->output) {
        wk_call_after(ctx, 0, on_refusal, c);
    } else {
        plan_limits(ctx, settings, &p);
        rc = start_request(ctx, &p, c, err);
        if (rc != 0)
            free(c);
    }
    for (size_t i = 0; i < p.nheaders; i++)
        free(p.headers[i]);
    free(p.headers);
    cJSON_Delete(settings);
    return rc;
}

int wk_tool__http_request_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                              const char *args_json, wk_tool_done_fn *done, void *arg,
                              struct ag_err *err)
{
    (void)t;
    cJSON *args = cJSON_Parse(args_json ? args_json : "");
    int rc = wk_tool_http_request_call(ctx, args, NULL, done, arg, err);
    cJSON_Delete(args);
    return rc;
}
