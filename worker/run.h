/* worker/run.h - the contract between a run (one agent turn: worker/run.c, its events built by
 * worker/run_event.c) and the host that runs it (worker/runner.c: the pool, the ready queue, the
 * run table).
 *
 * A run never calls its host by name: it gets a table of functions (struct wk_run_host) and plain
 * data (struct wk_run_opts) at creation, and the host calls the run only through the functions
 * below. The turn itself is described in worker/runner.h.
 *
 * The token. At any moment exactly one party owns a run's turn state: the host's ready queue, the
 * pool thread that popped it, or the single outstanding model/tool callback. Only the owner
 * touches the turn state (wk_run__step is called by the token holder), which is how a run belongs
 * to one thread at a time without a lock on its conversation. Whoever holds the token hands it on
 * (queue -> thread -> callback -> queue) and never touches the turn state after handing it on.
 *
 * Lifetime. refs counts the host's table entry (while the run is in the table) plus the token
 * plus short lookups (deliver). The last unref frees the run. Freeing never touches the host, so a
 * callback that arrives after the host is gone (ag_timers_free runs pending timers) is safe.
 *
 * Parking. A run gives its token away and holds no thread while it waits: to the provider or
 * tool (a completion callback), to the host's room() (back-pressure, checked before each step)
 * or to an event's completion (a TOOL_CALL or TOOL_RESULT handed to emit() with a done callback:
 * steps are durable one by one, see worker/run.c). Each wake-up hands the token back to the host through ready(), as a completion
 * callback does (run.c, run_resume).
 *
 * Cancellation. A run's cancelled flag is set under its lock and never cleared. A callback hands
 * its run to ready() only under that lock and only if not cancelled, and every emit() happens
 * under that lock after the same check: once wk_run__cancel returns, the run emits nothing and
 * never calls its host again.
 *
 * Lock order: the run's lock, then the host's lock taken in ready() (the runner's queue lock), or
 * then the emit sink's lock (emit() is called under the run's lock). The cancel handle's lock is
 * taken with no run lock held (wk_run__cancel lets go of the run's lock first), and the cancel
 * listener under it takes only the timers' lock. A host never holds one of its own locks while
 * calling a function here that takes the run's lock (deliver, cancel, step): the runner's table
 * lookups take a reference and let go first, so a slow emit() on one run never stalls the table.
 *
 * Threads: wk_run__step by the token holder only; deliver, cancel, ref, unref and the getters
 * from any thread. */
#ifndef AGENTRY_WORKER_RUN_H
#define AGENTRY_WORKER_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "common/queue.h"
#include "worker/config.h"
#include "worker/emit.h"
#include "worker/model.h"

struct wk_run;
struct ag_timers;
struct ag_workpool;
struct wk_sandbox;
struct wk_policy;
struct wk_http;
struct wk_hub_link;
struct wk_prices;
struct wk_tool_ext;

/* What a run needs from its host. ctx is wk_run_opts.host_ctx. The run calls none of these
 * once it was cancelled (see Cancellation above). */
struct wk_run_host {
    /* The run can make progress: queue it for a thread that will call wk_run__step. The token
     * passes to the host. Called with the run's lock held: must not call into the run. */
    void (*ready)(void *ctx, struct wk_run *run);
    /* The turn is ending: take the run out of the host's table if it is still there. true: the
     * caller now holds the reference the table held; false: a cancel took it (the turn then ends
     * silently). Called by the token holder with no run lock held. */
    bool (*finished)(void *ctx, struct wk_run *run);
    /* Hand an event to the emit sink (worker/emit.h, wk_emit_fn). Called with the run's lock
     * held. */
    wk_emit_fn *emit;
    /* Whether the emit queues have room (worker/emit.h, wk_room_fn); false: wake(arg) has the
     * token. Called by the token holder with no run lock held. */
    wk_room_fn *room;
    /* The turn ended with a checkpoint: keep the agent's conversation (takes msgs[0, n) and
     * the array; bytes: their weight) for its next turn on this node (worker/warm.h). NULL: keep
     * none. Called by the
     * token holder with no run lock held, after the turn's last event was handed on. */
    void (*keep)(void *ctx, const char *agent_id, uint64_t epoch, struct wk_msg *msgs, size_t n,
                 size_t bytes);
    /* The turn stopped at a step boundary after wk_run__release: take the run out of the
     * host's table (as finished does; same answer) and tell the hub. Called by the token holder
     * with no run lock held. */
    bool (*released)(void *ctx, struct wk_run *run);
};

/* What a run is given at creation. Everything borrowed must outlive the run's last step (the
 * runner joins its threads before it frees them): a callback arriving later finds the run
 * cancelled and touches none of it. */
struct wk_run_opts {
    const struct wk_run_host *host; /* borrowed */
    void *host_ctx;
    struct wk_provider *provider;         /* borrowed; NULL for a rejected assignment */
    const struct wk_config *model_config; /* borrowed; the provider's, NULL if no provider */
    const struct wk_config *tool_configs; /* borrowed; one per row of wk_tools */
    const struct wk_configs *configs;     /* borrowed: every provider's and tool's options */
    struct ag_timers *timers;             /* borrowed; for the model's and tools' contexts */
    struct wk_hub_link *hub;              /* borrowed; for hub tools' contexts, may be NULL */
    /* The hub's limits (wk_runner_set_limits) when the run starts: see worker/run_event.c. */
    size_t max_payload;
    size_t max_event;
    /* The conversation this node kept for the agent (Assignment.state_epoch), taken by
     * wk_run__new, and its weight (wk_warm_msgs_bytes); NULL and 0 otherwise. */
    struct wk_msg *warm;
    size_t nwarm, warm_bytes;
    /* The node's services for calls (worker/call.h), borrowed; NULL where the host has none. */
    struct wk_http *http;
    struct ag_workpool *workpool;
    const struct wk_sandbox *sandbox; /* the node's executor for programs, may be NULL */
    const struct wk_policy
        *policy; /* the node's permission policy (worker/policy.h), may be NULL */
    const struct wk_prices *prices; /* borrowed: what model tokens cost (worker/price.h) */
    /* Where agents' workspaces live: the run's is workspace_root/<agent id>, made before its
     * first tool call. NULL: agents get none. */
    const char *workspace_root;
    /* The node's defaults: model calls per turn for a spec that gives 0 (0: 10), and a turn's
     * wall-clock limit for a spec without one (0: none). */
    uint32_t default_max_iterations;
    int64_t default_turn_timeout_ms;
    /* A streamed reply's text goes out as MODEL_DELTA events at most this often (0: 200 ms). */
    int64_t delta_interval_ms;
    /* The node's MCP and OpenAPI toolsets (worker/tool_ext.h), borrowed; NULL: a spec's
     * mcp_servers and openapi bring no tools. */
    struct wk_tool_ext *ext;
};

/* A run for assignment a (copied), holding one reference (the token): the conversation is the
 * kept one (o->warm) or the checkpoint's, plus what a's steps add (worker/run_replay.h), and a's
 * inputs become user messages. The host queues it (ready) to start the turn. */
struct wk_run *wk_run__new(const Agentry__V1__Assignment *a, const struct wk_run_opts *o);
/* End the turn of an assignment that could not start with an ERROR (why; NULL: "rejected"),
 * carrying the checkpoint as it came and leaving the inputs unconsumed, so the hub frees the slot
 * and records why. Of o, only the host's emit, host_ctx and the limits are used. */
void wk_run__reject(const Agentry__V1__Assignment *a, const struct wk_run_opts *o, const char *why);
void wk_run__ref(struct wk_run *run);
/* NULL is a no-op. */
void wk_run__unref(struct wk_run *run);
/* Advance the turn as far as it goes without waiting. Called by the token holder; the token is
 * gone (to a callback, to the host, or the turn ended) when it returns. A cancelled run is
 * dropped (its token released). */
void wk_run__step(struct wk_run *run);
/* Queue an input for the next model call; NOT_FOUND if the run was cancelled. */
int wk_run__deliver(struct wk_run *run, uint64_t seq, const char *text, struct ag_err *err);
/* Mark the run cancelled and cancel its in-flight model or tool call. */
void wk_run__cancel(struct wk_run *run);
/* Hand the turn back at its next step boundary (the hub drains the node): the step under way
 * (model call or tool call) finishes and is stored, then no new step starts and the host's
 * released() is called. A turn that ends first just ends. Any thread; idempotent. */
void wk_run__release(struct wk_run *run);

/* Set at creation, read-only afterwards: safe from any thread. */
const char *wk_run__agent_id(const struct wk_run *run);
uint64_t wk_run__epoch(const struct wk_run *run);
const char *wk_run__model(const struct wk_run *run); /* spec.model, "mock" if it was empty */

/* The node a host's ready queue links the run by: the host owns it while it holds the token. */
struct ag_qnode *wk_run__qnode(struct wk_run *run);
struct wk_run *wk_run__from_qnode(struct ag_qnode *n);

#endif
