/* hub/rpc_nodes.c - the operator's view of nodes: ListNodes, CordonNode, DrainNode (hub.proto).
 *
 * Everything here is memory: the node table (hub/sched.h) and each node's list of running
 * agents (hub_node.agents). A cordon is the scheduler's (remembered by node id, so a reconnect
 * keeps it); a drain cordons the node and sends each turn running there a Release (the node
 * answers Released at the turn's next step boundary, hub/rpc_node.c), or with force interrupts
 * them at once as a lost node would. Both tell a connected node its new standing (NodeState),
 * which it reports as its readiness. DrainNode is idempotent: calling it again re-sends Release
 * to whatever still runs there (the CLI does, while it waits), which also covers a turn that was
 * being assigned to the node while the first call ran.
 *
 * Threads: CQ threads; locks as hub_internal.h orders them (an agent's, then node_agents_lock
 * or the scheduler's). */
#include "hub/rpc_nodes.h"

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
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/node.h"
#include "hub/rpc_node.h"
#include "hub/sched.h"

#define MAX_LISTED_NODES 100000

/* The node as ListNodes shows it, in the call's arena (strings borrowed from n: the caller
 * holds a reference until the answer is packed). */
static Agentry__V1__Node *node_pb(struct hub *h, struct hub_node *n, struct ag_arena *ar)
{
    struct hub_sched_node_info info;
    hub_sched_node_info(h->sched, n, &info);
    Agentry__V1__Node *o = ag_arena_alloc(ar, sizeof(*o));
    agentry__v1__node__init(o);
    o->node_id = n->id;
    o->state = info.draining && info.reserved.slots ? "draining"
               : info.draining                      ? "drained"
               : info.cordoned                      ? "cordoned"
                                                    : "ready";
    o->capacity = n->capacity.slots;
    o->running = info.reserved.slots;
    o->version = n->version;
    o->address = n->address;
    o->connected_ns = n->connected_ns;
    o->started_ns = n->started_ns;
    o->models = n->models;
    o->n_models = n->nmodels;
    o->tools = n->tools;
    o->n_tools = n->ntools;
    o->n_labels = n->nlabels;
    o->labels = ag_arena_alloc(ar, (n->nlabels + 1) * sizeof(*o->labels));
    for (size_t i = 0; i < n->nlabels; i++) {
        o->labels[i] = ag_arena_alloc(ar, sizeof(*o->labels[i]));
        agentry__v1__node__labels_entry__init(o->labels[i]);
        o->labels[i]->key = n->labels[i].key;
        o->labels[i]->value = n->labels[i].value;
    }
    return o;
}

/* Every node in the table, references held (the caller drops them). */
static struct hub_node **all_nodes(struct hub *h, size_t *n)
{
    size_t cap = 64;
    for (;;) {
        struct hub_node **v = ag_xcalloc(cap, sizeof(*v));
        *n = hub_sched_nodes(h->sched, v, cap);
        if (*n < cap || cap >= MAX_LISTED_NODES)
            return v;
        for (size_t i = 0; i < *n; i++)
            hub_sched_node_unref(h->sched, v[i]);
        free(v);
        cap *= 4;
    }
}

static void unref_all(struct hub *h, struct hub_node **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hub_sched_node_unref(h->sched, v[i]);
    free(v);
}

static void not_found(struct rpc_call *c, const char *id)
{
    char msg[HUB_NODE_ID_MAX + 96];
    snprintf(msg, sizeof(msg), "no node '%.*s' is connected (see 'agentry nodes')", HUB_NODE_ID_MAX,
             id);
    rpc_call_finish(c, AG_NOT_FOUND, msg);
}

/* The connected node with this id, reference held; or NULL after failing the call c (when c is
 * not NULL). */
static struct hub_node *find_node(struct hub *h, struct rpc_call *c, const char *id)
{
    if (c && (!id || !*id)) {
        rpc_call_finish(c, AG_INVALID_ARGUMENT, "node_id is required");
        return NULL;
    }
    struct hub_node *found = hub_sched_node_by_id(h->sched, id);
    if (!found && c)
        not_found(c, id);
    return found;
}

static void on_list(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    if (!rpc_call_unpack(c, req, &agentry__v1__list_nodes_request__descriptor))
        return;
    size_t k;
    struct hub_node **v = all_nodes(h, &k);
    Agentry__V1__ListNodesResponse r = AGENTRY__V1__LIST_NODES_RESPONSE__INIT;
    r.nodes = ag_arena_alloc(rpc_call_arena(c), (k + 1) * sizeof(*r.nodes));
    for (size_t i = 0; i < k; i++)
        r.nodes[i] = node_pb(h, v[i], rpc_call_arena(c));
    r.n_nodes = k;
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
    unref_all(h, v, k);
}

static void on_cordon(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__CordonNodeRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__cordon_node_request__descriptor);
    if (!in)
        return;
    if (!in->node_id || !*in->node_id) {
        rpc_call_finish(c, AG_INVALID_ARGUMENT, "node_id is required");
        return;
    }
    /* A cordon outlives the node's connection: uncordoning a node that is away works. */
    if (hub_sched_cordon(h->sched, in->node_id,
                         in->cordon ? HUB_SCHED_CORDON : HUB_SCHED_UNCORDON) != 0) {
        not_found(c, in->node_id);
        return;
    }
    ag_log_info(in->cordon ? "node.cordoned" : "node.uncordoned", "node=%s peer=%s", in->node_id,
                rpc_call_peer(c));
    char what[HUB_NODE_ID_MAX + 16];
    snprintf(what, sizeof(what), "node %.*s", HUB_NODE_ID_MAX, in->node_id);
    hub_authn_audit(c, NULL, NULL, true, what);
    struct hub_node *n = find_node(h, NULL, in->node_id);
    if (n)
        hub_rpc_node_state(h, n, true);
    if (!in->cordon) { /* agents waiting for room may fit it now */
        struct hub_sched_decision d[256];
        size_t got;
        do {
            got = hub_sched_drain(h->sched, d, AG_ARRAY_SIZE(d));
            hub_actor_dispatch(h, d, got);
        } while (got == AG_ARRAY_SIZE(d));
    }
    Agentry__V1__CordonNodeResponse r = AGENTRY__V1__CORDON_NODE_RESPONSE__INIT;
    Agentry__V1__Node away = AGENTRY__V1__NODE__INIT;
    away.node_id = in->node_id;
    away.state = in->cordon ? "cordoned" : "ready";
    r.node = n ? node_pb(h, n, rpc_call_arena(c)) : &away;
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
    if (n)
        hub_sched_node_unref(h->sched, n);
}

/* The agents whose turn runs on n, pinned (as hub_rpc_node_lost gathers them). */
static struct hub_agent **agents_on(struct hub *h, struct hub_node *n, size_t *k)
{
    pthread_mutex_lock(&h->node_agents_lock);
    size_t cap = 16;
    *k = 0;
    struct hub_agent **on = ag_xmalloc(cap * sizeof(*on));
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &n->agents)
    {
        if (*k == cap)
            on = ag_xrealloc(on, (cap *= 2) * sizeof(*on));
        on[*k] = AG_LIST_ENTRY(pos, struct hub_agent, on_node);
        hub_agents_pin(&h->agents, on[(*k)++]);
    }
    pthread_mutex_unlock(&h->node_agents_lock);
    return on;
}

static void on_drain(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__DrainNodeRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__drain_node_request__descriptor);
    if (!in)
        return;
    struct hub_node *n = find_node(h, c, in->node_id);
    if (!n)
        return;
    hub_sched_cordon(h->sched, n->id, HUB_SCHED_DRAIN);
    hub_rpc_node_state(h, n, true);
    char why[HUB_REASON_MAX];
    snprintf(why, sizeof(why), "node %s is draining%s", n->id, in->force ? " (forced)" : "");
    size_t k, moving = 0;
    struct hub_agent **on = agents_on(h, n, &k);
    for (size_t i = 0; i < k; i++) {
        struct hub_agent *a = on[i];
        pthread_mutex_lock(&a->lock);
        bool hit = a->st.node == n && a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING;
        uint64_t epoch = a->st.epoch;
        pthread_mutex_unlock(&a->lock);
        if (hit && in->force) {
            hub_rpc_node_cancel(h, n, a->id, epoch, why);
            hub_actor_post_interrupt(h, a, n, epoch, why, true);
        } else if (hit) {
            hub_rpc_node_release(h, n, a->id, epoch, why);
        }
        moving += hit;
        hub_agents_unpin(&h->agents, a);
    }
    free(on);
    ag_log_info("node.draining", "node=%s turns=%zu force=%s peer=%s", n->id, moving,
                in->force ? "true" : "false", rpc_call_peer(c));
    hub_authn_audit(c, NULL, NULL, true, why);
    Agentry__V1__DrainNodeResponse r = AGENTRY__V1__DRAIN_NODE_RESPONSE__INIT;
    r.moving = (uint32_t)moving;
    r.node = node_pb(h, n, rpc_call_arena(c));
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
    hub_sched_node_unref(h->sched, n);
}

const struct rpc_method hub_rpc_nodes_methods[] = {
    {.path = "/agentry.v1.AgentHub/ListNodes", .kind = RPC_UNARY, .on_call = on_list},
    {.path = "/agentry.v1.AgentHub/CordonNode", .kind = RPC_UNARY, .on_call = on_cordon},
    {.path = "/agentry.v1.AgentHub/DrainNode", .kind = RPC_UNARY, .on_call = on_drain},
};
const size_t hub_rpc_nodes_nmethods = AG_ARRAY_SIZE(hub_rpc_nodes_methods);
