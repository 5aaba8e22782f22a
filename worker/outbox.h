/* worker/outbox.h - the node's outgoing events, from emit to the hub's EventAck.
 *
 * Owns: the outbox (events emitted, not yet sent), the unacked batches (sent, not yet covered by
 * an EventAck), the runs parked until there is room, and the wire form of a batch. Both queues
 * are ag_queues (common/queue.h: their gauges "node.outbox" and "node.unacked" give depth and
 * bytes to whoever reads them) bounded in bytes of packed events:
 *
 *   WK_OUTBOX_MAX_BYTES          64 MiB emitted but unsent. At or over it, room() says no and
 *                                the runs wait (worker/runner.h, back-pressure). Runs check
 *                                between steps, so it is exceeded by at most the events of the
 *                                steps already past the check: two events per pool thread, each
 *                                within the hub's message limit.
 *   WK_OUTBOX_MAX_UNACKED_BYTES  64 MiB sent but unacknowledged. At or over it no batch is sent
 *                                until an ack comes (the events wait in the outbox, which then
 *                                fills and parks the runs); exceeded by at most one batch.
 *
 * 64 MiB each is 16 of the largest events a hub accepts by default (4 MiB), and far more than a
 * hub that keeps up ever leaves outstanding: the bounds only bite when the hub or the network
 * stalls, which is when a node must stop growing.
 *
 * Threads: not thread-safe. worker/conn.c calls every function under its lock. No function here
 * calls back: an event's completion and a parked run's wake-up take a run's lock, and emit()
 * holds a run's lock while taking conn's, so the callbacks due are collected in a struct
 * wk_outbox_calls that the caller runs after letting go of its lock. */
#ifndef AGENTRY_WORKER_OUTBOX_H
#define AGENTRY_WORKER_OUTBOX_H

#include <grpc/byte_buffer.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/list.h"
#include "common/queue.h"
#include "worker/emit.h"

#define WK_OUTBOX_MAX_BYTES ((size_t)64 << 20)
#define WK_OUTBOX_MAX_UNACKED_BYTES ((size_t)64 << 20)

struct wk_outbox_ev {
    struct ag_qnode node; /* in the outbox, then in its batch's chain, then in a calls chain */
    uint8_t *buf;         /* owned: a packed NodeEvent */
    size_t len;
    wk_emit_done_fn *done; /* NULL: nobody waits for the ack */
    void *done_arg;
};

struct wk_outbox_batch {
    struct ag_qnode node; /* in the unacked queue, weighing bytes */
    uint64_t id;
    struct ag_qnode *evs; /* owned chain of wk_outbox_ev nodes, oldest first, NULL-ended */
    size_t n, bytes;
};

struct wk_outbox_waiter {
    struct ag_list link;
    wk_wake_fn *wake;
    void *arg;
};

struct wk_outbox {
    struct ag_queue out;     /* wk_outbox_ev, gauge "node.outbox"; bound enforced by room() */
    struct ag_queue unacked; /* wk_outbox_batch, gauge "node.unacked", oldest first */
    struct ag_list waiters;  /* wk_outbox_waiter: runs parked until there is room */
    size_t max_bytes, max_unacked_bytes;
    uint64_t next_batch_id;
    atomic_bool full; /* out is at max_bytes; written under the caller's lock, read without it */
};

/* Callbacks due, to run with no lock held (wk_outbox_calls_run). */
struct wk_outbox_calls {
    struct ag_qnode *stored; /* chain of acknowledged events: done(arg, NULL) */
    struct ag_qnode *lost;   /* chain of dropped events: done(arg, &lost_err) */
    struct ag_err lost_err;
    struct ag_qnode *discarded; /* chain of events the hub refused as stale: AG_ABORTED */
    struct ag_list wake;        /* wk_outbox_waiter: room again, or everything dropped */
};
void wk_outbox_calls_init(struct wk_outbox_calls *calls);

/* max_bytes, max_unacked_bytes: 0 for the defaults above (tests pass small ones). */
void wk_outbox_init(struct wk_outbox *o, size_t max_bytes, size_t max_unacked_bytes);
/* Drops whatever is left without calling back; call wk_outbox_drop_all first if runs may wait. */
void wk_outbox_release(struct wk_outbox *o);

/* Queue a packed NodeEvent (taken). Always accepted, past the bound too: the bound is enforced
 * by room(), which each run checks before a step, and a run's step cannot be refused half-way. */
void wk_outbox_push(struct wk_outbox *o, uint8_t *buf, size_t len, wk_emit_done_fn *done,
                    void *done_arg);
/* Whether the outbox was full a moment ago, without the caller's lock: the runs' fast path
 * (a stale "not full" lets one more step through, within the documented excess; "full" is then
 * checked again under the lock by wk_outbox_room). Thread-safe. */
bool wk_outbox_full_hint(const struct wk_outbox *o);
/* true if under max_bytes; else false and wake(arg) is queued for when there is room. */
bool wk_outbox_room(struct wk_outbox *o, wk_wake_fn *wake, void *arg);
/* Move the next batch (at most max_events events and max_bytes bytes, but always one event) to
 * the unacked queue and return it (borrowed), or NULL if the outbox is empty or the unacked queue
 * is at its bound. Wakes nobody, as it may run under a run's lock (conn.c's on_emit): the
 * connection thread calls wk_outbox_wake_if_room after its sends. */
struct wk_outbox_batch *wk_outbox_next_batch(struct wk_outbox *o, size_t max_events,
                                             size_t max_bytes);
/* If the outbox has room, move every waiter's wake-up to calls. */
void wk_outbox_wake_if_room(struct wk_outbox *o, struct wk_outbox_calls *calls);
/* The hub acknowledged batch id: its events' completions go to calls (and the waiters' wake-ups
 * if the outbox has room). seqs: EventAck.seqs, the seq each event was stored at, in order; an
 * event whose seq is 0 was discarded (its epoch is no longer current) and completes with
 * AG_ABORTED. false if no batch has that id. */
bool wk_outbox_ack(struct wk_outbox *o, uint64_t id, const uint64_t *seqs, size_t nseqs,
                   struct wk_outbox_calls *calls);
/* The stream is gone: every event is dropped, completions with why, every waiter woken. */
void wk_outbox_drop_all(struct wk_outbox *o, const struct ag_err *why,
                        struct wk_outbox_calls *calls);
/* Run and free what calls holds; it is empty afterwards. */
void wk_outbox_calls_run(struct wk_outbox_calls *calls);

/* NodeMessage{events: EventBatch{batch_id, events}} as one byte buffer (caller destroys). */
grpc_byte_buffer *wk_outbox_pack(const struct wk_outbox_batch *b);

#endif
