/* tests/unit/test-common-workpool.c - the fixed thread pool (common/workpool.c): work runs on
 * pool threads, never inside submit; a full queue refuses with RESOURCE_EXHAUSTED naming the
 * bound; free runs everything queued (also work submitted by work) before it joins. Waits are on
 * condvars with a generous deadline, never sleeps. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/workpool.h"

#define WAIT_SECONDS 30

/* A gate the first work item waits on, so that the tests can fill the queue behind it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open, entered;
    int ran;
    pthread_t ran_on;
};

static void gate_init(struct gate *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void gate_release(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void wait_until(struct gate *g, bool *flag)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&g->mu);
    while (!*flag)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != 0)
            break;
    bool ok = *flag;
    pthread_mutex_unlock(&g->mu);
    assert_true(ok);
}

static void blocker(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void count(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->ran++;
    g->ran_on = pthread_self();
    pthread_mutex_unlock(&g->mu);
}

static void test_zero_threads_refused(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    assert_null(ag_workpool_new(0, 4, &err));
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    ag_workpool_free(NULL);
}

/* Work runs on a pool thread; free waits for it. */
static void test_runs_on_pool_thread(void **state)
{
    (void)state;
    struct gate g;
    gate_init(&g);
    struct ag_workpool *p = ag_workpool_new(2, 0, NULL);
    assert_non_null(p);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ag_workpool_submit(p, count, &g, NULL), 0);
    ag_workpool_free(p);
    assert_int_equal(g.ran, 100);
    assert_false(pthread_equal(g.ran_on, pthread_self()));
    gate_release(&g);
}

/* One thread, held by a blocker: two items fit in the queue, the third is refused and never
 * runs; free then runs the two. */
static void test_full_queue_refused(void **state)
{
    (void)state;
    struct gate g;
    gate_init(&g);
    struct ag_workpool *p = ag_workpool_new(1, 2, NULL);
    assert_int_equal(ag_workpool_submit(p, blocker, &g, NULL), 0);
    wait_until(&g, &g.entered);
    assert_int_equal(ag_workpool_submit(p, count, &g, NULL), 0);
    assert_int_equal(ag_workpool_submit(p, count, &g, NULL), 0);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_workpool_submit(p, count, &g, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "'workpool'"));
    assert_non_null(strstr(err.msg, "2"));
    assert_int_equal(ag_workpool_gauge(p)->depth, 2);
    assert_int_equal(ag_workpool_gauge(p)->refused, 1);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ag_workpool_free(p);
    assert_int_equal(g.ran, 2);
    gate_release(&g);
}

struct chain {
    struct ag_workpool *p;
    struct gate *g;
    int left;
};

static void resubmit(void *arg)
{
    struct chain *c = arg;
    count(c->g);
    if (--c->left > 0)
        assert_int_equal(ag_workpool_submit(c->p, resubmit, c, NULL), 0);
}

/* free drains: what is queued when it starts runs, and so does work that work submits. */
static void test_free_drains(void **state)
{
    (void)state;
    struct gate g;
    gate_init(&g);
    struct ag_workpool *p = ag_workpool_new(1, 0, NULL);
    assert_int_equal(ag_workpool_submit(p, blocker, &g, NULL), 0);
    wait_until(&g, &g.entered);
    struct chain c = {p, &g, 10};
    assert_int_equal(ag_workpool_submit(p, resubmit, &c, NULL), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ag_workpool_submit(p, count, &g, NULL), 0);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ag_workpool_free(p);
    assert_int_equal(g.ran, 15);
    assert_int_equal(c.left, 0);
    gate_release(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_threads_refused),
        cmocka_unit_test(test_runs_on_pool_thread),
        cmocka_unit_test(test_full_queue_refused),
        cmocka_unit_test(test_free_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
