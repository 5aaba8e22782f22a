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

#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_pb.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/rpc_agent.h"
#include "hub/sched.h"
#include "hub/selector.h"
#include "hub/store.h"
#include "hub/validate.h"

struct hub_waiter {
    struct ag_list link; /* on agent->waiters while linked (guarded by the agent's lock) */
    struct rpc_call *call;
    _Atomic(struct hub_agent *) agent;
};

static bool refuse_if_closing(struct hub *h, struct rpc_call *c)
{
    if (!atomic_load(&h->closing))
        return false;
    rpc_call_finish(c, AG_UNAVAILABLE, "the hub is shutting down; retry on another hub or later");
    return true;
}

/* The agent, pinned (the caller unpins it), or NULL once the call is answered with the error. */
static struct hub_agent *find_or_fail(struct hub *h, struct rpc_call *c, const char *id)
{
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *a = hub_authn_get_agent(h, c, id, &err);
    if (!a)
        rpc_call_fail(c, &err);
    return a;
}

/* A request for one agent whose fields were checked (valid: 0, or -1 with err): the agent,
 * pinned, with a reference on the call that the actor answers and drops, or NULL once the call
 * is answered with the validation error or NOT_FOUND. */
static struct hub_agent *accept_for_agent(struct hub *h, struct rpc_call *c, const char *id,
                                          int valid, const struct ag_err *err)
{
    if (valid != 0) {
        rpc_call_fail(c, err);
        return NULL;
    }
    struct hub_agent *a = find_or_fail(h, c, id);
    if (a) {
        hub_authn_audit(c, a->id, a->ns, true, NULL); /* Send, Kill, Resume: all change it */
        rpc_call_ref(c);                              /* the actor's, until it answers */
    }
    return a;
}

static void on_ping(struct rpc_call *c, grpc_byte_buffer *req)
{
    Agentry__V1__PingRequest *in = rpc_call_unpack(c, req, &agentry__v1__ping_request__descriptor);
    if (!in)
        return;
    Agentry__V1__PingResponse r = AGENTRY__V1__PING_RESPONSE__INIT;
    r.payload = in->payload;
    r.version = AGENTRY_VERSION;
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
}

static const Agentry__V1__AgentSpec empty_spec = AGENTRY__V1__AGENT_SPEC__INIT;

/* A retry's request id (in its namespace) may name an agent that is only in the store now: hold
 * it in memory (*held, pinned; NULL if none) while Spawn finds it there. -1 once the call is
 * answered with the store's error. */
static int hold_request(struct hub *h, struct rpc_call *c, const char *ns, const char *request_id,
                        struct hub_agent **held)
{
    struct ag_err err = AG_ERR_INIT;
    *held = request_id && *request_id ? hub_loader_get_by_request(h, ns, request_id, &err) : NULL;
    if (err.code == AG_OK)
        return 0;
    rpc_call_fail(c, &err);
    return -1;
}

static void on_spawn(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__SpawnRequest *in = rpc_call_unpack(c, req,
                                                    &agentry__v1__spawn_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    if (hub_validate_spawn(h, in->spec, in->input, false, in->namespace_, in->request_id, &err) !=
            0 ||
        hub_authn_may_create(c, in->namespace_, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    hub_authn_audit(c, NULL, *in->namespace_ ? in->namespace_ : "default", true, NULL);
    struct hub_agent *held;
    if (hold_request(h, c, in->namespace_, in->request_id, &held) != 0)
        return;
    rpc_call_ref(c); /* the actor's, until it answers */
    hub_actor_spawn(h, c, in->spec ? in->spec : &empty_spec, in->input, in->namespace_,
                    in->request_id, false);
    hub_agents_unpin(&h->agents, held);
}

static void on_invoke(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__InvokeRequest *in = rpc_call_unpack(c, req,
                                                     &agentry__v1__invoke_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    if (hub_validate_spawn(h, in->spec, in->input, true, in->namespace_, in->request_id, &err) !=
            0 ||
        hub_authn_may_create(c, in->namespace_, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    hub_authn_audit(c, NULL, *in->namespace_ ? in->namespace_ : "default", true, NULL);
    struct hub_agent *held;
    if (hold_request(h, c, in->namespace_, in->request_id, &held) != 0)
        return;
    struct hub_waiter *w = rpc_call_state(c);
    w->call = c;
    rpc_call_ref(c); /* the actor's, until it answers */
    hub_actor_spawn(h, c, in->spec ? in->spec : &empty_spec, in->input, in->namespace_,
                    in->request_id, true);
    hub_agents_unpin(&h->agents, held);
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
    hub_agents_unpin(&((struct hub *)rpc_call_user(c))->agents, a); /* wait_first_turn's */
}

static void on_send(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__SendMessageRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__send_message_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    int rc = hub_validate_input(in->input, true, &err);
    if (rc == 0)
        rc = hub_validate_input_payload(in->input, &err);
    struct hub_agent *a = accept_for_agent(h, c, in->agent_id, rc, &err);
    if (a) {
        hub_actor_post_input(h, a, c, in->input);
        hub_agents_unpin(&h->agents, a); /* its mailbox holds it now */
    }
}

static void on_kill(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__KillAgentRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__kill_agent_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    struct hub_agent *a = accept_for_agent(h, c, in->agent_id,
                                           hub_validate_kill_reason(in->reason, &err), &err);
    if (a) {
        hub_actor_post_kill(h, a, c, in->reason);
        hub_agents_unpin(&h->agents, a); /* its mailbox holds it now */
    }
}

static void on_resume(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ResumeAgentRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__resume_agent_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    struct hub_agent *a = accept_for_agent(
        h, c, in->agent_id, hub_validate_resume_iterations(in->max_iterations, &err), &err);
    if (a) {
        hub_actor_post_resume(h, a, c, in->max_iterations);
        hub_agents_unpin(&h->agents, a); /* its mailbox holds it now */
    }
}

static void on_approve(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ApproveCallRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__approve_call_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    struct hub_agent *a = accept_for_agent(
        h, c, in->agent_id, hub_validate_decision(in->call_id, in->arguments, in->reason, &err),
        &err);
    if (a) {
        hub_actor_post_decide(h, a, c, in->call_id, true, in->arguments, in->reason);
        hub_agents_unpin(&h->agents, a); /* its mailbox holds it now */
    }
}

static void on_deny(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__DenyCallRequest *in = rpc_call_unpack(c, req,
                                                       &agentry__v1__deny_call_request__descriptor);
    struct ag_err err = AG_ERR_INIT;
    if (!in || refuse_if_closing(h, c))
        return;
    struct hub_agent *a = accept_for_agent(
        h, c, in->agent_id, hub_validate_decision(in->call_id, NULL, in->reason, &err), &err);
    if (a) {
        hub_actor_post_decide(h, a, c, in->call_id, false, NULL, in->reason);
        hub_agents_unpin(&h->agents, a); /* its mailbox holds it now */
    }
}

#define GET_MAX_CHILDREN 1000 /* hub.proto, Agent.children */

struct children_ctx {
    Agentry__V1__Agent *out;
    struct ag_arena *ar;
};

static int child_row(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                     struct ag_err *err)
{
    (void)last_seq;
    (void)err;
    struct children_ctx *x = arg;
    x->out->children[x->out->n_children++] = ag_arena_strdup(x->ar, row->id);
    return 0;
}

/* Agent.children: its first GET_MAX_CHILDREN sub-agents, through the store's parent index. */
static int get_children(struct hub *h, const char *id, struct ag_arena *ar, Agentry__V1__Agent *out,
                        struct ag_err *err)
{
    out->children = ag_arena_alloc(ar, GET_MAX_CHILDREN * sizeof(*out->children));
    out->n_children = 0;
    struct children_ctx x = {out, ar};
    struct hub_store_agents_query q = {
        .kind = HUB_STORE_AGENTS_PAGE, .parent_id = id, .max = GET_MAX_CHILDREN};
    return hub_store_select_agents(h->store, &q, child_row, &x, err);
}

static void on_get(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__GetAgentRequest *in = rpc_call_unpack(c, req,
                                                       &agentry__v1__get_agent_request__descriptor);
    if (!in)
        return;
    struct hub_agent *a = find_or_fail(h, c, in->agent_id);
    if (!a)
        return;
    Agentry__V1__Agent out;
    pthread_mutex_lock(&a->lock);
    hub_agent_pb_fill(h, a, &out, rpc_call_arena(c));
    pthread_mutex_unlock(&a->lock);
    struct ag_err err = AG_ERR_INIT;
    if (get_children(h, a->id, rpc_call_arena(c), &out, &err) != 0)
        rpc_call_fail(c, &err);
    else
        rpc_call_reply_take(c, rpc_pb_pack(&out.base));
    hub_agents_unpin(&h->agents, a);
}

/* --- ListAgents ------------------------------------------------------------------------------ */

/* hub.proto: a page stops before the packed response would pass 4 MiB, gRPC's default receive
 * limit, so that a client with default settings can read every page. */
#define LIST_MAX_BYTES (4 * 1024 * 1024)
/* The next_page_token field: tag, length, "<created_ns>.<id>". */
#define LIST_TOKEN_BYTES (2 + 20 + 1 + AG_ID_LEN)
#define LIST_DEFAULT_PAGE 100
#define LIST_MAX_PAGE 1000
/* Rows one store read brings (at least a page's worth), and reads one call makes at most while
 * filters skip rows: past them the page goes out short (even empty), with a token to go on. */
#define LIST_READ_ROWS 256
#define LIST_MAX_READS 16

/* A ListAgents request, checked. The filters combine: an agent is listed if all of them hold. */
struct list_query {
    int state;              /* 0: any state */
    const char *name;       /* NULL: any name */
    const char *request_id; /* NULL: any; else at most one agent, found through the index */
    const char *ns;         /* NULL: every namespace (request_id: "default") */
    const char *parent;     /* NULL: any; else only its sub-agents, through the parent index */
    struct rpc_call *call;  /* whose namespaces bound the listing (hub_authn_sees) */
    struct hub_selector sel;
    size_t page; /* agents per page */
    /* Where the page starts (the page token): after this agent in creation order. */
    int64_t after_ns;
    char after_id[AG_ID_LEN + 1]; /* "": from the first */
};

/* "<created_ns>.<id>": the last agent a page went through. */
static int list_token_parse(const char *tok, struct list_query *q, struct ag_err *err)
{
    q->after_id[0] = '\0';
    if (!tok || !*tok)
        return 0;
    char *end = NULL;
    long long ns = strtoll(tok, &end, 10);
    struct ag_err ignored = AG_ERR_INIT;
    if (!end || *end != '.' || hub_validate_agent_id(end + 1, &ignored) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "page_token is not one this hub gave out");
    q->after_ns = ns;
    snprintf(q->after_id, sizeof(q->after_id), "%s", end + 1);
    return 0;
}

static int list_query_init(struct rpc_call *c, const Agentry__V1__ListAgentsRequest *in,
                           struct ag_arena *ar, struct list_query *q, struct ag_err *err)
{
    q->call = c;
    if (!protobuf_c_enum_descriptor_get_value(&agentry__v1__agent_state__descriptor, in->state))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "state %d is not an AgentState value (0 means any state)",
                          (int)in->state);
    q->state = (int)in->state;
    q->page = in->page_size ? in->page_size : LIST_DEFAULT_PAGE;
    if (q->page > LIST_MAX_PAGE)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "page_size is over %d", LIST_MAX_PAGE);
    if (list_token_parse(in->page_token, q, err) != 0)
        return -1;
    q->name = in->name && *in->name ? in->name : NULL;
    q->request_id = in->request_id && *in->request_id ? in->request_id : NULL;
    q->parent = in->parent_id && *in->parent_id ? in->parent_id : NULL;
    if (q->parent && hub_validate_agent_id(q->parent, err) != 0)
        return -1;
    if (hub_validate_namespace(in->namespace_, err) != 0)
        return -1;
    q->ns = in->namespace_ && *in->namespace_ ? in->namespace_ : NULL;
    if (q->ns && hub_authn_may_create(c, q->ns, err) != 0) /* a namespace not the caller's */
        return -1;
    /* A caller of one namespace lists it through the store's namespace index. */
    const struct hub_principal *p = hub_authn_principal(c);
    if (!q->ns && !p->all_namespaces && p->ngrant_ns == 1)
        q->ns = p->grant_ns[0];
    return hub_selector_parse(in->label_selector, ar, &q->sel, err);
}

/* The filters on the spec and the namespace, which never change: checked without the agent's
 * lock. */
static bool list_spec_matches(const struct list_query *q, const struct hub_agent *a)
{
    const Agentry__V1__AgentSpec *sp = a->spec;
    if (q->ns && strcmp(a->ns, q->ns) != 0)
        return false;
    if (q->parent && strcmp(a->parent_id, q->parent) != 0)
        return false;
    if (!hub_authn_sees(q->call, a->ns)) /* listed as if it did not exist */
        return false;
    if (q->name && strcmp(sp->name ? sp->name : "", q->name) != 0)
        return false;
    return hub_selector_match(&q->sel, sp->labels, sp->n_labels);
}

/* Is the agent after the page token, in creation order? */
static bool list_after_token(const struct list_query *q, const struct hub_agent *a)
{
    if (!q->after_id[0])
        return true;
    return a->created_ns > q->after_ns ||
           (a->created_ns == q->after_ns && strcmp(a->id, q->after_id) > 0);
}

/* The agent as a message if the filters list it, else NULL. An agent found through the
 * request-id index may still be being created (its Spawn has not committed): only a visible
 * agent is listed, as only a visible one can be read with GetAgent. */
static Agentry__V1__Agent *list_take(struct hub *h, const struct list_query *q, struct hub_agent *a,
                                     struct ag_arena *ar)
{
    if (!list_spec_matches(q, a))
        return NULL;
    Agentry__V1__Agent *m = NULL;
    pthread_mutex_lock(&a->lock);
    if (a->visible && (!q->state || q->state == a->st.state)) {
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

/* One store page of rows, as agents built from them (not held: a read copy). */
struct list_rows {
    struct hub_agent **a;
    size_t n;
};

/* The agents a page's messages borrow from (hub_agent_pb_fill), released once it is packed:
 * held ones are unpinned, read copies freed. */
struct list_keep {
    struct hub_agent **a;
    bool *copy;
    size_t n, cap;
};

static void keep_add(struct list_keep *k, struct hub_agent *a, bool copy)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->a = ag_xrealloc(k->a, k->cap * sizeof(*k->a));
        k->copy = ag_xrealloc(k->copy, k->cap * sizeof(*k->copy));
    }
    k->a[k->n] = a;
    k->copy[k->n++] = copy;
}

static void keep_release(struct hub *h, struct list_keep *k)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->copy[i])
            hub_agent_free(NULL, k->a[i]);
        else
            hub_agents_unpin(&h->agents, k->a[i]);
    }
    free(k->a);
    free(k->copy);
}

static int list_row(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                    struct ag_err *err)
{
    struct list_rows *r = arg;
    struct hub_agent *a = hub_agent_from_row(row, last_seq, err);
    if (!a)
        return -1;
    r->a[r->n++] = a;
    return 0;
}

/* Fill a page in creation order after the token, from the store (an index range: by namespace
 * and by state when they are asked for): up to q->page agents, stopping before the response would pass
 * LIST_MAX_BYTES, but never with an empty page while agents are left, unless the filters skipped
 * LIST_MAX_READS store pages (a single agent too big to fit is sent alone: the client must raise
 * its limit to read it). An agent the hub holds is listed as it is in memory. */
static int list_scan(struct hub *h, struct list_query *q, struct ag_arena *ar,
                     Agentry__V1__ListAgentsResponse *out, struct list_keep *keep,
                     struct ag_err *err)
{
    size_t bytes = LIST_TOKEN_BYTES;
    size_t chunk = q->page > LIST_READ_ROWS ? q->page : LIST_READ_ROWS;
    struct hub_store_agents_query sq = {.kind = HUB_STORE_AGENTS_PAGE,
                                        .namespace = q->ns,
                                        .state = q->state,
                                        .parent_id = q->parent,
                                        .max = chunk};
    struct list_rows r = {.a = ag_xcalloc(chunk, sizeof(*r.a))};
    bool stop = false, left = true; /* the page is done; rows are left after the token */
    int rc = 0;
    for (int reads = 0; rc == 0 && !stop && left && reads < LIST_MAX_READS; reads++) {
        sq.after_ns = q->after_ns;
        sq.after_id = q->after_id;
        r.n = 0;
        rc = hub_store_select_agents(h->store, &sq, list_row, &r, err);
        left = r.n == chunk; /* the store may hold more after this read */
        for (size_t i = 0; i < r.n; i++) {
            struct hub_agent *row = r.a[i];
            if (stop || rc != 0) {
                hub_agent_free(NULL, row);
                continue;
            }
            struct hub_agent *held = hub_agents_find(&h->agents, row->id);
            Agentry__V1__Agent *m = list_take(h, q, held ? held : row, ar);
            if (held)
                keep_add(keep, held, false);
            size_t sz = m ? list_entry_size(m) : 0;
            if (m && out->n_agents > 0 && bytes + sz > LIST_MAX_BYTES) {
                stop = left = true; /* this agent starts the next page */
            } else {
                q->after_ns = row->created_ns;
                snprintf(q->after_id, sizeof(q->after_id), "%s", row->id);
                if (m) {
                    bytes += sz;
                    out->agents[out->n_agents++] = m;
                }
                if (out->n_agents == q->page) {
                    stop = true;
                    left = left || i + 1 < r.n;
                }
                if (m && !held) {
                    keep_add(keep, row, true); /* m borrows from it: freed with the page */
                    continue;
                }
            }
            hub_agent_free(NULL, row);
        }
    }
    free(r.a);
    out->next_page_token = rc == 0 && left
                               ? ag_arena_printf(ar, "%" PRId64 ".%s", q->after_ns, q->after_id)
                               : "";
    return rc;
}

/* request_id names at most one agent: found by its index, in memory or the store. A page token
 * at or past it leaves nothing, as a scan would. */
static int list_by_request(struct hub *h, const struct list_query *q, struct ag_arena *ar,
                           Agentry__V1__ListAgentsResponse *out, struct list_keep *keep,
                           struct ag_err *err)
{
    struct hub_agent *a = hub_loader_get_by_request(h, q->ns, q->request_id, err);
    Agentry__V1__Agent *m = a && list_after_token(q, a) ? list_take(h, q, a, ar) : NULL;
    if (a)
        keep_add(keep, a, false);
    if (m)
        out->agents[out->n_agents++] = m;
    out->next_page_token = "";
    return err->code == AG_OK ? 0 : -1;
}

static void on_list(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ListAgentsRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__list_agents_request__descriptor);
    if (!in)
        return;
    struct ag_arena *ar = rpc_call_arena(c);
    struct list_query q;
    struct ag_err err = AG_ERR_INIT;
    if (list_query_init(c, in, ar, &q, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    Agentry__V1__ListAgentsResponse out = AGENTRY__V1__LIST_AGENTS_RESPONSE__INIT;
    out.agents = ag_arena_alloc(ar, q.page * sizeof(*out.agents));
    struct list_keep keep = {0};
    int rc = q.request_id ? list_by_request(h, &q, ar, &out, &keep, &err)
                          : list_scan(h, &q, ar, &out, &keep, &err);
    if (rc != 0)
        rpc_call_fail(c, &err);
    else
        rpc_call_reply_take(c, rpc_pb_pack(&out.base));
    keep_release(h, &keep);
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
    } else if (r->kind == HUB_REPLY_DECIDED) {
        /* ApproveCallResponse and DenyCallResponse are the same message on the wire. */
        Agentry__V1__ApproveCallResponse m = AGENTRY__V1__APPROVE_CALL_RESPONSE__INIT;
        m.seq = r->seq;
        m.already = r->already;
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
    /* Until on_invoke_close, which takes the agent's lock after the waiter was answered. */
    hub_agents_pin(&((struct hub *)rpc_call_user(call))->agents, a);
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
    {.path = "/agentry.v1.AgentHub/ApproveCall", .kind = RPC_UNARY, .on_call = on_approve},
    {.path = "/agentry.v1.AgentHub/DenyCall", .kind = RPC_UNARY, .on_call = on_deny},
};
const size_t hub_rpc_agent_nmethods = AG_ARRAY_SIZE(hub_rpc_agent_methods);
