/* hub/rpc_trace.h - AgentHub.Trace: followers of an agent's log, and their wake-up after each
 * commit (a hub_effects entry, installed by hub.c). Agent lock held for both functions. */
#ifndef AGENTRY_HUB_RPC_TRACE_H
#define AGENTRY_HUB_RPC_TRACE_H

#include <stddef.h>

#include "common/err.h"
#include "common/rpc/server.h"

struct hub;
struct hub_agent;
struct hub_store_event;

extern const struct rpc_method hub_rpc_trace_methods[];
extern const size_t hub_rpc_trace_nmethods;

void hub_rpc_trace_wake(struct hub *h, struct hub_agent *a,
                        const struct hub_store_event *const *evs, size_t n);
/* End every follow of a with err. */
void hub_rpc_trace_fail_all(struct hub_agent *a, const struct ag_err *err);

#endif
