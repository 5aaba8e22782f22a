/* hub/agent_table.c - the hub's agents by id, by request id and in commit order (see
 * agent_table.h). Each shard and the list have their own lock; no agent lock is taken here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/validate.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void hub_agents_init(struct hub_agents *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < HUB_SHARDS; i++)
        pthread_mutex_init(&t->shards[i].lock, NULL);
    pthread_mutex_init(&t->list_lock, NULL);
}

/* --- by id --------------------------------------------------------------------------------- */

static struct hub_shard *shard_of(struct hub_agents *t, const char *id, uint64_t *hash)
{
    *hash = hash_str(id);
    return &t->shards[*hash % HUB_SHARDS];
}

static void shard_insert(struct hub_shard *s, struct hub_agent *a, uint64_t hash)
{
    if ((s->len + 1) * 10 > s->cap * 7) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct hub_agent **ns = ag_xcalloc(ncap, sizeof(*ns));
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            size_t k = (hash_str(s->slots[i]->id) / HUB_SHARDS) % ncap;
            while (ns[k])
                k = (k + 1) % ncap;
            ns[k] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    size_t k = (hash / HUB_SHARDS) % s->cap;
    while (s->slots[k])
        k = (k + 1) % s->cap;
    s->slots[k] = a;
    s->len++;
}

struct hub_agent *hub_agents_find(struct hub_agents *t, const char *id)
{
    uint64_t hash;
    struct hub_shard *s = shard_of(t, id, &hash);
    struct hub_agent *found = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->cap) {
        for (size_t k = (hash / HUB_SHARDS) % s->cap; s->slots[k]; k = (k + 1) % s->cap) {
            if (strcmp(s->slots[k]->id, id) == 0) {
                found = s->slots[k];
                break;
            }
        }
    }
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
    uint64_t hash;
    struct hub_shard *s = shard_of(t, a->id, &hash);
    pthread_mutex_lock(&s->lock);
    shard_insert(s, a, hash);
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

/* --- by request id (guarded by list_lock; linear probing with backward-shift deletion) ------- */

static void req_grow_locked(struct hub_agents *t)
{
    size_t ncap = t->req_cap ? t->req_cap * 2 : 256;
    struct hub_agent **ns = ag_xcalloc(ncap, sizeof(*ns));
    for (size_t i = 0; i < t->req_cap; i++) {
        if (!t->by_req[i])
            continue;
        size_t k = hash_str(t->by_req[i]->request_id) % ncap;
        while (ns[k])
            k = (k + 1) % ncap;
        ns[k] = t->by_req[i];
    }
    free(t->by_req);
    t->by_req = ns;
    t->req_cap = ncap;
}

struct hub_agent *hub_agents_claim_request(struct hub_agents *t, const char *request_id,
                                           struct hub_agent *a)
{
    pthread_mutex_lock(&t->list_lock);
    if ((t->req_len + 1) * 10 > t->req_cap * 7)
        req_grow_locked(t);
    size_t k = hash_str(request_id) % t->req_cap;
    for (; t->by_req[k]; k = (k + 1) % t->req_cap) {
        if (strcmp(t->by_req[k]->request_id, request_id) == 0) {
            struct hub_agent *found = t->by_req[k];
            pthread_mutex_unlock(&t->list_lock);
            return found;
        }
    }
    if (a) {
        t->by_req[k] = a;
        t->req_len++;
    }
    pthread_mutex_unlock(&t->list_lock);
    return a;
}

void hub_agents_forget_request(struct hub_agents *t, const char *request_id)
{
    pthread_mutex_lock(&t->list_lock);
    if (!t->req_cap) {
        pthread_mutex_unlock(&t->list_lock);
        return;
    }
    size_t k = hash_str(request_id) % t->req_cap;
    for (; t->by_req[k]; k = (k + 1) % t->req_cap)
        if (strcmp(t->by_req[k]->request_id, request_id) == 0)
            break;
    if (t->by_req[k]) {
        t->by_req[k] = NULL;
        t->req_len--;
        /* Backward-shift: re-place the entries after the hole so probes never stop early. */
        for (size_t j = (k + 1) % t->req_cap; t->by_req[j]; j = (j + 1) % t->req_cap) {
            struct hub_agent *e = t->by_req[j];
            t->by_req[j] = NULL;
            size_t p = hash_str(e->request_id) % t->req_cap;
            while (t->by_req[p])
                p = (p + 1) % t->req_cap;
            t->by_req[p] = e;
        }
    }
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
    free(t->by_req);
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        free(t->shards[i].slots);
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    pthread_mutex_destroy(&t->list_lock);
    t->list = NULL;
    t->by_req = NULL;
    t->nlist = 0;
}

void hub_agents_bury(struct hub_agents *t, struct hub_agent *a)
{
    pthread_mutex_lock(&t->list_lock);
    a->next_dead = t->dead;
    t->dead = a;
    pthread_mutex_unlock(&t->list_lock);
}
