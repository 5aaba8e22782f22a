/* hub/rpc_approval.c - ListApprovals: the tool calls waiting for a human decision (hub.proto).
 * ApproveCall and DenyCall change an agent, so they go through its actor (hub/rpc_agent.c).
 *
 * Memory only: an agent whose call waits is PENDING, which keeps it in the hub's memory (hub/
 * loader.c unloads only agents at rest), and a restarted hub loads every pending agent and reads
 * the waiting call back from its log. The scan visits each agent in memory under its own lock,
 * one at a time (agent.h's lock order), copying what it lists into the call's arena; callers that
 * may not see a namespace do not see its approvals (hub_authn_sees). */
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/approval.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/rpc_approval.h"
#include "hub/validate.h"

#define LIST_MAX 1000 /* hub.proto, ListApprovalsRequest.limit */

static int by_age(const void *x, const void *y)
{
    const Agentry__V1__Approval *a = *(Agentry__V1__Approval *const *)x;
    const Agentry__V1__Approval *b = *(Agentry__V1__Approval *const *)y;
    if (a->requested_at_ms != b->requested_at_ms)
        return a->requested_at_ms < b->requested_at_ms ? -1 : 1;
    return strcmp(a->agent_id, b->agent_id);
}

/* a's waiting call, copied into ar, or NULL if none. Takes a's lock. */
static Agentry__V1__Approval *copy_approval(struct hub_agent *a, struct ag_arena *ar)
{
    Agentry__V1__Approval *m = NULL;
    pthread_mutex_lock(&a->lock);
    const struct hub_approval *ap = a->approval;
    if (ap && ap->seq && a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING) {
        m = ag_arena_alloc(ar, sizeof(*m));
        agentry__v1__approval__init(m);
        m->agent_id = ag_arena_strdup(ar, a->id);
        m->namespace_ = a->ns; /* immutable for the agent's life, which the pin covers */
        m->agent_name = ag_arena_strdup(ar, a->spec->name ? a->spec->name : "");
        m->call_id = ag_arena_strdup(ar, ap->call_id);
        m->tool = ag_arena_strdup(ar, ap->tool);
        m->arguments = ag_arena_strdup(ar, ap->arguments);
        m->reason = ag_arena_strdup(ar, ap->reason);
        m->seq = ap->seq;
        m->requested_at_ms = ap->asked_ms;
        m->expires_at_ms = ap->expires_ms;
    }
    pthread_mutex_unlock(&a->lock);
    return m;
}

static void on_list(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ListApprovalsRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__list_approvals_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in)
        return;
    if (hub_validate_namespace(in->namespace_, &err) != 0 || in->limit > LIST_MAX) {
        if (err.code == AG_OK)
            ag_err_set(&err, AG_INVALID_ARGUMENT, "limit is %u; the most is %d (0 means %d)",
                       in->limit, LIST_MAX, LIST_MAX);
        rpc_call_fail(c, &err);
        return;
    }
    size_t limit = in->limit ? in->limit : LIST_MAX;
    struct ag_arena *ar = rpc_call_arena(c);
    Agentry__V1__Approval **found = NULL;
    size_t n = 0, cap = 0;
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k;
    for (size_t pos = 0; (k = hub_agents_snapshot(&h->agents, pos, batch, HUB_AGENTS_BATCH));
         pos += k) {
        for (size_t i = 0; i < k; i++) {
            struct hub_agent *a = batch[i];
            bool wanted = (!*in->namespace_ || strcmp(in->namespace_, a->ns) == 0) &&
                          (!*in->agent_id || strcmp(in->agent_id, a->id) == 0) &&
                          hub_authn_sees(c, a->ns);
            Agentry__V1__Approval *m = wanted ? copy_approval(a, ar) : NULL;
            hub_agents_unpin(&h->agents, a);
            if (!m)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                found = ag_xrealloc(found, cap * sizeof(*found));
            }
            found[n++] = m;
        }
    }
    if (n)
        qsort(found, n, sizeof(*found), by_age);
    Agentry__V1__ListApprovalsResponse r = AGENTRY__V1__LIST_APPROVALS_RESPONSE__INIT;
    r.truncated = n > limit;
    r.n_approvals = n > limit ? limit : n;
    r.approvals = found;
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
    free(found);
}

const struct rpc_method hub_rpc_approval_methods[] = {
    {.path = "/agentry.v1.AgentHub/ListApprovals", .kind = RPC_UNARY, .on_call = on_list},
};
const size_t hub_rpc_approval_nmethods = AG_ARRAY_SIZE(hub_rpc_approval_methods);
