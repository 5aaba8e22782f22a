/* hub/sched_spread.c - the spread strategy: the least-utilised node that fits (utilisation: the
 * dominant share of slots, cpu and memory, hub_node_utilisation), so load stays even across
 * nodes, in proportion to their size. Among equally utilised nodes the smaller wins, then the
 * later joined (the utilisation order's own ties, struct hub_sched_view). Stateless; called
 * under the scheduler lock.
 *
 * Cost: from the bottom of the utilisation order up to the first node that fits: one node when
 * the emptiest node serves the turn. */
#include "hub/sched_internal.h"

struct hub_node *hub_sched_spread_place(void *state, const struct hub_sched_view *v,
                                        const struct hub_sched_req *req)
{
    (void)state;
    for (size_t i = 0; i < v->nby; i++)
        if (hub_node_fits(v->by_util[i], req))
            return v->by_util[i];
    return NULL;
}
