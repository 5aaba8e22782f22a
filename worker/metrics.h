/* worker/metrics.h - the node's Prometheus series (docs/metrics.md), served on --metrics-listen:
 * running turns, model calls, tokens and latency by model, tool calls by tool and outcome with
 * their latency, sandbox kills by reason, and the process's own series.
 *
 * One set per process, like the process it describes: wk_metrics_start registers it and serves
 * it; the wk_metrics_* updates are no-ops until then (and after wk_metrics_stop), so the agent
 * loop and the sandbox call them unconditionally. A process that embeds several nodes (tests)
 * starts metrics for at most one.
 *
 * Threads: updates from any thread, as atomics (a model or tool name seen for the first time
 * takes its family's lock once); start and stop from the thread that makes and frees the node,
 * while no turn runs. Model and tool names are labels: each family keeps at most
 * AG_METRICS_MAX_SERIES of them and counts the rest as "other". */
#ifndef AGENTRY_WORKER_METRICS_H
#define AGENTRY_WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Serve on listen ("127.0.0.1:9465"). -1 with err (UNAVAILABLE naming the address) if it
 * cannot be bound, or FAILED_PRECONDITION if this process already serves node metrics. */
int wk_metrics_start(const char *listen, struct ag_err *err);
/* Running turns are fn(arg) at each scrape from now on (until wk_metrics_unserve); fn may be
 * called from the HTTP server's thread. A no-op when not started. */
typedef size_t wk_metrics_count_fn(void *arg);
void wk_metrics_set_running(wk_metrics_count_fn *fn, void *arg);
/* The bound port; 0 when not serving. */
int wk_metrics_port(void);
/* Stop serving (no scrape reads the runner after it returns); the series still count. */
void wk_metrics_unserve(void);
/* Stop serving and forget every series, once no turn runs. A no-op when not started. */
void wk_metrics_stop(void);

/* A model call ended: ok with the tokens its reply counted, or failed (no reply). */
void wk_metrics_model_call(const char *model, int64_t ns, bool ok, uint64_t input_tokens,
                           uint64_t output_tokens);
/* A tool call ended with a result; ns < 0 when it never ran (refused, or unknown). */
void wk_metrics_tool_call(const char *tool, int64_t ns, bool error);
/* The sandbox killed a program: "wall" (its time limit), "output" (its output limit),
 * "cancelled" (its turn was) or "memory" (the kernel OOM-killed it in its cgroup). */
void wk_metrics_sandbox_kill(const char *reason);

#endif
