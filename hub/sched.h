/* hub/sched.h - the node table and the placement decision.
 *
 * Owns: the table of connected nodes (who is in it, node-id ownership on join, reservations and
 * reference counts on its nodes, liveness) and the agents waiting for room. A node itself (what
 * it offers, its labels and resources, whether a request fits it) is hub/node.h. It never touches
 * agents' state or the store: it answers "which node gets this turn" and hands back the
 * decisions; the hub writes them to the agents' logs.
 *
 * Requirements: a turn runs only on a node that offers the agent's model and every tool of its
 * spec, carries every label of its node selector, and has room for the resources it needs
 * (struct hub_sched_req). Agents waiting with the same requirements form one FIFO class; room
 * that frees goes to the oldest waiter that fits the node (served and room enough), so an agent
 * that no node can run, or that needs more than is free, never holds up the others. Invariant:
 * an agent waits only while no node that can run it has room for it (every release and every
 * join drains the queue).
 *
 * Reservations: a reservation counts against a node's resources from the moment it is made until
 * hub_sched_release. A node that is gone (or being replaced) is never chosen; reservations on it
 * are forgotten with it. Once hub_sched_close is called nothing is placed any more (the hub is
 * stopping: a turn placed now would only be interrupted again).
 *
 * Node ids: while a node is alive, another stream with its id is refused, unless it comes from
 * the same node process (same instance id: the old stream is dead to it) or the old stream has
 * been silent for longer than the liveness timeout.
 *
 * Strategies are rows of a table (round_robin now; binpack and spread later): each sees the whole
 * request and the node table. Threads: every function is thread-safe under one mutex, which also
 * guards each node's reserved, alive, refs and last_seen_ms (hence hub_sched_node_ref and
 * friends); the decision itself is small, nothing slow happens under it. Lock order: an agent's
 * lock may be held when calling in, never the other way. */
#ifndef AGENTRY_HUB_SCHED_H
#define AGENTRY_HUB_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub_sched;
struct hub_agent;
struct hub_node; /* hub/node.h */

/* Amounts of what a node has (capacity, reservations) or a turn needs. A turn takes one slot
 * today; cpu and memory are for the binpack strategy. For a node's capacity, 0 cpu or memory
 * means unknown: not limited. For a request, 0 means none asked for. */
struct hub_sched_res {
    uint32_t slots;     /* concurrent turns */
    uint32_t cpu_milli; /* thousandths of a core */
    uint64_t mem_bytes;
};

/* A label: on a node, owned key and value (hub_node_add_label, hub/node.h); in a node selector,
 * an equality requirement key=value, borrowed. */
struct hub_sched_label {
    char *key;
    char *value;
};

/* What a turn needs from a node, and whose turn it is. The hub keeps one per agent, borrowing
 * from the agent's spec, which is immutable and lives as long as the hub, so the scheduler may
 * keep the pointers (and keeps req itself while the agent waits). */
struct hub_sched_req {
    struct hub_agent *agent; /* opaque to the scheduler; NULL when only checking */
    const char *agent_id;    /* for logs; NULL when only checking */
    const char *model;       /* "mock" or "mock/name"; never empty */
    char *const *tools;
    size_t ntools;
    struct hub_sched_res need;              /* at least 1 slot */
    const struct hub_sched_label *selector; /* labels the node must carry, with these values */
    size_t nselector;
};

/* A request for one turn of agent (NULL when only checking) with model and tools: one slot, no
 * node selector (AgentSpec has none: its labels describe the agent, not where it runs). */
void hub_sched_req_init(struct hub_sched_req *req, struct hub_agent *agent, const char *agent_id,
                        const char *model, char *const *tools, size_t ntools);

/* A node in nodes[0..n) that fits req (hub_node_fits, hub/node.h), or NULL. Called under the
 * scheduler lock; req (and req->agent) is borrowed for the call. */
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

/* A placement handed back by the scheduler: run `agent`'s next turn on `node` (its needs
 * reserved, node reference held by the decision). */
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
/* Take the node out of scheduling (stream gone), remembering why (the first reason wins).
 * Idempotent. */
void hub_sched_remove_node(struct hub_sched *s, struct hub_node *node, const char *reason);
/* Reserve req->need now, or return NULL (no node fits req, or agents with the same
 * requirements already wait: they go first). Reference held on the result. */
struct hub_node *hub_sched_try_reserve(struct hub_sched *s, const struct hub_sched_req *req);
/* Reserve req->need now (node returned, reference held) or queue req->agent in FIFO order (NULL).
 * req is kept while the agent waits. */
struct hub_node *hub_sched_place_or_queue(struct hub_sched *s, const struct hub_sched_req *req);
/* Give back what req reserved on node (and drop the decision's node reference). If the node is
 * alive and waiting agents now fit it, they get the room, oldest first: returned in out (at most
 * max; when it returns max, more may fit: call hub_sched_drain until it returns less). */
size_t hub_sched_release(struct hub_sched *s, struct hub_node *node,
                         const struct hub_sched_req *req, struct hub_sched_decision *out,
                         size_t max);
/* Stop placing: from now on nothing is reserved and no queued agent is handed a slot. */
void hub_sched_close(struct hub_sched *s);

/* Can some connected node run req? 0: yes (now or once room frees); 1: no node is connected;
 * -1: nodes are connected but none serves req, with err (INVALID_ARGUMENT) naming the missing
 * model, tool, label or room, and what the nodes do offer. */
int hub_sched_check(struct hub_sched *s, const struct hub_sched_req *req, struct ag_err *err);
/* Why an agent with req waits, for a person ("waiting for a free slot on 2 nodes that can run
 * it", "waiting for a node that offers tool 'x'"), in buf. */
void hub_sched_explain(struct hub_sched *s, const struct hub_sched_req *req, char *buf, size_t cap);

/* A node's reference count, liveness and last-heard time are guarded by the scheduler's lock
 * (the table and reservations count references too), so they are reached through it. The last
 * reference dropped frees the node (hub_node_free). */
void hub_sched_node_ref(struct hub_sched *s, struct hub_node *n);
void hub_sched_node_unref(struct hub_sched *s, struct hub_node *n);
/* Is n still in the table (not gone, not replaced)? If not and why is given: the reason it was
 * lost, as hub_sched_remove_node recorded it (cap bytes with the NUL). */
bool hub_sched_node_alive(struct hub_sched *s, struct hub_node *n, char *why, size_t cap);
/* n was heard from at now_ms (monotonic): it counts as alive for hub_sched_stale_nodes and for
 * a stream that wants its id. */
void hub_sched_node_touch(struct hub_sched *s, struct hub_node *n, int64_t now_ms);

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
