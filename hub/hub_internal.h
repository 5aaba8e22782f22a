/* hub/hub_internal.h - private to hub/: struct hub, the state every hub file hangs off (no
 * globals). Functions live in the header of the file that owns them: the agent (agent.h), the
 * agent table (agent_table.h), the actor (actor.h), the actor's effects (effects.h), observers
 * (hooks.h), a node (node.h), the node table and placement (sched.h), the RPC layer
 * (rpc_agent.h, rpc_node.h, rpc_trace.h), limits (limits.h).
 *
 * Locks, in the order they may be taken: load_mu (never under another), an agent's lock, then the
 * agent table's, the scheduler's or node_agents_lock, then a call's lock (inside rpc_call_*).
 * Under node_agents_lock only an agent table shard lock is taken (to pin). Never two agents'
 * locks at once. hk_lock is the housekeeper's alone. policy_lock (a read-write lock) is taken
 * alone: nothing is taken under it, and it is never taken under another lock. The schedules'
 * lock (hub/schedule.c) may be taken under an agent's lock, and only the store's is taken under
 * it. The usage history's lock (hub/usage_history.h) comes last: taken under an agent's lock
 * (and after the agent table's), nothing under it. The retention's lock (hub/retention.c) is
 * taken alone. */
#ifndef AGENTRY_HUB_INTERNAL_H
#define AGENTRY_HUB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub/agent_table.h"
#include "hub/effects.h"
#include "hub/hooks.h"
#include "hub/hub.h"

struct ag_timers;
struct hub_memory_index;
struct hub_otlp;
struct hub_retention;
struct hub_sched;
struct hub_schedules;
struct hub_store;
struct hub_usage_history;
struct rpc_method;
struct rpc_server;

struct hub {
    struct hub_opts opts;
    char store_shown
        [512]; /* opts.store_url for logs and errors: no password (hub_store_url_redact) */
    struct hub_store *store;
    struct rpc_server *rpc;
    struct hub_sched *sched;
    struct hub_effects fx;    /* how the actor's decisions reach calls and nodes (hub.c) */
    struct hub_hooks hooks;   /* observers of what was committed; fixed once serving */
    struct hub_agents agents; /* the agents held: active ones, and recently used */
    pthread_mutex_t load_mu;  /* serializes loads of agents from the store (hub/loader.c) */
    /* Guards every hub_node.agents list and hub_agent.on_node link: taken after an agent's
     * lock, never with another lock after it. */
    pthread_mutex_t node_agents_lock;
    atomic_uint_fast64_t node_instances;
    struct rpc_method *methods; /* owned: the method table given to the RPC server */
    struct rpc_health *health;  /* opts.health, else own_health */
    struct rpc_health *own_health;
    struct hub_reflect *reflect; /* server reflection's index (hub/reflect.h) */
    struct ag_timers *timers;    /* back-offs before re-placing interrupted turns */
    atomic_uint_fast64_t retry_tokens;
    int64_t started_ms; /* monotonic; 0 until hub_start */
    bool hk_started;
    pthread_t housekeeper;
    pthread_mutex_t hk_lock;
    pthread_cond_t hk_cond;
    bool stopping;       /* guarded by hk_lock */
    atomic_bool closing; /* refuse new work: hub_stop has begun */
    /* RBAC (hub/authn.c): the policy in force, replaced whole on SIGHUP (hub_reload) under the
     * write lock; calls resolve their grant under the read lock. Never NULL. */
    pthread_rwlock_t policy_lock;
    struct hub_policy *policy;
    struct hub_audit *audit;                 /* NULL: no audit log */
    struct hub_otlp *otlp;                   /* NULL: no span export */
    struct hub_schedules *schedules;         /* cron schedules (hub/schedule.h) */
    struct hub_memory_index *memory;         /* memory_search's vectors (hub/memory.h) */
    struct hub_metrics *metrics;             /* NULL: no --metrics-listen (hub/metrics.h) */
    struct hub_usage_history *usage_history; /* GetUsageHistory's (hub/rpc_usage.c) */
    struct hub_web *web;                     /* NULL: no --http-listen (hub/web.h) */
    struct hub_retention *retention;         /* NULL: no retention_ms (hub/retention.h) */
};

#endif
