/* worker/node.h - agent-node as a library: connect to the hub, register, run assigned turns,
 * reconnect when the hub goes away. cmd/agentry/cmd_node.c is a thin main around it.
 *
 * Threads: wk_node_run's caller is the connection thread (it owns the channel, the stream and
 * its completion queue); the runner's pool threads run the agent loops; one timer thread. */
#ifndef AGENTRY_WORKER_NODE_H
#define AGENTRY_WORKER_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/rpc/tls.h"

struct wk_node;
struct wk_policy;
struct rpc_health;

struct wk_node_opts {
    const char *hub;           /* "127.0.0.1:7070"; NULL with etcd: the leader etcd names */
    const char *node_id;       /* NULL: "<hostname>-<pid>" */
    unsigned capacity;         /* turns at once; 0 = 64 */
    uint32_t cpu_milli;        /* CPU offered to turns (Register.cpu_milli); 0 = unknown */
    uint64_t mem_bytes;        /* memory offered to turns (Register.memory_bytes); 0 = unknown */
    const char *const *labels; /* "k=v" items */
    size_t nlabels;
    unsigned threads;       /* agent-loop threads; 0 = 2 */
    int64_t handshake_ms;   /* deadline for Register -> Registered; 0 = 5000 */
    int64_t max_backoff_ms; /* reconnect backoff cap; 0 = 5000 */
    /* Provider and tool options, "NAME.KEY=VALUE" (worker/config.h). */
    const char *const *model_opts;
    size_t nmodel_opts;
    const char *const *tool_opts;
    size_t ntool_opts;
    /* Bytes of agents' conversations kept between turns (worker/warm.h); 0: none. */
    size_t keep_bytes;
    /* Model prices "PROVIDER[/MODEL]=IN:OUT" (worker/price.h), the agents' workspace root, and
     * the defaults for specs that give no iteration or time limit (worker/runner.h). */
    const char *const *prices;
    size_t nprices;
    const char *workspace_root;
    /* Where tools run programs (worker/sandbox.h): "bwrap" (NULL too), "runsc" or "unsafe",
     * and the host user bwrap runs as when the node is root (NULL: agentry-sbx). */
    const char *sandbox;
    const char *sandbox_user;
    /* The node's permission policy (worker/policy.h), a ceiling over every spec's rules;
     * borrowed for the node's life, NULL: none. */
    const struct wk_policy *policy;
    uint32_t default_max_iterations;
    int64_t default_turn_timeout_ms;
    /* Where the node runs, for people (Register.address); NULL: the host name. */
    const char *address;
    /* etcd (worker/registry.h), NULL: none. With it the node keeps <prefix>nodes/<id> under a
     * lease; without hub it also finds the hub through <prefix>leader and follows it. */
    const char *etcd; /* "http://127.0.0.1:2379[,URL...]" */
    const char *etcd_ca, *etcd_cert, *etcd_key;
    const char *etcd_prefix; /* NULL: "/agentry/" */
    int64_t lease_ttl_ms;    /* 1 s to 1 h, rounded up to whole seconds */
    /* Mutual TLS to the hub (common/rpc/tls.h), borrowed for the node's life; NULL: plaintext.
     * The certificate must name node_id (agentry://node/<node_id>). */
    const struct rpc_tls_files *tls;
    /* Serve Prometheus GET /metrics here (worker/metrics.h); NULL: no metrics. */
    const char *metrics_listen;
    /* Borrowed, may be NULL: the process's health table (common/rpc/health.h), whose readiness
     * the node keeps: SERVING while registered with a hub and not draining. */
    struct rpc_health *health;
};

/* Check the options that wk_node_new would refuse as malformed (INVALID_ARGUMENT, one line
 * naming the option), without starting anything: a command line checks its flags first. */
int wk_node_check_opts(const struct wk_node_opts *o, struct ag_err *err);

struct wk_node *wk_node_new(const struct wk_node_opts *o, struct ag_err *err);
/* Serve until wk_node_stop. Returns 0 after a clean stop. */
int wk_node_run(struct wk_node *n, struct ag_err *err);
/* Thread-safe and async-signal-unsafe: call from a normal thread (e.g. a sigwait thread). With
 * etcd it first revokes the node's lease (blocking for at most one etcd call), so that the hub
 * sees the node leave before its stream closes. */
void wk_node_stop(struct wk_node *n);
void wk_node_free(struct wk_node *n);

#endif
