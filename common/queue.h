/* common/queue.h - a bounded intrusive FIFO with a depth gauge.
 *
 * Every queue that crosses threads has a capacity and a gauge (docs: "Unbounded queues" in the
 * style guide). The element embeds a struct ag_qnode; push never allocates. A queue is bounded
 * by a number of items, a number of bytes (each push says what the item weighs, e.g. its
 * encoded size), both, or neither (0 = no bound). A full queue refuses with
 * AG_RESOURCE_EXHAUSTED naming the queue and the bound, and counts the refusal: the caller turns
 * that into back-pressure or an error for its client, never into a silent drop.
 * Users: the hub store's write queue, an agent actor's mailbox, the runner's ready queue, the
 * node connection's outbox and unacked list (bound in bytes).
 *
 * Threads: not thread-safe; the owner's lock guards the queue. The exception is the gauge,
 * whose fields are atomics written by the owner under its lock and readable from any thread
 * without it (ag_queue_gauge_read), so a metrics endpoint never takes the owner's lock.
 *
 * Totals by name: every queue also adds its depth and refusals to its name's process-wide totals
 * (ag_queue_totals_read), so /metrics shows one series per name however many queues bear it (an
 * agent's mailbox is one queue per agent). The table of names is one of the few documented
 * globals (like the metrics registry): atomics, plus a mutex taken only by ag_queue_init to find
 * or add a name. It holds AG_QUEUE_NAMES_MAX names; a queue named past that counts under
 * "other". A queue must be emptied (pop or take_all) before it is dropped, or its items stay in
 * its name's depth.
 *
 * Invariants: len and bytes are the count and the sum of the weights of the linked nodes; the
 * gauge's depth and bytes equal them whenever the owner's lock is free; a node is on at most one
 * queue, and its `next` is NULL while it is the tail. */
#ifndef AGENTRY_COMMON_QUEUE_H
#define AGENTRY_COMMON_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/container.h"
#include "common/err.h"

struct ag_qnode {
    struct ag_qnode *next; /* the node behind this one; NULL at the tail */
    size_t bytes;          /* its weight, as given to push; the queue reads it back at pop */
};

#define AG_QUEUE_NAMES_MAX 32

/* The totals of every queue that bears one name (see "Totals by name" above). */
struct ag_queue_totals;

struct ag_queue_gauge {
    const char *name;               /* borrowed, e.g. "store.writes"; names the queue in errors */
    struct ag_queue_totals *totals; /* borrowed from the process-wide table; never NULL */
    _Atomic size_t depth, bytes;    /* now */
    _Atomic size_t high_water;      /* the largest depth seen */
    _Atomic uint64_t pushed;        /* items ever taken, past the bound or not */
    _Atomic uint64_t refused;       /* pushes refused because the queue was full */
};

/* A plain copy of a gauge, read without the owner's lock (the fields are read one by one, so
 * they may be a moment apart). */
struct ag_queue_stats {
    size_t depth, bytes, high_water;
    uint64_t pushed, refused;
};

struct ag_queue {
    struct ag_qnode *head, *tail;
    size_t len, bytes;
    size_t max_len, max_bytes; /* 0 = no bound */
    struct ag_queue_gauge gauge;
};

/* An empty queue. name is borrowed (a string literal, typically); 0 for either bound = none. */
void ag_queue_init(struct ag_queue *q, const char *name, size_t max_len, size_t max_bytes);

/* Whether an item of `bytes` would be taken now. An empty queue always has room, so one item
 * heavier than max_bytes cannot block a queue forever. */
bool ag_queue_has_room(const struct ag_queue *q, size_t bytes);
/* Append n (weighing bytes). -1 with AG_RESOURCE_EXHAUSTED ("queue 'name' is full: ...") when
 * there is no room; the refusal is counted and n is untouched. */
int ag_queue_push(struct ag_queue *q, struct ag_qnode *n, size_t bytes, struct ag_err *err);
/* Append n even past the bound. For items the owner must not refuse, because refusing would
 * lose something already promised: a message that was sent and must wait for its ack on the
 * unacked list, or a control command (cancel, stop) that frees room rather than using it.
 * Everything else uses ag_queue_push. */
void ag_queue_push_over(struct ag_queue *q, struct ag_qnode *n, size_t bytes);

/* The oldest node, or NULL when the queue is empty. pop removes it; peek does not. */
struct ag_qnode *ag_queue_pop(struct ag_queue *q);
struct ag_qnode *ag_queue_peek(const struct ag_queue *q);
/* Detach every node at once and return the chain (oldest first, linked by next, NULL-ended);
 * the queue is left empty. An actor takes all its queued commands in one go under the lock and
 * runs them after unlocking. Walk it with `for (n = chain; n; n = next) { next = n->next; ...}`
 * (read next before the element may be freed). */
struct ag_qnode *ag_queue_take_all(struct ag_queue *q);

size_t ag_queue_len(const struct ag_queue *q);
size_t ag_queue_bytes(const struct ag_queue *q);
bool ag_queue_empty(const struct ag_queue *q);

/* From any thread, without the owner's lock. */
void ag_queue_gauge_read(const struct ag_queue_gauge *g, struct ag_queue_stats *out);

/* One name's totals: the items now queued on every queue of that name, and the pushes they ever
 * refused. */
struct ag_queue_total {
    const char *name; /* the table's copy; lives with the process */
    size_t depth;
    uint64_t refused;
};
/* Every name seen so far (at most AG_QUEUE_NAMES_MAX), in the order first seen: how many were
 * written to out. From any thread. */
size_t ag_queue_totals_read(struct ag_queue_total *out, size_t max);
struct ag_metrics;
/* Registers agentry_queue_depth{queue} (gauge) and agentry_queue_refusals_total{queue} (counter)
 * in r, set from the totals at each scrape: the process's queues, whoever owns them (a process
 * that embeds a hub and nodes, as tests do, shows them all on each endpoint). NULL r: nothing. */
void ag_queue_metrics_add(struct ag_metrics *r);

/* The element holding queue node `ptr` in its field `member`. */
#define AG_QUEUE_ENTRY(ptr, type, member) AG_CONTAINER_OF(ptr, type, member)

#endif
