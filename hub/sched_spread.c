/* hub/sched_spread.c - the spread strategy: the least-utilised node that fits (utilisation: the
 * dominant share, hub_node_utilisation), so load stays even across nodes, in proportion to
 * their size. Among equally utilised nodes the earliest joined wins. Stateless; called under the
 * scheduler lock.
 *
 * Cost: one pass over the nodes doing arithmetic; the full fit test (anti-affinity counts,
 * model, tools, labels) runs only for a node that would beat the best so far. */
#include "hub/sched_internal.h"

struct hub_node *hub_sched_spread_place(void *state, struct hub_node *const *nodes, size_t n,
                                        const struct hub_sched_req *req)
{
    (void)state;
    struct hub_node *best = NULL;
    double best_u = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hub_node_has_room(nodes[i], &req->need))
            continue;
        double u = hub_node_utilisation(nodes[i]);
        if ((!best || u < best_u) && hub_node_fits(nodes[i], req)) {
            best = nodes[i];
            best_u = u;
        }
        if (best && best_u == 0)
            break; /* nothing is less utilised than an idle node */
    }
    return best;
}
