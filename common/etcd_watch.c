/* common/etcd_watch.c - the etcd client's background threads: the lease keeper and watches.
 *
 * Each keeper and each watch owns one thread and one conn (etcd_internal.h), so neither waits
 * for the client's unary lock. Stopping one sets its stop flag under its lock, wakes its
 * condvar (a wait between calls) and aborts its conn (a call in progress: the socket is shut
 * down), then joins: prompt even when the watch stream has been idle for minutes.
 *
 * Keeper invariant: on_lost runs at most once, on the keeper thread, and never after stop
 * returns. Watch invariant: next_rev is the first revision not yet delivered (0 while unknown,
 * before the first stream was created "from now"); every reconnect asks for it, so an event is
 * delivered once even across etcd restarts, unless compaction removed it, in which case the
 * user gets a snapshot (on_resync) instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/etcd_internal.h"
#include "common/xalloc.h"

#define WATCH_BACKOFF_MIN_MS 50
#define WATCH_BACKOFF_MAX_MS 2000

/* --- keeper ---------------------------------------------------------------------------------- */

struct ag_etcd_keeper {
    struct ag_etcd__conn *cn; /* owned; used by the keeper thread only (abort: any thread) */
    int64_t lease, ttl_ms;
    ag_etcd_lost_fn *on_lost;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;  /* signalled by stop */
    bool stop;
};

/* Sleep until deadline or stop; true if stopped. */
static bool keeper_wait(struct ag_etcd_keeper *k, int64_t deadline)
{
    pthread_mutex_lock(&k->mu);
    while (!k->stop && ag_cond_wait_until(&k->cv, &k->mu, deadline))
        ;
    bool stop = k->stop;
    pthread_mutex_unlock(&k->mu);
    return stop;
}

static void *keeper_main(void *arg)
{
    struct ag_etcd_keeper *k = arg;
    int64_t period = k->ttl_ms / 3, last_ok = ag_now_mono_ms();
    /* A renewal that takes longer than a period is as good as lost: give up on it then. */
    int64_t call_timeout = period < k->cn->c->timeout_ms ? period : k->cn->c->timeout_ms;
    char why[300];
    int64_t next = ag_now_mono_ms() + period;
    while (!keeper_wait(k, next * 1000000)) {
        struct ag_err err = AG_ERR_INIT;
        int64_t ttl = 0;
        int rc = ag_etcd__keepalive(k->cn, k->lease, call_timeout, &ttl, &err);
        int64_t now = ag_now_mono_ms();
        if (rc == 0 && ttl > 0) {
            last_ok = now;
            next = now + period;
            continue;
        }
        if (rc == 0 || err.code == AG_NOT_FOUND) {
            snprintf(why, sizeof(why), "lease %lld is gone (expired or revoked)",
                     (long long)k->lease);
        } else if (now - last_ok >= k->ttl_ms) {
            snprintf(why, sizeof(why), "lease %lld not renewed for %lld ms: %s",
                     (long long)k->lease, (long long)(now - last_ok), err.msg);
        } else if (err.code == AG_CANCELLED) {
            break; /* stopped during the call */
        } else {
            /* Retry sooner than a period: there is less than a TTL left. */
            next = now + (period < 200 ? period : 200);
            continue;
        }
        pthread_mutex_lock(&k->mu);
        bool stopped = k->stop;
        pthread_mutex_unlock(&k->mu);
        if (!stopped)
            k->on_lost(k->arg, k->lease, why);
        break;
    }
    return NULL;
}

int ag_etcd_keeper_start(struct ag_etcd *c, int64_t lease, int64_t ttl_s, ag_etcd_lost_fn *on_lost,
                         void *arg, struct ag_etcd_keeper **out, struct ag_err *err)
{
    *out = NULL;
    if (ttl_s <= 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "lease TTL must be positive, not %lld",
                          (long long)ttl_s);
    struct ag_etcd_keeper *k = ag_xcalloc(1, sizeof(*k));
    k->cn = ag_etcd__conn_new(c);
    k->lease = lease;
    k->ttl_ms = ttl_s * 1000;
    k->on_lost = on_lost;
    k->arg = arg;
    pthread_mutex_init(&k->mu, NULL);
    ag_cond_init_mono(&k->cv);
    ag_xthread_create(&k->thread, keeper_main, k, "etcd lease keeper");
    *out = k;
    return 0;
}

void ag_etcd_keeper_stop(struct ag_etcd_keeper *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    ag_etcd__conn_abort(k->cn);
    pthread_join(k->thread, NULL);
    ag_etcd__conn_free(k->cn);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

/* --- watch ----------------------------------------------------------------------------------- */

struct ag_etcd_watch {
    struct ag_etcd__conn *cn; /* owned; used by the watch thread only (abort: any thread) */
    char *prefix;             /* owned */
    struct ag_etcd_watch_cbs cbs;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;  /* signalled by stop */
    bool stop;
    /* Watch thread only: */
    int64_t next_rev;
    bool need_resync; /* etcd compacted past next_rev: re-list before watching again */
    bool created;     /* the current stream was accepted */
    int state;        /* -1 not reported yet, 0 down, 1 up (what on_state last said) */
    char why[256];    /* why the current stream ended, when it is our decision or etcd's */
    unsigned seed;    /* backoff jitter */
};

static void watch_state(struct ag_etcd_watch *w, bool up, const char *why)
{
    if (w->state == (int)up)
        return;
    w->state = up;
    if (w->cbs.on_state)
        w->cbs.on_state(w->cbs.arg, up, why);
}

static bool watch_stopped(struct ag_etcd_watch *w)
{
    pthread_mutex_lock(&w->mu);
    bool stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

static int deliver(struct ag_etcd_watch *w, const cJSON *ev, struct ag_err *err)
{
    struct ag_etcd_kv kv, prev;
    if (ag_etcd__kv_parse(cJSON_GetObjectItemCaseSensitive(ev, "kv"), &kv, err) < 0)
        return -1;
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(ev, "prev_kv");
    if (pj && ag_etcd__kv_parse(pj, &prev, err) < 0) {
        ag_etcd__kv_release(&kv);
        return -1;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
    struct ag_etcd_event e = {
        .type = cJSON_IsString(type) && !strcmp(type->valuestring, "DELETE") ? AG_ETCD_EV_DELETE
                                                                             : AG_ETCD_EV_PUT,
        .kv = &kv,
        .prev_kv = pj ? &prev : NULL,
    };
    w->cbs.on_event(w->cbs.arg, &e);
    if (kv.mod_revision >= w->next_rev)
        w->next_rev = kv.mod_revision + 1;
    ag_etcd__kv_release(&kv);
    if (pj)
        ag_etcd__kv_release(&prev);
    return 0;
}

/* One line of the watch stream: {"result":WatchResponse} or {"error":{...}}. */
static bool watch_line(void *arg, char *line)
{
    struct ag_etcd_watch *w = arg;
    cJSON *j = cJSON_Parse(line);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    bool go_on = false;
    if (!res) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        snprintf(w->why, sizeof(w->why), "etcd: %s",
                 cJSON_IsString(m) ? m->valuestring : "watch stream sent an unreadable line");
        goto out;
    }
    int64_t header_rev = ag_etcd__header_rev(res);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"))) {
        w->created = true;
        if (!w->next_rev) /* "from now": what a reconnect must resume from */
            w->next_rev = header_rev + 1;
        watch_state(w, true, NULL);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
        int64_t compacted = ag_etcd__i64(res, "compact_revision");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(res, "cancel_reason");
        if (compacted) {
            w->need_resync = true;
            snprintf(w->why, sizeof(w->why), "history compacted up to revision %lld",
                     (long long)compacted);
        } else {
            snprintf(w->why, sizeof(w->why), "etcd canceled the watch: %s",
                     cJSON_IsString(reason) ? reason->valuestring : "no reason given");
        }
        goto out; /* etcd keeps a canceled stream open: close it ourselves */
    }
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(res, "events"), *ev;
    struct ag_err err = AG_ERR_INIT;
    cJSON_ArrayForEach(ev, events)
    {
        if (deliver(w, ev, &err) < 0) {
            snprintf(w->why, sizeof(w->why), "%s", err.msg);
            goto out;
        }
    }
    /* A progress notification (no events) says everything up to its revision was sent. */
    if (!cJSON_GetArraySize(events) &&
        !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created")) &&
        header_rev >= w->next_rev)
        w->next_rev = header_rev + 1;
    go_on = true;
out:
    cJSON_Delete(j);
    return go_on;
}

/* Re-list the prefix after a compaction and hand it to on_resync; watch after it. */
static int watch_resync(struct ag_etcd_watch *w, struct ag_err *err)
{
    cJSON *req = ag_etcd__range_req(w->prefix, true, 0), *resp;
    int rc = ag_etcd__call(w->cn, "/v3/kv/range", req, w->cn->c->timeout_ms, &resp, err);
    cJSON_Delete(req);
    if (rc < 0)
        return -1;
    struct ag_etcd_kvs snap;
    rc = ag_etcd__kvs_parse(resp, &snap, err);
    cJSON_Delete(resp);
    if (rc < 0)
        return -1;
    if (w->cbs.on_resync)
        w->cbs.on_resync(w->cbs.arg, &snap);
    w->next_rev = snap.revision + 1;
    w->need_resync = false;
    ag_etcd_kvs_release(&snap);
    return 0;
}

static int watch_once(struct ag_etcd_watch *w, struct ag_err *err)
{
    if (w->need_resync && watch_resync(w, err) < 0)
        return -1;
    cJSON *req = cJSON_CreateObject(), *create = ag_etcd__range_req(w->prefix, true, 0);
    cJSON_AddItemToObject(req, "create_request", create);
    if (w->next_rev)
        ag_etcd__add_i64(create, "start_revision", w->next_rev);
    if (w->cbs.prev_kv)
        cJSON_AddTrueToObject(create, "prev_kv");
    w->created = false;
    w->why[0] = '\0';
    int rc = ag_etcd__stream(w->cn, "/v3/watch", req, watch_line, w, err);
    cJSON_Delete(req);
    if (w->why[0]) /* our reason to end the stream beats libcurl's "write error" */
        return ag_err_set(err, AG_UNAVAILABLE, "%s", w->why);
    if (rc == 0)
        return ag_err_set(err, AG_UNAVAILABLE, "etcd closed the watch stream");
    return -1;
}

static void *watch_main(void *arg)
{
    struct ag_etcd_watch *w = arg;
    int64_t backoff = WATCH_BACKOFF_MIN_MS;
    while (!watch_stopped(w)) {
        struct ag_err err = AG_ERR_INIT;
        watch_once(w, &err);
        if (watch_stopped(w))
            break;
        watch_state(w, false, err.msg);
        if (w->created || w->need_resync)
            backoff = WATCH_BACKOFF_MIN_MS; /* it worked a moment ago: retry soon */
        /* Full jitter over [backoff/2, backoff]: watchers of one etcd do not reconnect in step. */
        int64_t delay = backoff / 2 + rand_r(&w->seed) % (backoff / 2 + 1);
        backoff = backoff * 2 < WATCH_BACKOFF_MAX_MS ? backoff * 2 : WATCH_BACKOFF_MAX_MS;
        int64_t deadline = ag_deadline_in_ms(delay);
        pthread_mutex_lock(&w->mu);
        while (!w->stop && ag_cond_wait_until(&w->cv, &w->mu, deadline))
            ;
        pthread_mutex_unlock(&w->mu);
    }
    return NULL;
}

int ag_etcd_watch_start(struct ag_etcd *c, const char *prefix, int64_t start_revision,
                        const struct ag_etcd_watch_cbs *cbs, struct ag_etcd_watch **out,
                        struct ag_err *err)
{
    *out = NULL;
    if (!cbs->on_event)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "watch of '%s' needs an on_event callback",
                          prefix);
    struct ag_etcd_watch *w = ag_xcalloc(1, sizeof(*w));
    w->cn = ag_etcd__conn_new(c);
    w->prefix = ag_xstrdup(prefix);
    w->cbs = *cbs;
    w->next_rev = start_revision > 0 ? start_revision : 0;
    w->state = -1;
    w->seed = (unsigned)ag_now_mono_ns() ^ (unsigned)(uintptr_t)w;
    pthread_mutex_init(&w->mu, NULL);
    ag_cond_init_mono(&w->cv);
    ag_xthread_create(&w->thread, watch_main, w, "etcd watch");
    *out = w;
    return 0;
}

void ag_etcd_watch_stop(struct ag_etcd_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    ag_etcd__conn_abort(w->cn);
    pthread_join(w->thread, NULL);
    ag_etcd__conn_free(w->cn);
    free(w->prefix);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
