/* hub/sched_index.c - the table's nodes with a free slot, ordered by utilisation, for the
 * strategies that want the most or least utilised node that fits (struct hub_sched_view).
 *
 * A node's key is (utilisation, slots, -join_seq): ascending utilisation, then the smaller
 * node, then the later joined, so from the top come the fullest, largest, earliest joined
 * (binpack's order) and from the bottom the emptiest (spread's). Keys are unique (join_seq is),
 * so a node is found again by binary search on the key it was indexed under (n->util). A
 * reserve or release moves one node: a binary search and one memmove of pointers, much cheaper
 * than the per-decision scan over every node it replaces. Under the scheduler lock. */
#include <string.h>

#include "hub/sched_internal.h"

/* Does a come before b in the order, by the utilisation each was indexed under? */
static bool node_less(const struct hub_node *a, const struct hub_node *b)
{
    if (a->util != b->util)
        return a->util < b->util;
    if (a->capacity.slots != b->capacity.slots)
        return a->capacity.slots < b->capacity.slots;
    return a->join_seq > b->join_seq;
}

/* The first position whose node does not come before n: n's own, when it is indexed. */
static size_t lower_bound(const struct hub_sched *s, const struct hub_node *n)
{
    size_t lo = 0, hi = s->nby;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (node_less(s->by_util[mid], n))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void hub_sched__index_remove(struct hub_sched *s, struct hub_node *n)
{
    if (!n->indexed)
        return;
    size_t i = lower_bound(s, n);
    memmove(&s->by_util[i], &s->by_util[i + 1], (s->nby - i - 1) * sizeof(*s->by_util));
    s->nby--;
    n->indexed = false;
}

void hub_sched__index_update(struct hub_sched *s, struct hub_node *n)
{
    hub_sched__index_remove(s, n);
    if (!n->alive || n->reserved.slots >= n->capacity.slots)
        return;
    n->util = hub_node_utilisation(n);
    size_t i = lower_bound(s, n);
    memmove(&s->by_util[i + 1], &s->by_util[i], (s->nby - i) * sizeof(*s->by_util));
    s->by_util[i] = n;
    s->nby++;
    n->indexed = true;
}
