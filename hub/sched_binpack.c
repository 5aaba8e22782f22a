/* hub/sched_binpack.c - the binpack strategy: the most-utilised node that fits (utilisation:
 * the dominant share of slots, cpu and memory, hub_node_utilisation), so turns fill nodes
 * before opening new ones and the fewest nodes are in use. Among equally utilised nodes the
 * one with the most slots wins (an empty large node holds more before the next must open),
 * then the earliest joined. Stateless; called under the scheduler lock.
 *
 * Cost: from the top of the utilisation order (struct hub_sched_view) down to the first node
 * that fits: one node when the fullest node with a free slot serves the turn. */
#include "hub/sched_internal.h"

struct hub_node *hub_sched_binpack_place(void *state, const struct hub_sched_view *v,
                                         const struct hub_sched_req *req)
{
    (void)state;
    for (size_t i = v->nby; i-- > 0;)
        if (hub_node_fits(v->by_util[i], req))
            return v->by_util[i];
    return NULL;
}
