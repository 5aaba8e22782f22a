/* common/timers.c - one timer thread: a min-heap of deadlines and a condvar.
 *
 * Owns: the heap of pending timers and the timer thread. The thread sleeps on the condvar until
 * the earliest deadline (CLOCK_MONOTONIC) or until an earlier timer is added; it never polls.
 * Callbacks run on the timer thread with no lock held, so a callback may add timers.
 *
 * Invariants: heap[0] is the pending timer due first. Timers with equal deadlines fire in the
 * order they were added (seq breaks ties), so "delay 0" callbacks keep their submission order,
 * which callers rely on for per-agent event order. Locking: t->mu guards heap, n, cap, next_seq
 * and stopping. */
#include "common/timers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/xalloc.h"

#define AG_TIMERS_MAX_DELAY_MS (INT64_C(1000000000000)) /* about 31 years */

struct timer_ent {
    int64_t due_ns; /* a deadline (common/clock.h) */
    uint64_t seq;   /* submission order, to break ties */
    ag_timer_fn *fn;
    void *arg;
};

struct ag_timers {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when heap[0] changes or stopping is set */
    struct timer_ent *heap; /* owned */
    size_t n, cap;
    uint64_t next_seq;
    bool stopping;
    pthread_t thread;
};

static bool ent_before(const struct timer_ent *a, const struct timer_ent *b)
{
    if (a->due_ns != b->due_ns)
        return a->due_ns < b->due_ns;
    return a->seq < b->seq;
}

static void ent_swap(struct timer_ent *a, struct timer_ent *b)
{
    struct timer_ent tmp = *a;
    *a = *b;
    *b = tmp;
}

/* Returns true if the new entry became the root (the thread must re-arm its wait). */
static bool heap_push(struct ag_timers *t, struct timer_ent e)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->heap = ag_xrealloc(t->heap, t->cap * sizeof(*t->heap));
    }
    size_t i = t->n++;
    t->heap[i] = e;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ent_before(&t->heap[i], &t->heap[parent]))
            break;
        ent_swap(&t->heap[i], &t->heap[parent]);
        i = parent;
    }
    return i == 0;
}

static struct timer_ent heap_pop(struct ag_timers *t)
{
    struct timer_ent top = t->heap[0];
    t->heap[0] = t->heap[--t->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < t->n && ent_before(&t->heap[l], &t->heap[min]))
            min = l;
        if (r < t->n && ent_before(&t->heap[r], &t->heap[min]))
            min = r;
        if (min == i)
            break;
        ent_swap(&t->heap[i], &t->heap[min]);
        i = min;
    }
    return top;
}

static void *timers_main(void *arg)
{
    struct ag_timers *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        int64_t due = t->heap[0].due_ns;
        if (!ag_deadline_passed(due)) {
            ag_cond_wait_until(&t->cv, &t->mu, due);
            continue; /* woken early, timed out or a new root: re-read heap[0] */
        }
        struct timer_ent e = heap_pop(t);
        pthread_mutex_unlock(&t->mu);
        e.fn(e.arg);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct ag_timers *ag_timers_new(struct ag_err *err)
{
    struct ag_timers *t = ag_xcalloc(1, sizeof(*t));
    /* Deadlines are monotonic: a wall-clock jump must not fire or stall every timer. */
    ag_cond_init_mono(&t->cv);
    pthread_mutex_init(&t->mu, NULL);
    int rc = pthread_create(&t->thread, NULL, timers_main, t);
    if (rc != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        ag_err_set(err, AG_RESOURCE_EXHAUSTED, "cannot start the timer thread: %s", strerror(rc));
        return NULL;
    }
    return t;
}

void ag_timers_add(struct ag_timers *t, int64_t delay_ms, ag_timer_fn *fn, void *arg)
{
    /* Delays come from scripts and configs: clamp them so the nanosecond deadline can't
     * overflow. Three decades is "never" for a node. */
    if (delay_ms > AG_TIMERS_MAX_DELAY_MS)
        delay_ms = AG_TIMERS_MAX_DELAY_MS;
    struct timer_ent e = {
        .due_ns = ag_now_mono_ns() + (delay_ms > 0 ? delay_ms * 1000000 : 0),
        .fn = fn,
        .arg = arg,
    };
    pthread_mutex_lock(&t->mu);
    e.seq = t->next_seq++;
    /* Only a new earliest deadline changes what the thread waits for. */
    if (heap_push(t, e))
        pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* The thread is gone; callbacks run here, in deadline order. A callback may add timers (for
 * example a completion that queues the next step): those run too, before we return. */
static void timers_drain(struct ag_timers *t)
{
    pthread_mutex_lock(&t->mu);
    while (t->n > 0) {
        struct timer_ent e = heap_pop(t);
        pthread_mutex_unlock(&t->mu);
        e.fn(e.arg);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

void ag_timers_free(struct ag_timers *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    timers_drain(t);
    free(t->heap);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

struct timers_barrier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool passed;
};

static void barrier_fire(void *arg)
{
    struct timers_barrier *b = arg;
    pthread_mutex_lock(&b->mu);
    b->passed = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void ag_timers_flush(struct ag_timers *t)
{
    struct timers_barrier b = {.passed = false};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    /* Due now: it runs after every timer already due and after the callback running now. */
    ag_timers_add(t, 0, barrier_fire, &b);
    pthread_mutex_lock(&b.mu);
    while (!b.passed)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}
