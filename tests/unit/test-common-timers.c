/* tests/unit/test-common-timers.c - the timer thread (common/timers.c).
 *
 * Ordering is checked with a gate: a first timer blocks the timer thread until the test has
 * added everything, so what is checked is the heap's order, not how fast the test added. Waits
 * are condvar waits with a generous deadline; nothing sleeps. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "common/timers.h"

#define WAIT_SECONDS 30

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int order[128];
    int n;
    bool gate_open;
};

struct fired {
    struct rec *rec;
    int id;
};

static struct rec *rec_new(void)
{
    struct rec *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return r;
}

static void rec_free(struct rec *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static struct timespec deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    return ts;
}

static void on_fire(void *arg)
{
    struct fired *f = arg;
    pthread_mutex_lock(&f->rec->mu);
    f->rec->order[f->rec->n++] = f->id;
    pthread_cond_broadcast(&f->rec->cv);
    pthread_mutex_unlock(&f->rec->mu);
}

/* Blocks the timer thread until the test opens the gate. */
static void gate_wait(void *arg)
{
    struct rec *r = arg;
    struct timespec ts = deadline();
    pthread_mutex_lock(&r->mu);
    while (!r->gate_open)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&r->mu);
}

static void gate_open(struct rec *r)
{
    pthread_mutex_lock(&r->mu);
    r->gate_open = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static bool wait_count(struct rec *r, int n)
{
    struct timespec ts = deadline();
    pthread_mutex_lock(&r->mu);
    while (r->n < n)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0)
            break;
    bool ok = r->n >= n;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void test_fire_in_deadline_order(void **state)
{
    (void)state;
    struct ag_timers *t = ag_timers_new(NULL);
    assert_non_null(t);
    struct rec *r = rec_new();
    ag_timers_add(t, 0, gate_wait, r);
    struct fired f[] = {{r, 400}, {r, 100}, {r, 300}, {r, 0}, {r, 200}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        ag_timers_add(t, f[i].id, on_fire, &f[i]);
    gate_open(r);
    assert_true(wait_count(r, 5));
    int want[] = {0, 100, 200, 300, 400};
    for (int i = 0; i < 5; i++)
        assert_int_equal(r->order[i], want[i]);
    ag_timers_free(t);
    rec_free(r);
}

static void test_equal_deadlines_keep_submission_order(void **state)
{
    (void)state;
    struct ag_timers *t = ag_timers_new(NULL);
    struct rec *r = rec_new();
    ag_timers_add(t, 0, gate_wait, r);
    struct fired f[64];
    for (int i = 0; i < 64; i++) {
        f[i] = (struct fired){r, i};
        ag_timers_add(t, 0, on_fire, &f[i]);
    }
    gate_open(r);
    assert_true(wait_count(r, 64));
    for (int i = 0; i < 64; i++)
        assert_int_equal(r->order[i], i);
    ag_timers_free(t);
    rec_free(r);
}

/* ag_timers_free must run what is pending at once, in deadline order, without waiting. */
static void test_free_runs_pending_in_order(void **state)
{
    (void)state;
    struct ag_timers *t = ag_timers_new(NULL);
    struct rec *r = rec_new();
    struct fired f[] = {{r, 60000}, {r, 20000}, {r, 40000}};
    for (size_t i = 0; i < 3; i++)
        ag_timers_add(t, f[i].id, on_fire, &f[i]);
    ag_timers_free(t);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->order[0], 20000);
    assert_int_equal(r->order[1], 40000);
    assert_int_equal(r->order[2], 60000);
    rec_free(r);
}

struct chain {
    struct ag_timers *t;
    struct fired next;
};

static void on_chain(void *arg)
{
    struct chain *c = arg;
    ag_timers_add(c->t, 0, on_fire, &c->next);
}

/* A callback runs with no lock held, so it may add timers, also during ag_timers_free. */
static void test_callback_may_add_timers(void **state)
{
    (void)state;
    struct ag_timers *t = ag_timers_new(NULL);
    struct rec *r = rec_new();
    struct chain c1 = {t, {r, 1}}, c2 = {t, {r, 2}};
    ag_timers_add(t, 0, on_chain, &c1);
    assert_true(wait_count(r, 1));
    ag_timers_add(t, 60000, on_chain, &c2);
    ag_timers_free(t);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->order[0], 1);
    assert_int_equal(r->order[1], 2);
    rec_free(r);
}

struct flush_ctx {
    struct ag_timers *t;
    struct rec *r;
    int seen; /* callbacks run when ag_timers_flush returned */
};

static void *flush_main(void *arg)
{
    struct flush_ctx *f = arg;
    ag_timers_flush(f->t);
    pthread_mutex_lock(&f->r->mu);
    f->seen = f->r->n;
    pthread_mutex_unlock(&f->r->mu);
    return NULL;
}

/* ag_timers_flush returns once the callback running and every one due have run, not later ones. */
static void test_flush_waits_for_due_callbacks_only(void **state)
{
    (void)state;
    struct ag_timers *t = ag_timers_new(NULL);
    struct rec *r = rec_new();
    struct fired due = {r, 1}, later = {r, 2};
    ag_timers_add(t, 0, gate_wait, r); /* the timer thread is busy in a callback */
    ag_timers_add(t, 0, on_fire, &due);
    ag_timers_add(t, 60000, on_fire, &later);
    struct flush_ctx f = {t, r, -1};
    pthread_t th;
    pthread_create(&th, NULL, flush_main, &f);
    gate_open(r);
    pthread_join(th, NULL);
    assert_int_equal(f.seen, 1);
    ag_timers_free(t);
    assert_int_equal(r->n, 2);
    rec_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fire_in_deadline_order),
        cmocka_unit_test(test_equal_deadlines_keep_submission_order),
        cmocka_unit_test(test_free_runs_pending_in_order),
        cmocka_unit_test(test_callback_may_add_timers),
        cmocka_unit_test(test_flush_waits_for_due_callbacks_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
