/* worker/cancel.h - a cancel handle: how a run tells its in-flight model or tool call to stop.
 *
 * A run owns one handle for its life; cancelling is final. A call listens while it is in flight:
 * the listener runs once, on the cancelling thread (a KillAgent or Cancel from the hub, a lost
 * stream, the node stopping), and should make the call finish soon, typically by queueing its
 * done() on a timer. A cancelled call still calls done() exactly once: the run ignores what it
 * returns. A call that never listens can poll wk_cancel_requested.
 *
 * Threads: every function is thread-safe. The listener runs under the handle's lock, so that
 * wk_cancel_unlisten returning means it is neither running nor will run: it must be quick, must
 * not call done() and must not call wk_cancel_* on the same handle. Every function accepts NULL
 * (a call made without a handle is never cancelled). */
#ifndef AGENTRY_WORKER_CANCEL_H
#define AGENTRY_WORKER_CANCEL_H

#include <pthread.h>
#include <stdbool.h>

typedef void wk_cancel_fn(void *arg);

struct wk_cancel {
    pthread_mutex_t mu;
    bool requested;   /* under mu; never cleared */
    wk_cancel_fn *fn; /* under mu: the in-flight call's listener, NULL if none */
    void *arg;
};

void wk_cancel_init(struct wk_cancel *c);
void wk_cancel_release(struct wk_cancel *c);
/* Cancel: from now on wk_cancel_requested is true; the listener, if any, runs once, now. */
void wk_cancel_request(struct wk_cancel *c);
bool wk_cancel_requested(struct wk_cancel *c);
/* Listen until wk_cancel_unlisten(c, arg). false if cancel was already requested (fn is then not
 * kept: the caller acts on it at once). One listener at a time: a run has one call in flight. */
bool wk_cancel_listen(struct wk_cancel *c, wk_cancel_fn *fn, void *arg);
/* Stop listening (no-op unless arg's listener is the one kept). Call before done(). */
void wk_cancel_unlisten(struct wk_cancel *c, void *arg);

#endif
