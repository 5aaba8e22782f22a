/* hub/rpc_assign.h - what an Assignment carries (see rpc_assign.c): the hub_effects.assign entry,
 * and the answer to a node's StateRequest. */
#ifndef AGENTRY_HUB_RPC_ASSIGN_H
#define AGENTRY_HUB_RPC_ASSIGN_H

#include "agentry/v1/node.pb-c.h"

struct hub;
struct hub_agent;
struct hub_node;

/* Send a's current turn to n, now or once its history is read. Agent locked. */
void hub_rpc_assign(struct hub *h, struct hub_agent *a, struct hub_node *n);
/* n does not keep the conversation an Assignment named: send the turn again with it, if the turn
 * is still the one placed on n. No lock held. */
void hub_rpc_assign_state_request(struct hub *h, struct hub_node *n,
                                  const Agentry__V1__StateRequest *r);

#endif
