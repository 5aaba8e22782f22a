/* hub/sched.c - the node table, the FIFO of waiting agents, and the strategy table.
 *
 * Invariants: a node is in `nodes` iff it is alive; running <= capacity for every node; the FIFO
 * may hold agents that no longer wait (killed, or placed by another path): the hub checks the
 * agent's state when a decision reaches it and gives the slot back if it is not pending. This
 * lazy deletion keeps the scheduler ignorant of agent state. */
#include "hub/sched.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc/server.h"
#include "common/xalloc.h"

struct fifo_item {
    struct hub_agent *agent;
};

struct hub_sched {
    pthread_mutex_t lock;
    const struct hub_sched_strategy *strategy;
    void *state;
    struct hub_node **nodes; /* alive nodes, in join order */
    size_t nnodes, cap_nodes;
    struct fifo_item *fifo;  /* ring */
    size_t fifo_head, fifo_len, fifo_cap;
};

/* --- strategies ------------------------------------------------------------------------------ */

struct rr_state {
    size_t next;
};

static void *rr_state_new(void)
{
    return ag_xcalloc(1, sizeof(struct rr_state));
}

static void rr_state_free(void *state)
{
    free(state);
}

/* Round-robin: the first node with a free slot at or after the cursor; the cursor moves past it,
 * so consecutive turns land on consecutive nodes while they have room. */
static struct hub_node *place_round_robin(void *state, struct hub_node *const *nodes, size_t n)
{
    struct rr_state *rr = state;
    for (size_t i = 0; i < n; i++) {
        size_t k = (rr->next + i) % n;
        if (nodes[k]->running < nodes[k]->capacity) {
            rr->next = (k + 1) % n;
            return nodes[k];
        }
    }
    return NULL;
}

const struct hub_sched_strategy hub_sched_strategies[] = {
    {"round_robin", place_round_robin, rr_state_new, rr_state_free},
    {NULL, NULL, NULL, NULL},
};

const struct hub_sched_strategy *hub_sched_find(const char *name)
{
    for (const struct hub_sched_strategy *s = hub_sched_strategies; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* --- table ----------------------------------------------------------------------------------- */

struct hub_sched *hub_sched_new(const struct hub_sched_strategy *strategy)
{
    struct hub_sched *s = ag_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->strategy = strategy;
    s->state = strategy->state_new ? strategy->state_new() : NULL;
    return s;
}

static void node_unref_locked(struct hub_node *n)
{
    if (--n->refs > 0)
        return;
    if (n->stream)
        rpc_call_unref(n->stream);
    free(n->labels);
    free(n->version);
    free(n);
}

void hub_sched_free(struct hub_sched *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++)
        node_unref_locked(s->nodes[i]);
    free(s->nodes);
    free(s->fifo);
    if (s->strategy->state_free)
        s->strategy->state_free(s->state);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void hub_node_ref(struct hub_sched *s, struct hub_node *n)
{
    pthread_mutex_lock(&s->lock);
    n->refs++;
    pthread_mutex_unlock(&s->lock);
}

void hub_node_unref(struct hub_sched *s, struct hub_node *n)
{
    pthread_mutex_lock(&s->lock);
    node_unref_locked(n);
    pthread_mutex_unlock(&s->lock);
}

bool hub_node_alive(struct hub_sched *s, struct hub_node *n)
{
    pthread_mutex_lock(&s->lock);
    bool alive = n->alive;
    pthread_mutex_unlock(&s->lock);
    return alive;
}

void hub_node_touch(struct hub_sched *s, struct hub_node *n, int64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    n->last_seen_ms = now_ms;
    pthread_mutex_unlock(&s->lock);
}

static void remove_locked(struct hub_sched *s, struct hub_node *n)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        if (s->nodes[i] != n)
            continue;
        memmove(&s->nodes[i], &s->nodes[i + 1], (s->nnodes - i - 1) * sizeof(*s->nodes));
        s->nnodes--;
        n->alive = false;
        node_unref_locked(n);
        return;
    }
}

static struct hub_node *reserve_locked(struct hub_sched *s)
{
    struct hub_node *n = s->strategy->place(s->state, s->nodes, s->nnodes);
    if (n) {
        n->running++;
        n->refs++;
    }
    return n;
}

/* Hand free slots to waiting agents, oldest first. */
static size_t drain_fifo_locked(struct hub_sched *s, struct hub_sched_decision *out, size_t max)
{
    size_t k = 0;
    while (k < max && s->fifo_len) {
        struct hub_node *n = reserve_locked(s);
        if (!n)
            break;
        out[k].agent = s->fifo[s->fifo_head].agent;
        out[k].node = n;
        k++;
        s->fifo_head = (s->fifo_head + 1) % s->fifo_cap;
        s->fifo_len--;
    }
    return k;
}

size_t hub_sched_add_node(struct hub_sched *s, struct hub_node *node, struct hub_node **replaced,
                          struct hub_sched_decision *out, size_t max)
{
    pthread_mutex_lock(&s->lock);
    *replaced = NULL;
    for (size_t i = 0; i < s->nnodes; i++) {
        if (strcmp(s->nodes[i]->id, node->id) == 0) {
            *replaced = s->nodes[i];
            (*replaced)->refs++;
            remove_locked(s, *replaced);
            break;
        }
    }
    if (s->nnodes == s->cap_nodes) {
        s->cap_nodes = s->cap_nodes ? s->cap_nodes * 2 : 8;
        s->nodes = ag_xrealloc(s->nodes, s->cap_nodes * sizeof(*s->nodes));
    }
    node->alive = true;
    node->refs++;
    s->nodes[s->nnodes++] = node;
    size_t k = drain_fifo_locked(s, out, max);
    pthread_mutex_unlock(&s->lock);
    return k;
}

size_t hub_sched_drain(struct hub_sched *s, struct hub_sched_decision *out, size_t max)
{
    pthread_mutex_lock(&s->lock);
    size_t k = drain_fifo_locked(s, out, max);
    pthread_mutex_unlock(&s->lock);
    return k;
}

void hub_sched_remove_node(struct hub_sched *s, struct hub_node *node)
{
    pthread_mutex_lock(&s->lock);
    if (node->alive)
        remove_locked(s, node);
    pthread_mutex_unlock(&s->lock);
}

struct hub_node *hub_sched_try_reserve(struct hub_sched *s)
{
    pthread_mutex_lock(&s->lock);
    /* Never overtake agents already waiting: they get free slots first. */
    struct hub_node *n = s->fifo_len ? NULL : reserve_locked(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

struct hub_node *hub_sched_place_or_queue(struct hub_sched *s, struct hub_agent *agent)
{
    pthread_mutex_lock(&s->lock);
    /* Agents already waiting go first: a newcomer never overtakes the queue. */
    struct hub_node *n = s->fifo_len ? NULL : reserve_locked(s);
    if (!n) {
        if (s->fifo_len == s->fifo_cap) {
            size_t ncap = s->fifo_cap ? s->fifo_cap * 2 : 64;
            struct fifo_item *f = ag_xcalloc(ncap, sizeof(*f));
            for (size_t i = 0; i < s->fifo_len; i++)
                f[i] = s->fifo[(s->fifo_head + i) % s->fifo_cap];
            free(s->fifo);
            s->fifo = f;
            s->fifo_cap = ncap;
            s->fifo_head = 0;
        }
        s->fifo[(s->fifo_head + s->fifo_len) % s->fifo_cap].agent = agent;
        s->fifo_len++;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t hub_sched_release(struct hub_sched *s, struct hub_node *node, struct hub_sched_decision *out)
{
    pthread_mutex_lock(&s->lock);
    if (node->running > 0)
        node->running--;
    node_unref_locked(node);
    size_t k = drain_fifo_locked(s, out, 1);
    pthread_mutex_unlock(&s->lock);
    return k;
}

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

void hub_sched_get_stats(struct hub_sched *s, struct hub_sched_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->lock);
    out->nodes = s->nnodes;
    for (size_t i = 0; i < s->nnodes; i++) {
        out->capacity += s->nodes[i]->capacity;
        out->running += s->nodes[i]->running;
    }
    out->queued = s->fifo_len;
    pthread_mutex_unlock(&s->lock);
}
