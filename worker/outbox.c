/* worker/outbox.c - the node's outgoing events: bounded outbox, unacked batches, parked runs,
 * and the wire form of a batch. See worker/outbox.h for the bounds and the threading rule (the
 * caller's lock guards everything; callbacks are collected, never called, here). */
#include "worker/outbox.h"

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define EV(n) AG_QUEUE_ENTRY(n, struct wk_outbox_ev, node)
#define BATCH(n) AG_QUEUE_ENTRY(n, struct wk_outbox_batch, node)

void wk_outbox_calls_init(struct wk_outbox_calls *calls)
{
    calls->stored = calls->lost = calls->discarded = NULL;
    ag_err_clear(&calls->lost_err);
    ag_list_init(&calls->wake);
}

void wk_outbox_init(struct wk_outbox *o, size_t max_bytes, size_t max_unacked_bytes)
{
    o->max_bytes = max_bytes ? max_bytes : WK_OUTBOX_MAX_BYTES;
    o->max_unacked_bytes = max_unacked_bytes ? max_unacked_bytes : WK_OUTBOX_MAX_UNACKED_BYTES;
    /* No bound in the queues themselves: events are never refused (see wk_outbox_push) and a
     * sent batch must wait for its ack; the bounds above decide room and sends. */
    ag_queue_init(&o->out, "node.outbox", 0, 0);
    ag_queue_init(&o->unacked, "node.unacked", 0, 0);
    ag_list_init(&o->waiters);
    o->next_batch_id = 0;
    atomic_init(&o->full, false);
}

static void evs_free(struct ag_qnode *n)
{
    while (n) {
        struct ag_qnode *next = n->next;
        free(EV(n)->buf);
        free(EV(n));
        n = next;
    }
}

/* Appends chain b to chain *a. */
static void chain_append(struct ag_qnode **a, struct ag_qnode *b)
{
    while (*a)
        a = &(*a)->next;
    *a = b;
}

static void waiters_free(struct ag_list *l)
{
    struct ag_list *pos, *tmp;
    AG_LIST_FOREACH_SAFE(pos, tmp, l)
    {
        ag_list_remove(pos);
        free(AG_LIST_ENTRY(pos, struct wk_outbox_waiter, link));
    }
}

void wk_outbox_release(struct wk_outbox *o)
{
    evs_free(ag_queue_take_all(&o->out));
    for (struct ag_qnode *n = ag_queue_take_all(&o->unacked), *next; n; n = next) {
        next = n->next;
        evs_free(BATCH(n)->evs);
        free(BATCH(n));
    }
    waiters_free(&o->waiters);
}

static void update_full(struct wk_outbox *o);

void wk_outbox_push(struct wk_outbox *o, uint8_t *buf, size_t len, wk_emit_done_fn *done,
                    void *done_arg)
{
    struct wk_outbox_ev *e = ag_xcalloc(1, sizeof(*e));
    e->buf = buf;
    e->len = len;
    e->done = done;
    e->done_arg = done_arg;
    ag_queue_push_over(&o->out, &e->node, len);
    update_full(o);
}

static bool has_room(const struct wk_outbox *o)
{
    return ag_queue_bytes(&o->out) < o->max_bytes;
}

/* After every change to out's bytes. */
static void update_full(struct wk_outbox *o)
{
    atomic_store_explicit(&o->full, !has_room(o), memory_order_relaxed);
}

bool wk_outbox_full_hint(const struct wk_outbox *o)
{
    return atomic_load_explicit(&o->full, memory_order_relaxed);
}

bool wk_outbox_room(struct wk_outbox *o, wk_wake_fn *wake, void *arg)
{
    if (has_room(o))
        return true;
    struct wk_outbox_waiter *w = ag_xcalloc(1, sizeof(*w));
    w->wake = wake;
    w->arg = arg;
    ag_list_insert_tail(&o->waiters, &w->link);
    return false;
}

void wk_outbox_wake_if_room(struct wk_outbox *o, struct wk_outbox_calls *calls)
{
    if (has_room(o))
        ag_list_move_all(&calls->wake, &o->waiters);
}

struct wk_outbox_batch *wk_outbox_next_batch(struct wk_outbox *o, size_t max_events,
                                             size_t max_bytes)
{
    if (ag_queue_empty(&o->out) ||
        (!ag_queue_empty(&o->unacked) && ag_queue_bytes(&o->unacked) >= o->max_unacked_bytes))
        return NULL;
    struct wk_outbox_batch *b = ag_xcalloc(1, sizeof(*b));
    b->id = ++o->next_batch_id;
    struct ag_qnode **tail = &b->evs;
    for (struct ag_qnode *n = ag_queue_peek(&o->out);
         n && b->n < max_events && (b->n == 0 || b->bytes + EV(n)->len <= max_bytes);
         n = ag_queue_peek(&o->out)) {
        ag_queue_pop(&o->out);
        b->bytes += EV(n)->len;
        b->n++;
        *tail = n;
        tail = &n->next;
    }
    ag_queue_push_over(&o->unacked, &b->node, b->bytes);
    update_full(o);
    return b;
}

/* The unacked batch with that id, taken out of the queue; NULL if none. The hub acks a stream's
 * batches in order, so it is the oldest; anything else is rebuilt around it (rare). */
static struct wk_outbox_batch *unacked_take(struct wk_outbox *o, uint64_t id)
{
    struct ag_qnode *head = ag_queue_peek(&o->unacked);
    if (head && BATCH(head)->id == id)
        return BATCH(ag_queue_pop(&o->unacked));
    struct wk_outbox_batch *found = NULL;
    for (struct ag_qnode *n = ag_queue_take_all(&o->unacked), *next; n; n = next) {
        next = n->next;
        n->next = NULL;
        if (!found && BATCH(n)->id == id)
            found = BATCH(n);
        else
            ag_queue_push_over(&o->unacked, n, BATCH(n)->bytes);
    }
    return found;
}

bool wk_outbox_ack(struct wk_outbox *o, uint64_t id, const uint64_t *seqs, size_t nseqs,
                   struct wk_outbox_calls *calls)
{
    struct wk_outbox_batch *b = unacked_take(o, id);
    if (!b)
        return false;
    size_t i = 0;
    for (struct ag_qnode *n = b->evs, *next; n; n = next, i++) {
        next = n->next;
        n->next = NULL;
        /* An ack without seqs (an older hub) says only "stored". */
        chain_append(i < nseqs && seqs[i] == 0 ? &calls->discarded : &calls->stored, n);
    }
    free(b);
    wk_outbox_wake_if_room(o, calls);
    return true;
}

void wk_outbox_drop_all(struct wk_outbox *o, const struct ag_err *why,
                        struct wk_outbox_calls *calls)
{
    /* Oldest first, as they were emitted: the unacked batches, then the outbox. */
    struct ag_qnode *lost = NULL;
    for (struct ag_qnode *n = ag_queue_take_all(&o->unacked), *next; n; n = next) {
        next = n->next;
        chain_append(&lost, BATCH(n)->evs);
        free(BATCH(n));
    }
    chain_append(&lost, ag_queue_take_all(&o->out));
    update_full(o);
    chain_append(&calls->lost, lost);
    calls->lost_err = *why;
    wk_outbox_wake_if_room(o, calls);
}

void wk_outbox_calls_run(struct wk_outbox_calls *calls)
{
    struct ag_err discarded = AG_ERR_INIT;
    ag_err_set(&discarded, AG_ABORTED,
               "the hub discarded the event: its run is no longer the agent's current one");
    struct ag_qnode *chains[3] = {calls->stored, calls->lost, calls->discarded};
    const struct ag_err *errs[3] = {NULL, &calls->lost_err, &discarded};
    for (int i = 0; i < 3; i++) {
        for (struct ag_qnode *n = chains[i]; n; n = n->next)
            if (EV(n)->done)
                EV(n)->done(EV(n)->done_arg, errs[i]);
        evs_free(chains[i]);
    }
    calls->stored = calls->lost = calls->discarded = NULL;
    struct ag_list *pos, *tmp;
    AG_LIST_FOREACH_SAFE(pos, tmp, &calls->wake)
    {
        struct wk_outbox_waiter *w = AG_LIST_ENTRY(pos, struct wk_outbox_waiter, link);
        ag_list_remove(pos);
        w->wake(w->arg);
        free(w);
    }
}

/* --- the wire form ------------------------------------------------------------------------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Written field by field instead of through protobuf-c: the events are already packed
 * NodeEvents, and a repeated message field on the wire is just each one's bytes behind a tag and
 * a length, so concatenating them skips decoding every event and packing it again (up to a MiB
 * per batch, on the path of every event). The field numbers below are agentry.v1's
 * (NodeMessage.events = 3, EventBatch.batch_id = 1, EventBatch.events = 2);
 * tests/unit/test-wk-outbox.c decodes the result with the generated descriptors to keep them
 * honest. */
grpc_byte_buffer *wk_outbox_pack(const struct wk_outbox_batch *b)
{
    size_t blen = 1 + varint_len(b->id);
    for (const struct ag_qnode *n = b->evs; n; n = n->next)
        blen += 1 + varint_len(EV(n)->len) + EV(n)->len;
    size_t total = 1 + varint_len(blen) + blen;
    grpc_slice s = grpc_slice_malloc(total);
    uint8_t *p = GRPC_SLICE_START_PTR(s);
    *p++ = (3 << 3) | 2; /* NodeMessage.events, length-delimited */
    p = put_varint(p, blen);
    *p++ = (1 << 3) | 0; /* EventBatch.batch_id, varint */
    p = put_varint(p, b->id);
    for (const struct ag_qnode *n = b->evs; n; n = n->next) {
        const struct wk_outbox_ev *e = EV(n);
        *p++ = (2 << 3) | 2; /* EventBatch.events, length-delimited */
        p = put_varint(p, e->len);
        memcpy(p, e->buf, e->len);
        p += e->len;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}
