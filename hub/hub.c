/* hub/hub.c - the hub's lifecycle: open the store and load the agents, serve, stop.
 *
 * Start-up holds the active agents (hub/loader.c: running, pending, or with input waiting). A
 * turn that was running when the hub went down is interrupted (its node's stream died with the
 * hub) and queued to run again; pending agents are queued as they were; an input left waiting
 * starts its turn.
 *
 * Start-up checks what it can without side effects first (the options), then binds the listen
 * address (exclusively: a second hub on the port fails here, before it touches any store), then
 * opens the store (held exclusively too) and loads it. Stopping closes the scheduler first, so
 * the turns interrupted by closing the nodes' streams wait for the next hub instead of being
 * placed on nodes that are about to go too.
 *
 * Health (common/rpc/health.h): the main port answers grpc.health.v1 from the process's table;
 * readiness is SERVING from hub_start until hub_stop, which clears it before anything else. It
 * also answers server reflection (hub/reflect.h), for grpcurl and the like.
 *
 * Threads: main (new/start/stop/free), the RPC CQ threads, the store's threads, the timer thread
 * (back-offs), the housekeeper, which disconnects nodes whose heartbeats stopped and lets
 * agents at rest go (hub_loader_unload_idle), the schedule thread (hub/schedule.h), and the
 * retention thread (hub/retention.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/health.h"
#include "common/rpc/server.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/approval.h"
#include "hub/audit.h"
#include "hub/authn.h"
#include "hub/hooks.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/memory.h"
#include "hub/metrics.h"
#include "hub/node.h"
#include "hub/otlp.h"
#include "hub/policy.h"
#include "hub/reflect.h"
#include "hub/retention.h"
#include "hub/rpc_agent.h"
#include "hub/rpc_approval.h"
#include "hub/rpc_assign.h"
#include "hub/rpc_delete.h"
#include "hub/rpc_memory.h"
#include "hub/rpc_node.h"
#include "hub/rpc_nodes.h"
#include "hub/rpc_schedule.h"
#include "hub/rpc_trace.h"
#include "hub/rpc_transfer.h"
#include "hub/rpc_usage.h"
#include "hub/sched.h"
#include "hub/schedule.h"
#include "hub/store.h"
#include "hub/team.h"
#include "hub/usage_history.h"
#include "hub/web.h"

#define HUB_STOP_GRACE_MS 2000

/* Turns that were running died with the previous hub: record it and queue them again. */
struct requeue_counts {
    size_t running, pending;
};

static void requeue_one(struct hub *h, struct requeue_counts *lc, struct hub_agent *a)
{
    if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING) {
        /* It counts against the turn: a turn that crashes the hub must not do so forever. */
        hub_actor_post_interrupt(h, a, NULL, a->st.epoch, "the hub restarted", false);
        lc->running++;
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING && a->approval) {
        /* Waiting for a person: only the deadline, which may have passed meanwhile. */
        hub_actor_watch_approval(h, a);
        lc->pending++;
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING && a->wait) {
        /* Waiting on sub-agents: placed once they are done (some may have ended meanwhile). */
        hub_team_check_wait(h, a);
        lc->pending++;
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING) {
        hub_agents_pin(&h->agents, a); /* the queue entry's (hub_actor_dispatch drops it) */
        struct hub_node *node = hub_sched_place_or_queue(h->sched, &a->req);
        (void)node; /* no node is connected yet: always queued */
        lc->pending++;
    } else if ((a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
                a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED) &&
               hub_agent_input_waiting(a, a->st.input_seq)) {
        /* The turn ended and the previous hub stopped before placing the next one (it does that
         * after the commit): a failed agent's inputs wait for a SendMessage, these do not. */
        hub_actor_post_schedule(h, a);
        lc->pending++;
    }
}

static void requeue_loaded(struct hub *h, struct requeue_counts *lc)
{
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k;
    for (size_t pos = 0; (k = hub_agents_snapshot(&h->agents, pos, batch, HUB_AGENTS_BATCH));
         pos += k)
        for (size_t i = 0; i < k; i++) {
            requeue_one(h, lc, batch[i]);
            hub_agents_unpin(&h->agents, batch[i]);
        }
}

/* --- housekeeping --------------------------------------------------------------------------- */

static void *housekeeper(void *arg)
{
    struct hub *h = arg;
    int64_t hb = h->opts.heartbeat_ms;
    pthread_mutex_lock(&h->hk_lock);
    while (!h->stopping) {
        /* On the monotonic clock: a wall-clock step neither skips nor doubles a round. */
        ag_cond_wait_until(&h->hk_cond, &h->hk_lock, ag_deadline_in_ms(hb));
        if (h->stopping)
            break;
        pthread_mutex_unlock(&h->hk_lock);
        struct hub_node *stale[64];
        size_t k = hub_sched_stale_nodes(h->sched, ag_now_mono_ms(), 3 * hb, stale, 64);
        for (size_t i = 0; i < k; i++) {
            ag_log_warn("node.timed_out", "node=%s silent_for_ms>%" PRId64, stale[i]->id, 3 * hb);
            hub_rpc_node_lost(h, stale[i], "node lost (no heartbeat)");
            hub_rpc_node_close_stream(h, stale[i], AG_UNAVAILABLE,
                                      "no heartbeat for 3 intervals; reconnect");
            hub_sched_node_unref(h->sched, stale[i]);
        }
        hub_loader_unload_idle(h);
        pthread_mutex_lock(&h->hk_lock);
    }
    pthread_mutex_unlock(&h->hk_lock);
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------------------------ */

#define HUB_DEFAULT_MAX_INTERRUPTIONS 5
#define HUB_DEFAULT_RETRY_BACKOFF_MS 1000
#define HUB_DEFAULT_RETRY_BACKOFF_MAX_MS 60000
#define HUB_DEFAULT_UNLOAD_IDLE_MS 60000
#define HUB_DEFAULT_APPROVAL_TIMEOUT_MS (24LL * 3600 * 1000)

/* The first observer: one log line per placement and per end of a turn. */
static void log_transition(void *arg, const struct hub_hook_event *ev)
{
    (void)arg;
    if (!ev->turn_placed && !ev->turn_ended)
        return;
    ag_log_info("agent.transitioned", "agent=%s state=%s node=%s epoch=%" PRIu64 " seq=%" PRIu64,
                ev->agent_id, hub_agent_state_name(ev->state), ev->node_id, ev->epoch,
                ev->last_seq);
}

/* What can be checked without touching anything. */
static int opts_check(const struct hub_opts *o, const struct hub_sched_strategy **strat,
                      struct ag_err *err)
{
    *strat = hub_sched_find(o->sched ? o->sched : "round-robin");
    if (!*strat) {
        char names[128];
        hub_sched_names(names, sizeof(names));
        return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown scheduler '%s'; use one of: %s",
                          o->sched, names);
    }
    if (!o->listen || !*o->listen)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "no listen address; set --listen host:port");
    if (!o->store_url || !*o->store_url)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "no store; set --store sqlite:PATH");
    if (o->retry_backoff_ms < 0 || o->retry_backoff_max_ms < 0 || o->join_grace_ms < 0 ||
        o->retention_ms < 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "durations must not be negative");
    if (o->retention_ms > HUB_RETENTION_MAX_MS) /* its cutoff in ns must fit an int64 */
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "--retention is at most 36500d (100 years); 0 keeps agents forever");
    if (o->policy_path && !o->tls)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "--policy needs TLS (--tls-dir): callers are known by their "
                          "certificates and tokens");
    return 0;
}

static struct hub *hub_alloc(const struct hub_opts *o, const struct hub_sched_strategy *strat)
{
    struct hub *h = ag_xcalloc(1, sizeof(*h));
    h->opts = *o;
    if (!h->opts.heartbeat_ms)
        h->opts.heartbeat_ms = 2000;
    if (!h->opts.max_interruptions)
        h->opts.max_interruptions = HUB_DEFAULT_MAX_INTERRUPTIONS;
    if (!h->opts.retry_backoff_ms)
        h->opts.retry_backoff_ms = HUB_DEFAULT_RETRY_BACKOFF_MS;
    if (!h->opts.retry_backoff_max_ms)
        h->opts.retry_backoff_max_ms = HUB_DEFAULT_RETRY_BACKOFF_MAX_MS;
    if (!h->opts.unload_idle_ms)
        h->opts.unload_idle_ms = HUB_DEFAULT_UNLOAD_IDLE_MS;
    if (h->opts.approval_timeout_ms <= 0)
        h->opts.approval_timeout_ms = HUB_DEFAULT_APPROVAL_TIMEOUT_MS;
    h->health = o->health;
    if (!h->health) {
        char subject[300];
        snprintf(subject, sizeof(subject), "hub=%s", o->listen);
        h->health = h->own_health = rpc_health_new(subject, HUB_HEALTH_SERVICE);
    }
    hub_agents_init(&h->agents);
    pthread_rwlock_init(&h->policy_lock, NULL);
    h->policy = hub_policy_default();
    pthread_mutex_init(&h->load_mu, NULL);
    pthread_mutex_init(&h->node_agents_lock, NULL);
    pthread_mutex_init(&h->hk_lock, NULL);
    ag_cond_init_mono(&h->hk_cond);
    h->sched = hub_sched_new(strat);
    /* The actor decides, the RPC layer and teams act (hub/effects.h). */
    h->fx = (struct hub_effects){.reply = hub_rpc_agent_reply,
                                 .fail = rpc_call_fail,
                                 .release = rpc_call_unref,
                                 .wait_first_turn = hub_rpc_agent_wait_first_turn,
                                 .first_turn_ended = hub_rpc_agent_first_turn_ended,
                                 .assign = hub_rpc_assign,
                                 .deliver = hub_rpc_node_deliver,
                                 .cancel = hub_rpc_node_cancel,
                                 .wake_followers = hub_rpc_trace_wake,
                                 .events_stored = hub_rpc_node_events_stored,
                                 .team_child_ended = hub_team_child_ended,
                                 .team_check_wait = hub_team_check_wait,
                                 .team_kill_children = hub_team_kill_children};
    hub_hooks_init(&h->hooks);
    hub_hooks_add(&h->hooks, HUB_HOOK_AGENT_CHANGED, log_transition, NULL, NULL); /* 1 of 16 */
    h->usage_history = hub_usage_history_new();
    hub_hooks_add(&h->hooks, HUB_HOOK_EVENTS_STORED, hub_rpc_usage_hook, h, NULL); /* 2 of 16 */
    return h;
}

/* Bind the listen address (and the metrics and dashboard ones): exclusive, so a second hub fails here, before
 * it opens any store. */
static int hub_bind(struct hub *h, struct ag_err *err)
{
    const struct {
        const struct rpc_method *rows;
        size_t n;
    } tables[] = {{hub_rpc_agent_methods, hub_rpc_agent_nmethods},
                  {hub_rpc_trace_methods, hub_rpc_trace_nmethods},
                  {hub_rpc_transfer_methods, hub_rpc_transfer_nmethods},
                  {hub_rpc_node_methods, hub_rpc_node_nmethods},
                  {hub_rpc_nodes_methods, hub_rpc_nodes_nmethods},
                  {hub_rpc_schedule_methods, hub_rpc_schedule_nmethods},
                  {hub_rpc_memory_methods, hub_rpc_memory_nmethods},
                  {hub_rpc_approval_methods, hub_rpc_approval_nmethods},
                  {hub_rpc_delete_methods, hub_rpc_delete_nmethods},
                  {hub_rpc_usage_methods, hub_rpc_usage_nmethods},
                  {rpc_health_methods(h->health), RPC_HEALTH_NMETHODS},
                  {hub_reflect_methods(h->reflect), HUB_REFLECT_NMETHODS}};
    size_t nm = 0;
    for (size_t i = 0; i < AG_ARRAY_SIZE(tables); i++)
        nm += tables[i].n;
    struct rpc_method *methods = ag_xcalloc(nm, sizeof(*methods));
    for (size_t i = 0, at = 0; i < AG_ARRAY_SIZE(tables); at += tables[i++].n)
        memcpy(methods + at, tables[i].rows, tables[i].n * sizeof(*methods));
    h->metrics = hub_metrics_new(h, methods, nm);
    /* Without metrics the calls are not even timed. */
    struct rpc_server_opts ro = {.listen = h->opts.listen,
                                 .threads = h->opts.threads,
                                 .max_request_bytes = h->opts.max_message_bytes,
                                 .user = h,
                                 .tls = h->opts.tls,
                                 .authorize = hub_authn_authorize,
                                 .call_done = h->metrics ? hub_metrics_call_done : NULL};
    h->methods = methods;
    h->rpc = rpc_server_new(&ro, methods, nm, err);
    if (!h->rpc || hub_metrics_listen(h->metrics, err) != 0)
        return -1;
    if (!h->opts.http_listen)
        return 0;
    struct hub_web_opts wo = {.hub = h,
                              .listen = h->opts.http_listen,
                              .hub_listen = h->opts.listen,
                              .hub_port = rpc_server_port(h->rpc),
                              .tls = h->opts.tls};
    h->web = hub_web_new(&wo, err);
    return h->web ? 0 : -1;
}

struct hub *hub_new(const struct hub_opts *o, struct ag_err *err)
{
    const struct hub_sched_strategy *strat;
    if (opts_check(o, &strat, err) != 0)
        return NULL;
    struct hub *h = hub_alloc(o, strat);
    hub_store_url_redact(o->store_url, h->store_shown, sizeof(h->store_shown));
    if (o->policy_path) {
        struct hub_policy *p = hub_policy_load(o->policy_path, err);
        if (!p)
            goto fail;
        hub_policy_free(h->policy);
        h->policy = p;
    }
    if (o->audit_path) {
        struct hub_audit_opts ao = {.path = o->audit_path, .max_bytes = o->audit_max_bytes};
        h->audit = hub_audit_open(&ao, err);
        if (!h->audit)
            goto fail;
    }
    if (o->otlp_endpoint) {
        h->otlp = hub_otlp_new(o->otlp_endpoint, err);
        if (!h->otlp ||
            hub_hooks_add(&h->hooks, HUB_HOOK_EVENTS_STORED, hub_otlp_hook, h->otlp, err) != 0)
            goto fail;
    }
    h->reflect = hub_reflect_new(err);
    if (!h->reflect || hub_bind(h, err) != 0)
        goto fail;
    h->timers = ag_timers_new(err);
    if (!h->timers)
        goto fail;
    struct hub_store_opts so = {.fence = o->fence,
                                .fence_holder = o->fence_holder,
                                .commit_seconds = hub_metrics_commit_seconds(h->metrics),
                                .commit_writes = hub_metrics_commit_writes(h->metrics)};
    h->store = hub_store_open(o->store_url, &so, err);
    if (!h->store)
        goto fail;
    if (hub_memory_start(h, err) != 0)
        goto fail;
    size_t loaded = 0;
    if (hub_loader_load_active(h, &loaded, err) != 0) {
        ag_err_prefix(err, "cannot load agents from '%s'", h->store_shown);
        goto fail;
    }
    h->schedules = hub_schedules_new(h);
    if (hub_schedules_load(h->schedules, err) != 0) {
        ag_err_prefix(err, "cannot load schedules from '%s'", h->store_shown);
        goto fail;
    }
    struct requeue_counts rc = {0};
    requeue_loaded(h, &rc);
    ag_log_info("hub.loaded", "store=%s agents=%zu interrupted=%zu pending=%zu",
                ag_log_q(h->store_shown), loaded, rc.running, rc.pending);
    hub_metrics_ready(h->metrics); /* scrapes read the store, the scheduler and the agents */
    if (h->web && hub_web_start(h->web, err) != 0) /* bound in hub_bind, served from now */
        goto fail;
    return h;
fail:
    hub_free(h);
    return NULL;
}

void hub_start(struct hub *h)
{
    /* Before serving: the first Spawn already measures the join grace from here. */
    h->started_ms = ag_now_mono_ms();
    rpc_server_start(h->rpc);
    ag_xthread_create(&h->housekeeper, housekeeper, h, "housekeeper");
    h->hk_started = true;
    hub_schedules_start(h->schedules);
    hub_retention_start(h);
    ag_log_info("hub.started", "listen=%s port=%d store=%s", h->opts.listen,
                rpc_server_port(h->rpc), ag_log_q(h->store_shown));
    rpc_health_set_ready(h->health, true, "serving as the active hub");
}

void hub_reload(struct hub *h)
{
    hub_reload_tls(h);
    if (!h->opts.policy_path)
        return;
    struct ag_err err = AG_ERR_INIT;
    struct hub_policy *p = hub_policy_load(h->opts.policy_path, &err);
    if (!p) { /* deny by default does not mean deny everyone: the policy in force stays */
        ag_log_error("policy.reload_failed", "path=%s err=%s kept=previous",
                     ag_log_q(h->opts.policy_path), ag_log_q(err.msg));
        return;
    }
    pthread_rwlock_wrlock(&h->policy_lock);
    struct hub_policy *old = h->policy;
    h->policy = p;
    pthread_rwlock_unlock(&h->policy_lock);
    hub_policy_free(old);
    ag_log_info("policy.reloaded", "path=%s", ag_log_q(h->opts.policy_path));
}

void hub_reload_tls(struct hub *h)
{
    if (h->rpc)
        rpc_server_reload_tls(h->rpc);
}

int hub_port(const struct hub *h)
{
    return rpc_server_port(h->rpc);
}

int hub_metrics_listen_port(const struct hub *h)
{
    return hub_metrics_port(h->metrics);
}

/* Long-lived calls (Trace follows, Invoke waits, node streams) end with a status the client can
 * act on instead of being cut. */
static void end_streams(struct hub *h)
{
    struct ag_err e;
    ag_err_set(&e, AG_UNAVAILABLE, "the hub is shutting down; retry or resume from your last seq");
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k;
    for (size_t pos = 0; (k = hub_agents_snapshot(&h->agents, pos, batch, HUB_AGENTS_BATCH));
         pos += k) {
        for (size_t i = 0; i < k; i++) {
            pthread_mutex_lock(&batch[i]->lock);
            hub_rpc_trace_fail_all(batch[i], &e);
            hub_rpc_agent_fail_waiters(batch[i], &e);
            pthread_mutex_unlock(&batch[i]->lock);
            hub_agents_unpin(&h->agents, batch[i]);
        }
    }
    struct hub_node *nodes[1024];
    k = hub_sched_nodes(h->sched, nodes, AG_ARRAY_SIZE(nodes));
    for (size_t i = 0; i < k; i++) {
        hub_rpc_node_close_stream(h, nodes[i], AG_UNAVAILABLE,
                                  "the hub is shutting down; reconnect");
        hub_sched_node_unref(h->sched, nodes[i]);
    }
}

/* What others keep on an agent, dropped before it is freed: Invokes still waiting once every
 * write is done (a Spawn that committed after end_streams) hold call references, and so do
 * commands left in its mailbox. No other thread is left. */
static void release_agent(void *arg, struct hub_agent *a)
{
    struct hub *h = arg;
    struct ag_err e;
    ag_err_set(&e, AG_UNAVAILABLE, "the hub stopped");
    hub_rpc_agent_fail_waiters(a, &e);
    hub_actor_drop_mailbox(h, a);
}

void hub_stop(struct hub *h)
{
    if (!h->rpc || !h->started_ms || atomic_exchange(&h->closing, true))
        return;
    ag_log_info("hub.stopping", "active_calls=%u", rpc_server_active_calls(h->rpc));
    /* Probes and load balancers first: no new traffic while the rest winds down. */
    rpc_health_stopping(h->health, "the hub is stopping");
    hub_schedules_stop(h->schedules); /* no slot fires once stopping */
    hub_retention_stop(h);            /* its deletes in flight give up, closing */
    /* Stop placing first: turns interrupted below must not go to nodes about to go as well. */
    hub_sched_close(h->sched);
    end_streams(h);
    hub_web_stop(h->web);           /* after end_streams: its SSE streams end with their reason */
    rpc_health_shutdown(h->health); /* Watch streams end after their NOT_SERVING */
    rpc_server_stop(h->rpc, HUB_STOP_GRACE_MS);
    if (h->hk_started) {
        pthread_mutex_lock(&h->hk_lock);
        h->stopping = true;
        pthread_cond_broadcast(&h->hk_cond);
        pthread_mutex_unlock(&h->hk_lock);
        pthread_join(h->housekeeper, NULL);
        h->hk_started = false;
    }
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    bool started = h->started_ms != 0;
    hub_metrics_stop(h->metrics); /* no scrape reads what goes below */
    if (h->rpc)
        hub_stop(h);
    hub_web_free(h->web);
    atomic_store(&h->closing, true); /* timers still pending find it and do nothing */
    /* Writes still queued commit and answer (closed) calls; then nothing refers to a call but
     * the agents and nodes, which go next. The timers go after the store: a write completing
     * during the drain may start one (actor.c start_retry_timer checks closing, but the
     * timer thread must outlive every completion). */
    hub_memory_stop(h); /* searches under way still read the store */
    hub_store_close(h->store);
    h->store = NULL;
    hub_memory_free(h);     /* after the store: its last writes' done() update the index */
    hub_otlp_free(h->otlp); /* after the store: no hook runs; exports what the drain stored */
    ag_timers_free(h->timers);
    h->timers = NULL;
    hub_agents_free_all(&h->agents, h->sched, release_agent, h);
    hub_schedules_free(h->schedules); /* after the store's answers and the agents' mailboxes */
    hub_sched_free(h->sched);
    if (h->rpc)
        rpc_server_free(h->rpc);
    hub_metrics_free(h->metrics);   /* after the last call_done */
    rpc_health_free(h->own_health); /* after the server: its Watch calls are gone */
    hub_reflect_free(h->reflect);
    free(h->methods);
    pthread_mutex_destroy(&h->node_agents_lock);
    pthread_mutex_destroy(&h->load_mu);
    pthread_mutex_destroy(&h->hk_lock);
    hub_policy_free(h->policy);
    pthread_rwlock_destroy(&h->policy_lock);
    hub_audit_close(h->audit);
    pthread_cond_destroy(&h->hk_cond);
    hub_usage_history_free(h->usage_history); /* last: hooks and calls read it until now */
    if (started)
        ag_log_info("hub.stopped", "clean=1");
    free(h);
}
