/* common/rpc/server.c - the gRPC core server: CQ threads, method table, call state machines.
 *
 * Threads: `threads` CQ threads, each draining its own completion queue. A call is requested on
 * one CQ and all its batches complete there, but the handler may start batches from any thread;
 * a per-call mutex guards the call's flags and send queue.
 *
 * References: a dispatched call holds one "life" reference, dropped when the call is over (the
 * close watch completed, or for unwatched unary calls the status batch completed). Each batch in
 * flight holds one more. Handlers take their own with rpc_call_ref. At zero the call object goes
 * back to its method's pool.
 *
 * Invariants: at most one send and one receive batch in flight per call (gRPC's rule); the status
 * batch starts only when no send is in flight and the queue is empty, so queued messages always
 * reach the client before the status. */
#include "common/rpc/server.h"

#include <errno.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/core.h"
#include "common/xalloc.h"

#define RPC_CALL_ARENA 4096
#define RPC_DEFAULT_PREPOST 8
#define RPC_DEFAULT_LIMIT (4u << 20)
#define RPC_DEFAULT_SENDQ 64

enum rpc_tag_type {
    TAG_REQUEST,
    TAG_SEND,
    TAG_RECV,
    TAG_CLOSE,
    TAG_STATUS,
    TAG_SHUTDOWN,
    TAG_UNKNOWN_REQUEST,
    TAG_UNKNOWN_DONE,
};

struct rpc_unknown;

struct rpc_tag {
    enum rpc_tag_type type;
    struct rpc_call *call;
    struct rpc_unknown *unknown; /* TAG_UNKNOWN_* */
};

/* A call to a method the server does not have: grpc core hands those only to a generic request,
 * and a server that posts none leaves the client waiting out its whole deadline. Each CQ keeps
 * one posted; a matched call is answered UNIMPLEMENTED naming the method. */
struct rpc_unknown {
    struct rpc_cq *q;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    int cancelled;
    grpc_slice msg;
    struct rpc_tag t_req, t_done;
};

struct rpc_mslot {
    const struct rpc_method *m;
    void *handle;
    size_t limit;
    unsigned send_cap;
    pthread_mutex_t pool_lock;
    struct rpc_call *pool; /* free call objects of this method */
};

struct rpc_cq {
    struct rpc_server *srv;
    grpc_completion_queue *cq;
    pthread_t thread;
};

struct rpc_server {
    grpc_server *server;
    struct rpc_cq *cqs;
    unsigned ncq;
    struct rpc_mslot *ms;
    size_t nms;
    char *listen;
    int port;
    unsigned send_cap;
    void *user;
    struct rpc_tls_server *tls; /* NULL: plaintext */
    rpc_authorize_fn *authorize;
    rpc_call_done_fn *call_done;
    atomic_uint live;     /* call objects out of the pools (posted or dispatched) */
    atomic_uint active;   /* dispatched calls not yet released */
    atomic_uint watching; /* calls whose close watch has not yet run on_close */
    atomic_bool stopping;
    bool started, stopped;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signals shutdown_done and live == 0 */
    bool shutdown_done;
    struct rpc_tag shutdown_tag;
};

struct rpc_call {
    struct rpc_server *srv;
    struct rpc_mslot *ms;
    struct rpc_cq *q;
    struct rpc_call *next_free;
    grpc_call *call;
    gpr_timespec deadline;
    int64_t dispatched_ns; /* ag_now_mono_ns() when matched, for call_done */
    grpc_metadata_array md;
    grpc_byte_buffer *req;
    struct rpc_tag t_req, t_send, t_recv, t_close, t_status;
    pthread_mutex_t lock;
    atomic_int refs;
    /* Guarded by lock: */
    bool md_sent, sending, recving, status_req, status_started, closed, close_watched, broken;
    grpc_byte_buffer *cur_send;  /* in flight (TAG_SEND) */
    grpc_byte_buffer *final_msg; /* in flight with the status (unary reply) */
    grpc_byte_buffer **sq;       /* ring of queued sends, send_cap slots (streaming only) */
    unsigned sq_head, sq_len;
    grpc_byte_buffer *recv_buf;
    int cancelled_flag;
    grpc_status_code st_code;
    grpc_slice st_details;
    bool st_has_details;
    char *peer;                  /* gpr-allocated, lazily */
    grpc_auth_context *auth_ctx; /* held while peer_cert points into it, lazily */
    const char *peer_cert;
    size_t peer_cert_len;
    const void *auth;
    struct ag_arena arena;
    _Alignas(max_align_t) char arena_buf[RPC_CALL_ARENA];
    max_align_t state[];
};

static void call_unref(struct rpc_call *c);

/* One object fewer out of the pools: rpc_server_free waits for none to be left. */
static void live_put(struct rpc_server *s)
{
    if (atomic_fetch_sub(&s->live, 1) == 1 && atomic_load(&s->stopping)) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

/* --- call objects ------------------------------------------------------------------------- */

static struct rpc_call *call_acquire(struct rpc_server *s, struct rpc_mslot *ms, struct rpc_cq *q)
{
    pthread_mutex_lock(&ms->pool_lock);
    struct rpc_call *c = ms->pool;
    if (c)
        ms->pool = c->next_free;
    pthread_mutex_unlock(&ms->pool_lock);
    if (!c) {
        c = ag_xcalloc(1, sizeof(*c) + ms->m->state_size);
        pthread_mutex_init(&c->lock, NULL);
        if (ms->m->kind != RPC_UNARY)
            c->sq = ag_xcalloc(ms->send_cap, sizeof(*c->sq));
        c->t_req = (struct rpc_tag){TAG_REQUEST, c, NULL};
        c->t_send = (struct rpc_tag){TAG_SEND, c, NULL};
        c->t_recv = (struct rpc_tag){TAG_RECV, c, NULL};
        c->t_close = (struct rpc_tag){TAG_CLOSE, c, NULL};
        c->t_status = (struct rpc_tag){TAG_STATUS, c, NULL};
    }
    c->srv = s;
    c->ms = ms;
    c->q = q;
    c->call = NULL;
    c->req = NULL;
    c->md_sent = c->sending = c->recving = c->status_req = c->status_started = false;
    c->closed = c->close_watched = c->broken = false;
    c->cur_send = c->final_msg = c->recv_buf = NULL;
    c->sq_head = c->sq_len = 0;
    c->cancelled_flag = 0;
    c->st_code = GRPC_STATUS_OK;
    c->st_has_details = false;
    c->peer = NULL;
    c->auth_ctx = NULL;
    c->peer_cert = NULL;
    c->peer_cert_len = 0;
    c->auth = NULL;
    atomic_init(&c->refs, 1);
    ag_arena_init(&c->arena, c->arena_buf, sizeof(c->arena_buf));
    memset(c->state, 0, ms->m->state_size);
    grpc_metadata_array_init(&c->md);
    atomic_fetch_add(&s->live, 1);
    return c;
}

static void drop_queue_locked(struct rpc_call *c)
{
    while (c->sq_len) {
        grpc_byte_buffer_destroy(c->sq[c->sq_head]);
        c->sq_head = (c->sq_head + 1) % c->ms->send_cap;
        c->sq_len--;
    }
}

static void call_release(struct rpc_call *c, bool dispatched)
{
    struct rpc_server *s = c->srv;
    struct rpc_mslot *ms = c->ms;
    drop_queue_locked(c); /* no one else can reach the call now */
    if (dispatched && s->call_done)
        s->call_done(s->user, (size_t)(ms - s->ms),
                     c->status_req ? (enum ag_code)c->st_code : AG_CANCELLED,
                     ag_now_mono_ns() - c->dispatched_ns);
    if (c->req)
        grpc_byte_buffer_destroy(c->req);
    if (c->cur_send)
        grpc_byte_buffer_destroy(c->cur_send);
    if (c->final_msg)
        grpc_byte_buffer_destroy(c->final_msg);
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->st_has_details)
        grpc_slice_unref(c->st_details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    if (c->peer)
        gpr_free(c->peer);
    if (c->auth_ctx)
        grpc_auth_context_release(c->auth_ctx);
    ag_arena_release(&c->arena);
    pthread_mutex_lock(&ms->pool_lock);
    c->next_free = ms->pool;
    ms->pool = c;
    pthread_mutex_unlock(&ms->pool_lock);
    if (dispatched)
        atomic_fetch_sub(&s->active, 1);
    live_put(s);
}

static void call_unref(struct rpc_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        call_release(c, true);
}

void rpc_call_ref(struct rpc_call *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void rpc_call_unref(struct rpc_call *c)
{
    call_unref(c);
}

static void post_request(struct rpc_cq *q, struct rpc_mslot *ms)
{
    struct rpc_server *s = q->srv;
    struct rpc_call *c = call_acquire(s, ms, q);
    grpc_call_error e = grpc_server_request_registered_call(
        s->server, ms->handle, &c->call, &c->deadline, &c->md,
        ms->m->kind == RPC_BIDI ? NULL : &c->req, q->cq, q->cq, &c->t_req);
    if (e != GRPC_CALL_OK) {
        ag_log_error("rpc.request_failed", "method=%s code=%d", ms->m->path, (int)e);
        call_release(c, false);
    }
}

/* --- unknown methods ------------------------------------------------------------------------ */

static void post_unknown(struct rpc_cq *q)
{
    struct rpc_server *s = q->srv;
    struct rpc_unknown *u = ag_xcalloc(1, sizeof(*u));
    u->q = q;
    u->t_req = (struct rpc_tag){TAG_UNKNOWN_REQUEST, NULL, u};
    u->t_done = (struct rpc_tag){TAG_UNKNOWN_DONE, NULL, u};
    grpc_call_details_init(&u->details);
    grpc_metadata_array_init(&u->md);
    atomic_fetch_add(&s->live, 1);
    grpc_call_error e = grpc_server_request_call(s->server, &u->call, &u->details, &u->md, q->cq,
                                                 q->cq, &u->t_req);
    if (e != GRPC_CALL_OK) {
        ag_log_error("rpc.request_failed", "method=* code=%d", (int)e);
        grpc_call_details_destroy(&u->details);
        grpc_metadata_array_destroy(&u->md);
        free(u);
        live_put(s);
    }
}

static void unknown_free(struct rpc_unknown *u)
{
    struct rpc_server *s = u->q->srv;
    if (u->call)
        grpc_call_unref(u->call);
    grpc_slice_unref(u->msg);
    grpc_call_details_destroy(&u->details);
    grpc_metadata_array_destroy(&u->md);
    free(u);
    live_put(s);
}

static void on_unknown_request(struct rpc_unknown *u, bool ok)
{
    struct rpc_server *s = u->q->srv;
    if (!ok) { /* shutting down */
        unknown_free(u);
        return;
    }
    if (!atomic_load(&s->stopping))
        post_unknown(u->q);
    char *method = grpc_slice_to_c_string(u->details.method);
    char *msg = ag_xasprintf("unknown method '%s': this server does not implement it (an older "
                             "server than the client?)",
                             method);
    ag_log_info("rpc.unknown_method", "method=%s", ag_log_q(method));
    gpr_free(method);
    u->msg = grpc_slice_from_copied_string(msg);
    free(msg);
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[1].data.recv_close_on_server.cancelled = &u->cancelled;
    ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[2].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[2].data.send_status_from_server.status_details = &u->msg;
    if (grpc_call_start_batch(u->call, ops, 3, &u->t_done, NULL) != GRPC_CALL_OK)
        unknown_free(u);
}

/* --- batches (call lock held) --------------------------------------------------------------- */

static void start_batch_locked(struct rpc_call *c, grpc_op *ops, size_t n, struct rpc_tag *tag)
{
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        /* Only a programming error gets here (two sends in flight, say): make it loud. */
        ag_log_error("rpc.batch_rejected", "method=%s code=%d", c->ms->m->path, (int)e);
        c->broken = true;
        atomic_fetch_sub(&c->refs, 1);
    }
}

static size_t add_initial_md(struct rpc_call *c, grpc_op *ops)
{
    if (c->md_sent)
        return 0;
    c->md_sent = true;
    memset(ops, 0, sizeof(*ops));
    ops->op = GRPC_OP_SEND_INITIAL_METADATA;
    return 1;
}

static void start_send_locked(struct rpc_call *c, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    size_t n = add_initial_md(c, ops);
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    c->cur_send = bb;
    c->sending = true;
    start_batch_locked(c, ops, n, &c->t_send);
}

static void start_status_locked(struct rpc_call *c)
{
    grpc_op ops[4];
    size_t n = add_initial_md(c, ops);
    if (c->final_msg) {
        memset(&ops[n], 0, sizeof(ops[n]));
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->final_msg;
        n++;
    }
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->st_code;
    /* NULL details for OK: grpc_slice_from_static_string(NULL) crashes (grpc-core.md §7). */
    ops[n].data.send_status_from_server.status_details = c->st_has_details ? &c->st_details : NULL;
    n++;
    if (!c->close_watched) {
        memset(&ops[n], 0, sizeof(ops[n]));
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->cancelled_flag;
        n++;
    }
    c->status_started = true;
    start_batch_locked(c, ops, n, &c->t_status);
}

static void start_close_watch_locked(struct rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled_flag;
    c->close_watched = true;
    atomic_fetch_add(&c->srv->watching, 1);
    start_batch_locked(c, &op, 1, &c->t_close);
}

/* --- the handler-facing API ------------------------------------------------------------------ */

void *rpc_call_state(struct rpc_call *c)
{
    return c->state;
}

void *rpc_call_user(struct rpc_call *c)
{
    return c->srv->user;
}

void *rpc_call_method_arg(struct rpc_call *c)
{
    return c->ms->m->arg;
}

struct ag_arena *rpc_call_arena(struct rpc_call *c)
{
    return &c->arena;
}

const char *rpc_call_peer(struct rpc_call *c)
{
    pthread_mutex_lock(&c->lock);
    if (!c->peer && c->call)
        c->peer = grpc_call_get_peer(c->call);
    const char *p = c->peer ? c->peer : "";
    pthread_mutex_unlock(&c->lock);
    return p;
}

const char *rpc_call_peer_cert(struct rpc_call *c, size_t *len)
{
    if (!c->srv->tls || !c->call)
        return NULL;
    pthread_mutex_lock(&c->lock);
    if (!c->auth_ctx) {
        /* The connection's context, shared by its calls: no copy per call, only a reference. */
        c->auth_ctx = grpc_call_auth_context(c->call);
        grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(
            c->auth_ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
        const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
        if (p && p->value_length > 0) {
            c->peer_cert = p->value;
            c->peer_cert_len = p->value_length;
        }
    }
    const char *pem = c->peer_cert;
    if (len)
        *len = c->peer_cert_len;
    pthread_mutex_unlock(&c->lock);
    return pem;
}

const char *rpc_call_metadata(struct rpc_call *c, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *m = &c->md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) != kl || memcmp(GRPC_SLICE_START_PTR(m->key), key, kl) != 0)
            continue;
        size_t vl = GRPC_SLICE_LENGTH(m->value);
        char *v = ag_arena_alloc(rpc_call_arena(c), vl + 1);
        memcpy(v, GRPC_SLICE_START_PTR(m->value), vl);
        v[vl] = 0;
        return v;
    }
    return NULL;
}

const char *rpc_call_method(struct rpc_call *c)
{
    return c->ms->m->path;
}

bool rpc_call_tls(struct rpc_call *c)
{
    return c->srv->tls != NULL;
}

void rpc_call_set_auth(struct rpc_call *c, const void *auth)
{
    c->auth = auth;
}

const void *rpc_call_auth(struct rpc_call *c)
{
    return c->auth;
}

static void set_status_locked(struct rpc_call *c, enum ag_code code, const char *msg)
{
    c->status_req = true;
    c->st_code = (grpc_status_code)code;
    if (msg && *msg) {
        c->st_details = grpc_slice_from_copied_string(msg);
        c->st_has_details = true;
    }
}

void rpc_call_reply_take(struct rpc_call *c, grpc_byte_buffer *resp)
{
    pthread_mutex_lock(&c->lock);
    if (c->status_req || c->closed || c->broken) {
        pthread_mutex_unlock(&c->lock);
        grpc_byte_buffer_destroy(resp);
        return;
    }
    set_status_locked(c, AG_OK, NULL);
    c->final_msg = resp; /* goes with the status, after anything still in flight */
    if (!c->sending)
        start_status_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void rpc_call_finish(struct rpc_call *c, enum ag_code code, const char *msg)
{
    pthread_mutex_lock(&c->lock);
    if (c->status_req || c->closed || c->broken) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    set_status_locked(c, code, msg);
    if (!c->sending)
        start_status_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void rpc_call_fail(struct rpc_call *c, const struct ag_err *err)
{
    rpc_call_finish(c, err->code == AG_OK ? AG_UNKNOWN : err->code, err->msg);
}

int rpc_call_send_take(struct rpc_call *c, grpc_byte_buffer *msg, struct ag_err *err)
{
    pthread_mutex_lock(&c->lock);
    if (c->status_req || c->closed || c->broken) {
        pthread_mutex_unlock(&c->lock);
        grpc_byte_buffer_destroy(msg);
        return ag_err_set(err, AG_CANCELLED, "the call is over");
    }
    if (!c->sending) {
        start_send_locked(c, msg);
    } else if (c->sq_len < c->ms->send_cap) {
        c->sq[(c->sq_head + c->sq_len) % c->ms->send_cap] = msg;
        c->sq_len++;
    } else {
        pthread_mutex_unlock(&c->lock);
        grpc_byte_buffer_destroy(msg);
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "send queue of %u messages is full: the client reads too slowly",
                          c->ms->send_cap);
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

unsigned rpc_call_send_pending(struct rpc_call *c)
{
    pthread_mutex_lock(&c->lock);
    unsigned n = c->sq_len + (c->sending ? 1u : 0u);
    pthread_mutex_unlock(&c->lock);
    return n;
}

void rpc_call_recv(struct rpc_call *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->closed || c->recving || c->broken) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    grpc_op ops[2];
    size_t n = add_initial_md(c, ops);
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &c->recv_buf;
    n++;
    c->recving = true;
    start_batch_locked(c, ops, n, &c->t_recv);
    pthread_mutex_unlock(&c->lock);
}

bool rpc_call_done(struct rpc_call *c)
{
    pthread_mutex_lock(&c->lock);
    bool done = c->closed || c->status_req || c->broken;
    pthread_mutex_unlock(&c->lock);
    return done;
}

/* --- completions ---------------------------------------------------------------------------- */

static void on_request(struct rpc_call *c, bool ok)
{
    struct rpc_server *s = c->srv;
    if (!ok) { /* the server is shutting down: this request will never be matched */
        call_release(c, false);
        return;
    }
    atomic_fetch_add(&s->active, 1);
    if (s->call_done)
        c->dispatched_ns = ag_now_mono_ns();
    if (atomic_load(&s->stopping)) {
        /* Matched just before shutdown began: the handlers' objects may be going away, so the
         * call never reaches them. Its status batch (with the close op) releases it. */
        rpc_call_finish(c, AG_UNAVAILABLE, "the server is shutting down; retry");
        return;
    }
    post_request(c->q, c->ms);
    const struct rpc_method *m = c->ms->m;
    if (m->on_close || m->kind != RPC_UNARY) {
        pthread_mutex_lock(&c->lock);
        start_close_watch_locked(c);
        pthread_mutex_unlock(&c->lock);
    }
    grpc_byte_buffer *req = c->req;
    c->req = NULL;
    struct ag_err aerr = AG_ERR_INIT;
    if (s->authorize && s->authorize(c, m, &aerr) != 0) {
        rpc_call_fail(c, &aerr);
    } else if (m->kind != RPC_BIDI && !req) {
        rpc_call_finish(c, AG_INVALID_ARGUMENT, "the request carried no message");
    } else if (req && grpc_byte_buffer_length(req) > c->ms->limit) {
        char msg[160];
        snprintf(msg, sizeof(msg), "request of %zu bytes is over the limit of %zu bytes",
                 grpc_byte_buffer_length(req), c->ms->limit);
        rpc_call_finish(c, AG_INVALID_ARGUMENT, msg);
    } else {
        m->on_call(c, req);
    }
    if (req)
        grpc_byte_buffer_destroy(req);
}

static void on_send_done(struct rpc_call *c, bool ok)
{
    pthread_mutex_lock(&c->lock);
    grpc_byte_buffer_destroy(c->cur_send);
    c->cur_send = NULL;
    c->sending = false;
    if (!ok) {
        c->broken = true; /* the client is gone; the close watch reports it */
        drop_queue_locked(c);
    } else if (c->sq_len) {
        grpc_byte_buffer *next = c->sq[c->sq_head];
        c->sq_head = (c->sq_head + 1) % c->ms->send_cap;
        c->sq_len--;
        start_send_locked(c, next);
    } else if (c->status_req && !c->status_started) {
        start_status_locked(c);
    }
    bool notify = ok && !c->sending && !c->status_req && c->ms->m->on_sent;
    pthread_mutex_unlock(&c->lock);
    if (notify)
        c->ms->m->on_sent(c);
    call_unref(c);
}

static void on_recv_done(struct rpc_call *c, bool ok)
{
    pthread_mutex_lock(&c->lock);
    c->recving = false;
    grpc_byte_buffer *bb = c->recv_buf;
    c->recv_buf = NULL;
    pthread_mutex_unlock(&c->lock);
    if (bb && grpc_byte_buffer_length(bb) > c->ms->limit) {
        char msg[160];
        snprintf(msg, sizeof(msg), "message of %zu bytes is over the limit of %zu bytes",
                 grpc_byte_buffer_length(bb), c->ms->limit);
        rpc_call_finish(c, AG_INVALID_ARGUMENT, msg);
    } else {
        c->ms->m->on_recv(c, ok ? bb : NULL);
    }
    if (bb)
        grpc_byte_buffer_destroy(bb);
    call_unref(c);
}

static void mark_closed(struct rpc_call *c)
{
    pthread_mutex_lock(&c->lock);
    c->closed = true;
    drop_queue_locked(c);
    pthread_mutex_unlock(&c->lock);
}

static void on_close_done(struct rpc_call *c)
{
    struct rpc_server *s = c->srv;
    mark_closed(c);
    if (c->ms->m->on_close)
        c->ms->m->on_close(c, c->cancelled_flag != 0);
    if (atomic_fetch_sub(&s->watching, 1) == 1 && atomic_load(&s->stopping)) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    call_unref(c); /* the close batch */
    call_unref(c); /* the life reference */
}

static void on_status_done(struct rpc_call *c)
{
    bool watched;
    pthread_mutex_lock(&c->lock);
    watched = c->close_watched;
    if (c->final_msg) {
        grpc_byte_buffer_destroy(c->final_msg);
        c->final_msg = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (!watched) {
        mark_closed(c);
        call_unref(c); /* the life reference */
    }
    call_unref(c); /* the status batch */
}

static void *cq_thread(void *arg)
{
    struct rpc_cq *q = arg;
    struct rpc_server *s = q->srv;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(q->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct rpc_tag *t = ev.tag;
        switch (t->type) {
        case TAG_REQUEST:
            on_request(t->call, ev.success);
            break;
        case TAG_SEND:
            on_send_done(t->call, ev.success);
            break;
        case TAG_RECV:
            on_recv_done(t->call, ev.success);
            break;
        case TAG_CLOSE:
            on_close_done(t->call);
            break;
        case TAG_STATUS:
            on_status_done(t->call);
            break;
        case TAG_UNKNOWN_REQUEST:
            on_unknown_request(t->unknown, ev.success);
            break;
        case TAG_UNKNOWN_DONE:
            unknown_free(t->unknown);
            break;
        case TAG_SHUTDOWN:
            pthread_mutex_lock(&s->lock);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            break;
        }
    }
    return NULL;
}

/* --- server lifecycle ----------------------------------------------------------------------- */

/* gRPC says only that a port could not be added. Binding the same address ourselves tells the
 * operator why: in use (another hub?), not an address of this machine, or not an address. */
static void listen_diagnose(const char *listen, char *why, size_t cap)
{
    snprintf(why, cap, "not a valid host:port");
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || colon == listen || !colon[1])
        return;
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') { /* "[::1]:7070" */
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    if (getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai) != 0 || !ai)
        return;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    int e = 0;
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    if (e == EADDRINUSE)
        snprintf(why, cap, "address already in use (is another agent-hub running?)");
    else if (e)
        snprintf(why, cap, "%s", strerror(e));
    else
        snprintf(why, cap, "gRPC could not bind it (run with --log-level debug for its reason)");
}

/* gRPC takes the port modulo 65536 ("host:99999" listens on 34463), so the number is checked
 * here: digits only, at most 65535 (0 picks a free port). */
static bool listen_port_valid(const char *listen)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || !colon[1] || strlen(colon + 1) > 5)
        return false;
    unsigned long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    return port <= 65535;
}

struct rpc_server *rpc_server_new(const struct rpc_server_opts *o, const struct rpc_method *methods,
                                  size_t nmethods, struct ag_err *err)
{
    if (!listen_port_valid(o->listen)) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "cannot listen on '%s': not a valid host:port (a port is 0 to 65535)",
                   o->listen ? o->listen : "");
        return NULL;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct rpc_server *s = ag_xcalloc(1, sizeof(*s));
    s->ncq = o->threads ? o->threads : (unsigned)(ncpu < 2 ? 2 : ncpu);
    s->send_cap = o->send_queue_cap ? o->send_queue_cap : RPC_DEFAULT_SENDQ;
    s->user = o->user;
    s->authorize = o->authorize;
    s->call_done = o->call_done;
    s->listen = ag_xstrdup(o->listen);
    s->shutdown_tag = (struct rpc_tag){TAG_SHUTDOWN, NULL, NULL};
    pthread_mutex_init(&s->lock, NULL);
    ag_cond_init_mono(&s->cond); /* wait_shutdown's deadline is monotonic */

    size_t limit = o->max_request_bytes ? o->max_request_bytes : RPC_DEFAULT_LIMIT;
    size_t transport_limit = limit;
    s->nms = nmethods;
    s->ms = ag_xcalloc(nmethods, sizeof(*s->ms));
    for (size_t i = 0; i < nmethods; i++) {
        s->ms[i].m = &methods[i];
        s->ms[i].limit = methods[i].max_request_bytes ? methods[i].max_request_bytes : limit;
        if (s->ms[i].limit > transport_limit)
            transport_limit = s->ms[i].limit;
        s->ms[i].send_cap = methods[i].send_queue_cap ? methods[i].send_queue_cap : s->send_cap;
        pthread_mutex_init(&s->ms[i].pool_lock, NULL);
    }
    /* gRPC's own limit sits above ours, so an oversized request reaches the handler layer and
     * gets INVALID_ARGUMENT with the real numbers; gRPC's check only guards against absurd sizes. */
    int tl = transport_limit > (1u << 28) ? INT32_MAX : (int)(transport_limit * 4 + (1u << 20));
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = tl},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
         .value.integer = 1},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 30000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PING_STRIKES, .value.integer = 0},
        /* gRPC sets SO_REUSEPORT by default: a second server on a port in use would then start
         * silently and take half the connections. A listen must be ours alone. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
    };
    grpc_channel_args cargs = {.num_args = AG_ARRAY_SIZE(args), .args = args};
    rpc_core_init();
    if (o->tls) {
        s->tls = rpc_tls_server_new(o->tls, err);
        if (!s->tls) {
            rpc_server_free(s);
            return NULL;
        }
    }
    s->server = grpc_server_create(&cargs, NULL);
    for (size_t i = 0; i < nmethods; i++) {
        grpc_server_register_method_payload_handling ph =
            methods[i].kind == RPC_BIDI ? GRPC_SRM_PAYLOAD_NONE
                                        : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER;
        s->ms[i].handle = grpc_server_register_method(s->server, methods[i].path, NULL, ph, 0);
        if (!s->ms[i].handle) {
            ag_err_set(err, AG_INTERNAL, "cannot register method '%s'", methods[i].path);
            rpc_server_free(s);
            return NULL;
        }
    }
    s->cqs = ag_xcalloc(s->ncq, sizeof(*s->cqs));
    for (unsigned i = 0; i < s->ncq; i++) {
        s->cqs[i].srv = s;
        s->cqs[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->cqs[i].cq, NULL);
    }
    grpc_server_credentials *creds = s->tls ? rpc_tls_server_creds(s->tls)
                                            : grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        char why[128];
        listen_diagnose(s->listen, why, sizeof(why));
        ag_err_set(err, AG_UNAVAILABLE, "cannot listen on '%s': %s", s->listen, why);
        rpc_server_free(s);
        return NULL;
    }
    return s;
}

void rpc_server_start(struct rpc_server *s)
{
    grpc_server_start(s->server);
    s->started = true;
    for (unsigned i = 0; i < s->ncq; i++) {
        for (size_t j = 0; j < s->nms; j++) {
            unsigned n = s->ms[j].m->preposted ? s->ms[j].m->preposted : RPC_DEFAULT_PREPOST;
            for (unsigned k = 0; k < n; k++)
                post_request(&s->cqs[i], &s->ms[j]);
        }
        post_unknown(&s->cqs[i]);
        ag_xthread_create(&s->cqs[i].thread, cq_thread, &s->cqs[i], "RPC completion queue");
    }
}

void rpc_server_reload_tls(struct rpc_server *s)
{
    if (s->tls)
        rpc_tls_server_reload(s->tls);
}

int rpc_server_port(const struct rpc_server *s)
{
    return s->port;
}

unsigned rpc_server_active_calls(struct rpc_server *s)
{
    return atomic_load(&s->active);
}

static bool wait_shutdown(struct rpc_server *s, int timeout_ms)
{
    int64_t deadline = ag_deadline_in_ms(timeout_ms);
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done && timeout_ms > 0)
        if (!ag_cond_wait_until(&s->cond, &s->lock, deadline))
            break;
    bool done = s->shutdown_done;
    pthread_mutex_unlock(&s->lock);
    return done;
}

void rpc_server_stop(struct rpc_server *s, int grace_ms)
{
    if (!s->started || s->stopped)
        return;
    s->stopped = true;
    atomic_store(&s->stopping, true);
    grpc_server_shutdown_and_notify(s->server, s->cqs[0].cq, &s->shutdown_tag);
    if (!wait_shutdown(s, grace_ms))
        grpc_server_cancel_all_calls(s->server);
    /* gRPC has ended every call; wait until each on_close has run too, so that once this
     * returns no handler touches the application's objects again. */
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done || atomic_load(&s->watching) > 0)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

/* A server with a port but never started still owns its listener, which only a shutdown lets
 * go; no CQ thread runs yet, so wait for the shutdown tag here. */
static void shutdown_unstarted(struct rpc_server *s)
{
    grpc_server_shutdown_and_notify(s->server, s->cqs[0].cq, &s->shutdown_tag);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cqs[0].cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                   NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN || ev.tag == &s->shutdown_tag)
            return;
    }
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s)
        return;
    if (!s->started && s->port > 0)
        shutdown_unstarted(s);
    if (s->started) {
        rpc_server_stop(s, 0);
        pthread_mutex_lock(&s->lock);
        while (atomic_load(&s->live) > 0)
            pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
    if (s->server)
        grpc_server_destroy(s->server);
    for (unsigned i = 0; s->cqs && i < s->ncq; i++)
        grpc_completion_queue_shutdown(s->cqs[i].cq);
    for (unsigned i = 0; s->cqs && i < s->ncq; i++) {
        if (s->started)
            pthread_join(s->cqs[i].thread, NULL);
        grpc_completion_queue_destroy(s->cqs[i].cq);
    }
    for (size_t i = 0; i < s->nms; i++) {
        struct rpc_call *c = s->ms[i].pool;
        while (c) {
            struct rpc_call *next = c->next_free;
            pthread_mutex_destroy(&c->lock);
            free(c->sq);
            free(c);
            c = next;
        }
        pthread_mutex_destroy(&s->ms[i].pool_lock);
    }
    free(s->ms);
    free(s->cqs);
    free(s->listen);
    rpc_tls_server_free(s->tls); /* after the server: its handshakes call the fetcher */
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    rpc_core_shutdown();
}
