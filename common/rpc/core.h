/* common/rpc/core.h - gRPC core's process-wide set-up, shared by the server and client helpers.
 *
 * rpc_core_init() routes gRPC core's own log lines through ag_log (one logfmt line each, event
 * grpc.log, at debug level) before calling grpc_init(), so a daemon's stderr carries only our
 * structured lines and a failed start prints the one clear error the caller reports, not a raw
 * gRPC line before it. GRPC_VERBOSITY and GRPC_TRACE still choose what gRPC says; --log-level
 * debug shows it. Thread-safe like grpc_init(); calls nest (one rpc_core_shutdown each). */
#ifndef AGENTRY_COMMON_RPC_CORE_H
#define AGENTRY_COMMON_RPC_CORE_H

void rpc_core_init(void);
void rpc_core_shutdown(void);

#endif
