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
    if (r->nmsgs == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->msgs = ag_xrealloc(r->msgs, r->cap * sizeof(*r->msgs));
    }
    struct wk_msg *m = &r->msgs[r->nmsgs++];
    memset(m, 0, sizeof(*m));
    m->role = ag_xstrdup(role);
    return m;
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

/* Inputs up to seq (all of them for UINT64_MAX) join the conversation, as the lost node's drain
 * before that model call added them. */
static void take_inputs(struct wk_run_replay *r, const Agentry__V1__Input *const *inputs,
                        size_t ninputs, uint64_t upto)
{
    while (r->ninputs < ninputs && inputs[r->ninputs]->seq <= upto) {
        const Agentry__V1__Input *in = inputs[r->ninputs++];
        if (in->seq <= r->input_seq)
            continue; /* already in the checkpoint */
        push(r, "user")->content = ag_xstrdup(in->text ? in->text : "");
        r->input_seq = in->seq;
    }
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
    return 0;
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
    bool asking = false, have_reply = false;
    uint32_t asked = 0;
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__TraceEvent *s = steps[i];
        cJSON *p = cJSON_Parse(s->payload ? s->payload : "");
        bool ok = cJSON_IsObject(p);
        switch (s->kind) {
        case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST:
            /* A node from before "input_seq" had consumed every input it was given. */
            take_inputs(r, inputs, ninputs, (uint64_t)num(p, "input_seq", (double)UINT64_MAX));
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
    memset(r, 0, sizeof(*r));
}
