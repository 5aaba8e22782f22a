/* hub/web_call.c - one dashboard request's business with the hub (web_internal.h): who the
 * caller is (a bearer token, or a browser's client certificate verified against the hub's CA
 * with GnuTLS, libmicrohttpd's TLS library), the gRPC call made for it on the loopback channel,
 * and the answer sent back (the gRPC status as an HTTP status and a JSON body).
 *
 * On a TLS hub the caller's token rides on the call as call credentials; a certificate is
 * forwarded with the process's secret (hub_authn_forward_secret), which hub/authn.c requires
 * before it takes the certificate as the caller's.
 *
 * Invariant: every gRPC call under way is on w->calls (under w->lock), so hub_web_stop can cancel
 * them all; a call is removed before it is released. Once w->stopping is set no call starts. */
#include <gnutls/gnutls.h>
#include <grpc/support/string_util.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/authn.h"
#include "hub/web_internal.h"

#define WEB_UNARY_TIMEOUT_MS (10 * 60 * 1000) /* Invoke may wait for a whole turn */

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
int hub_web_call_start(struct hub_web *w, struct web_call *c, grpc_completion_queue *cq,
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
void hub_web_call_end(struct hub_web *w, struct web_call *c)
{
    pthread_mutex_lock(&w->lock);
    if (c->listed && c->prev)
        c->prev->next = c->next;
    else if (c->listed)
        w->calls = c->next;
    if (c->listed && c->next)
        c->next->prev = c->prev;
    c->listed = false;
    if (!w->calls && !w->streams)
        pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
    rpc_async_release(&c->a);
}

void hub_web_call_cq_destroy(grpc_completion_queue *cq, bool pluck)
{
    grpc_completion_queue_shutdown(cq);
    gpr_timespec inf = gpr_inf_future(GPR_CLOCK_REALTIME);
    while ((pluck ? grpc_completion_queue_pluck(cq, NULL, inf, NULL)
                  : grpc_completion_queue_next(cq, inf, NULL))
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

int hub_web_call_unary(struct hub_web *w, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, const struct web_cred *cred,
                       struct ag_arena *arena, void **resp, struct ag_err *err)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    struct web_call c;
    int rc = hub_web_call_start(w, &c, cq, method, cred, ag_deadline_in_ms(WEB_UNARY_TIMEOUT_MS),
                                err);
    if (rc == 0) {
        if (rpc_async_unary(&c.a, rpc_pb_pack(req), &c, err) == 0) {
            grpc_completion_queue_pluck(cq, &c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            rc = rpc_async_status(&c.a, err);
            grpc_byte_buffer *bb = rpc_async_recv_take(&c.a);
            if (rc == 0 && resp_desc && !(*resp = rpc_pb_unpack(bb, resp_desc, arena, err))) {
                err->code = AG_INTERNAL; /* the hub broke its own contract */
                rc = -1;
            }
            grpc_byte_buffer_destroy(bb);
        } else {
            rc = -1;
        }
        hub_web_call_end(w, &c);
    }
    hub_web_call_cq_destroy(cq, true);
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
enum MHD_Result hub_web_call_send_resp(struct web_req *r, struct MHD_Connection *conn,
                                       unsigned status, struct MHD_Response *resp, const char *type)
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
enum MHD_Result hub_web_call_send_json(struct web_req *r, struct MHD_Connection *conn,
                                       unsigned status, cJSON *j, const char *set_cookie)
{
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
                                                                MHD_RESPMEM_MUST_FREE);
    if (resp && set_cookie)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
    return hub_web_call_send_resp(r, conn, status, resp, "application/json");
}

cJSON *hub_web_call_error_json(const struct ag_err *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", ag_code_name(err->code));
    cJSON_AddStringToObject(j, "message", err->msg);
    return j;
}

/* {"code":..., "message":...} with the status the code maps to (or http_code if not 0). */
enum MHD_Result hub_web_call_send_error(struct web_req *r, struct MHD_Connection *conn,
                                        unsigned http_code, const struct ag_err *err)
{
    unsigned status = http_code ? http_code : http_status(err->code);
    if (status == MHD_HTTP_UNAUTHORIZED) {
        cJSON *j = hub_web_call_error_json(err);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
                                                                    MHD_RESPMEM_MUST_FREE);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return hub_web_call_send_resp(r, conn, status, resp, "application/json");
    }
    return hub_web_call_send_json(r, conn, status, hub_web_call_error_json(err), NULL);
}

/* --- credentials ------------------------------------------------------------------------------ */

/* A token fit to be sent as a header value and kept as a cookie value: printable ASCII without
 * the cookie's separators, not too long. */
bool hub_web_call_token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > HUB_WEB_MAX_TOKEN)
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

int hub_web_call_caller(struct hub_web *w, struct MHD_Connection *conn, struct web_cred *cred,
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
                        : MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, HUB_WEB_COOKIE);
    if (t && !hub_web_call_token_ok(t))
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

void hub_web_call_cred_release(struct web_cred *cred)
{
    free(cred->cert);
    cred->cert = NULL;
}
