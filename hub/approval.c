/* hub/approval.c - a tool call waiting for a human decision: its events' payloads, and the call
 * read back from the log (see approval.h). */
#include "hub/approval.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/types.pb-c.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/store.h"

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *json_take(struct ag_arena *ar, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    char *r = ag_arena_strdup(ar, s ? s : "{}");
    free(s);
    cJSON_Delete(o);
    return r;
}

const char *hub_approval_decision_word(enum hub_approval_decision d)
{
    switch (d) {
    case HUB_APPROVAL_APPROVED:
        return "approved";
    case HUB_APPROVAL_DENIED:
        return "denied";
    case HUB_APPROVAL_EXPIRED:
        return "expired";
    }
    return "denied";
}

static bool decision_of(const char *word, enum hub_approval_decision *d)
{
    static const enum hub_approval_decision all[] = {HUB_APPROVAL_APPROVED, HUB_APPROVAL_DENIED,
                                                     HUB_APPROVAL_EXPIRED};
    for (size_t i = 0; word && i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(word, hub_approval_decision_word(all[i])) == 0) {
            *d = all[i];
            return true;
        }
    return false;
}

struct hub_approval *hub_approval_parse(const char *payload, size_t len, uint64_t seq,
                                        int64_t time_ns)
{
    cJSON *o = cJSON_ParseWithLength(payload, len);
    const char *id = str_of(o, "id");
    if (!id || !*id) {
        cJSON_Delete(o);
        return NULL;
    }
    struct hub_approval *ap = ag_xcalloc(1, sizeof(*ap));
    ap->call_id = ag_xstrdup(id);
    ap->tool = ag_xstrdup(str_of(o, "name") ? str_of(o, "name") : "");
    ap->arguments = ag_xstrdup(str_of(o, "arguments") ? str_of(o, "arguments") : "{}");
    ap->reason = ag_xstrdup(str_of(o, "reason") ? str_of(o, "reason") : "");
    ap->seq = seq;
    ap->asked_ms = time_ns / 1000000;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "expires_at_ms");
    ap->expires_ms = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : ap->asked_ms;
    cJSON_Delete(o);
    return ap;
}

void hub_approval_free(struct hub_approval *ap)
{
    if (!ap)
        return;
    free(ap->call_id);
    free(ap->tool);
    free(ap->arguments);
    free(ap->reason);
    free(ap);
}

const char *hub_approval_stamp(const char *payload, int64_t expires_ms, struct ag_arena *ar)
{
    cJSON *o = cJSON_Parse(payload);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "expires_at_ms");
    cJSON_AddNumberToObject(o, "expires_at_ms", (double)expires_ms);
    return json_take(ar, o);
}

const char *hub_approval_decided_json(const struct hub_approval *ap, enum hub_approval_decision d,
                                      const char *by, const char *reason, const char *arguments,
                                      struct ag_arena *ar)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ap->call_id);
    cJSON_AddStringToObject(o, "name", ap->tool);
    cJSON_AddStringToObject(o, "decision", hub_approval_decision_word(d));
    cJSON_AddStringToObject(o, "by", by && *by ? by : "anonymous");
    if (reason && *reason)
        cJSON_AddStringToObject(o, "reason", reason);
    if (d == HUB_APPROVAL_APPROVED && arguments && *arguments)
        cJSON_AddStringToObject(o, "arguments", arguments);
    return json_take(ar, o);
}

const char *hub_approval_refusal_json(const struct hub_approval *ap, enum hub_approval_decision d,
                                      const char *by, const char *reason, struct ag_arena *ar)
{
    const char *why = reason && *reason ? reason : "no reason given";
    char *out = d == HUB_APPROVAL_EXPIRED
                    ? ag_arena_printf(ar,
                                      "tool '%s' was not run: no one approved the call before its "
                                      "approval deadline (spec.limits.approval_timeout_ms)",
                                      ap->tool)
                    : ag_arena_printf(ar, "tool '%s' was not run: the call was denied by %s: %s",
                                      ap->tool, by && *by ? by : "anonymous", why);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ap->call_id);
    cJSON_AddStringToObject(o, "name", ap->tool);
    cJSON_AddStringToObject(o, "output", out);
    cJSON_AddBoolToObject(o, "is_error", true);
    return json_take(ar, o);
}

/* One remembered decision (hub_agent.decided, a ring of HUB_APPROVAL_KEEP). */
struct hub_approval_decided {
    char *call_id; /* owned; NULL: an empty slot */
    enum hub_approval_decision d;
    uint64_t seq;
};

void hub_approval_remember(struct hub_agent *a, const char *payload, size_t len, uint64_t seq)
{
    cJSON *o = cJSON_ParseWithLength(payload, len);
    const char *id = str_of(o, "id");
    enum hub_approval_decision d;
    if (id && decision_of(str_of(o, "decision"), &d)) {
        if (!a->decided)
            a->decided = ag_xcalloc(HUB_APPROVAL_KEEP, sizeof(*a->decided));
        struct hub_approval_decided *slot = &a->decided[a->decided_next++ % HUB_APPROVAL_KEEP];
        free(slot->call_id);
        *slot = (struct hub_approval_decided){ag_xstrdup(id), d, seq};
    }
    cJSON_Delete(o);
}

bool hub_approval_decided(const struct hub_agent *a, const char *call_id,
                          enum hub_approval_decision *d, uint64_t *seq)
{
    /* Newest first: ids are the model's, unique within a turn, so a repeat is another turn's. */
    for (unsigned k = 0; a->decided && k < HUB_APPROVAL_KEEP; k++) {
        const struct hub_approval_decided *s =
            &a->decided[(a->decided_next - 1 - k) % HUB_APPROVAL_KEEP];
        if (s->call_id && strcmp(s->call_id, call_id) == 0) {
            *d = s->d;
            *seq = s->seq;
            return true;
        }
    }
    return false;
}

void hub_approval_forget(struct hub_agent *a)
{
    for (unsigned k = 0; a->decided && k < HUB_APPROVAL_KEEP; k++)
        free(a->decided[k].call_id);
    free(a->decided);
    a->decided = NULL;
}

void hub_approval_note(struct hub_approval **ap, const struct hub_store_event *ev)
{
    switch (ev->kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
        hub_approval_free(*ap);
        *ap = hub_approval_parse(ev->payload, ev->payload_len, ev->seq, ev->time_ns);
        return;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED: {
        if (!*ap)
            return;
        cJSON *o = cJSON_ParseWithLength(ev->payload, ev->payload_len);
        const char *id = str_of(o, "id");
        bool decided = id && strcmp(id, (*ap)->call_id) == 0;
        cJSON_Delete(o);
        if (!decided)
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
    hub_approval_free(*ap);
    *ap = NULL;
}
