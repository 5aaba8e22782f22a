/* hub/sched.h - the node table and the placement decision.
 *
 * Owns: connected nodes (capacity, running count, what they offer, labels, the stream to each)
 * and the agents waiting for a slot. It never touches agents' state or the store: it answers
 * "which node gets this turn" and hands back the decisions; the hub writes them to the agents'
 * logs.
 *
 * Requirements: a turn runs only on a node that offers the agent's model and every tool of its
 * spec (struct hub_sched_req). Agents waiting with the same requirements form one FIFO class;
 * a slot that frees goes to the oldest waiter whose class the node can serve, so an agent that no
 * node can run never holds up the others. Invariant: an agent waits only while no node that can
 * run it has a free slot (every release and every join drains the queue).
 *
 * Slots: a reservation counts against a node's capacity from the moment it is made until
 * hub_sched_release. A node that is gone (or being replaced) is never chosen; reservations on it
 * are forgotten with it. Once hub_sched_close is called nothing is placed any more (the hub is
 * stopping: a turn placed now would only be interrupted again).
 *
 * Node ids: while a node is alive, another stream with its id is refused, unless it comes from
 * the same node process (same instance id: the old stream is dead to it) or the old stream has
 * been silent for longer than the liveness timeout.
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
#define HUB_NODE_INSTANCE_MAX 64

/* What a turn needs from a node. Borrowed from the agent's spec, which is immutable and lives as
 * long as the hub, so the scheduler may keep the pointers. */
struct hub_sched_req {
    const char *model;        /* "mock" or "mock/name"; never empty */
    char *const *tools;
    size_t ntools;
};

/* A connected node. Reference-counted: the scheduler holds one while the node is in the table,
 * agents hold one while their turn runs there. */
struct hub_node {
    char id[HUB_NODE_ID_MAX + 1];
    char instance_id[HUB_NODE_INSTANCE_MAX + 1]; /* Register.instance_id; may be empty */
    uint32_t capacity;
    struct rpc_call *stream; /* the Connect call (ref held), for sending down */
    uint64_t instance;       /* distinguishes two connections with one id */
    char **models;           /* owned: what it offers (hub_node_offer) */
    size_t nmodels;
    char **tools;            /* owned */
    size_t ntools;
    /* Guarded by the scheduler lock: */
    uint32_t running;        /* reserved slots */
    bool alive;
    int refs;
    int64_t last_seen_ms;    /* monotonic, from the node's last message */
    char *labels;            /* owned "k=v,k=v", for display */
    char *version;           /* owned */
};

/* Copy what the node offers into it (before it joins the table). */
void hub_node_offer(struct hub_node *n, char *const *models, size_t nmodels, char *const *tools,
                    size_t ntools);
/* Does n offer everything req needs? (Capacity aside.) */
bool hub_node_serves(const struct hub_node *n, const struct hub_sched_req *req);

/* A node in nodes[0..n) that serves req and has a free slot, or NULL. */
typedef struct hub_node *hub_sched_place_fn(void *state, struct hub_node *const *nodes, size_t n,
                                            const struct hub_sched_req *req);

struct hub_sched_strategy {
    const char *name;
    hub_sched_place_fn *place;
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

enum hub_sched_join {
    HUB_SCHED_JOINED,   /* a new id */
    HUB_SCHED_REPLACED, /* took over the id from a dead (or its own earlier) stream */
    HUB_SCHED_REFUSED,  /* the id belongs to a live node: node was not added */
};
struct hub_sched_join_req {
    struct hub_node *node;
    int64_t now_ms;
    int64_t alive_ms; /* a node heard from within this is alive */
    /* Called under the scheduler lock once the node is admitted, before any slot on it can be
     * handed out: where the hub says Registered, so that it precedes every Assignment. May take
     * a call's lock (the documented order), nothing else. */
    void (*admitted)(void *arg, struct hub_node *node);
    void *arg;
};
/* Add a connected node, unless its id is taken by a live node of another instance: then
 * HUB_SCHED_REFUSED, with that node in *other. A node it replaces is removed and returned in
 * *other. *other carries a reference the caller drops, or is NULL. Waiting agents that now fit
 * are returned in out (at most max), slots reserved. */
size_t hub_sched_add_node(struct hub_sched *s, const struct hub_sched_join_req *j,
                          enum hub_sched_join *outcome, struct hub_node **other,
                          struct hub_sched_decision *out, size_t max);
/* Hand free slots to queued agents (at most max decisions). */
size_t hub_sched_drain(struct hub_sched *s, struct hub_sched_decision *out, size_t max);
/* Take the node out of scheduling (stream gone). Idempotent. */
void hub_sched_remove_node(struct hub_sched *s, struct hub_node *node);
/* Reserve a slot for req now, or return NULL (no node serves it with a free slot, or agents with
 * the same requirements already wait: they go first). Reference held on the result. */
struct hub_node *hub_sched_try_reserve(struct hub_sched *s, const struct hub_sched_req *req);
/* Reserve a slot now (returned, reference held) or queue the agent in FIFO order (NULL). */
struct hub_node *hub_sched_place_or_queue(struct hub_sched *s, struct hub_agent *agent,
                                          const struct hub_sched_req *req);
/* Give back a slot on node (and drop the decision's node reference). If the node is alive and
 * agents it can serve wait, the slot goes to the oldest of them: returned in out (0 or 1). */
size_t hub_sched_release(struct hub_sched *s, struct hub_node *node, struct hub_sched_decision *out);
/* Stop placing: from now on nothing is reserved and no queued agent is handed a slot. */
void hub_sched_close(struct hub_sched *s);

/* Can some connected node run req? 0: yes (now or once a slot frees); 1: no node is connected;
 * -1: nodes are connected but none offers what req needs, with err (INVALID_ARGUMENT) naming the
 * missing model or tool and what the nodes do offer. */
int hub_sched_check(struct hub_sched *s, const struct hub_sched_req *req, struct ag_err *err);
/* Why an agent with req waits, for a person ("waiting for a free slot on 2 nodes that can run
 * it", "no connected node offers tool 'x'"), in buf. */
void hub_sched_explain(struct hub_sched *s, const struct hub_sched_req *req, char *buf,
                       size_t cap);

void hub_node_ref(struct hub_sched *s, struct hub_node *n);
void hub_node_unref(struct hub_sched *s, struct hub_node *n);
bool hub_node_alive(struct hub_sched *s, struct hub_node *n);
void hub_node_touch(struct hub_sched *s, struct hub_node *n, int64_t now_ms);

/* Nodes whose last message is older than now_ms - timeout_ms (references held, at most max). */
size_t hub_sched_stale_nodes(struct hub_sched *s, int64_t now_ms, int64_t timeout_ms,
                             struct hub_node **out, size_t max);
/* Every node in the table (references held, at most max). */
size_t hub_sched_nodes(struct hub_sched *s, struct hub_node **out, size_t max);

struct hub_sched_stats {
    size_t nodes;
    uint64_t capacity, running;
    size_t queued;
};
void hub_sched_get_stats(struct hub_sched *s, struct hub_sched_stats *out);

#endif
