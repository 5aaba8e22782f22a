/* hub/store.c - the generic half of hub/store.h: queues, threads, group commit, seq assignment.
 * The database itself is behind a backend (store_internal.h); this file knows no SQL.
 *
 * Owns: the bounded write queue and the writer thread, the completion thread that runs done()
 * callbacks, the bounded read queue and the reader thread, the per-agent seq cache, the stats,
 * and the two backend connections.
 *
 * Threads and locks:
 *   mu        guards the write queue, `closing`, `lost`, `lost_err` and `stats`. The writer
 *             holds it only to pop a batch, to add stats and to mark the store lost, never while
 *             it talks to the database or runs done(), so a done() may submit again without
 *             deadlock. The writer alone sets `lost`, so it reads it without the lock.
 *   cmu       guards the queue of committed batches waiting for their done() calls.
 *   rmu       guards the read queue and `rclosing`.
 *   rconn_mu  serializes the reader's connection between the reader thread and the synchronous
 *             reads (select_agents, select_schedules, scan_events), which run on the caller's
 *             thread. Their callbacks run under it, so they must not call those again
 *             (read_events is fine).
 *   The writer thread alone owns wconn and seqs; the reader thread alone owns rows, mrows and
 *   rarena.
 *
 * Invariants:
 *   - A write's done() runs after the COMMIT that made it durable returned (or once it has
 *     definitely failed), on the completion thread, in submission order. The writer hands each
 *     finished batch over and starts the next transaction at once: replying to callers (packing,
 *     sending) overlaps the next commit instead of delaying it.
 *   - seqs caches, per agent, the last seq committed. A transaction hands out seqs tentatively
 *     (pending); a COMMIT publishes them; a failure evicts every entry the transaction touched,
 *     so the next use reloads the truth from the database. Hence no gap and no reuse.
 *   - Only this process writes the database, or the cache would lie; the backend enforces it
 *     when it opens the writer's connection (sqlite: an exclusive flock on the file).
 *   - Once the backend reports the database lost (AG_DATA_LOSS: its file deleted or replaced),
 *     `lost` is set for good: the batch that noticed fails, writes still queued fail without a
 *     transaction, new ones are refused at submit, all with the same UNAVAILABLE message, and
 *     event=store.lost is logged once. Reads go on; only acknowledging writes stops.
 *   - A database that fails (UNAVAILABLE: down, unreachable, disk full) fails its writes and
 *     is not "lost": every write is tried again, so writes succeed by themselves once it is
 *     back. The writer logs event=store.down at the first failure and event=store.up at the
 *     next commit, and nothing per failed write in between (`down`, writer thread only).
 *   - A COMMIT whose outcome the backend cannot learn yet (AG_UNKNOWN: the connection broke
 *     during it and the server is still unreachable) is neither acknowledged nor failed: its
 *     writes are held, with the rest of their batch, new writes are refused at submit, and the
 *     writer asks again every STORE_OUTCOME_POLL_MS until the backend knows; then they are
 *     answered (stored, with their seqs, or failed) in order.
 *   - The reader's connection is closed before the writer's (store_internal.h says why).
 *   - Once closing is set no request is queued, so draining the queues terminates. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/arena.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/map.h"
#include "common/metrics.h"
#include "common/xalloc.h"
#include "hub/store.h"
#include "hub/store_internal.h"

#define STORE_QUEUE_CAP 65536
#define STORE_MAX_BATCH 1024
#define STORE_READ_QUEUE_CAP 4096
/* Agents in the seq cache before it is dropped (between transactions). A miss costs one index
 * seek, so dropping is cheap; the bound keeps a long-lived hub with many agents small. */
#define STORE_SEQ_CACHE_MAX 100000
/* How often the writer asks the backend again about a commit whose outcome it could not learn;
 * the backend paces its reconnects itself, so an ask in between costs nothing. */
#define STORE_OUTCOME_POLL_MS 100
/* Rows kept allocated by the reader between requests; a bigger replay gives its memory back. */
#define STORE_ROWS_KEEP 64

/* The backend table: a new database is a new row (and a new file). */
static const struct hub_store__backend *const store_backends[] = {
    &hub_store__sqlite_backend,
    &hub_store__pg_backend,
};

struct seq_entry {
    struct seq_entry *tnext; /* list of entries touched by the running transaction */
    uint64_t committed;      /* last seq durable in the database */
    uint64_t pending;        /* last seq handed out by the running transaction, if touched */
    bool touched;
    char agent_id[]; /* owned, inline: the map's key */
};

struct seq_cache {
    struct ag_map map; /* agent id -> struct seq_entry (owned) */
    struct seq_entry *touched;
};

struct read_req {
    struct ag_qnode qn; /* in hub_store.reads */
    uint64_t from_seq, to_seq;
    size_t max;
    hub_store_events_fn *cb; /* NULL: a memory read (mq, mcb) */
    void *arg;
    struct hub_store_memory_query mq; /* its strings in ar */
    hub_store_memory_fn *mcb;
    struct ag_arena ar;
    char agent_id[]; /* owned, inline */
};

struct hub_store {
    const struct hub_store__backend *be; /* borrowed, static */
    size_t queue_cap, max_batch, read_queue_cap;
    struct ag_metric *commit_seconds, *commit_writes; /* may be NULL */

    pthread_mutex_t mu;
    pthread_cond_t wake;    /* writer: queue not empty, or closing */
    struct ag_queue writes; /* of hub_store_write, bounded at queue_cap */
    bool closing;
    bool paused;            /* test hook, see hub_store__pause */
    bool lost;              /* set once by the writer, never cleared */
    struct ag_err lost_err; /* UNAVAILABLE + the backend's message, once lost */
    bool unknown;           /* the writer holds a batch (held): refuse new writes meanwhile */
    struct ag_err unknown_err;
    struct hub_store_stats stats;

    pthread_t writer;
    bool writer_started;
    pthread_t completer;
    bool completer_started;
    pthread_mutex_t cmu;
    pthread_cond_t cwake;
    /* Committed (or failed) batches, oldest first, weighed by their writes. Not bounded: each
     * holds writes the write queue's bound already admitted, and refusing one would drop the
     * outcome of a transaction. */
    struct ag_queue done;
    bool cclosing;                 /* the writer has exited: drain and stop */
    struct hub_store__conn *wconn; /* owned; writer thread */
    struct seq_cache seqs;         /* writer thread */
    /* Writer thread: a batch whose COMMIT's outcome the backend cannot learn yet (AG_UNKNOWN),
     * and the writes of its batch that came after it and have not run (a split batch). */
    struct hub_store_write *held, *deferred;
    size_t nheld, ndeferred;
    /* Writer thread: the database failed (UNAVAILABLE) and no commit has succeeded since. */
    bool down;
    int64_t down_since_ms; /* ag_now_mono_ms() of the first failure */
    uint64_t down_failed;  /* writes failed since */

    pthread_mutex_t rmu;
    pthread_cond_t rwake;  /* reader: queue not empty, or closing */
    struct ag_queue reads; /* of read_req, bounded at read_queue_cap */
    bool rclosing;
    bool rpaused;

    pthread_t reader;
    bool reader_started;
    pthread_mutex_t rconn_mu;
    struct hub_store__conn *rconn; /* owned; under rconn_mu */
    struct hub_store_event *rows;  /* owned; reader thread: the rows of one read */
    size_t nrows, rows_cap;
    struct hub_store_memory *mrows; /* owned; reader thread: the rows of one memory read */
    size_t nmrows, mrows_cap;
    struct ag_arena rarena; /* reader thread: the rows' strings */
};

/* --- seq cache (writer thread) ---------------------------------------------------------------- */

static struct seq_entry *seq_add(struct seq_cache *c, const char *id, uint64_t last)
{
    size_t len = strlen(id);
    struct seq_entry *e = ag_xcalloc(1, sizeof(*e) + len + 1);
    memcpy(e->agent_id, id, len + 1);
    e->committed = last;
    ag_map_put(&c->map, e->agent_id, e);
    return e;
}

static void seq_remove(struct seq_cache *c, struct seq_entry *e)
{
    ag_map_del(&c->map, e->agent_id);
    free(e);
}

static void seq_clear(struct seq_cache *c)
{
    void *e;
    /* Freeing the values does not change the map's slots, which are dropped right after. */
    for (struct ag_map_iter it = {0}; ag_map_next(&c->map, &it, NULL, &e);)
        free(e);
    ag_map_release(&c->map);
    ag_map_init(&c->map);
    c->touched = NULL;
}

/* After COMMIT: the tentative seqs are now the truth. */
static void seq_publish(struct seq_cache *c)
{
    for (struct seq_entry *e = c->touched; e; e = e->tnext) {
        e->committed = e->pending;
        e->touched = false;
    }
    c->touched = NULL;
}

/* After a rollback: forget what the transaction touched and reload it from the database. Not
 * just "keep committed": a backend whose COMMIT failed ambiguously may have stored it anyway. */
static void seq_evict_touched(struct seq_cache *c)
{
    for (struct seq_entry *e = c->touched, *next; e; e = next) {
        next = e->tnext;
        seq_remove(c, e);
    }
    c->touched = NULL;
}

/* The next seq for agent_id inside the running transaction. */
static int seq_next(struct hub_store *st, const char *agent_id, uint64_t *seq, struct ag_err *err)
{
    struct seq_cache *c = &st->seqs;
    struct seq_entry *e = ag_map_get(&c->map, agent_id);
    if (!e) {
        uint64_t last;
        if (st->be->last_seq(st->wconn, agent_id, &last, err))
            return -1;
        e = seq_add(c, agent_id, last);
    }
    if (!e->touched) {
        e->touched = true;
        e->pending = e->committed;
        e->tnext = c->touched;
        c->touched = e;
    }
    *seq = ++e->pending;
    return 0;
}

/* An agent's events are deleted inside the running transaction: its next seq is 1 again (a
 * rollback forgets this as it forgets every touched entry). */
static void seq_reset(struct seq_cache *c, const char *agent_id)
{
    struct seq_entry *e = ag_map_get(&c->map, agent_id);
    if (!e)
        e = seq_add(c, agent_id, 0);
    if (!e->touched) {
        e->touched = true;
        e->tnext = c->touched;
        c->touched = e;
    }
    e->pending = 0;
}

/* --- writer thread ---------------------------------------------------------------------------- */

/* Waits for writes; pops at most max_batch of them, in order. 0 means closed and drained. */
static size_t batch_take(struct hub_store *st, struct hub_store_write **out)
{
    pthread_mutex_lock(&st->mu);
    while ((ag_queue_empty(&st->writes) || st->paused) && !st->closing)
        pthread_cond_wait(&st->wake, &st->mu);
    size_t n = ag_queue_len(&st->writes);
    if (n > st->max_batch)
        n = st->max_batch;
    struct hub_store_write *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        struct hub_store_write *w = AG_QUEUE_ENTRY(ag_queue_pop(&st->writes),
                                                   struct hub_store_write, qn);
        w->next = NULL;
        *tail = w;
        tail = &w->next;
    }
    pthread_mutex_unlock(&st->mu);
    *out = head;
    return n;
}

static int write_apply(struct hub_store *st, struct hub_store_write *w, struct ag_err *err)
{
    for (size_t i = 0; i < w->nops; i++) {
        struct hub_store_op *op = &w->ops[i];
        if (op->type == HUB_STORE_EVENT_APPEND &&
            seq_next(st, op->u.event.agent_id, &op->u.event.seq, err))
            return -1;
        if (op->type == HUB_STORE_AGENT_DELETE)
            seq_reset(&st->seqs, op->u.agent.id);
        if (st->be->apply(st->wconn, op, err))
            return -1;
    }
    return 0;
}

/* One transaction for the first n writes from head. */
static int tx_run(struct hub_store *st, struct hub_store_write *head, size_t n, struct ag_err *err)
{
    /* Dropped only here, between transactions, so no touched entry is ever freed early. */
    if (ag_map_len(&st->seqs.map) > STORE_SEQ_CACHE_MAX)
        seq_clear(&st->seqs);
    int64_t t0 = st->commit_seconds ? ag_now_mono_ns() : 0;
    if (st->be->begin(st->wconn, err))
        goto fail;
    struct hub_store_write *w = head;
    for (size_t i = 0; i < n; i++, w = w->next)
        if (write_apply(st, w, err))
            goto fail;
    if (st->be->commit(st->wconn, err))
        goto fail;
    seq_publish(&st->seqs);
    if (st->commit_seconds)
        ag_metrics_observe(st->commit_seconds, (uint64_t)(ag_now_mono_ns() - t0));
    ag_metrics_observe(st->commit_writes, n);
    return 0;
fail:
    st->be->rollback(st->wconn);
    seq_evict_touched(&st->seqs);
    return -1;
}

static uint64_t events_of(const struct hub_store_write *w, size_t n)
{
    uint64_t events = 0;
    for (size_t i = 0; i < n; i++, w = w->next)
        for (size_t j = 0; j < w->nops; j++)
            events += w->ops[j].type == HUB_STORE_EVENT_APPEND;
    return events;
}

/* Counted before done() runs, so a caller that has seen its done() also sees the stats. */
static void stats_add(struct hub_store *st, const struct hub_store_write *w, size_t n, int rc)
{
    uint64_t events = rc == 0 ? events_of(w, n) : 0;
    pthread_mutex_lock(&st->mu);
    if (rc == 0) {
        st->stats.commits++;
        st->stats.writes += n;
        st->stats.events += events;
        if (n > st->stats.max_batch)
            st->stats.max_batch = n;
    } else {
        st->stats.failed += n;
    }
    pthread_mutex_unlock(&st->mu);
}

static void finish(struct hub_store_write *w, size_t n, int rc, const struct ag_err *err)
{
    for (size_t i = 0; i < n; i++) {
        struct hub_store_write *next = w->next; /* done() may free or reuse w */
        w->next = NULL;
        w->done(w, rc, rc ? err : NULL);
        w = next;
    }
}

struct done_batch {
    struct ag_qnode qn; /* in hub_store.done */
    struct hub_store_write *head;
    size_t n;
    int rc;
    struct ag_err err;
};

/* Writer thread: hand a finished batch to the completion thread. */
static void complete(struct hub_store *st, struct hub_store_write *head, size_t n, int rc,
                     const struct ag_err *err)
{
    struct done_batch *d = ag_xcalloc(1, sizeof(*d));
    d->head = head;
    d->n = n;
    d->rc = rc;
    if (rc)
        d->err = *err;
    pthread_mutex_lock(&st->cmu);
    ag_queue_push_over(&st->done, &d->qn, n);
    pthread_cond_signal(&st->cwake);
    pthread_mutex_unlock(&st->cmu);
}

static void *completer_main(void *arg)
{
    struct hub_store *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->cmu);
        while (ag_queue_empty(&st->done) && !st->cclosing)
            pthread_cond_wait(&st->cwake, &st->cmu);
        struct ag_qnode *qn = ag_queue_pop(&st->done);
        pthread_mutex_unlock(&st->cmu);
        if (!qn)
            return NULL; /* closing, and nothing left */
        struct done_batch *d = AG_QUEUE_ENTRY(qn, struct done_batch, qn);
        finish(d->head, d->n, d->rc, &d->err);
        free(d);
    }
}

/* The writer's view of the database, logged once per change, not once per failed batch: an
 * outage refuses every write (the backend fails them fast, see store_pg.c's backoff), and a line
 * per refusal would bury the one that says why. */
static void writer_down(struct hub_store *st, size_t n, const struct ag_err *err)
{
    if (st->down) {
        st->down_failed += n;
        ag_log_debug("store.commit_failed", "writes=%zu error=%s", n, ag_log_q(err->msg));
        return;
    }
    st->down = true;
    st->down_since_ms = ag_now_mono_ms();
    st->down_failed = n;
    ag_log_error("store.down", "backend=%s writes=%zu code=%s error=%s", st->be->scheme, n,
                 ag_code_name(err->code), ag_log_q(err->msg));
}

static void writer_up(struct hub_store *st)
{
    if (!st->down)
        return;
    st->down = false;
    ag_log_info("store.up", "backend=%s down_ms=%" PRId64 " failed_writes=%" PRIu64, st->be->scheme,
                ag_now_mono_ms() - st->down_since_ms, st->down_failed);
}

/* The backend says the database is gone for good (AG_DATA_LOSS, store_internal.h). Callers see
 * UNAVAILABLE, the one code the API documents for "the store is down", with the backend's
 * message. Logged here, once: every later refusal is its caller's to report. */
static void store_lose(struct hub_store *st, size_t n, struct ag_err *err)
{
    err->code = AG_UNAVAILABLE;
    ag_log_error("store.lost", "backend=%s writes=%zu error=%s", st->be->scheme, n,
                 ag_log_q(err->msg));
    pthread_mutex_lock(&st->mu);
    st->lost_err = *err;
    st->lost = true;
    pthread_mutex_unlock(&st->mu);
}

/* After a failed transaction of n writes: true if the database failed rather than one of the
 * writes (the others would fail the same way, so none is retried), logged here. */
static bool db_failed(struct hub_store *st, size_t n, struct ag_err *err)
{
    if (err->code == AG_DATA_LOSS) {
        store_lose(st, n, err);
        return true;
    }
    if (err->code == AG_UNAVAILABLE) {
        writer_down(st, n, err);
        return true;
    }
    return false;
}

/* The backend cannot tell yet whether this batch's COMMIT was stored (AG_UNKNOWN, see
 * store_internal.h): its writes are neither acknowledged nor failed but held, with the writes
 * after them (rest, not run), until the backend knows (outcome_pending). New writes are refused meanwhile, at
 * submit, so no done() overtakes the held ones. */
static void outcome_hold(struct hub_store *st, struct hub_store_write *head, size_t n,
                         struct hub_store_write *rest, size_t nrest, const struct ag_err *err)
{
    st->held = head;
    st->nheld = n;
    st->deferred = rest;
    st->ndeferred = nrest;
    writer_down(st, n, err);
    pthread_mutex_lock(&st->mu);
    st->unknown = true;
    ag_err_set(&st->unknown_err, AG_UNAVAILABLE,
               "the store is down, waiting to learn whether an earlier commit was stored; retry "
               "later (%s)",
               err->msg);
    pthread_mutex_unlock(&st->mu);
}

/* After a batch failed because of some write: run each alone, so only the bad ones fail. */
static void retry_alone(struct hub_store *st, struct hub_store_write *w, size_t n)
{
    struct ag_err err = AG_ERR_INIT;
    bool down = false;
    for (size_t i = 0; i < n; i++) {
        struct hub_store_write *next = w->next;
        w->next = NULL;
        int rc = -1;
        /* Once the database itself fails, the rest would fail the same way, only slower. */
        if (!down) {
            ag_err_clear(&err);
            rc = tx_run(st, w, 1, &err);
            if (rc != 0 && err.code == AG_UNKNOWN) {
                outcome_hold(st, w, 1, next, n - i - 1, &err);
                return;
            }
            down = rc != 0 && db_failed(st, n - i, &err);
            if (rc == 0)
                writer_up(st);
        }
        stats_add(st, w, 1, rc);
        complete(st, w, 1, rc, &err);
        w = next;
    }
}

static void batch_run(struct hub_store *st, struct hub_store_write *head, size_t n)
{
    struct ag_err err = AG_ERR_INIT;
    int rc = -1;
    bool down = true;
    if (st->lost) {
        err = st->lost_err; /* queued before the loss was noticed: no transaction, no log */
    } else {
        rc = tx_run(st, head, n, &err);
        if (rc != 0 && err.code == AG_UNKNOWN) {
            outcome_hold(st, head, n, NULL, 0, &err);
            return;
        }
        /* If the database failed, not a write, retrying each alone would only make every
         * caller wait (a lock held elsewhere costs the busy timeout per try): all fail now. */
        down = rc != 0 && db_failed(st, n, &err);
        if (rc == 0)
            writer_up(st);
    }
    if (rc != 0 && !down && n > 1) {
        ag_log_debug("store.batch_split", "writes=%zu code=%s", n, ag_code_name(err.code));
        retry_alone(st, head, n);
        return;
    }
    stats_add(st, head, n, rc);
    complete(st, head, n, rc, &err);
}

/* Writer thread, while held: asks the backend again (it paces its own retries, see
 * store_pg.c's backoff) and, once it knows, answers the held writes, stored with their seqs or
 * failed, then runs the deferred ones. Returns true while the outcome is still unknown. A store
 * closing gives up: its held writes fail, saying they may be stored (a restart reloads the
 * truth). */
static bool outcome_pending(struct hub_store *st)
{
    struct ag_err err = AG_ERR_INIT;
    int rc = st->be->resolve(st->wconn, &err);
    pthread_mutex_lock(&st->mu);
    bool closing = st->closing;
    pthread_mutex_unlock(&st->mu);
    if (rc != 0 && err.code == AG_UNKNOWN) {
        if (!closing)
            return true;
        char why[sizeof(err.msg)];
        snprintf(why, sizeof(why), "%s", err.msg);
        ag_err_set(&err, AG_UNAVAILABLE,
                   "the store closed before it could learn whether this write was stored; it "
                   "may be: read the agent's trace after the restart (%s)",
                   why);
    }
    struct hub_store_write *head = st->held, *rest = st->deferred;
    size_t n = st->nheld, nrest = st->ndeferred;
    st->held = st->deferred = NULL;
    st->nheld = st->ndeferred = 0;
    pthread_mutex_lock(&st->mu);
    st->unknown = false;
    pthread_mutex_unlock(&st->mu);
    if (rc == 0)
        writer_up(st);
    stats_add(st, head, n, rc);
    complete(st, head, n, rc, &err);
    if (nrest)
        batch_run(st, rest, nrest);
    return false;
}

static void *writer_main(void *arg)
{
    struct hub_store *st = arg;
    struct hub_store_write *batch;
    size_t n;
    for (;;) {
        /* Writes queued behind a held batch wait for its outcome: done() keeps its order. */
        if (st->held && outcome_pending(st)) {
            nanosleep(&(struct timespec){0, STORE_OUTCOME_POLL_MS * 1000000L}, NULL);
            continue;
        }
        if ((n = batch_take(st, &batch)) == 0)
            return NULL;
        batch_run(st, batch, n);
    }
}

/* --- reader thread ---------------------------------------------------------------------------- */

static struct read_req *read_take(struct hub_store *st)
{
    pthread_mutex_lock(&st->rmu);
    while ((ag_queue_empty(&st->reads) || st->rpaused) && !st->rclosing)
        pthread_cond_wait(&st->rwake, &st->rmu);
    struct ag_qnode *n = ag_queue_pop(&st->reads);
    pthread_mutex_unlock(&st->rmu);
    return n ? AG_QUEUE_ENTRY(n, struct read_req, qn) : NULL;
}

struct read_ctx {
    struct hub_store *st;
    const char *agent_id; /* borrowed from the request */
};

/* Copies one row: the backend's pointers die at its next row. */
static int row_collect(void *arg, const struct hub_store_event *ev, struct ag_err *err)
{
    struct read_ctx *ctx = arg;
    struct hub_store *st = ctx->st;
    if (st->nrows == st->rows_cap) {
        st->rows_cap *= 2;
        st->rows = ag_xrealloc(st->rows, st->rows_cap * sizeof(*st->rows));
    }
    struct hub_store_event *r = &st->rows[st->nrows++];
    *r = *ev;
    r->agent_id = ctx->agent_id;
    char *payload = ag_arena_alloc(&st->rarena, ev->payload_len + 1);
    if (ev->payload_len)
        memcpy(payload, ev->payload, ev->payload_len);
    payload[ev->payload_len] = '\0';
    r->payload = payload;
    r->node_id = ag_arena_strdup(&st->rarena, ev->node_id ? ev->node_id : "");
    return 0;
}

static void read_run(struct hub_store *st, struct read_req *rq)
{
    struct ag_err err = AG_ERR_INIT;
    struct read_ctx ctx = {st, rq->agent_id};
    st->nrows = 0;
    pthread_mutex_lock(&st->rconn_mu);
    int rc = st->be->scan_events(st->rconn, rq->agent_id, rq->from_seq, rq->to_seq, rq->max,
                                 row_collect, &ctx, &err);
    pthread_mutex_unlock(&st->rconn_mu);
    /* rows is never NULL on success, even with 0 rows: NULL is how the callback sees an error. */
    if (rc)
        rq->cb(rq->arg, NULL, 0, &err);
    else
        rq->cb(rq->arg, st->rows, st->nrows, NULL);
    ag_arena_reset(&st->rarena);
    if (st->rows_cap > STORE_ROWS_KEEP) {
        st->rows_cap = STORE_ROWS_KEEP;
        st->rows = ag_xrealloc(st->rows, st->rows_cap * sizeof(*st->rows));
    }
}

/* Copies one memory row into the reader's arena, as row_collect does events. */
static int mrow_collect(void *arg, const struct hub_store_memory *m, struct ag_err *err)
{
    (void)err;
    struct hub_store *st = arg;
    if (st->nmrows == st->mrows_cap) {
        st->mrows_cap = st->mrows_cap ? 2 * st->mrows_cap : STORE_ROWS_KEEP;
        st->mrows = ag_xrealloc(st->mrows, st->mrows_cap * sizeof(*st->mrows));
    }
    struct hub_store_memory *r = &st->mrows[st->nmrows++];
    *r = *m;
    r->agent_id = NULL; /* the request's, set by memory_run */
    r->namespace = ag_arena_strdup(&st->rarena, m->namespace ? m->namespace : "");
    r->key = ag_arena_strdup(&st->rarena, m->key ? m->key : "");
    if (m->value)
        r->value = ag_arena_strndup(&st->rarena, m->value, m->value_len);
    if (m->vector && m->dims) {
        float *v = ag_arena_alloc(&st->rarena, m->dims * sizeof(float));
        memcpy(v, m->vector, m->dims * sizeof(float));
        r->vector = v;
    } else {
        r->vector = NULL;
    }
    return 0;
}

static void memory_run(struct hub_store *st, struct read_req *rq)
{
    struct ag_err err = AG_ERR_INIT;
    st->nmrows = 0;
    int rc = 0;
    pthread_mutex_lock(&st->rconn_mu);
    if (rq->mq.kind == HUB_STORE_MEMORY_GET) {
        /* One keyed read per key: the backends need no variable-length IN list. */
        for (size_t i = 0; i < rq->mq.nkeys && rc == 0; i++) {
            struct hub_store_memory_query one = rq->mq;
            one.keys = &rq->mq.keys[i];
            one.nkeys = 1;
            rc = st->be->scan_memory(st->rconn, &one, mrow_collect, st, &err);
        }
    } else {
        rc = st->be->scan_memory(st->rconn, &rq->mq, mrow_collect, st, &err);
    }
    pthread_mutex_unlock(&st->rconn_mu);
    for (size_t i = 0; i < st->nmrows; i++)
        st->mrows[i].agent_id = rq->agent_id;
    if (rc)
        rq->mcb(rq->arg, NULL, 0, &err);
    else
        rq->mcb(rq->arg, st->mrows ? st->mrows : &(struct hub_store_memory){0}, st->nmrows, NULL);
    ag_arena_reset(&st->rarena);
    if (st->mrows_cap > STORE_ROWS_KEEP) {
        free(st->mrows);
        st->mrows = NULL;
        st->mrows_cap = 0;
    }
}

static void read_req_free(struct read_req *rq)
{
    ag_arena_release(&rq->ar);
    free(rq);
}

static void *reader_main(void *arg)
{
    struct hub_store *st = arg;
    struct read_req *rq;
    while ((rq = read_take(st)) != NULL) {
        if (rq->cb)
            read_run(st, rq);
        else
            memory_run(st, rq);
        read_req_free(rq);
    }
    return NULL;
}

/* --- open / close ----------------------------------------------------------------------------- */

static bool scheme_is(const char *url, const char *scheme)
{
    size_t n = scheme ? strlen(scheme) : 0;
    return n && strncmp(url, scheme, n) == 0 && url[n] == ':';
}

static const struct hub_store__backend *backend_find(const char *url)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(store_backends); i++)
        if (scheme_is(url, store_backends[i]->scheme) || scheme_is(url, store_backends[i]->alias))
            return store_backends[i];
    return NULL;
}

static void store_init(struct hub_store *st, const struct hub_store__backend *be,
                       const struct hub_store_opts *opts)
{
    st->be = be;
    st->queue_cap = opts && opts->queue_cap ? opts->queue_cap : STORE_QUEUE_CAP;
    st->max_batch = opts && opts->max_batch ? opts->max_batch : STORE_MAX_BATCH;
    st->commit_seconds = opts ? opts->commit_seconds : NULL;
    st->commit_writes = opts ? opts->commit_writes : NULL;
    st->read_queue_cap = opts && opts->read_queue_cap ? opts->read_queue_cap : STORE_READ_QUEUE_CAP;
    ag_queue_init(&st->writes, "store.writes", st->queue_cap, 0);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->wake, NULL);
    pthread_mutex_init(&st->cmu, NULL);
    pthread_cond_init(&st->cwake, NULL);
    pthread_mutex_init(&st->rmu, NULL);
    pthread_cond_init(&st->rwake, NULL);
    pthread_mutex_init(&st->rconn_mu, NULL);
    ag_queue_init(&st->reads, "store.reads", st->read_queue_cap, 0);
    ag_queue_init(&st->done, "store.done", 0, 0);
    ag_map_init(&st->seqs.map);
    st->rows_cap = STORE_ROWS_KEEP;
    st->rows = ag_xmalloc(st->rows_cap * sizeof(*st->rows));
    ag_arena_init(&st->rarena, NULL, 0);
}

/* Stops accepting and lets both threads drain their queues, then joins them. */
static void threads_stop(struct hub_store *st)
{
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_lock(&st->rmu);
    st->rclosing = true;
    pthread_cond_broadcast(&st->rwake);
    pthread_mutex_unlock(&st->rmu);
    if (st->writer_started)
        pthread_join(st->writer, NULL);
    /* The writer has handed over its last batch; now let the completion thread drain. */
    pthread_mutex_lock(&st->cmu);
    st->cclosing = true;
    pthread_cond_broadcast(&st->cwake);
    pthread_mutex_unlock(&st->cmu);
    if (st->completer_started)
        pthread_join(st->completer, NULL);
    if (st->reader_started)
        pthread_join(st->reader, NULL);
    st->writer_started = st->reader_started = st->completer_started = false;
}

static int threads_start(struct hub_store *st, struct ag_err *err)
{
    int rc = pthread_create(&st->completer, NULL, completer_main, st);
    st->completer_started = rc == 0;
    if (rc == 0) {
        rc = pthread_create(&st->writer, NULL, writer_main, st);
        st->writer_started = rc == 0;
    }
    if (rc == 0) {
        rc = pthread_create(&st->reader, NULL, reader_main, st);
        st->reader_started = rc == 0;
    }
    if (rc == 0)
        return 0;
    threads_stop(st);
    return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                      "cannot start the store's threads: %s; "
                      "raise the process's thread limit",
                      strerror(rc));
}

static void store_free(struct hub_store *st)
{
    /* The reader's first: the writer's may hold what the file needs while any connection to it
     * is open (sqlite's lock descriptor, see store_internal.h). */
    st->be->close(st->rconn);
    st->be->close(st->wconn);
    seq_clear(&st->seqs);
    ag_map_release(&st->seqs.map);
    free(st->rows);
    free(st->mrows);
    ag_arena_release(&st->rarena);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->cmu);
    pthread_cond_destroy(&st->cwake);
    pthread_mutex_destroy(&st->rmu);
    pthread_cond_destroy(&st->rwake);
    pthread_mutex_destroy(&st->rconn_mu);
    free(st);
}

void hub_store_url_redact(const char *url, char *buf, size_t cap)
{
    size_t n = 0;
    const char *p = url;
    const char *scheme_end = strstr(url, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *slash = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    const char *colon = scheme_end ? strchr(scheme_end + 3, ':') : NULL;
    /* A URI's userinfo ends at the '@' before the path: "scheme://user:PASS@host/db". */
    bool uri_pass = at && (!slash || at < slash) && colon && colon < at;
    while (*p && n + 1 < cap) {
        if (uri_pass && p == colon + 1) {
            n += (size_t)snprintf(buf + n, cap - n, "***");
            p = at;
            continue;
        }
        /* A keyword conninfo's "password=VALUE" (VALUE up to a space, or quoted). */
        if (!scheme_end && strncmp(p, "password=", 9) == 0 &&
            (p == url || p[-1] == ' ' || p[-1] == ':')) {
            n += (size_t)snprintf(buf + n, cap - n, "password=***");
            p += 9;
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p += (*p == '\\' && p[1]) ? 2 : 1)
                    ;
                if (*p)
                    p++;
            } else {
                while (*p && *p != ' ')
                    p++;
            }
            continue;
        }
        buf[n++] = *p++;
    }
    if (n >= cap)
        n = cap - 1;
    buf[n] = '\0';
}

struct hub_store *hub_store_open(const char *url, const struct hub_store_opts *opts,
                                 struct ag_err *err)
{
    const struct hub_store__backend *be = url ? backend_find(url) : NULL;
    if (!be) {
        /* Only the scheme is echoed: a database URL may carry a password. */
        const char *colon = url ? strchr(url, ':') : NULL;
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "unsupported store url scheme '%.*s'; use "
                   "sqlite:PATH or postgres://...",
                   colon ? (int)(colon - url) : 0, url ? url : "");
        return NULL;
    }
    struct hub_store *st = ag_xcalloc(1, sizeof(*st));
    store_init(st, be, opts);
    /* The writer's connection first: it creates or migrates the schema the reader expects. */
    st->wconn = be->open(url, HUB_STORE__WRITER, opts, err);
    if (!st->wconn)
        goto fail;
    st->rconn = be->open(url, HUB_STORE__READER, opts, err);
    if (!st->rconn || threads_start(st, err))
        goto fail;
    ag_log_info("store.opened", "backend=%s queue_cap=%zu max_batch=%zu read_queue_cap=%zu",
                be->scheme, st->queue_cap, st->max_batch, st->read_queue_cap);
    return st;
fail:
    store_free(st);
    return NULL;
}

void hub_store_close(struct hub_store *st)
{
    if (!st)
        return;
    threads_stop(st);
    ag_log_info("store.closed", "commits=%" PRIu64 " writes=%" PRIu64 " failed=%" PRIu64,
                st->stats.commits, st->stats.writes, st->stats.failed);
    store_free(st);
}

/* --- public requests -------------------------------------------------------------------------- */

/* The row an op names: its agent's, or its schedule's. */
static const char *op_key(const struct hub_store_op *op)
{
    switch (op->type) {
    case HUB_STORE_AGENT_INSERT:
    case HUB_STORE_AGENT_UPDATE:
    case HUB_STORE_AGENT_DELETE:
        return op->u.agent.id;
    case HUB_STORE_EVENT_APPEND:
        return op->u.event.agent_id;
    case HUB_STORE_SCHEDULE_INSERT:
    case HUB_STORE_SCHEDULE_ADVANCE:
    case HUB_STORE_SCHEDULE_PAUSE:
    case HUB_STORE_SCHEDULE_DELETE:
        return op->u.schedule.id;
    case HUB_STORE_MEMORY_PUT:
    case HUB_STORE_MEMORY_DELETE:
        return op->u.memory.agent_id;
    }
    return NULL;
}

/* Caught here, on the caller's thread, so a malformed write never reaches a batch. */
static int write_check(const struct hub_store_write *w, struct ag_err *err)
{
    if (!w || !w->done || (w->nops && !w->ops))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "store write needs done() and its ops");
    for (size_t i = 0; i < w->nops; i++) {
        const struct hub_store_op *op = &w->ops[i];
        bool mem = op->type == HUB_STORE_MEMORY_PUT || op->type == HUB_STORE_MEMORY_DELETE;
        if (op->type < HUB_STORE_AGENT_INSERT || op->type > HUB_STORE_AGENT_DELETE)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "store op %zu has unknown type %d", i,
                              (int)op->type);
        const char *id = op_key(op);
        if (!id || !*id)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "store op %zu names no agent or schedule",
                              i);
        if (mem && (!op->u.memory.namespace || !*op->u.memory.namespace || !op->u.memory.key ||
                    !*op->u.memory.key || (op->u.memory.value_len && !op->u.memory.value) ||
                    (op->u.memory.dims && !op->u.memory.vector)))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "store op %zu: a memory entry needs a namespace, a key, and its "
                              "value and vector when it gives their sizes",
                              i);
        if (op->type == HUB_STORE_EVENT_APPEND && op->u.event.payload_len && !op->u.event.payload)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "store op %zu: payload_len without payload",
                              i);
    }
    return 0;
}

int hub_store_submit(struct hub_store *st, struct hub_store_write *w, struct ag_err *err)
{
    if (write_check(w, err))
        return -1;
    int rc = 0;
    pthread_mutex_lock(&st->mu);
    if (st->closing) {
        rc = ag_err_set(err, AG_UNAVAILABLE, "store is closing; write not accepted");
    } else if (st->lost) {
        rc = ag_err_set(err, AG_UNAVAILABLE, "%s", st->lost_err.msg);
    } else if (st->unknown) {
        rc = ag_err_set(err, AG_UNAVAILABLE, "%s", st->unknown_err.msg);
    } else if (ag_queue_push(&st->writes, &w->qn, 1, err) != 0) {
        rc = ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                        "store write queue is full (%zu waiting); "
                        "retry later",
                        ag_queue_len(&st->writes));
    } else {
        pthread_cond_signal(&st->wake);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static int read_push(struct hub_store *st, struct read_req *rq, struct ag_err *err);

int hub_store_read_events(struct hub_store *st, const char *agent_id, uint64_t from_seq,
                          uint64_t to_seq, size_t max, hub_store_events_fn *cb, void *arg,
                          struct ag_err *err)
{
    /* max 0 would answer nothing, forever: a caller bug, not a request. */
    if (!agent_id || !*agent_id || !cb || max == 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "read_events needs an agent id, a callback "
                          "and max > 0");
    size_t len = strlen(agent_id);
    struct read_req *rq = ag_xmalloc(sizeof(*rq) + len + 1);
    *rq = (struct read_req){
        .from_seq = from_seq, .to_seq = to_seq, .max = max, .cb = cb, .arg = arg};
    memcpy(rq->agent_id, agent_id, len + 1);
    ag_arena_init(&rq->ar, NULL, 0);
    return read_push(st, rq, err);
}

/* Queue a read request (owned by the reader from here, freed by it; freed here on -1). */
static int read_push(struct hub_store *st, struct read_req *rq, struct ag_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&st->rmu);
    if (st->rclosing) {
        rc = ag_err_set(err, AG_UNAVAILABLE, "store is closing; read not accepted");
    } else if (ag_queue_push(&st->reads, &rq->qn, 1, err) != 0) {
        rc = ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                        "store read queue is full (%zu waiting); "
                        "retry later",
                        ag_queue_len(&st->reads));
    } else {
        pthread_cond_signal(&st->rwake);
    }
    pthread_mutex_unlock(&st->rmu);
    if (rc)
        read_req_free(rq);
    return rc;
}

static const char *ar_dup(struct ag_arena *ar, const char *s)
{
    return s ? ag_arena_strdup(ar, s) : NULL;
}

int hub_store_read_memory(struct hub_store *st, const struct hub_store_memory_query *q,
                          hub_store_memory_fn *cb, void *arg, struct ag_err *err)
{
    if (!q || !cb || !q->agent_id || !*q->agent_id ||
        (q->kind != HUB_STORE_MEMORY_LIST && (!q->namespace || !*q->namespace)) ||
        (q->kind == HUB_STORE_MEMORY_GET && (!q->keys || !q->nkeys)) ||
        (q->kind == HUB_STORE_MEMORY_LIST && q->max == 0))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "read_memory needs a callback, an agent id, a namespace (GET, "
                          "VECTORS), keys (GET) and max > 0 (LIST)");
    size_t len = strlen(q->agent_id);
    struct read_req *rq = ag_xmalloc(sizeof(*rq) + len + 1);
    *rq = (struct read_req){.mcb = cb, .arg = arg, .mq = *q};
    memcpy(rq->agent_id, q->agent_id, len + 1);
    ag_arena_init(&rq->ar, NULL, 0);
    rq->mq.agent_id = rq->agent_id;
    rq->mq.namespace = ar_dup(&rq->ar, q->namespace);
    rq->mq.prefix = ar_dup(&rq->ar, q->prefix);
    rq->mq.after_namespace = ar_dup(&rq->ar, q->after_namespace);
    rq->mq.after_key = ar_dup(&rq->ar, q->after_key);
    if (q->kind == HUB_STORE_MEMORY_GET) {
        const char **keys = ag_arena_alloc(&rq->ar, q->nkeys * sizeof(*keys));
        for (size_t i = 0; i < q->nkeys; i++)
            keys[i] = ar_dup(&rq->ar, q->keys[i] ? q->keys[i] : "");
        rq->mq.keys = keys;
    } else {
        rq->mq.keys = NULL;
        rq->mq.nkeys = 0;
    }
    return read_push(st, rq, err);
}

int hub_store_select_agents(struct hub_store *st, const struct hub_store_agents_query *q,
                            hub_store_agent_fn *cb, void *arg, struct ag_err *err)
{
    if (!q || !cb ||
        ((q->kind == HUB_STORE_AGENTS_ID || q->kind == HUB_STORE_AGENTS_REQUEST) &&
         (!q->key || !*q->key)))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "select_agents needs a query, a key and a "
                          "callback");
    pthread_mutex_lock(&st->rconn_mu);
    int rc = st->be->select_agents(st->rconn, q, cb, arg, err);
    pthread_mutex_unlock(&st->rconn_mu);
    return rc;
}

int hub_store_select_schedules(struct hub_store *st, hub_store_schedule_fn *cb, void *arg,
                               struct ag_err *err)
{
    pthread_mutex_lock(&st->rconn_mu);
    int rc = st->be->select_schedules(st->rconn, cb, arg, err);
    pthread_mutex_unlock(&st->rconn_mu);
    return rc;
}

int hub_store_scan_events(struct hub_store *st, const char *agent_id, uint64_t from_seq,
                          hub_store_event_fn *cb, void *arg, struct ag_err *err)
{
    if (!agent_id || !*agent_id || !cb)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "scan_events needs an agent id and a callback");
    pthread_mutex_lock(&st->rconn_mu);
    int rc = st->be->scan_events(st->rconn, agent_id, from_seq, 0, UINT64_MAX, cb, arg, err);
    pthread_mutex_unlock(&st->rconn_mu);
    return rc;
}

void hub_store__pause(struct hub_store *st, bool paused)
{
    pthread_mutex_lock(&st->mu);
    st->paused = paused;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_lock(&st->rmu);
    st->rpaused = paused;
    pthread_cond_broadcast(&st->rwake);
    pthread_mutex_unlock(&st->rmu);
}

void hub_store_get_stats(struct hub_store *st, struct hub_store_stats *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->stats;
    out->queue_depth = ag_queue_len(&st->writes);
    pthread_mutex_unlock(&st->mu);
}
