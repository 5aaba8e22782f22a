/* hub/otlp.h - agent steps out as OpenTelemetry spans, over OTLP/HTTP JSON, to a collector.
 *
 * The exporter observes stored events (a HUB_HOOK_EVENTS_STORED hook) and maps each agent turn
 * to one trace: a root span for the turn (INPUT or RESUMED to FINAL, YIELD, ERROR or KILLED),
 * and child spans per model call (MODEL_REQUEST..MODEL_REPLY), per tool call
 * (TOOL_CALL..TOOL_RESULT) and per approval wait (APPROVAL_REQUIRED..APPROVAL_DECIDED). The
 * trace id is derived from the agent id and the seq of the turn's first event, so a turn keeps
 * its trace id across exporter restarts. docs/observability.md has the full mapping.
 *
 * Threads: the hook runs on the store's completion thread: it copies the events into a bounded
 * queue under the exporter's lock and returns; it never blocks, never does I/O. One exporter
 * thread owns everything else (the open turns, the batch, the curl handle). A full queue drops
 * the event and counts it; failed exports are retried a bounded number of times, then dropped
 * and counted; both are logged at most once a minute (otlp.dropped). */
#ifndef AGENTRY_HUB_OTLP_H
#define AGENTRY_HUB_OTLP_H

#include "common/err.h"
#include "hub/hooks.h"

struct hub_otlp;

/* endpoint: the collector's base URL ("http://127.0.0.1:4318"); spans go to endpoint/v1/traces.
 * Starts the exporter thread. -1 with INVALID_ARGUMENT for a URL that is not http(s). */
struct hub_otlp *hub_otlp_new(const char *endpoint, struct ag_err *err);
/* The hook to register for HUB_HOOK_EVENTS_STORED, with the exporter as its arg. */
hub_hook_fn hub_otlp_hook;
/* Export what is queued (waiting at most a few seconds for the collector), stop the thread,
 * free. NULL is a no-op. After the store has drained: no hook runs any more. */
void hub_otlp_free(struct hub_otlp *x);

#endif
