/* hub/rpc_agent.c - the AgentHub unary methods, and Invoke's waiters.
 *
 * Handlers run on CQ threads: they decode into the call's arena, validate, and either answer at
 * once (Ping, GetAgent, ListAgents, refusals) or hand the call to an agent's mailbox, whose write
 * answers it once durable (Spawn, SendMessage, KillAgent, ResumeAgent). Invoke's call waits on the
 * agent as a waiter until its turn ends; its deadline cancels the wait (on_close), never the
 * agent. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_pb.h"
#include "hub/agent_table.h"
#include "hub/hub_internal.h"
#include "hub/rpc_agent.h"
#include "hub/sched.h"
#include "hub/selector.h"
#include "hub/validate.h"

#define MAX_REQUEST_ID 128

struct hub_waiter {
    struct ag_list link; /* on agent->waiters while linked (guarded by the agent's lock) */
    struct rpc_call *call;
    _Atomic(struct hub_agent *) agent;
};

static void *decode(struct rpc_call *c, grpc_byte_buffer *req, const ProtobufCMessageDescriptor *d)
{
    struct ag_err err = AG_ERR_INIT;
    void *m = rpc_pb_unpack(req, d, rpc_call_arena(c), &err);
    if (!m)
        rpc_call_fail(c, &err);
    return m;
}

static bool refuse_if_closing(struct hub *h, struct rpc_call *c)
{
    if (!atomic_load(&h->closing))
        return false;
    rpc_call_finish(c, AG_UNAVAILABLE, "the hub is shutting down; retry on another hub or later");
    return true;
}

static struct hub_agent *find_or_fail(struct hub *h, struct rpc_call *c, const char *id)
{
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *a = hub_agents_lookup(&h->agents, id, &err);
    if (!a)
        rpc_call_fail(c, &err);
    return a;
}

/* A request for one agent whose fields were checked (valid: 0, or -1 with err): the agent, with a
 * reference on the call that the actor answers and drops, or NULL once the call is answered with
 * the validation error or NOT_FOUND. */
static struct hub_agent *accept_for_agent(struct hub *h, struct rpc_call *c, const char *id,
                                          int valid, const struct ag_err *err)
{
    if (valid != 0) {
        rpc_call_fail(c, err);
        return NULL;
    }
    struct hub_agent *a = find_or_fail(h, c, id);
    if (a)
        rpc_call_ref(c); /* the actor's, until it answers */
    return a;
}

static void on_ping(struct rpc_call *c, grpc_byte_buffer *req)
{
    Agentry__V1__PingRequest *in = decode(c, req, &agentry__v1__ping_request__descriptor);
    if (!in)
        return;
    Agentry__V1__PingResponse r = AGENTRY__V1__PING_RESPONSE__INIT;
    r.payload = in->payload;
    r.version = AGENTRY_VERSION;
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
}

/* Spawn's check that some node can run the spec: INVALID_ARGUMENT if the nodes connected do not
 * offer its model or tools, unless nodes may still be joining (hub_opts.join_grace_ms). */
static int check_placeable(struct hub *h, const struct hub_sched_req *req, struct ag_err *err)
{
    struct ag_err e = AG_ERR_INIT;
    if (hub_sched_check(h->sched, req, &e) >= 0)
        return 0; /* some node can run it, or none is connected yet: it waits */
    /* Right after a start, nodes are still reconnecting: the one that offers it may be next. */
    if (!h->started_ms || ag_now_mono_ms() - h->started_ms < h->opts.join_grace_ms)
        return 0;
    *err = e;
    return -1;
}

static const Agentry__V1__AgentSpec empty_spec = AGENTRY__V1__AGENT_SPEC__INIT;

/* Everything Spawn and Invoke refuse, before anything is stored: the request's own limits, then
 * whether any node can run the spec at all (a misspelt model would otherwise wait forever). */
static int check_spawn(struct hub *h, const Agentry__V1__AgentSpec *spec, const char *input,
                       bool input_required, const char *request_id, struct ag_err *err)
{
    if (hub_validate_spec(spec, err) != 0 || hub_validate_input(input, input_required, err) != 0)
        return -1;
    if (input && *input && hub_validate_input_payload(input, err) != 0)
        return -1;
    if (request_id && strlen(request_id) > MAX_REQUEST_ID)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "request_id is over %d bytes", MAX_REQUEST_ID);
    if (hub_validate_utf8("request_id", request_id, err) != 0)
        return -1;
    if (!spec)
        spec = &empty_spec;
    struct hub_sched_req req;
    hub_sched_req_init(&req, NULL, NULL, spec->model && *spec->model ? spec->model : "mock",
                       spec->tools, spec->n_tools);
    return check_placeable(h, &req, err);
}

static void on_spawn(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__SpawnRequest *in = decode(c, req, &agentry__v1__spawn_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    if (check_spawn(h, in->spec, in->input, false, in->request_id, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    rpc_call_ref(c); /* the actor's, until it answers */
    hub_actor_spawn(h, c, in->spec ? in->spec : &empty_spec, in->input, in->request_id, false);
}

static void on_invoke(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__InvokeRequest *in = decode(c, req, &agentry__v1__invoke_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    if (check_spawn(h, in->spec, in->input, true, in->request_id, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    struct hub_waiter *w = rpc_call_state(c);
    w->call = c;
    rpc_call_ref(c); /* the actor's, until it answers */
    hub_actor_spawn(h, c, in->spec ? in->spec : &empty_spec, in->input, in->request_id, true);
}

static void on_invoke_close(struct rpc_call *c, bool cancelled)
{
    struct hub_waiter *w = rpc_call_state(c);
    struct hub_agent *a = atomic_load(&w->agent);
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    bool was = ag_list_linked(&w->link);
    ag_list_remove(&w->link);
    pthread_mutex_unlock(&a->lock);
    if (was)
        rpc_call_unref(c);
}

static void on_send(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__SendMessageRequest *in = decode(c, req,
                                                 &agentry__v1__send_message_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    int rc = hub_validate_input(in->input, true, &err);
    if (rc == 0)
        rc = hub_validate_input_payload(in->input, &err);
    struct hub_agent *a = accept_for_agent(h, c, in->agent_id, rc, &err);
    if (a)
        hub_actor_post_input(h, a, c, in->input);
}

static void on_kill(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__KillAgentRequest *in = decode(c, req,
                                               &agentry__v1__kill_agent_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    struct hub_agent *a = accept_for_agent(h, c, in->agent_id,
                                           hub_validate_kill_reason(in->reason, &err), &err);
    if (a)
        hub_actor_post_kill(h, a, c, in->reason);
}

static void on_resume(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ResumeAgentRequest *in = decode(c, req,
                                                 &agentry__v1__resume_agent_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    struct hub_agent *a = accept_for_agent(
        h, c, in->agent_id, hub_validate_resume_iterations(in->max_iterations, &err), &err);
    if (a)
        hub_actor_post_resume(h, a, c, in->max_iterations);
}

static void on_get(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__GetAgentRequest *in = decode(c, req, &agentry__v1__get_agent_request__descriptor);
    if (!in)
        return;
    struct hub_agent *a = find_or_fail(h, c, in->agent_id);
    if (!a)
        return;
    Agentry__V1__Agent out;
    pthread_mutex_lock(&a->lock);
    hub_agent_pb_fill(h, a, &out, rpc_call_arena(c));
    pthread_mutex_unlock(&a->lock);
    rpc_call_reply_take(c, rpc_pb_pack(&out.base));
}

/* --- ListAgents ------------------------------------------------------------------------------ */

/* hub.proto: a page stops before the packed response would pass 4 MiB, gRPC's default receive
 * limit, so that a client with default settings can read every page. */
#define LIST_MAX_BYTES (4 * 1024 * 1024)
/* The next_page_token field: tag, length and at most 20 decimal digits. */
#define LIST_TOKEN_BYTES 22
#define LIST_DEFAULT_PAGE 100
#define LIST_MAX_PAGE 1000

/* A ListAgents request, checked. The filters combine: an agent is listed if all of them hold. */
struct list_query {
    int state;              /* 0: any state */
    const char *name;       /* NULL: any name */
    const char *request_id; /* NULL: any; else at most one agent, found through the index */
    struct hub_selector sel;
    size_t page; /* agents per page */
    size_t pos;  /* list position to start from (the page token) */
};

static int list_query_init(const Agentry__V1__ListAgentsRequest *in, struct ag_arena *ar,
                           struct list_query *q, struct ag_err *err)
{
    if (!protobuf_c_enum_descriptor_get_value(&agentry__v1__agent_state__descriptor, in->state))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "state %d is not an AgentState value (0 means any state)",
                          (int)in->state);
    q->state = (int)in->state;
    q->page = in->page_size ? in->page_size : LIST_DEFAULT_PAGE;
    if (q->page > LIST_MAX_PAGE)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "page_size is over %d", LIST_MAX_PAGE);
    char *end = NULL;
    q->pos = in->page_token && *in->page_token ? strtoull(in->page_token, &end, 10) : 0;
    if (end && *end)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "page_token is not one this hub gave out");
    q->name = in->name && *in->name ? in->name : NULL;
    q->request_id = in->request_id && *in->request_id ? in->request_id : NULL;
    return hub_selector_parse(in->label_selector, ar, &q->sel, err);
}

/* The filters on the spec, which never changes: checked without the agent's lock. */
static bool list_spec_matches(const struct list_query *q, const struct hub_agent *a)
{
    const Agentry__V1__AgentSpec *sp = a->spec;
    if (q->name && strcmp(sp->name ? sp->name : "", q->name) != 0)
        return false;
    return hub_selector_match(&q->sel, sp->labels, sp->n_labels);
}

/* The agent as a message if it is listed from position `from` on, else NULL. An agent found
 * through the request-id index may still be being created (its Spawn has not committed): only
 * a visible agent is listed, as only a visible one can be read with GetAgent. */
static Agentry__V1__Agent *list_take(struct hub *h, const struct list_query *q, struct hub_agent *a,
                                     size_t from, struct ag_arena *ar)
{
    if (!list_spec_matches(q, a))
        return NULL;
    Agentry__V1__Agent *m = NULL;
    pthread_mutex_lock(&a->lock);
    if (a->visible && a->list_pos >= from && (!q->state || q->state == a->st.state)) {
        m = ag_arena_alloc(ar, sizeof(*m));
        hub_agent_pb_fill(h, a, m, ar);
    }
    pthread_mutex_unlock(&a->lock);
    return m;
}

static size_t varint_size(size_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

/* Bytes the agent adds to the packed response: tag, length, message. */
static size_t list_entry_size(const Agentry__V1__Agent *m)
{
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    return 1 + varint_size(n) + n;
}

/* Fill a page in list order from q->pos: up to q->page agents, stopping before the response
 * would pass LIST_MAX_BYTES, but never with an empty page while agents are left (a single agent
 * too big to fit is sent alone: the client must raise its limit to read it). */
static void list_scan(struct hub *h, const struct list_query *q, struct ag_arena *ar,
                      Agentry__V1__ListAgentsResponse *out)
{
    size_t total = hub_agents_count(&h->agents), pos = q->pos, bytes = LIST_TOKEN_BYTES;
    struct hub_agent *batch[HUB_AGENTS_BATCH];
    size_t k = 0, i = 0; /* batch[i] is the agent at pos */
    for (; pos < total && out->n_agents < q->page; pos++, i++) {
        if (i == k) { /* the list only grows: pos < total means k > 0 */
            size_t want = total - pos < HUB_AGENTS_BATCH ? total - pos : HUB_AGENTS_BATCH;
            k = hub_agents_snapshot(&h->agents, pos, batch, want);
            i = 0;
        }
        Agentry__V1__Agent *m = list_take(h, q, batch[i], 0, ar);
        if (!m)
            continue;
        size_t sz = list_entry_size(m);
        if (out->n_agents > 0 && bytes + sz > LIST_MAX_BYTES)
            break; /* this agent starts the next page */
        bytes += sz;
        out->agents[out->n_agents++] = m;
    }
    out->next_page_token = pos < total ? ag_arena_printf(ar, "%zu", pos) : "";
}

/* request_id names at most one agent: look it up in the index instead of scanning the list. A
 * page token past its position leaves nothing, as a scan would. */
static void list_by_request(struct hub *h, const struct list_query *q, struct ag_arena *ar,
                            Agentry__V1__ListAgentsResponse *out)
{
    struct hub_agent *a = hub_agents_claim_request(&h->agents, q->request_id, NULL);
    Agentry__V1__Agent *m = a ? list_take(h, q, a, q->pos, ar) : NULL;
    if (m)
        out->agents[out->n_agents++] = m;
    out->next_page_token = "";
}

static void on_list(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ListAgentsRequest *in = decode(c, req,
                                                &agentry__v1__list_agents_request__descriptor);
    if (!in)
        return;
    struct ag_arena *ar = rpc_call_arena(c);
    struct list_query q;
    struct ag_err err = AG_ERR_INIT;
    if (list_query_init(in, ar, &q, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    Agentry__V1__ListAgentsResponse out = AGENTRY__V1__LIST_AGENTS_RESPONSE__INIT;
    out.agents = ag_arena_alloc(ar, q.page * sizeof(*out.agents));
    if (q.request_id)
        list_by_request(h, &q, ar, &out);
    else
        list_scan(h, &q, ar, &out);
    rpc_call_reply_take(c, rpc_pb_pack(&out.base));
}

/* --- the actor's answers (hub_effects) --------------------------------------------------------- */

void hub_rpc_agent_reply(struct rpc_call *call, const struct hub_reply *r)
{
    if (r->kind == HUB_REPLY_SPAWNED) {
        Agentry__V1__SpawnResponse m = AGENTRY__V1__SPAWN_RESPONSE__INIT;
        m.agent_id = (char *)r->agent_id;
        m.existing = r->existing;
        m.input_seq = r->seq;
        m.state = (Agentry__V1__AgentState)r->state;
        rpc_call_reply_take(call, rpc_pb_pack(&m.base));
    } else if (r->kind == HUB_REPLY_SENT) {
        Agentry__V1__SendMessageResponse m = AGENTRY__V1__SEND_MESSAGE_RESPONSE__INIT;
        m.seq = r->seq;
        m.state = (Agentry__V1__AgentState)r->state;
        rpc_call_reply_take(call, rpc_pb_pack(&m.base));
    } else if (r->kind == HUB_REPLY_IMPORTED) {
        Agentry__V1__ImportAgentResponse m = AGENTRY__V1__IMPORT_AGENT_RESPONSE__INIT;
        m.agent_id = (char *)r->agent_id;
        m.events = r->seq;
        m.state = (Agentry__V1__AgentState)r->state;
        rpc_call_reply_take(call, rpc_pb_pack(&m.base));
    } else if (r->kind == HUB_REPLY_RESUMED) {
        Agentry__V1__ResumeAgentResponse m = AGENTRY__V1__RESUME_AGENT_RESPONSE__INIT;
        m.seq = r->seq;
        m.state = (Agentry__V1__AgentState)r->state;
        rpc_call_reply_take(call, rpc_pb_pack(&m.base));
    } else {
        Agentry__V1__KillAgentResponse m = AGENTRY__V1__KILL_AGENT_RESPONSE__INIT;
        m.seq = r->seq;
        m.already_killed = r->already_killed;
        rpc_call_reply_take(call, rpc_pb_pack(&m.base));
    }
}

/* --- waiters (agent lock held) -------------------------------------------------------------- */

void hub_rpc_agent_wait_first_turn(struct hub_agent *a, struct rpc_call *call)
{
    if (rpc_call_done(call))
        return;
    struct hub_waiter *w = rpc_call_state(call);
    w->call = call;
    ag_list_init(&w->link); /* before agent: on_invoke_close looks at the link once it is set */
    atomic_store(&w->agent, a);
    ag_list_insert_head(&a->waiters, &w->link);
    rpc_call_ref(call);
}

/* The next waiter, unlinked, or NULL. */
static struct hub_waiter *take_waiter(struct hub_agent *a)
{
    struct ag_list *first = ag_list_first(&a->waiters);
    if (!first)
        return NULL;
    ag_list_remove(first);
    return AG_LIST_ENTRY(first, struct hub_waiter, link);
}

void hub_rpc_agent_first_turn_ended(struct hub_agent *a)
{
    if (!a->first.done)
        return;
    if (ag_list_empty(&a->waiters))
        return;
    Agentry__V1__Usage u;
    hub_usage_to_pb(&a->first.usage, &u);
    Agentry__V1__InvokeResponse r = AGENTRY__V1__INVOKE_RESPONSE__INIT;
    r.agent_id = a->id;
    r.state = (Agentry__V1__AgentState)a->first.state;
    r.output = a->first.output ? a->first.output : "";
    r.error = a->first.error ? a->first.error : "";
    r.usage = &u;
    r.seq = a->first.seq;
    grpc_byte_buffer *bb = rpc_pb_pack(&r.base);
    for (struct hub_waiter *w; (w = take_waiter(a));) {
        rpc_call_reply_take(w->call, grpc_byte_buffer_copy(bb));
        rpc_call_unref(w->call);
    }
    grpc_byte_buffer_destroy(bb);
}

void hub_rpc_agent_fail_waiters(struct hub_agent *a, const struct ag_err *err)
{
    for (struct hub_waiter *w; (w = take_waiter(a));) {
        rpc_call_fail(w->call, err);
        rpc_call_unref(w->call);
    }
}

const struct rpc_method hub_rpc_agent_methods[] = {
    {.path = "/agentry.v1.AgentHub/Ping", .kind = RPC_UNARY, .preposted = 64, .on_call = on_ping},
    {.path = "/agentry.v1.AgentHub/Spawn", .kind = RPC_UNARY, .preposted = 32, .on_call = on_spawn},
    {.path = "/agentry.v1.AgentHub/SendMessage",
     .kind = RPC_UNARY,
     .preposted = 64,
     .on_call = on_send},
    {.path = "/agentry.v1.AgentHub/Invoke",
     .kind = RPC_UNARY,
     .preposted = 64,
     .state_size = sizeof(struct hub_waiter),
     .on_call = on_invoke,
     .on_close = on_invoke_close},
    {.path = "/agentry.v1.AgentHub/GetAgent", .kind = RPC_UNARY, .on_call = on_get},
    {.path = "/agentry.v1.AgentHub/ListAgents", .kind = RPC_UNARY, .on_call = on_list},
    {.path = "/agentry.v1.AgentHub/KillAgent", .kind = RPC_UNARY, .on_call = on_kill},
    {.path = "/agentry.v1.AgentHub/ResumeAgent", .kind = RPC_UNARY, .on_call = on_resume},
};
const size_t hub_rpc_agent_nmethods = AG_ARRAY_SIZE(hub_rpc_agent_methods);
