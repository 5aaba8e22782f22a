/* hub/team_wait.c - a parent's wait_agent (see hub/team_wait.h): the children it awaits and
 * which of them are done, the TOOL_RESULT it ends with, and the wait read back from the log at
 * load. A wait is guarded by its agent's lock (hub_agent.wait); nothing here locks or posts. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/types.pb-c.h"
#include "common/utf8.h"
#include "common/xalloc.h"
#include "hub/agent_state.h"
#include "hub/limits.h"
#include "hub/store.h"
#include "hub/team_wait.h"

/* A child's answer in wait_agent's output at most (the whole must fit an event payload). */
#define TEAM_MAX_ANSWER (64u << 10)

struct wait_kid {
    char id[AG_ID_LEN + 1];
    bool done;
    int state;
    char *text; /* owned: its output or error */
};

struct hub_team_wait {
    char *call_id; /* owned */
    size_t n, left;
    struct wait_kid *kids; /* owned, in the call's order */
};

void hub_team_wait_free(struct hub_team_wait *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->kids[i].text);
    free(w->kids);
    free(w->call_id);
    free(w);
}

struct hub_team_wait *hub_team_wait_parse(const char *payload, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(payload, len);
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    cJSON *agents = cJSON_GetObjectItemCaseSensitive(o, "agents");
    struct hub_team_wait *w = NULL;
    int n = cJSON_GetArraySize(agents);
    if (cJSON_IsString(id) && cJSON_IsArray(agents) && n > 0) {
        w = ag_xcalloc(1, sizeof(*w));
        w->call_id = ag_xstrdup(id->valuestring);
        w->kids = ag_xcalloc((size_t)n, sizeof(*w->kids));
        const cJSON *e;
        cJSON_ArrayForEach(e, agents)
        {
            if (cJSON_IsString(e))
                snprintf(w->kids[w->n++].id, sizeof(w->kids[0].id), "%s", e->valuestring);
        }
        w->left = w->n;
    }
    cJSON_Delete(o);
    return w;
}

void hub_team_wait_reset(struct hub_team_wait *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->kids[i].text);
        w->kids[i].text = NULL;
        w->kids[i].done = false;
    }
    w->left = w->n;
}

size_t hub_team_wait_left(const struct hub_team_wait *w)
{
    return w ? w->left : 0;
}

void hub_team_wait_pending(const struct hub_team_wait *w, char (*ids)[AG_ID_LEN + 1], size_t max)
{
    size_t k = 0;
    for (size_t i = 0; w && i < w->n && k < max; i++)
        if (!w->kids[i].done)
            memcpy(ids[k++], w->kids[i].id, AG_ID_LEN + 1);
}

bool hub_team_wait_mark(struct hub_team_wait *w, const struct hub_team_end *e)
{
    if (!w || !w->left || !e->settled)
        return false;
    bool marked = false;
    for (size_t i = 0; i < w->n; i++) {
        struct wait_kid *k = &w->kids[i];
        if (k->done || strcmp(k->id, e->child_id) != 0)
            continue;
        k->done = true;
        k->state = e->state;
        k->text = ag_xstrdup(e->text ? e->text : "");
        w->left--;
        marked = true;
    }
    return marked && w->left == 0;
}

/* wait_agent's answer: [{"agent_id", "state", "output" | "error"}], each answer cut to fit. */
char *hub_team_answers_json(size_t n, const char *const *ids, const int *states,
                            const char *const *texts)
{
    size_t cap = (HUB_MAX_PAYLOAD / 4) / (n ? n : 1);
    if (cap > TEAM_MAX_ANSWER)
        cap = TEAM_MAX_ANSWER;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "agent_id", ids[i]);
        cJSON_AddStringToObject(o, "state", hub_agent_state_name(states[i]));
        const char *t = texts[i] ? texts[i] : "";
        size_t len = strlen(t);
        size_t keep = len <= cap ? len : ag_utf8_prefix(t, cap);
        char *cut = strndup(t, keep);
        cJSON_AddStringToObject(
            o, states[i] == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ? "output" : "error", cut);
        free(cut);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return s;
}

const char *hub_team_wait_result(const struct hub_team_wait *w, struct ag_arena *ar)
{
    const char **ids = ag_xcalloc(w->n, sizeof(*ids));
    const char **texts = ag_xcalloc(w->n, sizeof(*texts));
    int *states = ag_xcalloc(w->n, sizeof(*states));
    for (size_t i = 0; i < w->n; i++) {
        ids[i] = w->kids[i].id;
        texts[i] = w->kids[i].text;
        states[i] = w->kids[i].state;
    }
    char *out = hub_team_answers_json(w->n, ids, states, texts);
    free(ids);
    free(texts);
    free(states);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", w->call_id);
    cJSON_AddStringToObject(o, "name", "wait_agent");
    cJSON_AddStringToObject(o, "output", out ? out : "[]");
    cJSON_AddBoolToObject(o, "is_error", false);
    free(out);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    const char *r = ag_arena_strdup(ar, s ? s : "{}");
    free(s);
    return r;
}

void hub_team_wait_note(struct hub_team_wait **w, const struct hub_store_event *ev)
{
    switch (ev->kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING:
        hub_team_wait_free(*w);
        *w = hub_team_wait_parse(ev->payload, ev->payload_len);
        return;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT: {
        if (!*w)
            return;
        cJSON *o = cJSON_ParseWithLength(ev->payload, ev->payload_len);
        cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        bool answered = cJSON_IsString(id) && strcmp(id->valuestring, (*w)->call_id) == 0;
        cJSON_Delete(o);
        if (!answered)
            return;
        break;
    }
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED:
        break;
    default:
        return;
    }
    hub_team_wait_free(*w);
    *w = NULL;
}
