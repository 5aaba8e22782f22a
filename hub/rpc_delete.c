/* hub/rpc_delete.c - AgentHub.DeleteAgent: an agent and its sub-agents leave the store, in one
 * write, and every node is told to remove their workspaces (node.proto, Forget).
 *
 * A delete is a small state machine (struct agent_delete), which retention (hub/retention.c)
 * runs too, through hub_rpc_delete_tree, with a test of the root once it is held (still ended,
 * and long enough ago). Each agent of the tree, the root first
 * and then its sub-agents level by level, is held in turn through its own mailbox
 * (hub_actor_post_hold): a held agent is at rest and takes no command until the delete ends, so a
 * SendMessage racing the delete is either stored first (the hold then refuses: not at rest) or
 * refused with NOT_FOUND once the delete commits. The children of an agent are read only once it
 * is held, when it can no longer spawn one. When every agent is held, one store write deletes
 * their rows, events and memory (HUB_STORE_AGENT_DELETE); once it is durable each agent is
 * refused to its queued commands, its Trace followers and Invoke waiters end with NOT_FOUND, it
 * leaves the agent table (request-id index included), the caller hears the ids (the call is
 * answered with them), and every connected node gets a Forget. A refusal (an agent not at rest)
 * or a failed write lets every held agent go on as before.
 *
 * Threads: the call on a CQ thread; a hold's answer comes with that agent's lock held, so the
 * next step (store reads of the children, the next hold) runs on the timer thread, as hub/team.c
 * does; the write's completion on the store's completion thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/rpc_agent.h"
#include "hub/rpc_delete.h"
#include "hub/rpc_node.h"
#include "hub/rpc_trace.h"
#include "hub/store.h"

#define DELETE_PAGE 256 /* children read per store page */

struct agent_delete {
    struct hub *h;
    hub_rpc_delete_done_fn *done;
    void *arg;
    int64_t ended_before_ns; /* > 0: the root must have ended before then (retention) */
    struct hub_agent **a;    /* pinned: the root, then its sub-agents, breadth first */
    size_t n, cap;
    size_t nheld;      /* a[0, nheld) are held */
    struct ag_err err; /* the hold's refusal, if any */
    struct hub_store_write w;
    struct hub_store_op *ops; /* one AGENT_DELETE per agent */
};

static void del_add(struct agent_delete *d, struct hub_agent *a)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->a = ag_xrealloc(d->a, d->cap * sizeof(*d->a));
    }
    d->a[d->n++] = a;
}

static void del_free(struct agent_delete *d)
{
    for (size_t i = 0; i < d->n; i++)
        hub_agents_unpin(&d->h->agents, d->a[i]);
    free(d->a);
    free(d->ops);
    free(d);
}

/* Refused or failed: the held agents go on as before, the caller hears err. */
static void del_give_up(struct agent_delete *d, const struct ag_err *err)
{
    for (size_t i = 0; i < d->nheld; i++)
        hub_actor_unhold(d->h, d->a[i]);
    d->done(d->arg, NULL, 0, err);
    del_free(d);
}

struct id_page {
    char (*ids)[AG_ID_LEN + 1];
    size_t n;
    int64_t last_ns;
};

static int id_row(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                  struct ag_err *err)
{
    (void)last_seq;
    (void)err;
    struct id_page *p = arg;
    snprintf(p->ids[p->n++], AG_ID_LEN + 1, "%s", row->id);
    p->last_ns = row->created_ns;
    return 0;
}

/* The children of a held agent (it can spawn no more), pinned, after the others: a page of ids
 * through the store's parent index, then each one loaded (a store read may not nest in
 * another's callback). */
static int add_children(struct agent_delete *d, const char *parent, struct ag_err *err)
{
    char ids[DELETE_PAGE][AG_ID_LEN + 1];
    char after[AG_ID_LEN + 1] = "";
    int64_t after_ns = 0;
    for (;;) {
        struct id_page p = {.ids = ids};
        struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_PAGE,
                                           .parent_id = parent,
                                           .after_ns = after_ns,
                                           .after_id = after,
                                           .max = DELETE_PAGE};
        if (hub_store_select_agents(d->h->store, &q, id_row, &p, err) != 0)
            return -1;
        for (size_t i = 0; i < p.n; i++) {
            struct hub_agent *c = hub_loader_get(d->h, ids[i], err);
            if (!c && err->code != AG_NOT_FOUND)
                return -1;
            if (c)
                del_add(d, c);
            *err = (struct ag_err)AG_ERR_INIT;
        }
        if (p.n < DELETE_PAGE)
            return 0;
        after_ns = p.last_ns;
        snprintf(after, sizeof(after), "%s", ids[p.n - 1]);
    }
}

static void hold_next(struct agent_delete *d);
static void del_submit(struct agent_delete *d);

/* Retention's test of a held root (it can change no more): failed or killed, before the cutoff.
 * Between the sweep's read and the hold, a SendMessage may have run a turn that ended idle. */
static int root_still_ended(const struct agent_delete *d, struct ag_err *err)
{
    struct hub_agent *a = d->a[0];
    pthread_mutex_lock(&a->lock);
    int state = a->st.state;
    int64_t updated_ns = a->st.updated_ns;
    pthread_mutex_unlock(&a->lock);
    bool ended = state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED ||
                 state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED;
    if (!ended || updated_ns >= d->ended_before_ns)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "agent '%s' is no longer ended, or ended since the sweep began", a->id);
    return 0;
}

/* Timer thread: a hold was answered (d->err set if refused). */
static void held_fire(void *arg)
{
    struct agent_delete *d = arg;
    struct ag_err err = AG_ERR_INIT;
    if (d->err.code != AG_OK) {
        err = d->err;
        del_give_up(d, &err);
        return;
    }
    d->nheld++;
    if (atomic_load(&d->h->closing)) {
        ag_err_set(&err, AG_UNAVAILABLE, "the hub is shutting down; retry on another hub or later");
        del_give_up(d, &err);
        return;
    }
    if (d->nheld == 1 && d->ended_before_ns > 0 && root_still_ended(d, &err) != 0) {
        del_give_up(d, &err);
        return;
    }
    if (add_children(d, d->a[d->nheld - 1]->id, &err) != 0) {
        ag_err_prefix(&err, "cannot read the sub-agents of '%s'", d->a[d->nheld - 1]->id);
        del_give_up(d, &err);
        return;
    }
    if (d->nheld < d->n)
        hold_next(d);
    else
        del_submit(d);
}

/* The actor's answer, with the agent's lock held: the rest goes on on the timer thread. */
static void held(void *arg, const struct hub_reply *r, const struct ag_err *err)
{
    (void)r;
    struct agent_delete *d = arg;
    if (err)
        d->err = *err;
    ag_timers_add(d->h->timers, 0, held_fire, d);
}

static void hold_next(struct agent_delete *d)
{
    hub_actor_post_hold(d->h, d->a[d->nheld], held, d);
}

/* --- after the write -------------------------------------------------------------------------- */

/* Store completion thread: the agent's delete is durable. */
static void forget_agent(struct hub *h, struct hub_agent *a)
{
    struct ag_err err;
    ag_err_set(&err, AG_NOT_FOUND, "agent '%s' was deleted", a->id);
    hub_actor_deleted(h, a);
    pthread_mutex_lock(&a->lock);
    hub_rpc_trace_fail_all(a, &err);
    hub_rpc_agent_fail_waiters(a, &err);
    pthread_mutex_unlock(&a->lock);
    if (hub_agents_remove(&h->agents, a))
        hub_agent_free(h->sched, a);
    else
        hub_agents_unpin(&h->agents, a); /* others hold it: kept with the dead */
}

/* What a client hears of a failed write (as the actor's client_err): the store's own per-write
 * codes mean the hub and its store disagree. */
static void write_err(const struct ag_err *err, struct ag_err *out)
{
    if (err->code == AG_UNAVAILABLE || err->code == AG_RESOURCE_EXHAUSTED)
        *out = *err;
    else
        ag_err_set(out, AG_INTERNAL,
                   "the hub's store refused the delete (%s: %s); see the hub's log",
                   ag_code_name(err->code), err->msg);
}

static void deleted(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct agent_delete *d = w->arg;
    struct hub *h = d->h;
    if (rc != 0) {
        ag_log_error("agent.delete_failed", "agent=%s agents=%zu code=%s err=%s", d->a[0]->id, d->n,
                     ag_code_name(err->code), ag_log_q(err->msg));
        struct ag_err e;
        write_err(err, &e);
        del_give_up(d, &e);
        return;
    }
    size_t n = d->n;
    char **ids = ag_xcalloc(n, sizeof(*ids));
    for (size_t i = 0; i < n; i++)
        ids[i] = ag_xstrdup(d->a[i]->id);
    ag_log_info("agent.deleted", "agent=%s agents=%zu%s", d->a[0]->id, n,
                d->ended_before_ns > 0 ? " by=retention" : "");
    for (size_t i = 0; i < n; i++)
        forget_agent(h, d->a[i]);
    d->n = 0; /* each pin went with its agent */
    hub_rpc_node_forget(h, NULL, (const char *const *)ids, n);
    d->done(d->arg, (const char *const *)ids, n, NULL);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    del_free(d);
}

static void del_submit(struct agent_delete *d)
{
    d->ops = ag_xcalloc(d->n, sizeof(*d->ops));
    for (size_t i = 0; i < d->n; i++) {
        d->ops[i].type = HUB_STORE_AGENT_DELETE;
        d->ops[i].u.agent.id = d->a[i]->id;
    }
    d->w.ops = d->ops;
    d->w.nops = d->n;
    d->w.done = deleted;
    d->w.arg = d;
    struct ag_err err = AG_ERR_INIT;
    if (hub_store_submit(d->h->store, &d->w, &err) != 0)
        deleted(&d->w, -1, &err);
}

/* --- the call --------------------------------------------------------------------------------- */

/* A sub-agent whose parent exists is deleted only with its root, which the refusal names (found
 * by walking up the parents). 0 if the parent is gone; -1 once the call is answered. */
static int refuse_child(struct hub *h, struct rpc_call *c, struct hub_agent *a)
{
    char root[AG_ID_LEN + 1], parent[AG_ID_LEN + 1];
    snprintf(parent, sizeof(parent), "%s", a->parent_id);
    snprintf(root, sizeof(root), "%s", a->id);
    bool has_parent = false;
    for (int depth = 0; parent[0] && depth <= (int)a->depth + 1; depth++) {
        struct ag_err err = AG_ERR_INIT;
        struct hub_agent *p = hub_loader_get(h, parent, &err);
        if (!p && err.code != AG_NOT_FOUND) {
            rpc_call_fail(c, &err);
            return -1;
        }
        if (!p)
            break;
        has_parent = true;
        snprintf(root, sizeof(root), "%s", p->id);
        snprintf(parent, sizeof(parent), "%s", p->parent_id);
        hub_agents_unpin(&h->agents, p);
    }
    if (!has_parent)
        return 0;
    char msg[200];
    snprintf(msg, sizeof(msg), "agent '%s' is a sub-agent of '%s': delete from its root %s", a->id,
             a->parent_id, root);
    rpc_call_finish(c, AG_FAILED_PRECONDITION, msg);
    return -1;
}

void hub_rpc_delete_tree(struct hub *h, struct hub_agent *root, int64_t ended_before_ns,
                         hub_rpc_delete_done_fn *done, void *arg)
{
    struct agent_delete *d = ag_xcalloc(1, sizeof(*d));
    d->h = h;
    d->done = done;
    d->arg = arg;
    d->ended_before_ns = ended_before_ns;
    del_add(d, root); /* its pin is d's now */
    hold_next(d);
}

/* DeleteAgent's end: the call hears the ids, or the error. */
static void delete_answered(void *arg, const char *const *ids, size_t n, const struct ag_err *err)
{
    struct rpc_call *c = arg;
    if (err) {
        rpc_call_fail(c, err);
        rpc_call_unref(c);
        return;
    }
    Agentry__V1__DeleteAgentResponse r = AGENTRY__V1__DELETE_AGENT_RESPONSE__INIT;
    r.n_deleted = n;
    r.deleted = (char **)ids; /* borrowed: packed before they go */
    rpc_call_reply_take(c, rpc_pb_pack(&r.base));
    rpc_call_unref(c);
}

static void on_delete(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__DeleteAgentRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__delete_agent_request__descriptor);
    if (!in)
        return;
    if (atomic_load(&h->closing)) {
        rpc_call_finish(c, AG_UNAVAILABLE,
                        "the hub is shutting down; retry on another hub or later");
        return;
    }
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *a = hub_authn_get_agent(h, c, in->agent_id, &err);
    if (!a) {
        rpc_call_fail(c, &err);
        return;
    }
    hub_authn_audit(c, a->id, a->ns, true, NULL);
    if (a->parent_id[0] && refuse_child(h, c, a) != 0) {
        hub_agents_unpin(&h->agents, a);
        return;
    }
    rpc_call_ref(c);
    hub_rpc_delete_tree(h, a, 0, delete_answered, c);
}

const struct rpc_method hub_rpc_delete_methods[] = {
    {.path = "/agentry.v1.AgentHub/DeleteAgent", .kind = RPC_UNARY, .on_call = on_delete},
};
const size_t hub_rpc_delete_nmethods = AG_ARRAY_SIZE(hub_rpc_delete_methods);
