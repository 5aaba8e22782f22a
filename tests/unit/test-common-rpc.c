/* tests/unit/test-common-rpc.c - common/rpc/server.h driven by a raw gRPC core client, and the
 * asynchronous client call of common/rpc/client.h (rpc_async_*) against the same server.
 *
 * common/ does not know agentry.v1, so the methods here move raw bytes, and the raw client is
 * the core API (grpc-core.md §5) with one pluck queue per call. Each test gets a fresh server on
 * 127.0.0.1:0 with two CQ threads. Handlers run on the server's threads and only record into
 * the fixture (under its lock) and signal; asserts run on the test's thread; every wait is a
 * condition variable or a pluck with a deadline. Under ASan, LSan checks that stopping with
 * calls open, and a handler holding a reference past stop, leak nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/client.h"
#include "common/rpc/server.h"

#define WAIT_MS 5000
#define SMALL_LIMIT 1024
#define BURST_CAP 2

/* --- fixture and helpers --------------------------------------------------------------------- */

struct fx {
    struct rpc_server *srv;
    grpc_channel *ch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Guarded by mu: */
    unsigned calls;             /* on_call of Hang, Wait and Later */
    unsigned closes, cancelled; /* on_close, and how many said cancelled */
    unsigned half_closes;       /* Chat's on_recv(NULL) */
    int burst_rc[BURST_CAP + 2];
    struct ag_err burst_err;
    bool hold; /* Hang keeps a reference on its first call in `held` */
    struct rpc_call *held;
    struct rpc_call *later[64]; /* Later's calls waiting for the replier thread */
    unsigned nlater;
    bool quit;
    pthread_t replier;
};

static void bump(struct fx *fx, unsigned *counter)
{
    pthread_mutex_lock(&fx->mu);
    (*counter)++;
    pthread_cond_broadcast(&fx->cv);
    pthread_mutex_unlock(&fx->mu);
}

/* Waits until *counter >= n or WAIT_MS passed; returns the value seen (n = 0: just read it). */
static unsigned wait_count(struct fx *fx, const unsigned *counter, unsigned n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&fx->mu);
    while (*counter < n)
        if (pthread_cond_timedwait(&fx->cv, &fx->mu, &dl) == ETIMEDOUT)
            break;
    unsigned got = *counter;
    pthread_mutex_unlock(&fx->mu);
    return got;
}

static grpc_byte_buffer *bb_new(const void *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* A malloc'd, NUL-terminated copy of the buffer's bytes. */
static char *bb_bytes(grpc_byte_buffer *bb, size_t *len)
{
    grpc_byte_buffer_reader r;
    grpc_byte_buffer_reader_init(&r, bb);
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    *len = GRPC_SLICE_LENGTH(s);
    char *p = malloc(*len + 1);
    memcpy(p, GRPC_SLICE_START_PTR(s), *len);
    p[*len] = '\0';
    grpc_slice_unref(s);
    return p;
}

/* --- handlers (server threads) ---------------------------------------------------------------- */

static void echo_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    rpc_call_reply_take(c, grpc_byte_buffer_copy(req));
}

/* The request "<code>:<message>" is answered with that status. */
static void fail_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    size_t len;
    char *text = bb_bytes(req, &len);
    char *colon = strchr(text, ':');
    rpc_call_finish(c, (enum ag_code)atoi(text), colon ? colon + 1 : NULL);
    free(text);
}

/* Count: the request {n, code} (two uint32_t, host order: both ends are this process) asks for
 * n messages {i, then i % 64 bytes of 'a' + i % 26}, then status code ("stopped after <n>").
 * Messages are produced as the queue drains (on_sent); finish follows the last send at once. */
struct count_state {
    uint32_t n, next, code;
};

static void count_fill(struct rpc_call *c)
{
    struct count_state *st = rpc_call_state(c);
    while (st->next < st->n && rpc_call_send_pending(c) < 8) {
        char buf[4 + 64];
        memcpy(buf, &st->next, 4);
        memset(buf + 4, 'a' + (int)(st->next % 26), st->next % 64);
        if (rpc_call_send_take(c, bb_new(buf, 4 + st->next % 64), NULL) != 0)
            return; /* the call is over */
        st->next++;
    }
    if (st->next == st->n && !rpc_call_done(c)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "stopped after %u", st->n);
        rpc_call_finish(c, (enum ag_code)st->code, st->code ? msg : NULL);
    }
}

static void count_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    size_t len;
    char *p = bb_bytes(req, &len);
    struct count_state *st = rpc_call_state(c);
    if (len == 8) {
        memcpy(&st->n, p, 4);
        memcpy(&st->code, p + 4, 4);
    }
    free(p);
    count_fill(c);
}

/* Burst: BURST_CAP + 2 sends at once. The first goes in flight, BURST_CAP wait in the queue and
 * the last must be refused: no completion of this call can run while its on_call runs. */
static void burst_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct fx *fx = rpc_call_user(c);
    struct ag_err err = AG_ERR_INIT;
    int rc[BURST_CAP + 2];
    for (uint32_t i = 0; i < BURST_CAP + 2; i++)
        rc[i] = rpc_call_send_take(c, bb_new(&i, 4), &err);
    rpc_call_finish(c, AG_OK, NULL);
    pthread_mutex_lock(&fx->mu);
    memcpy(fx->burst_rc, rc, sizeof(rc));
    fx->burst_err = err;
    pthread_mutex_unlock(&fx->mu);
}

static void chat_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    rpc_call_recv(c);
}

static void chat_on_recv(struct rpc_call *c, grpc_byte_buffer *msg)
{
    struct fx *fx = rpc_call_user(c);
    if (!msg) {
        bump(fx, &fx->half_closes);
        rpc_call_finish(c, AG_OK, NULL);
        return;
    }
    rpc_call_send_take(c, grpc_byte_buffer_copy(msg), NULL);
    rpc_call_recv(c);
}

/* Hang: one message, then nothing until the call is cancelled or the server stops. */
static void hang_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct fx *fx = rpc_call_user(c);
    rpc_call_send_take(c, bb_new("hello", 5), NULL);
    pthread_mutex_lock(&fx->mu);
    if (fx->hold && !fx->held) {
        rpc_call_ref(c);
        fx->held = c;
    }
    fx->calls++;
    pthread_cond_broadcast(&fx->cv);
    pthread_mutex_unlock(&fx->mu);
}

/* Wait: a unary call that never answers on its own. */
static void wait_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct fx *fx = rpc_call_user(c);
    bump(fx, &fx->calls);
}

/* Denied: the authorize hook refuses it, so this never runs; if it did, the client would get OK. */
static void denied_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    (void)req;
    rpc_call_finish(c, AG_OK, NULL);
}

static void count_close(struct rpc_call *c, bool cancelled)
{
    struct fx *fx = rpc_call_user(c);
    pthread_mutex_lock(&fx->mu);
    fx->closes++;
    fx->cancelled += cancelled;
    pthread_cond_broadcast(&fx->cv);
    pthread_mutex_unlock(&fx->mu);
}

/* Later: the replier thread answers, holding a reference meanwhile. The request is copied into
 * the call state: the borrowed one dies with on_call. */
static void later_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct fx *fx = rpc_call_user(c);
    *(grpc_byte_buffer **)rpc_call_state(c) = grpc_byte_buffer_copy(req);
    rpc_call_ref(c);
    pthread_mutex_lock(&fx->mu);
    fx->calls++;
    bool queued = fx->nlater < sizeof(fx->later) / sizeof(fx->later[0]); /* 8 clients: always */
    if (queued)
        fx->later[fx->nlater++] = c;
    pthread_cond_broadcast(&fx->cv);
    pthread_mutex_unlock(&fx->mu);
    if (!queued) { /* answer here rather than overrun the queue */
        rpc_call_reply_take(c, *(grpc_byte_buffer **)rpc_call_state(c));
        rpc_call_unref(c);
    }
}

static void *replier_main(void *arg)
{
    struct fx *fx = arg;
    pthread_mutex_lock(&fx->mu);
    for (;;) {
        while (!fx->nlater && !fx->quit)
            pthread_cond_wait(&fx->cv, &fx->mu);
        if (!fx->nlater)
            break;
        struct rpc_call *c = fx->later[--fx->nlater];
        pthread_mutex_unlock(&fx->mu);
        grpc_byte_buffer **req = rpc_call_state(c);
        rpc_call_reply_take(c, *req);
        *req = NULL;
        rpc_call_unref(c);
        pthread_mutex_lock(&fx->mu);
    }
    pthread_mutex_unlock(&fx->mu);
    return NULL;
}

static const struct rpc_method methods[] = {
    {.path = "/t.T/Echo", .kind = RPC_UNARY, .on_call = echo_on_call},
    {.path = "/t.T/Fail", .kind = RPC_UNARY, .on_call = fail_on_call},
    {.path = "/t.T/Small",
     .kind = RPC_UNARY,
     .max_request_bytes = SMALL_LIMIT,
     .on_call = echo_on_call},
    {.path = "/t.T/Count",
     .kind = RPC_SERVER_STREAM,
     .state_size = sizeof(struct count_state),
     .on_call = count_on_call,
     .on_sent = count_fill,
     .on_close = count_close},
    {.path = "/t.T/Burst",
     .kind = RPC_SERVER_STREAM,
     .send_queue_cap = BURST_CAP,
     .on_call = burst_on_call},
    {.path = "/t.T/Chat",
     .kind = RPC_BIDI,
     .max_request_bytes = SMALL_LIMIT,
     .on_call = chat_on_call,
     .on_recv = chat_on_recv,
     .on_close = count_close},
    {.path = "/t.T/Hang",
     .kind = RPC_SERVER_STREAM,
     .on_call = hang_on_call,
     .on_close = count_close},
    {.path = "/t.T/Wait", .kind = RPC_UNARY, .on_call = wait_on_call, .on_close = count_close},
    {.path = "/t.T/Denied", .kind = RPC_UNARY, .on_call = denied_on_call},
    {.path = "/t.T/Later",
     .kind = RPC_UNARY,
     .state_size = sizeof(grpc_byte_buffer *),
     .on_call = later_on_call},
};

/* The server's authorize hook: "/t.T/Denied" never reaches its handler. On a plaintext server
 * there is no peer certificate. */
static int authorize(struct rpc_call *c, const struct rpc_method *m, struct ag_err *err)
{
    if (rpc_call_tls(c) || rpc_call_peer_cert(c, NULL))
        return ag_err_set(err, AG_INTERNAL, "a plaintext call claims TLS");
    if (strcmp(m->path, "/t.T/Denied") == 0)
        return ag_err_set(err, AG_PERMISSION_DENIED, "caller may not call %s", m->path);
    rpc_call_set_auth(c, m);
    return 0;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    pthread_mutex_init(&fx->mu, NULL);
    pthread_cond_init(&fx->cv, NULL);
    struct rpc_server_opts o = {
        .listen = "127.0.0.1:0", .threads = 2, .user = fx, .authorize = authorize};
    struct ag_err err = AG_ERR_INIT;
    fx->srv = rpc_server_new(&o, methods, sizeof(methods) / sizeof(methods[0]), &err);
    if (!fx->srv || rpc_server_port(fx->srv) <= 0) {
        print_error("server: %s\n", err.msg);
        return -1;
    }
    rpc_server_start(fx->srv);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(fx->srv));
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    fx->ch = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    pthread_create(&fx->replier, NULL, replier_main, fx);
    *state = fx;
    return 0;
}

/* Stops and frees the server; idempotent, so a test may do it to check what follows. */
static void fx_stop(struct fx *fx)
{
    if (fx->srv) {
        rpc_server_stop(fx->srv, 0);
        rpc_server_free(fx->srv);
    }
    fx->srv = NULL;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    pthread_mutex_lock(&fx->mu);
    fx->quit = true;
    pthread_cond_broadcast(&fx->cv);
    pthread_mutex_unlock(&fx->mu);
    pthread_join(fx->replier, NULL);
    grpc_channel_destroy(fx->ch);
    fx_stop(fx);
    pthread_cond_destroy(&fx->cv);
    pthread_mutex_destroy(&fx->mu);
    free(fx);
    return 0;
}

/* --- client: raw core calls, one pluck queue each -------------------------------------------- */

/* No cmocka asserts in here: client threads use these, and cmocka's asserts longjmp. A batch
 * that is refused or does not complete within WAIT_MS marks the call bad; cc_close then says -1.
 * The status is requested when the call opens (like common/rpc/client.c's streams). */
struct ccall {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *send;
    grpc_metadata_array md, trail;
    grpc_status_code status;
    grpc_slice details;
    bool started, bad;
    char tag_start, tag_msg, tag_status; /* their addresses are the tags */
};

static void cc_batch(struct ccall *k, grpc_op *ops, size_t n, void *tag, bool wait)
{
    if (n && !k->bad && grpc_call_start_batch(k->call, ops, n, tag, NULL) != GRPC_CALL_OK)
        k->bad = true;
    gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                   gpr_time_from_millis(WAIT_MS, GPR_TIMESPAN));
    if (wait && !k->bad &&
        grpc_completion_queue_pluck(k->cq, tag, dl, NULL).type != GRPC_OP_COMPLETE)
        k->bad = true;
}

/* Opens a call; with data, sends it and half-closes (a unary or server-streaming request). */
static struct ccall *cc_open(struct fx *fx, const char *method, const void *data, size_t len,
                             int timeout_ms)
{
    struct ccall *k = calloc(1, sizeof(*k));
    k->cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec dl = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    if (timeout_ms > 0)
        dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                          gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    k->call = grpc_channel_create_call(fx->ch, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq,
                                       grpc_slice_from_static_string(method), NULL, dl, NULL);
    grpc_metadata_array_init(&k->md);
    grpc_metadata_array_init(&k->trail);
    k->details = grpc_empty_slice();
    grpc_op ops[4] = {{.op = GRPC_OP_SEND_INITIAL_METADATA}};
    size_t n = 1;
    if (data) {
        k->send = bb_new(data, len);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = k->send;
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &k->md;
    cc_batch(k, ops, n, &k->tag_start, false);
    grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    st.data.recv_status_on_client.trailing_metadata = &k->trail;
    st.data.recv_status_on_client.status = &k->status;
    st.data.recv_status_on_client.status_details = &k->details;
    cc_batch(k, &st, 1, &k->tag_status, false);
    return k;
}

/* One step: send data (if not NULL) or half-close (if close), then, if rlen is not NULL, read
 * one message. Returns it (malloc'd), or NULL at the end of the stream. */
static char *cc_step(struct ccall *k, const void *data, size_t len, bool close, size_t *rlen)
{
    grpc_byte_buffer *out = data ? bb_new(data, len) : NULL, *in = NULL;
    grpc_op ops[2] = {{.op = GRPC_OP_SEND_MESSAGE}};
    size_t n = 0;
    if (out) {
        ops[n++].data.send_message.send_message = out;
    } else if (close) {
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    if (rlen) {
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n++].data.recv_message.recv_message = &in;
    }
    cc_batch(k, ops, n, &k->tag_msg, false);
    /* The opening batch completes once the server's metadata came, which may need this step
     * (a unary server sees the call only once the request is complete). */
    if (!k->started)
        cc_batch(k, NULL, 0, &k->tag_start, true); /* n = 0: only wait */
    k->started = true;
    cc_batch(k, NULL, 0, &k->tag_msg, true);
    grpc_byte_buffer_destroy(out);
    char *r = in ? bb_bytes(in, rlen) : NULL;
    grpc_byte_buffer_destroy(in);
    return r;
}

static char *cc_recv(struct ccall *k, size_t *len)
{
    return cc_step(k, NULL, 0, false, len);
}

/* Waits for the status (details copied to buf) and frees the call. */
static grpc_status_code cc_close(struct ccall *k, char *buf, size_t cap)
{
    if (!k->started)
        cc_batch(k, NULL, 0, &k->tag_start, true);
    cc_batch(k, NULL, 0, &k->tag_status, true);
    grpc_status_code st = k->bad ? (grpc_status_code)-1 : k->status;
    if (k->bad) { /* every batch must complete before the queue goes */
        grpc_call_cancel(k->call, NULL);
        grpc_completion_queue_pluck(k->cq, &k->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    NULL);
    }
    if (buf)
        snprintf(buf, cap, "%.*s", (int)GRPC_SLICE_LENGTH(k->details),
                 (const char *)GRPC_SLICE_START_PTR(k->details));
    grpc_slice_unref(k->details);
    grpc_byte_buffer_destroy(k->send);
    grpc_metadata_array_destroy(&k->md);
    grpc_metadata_array_destroy(&k->trail);
    grpc_call_unref(k->call);
    grpc_completion_queue_shutdown(k->cq);
    while (
        grpc_completion_queue_pluck(k->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
        GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(k->cq);
    free(k);
    return st;
}

/* A whole unary call: *resp (malloc'd, NULL if none; freed if resp is NULL) and the status. */
static grpc_status_code unary(struct fx *fx, const char *method, const void *data, size_t len,
                              char **resp, size_t *rlen, char *details, size_t cap)
{
    struct ccall *k = cc_open(fx, method, data, len, WAIT_MS);
    size_t ignored;
    char *r = cc_recv(k, rlen ? rlen : &ignored);
    if (resp)
        *resp = r;
    else
        free(r);
    return cc_close(k, details, cap);
}

/* --- unary ------------------------------------------------------------------------------------ */

struct worker {
    struct fx *fx;
    const char *method;
    unsigned id, n, ok; /* ok: calls answered OK with the exact payload */
    pthread_t th;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    static const char pad[] = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    for (unsigned i = 0; i < w->n; i++) {
        char req[160], *resp = NULL;
        int len = snprintf(req, sizeof(req), "w%02u-%04u-%.*s", w->id, i, (int)(i % 100), pad);
        size_t rlen = 0;
        grpc_status_code st = unary(w->fx, w->method, req, (size_t)len, &resp, &rlen, NULL, 0);
        w->ok += st == GRPC_STATUS_OK && resp && rlen == (size_t)len && !memcmp(resp, req, rlen);
        free(resp);
    }
    return NULL;
}

static void run_workers(struct fx *fx, const char *method, unsigned per)
{
    struct worker w[8];
    for (unsigned t = 0; t < 8; t++) {
        w[t] = (struct worker){.fx = fx, .method = method, .id = t, .n = per};
        assert_int_equal(pthread_create(&w[t].th, NULL, worker_main, &w[t]), 0);
    }
    for (unsigned t = 0; t < 8; t++)
        pthread_join(w[t].th, NULL);
    for (unsigned t = 0; t < 8; t++)
        assert_int_equal(w[t].ok, per);
}

static void test_unary_echo_concurrent(void **state)
{
    struct fx *fx = *state;
    run_workers(fx, "/t.T/Echo", 500);
    /* An empty message is still a message: the handler gets a zero-length buffer. */
    char *resp = NULL;
    size_t rlen = 1;
    assert_int_equal(unary(fx, "/t.T/Echo", "", 0, &resp, &rlen, NULL, 0), GRPC_STATUS_OK);
    assert_int_equal(rlen, 0);
    free(resp);
}

/* The reply comes from another thread, which holds a reference until it is done with the call. */
static void test_reply_from_other_thread(void **state)
{
    struct fx *fx = *state;
    run_workers(fx, "/t.T/Later", 100);
    assert_int_equal(wait_count(fx, &fx->calls, 0), 800);
    fx_stop(fx); /* every reference is back, else free would wait (until ctest's timeout) */
}

/* rpc_call_finish with an error code: the client gets that status and message. */
static void test_finish_error_status(void **state)
{
    struct fx *fx = *state;
    char d[256];
    assert_int_equal(unary(fx, "/t.T/Fail", "9:agent 'x' is killed", 21, NULL, NULL, d, sizeof(d)),
                     GRPC_STATUS_FAILED_PRECONDITION);
    assert_string_equal(d, "agent 'x' is killed");
    assert_int_equal(unary(fx, "/t.T/Fail", "5", 1, NULL, NULL, d, sizeof(d)),
                     GRPC_STATUS_NOT_FOUND);
    assert_string_equal(d, "");
    assert_int_equal(unary(fx, "/t.T/Fail", "14:store down; retry", 20, NULL, NULL, d, sizeof(d)),
                     GRPC_STATUS_UNAVAILABLE);
    assert_string_equal(d, "store down; retry");
}

/* A call the authorize hook refuses ends with its status; the handler never runs. */
static void test_authorize_refuses_before_the_handler(void **state)
{
    struct fx *fx = *state;
    char d[256];
    assert_int_equal(unary(fx, "/t.T/Denied", "x", 1, NULL, NULL, d, sizeof(d)),
                     GRPC_STATUS_PERMISSION_DENIED);
    assert_string_equal(d, "caller may not call /t.T/Denied");
    assert_int_equal(unary(fx, "/t.T/Fail", "5", 1, NULL, NULL, d, sizeof(d)),
                     GRPC_STATUS_NOT_FOUND); /* the others pass */
}

static void test_request_over_limit(void **state)
{
    struct fx *fx = *state;
    char big[SMALL_LIMIT + 1], d[256], *resp = NULL;
    memset(big, 'b', sizeof(big));
    size_t rlen = 0;
    assert_int_equal(unary(fx, "/t.T/Small", big, SMALL_LIMIT, &resp, &rlen, NULL, 0),
                     GRPC_STATUS_OK); /* exactly at the limit is fine */
    assert_int_equal(rlen, SMALL_LIMIT);
    free(resp);
    assert_int_equal(unary(fx, "/t.T/Small", big, sizeof(big), NULL, NULL, d, sizeof(d)),
                     GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(d, "request of 1025 bytes is over the limit of 1024 bytes");
    /* The same limit on each message of a bidi stream. */
    struct ccall *k = cc_open(fx, "/t.T/Chat", NULL, 0, WAIT_MS);
    free(cc_step(k, "hi", 2, false, &rlen));
    assert_int_equal(rlen, 2);
    assert_null(cc_step(k, big, sizeof(big), false, &rlen));
    assert_int_equal(cc_close(k, d, sizeof(d)), GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(d, "message of 1025 bytes is over the limit of 1024 bytes");
    assert_int_equal(wait_count(fx, &fx->closes, 1), 1);
    /* No message at all, where one is due. */
    k = cc_open(fx, "/t.T/Echo", NULL, 0, WAIT_MS);
    assert_null(cc_step(k, NULL, 0, true, &rlen));
    assert_int_equal(cc_close(k, d, sizeof(d)), GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(d, "the request carried no message");
}

/* --- streaming -------------------------------------------------------------------------------- */

static struct ccall *open_count(struct fx *fx, uint32_t n, uint32_t code, int timeout_ms)
{
    uint32_t req[2] = {n, code};
    return cc_open(fx, "/t.T/Count", req, sizeof(req), timeout_ms);
}

/* Reads up to max messages; returns how many arrived in order with the right bytes. */
static uint32_t read_count(struct ccall *k, uint32_t max)
{
    uint32_t got = 0, i;
    char *m;
    size_t len;
    while (got < max && (m = cc_recv(k, &len)) != NULL) {
        memcpy(&i, m, 4);
        bool ok = len == 4 + got % 64 && i == got;
        for (size_t j = 4; ok && j < len; j++)
            ok = m[j] == 'a' + (int)(got % 26);
        free(m);
        if (!ok)
            break;
        got++;
    }
    return got;
}

static void test_server_stream_in_order(void **state)
{
    struct fx *fx = *state;
    char d[128];
    struct ccall *k = open_count(fx, 2000, AG_OK, WAIT_MS);
    assert_int_equal(read_count(k, UINT32_MAX), 2000);
    assert_int_equal(cc_close(k, d, sizeof(d)), GRPC_STATUS_OK);
    assert_string_equal(d, "");
    k = open_count(fx, 0, AG_OK, WAIT_MS); /* no message: the status alone */
    assert_int_equal(read_count(k, UINT32_MAX), 0);
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_OK);
    /* An error after messages: the messages first, then the status. */
    k = open_count(fx, 3, AG_RESOURCE_EXHAUSTED, WAIT_MS);
    assert_int_equal(read_count(k, UINT32_MAX), 3);
    assert_int_equal(cc_close(k, d, sizeof(d)), GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(d, "stopped after 3");
    assert_int_equal(wait_count(fx, &fx->closes, 3), 3);
    assert_int_equal(wait_count(fx, &fx->cancelled, 0), 0);
}

static void test_send_queue_full(void **state)
{
    struct fx *fx = *state;
    struct ccall *k = cc_open(fx, "/t.T/Burst", "go", 2, WAIT_MS);
    uint32_t got = 0, i;
    char *m;
    size_t len;
    for (; (m = cc_recv(k, &len)) != NULL; got++) {
        memcpy(&i, m, 4);
        assert_int_equal(i, got);
        free(m);
    }
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_OK);
    assert_int_equal(got, BURST_CAP + 1); /* the refused message was dropped */
    pthread_mutex_lock(&fx->mu);
    for (int j = 0; j < BURST_CAP + 1; j++)
        assert_int_equal(fx->burst_rc[j], 0);
    assert_int_equal(fx->burst_rc[BURST_CAP + 1], -1);
    assert_int_equal(fx->burst_err.code, AG_RESOURCE_EXHAUSTED);
    assert_string_equal(fx->burst_err.msg,
                        "send queue of 2 messages is full: the client reads too slowly");
    pthread_mutex_unlock(&fx->mu);
}

static void test_bidi_echo(void **state)
{
    struct fx *fx = *state;
    struct ccall *k = cc_open(fx, "/t.T/Chat", NULL, 0, WAIT_MS);
    for (unsigned i = 0; i < 200; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof(msg), "message %u%.*s", i, (int)(i % 20),
                         "!!!!!!!!!!!!!!!!!!!!");
        size_t rlen = 0;
        char *r = cc_step(k, msg, (size_t)n, false, &rlen);
        assert_non_null(r);
        assert_int_equal(rlen, (size_t)n);
        assert_memory_equal(r, msg, rlen);
        free(r);
    }
    size_t rlen;
    assert_null(cc_step(k, NULL, 0, true, &rlen)); /* half-close: on_recv(NULL), then OK */
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_OK);
    assert_int_equal(wait_count(fx, &fx->closes, 1), 1);
    assert_int_equal(wait_count(fx, &fx->half_closes, 0), 1);
    assert_int_equal(wait_count(fx, &fx->cancelled, 0), 0);
}

/* --- client: the asynchronous call of common/rpc/client.h, as the node's stream uses it ------ */

struct async_tags {
    char status, send, recv;
};

/* Waits for count events on cq, checking each is one of t's and running what its tag asks:
 * send_done for sends, recv_take into *got (if got) for receives. *status_seen counts statuses. */
static void async_collect(grpc_completion_queue *cq, struct rpc_async_call *a, struct async_tags *t,
                          int count, grpc_byte_buffer **got, int *status_seen)
{
    for (int i = 0; i < count; i++) {
        grpc_event ev = grpc_completion_queue_next(cq, rpc_deadline_ms(WAIT_MS), NULL);
        assert_int_equal(ev.type, GRPC_OP_COMPLETE);
        if (ev.tag == &t->send) {
            rpc_async_send_done(a);
        } else if (ev.tag == &t->recv) {
            grpc_byte_buffer *bb = rpc_async_recv_take(a);
            if (got)
                *got = bb;
            else
                grpc_byte_buffer_destroy(bb);
        } else {
            assert_ptr_equal(ev.tag, &t->status);
            (*status_seen)++;
        }
    }
}

static struct rpc_channel *fx_channel(struct fx *fx)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(fx->srv));
    struct rpc_channel *ch = rpc_channel_new(target, NULL, NULL);
    assert_non_null(ch);
    return ch;
}

static void cq_drain_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

static void test_async_bidi_echo(void **state)
{
    struct fx *fx = *state;
    struct rpc_channel *ch = fx_channel(fx);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    struct rpc_async_call a;
    struct async_tags t;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(rpc_async_start(&a, ch, cq, "/t.T/Chat", AG_DEADLINE_NONE, &err), 0);
    assert_int_equal(rpc_async_recv_status(&a, &t.status, &err), 0);
    int statuses = 0;
    for (unsigned i = 0; i < 20; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "message %u", i);
        assert_int_equal(rpc_async_send(&a, bb_new(msg, (size_t)n), &t.send, &err), 0);
        assert_int_equal(rpc_async_recv(&a, &t.recv, &err), 0);
        grpc_byte_buffer *got = NULL;
        async_collect(cq, &a, &t, 2, &got, &statuses);
        assert_non_null(got);
        size_t len;
        char *r = bb_bytes(got, &len);
        assert_string_equal(r, msg);
        free(r);
        grpc_byte_buffer_destroy(got);
    }
    assert_int_equal(statuses, 0);
    /* Half-close: the server sees the end, finishes OK; our receive ends with no message. */
    assert_int_equal(rpc_async_close(&a, &t.send, &err), 0);
    assert_int_equal(rpc_async_recv(&a, &t.recv, &err), 0);
    grpc_byte_buffer *end = (grpc_byte_buffer *)&t; /* any non-NULL value, must become NULL */
    async_collect(cq, &a, &t, 3, &end, &statuses);
    assert_null(end);
    assert_int_equal(statuses, 1);
    assert_int_equal(rpc_async_status(&a, &err), 0);
    rpc_async_release(&a);
    rpc_async_release(&a); /* twice is fine */
    assert_int_equal(wait_count(fx, &fx->half_closes, 1), 1);
    cq_drain_destroy(cq);
    rpc_channel_free(ch);
}

static void test_async_cancel(void **state)
{
    struct fx *fx = *state;
    struct rpc_channel *ch = fx_channel(fx);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    struct rpc_async_call a;
    struct async_tags t;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(rpc_async_start(&a, ch, cq, "/t.T/Chat", ag_deadline_in_ms(WAIT_MS), &err), 0);
    assert_int_equal(rpc_async_recv_status(&a, &t.status, &err), 0);
    assert_int_equal(rpc_async_recv(&a, &t.recv, &err), 0);
    rpc_async_cancel(&a);
    int statuses = 0;
    grpc_byte_buffer *end = NULL;
    async_collect(cq, &a, &t, 2, &end, &statuses);
    assert_null(end);
    assert_int_equal(statuses, 1);
    assert_int_equal(rpc_async_status(&a, &err), -1);
    assert_int_equal(err.code, AG_CANCELLED);
    assert_int_equal(a.status, GRPC_STATUS_CANCELLED);
    rpc_async_release(&a);
    cq_drain_destroy(cq);
    rpc_channel_free(ch);
}

/* --- cancellation and stop -------------------------------------------------------------------- */

static void test_cancel_runs_on_close_once(void **state)
{
    struct fx *fx = *state;
    /* A long-running stream, cancelled by the client. */
    struct ccall *k = cc_open(fx, "/t.T/Hang", "x", 1, 0);
    size_t len;
    char *m = cc_recv(k, &len);
    assert_string_equal(m, "hello");
    free(m);
    assert_int_equal(wait_count(fx, &fx->closes, 0), 0);
    grpc_call_cancel(k->call, NULL);
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_CANCELLED);
    assert_int_equal(wait_count(fx, &fx->closes, 1), 1);
    /* A unary call with on_close learns of the cancel without answering. */
    k = cc_open(fx, "/t.T/Wait", "x", 1, 0);
    assert_int_equal(wait_count(fx, &fx->calls, 2), 2);
    grpc_call_cancel(k->call, NULL);
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_CANCELLED);
    assert_int_equal(wait_count(fx, &fx->closes, 2), 2);
    /* A deadline that passes is a cancellation too. */
    k = cc_open(fx, "/t.T/Wait", "x", 1, 200);
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(wait_count(fx, &fx->closes, 3), 3);
    /* A cancel while the server has messages queued and in flight (ASan: none leaks). */
    k = open_count(fx, 1000000, AG_OK, 0);
    assert_int_equal(read_count(k, 50), 50);
    grpc_call_cancel(k->call, NULL);
    assert_int_equal(cc_close(k, NULL, 0), GRPC_STATUS_CANCELLED);
    assert_int_equal(wait_count(fx, &fx->closes, 4), 4);
    assert_int_equal(wait_count(fx, &fx->cancelled, 0), 4);
    /* Exactly once: nothing more runs when the server goes away. */
    fx_stop(fx);
    assert_int_equal(wait_count(fx, &fx->closes, 0), 4);
    assert_int_equal(wait_count(fx, &fx->calls, 0), 3);
}

#define OPEN_STREAMS 6

static void test_stop_with_open_streams(void **state)
{
    struct fx *fx = *state;
    struct ccall *k[OPEN_STREAMS + 1];
    pthread_mutex_lock(&fx->mu);
    fx->hold = true;
    pthread_mutex_unlock(&fx->mu);
    /* Each client reads a first message, so its call is surely dispatched. (A gRPC client gets
     * its status only after reading the messages that arrived before it.) */
    size_t len;
    for (int i = 0; i < OPEN_STREAMS; i++) {
        k[i] = cc_open(fx, "/t.T/Hang", "x", 1, 0);
        free(cc_recv(k[i], &len));
        assert_int_equal(len, 5);
    }
    k[OPEN_STREAMS] = cc_open(fx, "/t.T/Chat", NULL, 0, 0);
    free(cc_step(k[OPEN_STREAMS], "ping", 4, false, &len));
    assert_int_equal(len, 4);

    rpc_server_stop(fx->srv, 100);
    /* Every on_close has returned by now, each as a cancellation. */
    assert_int_equal(wait_count(fx, &fx->closes, 0), OPEN_STREAMS + 1);
    assert_int_equal(wait_count(fx, &fx->cancelled, 0), OPEN_STREAMS + 1);
    /* The call a handler still holds is over: operations on it are harmless no-ops. */
    struct ag_err err = AG_ERR_INIT;
    assert_non_null(fx->held);
    assert_true(rpc_call_done(fx->held));
    assert_int_equal(rpc_call_send_take(fx->held, bb_new("late", 4), &err), -1);
    assert_int_equal(err.code, AG_CANCELLED);
    rpc_call_finish(fx->held, AG_OK, NULL);
    rpc_call_recv(fx->held);
    rpc_call_unref(fx->held);
    fx->held = NULL;
    rpc_server_free(fx->srv);
    fx->srv = NULL;
    assert_int_equal(wait_count(fx, &fx->closes, 0), OPEN_STREAMS + 1);
    for (int i = 0; i <= OPEN_STREAMS; i++) { /* the clients learn that their calls ended */
        grpc_status_code st = cc_close(k[i], NULL, 0);
        assert_true(st != GRPC_STATUS_OK && st != (grpc_status_code)-1);
    }
}

/* Regression: gRPC's SO_REUSEPORT let a second server share a port in use, silently. The listen
 * is exclusive and happens in rpc_server_new, with a reason; a server bound but never started
 * frees cleanly (ASan checks). */
static void test_port_in_use_is_refused_at_creation(void **state)
{
    struct fx *fx = *state;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(fx->srv));
    struct rpc_server_opts o = {.listen = addr, .threads = 1};
    struct ag_err err = AG_ERR_INIT;
    struct rpc_server *second = rpc_server_new(&o, methods, 1, &err);
    assert_null(second);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    char want[160];
    snprintf(want, sizeof(want),
             "cannot listen on '%s': address already in use (is another "
             "agent-hub running?)",
             addr);
    assert_string_equal(err.msg, want);
    o.listen = "127.0.0.1:0";
    struct rpc_server *unstarted = rpc_server_new(&o, methods, 1, &err);
    assert_non_null(unstarted);
    assert_true(rpc_server_port(unstarted) > 0);
    rpc_server_free(unstarted);
    o.listen = "nonsense";
    assert_null(rpc_server_new(&o, methods, 1, &err));
    assert_non_null(strstr(err.msg, "cannot listen on 'nonsense'"));
}

int main(void)
{
    ag_log_init("test", AG_LOG_ERROR);
    rpc_client_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_echo_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_from_other_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_error_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorize_refuses_before_the_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_over_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stream_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_bidi_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_runs_on_close_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_open_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use_is_refused_at_creation, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rpc_client_shutdown();
    return rc;
}
