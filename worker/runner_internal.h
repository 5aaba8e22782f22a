/* worker/runner_internal.h - private to the runner: worker/runner.c (pool, ready queue, run
 * table), worker/run.c (one turn's loop) and worker/run_event.c (the events a turn emits).
 * Nothing outside these three files includes it.
 *
 * The token. At any moment exactly one party owns a run's turn state: the ready queue, the pool
 * thread that popped it, or the single outstanding model/tool callback. Only the owner touches
 * the fields marked "token" below, which is how a run belongs to one thread at a time without a
 * lock on its conversation. Whoever holds the token hands it on (queue -> thread -> callback ->
 * queue) and never touches the turn state after handing it on.
 *
 * Lifetime. refs counts the table's entry (while the run is in the table) plus the token plus
 * short lookups (deliver). The last unref frees the run. Freeing never touches the runner, so a
 * callback that arrives after wk_runner_free (ag_timers_free runs pending timers) is safe.
 *
 * Parking. A run gives its token away and holds no thread while it waits: to the provider or
 * tool (a completion callback), to the emit sink's room() (back-pressure, checked before each
 * step) or to an event's completion (durable_tools: wk_run__emit_tool_* with `parked`). Each
 * wake-up queues the run like a completion callback does (run.c, run_resume).
 *
 * Cancellation. cancelled is set under mu and never cleared. A callback pushes its run onto the
 * ready queue only under mu and only if not cancelled, and every emit happens under mu after the
 * same check: once wk_run__cancel returns, the run emits nothing and never touches the runner.
 * Lock order: run->mu, then the runner's queue lock (a callback queueing its run), or then the
 * emit sink's lock (emit() is called under run->mu). run->cancel's lock is taken with no run lock
 * held (wk_run__cancel lets go of mu first), and the cancel listener under it takes only the
 * timers' lock. The runner's
 * table lock is never held while taking run->mu: lookups take a reference and let go first, so
 * a slow emit() on one run never stalls the table. */
#ifndef AGENTRY_WORKER_RUNNER_INTERNAL_H
#define AGENTRY_WORKER_RUNNER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "common/queue.h"
#include "worker/cancel.h"
#include "worker/config.h"
#include "worker/model.h"
#include "worker/runner.h"
#include "worker/tool.h"

struct wk_usage {
    uint64_t input_tokens;
    uint64_t output_tokens;
    uint32_t model_calls;
    uint32_t tool_calls;
};

/* A delivered input waiting for the next model call. */
struct wk_run_input {
    uint64_t seq;
    char *text; /* owned */
};

/* What the token holder does next with the run. */
enum wk_run_phase {
    WK_RUN_CALL_MODEL, /* yield at the limit, or drain the inbox and call the model */
    WK_RUN_MODEL_DONE, /* the reply is in reply (or the failure in model_err) */
    WK_RUN_NEXT_TOOL,  /* emit call tool_idx of msgs[call_msg], or go back to the model */
    WK_RUN_RUN_TOOL,   /* run call tool_idx, its TOOL_CALL emitted */
    WK_RUN_TOOL_DONE,  /* the tool's output is in tool_output */
};

struct wk_run {
    /* Set by wk_run__new, read-only afterwards. */
    struct wk_runner *runner;     /* borrowed; used only while not cancelled (see above) */
    struct wk_provider *provider; /* borrowed from the runner; NULL for a rejected assignment */
    const struct wk_config *model_config; /* borrowed from the runner; NULL if no provider */
    char *agent_id;               /* owned */
    uint64_t epoch;
    char *model;            /* owned: spec.model, "mock" if it was empty */
    const char *model_name; /* borrowed from model: the part after "provider/" */
    char *system_prompt;    /* owned */
    char **tools;           /* owned: spec.tools */
    struct wk_chat_tool *tool_specs; /* owned array (strings borrowed): tools, for the model */
    size_t ntools;
    uint32_t max_iterations;    /* spec value, 0 replaced by the default */
    struct wk_usage base_usage; /* the checkpoint's cumulative usage */
    uint8_t *user_state;        /* owned, opaque, returned unchanged in the checkpoint */
    size_t user_state_len;
    size_t max_payload;         /* the hub's limits when the run started (see run_event.c) */
    size_t max_event;

    /* Turn state: token holder only. */
    struct wk_msg *msgs; /* owned: the conversation, oldest first */
    size_t nmsgs, msgs_cap;
    size_t turn_start;     /* msgs[0, turn_start) came with the checkpoint */
    uint32_t iterations;   /* model calls in this turn */
    uint64_t input_seq;    /* highest input seq in msgs */
    struct wk_usage usage; /* this turn */
    enum wk_run_phase phase;
    struct wk_chat_reply *reply; /* owned; WK_RUN_MODEL_DONE, NULL if the model failed */
    struct ag_err model_err;
    size_t call_msg;   /* index in msgs of the assistant message whose calls are running */
    size_t tool_idx;   /* the call running, in msgs[call_msg].calls */
    char *tool_output; /* owned; WK_RUN_TOOL_DONE */
    bool tool_is_error;
    struct ag_err emit_err; /* set when a parked-on event will never be stored */

    struct wk_cancel cancel; /* requested by wk_run__cancel; the in-flight call listens */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    bool cancelled;
    struct wk_run_input *inbox; /* owned */
    size_t ninbox, inbox_cap;

    struct ag_qnode ready_node; /* the runner's ready queue; under its queue lock */
    atomic_uint refs;
};

/* run.c: the turn. */

/* A run for assignment a, holding one reference (the token). consume_inputs: append a's inputs
 * as user messages (false for a rejected assignment, whose inputs stay unconsumed). */
struct wk_run *wk_run__new(const Agentry__V1__Assignment *a, struct wk_runner *r,
                           struct wk_provider *p, const struct wk_config *model_config,
                           bool consume_inputs);
void wk_run__ref(struct wk_run *run);
void wk_run__unref(struct wk_run *run);
/* Advance the turn as far as it goes without waiting. Called by the token holder; the token is
 * gone (to a callback, or the turn ended) when it returns. */
void wk_run__step(struct wk_run *run);
/* Queue an input for the next model call; NOT_FOUND if the run was cancelled. */
int wk_run__deliver(struct wk_run *run, uint64_t seq, const char *text, struct ag_err *err);
/* Mark the run cancelled and cancel its in-flight model or tool call. */
void wk_run__cancel(struct wk_run *run);
/* A wake-up (completion, room, stored event) hands the token back: queue the run for a pool
 * thread, or drop it if it was cancelled (then the runner may be gone and is not touched). */
void wk_run__resume(struct wk_run *run);

/* run_event.c: the events of a turn, packed as NodeEvents and emitted under run->mu unless the
 * run was cancelled. Token holder only (or the thread rejecting an assignment). The emit
 * functions return -1 with why (nothing emitted) when the event would be over the hub's limits:
 * the caller then ends the turn with an ERROR carrying why's message. */
int wk_run__emit_model_request(struct wk_run *run, struct ag_err *why);
int wk_run__emit_model_reply(struct wk_run *run, const struct wk_chat_reply *reply,
                             struct ag_err *why);
/* The tool events take `parked`: NULL to hand the event on and go on, or a flag set to true when
 * the event was handed on with a completion that now holds the token (the run resumes, in the
 * phase it set before the call, once the hub stored the event; emit_err is set if it never
 * will be). false: nothing to wait for, the caller keeps the token (the run was cancelled, or no
 * stream is up and emit_err now says so). */
int wk_run__emit_tool_call(struct wk_run *run, const struct wk_tool_call *call, bool *parked,
                           struct ag_err *why);
int wk_run__emit_tool_result(struct wk_run *run, const struct wk_tool_call *call,
                             const char *output, bool is_error, bool *parked, struct ag_err *why);
/* FINAL (text: the output), YIELD (text: the reason) or ERROR (text: the message), with the
 * checkpoint and the turn result. When that would be over the hub's limits it emits an ERROR
 * saying so instead, with a smaller checkpoint or none (see run_event.c). Always emits. */
void wk_run__emit_end(struct wk_run *run, Agentry__V1__EventKind kind, const char *text);

/* runner.c: what a run needs from its runner. */

/* Queue the run for a pool thread; hands the token to the queue. */
void wk_runner__ready_push(struct wk_runner *r, struct wk_run *run);
/* Take the run out of the run table if it is still there; true means the caller now holds the
 * reference the table held (false: a cancel took it). */
bool wk_runner__table_remove(struct wk_runner *r, struct wk_run *run);
/* Hand a packed NodeEvent (owned) to the runner's emit function (see wk_emit_fn). */
int wk_runner__emit(struct wk_runner *r, uint8_t *ev, size_t len, wk_emit_done_fn *done,
                    void *done_arg);
/* Whether the emit queues have room (see wk_room_fn); false: wake(arg) has the token. */
bool wk_runner__room(struct wk_runner *r, wk_wake_fn *wake, void *arg);
/* wk_runner_opts.durable_tools. */
bool wk_runner__durable_tools(const struct wk_runner *r);
struct ag_timers *wk_runner__timers(struct wk_runner *r);
/* The options of tool t (a row of wk_tools). */
const struct wk_config *wk_runner__tool_config(struct wk_runner *r, const struct wk_tool *t);
/* The hub's current limits (wk_runner_set_limits), for a new run. */
void wk_runner__limits(struct wk_runner *r, size_t *max_payload, size_t *max_event);

#endif
