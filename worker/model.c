/* worker/model.c - the model provider table and the conversation types' release functions.
 *
 * Owns: wk_model_providers[] (a provider is a row plus a file, worker/model_<name>.c) and the
 * lookup from an agent's spec.model to its row. No state, no threads: everything here is safe to
 * call from any thread. */
#include "worker/model.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "worker/model_rows.h"

const struct wk_provider_row wk_model_providers[] = {
    {"mock", wk_model__mock_create, wk_model__mock_check_config},
    {"openai", wk_model__openai_create, wk_model__http_check_config},
    {"anthropic", wk_model__anthropic_create, wk_model__http_check_config},
    {NULL, NULL, NULL},
};

const struct wk_provider_row *wk_model_find(const char *spec_model, const char **model_out)
{
    /* The API says an empty model means "mock" (types.proto, AgentSpec.model). */
    if (!spec_model || !*spec_model)
        spec_model = "mock";
    const char *slash = strchr(spec_model, '/');
    size_t len = slash ? (size_t)(slash - spec_model) : strlen(spec_model);
    for (const struct wk_provider_row *row = wk_model_providers; row->name; row++) {
        if (strlen(row->name) == len && strncmp(row->name, spec_model, len) == 0) {
            if (model_out)
                *model_out = slash ? slash + 1 : "";
            return row;
        }
    }
    return NULL;
}

void wk_tool_call_release(struct wk_tool_call *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->name);
    free(c->arguments);
    c->id = c->name = c->arguments = NULL;
}

static void tool_calls_free(struct wk_tool_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wk_tool_call_release(&calls[i]);
    free(calls);
}

struct wk_msg *wk_msg_push(struct wk_msg **msgs, size_t *n, size_t *cap, const char *role)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *msgs = ag_xrealloc(*msgs, *cap * sizeof(**msgs));
    }
    struct wk_msg *m = &(*msgs)[(*n)++];
    memset(m, 0, sizeof(*m));
    m->role = ag_xstrdup(role);
    return m;
}

void wk_msg_release(struct wk_msg *m)
{
    if (!m)
        return;
    free(m->role);
    free(m->content);
    tool_calls_free(m->calls, m->ncalls);
    free(m->tool_call_id);
    memset(m, 0, sizeof(*m));
}

void wk_chat_reply_free(struct wk_chat_reply *r)
{
    if (!r)
        return;
    free(r->content);
    tool_calls_free(r->calls, r->ncalls);
    free(r);
}
