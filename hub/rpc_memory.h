/* hub/rpc_memory.h - the AgentHub methods that read an agent's memory: ListMemory and GetMemory
 * (hub/rpc_memory.c), registered beside the other AgentHub methods (hub/hub.c). */
#ifndef AGENTRY_HUB_RPC_MEMORY_H
#define AGENTRY_HUB_RPC_MEMORY_H

#include <stddef.h>

#include "common/rpc/server.h"

extern const struct rpc_method hub_rpc_memory_methods[];
extern const size_t hub_rpc_memory_nmethods;

#endif
