/* common/rpc/client.c - gRPC client helpers over the core API (see client.h).
 *
 * Threads: a channel may be shared by any number of threads. Its only mutable state is the cache
 * of registered-call handles, guarded by `lock`. Blocking calls, streams and waits for the
 * connection each own a private pluck completion queue, so they never see another call's events;
 * the queue lives exactly as long as its call or wait.
 *
 * Memory (grpc-core.md §7): send buffers are destroyed after their batch completed, received
 * buffers and metadata arrays by us, status details are grpc_slice_unref'd by whoever received
 * them. Every rpc_status_to_err() caller here unrefs the details itself; the function borrows. */
#include "common/rpc/client.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "common/clock.h"
#include "common/rpc/core.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"

#define RPC_DEFAULT_MAX_RECV (16 * 1024 * 1024)
/* The hub allows a ping every 10 s without data (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_
 * DATA_MS); pinging more often gets the connection closed with GOAWAY too_many_pings. 20 s leaves
 * a factor of two for timer jitter on both sides. */
#define RPC_DEFAULT_KEEPALIVE_MS 20000
#define RPC_DEFAULT_KEEPALIVE_TIMEOUT_MS 10000

struct rpc_method_handle {
    char *method; /* owned */
    void *handle; /* owned by the grpc channel */
};

struct rpc_channel {
    grpc_channel *ch;        /* owned */
    char *target;            /* owned */
    char *tls_ca, *tls_cert; /* owned; NULL for plaintext (named in handshake errors) */
    pthread_mutex_t lock;    /* guards methods, n, cap */
    struct rpc_method_handle *methods;
    size_t n, cap;
};

void rpc_client_init(void)
{
    rpc_core_init();
}

void rpc_client_shutdown(void)
{
    rpc_core_shutdown();
}

/* "host:port", "[v6]:port", or a grpc URI with a scheme we expect ("dns:", "ipv4:", ...). */
static bool target_ok(const char *t)
{
    static const char *const schemes[] = {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"};
    if (!*t)
        return false;
    for (const char *p = t; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return false;
    for (size_t i = 0; i < AG_ARRAY_SIZE(schemes); i++)
        if (strncmp(t, schemes[i], strlen(schemes[i])) == 0)
            return t[strlen(schemes[i])] != '\0';
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || colon[1] == '\0')
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    return *end == '\0' && isdigit((unsigned char)colon[1]) && port > 0 && port < 65536;
}

static grpc_arg int_arg(const char *key, int v)
{
    grpc_arg a;
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = v;
    return a;
}

struct rpc_channel *rpc_channel_new(const char *target, const struct rpc_channel_opts *o,
                                    struct ag_err *err)
{
    if (!target || !target_ok(target)) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "invalid address '%s': want host:port",
                   target ? target : "");
        return NULL;
    }
    struct rpc_channel_opts def = {0};
    if (!o)
        o = &def;
    grpc_arg args[8];
    size_t n = 0;
    args[n++] = int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                        o->max_recv_bytes > 0 ? o->max_recv_bytes : RPC_DEFAULT_MAX_RECV);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIME_MS,
                        o->keepalive_ms > 0 ? o->keepalive_ms : RPC_DEFAULT_KEEPALIVE_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o->keepalive_timeout_ms > 0
                                                           ? o->keepalive_timeout_ms
                                                           : RPC_DEFAULT_KEEPALIVE_TIMEOUT_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    /* Without this, the client stops pinging after 2 pings without data, and an idle channel's
     * dead peer goes unnoticed; the hub's ping policy above is what bounds the rate. */
    args[n++] = int_arg(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    /* One rpc_channel = one connection: otherwise channels to one target share a subchannel,
     * and `agentry bench --channels K` would still use a single TCP connection. */
    args[n++] = int_arg(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (o->max_backoff_ms > 0)
        args[n++] = int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, o->max_backoff_ms);
    grpc_arg ua;
    ua.type = GRPC_ARG_STRING;
    ua.key = GRPC_ARG_PRIMARY_USER_AGENT_STRING;
    ua.value.string = "agentry/" AGENTRY_VERSION;
    args[n++] = ua;
    grpc_channel_args cargs = {n, args};

    grpc_channel_credentials *creds = o->tls ? rpc_tls_channel_creds(o->tls, err)
                                             : grpc_insecure_credentials_create();
    if (!creds)
        return NULL;
    if (o->bearer && o->tls) {
        grpc_call_credentials *tok = grpc_access_token_credentials_create(o->bearer, NULL);
        grpc_channel_credentials *both = grpc_composite_channel_credentials_create(creds, tok,
                                                                                   NULL);
        grpc_call_credentials_release(tok);
        grpc_channel_credentials_release(creds);
        creds = both;
    }
    struct rpc_channel *ch = ag_xcalloc(1, sizeof(*ch));
    if (o->tls) {
        ch->tls_ca = ag_xstrdup(o->tls->ca);
        ch->tls_cert = o->tls->cert ? ag_xstrdup(o->tls->cert) : NULL;
    }
    ch->ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    ch->target = ag_xstrdup(target);
    pthread_mutex_init(&ch->lock, NULL);
    return ch;
}

void rpc_channel_free(struct rpc_channel *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->ch);
    for (size_t i = 0; i < ch->n; i++)
        free(ch->methods[i].method);
    free(ch->methods);
    pthread_mutex_destroy(&ch->lock);
    free(ch->target);
    free(ch->tls_ca);
    free(ch->tls_cert);
    free(ch);
}

grpc_channel *rpc_channel_grpc(struct rpc_channel *ch)
{
    return ch->ch;
}

void *rpc_channel_method(struct rpc_channel *ch, const char *method)
{
    pthread_mutex_lock(&ch->lock);
    void *h = NULL;
    for (size_t i = 0; i < ch->n && !h; i++)
        if (strcmp(ch->methods[i].method, method) == 0)
            h = ch->methods[i].handle;
    if (!h) {
        if (ch->n == ch->cap) {
            ch->cap = ch->cap ? ch->cap * 2 : 8;
            ch->methods = ag_xrealloc(ch->methods, ch->cap * sizeof(*ch->methods));
        }
        h = grpc_channel_register_call(ch->ch, method, NULL, NULL);
        ch->methods[ch->n].method = ag_xstrdup(method);
        ch->methods[ch->n++].handle = h;
    }
    pthread_mutex_unlock(&ch->lock);
    return h;
}

gpr_timespec rpc_deadline_ms(int64_t ms)
{
    return rpc_deadline_gpr(ag_deadline_in_ms(ms));
}

/* gRPC's monotonic clock counts from its own epoch (set when it initialised), not from
 * CLOCK_MONOTONIC's, so the deadline crosses over as the time left. */
gpr_timespec rpc_deadline_gpr(int64_t deadline)
{
    if (deadline == AG_DEADLINE_NONE)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_nanos(ag_deadline_left_ns(deadline), GPR_TIMESPAN));
}

int rpc_status_to_err(grpc_status_code status, grpc_slice details, struct ag_err *err)
{
    if (status == GRPC_STATUS_OK)
        return 0;
    enum ag_code code = status >= 0 && status <= GRPC_STATUS_UNAUTHENTICATED ? (enum ag_code)status
                                                                             : AG_UNKNOWN;
    size_t len = GRPC_SLICE_LENGTH(details);
    if (len == 0)
        return ag_err_set(err, code, "call failed with status %s", ag_code_name(code));
    /* One line for the user: a multi-line detail would break "error: ..." output. */
    ag_err_set(err, code, "%.*s", (int)len, (const char *)GRPC_SLICE_START_PTR(details));
    for (char *p = err ? err->msg : NULL; p && *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

/* grpc's own words for "no connection could be made", as opposed to a status the hub sent. */
static bool is_connect_failure(grpc_status_code status, grpc_slice details)
{
    static const char *const texts[] = {"failed to connect to all addresses",
                                        "DNS resolution failed", "empty address list",
                                        "Failed to connect to remote host"};
    if (status != GRPC_STATUS_UNAVAILABLE)
        return false;
    for (size_t i = 0; i < AG_ARRAY_SIZE(texts); i++)
        if (grpc_slice_buf_start_eq(details, texts[i], strlen(texts[i])))
            return true;
    return false;
}

/* grpc's own words stay in a "(detail: ...)" tail: they tell a refused connection from a server
 * that is not a hub (an HTTP server answers "Received http2 header with status: 404"), which
 * the CLI puts in words of its own (cmd/agentry/client.c). */
static int unreachable(const struct rpc_channel *ch, grpc_slice details, struct ag_err *err)
{
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n == 0)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot reach hub at '%s' (is 'agentry hub' running? set --hub or "
                          "AGENTRY_HUB)",
                          ch->target);
    ag_err_set(err, AG_UNAVAILABLE,
               "cannot reach hub at '%s' (is 'agentry hub' running? set --hub or AGENTRY_HUB) "
               "(detail: %.*s)",
               ch->target, (int)n, (const char *)GRPC_SLICE_START_PTR(details));
    for (char *p = err ? err->msg : NULL; p && *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

/* Only grpc's own connect failures become "cannot reach": a DEADLINE_EXCEEDED stays one, whatever
 * the channel's state afterwards. (A 1 ms deadline on a fresh channel to a live hub ends with the
 * channel still CONNECTING; calling that "cannot reach hub" was a lie. Whether such a call was
 * sent at all is what rpc_unary_sent's wait for the connection tells.) */
static bool details_have(grpc_slice details, const char *text)
{
    size_t n = GRPC_SLICE_LENGTH(details), tl = strlen(text);
    const char *p = (const char *)GRPC_SLICE_START_PTR(details);
    for (size_t i = 0; i + tl <= n; i++)
        if (memcmp(p + i, text, tl) == 0)
            return true;
    return false;
}

/* A connection that failed in its TLS handshake, in one line saying which side refused. With
 * TLS 1.3 the server checks our certificate after the client's side of the handshake is done,
 * so its refusal reaches us only as a closed socket. */
static int handshake_failure(const struct rpc_channel *ch, grpc_slice details, struct ag_err *err)
{
    if (ch->tls_ca && details_have(details, "certificate verify failed"))
        return ag_err_set(err, AG_UNAVAILABLE,
                          "the hub's certificate at '%s' is not signed by --ca '%s' (or has "
                          "expired, or does not name that host)",
                          ch->target, ch->tls_ca);
    if (ch->tls_ca && details_have(details, "wrong version number"))
        return ag_err_set(err, AG_UNAVAILABLE,
                          "the hub at '%s' does not speak TLS (it runs without --tls-dir)",
                          ch->target);
    if (ch->tls_ca && ch->tls_cert && details_have(details, "Socket closed"))
        return ag_err_set(err, AG_UNAVAILABLE,
                          "the hub at '%s' refused our certificate '%s' (not signed by its CA, "
                          "or expired)",
                          ch->target, ch->tls_cert);
    if (!ch->tls_ca && details_have(details, "Socket closed"))
        return ag_err_set(err, AG_UNAVAILABLE,
                          "the hub at '%s' closed the connection: it may require TLS (give "
                          "--tls-dir or set AGENTRY_TLS_DIR)",
                          ch->target);
    return unreachable(ch, details, err);
}

int rpc_channel_status_to_err(struct rpc_channel *ch, grpc_status_code status, grpc_slice details,
                              struct ag_err *err)
{
    int rc = rpc_status_to_err(status, details, err);
    if (rc < 0 && is_connect_failure(status, details))
        handshake_failure(ch, details, err);
    return rc;
}

/* Map and unref the details. */
static int call_status(struct rpc_channel *ch, grpc_status_code status, grpc_slice details,
                       struct ag_err *err)
{
    int rc = rpc_channel_status_to_err(ch, status, details, err);
    grpc_slice_unref(details);
    return rc;
}

static grpc_event pluck(grpc_completion_queue *cq, void *tag)
{
    return grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

/* Shut a pluck queue down once nothing is outstanding on it, drain it, destroy it. */
static void cq_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (pluck(cq, NULL).type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* --- waiting for the connection --------------------------------------------------------------- */

/* One step of the wait: block until the state leaves `from` or the deadline passes. False on the
 * deadline. */
static bool watch_change(struct rpc_channel *ch, grpc_completion_queue *cq,
                         grpc_connectivity_state from, gpr_timespec deadline)
{
    char tag;
    grpc_channel_watch_connectivity_state(ch->ch, from, deadline, cq, &tag);
    return pluck(cq, &tag).success != 0;
}

/* Why the last connect failed: the state says only that it did. A call on a channel in
 * TRANSIENT_FAILURE fails at once with grpc's last connect error, without being sent (should
 * the channel reconnect meanwhile, the server answers UNIMPLEMENTED for this path). */
static int failure_reason(struct rpc_channel *ch, grpc_completion_queue *cq, struct ag_err *err)
{
    grpc_call *call = grpc_channel_create_call(
        ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string("/agentry.v1.Probe/ConnectError"), NULL,
        rpc_deadline_ms(1000), NULL);
    grpc_metadata_array trail;
    grpc_metadata_array_init(&trail);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[2].data.recv_status_on_client.trailing_metadata = &trail;
    ops[2].data.recv_status_on_client.status = &status;
    ops[2].data.recv_status_on_client.status_details = &details;
    char tag;
    int rc;
    if (grpc_call_start_batch(call, ops, 3, &tag, NULL) == GRPC_CALL_OK) {
        pluck(cq, &tag);
        rc = is_connect_failure(status, details) ? handshake_failure(ch, details, err)
                                                 : unreachable(ch, details, err);
    } else {
        rc = unreachable(ch, grpc_empty_slice(), err);
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&trail);
    grpc_call_unref(call);
    return rc;
}

/* A channel's state tells apart what a call's status cannot: TRANSIENT_FAILURE means an attempt
 * to connect failed (refused, unresolvable, handshake broken), and grpc would fail a call at once
 * with UNAVAILABLE; IDLE and CONNECTING mean no attempt has finished yet. */
static int wait_ready(struct rpc_channel *ch, gpr_timespec deadline, struct ag_err *err)
{
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch->ch, 1);
    if (st == GRPC_CHANNEL_READY)
        return 0; /* the common case costs one check and no queue */
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    int rc = 0;
    for (;;) {
        if (st == GRPC_CHANNEL_READY)
            break;
        if (st == GRPC_CHANNEL_TRANSIENT_FAILURE) {
            rc = failure_reason(ch, cq, err);
            break;
        }
        if (st == GRPC_CHANNEL_SHUTDOWN) {
            rc = ag_err_set(err, AG_INTERNAL, "channel to '%s' is shut down", ch->target);
            break;
        }
        if (!watch_change(ch, cq, st, deadline)) {
            rc = ag_err_set(err, AG_DEADLINE_EXCEEDED,
                            "could not connect to '%s' before the deadline", ch->target);
            break;
        }
        st = grpc_channel_check_connectivity_state(ch->ch, 1); /* IDLE: connect again */
    }
    cq_destroy(cq);
    return rc;
}

int rpc_channel_wait_ready(struct rpc_channel *ch, int64_t timeout_ms, struct ag_err *err)
{
    return wait_ready(ch, rpc_deadline_ms(timeout_ms), err);
}

static int decode_reply(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                        struct ag_arena *arena, void **resp, struct ag_err *err)
{
    *resp = rpc_pb_unpack(bb, d, arena, err);
    if (!*resp) {
        if (err)
            err->code = AG_INTERNAL; /* the server broke the contract, not our request */
        return -1;
    }
    return 0;
}

int rpc_unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, struct ag_arena *arena, void **resp,
              int64_t timeout_ms, struct ag_err *err)
{
    return rpc_unary_sent(ch, method, req, resp_desc, arena, resp, timeout_ms, NULL, err);
}

/* The call proper, on a channel that was READY a moment ago. */
static int unary_call(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, struct ag_arena *arena,
                      void **resp, int64_t deadline, struct ag_err *err)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    struct rpc_async_call a;
    char tag;
    int rc = rpc_async_start(&a, ch, cq, method, deadline, err);
    if (rc == 0)
        rc = rpc_async_unary(&a, rpc_pb_pack(req), &tag, err);
    if (rc == 0) {
        pluck(cq, &tag); /* RECV_STATUS_ON_CLIENT always completes the batch, deadline or not */
        rc = rpc_async_status(&a, err);
        grpc_byte_buffer *recv = rpc_async_recv_take(&a);
        if (rc == 0)
            rc = decode_reply(recv, resp_desc, arena, resp, err);
        grpc_byte_buffer_destroy(recv);
    }
    rpc_async_release(&a);
    cq_destroy(cq);
    return rc;
}

int rpc_unary_sent(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, struct ag_arena *arena, void **resp,
                   int64_t timeout_ms, bool *sent, struct ag_err *err)
{
    /* One deadline for the connection and the call: the caller's timeout bounds both. */
    int64_t deadline = ag_deadline_in_ms(timeout_ms);
    *resp = NULL;
    if (sent)
        *sent = false;
    /* A call started on a channel that is still connecting waits inside grpc, and its
     * DEADLINE_EXCEEDED cannot say whether the request went out. Waiting for the connection
     * first, we start the call only on a connected channel: if the deadline passes before, no
     * call exists, so certainly nothing was sent. */
    struct ag_err e = AG_ERR_INIT;
    if (wait_ready(ch, rpc_deadline_gpr(deadline), &e) != 0) {
        if (e.code == AG_DEADLINE_EXCEEDED)
            ag_err_set(&e, AG_DEADLINE_EXCEEDED,
                       "could not connect to '%s' before the deadline; nothing was sent",
                       ch->target);
        if (err)
            *err = e;
        return -1;
    }
    if (sent)
        *sent = true;
    return unary_call(ch, method, req, resp_desc, arena, resp, deadline, err);
}

/* --- asynchronous calls --------------------------------------------------------------------- */

int rpc_async_start(struct rpc_async_call *a, struct rpc_channel *ch, grpc_completion_queue *cq,
                    const char *method, int64_t deadline, struct ag_err *err)
{
    memset(a, 0, sizeof(*a));
    a->ch = ch;
    a->status = GRPC_STATUS_UNKNOWN;
    a->details = grpc_empty_slice();
    grpc_metadata_array_init(&a->md_init);
    grpc_metadata_array_init(&a->md_trail);
    a->call = grpc_channel_create_registered_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                  rpc_channel_method(ch, method),
                                                  rpc_deadline_gpr(deadline), NULL);
    if (!a->call)
        return ag_err_set(err, AG_INTERNAL, "cannot create call '%s' to '%s'", method, ch->target);
    return 0;
}

static int start_batch(struct rpc_async_call *a, const grpc_op *ops, size_t n, void *tag,
                       struct ag_err *err)
{
    grpc_call_error ce = grpc_call_start_batch(a->call, ops, n, tag, NULL);
    if (ce != GRPC_CALL_OK)
        return ag_err_set(err, AG_INTERNAL, "cannot start a batch on a call to '%s': %s",
                          a->ch->target, grpc_call_error_to_string(ce));
    return 0;
}

/* Append SEND_INITIAL_METADATA to ops if the call has not sent it yet. */
static size_t add_send_md(struct rpc_async_call *a, grpc_op *ops, size_t n)
{
    if (a->md_sent)
        return n;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    a->md_sent = true;
    return n + 1;
}

/* Append SEND_INITIAL_METADATA if not sent yet, then SEND_MESSAGE of bb (owned by the call from
 * now on, until rpc_async_send_done or release). */
static size_t add_send_message(struct rpc_async_call *a, grpc_op *ops, size_t n,
                               grpc_byte_buffer *bb)
{
    n = add_send_md(a, ops, n);
    a->send = bb;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    return n + 1;
}

static size_t add_recv_md(struct rpc_async_call *a, grpc_op *ops, size_t n)
{
    if (a->md_received)
        return n;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n].data.recv_initial_metadata.recv_initial_metadata = &a->md_init;
    a->md_received = true;
    return n + 1;
}

static size_t add_recv_status(struct rpc_async_call *a, grpc_op *ops, size_t n)
{
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &a->md_trail;
    ops[n].data.recv_status_on_client.status = &a->status;
    ops[n].data.recv_status_on_client.status_details = &a->details;
    return n + 1;
}

/* Start ops; on failure undo what add_*_md recorded, since nothing went out. */
static int start_ops(struct rpc_async_call *a, const grpc_op *ops, size_t n, bool md_sent,
                     bool md_received, void *tag, struct ag_err *err)
{
    if (start_batch(a, ops, n, tag, err) == 0)
        return 0;
    a->md_sent = md_sent;
    a->md_received = md_received;
    return -1;
}

int rpc_async_unary(struct rpc_async_call *a, grpc_byte_buffer *bb, void *tag, struct ag_err *err)
{
    bool ms = a->md_sent, mr = a->md_received;
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    size_t n = add_send_message(a, ops, 0, bb);
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    n = add_recv_md(a, ops, n);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &a->recv;
    n = add_recv_status(a, ops, n);
    return start_ops(a, ops, n, ms, mr, tag, err);
}

int rpc_async_send(struct rpc_async_call *a, grpc_byte_buffer *bb, void *tag, struct ag_err *err)
{
    bool ms = a->md_sent;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = add_send_message(a, ops, 0, bb);
    return start_ops(a, ops, n, ms, a->md_received, tag, err);
}

void rpc_async_send_done(struct rpc_async_call *a)
{
    grpc_byte_buffer_destroy(a->send);
    a->send = NULL;
}

int rpc_async_close(struct rpc_async_call *a, void *tag, struct ag_err *err)
{
    bool ms = a->md_sent;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = add_send_md(a, ops, 0);
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    return start_ops(a, ops, n, ms, a->md_received, tag, err);
}

int rpc_async_recv(struct rpc_async_call *a, void *tag, struct ag_err *err)
{
    bool mr = a->md_received;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = add_recv_md(a, ops, 0);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &a->recv;
    return start_ops(a, ops, n, a->md_sent, mr, tag, err);
}

grpc_byte_buffer *rpc_async_recv_take(struct rpc_async_call *a)
{
    grpc_byte_buffer *bb = a->recv;
    a->recv = NULL;
    return bb;
}

int rpc_async_recv_status(struct rpc_async_call *a, void *tag, struct ag_err *err)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    add_recv_status(a, &op, 0);
    return start_batch(a, &op, 1, tag, err);
}

int rpc_async_status(struct rpc_async_call *a, struct ag_err *err)
{
    int rc = call_status(a->ch, a->status, a->details, err);
    a->details = grpc_empty_slice(); /* call_status unref'd it */
    return rc;
}

void rpc_async_cancel(struct rpc_async_call *a)
{
    if (a->call)
        grpc_call_cancel(a->call, NULL);
}

void rpc_async_release(struct rpc_async_call *a)
{
    if (!a->call)
        return;
    grpc_byte_buffer_destroy(a->send);
    grpc_byte_buffer_destroy(a->recv);
    grpc_metadata_array_destroy(&a->md_init);
    grpc_metadata_array_destroy(&a->md_trail);
    grpc_slice_unref(a->details);
    grpc_call_unref(a->call);
    memset(a, 0, sizeof(*a));
}

/* --- server streaming ------------------------------------------------------------------------ */

/* Three batches start at open: the request (with the initial metadata), the half-close, and the
 * status; then one receive per next() (the first also takes the server's initial metadata). The
 * status batch is plucked only once a receive says the stream is over, so its details are always
 * those of the end the user sees. The *_out flags say which batch is still outstanding. */
struct rpc_stream {
    struct rpc_async_call a;
    grpc_completion_queue *cq;
    bool send_out, close_out, status_out;
    bool ended;
    int end_rc;
    struct ag_err end_err;                         /* what next() returns again after the end */
    char tag_send, tag_close, tag_msg, tag_status; /* their addresses are the batch tags */
};

static void settle(struct rpc_stream *s, bool *out, void *tag)
{
    if (*out)
        pluck(s->cq, tag);
    *out = false;
}

struct rpc_stream *rpc_stream_open(struct rpc_channel *ch, const char *method,
                                   const ProtobufCMessage *req, int64_t timeout_ms,
                                   struct ag_err *err)
{
    struct rpc_stream *s = ag_xcalloc(1, sizeof(*s));
    s->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (rpc_async_start(&s->a, ch, s->cq, method, ag_deadline_in_ms(timeout_ms), err) != 0)
        goto fail;
    if (rpc_async_send(&s->a, rpc_pb_pack(req), &s->tag_send, err) != 0)
        goto fail;
    s->send_out = true;
    if (rpc_async_close(&s->a, &s->tag_close, err) != 0)
        goto fail;
    s->close_out = true;
    if (rpc_async_recv_status(&s->a, &s->tag_status, err) != 0)
        goto fail;
    s->status_out = true;
    return s;
fail:
    /* No status batch is outstanding: the stream is over before it began. Cancel so that the
     * batches that did start complete now rather than at the deadline. */
    rpc_async_cancel(&s->a);
    s->ended = true;
    rpc_stream_free(s);
    return NULL;
}

/* The stream is over: collect its status (once) and remember the result for later calls. */
static int stream_end(struct rpc_stream *s, struct ag_err *err)
{
    if (!s->ended) {
        settle(s, &s->status_out, &s->tag_status);
        s->ended = true;
        ag_err_clear(&s->end_err);
        s->end_rc = rpc_async_status(&s->a, &s->end_err);
    }
    if (s->end_rc < 0 && err)
        *err = s->end_err;
    return s->end_rc < 0 ? -1 : 0;
}

static void stream_start_done(struct rpc_stream *s)
{
    if (s->send_out) {
        settle(s, &s->send_out, &s->tag_send);
        rpc_async_send_done(&s->a);
    }
    settle(s, &s->close_out, &s->tag_close);
}

int rpc_stream_next(struct rpc_stream *s, const ProtobufCMessageDescriptor *d,
                    struct ag_arena *arena, void **msg, struct ag_err *err)
{
    *msg = NULL;
    if (s->ended)
        return stream_end(s, err);
    stream_start_done(s);
    if (rpc_async_recv(&s->a, &s->tag_msg, NULL) != 0) {
        rpc_async_cancel(&s->a);
        return stream_end(s, err);
    }
    grpc_event ev = pluck(s->cq, &s->tag_msg);
    grpc_byte_buffer *bb = rpc_async_recv_take(&s->a);
    if (!ev.success || !bb) {
        grpc_byte_buffer_destroy(bb);
        return stream_end(s, err);
    }
    int rc = decode_reply(bb, d, arena, msg, err);
    grpc_byte_buffer_destroy(bb);
    if (rc < 0) {
        /* A message we cannot read ends the stream for us; report the decode error, not the
         * CANCELLED status our own cancel produces. */
        rpc_async_cancel(&s->a);
        stream_end(s, NULL);
        s->end_rc = -1;
        if (err)
            s->end_err = *err;
        return -1;
    }
    return 1;
}

void rpc_stream_cancel(struct rpc_stream *s)
{
    if (s)
        rpc_async_cancel(&s->a);
}

void rpc_stream_free(struct rpc_stream *s)
{
    if (!s)
        return;
    if (!s->ended)
        rpc_async_cancel(&s->a);
    stream_start_done(s);
    if (!s->ended)
        stream_end(s, NULL);
    rpc_async_release(&s->a);
    cq_destroy(s->cq);
    free(s);
}
