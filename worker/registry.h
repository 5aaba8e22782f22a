/* worker/registry.h - the node's membership in etcd: its key under a lease, and where the hub is.
 *
 * Keys (docs/operations.md, "Nodes through etcd"), under a prefix P ("/agentry/"):
 *   P nodes/<node_id>  this node's JSON record, attached to a lease the registry keeps alive;
 *   P leader           the leading hub's {"hub_id", "address"}, written by the hub; read and
 *                      watched only when the node is to find its hub through etcd.
 *
 * The registry registers with create-if-absent: a key left by this process's own earlier lease is
 * overwritten, a key of another process (another instance_id) is waited out, and after 3 x TTL of
 * waiting the registry fails (wk_registry_failed) so that the node stops: two live processes must
 * never share a node id. A lost lease (etcd expired it, e.g. the process was stopped for longer
 * than the TTL, or etcd was unreachable for a whole TTL) is re-granted and the key written again,
 * with backoff, for as long as the registry runs. etcd errors are logged once per change of state.
 *
 * Threads: one registry thread (grants, writes, retries), the lease keeper's thread and the
 * leader watch's thread (common/etcd.h). Every function here is thread-safe. */
#ifndef AGENTRY_WORKER_REGISTRY_H
#define AGENTRY_WORKER_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct wk_registry;

struct wk_registry_opts {
    const char *endpoints;                      /* "http://127.0.0.1:2379[,URL...]" */
    const char *ca_file, *cert_file, *key_file; /* TLS (common/etcd.h); NULL = none */
    const char *prefix;                         /* "/agentry/": starts and ends with '/' */
    int64_t ttl_s;                              /* the lease's TTL */
    const char *node_id;
    const char *instance_id; /* the same as Register.instance_id */
    const char *record;      /* the JSON value of P nodes/<node_id> */
    bool watch_leader;       /* follow P leader (wk_registry_leader) */
};

/* Bounds of --lease-ttl, in seconds. */
#define WK_REGISTRY_TTL_MIN 1
#define WK_REGISTRY_TTL_MAX 3600

/* INVALID_ARGUMENT naming the bad option (URL, TLS file, prefix, TTL), without contacting etcd. */
int wk_registry_check_opts(const struct wk_registry_opts *o, struct ag_err *err);

/* Starts the registry thread (and the leader watch); etcd being unreachable is not an error here:
 * it is retried in the background. */
struct wk_registry *wk_registry_start(const struct wk_registry_opts *o, struct ag_err *err);

/* The leading hub's address (malloc'd; NULL while P leader is absent or unreadable) and in *gen
 * (may be NULL) a counter that grows each time a new leader appears: a new value, or the key
 * deleted and written again. */
char *wk_registry_leader(struct wk_registry *r, uint64_t *gen);
/* The counter alone, for a cheap "has the leader changed since?" check. */
uint64_t wk_registry_leader_gen(struct wk_registry *r);

/* Whether the registry gave up (the node id is held by another live process); then *err says
 * why, for the node to stop with. */
bool wk_registry_failed(struct wk_registry *r, struct ag_err *err);

/* Revoke the lease (the key disappears at once), stop the keeper, the watch and the thread.
 * Blocks for at most one etcd call. Idempotent. */
void wk_registry_stop(struct wk_registry *r);
/* Stops it if needed. NULL is a no-op. */
void wk_registry_free(struct wk_registry *r);

#endif
