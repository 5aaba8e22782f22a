/* tests/unit/test-wk-runner.c - the runner end to end (worker/runner.c, run.c, run_event.c)
 * with the mock provider and the echo tool.
 *
 * The emit function unpacks every NodeEvent and records it; tests wait on a condvar, with a
 * generous deadline, for the events they expect. Where a test needs a run to be held at a known
 * point (deliver mid-turn, cancel, 20 runs in flight), a "gate" timer blocks the timer thread:
 * model and tool completions all arrive through it, so nothing completes until the gate opens.
 * Runs park on their TOOL_CALL and TOOL_RESULT until the hub stores them: the emit sink
 * acknowledges them from the timer thread, as the node's connection thread would, or holds them
 * until the test acks (setup_durable). It can also report the queues full (runs park until the
 * test makes room). Assignments with stored steps show a resumed turn doing nothing twice. A
 * fake hub link (setup_hub) answers hub tool calls from the timer thread, as the node's
 * connection would: a "wait" answer makes the run let go of its turn with WAITING.
 * Nothing sleeps and nothing asserts on timing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timers.h"
#include "worker/hub_call.h"
#include "worker/runner.h"

#define WAIT_SECONDS 30

#define K_MODEL_REQUEST AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST
#define K_MODEL_REPLY AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY
#define K_TOOL_CALL AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL
#define K_TOOL_RESULT AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT
#define K_FINAL AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL
#define K_YIELD AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD
#define K_ERROR AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR
#define K_WAITING AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING
#define K_APPROVAL AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED
#define K_DECIDED AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED
#define K_ANY AGENTRY__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED

struct fix {
    struct ag_timers *timers;
    struct wk_runner *runner;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    Agentry__V1__NodeEvent **ev;
    size_t n, cap;
    unsigned bad_events; /* emitted buffers that did not unpack */
    bool gate_open;
    bool hold_acks; /* completions wait for ack_all; otherwise the timer thread acks each */
    struct ack {
        wk_emit_done_fn *done;
        void *arg;
    } acks[64];
    size_t nacks; /* completions waiting for the test to ack */
    bool full;    /* room() says no */
    struct waiter {
        wk_wake_fn *wake;
        void *arg;
    } waiters[64];
    size_t nwaiters;      /* runs parked on room */
    char released[8][32]; /* agents whose turns were handed back (wk_runner_release) */
    size_t nreleased;
    struct wk_hub_link *link; /* setup_hub: the fake hub's answers */
    bool hub_wait;            /* answer wait_agent with "wait" */
    char hub_last[256];       /* "<name> <arguments>" of the last hub tool call */
};

/* --- recording ----------------------------------------------------------------------------- */

/* A completion acknowledged by the timer thread: never inside emit(), as on a node. */
static void ack_later(void *arg)
{
    struct ack *a = arg;
    a->done(a->arg, NULL);
    free(a);
}

static int emit(void *ctx, uint8_t *buf, size_t len, wk_emit_done_fn *done, void *done_arg)
{
    struct fix *f = ctx;
    Agentry__V1__NodeEvent *e = agentry__v1__node_event__unpack(NULL, len, buf);
    free(buf);
    pthread_mutex_lock(&f->mu);
    if (done && !f->hold_acks) {
        struct ack *a = malloc(sizeof(*a));
        *a = (struct ack){done, done_arg};
        ag_timers_add(f->timers, 0, ack_later, a);
    } else if (done) {
        assert_true(f->nacks < sizeof(f->acks) / sizeof(f->acks[0]));
        f->acks[f->nacks++] = (struct ack){done, done_arg};
    }
    if (!e) {
        f->bad_events++;
    } else {
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->ev = realloc(f->ev, f->cap * sizeof(*f->ev));
        }
        f->ev[f->n++] = e;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static void released(void *ctx, const char *agent_id, uint64_t epoch)
{
    (void)epoch;
    struct fix *f = ctx;
    pthread_mutex_lock(&f->mu);
    assert_true(f->nreleased < 8);
    snprintf(f->released[f->nreleased++], 32, "%s", agent_id);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static bool wait_released(struct fix *f, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&f->mu);
    while (f->nreleased < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    bool ok = f->nreleased >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static bool room(void *ctx, wk_wake_fn *wake, void *arg)
{
    struct fix *f = ctx;
    pthread_mutex_lock(&f->mu);
    bool ok = !f->full;
    if (!ok) {
        assert_true(f->nwaiters < sizeof(f->waiters) / sizeof(f->waiters[0]));
        f->waiters[f->nwaiters++] = (struct waiter){wake, arg};
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/* Call every held completion (err: NULL for stored) outside f->mu, as the node's connection
 * thread does. */
static void ack_all(struct fix *f, const struct ag_err *err)
{
    struct ack acks[64];
    pthread_mutex_lock(&f->mu);
    size_t n = f->nacks;
    memcpy(acks, f->acks, n * sizeof(*acks));
    f->nacks = 0;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++)
        acks[i].done(acks[i].arg, err);
}

/* The queues have room again: wake every parked run. */
static void make_room(struct fix *f)
{
    struct waiter w[64];
    pthread_mutex_lock(&f->mu);
    size_t n = f->nwaiters;
    memcpy(w, f->waiters, n * sizeof(*w));
    f->nwaiters = 0;
    f->full = false;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++)
        w[i].wake(w[i].arg);
}

/* Wait until at least n completions are held (acks) or n runs are parked (waiters). */
static bool wait_held(struct fix *f, bool waiters, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&f->mu);
    while ((waiters ? f->nwaiters : f->nacks) < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    bool ok = (waiters ? f->nwaiters : f->nacks) >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static bool matches(const Agentry__V1__NodeEvent *e, const char *agent, int kind)
{
    return (!agent || strcmp(e->agent_id, agent) == 0) && (kind == K_ANY || (int)e->kind == kind);
}

/* Under f->mu. */
static size_t count_locked(struct fix *f, const char *agent, int kind)
{
    size_t c = 0;
    for (size_t i = 0; i < f->n; i++)
        c += matches(f->ev[i], agent, kind);
    return c;
}

static size_t count(struct fix *f, const char *agent, int kind)
{
    pthread_mutex_lock(&f->mu);
    size_t c = count_locked(f, agent, kind);
    pthread_mutex_unlock(&f->mu);
    return c;
}

static struct timespec deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    return ts;
}

/* Wait until at least n events of agent (NULL: any) and kind (K_ANY: any) were emitted. */
static bool wait_for(struct fix *f, const char *agent, int kind, size_t n)
{
    struct timespec ts = deadline();
    pthread_mutex_lock(&f->mu);
    while (count_locked(f, agent, kind) < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    bool ok = count_locked(f, agent, kind) >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/* The i-th event of agent (events stay valid until teardown). */
static const Agentry__V1__NodeEvent *event_of(struct fix *f, const char *agent, size_t i)
{
    const Agentry__V1__NodeEvent *found = NULL;
    pthread_mutex_lock(&f->mu);
    for (size_t j = 0; j < f->n && !found; j++)
        if (matches(f->ev[j], agent, K_ANY) && i-- == 0)
            found = f->ev[j];
    pthread_mutex_unlock(&f->mu);
    return found;
}

static const Agentry__V1__NodeEvent *last_of(struct fix *f, const char *agent, int kind)
{
    const Agentry__V1__NodeEvent *found = NULL;
    pthread_mutex_lock(&f->mu);
    for (size_t j = 0; j < f->n; j++)
        if (matches(f->ev[j], agent, kind))
            found = f->ev[j];
    pthread_mutex_unlock(&f->mu);
    return found;
}

static void assert_kinds(struct fix *f, const char *agent, const int *want, size_t n)
{
    assert_int_equal(count(f, agent, K_ANY), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(event_of(f, agent, i)->kind, want[i]);
}

/* --- payloads ------------------------------------------------------------------------------ */

static void assert_payload_str(const Agentry__V1__NodeEvent *e, const char *key, const char *want)
{
    cJSON *p = cJSON_Parse(e->payload);
    assert_non_null(p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want);
    cJSON_Delete(p);
}

static void assert_payload_num(const Agentry__V1__NodeEvent *e, const char *key, double want)
{
    cJSON *p = cJSON_Parse(e->payload);
    assert_non_null(p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == want);
    cJSON_Delete(p);
}

static void assert_payload_bool(const Agentry__V1__NodeEvent *e, const char *key, bool want)
{
    cJSON *p = cJSON_Parse(e->payload);
    assert_non_null(p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    assert_true(cJSON_IsBool(v));
    assert_int_equal(cJSON_IsTrue(v), want);
    cJSON_Delete(p);
}

/* --- the gate ------------------------------------------------------------------------------ */

static void gate_wait(void *arg)
{
    struct fix *f = arg;
    struct timespec ts = deadline();
    pthread_mutex_lock(&f->mu);
    while (!f->gate_open)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&f->mu);
}

/* From now until gate_open, no model or tool completion is delivered. */
static void gate_close(struct fix *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate_open = false;
    pthread_mutex_unlock(&f->mu);
    ag_timers_add(f->timers, 0, gate_wait, f);
}

static void gate_open(struct fix *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate_open = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* --- the fake hub ----------------------------------------------------------------------------- */

struct hub_answer {
    struct fix *f;
    uint64_t id;
    bool wait;
};

static void hub_answer_later(void *arg)
{
    struct hub_answer *a = arg;
    Agentry__V1__HubToolResult r = AGENTRY__V1__HUB_TOOL_RESULT__INIT;
    r.id = a->id;
    r.wait = a->wait;
    r.output = a->wait ? "{\"agents\":[\"c1\"]}" : "[{\"agent_id\":\"c1\",\"output\":\"done\"}]";
    wk_hub_link_result(a->f->link, &r);
    free(a);
}

/* The link's send, with its lock held: answer from the timer thread. */
static int hub_send(void *ctx, uint8_t *buf, size_t len)
{
    struct fix *f = ctx;
    Agentry__V1__NodeMessage *m = agentry__v1__node_message__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(m);
    assert_non_null(m->hub_tool);
    struct hub_answer *a = calloc(1, sizeof(*a));
    a->f = f;
    a->id = m->hub_tool->id;
    pthread_mutex_lock(&f->mu);
    a->wait = f->hub_wait;
    snprintf(f->hub_last, sizeof(f->hub_last), "%s %s", m->hub_tool->name, m->hub_tool->arguments);
    pthread_mutex_unlock(&f->mu);
    agentry__v1__node_message__free_unpacked(m, NULL);
    ag_timers_add(f->timers, 0, hub_answer_later, a);
    return 0;
}

/* --- fixture ------------------------------------------------------------------------------- */

/* Options for the runner of the next fix_setup_opts (a test's setup sets them). */
static const char *const *next_model_opts, *const *next_tool_opts;
static size_t next_nmodel_opts, next_ntool_opts, next_keep_bytes;
static bool next_hub;

static int fix_setup_opts(void **state, unsigned threads, bool hold_acks)
{
    struct fix *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->gate_open = true;
    f->hold_acks = hold_acks;
    f->timers = ag_timers_new(NULL);
    if (next_hub)
        f->link = wk_hub_link_new(f->timers, hub_send, f);
    struct wk_runner_opts o = {.threads = threads,
                               .hub = f->link,
                               .emit = emit,
                               .room = room,
                               .released = released,
                               .emit_ctx = f,
                               .timers = f->timers,
                               .keep_bytes = next_keep_bytes,
                               .model_opts = next_model_opts,
                               .nmodel_opts = next_nmodel_opts,
                               .tool_opts = next_tool_opts,
                               .ntool_opts = next_ntool_opts};
    f->runner = wk_runner_new(&o, NULL);
    *state = f;
    return f->timers && f->runner ? 0 : -1;
}

static int fix_setup(void **state, unsigned threads)
{
    return fix_setup_opts(state, threads, false);
}

/* One thread, and tool events park their run until the test acks them. */
static int setup_durable(void **state)
{
    return fix_setup_opts(state, 1, true);
}

/* Two threads, and conversations kept between turns. */
static int setup_keep(void **state)
{
    next_keep_bytes = 1 << 20;
    int rc = fix_setup_opts(state, 2, false);
    next_keep_bytes = 0;
    return rc;
}

static int setup2(void **state)
{
    return fix_setup(state, 2);
}

/* Two threads and a fake hub for hub tools. */
static int setup_hub(void **state)
{
    next_hub = true;
    int rc = fix_setup(state, 2);
    next_hub = false;
    return rc;
}

/* One pool thread: runs are served in queue order, which the cancel tests use as a barrier. */
static int setup1(void **state)
{
    return fix_setup(state, 1);
}

/* Runner first, then timers, as the node does: pending completions then fire into cancelled
 * runs of a freed runner. */
static void fix_stop(struct fix *f)
{
    gate_open(f);
    wk_runner_free(f->runner);
    f->runner = NULL;
    /* What the node does after freeing its runner: the parked runs, cancelled, free themselves. */
    struct ag_err stopped = AG_ERR_INIT;
    ag_err_set(&stopped, AG_CANCELLED, "stopped");
    ack_all(f, &stopped);
    make_room(f);
    wk_hub_link_free(f->link);
    f->link = NULL;
    ag_timers_free(f->timers);
    f->timers = NULL;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    fix_stop(f);
    unsigned bad = f->bad_events;
    for (size_t i = 0; i < f->n; i++)
        agentry__v1__node_event__free_unpacked(f->ev[i], NULL);
    free(f->ev);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return bad == 0 ? 0 : -1;
}

/* --- assignments --------------------------------------------------------------------------- */

struct asg {
    Agentry__V1__Assignment a;
    Agentry__V1__AgentSpec spec;
    Agentry__V1__Input in[4];
    Agentry__V1__Input *inp[4];
    Agentry__V1__Checkpoint cp;
    Agentry__V1__Message msg;
    Agentry__V1__Message *msgp;
    Agentry__V1__TraceEvent step[8];
    Agentry__V1__TraceEvent *stepp[8];
};

static void asg_init(struct asg *s, const char *agent, uint64_t epoch, const char *model,
                     char **tools, size_t ntools, uint32_t max_iterations)
{
    memset(s, 0, sizeof(*s));
    agentry__v1__assignment__init(&s->a);
    agentry__v1__agent_spec__init(&s->spec);
    s->a.agent_id = (char *)agent;
    s->a.epoch = epoch;
    s->a.spec = &s->spec;
    s->spec.model = (char *)model;
    s->spec.tools = tools;
    s->spec.n_tools = ntools;
    s->spec.max_iterations = max_iterations;
    s->a.inputs = s->inp;
    s->a.steps = s->stepp;
}

/* A step an earlier attempt of the turn stored (payload as a node writes it). */
static void asg_step(struct asg *s, uint64_t seq, int kind, const char *payload)
{
    Agentry__V1__TraceEvent *e = &s->step[s->a.n_steps];
    agentry__v1__trace_event__init(e);
    e->seq = seq;
    e->kind = kind;
    e->payload = (char *)payload;
    s->stepp[s->a.n_steps++] = e;
}

static void asg_input(struct asg *s, uint64_t seq, const char *text)
{
    Agentry__V1__Input *in = &s->in[s->a.n_inputs];
    agentry__v1__input__init(in);
    in->seq = seq;
    in->text = (char *)text;
    s->inp[s->a.n_inputs++] = in;
}

/* A checkpoint of one user message, whose inputs up to input_seq are consumed. */
static void asg_checkpoint(struct asg *s, const char *user_text, uint64_t input_seq)
{
    agentry__v1__checkpoint__init(&s->cp);
    agentry__v1__message__init(&s->msg);
    s->msg.role = "user";
    s->msg.content = (char *)user_text;
    s->msgp = &s->msg;
    s->cp.messages = &s->msgp;
    s->cp.n_messages = 1;
    s->cp.input_seq = input_seq;
    s->a.checkpoint = &s->cp;
}

static char *echo_tools[] = {"echo"};

#define STEP_REQ1 "{\"model\":\"mock\",\"iteration\":1,\"messages\":1,\"input_seq\":1}"
#define STEP_REPLY_ECHO                                                                            \
    "{\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"name\":\"echo\","                      \
    "\"arguments\":\"{\\\"text\\\":\\\"a\\\"}\"}],\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}"
#define STEP_CALL_ECHO "{\"id\":\"call_1\",\"name\":\"echo\",\"arguments\":\"{}\"}"

/* An echo turn of `agent` on input 1 (text), whose earlier attempt stored the first nsteps of:
 * the first model call, its reply (echo call_1), the TOOL_CALL, and its TOOL_RESULT (result). */
static void asg_echo_turn(struct asg *s, const char *agent, const char *text, size_t nsteps,
                          const char *result)
{
    asg_init(s, agent, 2, "", echo_tools, 1, 0);
    asg_input(s, 1, text);
    const char *steps[] = {STEP_REQ1, STEP_REPLY_ECHO, STEP_CALL_ECHO, result};
    const int kinds[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_TOOL_CALL, K_TOOL_RESULT};
    for (size_t i = 0; i < nsteps; i++)
        asg_step(s, 2 + i, kinds[i], steps[i]);
}

/* Assign a one-input turn. */
static int start(struct fix *f, const char *agent, uint64_t epoch, const char *text, char **tools,
                 size_t ntools, uint32_t max_iterations, struct ag_err *err)
{
    struct asg s;
    asg_init(&s, agent, epoch, "", tools, ntools, max_iterations);
    asg_input(&s, 1, text);
    return wk_runner_assign(f->runner, &s.a, err);
}

static void assert_msg(const Agentry__V1__Message *m, const char *role, const char *content)
{
    assert_string_equal(m->role, role);
    assert_string_equal(m->content, content);
}

/* --- tests --------------------------------------------------------------------------------- */

static void test_hello_with_echo(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 7, "", echo_tools, 1, 0);
    asg_input(&s, 1, "hello");
    Agentry__V1__Checkpoint cp = AGENTRY__V1__CHECKPOINT__INIT;
    Agentry__V1__Usage before = AGENTRY__V1__USAGE__INIT;
    before.input_tokens = 100;
    before.model_calls = 5;
    cp.usage = &before;
    s.a.checkpoint = &cp;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_runner_assign(f->runner, &s.a, &err), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));

    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_TOOL_CALL, K_TOOL_RESULT,
                        K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a1", want, 7);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(event_of(f, "a1", i)->epoch, 7);
        bool ends = i == 6;
        assert_int_equal(event_of(f, "a1", i)->checkpoint != NULL, ends);
        assert_int_equal(event_of(f, "a1", i)->result != NULL, ends);
    }
    assert_payload_str(event_of(f, "a1", 0), "model", "mock");
    assert_payload_num(event_of(f, "a1", 0), "iteration", 1);
    assert_payload_num(event_of(f, "a1", 0), "messages", 1);
    assert_payload_num(event_of(f, "a1", 4), "iteration", 2);
    assert_payload_num(event_of(f, "a1", 4), "messages", 3);
    assert_payload_str(event_of(f, "a1", 2), "id", "call_1");
    assert_payload_str(event_of(f, "a1", 2), "name", "echo");
    assert_payload_str(event_of(f, "a1", 2), "arguments", "{\"text\":\"hello\"}");
    assert_payload_str(event_of(f, "a1", 3), "output", "hello");
    assert_payload_bool(event_of(f, "a1", 3), "is_error", false);
    assert_payload_str(event_of(f, "a1", 5), "content", "hello");

    const Agentry__V1__NodeEvent *fin = event_of(f, "a1", 6);
    assert_payload_str(fin, "output", "hello");
    assert_payload_num(fin, "iterations", 2);
    assert_string_equal(fin->result->output, "hello");
    assert_string_equal(fin->result->error, "");
    const Agentry__V1__Checkpoint *c = fin->checkpoint;
    /* The conversation is the log (the events above), not the checkpoint. */
    assert_int_equal(c->n_messages, 0);
    assert_int_equal(c->input_seq, 1);
    assert_int_equal(c->iterations, 2);
    assert_int_equal(c->input_seq, 1);

    const Agentry__V1__Usage *turn = fin->result->usage;
    assert_int_equal(turn->model_calls, 2);
    assert_int_equal(turn->tool_calls, 1);
    assert_true(turn->input_tokens > 0);
    assert_int_equal(c->usage->model_calls, 7);
    assert_int_equal(c->usage->tool_calls, 1);
    assert_int_equal(c->usage->input_tokens, 100 + turn->input_tokens);
    assert_int_equal(c->usage->output_tokens, turn->output_tokens);
    /* The run leaves the table before its FINAL is emitted. */
    assert_int_equal(wk_runner_running(f->runner), 0);
}

/* A second turn resumes from the checkpoint: an input already in it is not added twice, and
 * user_state goes back unchanged. */
static void test_resume_from_checkpoint(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 2, "mock", NULL, 0, 0);
    Agentry__V1__Message m0 = AGENTRY__V1__MESSAGE__INIT, m1 = AGENTRY__V1__MESSAGE__INIT;
    m0.role = "user";
    m0.content = "first";
    m1.role = "assistant";
    m1.content = "ok";
    Agentry__V1__Message *msgs[] = {&m0, &m1};
    Agentry__V1__Checkpoint cp = AGENTRY__V1__CHECKPOINT__INIT;
    cp.messages = msgs;
    cp.n_messages = 2;
    cp.input_seq = 3;
    cp.iterations = 1;
    cp.user_state.data = (uint8_t *)"xyz";
    cp.user_state.len = 3;
    s.a.checkpoint = &cp;
    asg_input(&s, 3, "first");
    asg_input(&s, 4, "final second");
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));

    const Agentry__V1__NodeEvent *fin = last_of(f, "a1", K_FINAL);
    assert_string_equal(fin->result->output, "second");
    const Agentry__V1__Checkpoint *c = fin->checkpoint;
    assert_int_equal(c->n_messages, 4);
    assert_msg(c->messages[0], "user", "first");
    assert_msg(c->messages[1], "assistant", "ok");
    assert_msg(c->messages[2], "user", "final second");
    assert_msg(c->messages[3], "assistant", "second");
    assert_int_equal(c->input_seq, 4);
    assert_int_equal(c->iterations, 1); /* this turn's model calls */
    assert_int_equal(c->user_state.len, 3);
    assert_memory_equal(c->user_state.data, "xyz", 3);
}

static void test_loop_yields_at_max_iterations(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "loop", echo_tools, 1, 3, NULL), 0);
    assert_true(wait_for(f, "a1", K_YIELD, 1));
    assert_int_equal(count(f, "a1", K_MODEL_REQUEST), 3);
    assert_int_equal(count(f, "a1", K_MODEL_REPLY), 3);
    assert_int_equal(count(f, "a1", K_TOOL_RESULT), 3);
    assert_int_equal(count(f, "a1", K_FINAL), 0);
    size_t n = count(f, "a1", K_ANY);
    const Agentry__V1__NodeEvent *y = event_of(f, "a1", n - 1);
    assert_int_equal(y->kind, K_YIELD);
    assert_payload_str(y, "reason", "max_iterations");
    assert_payload_num(y, "iterations", 3);
    assert_string_equal(y->result->error, "max_iterations");
    assert_int_equal(y->checkpoint->iterations, 3);
    assert_int_equal(y->checkpoint->n_messages, 0);
    assert_payload_num(last_of(f, "a1", K_MODEL_REQUEST), "messages", 5); /* user + 2 rounds */
}

/* A resumed turn (ResumeAgent): no input, the model is asked again from the checkpoint, and the
 * assignment's own limit overrides the spec's. */
static void test_turn_without_input_asks_the_model_with_its_own_limit(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 2, "mock", echo_tools, 1, 5);
    asg_checkpoint(&s, "loop", 2);
    s.a.max_iterations = 2;
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_YIELD, 1));
    assert_int_equal(count(f, "a1", K_MODEL_REQUEST), 2);
    assert_payload_num(event_of(f, "a1", 0), "messages", 1);
    const Agentry__V1__NodeEvent *y = last_of(f, "a1", K_YIELD);
    assert_payload_num(y, "iterations", 2);
    /* The checkpoint came with the conversation (an older node's): it goes back with it. */
    assert_int_equal(y->checkpoint->n_messages, 5); /* user + 2 x (assistant, tool) */
    assert_int_equal(y->checkpoint->input_seq, 2);
}

static void test_fail_ends_in_error(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "fail boom", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_ERROR, 1));
    const int want[] = {K_MODEL_REQUEST, K_ERROR};
    assert_kinds(f, "a1", want, 2);
    const Agentry__V1__NodeEvent *e = event_of(f, "a1", 1);
    assert_payload_str(e, "message", "boom");
    assert_string_equal(e->result->error, "boom");
    assert_int_equal(e->checkpoint->n_messages, 0);
    assert_int_equal(e->checkpoint->input_seq, 1);
    assert_int_equal(e->result->usage->model_calls, 1);
}

static void test_tool_not_in_spec_is_error_result(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "echo hi", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const Agentry__V1__NodeEvent *tr = last_of(f, "a1", K_TOOL_RESULT);
    assert_non_null(tr);
    assert_payload_bool(tr, "is_error", true);
    assert_payload_str(tr, "output", "tool 'echo' is not enabled for this agent");
    const Agentry__V1__NodeEvent *fin = last_of(f, "a1", K_FINAL);
    assert_string_equal(fin->result->output, "tool 'echo' is not enabled for this agent");
}

/* The gate holds the first reply; the input delivered meanwhile is consumed before the second
 * model call. The mock then answers the new user message ("later": echo it, then final). */
static void test_deliver_mid_turn(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    assert_int_equal(start(f, "a1", 3, "sleep 20; echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_MODEL_REQUEST, 1));
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_runner_deliver(f->runner, "a1", 2, 9, "later", &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_int_equal(wk_runner_deliver(f->runner, "zz", 3, 9, "later", &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_int_equal(wk_runner_deliver(f->runner, "a1", 3, 9, "later", &err), 0);
    gate_open(f);
    assert_true(wait_for(f, "a1", K_FINAL, 1));

    const Agentry__V1__NodeEvent *fin = last_of(f, "a1", K_FINAL);
    const Agentry__V1__Checkpoint *c = fin->checkpoint;
    assert_int_equal(c->input_seq, 9);
    assert_int_equal(c->n_messages, 0);
    assert_string_equal(fin->result->output, "later");
    /* The second model request saw the delivered message. */
    const Agentry__V1__NodeEvent *req2 = event_of(f, "a1", 4);
    assert_int_equal(req2->kind, K_MODEL_REQUEST);
    assert_payload_num(req2, "messages", 4);
    assert_payload_num(req2, "input_seq", 9);
}

/* One pool thread. a1 is cancelled while its reply is held; the reply then arrives and must be
 * dropped. b1, assigned after the gate opens, completes behind a1's reply in both the timer
 * queue and the ready queue, so once b1 is final anything a1 would emit has been emitted. */
static void test_cancel_emits_nothing_more(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    assert_int_equal(start(f, "a1", 1, "echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_MODEL_REQUEST, 1));
    wk_runner_cancel(f->runner, "a1", 2); /* wrong epoch: no-op */
    assert_int_equal(wk_runner_running(f->runner), 1);
    wk_runner_cancel(f->runner, "a1", 1);
    assert_int_equal(wk_runner_running(f->runner), 0);
    assert_int_equal(wk_runner_deliver(f->runner, "a1", 1, 2, "x", NULL), -1);
    gate_open(f);
    assert_int_equal(start(f, "b1", 1, "final z", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "b1", K_FINAL, 1));
    assert_int_equal(count(f, "a1", K_ANY), 1);

    /* The agent may be assigned again (a new epoch) right away. */
    assert_int_equal(start(f, "a1", 2, "final again", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    assert_int_equal(last_of(f, "a1", K_FINAL)->epoch, 2);
    assert_int_equal(count(f, "a1", K_ANY), 4); /* epoch 1: one request; epoch 2: three */
    assert_int_equal(event_of(f, "a1", 0)->epoch, 1);
    assert_int_equal(event_of(f, "a1", 1)->epoch, 2);
}

static void test_cancel_all(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    assert_int_equal(start(f, "a1", 1, "echo a", echo_tools, 1, 0, NULL), 0);
    assert_int_equal(start(f, "a2", 1, "loop", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, NULL, K_MODEL_REQUEST, 2));
    assert_int_equal(wk_runner_running(f->runner), 2);
    wk_runner_cancel_all(f->runner);
    assert_int_equal(wk_runner_running(f->runner), 0);
    gate_open(f);
    assert_int_equal(start(f, "b1", 1, "final z", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "b1", K_FINAL, 1));
    assert_int_equal(count(f, "a1", K_ANY), 1);
    assert_int_equal(count(f, "a2", K_ANY), 1);
}

/* Freeing the runner while a reply is a minute away must neither wait for it nor leak the run:
 * ag_timers_free fires the reply into the cancelled run, which frees itself. */
static void test_free_with_reply_pending(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "sleep 60000; final x", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_MODEL_REQUEST, 1));
    fix_stop(f);
    assert_int_equal(count(f, "a1", K_ANY), 1);
}

/* A second assignment for an agent at the same (or an older) epoch is refused; a newer epoch
 * replaces the run the hub has moved on from, which then emits nothing more. */
static void test_already_exists(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    assert_int_equal(start(f, "a1", 2, "final x", NULL, 0, 0, NULL), 0);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(start(f, "a1", 2, "final y", NULL, 0, 0, &err), -1);
    assert_int_equal(err.code, AG_ALREADY_EXISTS);
    assert_int_equal(start(f, "a1", 1, "final y", NULL, 0, 0, &err), -1);
    assert_int_equal(err.code, AG_ALREADY_EXISTS);
    assert_int_equal(start(f, "a1", 3, "final z", NULL, 0, 0, NULL), 0);
    assert_int_equal(wk_runner_running(f->runner), 1);
    gate_open(f);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "z");
    assert_int_equal(last_of(f, "a1", K_FINAL)->epoch, 3);
    /* The replaced run may have asked its model before it was replaced, but says nothing after:
     * its reply (held by the gate) arrives into a cancelled run. */
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n; i++)
        if (f->ev[i]->epoch == 2)
            assert_int_equal(f->ev[i]->kind, K_MODEL_REQUEST);
    pthread_mutex_unlock(&f->mu);
}

static void test_unknown_provider_and_reject(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 4, "nope/big", NULL, 0, 0);
    asg_checkpoint(&s, "earlier", 2);
    asg_input(&s, 3, "hello");
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_runner_assign(f->runner, &s.a, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "nope/big"));
    assert_int_equal(wk_runner_running(f->runner), 0);

    wk_runner_reject(f->runner, &s.a, err.msg);
    assert_true(wait_for(f, "a1", K_ERROR, 1));
    const int want[] = {K_ERROR};
    assert_kinds(f, "a1", want, 1);
    const Agentry__V1__NodeEvent *e = event_of(f, "a1", 0);
    assert_int_equal(e->epoch, 4);
    assert_payload_str(e, "message", err.msg);
    assert_string_equal(e->result->error, err.msg);
    assert_non_null(e->checkpoint);
    assert_int_equal(e->checkpoint->n_messages, 1);
    assert_int_equal(e->checkpoint->input_seq, 2); /* the input stays unconsumed */
}

/* Twenty runs, each waiting on a delayed reply, on two threads: all twenty reach the model
 * while every reply is held, so no waiting run holds a thread; then all finish. */
static void test_sleeping_runs_hold_no_thread(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    char agent[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(agent[i], sizeof(agent[i]), "s%d", i);
        assert_int_equal(start(f, agent[i], 1, "sleep 100; final x", NULL, 0, 0, NULL), 0);
    }
    assert_true(wait_for(f, NULL, K_MODEL_REQUEST, 20));
    assert_int_equal(count(f, NULL, K_FINAL), 0);
    assert_int_equal(wk_runner_running(f->runner), 20);
    gate_open(f);
    assert_true(wait_for(f, NULL, K_FINAL, 20));
    for (int i = 0; i < 20; i++)
        assert_string_equal(last_of(f, agent[i], K_FINAL)->result->output, "x");
    assert_int_equal(wk_runner_running(f->runner), 0);
}

/* The tool runs only once its TOOL_CALL is stored, and the turn goes on only once
 * the TOOL_RESULT is. The run waits holding no thread: with one pool thread, another agent's
 * turn completes while it is parked. */
static void test_durable_tool_parks_until_stored(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_TOOL_CALL, 1));
    assert_true(wait_held(f, false, 1));
    assert_int_equal(start(f, "b1", 1, "final z", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "b1", K_FINAL, 1));
    assert_int_equal(count(f, "a1", K_TOOL_RESULT), 0);

    ack_all(f, NULL);
    assert_true(wait_for(f, "a1", K_TOOL_RESULT, 1));
    assert_true(wait_held(f, false, 1));
    assert_int_equal(count(f, "a1", K_MODEL_REQUEST), 1);

    ack_all(f, NULL);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_TOOL_CALL, K_TOOL_RESULT,
                        K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a1", want, sizeof(want) / sizeof(want[0]));
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "b");
}

/* A release asked while the model call is under way: the reply is stored first (the run parks
 * on it), then the turn stops before its tool call, and the host hears of it once. */
static void test_release_after_model_call(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    assert_int_equal(start(f, "a1", 1, "echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_MODEL_REQUEST, 1));
    assert_true(wk_runner_release(f->runner, "a1", 1));
    assert_false(wk_runner_release(f->runner, "a1", 2)); /* another epoch: not this turn */
    gate_open(f);
    assert_true(wait_held(f, false, 1)); /* the MODEL_REPLY, parked on */
    assert_int_equal(f->nreleased, 0);
    ack_all(f, NULL);
    assert_true(wait_released(f, 1));
    assert_string_equal(f->released[0], "a1");
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY};
    assert_kinds(f, "a1", want, 2);
    assert_int_equal(wk_runner_running(f->runner), 0);
}

/* A release asked while a tool call waits to be stored: the tool runs (its call is stored),
 * its result is stored, and the turn stops before the next model call. */
static void test_release_after_tool_call(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_TOOL_CALL, 1));
    assert_true(wait_held(f, false, 1));
    assert_true(wk_runner_release(f->runner, "a1", 1));
    ack_all(f, NULL);
    assert_true(wait_for(f, "a1", K_TOOL_RESULT, 1));
    assert_true(wait_held(f, false, 1));
    assert_int_equal(f->nreleased, 0);
    ack_all(f, NULL);
    assert_true(wait_released(f, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_TOOL_CALL, K_TOOL_RESULT};
    assert_kinds(f, "a1", want, 4);
    assert_int_equal(wk_runner_running(f->runner), 0);
}

/* A turn whose next step ends it just ends: FINAL, and nothing is released. */
static void test_release_of_ending_turn(void **state)
{
    struct fix *f = *state;
    gate_close(f);
    assert_int_equal(start(f, "a1", 1, "final b", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_MODEL_REQUEST, 1));
    assert_true(wk_runner_release(f->runner, "a1", 1));
    gate_open(f);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    assert_int_equal(f->nreleased, 0);
}

/* An event parked on that will never be stored ends the turn with an ERROR saying why (on a node
 * the run is cancelled first, as its stream is gone, and ends silently). */
static void test_durable_lost_event_ends_turn(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "echo a", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_held(f, false, 1));
    struct ag_err lost = AG_ERR_INIT;
    ag_err_set(&lost, AG_UNAVAILABLE, "stream lost");
    ack_all(f, &lost);
    assert_true(wait_for(f, "a1", K_ERROR, 1));
    assert_string_equal(last_of(f, "a1", K_ERROR)->result->error, "stream lost");
    assert_int_equal(count(f, "a1", K_TOOL_RESULT), 0);
}

/* A turn resumed from stored steps: what the steps record is not done again. */

/* The reply and its tool result are stored: the next event is the second model call, and the
 * model sees the stored result (not what echo would give now). */
static void test_resume_after_stored_result(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_echo_turn(&s, "a1", "echo a", 4,
                  "{\"id\":\"call_1\",\"name\":\"echo\",\"output\":\"stored\",\"is_error\":false}");
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a1", want, 3);
    assert_payload_num(event_of(f, "a1", 0), "iteration", 2);
    const Agentry__V1__NodeEvent *fin = last_of(f, "a1", K_FINAL);
    assert_string_equal(fin->result->output, "stored");
    assert_payload_num(event_of(f, "a1", 0), "messages", 3); /* user, assistant, tool */
    assert_int_equal(fin->checkpoint->iterations, 2);
}

/* The TOOL_CALL is stored without a result: echo is idempotent, so it runs again (its TOOL_CALL
 * stored again); a model call with no stored reply is asked again as the same iteration. */
static void test_resume_reruns_idempotent_call(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_echo_turn(&s, "a1", "echo a", 3, NULL);
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const int want[] = {K_TOOL_CALL, K_TOOL_RESULT, K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a1", want, 5);
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "a");

    struct asg r;
    asg_echo_turn(&r, "a2", "final done", 1, NULL);
    assert_int_equal(wk_runner_assign(f->runner, &r.a, NULL), 0);
    assert_true(wait_for(f, "a2", K_FINAL, 1));
    const int want2[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a2", want2, 3);
    assert_payload_num(event_of(f, "a2", 0), "iteration", 1);
    assert_payload_num(event_of(f, "a2", 0), "messages", 1);
}

/* A stored reply without tool calls ends the turn at once: no model call. An input the stored
 * steps do not cover joins at the next model call, after the stored result, as a Deliver does. */
static void test_resume_final_and_late_input(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 2, "", NULL, 0, 0);
    asg_input(&s, 1, "final x");
    asg_step(&s, 2, K_MODEL_REQUEST, STEP_REQ1);
    asg_step(&s, 3, K_MODEL_REPLY, "{\"content\":\"x\",\"tool_calls\":[]}");
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const int want[] = {K_FINAL};
    assert_kinds(f, "a1", want, 1);
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "x");

    struct asg r;
    asg_echo_turn(&r, "a2", "echo a; final b", 4,
                  "{\"id\":\"call_1\",\"name\":\"echo\",\"output\":\"a\",\"is_error\":false}");
    asg_input(&r, 6, "final z");
    assert_int_equal(wk_runner_assign(f->runner, &r.a, NULL), 0);
    assert_true(wait_for(f, "a2", K_FINAL, 1));
    const Agentry__V1__NodeEvent *fin = last_of(f, "a2", K_FINAL);
    assert_string_equal(fin->result->output, "z"); /* the mock answered the late input */
    const Agentry__V1__NodeEvent *req2 = event_of(f, "a2", 0);
    assert_payload_num(req2, "messages", 4); /* user, assistant, tool, then the late user */
    assert_payload_num(req2, "input_seq", 6);
    assert_int_equal(fin->checkpoint->input_seq, 6);
}

/* Steps that are not what a node stores end the turn with an ERROR rather than a guess. */
static void test_resume_refuses_unreadable_steps(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 2, "", echo_tools, 1, 0);
    asg_input(&s, 1, "echo a");
    asg_step(&s, 2, K_MODEL_REQUEST, STEP_REQ1);
    asg_step(&s, 3, K_TOOL_CALL, STEP_CALL_ECHO); /* no reply asked for it */
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_ERROR, 1));
    assert_non_null(strstr(last_of(f, "a1", K_ERROR)->result->error, "stored steps"));
    assert_int_equal(count(f, "a1", K_TOOL_RESULT), 0);
}

/* A node that kept the conversation of the agent's last turn starts the next one from it with
 * no history sent (state_epoch); one that kept none for that epoch says so (NOT_FOUND: the node
 * then asks the hub), and a turn that ended elsewhere since makes the kept one stale. */
static void test_kept_conversation_starts_the_next_turn(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));

    struct asg s;
    asg_init(&s, "a1", 2, "", echo_tools, 1, 0);
    asg_input(&s, 6, "final z");
    s.a.state_epoch = 1;
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 2));
    const Agentry__V1__NodeEvent *req = last_of(f, "a1", K_MODEL_REQUEST);
    assert_payload_num(req, "messages", 5); /* the first turn's four, and the new input */
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "z");

    struct ag_err err = AG_ERR_INIT;
    s.a.epoch = 4;
    s.a.state_epoch = 3; /* never ran here */
    assert_int_equal(wk_runner_assign(f->runner, &s.a, &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no longer keeps"));
    s.a.state_epoch = 2; /* it did, but the miss above forgot it: stale for the hub's next ask */
    assert_int_equal(wk_runner_assign(f->runner, &s.a, &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_int_equal(wk_runner_running(f->runner), 0);
}

/* Back-pressure: with the emit queues full, runs park before their next step, holding no
 * thread (two runs park on one thread), and emit nothing until there is room. */
static void test_full_queues_park_runs(void **state)
{
    struct fix *f = *state;
    pthread_mutex_lock(&f->mu);
    f->full = true;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(start(f, "a1", 1, "echo a; final b", echo_tools, 1, 0, NULL), 0);
    assert_int_equal(start(f, "a2", 1, "final c", NULL, 0, 0, NULL), 0);
    assert_true(wait_held(f, true, 2));
    assert_int_equal(count(f, NULL, K_ANY), 0);
    make_room(f);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    assert_true(wait_for(f, "a2", K_FINAL, 1));
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "b");
}

/* A run cancelled while parked on room emits nothing when woken, and frees itself. */
static void test_cancel_while_parked_on_room(void **state)
{
    struct fix *f = *state;
    pthread_mutex_lock(&f->mu);
    f->full = true;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(start(f, "a1", 1, "final b", NULL, 0, 0, NULL), 0);
    assert_true(wait_held(f, true, 1));
    wk_runner_cancel(f->runner, "a1", 1);
    make_room(f);
    assert_int_equal(start(f, "b1", 1, "final z", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "b1", K_FINAL, 1));
    assert_int_equal(count(f, "a1", K_ANY), 0);
}

/* Options reach the calls: mock.timeout cuts a reply a minute away (the turn ends in an
 * ERROR), echo.latency with echo.timeout turns the tool call into an error result. */
static const char *const slow_model_opts[] = {"mock.timeout=20ms"};
static const char *const slow_tool_opts[] = {"echo.latency=1m", "echo.timeout=20ms"};

static int setup_timeouts(void **state)
{
    next_model_opts = slow_model_opts;
    next_nmodel_opts = 1;
    next_tool_opts = slow_tool_opts;
    next_ntool_opts = 2;
    int rc = fix_setup(state, 2);
    next_model_opts = next_tool_opts = NULL;
    next_nmodel_opts = next_ntool_opts = 0;
    return rc;
}

static void test_options_set_deadlines(void **state)
{
    struct fix *f = *state;
    assert_int_equal(start(f, "a1", 1, "sleep 60000; final x", NULL, 0, 0, NULL), 0);
    assert_true(wait_for(f, "a1", K_ERROR, 1));
    assert_string_equal(last_of(f, "a1", K_ERROR)->result->error, "model call to 'mock' timed out");

    assert_int_equal(start(f, "a2", 1, "echo hi; final done", echo_tools, 1, 0, NULL), 0);
    assert_true(wait_for(f, "a2", K_FINAL, 1));
    const Agentry__V1__NodeEvent *res = last_of(f, "a2", K_TOOL_RESULT);
    assert_payload_str(res, "output", "tool 'echo' timed out");
    assert_payload_bool(res, "is_error", true);
}

static char *team_tools[] = {"wait_agent"};

/* The hub answers wait_agent with "wait": the run stores the TOOL_CALL, then lets go of the
 * turn with WAITING (no TOOL_RESULT: the hub stores it), carrying the call and the agents. */
static void test_wait_agent_lets_go_with_waiting(void **state)
{
    struct fix *f = *state;
    f->hub_wait = true;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(
        start(f, "p1", 3, "call wait_agent {\"agents\":[\"c1\"]}", team_tools, 1, 0, &err), 0);
    assert_true(wait_for(f, "p1", K_WAITING, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_TOOL_CALL, K_WAITING};
    assert_kinds(f, "p1", want, 4);
    assert_string_equal(f->hub_last, "wait_agent {\"agents\":[\"c1\"]}");
    const Agentry__V1__NodeEvent *w = event_of(f, "p1", 3);
    assert_int_equal(w->epoch, 3);
    assert_payload_str(w, "id", "call_1");
    assert_payload_num(w, "iterations", 1);
    assert_non_null(strstr(w->payload, "\"agents\":[\"c1\"]"));
    assert_non_null(w->checkpoint);
    assert_int_equal(wk_runner_running(f->runner), 0); /* no slot, no thread */
}

/* Answered at once (the children are done): an ordinary tool result, and the turn goes on. A
 * later attempt replays WAITING and the hub's TOOL_RESULT as steps and asks the model next. */
static void test_wait_agent_answered_and_replayed(void **state)
{
    struct fix *f = *state;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(
        start(f, "p1", 3, "call wait_agent {\"agents\":[\"c1\"]}", team_tools, 1, 0, &err), 0);
    assert_true(wait_for(f, "p1", K_FINAL, 1));
    assert_int_equal(count(f, "p1", K_WAITING), 0);
    assert_payload_str(last_of(f, "p1", K_TOOL_RESULT), "output",
                       "[{\"agent_id\":\"c1\",\"output\":\"done\"}]");

    struct asg s;
    asg_init(&s, "p2", 5, "", team_tools, 1, 0);
    asg_input(&s, 1, "call wait_agent {\"agents\":[\"c1\"]}");
    asg_step(&s, 2, K_MODEL_REQUEST, STEP_REQ1);
    asg_step(&s, 3, K_MODEL_REPLY,
             "{\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"name\":\"wait_agent\","
             "\"arguments\":\"{}\"}]}");
    asg_step(&s, 4, K_TOOL_CALL,
             "{\"id\":\"call_1\",\"name\":\"wait_agent\",\"arguments\":\"{}\"}");
    asg_step(&s, 5, K_WAITING, "{\"id\":\"call_1\",\"agents\":[\"c1\"],\"iterations\":1}");
    asg_step(&s, 6, AGENTRY__V1__EVENT_KIND__EVENT_KIND_CHILD, "{\"agent_id\":\"c1\"}");
    asg_step(&s, 7, K_TOOL_RESULT,
             "{\"id\":\"call_1\",\"name\":\"wait_agent\",\"output\":\"from hub\","
             "\"is_error\":false}");
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "p2", K_FINAL, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "p2", want, 3);
    assert_string_equal(last_of(f, "p2", K_FINAL)->result->output, "from hub");
}

/* The spec's one rule: a person approves every echo call. */
static Agentry__V1__PermissionRule ask_echo = {
    PROTOBUF_C_MESSAGE_INIT(&agentry__v1__permission_rule__descriptor), "echo", "ask", 0, NULL};
static Agentry__V1__PermissionRule *ask_echo_rules[] = {&ask_echo};

static void asg_ask_echo(struct asg *s)
{
    s->spec.permissions = ask_echo_rules;
    s->spec.n_permissions = 1;
}

/* A rule asks: the run stores the TOOL_CALL, then lets go of the turn with APPROVAL_REQUIRED
 * naming the call, its arguments and the rule. Nothing runs, and no slot or thread is held. */
static void test_ask_lets_go_with_approval_required(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_init(&s, "a1", 3, "", echo_tools, 1, 0);
    asg_input(&s, 1, "echo a");
    asg_ask_echo(&s);
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_APPROVAL, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_TOOL_CALL, K_APPROVAL};
    assert_kinds(f, "a1", want, 4);
    const Agentry__V1__NodeEvent *w = event_of(f, "a1", 3);
    assert_payload_str(w, "id", "call_1");
    assert_payload_str(w, "name", "echo");
    assert_payload_str(w, "arguments", "{\"text\":\"a\"}");
    assert_payload_num(w, "iterations", 1);
    assert_non_null(strstr(w->payload, "rule 1 of the agent's spec"));
    assert_int_equal(count(f, "a1", K_TOOL_RESULT), 0);
    assert_int_equal(wk_runner_running(f->runner), 0);
}

/* Approved with edited arguments, on the turn's next attempt: the TOOL_CALL is stored again with
 * them and the call runs once (the approval answers the rule that asks); the model then sees
 * the edited call and its result. */
static void test_approved_call_runs_with_edited_arguments(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_echo_turn(&s, "a1", "echo a", 3, NULL);
    asg_ask_echo(&s);
    asg_step(&s, 5, K_APPROVAL, "{\"id\":\"call_1\",\"name\":\"echo\"}");
    asg_step(&s, 6, K_DECIDED,
             "{\"id\":\"call_1\",\"name\":\"echo\",\"decision\":\"approved\",\"by\":\"user/"
             "alice\",\"arguments\":\"{\\\"text\\\":\\\"edited\\\"}\"}");
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const int want[] = {K_TOOL_CALL, K_TOOL_RESULT, K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a1", want, 5);
    assert_payload_str(event_of(f, "a1", 0), "arguments", "{\"text\":\"edited\"}");
    assert_payload_str(event_of(f, "a1", 1), "output", "edited");
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "edited");
}

/* Denied: the hub stored the call's error result with its decision; the next attempt asks the
 * model with it, and the call never runs. */
static void test_denied_call_is_not_run(void **state)
{
    struct fix *f = *state;
    struct asg s;
    asg_echo_turn(&s, "a1", "echo a", 3, NULL);
    asg_ask_echo(&s);
    asg_step(&s, 5, K_DECIDED,
             "{\"id\":\"call_1\",\"name\":\"echo\",\"decision\":\"denied\",\"by\":\"x\"}");
    asg_step(&s, 6, K_TOOL_RESULT,
             "{\"id\":\"call_1\",\"name\":\"echo\",\"output\":\"denied by x\",\"is_error\":true}");
    assert_int_equal(wk_runner_assign(f->runner, &s.a, NULL), 0);
    assert_true(wait_for(f, "a1", K_FINAL, 1));
    const int want[] = {K_MODEL_REQUEST, K_MODEL_REPLY, K_FINAL};
    assert_kinds(f, "a1", want, 3);
    assert_string_equal(last_of(f, "a1", K_FINAL)->result->output, "denied by x");
}

static void test_new_refuses_bad_options(void **state)
{
    (void)state;
    struct ag_timers *t = ag_timers_new(NULL);
    const char *const bad[] = {"mock.latency=soon"};
    struct wk_runner_opts o = {
        .threads = 1, .emit = emit, .timers = t, .model_opts = bad, .nmodel_opts = 1};
    struct ag_err err = AG_ERR_INIT;
    assert_null(wk_runner_new(&o, &err));
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "mock.latency"));
    ag_timers_free(t);
}

static void test_new_requires_emit_and_timers(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_runner_opts o = {.threads = 1};
    assert_null(wk_runner_new(&o, &err));
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
}

int main(void)
{
    ag_log_init("test", AG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_with_echo, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_resume_from_checkpoint, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_loop_yields_at_max_iterations, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_turn_without_input_asks_the_model_with_its_own_limit,
                                        setup2, teardown),
        cmocka_unit_test_setup_teardown(test_fail_ends_in_error, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_tool_not_in_spec_is_error_result, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_mid_turn, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_emits_nothing_more, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_all, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_reply_pending, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_already_exists, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_provider_and_reject, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_sleeping_runs_hold_no_thread, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_durable_tool_parks_until_stored, setup_durable,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_durable_lost_event_ends_turn, setup_durable, teardown),
        cmocka_unit_test_setup_teardown(test_release_after_model_call, setup_durable, teardown),
        cmocka_unit_test_setup_teardown(test_release_after_tool_call, setup_durable, teardown),
        cmocka_unit_test_setup_teardown(test_release_of_ending_turn, setup_durable, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_stored_result, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_resume_reruns_idempotent_call, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_resume_final_and_late_input, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_resume_refuses_unreadable_steps, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_kept_conversation_starts_the_next_turn, setup_keep,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_queues_park_runs, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_parked_on_room, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_options_set_deadlines, setup_timeouts, teardown),
        cmocka_unit_test_setup_teardown(test_wait_agent_lets_go_with_waiting, setup_hub, teardown),
        cmocka_unit_test_setup_teardown(test_wait_agent_answered_and_replayed, setup_hub, teardown),
        cmocka_unit_test_setup_teardown(test_ask_lets_go_with_approval_required, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_approved_call_runs_with_edited_arguments, setup2,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_denied_call_is_not_run, setup2, teardown),
        cmocka_unit_test(test_new_refuses_bad_options),
        cmocka_unit_test(test_new_requires_emit_and_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
