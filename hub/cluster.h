/* hub/cluster.h - the hub in an etcd cluster: its registration, leader election with a fencing
 * token, and the nodes' registrations it watches (hub/cluster.c).
 *
 * Keys, under a prefix P (default "/agentry/"), each attached to its writer's lease:
 *   P hubs/<hub_id>   {"hub_id", "address", "version", "started_ns", "role"}: every hub, leader
 *                     ("leader") or standby ("standby").
 *   P leader          {"hub_id", "address"}: the leader, created only if absent (the election).
 *                     Its create_revision is the leader's fencing token: it grows with every
 *                     election, and the store takes it (hub_store_opts.fence), so a deposed
 *                     leader can never commit again.
 *   P nodes/<node_id> the nodes' registrations (worker/registry.c): a node whose key goes away
 *                     is lost, whatever its stream looks like.
 * Nodes and clients find the leader through P leader.
 *
 * A hub that loses leadership (its lease expired: it was stopped or cut off from etcd for a
 * TTL; or the leader key no longer names it) is told once through opts.lost and must stop: by
 * then a standby may lead, and the fence fails every write this hub still tries.
 *
 * Threads: hub_cluster_lead blocks its caller (the main thread) until this hub leads or
 * hub_cluster_abort (any thread, e.g. a signal thread). The lease keeper and the watch run on
 * their own threads (common/etcd.h) and call opts.lost and opts.node_gone from there. */
#ifndef AGENTRY_HUB_CLUSTER_H
#define AGENTRY_HUB_CLUSTER_H

#include <stdint.h>

#include "common/err.h"

struct hub_cluster;

struct hub_cluster_opts {
    const char *endpoints;                      /* etcd URLs, comma-separated */
    const char *ca_file, *cert_file, *key_file; /* TLS to etcd; NULL: none */
    const char *prefix;                         /* NULL: "/agentry/"; must start and end with '/' */
    const char *hub_id;                         /* NULL: "<hostname>-<pid>" */
    const char *advertise;                      /* the address nodes and clients dial: host:port */
    int64_t ttl_s;                              /* the hub's lease; 0: 10 */
    /* Leadership is gone (why: for the log). Once, from an etcd thread. */
    void (*lost)(void *arg, const char *why);
    /* The registration of node node_id, written by its process instance_id (may be empty),
     * went away (why: expired or deleted). From the watch thread. */
    void (*node_gone)(void *arg, const char *node_id, const char *instance_id, const char *why);
    void *arg;
};

/* Checks the options (INVALID_ARGUMENT naming the bad one); contacts nothing. */
int hub_cluster_new(const struct hub_cluster_opts *o, struct hub_cluster **out, struct ag_err *err);
/* The hub's id (opts.hub_id or the default). */
const char *hub_cluster_id(const struct hub_cluster *cl);
/* Register this hub and campaign: 0 once it leads, with *token its fencing token; 1 if
 * hub_cluster_abort came first. etcd unreachable is retried with backoff (and logged), never
 * returned. */
int hub_cluster_lead(struct hub_cluster *cl, int64_t *token);
/* Make hub_cluster_lead return 1 (from any thread). */
void hub_cluster_abort(struct hub_cluster *cl);
/* Once the hub serves as leader: watch the leader key (leadership lost: opts.lost) and the
 * nodes' registrations (opts.node_gone). */
int hub_cluster_watch(struct hub_cluster *cl, struct ag_err *err);
/* Stop watching and keeping the lease, then revoke it: this hub's keys go at once, and a
 * standby takes over without waiting for a TTL. NULL is a no-op. */
void hub_cluster_free(struct hub_cluster *cl);

#endif
