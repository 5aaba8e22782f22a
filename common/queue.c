/* common/queue.c - the bounded intrusive FIFO (see queue.h).
 *
 * The gauge is written with relaxed atomics: the owner's lock already orders the queue itself,
 * and a metrics reader only needs each number to be one that was true at some moment. The totals
 * by name are added to the same way: depth moves by the change of len at each push, pop and
 * take_all (one relaxed atomic add beside the gauge's own stores). */
#include "common/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/metrics.h"

struct ag_queue_totals {
    char name[48];
    _Atomic int64_t depth; /* signed: two queues' moves may land in either order */
    _Atomic uint64_t refused;
};

/* The process-wide table of names (queue.h, "Totals by name"). Rows are filled under names_mu,
 * then published by the release store of nnames: readers take no lock. The last row is "other". */
static struct ag_queue_totals names[AG_QUEUE_NAMES_MAX];
static _Atomic size_t nnames;
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;

static struct ag_queue_totals *totals_find(const char *name)
{
    if (!name)
        name = "";
    pthread_mutex_lock(&names_mu);
    size_t n = atomic_load_explicit(&nnames, memory_order_relaxed);
    struct ag_queue_totals *t = NULL;
    for (size_t i = 0; i < n && !t; i++)
        if (strncmp(names[i].name, name, sizeof(names[i].name) - 1) == 0)
            t = &names[i];
    if (!t && n < AG_QUEUE_NAMES_MAX) {
        t = &names[n];
        snprintf(t->name, sizeof(t->name), "%s", n == AG_QUEUE_NAMES_MAX - 1 ? "other" : name);
        atomic_store_explicit(&nnames, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&names_mu);
    return t ? t : &names[AG_QUEUE_NAMES_MAX - 1];
}

size_t ag_queue_totals_read(struct ag_queue_total *out, size_t max)
{
    size_t n = atomic_load_explicit(&nnames, memory_order_acquire);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        int64_t d = atomic_load_explicit(&names[i].depth, memory_order_relaxed);
        out[i].name = names[i].name;
        out[i].depth = d > 0 ? (size_t)d : 0;
        out[i].refused = atomic_load_explicit(&names[i].refused, memory_order_relaxed);
    }
    return n;
}

void ag_queue_init(struct ag_queue *q, const char *name, size_t max_len, size_t max_bytes)
{
    q->head = q->tail = NULL;
    q->len = q->bytes = 0;
    q->max_len = max_len;
    q->max_bytes = max_bytes;
    q->gauge.name = name;
    q->gauge.totals = totals_find(name);
    atomic_init(&q->gauge.depth, 0);
    atomic_init(&q->gauge.bytes, 0);
    atomic_init(&q->gauge.high_water, 0);
    atomic_init(&q->gauge.pushed, 0);
    atomic_init(&q->gauge.refused, 0);
}

/* After len changed by delta. */
static void gauge_store(struct ag_queue *q, int64_t delta)
{
    atomic_fetch_add_explicit(&q->gauge.totals->depth, delta, memory_order_relaxed);
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
        atomic_fetch_add_explicit(&q->gauge.totals->refused, 1, memory_order_relaxed);
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
    gauge_store(q, 1);
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
    gauge_store(q, -1);
    return n;
}

struct ag_qnode *ag_queue_peek(const struct ag_queue *q)
{
    return q->head;
}

struct ag_qnode *ag_queue_take_all(struct ag_queue *q)
{
    struct ag_qnode *chain = q->head;
    int64_t had = (int64_t)q->len;
    q->head = q->tail = NULL;
    q->len = q->bytes = 0;
    gauge_store(q, -had);
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

/* One callback per family, with the family as its argument: the registry owns everything, and
 * nothing is left to free when it goes. */
static void scrape_totals(struct ag_metric_family *f, bool depth)
{
    struct ag_queue_total t[AG_QUEUE_NAMES_MAX];
    size_t n = ag_queue_totals_read(t, AG_QUEUE_NAMES_MAX);
    for (size_t i = 0; i < n; i++)
        ag_metrics_set(ag_metrics_at(f, (const char *[]){t[i].name}),
                       depth ? (int64_t)t[i].depth : (int64_t)t[i].refused);
}

static void scrape_depth(void *arg)
{
    scrape_totals(arg, true);
}

static void scrape_refused(void *arg)
{
    scrape_totals(arg, false);
}

void ag_queue_metrics_add(struct ag_metrics *r)
{
    if (!r)
        return;
    ag_metrics_on_scrape(r, scrape_depth,
                         ag_metrics_gauge(r, "agentry_queue_depth",
                                          "Items waiting in the process's queues, by queue name "
                                          "(the queues of one name add up).",
                                          (const char *[]){"queue", NULL}));
    ag_metrics_on_scrape(r, scrape_refused,
                         ag_metrics_counter(r, "agentry_queue_refusals_total",
                                            "Pushes refused because a queue was full, by queue "
                                            "name.",
                                            (const char *[]){"queue", NULL}));
}
