/* worker/run_replay.c - where an interrupted turn stands, read from its stored steps (see
 * run_replay.h). The payloads are the ones worker/run_event.c writes (keys as the EventKind
 * comments in api/agentry/v1/types.proto say); a step that does not read, or comes out of order,
 * is an error rather than a guess: guessing could run a tool call twice. */
#include "worker/run_replay.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static struct wk_msg *push(struct wk_run_replay *r, const char *role)
{
    return wk_msg_push(&r->msgs, &r->nmsgs, &r->cap, role);
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* An input the conversation does not hold yet joins the waiting ones (kept in seq order; the
 * assignment's and the log's overlap). */
static void add_input(struct wk_run_replay *r, size_t *cap, uint64_t seq, const char *text)
{
    if (seq <= r->input_seq)
        return;
    size_t i = r->nrest;
    while (i > 0 && r->rest[i - 1].seq >= seq) {
        if (r->rest[i - 1].seq == seq)
            return;
        i--;
    }
    if (r->nrest == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        r->rest = ag_xrealloc(r->rest, *cap * sizeof(*r->rest));
    }
    memmove(&r->rest[i + 1], &r->rest[i], (r->nrest - i) * sizeof(*r->rest));
    r->rest[i] = (struct wk_run_replay_input){seq, ag_xstrdup(text ? text : "")};
    r->nrest++;
}

/* Waiting inputs up to seq join the conversation, as the drain before that model call added them
 * on the node that made it. */
static void take_inputs(struct wk_run_replay *r, uint64_t upto)
{
    size_t k = 0;
    for (; k < r->nrest && r->rest[k].seq <= upto; k++) {
        push(r, "user")->content = r->rest[k].text;
        r->input_seq = r->rest[k].seq;
    }
    memmove(r->rest, r->rest + k, (r->nrest - k) * sizeof(*r->rest));
    r->nrest -= k;
}

/* A turn ended: the next one starts from scratch (its counters are its own). */
static void end_turn(struct wk_run_replay *r, bool *asking, bool *have_reply)
{
    *asking = *have_reply = false;
    r->iterations = 0;
    r->tool_idx = 0;
    r->tool_started = false;
    r->tool_approved = false;
    r->input_tokens = r->output_tokens = 0;
    r->model_calls = r->tool_calls = 0;
}

static int read_reply(struct wk_run_replay *r, const cJSON *p)
{
    const char *content = str(p, "content");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(p, "tool_calls");
    if (!content || (calls && !cJSON_IsArray(calls)))
        return -1;
    int n = calls ? cJSON_GetArraySize(calls) : 0;
    struct wk_msg *m = push(r, "assistant");
    m->content = ag_xstrdup(content);
    m->calls = n ? ag_xcalloc((size_t)n, sizeof(*m->calls)) : NULL;
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(calls, i);
        const char *id = str(c, "id"), *name = str(c, "name"), *args = str(c, "arguments");
        if (!id || !name || !args)
            return -1; /* m is complete up to ncalls: the release frees it */
        m->calls[i].id = ag_xstrdup(id);
        m->calls[i].name = ag_xstrdup(name);
        m->calls[i].arguments = ag_xstrdup(args);
        m->ncalls++;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "usage");
    r->input_tokens += (uint64_t)num(u, "input_tokens", 0);
    r->output_tokens += (uint64_t)num(u, "output_tokens", 0);
    r->call_msg = r->nmsgs - 1;
    r->tool_idx = 0;
    r->tool_started = false;
    r->tool_approved = false;
    return 0;
}

/* The next call was approved: not started yet (the node let go of the turn instead of running
 * it), and run with args (NULL: as the model wrote them), which the conversation then shows. */
static void approve(struct wk_run_replay *r, const char *args)
{
    r->tool_started = false;
    r->tool_approved = true;
    if (!args)
        return;
    struct wk_tool_call *c = &r->msgs[r->call_msg].calls[r->tool_idx];
    free(c->arguments);
    c->arguments = ag_xstrdup(args);
}

/* The call a TOOL_CALL or TOOL_RESULT names must be the next one of the last reply. */
static bool is_next_call(const struct wk_run_replay *r, bool have_reply, const cJSON *p)
{
    if (!have_reply)
        return false;
    const struct wk_msg *m = &r->msgs[r->call_msg];
    const char *id = str(p, "id");
    return r->tool_idx < m->ncalls && id && strcmp(id, m->calls[r->tool_idx].id) == 0;
}

int wk_run_replay_read(const Agentry__V1__TraceEvent *const *steps, size_t n,
                       const Agentry__V1__Input *const *inputs, size_t ninputs, uint64_t input_seq,
                       struct wk_run_replay *out, struct ag_err *err)
{
    struct wk_run_replay *r = out;
    memset(r, 0, sizeof(*r));
    r->input_seq = input_seq;
    size_t cap_rest = 0;
    for (size_t i = 0; i < ninputs; i++)
        add_input(r, &cap_rest, inputs[i]->seq, inputs[i]->text);
    bool asking = false, have_reply = false;
    uint32_t asked = 0;
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__TraceEvent *s = steps[i];
        cJSON *p = cJSON_Parse(s->payload ? s->payload : "");
        bool ok = cJSON_IsObject(p);
        switch (s->kind) {
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT:
            ok = ok && str(p, "text");
            if (ok)
                add_input(r, &cap_rest, s->seq, str(p, "text"));
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
            end_turn(r, &asking, &have_reply);
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED:
            ok = ok && str(p, "id") && str(p, "decision");
            if (ok && is_next_call(r, have_reply, p) && strcmp(str(p, "decision"), "approved") == 0)
                approve(r, str(p, "arguments"));
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING:
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_CHILD:
            /* Not steps: the turn waited for (or heard from) sub-agents, and goes on with the
             * wait_agent call's TOOL_RESULT the hub stored. */
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST:
            /* A node from before "input_seq" had taken every input stored before the call. */
            take_inputs(r, (uint64_t)num(p, "input_seq", (double)(s->seq - 1)));
            asked = (uint32_t)num(p, "iteration", r->iterations + 1);
            asking = true;
            r->model_calls++;
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY:
            ok = ok && asking && read_reply(r, p) == 0;
            r->iterations = asked;
            asking = false;
            have_reply = true;
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL:
            ok = ok && !asking && is_next_call(r, have_reply, p);
            r->tool_started = true;
            r->tool_calls++;
            break;
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT: {
            ok = ok && !asking && is_next_call(r, have_reply, p) && str(p, "output");
            if (!ok)
                break;
            struct wk_msg *m = push(r, "tool");
            m->content = ag_xstrdup(str(p, "output"));
            m->tool_call_id = ag_xstrdup(str(p, "id"));
            r->tool_idx++;
            r->tool_started = false;
            r->tool_approved = false;
            break;
        }
        default:
            ok = false;
        }
        cJSON_Delete(p);
        if (!ok) {
            wk_run_replay_release(r);
            return ag_err_set(err, AG_INTERNAL,
                              "cannot go on from the turn's stored steps: step %zu (seq %llu, "
                              "kind %d) is not what a node stores there",
                              i + 1, (unsigned long long)s->seq, (int)s->kind);
        }
    }
    if (asking || !have_reply) {
        r->next = WK_RUN_REPLAY_MODEL;
    } else {
        size_t ncalls = r->msgs[r->call_msg].ncalls;
        r->next = ncalls == 0            ? WK_RUN_REPLAY_FINAL
                  : r->tool_idx < ncalls ? WK_RUN_REPLAY_TOOL
                                         : WK_RUN_REPLAY_MODEL;
    }
    return 0;
}

void wk_run_replay_release(struct wk_run_replay *r)
{
    for (size_t i = 0; i < r->nmsgs; i++)
        wk_msg_release(&r->msgs[i]);
    free(r->msgs);
    for (size_t i = 0; i < r->nrest; i++)
        free(r->rest[i].text);
    free(r->rest);
    memset(r, 0, sizeof(*r));
}
