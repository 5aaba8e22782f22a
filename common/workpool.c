/* common/workpool.c - the fixed thread pool (see workpool.h).
 *
 * Owns: the threads, the queue of waiting work and its items. Locking: p->mu guards q and
 * stopping; p->cv is signalled when work is queued or stopping is set. A thread exits only when
 * stopping is set and the queue is empty, which is how free drains: it sets stopping and joins,
 * and the threads run what is left first. Work runs with no lock held. */
#include "common/workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/xalloc.h"

struct work_item {
    struct ag_qnode node;
    ag_work_fn *fn;
    void *arg;
};

struct ag_workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ag_queue q; /* of struct work_item, owned */
    bool stopping;
    size_t nthreads;
    pthread_t *threads; /* owned */
};

static void *worker_main(void *arg)
{
    struct ag_workpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct ag_qnode *n = ag_queue_pop(&p->q);
        if (!n) {
            if (p->stopping)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        struct work_item *it = AG_QUEUE_ENTRY(n, struct work_item, node);
        it->fn(it->arg);
        free(it);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct ag_workpool *ag_workpool_new(size_t threads, size_t max_queued, struct ag_err *err)
{
    if (threads == 0) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "a work pool needs at least one thread");
        return NULL;
    }
    struct ag_workpool *p = ag_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    ag_queue_init(&p->q, "workpool", max_queued, 0);
    p->nthreads = threads;
    p->threads = ag_xcalloc(threads, sizeof(*p->threads));
    for (size_t i = 0; i < threads; i++)
        ag_xthread_create(&p->threads[i], worker_main, p, "work pool thread");
    return p;
}

int ag_workpool_submit(struct ag_workpool *p, ag_work_fn *fn, void *arg, struct ag_err *err)
{
    struct work_item *it = ag_xmalloc(sizeof(*it));
    it->fn = fn;
    it->arg = arg;
    pthread_mutex_lock(&p->mu);
    int rc = ag_queue_push(&p->q, &it->node, 0, err);
    if (rc == 0)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (rc != 0)
        free(it);
    return rc;
}

void ag_workpool_free(struct ag_workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const struct ag_queue_gauge *ag_workpool_gauge(const struct ag_workpool *p)
{
    return &p->q.gauge;
}
