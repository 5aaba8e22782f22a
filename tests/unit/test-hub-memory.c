/* tests/unit/test-hub-memory.c - memory_search's index (hub/memory_index.h) on a real SQLite
 * store: a set bigger than one load page is loaded whole and searched exactly (the best match
 * first, k results, min_score, only vectors of the query's size); puts and deletes made durable
 * afterwards show in the next search; the cache's budget evicts and a search reloads; the
 * cosine of the dot product on unit vectors; the namespace and key checks.
 *
 * Callbacks run on the index's or the store's threads: they only record, under the tracker's
 * lock; asserts run on the test's thread, after waiting with a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "hub/memory.h"
#include "hub/memory_index.h"
#include "hub/store.h"

#define DIMS 8
#define ENTRIES 2500 /* more than one load page (1024) */

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int rc;
    char keys[8][32];
    float scores[8];
    size_t n;
    enum ag_code code;
};

static void rec_wait(struct rec *r, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&r->mu);
    while (r->done < n)
        if (pthread_cond_timedwait(&r->cond, &r->mu, &dl) == ETIMEDOUT)
            break;
    int got = r->done;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(got, n);
}

static void on_write(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    (void)err;
    struct rec *r = w->arg;
    pthread_mutex_lock(&r->mu);
    r->rc |= rc;
    r->done++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void on_hits(void *arg, struct hub_memory_hit *hits, size_t n, const struct ag_err *err)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->n = n;
    r->code = err ? err->code : AG_OK;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(r->keys[i], sizeof(r->keys[i]), "%s", hits[i].key);
        r->scores[i] = hits[i].score;
    }
    r->done++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    hub_memory_hits_free(hits, n);
}

struct fx {
    char dir[64], url[128];
    struct hub_store *st;
    struct hub_memory_index *x;
    struct rec r;
};

/* Entry i's vector: one-hot at i % DIMS, plus 0.05 + (i / DIMS) / 1000 on the next axis (none
 * for entry 3), so vectors differ: k00003 is e3 exactly, k00011 scores 0.9987 against it,
 * k00019 0.9986... and every other axis's entries at most 0.34. */
static void vec_of(int i, float *v)
{
    memset(v, 0, DIMS * sizeof(float));
    v[i % DIMS] = 1.0f;
    v[(i + 1) % DIMS] = i == 3 ? 0.0f : 0.05f + (float)(i / DIMS) / 1000.0f;
}

/* Entries k00000.. in one durable write (one commit, not thousands). */
static void put_many(struct fx *fx, int n)
{
    struct hub_store_op *ops = calloc((size_t)n, sizeof(*ops));
    float(*v)[DIMS] = calloc((size_t)n, sizeof(*v));
    char(*keys)[16] = calloc((size_t)n, sizeof(*keys));
    for (int i = 0; i < n; i++) {
        vec_of(i, v[i]);
        snprintf(keys[i], sizeof(keys[i]), "k%05d", i);
        ops[i].type = HUB_STORE_MEMORY_PUT;
        ops[i].u.memory = (struct hub_store_memory){.agent_id = "a1",
                                                    .namespace = "default",
                                                    .key = keys[i],
                                                    .value = "v",
                                                    .value_len = 1,
                                                    .vector = v[i],
                                                    .dims = DIMS,
                                                    .updated_ns = 1};
    }
    struct hub_store_write w = {.ops = ops, .nops = (size_t)n, .done = on_write, .arg = &fx->r};
    int before = fx->r.done;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_submit(fx->st, &w, &err), 0);
    rec_wait(&fx->r, before + 1);
    assert_int_equal(fx->r.rc, 0);
    free(ops);
    free(v);
    free(keys);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-hub-memory-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->url, sizeof(fx->url), "sqlite:%s/hub.db", fx->dir);
    pthread_mutex_init(&fx->r.mu, NULL);
    pthread_cond_init(&fx->r.cond, NULL);
    struct ag_err err = AG_ERR_INIT;
    fx->st = hub_store_open(fx->url, NULL, &err);
    *state = fx;
    return fx->st ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    hub_memory_index_stop(fx->x);
    hub_store_close(fx->st);
    hub_memory_index_free(fx->x);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    int rc = system(cmd);
    pthread_cond_destroy(&fx->r.cond);
    pthread_mutex_destroy(&fx->r.mu);
    free(fx);
    return rc;
}

/* One durable write of n memory ops, then the index told, as hub/memory.c does. */
static void put(struct fx *fx, const char *key, const float *v, uint32_t dims, bool del)
{
    struct hub_store_op op = {.type = del ? HUB_STORE_MEMORY_DELETE : HUB_STORE_MEMORY_PUT};
    op.u.memory = (struct hub_store_memory){.agent_id = "a1",
                                            .namespace = "default",
                                            .key = key,
                                            .value = "v",
                                            .value_len = 1,
                                            .vector = v,
                                            .dims = v ? dims : 0,
                                            .updated_ns = 1};
    struct hub_store_write w = {.ops = &op, .nops = 1, .done = on_write, .arg = &fx->r};
    int before = fx->r.done;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_submit(fx->st, &w, &err), 0);
    rec_wait(&fx->r, before + 1);
    assert_int_equal(fx->r.rc, 0);
    if (!fx->x)
        return;
    if (del)
        hub_memory_index_delete(fx->x, "a1", "default", key);
    else
        hub_memory_index_put(fx->x, "a1", "default", key, v, dims);
}

static void search(struct fx *fx, const float *q, uint32_t dims, size_t k, float min_score)
{
    int before = fx->r.done;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_memory_index_search(fx->x, "a1", "default", q, dims, k, min_score, on_hits,
                                             &fx->r, &err),
                     0);
    rec_wait(&fx->r, before + 1);
    assert_int_equal(fx->r.code, AG_OK);
}

static void test_search_and_updates(void **state)
{
    struct fx *fx = *state;
    /* Written before the index exists: the first search loads them, page after page. */
    put_many(fx, ENTRIES);
    float other[3] = {1, 0, 0};
    put(fx, "short", other, 3, false); /* another size: never a result for DIMS queries */
    put(fx, "novec", NULL, 0, false);
    struct ag_err err = AG_ERR_INIT;
    fx->x = hub_memory_index_new(fx->st, 1u << 30, 2, &err);
    assert_non_null(fx->x);

    float q[DIMS] = {0};
    q[3] = 2.0f; /* not unit length: the index scales it */
    search(fx, q, DIMS, 3, -1);
    assert_int_equal(fx->r.n, 3);
    assert_string_equal(fx->r.keys[0], "k00003"); /* exactly e3 */
    assert_true(fabsf(fx->r.scores[0] - 1.0f) < 1e-5f);
    assert_true(fx->r.scores[1] >= fx->r.scores[2]);

    /* A put after the load shows at once; so does a delete. */
    float best[DIMS] = {0};
    best[3] = 1.0f;
    put(fx, "new-best", best, DIMS, false);
    put(fx, "k00003", NULL, 0, true);
    search(fx, q, DIMS, 2, -1);
    assert_string_equal(fx->r.keys[0], "new-best");
    assert_string_equal(fx->r.keys[1], "k00011");
    /* min_score keeps only the near matches. */
    search(fx, q, DIMS, 8, 0.999f);
    assert_int_equal(fx->r.n, 1);
    float q3[3] = {0, 0, 5};
    search(fx, q3, 3, 5, -1);
    assert_int_equal(fx->r.n, 1);
    assert_string_equal(fx->r.keys[0], "short");
    assert_true(fabsf(fx->r.scores[0]) < 1e-6f); /* orthogonal */
}

/* A budget smaller than one set: each search of another set evicts the last; a reload after
 * the eviction still sees the entries put meanwhile (they are in the store). */
static void test_eviction_reloads(void **state)
{
    struct fx *fx = *state;
    struct ag_err err = AG_ERR_INIT;
    fx->x = hub_memory_index_new(fx->st, 1, 1, &err);
    float v[DIMS];
    vec_of(1, v);
    put(fx, "a", v, DIMS, false);
    search(fx, v, DIMS, 1, -1);
    assert_string_equal(fx->r.keys[0], "a");
    /* Another namespace's set pushes this one out. */
    int before = fx->r.done;
    assert_int_equal(
        hub_memory_index_search(fx->x, "a1", "other", v, DIMS, 1, -1, on_hits, &fx->r, &err), 0);
    rec_wait(&fx->r, before + 1);
    assert_int_equal(fx->r.n, 0);
    vec_of(2, v);
    put(fx, "b", v, DIMS, false); /* not loaded now: nothing to update */
    search(fx, v, DIMS, 1, -1);
    assert_string_equal(fx->r.keys[0], "b");
    hub_memory_index_stop(fx->x);
    assert_int_equal(
        hub_memory_index_search(fx->x, "a1", "default", v, DIMS, 1, -1, on_hits, &fx->r, &err), -1);
    assert_int_equal(err.code, AG_UNAVAILABLE);
}

static void test_dot_and_checks(void **state)
{
    (void)state;
    float a[19], b[19];
    for (int i = 0; i < 19; i++) {
        a[i] = (float)i;
        b[i] = (float)(19 - i);
    }
    double want = 0;
    for (int i = 0; i < 19; i++)
        want += (double)a[i] * b[i];
    assert_true(fabs(hub_memory_dot(a, b, 19) - want) < 1e-3);
    hub_memory_normalize(a, 19);
    assert_true(fabsf(hub_memory_dot(a, a, 19) - 1.0f) < 1e-5f);
    float z[4] = {0};
    hub_memory_normalize(z, 4); /* stays zero */
    assert_true(z[0] == 0.0f);

    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_memory_check_namespace("notes.v2_a-b", &err), 0);
    assert_int_equal(hub_memory_check_namespace("", &err), -1);
    assert_int_equal(hub_memory_check_namespace("a/b", &err), -1);
    assert_non_null(strstr(err.msg, "is not 1 to 64 bytes of A-Z a-z 0-9 . _ -"));
    char long_key[514];
    memset(long_key, 'k', 513);
    long_key[513] = '\0';
    assert_int_equal(hub_memory_check_key(long_key, &err), -1);
    assert_non_null(strstr(err.msg, "(this one is 513)"));
    long_key[512] = '\0';
    assert_int_equal(hub_memory_check_key(long_key, &err), 0);
}

int main(void)
{
    ag_log_init("test", AG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_and_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_reloads, setup, teardown),
        cmocka_unit_test(test_dot_and_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
