/* hub/rpc_nodes.h - ListNodes, CordonNode and DrainNode (hub/rpc_nodes.c). */
#ifndef AGENTRY_HUB_RPC_NODES_H
#define AGENTRY_HUB_RPC_NODES_H

#include <stddef.h>

#include "common/rpc/server.h"

extern const struct rpc_method hub_rpc_nodes_methods[];
extern const size_t hub_rpc_nodes_nmethods;

#endif
