/* hub/sched_round_robin.c - the round-robin strategy: the first node that fits at or after a
 * cursor, which then moves past it, so consecutive turns land on consecutive nodes while they
 * have room and load stays even over nodes of one size. Called under the scheduler lock; the
 * cursor is this strategy's state, one per scheduler.
 *
 * Cost: O(1) node checks while the next node fits; a scan when most are full or do not serve
 * the request. */
#include <stdlib.h>

#include "common/xalloc.h"
#include "hub/sched_internal.h"

struct rr_state {
    size_t next;
};

void *hub_sched_round_robin_state_new(void)
{
    return ag_xcalloc(1, sizeof(struct rr_state));
}

void hub_sched_round_robin_state_free(void *state)
{
    free(state);
}

struct hub_node *hub_sched_round_robin_place(void *state, const struct hub_sched_view *v,
                                             const struct hub_sched_req *req)
{
    struct rr_state *rr = state;
    struct hub_node *const *nodes = v->nodes;
    size_t n = v->n;
    for (size_t i = 0; i < n; i++) {
        size_t k = (rr->next + i) % n;
        if (hub_node_fits(nodes[k], req)) {
            rr->next = (k + 1) % n;
            return nodes[k];
        }
    }
    return NULL;
}
