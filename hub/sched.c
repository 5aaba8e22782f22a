/* hub/sched.c - the node table, the waiting agents, and the strategy table. What a node offers
 * and whether a request fits it is asked of the node (hub/node.c); here are the table, the
 * reservations and reference counts on its nodes, and the queue. Threads: any, under s->lock.
 *
 * Invariants: a node is in `nodes` iff it is alive; reserved <= capacity for every node (each
 * amount a capacity limits); an agent waits in the class of its requirements (model, tools, node
 * selector and resources: everything that decides where it fits), oldest first (seq orders
 * waiters across classes). Within a class every waiter fits exactly where the head does, so only
 * heads need looking at. The queue may hold agents that no longer wait (killed, or placed by
 * another path): the hub checks the agent's state when a decision reaches it and gives the room
 * back if it is not pending. This lazy deletion keeps the scheduler ignorant of agent state. A
 * class with no waiter is removed, so scanning classes costs what the distinct requirements of
 * waiting agents number, not what the queue holds.
 *
 * NEEDSWORK: room goes to the oldest waiter that fits, so an agent that needs more than one slot
 * can wait behind a stream of smaller ones; binpack may want to hold room back for it. */
#include "hub/sched.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "hub/node.h"

struct fifo_item {
    const struct hub_sched_req *req; /* borrowed: the agent's own, as long as it waits */
    uint64_t seq;                    /* queue order across classes */
};

/* Agents waiting with the same requirements (same_req). A ring of items. */
struct wait_class {
    struct fifo_item *ring;
    size_t head, len, cap;
};

struct hub_sched {
    pthread_mutex_t lock;
    const struct hub_sched_strategy *strategy;
    void *state;
    bool closed;
    struct hub_node **nodes; /* alive nodes, in join order */
    size_t nnodes, cap_nodes;
    struct wait_class *classes; /* each with at least one waiter */
    size_t nclasses, cap_classes;
    size_t queued;
    uint64_t next_seq;
};

/* --- requests -------------------------------------------------------------------------------- */

void hub_sched_req_init(struct hub_sched_req *req, struct hub_agent *agent, const char *agent_id,
                        const char *model, char *const *tools, size_t ntools)
{
    *req = (struct hub_sched_req){.agent = agent,
                                  .agent_id = agent_id,
                                  .model = model,
                                  .tools = tools,
                                  .ntools = ntools,
                                  .need = {.slots = 1}};
}

/* --- reservations ---------------------------------------------------------------------------- */

static void res_add(struct hub_sched_res *to, const struct hub_sched_res *r)
{
    to->slots += r->slots;
    to->cpu_milli += r->cpu_milli;
    to->mem_bytes += r->mem_bytes;
}

/* Give r back; never below zero, as a release without its reservation must not wrap around. */
static void res_sub(struct hub_sched_res *from, const struct hub_sched_res *r)
{
    from->slots -= r->slots < from->slots ? r->slots : from->slots;
    from->cpu_milli -= r->cpu_milli < from->cpu_milli ? r->cpu_milli : from->cpu_milli;
    from->mem_bytes -= r->mem_bytes < from->mem_bytes ? r->mem_bytes : from->mem_bytes;
}

/* --- strategies ------------------------------------------------------------------------------ */

struct rr_state {
    size_t next;
};

static void *rr_state_new(void)
{
    return ag_xcalloc(1, sizeof(struct rr_state));
}

static void rr_state_free(void *state)
{
    free(state);
}

/* Round-robin: the first node that fits at or after the cursor (what it offers, its labels, its
 * free room: the whole request); the cursor moves past it, so consecutive turns land on
 * consecutive nodes while they have room. */
static struct hub_node *place_round_robin(void *state, struct hub_node *const *nodes, size_t n,
                                          const struct hub_sched_req *req)
{
    struct rr_state *rr = state;
    for (size_t i = 0; i < n; i++) {
        size_t k = (rr->next + i) % n;
        if (hub_node_fits(nodes[k], req)) {
            rr->next = (k + 1) % n;
            return nodes[k];
        }
    }
    return NULL;
}

const struct hub_sched_strategy hub_sched_strategies[] = {
    {"round_robin", place_round_robin, rr_state_new, rr_state_free},
    {NULL, NULL, NULL, NULL},
};

const struct hub_sched_strategy *hub_sched_find(const char *name)
{
    for (const struct hub_sched_strategy *s = hub_sched_strategies; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* --- table ----------------------------------------------------------------------------------- */

struct hub_sched *hub_sched_new(const struct hub_sched_strategy *strategy)
{
    struct hub_sched *s = ag_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->strategy = strategy;
    s->state = strategy->state_new ? strategy->state_new() : NULL;
    return s;
}

static void node_unref_locked(struct hub_node *n)
{
    if (--n->refs > 0)
        return;
    hub_node_free(n);
}

void hub_sched_free(struct hub_sched *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++)
        node_unref_locked(s->nodes[i]);
    free(s->nodes);
    for (size_t i = 0; i < s->nclasses; i++)
        free(s->classes[i].ring);
    free(s->classes);
    if (s->strategy->state_free)
        s->strategy->state_free(s->state);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void hub_sched_node_ref(struct hub_sched *s, struct hub_node *n)
{
    pthread_mutex_lock(&s->lock);
    n->refs++;
    pthread_mutex_unlock(&s->lock);
}

void hub_sched_node_unref(struct hub_sched *s, struct hub_node *n)
{
    pthread_mutex_lock(&s->lock);
    node_unref_locked(n);
    pthread_mutex_unlock(&s->lock);
}

bool hub_sched_node_alive(struct hub_sched *s, struct hub_node *n, char *why, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    bool alive = n->alive;
    if (!alive && why)
        snprintf(why, cap, "%s", n->lost_reason[0] ? n->lost_reason : "node lost");
    pthread_mutex_unlock(&s->lock);
    return alive;
}

void hub_sched_node_touch(struct hub_sched *s, struct hub_node *n, int64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    n->last_seen_ms = now_ms;
    pthread_mutex_unlock(&s->lock);
}

static void remove_locked(struct hub_sched *s, struct hub_node *n)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        if (s->nodes[i] != n)
            continue;
        memmove(&s->nodes[i], &s->nodes[i + 1], (s->nnodes - i - 1) * sizeof(*s->nodes));
        s->nnodes--;
        n->alive = false;
        node_unref_locked(n);
        return;
    }
}

static struct hub_node *reserve_locked(struct hub_sched *s, const struct hub_sched_req *req)
{
    if (s->closed)
        return NULL;
    struct hub_node *n = s->strategy->place(s->state, s->nodes, s->nnodes, req);
    if (n) {
        res_add(&n->reserved, &req->need);
        n->refs++;
        ag_log_debug("sched.placed", "agent=%s node=%s strategy=%s",
                     req->agent_id ? req->agent_id : "-", n->id, s->strategy->name);
    }
    return n;
}

/* --- waiting agents -------------------------------------------------------------------------- */

static bool selector_has(const struct hub_sched_req *r, const struct hub_sched_label *l)
{
    for (size_t i = 0; i < r->nselector; i++)
        if (strcmp(r->selector[i].key, l->key) == 0 && strcmp(r->selector[i].value, l->value) == 0)
            return true;
    return false;
}

/* Do a and b fit exactly the same nodes? (Tools in spec order; selector terms in any order.) */
static bool same_req(const struct hub_sched_req *a, const struct hub_sched_req *b)
{
    if (strcmp(a->model, b->model) != 0 || a->ntools != b->ntools || a->nselector != b->nselector ||
        a->need.slots != b->need.slots || a->need.cpu_milli != b->need.cpu_milli ||
        a->need.mem_bytes != b->need.mem_bytes)
        return false;
    for (size_t i = 0; i < a->ntools; i++)
        if (strcmp(a->tools[i], b->tools[i]) != 0)
            return false;
    for (size_t i = 0; i < a->nselector; i++)
        if (!selector_has(b, &a->selector[i]))
            return false;
    return true;
}

/* The requirements of class c (its head's: every waiter's are the same). */
static const struct hub_sched_req *class_req(const struct wait_class *c)
{
    return c->ring[c->head].req;
}

static struct wait_class *class_find(struct hub_sched *s, const struct hub_sched_req *req)
{
    for (size_t i = 0; i < s->nclasses; i++)
        if (same_req(class_req(&s->classes[i]), req))
            return &s->classes[i];
    return NULL;
}

static void enqueue_locked(struct hub_sched *s, const struct hub_sched_req *req)
{
    struct wait_class *c = class_find(s, req);
    if (!c) {
        if (s->nclasses == s->cap_classes) {
            s->cap_classes = s->cap_classes ? s->cap_classes * 2 : 4;
            s->classes = ag_xrealloc(s->classes, s->cap_classes * sizeof(*s->classes));
        }
        c = &s->classes[s->nclasses++];
        memset(c, 0, sizeof(*c));
    }
    if (c->len == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct fifo_item *r = ag_xcalloc(ncap, sizeof(*r));
        for (size_t i = 0; i < c->len; i++)
            r[i] = c->ring[(c->head + i) % c->cap];
        free(c->ring);
        c->ring = r;
        c->cap = ncap;
        c->head = 0;
    }
    c->ring[(c->head + c->len) % c->cap] = (struct fifo_item){req, s->next_seq++};
    c->len++;
    s->queued++;
}

static struct hub_agent *pop_locked(struct hub_sched *s, struct wait_class *c)
{
    struct hub_agent *a = class_req(c)->agent;
    c->head = (c->head + 1) % c->cap;
    c->len--;
    s->queued--;
    if (c->len == 0) { /* drop the class: keep the class list as short as the requirements */
        free(c->ring);
        *c = s->classes[--s->nclasses];
    }
    return a;
}

/* Does some node have room for class c's waiters and serve them? */
static bool class_placeable(const struct hub_sched *s, const struct wait_class *c)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (hub_node_fits(s->nodes[i], class_req(c)))
            return true;
    return false;
}

/* Hand free room to waiting agents: each time to the oldest waiter that some node fits. */
static size_t drain_locked(struct hub_sched *s, struct hub_sched_decision *out, size_t max)
{
    size_t k = 0;
    while (k < max && s->queued && !s->closed) {
        struct wait_class *best = NULL;
        for (size_t i = 0; i < s->nclasses; i++) {
            struct wait_class *c = &s->classes[i];
            if ((!best || c->ring[c->head].seq < best->ring[best->head].seq) &&
                class_placeable(s, c))
                best = c;
        }
        if (!best)
            break;
        struct hub_node *n = reserve_locked(s, class_req(best));
        out[k].agent = pop_locked(s, best);
        out[k].node = n;
        k++;
    }
    return k;
}

static bool live_other_instance(const struct hub_node *old, const struct hub_node *node,
                                int64_t now_ms, int64_t alive_ms)
{
    bool same_process = old->instance_id[0] && strcmp(old->instance_id, node->instance_id) == 0;
    return !same_process && now_ms - old->last_seen_ms <= alive_ms;
}

size_t hub_sched_add_node(struct hub_sched *s, const struct hub_sched_join_req *j,
                          enum hub_sched_join *outcome, struct hub_node **other,
                          struct hub_sched_decision *out, size_t max)
{
    struct hub_node *node = j->node;
    int64_t now_ms = j->now_ms, alive_ms = j->alive_ms;
    pthread_mutex_lock(&s->lock);
    *other = NULL;
    *outcome = HUB_SCHED_JOINED;
    for (size_t i = 0; i < s->nnodes; i++) {
        struct hub_node *old = s->nodes[i];
        if (strcmp(old->id, node->id) != 0)
            continue;
        old->refs++;
        *other = old;
        if (live_other_instance(old, node, now_ms, alive_ms)) {
            *outcome = HUB_SCHED_REFUSED;
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        *outcome = HUB_SCHED_REPLACED;
        remove_locked(s, old);
        break;
    }
    if (s->nnodes == s->cap_nodes) {
        s->cap_nodes = s->cap_nodes ? s->cap_nodes * 2 : 8;
        s->nodes = ag_xrealloc(s->nodes, s->cap_nodes * sizeof(*s->nodes));
    }
    node->alive = true;
    node->refs++;
    node->last_seen_ms = now_ms;
    s->nodes[s->nnodes++] = node;
    if (j->admitted)
        j->admitted(j->arg, node);
    size_t k = drain_locked(s, out, max);
    pthread_mutex_unlock(&s->lock);
    return k;
}

size_t hub_sched_drain(struct hub_sched *s, struct hub_sched_decision *out, size_t max)
{
    pthread_mutex_lock(&s->lock);
    size_t k = drain_locked(s, out, max);
    pthread_mutex_unlock(&s->lock);
    return k;
}

void hub_sched_remove_node(struct hub_sched *s, struct hub_node *node, const char *reason)
{
    pthread_mutex_lock(&s->lock);
    if (node->alive) {
        snprintf(node->lost_reason, sizeof(node->lost_reason), "%s", reason);
        remove_locked(s, node);
    }
    pthread_mutex_unlock(&s->lock);
}

void hub_sched_close(struct hub_sched *s)
{
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    pthread_mutex_unlock(&s->lock);
}

struct hub_node *hub_sched_try_reserve(struct hub_sched *s, const struct hub_sched_req *req)
{
    pthread_mutex_lock(&s->lock);
    /* Never overtake agents that wait with the same needs: they get free room first. (Waiters
     * of other classes fit no node as it is, by the invariant.) */
    struct hub_node *n = class_find(s, req) ? NULL : reserve_locked(s, req);
    pthread_mutex_unlock(&s->lock);
    return n;
}

struct hub_node *hub_sched_place_or_queue(struct hub_sched *s, const struct hub_sched_req *req)
{
    pthread_mutex_lock(&s->lock);
    struct hub_node *n = class_find(s, req) ? NULL : reserve_locked(s, req);
    if (!n)
        enqueue_locked(s, req);
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t hub_sched_release(struct hub_sched *s, struct hub_node *node,
                         const struct hub_sched_req *req, struct hub_sched_decision *out,
                         size_t max)
{
    pthread_mutex_lock(&s->lock);
    res_sub(&node->reserved, &req->need);
    node_unref_locked(node);
    size_t k = drain_locked(s, out, max);
    pthread_mutex_unlock(&s->lock);
    return k;
}

/* --- explaining ------------------------------------------------------------------------------ */

/* "mock, openai/gpt-4o" or "echo": the distinct models (or tools) the nodes offer, in buf. */
static void offered_list(const struct hub_sched *s, bool tools, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->nnodes; i++) {
        const struct hub_node *n = s->nodes[i];
        char *const *v = tools ? n->tools : n->models;
        size_t nv = tools ? n->ntools : n->nmodels;
        for (size_t j = 0; j < nv && off < cap; j++) {
            size_t len = strlen(v[j]);
            const char *seen = strstr(buf, v[j]); /* a cheap "already listed" for short lists */
            if (seen && (seen == buf || seen[-1] == ' ') && (seen[len] == ',' || !seen[len]))
                continue;
            off += (size_t)snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", v[j]);
        }
    }
    if (!buf[0])
        snprintf(buf, cap, "nothing");
}

/* The first requirement of req that no connected node meets on its own. */
enum missing {
    MISSING_NOTHING, /* each is met by some node, but no node meets them all */
    MISSING_MODEL,
    MISSING_TOOL,
    MISSING_LABEL,
    MISSING_ROOM,
};

static bool any_node_has_label(const struct hub_sched *s, const struct hub_sched_label *l)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (hub_node_has_label(s->nodes[i], l))
            return true;
    return false;
}

static bool any_node_covers(const struct hub_sched *s, const struct hub_sched_res *need)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (hub_node_covers(s->nodes[i], need))
            return true;
    return false;
}

/* Which requirement no connected node meets, named in buf ("model 'x'", "tool 'y'",
 * "label 'zone=a'", "room for 2 slots"). */
static enum missing missing_piece(const struct hub_sched *s, const struct hub_sched_req *req,
                                  char *buf, size_t cap)
{
    bool found = false;
    for (size_t i = 0; i < s->nnodes && !found; i++)
        found = hub_node_offers_model(s->nodes[i], req->model);
    if (!found) {
        snprintf(buf, cap, "model '%s'", req->model);
        return MISSING_MODEL;
    }
    for (size_t t = 0; t < req->ntools; t++) {
        found = false;
        for (size_t i = 0; i < s->nnodes && !found; i++)
            found = hub_node_offers_tool(s->nodes[i], req->tools[t]);
        if (!found) {
            snprintf(buf, cap, "tool '%s'", req->tools[t]);
            return MISSING_TOOL;
        }
    }
    for (size_t l = 0; l < req->nselector; l++) {
        if (!any_node_has_label(s, &req->selector[l])) {
            snprintf(buf, cap, "label '%s=%s'", req->selector[l].key, req->selector[l].value);
            return MISSING_LABEL;
        }
    }
    if (!any_node_covers(s, &req->need)) {
        const struct hub_sched_res *r = &req->need;
        int off = snprintf(buf, cap, "room for %" PRIu32 " slot%s", r->slots,
                           r->slots == 1 ? "" : "s");
        if (r->cpu_milli && (size_t)off < cap)
            off += snprintf(buf + off, cap - (size_t)off, ", %" PRIu32 " millicores", r->cpu_milli);
        if (r->mem_bytes && (size_t)off < cap)
            snprintf(buf + off, cap - (size_t)off, ", %" PRIu64 " bytes of memory", r->mem_bytes);
        return MISSING_ROOM;
    }
    return MISSING_NOTHING;
}

/* err for a req no connected node serves. */
static void explain_unserved(const struct hub_sched *s, const struct hub_sched_req *req,
                             struct ag_err *err)
{
    char piece[200], offered[256];
    enum missing m = missing_piece(s, req, piece, sizeof(piece));
    switch (m) {
    case MISSING_MODEL:
    case MISSING_TOOL:
        offered_list(s, m == MISSING_TOOL, offered, sizeof(offered));
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "no connected node offers %s (nodes offer: %s); check spec.%s", piece, offered,
                   m == MISSING_TOOL ? "tools" : "model");
        break;
    case MISSING_LABEL:
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "no connected node has %s; start a node with it (node join --labels)", piece);
        break;
    case MISSING_ROOM:
        ag_err_set(err, AG_INVALID_ARGUMENT, "no connected node has %s in all; start a larger node",
                   piece);
        break;
    case MISSING_NOTHING:
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "no connected node offers model '%s' together with all %zu tools of the "
                   "spec%s; split the tools across agents or add a node that has them all",
                   req->model, req->ntools,
                   req->nselector ? ", the labels asked for and room enough" : "");
        break;
    }
}

int hub_sched_check(struct hub_sched *s, const struct hub_sched_req *req, struct ag_err *err)
{
    pthread_mutex_lock(&s->lock);
    int rc = s->nnodes == 0 ? 1 : -1;
    for (size_t i = 0; i < s->nnodes && rc != 0; i++)
        if (hub_node_serves(s->nodes[i], req))
            rc = 0;
    if (rc == -1)
        explain_unserved(s, req, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void hub_sched_explain(struct hub_sched *s, const struct hub_sched_req *req, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    size_t serving = 0;
    for (size_t i = 0; i < s->nnodes; i++)
        serving += hub_node_serves(s->nodes[i], req);
    char piece[200];
    enum missing m = MISSING_NOTHING;
    if (s->closed)
        snprintf(buf, cap, "the hub is shutting down");
    else if (s->nnodes == 0)
        snprintf(buf, cap, "waiting for a node to join");
    else if (serving && req->need.slots == 1 && !req->need.cpu_milli && !req->need.mem_bytes)
        snprintf(buf, cap, "waiting for a free slot on the %zu node%s that can run it", serving,
                 serving == 1 ? "" : "s");
    else if (serving)
        snprintf(buf, cap, "waiting for room on the %zu node%s that can run it", serving,
                 serving == 1 ? "" : "s");
    else if ((m = missing_piece(s, req, piece, sizeof(piece))) == MISSING_MODEL ||
             m == MISSING_TOOL)
        snprintf(buf, cap, "waiting for a node that offers %s", piece);
    else if (m != MISSING_NOTHING)
        snprintf(buf, cap, "waiting for a node with %s", piece);
    else
        snprintf(buf, cap, "waiting for a node that offers model '%s' with all its tools%s",
                 req->model, req->nselector ? " and labels" : "");
    pthread_mutex_unlock(&s->lock);
}

size_t hub_sched_stale_nodes(struct hub_sched *s, int64_t now_ms, int64_t timeout_ms,
                             struct hub_node **out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nnodes && k < max; i++) {
        if (now_ms - s->nodes[i]->last_seen_ms > timeout_ms) {
            s->nodes[i]->refs++;
            out[k++] = s->nodes[i];
        }
    }
    pthread_mutex_unlock(&s->lock);
    return k;
}

size_t hub_sched_nodes(struct hub_sched *s, struct hub_node **out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nnodes && k < max; i++) {
        s->nodes[i]->refs++;
        out[k++] = s->nodes[i];
    }
    pthread_mutex_unlock(&s->lock);
    return k;
}

void hub_sched_get_stats(struct hub_sched *s, struct hub_sched_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->lock);
    out->nodes = s->nnodes;
    for (size_t i = 0; i < s->nnodes; i++) {
        out->capacity += s->nodes[i]->capacity.slots;
        out->running += s->nodes[i]->reserved.slots;
    }
    out->queued = s->queued;
    pthread_mutex_unlock(&s->lock);
}
