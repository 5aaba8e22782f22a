/* worker/run_replay.h - the conversation and where the running turn stands, read from the log.
 *
 * An Assignment carries stored events (Assignment.steps, oldest first): the agent's whole
 * history for a node that does not keep its conversation, or only the running turn's earlier
 * attempts for one that does. Reading them rebuilds the conversation exactly as the nodes that
 * ran it had it (an input joins at the first MODEL_REQUEST whose "input_seq" covers it, as it did
 * there; FINAL, YIELD and ERROR end a turn) and says what the running turn does next, so that
 * nothing stored is done again. A call a person approved (the hub's APPROVAL_DECIDED after its
 * TOOL_CALL) counts as not started: it runs on this attempt, with the arguments the approval gave
 * in place of the model's; a refused one has the TOOL_RESULT the hub stored. What to do with a tool call that was started but has no result
 * (run again, or "outcome unknown") is the run's decision: it knows the tools.
 *
 * Pure: no threads, no I/O; the caller owns what it gets. */
#ifndef AGENTRY_WORKER_RUN_REPLAY_H
#define AGENTRY_WORKER_RUN_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "worker/model.h"

enum wk_run_replay_next {
    WK_RUN_REPLAY_MODEL, /* ask the model: no steps, the last tool result is in, or a model call
                            has no stored reply (asked again, as the same iteration) */
    WK_RUN_REPLAY_FINAL, /* the last reply has no tool calls: the turn ends with it */
    WK_RUN_REPLAY_TOOL,  /* call tool_idx of msgs[call_msg] is next */
};

/* An input not yet in the conversation. */
struct wk_run_replay_input {
    uint64_t seq;
    char *text; /* owned */
};

struct wk_run_replay {
    struct wk_msg *msgs; /* owned: the messages the events add, in order (user, assistant, tool) */
    size_t nmsgs, cap;
    struct wk_run_replay_input *rest; /* owned: the inputs no model call took yet, in seq order */
    size_t nrest;
    uint64_t input_seq;  /* the highest input seq among msgs, or the one given */
    uint32_t iterations; /* model calls answered (a call asked again counts once) */
    enum wk_run_replay_next next;
    size_t call_msg;   /* WK_RUN_REPLAY_TOOL/FINAL: index in msgs of the last assistant message */
    size_t tool_idx;   /* WK_RUN_REPLAY_TOOL: the call to do next */
    bool tool_started; /* WK_RUN_REPLAY_TOOL: its TOOL_CALL is stored, with no result */
    /* WK_RUN_REPLAY_TOOL: a person approved it (APPROVAL_DECIDED): it runs although a rule asks,
     * with the arguments the decision gave, if any, in place of the model's in msgs. */
    bool tool_approved;
    uint64_t input_tokens, output_tokens; /* the running turn's, as its stored replies said */
    uint32_t model_calls, tool_calls;     /* its MODEL_REQUEST and TOOL_CALL steps stored */
};

/* Read steps[0, n) against the assignment's inputs (seq order; the INPUT events among the steps
 * join them) on top of a conversation that holds the inputs up to input_seq.
 * 0 with *out filled (release it with wk_run_replay_release), or -1 with err when a step does
 * not read (a payload that is not what a node writes): the turn cannot go on safely. */
int wk_run_replay_read(const Agentry__V1__TraceEvent *const *steps, size_t n,
                       const Agentry__V1__Input *const *inputs, size_t ninputs, uint64_t input_seq,
                       struct wk_run_replay *out, struct ag_err *err);
void wk_run_replay_release(struct wk_run_replay *r);

#endif
