/* hub/sched.h - the node table and the placement decision.
 *
 * Owns: connected nodes (capacity, running count, labels, the stream to each) and the FIFO of
 * agents waiting for a slot. It never touches agents' state or the store: it answers "which node
 * gets this turn" and hands back the decisions; the hub writes them to the agents' logs.
 *
 * Slots: a reservation counts against a node's capacity from the moment it is made until
 * hub_sched_release. A node that is gone (or being replaced) is never chosen; reservations on it
 * are forgotten with it.
 *
 * Strategies are rows of a table (round_robin now; binpack and spread later). Threads: every
 * function is thread-safe under one mutex; the decision itself is small, nothing slow happens
 * under it. Lock order: an agent's lock may be held when calling in, never the other way. */
#ifndef AGENTRY_HUB_SCHED_H
#define AGENTRY_HUB_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub_sched;
struct hub_agent;
struct rpc_call;

#define HUB_NODE_ID_MAX 128

/* A connected node. Reference-counted: the scheduler holds one while the node is in the table,
 * agents hold one while their turn runs there. */
struct hub_node {
    char id[HUB_NODE_ID_MAX + 1];
    uint32_t capacity;
    struct rpc_call *stream; /* the Connect call (ref held), for sending down */
    uint64_t instance;       /* distinguishes two connections with one id */
    /* Guarded by the scheduler lock: */
    uint32_t running;        /* reserved slots */
    bool alive;
    int refs;
    int64_t last_seen_ms;    /* monotonic, from the node's last message */
    char *labels;            /* owned "k=v,k=v", for display */
    char *version;           /* owned */
};

typedef struct hub_node *hub_sched_place_fn(void *state, struct hub_node *const *nodes, size_t n);

struct hub_sched_strategy {
    const char *name;
    hub_sched_place_fn *place; /* a node with running < capacity, or NULL */
    void *(*state_new)(void);
    void (*state_free)(void *state);
};
extern const struct hub_sched_strategy hub_sched_strategies[]; /* ends with a NULL name */
const struct hub_sched_strategy *hub_sched_find(const char *name);

/* A placement handed back by the scheduler: run `agent`'s next turn on `node` (slot reserved,
 * node reference held by the decision). */
struct hub_sched_decision {
    struct hub_agent *agent;
    struct hub_node *node;
};

struct hub_sched *hub_sched_new(const struct hub_sched_strategy *strategy);
void hub_sched_free(struct hub_sched *s);

/* Add a connected node. If a node with that id is in the table it is removed first and returned
 * in *replaced (with a reference the caller must drop), so the caller can close its stream.
 * Pending agents that now fit are returned in out (at most max), slots reserved. */
size_t hub_sched_add_node(struct hub_sched *s, struct hub_node *node, struct hub_node **replaced,
                          struct hub_sched_decision *out, size_t max);
/* Hand free slots to queued agents (at most max decisions). */
size_t hub_sched_drain(struct hub_sched *s, struct hub_sched_decision *out, size_t max);
/* Take the node out of scheduling (stream gone). Idempotent. */
void hub_sched_remove_node(struct hub_sched *s, struct hub_node *node);
/* Reserve a slot now, or return NULL (no free slot, or agents already wait: they go first).
 * Reference held on the result. */
struct hub_node *hub_sched_try_reserve(struct hub_sched *s);
/* Reserve a slot now (returned, reference held) or queue the agent in FIFO order (NULL). */
struct hub_node *hub_sched_place_or_queue(struct hub_sched *s, struct hub_agent *agent);
/* Give back a slot on node (and drop the decision's node reference). If the node is alive and
 * agents are queued, the slot goes to the FIFO head: returned in out (0 or 1 decisions). */
size_t hub_sched_release(struct hub_sched *s, struct hub_node *node, struct hub_sched_decision *out);

void hub_node_ref(struct hub_sched *s, struct hub_node *n);
void hub_node_unref(struct hub_sched *s, struct hub_node *n);
bool hub_node_alive(struct hub_sched *s, struct hub_node *n);
void hub_node_touch(struct hub_sched *s, struct hub_node *n, int64_t now_ms);

/* Nodes whose last message is older than now_ms - timeout_ms (references held, at most max). */
size_t hub_sched_stale_nodes(struct hub_sched *s, int64_t now_ms, int64_t timeout_ms,
                             struct hub_node **out, size_t max);

struct hub_sched_stats {
    size_t nodes;
    uint64_t capacity, running;
    size_t queued;
};
void hub_sched_get_stats(struct hub_sched *s, struct hub_sched_stats *out);

#endif
