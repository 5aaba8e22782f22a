/* hub/rpc_delete.h - AgentHub.DeleteAgent, and the deletion of an agent tree it runs, which
 * retention (hub/retention.c) runs too (see rpc_delete.c). */
#ifndef AGENTRY_HUB_RPC_DELETE_H
#define AGENTRY_HUB_RPC_DELETE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/rpc/server.h"

struct hub;
struct hub_agent;

/* The end of a delete, once: the ids deleted (the root first; borrowed for the call) and err
 * NULL, or ids NULL and err saying why nothing was (a refusal, or the write failed). On the timer
 * thread or the store's completion thread: quick, never blocking. */
typedef void hub_rpc_delete_done_fn(void *arg, const char *const *ids, size_t n,
                                    const struct ag_err *err);
/* Delete root (pinned: the pin becomes the delete's) with its sub-agents, their events and
 * memory, and tell the nodes, as DeleteAgent does: refused unless every agent of the tree is at
 * rest. ended_before_ns > 0 (retention): refused too unless root, once held, is failed or killed
 * and was last updated before then. */
void hub_rpc_delete_tree(struct hub *h, struct hub_agent *root, int64_t ended_before_ns,
                         hub_rpc_delete_done_fn *done, void *arg);

extern const struct rpc_method hub_rpc_delete_methods[];
extern const size_t hub_rpc_delete_nmethods;

#endif
