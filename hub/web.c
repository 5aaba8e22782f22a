/* hub/web.c - see web.h; the contract is docs/dashboard.md ("The HTTP API").
 *
 * A request is answered in three kinds: a file of the table the build embeds (hub/web_assets.h),
 * a unary AgentHub method (the JSON body decoded by common/pbjson.h into the method's request,
 * one blocking call on a private pluck queue), or Trace as Server-Sent Events (hub/web_sse.c).
 *
 * Every call goes to the hub's own gRPC port over one shared loopback channel. On a TLS hub the
 * caller's bearer token rides on the call as call credentials, so the gRPC side authenticates,
 * authorises and audits it exactly as if the browser had called. A browser without a token may
 * present a client certificate (asked for, not required, in the TLS handshake): this file
 * verifies it against the hub's CA with GnuTLS, libmicrohttpd's TLS library, and forwards it on
 * the call with the process's secret (hub_authn_forward_secret), which hub/authn.c requires
 * before it takes the certificate as the caller's. Nothing else is checked here. The channel
 * presents no client certificate of its own: the hub must accept callers without one, which it
 * does with a --policy (the file that holds the tokens).
 *
 * Invariant: every gRPC call under way is on w->calls (under w->lock), so hub_web_stop can cancel
 * them all; a call is removed before it is released. Once w->stopping is set no call starts. */
#include "hub/web.h"

#include <gnutls/gnutls.h>
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
#define WEB_COOKIE "agentry_token"
#define WEB_MAX_TOKEN 512
#define WEB_UNARY_TIMEOUT_MS (10 * 60 * 1000) /* Invoke may wait for a whole turn */
#define WEB_STOP_ENDING_MS 500 /* at stop, for the calls the hub ended to deliver their end */
#define WEB_STOP_CANCEL_MS 1000
#define WEB_CSP                                                                                    \
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "          \
    "form-action 'self'"

/* --- the calls under way ---------------------------------------------------------------------- */

/* The forwarding plugin's get_metadata: the certificate (state) and the secret, synchronously
 * (gRPC takes the slices). */
static int forward_md(void *state, grpc_auth_metadata_context ctx,
                      grpc_credentials_plugin_metadata_cb cb, void *user_data,
                      grpc_metadata md[GRPC_METADATA_CREDENTIALS_PLUGIN_SYNC_MAX], size_t *n,
                      grpc_status_code *status, const char **details)
{
    (void)ctx, (void)cb, (void)user_data;
    md[0].key = grpc_slice_from_static_string(HUB_AUTHN_FWD_CERT_MD);
    md[0].value = grpc_slice_from_copied_string(state);
    md[1].key = grpc_slice_from_static_string(HUB_AUTHN_FWD_SECRET_MD);
    md[1].value = grpc_slice_from_copied_string(hub_authn_forward_secret());
    *n = 2;
    *status = GRPC_STATUS_OK;
    *details = NULL;
    return 1;
}

static char *forward_debug(void *state)
{
    (void)state;
    return gpr_strdup("agentry dashboard: a forwarded client certificate"); /* no secret */
}

/* Call credentials carrying a copy of cert to the hub (hub/authn.c, forwarded_cert). */
static grpc_call_credentials *forward_creds(const char *cert)
{
    grpc_metadata_credentials_plugin p = {.get_metadata = forward_md,
                                          .debug_string = forward_debug,
                                          .destroy = free,
                                          .state = ag_xstrdup(cert),
                                          .type = "agentry-forwarded-cert"};
    return grpc_metadata_credentials_create_from_plugin(p, GRPC_PRIVACY_AND_INTEGRITY, NULL);
}

/* Start c's call of method ("/agentry.v1.AgentHub/Ping") on cq with the caller's credentials. -1
 * with err when the server is stopping or gRPC refuses. */
int hub_web__call_start(struct hub_web *w, struct web_call *c, grpc_completion_queue *cq,
                        const char *method, const struct web_cred *cred, int64_t deadline,
                        struct ag_err *err)
{
    c->listed = false;
    if (rpc_async_start(&c->a, w->ch, cq, method, deadline, err) != 0)
        return -1;
    grpc_call_credentials *creds = NULL;
    if (cred && w->tls && cred->token)
        creds = grpc_access_token_credentials_create(cred->token, NULL);
    else if (cred && w->tls && cred->cert)
        creds = forward_creds(cred->cert);
    if (creds) {
        grpc_call_error ce = grpc_call_set_credentials(c->a.call, creds);
        grpc_call_credentials_release(creds);
        if (ce != GRPC_CALL_OK) {
            rpc_async_release(&c->a);
            return ag_err_set(err, AG_INTERNAL, "cannot attach the credentials to the call: %s",
                              grpc_call_error_to_string(ce));
        }
    }
    pthread_mutex_lock(&w->lock);
    bool stopping = w->stopping;
    if (!stopping) {
        c->prev = NULL;
        c->next = w->calls;
        if (w->calls)
            w->calls->prev = c;
        w->calls = c;
        c->listed = true;
    }
    pthread_mutex_unlock(&w->lock);
    if (stopping) {
        rpc_async_release(&c->a);
        return ag_err_set(err, AG_UNAVAILABLE, "the hub is shutting down");
    }
    return 0;
}

/* Take c off the list (if call_start put it there) and release it; no batch may be
 * outstanding. */
void hub_web__call_end(struct hub_web *w, struct web_call *c)
{
    pthread_mutex_lock(&w->lock);
    if (c->listed && c->prev)
        c->prev->next = c->next;
    else if (c->listed)
        w->calls = c->next;
    if (c->listed && c->next)
        c->next->prev = c->prev;
    c->listed = false;
    if (!w->calls)
        pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
    rpc_async_release(&c->a);
}

void hub_web__cq_destroy(grpc_completion_queue *cq, bool pluck)
{
    grpc_completion_queue_shutdown(cq);
    gpr_timespec inf = gpr_inf_future(GPR_CLOCK_REALTIME);
    while ((pluck ? grpc_completion_queue_pluck(cq, NULL, inf, NULL)
                  : grpc_completion_queue_next(cq, inf, NULL))
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* A blocking unary call of method with cred; *resp decoded into arena. */
static int unary(struct hub_web *w, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, const struct web_cred *cred,
                 struct ag_arena *arena, void **resp, struct ag_err *err)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    struct web_call c;
    int rc = hub_web__call_start(w, &c, cq, method, cred, ag_deadline_in_ms(WEB_UNARY_TIMEOUT_MS),
                                 err);
    if (rc == 0) {
        if (rpc_async_unary(&c.a, rpc_pb_pack(req), &c, err) == 0) {
            grpc_completion_queue_pluck(cq, &c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            rc = rpc_async_status(&c.a, err);
            grpc_byte_buffer *bb = rpc_async_recv_take(&c.a);
            if (rc == 0 && !(*resp = rpc_pb_unpack(bb, resp_desc, arena, err))) {
                err->code = AG_INTERNAL; /* the hub broke its own contract */
                rc = -1;
            }
            grpc_byte_buffer_destroy(bb);
        } else {
            rc = -1;
        }
        hub_web__call_end(w, &c);
    }
    hub_web__cq_destroy(cq, true);
    return rc;
}

/* --- responses -------------------------------------------------------------------------------- */

static unsigned http_status(enum ag_code code)
{
    switch (code) {
    case AG_OK:
        return MHD_HTTP_OK;
    case AG_INVALID_ARGUMENT:
    case AG_FAILED_PRECONDITION:
    case AG_OUT_OF_RANGE:
        return MHD_HTTP_BAD_REQUEST;
    case AG_UNAUTHENTICATED:
        return MHD_HTTP_UNAUTHORIZED;
    case AG_PERMISSION_DENIED:
        return MHD_HTTP_FORBIDDEN;
    case AG_NOT_FOUND:
        return MHD_HTTP_NOT_FOUND;
    case AG_ALREADY_EXISTS:
    case AG_ABORTED:
        return MHD_HTTP_CONFLICT;
    case AG_RESOURCE_EXHAUSTED:
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case AG_UNIMPLEMENTED:
        return MHD_HTTP_NOT_IMPLEMENTED;
    case AG_UNAVAILABLE:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case AG_DEADLINE_EXCEEDED:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* Queue resp (consumed) with the headers every answer carries. */
enum MHD_Result hub_web__send_resp(struct web_req *r, struct MHD_Connection *conn, unsigned status,
                                   struct MHD_Response *resp, const char *type)
{
    if (!resp)
        return MHD_NO;
    if (type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy", WEB_CSP);
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (!MHD_get_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    r->status = status;
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* j (consumed) as the body. */
static enum MHD_Result send_json(struct web_req *r, struct MHD_Connection *conn, unsigned status,
                                 cJSON *j, const char *set_cookie)
{
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
                                                                MHD_RESPMEM_MUST_FREE);
    if (resp && set_cookie)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
    return hub_web__send_resp(r, conn, status, resp, "application/json");
}

cJSON *hub_web__error_json(const struct ag_err *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", ag_code_name(err->code));
    cJSON_AddStringToObject(j, "message", err->msg);
    return j;
}

/* {"code":..., "message":...} with the status the code maps to (or http_code if not 0). */
enum MHD_Result hub_web__send_error(struct web_req *r, struct MHD_Connection *conn,
                                    unsigned http_code, const struct ag_err *err)
{
    unsigned status = http_code ? http_code : http_status(err->code);
    if (status == MHD_HTTP_UNAUTHORIZED) {
        cJSON *j = hub_web__error_json(err);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
                                                                    MHD_RESPMEM_MUST_FREE);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return hub_web__send_resp(r, conn, status, resp, "application/json");
    }
    return send_json(r, conn, status, hub_web__error_json(err), NULL);
}

static enum MHD_Result fail(struct web_req *r, struct MHD_Connection *conn, unsigned http_code,
                            enum ag_code code, const char *msg)
{
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, code, "%s", msg);
    return hub_web__send_error(r, conn, http_code, &err);
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
    return hub_web__send_resp(r, conn, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp,
                              fresh ? NULL : content_type(path));
}

/* --- credentials ------------------------------------------------------------------------------ */

/* A token fit to be sent as a header value and kept as a cookie value: printable ASCII without
 * the cookie's separators, not too long. */
static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > WEB_MAX_TOKEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~' || strchr(";,\"\\", t[i]))
            return false;
    return true;
}

/* The client certificate the browser presented on conn, verified against the hub's CA: 0 with
 * *pem (malloc'd PEM of the leaf), or with *pem NULL if it presented none; -1 with err
 * (UNAUTHENTICATED) if it presented one that does not verify. libmicrohttpd asks for one (its
 * trust option: GNUTLS_CERT_REQUEST) but lets the handshake succeed either way. */
static int client_cert(struct MHD_Connection *conn, char **pem, struct ag_err *err)
{
    *pem = NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
        conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned n = 0;
    const gnutls_datum_t *chain = s ? gnutls_certificate_get_peers(s, &n) : NULL;
    if (!chain || n == 0)
        return 0;
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers2(s, &status);
    if (rc < 0 || status != 0) {
        gnutls_datum_t why = {NULL, 0};
        if (rc < 0 ||
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) < 0)
            why.data = NULL;
        ag_err_set(err, AG_UNAUTHENTICATED,
                   "the client certificate was not accepted: %s (the dashboard takes "
                   "certificates signed by the hub's CA, or a bearer token)",
                   why.data ? (const char *)why.data : gnutls_strerror(rc));
        gnutls_free(why.data);
        return -1;
    }
    gnutls_datum_t out = {NULL, 0};
    if (gnutls_pem_base64_encode2("CERTIFICATE", &chain[0], &out) < 0)
        return ag_err_set(err, AG_INTERNAL, "cannot encode the client certificate as PEM");
    *pem = ag_xstrndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    return 0;
}

int hub_web__caller(struct hub_web *w, struct MHD_Connection *conn, struct web_cred *cred,
                    struct ag_err *err)
{
    cred->token = NULL;
    cred->cert = NULL;
    if (!w->tls)
        return 0;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    const char *t = h && strncasecmp(h, "Bearer ", 7) == 0
                        ? h + 7
                        : MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, WEB_COOKIE);
    if (t && !token_ok(t))
        return ag_err_set(err, AG_UNAUTHENTICATED, "the bearer token is malformed");
    if (t) {
        cred->token = t; /* a token wins over a certificate, as on gRPC */
        return 0;
    }
    if (client_cert(conn, &cred->cert, err) != 0)
        return -1;
    if (!cred->cert)
        return ag_err_set(err, AG_UNAUTHENTICATED,
                          "sign in: POST /api/v1/login with {\"token\": ...}, send "
                          "'Authorization: Bearer TOKEN', or present a client certificate "
                          "signed by the hub's CA");
    return 0;
}

void hub_web__cred_release(struct web_cred *cred)
{
    free(cred->cert);
    cred->cert = NULL;
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
    if (hub_web__caller(r->w, conn, &cred, &err) != 0)
        return hub_web__send_error(r, conn, 0, &err);
    if (!is_json(conn)) {
        hub_web__cred_release(&cred);
        return fail(r, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, AG_INVALID_ARGUMENT,
                    "send the request as Content-Type: application/json");
    }
    ProtobufCMessage *req = body_msg(r, md->input, &err);
    if (!req) {
        hub_web__cred_release(&cred);
        return hub_web__send_error(r, conn, 0, &err);
    }
    char path[128];
    snprintf(path, sizeof(path), HUB_WEB_SERVICE_PATH "%s", md->name);
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    void *resp = NULL;
    int rc = unary(r->w, path, req, md->output, &cred, &arena, &resp, &err);
    hub_web__cred_release(&cred);
    protobuf_c_message_free_unpacked(req, NULL);
    enum MHD_Result res = rc == 0 ? send_json(r, conn, MHD_HTTP_OK, ag_pbjson_encode(resp), NULL)
                                  : hub_web__send_error(r, conn, 0, &err);
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
    if (!cJSON_IsString(t) || !token_ok(t->valuestring)) {
        cJSON_Delete(j);
        return fail(r, conn, 0, AG_INVALID_ARGUMENT, "send {\"token\": \"...\"}");
    }
    if (!r->w->tls) {
        cJSON_Delete(j);
        return send_json(r, conn, MHD_HTTP_OK, cJSON_CreateObject(), NULL);
    }
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    Agentry__V1__PingRequest ping = AGENTRY__V1__PING_REQUEST__INIT;
    void *resp;
    struct web_cred cred = {.token = t->valuestring};
    int rc = unary(r->w, HUB_WEB_SERVICE_PATH "Ping", &ping.base,
                   &agentry__v1__ping_response__descriptor, &cred, &arena, &resp, &err);
    ag_arena_release(&arena);
    char cookie[WEB_MAX_TOKEN + 96];
    snprintf(cookie, sizeof(cookie), WEB_COOKIE "=%s; Path=/; HttpOnly; Secure; SameSite=Strict",
             t->valuestring);
    cJSON_Delete(j);
    if (rc != 0)
        return hub_web__send_error(r, conn, 0, &err);
    return send_json(r, conn, MHD_HTTP_OK, cJSON_CreateObject(), cookie);
}

static enum MHD_Result serve_logout(struct web_req *r, struct MHD_Connection *conn)
{
    return send_json(r, conn, MHD_HTTP_OK, cJSON_CreateObject(),
                     WEB_COOKIE "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
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

static int start_daemon(struct hub_web *w, const struct hub_web_opts *o, struct ag_err *err)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (o->tls) {
        w->cert_pem = read_file(o->tls->cert, err);
        w->key_pem = w->cert_pem ? read_file(o->tls->key, err) : NULL;
        w->ca_pem = w->key_pem ? read_file(o->tls->ca, err) : NULL;
        if (!w->ca_pem)
            return -1;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {o->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, w->key_pem},
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
                          o->listen, o->tls ? " (check the hub's certificate and key)" : "");
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
    w->fd = ag_httpd_listen(o->listen, "the dashboard", &w->port, err);
    if (w->fd < 0 || start_daemon(w, o, err) != 0)
        goto fail;
    ag_log_info("web.listening", "addr=%s port=%d tls=%d", ag_log_q(o->listen), w->port, w->tls);
    return w;
fail:
    hub_web_free(w);
    return NULL;
}

/* Wait (w->lock held) until no call is under way, or ms passed. */
static void wait_idle(struct hub_web *w, int64_t ms)
{
    int64_t deadline = ag_deadline_in_ms(ms);
    while (w->calls && ag_cond_wait_until(&w->idle, &w->lock, deadline))
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
    free(w);
}
