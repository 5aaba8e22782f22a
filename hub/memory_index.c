/* hub/memory_index.c - the vectors memory_search scans (see memory_index.h for the contract).
 *
 * A set is the entries with a vector of one (agent, memory namespace): an array for the scan and
 * a map by key for updates, each vector scaled to length 1 at insertion so a cosine is one dot
 * product. Its life: LOADING (the store's reader reads it; searches wait on it and updates pile
 * up in pending), then READY (on the LRU list, searched on the pool), until evicted. A set is
 * freed when its last reference goes: the table's, and one per search or update using it.
 *
 * Budget: bytes counts every set's vectors, keys and per-entry bookkeeping. Past cap_bytes, the
 * least recently searched sets are dropped (never the one just used, so a single set larger than
 * the budget is still searched, then dropped when another is needed); the next search reloads. */
#include "hub/memory_index.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/list.h"
#include "common/log.h"
#include "common/map.h"
#include "common/workpool.h"
#include "common/xalloc.h"
#include "hub/store.h"

/* Searches waiting for a pool thread, at most; beyond, RESOURCE_EXHAUSTED. */
#define INDEX_MAX_QUEUED 1024
/* Rows per store read while loading a set: the reader thread serves other reads (a Trace's
 * replay, memory_get) between pages, so a big set does not hold them up for its whole load. */
#define INDEX_LOAD_PAGE 1024
/* What an entry costs beyond its vector and key: the struct, the array slot, the map slot. */
#define ENTRY_OVERHEAD (sizeof(struct ment) + sizeof(struct ment *) + 2 * sizeof(void *) + 16)

struct ment {
    char *key; /* owned; the map's key */
    float *v;  /* owned, length 1 (or zero) */
    uint32_t dims;
    size_t idx; /* in the set's array */
};

enum mset_state { MSET_LOADING, MSET_READY };

/* An update that came while the set was loading (mu). */
struct mpend {
    struct mpend *next;
    char *key; /* owned */
    float *v;  /* owned; NULL: delete, or a put without a vector */
    uint32_t dims;
};

struct mset {
    struct hub_memory_index *x;
    char *name; /* owned "agent\nnamespace": the table's key */
    char *agent_id, *ns;
    int refs;                      /* mu */
    enum mset_state state;         /* mu */
    bool in_table;                 /* mu */
    struct ag_list lru;            /* mu: on x->lru while READY and in the table */
    struct ag_list waiters;        /* mu: searches waiting for the load */
    struct mpend *pending, **tail; /* mu: updates during the load, in order */
    size_t bytes;                  /* mu: what the set counts against the budget */
    long loaded;                   /* the loader's: bytes of the pages read so far */
    pthread_rwlock_t rw;           /* the entries */
    struct ag_map by_key;
    struct ment **ents;
    size_t n, cap;
};

struct msearch {
    struct ag_list link; /* on a set's waiters */
    struct hub_memory_index *x;
    struct mset *set; /* reference held once found */
    float *q;         /* owned, length 1 */
    uint32_t dims;
    size_t k;
    float min_score;
    hub_memory_search_fn *cb;
    void *arg;
};

struct hub_memory_index {
    struct hub_store *st; /* borrowed */
    size_t cap;
    struct ag_workpool *pool; /* NULL once stopped */
    pthread_mutex_t mu;
    struct ag_map sets; /* name -> struct mset, each holding a reference */
    struct ag_list lru; /* READY sets, least recently searched first */
    size_t bytes;
    bool stopped;
};

/* --- vectors ------------------------------------------------------------------------------- */

/* Eight partial sums: the compiler vectorizes this without -ffast-math's reordering. */
static inline __attribute__((always_inline)) float dot8(const float *a, const float *b,
                                                        uint32_t dims)
{
    float acc[8] = {0};
    uint32_t i = 0;
    for (; i + 8 <= dims; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < dims; i++)
        s += a[i] * b[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

/* A scan is bound by reading the vectors (100,000 x 256 floats: 100 MB per search); 256-bit
 * loads halve its time where the CPU has them. Chosen per call (a test of a flag the C library
 * set at start), not with target_clones, whose dispatcher clang 14 does not export. */
#if defined(__x86_64__) && defined(__GNUC__)
#define DOT_AVX2 1
__attribute__((target("avx2"))) static float dot_avx2(const float *a, const float *b, uint32_t dims)
{
    return dot8(a, b, dims);
}
#endif

float hub_memory_dot(const float *a, const float *b, uint32_t dims)
{
#ifdef DOT_AVX2
    if (__builtin_cpu_supports("avx2"))
        return dot_avx2(a, b, dims);
#endif
    return dot8(a, b, dims);
}

void hub_memory_normalize(float *v, uint32_t dims)
{
    double sum = 0;
    for (uint32_t i = 0; i < dims; i++)
        sum += (double)v[i] * v[i];
    if (sum <= 0)
        return;
    float inv = (float)(1.0 / sqrt(sum));
    for (uint32_t i = 0; i < dims; i++)
        v[i] *= inv;
}

void hub_memory_hits_free(struct hub_memory_hit *hits, size_t n)
{
    for (size_t i = 0; hits && i < n; i++)
        free(hits[i].key);
    free(hits);
}

/* --- a set's entries (its rw held for writing, or the set not yet visible) ----------------- */

static size_t ment_bytes(const char *key, uint32_t dims)
{
    return dims * sizeof(float) + strlen(key) + 1 + ENTRY_OVERHEAD;
}

static void ment_free(struct ment *e)
{
    if (!e)
        return;
    free(e->key);
    free(e->v);
    free(e);
}

/* Removes key's entry; the bytes it freed. */
static size_t set_remove(struct mset *s, const char *key)
{
    struct ment *e = ag_map_del(&s->by_key, key);
    if (!e)
        return 0;
    struct ment *last = s->ents[--s->n];
    s->ents[e->idx] = last;
    last->idx = e->idx;
    size_t b = ment_bytes(e->key, e->dims);
    ment_free(e);
    return b;
}

/* Puts key's vector (v copied, then scaled); v NULL removes. The change in bytes. */
static long set_put(struct mset *s, const char *key, const float *v, uint32_t dims)
{
    long delta = -(long)set_remove(s, key);
    if (!v || !dims)
        return delta;
    struct ment *e = ag_xmalloc(sizeof(*e));
    e->key = ag_xstrdup(key);
    e->v = ag_xmalloc(dims * sizeof(float));
    memcpy(e->v, v, dims * sizeof(float));
    hub_memory_normalize(e->v, dims);
    e->dims = dims;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->ents = ag_xrealloc(s->ents, s->cap * sizeof(*s->ents));
    }
    e->idx = s->n;
    s->ents[s->n++] = e;
    ag_map_put(&s->by_key, e->key, e);
    return delta + (long)ment_bytes(key, dims);
}

static struct mset *set_new(struct hub_memory_index *x, const char *name, const char *agent_id,
                            const char *ns)
{
    struct mset *s = ag_xcalloc(1, sizeof(*s));
    s->x = x;
    s->name = ag_xstrdup(name);
    s->agent_id = ag_xstrdup(agent_id);
    s->ns = ag_xstrdup(ns);
    s->refs = 1; /* the table's */
    s->in_table = true;
    s->tail = &s->pending;
    ag_list_init(&s->lru);
    ag_list_init(&s->waiters);
    pthread_rwlock_init(&s->rw, NULL);
    ag_map_init(&s->by_key);
    return s;
}

static void set_free(struct mset *s)
{
    for (size_t i = 0; i < s->n; i++)
        ment_free(s->ents[i]);
    free(s->ents);
    ag_map_release(&s->by_key);
    for (struct mpend *p = s->pending, *next; p; p = next) {
        next = p->next;
        free(p->key);
        free(p->v);
        free(p);
    }
    pthread_rwlock_destroy(&s->rw);
    free(s->name);
    free(s->agent_id);
    free(s->ns);
    free(s);
}

/* --- the table (mu held) -------------------------------------------------------------------- */

static void unref_locked(struct mset *s)
{
    if (--s->refs == 0)
        set_free(s);
}

static void drop_locked(struct hub_memory_index *x, struct mset *s)
{
    if (!s->in_table)
        return;
    ag_map_del(&x->sets, s->name);
    ag_list_remove(&s->lru);
    s->in_table = false;
    x->bytes -= s->bytes;
    unref_locked(s);
}

/* Least recently searched first, until under budget; keep stays. */
static void evict_locked(struct hub_memory_index *x, const struct mset *keep)
{
    struct ag_list *pos, *tmp;
    AG_LIST_FOREACH_SAFE(pos, tmp, &x->lru)
    {
        if (x->bytes <= x->cap)
            return;
        struct mset *s = AG_LIST_ENTRY(pos, struct mset, lru);
        if (s == keep)
            continue;
        ag_log_info("memory.index_evicted", "agent=%s namespace=%s entries=%zu bytes=%zu",
                    s->agent_id, s->ns, s->n, s->bytes);
        drop_locked(x, s);
    }
}

/* --- searching ------------------------------------------------------------------------------ */

static void msearch_free(struct msearch *m)
{
    free(m->q);
    free(m);
}

static void msearch_fail(struct msearch *m, enum ag_code code, const char *msg)
{
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, code, "%s", msg);
    m->cb(m->arg, NULL, 0, &err);
    msearch_free(m);
}

/* The k best of the set into a sorted array (insertion: k is at most a few dozen). */
static size_t scan(const struct mset *s, const struct msearch *m, struct ment **best, float *score)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct ment *e = s->ents[i];
        if (e->dims != m->dims)
            continue;
        float sc = hub_memory_dot(m->q, e->v, m->dims);
        if (sc < m->min_score || (n == m->k && sc <= score[n - 1]))
            continue;
        size_t at = n < m->k ? n++ : n - 1;
        while (at > 0 && score[at - 1] < sc) {
            score[at] = score[at - 1];
            best[at] = best[at - 1];
            at--;
        }
        score[at] = sc;
        best[at] = (struct ment *)e;
    }
    return n;
}

static void search_run(void *arg)
{
    struct msearch *m = arg;
    struct mset *s = m->set;
    struct ment **best = ag_xmalloc(m->k * sizeof(*best));
    float *score = ag_xmalloc(m->k * sizeof(*score));
    pthread_rwlock_rdlock(&s->rw);
    size_t n = scan(s, m, best, score);
    struct hub_memory_hit *hits = ag_xcalloc(n ? n : 1, sizeof(*hits));
    for (size_t i = 0; i < n; i++)
        hits[i] = (struct hub_memory_hit){ag_xstrdup(best[i]->key), score[i]};
    pthread_rwlock_unlock(&s->rw);
    free(best);
    free(score);
    pthread_mutex_lock(&m->x->mu);
    unref_locked(s);
    pthread_mutex_unlock(&m->x->mu);
    m->cb(m->arg, hits, n, NULL);
    msearch_free(m);
}

/* mu held; the search holds a reference on its set. On -1 the reference is dropped and err set. */
static int submit_locked(struct hub_memory_index *x, struct msearch *m, struct ag_err *err)
{
    if (x->stopped || !x->pool) {
        unref_locked(m->set);
        return ag_err_set(err, AG_UNAVAILABLE, "the hub is stopping; memory_search not run");
    }
    if (ag_workpool_submit(x->pool, search_run, m, err) != 0) {
        unref_locked(m->set);
        ag_err_prefix(err, "too many searches waiting");
        return -1;
    }
    return 0;
}

/* --- loading (the store's reader thread) ---------------------------------------------------- */

/* Fails every search of list (mu not held). */
static void fail_all(struct ag_list *list, enum ag_code code, const char *msg)
{
    struct ag_list *pos, *tmp;
    AG_LIST_FOREACH_SAFE(pos, tmp, list)
    {
        ag_list_remove(pos);
        msearch_fail(AG_LIST_ENTRY(pos, struct msearch, link), code, msg);
    }
}

/* Replays the updates that came during the load (mu held, the set not yet READY). */
static long replay_locked(struct mset *s)
{
    long bytes = 0;
    for (struct mpend *p = s->pending, *next; p; p = next) {
        next = p->next;
        bytes += set_put(s, p->key, p->v, p->dims);
        free(p->key);
        free(p->v);
        free(p);
    }
    s->pending = NULL;
    s->tail = &s->pending;
    return bytes;
}

/* The load ended: with every page read (err NULL), or failed. */
static void load_done(struct mset *s, const struct ag_err *err)
{
    struct hub_memory_index *x = s->x;
    struct ag_list waiters, failed;
    ag_list_init(&waiters);
    ag_list_init(&failed);
    char why[sizeof(((struct ag_err *)0)->msg) + 64] = "";
    pthread_mutex_lock(&x->mu);
    ag_list_move_all(&waiters, &s->waiters);
    if (err) {
        snprintf(why, sizeof(why), "cannot read the agent's memory: %s", err->msg);
        drop_locked(x, s);
        ag_list_move_all(&failed, &waiters);
    } else {
        s->state = MSET_READY;
        s->bytes = (size_t)(s->loaded + replay_locked(s));
        if (s->in_table) {
            x->bytes += s->bytes;
            ag_list_insert_tail(&x->lru, &s->lru);
        }
        ag_log_info("memory.index_loaded", "agent=%s namespace=%s entries=%zu bytes=%zu",
                    s->agent_id, s->ns, s->n, s->bytes);
        struct ag_list *pos, *tmp;
        AG_LIST_FOREACH_SAFE(pos, tmp, &waiters)
        {
            struct msearch *m = AG_LIST_ENTRY(pos, struct msearch, link);
            ag_list_remove(pos);
            m->set = s;
            s->refs++;
            struct ag_err e = AG_ERR_INIT;
            if (submit_locked(x, m, &e) != 0) {
                snprintf(why, sizeof(why), "%s", e.msg);
                ag_list_insert_tail(&failed, &m->link);
            }
        }
        evict_locked(x, s);
    }
    unref_locked(s); /* the load's */
    pthread_mutex_unlock(&x->mu);
    fail_all(&failed, err ? err->code : AG_UNAVAILABLE, why);
}

/* One page of the set's vectors (the store's reader thread); asks for the next while pages come
 * full. Nobody reads the entries of a LOADING set: no lock is needed to fill them. */
static void on_loaded(void *arg, const struct hub_store_memory *rows, size_t n,
                      const struct ag_err *err)
{
    struct mset *s = arg;
    if (err) {
        load_done(s, err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (rows[i].vector)
            s->loaded += set_put(s, rows[i].key, rows[i].vector, rows[i].dims);
    if (n < INDEX_LOAD_PAGE) {
        load_done(s, NULL);
        return;
    }
    struct ag_err e = AG_ERR_INIT;
    struct hub_store_memory_query next = {.kind = HUB_STORE_MEMORY_VECTORS,
                                          .agent_id = s->agent_id,
                                          .namespace = s->ns,
                                          .after_key = rows[n - 1].key,
                                          .max = INDEX_LOAD_PAGE};
    if (hub_store_read_memory(s->x->st, &next, on_loaded, s, &e) != 0)
        load_done(s, &e);
}

/* --- the API -------------------------------------------------------------------------------- */

struct hub_memory_index *hub_memory_index_new(struct hub_store *st, size_t cap_bytes,
                                              size_t threads, struct ag_err *err)
{
    struct ag_workpool *pool = ag_workpool_new(threads ? threads : 1, INDEX_MAX_QUEUED, err);
    if (!pool)
        return NULL;
    struct hub_memory_index *x = ag_xcalloc(1, sizeof(*x));
    x->st = st;
    x->cap = cap_bytes;
    x->pool = pool;
    pthread_mutex_init(&x->mu, NULL);
    ag_map_init(&x->sets);
    ag_list_init(&x->lru);
    return x;
}

void hub_memory_index_stop(struct hub_memory_index *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stopped = true;
    struct ag_workpool *pool = x->pool;
    x->pool = NULL;
    pthread_mutex_unlock(&x->mu);
    ag_workpool_free(pool); /* runs what was queued: every callback promised runs */
}

void hub_memory_index_free(struct hub_memory_index *x)
{
    if (!x)
        return;
    hub_memory_index_stop(x);
    pthread_mutex_lock(&x->mu);
    const char *k;
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&x->sets, &it, &k, &v);) {
        struct mset *s = v;
        s->in_table = false; /* the map is released whole below */
        ag_list_remove(&s->lru);
        unref_locked(s);
    }
    pthread_mutex_unlock(&x->mu);
    ag_map_release(&x->sets);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

/* The store could not take the load: the set goes, and the searches that joined it fail. */
static int load_refused(struct hub_memory_index *x, struct mset *s, struct msearch *mine,
                        struct ag_err *err)
{
    struct ag_list waiters;
    ag_list_init(&waiters);
    pthread_mutex_lock(&x->mu);
    ag_list_remove(&mine->link);
    ag_list_move_all(&waiters, &s->waiters);
    drop_locked(x, s);
    unref_locked(s); /* the load's */
    pthread_mutex_unlock(&x->mu);
    fail_all(&waiters, err->code, err->msg);
    msearch_free(mine);
    return -1;
}

int hub_memory_index_search(struct hub_memory_index *x, const char *agent_id, const char *ns,
                            const float *q, uint32_t dims, size_t k, float min_score,
                            hub_memory_search_fn *cb, void *arg, struct ag_err *err)
{
    if (!dims || !k || !q || !cb)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "memory_search needs a vector and k > 0");
    struct msearch *m = ag_xcalloc(1, sizeof(*m));
    *m = (struct msearch){
        .x = x, .dims = dims, .k = k, .min_score = min_score, .cb = cb, .arg = arg};
    ag_list_init(&m->link);
    m->q = ag_xmalloc(dims * sizeof(float));
    memcpy(m->q, q, dims * sizeof(float));
    hub_memory_normalize(m->q, dims);
    char *name = ag_xasprintf("%s\n%s", agent_id, ns);
    pthread_mutex_lock(&x->mu);
    struct mset *s = x->stopped ? NULL : ag_map_get(&x->sets, name);
    bool load = false;
    if (!s && !x->stopped) {
        s = set_new(x, name, agent_id, ns);
        ag_map_put(&x->sets, s->name, s);
        s->refs++; /* the load's */
        load = true;
    }
    free(name);
    int rc = 0;
    if (!s) {
        rc = ag_err_set(err, AG_UNAVAILABLE, "the hub is stopping; memory_search not run");
    } else if (s->state == MSET_LOADING) {
        ag_list_insert_tail(&s->waiters, &m->link);
    } else {
        ag_list_remove(&s->lru); /* most recently searched: to the tail */
        ag_list_insert_tail(&x->lru, &s->lru);
        m->set = s;
        s->refs++;
        rc = submit_locked(x, m, err);
    }
    pthread_mutex_unlock(&x->mu);
    if (rc != 0) {
        msearch_free(m);
        return -1;
    }
    if (!load)
        return 0;
    struct hub_store_memory_query lq = {.kind = HUB_STORE_MEMORY_VECTORS,
                                        .agent_id = agent_id,
                                        .namespace = ns,
                                        .max = INDEX_LOAD_PAGE};
    if (hub_store_read_memory(x->st, &lq, on_loaded, s, err) != 0)
        return load_refused(x, s, m, err);
    return 0;
}

static void update(struct hub_memory_index *x, const char *agent_id, const char *ns,
                   const char *key, const float *v, uint32_t dims)
{
    char *name = ag_xasprintf("%s\n%s", agent_id, ns);
    pthread_mutex_lock(&x->mu);
    struct mset *s = ag_map_get(&x->sets, name);
    free(name);
    if (!s) { /* not loaded: the store has it, a load will read it */
        pthread_mutex_unlock(&x->mu);
        return;
    }
    if (s->state == MSET_LOADING) {
        struct mpend *p = ag_xcalloc(1, sizeof(*p));
        p->key = ag_xstrdup(key);
        if (v && dims) {
            p->v = ag_xmalloc(dims * sizeof(float));
            memcpy(p->v, v, dims * sizeof(float));
            p->dims = dims;
        }
        *s->tail = p;
        s->tail = &p->next;
        pthread_mutex_unlock(&x->mu);
        return;
    }
    s->refs++;
    pthread_mutex_unlock(&x->mu);
    pthread_rwlock_wrlock(&s->rw);
    long delta = set_put(s, key, v, dims);
    pthread_rwlock_unlock(&s->rw);
    pthread_mutex_lock(&x->mu);
    s->bytes = (size_t)((long)s->bytes + delta);
    if (s->in_table) {
        x->bytes = (size_t)((long)x->bytes + delta);
        evict_locked(x, s);
    }
    unref_locked(s);
    pthread_mutex_unlock(&x->mu);
}

void hub_memory_index_put(struct hub_memory_index *x, const char *agent_id, const char *ns,
                          const char *key, const float *v, uint32_t dims)
{
    update(x, agent_id, ns, key, v, dims);
}

void hub_memory_index_delete(struct hub_memory_index *x, const char *agent_id, const char *ns,
                             const char *key)
{
    update(x, agent_id, ns, key, NULL, 0);
}
