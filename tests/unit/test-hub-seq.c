/* tests/unit/test-hub-seq.c - event sequencing through an embedded hub, over gRPC.
 *
 * Each test starts a hub on 127.0.0.1:0 with a SQLite store in a fresh mkdtemp directory and
 * talks to it with common/rpc/client.h and the generated agentry.v1 messages. No node connects,
 * so a spawned agent stays pending and every SendMessage just appends an INPUT event: the
 * purest path through the agent's write pipeline, the store's seq assignment and Trace.
 * Client threads only record; every assert runs on the test's thread. Waits are blocking calls
 * with deadlines (the hub answers only once durable), never sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/log.h"
#include "common/rpc/client.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/hub.h"
#include "hub/hub_internal.h"
#include "hub/limits.h" /* HUB_MAX_INBOX, HUB_RING_SIZE: the limits under test */

#define CALL_MS 10000
#define M_SPAWN "/agentry.v1.AgentHub/Spawn"
#define M_SEND "/agentry.v1.AgentHub/SendMessage"
#define M_TRACE "/agentry.v1.AgentHub/Trace"
#define M_GET "/agentry.v1.AgentHub/GetAgent"
#define KIND_SPAWNED AGENTRY__V1__EVENT_KIND__EVENT_KIND_SPAWNED
#define KIND_INPUT AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT
#define STATE_PENDING AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING
#define THREADS 8
#define PER_THREAD 200

/* --- fixture: a temp dir, a hub on it, a channel to the hub ---------------------------------- */

struct fx {
    char dir[64];
    char url[128];
    struct hub *hub;
    struct rpc_channel *ch;
};

static struct hub *hub_open(const char *url, struct ag_err *err)
{
    struct hub_opts o = {.listen = "127.0.0.1:0", .store_url = url, .threads = 2};
    return hub_new(&o, err);
}

/* Start serving h (from hub_open) and connect to it. */
static void hub_serve(struct fx *fx, struct hub *h, struct ag_err *err)
{
    fx->hub = h;
    if (!h)
        fail_msg("hub: %s %s", ag_code_name(err->code), err->msg);
    hub_start(h);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", hub_port(h));
    fx->ch = rpc_channel_new(target, NULL, err);
    assert_non_null(fx->ch);
}

static void hub_down(struct fx *fx)
{
    rpc_channel_free(fx->ch);
    fx->ch = NULL;
    if (fx->hub) {
        hub_stop(fx->hub);
        hub_free(fx->hub);
    }
    fx->hub = NULL;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-hub-seq-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->url, sizeof(fx->url), "sqlite:%s/h.db", fx->dir);
    struct ag_err err = AG_ERR_INIT;
    hub_serve(fx, hub_open(fx->url, &err), &err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    hub_down(fx);
    static const char *const files[] = {"h.db", "h.db-wal", "h.db-shm", "h.db-journal"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", fx->dir, files[i]);
        unlink(p);
    }
    int rc = rmdir(fx->dir);
    free(fx);
    return rc;
}

/* --- calls (no cmocka asserts: client threads use them too) ---------------------------------- */

struct spawned {
    char id[AG_ID_LEN + 1];
    uint64_t input_seq;
    bool existing;
    int state;
};

static int spawn_raw(struct fx *fx, const char *input, const char *request_id, struct spawned *out,
                     struct ag_err *err)
{
    Agentry__V1__SpawnRequest req = AGENTRY__V1__SPAWN_REQUEST__INIT;
    req.input = (char *)(input ? input : "");
    req.request_id = (char *)(request_id ? request_id : "");
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    Agentry__V1__SpawnResponse *r = NULL;
    int rc = rpc_unary(fx->ch, M_SPAWN, &req.base, &agentry__v1__spawn_response__descriptor, &ar,
                       (void **)&r, CALL_MS, err);
    if (rc == 0) {
        snprintf(out->id, sizeof(out->id), "%s", r->agent_id);
        out->input_seq = r->input_seq;
        out->existing = r->existing;
        out->state = r->state;
    }
    ag_arena_release(&ar);
    return rc;
}

/* The seq of the stored input, or 0 with err set. */
static uint64_t send_msg(struct fx *fx, const char *agent_id, const char *text, struct ag_err *err)
{
    Agentry__V1__SendMessageRequest req = AGENTRY__V1__SEND_MESSAGE_REQUEST__INIT;
    req.agent_id = (char *)agent_id;
    req.input = (char *)text;
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    Agentry__V1__SendMessageResponse *r = NULL;
    uint64_t seq = 0;
    if (rpc_unary(fx->ch, M_SEND, &req.base, &agentry__v1__send_message_response__descriptor, &ar,
                  (void **)&r, CALL_MS, err) == 0)
        seq = r->seq;
    ag_arena_release(&ar);
    return seq;
}

/* GetAgent: the agent (in ar), or NULL with err set. */
static Agentry__V1__Agent *get_agent(struct fx *fx, const char *id, struct ag_arena *ar,
                                     struct ag_err *err)
{
    Agentry__V1__GetAgentRequest req = AGENTRY__V1__GET_AGENT_REQUEST__INIT;
    req.agent_id = (char *)id;
    Agentry__V1__Agent *a = NULL;
    rpc_unary(fx->ch, M_GET, &req.base, &agentry__v1__agent__descriptor, ar, (void **)&a, CALL_MS,
              err);
    return a;
}

static enum ag_code get_code(struct fx *fx, const char *id)
{
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    get_agent(fx, id, &ar, &err);
    ag_arena_release(&ar);
    return err.code;
}

static int spawn(struct fx *fx, const char *input, const char *request_id, struct spawned *out,
                 struct ag_err *err)
{
    return spawn_raw(fx, input, request_id, out, err);
}

static void spawn_ok(struct fx *fx, const char *input, struct spawned *out)
{
    struct ag_err err = AG_ERR_INIT;
    if (spawn(fx, input, NULL, out, &err) != 0)
        fail_msg("Spawn: %s %s", ag_code_name(err.code), err.msg);
}

/* n SendMessages from this thread; returns the last seq. */
static uint64_t send_n(struct fx *fx, const char *id, unsigned n)
{
    uint64_t seq = 0;
    for (unsigned i = 0; i < n; i++) {
        struct ag_err err = AG_ERR_INIT;
        char text[32];
        snprintf(text, sizeof(text), "m%u", i);
        seq = send_msg(fx, id, text, &err);
        if (!seq)
            fail_msg("SendMessage %u: %s %s", i, ag_code_name(err.code), err.msg);
    }
    return seq;
}

/* How far a trace read in another thread has got, for the test thread to wait on. */
struct progress {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t last; /* seq of the last event received */
};

struct trace_ev {
    uint64_t seq;
    int kind;
};

/* A trace, as far as it went: events in arrival order. */
struct trace {
    struct trace_ev *ev;
    size_t n, cap;
    int rc; /* rpc_stream_next's last result: 0 ended OK, -1 error, 1 stopped by us */
    struct ag_err err;
    struct progress *prog; /* optional: told of each event */
};

static void progress_init(struct progress *p)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->last = 0;
}

static void progress_set(struct progress *p, uint64_t seq)
{
    pthread_mutex_lock(&p->mu);
    p->last = seq;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits (at most CALL_MS) until the reader has received seq; returns the last seq it has. */
static uint64_t progress_wait(struct progress *p, uint64_t seq)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += CALL_MS / 1000;
    pthread_mutex_lock(&p->mu);
    while (p->last < seq)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) != 0)
            break;
    uint64_t got = p->last;
    pthread_mutex_unlock(&p->mu);
    return got;
}

/* Reads a trace; with stop_at, stops (and cancels) once that seq has arrived. */
static void trace_read(struct fx *fx, const char *id, uint64_t from, bool follow, uint64_t stop_at,
                       struct progress *prog, struct trace *t)
{
    memset(t, 0, sizeof(*t));
    t->prog = prog;
    Agentry__V1__TraceRequest req = AGENTRY__V1__TRACE_REQUEST__INIT;
    req.agent_id = (char *)id;
    req.from_seq = from;
    req.follow = follow;
    struct rpc_stream *s = rpc_stream_open(fx->ch, M_TRACE, &req.base, CALL_MS, &t->err);
    t->rc = s ? 1 : -1;
    while (s && t->rc == 1) {
        struct ag_arena ar;
        ag_arena_init(&ar, NULL, 0);
        Agentry__V1__TraceEvent *ev = NULL;
        t->rc = rpc_stream_next(s, &agentry__v1__trace_event__descriptor, &ar, (void **)&ev,
                                &t->err);
        if (t->rc == 1) {
            if (t->n == t->cap)
                t->ev = realloc(t->ev, (t->cap = t->cap ? 2 * t->cap : 256) * sizeof(*t->ev));
            t->ev[t->n].seq = ev->seq;
            t->ev[t->n++].kind = ev->kind;
            if (t->prog)
                progress_set(t->prog, ev->seq);
        }
        ag_arena_release(&ar);
        if (t->rc == 1 && stop_at && t->ev[t->n - 1].seq >= stop_at)
            break;
    }
    rpc_stream_free(s); /* cancels a follow that is still open */
}

/* Exactly first..last, once each, in order; SPAWNED at 1 and INPUT everywhere else. */
static void assert_trace(const struct trace *t, uint64_t first, uint64_t last)
{
    if (t->rc < 0)
        fail_msg("Trace: %s %s", ag_code_name(t->err.code), t->err.msg);
    assert_int_equal(t->n, last >= first ? last - first + 1 : 0);
    for (size_t i = 0; i < t->n; i++) {
        assert_int_equal(t->ev[i].seq, first + i);
        assert_int_equal(t->ev[i].kind, t->ev[i].seq == 1 ? KIND_SPAWNED : KIND_INPUT);
    }
}

/* --- spawn ------------------------------------------------------------------------------------ */

static void test_spawn_input_seq(void **state)
{
    struct fx *fx = *state;
    struct spawned a, b;
    spawn_ok(fx, "hello", &a);
    assert_int_equal(strlen(a.id), AG_ID_LEN);
    assert_int_equal(a.input_seq, 2);
    assert_false(a.existing);
    assert_int_equal(a.state, STATE_PENDING); /* no node to run it */
    /* Without input: only SPAWNED, and the agent waits idle. */
    spawn_ok(fx, NULL, &b);
    assert_int_equal(b.input_seq, 0);
    assert_int_equal(b.state, AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE);
    assert_string_not_equal(a.id, b.id);
    struct trace t;
    trace_read(fx, a.id, 0, false, 0, NULL, &t);
    assert_trace(&t, 1, 2);
    free(t.ev);
    trace_read(fx, b.id, 1, false, 0, NULL, &t);
    assert_trace(&t, 1, 1);
    free(t.ev);
}

/* n Spawns; without a request_id (and input) each is followed at once by a GetAgent. */
struct spawner {
    struct fx *fx;
    unsigned n;
    const char *request_id;
    unsigned missing, failed;
    struct spawned last;
    pthread_t th;
};

static void *spawner_main(void *arg)
{
    struct spawner *sp = arg;
    for (unsigned i = 0; i < sp->n; i++) {
        struct ag_err err = AG_ERR_INIT;
        if (sp->request_id)
            sp->failed += spawn(sp->fx, "go", sp->request_id, &sp->last, &err) != 0;
        else if (spawn_raw(sp->fx, NULL, NULL, &sp->last, &err) != 0)
            sp->failed++;
        else
            sp->missing += get_code(sp->fx, sp->last.id) == AG_NOT_FOUND;
    }
    return NULL;
}

/* Spinners keep the CPUs busy so that the store's writer thread is preempted now and then
 * between the reply and the publish (see below). */
static atomic_bool spin_stop;

static void *spinner_main(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        ;
    return NULL;
}

/* An agent is findable as soon as Spawn answers: a GetAgent right after it never gets
 * NOT_FOUND. (It once could: the id entered the table after the reply went out.) 8 threads x 100
 * Spawn+GetAgent with the CPUs kept busy, which used to expose it in most runs. */
static void test_spawn_visible_at_reply(void **state)
{
    struct fx *fx = *state;
    pthread_t spin[8];
    atomic_store(&spin_stop, false);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&spin[i], NULL, spinner_main, NULL), 0);
    struct spawner sp[THREADS];
    for (size_t i = 0; i < THREADS; i++) {
        sp[i] = (struct spawner){.fx = fx, .n = 100};
        assert_int_equal(pthread_create(&sp[i].th, NULL, spawner_main, &sp[i]), 0);
    }
    unsigned missing = 0, failed = 0;
    for (size_t i = 0; i < THREADS; i++) {
        pthread_join(sp[i].th, NULL);
        missing += sp[i].missing;
        failed += sp[i].failed;
    }
    atomic_store(&spin_stop, true);
    for (size_t i = 0; i < 8; i++)
        pthread_join(spin[i], NULL);
    assert_int_equal(failed, 0);
    if (missing)
        print_error("%u of %d agents were not found right after Spawn answered\n", missing,
                    THREADS * 100);
    assert_int_equal(missing, 0);
}

/* A retry with the same request_id returns the first agent and stores nothing. */
static void test_spawn_idempotent(void **state)
{
    struct fx *fx = *state;
    struct spawned a, again;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(spawn(fx, "first", "req-1", &a, &err), 0);
    assert_false(a.existing);
    assert_int_equal(a.input_seq, 2);
    assert_int_equal(spawn(fx, "second", "req-1", &again, &err), 0);
    assert_true(again.existing);
    assert_string_equal(again.id, a.id);
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    Agentry__V1__Agent *g = get_agent(fx, a.id, &ar, &err);
    assert_non_null(g);
    assert_int_equal(g->last_seq, 2);
    ag_arena_release(&ar);
    /* Another key is another agent. */
    struct spawned other;
    assert_int_equal(spawn(fx, "x", "req-2", &other, &err), 0);
    assert_false(other.existing);
    assert_string_not_equal(other.id, a.id);

    /* Racing retries: one creates, the others wait for its commit and get its id. */
    struct spawner sp[THREADS];
    for (size_t i = 0; i < THREADS; i++) {
        sp[i] = (struct spawner){.fx = fx, .n = 1, .request_id = "req-race"};
        assert_int_equal(pthread_create(&sp[i].th, NULL, spawner_main, &sp[i]), 0);
    }
    unsigned created = 0;
    for (size_t i = 0; i < THREADS; i++) {
        pthread_join(sp[i].th, NULL);
        assert_int_equal(sp[i].failed, 0);
        assert_string_equal(sp[i].last.id, sp[0].last.id);
        created += !sp[i].last.existing;
    }
    assert_int_equal(created, 1);
    struct trace t;
    trace_read(fx, sp[0].last.id, 1, false, 0, NULL, &t);
    assert_trace(&t, 1, 2); /* one SPAWNED, one INPUT: the retries stored nothing */
    free(t.ev);
}

/* --- concurrent SendMessage ------------------------------------------------------------------ */

struct sender {
    struct fx *fx;
    const char *agent_id;
    unsigned n;
    uint64_t *seqs; /* n slots; 0 where refused */
    unsigned refused;
    enum ag_code refused_code;
    char refused_msg[256];
    pthread_t th;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    for (unsigned i = 0; i < s->n; i++) {
        struct ag_err err = AG_ERR_INIT;
        char text[48];
        snprintf(text, sizeof(text), "from %p #%u", (void *)s, i);
        s->seqs[i] = send_msg(s->fx, s->agent_id, text, &err);
        if (!s->seqs[i] && s->refused++ == 0) {
            s->refused_code = err.code;
            snprintf(s->refused_msg, sizeof(s->refused_msg), "%s", err.msg);
        }
    }
    return NULL;
}

static void run_senders(struct sender *s, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        s[i].seqs = calloc(s[i].n, sizeof(uint64_t));
        assert_int_equal(pthread_create(&s[i].th, NULL, sender_main, &s[i]), 0);
    }
    for (size_t i = 0; i < k; i++)
        pthread_join(s[i].th, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1600 inputs race for one agent. Nothing consumes them (no node), so the hub takes inputs
 * until HUB_MAX_INBOX wait (the spawn's included) and refuses the rest with
 * RESOURCE_EXHAUSTED; a refusal must not use up a seq. Every accepted seq is unique and together
 * they are exactly 3..2+accepted. */
static void test_concurrent_sends_one_agent(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    spawn_ok(fx, "go", &a);
    struct sender s[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        s[i] = (struct sender){.fx = fx, .agent_id = a.id, .n = PER_THREAD};
    run_senders(s, THREADS);

    const unsigned total = THREADS * PER_THREAD;
    const unsigned want = total < HUB_MAX_INBOX - 1 ? total : HUB_MAX_INBOX - 1;
    uint64_t *all = calloc(total, sizeof(*all));
    unsigned n = 0, refused = 0;
    for (size_t i = 0; i < THREADS; i++) {
        for (unsigned j = 0; j < s[i].n; j++)
            if (s[i].seqs[j])
                all[n++] = s[i].seqs[j];
        refused += s[i].refused;
        if (s[i].refused) {
            assert_int_equal(s[i].refused_code, AG_RESOURCE_EXHAUSTED);
            assert_non_null(strstr(s[i].refused_msg, "inputs waiting"));
        }
        uint64_t prev = 0; /* one thread's calls are sequential: its seqs grow */
        for (unsigned j = 0; j < s[i].n; j++)
            if (s[i].seqs[j]) {
                assert_true(s[i].seqs[j] > prev);
                prev = s[i].seqs[j];
            }
        free(s[i].seqs);
    }
    assert_int_equal(n, want);
    assert_int_equal(refused, total - want);
    qsort(all, n, sizeof(*all), cmp_u64);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(all[i], 3 + i);
    free(all);

    struct trace t;
    trace_read(fx, a.id, 1, false, 0, NULL, &t);
    assert_trace(&t, 1, 2 + want);
    free(t.ev);
}

/* Eight agents, one sender each: per agent the seqs are 3, 4, 5... in call order. */
static void test_concurrent_sends_many_agents(void **state)
{
    struct fx *fx = *state;
    struct spawned a[THREADS];
    struct sender s[THREADS];
    for (size_t i = 0; i < THREADS; i++) {
        spawn_ok(fx, "go", &a[i]);
        s[i] = (struct sender){.fx = fx, .agent_id = a[i].id, .n = PER_THREAD};
    }
    run_senders(s, THREADS);
    for (size_t i = 0; i < THREADS; i++) {
        assert_int_equal(s[i].refused, 0);
        for (unsigned j = 0; j < PER_THREAD; j++)
            assert_int_equal(s[i].seqs[j], 3 + j);
        free(s[i].seqs);
        struct trace t;
        trace_read(fx, a[i].id, 1, false, 0, NULL, &t);
        assert_trace(&t, 1, 2 + PER_THREAD);
        free(t.ev);
    }
}

/* --- Trace ------------------------------------------------------------------------------------ */

struct follower {
    struct fx *fx;
    const char *agent_id;
    uint64_t from, stop_at;
    struct trace t;
    struct progress prog;
    pthread_t th;
};

static void *follower_main(void *arg)
{
    struct follower *f = arg;
    trace_read(f->fx, f->agent_id, f->from, true, f->stop_at, &f->prog, &f->t);
    return NULL;
}

static void follower_start(struct follower *f)
{
    progress_init(&f->prog);
    assert_int_equal(pthread_create(&f->th, NULL, follower_main, f), 0);
}

/* Joins the reader (bounded: its Trace call has a CALL_MS deadline). */
static void follower_join(struct follower *f)
{
    pthread_join(f->th, NULL);
    pthread_cond_destroy(&f->prog.cv);
    pthread_mutex_destroy(&f->prog.mu);
}

/* A follower has read the replay (1..2), so it is registered, before a burst of 400 inputs
 * from 4 threads; it must see each new seq exactly once, in order, then stop and cancel. */
static void test_follow_sees_burst(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    spawn_ok(fx, "go", &a);
    enum { BURST = 4, EACH = 100 };
    struct follower f = {.fx = fx, .agent_id = a.id, .from = 1, .stop_at = 2 + BURST * EACH};
    follower_start(&f);
    assert_int_equal(progress_wait(&f.prog, 2), 2);
    struct sender s[BURST];
    for (size_t i = 0; i < BURST; i++)
        s[i] = (struct sender){.fx = fx, .agent_id = a.id, .n = EACH};
    run_senders(s, BURST);
    for (size_t i = 0; i < BURST; i++) {
        assert_int_equal(s[i].refused, 0);
        free(s[i].seqs);
    }
    follower_join(&f);
    assert_trace(&f.t, 1, 2 + BURST * EACH);
    free(f.t.ev);
}

/* from_seq k returns exactly k..last, for k inside the ring, outside it, and past the end. */
static void test_trace_from_seq(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    spawn_ok(fx, "go", &a);
    uint64_t last = send_n(fx, a.id, 148);
    assert_int_equal(last, 150);
    const uint64_t from[] = {
        0,        1,    2,        3,         50, last - HUB_RING_SIZE, last - HUB_RING_SIZE + 1,
        last - 1, last, last + 1, last + 100};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        struct trace t;
        trace_read(fx, a.id, from[i], false, 0, NULL, &t);
        assert_int_equal(t.rc, 0);
        assert_trace(&t, from[i] ? from[i] : 1, last);
        free(t.ev);
    }
}

/* A follower starting 500 events back is far behind the in-memory ring: it replays from the
 * store, then goes on live without a gap or a repeat when a new input arrives. */
static void test_follow_from_store(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    spawn_ok(fx, "go", &a);
    uint64_t last = send_n(fx, a.id, 498);
    assert_int_equal(last, 500);
    assert_true(last > 2 * HUB_RING_SIZE);
    struct follower f = {.fx = fx, .agent_id = a.id, .from = 1, .stop_at = last + 1};
    follower_start(&f);
    assert_int_equal(progress_wait(&f.prog, last), last); /* the replay, all from the store */
    assert_int_equal(send_n(fx, a.id, 1), last + 1);
    follower_join(&f);
    assert_trace(&f.t, 1, last + 1);
    free(f.t.ev);
    /* A follower that hangs up in the middle of the replay, with a store read in flight, and
     * the hub freed right after (teardown): ASan checks nothing is touched late. */
    struct trace t;
    trace_read(fx, a.id, 1, true, 10, NULL, &t);
    assert_trace(&t, 1, 10);
    free(t.ev);
}

/* The ring of recent events is bounded in bytes, not only in events (an idle agent with big
 * inputs used to keep 64 of them, 1.85 MB for 300 KB inputs), and freed when its last follower
 * leaves. Regression for issue point 15. */
static size_t ring_bytes(struct fx *fx, const char *id)
{
    struct hub_agent *ag = hub_agents_find(&fx->hub->agents, id);
    assert_non_null(ag);
    pthread_mutex_lock(&ag->lock);
    size_t n = ag->ring.bytes;
    pthread_mutex_unlock(&ag->lock);
    return n;
}

static void test_ring_bounded_in_bytes(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    spawn_ok(fx, "go", &a);
    enum { N = 24, SIZE = 40 * 1024 }; /* 960 KB of inputs, each under a quarter of the ring */
    char *text = malloc(SIZE + 1);
    memset(text, 'r', SIZE);
    text[SIZE] = '\0';
    /* The follower stays until one input after the checks: it must not hang up (and free the
     * ring) while they run. */
    struct follower f = {.fx = fx, .agent_id = a.id, .from = 1, .stop_at = 3 + N};
    follower_start(&f);
    assert_int_equal(progress_wait(&f.prog, 2), 2); /* registered: the ring fills from now */
    struct ag_err err = AG_ERR_INIT;
    for (int i = 0; i < N; i++) {
        assert_int_equal(send_msg(fx, a.id, text, &err), 3 + i);
        assert_true(ring_bytes(fx, a.id) <= HUB_RING_BYTES);
    }
    assert_true(ring_bytes(fx, a.id) >= HUB_RING_BYTES / 2); /* the ring is used, not bypassed */
    assert_int_equal(send_msg(fx, a.id, "last", &err), 3 + N);
    follower_join(&f);
    assert_trace(&f.t, 1, 3 + N);
    free(f.t.ev);
    /* The follower's call ends on the hub's side after it hung up: the ring goes with it. */
    for (int i = 0; i < 5000 && ring_bytes(fx, a.id) != 0; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* polls the effect of a cancel */
    assert_int_equal(ring_bytes(fx, a.id), 0);
    free(text);
}

/* Regression for issue point 5: with two hubs on one file, an agent wedged with a raw "UNIQUE
 * constraint failed" answered as ALREADY_EXISTS, a code hub.proto never promises. A store that
 * disagrees with the hub (here: a row written behind its back) is INTERNAL, saying so; the
 * agent then goes on. */
static void test_store_disagreement_is_internal(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    spawn_ok(fx, "go", &a);
    sqlite3 *db;
    char path[128], sql[256];
    snprintf(path, sizeof(path), "%s/h.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    snprintf(sql, sizeof(sql),
             "INSERT INTO events(agent_id, seq, kind, payload, node_id, "
             "time_ns) VALUES('%s', 3, 2, '{\"text\":\"sneaked\"}', '', 0)",
             a.id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(send_msg(fx, a.id, "hello", &err), 0);
    assert_int_equal(err.code, AG_INTERNAL);
    assert_non_null(strstr(err.msg, "the hub and its store disagree"));
    assert_int_equal(send_msg(fx, a.id, "again", &err), 4); /* the store's truth is reloaded */
}

/* --- restart ---------------------------------------------------------------------------------- */

struct opener {
    const char *url;
    struct hub *hub;
    struct ag_err err;
};

static void *opener_main(void *arg)
{
    struct opener *o = arg;
    o->hub = hub_open(o->url, &o->err);
    return NULL;
}

/* hub_new on the existing file, on a thread of its own so that a hang fails the test instead of
 * stalling it until ctest's timeout. */
static void hub_reopen(struct fx *fx)
{
    static struct opener o; /* static: a stuck opener thread keeps using it */
    o = (struct opener){.url = fx->url, .err = AG_ERR_INIT};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += CALL_MS / 1000;
    if (pthread_timedjoin_np(th, NULL, &dl) != 0) {
        pthread_detach(th);
        fail_msg("hub_new on a store with agents did not return in %d ms", CALL_MS);
    }
    hub_serve(fx, o.hub, &o.err);
}

/* A restarted hub continues each agent's log where it stopped. (At commit 445b018 hub_new
 * deadlocked here: load_agent() called hub_store_scan_events() from inside the store's agents
 * callback (now hub_store_select_agents'), both taking the store's rconn_mu; hub_reopen's bounded
 * wait turns such a regression into a failure instead of a hang.) */
static void test_restart_keeps_seq(void **state)
{
    struct fx *fx = *state;
    struct spawned a;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(spawn(fx, "go", "req-restart", &a, &err), 0);
    assert_int_equal(send_n(fx, a.id, 10), 12);
    hub_down(fx);
    hub_reopen(fx);

    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    Agentry__V1__Agent *g = get_agent(fx, a.id, &ar, &err);
    assert_non_null(g);
    assert_int_equal(g->last_seq, 12);
    assert_int_equal(g->state, STATE_PENDING);
    assert_int_equal(g->pending_inputs, 11);
    ag_arena_release(&ar);
    assert_int_equal(send_msg(fx, a.id, "after restart", &err), 13);
    /* The request id survives too. */
    struct spawned again;
    assert_int_equal(spawn(fx, "go", "req-restart", &again, &err), 0);
    assert_true(again.existing);
    assert_string_equal(again.id, a.id);
    struct trace t;
    trace_read(fx, a.id, 1, false, 0, NULL, &t);
    assert_trace(&t, 1, 13);
    free(t.ev);
}

int main(void)
{
    ag_log_init("test", AG_LOG_ERROR);
    rpc_client_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spawn_input_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_visible_at_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_sends_one_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_sends_many_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_sees_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_from_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_from_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_bounded_in_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_disagreement_is_internal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_seq, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rpc_client_shutdown();
    return rc;
}
