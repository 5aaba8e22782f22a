/* hub/web_internal.h - private to hub/web*.c: the server's state, one request's, and the
 * helpers of hub/web_call.c that both web.c and web_sse.c use (the calls under way, credentials,
 * responses).
 * Threads: see web.h; w->lock guards w->calls, w->streams and w->stopping. */
#ifndef AGENTRY_HUB_WEB_INTERNAL_H
#define AGENTRY_HUB_WEB_INTERNAL_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/err.h"
#include "common/rpc/client.h"
#include "common/strbuf.h"

struct hub;

#define HUB_WEB_SERVICE_PATH "/agentry.v1.AgentHub/"
#define HUB_WEB_COOKIE "agentry_token" /* the token a sign-in sets */
#define HUB_WEB_MAX_TOKEN 512          /* the longest token taken */

/* A gRPC call under way, listed on hub_web.calls so that hub_web_stop can cancel it. */
struct web_call {
    struct rpc_async_call a;
    struct web_call *prev, *next; /* on hub_web.calls while listed */
    bool listed;
};

struct hub_web {
    struct hub *hub; /* borrowed: the hub whose logs SSE streams follow in-process */
    struct MHD_Daemon *d;
    struct rpc_channel *ch; /* owned: the loopback channel every call shares */
    int fd, port;
    bool tls;
    char *cert_pem, *key_pem, *ca_pem; /* owned: libmicrohttpd reads them for its whole life */
    char *listen;                      /* owned: --http-listen, for messages */
    pthread_mutex_t lock;              /* guards calls, streams and stopping */
    pthread_cond_t idle;               /* signalled when calls and streams are both none */
    struct web_call *calls;
    unsigned streams; /* SSE streams that have not yet handed libmicrohttpd their last byte */
    bool stopping;
};

/* One request, from its headers to its completion (libmicrohttpd's con_cls). */
struct web_req {
    struct hub_web *w;
    struct ag_strbuf body;
    bool too_big;
    unsigned status;
    int64_t start_ns;
    char *method, *url; /* owned copies, for the log line */
};

/* Who a request is on a TLS hub: a bearer token, or else the browser's verified client
 * certificate (a token wins when both are there, as on gRPC). Both NULL on a plaintext hub. */
struct web_cred {
    const char *token; /* borrowed from the request */
    char *cert;        /* owned PEM of the leaf certificate */
};

/* Start c's call of method ("/agentry.v1.AgentHub/Ping") on cq with the caller's credentials
 * (NULL: none) and list it. -1 with err when the server is stopping or gRPC refuses; c is then
 * released and not listed. */
int hub_web_call_start(struct hub_web *w, struct web_call *c, grpc_completion_queue *cq,
                       const char *method, const struct web_cred *cred, int64_t deadline,
                       struct ag_err *err);
/* A blocking call of method with cred, one request and at most one reply: *resp decoded into
 * arena, unless resp_desc is NULL (no reply wanted; a server stream's status is then all there
 * is). 0, or -1 with the call's status in err. */
int hub_web_call_unary(struct hub_web *w, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, const struct web_cred *cred,
                       struct ag_arena *arena, void **resp, struct ag_err *err);
/* Take c off the list (if it is on it) and release it; no batch may be outstanding. */
void hub_web_call_end(struct hub_web *w, struct web_call *c);
/* Shut cq down, drain it (a pluck or a next queue), destroy it. */
void hub_web_call_cq_destroy(grpc_completion_queue *cq, bool pluck);

/* Queue resp (consumed, may be NULL: MHD_NO) with type and the headers every answer carries. */
enum MHD_Result hub_web_call_send_resp(struct web_req *r, struct MHD_Connection *conn,
                                       unsigned status, struct MHD_Response *resp,
                                       const char *type);
/* {"code":..., "message":...} of err. */
cJSON *hub_web_call_error_json(const struct ag_err *err);
/* That body with the HTTP status err's code maps to (or http_code if not 0). */
enum MHD_Result hub_web_call_send_error(struct web_req *r, struct MHD_Connection *conn,
                                        unsigned http_code, const struct ag_err *err);
/* The caller's credentials: 0 with *cred filled (both NULL on a plaintext hub, whose callers
 * are all the anonymous admin; release it with hub_web_call_cred_release), or -1 with err
 * (UNAUTHENTICATED: none at all, a malformed token, or a certificate that does not verify). */
int hub_web_call_caller(struct hub_web *w, struct MHD_Connection *conn, struct web_cred *cred,
                        struct ag_err *err);
void hub_web_call_cred_release(struct web_cred *cred);

/* j (consumed) as the body, with a Set-Cookie header if set_cookie is not NULL. */
enum MHD_Result hub_web_call_send_json(struct web_req *r, struct MHD_Connection *conn,
                                       unsigned status, cJSON *j, const char *set_cookie);
/* A token fit to be sent as a header value and kept as a cookie value. */
bool hub_web_call_token_ok(const char *t);

/* GET .../Trace: the stream as Server-Sent Events (hub/web_sse.c). */
enum MHD_Result hub_web__serve_trace(struct web_req *r, struct MHD_Connection *conn);

#endif
