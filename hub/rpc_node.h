/* hub/rpc_node.h - NodeService.Connect: the node streams, and the actor's messages down them
 * (hub_effects entries, installed by hub.c; their locks are the ones effects.h states). */
#ifndef AGENTRY_HUB_RPC_NODE_H
#define AGENTRY_HUB_RPC_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "common/rpc/server.h"

struct hub;
struct hub_agent;
struct hub_ev_batch;
struct hub_node;

extern const struct rpc_method hub_rpc_node_methods[];
extern const size_t hub_rpc_node_nmethods;

void hub_rpc_node_deliver(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                          uint64_t seq, const char *text);
/* Ask the node to hand the turn back at its next step boundary (DrainNode); it answers with
 * Released. Any lock or none. */
void hub_rpc_node_release(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                          const char *reason);
void hub_rpc_node_cancel(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                         const char *reason);
void hub_rpc_node_events_stored(struct hub *h, struct hub_ev_batch *b, size_t first,
                                const uint64_t *seqs, size_t n, const struct ag_err *err);
/* The node is gone (stream over, heartbeats stopped, replaced): take it out of scheduling and
 * interrupt the turns running on it. No lock held. */
void hub_rpc_node_lost(struct hub *h, struct hub_node *n, const char *reason);
/* Agents deleted (DeleteAgent): send Forget, in pages of at most 1000 ids, to node n, or to
 * every connected node when n is NULL. Any lock or none. */
void hub_rpc_node_forget(struct hub *h, struct hub_node *n, const char *const *ids, size_t nids);
/* Tell the node whether it is cordoned or draining (NodeState), as the scheduler has it now;
 * unless always, only if it is either. Any lock but the scheduler's. */
void hub_rpc_node_state(struct hub *h, struct hub_node *n, bool always);
/* End the node's stream with a status. Any lock or none (takes the call's lock). */
void hub_rpc_node_close_stream(struct hub *h, struct hub_node *n, enum ag_code code,
                               const char *msg);

#endif
