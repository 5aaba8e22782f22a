/* worker/warm.c - kept conversations, least recently used first out (see warm.h).
 *
 * A map from agent id to entry, and a list in use order (oldest at the head). An entry's size is
 * the bytes of its messages' text, the measure that grows with a conversation; the bound is on
 * their sum. */
#include "worker/warm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/container.h"
#include "common/list.h"
#include "common/map.h"
#include "common/xalloc.h"

struct warm_entry {
    char *agent_id; /* owned; the map's key */
    uint64_t epoch;
    struct wk_msg *msgs; /* owned */
    size_t nmsgs;
    size_t bytes;
    struct ag_list lru;
};

struct wk_warm {
    pthread_mutex_t mu; /* guards everything below */
    struct ag_map by_agent;
    struct ag_list lru; /* of warm_entry.lru, least recently kept first */
    size_t bytes, max_bytes;
};

size_t wk_warm_msgs_bytes(const struct wk_msg *m, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        b += strlen(m[i].content) + (m[i].tool_call_id ? strlen(m[i].tool_call_id) : 0);
        for (size_t k = 0; k < m[i].ncalls; k++)
            b += strlen(m[i].calls[k].id) + strlen(m[i].calls[k].name) +
                 strlen(m[i].calls[k].arguments);
    }
    return b;
}

static void msgs_free(struct wk_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wk_msg_release(&m[i]);
    free(m);
}

static void entry_free(struct warm_entry *e)
{
    msgs_free(e->msgs, e->nmsgs);
    free(e->agent_id);
    free(e);
}

/* Lock held. */
static void entry_remove(struct wk_warm *w, struct warm_entry *e)
{
    ag_map_del(&w->by_agent, e->agent_id);
    ag_list_remove(&e->lru);
    w->bytes -= e->bytes;
}

struct wk_warm *wk_warm_new(size_t max_bytes)
{
    struct wk_warm *w = ag_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    ag_map_init(&w->by_agent);
    ag_list_init(&w->lru);
    w->max_bytes = max_bytes;
    return w;
}

void wk_warm_free(struct wk_warm *w)
{
    if (!w)
        return;
    while (!ag_list_empty(&w->lru)) {
        struct warm_entry *e = AG_CONTAINER_OF(w->lru.next, struct warm_entry, lru);
        entry_remove(w, e);
        entry_free(e);
    }
    ag_map_release(&w->by_agent);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void wk_warm_put(struct wk_warm *w, const char *agent_id, uint64_t epoch, struct wk_msg *msgs,
                 size_t n, size_t bytes)
{
    struct warm_entry *e = ag_xcalloc(1, sizeof(*e));
    e->agent_id = ag_xstrdup(agent_id);
    e->epoch = epoch;
    e->msgs = msgs;
    e->nmsgs = n;
    e->bytes = bytes;
    struct warm_entry *evicted = NULL, *old;
    pthread_mutex_lock(&w->mu);
    if ((old = ag_map_get(&w->by_agent, agent_id)))
        entry_remove(w, old);
    if (bytes > w->max_bytes) {
        pthread_mutex_unlock(&w->mu);
        if (old)
            entry_free(old);
        entry_free(e);
        return;
    }
    ag_map_put(&w->by_agent, e->agent_id, e);
    ag_list_insert_tail(&w->lru, &e->lru);
    w->bytes += bytes;
    /* Unlinked ones are chained through their lru field to be freed outside the lock. */
    while (w->bytes > w->max_bytes) {
        struct warm_entry *v = AG_CONTAINER_OF(w->lru.next, struct warm_entry, lru);
        entry_remove(w, v);
        v->lru.next = evicted ? &evicted->lru : NULL;
        evicted = v;
    }
    pthread_mutex_unlock(&w->mu);
    if (old)
        entry_free(old);
    while (evicted) {
        struct warm_entry *next = evicted->lru.next
                                      ? AG_CONTAINER_OF(evicted->lru.next, struct warm_entry, lru)
                                      : NULL;
        entry_free(evicted);
        evicted = next;
    }
}

bool wk_warm_take(struct wk_warm *w, const char *agent_id, uint64_t epoch, struct wk_msg **msgs,
                  size_t *n, size_t *bytes)
{
    pthread_mutex_lock(&w->mu);
    struct warm_entry *e = ag_map_get(&w->by_agent, agent_id);
    if (e)
        entry_remove(w, e);
    pthread_mutex_unlock(&w->mu);
    if (!e)
        return false;
    if (e->epoch != epoch) {
        entry_free(e);
        return false;
    }
    *msgs = e->msgs;
    *n = e->nmsgs;
    *bytes = e->bytes;
    e->msgs = NULL;
    e->nmsgs = 0;
    entry_free(e);
    return true;
}

bool wk_warm_forget(struct wk_warm *w, const char *agent_id)
{
    pthread_mutex_lock(&w->mu);
    struct warm_entry *e = ag_map_get(&w->by_agent, agent_id);
    if (e)
        entry_remove(w, e);
    pthread_mutex_unlock(&w->mu);
    if (!e)
        return false;
    entry_free(e);
    return true;
}

size_t wk_warm_bytes(struct wk_warm *w)
{
    pthread_mutex_lock(&w->mu);
    size_t b = w->bytes;
    pthread_mutex_unlock(&w->mu);
    return b;
}

size_t wk_warm_count(struct wk_warm *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = ag_map_len(&w->by_agent);
    pthread_mutex_unlock(&w->mu);
    return n;
}
