/* worker/emit.h - the event sink: how a node's runs hand their events to the hub connection.
 *
 * Owns: the sink's contract only. worker/conn.c implements it (over worker/outbox.c); the runner
 * passes it to its runs (wk_runner_opts, worker/run.h), and tests fill it with their own.
 *
 * Threads: emit() is called from pool threads (and from the caller of wk_runner_reject) with the
 * emitting run's lock held, so that a cancel that has returned is never followed by an event:
 * emit() must return quickly and must not call into the runner or the run. room() is called by
 * pool threads with no run lock held. Completions (done, wake) run on the sink's own thread. */
#ifndef AGENTRY_WORKER_EMIT_H
#define AGENTRY_WORKER_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The hub stored the event (err NULL), or never will (err says why: AG_ABORTED when the hub
 * discarded it because the run's epoch is no longer current, AG_UNAVAILABLE when the stream was
 * lost). Called exactly once, from the sink's own thread (the connection thread on a node), never
 * from inside emit(). Must be quick. */
typedef void wk_emit_done_fn(void *arg, const struct ag_err *err);
/* ev: a packed agentry.v1.NodeEvent, owned by the callee from the call on, whatever it returns.
 * Events of one agent are emitted in order. done: NULL (nobody waits), or called as
 * wk_emit_done_fn says. Returns 0 when the event was queued for the hub, -1 when it was dropped
 * because no stream is up (done is then never called; the runs are being cancelled). */
typedef int wk_emit_fn(void *ctx, uint8_t *ev, size_t len, wk_emit_done_fn *done, void *done_arg);
/* Called once when the emit queues have room again, or when they were emptied (stream lost). */
typedef void wk_wake_fn(void *arg);
/* Back-pressure: true if the emit queues have room for more events. Otherwise false, and
 * wake(arg) will be called exactly once, later, never from inside room(). Called by pool
 * threads with no run lock held. */
typedef bool wk_room_fn(void *ctx, wk_wake_fn *wake, void *arg);

/* A turn asked to hand itself back (Release) stopped at a step boundary with all its events
 * stored: tell the hub (Released). Called by the run's token holder with no run lock held. */
typedef void wk_released_fn(void *ctx, const char *agent_id, uint64_t epoch);

#endif
