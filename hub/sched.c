/* hub/sched.c - the node table, the waiting agents, holds, and the strategy table. What a node
 * offers and whether a request fits it is asked of the node (hub/node.c); each strategy's choice
 * is its own file (hub/sched_*.c); why an agent waits is hub/sched_explain.c. Here are the
 * table, reservations and reference counts on its nodes, cordons, the queue and the hold.
 * Threads: any, under s->lock.
 *
 * Invariants: a node is in `nodes` iff it is alive; reserved <= capacity for every node (each
 * amount a capacity limits); an agent waits in the class of its requirements and priority
 * (everything that decides where it fits, and its order), oldest first (seq orders waiters
 * across classes). Within a class every waiter fits exactly where the head does, so only heads
 * need looking at. The queue may hold agents that no longer wait (killed, or placed by another
 * path): the hub checks the agent's state when a decision reaches it and gives the room back if
 * it is not pending. This lazy deletion keeps the scheduler ignorant of agent state. A class
 * with no waiter is removed, so scanning classes costs what the distinct requirements of
 * waiting agents number, not what the queue holds.
 *
 * An agent may ask for its next turn while its last one's reservation is still held (the hub
 * releases after the write): its own labels then count on that node, so an anti-affine agent
 * avoids its own node for that moment, or waits in the queue until the release drains it. */
#include "hub/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "hub/node.h"
#include "hub/sched_internal.h"

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

/* The value of key among labels (the last one given: a map decoder keeps the last), or NULL. */
static const char *spec_label(Agentry__V1__AgentSpec__LabelsEntry *const *labels, size_t n,
                              const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(labels[i]->key, key) == 0)
            v = labels[i]->value;
    return v;
}

/* The agent's labels as an array in arena, each key once with its last value. */
static struct hub_sched_label *spec_labels(const Agentry__V1__AgentSpec *spec, size_t *out_n,
                                           struct ag_arena *arena)
{
    size_t n = spec->n_labels, k = 0;
    struct hub_sched_label *v = ag_arena_alloc(arena, (n ? n : 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        Agentry__V1__AgentSpec__LabelsEntry *const *m = spec->labels;
        if (spec_label(m + i + 1, n - i - 1, m[i]->key))
            continue; /* a later entry has this key */
        v[k++] = (struct hub_sched_label){m[i]->key, m[i]->value};
    }
    *out_n = k;
    return v;
}

/* The node selector as an array in arena. A key given twice asks for both values: no node has
 * them both, and the check says which is missing. */
static struct hub_sched_label *spec_selector(const Agentry__V1__AgentSpec *spec,
                                             struct ag_arena *arena)
{
    size_t n = spec->n_node_selector;
    struct hub_sched_label *v = ag_arena_alloc(arena, (n ? n : 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (struct hub_sched_label){spec->node_selector[i]->key, spec->node_selector[i]->value};
    return v;
}

void hub_sched_req_from_spec(struct hub_sched_req *req, struct hub_agent *agent,
                             const char *agent_id, const Agentry__V1__AgentSpec *spec,
                             struct ag_arena *arena)
{
    const char *model = spec->model && *spec->model ? spec->model : "mock";
    hub_sched_req_init(req, agent, agent_id, model, spec->tools, spec->n_tools);
    /* MCP servers and OpenAPI documents need a node offering the tool kind "mcp" / "openapi"
     * (worker/tool_ext.h), as if the spec listed it among its tools. */
    if (spec->n_mcp_servers > 0 || spec->n_openapi > 0) {
        char **tools = ag_arena_alloc(arena, (spec->n_tools + 2) * sizeof(*tools));
        size_t n = 0;
        for (size_t i = 0; i < spec->n_tools; i++)
            tools[n++] = spec->tools[i];
        if (spec->n_mcp_servers > 0)
            tools[n++] = "mcp";
        if (spec->n_openapi > 0)
            tools[n++] = "openapi";
        req->tools = tools;
        req->ntools = n;
    }
    if (spec->resources) {
        req->need.cpu_milli = spec->resources->cpu_milli;
        req->need.mem_bytes = spec->resources->memory_bytes;
    }
    req->selector = spec_selector(spec, arena);
    req->nselector = spec->n_node_selector;
    req->labels = spec_labels(spec, &req->nlabels, arena);
    struct hub_sched_label *anti = ag_arena_alloc(
        arena, (spec->n_anti_affinity ? spec->n_anti_affinity : 1) * sizeof(*anti));
    req->anti = anti;
    for (size_t i = 0; i < spec->n_anti_affinity; i++) {
        const char *v = spec_label(spec->labels, spec->n_labels, spec->anti_affinity[i]);
        if (v) /* validation requires it; a stored spec from before is taken as it is */
            anti[req->nanti++] = (struct hub_sched_label){spec->anti_affinity[i], (char *)v};
    }
    req->priority = spec->priority;
    req->strategy = spec->scheduler && *spec->scheduler ? hub_sched_find(spec->scheduler) : NULL;
}

/* --- strategies ------------------------------------------------------------------------------ */

const struct hub_sched_strategy hub_sched_strategies[] = {
    {"round-robin", hub_sched_round_robin_place, hub_sched_round_robin_state_new,
     hub_sched_round_robin_state_free},
    {"binpack", hub_sched_binpack_place, NULL, NULL},
    {"spread", hub_sched_spread_place, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

const struct hub_sched_strategy *hub_sched_find(const char *name)
{
    for (const struct hub_sched_strategy *s = hub_sched_strategies; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

void hub_sched_names(char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (const struct hub_sched_strategy *s = hub_sched_strategies; s->name && off < cap; s++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", s->name);
}

static void strat_add(struct hub_sched *s, const struct hub_sched_strategy *st)
{
    s->strats[s->nstrats++] = (struct hub_sched__strat){st, st->state_new ? st->state_new() : NULL};
}

/* The state of strategy st in s (st is the default or a row of the table). */
static void *strat_state(const struct hub_sched *s, const struct hub_sched_strategy *st)
{
    for (size_t i = 0; i < s->nstrats; i++)
        if (s->strats[i].st == st)
            return s->strats[i].state;
    return NULL;
}

/* --- table ----------------------------------------------------------------------------------- */

struct hub_sched *hub_sched_new(const struct hub_sched_strategy *strategy)
{
    struct hub_sched *s = ag_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    ag_map_init(&s->cordons);
    s->strategy = strategy;
    bool listed = false;
    size_t rows = 0;
    for (; hub_sched_strategies[rows].name; rows++)
        listed |= &hub_sched_strategies[rows] == strategy;
    s->strats = ag_xcalloc(rows + 1, sizeof(*s->strats));
    for (size_t i = 0; i < rows; i++)
        strat_add(s, &hub_sched_strategies[i]);
    if (!listed) /* a strategy outside the table (tests) */
        strat_add(s, strategy);
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
    for (size_t i = 0; i < s->nnodes; i++) {
        s->nodes[i]->held_for = NULL;
        node_unref_locked(s->nodes[i]);
    }
    free(s->nodes);
    free(s->by_util);
    for (size_t i = 0; i < s->nclasses; i++)
        free(s->classes[i].ring);
    free(s->classes);
    free(s->order);
    for (size_t i = 0; i < s->nstrats; i++)
        if (s->strats[i].st->state_free)
            s->strats[i].st->state_free(s->strats[i].state);
    free(s->strats);
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&s->cordons, &it, NULL, &v);)
        free(v);
    ag_map_release(&s->cordons);
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

static void hold_clear(struct hub_sched *s)
{
    if (s->hold_node)
        s->hold_node->held_for = NULL;
    s->hold_node = NULL;
    s->hold_req = NULL;
}

static void remove_locked(struct hub_sched *s, struct hub_node *n)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        if (s->nodes[i] != n)
            continue;
        if (s->hold_node == n)
            hold_clear(s);
        memmove(&s->nodes[i], &s->nodes[i + 1], (s->nnodes - i - 1) * sizeof(*s->nodes));
        s->nnodes--;
        n->alive = false;
        hub_sched__index_remove(s, n);
        node_unref_locked(n);
        return;
    }
}

/* --- order, passes and the hold -------------------------------------------------------------- */

const struct hub_sched_req *hub_sched__class_req(const struct hub_sched__class *c)
{
    return c->ring[c->head].req;
}

/* Is a waiter (priority pa, seq sa) served before b? Higher priority, then older. */
static bool before(int32_t pa, uint64_t sa, int32_t pb, uint64_t sb)
{
    return pa > pb || (pa == pb && sa < sb);
}

/* How far node n is from having room for need: the largest shortfall over the amounts, as a
 * share of the node's capacity of it (0: it has room). */
static double shortfall(const struct hub_node *n, const struct hub_sched_res *need)
{
    const struct hub_sched_res *c = &n->capacity, *r = &n->reserved;
    double worst = 0, f;
    if (need->slots > c->slots - r->slots &&
        (f = (double)(need->slots - (c->slots - r->slots)) / c->slots) > worst)
        worst = f;
    if (c->cpu_milli && need->cpu_milli > c->cpu_milli - r->cpu_milli &&
        (f = (double)(need->cpu_milli - (c->cpu_milli - r->cpu_milli)) / c->cpu_milli) > worst)
        worst = f;
    if (c->mem_bytes && need->mem_bytes > c->mem_bytes - r->mem_bytes &&
        (f = (double)(need->mem_bytes - (c->mem_bytes - r->mem_bytes)) / (double)c->mem_bytes) >
            worst)
        worst = f;
    return worst;
}

/* Hold room for req on the node that would fit it soonest: of the uncordoned nodes that serve
 * it, the one least short of room (the earliest joined on a tie). */
static void hold_for(struct hub_sched *s, const struct hub_sched_req *req, uint32_t passed)
{
    struct hub_node *best = NULL;
    double best_f = 0;
    for (size_t i = 0; i < s->nnodes; i++) {
        struct hub_node *n = s->nodes[i];
        if (n->cordoned || !hub_node_serves(n, req))
            continue;
        double f = shortfall(n, &req->need);
        if (!best || f < best_f) {
            best = n;
            best_f = f;
        }
    }
    if (!best)
        return;
    best->held_for = req;
    s->hold_node = best;
    s->hold_req = req;
    ag_log_info("sched.held", "agent=%s node=%s passed=%u", req->agent_id ? req->agent_id : "-",
                best->id, passed);
}

/* Someone ordered (prio, seq) was just placed on n: every class head served before it that n
 * could run was passed over. The first starving head, in order, gets the hold if none is set. */
static void note_passes(struct hub_sched *s, int32_t prio, uint64_t seq, const struct hub_node *n)
{
    struct hub_sched__class *starving = NULL;
    for (size_t i = 0; i < s->nclasses; i++) {
        struct hub_sched__class *c = &s->classes[i];
        const struct hub_sched__item *h = &c->ring[c->head];
        if (!before(h->req->priority, h->seq, prio, seq) || !hub_node_serves(n, h->req))
            continue;
        if (++c->passed >= HUB_SCHED_STARVE_PASSES &&
            (!starving || before(h->req->priority, h->seq, hub_sched__class_req(starving)->priority,
                                 starving->ring[starving->head].seq)))
            starving = c;
    }
    if (starving && !s->hold_req)
        hold_for(s, hub_sched__class_req(starving), starving->passed);
}

/* Reserve req (ordered prio, seq) on the node its strategy picks, or NULL. */
static struct hub_node *reserve_locked(struct hub_sched *s, const struct hub_sched_req *req,
                                       uint64_t seq)
{
    if (s->closed)
        return NULL;
    const struct hub_sched_strategy *st = req->strategy ? req->strategy : s->strategy;
    struct hub_sched_view v = {s->nodes, s->nnodes, s->by_util, s->nby};
    struct hub_node *n = st->place(strat_state(s, st), &v, req);
    if (!n)
        return NULL;
    hub_node_reserve(n, req);
    hub_sched__index_update(s, n);
    n->refs++;
    if (s->hold_req == req)
        hold_clear(s); /* placed: on its held node or wherever room came first */
    if (s->nclasses)
        note_passes(s, req->priority, seq, n);
    ag_log_debug("sched.placed", "agent=%s node=%s strategy=%s",
                 req->agent_id ? req->agent_id : "-", n->id, st->name);
    return n;
}

/* --- waiting agents -------------------------------------------------------------------------- */

static bool has_label(const struct hub_sched_label *v, size_t n, const struct hub_sched_label *l)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].key, l->key) == 0 && strcmp(v[i].value, l->value) == 0)
            return true;
    return false;
}

/* Do a's labels equal b's, as sets? (Keys are unique in each.) */
static bool same_labels(const struct hub_sched_label *a, size_t na, const struct hub_sched_label *b,
                        size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!has_label(b, nb, &a[i]))
            return false;
    return true;
}

/* Do a and b fit exactly the same nodes, in the same order? (Tools in spec order; selector
 * terms, labels and anti-affinity in any order.) */
static bool same_req(const struct hub_sched_req *a, const struct hub_sched_req *b)
{
    if (strcmp(a->model, b->model) != 0 || a->ntools != b->ntools || a->priority != b->priority ||
        a->need.slots != b->need.slots || a->need.cpu_milli != b->need.cpu_milli ||
        a->need.mem_bytes != b->need.mem_bytes)
        return false;
    for (size_t i = 0; i < a->ntools; i++)
        if (strcmp(a->tools[i], b->tools[i]) != 0)
            return false;
    return same_labels(a->selector, a->nselector, b->selector, b->nselector) &&
           same_labels(a->labels, a->nlabels, b->labels, b->nlabels) &&
           same_labels(a->anti, a->nanti, b->anti, b->nanti);
}

static struct hub_sched__class *class_find(struct hub_sched *s, const struct hub_sched_req *req)
{
    for (size_t i = 0; i < s->nclasses; i++)
        if (same_req(hub_sched__class_req(&s->classes[i]), req))
            return &s->classes[i];
    return NULL;
}

static void enqueue_locked(struct hub_sched *s, const struct hub_sched_req *req)
{
    struct hub_sched__class *c = class_find(s, req);
    if (!c) {
        if (s->nclasses == s->cap_classes) {
            s->cap_classes = s->cap_classes ? s->cap_classes * 2 : 4;
            s->classes = ag_xrealloc(s->classes, s->cap_classes * sizeof(*s->classes));
            s->order = ag_xrealloc(s->order, s->cap_classes * sizeof(*s->order));
        }
        c = &s->classes[s->nclasses++];
        memset(c, 0, sizeof(*c));
    }
    if (c->len == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct hub_sched__item *r = ag_xcalloc(ncap, sizeof(*r));
        for (size_t i = 0; i < c->len; i++)
            r[i] = c->ring[(c->head + i) % c->cap];
        free(c->ring);
        c->ring = r;
        c->cap = ncap;
        c->head = 0;
    }
    c->ring[(c->head + c->len) % c->cap] = (struct hub_sched__item){req, s->next_seq++};
    c->len++;
    s->queued++;
}

static struct hub_agent *pop_locked(struct hub_sched *s, struct hub_sched__class *c)
{
    struct hub_agent *a = hub_sched__class_req(c)->agent;
    c->head = (c->head + 1) % c->cap;
    c->len--;
    c->passed = 0; /* a new head: its passes count from here */
    s->queued--;
    if (c->len == 0) { /* drop the class: keep the class list as short as the requirements */
        free(c->ring);
        *c = s->classes[--s->nclasses];
    }
    return a;
}

static int cmp_order(const void *pa, const void *pb)
{
    const struct hub_sched__class *a = *(struct hub_sched__class *const *)pa;
    const struct hub_sched__class *b = *(struct hub_sched__class *const *)pb;
    const struct hub_sched__item *x = &a->ring[a->head], *y = &b->ring[b->head];
    return before(x->req->priority, x->seq, y->req->priority, y->seq) ? -1 : 1;
}

/* Place the best waiter some node fits (priority, then age); false if none fits. */
static bool place_one(struct hub_sched *s, struct hub_sched_decision *out)
{
    for (size_t i = 0; i < s->nclasses; i++)
        s->order[i] = &s->classes[i];
    qsort(s->order, s->nclasses, sizeof(*s->order), cmp_order);
    for (size_t i = 0; i < s->nclasses; i++) {
        struct hub_sched__class *c = s->order[i];
        struct hub_node *n = reserve_locked(s, hub_sched__class_req(c), c->ring[c->head].seq);
        if (n) {
            out->agent = pop_locked(s, c);
            out->node = n;
            return true;
        }
    }
    return false;
}

/* Hand free room to waiting agents, best first, skipping those nothing fits. */
static size_t drain_locked(struct hub_sched *s, struct hub_sched_decision *out, size_t max)
{
    size_t k = 0;
    while (k < max && s->queued && !s->closed && place_one(s, &out[k]))
        k++;
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
        s->by_util = ag_xrealloc(s->by_util, s->cap_nodes * sizeof(*s->by_util));
    }
    node->alive = true;
    node->join_seq = s->next_join++;
    hub_sched__index_update(s, node);
    node->refs++;
    node->last_seen_ms = now_ms;
    node->cordoned = ag_map_get(&s->cordons, node->id) != NULL;
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

int hub_sched_cordon(struct hub_sched *s, const char *node_id, enum hub_sched_cordon mode)
{
    bool on = mode != HUB_SCHED_UNCORDON;
    pthread_mutex_lock(&s->lock);
    struct hub_sched__cordon *c = ag_map_get(&s->cordons, node_id);
    struct hub_node *n = NULL;
    for (size_t i = 0; i < s->nnodes && !n; i++)
        if (strcmp(s->nodes[i]->id, node_id) == 0)
            n = s->nodes[i];
    if (!n && !c) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    if (!on && c) {
        ag_map_del(&s->cordons, node_id);
        free(c);
    } else if (on && c) {
        c->mode = mode;
    } else if (on) {
        size_t len = strlen(node_id);
        c = ag_xmalloc(sizeof(*c) + len + 1);
        c->mode = mode;
        memcpy(c->id, node_id, len + 1);
        ag_map_put(&s->cordons, c->id, c);
    }
    if (n) {
        n->cordoned = on;
        if (on && s->hold_node == n)
            hold_clear(s); /* held again elsewhere at the next pass */
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

struct hub_node *hub_sched_try_reserve(struct hub_sched *s, const struct hub_sched_req *req)
{
    pthread_mutex_lock(&s->lock);
    /* Never overtake agents that wait with the same needs: they get free room first. (Waiters
     * of other classes fit no node as it is, by the invariant.) A newcomer is the youngest. */
    struct hub_node *n = class_find(s, req) ? NULL : reserve_locked(s, req, s->next_seq);
    pthread_mutex_unlock(&s->lock);
    return n;
}

struct hub_node *hub_sched_place_or_queue(struct hub_sched *s, const struct hub_sched_req *req)
{
    pthread_mutex_lock(&s->lock);
    struct hub_node *n = class_find(s, req) ? NULL : reserve_locked(s, req, s->next_seq);
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
    hub_node_unreserve(node, req);
    hub_sched__index_update(s, node); /* a node that is gone stays out */
    node_unref_locked(node);
    size_t k = drain_locked(s, out, max);
    pthread_mutex_unlock(&s->lock);
    return k;
}

/* --- listing --------------------------------------------------------------------------------- */

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

struct hub_node *hub_sched_node_by_id(struct hub_sched *s, const char *node_id)
{
    struct hub_node *found = NULL;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nnodes && !found; i++)
        if (strcmp(s->nodes[i]->id, node_id) == 0) {
            found = s->nodes[i];
            found->refs++;
        }
    pthread_mutex_unlock(&s->lock);
    return found;
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

void hub_sched_node_info(struct hub_sched *s, const struct hub_node *n,
                         struct hub_sched_node_info *out)
{
    pthread_mutex_lock(&s->lock);
    out->reserved = n->reserved;
    out->cordoned = n->cordoned;
    const struct hub_sched__cordon *c = n->cordoned ? ag_map_get(&s->cordons, n->id) : NULL;
    out->draining = c && c->mode == HUB_SCHED_DRAIN;
    out->held = n->held_for != NULL;
    pthread_mutex_unlock(&s->lock);
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
