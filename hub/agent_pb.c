/* hub/agent_pb.c - an agent as the API shows it: the Agent message and its state_reason (see
 * agent_pb.h). Agent lock held by the caller. */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "hub/agent.h"
#include "hub/agent_pb.h"
#include "hub/approval.h"
#include "hub/hub_internal.h"
#include "hub/schedule.h"
#include "hub/team.h"

/* A YIELD's reason (types.proto, EVENT_KIND_YIELD) said for a person; budgets are over the
 * agent's life, so only a new agent gets more. */
static const char *yield_reason(const char *r)
{
    if (!r || !*r || strcmp(r, "max_iterations") == 0)
        return "max_iterations: the turn reached its iteration limit; resume it or send an input "
               "to go on";
    if (strcmp(r, "token_budget") == 0)
        return "token_budget: the agent spent its token budget (spec.limits.max_tokens)";
    if (strcmp(r, "cost_budget") == 0)
        return "cost_budget: the agent spent its cost budget (spec.limits.max_cost_usd)";
    if (strcmp(r, "turn_timeout") == 0)
        return "turn_timeout: the turn reached its wall-clock limit; resume it or send an input "
               "to go on";
    return r;
}

void hub_agent_pb_state_reason(struct hub *h, struct hub_agent *a, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED) {
        snprintf(buf, cap, "%s", a->st.last_error ? a->st.last_error : "");
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED) {
        snprintf(buf, cap, "%s", yield_reason(a->st.last_error));
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING && a->approval) {
        int64_t left = a->approval->expires_ms - ag_now_unix_ns() / 1000000;
        snprintf(buf, cap,
                 "waiting for approval of call %.128s (%.64s), denied in %.0fs unless "
                 "approved",
                 a->approval->call_id, a->approval->tool, left > 0 ? (double)left / 1000 : 0.0);
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING &&
               hub_team_wait_left(a->wait)) {
        size_t n = hub_team_wait_left(a->wait);
        snprintf(buf, cap, "waiting for %zu sub-agent%s", n, n == 1 ? "" : "s");
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING && a->retry_token) {
        int64_t left = a->retry_at_ms - ag_now_mono_ms();
        snprintf(buf, cap, "retrying in %.1fs after: %s (attempt %u of at most %u in a row)",
                 left > 0 ? (double)left / 1000 : 0.0, a->st.streak_reason, a->st.attempt + 1,
                 h->opts.max_interruptions);
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING) {
        hub_sched_explain(h->sched, &a->req, buf, cap);
    }
}

void hub_agent_pb_fill(struct hub *h, struct hub_agent *a, Agentry__V1__Agent *out,
                       struct ag_arena *arena)
{
    agentry__v1__agent__init(out);
    out->id = ag_arena_strdup(arena, a->id);
    out->spec = a->spec; /* immutable for the agent's life */
    out->state = (Agentry__V1__AgentState)a->st.state;
    out->node_id = ag_arena_strdup(arena, a->st.node_id);
    out->request_id = a->request_id ? a->request_id : ""; /* immutable for the agent's life */
    out->namespace_ = a->ns;                              /* immutable too */
    out->epoch = a->st.epoch;
    out->last_seq = a->last_seq;
    out->created_unix_nano = a->created_ns;
    out->updated_unix_nano = a->st.updated_ns;
    Agentry__V1__Usage *u = ag_arena_alloc(arena, sizeof(*u));
    hub_usage_to_pb(&a->st.usage, u);
    out->usage = u;
    out->last_output = ag_arena_strdup(arena, a->st.last_output ? a->st.last_output : "");
    out->last_error = ag_arena_strdup(arena, a->st.last_error ? a->st.last_error : "");
    char reason[512];
    hub_agent_pb_state_reason(h, a, reason, sizeof(reason));
    out->state_reason = ag_arena_strdup(arena, reason);
    out->turn_attempt = a->st.attempt;
    size_t pending = 0;
    for (size_t i = 0; i < a->ninbox; i++)
        if (a->inbox[i].seq > a->st.input_seq)
            pending++;
    out->pending_inputs = (uint32_t)pending;
    for (size_t i = 0; i < a->spec->n_labels; i++) /* immutable: the schedule's label */
        if (strcmp(a->spec->labels[i]->key, HUB_SCHEDULE_LABEL) == 0)
            out->schedule_id = a->spec->labels[i]->value;
    out->parent_id = a->parent_id; /* immutable for the agent's life */
    out->depth = a->depth;
}
