/* hub/node.h - one connected node as the hub sees it: who it is, what it offers (models, tools),
 * its labels and resources, and whether a turn's requirements fit it.
 *
 * Owns: struct hub_node and what it owns (offers, labels, version; a reference on its stream).
 * It does not own the node table or placement (hub/sched.h), nor the node's stream protocol
 * (hub/rpc_node.c).
 *
 * Threads and locks: a node is built on its stream's CQ thread (hub_node_new, hub_node_offer,
 * hub_node_add_label) before it joins the scheduler's table; from then on its identity, offers,
 * labels, capacity and version never change and any thread may read them without a lock. The
 * fields marked below are guarded by the scheduler's lock: the table, reservations and the
 * reference count belong to the scheduler, so taking or dropping a reference, liveness and
 * last-heard go through hub_sched_node_ref/unref/alive/touch (hub/sched.h), and the scheduler
 * calls hub_node_free when the last reference goes. `agents` is guarded by the hub's
 * node_agents_lock (hub/hub_internal.h). The functions here take no lock: hub_node_fits reads
 * the guarded fields, so it is called under the scheduler's lock (strategies call it from
 * place), and so are hub_node_reserve/unreserve, which the scheduler calls.
 *
 * Invariants: label keys are unique; reserved <= capacity for each amount capacity limits;
 * label_counts holds, for each label k=v of the agents with a reservation here, how many of
 * them carry it and how many of those list k as anti-affine (entries at zero are removed).
 *
 * Resources, labels and requests are the scheduler's types (struct hub_sched_res,
 * hub_sched_label, hub_sched_req), as a node answers the scheduler's question "does this turn
 * fit": so this header includes hub/sched.h, and hub/sched.h only declares struct hub_node. */
#ifndef AGENTRY_HUB_NODE_H
#define AGENTRY_HUB_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/list.h"
#include "common/map.h"
#include "hub/limits.h"
#include "hub/sched.h"

struct rpc_call;

#define HUB_NODE_ID_MAX 128
#define HUB_NODE_INSTANCE_MAX 64

/* A connected node. Reference-counted: the scheduler holds one while the node is in the table,
 * agents hold one while their turn runs there. */
struct hub_node {
    char id[HUB_NODE_ID_MAX + 1];
    char instance_id[HUB_NODE_INSTANCE_MAX + 1]; /* Register.instance_id; may be empty */
    struct hub_sched_res capacity;               /* Register.capacity, cpu_milli, memory_bytes */
    struct rpc_call *stream;                     /* the Connect call (ref held), for sending down */
    uint64_t instance;                           /* distinguishes two connections with one id */
    uint64_t process_key; /* hash of instance_id: the node process, across reconnects */
    bool keeps_state;     /* Register.keeps_state */
    char **models;        /* owned: what it offers (hub_node_offer) */
    size_t nmodels;
    char **tools; /* owned */
    size_t ntools;
    struct hub_sched_label *labels; /* owned (hub_node_add_label); keys unique */
    size_t nlabels;
    char *version;        /* owned */
    char *address;        /* owned: Register.address, may be empty */
    int64_t started_ns;   /* Register.started_ns (node clock), 0 if not said */
    int64_t connected_ns; /* when it registered (hub wall clock) */
    /* Guarded by the scheduler lock: */
    struct hub_sched_res reserved;        /* by turns placed here, never over capacity */
    struct ag_map label_counts;           /* "k=v" -> struct hub_node_label_count (owned) */
    bool cordoned;                        /* never chosen (hub_sched_cordon) */
    const struct hub_sched_req *held_for; /* only this waiter may be placed here; NULL: anyone */
    /* Its place in the scheduler's utilisation order (hub/sched_index.c): */
    double util;       /* hub_node_utilisation when last indexed */
    uint64_t join_seq; /* order of joining the table, for ties */
    bool indexed;      /* in the order: alive with a free slot */
    bool alive;
    char lost_reason[HUB_REASON_MAX]; /* why it left the table (hub_sched_remove_node) */
    int refs;
    int64_t last_seen_ms; /* monotonic, from the node's last message */
    /* The agents whose committed turn runs here (hub_agent.on_node): guarded by the hub's
     * node_agents_lock, taken after an agent's lock (hub/hub_internal.h). */
    struct ag_list agents;
};

/* Agents with a reservation on a node that carry label text ("k=v", owned: the map's key). */
struct hub_node_label_count {
    uint32_t carry;    /* carry the label */
    uint32_t declared; /* carry it and list its key in their anti-affinity */
    char text[];
};

/* A node with this id and instance id (truncated to fit; instance_id may be NULL), holding a
 * reference on stream (may be NULL), with one reference: its creator's. It offers nothing, has
 * no labels and no capacity until the caller fills them in, before it joins the table. */
struct hub_node *hub_node_new(const char *id, const char *instance_id, struct rpc_call *stream);
/* Send m down the node's stream; a node too slow to take it (its bounded send queue is full) is
 * disconnected rather than buffered without bound. Any lock or none (takes the call's). */
void hub_node_send(struct hub_node *n, const Agentry__V1__HubMessage *m);
/* Release n and what it owns, whatever its reference count (the scheduler calls it when the last
 * reference goes). NULL is a no-op. */
void hub_node_free(struct hub_node *n);

/* Copy what the node offers into it (before it joins the table). */
void hub_node_offer(struct hub_node *n, char *const *models, size_t nmodels, char *const *tools,
                    size_t ntools);
/* Give the node label key=value (before it joins the table); a key it has already gets the new
 * value, as a protobuf map keeps the last. */
void hub_node_add_label(struct hub_node *n, const char *key, const char *value);
/* The node's labels for display, "k=v,k=v" in the order added, truncated to fit buf. */
void hub_node_labels_format(const struct hub_node *n, char *buf, size_t cap);

/* Does n offer model? "mock" offers "mock" and "mock/anything"; "openai/gpt-4o" only itself. */
bool hub_node_offers_model(const struct hub_node *n, const char *model);
bool hub_node_offers_tool(const struct hub_node *n, const char *tool);
/* Does n carry label want->key with the value want->value? */
bool hub_node_has_label(const struct hub_node *n, const struct hub_sched_label *want);
/* Could n's whole capacity hold need? A cpu or memory capacity of 0 is unknown: not limited. */
bool hub_node_covers(const struct hub_node *n, const struct hub_sched_res *need);
/* Could n ever run req: what it offers, its labels and its whole capacity? (Reservations aside.) */
bool hub_node_serves(const struct hub_node *n, const struct hub_sched_req *req);
/* Can n run req now: not cordoned, not held for another waiter, room for req->need beside its
 * reservations, no anti-affinity conflict, and it serves req? Under the scheduler lock
 * (strategies call it from place). */
bool hub_node_fits(const struct hub_node *n, const struct hub_sched_req *req);
/* Is there room for need beside n's reservations? Under the scheduler lock. */
bool hub_node_has_room(const struct hub_node *n, const struct hub_sched_res *need);
/* Does a reservation on n conflict with req's anti-affinity, or req with theirs? Under the
 * scheduler lock. When it does and key is not NULL, *key is the label key in question. */
bool hub_node_anti_conflict(const struct hub_node *n, const struct hub_sched_req *req,
                            const char **key);
/* The dominant share of n's capacity its reservations take: the largest of reserved/capacity
 * over slots, cpu and memory (an unknown capacity counts as 0), in [0, 1]. Under the
 * scheduler lock. */
double hub_node_utilisation(const struct hub_node *n);
/* Count req's need and labels on n (reserve), or give them back (unreserve; never below zero,
 * as a release without its reservation must not wrap around). Under the scheduler lock. */
void hub_node_reserve(struct hub_node *n, const struct hub_sched_req *req);
void hub_node_unreserve(struct hub_node *n, const struct hub_sched_req *req);

#endif
