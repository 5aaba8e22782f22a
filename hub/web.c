/* hub/web.c - see web.h; the contract is docs/dashboard.md ("The HTTP API").
 *
 * A request is answered in three kinds: a file of the table the build embeds (hub/web_assets.h),
 * a unary AgentHub method (the JSON body decoded by common/pbjson.h into the method's request,
 * one blocking call on a private pluck queue), or Trace as Server-Sent Events (hub/web_sse.c).
 * Who the caller is, the loopback calls and the error answers are hub/web_call.c's.
 *
 * Every call goes to the hub's own gRPC port over one shared loopback channel, with the caller's
 * credentials, so the gRPC side authenticates, authorises and audits it exactly as if the
 * browser had called; nothing else is checked here. The channel presents no client certificate
 * of its own: the hub must accept callers without one, which it does with a --policy (the file
 * that holds the tokens). */
#include "hub/web.h"

#include <grpc/support/string_util.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/clock.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/pbjson.h"
#include "common/rpc/client.h"
#include "common/rpc/pb.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "hub/authn.h"
#include "hub/web_assets.h"
#include "hub/web_internal.h"

#define WEB_API_PREFIX "/api/v1/agentry.v1.AgentHub/"
#define WEB_MAX_BODY (1 << 20)
#define WEB_STOP_ENDING_MS 500 /* at stop, for the calls the hub ended to deliver their end */
#define WEB_STOP_CANCEL_MS 1000

static enum MHD_Result fail(struct web_req *r, struct MHD_Connection *conn, unsigned http_code,
                            enum ag_code code, const char *msg)
{
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, code, "%s", msg);
    return hub_web_call_send_error(r, conn, http_code, &err);
}

/* --- static files ----------------------------------------------------------------------------- */

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".mjs", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".json", "application/json"},
                 {".map", "application/json"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".ico", "image/x-icon"},
                 {".woff2", "font/woff2"},
                 {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < AG_ARRAY_SIZE(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static enum MHD_Result serve_file(struct web_req *r, struct MHD_Connection *conn, const char *url,
                                  const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return fail(r, conn, MHD_HTTP_METHOD_NOT_ALLOWED, AG_INVALID_ARGUMENT,
                    "method not allowed: files are read with GET");
    const char *path = strcmp(url, "/") == 0 ? "/static/index.html" : url;
    const struct hub_web_asset *a = hub_web_assets;
    while (a->path && strcmp(a->path, path) != 0)
        a++;
    if (!a->path)
        return fail(r, conn, MHD_HTTP_NOT_FOUND, AG_NOT_FOUND, "no such file");
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && strcmp(inm, hub_web_assets_etag) == 0;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : a->len, fresh ? (void *)"" : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, hub_web_assets_etag);
    }
    return hub_web_call_send_resp(r, conn, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp,
                                  fresh ? NULL : content_type(path));
}

/* --- unary methods ---------------------------------------------------------------------------- */

static bool is_json(struct MHD_Connection *conn)
{
    const char *t = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n = strlen("application/json");
    return t && strncasecmp(t, "application/json", n) == 0 &&
           (t[n] == '\0' || t[n] == ';' || t[n] == ' ');
}

/* The request body as a message of d (an empty body: the empty message). */
static ProtobufCMessage *body_msg(struct web_req *r, const ProtobufCMessageDescriptor *d,
                                  struct ag_err *err)
{
    cJSON *j;
    if (r->body.len == 0) {
        j = cJSON_CreateObject();
    } else {
        const char *end = NULL;
        j = cJSON_ParseWithLengthOpts(r->body.s, r->body.len, &end, false);
        if (!j) {
            ag_err_set(err, AG_INVALID_ARGUMENT, "the body is not JSON (at byte %zu)",
                       end ? (size_t)(end - r->body.s) : (size_t)0);
            return NULL;
        }
    }
    ProtobufCMessage *m = ag_pbjson_decode(d, j, err);
    cJSON_Delete(j);
    return m;
}

static enum MHD_Result serve_unary(struct web_req *r, struct MHD_Connection *conn,
                                   const ProtobufCMethodDescriptor *md)
{
    struct ag_err err = AG_ERR_INIT;
    struct web_cred cred;
    if (hub_web_call_caller(r->w, conn, &cred, &err) != 0)
        return hub_web_call_send_error(r, conn, 0, &err);
    if (!is_json(conn)) {
        hub_web_call_cred_release(&cred);
        return fail(r, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, AG_INVALID_ARGUMENT,
                    "send the request as Content-Type: application/json");
    }
    ProtobufCMessage *req = body_msg(r, md->input, &err);
    if (!req) {
        hub_web_call_cred_release(&cred);
        return hub_web_call_send_error(r, conn, 0, &err);
    }
    char path[128];
    snprintf(path, sizeof(path), HUB_WEB_SERVICE_PATH "%s", md->name);
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    void *resp = NULL;
    int rc = hub_web_call_unary(r->w, path, req, md->output, &cred, &arena, &resp, &err);
    hub_web_call_cred_release(&cred);
    protobuf_c_message_free_unpacked(req, NULL);
    enum MHD_Result res = rc == 0 ? hub_web_call_send_json(r, conn, MHD_HTTP_OK,
                                                           ag_pbjson_encode(resp), NULL)
                                  : hub_web_call_send_error(r, conn, 0, &err);
    ag_arena_release(&arena);
    return res;
}

/* --- sign-in ---------------------------------------------------------------------------------- */

/* POST /api/v1/login {"token": ...}: the token is checked with a Ping made with it, then kept in
 * an HttpOnly cookie. On a plaintext hub there is nobody to sign in as: 200, no cookie. */
static enum MHD_Result serve_login(struct web_req *r, struct MHD_Connection *conn)
{
    struct ag_err err = AG_ERR_INIT;
    if (!is_json(conn))
        return fail(r, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, AG_INVALID_ARGUMENT,
                    "send the request as Content-Type: application/json");
    cJSON *j = r->body.len ? cJSON_ParseWithLength(r->body.s, r->body.len) : NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "token");
    if (!cJSON_IsString(t) || !hub_web_call_token_ok(t->valuestring)) {
        cJSON_Delete(j);
        return fail(r, conn, 0, AG_INVALID_ARGUMENT, "send {\"token\": \"...\"}");
    }
    if (!r->w->tls) {
        cJSON_Delete(j);
        return hub_web_call_send_json(r, conn, MHD_HTTP_OK, cJSON_CreateObject(), NULL);
    }
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    Agentry__V1__PingRequest ping = AGENTRY__V1__PING_REQUEST__INIT;
    void *resp;
    struct web_cred cred = {.token = t->valuestring};
    int rc = hub_web_call_unary(r->w, HUB_WEB_SERVICE_PATH "Ping", &ping.base,
                                &agentry__v1__ping_response__descriptor, &cred, &arena, &resp,
                                &err);
    ag_arena_release(&arena);
    char cookie[HUB_WEB_MAX_TOKEN + 96];
    snprintf(cookie, sizeof(cookie),
             HUB_WEB_COOKIE "=%s; Path=/; HttpOnly; Secure; SameSite=Strict", t->valuestring);
    cJSON_Delete(j);
    if (rc != 0)
        return hub_web_call_send_error(r, conn, 0, &err);
    return hub_web_call_send_json(r, conn, MHD_HTTP_OK, cJSON_CreateObject(), cookie);
}

static enum MHD_Result serve_logout(struct web_req *r, struct MHD_Connection *conn)
{
    return hub_web_call_send_json(r, conn, MHD_HTTP_OK, cJSON_CreateObject(),
                                  HUB_WEB_COOKIE
                                  "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
}

/* --- routing ---------------------------------------------------------------------------------- */

static enum MHD_Result serve_api(struct web_req *r, struct MHD_Connection *conn, const char *url,
                                 const char *method)
{
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (strcmp(url, "/api/v1/login") == 0 && post)
        return serve_login(r, conn);
    if (strcmp(url, "/api/v1/logout") == 0 && post)
        return serve_logout(r, conn);
    if (strncmp(url, WEB_API_PREFIX, strlen(WEB_API_PREFIX)) != 0)
        return fail(r, conn, MHD_HTTP_NOT_FOUND, AG_NOT_FOUND, "no such API path");
    const char *name = url + strlen(WEB_API_PREFIX);
    const ProtobufCMethodDescriptor *md = protobuf_c_service_descriptor_get_method_by_name(
        &agentry__v1__agent_hub__descriptor, name);
    if (!md || strcmp(name, "ImportAgent") == 0)
        return fail(r, conn, MHD_HTTP_NOT_FOUND, AG_UNIMPLEMENTED,
                    md ? "ImportAgent is not served over HTTP: use 'agentry import'"
                       : "no such AgentHub method");
    bool trace = strcmp(name, "Trace") == 0;
    if (trace && strcmp(method, MHD_HTTP_METHOD_GET) == 0)
        return hub_web__serve_trace(r, conn);
    if (!trace && post)
        return serve_unary(r, conn, md);
    return fail(r, conn, MHD_HTTP_METHOD_NOT_ALLOWED, AG_INVALID_ARGUMENT,
                trace ? "Trace is a stream: GET it (text/event-stream)"
                      : "method not allowed: call with POST");
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    struct hub_web *w = cls;
    struct web_req *r = *con_cls;
    if (!r) {
        r = ag_xcalloc(1, sizeof(*r));
        r->w = w;
        r->start_ns = ag_now_mono_ns();
        r->method = ag_xstrdup(method);
        r->url = ag_xstrdup(url);
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > WEB_MAX_BODY)
            return fail(r, conn, MHD_HTTP_CONTENT_TOO_LARGE, AG_RESOURCE_EXHAUSTED,
                        "the body is over 1 MiB");
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->body.len + *upload_size > WEB_MAX_BODY)
            r->too_big = true;
        else
            ag_strbuf_add(&r->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_big)
        return fail(r, conn, MHD_HTTP_CONTENT_TOO_LARGE, AG_RESOURCE_EXHAUSTED,
                    "the body is over 1 MiB");
    pthread_mutex_lock(&w->lock);
    bool stopping = w->stopping;
    pthread_mutex_unlock(&w->lock);
    if (stopping)
        return fail(r, conn, 0, AG_UNAVAILABLE, "the hub is shutting down");
    if (strncmp(url, "/api/", 5) == 0)
        return serve_api(r, conn, url, method);
    return serve_file(r, conn, url, method);
}

/* One debug line per request, when it is over. */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)conn;
    struct web_req *r = *con_cls;
    if (!r)
        return;
    ag_log_debug("web.served", "method=%s path=%s status=%u ok=%d took_us=%" PRId64, r->method,
                 ag_log_q(r->url), r->status, why == MHD_REQUEST_TERMINATED_COMPLETED_OK,
                 (ag_now_mono_ns() - r->start_ns) / 1000);
    free(r->body.s);
    free(r->method);
    free(r->url);
    free(r);
    *con_cls = NULL;
}

/* --- lifecycle -------------------------------------------------------------------------------- */

static char *read_file(const char *path, struct ag_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read '%s' for HTTPS", path);
        return NULL;
    }
    struct ag_strbuf b = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ag_strbuf_add(&b, buf, n);
    fclose(f);
    if (!b.s)
        ag_strbuf_add(&b, "", 0);
    return b.s;
}

/* The loopback address of the hub's gRPC port: its --listen host, unless that names every
 * interface (or none), which loopback reaches as 127.0.0.1 (or ::1). */
static void loopback_target(const char *listen, int port, char *buf, size_t cap)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (hl == 0 || (hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0))
        snprintf(buf, cap, "127.0.0.1:%d", port);
    else if (hl == 4 && strncmp(listen, "[::]", 4) == 0)
        snprintf(buf, cap, "[::1]:%d", port);
    else
        snprintf(buf, cap, "%.*s:%d", (int)hl, listen, port);
}

int hub_web_start(struct hub_web *w, struct ag_err *err)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (w->tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        {w->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, w->key_pem},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, w->cert_pem},
        {MHD_OPTION_HTTPS_MEM_TRUST, 0, w->ca_pem}, /* asks browsers for a certificate */
        {MHD_OPTION_END, 0, NULL}};
    w->d = MHD_start_daemon(flags, 0, NULL, NULL, answer, w, MHD_OPTION_LISTEN_SOCKET, w->fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HUB_WEB_MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, w, MHD_OPTION_ARRAY, tls_opts,
                            MHD_OPTION_END);
    if (!w->d)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot serve the dashboard on '%s': the HTTP server did not start%s",
                          w->listen, w->tls ? " (check the hub's certificate and key)" : "");
    ag_log_info("web.listening", "addr=%s port=%d tls=%d", ag_log_q(w->listen), w->port, w->tls);
    return 0;
}

struct hub_web *hub_web_new(const struct hub_web_opts *o, struct ag_err *err)
{
    if (o->tls && !o->tls->client_cert_optional) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "--http-listen on a hub with TLS needs --policy: the dashboard calls the hub "
                   "without a certificate of its own, with its user's token or certificate");
        return NULL;
    }
    struct hub_web *w = ag_xcalloc(1, sizeof(*w));
    w->tls = o->tls != NULL;
    w->hub = o->hub;
    pthread_mutex_init(&w->lock, NULL);
    ag_cond_init_mono(&w->idle);
    rpc_client_init();
    char target[300];
    loopback_target(o->hub_listen, o->hub_port, target, sizeof(target));
    struct rpc_tls_files ca_only = {.ca = o->tls ? o->tls->ca : NULL};
    struct rpc_channel_opts co = {.tls = o->tls ? &ca_only : NULL};
    w->fd = -1;
    w->ch = rpc_channel_new(target, &co, err);
    if (!w->ch)
        goto fail;
    if (o->tls) {
        w->cert_pem = read_file(o->tls->cert, err);
        w->key_pem = w->cert_pem ? read_file(o->tls->key, err) : NULL;
        w->ca_pem = w->key_pem ? read_file(o->tls->ca, err) : NULL;
        if (!w->ca_pem)
            goto fail;
    }
    w->fd = ag_httpd_listen(o->listen, "the dashboard", &w->port, err);
    if (w->fd < 0)
        goto fail;
    w->listen = ag_xstrdup(o->listen);
    return w;
fail:
    hub_web_free(w);
    return NULL;
}

/* Wait (w->lock held) until no call is under way, or ms passed. */
static void wait_idle(struct hub_web *w, int64_t ms)
{
    int64_t deadline = ag_deadline_in_ms(ms);
    while ((w->calls || w->streams) && ag_cond_wait_until(&w->idle, &w->lock, deadline))
        ;
}

/* The hub has already ended its streams (hub_stop's end_streams): a moment first for SSE
 * clients to receive that end, then whatever is left is cancelled; closing the connections
 * comes last, so that each stream's final event goes out before its socket closes. */
void hub_web_stop(struct hub_web *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    wait_idle(w, WEB_STOP_ENDING_MS);
    for (struct web_call *c = w->calls; c; c = c->next)
        rpc_async_cancel(&c->a);
    wait_idle(w, WEB_STOP_CANCEL_MS);
    pthread_mutex_unlock(&w->lock);
    if (w->d) {
        MHD_stop_daemon(w->d); /* joins the connection threads; does not close our socket */
        w->d = NULL;
    }
}

void hub_web_free(struct hub_web *w)
{
    if (!w)
        return;
    hub_web_stop(w);
    if (w->fd >= 0)
        close(w->fd);
    rpc_channel_free(w->ch);
    rpc_client_shutdown();
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->idle);
    free(w->cert_pem);
    free(w->key_pem);
    free(w->ca_pem);
    free(w->listen);
    free(w);
}
