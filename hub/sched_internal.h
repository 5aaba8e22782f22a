/* hub/sched_internal.h - private to hub/sched*.c: the scheduler's struct, shared by the table
 * and queue (sched.c), the explanations (sched_explain.c), and the strategies' place functions
 * that the table's rows name (sched_round_robin.c, sched_binpack.c, sched_spread.c). Nothing
 * outside hub/sched*.c includes it. Every field is guarded by lock. */
#ifndef AGENTRY_HUB_SCHED_INTERNAL_H
#define AGENTRY_HUB_SCHED_INTERNAL_H

#include <pthread.h>

#include "common/map.h"
#include "hub/node.h"
#include "hub/sched.h"

struct hub_sched__item {
    const struct hub_sched_req *req; /* borrowed: the agent's own, as long as it waits */
    uint64_t seq;                    /* queue order across classes */
};

/* Agents waiting with the same requirements and priority (same_req). A ring of items. */
struct hub_sched__class {
    struct hub_sched__item *ring;
    size_t head, len, cap;
    uint32_t passed; /* placements behind its head, on nodes that could run it */
};

/* One strategy and its state, once per scheduler: the hub's and every row of the table. */
struct hub_sched__strat {
    const struct hub_sched_strategy *st;
    void *state;
};

struct hub_sched {
    pthread_mutex_t lock;
    const struct hub_sched_strategy *strategy; /* the default */
    struct hub_sched__strat *strats;
    size_t nstrats;
    bool closed;
    struct hub_node **nodes; /* alive nodes, in join order */
    size_t nnodes, cap_nodes;
    struct hub_node **by_util; /* those with a free slot by utilisation (sched_index.c) */
    size_t nby;                /* by_util has room for cap_nodes */
    uint64_t next_join;
    struct hub_sched__class *classes; /* each with at least one waiter */
    size_t nclasses, cap_classes;
    struct hub_sched__class **order; /* scratch for drain: classes by their head's order */
    size_t queued;
    uint64_t next_seq;
    /* The one hold (see hub/sched.h): room on hold_node kept for hold_req. Both NULL or both
     * set, and then hold_node->held_for == hold_req. */
    struct hub_node *hold_node;
    const struct hub_sched_req *hold_req;
    /* Cordons by node id (hub_sched_cordon): id (owned, the value's) -> struct
     * hub_sched__cordon. A node that joins with a cordoned id is cordoned. */
    struct ag_map cordons;
};

struct hub_sched__cordon {
    enum hub_sched_cordon mode; /* HUB_SCHED_CORDON or HUB_SCHED_DRAIN */
    char id[];
};

/* The requirements of class c (its head's: every waiter's are the same). */
const struct hub_sched_req *hub_sched__class_req(const struct hub_sched__class *c);

/* Keep n's place in by_util after its reservations, liveness or capacity changed (taken out
 * when it is gone or has no free slot); take it out. */
void hub_sched__index_update(struct hub_sched *s, struct hub_node *n);
void hub_sched__index_remove(struct hub_sched *s, struct hub_node *n);

/* The strategies' place functions, one file each (their rows: hub_sched_strategies). */
hub_sched_place_fn hub_sched_round_robin_place;
void *hub_sched_round_robin_state_new(void);
void hub_sched_round_robin_state_free(void *state);
hub_sched_place_fn hub_sched_binpack_place;
hub_sched_place_fn hub_sched_spread_place;

#endif
