/* hub/sched.h - the node table and the placement decision.
 *
 * Owns: the table of connected nodes (who is in it, node-id ownership on join, reservations and
 * reference counts on its nodes, cordons, liveness) and the agents waiting for room. A node
 * itself (what it offers, its labels and resources, whether a request fits it) is hub/node.h.
 * It never touches agents' state or the store: it answers "which node gets this turn" and hands
 * back the decisions; the hub writes them to the agents' logs.
 *
 * Requirements: a turn runs only on a node that offers the agent's model and every tool of its
 * spec, carries every label of its node selector, has room for the resources it needs (struct
 * hub_sched_req), is not cordoned, and runs no agent it is anti-affine to: two agents that
 * share a label value never hold reservations on one node at once when either of them lists
 * that label's key in its anti-affinity (checked both ways, from per-node counts kept on
 * reserve and release, so no scan of agents per decision).
 *
 * Strategies are rows of a table (hub_sched_strategies; a new one is a file hub/sched_NAME.c
 * and a row): round-robin, binpack, spread. The hub has one; an agent may name another
 * (AgentSpec.scheduler); each strategy's state is kept once per scheduler.
 *
 * Waiting: agents waiting with the same requirements and priority form one FIFO class. Room
 * that frees goes to the best waiter some node fits: highest priority, then oldest. An agent
 * that no node can run, or that needs more than is free, never holds up the others
 * (no head-of-line blocking). Anti-starvation: a class head is "passed over" each time an agent
 * behind it (lower priority, or equal and younger) is placed on a node that could run it. Once
 * passed over HUB_SCHED_STARVE_PASSES times, the scheduler holds the node that would fit it
 * soonest (the least short of room for it) for it alone: nothing else is placed there until it
 * fits, so it waits at most for the turns running there to end. One hold at a time (the best
 * starving waiter); a hold ends when its waiter is placed or the node leaves or is cordoned.
 * Invariant: an agent waits only while no node that can run it has room for it, a hold aside
 * (every release, join and uncordon drains the queue).
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
 * Threads: every function is thread-safe under one mutex, which also guards each node's
 * reserved, label counts, cordoned, hold, alive, refs and last_seen_ms (hence
 * hub_sched_node_ref and friends); the decision itself is small, nothing slow happens under it.
 * Lock order: an agent's lock may be held when calling in, never the other way. */
#ifndef AGENTRY_HUB_SCHED_H
#define AGENTRY_HUB_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/types.pb-c.h"
#include "common/arena.h"
#include "common/err.h"

/* Placements of agents behind a waiting class head, on nodes that could run it, before room is
 * held for it (see the top of this file). */
#define HUB_SCHED_STARVE_PASSES 16
#define HUB_SCHED_PRIORITY_MIN (-1000)
#define HUB_SCHED_PRIORITY_MAX 1000
#define HUB_SCHED_CPU_MAX 1000000u                /* millicores: 1000 cores */
#define HUB_SCHED_MEMORY_MAX (UINT64_C(16) << 40) /* 16 TiB */
#define HUB_SCHED_ANTI_AFFINITY_MAX 16

struct hub_sched;
struct hub_agent;
struct hub_sched_strategy;
struct hub_node; /* hub/node.h */

/* Amounts of what a node has (capacity, reservations) or a turn needs. A turn takes one slot
 * and the cpu and memory of its spec (AgentSpec.resources). For a node's capacity, 0 cpu or
 * memory means unknown: not limited. For a request, 0 means none asked for. */
struct hub_sched_res {
    uint32_t slots;     /* concurrent turns */
    uint32_t cpu_milli; /* thousandths of a core */
    uint64_t mem_bytes;
};

/* A label: on a node, owned key and value (hub_node_add_label, hub/node.h); in a request
 * (node selector, the agent's labels, its anti-affinity terms), borrowed. */
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
    const struct hub_sched_label *labels; /* the agent's own (keys unique) */
    size_t nlabels;
    const struct hub_sched_label *anti; /* the agent's label for each anti-affinity key */
    size_t nanti;
    int32_t priority;                          /* higher is served first */
    const struct hub_sched_strategy *strategy; /* NULL: the scheduler's */
};

/* A request for one turn of agent (NULL when only checking) with model and tools: one slot, no
 * node selector, labels, anti-affinity or priority; the scheduler's strategy. */
void hub_sched_req_init(struct hub_sched_req *req, struct hub_agent *agent, const char *agent_id,
                        const char *model, char *const *tools, size_t ntools);
/* The request for a turn of an agent with spec (validated: hub_validate_spec), its arrays in
 * arena and its strings borrowed from spec, which must outlive req. A label key given twice
 * counts with its last value, as a protobuf map decoder keeps it. */
void hub_sched_req_from_spec(struct hub_sched_req *req, struct hub_agent *agent,
                             const char *agent_id, const Agentry__V1__AgentSpec *spec,
                             struct ag_arena *arena);

/* The nodes a strategy chooses from, two ways: every node in the table in join order, and the
 * nodes with a free slot (the others fit nothing: every turn takes a slot) ordered by
 * utilisation (hub_node_utilisation) ascending, ties: fewer slots first, then the later
 * joined. The order is kept on every reserve and release (hub/sched_index.c), so a strategy
 * that wants the most or least utilised node that fits stops at the first fit from one end
 * instead of scanning all nodes per decision. */
struct hub_sched_view {
    struct hub_node *const *nodes;
    size_t n;
    struct hub_node *const *by_util;
    size_t nby;
};

/* A node of v that fits req (hub_node_fits, hub/node.h), or NULL. Called under the scheduler
 * lock; v and req (and req->agent) are borrowed for the call. */
typedef struct hub_node *hub_sched_place_fn(void *state, const struct hub_sched_view *v,
                                            const struct hub_sched_req *req);

/* A strategy is a row, not an if-branch: hub/sched_round_robin.c, sched_binpack.c,
 * sched_spread.c, each defining its row's functions. */
struct hub_sched_strategy {
    const char *name;
    hub_sched_place_fn *place;
    void *(*state_new)(void); /* NULL if stateless */
    void (*state_free)(void *state);
};
extern const struct hub_sched_strategy hub_sched_strategies[]; /* ends with a NULL name */
/* The row named name, or NULL. */
const struct hub_sched_strategy *hub_sched_find(const char *name);
/* "round-robin, binpack, spread": the valid names, for messages. */
void hub_sched_names(char *buf, size_t cap);

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
/* Cordon the node with this id (CORDON, or DRAIN: cordoned by a drain, for display), or lift
 * it (UNCORDON): a cordoned node is never chosen, its running turns stay, and it still counts as
 * able to run an agent (hub_sched_check: the agent waits). The cordon is remembered by id, so a
 * node that reconnects (or joins later) with the id is cordoned too, until UNCORDON. Idempotent.
 * -1 if no node with that id is in the table and none is remembered. After an uncordon, call
 * hub_sched_drain: waiting agents may fit the node now. */
enum hub_sched_cordon { HUB_SCHED_UNCORDON, HUB_SCHED_CORDON, HUB_SCHED_DRAIN };
int hub_sched_cordon(struct hub_sched *s, const char *node_id, enum hub_sched_cordon mode);

/* Can some connected node run req? 0: yes (now or once room frees, or once uncordoned); 1: no
 * node is connected; -1: nodes are connected but none serves req, with err (INVALID_ARGUMENT)
 * naming the missing model, tool, label or room (with the numbers), and what the nodes offer. */
int hub_sched_check(struct hub_sched *s, const struct hub_sched_req *req, struct ag_err *err);
/* Why an agent with req waits, for a person ("waiting for a free slot on the 2 nodes that can
 * run it", "waiting for a node that offers tool 'x'", "waiting: the nodes that can run it are
 * cordoned", anti-affinity, a hold), in buf. */
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
/* The node in the table with this id (reference held), or NULL. */
struct hub_node *hub_sched_node_by_id(struct hub_sched *s, const char *node_id);
/* Every node in the table (references held, at most max). */
size_t hub_sched_nodes(struct hub_sched *s, struct hub_node **out, size_t max);

/* What the scheduler-guarded fields of a node are now, for listing. */
struct hub_sched_node_info {
    struct hub_sched_res reserved;
    bool cordoned;
    bool draining; /* cordoned by a drain (HUB_SCHED_DRAIN) */
    bool held;     /* room held for a starving waiter: nothing else is placed here */
};
void hub_sched_node_info(struct hub_sched *s, const struct hub_node *n,
                         struct hub_sched_node_info *out);

struct hub_sched_stats {
    size_t nodes;
    uint64_t capacity, running;
    size_t queued;
};
void hub_sched_get_stats(struct hub_sched *s, struct hub_sched_stats *out);

#endif
