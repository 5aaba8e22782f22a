/* common/rpc/health.h - the standard gRPC health checking protocol (grpc.health.v1.Health,
 * api/grpc/health/v1/health.proto) for a process: a table of services and their statuses, the
 * Check and Watch methods that answer from it (rows for any rpc_server: the health port's own,
 * and the hub's main port), and the health port itself, a plaintext server with only them.
 *
 * The table knows three names, as docs/operations.md "Health checks and reflection" documents:
 *   "liveness"           SERVING while the process runs (Kubernetes' liveness probe);
 *   "" and the service   readiness, given to rpc_health_new ("agentry.v1.AgentHub" for the hub,
 *                        "agentry.v1.Node" for a node): NOT_SERVING until rpc_health_set_ready
 *                        says otherwise.
 * Any other name is unknown: Check answers NOT_FOUND, Watch SERVICE_UNKNOWN (the protocol's rule).
 * A change of readiness is logged once, as health.readiness_changed with the table's subject.
 *
 * Watch sends the status at once, then every change, until the client cancels, the server
 * stops, or rpc_health_shutdown ends every watch (UNAVAILABLE, after the last status).
 *
 * Threads: rpc_health_set_ready, _stopping and _shutdown from any thread; the methods run on the
 * servers' CQ threads. One lock guards the statuses and the list of watches; sending under it is
 * safe (rpc_call_send_take only starts a batch). rpc_health_free only once every server that
 * serves the methods is stopped. */
#ifndef AGENTRY_COMMON_RPC_HEALTH_H
#define AGENTRY_COMMON_RPC_HEALTH_H

#include <stdbool.h>

#include "common/err.h"
#include "common/rpc/server.h"

#define RPC_HEALTH_LIVENESS "liveness"
#define RPC_HEALTH_NMETHODS 2 /* Check and Watch */

struct rpc_health;

/* subject: who the log lines name, e.g. "hub=h1" or "node=n1" (copied). service: the readiness
 * name besides "" (copied). Liveness is SERVING, readiness NOT_SERVING. */
struct rpc_health *rpc_health_new(const char *subject, const char *service);
/* NULL is a no-op. Every server serving the methods must be stopped first. */
void rpc_health_free(struct rpc_health *t);

/* Readiness ("" and the service) SERVING or NOT_SERVING; why is logged with a change. A no-op on
 * NULL, so callers need not check whether health is on. */
void rpc_health_set_ready(struct rpc_health *t, bool ready, const char *why);
/* The process is stopping (SIGTERM): readiness NOT_SERVING for good, so that a start-up still
 * finishing meanwhile cannot turn it on again. A no-op on NULL. */
void rpc_health_stopping(struct rpc_health *t, const char *why);

/* The Check and Watch rows (RPC_HEALTH_NMETHODS of them), owned by t, to copy into a server's
 * method table. */
const struct rpc_method *rpc_health_methods(struct rpc_health *t);

/* The process is stopping: every watch ends now (after the statuses already sent), and later
 * ones end at once after their first status. Idempotent. */
void rpc_health_shutdown(struct rpc_health *t);

/* The health port: a plaintext server on listen with only Check and Watch, bound (exclusively:
 * a second process on the port fails here) and started. NULL with err if the address cannot be
 * bound. Stop and free it with rpc_server_stop / rpc_server_free, before rpc_health_free. */
struct rpc_server *rpc_health_serve(struct rpc_health *t, const char *listen, struct ag_err *err);

#endif
