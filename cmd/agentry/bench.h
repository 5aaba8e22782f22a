/* cmd/agentry/bench.h - the load engine behind 'agentry bench': N unary calls kept in flight on
 * the gRPC core async API, and a fixed latency histogram.
 *
 * One completion queue, drained by the calling thread: each completion records its latency and
 * at once starts the slot's next call, until the budget (a duration or a number of calls) is
 * used; then the calls in flight finish and bench_run returns. Nothing is malloc'd per call
 * beyond what gRPC needs (a byte buffer wrapping a shared, pre-packed request slice).
 *
 * A call that finds the hub gone (UNAVAILABLE, or a deadline that passed while the channel was
 * not even connected) ends the run the same way, as a Ctrl-C does: such calls fail at once, so
 * going on would spin through failed calls at full CPU until the budget ran out, measuring
 * nothing. Other errors (a hub answering with an error, a slow hub) are counted and the run goes
 * on: that is what a load test is for. */
#ifndef AGENTRY_CMD_BENCH_H
#define AGENTRY_CMD_BENCH_H

#include <grpc/grpc.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/err.h"
#include "common/rpc/client.h"

/* Log-linear buckets of microseconds: exact below 128 us, then 64 per power of two (about 1.6%
 * resolution) up to 2^41 us. 18 KiB, no allocation per sample. */
#define BENCH_HIST_EXACT 128
#define BENCH_HIST_SUB 64
#define BENCH_HIST_BUCKETS (BENCH_HIST_EXACT + 35 * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t n;
    int64_t max_us;
};

void bench_hist_add(struct bench_hist *h, int64_t us);
/* The q-quantile (0 < q <= 1) in microseconds; 0 if empty. q = 1 gives the exact maximum. */
int64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* Checks one reply (decoded into `arena` if needed, reset after the call). -1 with err makes
 * the call count as an error. */
typedef int bench_reply_fn(void *arg, size_t slot, grpc_byte_buffer *reply, struct ag_arena *arena,
                           struct ag_err *err);

struct bench_cfg {
    struct rpc_channel **chans; /* borrowed; slot i uses chans[i % nchans] */
    size_t nchans;
    const char *method;     /* "/agentry.v1.AgentHub/Ping" */
    size_t concurrency;     /* slots, each with one call in flight */
    int64_t duration_ms;    /* start calls until this much time has passed, or */
    uint64_t calls;         /* start this many calls (used when duration_ms is 0) */
    int64_t timeout_ms;     /* per-call deadline */
    const grpc_slice *reqs; /* borrowed packed requests; slot i sends reqs[i % nreqs] */
    size_t nreqs;
    bench_reply_fn *on_reply; /* NULL: any OK reply counts as a success */
    void *arg;
    bool progress;               /* a line on stderr each second */
    volatile sig_atomic_t *stop; /* may be NULL; when set, no new call starts */
};

struct bench_result {
    uint64_t calls;  /* completed */
    uint64_t errors; /* of which failed */
    struct ag_err first_err;
    bool hub_lost;           /* the run ended early: a call found the hub gone (see above) */
    struct ag_err lost_err;  /* the call that showed it, when hub_lost */
    int64_t elapsed_ns;      /* first start to last completion */
    struct bench_hist *hist; /* owned: latencies of successful calls */
};

/* Run the load. Errors of calls are counted in res, not returned; res->hub_lost says whether the
 * budget was cut short because the hub went away. */
void bench_run(const struct bench_cfg *cfg, struct bench_result *res);
void bench_result_release(struct bench_result *res);

#endif
