/* common/queue.c - the bounded intrusive FIFO (see queue.h).
 *
 * The gauge is written with relaxed atomics: the owner's lock already orders the queue itself,
 * and a metrics reader only needs each number to be one that was true at some moment. */
#include "common/queue.h"

void ag_queue_init(struct ag_queue *q, const char *name, size_t max_len, size_t max_bytes)
{
    q->head = q->tail = NULL;
    q->len = q->bytes = 0;
    q->max_len = max_len;
    q->max_bytes = max_bytes;
    q->gauge.name = name;
    atomic_init(&q->gauge.depth, 0);
    atomic_init(&q->gauge.bytes, 0);
    atomic_init(&q->gauge.high_water, 0);
    atomic_init(&q->gauge.pushed, 0);
    atomic_init(&q->gauge.refused, 0);
}

static void gauge_store(struct ag_queue *q)
{
    atomic_store_explicit(&q->gauge.depth, q->len, memory_order_relaxed);
    atomic_store_explicit(&q->gauge.bytes, q->bytes, memory_order_relaxed);
}

bool ag_queue_has_room(const struct ag_queue *q, size_t bytes)
{
    if (q->len == 0)
        return true;
    if (q->max_len && q->len >= q->max_len)
        return false;
    if (q->max_bytes && (bytes > q->max_bytes || q->bytes > q->max_bytes - bytes))
        return false;
    return true;
}

int ag_queue_push(struct ag_queue *q, struct ag_qnode *n, size_t bytes, struct ag_err *err)
{
    if (!ag_queue_has_room(q, bytes)) {
        atomic_fetch_add_explicit(&q->gauge.refused, 1, memory_order_relaxed);
        if (q->max_len && q->len >= q->max_len)
            return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                              "queue '%s' is full: %zu items queued, the bound is %zu; retry "
                              "later",
                              q->gauge.name, q->len, q->max_len);
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "queue '%s' is full: %zu bytes queued, %zu more would pass the bound "
                          "of %zu; retry later",
                          q->gauge.name, q->bytes, bytes, q->max_bytes);
    }
    ag_queue_push_over(q, n, bytes);
    return 0;
}

void ag_queue_push_over(struct ag_queue *q, struct ag_qnode *n, size_t bytes)
{
    n->next = NULL;
    n->bytes = bytes;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->len++;
    q->bytes += bytes;
    gauge_store(q);
    atomic_fetch_add_explicit(&q->gauge.pushed, 1, memory_order_relaxed);
    /* Only the owner writes high_water, under its lock: no compare-and-swap needed. */
    if (q->len > atomic_load_explicit(&q->gauge.high_water, memory_order_relaxed))
        atomic_store_explicit(&q->gauge.high_water, q->len, memory_order_relaxed);
}

struct ag_qnode *ag_queue_pop(struct ag_queue *q)
{
    struct ag_qnode *n = q->head;
    if (!n)
        return NULL;
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    q->bytes -= n->bytes;
    n->next = NULL;
    gauge_store(q);
    return n;
}

struct ag_qnode *ag_queue_peek(const struct ag_queue *q)
{
    return q->head;
}

struct ag_qnode *ag_queue_take_all(struct ag_queue *q)
{
    struct ag_qnode *chain = q->head;
    q->head = q->tail = NULL;
    q->len = q->bytes = 0;
    gauge_store(q);
    return chain;
}

size_t ag_queue_len(const struct ag_queue *q)
{
    return q->len;
}

size_t ag_queue_bytes(const struct ag_queue *q)
{
    return q->bytes;
}

bool ag_queue_empty(const struct ag_queue *q)
{
    return q->head == NULL;
}

void ag_queue_gauge_read(const struct ag_queue_gauge *g, struct ag_queue_stats *out)
{
    /* atomic_load takes a non-const pointer in some C libraries' macros; the cast is harmless
     * since a load does not write. */
    struct ag_queue_gauge *m = (struct ag_queue_gauge *)g;
    out->depth = atomic_load_explicit(&m->depth, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&m->bytes, memory_order_relaxed);
    out->high_water = atomic_load_explicit(&m->high_water, memory_order_relaxed);
    out->pushed = atomic_load_explicit(&m->pushed, memory_order_relaxed);
    out->refused = atomic_load_explicit(&m->refused, memory_order_relaxed);
}
