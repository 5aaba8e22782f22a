/* hub/agent_table.c - the agents held in memory, by id, by request id and in a list (see
 * agent_table.h). Each shard and the list have their own lock; no agent lock is taken here. Pins
 * (hub_agent.pins) are counted under the agent's shard lock. Lock order: list_lock, then a shard
 * lock (eviction takes both, so that it is atomic for every finder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/map.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"

void hub_agents_init(struct hub_agents *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].lock, NULL);
        ag_map_init(&t->shards[i].by_id);
    }
    pthread_mutex_init(&t->list_lock, NULL);
    ag_map_init(&t->by_req);
}

/* --- by id --------------------------------------------------------------------------------- */

/* The shard from the hash's high half: the map inside places keys by the low bits, which a
 * shard chosen by them would leave the same for all its keys. */
static struct hub_shard *shard_of(struct hub_agents *t, const char *id)
{
    return &t->shards[(ag_hash_fnv1a_str(id) >> 32) % HUB_SHARDS];
}

struct hub_agent *hub_agents_find(struct hub_agents *t, const char *id)
{
    struct hub_shard *s = shard_of(t, id);
    pthread_mutex_lock(&s->lock);
    struct hub_agent *found = ag_map_get(&s->by_id, id);
    if (found)
        found->pins++;
    pthread_mutex_unlock(&s->lock);
    return found;
}

void hub_agents_pin(struct hub_agents *t, struct hub_agent *a)
{
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&s->lock);
    a->pins++;
    pthread_mutex_unlock(&s->lock);
}

void hub_agents_unpin(struct hub_agents *t, struct hub_agent *a)
{
    if (!a)
        return;
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&s->lock);
    a->pins--;
    pthread_mutex_unlock(&s->lock);
}

/* list_lock held. */
static void list_add_locked(struct hub_agents *t, struct hub_agent *a)
{
    if (t->nlist == t->cap_list) {
        t->cap_list = t->cap_list ? t->cap_list * 2 : 1024;
        t->list = ag_xrealloc(t->list, t->cap_list * sizeof(*t->list));
    }
    a->list_pos = t->nlist;
    t->list[t->nlist++] = a;
}

void hub_agents_publish(struct hub_agents *t, struct hub_agent *a)
{
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&s->lock);
    ag_map_put(&s->by_id, a->id, a);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&t->list_lock);
    list_add_locked(t, a);
    pthread_mutex_unlock(&t->list_lock);
}

struct hub_agent *hub_agents_adopt(struct hub_agents *t, struct hub_agent *a)
{
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&s->lock);
    struct hub_agent *held = ag_map_get(&s->by_id, a->id);
    if (!held) {
        ag_map_put(&s->by_id, a->id, a);
        held = a;
    }
    held->pins++;
    pthread_mutex_unlock(&s->lock);
    if (held != a)
        return held;
    pthread_mutex_lock(&t->list_lock);
    list_add_locked(t, a);
    if (a->req_key && !ag_map_get(&t->by_req, a->req_key))
        ag_map_put(&t->by_req, a->req_key, a);
    pthread_mutex_unlock(&t->list_lock);
    return a;
}

bool hub_agents_evict(struct hub_agents *t, struct hub_agent *a)
{
    /* Out of every index at once, under list_lock and then the shard lock (the order every
     * finder takes them in): a finder either pinned it before (no eviction) or finds nothing. */
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&t->list_lock);
    pthread_mutex_lock(&s->lock);
    bool alone = a->pins == 1 && ag_map_get(&s->by_id, a->id) == a;
    if (alone) {
        ag_map_del(&s->by_id, a->id);
        a->pins = 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (alone) {
        struct hub_agent *last = t->list[--t->nlist];
        t->list[a->list_pos] = last;
        last->list_pos = a->list_pos;
        if (a->req_key && ag_map_get(&t->by_req, a->req_key) == a)
            ag_map_del(&t->by_req, a->req_key);
    }
    pthread_mutex_unlock(&t->list_lock);
    return alone;
}

bool hub_agents_remove(struct hub_agents *t, struct hub_agent *a)
{
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&t->list_lock);
    pthread_mutex_lock(&s->lock);
    bool alone = a->pins == 1;
    bool held = ag_map_get(&s->by_id, a->id) == a;
    if (held)
        ag_map_del(&s->by_id, a->id);
    pthread_mutex_unlock(&s->lock);
    if (held) {
        struct hub_agent *last = t->list[--t->nlist];
        t->list[a->list_pos] = last;
        last->list_pos = a->list_pos;
    }
    if (a->req_key && ag_map_get(&t->by_req, a->req_key) == a)
        ag_map_del(&t->by_req, a->req_key);
    if (!alone) {
        a->next_dead = t->dead;
        t->dead = a;
    }
    pthread_mutex_unlock(&t->list_lock);
    return alone;
}

size_t hub_agents_count(struct hub_agents *t)
{
    pthread_mutex_lock(&t->list_lock);
    size_t n = t->nlist;
    pthread_mutex_unlock(&t->list_lock);
    return n;
}

size_t hub_agents_snapshot(struct hub_agents *t, size_t from, struct hub_agent **out, size_t max)
{
    pthread_mutex_lock(&t->list_lock);
    size_t n = 0;
    for (size_t pos = from; pos < t->nlist && n < max; pos++) {
        struct hub_agent *a = t->list[pos];
        hub_agents_pin(t, a); /* the shard lock inside list_lock, as eviction takes them */
        out[n++] = a;
    }
    pthread_mutex_unlock(&t->list_lock);
    return n;
}

/* --- by request id (guarded by list_lock) ------------------------------------------------- */

struct hub_agent *hub_agents_claim_request(struct hub_agents *t, const char *req_key,
                                           struct hub_agent *a)
{
    pthread_mutex_lock(&t->list_lock);
    struct hub_agent *found = ag_map_get(&t->by_req, req_key);
    if (!found && a)
        ag_map_put(&t->by_req, a->req_key, a); /* the key lives in the agent */
    if (found) /* under list_lock, which eviction holds while it takes an agent out */
        hub_agents_pin(t, found);
    pthread_mutex_unlock(&t->list_lock);
    return found ? found : a;
}

void hub_agents_forget_request(struct hub_agents *t, const char *req_key)
{
    pthread_mutex_lock(&t->list_lock);
    ag_map_del(&t->by_req, req_key);
    pthread_mutex_unlock(&t->list_lock);
}

void hub_agents_free_all(struct hub_agents *t, struct hub_sched *s,
                         void (*release)(void *arg, struct hub_agent *a), void *arg)
{
    for (size_t i = 0; i < t->nlist; i++) {
        release(arg, t->list[i]);
        hub_agent_free(s, t->list[i]);
    }
    while (t->dead) {
        struct hub_agent *a = t->dead;
        t->dead = a->next_dead;
        release(arg, a);
        hub_agent_free(s, a);
    }
    free(t->list);
    ag_map_release(&t->by_req);
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        ag_map_release(&t->shards[i].by_id);
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    pthread_mutex_destroy(&t->list_lock);
    t->list = NULL;
    t->nlist = 0;
}

void hub_agents_bury(struct hub_agents *t, struct hub_agent *a)
{
    pthread_mutex_lock(&t->list_lock);
    a->next_dead = t->dead;
    t->dead = a;
    pthread_mutex_unlock(&t->list_lock);
}
