/* worker/outbox.c - the node's outgoing events: bounded outbox, unacked batches, parked runs,
 * and the wire form of a batch. See worker/outbox.h for the bounds and the threading rule (the
 * caller's lock guards everything; callbacks are collected, never called, here). */
#include "worker/outbox.h"

#include <grpc/slice.h>
#include <grpc/byte_buffer.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void wk_outbox_init(struct wk_outbox *o, size_t max_bytes, size_t max_unacked_bytes)
{
    memset(o, 0, sizeof(*o));
    o->max_bytes = max_bytes ? max_bytes : WK_OUTBOX_MAX_BYTES;
    o->max_unacked_bytes = max_unacked_bytes ? max_unacked_bytes : WK_OUTBOX_MAX_UNACKED_BYTES;
}

static void evs_free(struct wk_outbox_ev *e)
{
    while (e) {
        struct wk_outbox_ev *next = e->next;
        free(e->buf);
        free(e);
        e = next;
    }
}

/* Appends list b to *a. */
static void evs_append(struct wk_outbox_ev **a, struct wk_outbox_ev *b)
{
    while (*a)
        a = &(*a)->next;
    *a = b;
}

void wk_outbox_release(struct wk_outbox *o)
{
    evs_free(o->head);
    while (o->unacked) {
        struct wk_outbox_batch *b = o->unacked;
        o->unacked = b->next;
        evs_free(b->evs);
        free(b);
    }
    while (o->waiters) {
        struct wk_outbox_waiter *w = o->waiters;
        o->waiters = w->next;
        free(w);
    }
    memset(o, 0, sizeof(*o));
}

void wk_outbox_push(struct wk_outbox *o, uint8_t *buf, size_t len, wk_emit_done_fn *done,
                    void *done_arg)
{
    struct wk_outbox_ev *e = ag_xmalloc(sizeof(*e));
    *e = (struct wk_outbox_ev){NULL, buf, len, done, done_arg};
    if (o->tail)
        o->tail->next = e;
    else
        o->head = e;
    o->tail = e;
    o->n++;
    o->bytes += len;
}

bool wk_outbox_room(struct wk_outbox *o, wk_wake_fn *wake, void *arg)
{
    if (o->bytes < o->max_bytes)
        return true;
    struct wk_outbox_waiter *w = ag_xmalloc(sizeof(*w));
    *w = (struct wk_outbox_waiter){o->waiters, wake, arg};
    o->waiters = w;
    return false;
}

void wk_outbox_wake_if_room(struct wk_outbox *o, struct wk_outbox_calls *calls)
{
    if (o->bytes >= o->max_bytes || !o->waiters)
        return;
    struct wk_outbox_waiter **tail = &calls->wake;
    while (*tail)
        tail = &(*tail)->next;
    *tail = o->waiters;
    o->waiters = NULL;
}

struct wk_outbox_batch *wk_outbox_next_batch(struct wk_outbox *o, size_t max_events,
                                             size_t max_bytes)
{
    if (!o->head || (o->unacked && o->unacked_bytes >= o->max_unacked_bytes))
        return NULL;
    struct wk_outbox_batch *b = ag_xcalloc(1, sizeof(*b));
    b->id = ++o->next_batch_id;
    struct wk_outbox_ev *e = o->head, *last = NULL;
    while (e && b->n < max_events && (b->n == 0 || b->bytes + e->len <= max_bytes)) {
        b->bytes += e->len;
        last = e;
        e = e->next;
        b->n++;
    }
    b->evs = o->head;
    last->next = NULL;
    o->head = e;
    if (!e)
        o->tail = NULL;
    o->n -= b->n;
    o->bytes -= b->bytes;
    o->unacked_bytes += b->bytes;
    b->next = o->unacked;
    o->unacked = b;
    return b;
}

bool wk_outbox_ack(struct wk_outbox *o, uint64_t id, struct wk_outbox_calls *calls)
{
    struct wk_outbox_batch **pp = &o->unacked;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    struct wk_outbox_batch *b = *pp;
    if (!b)
        return false;
    *pp = b->next;
    o->unacked_bytes -= b->bytes;
    evs_append(&calls->stored, b->evs);
    free(b);
    wk_outbox_wake_if_room(o, calls);
    return true;
}

void wk_outbox_drop_all(struct wk_outbox *o, const struct ag_err *why,
                        struct wk_outbox_calls *calls)
{
    /* Oldest first, as they were emitted: the unacked list is newest first. */
    struct wk_outbox_ev *lost = NULL;
    while (o->unacked) {
        struct wk_outbox_batch *b = o->unacked;
        o->unacked = b->next;
        evs_append(&b->evs, lost);
        lost = b->evs;
        free(b);
    }
    evs_append(&lost, o->head);
    evs_append(&calls->lost, lost);
    calls->lost_err = *why;
    o->head = o->tail = NULL;
    o->n = o->bytes = o->unacked_bytes = 0;
    wk_outbox_wake_if_room(o, calls);
}

void wk_outbox_calls_run(struct wk_outbox_calls *calls)
{
    struct wk_outbox_ev *lists[2] = {calls->stored, calls->lost};
    for (int i = 0; i < 2; i++)
        for (struct wk_outbox_ev *e = lists[i]; e; e = e->next)
            if (e->done)
                e->done(e->done_arg, i == 0 ? NULL : &calls->lost_err);
    evs_free(calls->stored);
    evs_free(calls->lost);
    calls->stored = calls->lost = NULL;
    while (calls->wake) {
        struct wk_outbox_waiter *w = calls->wake;
        calls->wake = w->next;
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
    for (const struct wk_outbox_ev *e = b->evs; e; e = e->next)
        blen += 1 + varint_len(e->len) + e->len;
    size_t total = 1 + varint_len(blen) + blen;
    grpc_slice s = grpc_slice_malloc(total);
    uint8_t *p = GRPC_SLICE_START_PTR(s);
    *p++ = (3 << 3) | 2; /* NodeMessage.events, length-delimited */
    p = put_varint(p, blen);
    *p++ = (1 << 3) | 0; /* EventBatch.batch_id, varint */
    p = put_varint(p, b->id);
    for (const struct wk_outbox_ev *e = b->evs; e; e = e->next) {
        *p++ = (2 << 3) | 2; /* EventBatch.events, length-delimited */
        p = put_varint(p, e->len);
        memcpy(p, e->buf, e->len);
        p += e->len;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}
