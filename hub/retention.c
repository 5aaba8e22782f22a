/* hub/retention.c - the retention thread: sweeps of the roots that ended long ago (see
 * retention.h).
 *
 * A sweep reads a batch of ended roots in end order (the store's partial index agents_ended,
 * HUB_STORE_AGENTS_ENDED), keyset after the last one read, so a root it could not delete (a
 * child still running, a SendMessage that came first) is passed over instead of read again.
 * Each root is deleted with the cutoff of the sweep: the delete checks again, once the root is
 * held, that it is still ended and ended before the cutoff (a turn may have run in between).
 * One log line per batch (event=retention.swept) says how many went, how many stayed and how
 * old the oldest was.
 *
 * Invariants: inflight counts the deletes started and not yet ended, under mu; the thread never
 * returns while one is in flight (their done() reads struct hub_retention). */
#include "hub/retention.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "hub/agent_table.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/metrics.h"
#include "hub/rpc_delete.h"
#include "hub/store.h"

struct hub_retention {
    struct hub *h;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic: the sweep's wait, the pause, and inflight going down */
    bool stopping;     /* guarded by mu */
    size_t inflight;   /* guarded by mu */
    size_t deleted;    /* guarded by mu: agents deleted in the batch (sub-agents included) */
    size_t refused;    /* guarded by mu: roots of the batch left as they were */
};

struct ended_row {
    char id[AG_ID_LEN + 1];
    int64_t updated_ns;
};

struct ended_page {
    struct ended_row rows[HUB_RETENTION_BATCH];
    size_t n;
};

static int ended_row(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                     struct ag_err *err)
{
    (void)last_seq;
    (void)err;
    struct ended_page *p = arg;
    struct ended_row *r = &p->rows[p->n++];
    snprintf(r->id, sizeof(r->id), "%s", row->id);
    r->updated_ns = row->updated_ns;
    return 0;
}

/* A delete ended (timer or store completion thread). */
static void root_done(void *arg, const char *const *ids, size_t n, const struct ag_err *err)
{
    struct hub_retention *r = arg;
    if (err)
        ag_log_debug("retention.kept", "err=%s", ag_log_q(err->msg));
    pthread_mutex_lock(&r->mu);
    if (ids)
        r->deleted += n;
    else
        r->refused++;
    r->inflight--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static bool stopping(struct hub_retention *r)
{
    pthread_mutex_lock(&r->mu);
    bool s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* Delete the roots of one page, HUB_RETENTION_INFLIGHT at a time; return once all ended. */
static void delete_page(struct hub_retention *r, const struct ended_page *p, int64_t cutoff_ns)
{
    struct hub *h = r->h;
    for (size_t i = 0; i < p->n && !stopping(r); i++) {
        struct ag_err err = AG_ERR_INIT;
        struct hub_agent *a = hub_loader_get(h, p->rows[i].id, &err);
        if (!a) { /* deleted meanwhile (NOT_FOUND), or the store failed: next sweep */
            pthread_mutex_lock(&r->mu);
            r->refused += err.code != AG_NOT_FOUND;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        while (r->inflight >= HUB_RETENTION_INFLIGHT)
            pthread_cond_wait(&r->cv, &r->mu);
        r->inflight++;
        pthread_mutex_unlock(&r->mu);
        hub_rpc_delete_tree(h, a, cutoff_ns, root_done, r); /* a's pin is the delete's */
    }
    pthread_mutex_lock(&r->mu);
    while (r->inflight > 0)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* Wait ms, or less if the hub stops; true if it does. */
static bool pause_ms(struct hub_retention *r, int64_t ms)
{
    int64_t deadline = ag_deadline_in_ms(ms);
    pthread_mutex_lock(&r->mu);
    while (!r->stopping && ag_cond_wait_until(&r->cv, &r->mu, deadline))
        ;
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return stopping;
}

/* One sweep: batches of the roots that ended before now - retention, oldest first. */
static void sweep(struct hub_retention *r)
{
    struct hub *h = r->h;
    int64_t now_ns = ag_now_unix_ns();
    int64_t cutoff_ns = now_ns - h->opts.retention_ms * 1000000;
    struct ended_page *p = ag_xmalloc(sizeof(*p));
    char after_id[AG_ID_LEN + 1] = "";
    int64_t after_ns = 0;
    for (size_t seen = 0; seen < HUB_RETENTION_SWEEP_MAX && !stopping(r);) {
        p->n = 0;
        struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ENDED,
                                           .before_ns = cutoff_ns,
                                           .after_ns = after_ns,
                                           .after_id = after_id,
                                           .max = HUB_RETENTION_BATCH};
        struct ag_err err = AG_ERR_INIT;
        if (hub_store_select_agents(h->store, &q, ended_row, p, &err) != 0) {
            ag_log_warn("retention.read_failed", "err=%s", ag_log_q(err.msg));
            break;
        }
        if (p->n == 0)
            break;
        pthread_mutex_lock(&r->mu);
        r->deleted = r->refused = 0;
        pthread_mutex_unlock(&r->mu);
        delete_page(r, p, cutoff_ns);
        pthread_mutex_lock(&r->mu);
        size_t deleted = r->deleted, refused = r->refused;
        pthread_mutex_unlock(&r->mu);
        hub_metrics_retention_deleted(h->metrics, deleted);
        ag_log_info("retention.swept",
                    "roots=%zu deleted=%zu kept=%zu oldest_ended_s_ago=%" PRId64
                    " retention_ms=%" PRId64,
                    p->n, deleted, refused, (now_ns - p->rows[0].updated_ns) / 1000000000,
                    h->opts.retention_ms);
        seen += p->n;
        after_ns = p->rows[p->n - 1].updated_ns;
        snprintf(after_id, sizeof(after_id), "%s", p->rows[p->n - 1].id);
        if (p->n < HUB_RETENTION_BATCH || pause_ms(r, HUB_RETENTION_PAUSE_MS))
            break;
    }
    free(p);
    hub_metrics_retention_swept(h->metrics, ag_now_unix_ns() / 1000000000);
}

static void *retention_main(void *arg)
{
    struct hub_retention *r = arg;
    int64_t every = r->h->opts.retention_ms / 2;
    if (every > HUB_RETENTION_INTERVAL_MS)
        every = HUB_RETENTION_INTERVAL_MS;
    if (every < 1000)
        every = 1000;
    do
        sweep(r);
    while (!pause_ms(r, every));
    return NULL;
}

void hub_retention_start(struct hub *h)
{
    if (h->opts.retention_ms <= 0)
        return;
    struct hub_retention *r = ag_xcalloc(1, sizeof(*r));
    r->h = h;
    pthread_mutex_init(&r->mu, NULL);
    ag_cond_init_mono(&r->cv);
    h->retention = r;
    ag_log_info("retention.started", "retention_ms=%" PRId64, h->opts.retention_ms);
    if (h->opts.retention_ms < HUB_RETENTION_SHORT_MS) /* allowed (tests), but rarely meant */
        ag_log_warn("retention.short", "retention_ms=%" PRId64 " msg=%s", h->opts.retention_ms,
                    ag_log_q("failed and killed agents are deleted less than an hour after they "
                             "end; --retention takes a unit, e.g. 30d"));
    ag_xthread_create(&r->thread, retention_main, r, "retention");
}

void hub_retention_stop(struct hub *h)
{
    struct hub_retention *r = h->retention;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL); /* it waits for its deletes in flight */
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    h->retention = NULL;
}
