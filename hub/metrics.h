/* hub/metrics.h - the hub's Prometheus series (docs/metrics.md), served on --metrics-listen.
 *
 * hub_metrics_new registers every family and the observers that feed them: the RPC server's
 * call_done (calls by method and status, latency by method), a hook counting placements, and the
 * store's commit histograms (handed to hub_store_open). Gauges that describe state (agents by
 * state, nodes, pending agents, the store's queue) are read from the hub at each scrape.
 *
 * Threads: updates come from the CQ threads and the store's threads, as atomics; scrapes run on
 * the HTTP server's thread and read the hub through its own locked accessors. */
#ifndef AGENTRY_HUB_METRICS_H
#define AGENTRY_HUB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub;
struct rpc_method;
struct ag_metric;

struct hub_metrics;

/* With h->opts.metrics_listen unset, NULL: every update then costs a NULL test. Called before
 * the hub binds (the method table is known), and before it serves (the hook is added). */
struct hub_metrics *hub_metrics_new(struct hub *h, const struct rpc_method *methods,
                                    size_t nmethods);
/* Binds the metrics address and starts serving: -1 with err (UNAVAILABLE naming the address)
 * if it is in use. With the gRPC address, before the store is opened, so that a taken port
 * fails before anything is touched; until hub_metrics_ready, scrapes leave out the series read
 * from the store, the scheduler and the agents. NULL m is a no-op. */
int hub_metrics_listen(struct hub_metrics *m, struct ag_err *err);
/* The store, the scheduler and the agents are there: scrapes read them from now on. */
void hub_metrics_ready(struct hub_metrics *m);
/* The bound port of the metrics endpoint; 0 without one. */
int hub_metrics_port(const struct hub_metrics *m);
/* Stops serving: before the store and the scheduler go. NULL is a no-op. */
void hub_metrics_stop(struct hub_metrics *m);
/* After the RPC server is freed (its call_done is the last update). NULL is a no-op. */
void hub_metrics_free(struct hub_metrics *m);

/* For hub_store_opts: the commit latency (nanoseconds) and writes per commit. NULL without
 * metrics. */
struct ag_metric *hub_metrics_commit_seconds(struct hub_metrics *m);
struct ag_metric *hub_metrics_commit_writes(struct hub_metrics *m);

/* Retention (hub/retention.c): agents deleted (sub-agents included), and a sweep's end (Unix
 * seconds). NULL m is a no-op. */
void hub_metrics_retention_deleted(struct hub_metrics *m, uint64_t n);
void hub_metrics_retention_swept(struct hub_metrics *m, int64_t unix_s);

/* rpc_server_opts.call_done when the hub has metrics; user is the struct hub. */
void hub_metrics_call_done(void *user, size_t method, enum ag_code code, int64_t ns);

#endif
