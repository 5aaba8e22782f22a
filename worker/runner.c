/* worker/runner.c - the runner: a fixed pool of threads, the ready queue and the run table.
 *
 * Owns: the pool threads, the ready queue of runs that can make progress, the run table
 * (agent id -> its run), the conversations kept between turns (worker/warm.h), the provider and
 * tool options (parsed at start, read-only after) and one provider instance per provider row,
 * created on first use.
 * The turn itself is worker/run.c, which this file calls only through worker/run.h; the run
 * calls back only through the host table below (runner_host), never a function here by name.
 *
 * Threads and locks:
 *   table_mu     guards the run table
 *   queue_mu     guards the ready queue and stopping; queue_cv wakes pool threads
 *   providers_mu guards providers[]
 *   limits_mu    guards max_payload, max_event
 * Lock order: a run's lock, then queue_mu (host_ready is called under the run's lock); table_mu
 * is never held while calling a run function that takes the run's lock: lookups take a
 * reference and let go first, so a slow emit() on one run never stalls the table (see run.h).
 * emit() is called with the emitting run's lock held, so it must not call back into the
 * runner.
 *
 * The ready queue (an ag_queue, for its depth gauge "runner.ready") needs no bound of its own: a
 * run is in it at most once, and the hub gives a node at most its registered capacity of runs.
 *
 * Shutdown: wk_runner_free cancels every run, joins the threads and then settles the queue. A
 * run still waiting on a model or tool is not waited for: it is cancelled, so its callback (run
 * by the timer thread, or by ag_timers_free) frees it without touching the freed runner. */
#include "worker/runner.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/map.h"
#include "common/timers.h"
#include "common/workpool.h"
#include "common/xalloc.h"
#include "worker/config.h"
#include "worker/http.h"
#include "worker/model.h"
#include "worker/price.h"
#include "worker/run.h"
#include "worker/tool.h"
#include "worker/tool_ext.h"
#include "worker/warm.h"
#include "worker/workspace.h"

#define WK_RUNNER_DEFAULT_THREADS 2
/* The tool pool (wk_runner_opts.tool_threads) and the calls that may wait for it. */
#define WK_RUNNER_TOOL_THREADS 8
#define WK_RUNNER_TOOL_QUEUE 1024

struct wk_runner {
    wk_emit_fn *emit;
    wk_room_fn *room; /* NULL: always room */
    wk_released_fn *released;
    void *emit_ctx;
    struct ag_timers *timers;     /* borrowed from opts */
    struct wk_hub_link *hub;      /* borrowed from opts, may be NULL */
    struct wk_configs configs;    /* read-only after wk_runner_new */
    struct wk_prices prices;      /* read-only after wk_runner_new */
    char *workspace_root;         /* owned, NULL: none */
    struct ag_workpool *workpool; /* owned: threads for blocking tool work (files, processes) */
    struct wk_http *http;         /* owned: the node's HTTP client, for models and http_request */
    struct wk_tool_ext *ext;      /* owned: specs' MCP servers and OpenAPI tools */
    const struct wk_sandbox *sandbox; /* borrowed from opts, may be NULL */
    const struct wk_policy *policy;   /* borrowed from opts, may be NULL */
    uint32_t default_max_iterations;
    int64_t default_turn_timeout_ms;
    int64_t delta_interval_ms;
    struct wk_warm *warm; /* thread-safe on its own */

    pthread_mutex_t providers_mu;
    struct wk_provider **providers; /* owned; one slot per row of wk_model_providers */
    size_t nproviders;

    pthread_mutex_t limits_mu;
    size_t max_payload, max_event;

    pthread_mutex_t queue_mu;
    pthread_cond_t queue_cv;
    struct ag_queue ready; /* of wk_run__qnode, each holding its run's token */
    bool stopping;
    pthread_t *threads; /* owned */
    unsigned nthreads;

    pthread_mutex_t table_mu;
    struct ag_map table; /* agent id (the run's own) -> run; each entry holds a reference */
};

/* --- the run table ------------------------------------------------------------------------ */

/* Under table_mu. false if the agent already has a run. */
static bool table_insert(struct wk_runner *r, struct wk_run *run)
{
    const char *agent_id = wk_run__agent_id(run);
    if (ag_map_get(&r->table, agent_id))
        return false;
    ag_map_put(&r->table, agent_id, run);
    wk_run__ref(run);
    return true;
}

/* Under table_mu. The run of agent_id with that epoch, removed; its reference passes to the
 * caller. NULL if none. */
static struct wk_run *table_take(struct wk_runner *r, const char *agent_id, uint64_t epoch)
{
    struct wk_run *run = ag_map_get(&r->table, agent_id);
    if (!run || wk_run__epoch(run) != epoch)
        return NULL;
    ag_map_del(&r->table, agent_id);
    return run;
}

/* wk_run_host.finished: the run leaves the table if it is still there. */
static bool host_finished(void *ctx, struct wk_run *run)
{
    struct wk_runner *r = ctx;
    const char *agent_id = wk_run__agent_id(run);
    pthread_mutex_lock(&r->table_mu);
    bool found = ag_map_get(&r->table, agent_id) == run;
    if (found)
        ag_map_del(&r->table, agent_id);
    pthread_mutex_unlock(&r->table_mu);
    return found;
}

/* wk_run_host.released: as finished, then the hub hears of it. */
static bool host_released(void *ctx, struct wk_run *run)
{
    struct wk_runner *r = ctx;
    if (!host_finished(ctx, run))
        return false;
    if (r->released)
        r->released(r->emit_ctx, wk_run__agent_id(run), wk_run__epoch(run));
    return true;
}

/* --- the ready queue and the pool ---------------------------------------------------------- */

static void ready_push(struct wk_runner *r, struct wk_run *run)
{
    pthread_mutex_lock(&r->queue_mu);
    /* Never refused: the run hands over its token, and a refusal would lose the run. */
    ag_queue_push_over(&r->ready, wk_run__qnode(run), 0);
    pthread_cond_signal(&r->queue_cv);
    pthread_mutex_unlock(&r->queue_mu);
}

/* Under queue_mu. */
static struct wk_run *ready_pop(struct wk_runner *r)
{
    struct ag_qnode *n = ag_queue_pop(&r->ready);
    return n ? wk_run__from_qnode(n) : NULL;
}

static void *pool_main(void *arg)
{
    struct wk_runner *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->queue_mu);
        while (ag_queue_empty(&r->ready) && !r->stopping)
            pthread_cond_wait(&r->queue_cv, &r->queue_mu);
        struct wk_run *run = r->stopping ? NULL : ready_pop(r);
        pthread_mutex_unlock(&r->queue_mu);
        if (!run)
            return NULL;
        wk_run__step(run);
    }
}

/* --- what the runs see of the runner (worker/run.h) ------------------------------------------ */

/* wk_run_host.ready, under the run's lock. */
static void host_ready(void *ctx, struct wk_run *run)
{
    ready_push(ctx, run);
}

static int host_emit(void *ctx, uint8_t *ev, size_t len, wk_emit_done_fn *done, void *done_arg)
{
    struct wk_runner *r = ctx;
    return r->emit(r->emit_ctx, ev, len, done, done_arg);
}

static bool host_room(void *ctx, wk_wake_fn *wake, void *arg)
{
    struct wk_runner *r = ctx;
    return !r->room || r->room(r->emit_ctx, wake, arg);
}

static void host_keep(void *ctx, const char *agent_id, uint64_t epoch, struct wk_msg *msgs,
                      size_t n, size_t bytes)
{
    struct wk_runner *r = ctx;
    wk_warm_put(r->warm, agent_id, epoch, msgs, n, bytes);
}

static const struct wk_run_host runner_host = {
    .ready = host_ready,
    .finished = host_finished,
    .emit = host_emit,
    .room = host_room,
    .keep = host_keep,
    .released = host_released,
};

/* What a new run gets: the runner as its host, the options and the hub's current limits. */
static struct wk_run_opts run_opts(struct wk_runner *r, struct wk_provider *p,
                                   const struct wk_config *model_config)
{
    struct wk_run_opts o = {
        .host = &runner_host,
        .host_ctx = r,
        .provider = p,
        .model_config = model_config,
        .tool_configs = r->configs.tools,
        .configs = &r->configs,
        .timers = r->timers,
        .hub = r->hub,
        .prices = &r->prices,
        .workspace_root = r->workspace_root,
        .workpool = r->workpool,
        .sandbox = r->sandbox,
        .policy = r->policy,
        .http = r->http,
        .default_max_iterations = r->default_max_iterations,
        .default_turn_timeout_ms = r->default_turn_timeout_ms,
        .delta_interval_ms = r->delta_interval_ms,
        .ext = r->ext,
    };
    pthread_mutex_lock(&r->limits_mu);
    o.max_payload = r->max_payload;
    o.max_event = r->max_event;
    pthread_mutex_unlock(&r->limits_mu);
    return o;
}

void wk_runner_set_limits(struct wk_runner *r, size_t max_payload, size_t max_event)
{
    pthread_mutex_lock(&r->limits_mu);
    r->max_payload = max_payload;
    r->max_event = max_event;
    pthread_mutex_unlock(&r->limits_mu);
}

/* --- providers ------------------------------------------------------------------------------ */

static struct wk_provider *provider_get(struct wk_runner *r, const struct wk_provider_row *row,
                                        struct ag_err *err)
{
    size_t i = (size_t)(row - wk_model_providers);
    pthread_mutex_lock(&r->providers_mu);
    if (!r->providers[i]) {
        struct wk_provider_ctx ctx = {
            .timers = r->timers, .config = &r->configs.models[i], .http = r->http};
        r->providers[i] = row->create(&ctx, err);
    }
    struct wk_provider *p = r->providers[i];
    pthread_mutex_unlock(&r->providers_mu);
    return p;
}

/* "mock, openai" for error messages. */
static void provider_names(char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (const struct wk_provider_row *row = wk_model_providers; row->name && off < size; row++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", row->name);
}

/* --- lifecycle ---------------------------------------------------------------------------- */

static void runner_stop_threads(struct wk_runner *r)
{
    pthread_mutex_lock(&r->queue_mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->queue_cv);
    pthread_mutex_unlock(&r->queue_mu);
    for (unsigned i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    r->nthreads = 0;
}

static void runner_release(struct wk_runner *r)
{
    wk_tool_ext_stop(r->ext);
    ag_workpool_free(r->workpool);
    wk_http_free(r->http);
    wk_tool_ext_free(r->ext);
    for (size_t i = 0; i < r->nproviders; i++)
        if (r->providers[i])
            r->providers[i]->free(r->providers[i]);
    free(r->providers);
    free(r->threads);
    wk_warm_free(r->warm);
    ag_map_release(&r->table);
    wk_configs_release(&r->configs);
    wk_prices_release(&r->prices);
    free(r->workspace_root);
    pthread_mutex_destroy(&r->providers_mu);
    pthread_mutex_destroy(&r->limits_mu);
    pthread_mutex_destroy(&r->queue_mu);
    pthread_cond_destroy(&r->queue_cv);
    pthread_mutex_destroy(&r->table_mu);
    free(r);
}

struct wk_runner *wk_runner_new(const struct wk_runner_opts *o, struct ag_err *err)
{
    if (!o || !o->emit || !o->timers) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot create the runner: no emit or timers");
        return NULL;
    }
    struct wk_configs configs = {0};
    if (wk_configs_parse(&configs, o->model_opts, o->nmodel_opts, o->tool_opts, o->ntool_opts,
                         err) != 0)
        return NULL;
    struct wk_prices prices = {0};
    if (wk_prices_parse(&prices, o->prices, o->nprices, err) != 0) {
        wk_configs_release(&configs);
        return NULL;
    }
    struct wk_runner *r = ag_xcalloc(1, sizeof(*r));
    r->configs = configs;
    r->prices = prices;
    r->workspace_root = o->workspace_root && *o->workspace_root ? ag_xstrdup(o->workspace_root)
                                                                : NULL;
    r->default_max_iterations = o->default_max_iterations;
    r->default_turn_timeout_ms = o->default_turn_timeout_ms;
    r->delta_interval_ms = o->delta_interval_ms;
    r->emit = o->emit;
    r->room = o->room;
    r->released = o->released;
    r->emit_ctx = o->emit_ctx;
    r->timers = o->timers;
    r->hub = o->hub;
    r->sandbox = o->sandbox;
    r->policy = o->policy;
    r->warm = wk_warm_new(o->keep_bytes);
    while (wk_model_providers[r->nproviders].name)
        r->nproviders++;
    r->providers = ag_xcalloc(r->nproviders, sizeof(*r->providers));
    ag_map_init(&r->table);
    pthread_mutex_init(&r->providers_mu, NULL);
    pthread_mutex_init(&r->limits_mu, NULL);
    r->max_payload = r->max_event = SIZE_MAX;
    pthread_mutex_init(&r->queue_mu, NULL);
    ag_queue_init(&r->ready, "runner.ready", 0, 0);
    pthread_cond_init(&r->queue_cv, NULL);
    pthread_mutex_init(&r->table_mu, NULL);
    /* Each running shell holds a pool thread for its whole run; file work is short. */
    r->workpool = ag_workpool_new(o->tool_threads ? o->tool_threads : WK_RUNNER_TOOL_THREADS,
                                  WK_RUNNER_TOOL_QUEUE, err);
    if (!r->workpool || !(r->http = wk_http_new(err))) {
        runner_release(r);
        return NULL;
    }
    r->ext = wk_tool_ext_new(r->http, r->workpool, r->sandbox, r->configs.mcp);

    unsigned want = o->threads ? o->threads : WK_RUNNER_DEFAULT_THREADS;
    r->threads = ag_xcalloc(want, sizeof(*r->threads));
    for (; r->nthreads < want; r->nthreads++) {
        int rc = pthread_create(&r->threads[r->nthreads], NULL, pool_main, r);
        if (rc != 0) {
            ag_err_set(err, AG_RESOURCE_EXHAUSTED, "cannot start runner thread %u of %u: %s",
                       r->nthreads + 1, want, strerror(rc));
            runner_stop_threads(r);
            runner_release(r);
            return NULL;
        }
    }
    return r;
}

void wk_runner_free(struct wk_runner *r)
{
    if (!r)
        return;
    wk_runner_cancel_all(r);
    runner_stop_threads(r);
    /* MCP processes are stopped (their calls end, finding their runs cancelled) while the pool
     * and the HTTP client are still up for what a listing still has in flight. */
    wk_tool_ext_stop(r->ext);
    /* After the cancel (a running shell is killed by it) and before the node's timers go: the
     * pool runs what is queued, whose completions find their runs cancelled and drop them. */
    ag_workpool_free(r->workpool);
    r->workpool = NULL;
    /* A provider's retry timer that fired before the cancel may be starting its request right
     * now: once the timers are flushed it has, and every later one sees its call cancelled and
     * starts nothing. Then the client ends the requests still in flight (their cancel was posted
     * above) with CANCELLED, before the providers whose calls they are go (runner_release). */
    ag_timers_flush(r->timers);
    wk_http_free(r->http);
    r->http = NULL;
    /* Every queued run is cancelled by now: stepping it just drops it. */
    for (;;) {
        pthread_mutex_lock(&r->queue_mu);
        struct wk_run *run = ready_pop(r);
        pthread_mutex_unlock(&r->queue_mu);
        if (!run)
            break;
        wk_run__step(run);
    }
    runner_release(r);
}

/* --- the API ------------------------------------------------------------------------------ */

int wk_runner_assign(struct wk_runner *r, const Agentry__V1__Assignment *a, struct ag_err *err)
{
    if (!a || !a->agent_id || !*a->agent_id)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot start a turn: no agent id given");
    const char *model = a->spec && a->spec->model ? a->spec->model : "";
    const struct wk_provider_row *row = wk_model_find(model, NULL);
    if (!row) {
        char names[128];
        provider_names(names, sizeof(names));
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "unknown model provider in '%s' for agent '%s'; this node has: %s", model,
                          a->agent_id, names);
    }
    struct wk_provider *p = provider_get(r, row, err);
    if (!p) {
        ag_err_prefix(err, "agent '%s'", a->agent_id);
        return -1;
    }
    struct wk_run_opts o = run_opts(r, p, &r->configs.models[row - wk_model_providers]);
    if (a->state_epoch &&
        !wk_warm_take(r->warm, a->agent_id, a->state_epoch, &o.warm, &o.nwarm, &o.warm_bytes))
        return ag_err_set(err, AG_NOT_FOUND,
                          "agent '%s' (epoch %" PRIu64 "): this node no longer keeps its "
                          "conversation as of epoch %" PRIu64 "; asking the hub for it",
                          a->agent_id, a->epoch, a->state_epoch);
    struct wk_run *run = wk_run__new(a, &o);
    pthread_mutex_lock(&r->table_mu);
    /* The hub's newest epoch is the truth: a run it has moved on from (its Cancel may still be
     * on the way) gives way rather than block the agent. */
    struct wk_run *old = ag_map_get(&r->table, a->agent_id);
    old = old && wk_run__epoch(old) < a->epoch ? table_take(r, a->agent_id, wk_run__epoch(old))
                                               : NULL;
    bool inserted = table_insert(r, run);
    pthread_mutex_unlock(&r->table_mu);
    if (old) {
        ag_log_info("run.replaced", "agent=%s epoch=%" PRIu64 " by_epoch=%" PRIu64,
                    wk_run__agent_id(old), wk_run__epoch(old), a->epoch);
        wk_run__cancel(old);
        wk_run__unref(old); /* the table's reference; the token holder drops the other */
    }
    if (!inserted) {
        wk_run__unref(run);
        return ag_err_set(err, AG_ALREADY_EXISTS,
                          "cannot start a turn for agent '%s' (epoch %" PRIu64
                          "): it already has a turn running on this node",
                          a->agent_id, a->epoch);
    }
    ag_log_info("run.started",
                "agent=%s epoch=%" PRIu64 " model=%s inputs=%zu steps=%zu kept_state=%s",
                a->agent_id, a->epoch, ag_log_q(wk_run__model(run)), a->n_inputs, a->n_steps,
                a->state_epoch ? "yes" : "no");
    ready_push(r, run);
    return 0;
}

void wk_runner_reject(struct wk_runner *r, const Agentry__V1__Assignment *a, const char *why)
{
    if (!a || !a->agent_id)
        return;
    struct wk_run_opts o = run_opts(r, NULL, NULL);
    wk_run__reject(a, &o, why);
}

/* The run of agent_id at epoch, with a reference the caller drops; NULL if none. */
static struct wk_run *table_find(struct wk_runner *r, const char *agent_id, uint64_t epoch)
{
    pthread_mutex_lock(&r->table_mu);
    struct wk_run *run = ag_map_get(&r->table, agent_id);
    if (run && wk_run__epoch(run) == epoch)
        wk_run__ref(run);
    else
        run = NULL;
    pthread_mutex_unlock(&r->table_mu);
    return run;
}

int wk_runner_deliver(struct wk_runner *r, const char *agent_id, uint64_t epoch, uint64_t seq,
                      const char *text, struct ag_err *err)
{
    if (!agent_id)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot deliver input: no agent id given");
    struct wk_run *run = table_find(r, agent_id, epoch);
    if (!run)
        return ag_err_set(err, AG_NOT_FOUND,
                          "cannot deliver input %" PRIu64
                          " to agent '%s': no turn with epoch %" PRIu64 " runs on this node",
                          seq, agent_id, epoch);
    int rc = wk_run__deliver(run, seq, text, err);
    wk_run__unref(run);
    return rc;
}

bool wk_runner_release(struct wk_runner *r, const char *agent_id, uint64_t epoch)
{
    if (!agent_id)
        return false;
    struct wk_run *run = table_find(r, agent_id, epoch);
    if (!run)
        return false;
    wk_run__release(run);
    wk_run__unref(run);
    return true;
}

void wk_runner_cancel(struct wk_runner *r, const char *agent_id, uint64_t epoch)
{
    if (!agent_id)
        return;
    pthread_mutex_lock(&r->table_mu);
    struct wk_run *run = table_take(r, agent_id, epoch);
    pthread_mutex_unlock(&r->table_mu);
    if (!run)
        return;
    wk_run__cancel(run);
    wk_run__unref(run); /* the table's reference; the token holder drops the other */
}

/* --- deleted agents (node.proto, Forget) and the workspaces listing ---------------------------- */

struct forget_job {
    struct wk_runner *r;
    char **ids; /* owned */
    size_t n;
};

static void forget_run(void *arg)
{
    struct forget_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        bool warm = wk_warm_forget(j->r->warm, j->ids[i]);
        wk_tool_ext_forget(j->r->ext, j->ids[i]); /* its MCP servers hold its workspace open */
        bool found = false;
        uint64_t bytes = 0;
        struct ag_err err = AG_ERR_INIT;
        int rc = j->r->workspace_root
                     ? wk_workspace_remove(j->r->workspace_root, j->ids[i], &found, &bytes, &err)
                     : 0;
        if (rc != 0)
            ag_log_warn("node.workspace_remove_failed", "agent=%s err=%s", j->ids[i],
                        ag_log_q(err.msg));
        else if (found)
            ag_log_info("node.workspace_removed", "agent=%s bytes=%" PRIu64, j->ids[i], bytes);
        else if (warm)
            ag_log_debug("node.conversation_dropped", "agent=%s", j->ids[i]);
        free(j->ids[i]);
    }
    free(j->ids);
    free(j);
}

int wk_runner_forget(struct wk_runner *r, const char *const *ids, size_t n, struct ag_err *err)
{
    struct forget_job *j = ag_xcalloc(1, sizeof(*j));
    j->r = r;
    j->ids = ag_xcalloc(n ? n : 1, sizeof(*j->ids));
    for (size_t i = 0; i < n; i++)
        j->ids[j->n++] = ag_xstrdup(ids[i]);
    if (ag_workpool_submit(r->workpool, forget_run, j, err) == 0)
        return 0;
    for (size_t i = 0; i < j->n; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j);
    return -1;
}

struct list_job {
    struct wk_runner *r;
    wk_runner_ids_fn *fn;
    void *arg;
};

static void list_run(void *arg)
{
    struct list_job *j = arg;
    char **ids = NULL;
    size_t n = 0;
    struct ag_err err = AG_ERR_INIT;
    if (wk_workspace_list(j->r->workspace_root, &ids, &n, &err) != 0)
        ag_log_warn("node.workspaces_unlisted", "err=%s", ag_log_q(err.msg));
    j->fn(j->arg, ids, n);
    free(j);
}

int wk_runner_list_workspaces(struct wk_runner *r, wk_runner_ids_fn *fn, void *arg,
                              struct ag_err *err)
{
    if (!r->workspace_root)
        return 0;
    struct list_job *j = ag_xmalloc(sizeof(*j));
    *j = (struct list_job){r, fn, arg};
    if (ag_workpool_submit(r->workpool, list_run, j, err) == 0)
        return 0;
    free(j);
    return -1;
}

void wk_runner_cancel_all(struct wk_runner *r)
{
    pthread_mutex_lock(&r->table_mu);
    size_t n = 0;
    struct wk_run **all = ag_xcalloc(ag_map_len(&r->table) + 1, sizeof(*all));
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&r->table, &it, NULL, &v);)
        all[n++] = v;
    /* The references pass to `all`; the emptied table keeps its memory for the next runs. */
    for (size_t i = 0; i < n; i++)
        ag_map_del(&r->table, wk_run__agent_id(all[i]));
    pthread_mutex_unlock(&r->table_mu);
    for (size_t i = 0; i < n; i++) {
        wk_run__cancel(all[i]);
        wk_run__unref(all[i]);
    }
    free(all);
}

unsigned wk_runner_running(struct wk_runner *r)
{
    pthread_mutex_lock(&r->table_mu);
    unsigned n = (unsigned)ag_map_len(&r->table);
    pthread_mutex_unlock(&r->table_mu);
    return n;
}
