/* hub/rpc_node.c - NodeService.Connect: one bidirectional stream per node.
 *
 * Up: Register first (validated; refused with ALREADY_EXISTS while a live node of another
 * process holds the id; else answered with Registered, which states the hub's size limits, and
 * the node joins scheduling), then Heartbeats, EventBatches, StateRequests (answered by
 * hub/rpc_assign.c), Releaseds (a drained turn stopped at a step boundary: placed again) and
 * HubToolCalls (hub/hub_tool.c answers them). A batch is checked whole before
 * anything is queued: a node may only speak for agents whose current assignment it was given (or
 * an older one: stale events are acknowledged and dropped), and no payload may pass the limit.
 * Anything else ends the stream. The accepted events go to their agents' mailboxes; the EventAck
 * goes out once every one of them is durable.
 * After Registered a node may send Workspaces (pages of the agent ids whose workspace
 * directories it holds): the hub answers with a Forget of those it has neither in memory nor in
 * its store (deleted while that node was away). DeleteAgent sends Forget to every node.
 * Down: Assignment (built by hub/rpc_assign.c), Deliver, Cancel, Release, EventAck, through the call's
 * bounded send queue; a node that
 * cannot keep up is disconnected rather than buffered without bound.
 * Flow control: at most CONN_MAX_INFLIGHT batches and CONN_MAX_INFLIGHT_BYTES per node wait for
 * the store; past that the hub stops reading the stream, and HTTP/2 pushes back on the node.
 * Threads: callbacks for one stream are serialized on its CQ thread; batch completions come from
 * the store's writer thread (atomics and the batch mutex). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hooks.h"
#include "hub/hub.h"
#include "hub/hub_internal.h"
#include "hub/hub_tool.h"
#include "hub/limits.h"
#include "hub/loader.h"
#include "hub/node.h"
#include "hub/rpc_assign.h"
#include "hub/rpc_node.h"
#include "hub/sched.h"
#include "hub/store.h"
#include "hub/validate.h"

#define CONN_MAX_INFLIGHT 64
#define CONN_MAX_INFLIGHT_BYTES (64u << 20)
#define MAX_BATCH_EVENTS 1024
#define MAX_OFFERS 256 /* Register.models and .tools entries */
#define MAX_MODEL_NAME 128
#define MAX_TOOL_NAME 64
#define MAX_VERSION 128
#define MAX_ADDRESS 256
#define NODE_FORGET_PAGE 1000 /* agent ids per Workspaces or Forget (node.proto) */

struct node_conn {
    struct hub *h;
    struct hub_node *node; /* after Register (reference held) */
    atomic_int inflight;
    atomic_size_t inflight_bytes;
    atomic_bool paused;
};

struct hub_ev_batch {
    struct rpc_call *call; /* reference held */
    struct hub_node *node; /* reference held */
    size_t bytes;          /* the message's size, for flow control */
    struct ag_arena arena;
    Agentry__V1__EventBatch *msg;
    uint64_t *seqs;
    pthread_mutex_t lock;
    size_t remaining;
    bool failed;
    struct ag_err err;
};

/* --- sending down ----------------------------------------------------------------------------- */

void hub_rpc_node_close_stream(struct hub *h, struct hub_node *n, enum ag_code code,
                               const char *msg)
{
    (void)h;
    rpc_call_finish(n->stream, code, msg);
}

void hub_rpc_node_deliver(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                          uint64_t seq, const char *text)
{
    Agentry__V1__Input in = AGENTRY__V1__INPUT__INIT;
    in.seq = seq;
    in.text = (char *)text;
    Agentry__V1__Deliver d = AGENTRY__V1__DELIVER__INIT;
    d.agent_id = (char *)agent_id;
    d.epoch = epoch;
    d.input = &in;
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_DELIVER;
    m.deliver = &d;
    hub_node_send(n, &m);
}

void hub_rpc_node_release(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                          const char *reason)
{
    (void)h;
    Agentry__V1__Release r = AGENTRY__V1__RELEASE__INIT;
    r.agent_id = (char *)agent_id;
    r.epoch = epoch;
    r.reason = (char *)reason;
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_RELEASE;
    m.release = &r;
    hub_node_send(n, &m);
}

void hub_rpc_node_cancel(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                         const char *reason)
{
    Agentry__V1__Cancel c = AGENTRY__V1__CANCEL__INIT;
    c.agent_id = (char *)agent_id;
    c.epoch = epoch;
    c.reason = (char *)reason;
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_CANCEL;
    m.cancel = &c;
    hub_node_send(n, &m);
}

void hub_rpc_node_state(struct hub *h, struct hub_node *n, bool always)
{
    struct hub_sched_node_info info;
    hub_sched_node_info(h->sched, n, &info);
    if (!always && !info.cordoned && !info.draining)
        return;
    Agentry__V1__NodeState st = AGENTRY__V1__NODE_STATE__INIT;
    st.cordoned = info.cordoned;
    st.draining = info.draining;
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_NODE_STATE;
    m.node_state = &st;
    hub_node_send(n, &m);
}

static void forget_one(struct hub_node *n, const char *const *ids, size_t nids)
{
    for (size_t at = 0; at < nids; at += NODE_FORGET_PAGE) {
        Agentry__V1__Forget f = AGENTRY__V1__FORGET__INIT;
        f.agent_ids = (char **)ids + at;
        f.n_agent_ids = nids - at < NODE_FORGET_PAGE ? nids - at : NODE_FORGET_PAGE;
        Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
        m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_FORGET;
        m.forget = &f;
        hub_node_send(n, &m);
    }
}

void hub_rpc_node_forget(struct hub *h, struct hub_node *n, const char *const *ids, size_t nids)
{
    if (n) {
        forget_one(n, ids, nids);
        return;
    }
    /* A node not connected now is told when it next sends its Workspaces. */
    struct hub_node *nodes[1024];
    size_t k = hub_sched_nodes(h->sched, nodes, AG_ARRAY_SIZE(nodes));
    for (size_t i = 0; i < k; i++) {
        forget_one(nodes[i], ids, nids);
        hub_sched_node_unref(h->sched, nodes[i]);
    }
}

/* --- workspaces (node.proto, Workspaces) ----------------------------------------------------- */

/* A page of a node's Workspaces, checked against the agents the hub has on the timer thread:
 * the store's keyed reads are not for a stream's CQ thread. */
struct ws_check {
    struct hub *h;
    struct hub_node *node; /* reference held */
    char (*ids)[AG_ID_LEN + 1];
    size_t n;
};

static int ws_found(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                    struct ag_err *err)
{
    (void)row;
    (void)last_seq;
    (void)err;
    *(bool *)arg = true;
    return 0;
}

/* Does the hub have this agent, in memory (agents may also be evicted) or in the store? An
 * unreadable store counts as yes: a workspace is removed only for an agent known to be gone. */
static bool ws_has_agent(struct hub *h, const char *id)
{
    struct hub_agent *a = hub_agents_find(&h->agents, id);
    if (a) {
        hub_agents_unpin(&h->agents, a);
        return true;
    }
    bool found = false;
    struct ag_err err = AG_ERR_INIT;
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ID, .key = id};
    if (hub_store_select_agents(h->store, &q, ws_found, &found, &err) != 0) {
        ag_log_warn("node.workspaces_unchecked", "agent=%s err=%s", id, ag_log_q(err.msg));
        return true;
    }
    return found;
}

static void ws_check_fire(void *arg)
{
    struct ws_check *x = arg;
    const char **gone = ag_xcalloc(x->n ? x->n : 1, sizeof(*gone));
    size_t ngone = 0;
    for (size_t i = 0; i < x->n && !atomic_load(&x->h->closing); i++)
        if (!ws_has_agent(x->h, x->ids[i]))
            gone[ngone++] = x->ids[i];
    if (ngone) {
        ag_log_info("node.forget_sent", "node=%s agents=%zu", x->node->id, ngone);
        hub_rpc_node_forget(x->h, x->node, gone, ngone);
    }
    free(gone);
    hub_sched_node_unref(x->h->sched, x->node);
    free(x->ids);
    free(x);
}

static void on_workspaces(struct hub *h, struct hub_node *n, const Agentry__V1__Workspaces *w)
{
    struct ws_check *x = ag_xcalloc(1, sizeof(*x));
    x->h = h;
    x->node = n;
    hub_sched_node_ref(h->sched, n);
    size_t max = w->n_agent_ids < NODE_FORGET_PAGE ? w->n_agent_ids : NODE_FORGET_PAGE;
    x->ids = ag_xcalloc(max ? max : 1, sizeof(*x->ids));
    struct ag_err err = AG_ERR_INIT;
    for (size_t i = 0; i < max; i++) /* a name that is no agent id is none of the hub's */
        if (hub_validate_agent_id(w->agent_ids[i], &err) == 0)
            snprintf(x->ids[x->n++], AG_ID_LEN + 1, "%s", w->agent_ids[i]);
    ag_timers_add(h->timers, 0, ws_check_fire, x);
}

/* --- node lifecycle ------------------------------------------------------------------------- */

static void interrupt_if_on(struct hub *h, struct hub_agent *a, struct hub_node *n,
                            const char *reason)
{
    pthread_mutex_lock(&a->lock);
    bool hit = a->st.node == n && a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING;
    uint64_t epoch = a->st.epoch;
    pthread_mutex_unlock(&a->lock);
    if (hit)
        hub_actor_post_interrupt(h, a, n, epoch, reason, atomic_load(&h->closing));
}

void hub_rpc_node_lost(struct hub *h, struct hub_node *n, const char *reason)
{
    hub_sched_remove_node(h->sched, n, reason);
    ag_log_info("node.lost", "node=%s reason=%s", n->id, ag_log_q(reason));
    struct hub_hook_event ev = {.kind = HUB_HOOK_NODE_LOST, .node_id = n->id, .reason = reason};
    hub_hooks_run(&h->hooks, &ev);
    /* Only this node's agents: copied (and pinned) under the list's lock, then each checked
     * under its own (the lock order is agent, then list). */
    pthread_mutex_lock(&h->node_agents_lock);
    size_t k = 0, cap = 16;
    struct hub_agent **on = ag_xmalloc(cap * sizeof(*on));
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &n->agents)
    {
        if (k == cap)
            on = ag_xrealloc(on, (cap *= 2) * sizeof(*on));
        on[k] = AG_LIST_ENTRY(pos, struct hub_agent, on_node);
        hub_agents_pin(&h->agents, on[k++]);
    }
    pthread_mutex_unlock(&h->node_agents_lock);
    for (size_t i = 0; i < k; i++) {
        interrupt_if_on(h, on[i], n, reason);
        hub_agents_unpin(&h->agents, on[i]);
    }
    free(on);
}

/* A turn this node was asked to release stopped at a step boundary, every event of it stored:
 * it goes on elsewhere. Not counted against the turn (graceful), since the operator moved it. A
 * Released for a turn that is no longer this node's current one is ignored (the interrupt
 * command checks node and epoch again when it is decided). */
static void on_released(struct hub *h, struct hub_node *n, const Agentry__V1__Released *r)
{
    if (!r->agent_id)
        return;
    struct hub_agent *a = hub_agents_find(&h->agents, r->agent_id);
    if (!a)
        return;
    char why[HUB_REASON_MAX];
    snprintf(why, sizeof(why), "node %s is draining", n->id);
    ag_log_info("agent.released", "agent=%s node=%s epoch=%" PRIu64, r->agent_id, n->id, r->epoch);
    hub_actor_post_interrupt(h, a, n, r->epoch, why, true);
    hub_agents_unpin(&h->agents, a);
}

void hub_node_unregistered(struct hub *h, const char *node_id, const char *instance_id,
                           const char *why)
{
    struct hub_node *n = hub_sched_node_by_id(h->sched, node_id);
    if (!n)
        return;
    /* Another process with the id (it registered again) is not this registration's. */
    if (!instance_id || !*instance_id || strcmp(n->instance_id, instance_id) == 0) {
        char reason[HUB_REASON_MAX];
        snprintf(reason, sizeof(reason), "node lost (%s)", why);
        /* Lost first: the stream's own end would otherwise be the reason recorded. */
        hub_rpc_node_lost(h, n, reason);
        hub_rpc_node_close_stream(h, n, AG_ABORTED, reason);
    }
    hub_sched_node_unref(h->sched, n);
}

static bool node_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n <= HUB_NODE_ID_MAX && hub_validate_name_chars_ok(id, "._-");
}

static int check_names(const char *what, char *const *v, size_t n, size_t max_len,
                       struct ag_err *err)
{
    if (n > MAX_OFFERS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s has %zu entries; the limit is %d", what, n,
                          MAX_OFFERS);
    for (size_t i = 0; i < n; i++) {
        if (!v[i][0] || strlen(v[i]) > max_len)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "%s entries must be 1..%zu bytes", what,
                              max_len);
        if (hub_validate_utf8(what, v[i], err) != 0)
            return -1;
    }
    return 0;
}

/* Everything Register says, checked before the node exists for anyone. */
static int check_register(const Agentry__V1__Register *r, struct ag_err *err)
{
    if (!r->node_id || !node_id_ok(r->node_id))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "node_id must be 1..128 characters of [A-Za-z0-9._-]");
    if (r->capacity < 1 || r->capacity > 100000)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "capacity must be in 1..100000");
    if (r->cpu_milli > HUB_SCHED_CPU_MAX || r->memory_bytes > HUB_SCHED_MEMORY_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "cpu_milli must be at most %u (1000 cores) and memory_bytes at most "
                          "%" PRIu64 " (16 TiB)",
                          HUB_SCHED_CPU_MAX, HUB_SCHED_MEMORY_MAX);
    if (hub_validate_utf8("version", r->version, err) != 0)
        return -1;
    if (r->version && strlen(r->version) > MAX_VERSION)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "version is over %d bytes", MAX_VERSION);
    if (hub_validate_utf8("address", r->address, err) != 0)
        return -1;
    if (r->address && strlen(r->address) > MAX_ADDRESS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "address is over %d bytes", MAX_ADDRESS);
    if (r->instance_id && (strlen(r->instance_id) > HUB_NODE_INSTANCE_MAX ||
                           hub_validate_utf8("instance_id", r->instance_id, err) != 0))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "instance_id must be at most %d bytes of "
                          "UTF-8",
                          HUB_NODE_INSTANCE_MAX);
    if (check_names("models", r->models, r->n_models, MAX_MODEL_NAME, err) != 0 ||
        check_names("tools", r->tools, r->n_tools, MAX_TOOL_NAME, err) != 0)
        return -1;
    const char *keys[64], *values[64];
    for (size_t i = 0; i < r->n_labels && i < 64; i++) {
        keys[i] = r->labels[i]->key;
        values[i] = r->labels[i]->value;
    }
    return hub_validate_labels("labels", r->n_labels, keys, values, err);
}

static struct hub_node *node_new(struct hub *h, struct rpc_call *c, const Agentry__V1__Register *r)
{
    struct hub_node *n = hub_node_new(r->node_id, r->instance_id, c); /* the connection's ref */
    n->capacity.slots = r->capacity;
    n->capacity.cpu_milli = r->cpu_milli;
    n->capacity.mem_bytes = r->memory_bytes;
    n->instance = atomic_fetch_add(&h->node_instances, 1) + 1;
    n->process_key = ag_hash_fnv1a_str(n->instance_id);
    n->keeps_state = r->keeps_state;
    for (size_t i = 0; i < r->n_labels; i++)
        hub_node_add_label(n, r->labels[i]->key, r->labels[i]->value);
    n->version = ag_xstrdup(r->version ? r->version : "");
    n->address = ag_xstrdup(r->address ? r->address : "");
    n->started_ns = r->started_ns;
    n->connected_ns = ag_now_unix_ns();
    hub_node_offer(n, r->models, r->n_models, r->tools, r->n_tools);
    n->last_seen_ms = ag_now_mono_ms();
    return n;
}

/* Under the scheduler lock (hub_sched_join_req.admitted): Registered goes out before any slot on
 * the node can be handed out, so it precedes every Assignment. */
static void send_registered(void *arg, struct hub_node *n)
{
    struct hub *h = arg;
    Agentry__V1__Registered ok = AGENTRY__V1__REGISTERED__INIT;
    ok.node_id = n->id;
    ok.heartbeat_interval_ms = h->opts.heartbeat_ms;
    ok.hub_version = AGENTRY_VERSION;
    ok.max_message_bytes = HUB_MAX_NODE_MESSAGE;
    ok.max_payload_bytes = HUB_MAX_PAYLOAD;
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_REGISTERED;
    m.registered = &ok;
    struct ag_err err = AG_ERR_INIT;
    rpc_call_send_take(n->stream, rpc_pb_pack(&m.base), &err); /* a full queue: it is gone */
}

static void refuse_duplicate(struct rpc_call *c, struct hub_node *n, struct hub_node *live,
                             int64_t now_ms)
{
    char msg[320];
    snprintf(msg, sizeof(msg),
             "node id '%s' is in use by a live node (connected from %s, heard from %" PRId64
             " ms ago); stop that node or choose another --node-id",
             n->id, rpc_call_peer(live->stream), now_ms - live->last_seen_ms);
    ag_log_warn("node.refused", "node=%s peer=%s reason=%s", n->id, rpc_call_peer(c),
                ag_log_q("id in use by a live node"));
    rpc_call_finish(c, AG_ALREADY_EXISTS, msg);
}

static void on_register(struct rpc_call *c, struct node_conn *nc, const Agentry__V1__Register *r)
{
    struct hub *h = nc->h;
    struct ag_err err = AG_ERR_INIT;
    if (check_register(r, &err) != 0 || hub_authn_check_node_id(c, r->node_id, &err) != 0) {
        ag_log_warn("node.refused", "node=%s peer=%s reason=%s", r->node_id ? r->node_id : "",
                    rpc_call_peer(c), ag_log_q(err.msg));
        rpc_call_fail(c, &err);
        return;
    }
    struct hub_node *n = node_new(h, c, r);
    struct hub_node *other = NULL;
    enum hub_sched_join outcome;
    struct hub_sched_decision d[256];
    int64_t now = ag_now_mono_ms();
    struct hub_sched_join_req j = {.node = n,
                                   .now_ms = now,
                                   .alive_ms = 3 * (int64_t)h->opts.heartbeat_ms,
                                   .admitted = send_registered,
                                   .arg = h};
    size_t k = hub_sched_add_node(h->sched, &j, &outcome, &other, d, AG_ARRAY_SIZE(d));
    if (outcome == HUB_SCHED_REFUSED) {
        refuse_duplicate(c, n, other, now);
        hub_sched_node_unref(h->sched, other);
        hub_sched_node_unref(h->sched, n);
        return;
    }
    nc->node = n;
    hub_rpc_node_state(h, n, false); /* a cordon or drain outlives the node's connection */
    struct hub_hook_event joined = {.kind = HUB_HOOK_NODE_JOINED, .node_id = n->id};
    hub_hooks_run(&h->hooks, &joined);
    char labels[sizeof(struct ag_log_qbuf)];
    hub_node_labels_format(n, labels, sizeof(labels));
    ag_log_info("node.registered",
                "node=%s capacity=%u labels=%s models=%zu tools=%zu "
                "version=%s instance=%s peer=%s",
                n->id, n->capacity.slots, ag_log_q(labels), n->nmodels, n->ntools, n->version,
                ag_log_q(n->instance_id), rpc_call_peer(c));
    if (other) {
        ag_log_warn("node.replaced", "node=%s", other->id);
        hub_rpc_node_close_stream(h, other, AG_ABORTED,
                                  "replaced by a newer connection with the same node id");
        hub_rpc_node_lost(h, other, "node replaced by a new connection");
        hub_sched_node_unref(h->sched, other);
    }
    hub_actor_dispatch(h, d, k);
    /* More agents may wait than one array holds: keep handing out slots while they fit. */
    while (k == AG_ARRAY_SIZE(d)) {
        k = hub_sched_drain(h->sched, d, AG_ARRAY_SIZE(d));
        hub_actor_dispatch(h, d, k);
    }
}

/* --- event batches -------------------------------------------------------------------------- */

static bool node_kind(int kind)
{
    return (kind >= AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST &&
            kind <= AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR) ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_DELTA ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED;
}

static void unpin_agents(struct hub *h, struct hub_agent **agents, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hub_agents_unpin(&h->agents, agents[i]);
}

/* One event of a batch: well formed, for an agent this node holds or held (*a, pinned). */
static int check_event(struct hub *h, struct hub_node *n, const Agentry__V1__NodeEvent *ev,
                       size_t i, struct hub_agent **a, struct ag_err *err)
{
    *a = NULL;
    if (!node_kind(ev->kind))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "event %zu has kind %d, which nodes may "
                          "not send",
                          i, (int)ev->kind);
    if (ev->payload && strlen(ev->payload) > HUB_MAX_PAYLOAD)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "event %zu has a payload of %zu bytes; the limit is %u (Registered."
                          "max_payload_bytes): end the turn with an ERROR instead",
                          i, strlen(ev->payload), HUB_MAX_PAYLOAD);
    if (hub_validate_utf8("event payload", ev->payload, err) != 0 ||
        (ev->result && (hub_validate_utf8("result.output", ev->result->output, err) != 0 ||
                        hub_validate_utf8("result.error", ev->result->error, err) != 0)))
        return -1;
    /* A straggler may name an agent at rest that left memory since: load it to judge. */
    struct ag_err lookup = AG_ERR_INIT;
    *a = ev->agent_id && *ev->agent_id ? hub_loader_get(h, ev->agent_id, &lookup) : NULL;
    if (!*a && lookup.code != AG_OK && lookup.code != AG_NOT_FOUND &&
        lookup.code != AG_INVALID_ARGUMENT) {
        *err = lookup;
        return -1;
    }
    if (!*a)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "node '%s' sent events for agent '%.64s', which does not exist", n->id,
                          ev->agent_id ? ev->agent_id : "");
    pthread_mutex_lock(&(*a)->lock);
    bool bad = ev->epoch > (*a)->st.epoch ||
               (ev->epoch == (*a)->st.epoch && strcmp((*a)->st.node_id, n->id) != 0) ||
               (ev->epoch < (*a)->st.epoch && !hub_agent_held(*a, ev->epoch, n->instance));
    pthread_mutex_unlock(&(*a)->lock);
    if (!bad)
        return 0;
    ag_err_set(err, AG_FAILED_PRECONDITION, "node '%s' does not hold agent '%s' at epoch %" PRIu64,
               n->id, (*a)->id, ev->epoch);
    hub_agents_unpin(&h->agents, *a);
    *a = NULL;
    return -1;
}

/* Every event must belong to an agent this node holds (or held): else the node and the hub
 * disagree about who runs what, and the node must reconnect to resynchronise. Pins each event's
 * agent (agents[i]) until its events are posted (on_events), or none when it fails. */
static int check_batch(struct hub *h, struct hub_node *n, const Agentry__V1__EventBatch *b,
                       struct hub_agent **agents, struct ag_err *err)
{
    if (b->n_events > MAX_BATCH_EVENTS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "batch of %zu events; the limit is %d",
                          b->n_events, MAX_BATCH_EVENTS);
    for (size_t i = 0; i < b->n_events; i++) {
        if (check_event(h, n, b->events[i], i, &agents[i], err) != 0) {
            unpin_agents(h, agents, i);
            return -1;
        }
    }
    return 0;
}

static void batch_free(struct hub *h, struct hub_ev_batch *b)
{
    rpc_call_unref(b->call);
    hub_sched_node_unref(h->sched, b->node);
    ag_arena_release(&b->arena);
    pthread_mutex_destroy(&b->lock);
    free(b->seqs);
    free(b);
}

static bool room_for_more(struct node_conn *nc)
{
    return atomic_load(&nc->inflight) < CONN_MAX_INFLIGHT &&
           atomic_load(&nc->inflight_bytes) < CONN_MAX_INFLIGHT_BYTES;
}

static void resume_recv(struct rpc_call *c, struct node_conn *nc)
{
    if (room_for_more(nc) && atomic_exchange(&nc->paused, false))
        rpc_call_recv(c);
}

/* Count `n` events (or the poster's hold) as settled; the last one out answers the node. */
static void batch_settle(struct hub *h, struct hub_ev_batch *b, size_t n)
{
    pthread_mutex_lock(&b->lock);
    b->remaining -= n;
    bool done = b->remaining == 0;
    pthread_mutex_unlock(&b->lock);
    if (!done)
        return;
    if (b->failed) {
        /* The node keeps no copy it may resend yet: make it reconnect; its turns restart. */
        hub_rpc_node_close_stream(h, b->node, AG_UNAVAILABLE, b->err.msg);
    } else {
        Agentry__V1__EventAck ack = AGENTRY__V1__EVENT_ACK__INIT;
        ack.batch_id = b->msg->batch_id;
        ack.seqs = b->seqs;
        ack.n_seqs = b->msg->n_events;
        Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
        m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_ACK;
        m.ack = &ack;
        hub_node_send(b->node, &m);
    }
    struct rpc_call *call = b->call;
    struct node_conn *nc = rpc_call_state(call);
    size_t bytes = b->bytes;
    rpc_call_ref(call);
    batch_free(h, b);
    atomic_fetch_sub(&nc->inflight_bytes, bytes);
    atomic_fetch_sub(&nc->inflight, 1);
    resume_recv(call, nc);
    rpc_call_unref(call);
}

void hub_rpc_node_events_stored(struct hub *h, struct hub_ev_batch *b, size_t first,
                                const uint64_t *seqs, size_t n, const struct ag_err *err)
{
    pthread_mutex_lock(&b->lock);
    memcpy(b->seqs + first, seqs, n * sizeof(*seqs));
    if (err && !b->failed) {
        b->failed = true;
        b->err = *err;
    }
    pthread_mutex_unlock(&b->lock);
    batch_settle(h, b, n);
}

/* Returns true if the stream should keep reading now. */
static bool on_events(struct rpc_call *c, struct node_conn *nc, struct hub_ev_batch *b)
{
    struct hub *h = nc->h;
    struct ag_err err = AG_ERR_INIT;
    size_t n = b->msg->n_events;
    struct hub_agent **agents = ag_arena_alloc(&b->arena, (n ? n : 1) * sizeof(*agents));
    if (check_batch(h, nc->node, b->msg, agents, &err) != 0) {
        ag_log_warn("node.rejected_batch", "node=%s code=%s err=%s", nc->node->id,
                    ag_code_name(err.code), ag_log_q(err.msg));
        rpc_call_fail(c, &err);
        batch_free(h, b);
        return true; /* the stream is over; recv on it is a no-op */
    }
    b->seqs = ag_xcalloc(n ? n : 1, sizeof(*b->seqs));
    /* One extra count held while posting, so the batch cannot finish (and be freed) before
     * every command is queued. */
    b->remaining = n + 1;
    atomic_fetch_add(&nc->inflight, 1);
    atomic_fetch_add(&nc->inflight_bytes, b->bytes);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && agents[j] == agents[i])
            j++;
        hub_actor_post_events(h, agents[i], nc->node, b, i,
                              (const Agentry__V1__NodeEvent *const *)b->msg->events + i, j - i);
        i = j;
    }
    unpin_agents(h, agents, n); /* their mailboxes hold them now */
    batch_settle(h, b, 1);
    return room_for_more(nc);
}

/* --- the stream ------------------------------------------------------------------------------ */

static void on_connect(struct rpc_call *c, grpc_byte_buffer *req)
{
    (void)req;
    struct node_conn *nc = rpc_call_state(c);
    nc->h = rpc_call_user(c);
    if (atomic_load(&nc->h->closing)) {
        rpc_call_finish(c, AG_UNAVAILABLE, "the hub is shutting down; reconnect later");
        return;
    }
    rpc_call_recv(c);
}

static void on_node_msg(struct rpc_call *c, grpc_byte_buffer *msg)
{
    struct node_conn *nc = rpc_call_state(c);
    struct hub *h = nc->h;
    if (!msg) { /* the node closed its side: a clean goodbye */
        rpc_call_finish(c, AG_OK, NULL);
        return;
    }
    /* Each message gets its own arena; an EventBatch keeps it until the batch is acked. */
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__NodeMessage *m = rpc_pb_unpack(msg, &agentry__v1__node_message__descriptor, &ar,
                                                &err);
    bool more = true;
    if (!m) {
        rpc_call_fail(c, &err);
        more = false;
    } else if (!nc->node && m->msg_case != AGENTRY__V1__NODE_MESSAGE__MSG_REGISTER) {
        rpc_call_finish(c, AG_FAILED_PRECONDITION, "the first message must be Register");
        more = false;
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_REGISTER) {
        if (nc->node) {
            rpc_call_finish(c, AG_FAILED_PRECONDITION, "Register was already sent on this stream");
            more = false;
        } else {
            on_register(c, nc, m->register_);
            more = nc->node != NULL;
        }
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_HEARTBEAT) {
        hub_sched_node_touch(h->sched, nc->node, ag_now_mono_ms());
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_RELEASED) {
        hub_sched_node_touch(h->sched, nc->node, ag_now_mono_ms());
        on_released(h, nc->node, m->released);
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_STATE_REQUEST) {
        hub_sched_node_touch(h->sched, nc->node, ag_now_mono_ms());
        hub_rpc_assign_state_request(h, nc->node, m->state_request);
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_HUB_TOOL) {
        hub_sched_node_touch(h->sched, nc->node, ag_now_mono_ms());
        hub_tool_dispatch(h, nc->node, m->hub_tool);
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_WORKSPACES) {
        hub_sched_node_touch(h->sched, nc->node, ag_now_mono_ms());
        on_workspaces(h, nc->node, m->workspaces);
    } else if (m->msg_case == AGENTRY__V1__NODE_MESSAGE__MSG_EVENTS) {
        hub_sched_node_touch(h->sched, nc->node, ag_now_mono_ms());
        struct hub_ev_batch *b = ag_xcalloc(1, sizeof(*b));
        b->arena = ar; /* taken */
        ag_arena_init(&ar, NULL, 0);
        pthread_mutex_init(&b->lock, NULL);
        b->call = c;
        b->bytes = grpc_byte_buffer_length(msg);
        rpc_call_ref(c);
        b->node = nc->node;
        hub_sched_node_ref(h->sched, nc->node);
        b->msg = m->events;
        more = on_events(c, nc, b);
        if (!more) {
            /* Too many batches wait for the store: stop reading until one is acked (and
             * re-check, in case the last ack came before the flag was up). */
            atomic_store(&nc->paused, true);
            resume_recv(c, nc);
        }
    } else {
        rpc_call_finish(c, AG_INVALID_ARGUMENT, "empty NodeMessage");
        more = false;
    }
    ag_arena_release(&ar);
    if (more)
        rpc_call_recv(c);
}

static void on_node_close(struct rpc_call *c, bool cancelled)
{
    struct node_conn *nc = rpc_call_state(c);
    if (!nc->node)
        return;
    hub_rpc_node_lost(nc->h, nc->node,
                      atomic_load(&nc->h->closing) ? "the hub is shutting down"
                      : cancelled                  ? "node lost (stream broken)"
                                                   : "node lost (stream closed)");
    hub_sched_node_unref(nc->h->sched, nc->node);
    nc->node = NULL;
}

const struct rpc_method hub_rpc_node_methods[] = {
    {.path = "/agentry.v1.NodeService/Connect",
     .kind = RPC_BIDI,
     .preposted = 4,
     .state_size = sizeof(struct node_conn),
     .send_queue_cap = 8192,
     .max_request_bytes = HUB_MAX_NODE_MESSAGE,
     .on_call = on_connect,
     .on_recv = on_node_msg,
     .on_close = on_node_close},
};
const size_t hub_rpc_node_nmethods = AG_ARRAY_SIZE(hub_rpc_node_methods);
