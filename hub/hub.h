/* hub/hub.h - the agent-hub daemon as a library: open the store, serve AgentHub and NodeService,
 * stop gracefully. cmd/agentry/cmd_hub.c is a thin main around it; tests embed it directly.
 *
 * Threads: the RPC server's CQ threads, the store's writer and reader threads, one
 * housekeeping thread (heartbeat timeouts), and with retention_ms the retention thread. hub_new/hub_start/hub_stop/hub_free are called from
 * one thread (main). */
#ifndef AGENTRY_HUB_H
#define AGENTRY_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/rpc/tls.h"

/* The readiness name of the hub in grpc.health.v1 (besides ""), docs/operations.md. */
#define HUB_HEALTH_SERVICE "agentry.v1.AgentHub"

struct hub;
struct rpc_health;

struct hub_opts {
    const char *listen;           /* "127.0.0.1:7070" */
    const char *store_url;        /* "sqlite:agentry.db" */
    const char *sched;            /* strategy name; NULL = "round-robin" */
    unsigned threads;             /* CQ threads; 0 = CPUs */
    size_t max_message_bytes;     /* per request; 0 = 4 MiB */
    unsigned heartbeat_ms;        /* node heartbeat interval; 0 = 2000 (timeout: 3 intervals) */
    unsigned max_interruptions;   /* a turn interrupted this many times in a row for the same
                                    reason (or 4x in all) fails; 0 = 5 */
    int64_t retry_backoff_ms;     /* wait before the 3rd attempt of an interrupted turn, doubling
                                    for each further one (the 2nd is at once); 0 = 1000 */
    int64_t retry_backoff_max_ms; /* ... up to this; 0 = 60000 */
    int64_t join_grace_ms;        /* after start, Spawn of a model or tool no connected node offers
                                    waits as pending instead of failing: nodes may be reconnecting */
    int64_t unload_idle_ms;       /* an agent at rest this long leaves memory (it is loaded from
                                    the store again when asked for); 0 = 60000, < 0: at once */
    int64_t approval_timeout_ms;  /* a tool call waiting for approval is denied as expired after
                                    this, unless its spec says; 0 = 24 hours */
    int64_t retention_ms;         /* delete agents failed or killed longer ago than this, in
                                     the background (hub/retention.h); 0: keep them forever */
    int64_t fence;                /* the leader's fencing token (hub/cluster.h); 0: none */
    const char *fence_holder;     /* the leader's hub id, with fence */
    const char *policy_path;      /* RBAC policy file (hub/policy.h); NULL: built-in roles only */
    const char *audit_path;       /* audit log file (hub/audit.h); NULL: none */
    size_t audit_max_bytes;       /* 0: 64 MiB */
    const char *otlp_endpoint;    /* OTLP/HTTP collector for agent-step spans (hub/otlp.h);
                                     NULL: none */
    const struct rpc_tls_files *tls; /* NULL: plaintext; else mutual TLS only, each call's
                                        identity from its certificate (hub/authn.h) */
    const char *metrics_listen;      /* serve Prometheus GET /metrics here (hub/metrics.h);
                                        NULL: no metrics */
    const char *http_listen;         /* serve the dashboard and its JSON API here (hub/web.h);
                                        NULL: none */
    struct rpc_health *health;       /* borrowed: the process's health table (common/rpc/health.h),
                                        also served on the main port, with readiness SERVING from
                                        hub_start to hub_stop; NULL: the hub keeps its own */
};

/* Binds the listen address, opens the store and loads the active agents (running, pending, or
 * with input waiting): everything that can fail. */
struct hub *hub_new(const struct hub_opts *o, struct ag_err *err);
/* Start serving (the threads of the RPC server and the housekeeper). */
void hub_start(struct hub *h);
int hub_port(const struct hub *h);
/* The bound port of --metrics-listen; 0 without one. */
int hub_metrics_listen_port(const struct hub *h);
/* Graceful: refuse new calls, end streams with UNAVAILABLE "hub is shutting down", let writes in
 * flight commit, stop. */
void hub_stop(struct hub *h);
void hub_free(struct hub *h);
/* Re-read the TLS certificate files for new connections (SIGHUP); existing ones are kept. Any
 * thread; a no-op without TLS. */
void hub_reload_tls(struct hub *h);
/* SIGHUP: hub_reload_tls, and the policy file read again (one that does not load keeps the
 * previous policy, logged as policy.reload_failed). Any thread. */
void hub_reload(struct hub *h);
/* The etcd registration of node node_id (of process instance_id; "" if not known) went away
 * (hub/cluster.h): the node is lost, whatever its stream looks like. Any thread. */
void hub_node_unregistered(struct hub *h, const char *node_id, const char *instance_id,
                           const char *why);

#endif
