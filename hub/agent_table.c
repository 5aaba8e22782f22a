/* hub/agent_table.c - the hub's agents by id, by request id and in commit order (see
 * agent_table.h). Each shard and the list have their own lock; no agent lock is taken here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/map.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/validate.h"

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
    pthread_mutex_unlock(&s->lock);
    return found;
}

struct hub_agent *hub_agents_lookup(struct hub_agents *t, const char *id, struct ag_err *err)
{
    if (hub_validate_agent_id(id, err) != 0)
        return NULL;
    struct hub_agent *a = hub_agents_find(t, id);
    if (!a)
        ag_err_set(err, AG_NOT_FOUND, "no agent with id '%s'", id);
    return a;
}

void hub_agents_publish(struct hub_agents *t, struct hub_agent *a)
{
    struct hub_shard *s = shard_of(t, a->id);
    pthread_mutex_lock(&s->lock);
    ag_map_put(&s->by_id, a->id, a);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&t->list_lock);
    if (t->nlist == t->cap_list) {
        t->cap_list = t->cap_list ? t->cap_list * 2 : 1024;
        t->list = ag_xrealloc(t->list, t->cap_list * sizeof(*t->list));
    }
    a->list_pos = t->nlist;
    t->list[t->nlist++] = a;
    pthread_mutex_unlock(&t->list_lock);
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
    for (size_t pos = from; pos < t->nlist && n < max; pos++)
        out[n++] = t->list[pos];
    pthread_mutex_unlock(&t->list_lock);
    return n;
}

/* --- by request id (guarded by list_lock) ------------------------------------------------- */

struct hub_agent *hub_agents_claim_request(struct hub_agents *t, const char *request_id,
                                           struct hub_agent *a)
{
    pthread_mutex_lock(&t->list_lock);
    struct hub_agent *found = ag_map_get(&t->by_req, request_id);
    if (!found && a)
        ag_map_put(&t->by_req, a->request_id, a); /* the key lives in the agent */
    pthread_mutex_unlock(&t->list_lock);
    return found ? found : a;
}

void hub_agents_forget_request(struct hub_agents *t, const char *request_id)
{
    pthread_mutex_lock(&t->list_lock);
    ag_map_del(&t->by_req, request_id);
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
