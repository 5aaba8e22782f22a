/* hub/sched_explain.c - the scheduler's answers for people: whether some connected node could
 * ever run a request (Spawn's check, with an error that names what is missing and the numbers),
 * and why a waiting agent waits (GetAgent/ps: hub_sched_explain). Reads the table under the
 * scheduler lock; changes nothing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hub/sched_internal.h"

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

/* "2 slots, 500 millicores, 1073741824 bytes of memory" (amounts at 0 left out, slots always). */
static void res_format(const struct hub_sched_res *r, char *buf, size_t cap)
{
    int off = snprintf(buf, cap, "%" PRIu32 " slot%s", r->slots, r->slots == 1 ? "" : "s");
    if (r->cpu_milli && off >= 0 && (size_t)off < cap)
        off += snprintf(buf + off, cap - (size_t)off, ", %" PRIu32 " millicores", r->cpu_milli);
    if (r->mem_bytes && off >= 0 && (size_t)off < cap)
        snprintf(buf + off, cap - (size_t)off, ", %" PRIu64 " bytes of memory", r->mem_bytes);
}

/* The most any connected node has of each amount, in buf ("the most a node has: 4 slots, 2000
 * millicores, unlimited memory"). */
static void largest_format(const struct hub_sched *s, char *buf, size_t cap)
{
    struct hub_sched_res most = {0};
    bool cpu_unlimited = false, mem_unlimited = false;
    for (size_t i = 0; i < s->nnodes; i++) {
        const struct hub_sched_res *c = &s->nodes[i]->capacity;
        most.slots = c->slots > most.slots ? c->slots : most.slots;
        most.cpu_milli = c->cpu_milli > most.cpu_milli ? c->cpu_milli : most.cpu_milli;
        most.mem_bytes = c->mem_bytes > most.mem_bytes ? c->mem_bytes : most.mem_bytes;
        cpu_unlimited |= !c->cpu_milli;
        mem_unlimited |= !c->mem_bytes;
    }
    char cpu[32] = "unlimited cpu", mem[48] = "unlimited memory";
    if (!cpu_unlimited)
        snprintf(cpu, sizeof(cpu), "%" PRIu32 " millicores", most.cpu_milli);
    if (!mem_unlimited)
        snprintf(mem, sizeof(mem), "%" PRIu64 " bytes of memory", most.mem_bytes);
    int len = snprintf(buf, cap, "the most a node has: %" PRIu32 " slots, %s, %s", most.slots, cpu,
                       mem);
    if (len < 0 || (size_t)len >= cap)
        buf[cap - 1] = '\0'; /* cut short: still one line */
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
        char need[128];
        res_format(&req->need, need, sizeof(need));
        snprintf(buf, cap, "room for %s", need);
        return MISSING_ROOM;
    }
    return MISSING_NOTHING;
}

/* err for a req no connected node serves. */
static void explain_unserved(const struct hub_sched *s, const struct hub_sched_req *req,
                             struct ag_err *err)
{
    char piece[200], offered[256], largest[128];
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
        largest_format(s, largest, sizeof(largest));
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "no connected node has %s in all (%s); ask for less (spec.resources) or start "
                   "a larger node",
                   piece, largest);
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

/* What the nodes that serve req say about it now. */
struct serving {
    size_t serve;    /* could ever run it */
    size_t open;     /* ... and are not cordoned */
    size_t room;     /* ... and have room for it */
    size_t anti;     /* ... of which an anti-affine agent runs there */
    const char *key; /* the label key of the last such conflict */
    size_t held;     /* ... of which are held for another waiter */
    const struct hub_node *held_node;
};

static void count_serving(const struct hub_sched *s, const struct hub_sched_req *req,
                          struct serving *v)
{
    memset(v, 0, sizeof(*v));
    for (size_t i = 0; i < s->nnodes; i++) {
        const struct hub_node *n = s->nodes[i];
        if (!hub_node_serves(n, req))
            continue;
        v->serve++;
        if (n->cordoned)
            continue;
        v->open++;
        if (!hub_node_has_room(n, &req->need))
            continue;
        v->room++;
        if (hub_node_anti_conflict(n, req, &v->key)) {
            v->anti++;
        } else if (n->held_for && n->held_for != req) {
            v->held++;
            v->held_node = n;
        }
    }
}

/* Why an agent that some node serves waits. */
static void explain_served(const struct hub_sched *s, const struct hub_sched_req *req,
                           const struct serving *v, char *buf, size_t cap)
{
    bool one_slot = req->need.slots == 1 && !req->need.cpu_milli && !req->need.mem_bytes;
    if (s->hold_req == req)
        snprintf(buf, cap,
                 "waiting for room held for it on node '%s' (passed over %d times: nothing else "
                 "is placed there until it fits)",
                 s->hold_node->id, HUB_SCHED_STARVE_PASSES);
    else if (!v->open)
        snprintf(buf, cap, "waiting: the nodes that can run it are cordoned");
    else if (v->room && v->anti == v->room)
        snprintf(buf, cap,
                 "waiting: the %zu node%s with room for it run%s an agent with the same '%s' "
                 "label (anti-affinity)",
                 v->room, v->room == 1 ? "" : "s", v->room == 1 ? "s" : "", v->key);
    else if (v->room && v->anti + v->held == v->room)
        snprintf(buf, cap, "waiting: room on node '%s' is held for an agent that has waited long%s",
                 v->held_node->id,
                 v->anti ? "; the other nodes with room run an anti-affine agent" : "");
    else if (one_slot)
        snprintf(buf, cap, "waiting for a free slot on the %zu node%s that can run it", v->open,
                 v->open == 1 ? "" : "s");
    else
        snprintf(buf, cap, "waiting for room on the %zu node%s that can run it", v->open,
                 v->open == 1 ? "" : "s");
}

void hub_sched_explain(struct hub_sched *s, const struct hub_sched_req *req, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    struct serving v;
    count_serving(s, req, &v);
    char piece[200];
    enum missing m = MISSING_NOTHING;
    if (s->closed)
        snprintf(buf, cap, "the hub is shutting down");
    else if (s->nnodes == 0)
        snprintf(buf, cap, "waiting for a node to join");
    else if (v.serve)
        explain_served(s, req, &v, buf, cap);
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
