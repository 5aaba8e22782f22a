/* worker/timers.h - one timer thread for the node: run a callback after a delay.
 * Used for model/tool delays and reconnect backoff, so nothing sleeps on a pool thread.
 * Callbacks run on the timer thread and must be quick (typically: queue work and return). */
#ifndef AGENTRY_WORKER_TIMERS_H
#define AGENTRY_WORKER_TIMERS_H

#include <stdint.h>

#include "common/err.h"

struct wk_timers;
typedef void wk_timer_fn(void *arg);

struct wk_timers *wk_timers_new(struct ag_err *err);
/* Runs every pending timer's callback at once (in deadline order), then joins the thread. */
void wk_timers_free(struct wk_timers *t);
/* Call fn(arg) after delay_ms (0 = as soon as possible, on the timer thread). */
void wk_timers_add(struct wk_timers *t, int64_t delay_ms, wk_timer_fn *fn, void *arg);

#endif
