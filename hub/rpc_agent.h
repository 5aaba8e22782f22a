/* hub/rpc_agent.h - the AgentHub unary methods, the actor's answers to them, and Invoke's
 * waiters. The answers and waiters are hub_effects entries (hub/effects.h), installed by hub.c;
 * their locks are the ones effects.h states. */
#ifndef AGENTRY_HUB_RPC_AGENT_H
#define AGENTRY_HUB_RPC_AGENT_H

#include <stddef.h>

#include "common/err.h"
#include "common/rpc/server.h"
#include "hub/effects.h"

extern const struct rpc_method hub_rpc_agent_methods[];
extern const size_t hub_rpc_agent_nmethods;

void hub_rpc_agent_reply(struct rpc_call *call, const struct hub_reply *r);
void hub_rpc_agent_wait_first_turn(struct hub_agent *a, struct rpc_call *call);
void hub_rpc_agent_first_turn_ended(struct hub_agent *a);
/* Answer every Invoke waiting on a with err. Agent lock held (or no other thread left). */
void hub_rpc_agent_fail_waiters(struct hub_agent *a, const struct ag_err *err);

#endif
