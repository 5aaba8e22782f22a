/* common/list.h - an intrusive, circular, doubly-linked list.
 *
 * The element embeds a struct ag_list; the list head is a struct ag_list of its own. Insert and
 * remove are O(1) and never allocate, so an element can leave a list from anywhere (a waiter
 * whose call was cancelled, an agent that left its node) without a search.
 * Users: the hub's invoke waiters and trace followers, a node's list of the agents on it.
 *
 * Invariants: an initialised node points to itself when unlinked (ag_list_init), so
 * ag_list_linked() tells whether it is on a list, and ag_list_remove() is safe on a node that
 * is not on any list, including a second time. A node is on at most one list at a time.
 * Not thread-safe: the owner's lock guards the head and every node on it. */
#ifndef AGENTRY_COMMON_LIST_H
#define AGENTRY_COMMON_LIST_H

#include <stdbool.h>

#include "common/container.h"

struct ag_list {
    struct ag_list *prev, *next;
};

/* An empty head, or an unlinked node. Every node is initialised before its first insert. */
static inline void ag_list_init(struct ag_list *l)
{
    l->prev = l->next = l;
}

static inline bool ag_list_empty(const struct ag_list *head)
{
    return head->next == head;
}

/* Whether node is on a list (as opposed to initialised and unlinked). */
static inline bool ag_list_linked(const struct ag_list *node)
{
    return node->next != node;
}

static inline void ag_list__insert_between(struct ag_list *node, struct ag_list *prev,
                                           struct ag_list *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

static inline void ag_list_insert_tail(struct ag_list *head, struct ag_list *node)
{
    ag_list__insert_between(node, head->prev, head);
}

static inline void ag_list_insert_head(struct ag_list *head, struct ag_list *node)
{
    ag_list__insert_between(node, head, head->next);
}

/* Unlink node and leave it initialised: removing an unlinked node does nothing. */
static inline void ag_list_remove(struct ag_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    ag_list_init(node);
}

/* The first node, or NULL when the list is empty. */
static inline struct ag_list *ag_list_first(const struct ag_list *head)
{
    return ag_list_empty(head) ? NULL : head->next;
}

/* Move every node of from to the tail of to, leaving from empty: a user takes the whole list
 * under its lock and walks it after unlocking (waking every follower, failing every waiter). */
static inline void ag_list_move_all(struct ag_list *to, struct ag_list *from)
{
    if (ag_list_empty(from))
        return;
    struct ag_list *first = from->next, *last = from->prev;
    first->prev = to->prev;
    to->prev->next = first;
    last->next = to;
    to->prev = last;
    ag_list_init(from);
}

/* The element holding list node `ptr` in its field `member`. */
#define AG_LIST_ENTRY(ptr, type, member) AG_CONTAINER_OF(ptr, type, member)

/* Walk the nodes of head in order; pos must not be removed in the body (see _SAFE). */
#define AG_LIST_FOREACH(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* Walk allowing the body to remove pos (tmp holds the next node); removing other nodes is not
 * allowed. */
#define AG_LIST_FOREACH_SAFE(pos, tmp, head)                                                       \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
