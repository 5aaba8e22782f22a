/* worker/runner.h - the node's agent loops: a fixed pool of threads running assigned turns.
 *
 * Owns: every run (one agent turn) from assignment to its turn-ending event, the pool threads and
 * the run table. The connection to the hub (worker/conn.c) feeds it Assignments, Delivers,
 * Cancels and Releases, and receives the events it emits (and the turns released).
 *
 * A turn: consume inputs (the assignment's, then any delivered) as user messages; then repeat:
 * if iterations == max_iterations emit YIELD and end; emit MODEL_REQUEST; ask the provider; emit
 * MODEL_REPLY; for each tool call emit TOOL_CALL, run the tool, emit TOOL_RESULT; no tool call ->
 * emit FINAL and end. A provider error emits ERROR and ends. Turn-ending events carry the
 * checkpoint and the turn result. A cancelled run emits nothing more.
 *
 * A run waiting holds no thread: on the model, on a tool, on room in the emit queues (checked
 * before each step: back-pressure), or on the hub storing its TOOL_CALL (before the tool runs) or
 * its TOOL_RESULT (before the turn goes on), so that a turn resumed elsewhere finds every tool
 * call it started and every result it used. A run
 * belongs to one thread at a time.
 * Threads: all functions are thread-safe except wk_runner_free, which must not race the others.
 * The emit sink's functions are called as worker/emit.h says: emit() with a run's lock held, so
 * it must return quickly and must not call into the runner. */
#ifndef AGENTRY_WORKER_RUNNER_H
#define AGENTRY_WORKER_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "worker/emit.h"

struct wk_runner;
struct ag_timers;
struct wk_hub_link;
struct wk_sandbox;
struct wk_policy;

struct wk_runner_opts {
    unsigned threads; /* pool threads; 0 = 2 */
    wk_emit_fn *emit;
    wk_room_fn *room;         /* NULL: the queues never fill */
    wk_released_fn *released; /* NULL: nobody is told (wk_runner_release) */
    void *emit_ctx;           /* for emit and room */
    struct ag_timers *timers; /* borrowed */
    struct wk_hub_link *hub;  /* borrowed: hub tool calls (worker/hub_call.h); NULL: none */
    /* Bytes of conversation kept between turns (worker/warm.h); 0: keep none, the hub then
     * sends each turn the agent's whole log. */
    size_t keep_bytes;
    /* Provider and tool options, "NAME.KEY=VALUE" (worker/config.h); copied by wk_runner_new. */
    const char *const *model_opts;
    size_t nmodel_opts;
    const char *const *tool_opts;
    size_t ntool_opts;
    /* Model prices, "PROVIDER[/MODEL]=IN:OUT" (worker/price.h); copied. */
    const char *const *prices;
    size_t nprices;
    /* Agents' workspaces live under it, one directory per agent (made on first use); NULL:
     * agents get none, and the file tools and shell refuse to run. Copied. */
    const char *workspace_root;
    uint32_t default_max_iterations; /* for specs that give 0; 0: 10 */
    int64_t default_turn_timeout_ms; /* for specs without a limit; 0: none */
    int64_t delta_interval_ms;       /* MODEL_DELTA events at most this often; 0: 200 ms */
    unsigned tool_threads;           /* threads for blocking tool work; 0: 8 */
    /* The executor for tools that run programs (worker/sandbox.h), borrowed; NULL: none. */
    const struct wk_sandbox *sandbox;
    /* The node's permission policy (worker/policy.h), a ceiling over every spec's rules;
     * borrowed, NULL: none. */
    const struct wk_policy *policy;
};

/* Fails with INVALID_ARGUMENT naming the option if an option or a price is malformed or
 * unknown. */
struct wk_runner *wk_runner_new(const struct wk_runner_opts *o, struct ag_err *err);
/* Cancels every run (no more events), joins the threads. NULL is a no-op. */
void wk_runner_free(struct wk_runner *r);

/* Start a turn. The assignment is copied. NOT_FOUND: a->state_epoch names a conversation this
 * node does not keep (any more); ask the hub for it (StateRequest). A run of the same agent with an older epoch is
 * cancelled first (the hub moved the agent on; that run's events would be discarded). Fails with
 * ALREADY_EXISTS if the agent already runs at this epoch or a newer one, INVALID_ARGUMENT if the
 * spec names an unknown model provider (the caller should then report an ERROR event for it: see
 * wk_runner_reject). */
int wk_runner_assign(struct wk_runner *r, const Agentry__V1__Assignment *a, struct ag_err *err);
/* Emit an ERROR event (with checkpoint and result) ending the turn of an assignment that could
 * not start, so the hub frees the slot and records why. */
void wk_runner_reject(struct wk_runner *r, const Agentry__V1__Assignment *a, const char *why);
/* A new input for a running turn; NOT_FOUND if no run has that agent and epoch. */
int wk_runner_deliver(struct wk_runner *r, const char *agent_id, uint64_t epoch, uint64_t seq,
                      const char *text, struct ag_err *err);
/* Hand a run back at its next step boundary (worker/run.h, wk_run__release); opts.released is
 * called once it stopped. false if no run has that agent and epoch. */
bool wk_runner_release(struct wk_runner *r, const char *agent_id, uint64_t epoch);
/* Stop a run; no-op if none matches. */
void wk_runner_cancel(struct wk_runner *r, const char *agent_id, uint64_t epoch);
/* Stop every run (the hub connection was lost: the hub will place them elsewhere). */
void wk_runner_cancel_all(struct wk_runner *r);
/* Agents the hub deleted (node.proto, Forget), copied: on the work pool, each one's kept
 * conversation is dropped and its workspace removed (logged as node.workspace_removed). -1 with
 * err when the pool cannot take the work now (the hub says it again after the next
 * registration, from the node's Workspaces). */
int wk_runner_forget(struct wk_runner *r, const char *const *ids, size_t n, struct ag_err *err);
/* The agent ids of the workspaces under the workspace root, listed on the work pool and handed
 * to fn there (ids and the array owned by fn); nothing when the node has no root. -1 with err
 * when the pool cannot take the work now. */
typedef void wk_runner_ids_fn(void *arg, char **ids, size_t n);
int wk_runner_list_workspaces(struct wk_runner *r, wk_runner_ids_fn *fn, void *arg,
                              struct ag_err *err);
/* Runs in progress. */
unsigned wk_runner_running(struct wk_runner *r);
/* The hub's limits (Registered.max_payload_bytes, and the largest event that fits its
 * max_message_bytes) for runs started from now on; until called, there are no limits. An event
 * over them is never emitted: the turn ends with an ERROR instead (worker/run_event.c). */
void wk_runner_set_limits(struct wk_runner *r, size_t max_payload, size_t max_event);

#endif
