/* worker/run_event.h - the events a turn emits, built and packed as agentry.v1.NodeEvents.
 *
 * Owns: each event kind's payload, the checkpoint and turn result of turn-ending events, and the
 * check against the hub's size limits (see worker/run_event.c). It only builds: handing an event
 * on (under the run's lock, unless cancelled, perhaps parked on its completion) is the run's
 * (worker/run.c), so nothing here calls back into a run or its host.
 *
 * Threads: no shared state; called by a run's token holder (or the thread rejecting an
 * assignment) on memory that thread owns. No locks. */
#ifndef AGENTRY_WORKER_RUN_EVENT_H
#define AGENTRY_WORKER_RUN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "worker/model.h"

struct wk_usage {
    uint64_t input_tokens;
    uint64_t output_tokens;
    uint32_t model_calls;
    uint32_t tool_calls;
    double cost_usd; /* priced by this node's --price table; 0 for models without a price */
};

/* What every event of a run shares: whose it is, and the hub's limits when the run started
 * (Registered.max_payload_bytes, and the largest event that fits its max_message_bytes). */
struct wk_run_event_head {
    const char *agent_id; /* borrowed */
    uint64_t epoch;
    size_t max_payload;
    size_t max_event;
};

/* The agent's state a turn-ending event checkpoints. Borrowed from the run. */
struct wk_run_event_state {
    const struct wk_msg *msgs; /* the conversation, oldest first */
    size_t nmsgs;
    size_t turn_start;          /* msgs[0, turn_start) came with the checkpoint */
    uint32_t iterations;        /* model calls in this turn */
    uint64_t input_seq;         /* highest input seq in msgs */
    struct wk_usage base_usage; /* the checkpoint's cumulative usage */
    struct wk_usage usage;      /* this turn's */
    const uint8_t *user_state;  /* opaque, returned unchanged */
    size_t user_state_len;
};

/* A packed NodeEvent, ready for wk_emit_fn (which takes buf). */
struct wk_run_event {
    Agentry__V1__EventKind kind;
    uint8_t *buf; /* owned */
    size_t len;
};

/* "model_request", "tool_call", "final", ...: the kind's word, for messages and logs. */
const char *wk_run_event_kind_word(Agentry__V1__EventKind kind);

/* Each builder returns 0 with the event in out, or -1 with why (nothing built) when the event
 * would be over the hub's limits: the caller then ends the turn with an ERROR carrying why's
 * message. */
int wk_run_event_model_request(const struct wk_run_event_head *h, const char *model,
                               uint32_t iteration, size_t nmsgs, uint64_t input_seq,
                               struct wk_run_event *out, struct ag_err *why);
/* cost_usd: what the reply cost, sent only when priced (the node has a price for the model). */
int wk_run_event_model_reply(const struct wk_run_event_head *h, const struct wk_chat_reply *reply,
                             bool priced, double cost_usd, struct wk_run_event *out,
                             struct ag_err *why);
/* Text of a streamed reply (len bytes, valid UTF-8 up to the last whole character: a cut
 * character waits for the next delta) for a follower; informational, never replayed. */
int wk_run_event_model_delta(const struct wk_run_event_head *h, uint32_t iteration,
                             const char *text, size_t len, struct wk_run_event *out,
                             struct ag_err *why);
int wk_run_event_tool_call(const struct wk_run_event_head *h, const struct wk_tool_call *call,
                           struct wk_run_event *out, struct ag_err *why);
int wk_run_event_tool_result(const struct wk_run_event_head *h, const struct wk_tool_call *call,
                             const char *output, bool is_error, struct wk_run_event *out,
                             struct ag_err *why);
/* FINAL (text: the output), YIELD (text: the reason), ERROR (text: the message) or WAITING
 * (text: the payload's JSON object without "iterations", {"id", "agents"}), with the
 * checkpoint of st and the turn result. When that would be over the hub's limits it builds an
 * ERROR saying so instead, with a smaller checkpoint or none (see run_event.c); -1 only if even
 * that does not fit (then nothing is emitted). */
int wk_run_event_end(const struct wk_run_event_head *h, const struct wk_run_event_state *st,
                     Agentry__V1__EventKind kind, const char *text, struct wk_run_event *out);

#endif
