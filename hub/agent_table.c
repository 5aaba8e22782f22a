/* hub/agents.c - the in-memory agent table: lookup by id (sharded), lookup by request id, and the
 * creation-order list ListAgents pages through.
 *
 * Agents are never removed while the hub runs (this issue has no deletion), so pointers from the
 * table are valid until hub_free, and list positions are stable page tokens. An agent enters the
 * table when its creating write commits (hub_agents_publish); the request-id map holds it from the
 * moment Spawn starts, so a concurrent retry finds it. Each shard and the list have their own
 * lock; no agent lock is ever taken here. */
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/hub_internal.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

struct hub_agent *hub_agent_new_take(const char *id, uint8_t *spec_bin, size_t spec_len,
                                     const char *request_id, int64_t created_ns,
                                     struct ag_err *err)
{
    struct hub_agent *a = ag_xcalloc(1, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    pthread_mutex_init(&a->lock, NULL);
    a->spec_bin = spec_bin;
    a->spec_len = spec_len;
    ag_arena_init(&a->spec_arena, NULL, 0);
    /* A private decoded copy, living as long as the agent. */
    a->spec = rpc_pb_unpack_bytes(a->spec_bin, a->spec_len, &agentry__v1__agent_spec__descriptor,
                                  &a->spec_arena, err);
    a->request_id = request_id && *request_id ? ag_xstrdup(request_id) : NULL;
    a->created_ns = created_ns;
    a->st.updated_ns = created_ns;
    if (!a->spec) {
        ag_err_prefix(err, "agent '%s' has an unreadable spec", id);
        hub_agent_free(NULL, a); /* fresh: no node, no commands, so no hub needed */
        return NULL;
    }
    /* The spec is immutable and lives as long as the agent: the scheduler may borrow from it. */
    const char *model = a->spec->model && *a->spec->model ? a->spec->model : "mock";
    hub_sched_req_init(&a->req, a, a->id, model, a->spec->tools, a->spec->n_tools);
    return a;
}

struct hub_agent *hub_agent_new(const Agentry__V1__AgentSpec *spec, const char *request_id)
{
    char id[AG_ID_LEN + 1];
    ag_id_new(id);
    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *bin = ag_xmalloc(len ? len : 1);
    protobuf_c_message_pack(&spec->base, bin);
    /* The spec was just packed from a valid message: decoding it back cannot fail. */
    return hub_agent_new_take(id, bin, len, request_id, ag_now_unix_ns(), NULL);
}

void hub_agent_st_release(struct hub *h, struct hub_agent_st *st)
{
    if (st->node)
        hub_node_unref(h->sched, st->node);
    st->node = NULL;
    free(st->ckpt);
    free(st->last_output);
    free(st->last_error);
    st->ckpt = NULL;
    st->last_output = st->last_error = NULL;
}

void hub_agent_free(struct hub *h, struct hub_agent *a)
{
    hub_agent_st_release(h, &a->st);
    free(a->first.output);
    free(a->first.error);
    for (size_t i = 0; i < a->ninbox; i++)
        free(a->inbox[i].text);
    free(a->inbox);
    hub_agent_ring_clear(a);
    while (a->mb_head) {
        struct hub_cmd *c = a->mb_head;
        a->mb_head = c->next;
        hub_cmd_free(h, c);
    }
    ag_arena_release(&a->spec_arena);
    free(a->spec_bin);
    free(a->request_id);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* --- by id --------------------------------------------------------------------------------- */

static struct hub_shard *shard_of(struct hub *h, const char *id, uint64_t *hash)
{
    *hash = hash_str(id);
    return &h->shards[*hash % HUB_SHARDS];
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

struct hub_agent *hub_agents_find(struct hub *h, const char *id)
{
    uint64_t hash;
    struct hub_shard *s = shard_of(h, id, &hash);
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

struct hub_agent *hub_agents_lookup(struct hub *h, const char *id, struct ag_err *err)
{
    if (hub_validate_agent_id(id, err) != 0)
        return NULL;
    struct hub_agent *a = hub_agents_find(h, id);
    if (!a)
        ag_err_set(err, AG_NOT_FOUND, "no agent with id '%s'", id);
    return a;
}

void hub_agents_publish(struct hub *h, struct hub_agent *a)
{
    uint64_t hash;
    struct hub_shard *s = shard_of(h, a->id, &hash);
    pthread_mutex_lock(&s->lock);
    shard_insert(s, a, hash);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&h->list_lock);
    if (h->nlist == h->cap_list) {
        h->cap_list = h->cap_list ? h->cap_list * 2 : 1024;
        h->list = ag_xrealloc(h->list, h->cap_list * sizeof(*h->list));
    }
    a->list_pos = h->nlist;
    h->list[h->nlist++] = a;
    pthread_mutex_unlock(&h->list_lock);
}

size_t hub_agents_count(struct hub *h)
{
    pthread_mutex_lock(&h->list_lock);
    size_t n = h->nlist;
    pthread_mutex_unlock(&h->list_lock);
    return n;
}

struct hub_agent *hub_agents_at(struct hub *h, size_t pos)
{
    pthread_mutex_lock(&h->list_lock);
    struct hub_agent *a = pos < h->nlist ? h->list[pos] : NULL;
    pthread_mutex_unlock(&h->list_lock);
    return a;
}

/* --- by request id (guarded by list_lock; linear probing with backward-shift deletion) ------- */

static void req_grow_locked(struct hub *h)
{
    size_t ncap = h->req_cap ? h->req_cap * 2 : 256;
    struct hub_agent **ns = ag_xcalloc(ncap, sizeof(*ns));
    for (size_t i = 0; i < h->req_cap; i++) {
        if (!h->by_req[i])
            continue;
        size_t k = hash_str(h->by_req[i]->request_id) % ncap;
        while (ns[k])
            k = (k + 1) % ncap;
        ns[k] = h->by_req[i];
    }
    free(h->by_req);
    h->by_req = ns;
    h->req_cap = ncap;
}

struct hub_agent *hub_agents_claim_request(struct hub *h, const char *request_id,
                                           struct hub_agent *a)
{
    pthread_mutex_lock(&h->list_lock);
    if ((h->req_len + 1) * 10 > h->req_cap * 7)
        req_grow_locked(h);
    size_t k = hash_str(request_id) % h->req_cap;
    for (; h->by_req[k]; k = (k + 1) % h->req_cap) {
        if (strcmp(h->by_req[k]->request_id, request_id) == 0) {
            struct hub_agent *found = h->by_req[k];
            pthread_mutex_unlock(&h->list_lock);
            return found;
        }
    }
    if (a) {
        h->by_req[k] = a;
        h->req_len++;
    }
    pthread_mutex_unlock(&h->list_lock);
    return a;
}

void hub_agents_forget_request(struct hub *h, const char *request_id)
{
    pthread_mutex_lock(&h->list_lock);
    if (!h->req_cap) {
        pthread_mutex_unlock(&h->list_lock);
        return;
    }
    size_t k = hash_str(request_id) % h->req_cap;
    for (; h->by_req[k]; k = (k + 1) % h->req_cap)
        if (strcmp(h->by_req[k]->request_id, request_id) == 0)
            break;
    if (h->by_req[k]) {
        h->by_req[k] = NULL;
        h->req_len--;
        /* Backward-shift: re-place the entries after the hole so probes never stop early. */
        for (size_t j = (k + 1) % h->req_cap; h->by_req[j]; j = (j + 1) % h->req_cap) {
            struct hub_agent *e = h->by_req[j];
            h->by_req[j] = NULL;
            size_t t = hash_str(e->request_id) % h->req_cap;
            while (h->by_req[t])
                t = (t + 1) % h->req_cap;
            h->by_req[t] = e;
        }
    }
    pthread_mutex_unlock(&h->list_lock);
}

void hub_agents_free_all(struct hub *h)
{
    for (size_t i = 0; i < h->nlist; i++)
        hub_agent_free(h, h->list[i]);
    while (h->dead) {
        struct hub_agent *a = h->dead;
        h->dead = a->next_dead;
        hub_agent_free(h, a);
    }
    free(h->list);
    free(h->by_req);
    for (size_t i = 0; i < HUB_SHARDS; i++)
        free(h->shards[i].slots);
    h->list = NULL;
    h->by_req = NULL;
    h->nlist = 0;
}

bool hub_agent_held(const struct hub_agent *a, uint64_t epoch, uint64_t instance)
{
    if (epoch == 0)
        return false;
    if (a->st.epoch - epoch >= HUB_EPOCH_HISTORY)
        return true;
    const __typeof__(a->held[0]) *h = &a->held[epoch % HUB_EPOCH_HISTORY];
    return h->epoch == epoch && h->node_instance == instance;
}

/* --- inbox --------------------------------------------------------------------------------- */

void hub_agent_inbox_push(struct hub_agent *a, uint64_t seq, const char *text)
{
    if (a->ninbox == a->cap_inbox) {
        a->cap_inbox = a->cap_inbox ? a->cap_inbox * 2 : 4;
        a->inbox = ag_xrealloc(a->inbox, a->cap_inbox * sizeof(*a->inbox));
    }
    a->inbox[a->ninbox].seq = seq;
    a->inbox[a->ninbox].text = ag_xstrdup(text);
    a->ninbox++;
    a->inbox_bytes += strlen(text);
}

bool hub_agent_input_waiting(const struct hub_agent *a, uint64_t input_seq)
{
    /* The inbox is in seq order: its last input is the newest. */
    return a->ninbox && a->inbox[a->ninbox - 1].seq > input_seq;
}

void hub_agent_inbox_trim(struct hub_agent *a, uint64_t upto_seq)
{
    size_t k = 0;
    while (k < a->ninbox && a->inbox[k].seq <= upto_seq) {
        a->inbox_bytes -= strlen(a->inbox[k].text);
        free(a->inbox[k++].text);
    }
    if (k) {
        memmove(a->inbox, a->inbox + k, (a->ninbox - k) * sizeof(*a->inbox));
        a->ninbox -= k;
    }
}
