/* hub/rpc_delete.h - AgentHub.DeleteAgent (see rpc_delete.c). */
#ifndef AGENTRY_HUB_RPC_DELETE_H
#define AGENTRY_HUB_RPC_DELETE_H

#include <stddef.h>

#include "common/rpc/server.h"

extern const struct rpc_method hub_rpc_delete_methods[];
extern const size_t hub_rpc_delete_nmethods;

#endif
