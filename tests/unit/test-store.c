/* tests/unit/test-store.c - hub/store.h against real SQLite files and a real PostgreSQL.
 *
 * One suite, two back ends: with no argument every test runs on SQLite; with a libpq conninfo
 * file as argv[1] (written by tests/pg_fixture.sh, ctest entry unit/test-store-pg) the same
 * tests run on PostgreSQL, each in a database of its own created at setup and dropped at
 * teardown. Tests of one back end's own mechanisms (SQLite's flock and files going away,
 * PostgreSQL's advisory lock and migrations table) run only there.
 *
 * Each test gets a fresh mkdtemp directory under /tmp, removed at teardown. Completion is awaited
 * on a condition variable with a deadline, never with sleeps. hub_store__pause (store_internal.h)
 * holds the writer/reader so a test can line up an exact batch or fill a queue. Callbacks run on
 * the store's threads, so they only record; every assert runs on the test's own thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "hub/store.h"
#include "hub/store_internal.h"

#define WAIT_SECONDS 30
#define KIND_SPAWNED 1
#define KIND_INPUT 2

/* --- fixture: a temp dir and at most one open store ------------------------------------------ */

struct tracker {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t done; /* callbacks so far, writes and reads */
};

/* fd 2 into a temp file while a test runs, so it can count the store's log lines. */
struct capture {
    int saved; /* the real fd 2 while capturing, else -1 */
    char path[64];
};

struct fx {
    char dir[64];
    char path[128];
    char url[384];
    char pgdb[64]; /* PostgreSQL run: this test's database */
    struct hub_store *st;
    struct tracker tr;
    struct capture cap;
};

static void tracker_init(struct tracker *tr);
static void tracker_release(struct tracker *tr);
static char *capture_end(struct capture *c);

/* PostgreSQL run: the server's conninfo (from the fixture's file), else NULL. */
static char pg_conninfo[256];
static bool pg_run;

/* Runs sql on database db (NULL: the server's default) as the admin; 0 on success. */
static int pg_exec(const char *db, const char *sql)
{
    char ci[384];
    snprintf(ci, sizeof(ci), "%s%s%s", pg_conninfo, db ? " dbname=" : "", db ? db : "");
    PGconn *c = PQconnectdb(ci);
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : -1;
    if (rc)
        print_error("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* The one integer answer of a query on database db. */
static long pg_query_long(const char *db, const char *sql)
{
    char ci[384];
    snprintf(ci, sizeof(ci), "%s dbname=%s", pg_conninfo, db);
    PGconn *c = PQconnectdb(ci);
    PGresult *r = PQexec(c, sql);
    long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                 ? strtol(PQgetvalue(r, 0, 0), NULL, 10)
                 : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Poll the query on db until it answers want (at most ~3 s: what the server is waited for here
 * is a sleep or a commit already under way), then assert it does. */
static void pg_wait_long(const char *db, const char *sql, long want)
{
    for (int i = 0; i < 300 && pg_query_long(db, sql) != want; i++)
        usleep(10000);
    assert_int_equal(pg_query_long(db, sql), want);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-store-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/hub.db", fx->dir);
    snprintf(fx->url, sizeof(fx->url), "sqlite:%s", fx->path);
    if (pg_run) {
        static int n;
        snprintf(fx->pgdb, sizeof(fx->pgdb), "test_store_%d_%d", (int)getpid(), n++);
        char sql[128];
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", fx->pgdb);
        if (pg_exec(NULL, sql)) {
            rmdir(fx->dir);
            free(fx);
            return -1;
        }
        snprintf(fx->url, sizeof(fx->url), "postgres:%s dbname=%s", pg_conninfo, fx->pgdb);
    }
    tracker_init(&fx->tr);
    fx->cap.saved = -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->cap.saved >= 0) /* a test failed while capturing: give fd 2 back */
        free(capture_end(&fx->cap));
    hub_store_close(fx->st);
    if (fx->pgdb[0]) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", fx->pgdb);
        pg_exec(NULL, sql);
    }
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    int rc = rmdir(fx->dir);
    tracker_release(&fx->tr);
    free(fx);
    return rc;
}

static struct hub_store *open_url(const char *url, const struct hub_store_opts *opts)
{
    struct ag_err err = AG_ERR_INIT;
    struct hub_store *st = hub_store_open(url, opts, &err);
    if (!st)
        print_error("hub_store_open(%s): %s %s\n", url, ag_code_name(err.code), err.msg);
    assert_non_null(st);
    return st;
}

/* --- completion tracking ---------------------------------------------------------------------- */

static void tracker_init(struct tracker *tr)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tr->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&tr->mu, NULL);
    tr->done = 0;
}

static void tracker_release(struct tracker *tr)
{
    pthread_cond_destroy(&tr->cond);
    pthread_mutex_destroy(&tr->mu);
}

static size_t done_count(struct tracker *tr)
{
    pthread_mutex_lock(&tr->mu);
    size_t n = tr->done;
    pthread_mutex_unlock(&tr->mu);
    return n;
}

/* Waits until n callbacks in total have run, or fails the test after WAIT_SECONDS. */
static void wait_done(struct tracker *tr, size_t n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&tr->mu);
    while (tr->done < n)
        if (pthread_cond_timedwait(&tr->cond, &tr->mu, &deadline) == ETIMEDOUT)
            break;
    size_t got = tr->done;
    pthread_mutex_unlock(&tr->mu);
    assert_int_equal(got, n);
}

struct twrite {
    struct hub_store_write w;
    struct hub_store_op ops[3];
    struct tracker *tr;
    int calls;
    int rc;
    bool err_null;
    struct ag_err err;
    uint64_t seq[3];
    size_t order; /* index among all callbacks of tr */
    /* If set, done() also tries to submit and to read, and records the codes it got. */
    struct hub_store *probe_st;
    struct twrite *probe_w;
    enum ag_code probe_submit_code, probe_read_code;
};

static void probe_read_cb(void *arg, const struct hub_store_event *rows, size_t n,
                          const struct ag_err *err)
{
    (void)arg, (void)rows, (void)n, (void)err;
}

static void twrite_done(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct twrite *t = w->arg;
    if (t->probe_st) {
        struct ag_err e = AG_ERR_INIT;
        if (hub_store_submit(t->probe_st, &t->probe_w->w, &e) != 0)
            t->probe_submit_code = e.code;
        ag_err_clear(&e);
        if (hub_store_read_events(t->probe_st, "a1", 1, 0, 1, probe_read_cb, NULL, &e) != 0)
            t->probe_read_code = e.code;
    }
    pthread_mutex_lock(&t->tr->mu);
    t->calls++;
    t->rc = rc;
    t->err_null = err == NULL;
    if (err)
        t->err = *err;
    for (size_t i = 0; i < w->nops && i < 3; i++)
        if (w->ops[i].type == HUB_STORE_EVENT_APPEND)
            t->seq[i] = w->ops[i].u.event.seq;
    t->order = t->tr->done++;
    pthread_cond_broadcast(&t->tr->cond);
    pthread_mutex_unlock(&t->tr->mu);
}

static void tw_init(struct twrite *t, struct tracker *tr)
{
    memset(t, 0, sizeof(*t));
    t->tr = tr;
    t->rc = -2;
    t->w.ops = t->ops;
    t->w.done = twrite_done;
    t->w.arg = t;
}

static void tw_insert(struct twrite *t, const char *id, const char *request_id, int64_t created)
{
    struct hub_store_op *op = &t->ops[t->w.nops++];
    op->type = HUB_STORE_AGENT_INSERT;
    op->u.agent = (struct hub_store_agent){.id = id,
                                           .request_id = request_id,
                                           .spec = (const uint8_t *)"SPEC\0x",
                                           .spec_len = 6,
                                           .state = 1,
                                           .created_ns = created,
                                           .updated_ns = created};
}

static void tw_append(struct twrite *t, const char *id, int kind, const char *payload)
{
    struct hub_store_op *op = &t->ops[t->w.nops++];
    op->type = HUB_STORE_EVENT_APPEND;
    op->u.event = (struct hub_store_event){.agent_id = id,
                                           .kind = kind,
                                           .payload = payload,
                                           .payload_len = strlen(payload),
                                           .node_id = "n1",
                                           .time_ns = 42};
}

static void submit_ok(struct hub_store *st, struct twrite *t)
{
    struct ag_err err = AG_ERR_INIT;
    int rc = hub_store_submit(st, &t->w, &err);
    if (rc)
        print_error("submit: %s %s\n", ag_code_name(err.code), err.msg);
    assert_int_equal(rc, 0);
}

/* Submits one write and waits for its done(). */
static void run_one(struct hub_store *st, struct twrite *t)
{
    size_t before = done_count(t->tr);
    submit_ok(st, t);
    wait_done(t->tr, before + 1);
}

static void expect_ok(const struct twrite *t)
{
    if (t->rc != 0)
        print_error("write failed: %s %s\n", ag_code_name(t->err.code), t->err.msg);
    assert_int_equal(t->calls, 1);
    assert_int_equal(t->rc, 0);
    assert_true(t->err_null);
}

static void expect_fail(const struct twrite *t, enum ag_code code, const char *in_msg)
{
    assert_int_equal(t->calls, 1);
    assert_int_equal(t->rc, -1);
    assert_false(t->err_null);
    assert_string_equal(ag_code_name(t->err.code), ag_code_name(code));
    if (in_msg && !strstr(t->err.msg, in_msg))
        fail_msg("error '%s' does not mention '%s'", t->err.msg, in_msg);
}

/* --- reads ------------------------------------------------------------------------------------ */

#define TREAD_MAX 16

struct tread {
    struct tracker *tr;
    int calls;
    bool rows_null, err_null;
    enum ag_code code;
    size_t n;
    uint64_t seq[TREAD_MAX];
    int kind[TREAD_MAX];
    char payload[TREAD_MAX][32];
    size_t payload_len[TREAD_MAX];
    char node[TREAD_MAX][8];
};

static void tread_cb(void *arg, const struct hub_store_event *rows, size_t n,
                     const struct ag_err *err)
{
    struct tread *r = arg;
    pthread_mutex_lock(&r->tr->mu);
    r->calls++;
    r->rows_null = rows == NULL;
    r->err_null = err == NULL;
    r->code = err ? err->code : AG_OK;
    r->n = n;
    for (size_t i = 0; i < n && i < TREAD_MAX; i++) {
        r->seq[i] = rows[i].seq;
        r->kind[i] = rows[i].kind;
        r->payload_len[i] = rows[i].payload_len;
        snprintf(r->payload[i], sizeof(r->payload[i]), "%.*s", (int)rows[i].payload_len,
                 rows[i].payload);
        snprintf(r->node[i], sizeof(r->node[i]), "%s", rows[i].node_id);
    }
    r->tr->done++;
    pthread_cond_broadcast(&r->tr->cond);
    pthread_mutex_unlock(&r->tr->mu);
}

static void read_ok(struct hub_store *st, const char *id, uint64_t from, uint64_t to, size_t max,
                    struct tread *r)
{
    struct ag_err err = AG_ERR_INIT;
    int rc = hub_store_read_events(st, id, from, to, max, tread_cb, r, &err);
    if (rc)
        print_error("read_events: %s %s\n", ag_code_name(err.code), err.msg);
    assert_int_equal(rc, 0);
}

/* Reads [from, to] with max and waits; expects seqs from..from+n-1. */
static void expect_range(struct hub_store *st, struct tracker *tr, const char *id, uint64_t from,
                         uint64_t to, size_t max, size_t want_n)
{
    struct tread r = {.tr = tr};
    size_t before = done_count(tr);
    read_ok(st, id, from, to, max, &r);
    wait_done(tr, before + 1);
    assert_int_equal(r.calls, 1);
    assert_false(r.rows_null);
    assert_true(r.err_null);
    assert_int_equal(r.n, want_n);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.seq[i], from + i);
}

/* --- select_agents --------------------------------------------------------------------------- */

struct agent_row {
    char id[16], request_id[16], node_id[16], last_output[16], last_error[16], ns[16];
    char spec[8], checkpoint[8];
    size_t spec_len, checkpoint_len;
    int state;
    uint64_t epoch, last_seq;
    int64_t created_ns, updated_ns;
    bool has_usage;
    struct hub_usage usage, turn_usage;
    char parent_id[16];
    uint32_t depth;
};

struct agent_rows {
    size_t n;
    struct agent_row row[8];
};

static int collect_agent(void *arg, const struct hub_store_agent *a, uint64_t last_seq,
                         struct ag_err *err)
{
    struct agent_rows *rows = arg;
    if (rows->n == 8)
        return ag_err_set(err, AG_OUT_OF_RANGE, "too many agents for the test");
    struct agent_row *r = &rows->row[rows->n++];
    snprintf(r->id, sizeof(r->id), "%s", a->id);
    snprintf(r->request_id, sizeof(r->request_id), "%s", a->request_id ? a->request_id : "");
    snprintf(r->ns, sizeof(r->ns), "%s", a->namespace ? a->namespace : "");
    snprintf(r->node_id, sizeof(r->node_id), "%s", a->node_id ? a->node_id : "");
    snprintf(r->last_output, sizeof(r->last_output), "%s", a->last_output ? a->last_output : "");
    snprintf(r->last_error, sizeof(r->last_error), "%s", a->last_error ? a->last_error : "");
    r->spec_len = a->spec_len;
    if (a->spec_len)
        memcpy(r->spec, a->spec, a->spec_len < 8 ? a->spec_len : 8);
    r->checkpoint_len = a->checkpoint_len;
    if (a->checkpoint_len)
        memcpy(r->checkpoint, a->checkpoint, a->checkpoint_len < 8 ? a->checkpoint_len : 8);
    r->state = a->state;
    r->epoch = a->epoch;
    r->last_seq = last_seq;
    r->created_ns = a->created_ns;
    r->updated_ns = a->updated_ns;
    r->has_usage = a->has_usage;
    r->usage = a->usage;
    r->turn_usage = a->turn_usage;
    snprintf(r->parent_id, sizeof(r->parent_id), "%s", a->parent_id ? a->parent_id : "");
    r->depth = a->depth;
    return 0;
}

static void select_rows(struct hub_store *st, const struct hub_store_agents_query *q,
                        struct agent_rows *rows)
{
    struct ag_err err = AG_ERR_INIT;
    memset(rows, 0, sizeof(*rows));
    int rc = hub_store_select_agents(st, q, collect_agent, rows, &err);
    if (rc)
        print_error("select_agents: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

/* Every agent, in creation order: one page as big as the test can hold. */
static void load_all(struct hub_store *st, struct agent_rows *rows)
{
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_PAGE, .max = 8};
    select_rows(st, &q, rows);
}

/* The ids of rows, space-separated. */
static const char *row_ids(const struct agent_rows *rows, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < rows->n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? " " : "", rows->row[i].id);
    return buf;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_seq_per_agent(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t[6];
    for (int i = 0; i < 6; i++)
        tw_init(&t[i], tr);
    tw_insert(&t[0], "a", NULL, 1);
    tw_append(&t[0], "a", KIND_SPAWNED, "{}");
    tw_insert(&t[1], "b", NULL, 2);
    tw_append(&t[1], "b", KIND_SPAWNED, "{}");
    tw_append(&t[2], "a", KIND_INPUT, "{\"text\":\"1\"}");
    tw_append(&t[3], "a", KIND_INPUT, "{\"text\":\"2\"}");
    tw_append(&t[4], "b", KIND_INPUT, "{\"text\":\"3\"}");
    tw_insert(&t[5], "c", NULL, 3);
    tw_append(&t[5], "c", KIND_SPAWNED, "{}");
    tw_append(&t[5], "c", KIND_INPUT, "{}");
    for (int i = 0; i < 6; i++)
        submit_ok(fx->st, &t[i]);
    wait_done(tr, 6);
    for (int i = 0; i < 6; i++) {
        expect_ok(&t[i]);
        assert_int_equal(t[i].order, i); /* done() in submission order */
    }
    assert_int_equal(t[0].seq[1], 1);
    assert_int_equal(t[1].seq[1], 1);
    assert_int_equal(t[2].seq[0], 2);
    assert_int_equal(t[3].seq[0], 3);
    assert_int_equal(t[4].seq[0], 2);
    assert_int_equal(t[5].seq[1], 1);
    assert_int_equal(t[5].seq[2], 2);
    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.writes, 6);
    assert_int_equal(s.events, 7);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.queue_depth, 0);
}

#define GC_THREADS 4
#define GC_PER_THREAD 1500
#define GC_AGENTS 8
static const char *const gc_agents[GC_AGENTS] = {"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"};

struct submitter {
    struct hub_store *st;
    struct tracker *tr;
    struct twrite *tw;
    int k;
    int failures;
};

static void *submitter_main(void *arg)
{
    struct submitter *s = arg;
    for (int i = 0; i < GC_PER_THREAD; i++) {
        tw_init(&s->tw[i], s->tr);
        tw_append(&s->tw[i], gc_agents[(i + s->k) % GC_AGENTS], KIND_INPUT, "{\"text\":\"x\"}");
        if (hub_store_submit(s->st, &s->tw[i].w, NULL) != 0)
            s->failures++;
    }
    return NULL;
}

/* Per agent, the seqs handed out must be exactly 1..count, and grow with done() order. */
static void check_agent_seqs(struct submitter *subs, const char *agent, size_t *count)
{
    size_t n = 0;
    static uint64_t order_of_seq[GC_THREADS * GC_PER_THREAD + 1];
    memset(order_of_seq, 0, sizeof(order_of_seq));
    for (int k = 0; k < GC_THREADS; k++)
        for (int i = 0; i < GC_PER_THREAD; i++) {
            struct twrite *t = &subs[k].tw[i];
            if (strcmp(t->ops[0].u.event.agent_id, agent) != 0)
                continue;
            expect_ok(t);
            assert_in_range(t->seq[0], 1, GC_THREADS * GC_PER_THREAD);
            assert_int_equal(order_of_seq[t->seq[0]], 0); /* no duplicate */
            order_of_seq[t->seq[0]] = t->order + 1;
            n++;
        }
    for (size_t seq = 1; seq <= n; seq++) {
        assert_true(order_of_seq[seq] != 0); /* no gap */
        if (seq > 1)
            assert_true(order_of_seq[seq] > order_of_seq[seq - 1]);
    }
    *count = n;
}

static int count_event(void *arg, const struct hub_store_event *ev, struct ag_err *err)
{
    size_t *n = arg;
    if (ev->seq != *n + 1)
        return ag_err_set(err, AG_DATA_LOSS, "seq %llu after %zu", (unsigned long long)ev->seq, *n);
    (*n)++;
    return 0;
}

static void test_group_commit_concurrent(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite setup_w;
    tw_init(&setup_w, tr);
    struct hub_store_op ops[GC_AGENTS];
    for (int i = 0; i < GC_AGENTS; i++)
        ops[i] = (struct hub_store_op){.type = HUB_STORE_AGENT_INSERT,
                                       .u.agent = {.id = gc_agents[i], .created_ns = i}};
    setup_w.w.ops = ops;
    setup_w.w.nops = GC_AGENTS;
    run_one(fx->st, &setup_w);
    expect_ok(&setup_w);

    struct submitter subs[GC_THREADS];
    pthread_t th[GC_THREADS];
    for (int k = 0; k < GC_THREADS; k++) {
        subs[k] = (struct submitter){fx->st, tr, calloc(GC_PER_THREAD, sizeof(struct twrite)), k,
                                     0};
        assert_non_null(subs[k].tw);
        assert_int_equal(pthread_create(&th[k], NULL, submitter_main, &subs[k]), 0);
    }
    for (int k = 0; k < GC_THREADS; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(subs[k].failures, 0);
    }
    wait_done(tr, 1 + GC_THREADS * GC_PER_THREAD);

    for (int k = 0; k < GC_THREADS; k++) /* each thread's writes completed in its order */
        for (int i = 1; i < GC_PER_THREAD; i++)
            assert_true(subs[k].tw[i].order > subs[k].tw[i - 1].order);
    size_t total = 0;
    for (int a = 0; a < GC_AGENTS; a++) {
        size_t n, stored = 0;
        check_agent_seqs(subs, gc_agents[a], &n);
        assert_int_equal(hub_store_scan_events(fx->st, gc_agents[a], 1, count_event, &stored, NULL),
                         0);
        assert_int_equal(stored, n);
        total += n;
    }
    assert_int_equal(total, GC_THREADS * GC_PER_THREAD);

    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.writes, 1 + GC_THREADS * GC_PER_THREAD);
    assert_int_equal(s.events, GC_THREADS * GC_PER_THREAD);
    assert_int_equal(s.failed, 0);
    assert_true(s.commits < s.writes); /* group commit happened */
    assert_true(s.max_batch > 1);
    print_message("group commit: %llu writes in %llu commits, largest batch %llu\n",
                  (unsigned long long)s.writes, (unsigned long long)s.commits,
                  (unsigned long long)s.max_batch);
    for (int k = 0; k < GC_THREADS; k++)
        free(subs[k].tw);
}

static void test_batch_is_one_commit(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t[5];
    static const char *const ids[5] = {"b0", "b1", "b2", "b3", "b4"};
    hub_store__pause(fx->st, true);
    for (int i = 0; i < 5; i++) {
        tw_init(&t[i], tr);
        tw_insert(&t[i], ids[i], NULL, i);
        submit_ok(fx->st, &t[i]);
    }
    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.queue_depth, 5);
    assert_int_equal(s.commits, 0);
    hub_store__pause(fx->st, false);
    wait_done(tr, 5);
    for (int i = 0; i < 5; i++)
        expect_ok(&t[i]);
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.commits, 1);
    assert_int_equal(s.writes, 5);
    assert_int_equal(s.max_batch, 5);
}

static void test_batch_failure_isolated(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t[5];
    for (int i = 0; i < 5; i++)
        tw_init(&t[i], tr);
    tw_insert(&t[0], "a1", "r-1", 1);
    tw_append(&t[0], "a1", KIND_SPAWNED, "{}");
    tw_append(&t[1], "a1", KIND_INPUT, "{}");
    /* Takes a request_id that t[0] takes earlier in the same batch, and appends to a1 too: its
     * tentative seq (3) must go to t[3] instead, with no gap. */
    tw_insert(&t[2], "a2", "r-1", 2);
    tw_append(&t[2], "a2", KIND_SPAWNED, "{}");
    tw_append(&t[2], "a1", KIND_INPUT, "{}");
    tw_append(&t[3], "a1", KIND_INPUT, "{}");
    tw_insert(&t[4], "a3", "r-3", 3);
    hub_store__pause(fx->st, true); /* all five in one batch */
    for (int i = 0; i < 5; i++)
        submit_ok(fx->st, &t[i]);
    hub_store__pause(fx->st, false);
    wait_done(tr, 5);
    expect_ok(&t[0]);
    expect_ok(&t[1]);
    expect_fail(&t[2], AG_ALREADY_EXISTS, "request_id");
    expect_ok(&t[3]);
    expect_ok(&t[4]);
    for (int i = 0; i < 5; i++)
        assert_int_equal(t[i].order, i);
    assert_int_equal(t[0].seq[1], 1);
    assert_int_equal(t[1].seq[0], 2);
    assert_int_equal(t[3].seq[0], 3);
    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.commits, 4); /* the batch failed, then each good write alone */
    assert_int_equal(s.writes, 4);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.events, 3);

    /* a2 was never stored; its first append now gets seq 1. */
    struct twrite again;
    tw_init(&again, tr);
    tw_insert(&again, "a2", "r-2", 4);
    tw_append(&again, "a2", KIND_SPAWNED, "{}");
    tw_append(&again, "a1", KIND_INPUT, "{}");
    run_one(fx->st, &again);
    expect_ok(&again);
    assert_int_equal(again.seq[1], 1);
    assert_int_equal(again.seq[2], 4);
    struct agent_rows rows;
    load_all(fx->st, &rows);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.row[2].id, "a2");
    assert_string_equal(rows.row[2].request_id, "r-2");
}

static void test_agent_update(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite ins, upd, missing;
    tw_init(&ins, tr);
    tw_insert(&ins, "u1", "req-u1", 100);
    ins.ops[0].u.agent.usage.cost_nano_usd = 42;
    run_one(fx->st, &ins);
    expect_ok(&ins);
    struct agent_rows rows;
    load_all(fx->st, &rows);
    assert_int_equal(rows.row[0].usage.cost_nano_usd, 42);
    assert_int_equal(rows.row[0].turn_usage.cost_nano_usd, 0);

    tw_init(&upd, tr);
    upd.w.nops = 1;
    upd.ops[0].type = HUB_STORE_AGENT_UPDATE;
    upd.ops[0].u.agent = (struct hub_store_agent){.id = "u1",
                                                  .state = 3,
                                                  .node_id = "n9",
                                                  .epoch = 7,
                                                  .checkpoint = (const uint8_t *)"CKPT",
                                                  .checkpoint_len = 4,
                                                  .last_output = "done",
                                                  .last_error = "",
                                                  .updated_ns = 999,
                                                  /* Not mutable: must be ignored by an update. */
                                                  .request_id = "other",
                                                  .spec = (const uint8_t *)"XX",
                                                  .spec_len = 2,
                                                  .created_ns = 5,
                                                  .usage = {1, 2, 3, 4, 12345678901},
                                                  .turn_usage = {5, 6, 7, 8, 9}};
    run_one(fx->st, &upd);
    expect_ok(&upd);

    load_all(fx->st, &rows);
    assert_int_equal(rows.n, 1);
    struct agent_row *r = &rows.row[0];
    assert_string_equal(r->id, "u1");
    assert_string_equal(r->request_id, "req-u1");
    assert_int_equal(r->spec_len, 6);
    assert_memory_equal(r->spec, "SPEC\0x", 6);
    assert_int_equal(r->state, 3);
    assert_string_equal(r->node_id, "n9");
    assert_int_equal(r->epoch, 7);
    assert_int_equal(r->checkpoint_len, 4);
    assert_memory_equal(r->checkpoint, "CKPT", 4);
    assert_string_equal(r->last_output, "done");
    assert_string_equal(r->last_error, "");
    assert_int_equal(r->created_ns, 100);
    assert_int_equal(r->updated_ns, 999);
    assert_true(r->has_usage);
    const struct hub_usage want = {1, 2, 3, 4, 12345678901}, want_turn = {5, 6, 7, 8, 9};
    assert_memory_equal(&r->usage, &want, sizeof(want));
    assert_memory_equal(&r->turn_usage, &want_turn, sizeof(want_turn));

    tw_init(&missing, tr);
    missing.w.nops = 1;
    missing.ops[0].type = HUB_STORE_AGENT_UPDATE;
    missing.ops[0].u.agent = (struct hub_store_agent){.id = "nope", .state = 2};
    run_one(fx->st, &missing);
    expect_fail(&missing, AG_NOT_FOUND, "nope");
}

/* --- schedules --------------------------------------------------------------------------------- */

#define SCHED_ROWS 4

struct sched_row {
    char id[16], ns[16], request_id[16], cron[32], input[16], missed[16], last_agent[16];
    uint8_t spec[8];
    size_t spec_len;
    bool paused;
    int64_t created_ns, next_ns, last_ns;
    uint64_t fires;
};

struct sched_rows {
    size_t n;
    struct sched_row row[SCHED_ROWS];
};

static int collect_schedule(void *arg, const struct hub_store_schedule *r, struct ag_err *err)
{
    struct sched_rows *rows = arg;
    assert_true(rows->n < SCHED_ROWS);
    struct sched_row *o = &rows->row[rows->n++];
    snprintf(o->id, sizeof(o->id), "%s", r->id);
    snprintf(o->ns, sizeof(o->ns), "%s", r->namespace);
    snprintf(o->request_id, sizeof(o->request_id), "%s", r->request_id);
    snprintf(o->cron, sizeof(o->cron), "%s", r->cron);
    snprintf(o->input, sizeof(o->input), "%s", r->input);
    snprintf(o->missed, sizeof(o->missed), "%s", r->missed);
    snprintf(o->last_agent, sizeof(o->last_agent), "%s", r->last_agent_id);
    assert_true(r->spec_len <= sizeof(o->spec));
    memcpy(o->spec, r->spec, r->spec_len);
    o->spec_len = r->spec_len;
    o->paused = r->paused;
    o->created_ns = r->created_ns;
    o->next_ns = r->next_fire_ns;
    o->last_ns = r->last_fire_ns;
    o->fires = r->fires;
    return 0;
}

static void tw_schedule(struct twrite *t, enum hub_store_op_type type,
                        struct hub_store_schedule row)
{
    struct hub_store_op *op = &t->ops[t->w.nops++];
    op->type = type;
    op->u.schedule = row;
}

static void schedules_load(struct hub_store *st, struct sched_rows *rows)
{
    struct ag_err err = AG_ERR_INIT;
    rows->n = 0;
    assert_int_equal(hub_store_select_schedules(st, collect_schedule, rows, &err), 0);
}

/* Insert (unique id and request id per namespace), advance (next slot kept at 0 while paused),
 * pause, delete, each NOT_FOUND on a missing row; rows come back in creation order. */
static void test_schedules(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite w;
    struct hub_store_schedule s1 = {.id = "s1",
                                    .namespace = "default",
                                    .request_id = "r1",
                                    .cron = "*/2 * * * * *",
                                    .spec = (const uint8_t *)"SP\0c",
                                    .spec_len = 4,
                                    .input = "go",
                                    .missed = "skip",
                                    .created_ns = 20,
                                    .next_fire_ns = 2000000000};
    struct hub_store_schedule s0 = s1;
    s0.id = "s0";
    s0.request_id = "";
    s0.namespace = "team-a";
    s0.created_ns = 10;
    tw_init(&w, tr);
    tw_schedule(&w, HUB_STORE_SCHEDULE_INSERT, s1);
    tw_schedule(&w, HUB_STORE_SCHEDULE_INSERT, s0);
    run_one(fx->st, &w);
    expect_ok(&w);
    struct hub_store_schedule dup = s1;
    dup.id = "s2"; /* same request id, same namespace */
    tw_init(&w, tr);
    tw_schedule(&w, HUB_STORE_SCHEDULE_INSERT, dup);
    run_one(fx->st, &w);
    expect_fail(&w, AG_ALREADY_EXISTS, "s2");
    dup.namespace = "team-a"; /* another namespace: fine */
    tw_init(&w, tr);
    tw_schedule(&w, HUB_STORE_SCHEDULE_INSERT, dup);
    run_one(fx->st, &w);
    expect_ok(&w);

    struct sched_rows rows;
    schedules_load(fx->st, &rows);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.row[0].id, "s0");
    assert_string_equal(rows.row[0].ns, "team-a");
    assert_string_equal(rows.row[0].request_id, "");
    assert_string_equal(rows.row[1].id, "s1");
    assert_string_equal(rows.row[1].cron, "*/2 * * * * *");
    assert_int_equal(rows.row[1].spec_len, 4);
    assert_memory_equal(rows.row[1].spec, "SP\0c", 4);
    assert_string_equal(rows.row[1].input, "go");
    assert_string_equal(rows.row[1].missed, "skip");
    assert_int_equal(rows.row[1].next_ns, 2000000000);

    tw_init(&w, tr);
    tw_schedule(&w, HUB_STORE_SCHEDULE_ADVANCE,
                (struct hub_store_schedule){.id = "s1",
                                            .last_fire_ns = 2000000000,
                                            .last_agent_id = "a1",
                                            .fires = 1,
                                            .next_fire_ns = 4000000000});
    tw_schedule(&w, HUB_STORE_SCHEDULE_PAUSE,
                (struct hub_store_schedule){.id = "s0", .paused = true});
    run_one(fx->st, &w);
    expect_ok(&w);
    tw_init(&w, tr); /* a paused row keeps next 0 */
    tw_schedule(
        &w, HUB_STORE_SCHEDULE_ADVANCE,
        (struct hub_store_schedule){
            .id = "s0", .last_fire_ns = 7, .last_agent_id = "a2", .fires = 3, .next_fire_ns = 99});
    run_one(fx->st, &w);
    expect_ok(&w);
    schedules_load(fx->st, &rows);
    assert_true(rows.row[0].paused);
    assert_int_equal(rows.row[0].next_ns, 0);
    assert_int_equal(rows.row[0].fires, 3);
    assert_string_equal(rows.row[0].last_agent, "a2");
    assert_false(rows.row[1].paused);
    assert_int_equal(rows.row[1].next_ns, 4000000000);
    assert_int_equal(rows.row[1].last_ns, 2000000000);
    assert_string_equal(rows.row[1].last_agent, "a1");
    assert_int_equal(rows.row[1].fires, 1);

    tw_init(&w, tr);
    tw_schedule(&w, HUB_STORE_SCHEDULE_DELETE, (struct hub_store_schedule){.id = "s1"});
    run_one(fx->st, &w);
    expect_ok(&w);
    const enum hub_store_op_type missing[] = {HUB_STORE_SCHEDULE_DELETE, HUB_STORE_SCHEDULE_PAUSE,
                                              HUB_STORE_SCHEDULE_ADVANCE};
    for (size_t i = 0; i < 3; i++) {
        tw_init(&w, tr);
        tw_schedule(&w, missing[i], (struct hub_store_schedule){.id = "s1"});
        run_one(fx->st, &w);
        expect_fail(&w, AG_NOT_FOUND, "s1");
    }
    schedules_load(fx->st, &rows);
    assert_int_equal(rows.n, 2);
}

static void test_reopen_continues(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t[3];
    /* Creation order c, a, b: by created_ns, then id; neither by id nor by insertion alone. */
    tw_init(&t[0], tr);
    tw_insert(&t[0], "b", NULL, 200);
    tw_init(&t[1], tr);
    tw_insert(&t[1], "a", "", 200); /* "" and NULL request ids do not collide */
    tw_append(&t[1], "a", KIND_SPAWNED, "{}");
    tw_append(&t[1], "a", KIND_INPUT, "{}");
    tw_init(&t[2], tr);
    tw_insert(&t[2], "c", "req-c", 100);
    tw_append(&t[2], "c", KIND_SPAWNED, "{}");
    for (int i = 0; i < 3; i++)
        submit_ok(fx->st, &t[i]);
    wait_done(tr, 3);
    for (int i = 0; i < 3; i++)
        expect_ok(&t[i]);
    hub_store_close(fx->st);

    fx->st = open_url(fx->url, NULL);
    struct agent_rows rows;
    load_all(fx->st, &rows);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.row[0].id, "c");
    assert_int_equal(rows.row[0].last_seq, 1);
    assert_string_equal(rows.row[0].request_id, "req-c");
    assert_string_equal(rows.row[1].id, "a");
    assert_int_equal(rows.row[1].last_seq, 2);
    assert_string_equal(rows.row[1].request_id, "");
    assert_string_equal(rows.row[2].id, "b");
    assert_int_equal(rows.row[2].last_seq, 0);
    assert_int_equal(rows.row[2].checkpoint_len, 0);

    struct twrite more;
    tw_init(&more, tr);
    tw_append(&more, "a", KIND_INPUT, "{}");
    tw_append(&more, "b", KIND_INPUT, "{}");
    tw_append(&more, "c", KIND_INPUT, "{}");
    run_one(fx->st, &more);
    expect_ok(&more);
    assert_int_equal(more.seq[0], 3);
    assert_int_equal(more.seq[1], 1);
    assert_int_equal(more.seq[2], 2);
}

/* Ten events for "r": payloads p1..p10, except seq 10 whose payload is not NUL-terminated. */
static void append_ten(struct hub_store *st, struct tracker *tr)
{
    static char payloads[9][8];
    static const char unterminated[6] = {'a', 'b', 'c', 'd', 'e', 'f'};
    struct twrite t[10];
    for (int i = 0; i < 10; i++) {
        tw_init(&t[i], tr);
        if (i == 0)
            tw_insert(&t[i], "r", NULL, 1);
        if (i < 9) {
            snprintf(payloads[i], sizeof(payloads[i]), "p%d", i + 1);
            tw_append(&t[i], "r", KIND_INPUT + i, payloads[i]);
        } else {
            tw_append(&t[i], "r", KIND_INPUT, "");
            t[i].ops[0].u.event.payload = unterminated;
            t[i].ops[0].u.event.payload_len = 3;
        }
        submit_ok(st, &t[i]);
    }
    wait_done(tr, 10);
    for (int i = 0; i < 10; i++)
        expect_ok(&t[i]);
}

/* The keyed reads a hub makes instead of holding every agent: the active ones (pending, running,
 * or input waiting) at start-up, one by id or request id, and ListAgents pages, with or without a
 * state, each page after the last row of the one before. */
static void test_select_agents(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct twrite t[2];
    const char *ids[] = {"a", "b", "c", "d", "e"};
    const int states[] = {1, 3, 3, 5, 2}; /* pending, idle, idle, failed, running */
    for (int i = 0; i < 5; i++) {
        struct twrite *w = &t[i / 3];
        if (i % 3 == 0)
            tw_init(w, &fx->tr);
        tw_insert(w, ids[i], i == 3 ? "rid-d" : NULL, 10 + i);
        w->ops[w->w.nops - 1].u.agent.state = states[i];
        w->ops[w->w.nops - 1].u.agent.waiting_input = i == 2;
    }
    tw_append(&t[1], "c", KIND_SPAWNED, "{}");
    for (int i = 0; i < 2; i++) {
        run_one(fx->st, &t[i]);
        expect_ok(&t[i]);
    }

    struct agent_rows rows;
    char buf[64];
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ACTIVE};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "a c e");
    assert_int_equal(rows.row[1].last_seq, 1);

    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_ID, .key = "b"};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "b");
    assert_int_equal(rows.row[0].state, 3);
    q.key = "zz";
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);
    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_REQUEST, .key = "rid-d"};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "d");

    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_PAGE, .max = 2};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "a b");
    q.after_ns = rows.row[1].created_ns;
    q.after_id = "b";
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "c d");
    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_PAGE, .state = 3, .max = 1};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "b");
    q.after_ns = 11;
    q.after_id = "b";
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "c");
    q.after_ns = 12;
    q.after_id = "c";
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);

    struct ag_err err = AG_ERR_INIT;
    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_ID};
    assert_int_equal(hub_store_select_agents(fx->st, &q, collect_agent, &rows, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
}

/* Retention's read (ENDED): root agents failed or killed before the cutoff, in end order, a
 * page after the other; a sub-agent, a live agent and one that ended too late are not read. */
static void test_select_ended(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    const char *ids[] = {"k", "f", "i", "child", "late", "f2"};
    const int states[] = {6, 5, 3, 6, 6, 5};          /* killed, failed, idle, ... */
    const int64_t ended[] = {30, 20, 10, 5, 100, 30}; /* updated_ns */
    struct twrite t[6];
    for (int i = 0; i < 6; i++) {
        tw_init(&t[i], &fx->tr);
        tw_insert(&t[i], ids[i], NULL, 1 + i);
        t[i].ops[0].u.agent.state = states[i];
        t[i].ops[0].u.agent.updated_ns = ended[i];
        t[i].ops[0].u.agent.parent_id = i == 3 ? "k" : NULL;
        run_one(fx->st, &t[i]);
        expect_ok(&t[i]);
    }
    struct agent_rows rows;
    char buf[64];
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ENDED, .before_ns = 50, .max = 2};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "f f2");
    q.after_ns = 30;
    q.after_id = "f2";
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "k");
    q.after_id = "k";
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);
    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_ENDED, .before_ns = 20, .max = 8};
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);
}

/* Namespaces: the column (default 'default'), the PAGE filter with and without a state, and
 * request ids unique per namespace only. */
static void test_namespaces(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    const char *ids[] = {"a", "b", "c", "d"};
    const char *nss[] = {NULL, "team-a", "team-a", "team-b"};
    const int states[] = {1, 3, 1, 3};
    struct twrite t[4];
    for (int i = 0; i < 4; i++) {
        tw_init(&t[i], &fx->tr);
        tw_insert(&t[i], ids[i], i == 2 ? NULL : "same", 10 + i); /* one id, 3 namespaces */
        t[i].ops[0].u.agent.namespace = nss[i];
        t[i].ops[0].u.agent.state = states[i];
        run_one(fx->st, &t[i]);
        expect_ok(&t[i]);
    }
    struct twrite dup;
    tw_init(&dup, &fx->tr);
    tw_insert(&dup, "e", "same", 20);
    dup.ops[0].u.agent.namespace = "team-a";
    run_one(fx->st, &dup);
    expect_fail(&dup, AG_ALREADY_EXISTS, "request_id");

    struct agent_rows rows;
    char buf[64];
    load_all(fx->st, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "a b c d");
    assert_string_equal(rows.row[0].ns, "default");
    assert_string_equal(rows.row[1].ns, "team-a");
    struct hub_store_agents_query q = {
        .kind = HUB_STORE_AGENTS_PAGE, .namespace = "team-a", .max = 8};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "b c");
    q.max = 1;
    q.after_ns = 11;
    q.after_id = "b";
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "c");
    q = (struct hub_store_agents_query){
        .kind = HUB_STORE_AGENTS_PAGE, .namespace = "team-a", .state = 3, .max = 8};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "b");
    q.namespace = "default";
    q.state = 1;
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "a");
    q.namespace = "nobody";
    q.state = 0;
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);

    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_REQUEST, .key = "same"};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "a");
    q.namespace = "team-b";
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "d");
    q.namespace = "team-c";
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);
}

/* Sub-agents: parent_id and depth stored at insert and read back, and the PAGE filter by
 * parent (the other filters do not apply to it), a page after the other. */
static void test_parents(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    const char *ids[] = {"root", "c1", "c2", "g1", "c3"};
    const char *parents[] = {NULL, "root", "root", "c1", "root"};
    struct twrite t[5];
    for (int i = 0; i < 5; i++) {
        tw_init(&t[i], &fx->tr);
        tw_insert(&t[i], ids[i], NULL, 10 + i);
        t[i].ops[0].u.agent.parent_id = parents[i];
        t[i].ops[0].u.agent.depth = i == 0 ? 0 : i == 3 ? 2 : 1;
        run_one(fx->st, &t[i]);
        expect_ok(&t[i]);
    }
    struct agent_rows rows;
    char buf[64];
    struct hub_store_agents_query q = {
        .kind = HUB_STORE_AGENTS_PAGE, .parent_id = "root", .max = 2};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "c1 c2");
    assert_string_equal(rows.row[0].parent_id, "root");
    assert_int_equal(rows.row[0].depth, 1);
    q.after_ns = 12;
    q.after_id = "c2";
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "c3");
    q = (struct hub_store_agents_query){
        .kind = HUB_STORE_AGENTS_PAGE, .parent_id = "c1", .state = 3, .max = 8};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "g1");
    assert_int_equal(rows.row[0].depth, 2);
    q.parent_id = "g1";
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);
    q = (struct hub_store_agents_query){.kind = HUB_STORE_AGENTS_ID, .key = "root"};
    select_rows(fx->st, &q, &rows);
    assert_string_equal(rows.row[0].parent_id, "");
    assert_int_equal(rows.row[0].depth, 0);
}

static void test_read_events(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    append_ten(fx->st, tr);
    expect_range(fx->st, tr, "r", 3, 7, 100, 5); /* bounded by to_seq */
    expect_range(fx->st, tr, "r", 1, 0, 4, 4);   /* bounded by max: n == max */
    expect_range(fx->st, tr, "r", 8, 0, 100, 3); /* exhausted: n < max */
    expect_range(fx->st, tr, "r", 11, 0, 100, 0);
    expect_range(fx->st, tr, "ghost", 1, 0, 10, 0); /* rows non-NULL, err NULL */

    struct tread r = {.tr = tr};
    size_t before = done_count(tr);
    read_ok(fx->st, "r", 9, 10, 10, &r);
    wait_done(tr, before + 1);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.payload[0], "p9");
    assert_int_equal(r.payload_len[0], 2);
    assert_int_equal(r.kind[0], KIND_INPUT + 8);
    assert_string_equal(r.node[0], "n1");
    assert_int_equal(r.seq[1], 10);
    assert_string_equal(r.payload[1], "abc");
    assert_int_equal(r.payload_len[1], 3);

    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_read_events(fx->st, "r", 1, 0, 0, tread_cb, &r, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
}

struct scan_state {
    uint64_t seq[16];
    size_t n;
    uint64_t stop_at;
};

static int scan_collect(void *arg, const struct hub_store_event *ev, struct ag_err *err)
{
    struct scan_state *s = arg;
    if (s->n < 16)
        s->seq[s->n] = ev->seq;
    s->n++;
    if (ev->seq == s->stop_at)
        return ag_err_set(err, AG_CANCELLED, "stopped at %llu", (unsigned long long)ev->seq);
    return 0;
}

static void test_scan_events(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    append_ten(fx->st, tr);

    struct scan_state s = {0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_scan_events(fx->st, "r", 5, scan_collect, &s, &err), 0);
    assert_int_equal(s.n, 6);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.seq[i], 5 + i);

    s = (struct scan_state){.stop_at = 3};
    assert_int_equal(hub_store_scan_events(fx->st, "r", 1, scan_collect, &s, &err), -1);
    assert_int_equal(err.code, AG_CANCELLED);
    assert_int_equal(s.n, 3);

    s = (struct scan_state){0};
    assert_int_equal(hub_store_scan_events(fx->st, "ghost", 1, scan_collect, &s, &err), 0);
    assert_int_equal(s.n, 0);
}

/* --- memory (HUB_STORE_MEMORY_*, hub_store_read_memory) ----------------------------------- */

#define TMEM_MAX 8

struct tmem {
    struct tracker *tr;
    int calls;
    bool rows_null;
    enum ag_code code;
    size_t n;
    char ns[TMEM_MAX][16];
    char key[TMEM_MAX][16];
    char value[TMEM_MAX][32];
    bool has_value[TMEM_MAX];
    uint32_t dims[TMEM_MAX];
    float v0[TMEM_MAX], vlast[TMEM_MAX]; /* the vector's first and last float, when read */
    bool has_vector[TMEM_MAX];
    int64_t updated[TMEM_MAX];
};

static void tmem_cb(void *arg, const struct hub_store_memory *rows, size_t n,
                    const struct ag_err *err)
{
    struct tmem *r = arg;
    pthread_mutex_lock(&r->tr->mu);
    r->calls++;
    r->rows_null = rows == NULL;
    r->code = err ? err->code : AG_OK;
    r->n = n;
    for (size_t i = 0; i < n && i < TMEM_MAX; i++) {
        snprintf(r->ns[i], sizeof(r->ns[i]), "%s", rows[i].namespace);
        snprintf(r->key[i], sizeof(r->key[i]), "%s", rows[i].key);
        r->has_value[i] = rows[i].value != NULL;
        snprintf(r->value[i], sizeof(r->value[i]), "%s", rows[i].value ? rows[i].value : "");
        r->dims[i] = rows[i].dims;
        r->has_vector[i] = rows[i].vector != NULL;
        if (rows[i].vector) {
            r->v0[i] = rows[i].vector[0];
            r->vlast[i] = rows[i].vector[rows[i].dims - 1];
        }
        r->updated[i] = rows[i].updated_ns;
    }
    r->tr->done++;
    pthread_cond_broadcast(&r->tr->cond);
    pthread_mutex_unlock(&r->tr->mu);
}

static void read_mem(struct hub_store *st, struct tracker *tr,
                     const struct hub_store_memory_query *q, struct tmem *r)
{
    *r = (struct tmem){.tr = tr};
    struct ag_err err = AG_ERR_INIT;
    size_t before = done_count(tr);
    int rc = hub_store_read_memory(st, q, tmem_cb, r, &err);
    if (rc)
        print_error("read_memory: %s %s\n", ag_code_name(err.code), err.msg);
    assert_int_equal(rc, 0);
    wait_done(tr, before + 1);
    assert_int_equal(r->calls, 1);
}

static void tw_mem(struct twrite *t, enum hub_store_op_type type, const char *agent, const char *ns,
                   const char *key, const char *value, const float *vec, uint32_t dims,
                   uint64_t max_entries)
{
    struct hub_store_op *op = &t->ops[t->w.nops++];
    op->type = type;
    op->u.memory = (struct hub_store_memory){.agent_id = agent,
                                             .namespace = ns,
                                             .key = key,
                                             .value = value,
                                             .value_len = value ? strlen(value) : 0,
                                             .vector = vec,
                                             .dims = dims,
                                             .updated_ns = 77,
                                             .max_entries = max_entries};
}

static void mem_write(struct hub_store *st, struct tracker *tr, enum hub_store_op_type type,
                      const char *ns, const char *key, const char *value, const float *vec,
                      uint32_t dims, uint64_t max_entries, enum ag_code want)
{
    struct twrite t;
    tw_init(&t, tr);
    tw_mem(&t, type, "m1", ns, key, value, vec, dims, max_entries);
    run_one(st, &t);
    if (want == AG_OK)
        expect_ok(&t);
    else
        expect_fail(&t, want, "m1");
}

/* Puts replace, deletes count, the limit counts keys (not puts), and reads see it all: GET of
 * several keys, LIST by namespace, prefix and page, VECTORS with their floats, after a reopen. */
static void test_memory(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    float v[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "default", "a/1", "one", v, 4, 3, AG_OK);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "default", "a/2", "two", NULL, 0, 3, AG_OK);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "notes", "b", "bee", v, 2, 3, AG_OK);
    /* A fourth key is refused, a replacement is not; a delete makes room. */
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "default", "c", "x", NULL, 0, 3,
              AG_RESOURCE_EXHAUSTED);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "default", "a/2", "TWO", NULL, 0, 3, AG_OK);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_DELETE, "default", "zz", NULL, NULL, 0, 0, AG_OK);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "default", "c", "x", NULL, 0, 3,
              AG_RESOURCE_EXHAUSTED);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_DELETE, "notes", "b", NULL, NULL, 0, 0, AG_OK);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "default", "c", "cee", NULL, 0, 3, AG_OK);
    mem_write(fx->st, tr, HUB_STORE_MEMORY_PUT, "notes", "b", "bee", v, 2, 0, AG_OK);
    hub_store_close(fx->st);
    fx->st = open_url(fx->url, NULL);

    struct tmem r;
    const char *keys[] = {"c", "nope", "a/1"};
    struct hub_store_memory_query q = {.kind = HUB_STORE_MEMORY_GET,
                                       .agent_id = "m1",
                                       .namespace = "default",
                                       .keys = keys,
                                       .nkeys = 3};
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.key[0], "c");
    assert_string_equal(r.value[0], "cee");
    assert_string_equal(r.key[1], "a/1");
    assert_string_equal(r.value[1], "one");
    assert_int_equal(r.dims[1], 4);
    assert_false(r.has_vector[1]); /* GET reads no vector */
    assert_int_equal(r.updated[1], 77);

    q = (struct hub_store_memory_query){.kind = HUB_STORE_MEMORY_LIST, .agent_id = "m1", .max = 10};
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.key[0], "a/1");
    assert_string_equal(r.key[1], "a/2");
    assert_string_equal(r.value[1], "TWO");
    assert_string_equal(r.key[2], "c");
    assert_string_equal(r.ns[3], "notes");
    q.max = 2;
    q.after_namespace = "default";
    q.after_key = "a/1";
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.key[0], "a/2");
    assert_string_equal(r.key[1], "c");
    q.prefix = "a/";
    q.namespace = "default";
    q.after_key = "";
    q.after_namespace = NULL;
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.key[1], "a/2");
    q.after_namespace = "notes"; /* a page token of a later namespace: nothing left here */
    q.after_key = "b";
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 0);
    assert_false(r.rows_null);

    q = (struct hub_store_memory_query){
        .kind = HUB_STORE_MEMORY_VECTORS, .agent_id = "m1", .namespace = "default"};
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.key[0], "a/1");
    assert_false(r.has_value[0]);
    assert_true(r.has_vector[0]);
    assert_true(r.v0[0] == 0.5f);
    assert_true(r.vlast[0] == 0.25f);
    q.max = 1; /* a page after the last vector's key: empty */
    q.after_key = "a/1";
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 0);
    q.agent_id = "ghost";
    read_mem(fx->st, tr, &q, &r);
    assert_int_equal(r.n, 0);

    struct ag_err err = AG_ERR_INIT;
    q = (struct hub_store_memory_query){.kind = HUB_STORE_MEMORY_GET, .agent_id = "m1"};
    assert_int_equal(hub_store_read_memory(fx->st, &q, tmem_cb, &r, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    struct twrite t;
    tw_init(&t, tr);
    tw_mem(&t, HUB_STORE_MEMORY_PUT, "m1", "default", "", "v", NULL, 0, 0);
    assert_int_equal(hub_store_submit(fx->st, &t.w, &err), -1);
}

static void tw_delete(struct twrite *t, const char *id)
{
    struct hub_store_op *op = &t->ops[t->w.nops++];
    op->type = HUB_STORE_AGENT_DELETE;
    op->u.agent = (struct hub_store_agent){.id = id};
}

static size_t count_events(struct hub_store *st, const char *id)
{
    size_t n = 0;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_scan_events(st, id, 1, count_event, &n, &err), 0);
    return n;
}

static void run_ok(struct hub_store *st, struct twrite *t)
{
    run_one(st, t);
    expect_ok(t);
}

/* DeleteAgent's op: the row, every event and all the memory (and its count) of one agent go,
 * the others' stay; its seqs start again at 1, also inside the write that deletes; a write that
 * fails deletes nothing and leaves the seqs as they were; an unknown agent is no error. */
static void test_agent_delete(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t;
    const char *ids[] = {"d1", "d2"};
    for (int i = 0; i < 2; i++) {
        tw_init(&t, tr);
        tw_insert(&t, ids[i], ids[i], 10 + i);
        tw_append(&t, ids[i], 1, "{}");
        tw_append(&t, ids[i], 2, "{}");
        run_ok(fx->st, &t);
    }
    tw_init(&t, tr);
    tw_mem(&t, HUB_STORE_MEMORY_PUT, "d1", "default", "k1", "v", NULL, 0, 2);
    tw_mem(&t, HUB_STORE_MEMORY_PUT, "d1", "notes", "k2", "v", NULL, 0, 2);
    tw_mem(&t, HUB_STORE_MEMORY_PUT, "d2", "default", "k1", "v", NULL, 0, 2);
    run_ok(fx->st, &t);

    /* Fails whole (the update names no agent): d2 and its seqs are as they were. */
    tw_init(&t, tr);
    tw_delete(&t, "d2");
    t.ops[t.w.nops].type = HUB_STORE_AGENT_UPDATE;
    t.ops[t.w.nops++].u.agent = (struct hub_store_agent){.id = "nope", .node_id = ""};
    run_one(fx->st, &t);
    expect_fail(&t, AG_NOT_FOUND, "nope");
    assert_int_equal(count_events(fx->st, "d2"), 2);

    tw_init(&t, tr);
    tw_append(&t, "d1", 3, "{}");
    tw_delete(&t, "d1");
    tw_append(&t, "d1", 4, "{}");
    run_ok(fx->st, &t);
    assert_int_equal(t.seq[0], 3);
    assert_int_equal(t.seq[2], 1);

    tw_init(&t, tr);
    tw_delete(&t, "d1");
    tw_delete(&t, "never");
    tw_append(&t, "d2", 3, "{}");
    run_ok(fx->st, &t);
    assert_int_equal(t.seq[2], 3);
    hub_store_close(fx->st);
    fx->st = open_url(fx->url, NULL);

    struct agent_rows rows;
    char buf[64];
    load_all(fx->st, &rows);
    assert_string_equal(row_ids(&rows, buf, sizeof(buf)), "d2");
    assert_int_equal(rows.row[0].last_seq, 3);
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_REQUEST, .key = "d1"};
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 0);
    assert_int_equal(count_events(fx->st, "d1"), 0);
    struct tmem r;
    struct hub_store_memory_query mq = {.kind = HUB_STORE_MEMORY_LIST, .agent_id = "d1", .max = 10};
    read_mem(fx->st, tr, &mq, &r);
    assert_int_equal(r.n, 0);
    mq.agent_id = "d2";
    read_mem(fx->st, tr, &mq, &r);
    assert_int_equal(r.n, 1);
    /* The count went too: a new agent with the id has its whole limit. */
    tw_init(&t, tr);
    tw_mem(&t, HUB_STORE_MEMORY_PUT, "d1", "default", "a", "v", NULL, 0, 2);
    tw_mem(&t, HUB_STORE_MEMORY_PUT, "d1", "default", "b", "v", NULL, 0, 2);
    run_ok(fx->st, &t);
    tw_init(&t, tr);
    tw_append(&t, "d1", 1, "{}");
    run_ok(fx->st, &t);
    assert_int_equal(t.seq[0], 1);
}

static void test_queue_full_and_closing(void **state)
{
    struct fx *fx = *state;
    struct hub_store_opts opts = {.queue_cap = 2, .read_queue_cap = 2};
    fx->st = open_url(fx->url, &opts);
    struct tracker *tr = &fx->tr;
    struct twrite t[3], probe;
    struct tread r[3];
    hub_store__pause(fx->st, true);
    for (int i = 0; i < 3; i++) {
        tw_init(&t[i], tr);
        tw_append(&t[i], "a1", KIND_INPUT, "{}");
        r[i] = (struct tread){.tr = tr};
    }
    tw_init(&probe, tr);
    tw_append(&probe, "a1", KIND_INPUT, "{}");
    t[0].probe_st = fx->st; /* its done() runs during close: submit and read must be refused */
    t[0].probe_w = &probe;
    submit_ok(fx->st, &t[0]);
    submit_ok(fx->st, &t[1]);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_submit(fx->st, &t[2].w, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    read_ok(fx->st, "a1", 1, 0, 10, &r[0]);
    read_ok(fx->st, "a1", 1, 0, 10, &r[1]);
    ag_err_clear(&err);
    assert_int_equal(hub_store_read_events(fx->st, "a1", 1, 0, 10, tread_cb, &r[2], &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.queue_depth, 2);

    /* Close while paused: everything queued still completes, nothing new is accepted. */
    hub_store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(done_count(tr), 4);
    expect_ok(&t[0]);
    expect_ok(&t[1]);
    assert_int_equal(t[0].seq[0], 1);
    assert_int_equal(t[1].seq[0], 2);
    assert_int_equal(t[2].calls, 0); /* refused: done() never called */
    assert_int_equal(probe.calls, 0);
    assert_int_equal(t[0].probe_submit_code, AG_UNAVAILABLE);
    assert_int_equal(t[0].probe_read_code, AG_UNAVAILABLE);
    assert_int_equal(r[0].calls, 1);
    assert_int_equal(r[1].calls, 1);
    assert_int_equal(r[2].calls, 0);
}

static void expect_open_fails(const char *url, enum ag_code code, const char *in_msg)
{
    struct ag_err err = AG_ERR_INIT;
    struct hub_store *st = hub_store_open(url, NULL, &err);
    hub_store_close(st);
    assert_null(st);
    assert_string_equal(ag_code_name(err.code), ag_code_name(code));
    if (in_msg && !strstr(err.msg, in_msg))
        fail_msg("error '%s' does not mention '%s'", err.msg, in_msg);
}

static void test_open_errors(void **state)
{
    struct fx *fx = *state;
    char url[512];
    expect_open_fails("mysql://user:secret@db/x", AG_INVALID_ARGUMENT, "mysql");
    expect_open_fails("sqlite:", AG_INVALID_ARGUMENT, "no path");
    snprintf(url, sizeof(url), "%s?fsync=yes", fx->url);
    expect_open_fails(url, AG_INVALID_ARGUMENT, "fsync=yes");
    snprintf(url, sizeof(url), "sqlite:%s/missing/hub.db", fx->dir);
    expect_open_fails(url, AG_UNAVAILABLE, "/missing/hub.db");

    snprintf(url, sizeof(url), "%s?synchronous=normal&busy_timeout_ms=100", fx->url);
    hub_store_close(open_url(url, NULL));

    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, "schema version 99");
}

/* A database of schema version 3 (before namespaces), as that binary left it: migration 4 puts
 * its agents in 'default' with their request ids, and request ids become per namespace. */
static void test_migrate_namespaces(void **state)
{
    struct fx *fx = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    int rc = sqlite3_exec(
        db,
        "CREATE TABLE agents(id TEXT NOT NULL PRIMARY KEY, request_id TEXT UNIQUE, spec BLOB,"
        " state INTEGER NOT NULL, node_id TEXT NOT NULL, epoch INTEGER NOT NULL, checkpoint BLOB,"
        " last_output TEXT NOT NULL, last_error TEXT NOT NULL, created_ns INTEGER NOT NULL,"
        " updated_ns INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER,"
        " model_calls INTEGER, tool_calls INTEGER,"
        " turn_input_tokens INTEGER NOT NULL DEFAULT 0,"
        " turn_output_tokens INTEGER NOT NULL DEFAULT 0,"
        " turn_model_calls INTEGER NOT NULL DEFAULT 0,"
        " turn_tool_calls INTEGER NOT NULL DEFAULT 0, turn_attempt INTEGER NOT NULL DEFAULT 0,"
        " interrupt_streak INTEGER NOT NULL DEFAULT 0,"
        " interrupt_reason TEXT NOT NULL DEFAULT '', spawn_input_seq INTEGER NOT NULL DEFAULT 0,"
        " waiting_input INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX agents_by_creation ON agents(created_ns, id);"
        "CREATE TABLE events(agent_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " kind INTEGER NOT NULL, payload TEXT NOT NULL, node_id TEXT NOT NULL,"
        " time_ns INTEGER NOT NULL, PRIMARY KEY(agent_id, seq)) WITHOUT ROWID;"
        "CREATE INDEX agents_active ON agents(created_ns, id)"
        " WHERE (state IN (1, 2) OR waiting_input <> 0);"
        "CREATE INDEX agents_by_state ON agents(state, created_ns, id);"
        "INSERT INTO agents(id, request_id, spec, state, node_id, epoch, last_output,"
        " last_error, created_ns, updated_ns, input_tokens, turn_attempt)"
        " VALUES('old', 'rid', x'0a01', 3, 'n1', 2, 'out', '', 5, 6, 7, 1);"
        "INSERT INTO events VALUES('old', 1, 1, '{}', '', 5);"
        "PRAGMA user_version = 3;",
        NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);

    fx->st = open_url(fx->url, NULL);
    struct agent_rows rows;
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_REQUEST, .key = "rid"};
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.row[0].id, "old");
    assert_string_equal(rows.row[0].ns, "default");
    assert_string_equal(rows.row[0].node_id, "n1");
    assert_string_equal(rows.row[0].last_output, "out");
    assert_int_equal(rows.row[0].epoch, 2);
    assert_int_equal(rows.row[0].last_seq, 1);
    assert_int_equal(rows.row[0].spec_len, 2);
    q = (struct hub_store_agents_query){
        .kind = HUB_STORE_AGENTS_PAGE, .namespace = "default", .state = 3, .max = 8};
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 1);

    struct twrite t[2];
    for (int i = 0; i < 2; i++) {
        tw_init(&t[i], &fx->tr);
        tw_insert(&t[i], i ? "dup" : "new", "rid", 10);
        t[i].ops[0].u.agent.namespace = i ? NULL : "team-a";
        run_one(fx->st, &t[i]);
    }
    expect_ok(&t[0]);
    expect_fail(&t[1], AG_ALREADY_EXISTS, "request_id");
}

/* The row of "old" as a version-4 binary stored it (usage, no cost), read after migration 5:
 * its usage unchanged, its costs 0. */
static void expect_old_usage(struct hub_store *st)
{
    struct agent_rows rows;
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_ID, .key = "old"};
    select_rows(st, &q, &rows);
    assert_int_equal(rows.n, 1);
    assert_true(rows.row[0].has_usage);
    const struct hub_usage want = {70, 80, 9, 10, 0}, want_turn = {11, 0, 0, 0, 0};
    assert_memory_equal(&rows.row[0].usage, &want, sizeof(want));
    assert_memory_equal(&rows.row[0].turn_usage, &want_turn, sizeof(want_turn));
}

#define OLD_USAGE_ROW                                                                              \
    "INSERT INTO agents(id, spec, state, node_id, epoch, last_output, last_error, created_ns,"     \
    " updated_ns, input_tokens, output_tokens, model_calls, tool_calls, turn_input_tokens)"        \
    " VALUES('old', 'x', 3, 'n1', 2, '', '', 5, 6, 70, 80, 9, 10, 11);"

/* A database of schema version 4 (before costs; migration 5 undone by hand, an agent with usage
 * stored as that binary did): migration 5 adds the cost columns, the row's cost reads 0. */
static void test_migrate_cost(void **state)
{
    struct fx *fx = *state;
    hub_store_close(open_url(fx->url, NULL));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db,
                          "DROP INDEX agents_by_parent;"
                          "DROP INDEX agents_ended;"
                          "ALTER TABLE agents DROP COLUMN parent_id;"
                          "ALTER TABLE agents DROP COLUMN depth;"
                          "ALTER TABLE agents DROP COLUMN cost_nano_usd;"
                          "ALTER TABLE agents DROP COLUMN turn_cost_nano_usd;"
                          "DROP TABLE schedules;" OLD_USAGE_ROW "PRAGMA user_version = 4;",
                          NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);

    fx->st = open_url(fx->url, NULL);
    expect_old_usage(fx->st);
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 9);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Another process holds the write lock: every write of the batch fails UNAVAILABLE at once,
 * and nothing of it is half-applied (the next append reuses the seqs it did not get). */
static void test_db_unavailable(void **state)
{
    struct fx *fx = *state;
    char url[512];
    snprintf(url, sizeof(url), "%s?busy_timeout_ms=50", fx->url);
    fx->st = open_url(url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite first, t[3], after;
    tw_init(&first, tr);
    tw_insert(&first, "a1", NULL, 1);
    tw_append(&first, "a1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    hub_store__pause(fx->st, true);
    for (int i = 0; i < 3; i++) {
        tw_init(&t[i], tr);
        tw_append(&t[i], "a1", KIND_INPUT, "{}");
        submit_ok(fx->st, &t[i]);
    }
    hub_store__pause(fx->st, false);
    wait_done(tr, 4);
    for (int i = 0; i < 3; i++)
        expect_fail(&t[i], AG_UNAVAILABLE, fx->path);
    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.commits, 1);
    assert_int_equal(s.failed, 3);

    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    tw_init(&after, tr);
    tw_append(&after, "a1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 2);
}

/* --- the store is held exclusively, and noticed when its files go away ------------------------ */

/* A second store on the same file is refused with a line that names it; the first one never
 * notices. Another process would get the same answer from flock(2) (see tests/e2e/
 * test_single_instance.py); within one process it is the same lock on a second descriptor. */
static void test_exclusive_open(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite first, during, after;
    tw_init(&first, tr);
    tw_insert(&first, "x1", NULL, 1);
    tw_append(&first, "x1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);

    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, fx->path);
    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, "in use by another process");

    /* The first store keeps committing, and a plain reader (the sqlite3 shell) is not blocked. */
    tw_init(&during, tr);
    tw_append(&during, "x1", KIND_INPUT, "{}");
    run_one(fx->st, &during);
    expect_ok(&during);
    assert_int_equal(during.seq[0], 2);
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    sqlite3_close(db);

    hub_store_close(fx->st);
    fx->st = open_url(fx->url, NULL); /* the lock went with the first store */
    tw_init(&after, tr);
    tw_append(&after, "x1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 3);
}

static void capture_start(struct capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/test-store-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restores fd 2 and returns what was written to it (caller frees). */
static char *capture_end(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    c->saved = -1;
    size_t cap = 1 << 16, n = 0;
    char *text = calloc(1, cap);
    FILE *f = fopen(c->path, "r");
    if (text && f)
        n = fread(text, 1, cap - 1, f);
    if (f)
        fclose(f);
    unlink(c->path);
    assert_non_null(text);
    text[n] = '\0';
    return text;
}

static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = strstr(line, needle);
        n += hit && hit < line + len;
        line += len + (end != NULL);
    }
    return n;
}

/* The sqlite handles opened while record_open is registered (sqlite3_auto_extension), in order:
 * how test_disk_full reaches the store's writer handle. */
static sqlite3 *opened_db[4];
static int nopened;

static int record_open(sqlite3 *db, const char **errmsg, const struct sqlite3_api_routines *api)
{
    (void)errmsg, (void)api;
    if (nopened < (int)(sizeof(opened_db) / sizeof(opened_db[0])))
        opened_db[nopened++] = db;
    return SQLITE_OK;
}

/* Runs sql on the store's writer handle while the writer is paused (so it is not using it). */
static void writer_exec(struct hub_store *st, sqlite3 *wdb, const char *sql)
{
    hub_store__pause(st, true);
    assert_int_equal(sqlite3_exec(wdb, sql, NULL, NULL, NULL), SQLITE_OK);
    hub_store__pause(st, false);
}

/* A full disk: writes fail UNAVAILABLE saying so and naming the file, nothing of them is stored,
 * the outage is logged once, reads go on, and writes succeed again by themselves once there is
 * room. The disk is "full" by SQLite's page limit (PRAGMA max_page_count on the writer's handle,
 * no root needed): SQLITE_FULL, the same code and path as ENOSPC from a full disk. */
static void test_disk_full(void **state)
{
    struct fx *fx = *state;
    nopened = 0;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))record_open), SQLITE_OK);
    fx->st = open_url(fx->url, NULL);
    sqlite3_cancel_auto_extension((void (*)(void))record_open);
    assert_true(nopened >= 1);
    sqlite3 *wdb = opened_db[0]; /* the writer's: opened first (store_internal.h) */
    struct tracker *tr = &fx->tr;
    struct twrite first, t[3], after;
    tw_init(&first, tr);
    tw_insert(&first, "f1", NULL, 1);
    tw_append(&first, "f1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);

    static char big[16384]; /* needs new pages whatever the free space on the last one */
    memset(big, 'x', sizeof(big) - 1);
    writer_exec(fx->st, wdb, "PRAGMA max_page_count = 1"); /* = the pages it has now */
    capture_start(&fx->cap);
    for (int i = 0; i < 3; i++) {
        tw_init(&t[i], tr);
        tw_append(&t[i], "f1", KIND_INPUT, big);
        run_one(fx->st, &t[i]);
        expect_fail(&t[i], AG_UNAVAILABLE, fx->path);
        expect_fail(&t[i], AG_UNAVAILABLE, "disk full at");
    }
    char *log = capture_end(&fx->cap);
    assert_int_equal(count_lines_with(log, "event=store.down "), 1);
    free(log);
    expect_range(fx->st, tr, "f1", 1, 0, 10, 1);

    writer_exec(fx->st, wdb, "PRAGMA max_page_count = 1000000");
    tw_init(&after, tr);
    tw_append(&after, "f1", KIND_INPUT, big);
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 2);
    expect_range(fx->st, tr, "f1", 1, 0, 10, 2);
}

/* Called once the store's file has gone away under it: the batch that notices fails, every
 * later write fails at once with the same message, reads still answer, one line is logged.
 * Asserts run after stderr is restored, so a failure's report is not captured. */
static void expect_store_lost(struct fx *fx, const char *what)
{
    struct tracker *tr = &fx->tr;
    size_t before = done_count(tr);
    struct twrite t[3], later[5];
    hub_store__pause(fx->st, true); /* one batch of three: the transaction that notices */
    for (int i = 0; i < 3; i++) {
        tw_init(&t[i], tr);
        tw_append(&t[i], "l1", KIND_INPUT, "{}");
        submit_ok(fx->st, &t[i]);
    }
    hub_store__pause(fx->st, false);
    wait_done(tr, before + 3);
    int later_rc[5];
    struct ag_err later_err[5];
    for (int i = 0; i < 5; i++) {
        tw_init(&later[i], tr);
        tw_append(&later[i], "l1", KIND_INPUT, "{}");
        later_err[i] = (struct ag_err)AG_ERR_INIT;
        later_rc[i] = hub_store_submit(fx->st, &later[i].w, &later_err[i]);
    }
    if (later_rc[4] == 0) /* not refused: let it finish before the fixture goes away */
        wait_done(tr, before + 3 + 5);
    char *log = capture_end(&fx->cap);

    for (int i = 0; i < 3; i++) {
        expect_fail(&t[i], AG_UNAVAILABLE, fx->path);
        expect_fail(&t[i], AG_UNAVAILABLE, what);
    }
    if (!strstr(t[0].err.msg, "restart") && !strstr(t[0].err.msg, "start it"))
        fail_msg("error '%s' does not say what to do", t[0].err.msg);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(later_rc[i], -1);
        assert_string_equal(ag_code_name(later_err[i].code), ag_code_name(AG_UNAVAILABLE));
        assert_string_equal(later_err[i].msg, t[0].err.msg);
        assert_int_equal(later[i].calls, 0);
    }
    struct hub_store_stats s;
    hub_store_get_stats(fx->st, &s);
    assert_int_equal(s.commits, 1);
    assert_int_equal(s.failed, 3);
    /* What was acknowledged is still readable, and nothing of the failed batch: it was rolled
     * back, since the loss came before it (the store was idle). */
    expect_range(fx->st, tr, "l1", 1, 0, 10, 1);

    size_t lost = count_lines_with(log, "level=error comp=test event=store.lost ");
    size_t store_errors = count_lines_with(log, "level=error comp=test event=store.");
    if (lost != 1 || store_errors != 1)
        print_error("store log lines:\n%s", log);
    free(log);
    assert_int_equal(lost, 1);
    assert_int_equal(store_errors, 1);
}

/* An open store with agent l1 (seq 1), capturing stderr. */
static void lost_setup(struct fx *fx)
{
    fx->st = open_url(fx->url, NULL);
    struct twrite first;
    tw_init(&first, &fx->tr);
    tw_insert(&first, "l1", NULL, 1);
    tw_append(&first, "l1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);
    capture_start(&fx->cap);
}

static void test_lost_db_deleted(void **state)
{
    struct fx *fx = *state;
    lost_setup(fx);
    assert_int_equal(unlink(fx->path), 0);
    expect_store_lost(fx, "deleted");

    /* The log of the deleted file must not stay behind to be replayed into the next one put
     * at the path (a restored backup): closed, it is gone or empty. */
    hub_store_close(fx->st);
    fx->st = NULL;
    char wal[160];
    struct stat sb;
    snprintf(wal, sizeof(wal), "%s-wal", fx->path);
    if (stat(wal, &sb) == 0)
        assert_int_equal(sb.st_size, 0);
    else
        assert_int_equal(errno, ENOENT);
}

static void test_lost_db_moved(void **state)
{
    struct fx *fx = *state;
    char moved[160];
    snprintf(moved, sizeof(moved), "%s.moved", fx->path);
    lost_setup(fx);
    assert_int_equal(rename(fx->path, moved), 0);
    expect_store_lost(fx, "moved");
    hub_store_close(fx->st);
    fx->st = NULL;

    /* Closed, the moved file holds everything acknowledged on its own (its log, still named
     * after the old path, was folded in), so moving it back is a restore. */
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(moved, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE agent_id = 'l1'", -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 1);
    sqlite3_finalize(s);
    sqlite3_close(db);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[192];
        snprintf(p, sizeof(p), "%s%s", moved, suffixes[i]);
        unlink(p);
    }
}

/* Another file at the path (a restore, a copy over it) is not the database the hub writes. */
static void test_lost_db_replaced(void **state)
{
    struct fx *fx = *state;
    char other[160];
    snprintf(other, sizeof(other), "%s.other", fx->path);
    lost_setup(fx);
    FILE *f = fopen(other, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(rename(other, fx->path), 0);
    expect_store_lost(fx, "replaced");
}

/* The log is the newest part of the database: without it a restart loses the last commits. */
static void test_lost_wal_deleted(void **state)
{
    struct fx *fx = *state;
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", fx->path);
    lost_setup(fx);
    assert_int_equal(unlink(wal), 0);
    expect_store_lost(fx, "-wal");

    /* A clean close folds the log it still holds open into the database: nothing acknowledged
     * is lost, nothing refused appears, and the store opens again. */
    hub_store_close(fx->st);
    fx->st = open_url(fx->url, NULL);
    struct agent_rows rows;
    load_all(fx->st, &rows);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.row[0].id, "l1");
    assert_int_equal(rows.row[0].last_seq, 1);
}

/* --- PostgreSQL only: the advisory lock, migrations, the URL forms ------------------------- */

/* A second store on the same database is refused while the first holds the advisory lock; the
 * first never notices, and the lock goes with it. */
static void test_pg_exclusive_open(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite first, during, after;
    tw_init(&first, tr);
    tw_insert(&first, "x1", NULL, 1);
    tw_append(&first, "x1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);

    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, "another hub is using");
    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, fx->pgdb);

    tw_init(&during, tr);
    tw_append(&during, "x1", KIND_INPUT, "{}");
    run_one(fx->st, &during);
    expect_ok(&during);
    assert_int_equal(during.seq[0], 2);

    hub_store_close(fx->st);
    fx->st = open_url(fx->url, NULL);
    tw_init(&after, tr);
    tw_append(&after, "x1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 3);
}

/* Each migration runs once: opening again changes nothing; a newer schema is refused. */
static void test_pg_migrations(void **state)
{
    struct fx *fx = *state;
    hub_store_close(open_url(fx->url, NULL));
    hub_store_close(open_url(fx->url, NULL));
    assert_int_equal(pg_query_long(fx->pgdb, "SELECT count(*) FROM schema_migrations"), 9);
    assert_int_equal(pg_query_long(fx->pgdb, "SELECT max(version) FROM schema_migrations"), 9);

    assert_int_equal(pg_exec(fx->pgdb, "INSERT INTO schema_migrations(version) VALUES(99)"), 0);
    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, "schema version 99");
    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, "knows versions 1 to 9");
}

/* A database of schema version 3 (migrations 4 and 5 undone by hand, an agent with a request id
 * stored as that binary did): migration 4 puts it in 'default' and makes request ids per
 * namespace. */
static void test_pg_migrate_namespaces(void **state)
{
    struct fx *fx = *state;
    hub_store_close(open_url(fx->url, NULL));
    assert_int_equal(pg_exec(fx->pgdb, "DROP INDEX agents_by_request_id, agents_by_namespace,"
                                       " agents_by_namespace_state, agents_by_parent,"
                                       " agents_ended;"
                                       "ALTER TABLE agents DROP COLUMN namespace,"
                                       " DROP COLUMN parent_id, DROP COLUMN depth,"
                                       " DROP COLUMN cost_nano_usd,"
                                       " DROP COLUMN turn_cost_nano_usd;"
                                       "ALTER TABLE agents ADD CONSTRAINT agents_request_id_key"
                                       " UNIQUE(request_id);"
                                       "DROP TABLE schedules;"
                                       "DELETE FROM schema_migrations WHERE version >= 4;"
                                       "INSERT INTO agents(id, request_id, spec, state, node_id,"
                                       " epoch, last_output, last_error, created_ns, updated_ns)"
                                       " VALUES('old', 'rid', '\\x0a01', 3, 'n1', 2, 'out', '',"
                                       " 5, 6);"),
                     0);
    fx->st = open_url(fx->url, NULL);
    assert_int_equal(pg_query_long(fx->pgdb, "SELECT max(version) FROM schema_migrations"), 9);
    struct agent_rows rows;
    struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_REQUEST, .key = "rid"};
    select_rows(fx->st, &q, &rows);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.row[0].id, "old");
    assert_string_equal(rows.row[0].ns, "default");
    assert_int_equal(rows.row[0].spec_len, 2);

    struct twrite t[2];
    for (int i = 0; i < 2; i++) {
        tw_init(&t[i], &fx->tr);
        tw_insert(&t[i], i ? "dup" : "new", "rid", 10);
        t[i].ops[0].u.agent.namespace = i ? NULL : "team-a";
        run_one(fx->st, &t[i]);
    }
    expect_ok(&t[0]);
    expect_fail(&t[1], AG_ALREADY_EXISTS, "request_id");
}

/* Migration 5 on PostgreSQL, as test_migrate_cost does it on SQLite. */
static void test_pg_migrate_cost(void **state)
{
    struct fx *fx = *state;
    hub_store_close(open_url(fx->url, NULL));
    assert_int_equal(pg_exec(fx->pgdb,
                             "DROP INDEX agents_by_parent, agents_ended;"
                             "ALTER TABLE agents DROP COLUMN cost_nano_usd,"
                             " DROP COLUMN turn_cost_nano_usd, DROP COLUMN parent_id,"
                             " DROP COLUMN depth;"
                             "DROP TABLE schedules;"
                             "DELETE FROM schema_migrations WHERE version >= 5;" OLD_USAGE_ROW),
                     0);
    fx->st = open_url(fx->url, NULL);
    assert_int_equal(pg_query_long(fx->pgdb, "SELECT max(version) FROM schema_migrations"), 9);
    expect_old_usage(fx->st);
}

/* Fencing (hub_store_opts.fence): a newer leader takes the database over while the old one
 * still has it open; the old one's next commit fails for good naming the new leader, and
 * nothing of it is stored; an older token and a hub without one are refused at open. */
static void test_pg_fence(void **state)
{
    struct fx *fx = *state;
    struct hub_store_opts a_opts = {.fence = 5, .fence_holder = "hub-a"};
    struct hub_store_opts b_opts = {.fence = 7, .fence_holder = "hub-b"};
    struct hub_store *a = open_url(fx->url, &a_opts);
    struct tracker *tr = &fx->tr;
    struct twrite w1, w2, w3, w4;
    tw_init(&w1, tr);
    tw_insert(&w1, "f1", NULL, 1);
    tw_append(&w1, "f1", KIND_SPAWNED, "{}");
    run_one(a, &w1);
    expect_ok(&w1);

    fx->st = open_url(fx->url, &b_opts); /* while a is open: no advisory lock stops it */
    assert_int_equal(pg_query_long(fx->pgdb, "SELECT fence FROM hub_writer"), 7);
    tw_init(&w2, tr);
    tw_append(&w2, "f1", KIND_INPUT, "{}");
    run_one(a, &w2);
    expect_fail(&w2, AG_UNAVAILABLE, "hub 'hub-b' leads this database now");
    tw_init(&w3, tr);
    tw_append(&w3, "f1", KIND_INPUT, "{}");
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_store_submit(a, &w3.w, &err), -1); /* refused for good, at once */
    assert_string_equal(ag_code_name(err.code), "UNAVAILABLE");
    hub_store_close(a);

    tw_init(&w4, tr);
    tw_append(&w4, "f1", KIND_INPUT, "{}");
    run_one(fx->st, &w4);
    expect_ok(&w4);
    assert_int_equal(w4.seq[0], 2); /* w2 was not stored */

    struct hub_store_opts old = {.fence = 6, .fence_holder = "hub-c"};
    assert_null(hub_store_open(fx->url, &old, &err));
    assert_string_equal(ag_code_name(err.code), "FAILED_PRECONDITION");
    assert_non_null(strstr(err.msg, "a newer leader holds"));
    hub_store_close(fx->st);
    fx->st = NULL;
    expect_open_fails(fx->url, AG_FAILED_PRECONDITION, "start this hub with --etcd too");
}

/* The URI form goes to libpq whole; a server that is not there is UNAVAILABLE with libpq's
 * reason, on one line. */
static void test_pg_urls(void **state)
{
    struct fx *fx = *state;
    PQconninfoOption *opts = PQconninfoParse(pg_conninfo, NULL);
    assert_non_null(opts);
    const char *host = "", *port = "";
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val)
            host = o->val;
        if (strcmp(o->keyword, "port") == 0 && o->val)
            port = o->val;
    }
    char url[256];
    snprintf(url, sizeof(url), "postgresql://postgres@%s:%s/%s", host, port, fx->pgdb);
    fx->st = open_url(url, NULL);
    struct twrite t;
    tw_init(&t, &fx->tr);
    tw_insert(&t, "u1", NULL, 1);
    run_one(fx->st, &t);
    expect_ok(&t);
    hub_store_close(fx->st);
    fx->st = NULL;
    snprintf(url, sizeof(url), "postgres://postgres@%s:%s/%s", host, port, fx->pgdb);
    fx->st = open_url(url, NULL);
    PQconninfoFree(opts);

    expect_open_fails("postgres://127.0.0.1:1/x", AG_UNAVAILABLE, "Connection refused");
    struct ag_err err = AG_ERR_INIT;
    assert_null(hub_store_open("postgres:host=127.0.0.1 port=1 dbname=x", NULL, &err));
    assert_string_equal(ag_code_name(err.code), "UNAVAILABLE");
    assert_null(strchr(err.msg, '\n'));
}

/* The server ends the hub's sessions (a restart, a failover): the write in flight fails
 * UNAVAILABLE, never half-applied, and the store reconnects by itself for the next one. */
static void test_pg_reconnect(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite first, t, after;
    tw_init(&first, tr);
    tw_insert(&first, "r1", NULL, 1);
    tw_append(&first, "r1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);

    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             fx->pgdb);
    assert_int_equal(pg_exec(NULL, sql), 0);
    tw_init(&t, tr);
    tw_append(&t, "r1", KIND_INPUT, "{}");
    run_one(fx->st, &t);
    if (t.rc != 0)
        expect_fail(&t, AG_UNAVAILABLE, fx->pgdb);
    tw_init(&after, tr);
    tw_append(&after, "r1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], t.rc == 0 ? 3 : 2);
    expect_range(fx->st, tr, "r1", 1, 0, 10, after.seq[0]);

    /* A session that ended while the writer idled (its server said so, and closed it) costs no
     * write: the next transaction finds out before it starts and goes to a new session. */
    assert_int_equal(pg_exec(NULL, sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
             "AND pid <> pg_backend_pid()",
             fx->pgdb);
    for (int i = 0; pg_query_long(fx->pgdb, sql) != 0; i++) {
        assert_true(i < 1000); /* the server ends a terminated session within 10 s */
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    struct twrite later;
    tw_init(&later, tr);
    tw_append(&later, "r1", KIND_INPUT, "{}");
    run_one(fx->st, &later);
    expect_ok(&later);
    assert_int_equal(later.seq[0], after.seq[0] + 1);
}

/* The database stays unreachable (connections to it are refused, as from a stopped server):
 * writes and reads fail UNAVAILABLE naming it and "retrying in N ms", and only a few of them
 * try to reconnect (backoff: 100 ms doubling), the others are refused without touching the
 * network; counted, not timed. The outage is logged once. Once connections are allowed again,
 * writes succeed by themselves and nothing refused was stored. */
static void test_pg_down_backoff(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    enum { N = 40 };
    struct twrite first, t[N], after;
    tw_init(&first, tr);
    tw_insert(&first, "d1", NULL, 1);
    tw_append(&first, "d1", KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);

    char sql[256];
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS false", fx->pgdb);
    assert_int_equal(pg_exec(NULL, sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             fx->pgdb);
    assert_int_equal(pg_exec(NULL, sql), 0);
    capture_start(&fx->cap);
    int tries = 0, fast = 0;
    for (int i = 0; i < N; i++) {
        tw_init(&t[i], tr);
        tw_append(&t[i], "d1", KIND_INPUT, "{}");
        run_one(fx->st, &t[i]);
        expect_fail(&t[i], AG_UNAVAILABLE, fx->pgdb);
        tries += strstr(t[i].err.msg, "; this try: ") != NULL;
        fast += strstr(t[i].err.msg, "; last try: ") != NULL;
        if (i > 0 && !strstr(t[i].err.msg, "retrying in "))
            fail_msg("error '%s' does not say when it retries", t[i].err.msg);
    }
    /* The first write finds the session dead; then one try per wait of at least 50 ms. */
    assert_true(tries >= 1 && tries <= 4);
    assert_int_equal(tries + fast, N - 1);
    struct tread r = {.tr = tr};
    size_t before = done_count(tr);
    read_ok(fx->st, "d1", 1, 0, 10, &r);
    wait_done(tr, before + 1);
    assert_int_equal(r.code, AG_UNAVAILABLE);
    char *log = capture_end(&fx->cap);
    assert_int_equal(count_lines_with(log, "event=store.down"), 1);
    free(log);

    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", fx->pgdb);
    assert_int_equal(pg_exec(NULL, sql), 0);
    /* The next try comes within the backoff's cap: writes until then are still refused. */
    for (int i = 0;; i++) {
        assert_true(i < 200);
        tw_init(&after, tr);
        tw_append(&after, "d1", KIND_INPUT, "{}");
        run_one(fx->st, &after);
        if (after.rc == 0)
            break;
        expect_fail(&after, AG_UNAVAILABLE, fx->pgdb);
        usleep(50000);
    }
    expect_ok(&after);
    assert_int_equal(after.seq[0], 2);
    /* The reader has a backoff of its own (its read above failed): reads come back by
     * themselves too, at its next try. */
    for (int i = 0;; i++) {
        assert_true(i < 200);
        struct tread rr = {.tr = tr};
        before = done_count(tr);
        read_ok(fx->st, "d1", 1, 0, 10, &rr);
        wait_done(tr, before + 1);
        if (!rr.rows_null)
            break;
        assert_int_equal(rr.code, AG_UNAVAILABLE);
        usleep(50000);
    }
    expect_range(fx->st, tr, "d1", 1, 0, 10, 2);
}

/* The port of the test server (from its conninfo), for a proxy in front of it. */
static int pg_port(void)
{
    PQconninfoOption *opts = PQconninfoParse(pg_conninfo, NULL);
    assert_non_null(opts);
    int port = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "port") == 0 && o->val)
            port = atoi(o->val);
    PQconninfoFree(opts);
    return port;
}

/* With fx->st open: store agent's first event, then submit t (an INPUT of agent) whose COMMIT
 * sleeps `secs` inside the server (a trigger on the commit mark, hub_writer); returns once the
 * server is asleep in it. The caller drops the trigger. */
static void submit_slow_commit(struct fx *fx, const char *agent, int secs, struct twrite *t)
{
    struct tracker *tr = &fx->tr;
    struct twrite first;
    tw_init(&first, tr);
    tw_insert(&first, agent, NULL, 1);
    tw_append(&first, agent, KIND_SPAWNED, "{}");
    run_one(fx->st, &first);
    expect_ok(&first);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN PERFORM pg_sleep(%d); RETURN NEW; END $$",
             secs);
    assert_int_equal(pg_exec(fx->pgdb, sql), 0);
    assert_int_equal(pg_exec(fx->pgdb, "CREATE TRIGGER slow BEFORE UPDATE ON hub_writer "
                                       "FOR EACH ROW EXECUTE FUNCTION slow()"),
                     0);
    tw_init(t, tr);
    tw_append(t, agent, KIND_INPUT, "{}");
    submit_ok(fx->st, t);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
             "AND wait_event = 'PgSleep'",
             fx->pgdb);
    pg_wait_long(fx->pgdb, sql, 1);
}

/* The writer's session is ended by the server while its transaction waits in the commit mark (a
 * trigger makes it sleep there): the server's error says the transaction is aborted, so the
 * write fails UNAVAILABLE at once, and its seq goes to the next write. */
static void test_pg_commit_refused(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t, after;
    submit_slow_commit(fx, "c1", 30, &t);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND wait_event = 'PgSleep'",
             fx->pgdb);
    capture_start(&fx->cap);
    assert_int_equal(pg_query_long(fx->pgdb, sql), 1);
    wait_done(tr, 2);
    free(capture_end(&fx->cap)); /* store.down: expected */
    expect_fail(&t, AG_UNAVAILABLE, "terminating connection");

    assert_int_equal(pg_exec(fx->pgdb, "DROP TRIGGER slow ON hub_writer"), 0);
    tw_init(&after, tr);
    tw_append(&after, "c1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 2);
    expect_range(fx->st, tr, "c1", 1, 0, 10, 2);
}

/* A TCP proxy between the store and the server that a test can cut: every connection through
 * it closes at once, with no word from the server, as when a network path dies. While it
 * refuses, new connections are closed as soon as they come (the server looks down). */
struct proxy {
    int lfd, port, target_port;
    pthread_t th;
    pthread_mutex_t mu;
    int fds[32]; /* pairs: client side, server side */
    int nfds;
    bool cut, stop, refuse;
};

static void proxy_close_pair(struct proxy *p, int i)
{
    close(p->fds[i]);
    close(p->fds[i + 1]);
    p->fds[i] = p->fds[p->nfds - 2];
    p->fds[i + 1] = p->fds[p->nfds - 1];
    p->nfds -= 2;
}

static void proxy_accept(struct proxy *p)
{
    int a = accept(p->lfd, NULL, NULL);
    if (a < 0)
        return;
    pthread_mutex_lock(&p->mu);
    bool refuse = p->refuse;
    pthread_mutex_unlock(&p->mu);
    if (refuse) {
        close(a);
        return;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->target_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (p->nfds + 2 > (int)(sizeof(p->fds) / sizeof(p->fds[0])) ||
        connect(s, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(a);
        close(s);
        return;
    }
    p->fds[p->nfds++] = a;
    p->fds[p->nfds++] = s;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        if (p->cut || stop) {
            while (p->nfds)
                proxy_close_pair(p, 0);
            p->cut = false;
        }
        pthread_mutex_unlock(&p->mu);
        if (stop)
            return NULL;
        struct pollfd pf[33] = {{.fd = p->lfd, .events = POLLIN}};
        for (int i = 0; i < p->nfds; i++)
            pf[i + 1] = (struct pollfd){.fd = p->fds[i], .events = POLLIN};
        int nfds = p->nfds;
        if (poll(pf, (nfds_t)nfds + 1, 20) <= 0)
            continue;
        if (pf[0].revents & POLLIN)
            proxy_accept(p);
        for (int i = nfds - 1; i >= 0; i--) {
            if (!pf[i + 1].revents)
                continue;
            char buf[16384];
            ssize_t n = read(pf[i + 1].fd, buf, sizeof(buf));
            int pair = i & ~1, other = p->fds[i ^ 1];
            if (n <= 0 || write(other, buf, (size_t)n) != n) {
                proxy_close_pair(p, pair);
                break; /* the indices moved: poll again */
            }
        }
    }
}

static void proxy_start(struct proxy *p, int target_port)
{
    *p = (struct proxy){.target_port = target_port};
    pthread_mutex_init(&p->mu, NULL);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &len), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

/* Returns once every connection through the proxy is closed. */
static void proxy_cut(struct proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->cut = true;
    pthread_mutex_unlock(&p->mu);
    for (bool cutting = true; cutting;) {
        usleep(1000);
        pthread_mutex_lock(&p->mu);
        cutting = p->cut;
        pthread_mutex_unlock(&p->mu);
    }
}

static void proxy_refuse(struct proxy *p, bool refuse)
{
    pthread_mutex_lock(&p->mu);
    p->refuse = refuse;
    pthread_mutex_unlock(&p->mu);
}

static void proxy_stop(struct proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    close(p->lfd);
    pthread_mutex_destroy(&p->mu);
}

/* Open the store through px (started in front of the test server). */
static void open_via_proxy(struct fx *fx, struct proxy *px)
{
    proxy_start(px, pg_port());
    char url[256];
    snprintf(url, sizeof(url), "postgres:host=127.0.0.1 port=%d user=postgres dbname=%s", px->port,
             fx->pgdb);
    fx->st = open_url(url, NULL);
}

/* The path to the server dies after the writer sent its whole transaction, COMMIT included,
 * while the server still works on it (the trigger sleeps 1 s in the commit mark); the server
 * then commits it. The store cannot tell from the connection, so it reconnects, waits for the
 * old session to let go of the lock, reads the commit counter and reports the write done, with
 * its seq: no error for a write that was stored, and no seq handed out twice. */
static void test_pg_commit_reply_lost(void **state)
{
    struct fx *fx = *state;
    struct proxy px;
    open_via_proxy(fx, &px);
    struct tracker *tr = &fx->tr;
    struct twrite t, after;
    submit_slow_commit(fx, "c1", 1, &t);
    /* Cut while the server sleeps inside the transaction: COMMIT's answer cannot have left it
     * yet, so an OK below can only come from the commit counter read after reconnecting. */
    proxy_cut(&px);
    wait_done(tr, 2);
    expect_ok(&t);
    assert_int_equal(t.seq[0], 2);
    assert_int_equal(pg_exec(fx->pgdb, "DROP TRIGGER slow ON hub_writer"), 0);

    tw_init(&after, tr);
    tw_append(&after, "c1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 3);
    expect_range(fx->st, tr, "c1", 1, 0, 10, 3);
    hub_store_close(fx->st);
    fx->st = NULL;
    proxy_stop(&px);
}

/* Through a proxy to the server: stores u1's first event, then submits t and cuts the path while
 * the server works on t's transaction (a trigger sleeps 1 s in the commit mark; the server then
 * commits it), with the proxy refusing new connections: the store cannot learn t's outcome. */
static void hold_one(struct fx *fx, struct proxy *px, struct twrite *t)
{
    open_via_proxy(fx, px);
    submit_slow_commit(fx, "u1", 1, t);
    capture_start(&fx->cap);
    proxy_refuse(px, true);
    proxy_cut(px);
}

/* As above, but the server cannot be reached again at first (the proxy refuses), so the store
 * cannot learn whether the COMMIT was stored: the write is neither acknowledged nor failed but
 * held, new writes are refused at once (UNAVAILABLE), and once the server can be reached the
 * store reads the commit counter and acknowledges the held write with its seq. */
static void test_pg_commit_outcome_later(void **state)
{
    struct fx *fx = *state;
    struct tracker *tr = &fx->tr;
    struct proxy px;
    struct twrite t, after;
    hold_one(fx, &px, &t);
    /* Held: no answer while the server cannot be asked, and new writes are refused at once;
     * writes accepted before the store noticed wait behind t, and are stored after it. */
    static struct twrite queued[100];
    size_t nqueued = 0;
    struct ag_err err = AG_ERR_INIT;
    for (;; nqueued++) {
        assert_true(nqueued < 100);
        tw_init(&queued[nqueued], tr);
        tw_append(&queued[nqueued], "u1", KIND_INPUT, "{}");
        if (hub_store_submit(fx->st, &queued[nqueued].w, &err) != 0)
            break;
        usleep(10000);
    }
    assert_string_equal(ag_code_name(err.code), "UNAVAILABLE");
    if (!strstr(err.msg, "waiting to learn"))
        fail_msg("refusal '%s' does not say why", err.msg);
    usleep(300000);
    assert_int_equal(done_count(tr), 1);
    assert_int_equal(t.calls, 0);

    proxy_refuse(&px, false);
    wait_done(tr, 2 + nqueued);
    char *log = capture_end(&fx->cap);
    assert_int_equal(count_lines_with(log, "event=store.down "), 1);
    free(log);
    expect_ok(&t);
    assert_int_equal(t.seq[0], 2);
    for (size_t i = 0; i < nqueued; i++) {
        expect_ok(&queued[i]);
        assert_int_equal(queued[i].seq[0], 3 + i);
    }
    assert_int_equal(pg_exec(fx->pgdb, "DROP TRIGGER slow ON hub_writer"), 0);

    tw_init(&after, tr);
    tw_append(&after, "u1", KIND_INPUT, "{}");
    run_one(fx->st, &after);
    expect_ok(&after);
    assert_int_equal(after.seq[0], 3 + nqueued);
    expect_range(fx->st, tr, "u1", 1, 0, 10, 3 + nqueued);
    hub_store_close(fx->st);
    fx->st = NULL;
    proxy_stop(&px);
}

/* The store closes while it still cannot learn a commit's outcome: the held write fails
 * UNAVAILABLE saying it may be stored (it was: a restart finds it). */
static void test_pg_commit_outcome_close(void **state)
{
    struct fx *fx = *state;
    struct proxy px;
    struct twrite t;
    hold_one(fx, &px, &t);
    usleep(200000);
    assert_int_equal(t.calls, 0);
    hub_store_close(fx->st);
    fx->st = NULL;
    free(capture_end(&fx->cap)); /* store.down: expected */
    expect_fail(&t, AG_UNAVAILABLE, "may be");
    proxy_stop(&px);
    /* The server finishes t's transaction once its sleep ends. */
    pg_wait_long(fx->pgdb, "SELECT count(*) FROM events WHERE agent_id = 'u1'", 2);
}

/* A value PostgreSQL rejects (a NUL byte in text) fails only its own write, INVALID_ARGUMENT,
 * and the seq it would have taken goes to the next append. */
static void test_pg_bad_value(void **state)
{
    struct fx *fx = *state;
    fx->st = open_url(fx->url, NULL);
    struct tracker *tr = &fx->tr;
    struct twrite t[3];
    for (int i = 0; i < 3; i++)
        tw_init(&t[i], tr);
    tw_insert(&t[0], "v1", NULL, 1);
    tw_append(&t[0], "v1", KIND_SPAWNED, "{}");
    tw_append(&t[1], "v1", KIND_INPUT, "");
    t[1].ops[0].u.event.payload = "a\0b";
    t[1].ops[0].u.event.payload_len = 3;
    tw_append(&t[2], "v1", KIND_INPUT, "{}");
    hub_store__pause(fx->st, true);
    for (int i = 0; i < 3; i++)
        submit_ok(fx->st, &t[i]);
    hub_store__pause(fx->st, false);
    wait_done(tr, 3);
    expect_ok(&t[0]);
    expect_fail(&t[1], AG_INVALID_ARGUMENT, "v1");
    expect_ok(&t[2]);
    assert_int_equal(t[2].seq[0], 2);
}

int main(int argc, char **argv)
{
    ag_log_init("test", AG_LOG_ERROR);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "r");
        if (!f || !fgets(pg_conninfo, sizeof(pg_conninfo), f)) {
            fprintf(stderr, "cannot read a conninfo from '%s'\n", argv[1]);
            return 1;
        }
        fclose(f);
        pg_conninfo[strcspn(pg_conninfo, "\n")] = '\0';
        pg_run = true;
    }
    const struct CMUnitTest both[] = {
        cmocka_unit_test_setup_teardown(test_seq_per_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_one_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_failure_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_and_closing, setup, teardown),
    };
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_db_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_db_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_db_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_wal_deleted, setup, teardown),
    };
    const struct CMUnitTest pg_only[] = {
        cmocka_unit_test_setup_teardown(test_pg_exclusive_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrate_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrate_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_fence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_down_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_bad_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_commit_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_commit_reply_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_commit_outcome_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_commit_outcome_close, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("both", both, NULL, NULL);
    if (pg_run)
        return failed + cmocka_run_group_tests_name("postgres", pg_only, NULL, NULL);
    return failed + cmocka_run_group_tests_name("sqlite", sqlite_only, NULL, NULL);
}
