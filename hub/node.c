/* hub/node.c - one connected node: building it, what it offers, its labels, whether a turn fits,
 * what its reservations take (amounts and the labels of the agents holding them), and sending
 * it a message down its stream.
 *
 * No locks here: see hub/node.h for which fields the scheduler's lock guards and why the others
 * need none once the node has joined the table. */
#include "hub/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"

struct hub_node *hub_node_new(const char *id, const char *instance_id, struct rpc_call *stream)
{
    struct hub_node *n = ag_xcalloc(1, sizeof(*n));
    ag_list_init(&n->agents);
    ag_map_init(&n->label_counts);
    snprintf(n->id, sizeof(n->id), "%s", id);
    snprintf(n->instance_id, sizeof(n->instance_id), "%s", instance_id ? instance_id : "");
    n->stream = stream;
    if (stream)
        rpc_call_ref(stream);
    n->refs = 1;
    return n;
}

/* --- what it offers -------------------------------------------------------------------------- */

static char **strv_dup(char *const *v, size_t n)
{
    char **out = ag_xcalloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = ag_xstrdup(v[i]);
    return out;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void hub_node_offer(struct hub_node *n, char *const *models, size_t nmodels, char *const *tools,
                    size_t ntools)
{
    strv_free(n->models, n->nmodels);
    strv_free(n->tools, n->ntools);
    n->models = strv_dup(models, nmodels);
    n->nmodels = nmodels;
    n->tools = strv_dup(tools, ntools);
    n->ntools = ntools;
}

bool hub_node_offers_model(const struct hub_node *n, const char *model)
{
    for (size_t i = 0; i < n->nmodels; i++) {
        const char *m = n->models[i];
        size_t len = strlen(m);
        if (strcmp(m, model) == 0 ||
            (!strchr(m, '/') && strncmp(m, model, len) == 0 && model[len] == '/'))
            return true;
    }
    return false;
}

bool hub_node_offers_tool(const struct hub_node *n, const char *tool)
{
    for (size_t i = 0; i < n->ntools; i++)
        if (strcmp(n->tools[i], tool) == 0)
            return true;
    return false;
}

/* --- labels ---------------------------------------------------------------------------------- */

static struct hub_sched_label *find_label(const struct hub_node *n, const char *key)
{
    for (size_t i = 0; i < n->nlabels; i++)
        if (strcmp(n->labels[i].key, key) == 0)
            return &n->labels[i];
    return NULL;
}

void hub_node_add_label(struct hub_node *n, const char *key, const char *value)
{
    struct hub_sched_label *l = find_label(n, key);
    if (l) {
        free(l->value);
        l->value = ag_xstrdup(value);
        return;
    }
    n->labels = ag_xrealloc(n->labels, (n->nlabels + 1) * sizeof(*n->labels));
    n->labels[n->nlabels++] = (struct hub_sched_label){ag_xstrdup(key), ag_xstrdup(value)};
}

void hub_node_labels_format(const struct hub_node *n, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n->nlabels && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s=%s", i ? "," : "", n->labels[i].key,
                                n->labels[i].value);
}

static void labels_free(struct hub_sched_label *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

bool hub_node_has_label(const struct hub_node *n, const struct hub_sched_label *want)
{
    const struct hub_sched_label *l = find_label(n, want->key);
    return l && strcmp(l->value, want->value) == 0;
}

/* --- resources and fit ----------------------------------------------------------------------- */

bool hub_node_covers(const struct hub_node *n, const struct hub_sched_res *need)
{
    const struct hub_sched_res *c = &n->capacity;
    return need->slots <= c->slots && (!c->cpu_milli || need->cpu_milli <= c->cpu_milli) &&
           (!c->mem_bytes || need->mem_bytes <= c->mem_bytes);
}

/* reserved <= capacity: no wrap-around. */
bool hub_node_has_room(const struct hub_node *n, const struct hub_sched_res *need)
{
    const struct hub_sched_res *c = &n->capacity, *r = &n->reserved;
    return need->slots <= c->slots - r->slots &&
           (!c->cpu_milli || need->cpu_milli <= c->cpu_milli - r->cpu_milli) &&
           (!c->mem_bytes || need->mem_bytes <= c->mem_bytes - r->mem_bytes);
}

bool hub_node_serves(const struct hub_node *n, const struct hub_sched_req *req)
{
    if (!hub_node_offers_model(n, req->model))
        return false;
    for (size_t i = 0; i < req->ntools; i++)
        if (!hub_node_offers_tool(n, req->tools[i]))
            return false;
    for (size_t i = 0; i < req->nselector; i++)
        if (!hub_node_has_label(n, &req->selector[i]))
            return false;
    return hub_node_covers(n, &req->need);
}

/* Cheap tests first: a strategy calls this for many nodes per decision. */
bool hub_node_fits(const struct hub_node *n, const struct hub_sched_req *req)
{
    return !n->cordoned && (!n->held_for || n->held_for == req) &&
           hub_node_has_room(n, &req->need) && !hub_node_anti_conflict(n, req, NULL) &&
           hub_node_serves(n, req);
}

double hub_node_utilisation(const struct hub_node *n)
{
    const struct hub_sched_res *c = &n->capacity, *r = &n->reserved;
    double u = c->slots ? (double)r->slots / c->slots : 0;
    if (c->cpu_milli && (double)r->cpu_milli / c->cpu_milli > u)
        u = (double)r->cpu_milli / c->cpu_milli;
    if (c->mem_bytes && (double)r->mem_bytes / (double)c->mem_bytes > u)
        u = (double)r->mem_bytes / (double)c->mem_bytes;
    return u;
}

/* --- anti-affinity --------------------------------------------------------------------------- */

/* "k=v" in buf (keys have no '=': hub_validate_labels), or NULL if it does not fit. */
static const char *label_text(const struct hub_sched_label *l, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "%s=%s", l->key, l->value);
    return len >= 0 && (size_t)len < cap ? buf : NULL;
}

static const struct hub_node_label_count *count_of(const struct hub_node *n,
                                                   const struct hub_sched_label *l)
{
    char buf[512];
    const char *t = n->label_counts.len ? label_text(l, buf, sizeof(buf)) : NULL;
    return t ? ag_map_get(&n->label_counts, t) : NULL;
}

bool hub_node_anti_conflict(const struct hub_node *n, const struct hub_sched_req *req,
                            const char **key)
{
    if (!n->label_counts.len)
        return false;
    /* Its anti-affinity against every agent here; then theirs against its labels. */
    for (size_t i = 0; i < req->nanti; i++) {
        const struct hub_node_label_count *c = count_of(n, &req->anti[i]);
        if (c && c->carry) {
            if (key)
                *key = req->anti[i].key;
            return true;
        }
    }
    for (size_t i = 0; i < req->nlabels; i++) {
        const struct hub_node_label_count *c = count_of(n, &req->labels[i]);
        if (c && c->declared) {
            if (key)
                *key = req->labels[i].key;
            return true;
        }
    }
    return false;
}

static bool declares(const struct hub_sched_req *req, const char *key)
{
    for (size_t i = 0; i < req->nanti; i++)
        if (strcmp(req->anti[i].key, key) == 0)
            return true;
    return false;
}

/* Add (delta 1) or remove (-1) one agent carrying label l. */
static void count_label(struct hub_node *n, const struct hub_sched_label *l, bool declared,
                        int delta)
{
    char buf[512];
    const char *t = label_text(l, buf, sizeof(buf));
    if (!t)
        return; /* longer than validation allows: never counted either way */
    struct hub_node_label_count *c = ag_map_get(&n->label_counts, t);
    if (!c && delta < 0)
        return;
    if (!c) {
        size_t len = strlen(t);
        c = ag_xcalloc(1, sizeof(*c) + len + 1);
        memcpy(c->text, t, len + 1);
        ag_map_put(&n->label_counts, c->text, c);
    }
    if (delta > 0) {
        c->carry++;
        c->declared += declared;
    } else {
        c->carry -= c->carry > 0;
        c->declared -= declared && c->declared > 0;
    }
    if (!c->carry) {
        ag_map_del(&n->label_counts, c->text);
        free(c);
    }
}

/* --- reservations ---------------------------------------------------------------------------- */

void hub_node_reserve(struct hub_node *n, const struct hub_sched_req *req)
{
    n->reserved.slots += req->need.slots;
    n->reserved.cpu_milli += req->need.cpu_milli;
    n->reserved.mem_bytes += req->need.mem_bytes;
    for (size_t i = 0; i < req->nlabels; i++)
        count_label(n, &req->labels[i], declares(req, req->labels[i].key), 1);
}

void hub_node_unreserve(struct hub_node *n, const struct hub_sched_req *req)
{
    struct hub_sched_res *from = &n->reserved;
    const struct hub_sched_res *r = &req->need;
    from->slots -= r->slots < from->slots ? r->slots : from->slots;
    from->cpu_milli -= r->cpu_milli < from->cpu_milli ? r->cpu_milli : from->cpu_milli;
    from->mem_bytes -= r->mem_bytes < from->mem_bytes ? r->mem_bytes : from->mem_bytes;
    for (size_t i = 0; i < req->nlabels; i++)
        count_label(n, &req->labels[i], declares(req, req->labels[i].key), -1);
}

/* --- release --------------------------------------------------------------------------------- */

void hub_node_free(struct hub_node *n)
{
    if (!n)
        return;
    if (n->stream)
        rpc_call_unref(n->stream);
    strv_free(n->models, n->nmodels);
    strv_free(n->tools, n->ntools);
    labels_free(n->labels, n->nlabels);
    const char *k;
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&n->label_counts, &it, &k, &v);)
        free(v);
    ag_map_release(&n->label_counts);
    free(n->version);
    free(n->address);
    free(n);
}

void hub_node_send(struct hub_node *n, const Agentry__V1__HubMessage *m)
{
    struct ag_err err = AG_ERR_INIT;
    if (rpc_call_send_take(n->stream, rpc_pb_pack(&m->base), &err) == 0)
        return;
    if (err.code == AG_RESOURCE_EXHAUSTED) {
        ag_log_warn("node.too_slow", "node=%s err=%s", n->id, ag_log_q(err.msg));
        rpc_call_finish(n->stream, AG_RESOURCE_EXHAUSTED,
                        "the node reads too slowly; reconnect and catch up");
    }
}
