/* hub/rpc_approval.h - ListApprovals (hub/rpc_approval.c), registered beside the other AgentHub
 * methods (hub/hub.c). */
#ifndef AGENTRY_HUB_RPC_APPROVAL_H
#define AGENTRY_HUB_RPC_APPROVAL_H

#include <stddef.h>

#include "common/rpc/server.h"

extern const struct rpc_method hub_rpc_approval_methods[];
extern const size_t hub_rpc_approval_nmethods;

#endif
