/* cmd/agentry/bench.c - the async load engine and latency histogram (see bench.h).
 *
 * Thread: everything here runs on the caller's thread, which is the only one draining the
 * completion queue; slots need no lock. A slot is one call in flight at a time: tag = the slot,
 * one rpc_async_unary batch per call (common/rpc/client.h), released when it completes. */
#include "cmd/agentry/bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/xalloc.h"

#define BENCH_WAKE_MS 200     /* how soon a Ctrl-C or the end of the duration is seen */
#define BENCH_SLOT_ARENA 2048 /* room to decode a typical reply without malloc */

/* --- histogram ------------------------------------------------------------------------------- */

static size_t hist_index(int64_t us)
{
    if (us < 0)
        us = 0;
    if (us < BENCH_HIST_EXACT)
        return (size_t)us;
    int e = 63 - __builtin_clzll((unsigned long long)us); /* >= 7 */
    size_t idx = BENCH_HIST_EXACT + (size_t)(e - 7) * BENCH_HIST_SUB +
                 (size_t)((us >> (e - 6)) - BENCH_HIST_SUB);
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* The middle of bucket idx, in microseconds. */
static int64_t hist_value(size_t idx)
{
    if (idx < BENCH_HIST_EXACT)
        return (int64_t)idx;
    size_t g = (idx - BENCH_HIST_EXACT) / BENCH_HIST_SUB,
           sub = (idx - BENCH_HIST_EXACT) % BENCH_HIST_SUB;
    int shift = (int)g + 1; /* e - 6 with e = g + 7 */
    return ((int64_t)(BENCH_HIST_SUB + sub) << shift) + ((int64_t)1 << (shift - 1));
}

void bench_hist_add(struct bench_hist *h, int64_t us)
{
    h->counts[hist_index(us)]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

int64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q >= 1.0)
        return h->max_us;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if ((double)rank < q * (double)h->n)
        rank++; /* ceil: the smallest value with at least q of the samples at or below it */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            int64_t v = hist_value(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

/* --- engine ---------------------------------------------------------------------------------- */

struct bench_engine;

struct bench_slot {
    struct bench_engine *e;
    size_t idx;
    struct rpc_channel *rch; /* borrowed */
    struct rpc_async_call ac;
    int64_t t0_ns;
    struct ag_arena arena;
    max_align_t abuf[BENCH_SLOT_ARENA / sizeof(max_align_t)];
};

struct bench_engine {
    const struct bench_cfg *cfg;
    struct bench_result *res;
    grpc_completion_queue *cq;
    struct bench_slot *slots;
    size_t inflight;
    uint64_t started;
    int64_t t_start_ns, t_end_ns, t_last_ns;
};

static bool budget_left(const struct bench_engine *e)
{
    const struct bench_cfg *cfg = e->cfg;
    if ((cfg->stop && *cfg->stop) || e->res->hub_lost)
        return false;
    if (cfg->duration_ms > 0)
        return ag_now_mono_ns() < e->t_end_ns;
    return e->started < cfg->calls;
}

static void record_error(struct bench_engine *e, const struct ag_err *err)
{
    if (e->res->errors++ == 0)
        e->res->first_err = *err;
}

static void start_call(struct bench_slot *s)
{
    struct bench_engine *e = s->e;
    const struct bench_cfg *cfg = e->cfg;
    struct ag_err err = AG_ERR_INIT;
    e->started++;
    s->t0_ns = ag_now_mono_ns();
    grpc_slice req = cfg->reqs[s->idx % cfg->nreqs];
    if (rpc_async_start(&s->ac, s->rch, e->cq, cfg->method, ag_deadline_in_ms(cfg->timeout_ms),
                        &err) != 0 ||
        /* the byte buffer takes its own ref on the shared slice */
        rpc_async_unary(&s->ac, grpc_raw_byte_buffer_create(&req, 1), s, &err) != 0) {
        /* Not a hub error but ours; count it and leave the slot idle rather than spin. */
        record_error(e, &err);
        e->res->calls++;
        rpc_async_release(&s->ac);
        return;
    }
    e->inflight++;
}

/* Whether the finished call on s shows that the hub is gone, rather than slow or answering with
 * an error. UNAVAILABLE covers refused and reset connections and a hub that is shutting down. A
 * deadline counts only if it passed while the channel was not even connected, the rule
 * rpc_channel_status_to_err uses for "cannot reach hub"; a slow hub on a live connection is
 * what a load test measures. */
static bool hub_gone(const struct bench_slot *s)
{
    if (s->ac.status == GRPC_STATUS_UNAVAILABLE)
        return true;
    if (s->ac.status != GRPC_STATUS_DEADLINE_EXCEEDED)
        return false;
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(rpc_channel_grpc(s->rch), 0);
    return st == GRPC_CHANNEL_CONNECTING || st == GRPC_CHANNEL_TRANSIENT_FAILURE;
}

/* Judge a finished call, then free what it held. */
static void finish_call(struct bench_slot *s, int64_t now_ns)
{
    struct bench_engine *e = s->e;
    const struct bench_cfg *cfg = e->cfg;
    struct ag_err err = AG_ERR_INIT;
    int rc = rpc_async_status(&s->ac, &err);
    grpc_byte_buffer *reply = rpc_async_recv_take(&s->ac);
    if (rc == 0 && !reply)
        rc = ag_err_set(&err, AG_INTERNAL, "hub answered OK without a reply message");
    if (rc == 0 && cfg->on_reply)
        rc = cfg->on_reply(cfg->arg, s->idx, reply, &s->arena, &err);
    e->res->calls++;
    if (rc == 0)
        bench_hist_add(e->res->hist, (now_ns - s->t0_ns) / 1000);
    else
        record_error(e, &err);
    if (rc < 0 && !e->res->hub_lost && hub_gone(s)) {
        e->res->hub_lost = true;
        e->res->lost_err = err;
    }
    ag_arena_reset(&s->arena);
    grpc_byte_buffer_destroy(reply);
    rpc_async_release(&s->ac);
}

static void progress(const struct bench_engine *e)
{
    fprintf(stderr, "bench: %" PRIu64 " calls, %" PRIu64 " errors\n", e->res->calls,
            e->res->errors);
}

static void drain(struct bench_engine *e)
{
    int64_t next_progress = e->t_start_ns + 1000000000LL;
    while (e->inflight > 0) {
        grpc_event ev = grpc_completion_queue_next(e->cq, rpc_deadline_ms(BENCH_WAKE_MS), NULL);
        int64_t now = ag_now_mono_ns();
        if (ev.type == GRPC_OP_COMPLETE) {
            struct bench_slot *s = ev.tag;
            e->inflight--;
            e->t_last_ns = now;
            finish_call(s, now);
            if (budget_left(e))
                start_call(s);
        }
        if (e->cfg->progress && now >= next_progress) {
            progress(e);
            next_progress += 1000000000LL;
        }
    }
}

static void slots_init(struct bench_engine *e)
{
    const struct bench_cfg *cfg = e->cfg;
    e->slots = ag_xcalloc(cfg->concurrency, sizeof(*e->slots));
    for (size_t i = 0; i < cfg->concurrency; i++) {
        struct bench_slot *s = &e->slots[i];
        s->e = e;
        s->idx = i;
        s->rch = cfg->chans[i % cfg->nchans];
        ag_arena_init(&s->arena, s->abuf, sizeof(s->abuf));
    }
}

static void slots_release(struct bench_engine *e)
{
    for (size_t i = 0; i < e->cfg->concurrency; i++) {
        struct bench_slot *s = &e->slots[i];
        ag_arena_release(&s->arena);
    }
    free(e->slots);
}

void bench_run(const struct bench_cfg *cfg, struct bench_result *res)
{
    memset(res, 0, sizeof(*res));
    res->hist = ag_xcalloc(1, sizeof(*res->hist));
    struct bench_engine e = {cfg, res, NULL, NULL, 0, 0, 0, 0, 0};
    e.cq = grpc_completion_queue_create_for_next(NULL);
    slots_init(&e);
    e.t_start_ns = e.t_last_ns = ag_now_mono_ns();
    e.t_end_ns = e.t_start_ns + cfg->duration_ms * 1000000;
    for (size_t i = 0; i < cfg->concurrency && budget_left(&e); i++)
        start_call(&e.slots[i]);
    drain(&e);
    res->elapsed_ns = e.t_last_ns - e.t_start_ns;
    grpc_completion_queue_shutdown(e.cq);
    while (grpc_completion_queue_next(e.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(e.cq);
    slots_release(&e);
}

void bench_result_release(struct bench_result *res)
{
    free(res->hist);
    res->hist = NULL;
}
