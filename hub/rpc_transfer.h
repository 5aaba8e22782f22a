/* hub/rpc_transfer.h - ExportAgent and ImportAgent: an agent's whole state out of one hub and
 * into another (hub.proto). */
#ifndef AGENTRY_HUB_RPC_TRANSFER_H
#define AGENTRY_HUB_RPC_TRANSFER_H

#include <stddef.h>

#include "common/rpc/server.h"

extern const struct rpc_method hub_rpc_transfer_methods[];
extern const size_t hub_rpc_transfer_nmethods;

#endif
