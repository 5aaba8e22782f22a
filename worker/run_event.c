/* worker/run_event.c - the events a turn emits, as packed agentry.v1.NodeEvents.
 *
 * Owns: the payload of each event kind (JSON objects keyed exactly as the EventKind comments in
 * api/agentry/v1/types.proto say), the checkpoint and turn result carried by turn-ending events,
 * and the hub's size limits (Registered.max_payload_bytes / max_message_bytes, copied into each
 * run). Tool-call arguments go into payloads as JSON strings, unparsed, so a model's malformed
 * arguments are recorded as it sent them.
 *
 * Limits: an event over a limit is never handed on. A stream message the hub refuses would end
 * the node's whole stream and interrupt every agent on it, again on every node the turn moves to;
 * instead the builder returns -1 and the turn ends with an ERROR that says what outgrew
 * what. A turn-ending event whose checkpoint is too big falls back to a smaller one: first the
 * conversation as it was before the turn plus the inputs the turn consumed (the turn's own work is
 * dropped, its inputs count as read), then no checkpoint at all (the agent stays as it was).
 *
 * Threads: called by a run's token holder (or the thread rejecting an assignment); the run hands
 * the packed event on (worker/run.c, run_emit). Scratch memory for the checkpoint comes from an
 * arena per event. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/arena.h"
#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/run_event.h"

/* An ERROR or YIELD message is cut to this: it is for a person, and must not itself be what
 * outgrows the payload limit. */
#define RUN_MAX_MESSAGE_BYTES (64 * 1024)

const char *wk_run_event_kind_word(Agentry__V1__EventKind kind)
{
    switch (kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST:
        return "model_request";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY:
        return "model_reply";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_DELTA:
        return "model_delta";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL:
        return "tool_call";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT:
        return "tool_result";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        return "final";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
        return "yield";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING:
        return "waiting";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
        return "approval_required";
    default:
        return "error";
    }
}

/* 0 if ev fits the hub's limits, else -1 with why. */
static int check_limits(const struct wk_run_event_head *h, const Agentry__V1__NodeEvent *ev,
                        size_t len, struct ag_err *why)
{
    size_t plen = ev->payload ? strlen(ev->payload) : 0;
    if (plen > h->max_payload)
        return ag_err_set(why, AG_RESOURCE_EXHAUSTED,
                          "turn stopped: its %s event would carry %zu bytes of JSON payload, over "
                          "the hub's limit of %zu (an event must fit a client's 4 MiB message)",
                          wk_run_event_kind_word(ev->kind), plen, h->max_payload);
    if (len > h->max_event)
        return ag_err_set(why, AG_RESOURCE_EXHAUSTED,
                          "turn stopped: its %s event would be %zu bytes, over the hub's limit of "
                          "%zu per node message",
                          wk_run_event_kind_word(ev->kind), len, h->max_event);
    return 0;
}

/* Pack ev into out, or -1 with why if it is over the limits. */
static int pack(const struct wk_run_event_head *h, const Agentry__V1__NodeEvent *ev,
                struct wk_run_event *out, struct ag_err *why)
{
    size_t len = agentry__v1__node_event__get_packed_size(ev);
    if (check_limits(h, ev, len, why) != 0)
        return -1;
    out->kind = ev->kind;
    out->buf = ag_xmalloc(len ? len : 1);
    out->len = len;
    agentry__v1__node_event__pack(ev, out->buf);
    return 0;
}

static void event_init(const struct wk_run_event_head *h, Agentry__V1__NodeEvent *ev,
                       Agentry__V1__EventKind kind, char *json)
{
    agentry__v1__node_event__init(ev);
    ev->agent_id = (char *)h->agent_id; /* protobuf-c does not write through it when packing */
    ev->epoch = h->epoch;
    ev->kind = kind;
    ev->payload = json;
}

/* Takes payload. Events that do not end the turn. */
static int pack_json(const struct wk_run_event_head *h, Agentry__V1__EventKind kind, cJSON *payload,
                     Agentry__V1__Usage *usage, struct wk_run_event *out, struct ag_err *why)
{
    char *json = cJSON_PrintUnformatted(payload);
    cJSON_Delete(payload);
    Agentry__V1__NodeEvent ev;
    event_init(h, &ev, kind, json);
    ev.usage = usage;
    int rc = pack(h, &ev, out, why);
    cJSON_free(json);
    return rc;
}

static cJSON *call_json(const struct wk_tool_call *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "arguments", c->arguments);
    return o;
}

int wk_run_event_model_request(const struct wk_run_event_head *h, const char *model,
                               uint32_t iteration, size_t nmsgs, uint64_t input_seq,
                               struct wk_run_event *out, struct ag_err *why)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "model", model);
    cJSON_AddNumberToObject(p, "iteration", iteration);
    cJSON_AddNumberToObject(p, "messages", (double)nmsgs);
    cJSON_AddNumberToObject(p, "input_seq", (double)input_seq);
    return pack_json(h, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST, p, NULL, out, why);
}

int wk_run_event_model_reply(const struct wk_run_event_head *h, const struct wk_chat_reply *reply,
                             bool priced, double cost_usd, struct wk_run_event *out,
                             struct ag_err *why)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "content", reply->content ? reply->content : "");
    cJSON *calls = cJSON_AddArrayToObject(p, "tool_calls");
    for (size_t i = 0; i < reply->ncalls; i++)
        cJSON_AddItemToArray(calls, call_json(&reply->calls[i]));
    cJSON *usage = cJSON_AddObjectToObject(p, "usage");
    cJSON_AddNumberToObject(usage, "input_tokens", (double)reply->input_tokens);
    cJSON_AddNumberToObject(usage, "output_tokens", (double)reply->output_tokens);
    if (priced)
        cJSON_AddNumberToObject(usage, "cost_usd", cost_usd);
    /* The hub adds up what events spent (types.proto, Usage): this reply's tokens and cost. */
    Agentry__V1__Usage spent = AGENTRY__V1__USAGE__INIT;
    spent.input_tokens = reply->input_tokens;
    spent.output_tokens = reply->output_tokens;
    spent.cost_usd = cost_usd;
    return pack_json(h, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY, p, &spent, out, why);
}

int wk_run_event_model_delta(const struct wk_run_event_head *h, uint32_t iteration,
                             const char *text, size_t len, struct wk_run_event *out,
                             struct ag_err *why)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "iteration", iteration);
    char *t = ag_xmalloc(len + 1);
    memcpy(t, text, len);
    t[len] = '\0';
    cJSON_AddStringToObject(p, "text", t);
    free(t);
    return pack_json(h, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_DELTA, p, NULL, out, why);
}

int wk_run_event_tool_call(const struct wk_run_event_head *h, const struct wk_tool_call *call,
                           struct wk_run_event *out, struct ag_err *why)
{
    return pack_json(h, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL, call_json(call), NULL, out,
                     why);
}

int wk_run_event_tool_result(const struct wk_run_event_head *h, const struct wk_tool_call *call,
                             const char *output, bool is_error, struct wk_run_event *out,
                             struct ag_err *why)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "id", call->id);
    cJSON_AddStringToObject(p, "name", call->name);
    cJSON_AddStringToObject(p, "output", output);
    cJSON_AddBoolToObject(p, "is_error", is_error);
    return pack_json(h, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT, p, NULL, out, why);
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
    pb->cost_usd = u->cost_usd;
    return pb;
}

/* How much of the run's state a turn-ending event carries (see the top comment). */
enum ckpt_level {
    CKPT_FULL,   /* the whole conversation after the turn */
    CKPT_INPUTS, /* the conversation before the turn, plus the user inputs it consumed */
    CKPT_NONE,   /* none: the hub keeps the agent's state as it was before the turn */
};

/* The agent after this turn: the conversation, this turn's counters, and the cumulative usage
 * (the checkpoint's plus this turn's). */
static Agentry__V1__Checkpoint *checkpoint_pb(const struct wk_run_event_state *st,
                                              enum ckpt_level level, struct ag_arena *a)
{
    Agentry__V1__Checkpoint *cp = ag_arena_alloc(a, sizeof(*cp));
    agentry__v1__checkpoint__init(cp);
    cp->messages = ag_arena_alloc(a, (st->nmsgs ? st->nmsgs : 1) * sizeof(*cp->messages));
    for (size_t i = 0; i < st->nmsgs; i++) {
        bool keep = level == CKPT_FULL || i < st->turn_start ||
                    strcmp(st->msgs[i].role, "user") == 0;
        if (keep)
            cp->messages[cp->n_messages++] = msg_pb(&st->msgs[i], a);
    }
    cp->iterations = st->iterations;
    cp->input_seq = st->input_seq;
    struct wk_usage total = {
        st->base_usage.input_tokens + st->usage.input_tokens,
        st->base_usage.output_tokens + st->usage.output_tokens,
        st->base_usage.model_calls + st->usage.model_calls,
        st->base_usage.tool_calls + st->usage.tool_calls,
        st->base_usage.cost_usd + st->usage.cost_usd,
    };
    cp->usage = usage_pb(&total, a);
    cp->user_state.data = (uint8_t *)st->user_state; /* not written through when packing */
    cp->user_state.len = st->user_state_len;
    return cp;
}

/* The turn-ending event of `kind` with `text`, at checkpoint `level`, in ev (arena memory). */
static void end_event(const struct wk_run_event_head *h, const struct wk_run_event_state *st,
                      Agentry__V1__EventKind kind, const char *text, enum ckpt_level level,
                      struct ag_arena *arena, Agentry__V1__NodeEvent *ev)
{
    Agentry__V1__TurnResult *res = ag_arena_alloc(arena, sizeof(*res));
    agentry__v1__turn_result__init(res);
    res->usage = usage_pb(&st->usage, arena);
    cJSON *p = NULL;
    /* text: WAITING's {"id", "agents"}; APPROVAL_REQUIRED's {"id", "name", "arguments", ...} */
    if (kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING ||
        kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED)
        p = cJSON_Parse(text);
    if (!cJSON_IsObject(p)) {
        cJSON_Delete(p);
        p = cJSON_CreateObject();
    }
    switch (kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
        cJSON_AddNumberToObject(p, "iterations", st->iterations);
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        cJSON_AddStringToObject(p, "output", text);
        cJSON_AddNumberToObject(p, "iterations", st->iterations);
        res->output = pb_str(text);
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
        cJSON_AddStringToObject(p, "reason", text);
        cJSON_AddNumberToObject(p, "iterations", st->iterations);
        res->error = pb_str(text);
        break;
    default:
        cJSON_AddStringToObject(p, "message", text);
        res->error = pb_str(text);
        break;
    }
    char *json = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    event_init(h, ev, kind, ag_arena_strdup(arena, json));
    cJSON_free(json);
    ev->checkpoint = level == CKPT_NONE ? NULL : checkpoint_pb(st, level, arena);
    ev->result = res;
}

/* A message for a person, cut (at a UTF-8 boundary) to RUN_MAX_MESSAGE_BYTES. */
static const char *cut_message(const char *text, struct ag_arena *arena)
{
    size_t n = strlen(text);
    if (n <= RUN_MAX_MESSAGE_BYTES)
        return text;
    return ag_arena_strndup(arena, text, ag_utf8_prefix(text, RUN_MAX_MESSAGE_BYTES));
}

int wk_run_event_end(const struct wk_run_event_head *h, const struct wk_run_event_state *st,
                     Agentry__V1__EventKind kind, const char *text, struct wk_run_event *out)
{
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    struct ag_err why = AG_ERR_INIT;
    /* APPROVAL_REQUIRED carries the call's arguments, which its TOOL_CALL carried whole. */
    if (kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL &&
        kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED)
        text = cut_message(text, &arena);
    Agentry__V1__NodeEvent ev;
    end_event(h, st, kind, text, CKPT_FULL, &arena, &ev);
    int rc = pack(h, &ev, out, &why);
    if (rc == 0) {
        ag_arena_release(&arena);
        return 0;
    }
    /* The turn's outcome or its state does not fit: end it with an ERROR saying so, carrying as
     * much of the state as fits (see the top comment). */
    const char *msg = ag_arena_strdup(&arena, why.msg);
    for (enum ckpt_level level = CKPT_INPUTS; rc != 0 && level <= CKPT_NONE; level++) {
        end_event(h, st, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, msg, level, &arena, &ev);
        rc = pack(h, &ev, out, &why);
    }
    ag_arena_release(&arena);
    return rc;
}
