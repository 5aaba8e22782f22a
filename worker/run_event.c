/* worker/run_event.c - the events a turn emits, as packed agentry.v1.NodeEvents.
 *
 * Owns: the payload of each event kind (JSON objects keyed exactly as the EventKind comments in
 * api/agentry/v1/types.proto say) and the checkpoint and turn result carried by turn-ending
 * events. Tool-call arguments go into payloads as JSON strings, unparsed, so a model's malformed
 * arguments are recorded as it sent them.
 *
 * Threads: called by a run's token holder (or the thread rejecting an assignment). The packed
 * event is handed to the runner's emit function under run->mu, after checking that the run was
 * not cancelled: that check and the hand-off are one step, so a cancel that has returned is
 * never followed by an event. Scratch memory for the checkpoint comes from an arena per event. */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "common/arena.h"
#include "common/xalloc.h"
#include "worker/runner_internal.h"

static void emit_packed(struct wk_run *run, const Agentry__V1__NodeEvent *ev)
{
    size_t len = agentry__v1__node_event__get_packed_size(ev);
    uint8_t *buf = ag_xmalloc(len ? len : 1);
    agentry__v1__node_event__pack(ev, buf);
    pthread_mutex_lock(&run->mu);
    if (run->cancelled)
        free(buf);
    else
        wk_runner__emit(run->runner, buf, len);
    pthread_mutex_unlock(&run->mu);
}

/* Takes payload. cp and res may be NULL (events that do not end the turn). */
static void emit_json(struct wk_run *run, Agentry__V1__EventKind kind, cJSON *payload,
                      Agentry__V1__Checkpoint *cp, Agentry__V1__TurnResult *res)
{
    char *json = cJSON_PrintUnformatted(payload);
    cJSON_Delete(payload);
    Agentry__V1__NodeEvent ev = AGENTRY__V1__NODE_EVENT__INIT;
    ev.agent_id = run->agent_id;
    ev.epoch = run->epoch;
    ev.kind = kind;
    ev.payload = json;
    ev.checkpoint = cp;
    ev.result = res;
    emit_packed(run, &ev);
    cJSON_free(json);
}

static cJSON *call_json(const struct wk_tool_call *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "arguments", c->arguments);
    return o;
}

void wk_run__emit_model_request(struct wk_run *run)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "model", run->model);
    cJSON_AddNumberToObject(p, "iteration", run->iterations);
    cJSON_AddNumberToObject(p, "messages", (double)run->nmsgs);
    emit_json(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST, p, NULL, NULL);
}

void wk_run__emit_model_reply(struct wk_run *run, const struct wk_chat_reply *reply)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "content", reply->content ? reply->content : "");
    cJSON *calls = cJSON_AddArrayToObject(p, "tool_calls");
    for (size_t i = 0; i < reply->ncalls; i++)
        cJSON_AddItemToArray(calls, call_json(&reply->calls[i]));
    cJSON *usage = cJSON_AddObjectToObject(p, "usage");
    cJSON_AddNumberToObject(usage, "input_tokens", (double)reply->input_tokens);
    cJSON_AddNumberToObject(usage, "output_tokens", (double)reply->output_tokens);
    emit_json(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY, p, NULL, NULL);
}

void wk_run__emit_tool_call(struct wk_run *run, const struct wk_tool_call *call)
{
    emit_json(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL, call_json(call), NULL, NULL);
}

void wk_run__emit_tool_result(struct wk_run *run, const struct wk_tool_call *call,
                              const char *output, bool is_error)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "id", call->id);
    cJSON_AddStringToObject(p, "name", call->name);
    cJSON_AddStringToObject(p, "output", output);
    cJSON_AddBoolToObject(p, "is_error", is_error);
    emit_json(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT, p, NULL, NULL);
}

/* protobuf-c does not write through these pointers when packing. */
static char *pb_str(const char *s)
{
    return (char *)(s ? s : "");
}

static Agentry__V1__Message *msg_pb(const struct wk_msg *m, struct ag_arena *a)
{
    Agentry__V1__Message *pb = ag_arena_alloc(a, sizeof(*pb));
    agentry__v1__message__init(pb);
    pb->role = pb_str(m->role);
    pb->content = pb_str(m->content);
    pb->tool_call_id = pb_str(m->tool_call_id);
    pb->n_tool_calls = m->ncalls;
    pb->tool_calls = ag_arena_alloc(a, m->ncalls * sizeof(*pb->tool_calls));
    for (size_t i = 0; i < m->ncalls; i++) {
        Agentry__V1__ToolCall *c = ag_arena_alloc(a, sizeof(*c));
        agentry__v1__tool_call__init(c);
        c->id = pb_str(m->calls[i].id);
        c->name = pb_str(m->calls[i].name);
        c->arguments = pb_str(m->calls[i].arguments);
        pb->tool_calls[i] = c;
    }
    return pb;
}

static Agentry__V1__Usage *usage_pb(const struct wk_usage *u, struct ag_arena *a)
{
    Agentry__V1__Usage *pb = ag_arena_alloc(a, sizeof(*pb));
    agentry__v1__usage__init(pb);
    pb->input_tokens = u->input_tokens;
    pb->output_tokens = u->output_tokens;
    pb->model_calls = u->model_calls;
    pb->tool_calls = u->tool_calls;
    return pb;
}

/* The agent after this turn: the whole conversation, this turn's counters, and the cumulative
 * usage (the checkpoint's plus this turn's). */
static Agentry__V1__Checkpoint *checkpoint_pb(const struct wk_run *run, struct ag_arena *a)
{
    Agentry__V1__Checkpoint *cp = ag_arena_alloc(a, sizeof(*cp));
    agentry__v1__checkpoint__init(cp);
    cp->n_messages = run->nmsgs;
    cp->messages = ag_arena_alloc(a, run->nmsgs * sizeof(*cp->messages));
    for (size_t i = 0; i < run->nmsgs; i++)
        cp->messages[i] = msg_pb(&run->msgs[i], a);
    cp->iterations = run->iterations;
    cp->input_seq = run->input_seq;
    struct wk_usage total = {
        run->base_usage.input_tokens + run->usage.input_tokens,
        run->base_usage.output_tokens + run->usage.output_tokens,
        run->base_usage.model_calls + run->usage.model_calls,
        run->base_usage.tool_calls + run->usage.tool_calls,
    };
    cp->usage = usage_pb(&total, a);
    cp->user_state.data = run->user_state;
    cp->user_state.len = run->user_state_len;
    return cp;
}

void wk_run__emit_end(struct wk_run *run, Agentry__V1__EventKind kind, const char *text)
{
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    Agentry__V1__TurnResult res = AGENTRY__V1__TURN_RESULT__INIT;
    res.usage = usage_pb(&run->usage, &arena);
    cJSON *p = cJSON_CreateObject();
    switch (kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        cJSON_AddStringToObject(p, "output", text);
        cJSON_AddNumberToObject(p, "iterations", run->iterations);
        res.output = pb_str(text);
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
        cJSON_AddStringToObject(p, "reason", text);
        cJSON_AddNumberToObject(p, "iterations", run->iterations);
        res.error = pb_str(text);
        break;
    default:
        cJSON_AddStringToObject(p, "message", text);
        res.error = pb_str(text);
        break;
    }
    emit_json(run, kind, p, checkpoint_pb(run, &arena), &res);
    ag_arena_release(&arena);
}
