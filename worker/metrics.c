/* worker/metrics.c - the node's Prometheus series (see metrics.h and docs/metrics.md).
 *
 * The families live in one static struct, set by wk_metrics_start before any turn runs and
 * cleared by wk_metrics_stop after the last: while unset, every family pointer is NULL and the
 * common/metrics.h updates do nothing. */
#include "worker/metrics.h"

#include <stdatomic.h>
#include <stddef.h>

#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/queue.h"
#include "common/xalloc.h"

static struct node_metrics {
    struct ag_metrics *reg;
    struct ag_metrics_http *http;
    /* The running turns' source, set once the runner is made, read by scrapes. The node's
     * connection passes it in, so the metrics know no runner (worker/runner.h includes them). */
    _Atomic(wk_metrics_count_fn *) running_fn;
    _Atomic(void *) running_arg;
    struct ag_metric *running;
    struct ag_metric_family *model_calls, *model_tokens, *model_seconds;
    struct ag_metric_family *tool_calls, *tool_seconds, *sandbox_kills;
} m;

/* Model replies take from tens of milliseconds to minutes. */
static const double model_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                       2.5,  5,     10,   30,  60,   120};
/* Tools run from microseconds (echo) to minutes (a build in the shell). */
static const double tool_buckets[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                                      0.5,    1,      5,     10,    30,   60,   300};

static void scrape(void *arg)
{
    (void)arg;
    wk_metrics_count_fn *fn = atomic_load(&m.running_fn);
    ag_metrics_set(m.running, fn ? (int64_t)fn(atomic_load(&m.running_arg)) : 0);
}

int wk_metrics_start(const char *listen, struct ag_err *err)
{
    if (m.reg)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "this process already serves node metrics");
    struct ag_metrics *reg = ag_metrics_new();
    m.running = ag_metrics_at(ag_metrics_gauge(reg, "agentry_node_running_turns",
                                               "Agent turns running on this node.", NULL),
                              NULL);
    m.model_calls = ag_metrics_counter(reg, "agentry_model_calls_total",
                                       "Model calls ended, by model and outcome (ok or error).",
                                       (const char *[]){"model", "outcome", NULL});
    m.model_tokens = ag_metrics_counter(reg, "agentry_model_tokens_total",
                                        "Tokens the models counted, by model and type (input or "
                                        "output).",
                                        (const char *[]){"model", "type", NULL});
    m.model_seconds = ag_metrics_histogram(
        reg, "agentry_model_call_seconds", "Time from a model request to its reply, by model.",
        (const char *[]){"model", NULL}, model_buckets, AG_ARRAY_SIZE(model_buckets), 1e-9);
    m.tool_calls = ag_metrics_counter(reg, "agentry_tool_calls_total",
                                      "Tool calls ended, by tool and outcome (ok or error).",
                                      (const char *[]){"tool", "outcome", NULL});
    m.tool_seconds = ag_metrics_histogram(
        reg, "agentry_tool_call_seconds", "Time a tool took to produce its result, by tool.",
        (const char *[]){"tool", NULL}, tool_buckets, AG_ARRAY_SIZE(tool_buckets), 1e-9);
    m.sandbox_kills = ag_metrics_counter(
        reg, "agentry_sandbox_kills_total",
        "Programs the sandbox killed, by reason (wall, output, cancelled or memory).",
        (const char *[]){"reason", NULL});
    ag_queue_metrics_add(reg);
    ag_metrics_add_process(reg);
    ag_metrics_on_scrape(reg, scrape, NULL);
    m.http = ag_metrics_http_start(listen, reg, err);
    if (!m.http) {
        m = (struct node_metrics){0};
        ag_metrics_free(reg);
        return -1;
    }
    m.reg = reg;
    return 0;
}

void wk_metrics_set_running(wk_metrics_count_fn *fn, void *arg)
{
    if (!m.reg)
        return;
    atomic_store(&m.running_arg, arg);
    atomic_store(&m.running_fn, fn);
}

int wk_metrics_port(void)
{
    return m.http ? ag_metrics_http_port(m.http) : 0;
}

void wk_metrics_unserve(void)
{
    ag_metrics_http_stop(m.http);
    m.http = NULL;
}

void wk_metrics_stop(void)
{
    if (!m.reg)
        return;
    ag_metrics_http_stop(m.http);
    struct ag_metrics *reg = m.reg;
    m = (struct node_metrics){0};
    ag_metrics_free(reg);
}

void wk_metrics_model_call(const char *model, int64_t ns, bool ok, uint64_t input_tokens,
                           uint64_t output_tokens)
{
    if (!m.reg)
        return;
    ag_metrics_inc(ag_metrics_at(m.model_calls, (const char *[]){model, ok ? "ok" : "error"}));
    ag_metrics_observe(ag_metrics_at(m.model_seconds, (const char *[]){model}),
                       ns > 0 ? (uint64_t)ns : 0);
    if (input_tokens)
        ag_metrics_add(ag_metrics_at(m.model_tokens, (const char *[]){model, "input"}),
                       (int64_t)input_tokens);
    if (output_tokens)
        ag_metrics_add(ag_metrics_at(m.model_tokens, (const char *[]){model, "output"}),
                       (int64_t)output_tokens);
}

void wk_metrics_tool_call(const char *tool, int64_t ns, bool error)
{
    if (!m.reg)
        return;
    ag_metrics_inc(ag_metrics_at(m.tool_calls, (const char *[]){tool, error ? "error" : "ok"}));
    if (ns >= 0)
        ag_metrics_observe(ag_metrics_at(m.tool_seconds, (const char *[]){tool}), (uint64_t)ns);
}

void wk_metrics_sandbox_kill(const char *reason)
{
    if (m.reg)
        ag_metrics_inc(ag_metrics_at(m.sandbox_kills, (const char *[]){reason}));
}
