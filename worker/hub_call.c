/* worker/hub_call.c - hub tool calls from this node: the link between a tool's run() and the
 * node's stream (see worker/hub_call.h).
 *
 * A call is an entry in the link's map, keyed by its HubToolCall.id, from wk_hub_call until one
 * of four things takes it out: its HubToolResult (connection thread), its deadline or its cancel
 * (timer thread), or the stream's end (connection thread). Whoever takes it out of the map
 * calls done(), so done() runs exactly once; the others find it gone and do nothing.
 *
 * Lifetime: an entry is referenced by the map and by each timer queued for it; the link is
 * referenced by its owner (the connection) and by each entry, so a timer that fires after the
 * connection freed the link still finds valid memory (ag_timers_free runs what is pending).
 *
 * Locks: the link's lock, then the cancel handle's (wk_hub_call checks for a cancel with the
 * link's held) or the timers' (timers are queued under it). The cancel listener runs under the
 * handle's lock and takes only the timers'; complete() lets go of the link's lock before
 * wk_cancel_unlisten. send() is called with the link's lock held (it takes the connection's). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/map.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "worker/hub_call.h"

struct wk_hub_link {
    pthread_mutex_t lock;
    atomic_int refs;
    struct ag_timers *timers;
    wk_hub_send_fn *send;
    void *ctx;
    /* Guarded by lock: */
    struct ag_map pending; /* key: entry->key */
    uint64_t next_id;
    bool closed;
};

struct entry {
    char key[24]; /* the id in decimal: the map's key */
    uint64_t id;
    atomic_int refs;
    struct wk_hub_link *l; /* reference held */
    struct wk_cancel *cancel;
    wk_hub_done_fn *done;
    void *arg;
    char *name; /* the tool, for messages */
};

static void link_unref(struct wk_hub_link *l)
{
    if (atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    ag_map_release(&l->pending);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void entry_unref(struct entry *e)
{
    if (atomic_fetch_sub(&e->refs, 1) != 1)
        return;
    link_unref(e->l);
    free(e->name);
    free(e);
}

/* Take e out of the map if it is still there; true if this caller did. Link's lock held. */
static bool take_locked(struct entry *e)
{
    if (ag_map_get(&e->l->pending, e->key) != e)
        return false;
    ag_map_del(&e->l->pending, e->key);
    return true;
}

/* e was taken out of the map by this caller: finish it. No lock held. */
static void complete(struct entry *e, char *output, bool is_error, bool wait)
{
    wk_cancel_unlisten(e->cancel, e);
    e->done(e->arg, output, is_error, wait);
    entry_unref(e); /* the map's reference */
}

static void finish_with(struct entry *e, const char *why)
{
    pthread_mutex_lock(&e->l->lock);
    bool mine = take_locked(e);
    pthread_mutex_unlock(&e->l->lock);
    if (mine)
        complete(e, ag_xasprintf("tool '%s' %s", e->name, why), true, false);
}

static void on_deadline(void *arg)
{
    struct entry *e = arg;
    finish_with(e, "timed out waiting for the hub's answer");
    entry_unref(e); /* the timer's */
}

static void on_cancel_fire(void *arg)
{
    struct entry *e = arg;
    finish_with(e, "was cancelled");
    entry_unref(e); /* the timer's */
}

/* The cancel listener: under the handle's lock, so only hop to the timer thread. */
static void on_cancel(void *arg)
{
    struct entry *e = arg;
    atomic_fetch_add(&e->refs, 1);
    ag_timers_add(e->l->timers, 0, on_cancel_fire, e);
}

static void entry_drop(struct entry *e)
{
    free(e->name);
    free(e);
}

int wk_hub_call(const struct wk_call_ctx *ctx, const char *name, const char *args_json,
                wk_hub_done_fn *done, void *arg, struct ag_err *err)
{
    struct wk_hub_link *l = ctx->hub;
    if (!l || !ctx->timers)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "tool '%s' runs on the hub, and this node has no hub link", name);
    struct entry *e = ag_xcalloc(1, sizeof(*e));
    atomic_init(&e->refs, 2); /* the map's, and this function's until it returns */
    e->l = l;
    e->cancel = ctx->cancel;
    e->done = done;
    e->arg = arg;
    e->name = ag_xstrdup(name);
    /* Listen first: a cancel from now on reaches the entry (on_cancel finds it in the map, or
     * the check below catches one that came before it was put there). */
    if (!wk_cancel_listen(e->cancel, on_cancel, e)) {
        entry_drop(e);
        return ag_err_set(err, AG_CANCELLED, "tool '%s' was cancelled", name);
    }

    Agentry__V1__HubToolCall c = AGENTRY__V1__HUB_TOOL_CALL__INIT;
    c.agent_id = (char *)(ctx->agent_id ? ctx->agent_id : "");
    c.epoch = ctx->epoch;
    c.call_id = (char *)(ctx->call_id ? ctx->call_id : "");
    c.name = (char *)name;
    c.arguments = (char *)(args_json ? args_json : "{}");
    Agentry__V1__NodeMessage m = AGENTRY__V1__NODE_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__NODE_MESSAGE__MSG_HUB_TOOL;
    m.hub_tool = &c;

    pthread_mutex_lock(&l->lock);
    int refused = l->closed                                       ? AG_UNAVAILABLE
                  : ag_map_len(&l->pending) >= WK_HUB_MAX_PENDING ? AG_RESOURCE_EXHAUSTED
                                                                  : AG_OK;
    if (refused == AG_OK) {
        e->id = c.id = ++l->next_id;
        snprintf(e->key, sizeof(e->key), "%" PRIu64, e->id);
        size_t len = protobuf_c_message_get_packed_size(&m.base);
        uint8_t *buf = ag_xmalloc(len ? len : 1);
        protobuf_c_message_pack(&m.base, buf);
        if (l->send(l->ctx, buf, len) != 0) {
            refused = AG_UNAVAILABLE;
        } else {
            ag_map_put(&l->pending, e->key, e);
            atomic_fetch_add(&l->refs, 1); /* the entry's */
            /* Still under the lock: nobody can have taken the entry out and called done(), so
             * ctx and the cancel handle are still the caller's to read (after the unlock an
             * answer may complete the call, and its caller free both, at any moment). */
            if (ctx->deadline_ms) {
                int64_t left = ctx->deadline_ms - ag_now_mono_ms();
                atomic_fetch_add(&e->refs, 1);
                ag_timers_add(l->timers, left > 0 ? left : 0, on_deadline, e);
            }
            if (wk_cancel_requested(e->cancel))
                on_cancel(e); /* it may have come before the entry was in the map */
        }
    }
    pthread_mutex_unlock(&l->lock);
    if (refused != AG_OK) {
        wk_cancel_unlisten(e->cancel, e);
        entry_drop(e);
        return refused == AG_RESOURCE_EXHAUSTED
                   ? ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                                "%d hub tool calls already wait for the hub's answers",
                                WK_HUB_MAX_PENDING)
                   : ag_err_set(err, AG_UNAVAILABLE,
                                "tool '%s' runs on the hub, and the node is not connected to it",
                                name);
    }
    entry_unref(e); /* this function's */
    return 0;
}

struct wk_hub_link *wk_hub_link_new(struct ag_timers *timers, wk_hub_send_fn *send, void *ctx)
{
    struct wk_hub_link *l = ag_xcalloc(1, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    atomic_init(&l->refs, 1);
    l->timers = timers;
    l->send = send;
    l->ctx = ctx;
    ag_map_init(&l->pending);
    return l;
}

/* Take every entry out of the map (closing the link when stop). */
static struct entry **take_all(struct wk_hub_link *l, bool stop, size_t *n)
{
    pthread_mutex_lock(&l->lock);
    l->closed |= stop;
    *n = ag_map_len(&l->pending);
    struct entry **all = ag_xmalloc((*n ? *n : 1) * sizeof(*all));
    struct ag_map_iter it = {0};
    const char *key;
    void *val;
    size_t k = 0;
    while (ag_map_next(&l->pending, &it, &key, &val))
        all[k++] = val;
    for (size_t i = 0; i < k; i++)
        ag_map_del(&l->pending, all[i]->key);
    pthread_mutex_unlock(&l->lock);
    return all;
}

static void fail_all(struct wk_hub_link *l, bool stop, const char *why)
{
    size_t n;
    struct entry **all = take_all(l, stop, &n);
    for (size_t i = 0; i < n; i++)
        complete(all[i], ag_xasprintf("tool '%s' got no answer: %s", all[i]->name, why), true,
                 false);
    free(all);
}

void wk_hub_link_lost(struct wk_hub_link *l, const char *why)
{
    fail_all(l, false, why);
}

void wk_hub_link_free(struct wk_hub_link *l)
{
    if (!l)
        return;
    fail_all(l, true, "the node is stopping");
    link_unref(l);
}

void wk_hub_link_result(struct wk_hub_link *l, const Agentry__V1__HubToolResult *r)
{
    char key[24];
    snprintf(key, sizeof(key), "%" PRIu64, r->id);
    pthread_mutex_lock(&l->lock);
    struct entry *e = ag_map_get(&l->pending, key);
    if (e)
        ag_map_del(&l->pending, e->key);
    pthread_mutex_unlock(&l->lock);
    if (e)
        complete(e, ag_xstrdup(r->output ? r->output : ""), r->is_error, r->wait);
}
