/* hub/sched_binpack.c - the binpack strategy: the most-utilised node that fits (utilisation:
 * the dominant share, hub_node_utilisation), so turns fill nodes before opening new ones and the
 * fewest nodes are in use. Among equally utilised nodes the one with the most slots wins (an
 * empty large node holds more before the next must open), then the earliest joined.
 * Stateless; called under the scheduler lock.
 *
 * Cost: one pass over the nodes doing arithmetic; the full fit test (anti-affinity counts,
 * model, tools, labels) runs only for a node that would beat the best so far. */
#include "hub/sched_internal.h"

static bool better(const struct hub_node *n, double u, const struct hub_node *best, double bu)
{
    if (!best)
        return true;
    return u > bu || (u == bu && n->capacity.slots > best->capacity.slots);
}

struct hub_node *hub_sched_binpack_place(void *state, struct hub_node *const *nodes, size_t n,
                                         const struct hub_sched_req *req)
{
    (void)state;
    struct hub_node *best = NULL;
    double best_u = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hub_node_has_room(nodes[i], &req->need))
            continue;
        double u = hub_node_utilisation(nodes[i]);
        if (better(nodes[i], u, best, best_u) && hub_node_fits(nodes[i], req)) {
            best = nodes[i];
            best_u = u;
        }
    }
    return best;
}
