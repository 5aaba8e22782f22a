/* common/timers.h - one timer thread: run a callback after a delay.
 * The node uses it for model/tool delays, the hub for backing off re-placements, so nothing
 * sleeps on a pool or completion-queue thread.
 * Callbacks run on the timer thread and must be quick (typically: queue work and return). */
#ifndef AGENTRY_COMMON_TIMERS_H
#define AGENTRY_COMMON_TIMERS_H

#include <stdint.h>

#include "common/err.h"

struct ag_timers;
typedef void ag_timer_fn(void *arg);

struct ag_timers *ag_timers_new(struct ag_err *err);
/* Runs every pending timer's callback at once (in deadline order), then joins the thread. */
void ag_timers_free(struct ag_timers *t);
/* Call fn(arg) after delay_ms (0 = as soon as possible, on the timer thread). */
void ag_timers_add(struct ag_timers *t, int64_t delay_ms, ag_timer_fn *fn, void *arg);
/* Return once every callback due now (and the one running, if any) has finished: after it, a
 * callback that saw state from before the call is over. Not from the timer thread itself. */
void ag_timers_flush(struct ag_timers *t);

#endif
