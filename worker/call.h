/* worker/call.h - what a model or tool call gets besides its request: the call context.
 *
 * The runner builds one per call. A provider's chat() and a tool's run() may keep the pointers
 * inside it (not the struct itself) until they call done().
 *
 * The rules every provider and tool keeps, beyond "done() exactly once, never inside the call":
 *   cancel    when ctx->cancel is requested (worker/cancel.h), finish soon: done() with
 *             AG_CANCELLED (provider) or an is_error output saying so (tool). Still exactly once.
 *   deadline  when ctx->deadline_ms (CLOCK_MONOTONIC, as ag_now_mono_ms) passes, finish with
 *             AG_DEADLINE_EXCEEDED (provider) or an is_error output saying so (tool). 0: none.
 *   config    ctx->config holds the row's options (worker/config.h), checked at start.
 * wk_call_after implements all three for calls that complete on a timer (mock, echo). */
#ifndef AGENTRY_WORKER_CALL_H
#define AGENTRY_WORKER_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/cancel.h"
#include "worker/config.h"

struct ag_timers;
struct ag_workpool;
struct wk_http;
struct wk_hub_link;
struct wk_run_spec;
struct wk_sandbox;

struct wk_call_ctx {
    struct ag_timers *timers;       /* borrowed: the node's timer thread */
    const struct wk_config *config; /* borrowed: this provider's or tool's options, never NULL */
    struct wk_cancel *cancel;       /* borrowed, valid until done(); NULL: never cancelled */
    int64_t deadline_ms;            /* ag_now_mono_ms() time; 0: none */
    /* The node's shared services, borrowed; NULL where a test or host does not offer one (a
     * call that needs it then fails to start with FAILED_PRECONDITION). */
    struct wk_http *http;         /* the node's HTTP client (worker/http.h) */
    struct ag_workpool *workpool; /* threads for blocking work: files, processes */
    /* Tools only (NULL for model calls): */
    const char *agent_id;      /* the agent the call is for */
    const char *workspace;     /* the agent's workspace directory, created before the call; NULL:
                                  the node gives agents none (file tools and shell refuse) */
    const char *settings_json; /* the spec's settings for this tool (AgentSpec.tool_settings), a
                                  JSON object's text; NULL: none */
    uint64_t epoch;            /* the turn's epoch */
    const char *call_id;       /* the model's id for this tool call */
    struct wk_hub_link *hub;   /* the node's stream to the hub, for hub tools
                                  (worker/hub_call.h); NULL: none */
    const struct wk_sandbox *sandbox; /* the node's executor for programs (worker/sandbox.h);
                                         NULL: none, only privileged commands run */
    bool *waits; /* wait_agent sets *waits before done() when the hub said the turn
                                  must wait for sub-agents (types.proto EVENT_KIND_WAITING): its
                                  output then is the hub's {"agents": [...]} */
    /* For a tool that depends on another row's options or settings (the memory tools: the
     * embedding model of memory_search, a provider's base_url and key); NULL: none. */
    const struct wk_run_spec *spec;   /* the agent's spec (worker/run_spec.h) */
    const struct wk_configs *configs; /* the node's options of every provider and tool */
};

/* code: AG_OK when delay_ms passed, AG_CANCELLED when ctx->cancel came first,
 * AG_DEADLINE_EXCEEDED when ctx->deadline_ms came first. */
typedef void wk_call_fire_fn(void *arg, enum ag_code code);
/* Call fire(arg, code) exactly once on the timer thread, never inside wk_call_after: after
 * delay_ms, or as soon as the call is cancelled, or at its deadline, whichever comes first. The
 * cancel listener is gone before fire runs, so fire may call done(). */
void wk_call_after(const struct wk_call_ctx *ctx, int64_t delay_ms, wk_call_fire_fn *fire,
                   void *arg);

#endif
