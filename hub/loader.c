/* hub/loader.c - which agents the hub holds in memory: the active ones, read from the store at
 * start-up; any other one, read back when a call names it; and the sweep that lets agents at rest
 * go (see loader.h, and hub/agent_table.h for the pins that make that safe).
 *
 * An agent is rebuilt from its row (hub_agent_from_row) and the events after its checkpoint: its
 * inbox of inputs not yet taken, the running turn's stored steps, its last turn end, what a
 * running attempt spent, and a resumed turn's own iteration limit.
 *
 * Threads: start-up on the main thread; loads on any thread that names an agent (RPC CQ threads,
 * node streams), serialized by h->load_mu; the sweep on the housekeeper. The store's synchronous
 * reads run on its reader connection. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/approval.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/store.h"
#include "hub/team.h"
#include "hub/usage.h"
#include "hub/validate.h"

struct load_ctx {
    struct hub *h;
    struct hub_agent *a;
    bool counting; /* past the current attempt's ASSIGNED: count what its events spent */
    size_t agents;
};

/* Usage the row does not hold yet: the events of a running attempt after its ASSIGNED (the row
 * is written at each state change, not per event: actor.c st_changed). Counted as when they
 * were stored, with the tokens and the cost read back from the MODEL_REPLY payload. */
static void count_event_usage(struct hub_agent *a, const struct hub_store_event *ev)
{
    uint64_t in, out, nano;
    hub_usage_payload_read(ev->kind, ev->payload, ev->payload_len, &in, &out, &nano);
    hub_agent_count_usage(&a->st, ev->kind, in, out, nano);
}

static bool is_current_assignment(const struct hub_agent *a, const struct hub_store_event *ev)
{
    if (ev->kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_ASSIGNED)
        return false;
    cJSON *o = cJSON_ParseWithLength(ev->payload, ev->payload_len);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "epoch");
    bool yes = cJSON_IsNumber(e) && (uint64_t)e->valuedouble == a->st.epoch;
    cJSON_Delete(o);
    return yes;
}

/* A resumed turn's own iteration limit is not in the agent's row: it holds from its RESUMED
 * event until the turn ends, so a resumed turn the hub places again keeps it. */
static void load_turn_max_iter(struct hub_agent *a, const struct hub_store_event *ev)
{
    switch (ev->kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_RESUMED: {
        cJSON *o = cJSON_ParseWithLength(ev->payload, ev->payload_len);
        cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "max_iterations");
        a->st.turn_max_iter = cJSON_IsNumber(m) && m->valuedouble > 0 ? (uint32_t)m->valuedouble
                                                                      : 0;
        cJSON_Delete(o);
        break;
    }
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED:
        a->st.turn_max_iter = 0;
        break;
    default:
        break;
    }
}

static int load_event(void *arg, const struct hub_store_event *ev, struct ag_err *err)
{
    struct load_ctx *lc = arg;
    struct hub_agent *a = lc->a;
    (void)err;
    load_turn_max_iter(a, ev);
    hub_team_wait_note(&a->wait, ev);
    hub_approval_note(&a->approval, ev);
    hub_agent_steps_note(a, ev->seq, ev->kind, ev->payload, ev->payload_len);
    if (lc->counting)
        count_event_usage(a, ev);
    else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING)
        lc->counting = is_current_assignment(a, ev);
    if (ev->kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT || ev->seq <= a->st.input_seq)
        return 0;
    /* The payload is {"text": ...}, as hub_json_text_payload wrote it. */
    cJSON *o = cJSON_ParseWithLength(ev->payload, ev->payload_len);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    hub_agent_inbox_push(a, ev->seq, cJSON_IsString(t) ? t->valuestring : "");
    cJSON_Delete(o);
    return 0;
}

/* Start-up: an active agent, held from the start. */
static int load_agent(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                      struct ag_err *err)
{
    struct load_ctx *lc = arg;
    struct hub_agent *a = hub_agent_from_row(row, last_seq, err);
    if (!a)
        return -1;
    a->active_ms = ag_now_mono_ms();
    hub_agents_unpin(&lc->h->agents, hub_agents_adopt(&lc->h->agents, a));
    lc->agents++;
    return 0;
}

/* Inputs stored after each agent's checkpoint are its inbox again, the running turn's steps are
 * kept for its next attempt, a running attempt's events are counted into its usage, and a resumed turn gets its own iteration limit back (the RESUMED event
 * is always after the checkpoint's input_seq: it follows the turn that stored it). Done after
 * load_agents returns: the store's load calls may not nest. */
static int load_inbox(struct hub *h, struct load_ctx *lc, struct hub_agent *a, struct ag_err *err)
{
    if (a->last_seq <= a->st.input_seq)
        return 0;
    lc->a = a;
    lc->counting = false;
    if (hub_store_scan_events(h->store, a->id, a->st.input_seq + 1, load_event, lc, err) != 0) {
        ag_err_prefix(err, "cannot read the inputs of agent '%s'", a->id);
        return -1;
    }
    return 0;
}

static int load_agents(struct hub *h, struct load_ctx *lc, struct ag_err *err)
{
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ACTIVE};
    return hub_store_select_agents(h->store, &q, load_agent, lc, err);
}

static int load_inboxes(struct hub *h, struct load_ctx *lc, struct ag_err *err)
{
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k;
    int rc = 0;
    for (size_t pos = 0;
         rc == 0 && (k = hub_agents_snapshot(&h->agents, pos, batch, HUB_AGENTS_BATCH)); pos += k)
        for (size_t i = 0; i < k; i++) {
            rc = rc ? rc : load_inbox(h, lc, batch[i], err);
            hub_agents_unpin(&h->agents, batch[i]);
        }
    return rc;
}

int hub_loader_load_active(struct hub *h, size_t *loaded, struct ag_err *err)
{
    struct load_ctx lc = {.h = h};
    int rc = load_agents(h, &lc, err);
    rc = rc ? rc : load_inboxes(h, &lc, err);
    *loaded = lc.agents;
    return rc;
}

/* --- agents on demand ----------------------------------------------------------------------- */

static int take_row(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                    struct ag_err *err)
{
    struct load_ctx *lc = arg;
    lc->a = hub_agent_from_row(row, last_seq, err);
    return lc->a ? 0 : -1;
}

/* The agent q names, from the store, now held (pinned); NULL with err unset if there is none.
 * Loads are serialized (load_mu), and each looks in memory again first: a row read under it is
 * never older than the agent's last eviction (only an agent at rest, every write of it
 * committed, is evicted), so the copy adopted is the truth. */
static struct hub_agent *load_one(struct hub *h, const struct hub_store_agents_query *q,
                                  struct ag_err *err)
{
    pthread_mutex_lock(&h->load_mu);
    struct hub_agent *a = q->kind == HUB_STORE_AGENTS_ID
                              ? hub_agents_find(&h->agents, q->key)
                              : hub_agents_claim_request(&h->agents, q->key, NULL);
    if (a) {
        pthread_mutex_unlock(&h->load_mu);
        return a;
    }
    struct load_ctx lc = {.h = h};
    if (hub_store_select_agents(h->store, q, take_row, &lc, err) == 0 && lc.a &&
        load_inbox(h, &lc, lc.a, err) == 0) {
        lc.a->active_ms = ag_now_mono_ms();
        a = hub_agents_adopt(&h->agents, lc.a);
        ag_log_debug("agent.loaded", "agent=%s state=%s", a->id, hub_agent_state_name(a->st.state));
    } else if (lc.a) {
        hub_agent_free(NULL, lc.a);
    }
    pthread_mutex_unlock(&h->load_mu);
    return a;
}

struct hub_agent *hub_loader_get(struct hub *h, const char *id, struct ag_err *err)
{
    if (hub_validate_agent_id(id, err) != 0)
        return NULL;
    struct hub_agent *a = hub_agents_find(&h->agents, id);
    if (a)
        return a;
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ID, .key = id};
    a = load_one(h, &q, err);
    if (!a && err->code == AG_OK)
        ag_err_set(err, AG_NOT_FOUND, "no agent with id '%s'", id);
    return a;
}

struct hub_agent *hub_loader_get_by_request(struct hub *h, const char *ns, const char *request_id,
                                            struct ag_err *err)
{
    char *key = hub_agent_request_key(ns, request_id);
    struct hub_agent *a = hub_agents_claim_request(&h->agents, key, NULL);
    free(key);
    if (a)
        return a;
    struct hub_store_agents_query q = {
        .kind = HUB_STORE_AGENTS_REQUEST, .key = request_id, .namespace = ns};
    return load_one(h, &q, err);
}

/* Nothing refers to it but the table, nothing is about to happen to it by itself, and a new
 * load would rebuild it exactly from the store. Agent locked. */
static bool at_rest(const struct hub_agent *a)
{
    bool waits_for_input = a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED ||
                           a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED ||
                           ((a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
                             a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED) &&
                            !hub_agent_input_waiting(a, a->st.input_seq));
    return waits_for_input && a->visible && !a->writing && ag_queue_empty(&a->mailbox) &&
           ag_list_empty(&a->followers) && ag_list_empty(&a->waiters) && !a->retry_token &&
           !a->st.node && a->nsteps == 0;
}

/* Agents at rest for opts.unload_idle_ms leave memory; they are loaded again when asked for. */
void hub_loader_unload_idle(struct hub *h)
{
    int64_t now = ag_now_mono_ms(), after = h->opts.unload_idle_ms;
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k, gone = 0;
    for (size_t pos = 0; (k = hub_agents_snapshot(&h->agents, pos, batch, HUB_AGENTS_BATCH));) {
        size_t kept = 0;
        for (size_t i = 0; i < k; i++) {
            struct hub_agent *a = batch[i];
            pthread_mutex_lock(&a->lock);
            bool go = (after < 0 || now - a->active_ms >= after) && at_rest(a) &&
                      hub_agents_evict(&h->agents, a);
            pthread_mutex_unlock(&a->lock);
            if (go) {
                ag_log_debug("agent.unloaded", "agent=%s", a->id);
                hub_agent_free(h->sched, a);
                gone++;
            } else {
                hub_agents_unpin(&h->agents, a);
                kept++;
            }
        }
        pos += kept; /* an evicted agent's place went to the list's last one */
    }
}
