/* hub/metrics.c - the hub's Prometheus series (see metrics.h and docs/metrics.md).
 *
 * Calls by method and status: a table of series per (method, code), filled on first use, so the
 * call path does a few atomic operations and no lookup. The label sets are the methods times the
 * codes they actually return, far below the family's bound. */
#include "hub/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/queue.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_state.h"
#include "hub/agent_table.h"
#include "hub/hooks.h"
#include "hub/hub_internal.h"
#include "hub/rpc_trace.h"
#include "hub/sched.h"
#include "hub/store.h"

#define HUB_METRICS_CODES 17 /* AG_OK .. AG_UNAUTHENTICATED */
#define HUB_METRICS_STATES 7 /* AGENT_STATE_UNSPECIFIED .. KILLED */

struct hub_metrics {
    struct hub *h;
    struct ag_metrics *reg;
    struct ag_metrics_http *http;
    size_t nmethods;
    const char **method_names; /* the paths without their leading '/', borrowed from the table */
    struct ag_metric_family *calls;
    _Atomic(struct ag_metric *) *call_series; /* [nmethods * HUB_METRICS_CODES] */
    struct ag_metric **latency;               /* [nmethods] */
    struct ag_metric *placements, *commit_seconds, *commit_writes;
    struct ag_metric *commits, *writes, *events, *failed, *queue_depth;
    struct ag_metric *nodes, *pending, *capacity, *running;
    struct ag_metric *retention_deleted, *retention_swept;
    struct ag_metric *agents[HUB_METRICS_STATES];
    struct ag_metric *followers_grpc, *followers_dashboard;
    atomic_bool ready; /* hub_metrics_ready: h->store and the rest may be read */
};

/* Seconds from 1 ms to a minute; streams (Trace follows, node streams) land in +Inf. */
static const double rpc_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,   0.5,   1,      2.5,   5,    10,    60};
static const double commit_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,  0.1,    0.25,  1};
static const double writes_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

void hub_metrics_call_done(void *user, size_t method, enum ag_code code, int64_t ns)
{
    struct hub_metrics *m = ((struct hub *)user)->metrics;
    if (method >= m->nmethods)
        return;
    if ((unsigned)code >= HUB_METRICS_CODES)
        code = AG_UNKNOWN;
    _Atomic(struct ag_metric *) *slot = &m->call_series[method * HUB_METRICS_CODES + code];
    struct ag_metric *s = atomic_load_explicit(slot, memory_order_acquire);
    if (!s) { /* first call of this method with this code: racing threads get the same series */
        s = ag_metrics_at(m->calls, (const char *[]){m->method_names[method], ag_code_name(code)});
        atomic_store_explicit(slot, s, memory_order_release);
    }
    ag_metrics_inc(s);
    ag_metrics_observe(m->latency[method], ns > 0 ? (uint64_t)ns : 0);
}

static void on_agent_changed(void *arg, const struct hub_hook_event *ev)
{
    struct hub_metrics *m = arg;
    if (ev->turn_placed)
        ag_metrics_inc(m->placements);
}

static void scrape(void *arg)
{
    struct hub_metrics *m = arg;
    struct hub *h = m->h;
    if (!atomic_load(&m->ready))
        return;
    struct hub_store_stats ss;
    hub_store_get_stats(h->store, &ss);
    ag_metrics_set(m->commits, (int64_t)ss.commits);
    ag_metrics_set(m->writes, (int64_t)ss.writes);
    ag_metrics_set(m->events, (int64_t)ss.events);
    ag_metrics_set(m->failed, (int64_t)ss.failed);
    ag_metrics_set(m->queue_depth, (int64_t)ss.queue_depth);
    struct hub_sched_stats st;
    hub_sched_get_stats(h->sched, &st);
    ag_metrics_set(m->nodes, (int64_t)st.nodes);
    ag_metrics_set(m->pending, (int64_t)st.queued);
    ag_metrics_set(m->capacity, (int64_t)st.capacity);
    ag_metrics_set(m->running, (int64_t)st.running);
    int64_t by_state[HUB_METRICS_STATES] = {0};
    size_t grpc = 0, dashboard = 0;
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k;
    for (size_t pos = 0; (k = hub_agents_snapshot(&h->agents, pos, batch, HUB_AGENTS_BATCH));
         pos += k)
        for (size_t i = 0; i < k; i++) {
            pthread_mutex_lock(&batch[i]->lock);
            int s = batch[i]->st.state;
            hub_rpc_trace_count(batch[i], &grpc, &dashboard);
            pthread_mutex_unlock(&batch[i]->lock);
            if (s >= 0 && s < HUB_METRICS_STATES)
                by_state[s]++;
            hub_agents_unpin(&h->agents, batch[i]);
        }
    for (int s = 1; s < HUB_METRICS_STATES; s++)
        ag_metrics_set(m->agents[s], by_state[s]);
    ag_metrics_set(m->followers_grpc, (int64_t)grpc);
    ag_metrics_set(m->followers_dashboard, (int64_t)dashboard);
}

static struct ag_metric *one(struct ag_metric_family *f)
{
    return ag_metrics_at(f, NULL);
}

static struct ag_metric *gauge(struct ag_metrics *r, const char *name, const char *help)
{
    return one(ag_metrics_gauge(r, name, help, NULL));
}

static struct ag_metric *counter(struct ag_metrics *r, const char *name, const char *help)
{
    return one(ag_metrics_counter(r, name, help, NULL));
}

struct hub_metrics *hub_metrics_new(struct hub *h, const struct rpc_method *methods,
                                    size_t nmethods)
{
    if (!h->opts.metrics_listen || !*h->opts.metrics_listen)
        return NULL;
    struct hub_metrics *m = ag_xcalloc(1, sizeof(*m));
    struct ag_metrics *r = m->reg = ag_metrics_new();
    m->h = h;
    m->nmethods = nmethods;
    m->method_names = ag_xcalloc(nmethods, sizeof(*m->method_names));
    m->call_series = ag_xcalloc(nmethods * HUB_METRICS_CODES, sizeof(*m->call_series));
    m->latency = ag_xcalloc(nmethods, sizeof(*m->latency));
    m->calls = ag_metrics_counter(r, "agentry_rpc_server_handled_total",
                                  "RPCs completed on the hub, by method and gRPC status code.",
                                  (const char *[]){"method", "code", NULL});
    ag_metrics_set_max_series(m->calls, AG_METRICS_SERIES_LIMIT);
    struct ag_metric_family *lat = ag_metrics_histogram(
        r, "agentry_rpc_server_handling_seconds",
        "Time from an RPC's arrival to its end, by method (streams last as long as they are open).",
        (const char *[]){"method", NULL}, rpc_buckets, AG_ARRAY_SIZE(rpc_buckets), 1e-9);
    for (size_t i = 0; i < nmethods; i++) {
        m->method_names[i] = methods[i].path + (methods[i].path[0] == '/');
        m->latency[i] = ag_metrics_at(lat, (const char *[]){m->method_names[i]});
    }
    m->commits = counter(r, "agentry_store_commits_total", "Store transactions committed.");
    m->writes = counter(r, "agentry_store_writes_total",
                        "Store writes committed (a write is the rows one request needs together).");
    m->events = counter(r, "agentry_store_events_total", "Agent events appended to the store.");
    m->failed = counter(r, "agentry_store_failed_writes_total", "Store writes that failed.");
    m->queue_depth = gauge(r, "agentry_store_queue_depth",
                           "Writes waiting for the store's writer.");
    m->commit_seconds = one(ag_metrics_histogram(
        r, "agentry_store_commit_seconds", "Time to run and commit one store transaction.", NULL,
        commit_buckets, AG_ARRAY_SIZE(commit_buckets), 1e-9));
    m->commit_writes = one(ag_metrics_histogram(
        r, "agentry_store_commit_writes", "Writes committed together in one transaction.", NULL,
        writes_buckets, AG_ARRAY_SIZE(writes_buckets), 1));
    struct ag_metric_family *agents = ag_metrics_gauge(r, "agentry_agents",
                                                       "Agents held in the hub's memory, by state.",
                                                       (const char *[]){"state", NULL});
    for (int s = 1; s < HUB_METRICS_STATES; s++)
        m->agents[s] = ag_metrics_at(agents, (const char *[]){hub_agent_state_name(s)});
    struct ag_metric_family *followers = ag_metrics_gauge(
        r, "agentry_trace_followers",
        "Readers of agents' logs now: Trace calls (grpc) and the dashboard's streams (dashboard).",
        (const char *[]){"reader", NULL});
    m->followers_grpc = ag_metrics_at(followers, (const char *[]){"grpc"});
    m->followers_dashboard = ag_metrics_at(followers, (const char *[]){"dashboard"});
    m->pending = gauge(r, "agentry_agents_pending", "Agents waiting for a node to run their turn.");
    m->nodes = gauge(r, "agentry_nodes", "Nodes connected and taking turns.");
    m->capacity = gauge(r, "agentry_nodes_capacity", "Turn slots of the connected nodes.");
    m->running = gauge(r, "agentry_nodes_running", "Turn slots in use on the connected nodes.");
    m->placements = counter(r, "agentry_scheduler_placements_total",
                            "Turns placed on a node by the scheduler.");
    m->retention_deleted = counter(
        r, "agentry_retention_deleted_total",
        "Agents deleted by retention (--retention), sub-agents included.");
    m->retention_swept = gauge(
        r, "agentry_retention_last_sweep_timestamp_seconds",
        "When the last retention sweep ended, in Unix seconds (0: none yet, or no --retention).");
    ag_queue_metrics_add(r);
    ag_metrics_add_process(r);
    ag_metrics_on_scrape(r, scrape, m);
    hub_hooks_add(&h->hooks, HUB_HOOK_AGENT_CHANGED, on_agent_changed, m, NULL);
    return m;
}

void hub_metrics_ready(struct hub_metrics *m)
{
    if (m)
        atomic_store(&m->ready, true);
}

int hub_metrics_listen(struct hub_metrics *m, struct ag_err *err)
{
    if (!m)
        return 0;
    m->http = ag_metrics_http_start(m->h->opts.metrics_listen, m->reg, err);
    return m->http ? 0 : -1;
}

int hub_metrics_port(const struct hub_metrics *m)
{
    return m && m->http ? ag_metrics_http_port(m->http) : 0;
}

void hub_metrics_stop(struct hub_metrics *m)
{
    if (!m)
        return;
    ag_metrics_http_stop(m->http);
    m->http = NULL;
}

void hub_metrics_free(struct hub_metrics *m)
{
    if (!m)
        return;
    ag_metrics_http_stop(m->http);
    ag_metrics_free(m->reg);
    free(m->method_names);
    free(m->call_series);
    free(m->latency);
    free(m);
}

void hub_metrics_retention_deleted(struct hub_metrics *m, uint64_t n)
{
    if (m)
        ag_metrics_add(m->retention_deleted, (int64_t)n);
}

void hub_metrics_retention_swept(struct hub_metrics *m, int64_t unix_s)
{
    if (m)
        ag_metrics_set(m->retention_swept, unix_s);
}

struct ag_metric *hub_metrics_commit_seconds(struct hub_metrics *m)
{
    return m ? m->commit_seconds : NULL;
}

struct ag_metric *hub_metrics_commit_writes(struct hub_metrics *m)
{
    return m ? m->commit_writes : NULL;
}
