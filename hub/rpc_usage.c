/* hub/rpc_usage.c - GetUsageHistory (hub.proto): the dashboard's heat-map of tokens and cost by
 * model over time, read from the hub's memory (hub/usage_history.h), and the hook that fills it.
 *
 * The hook runs on the store's completion thread with the agent's lock held (hub/hooks.h); it
 * looks the agent up in the agent table (agent, then table: the lock order allows it) for its
 * namespace and model. A MODEL_REPLY does not name its model: the agent's spec does ("mock" when
 * empty, as the node reads it; the node reports that same name in its MODEL_REQUEST).
 *
 * Threads: the handler runs on a CQ thread and takes only the history's lock. */
#include "hub/rpc_usage.h"

#include <stdbool.h>
#include <stdint.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/clock.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hooks.h"
#include "hub/hub_internal.h"
#include "hub/store.h"
#include "hub/usage_history.h"
#include "hub/validate.h"

static bool counts(int kind)
{
    return kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY;
}

void hub_rpc_usage_hook(void *arg, const struct hub_hook_event *ev)
{
    struct hub *h = arg;
    size_t i = 0;
    while (i < ev->nevents && !counts(ev->events[i]->kind))
        i++;
    if (i == ev->nevents) /* most writes: no lookup */
        return;
    struct hub_agent *a = hub_agents_find(&h->agents, ev->agent_id);
    if (!a)
        return;
    const char *model = a->spec && a->spec->model && *a->spec->model ? a->spec->model : "mock";
    /* An event stamped later than now (a clock stepped back) counts now: the ring's newest minute
     * is the present. */
    int64_t now = ag_now_unix_ns();
    for (; i < ev->nevents; i++) {
        const struct hub_store_event *e = ev->events[i];
        if (counts(e->kind))
            hub_usage_history_count_event(h->usage_history, a->ns, model, e->kind, e->payload,
                                          e->payload_len,
                                          e->time_ns > 0 && e->time_ns < now ? e->time_ns : now);
    }
    hub_agents_unpin(&h->agents, a);
}

static bool sees(void *arg, const char *ns)
{
    return hub_authn_sees(arg, ns);
}

static Agentry__V1__UsageSeries *series_pb(const struct hub_usage_series *s, uint32_t n,
                                           struct ag_arena *ar)
{
    Agentry__V1__UsageSeries *o = ag_arena_alloc(ar, sizeof(*o));
    agentry__v1__usage_series__init(o);
    o->model = (char *)s->model;
    o->input_tokens = s->input_tokens;
    o->output_tokens = s->output_tokens;
    o->model_calls = s->model_calls;
    o->cost_usd = ag_arena_alloc(ar, (n ? n : 1) * sizeof(*o->cost_usd));
    for (uint32_t b = 0; b < n; b++)
        o->cost_usd[b] = (double)s->cost_nano_usd[b] / 1e9;
    o->n_input_tokens = o->n_output_tokens = o->n_cost_usd = o->n_model_calls = n;
    return o;
}

static void on_get(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__GetUsageHistoryRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__get_usage_history_request__descriptor);
    if (!in)
        return;
    struct ag_err err = AG_ERR_INIT;
    struct hub_usage_window w;
    if ((*in->namespace_ && hub_validate_namespace(in->namespace_, &err) != 0) ||
        hub_usage_history_window(in->bucket_seconds, in->buckets, ag_now_unix_ns(), &w, &err) !=
            0) {
        rpc_call_fail(c, &err);
        return;
    }
    struct ag_arena *ar = rpc_call_arena(c);
    struct hub_usage_series *s;
    size_t n = hub_usage_history_query(h->usage_history, &w, in->namespace_, sees, c, ar, &s);
    Agentry__V1__UsageHistory r = AGENTRY__V1__USAGE_HISTORY__INIT;
    r.start_unix_nano = w.start_minute * INT64_C(60000000000);
    r.bucket_seconds = w.bucket_seconds;
    r.buckets = w.buckets;
    r.series = ag_arena_alloc(ar, (n ? n : 1) * sizeof(*r.series));
    for (size_t i = 0; i < n; i++)
        r.series[i] = series_pb(&s[i], w.buckets, ar);
    r.n_series = n;
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
}

const struct rpc_method hub_rpc_usage_methods[] = {
    {.path = "/agentry.v1.AgentHub/GetUsageHistory", .kind = RPC_UNARY, .on_call = on_get},
};
const size_t hub_rpc_usage_nmethods = AG_ARRAY_SIZE(hub_rpc_usage_methods);
