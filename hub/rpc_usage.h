/* hub/rpc_usage.h - GetUsageHistory (hub/rpc_usage.c) and the hook that feeds it. */
#ifndef AGENTRY_HUB_RPC_USAGE_H
#define AGENTRY_HUB_RPC_USAGE_H

#include <stddef.h>

#include "common/rpc/server.h"

struct hub_hook_event;

extern const struct rpc_method hub_rpc_usage_methods[];
extern const size_t hub_rpc_usage_nmethods;

/* hub_hook_fn for HUB_HOOK_EVENTS_STORED, arg the struct hub: counts the events' model calls,
 * tokens and cost in h->usage_history under the agent's namespace and model. */
void hub_rpc_usage_hook(void *arg, const struct hub_hook_event *ev);

#endif
