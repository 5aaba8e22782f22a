/* worker/call.c - wk_call_after: a call that completes on a timer, cut short by cancel or its
 * deadline (see worker/call.h).
 *
 * Threads: the timer fires on the timer thread; a cancel arrives on the cancelling thread and
 * queues a second, immediate timer (the listener must not call done() itself). Whichever timer
 * runs first fires; `fired` makes the other a no-op. refs counts the pending timers, so the
 * struct outlives both. */
#include "worker/call.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/timers.h"
#include "common/xalloc.h"

struct call_timer {
    wk_call_fire_fn *fire;
    void *arg;
    struct wk_cancel *cancel; /* borrowed until fire */
    struct ag_timers *timers;
    enum ag_code code; /* what the main timer means: AG_OK or AG_DEADLINE_EXCEEDED */
    atomic_bool fired;
    atomic_int refs;
};

static void timer_unref(struct call_timer *t)
{
    if (atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

static void finish(struct call_timer *t, enum ag_code code)
{
    if (atomic_exchange(&t->fired, true))
        return;
    wk_cancel_unlisten(t->cancel, t);
    t->fire(t->arg, code);
}

static void on_timer(void *arg)
{
    struct call_timer *t = arg;
    finish(t, t->code);
    timer_unref(t);
}

static void on_cancel_timer(void *arg)
{
    finish(arg, AG_CANCELLED);
    timer_unref(arg);
}

/* The cancel listener, under the handle's lock: queue the early completion, nothing more. */
static void on_cancel(void *arg)
{
    struct call_timer *t = arg;
    atomic_fetch_add(&t->refs, 1);
    ag_timers_add(t->timers, 0, on_cancel_timer, t);
}

void wk_call_after(const struct wk_call_ctx *ctx, int64_t delay_ms, wk_call_fire_fn *fire,
                   void *arg)
{
    struct call_timer *t = ag_xcalloc(1, sizeof(*t));
    t->fire = fire;
    t->arg = arg;
    t->cancel = ctx->cancel;
    t->timers = ctx->timers;
    t->code = AG_OK;
    atomic_init(&t->fired, false);
    atomic_init(&t->refs, 1);
    if (ctx->deadline_ms > 0) {
        int64_t left = ctx->deadline_ms - ag_now_mono_ms();
        if (left <= delay_ms) {
            delay_ms = left > 0 ? left : 0;
            t->code = AG_DEADLINE_EXCEEDED;
        }
    }
    if (!wk_cancel_listen(ctx->cancel, on_cancel, t)) {
        delay_ms = 0;
        t->code = AG_CANCELLED;
    }
    ag_timers_add(ctx->timers, delay_ms, on_timer, t); /* last: from here t may be gone */
}
