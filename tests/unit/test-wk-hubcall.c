/* tests/unit/test-wk-hubcall.c - hub tool calls from a node (worker/hub_call.c): a call is sent
 * as a HubToolCall with the context's agent, epoch and call id; done() comes exactly once, never
 * inside wk_hub_call: with the hub's answer (wait passed through), or with an error when the call
 * is cancelled, passes its deadline, or the stream is lost; a late answer is ignored; a link
 * without a stream refuses at once. Waits are on a condvar, never sleeps. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "agentry/v1/node.pb-c.h"
#include "common/clock.h"
#include "common/timers.h"
#include "worker/cancel.h"
#include "worker/hub_call.h"

/* The "stream": what the link sent, and whether it is up. */
struct stream {
    bool up;
    int sent;
    Agentry__V1__NodeMessage *last;
};

static int fake_send(void *ctx, uint8_t *buf, size_t len)
{
    struct stream *s = ctx;
    if (!s->up) {
        free(buf);
        return -1;
    }
    if (s->last)
        agentry__v1__node_message__free_unpacked(s->last, NULL);
    s->last = agentry__v1__node_message__unpack(NULL, len, buf);
    free(buf);
    s->sent++;
    return 0;
}

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    char *output;
    bool is_error, wait;
};

static void on_done(void *arg, char *output, bool is_error, bool wait)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    free(r->output);
    r->output = output;
    r->is_error = is_error;
    r->wait = wait;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void wait_done(struct result *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&r->mu);
    while (r->calls == 0 && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(r->calls, 1);
}

struct fx {
    struct ag_timers *timers;
    struct stream s;
    struct wk_hub_link *l;
    struct wk_cancel cancel;
    struct result r;
    struct wk_call_ctx ctx;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct ag_err err = AG_ERR_INIT;
    f->timers = ag_timers_new(&err);
    assert_non_null(f->timers);
    f->s.up = true;
    f->l = wk_hub_link_new(f->timers, fake_send, &f->s);
    wk_cancel_init(&f->cancel);
    pthread_mutex_init(&f->r.mu, NULL);
    pthread_cond_init(&f->r.cv, NULL);
    f->ctx = (struct wk_call_ctx){.timers = f->timers,
                                  .cancel = &f->cancel,
                                  .agent_id = "agent1",
                                  .epoch = 7,
                                  .call_id = "call-1",
                                  .hub = f->l};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wk_hub_link_free(f->l);
    ag_timers_free(f->timers);
    wk_cancel_release(&f->cancel);
    if (f->s.last)
        agentry__v1__node_message__free_unpacked(f->s.last, NULL);
    free(f->r.output);
    pthread_cond_destroy(&f->r.cv);
    pthread_mutex_destroy(&f->r.mu);
    free(f);
    return 0;
}

static void answer(struct fx *f, const char *output, bool wait)
{
    Agentry__V1__HubToolResult res = AGENTRY__V1__HUB_TOOL_RESULT__INIT;
    res.id = f->s.last->hub_tool->id;
    res.output = (char *)output;
    res.wait = wait;
    wk_hub_link_result(f->l, &res);
}

static void test_call_and_answer(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_hub_call(&f->ctx, "wait_agent", "{\"agents\":[]}", on_done, &f->r, &err),
                     0);
    assert_int_equal(f->r.calls, 0); /* never inside the call */
    assert_int_equal(f->s.sent, 1);
    Agentry__V1__HubToolCall *c = f->s.last->hub_tool;
    assert_non_null(c);
    assert_string_equal(c->agent_id, "agent1");
    assert_int_equal(c->epoch, 7);
    assert_string_equal(c->call_id, "call-1");
    assert_string_equal(c->name, "wait_agent");
    assert_string_equal(c->arguments, "{\"agents\":[]}");
    answer(f, "[]", true);
    wait_done(&f->r);
    assert_string_equal(f->r.output, "[]");
    assert_false(f->r.is_error);
    assert_true(f->r.wait);
    answer(f, "again", false); /* a second answer for the same id is nobody's */
    assert_int_equal(f->r.calls, 1);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_hub_call(&f->ctx, "memory_get", "{}", on_done, &f->r, &err), 0);
    wk_cancel_request(&f->cancel);
    wait_done(&f->r);
    assert_true(f->r.is_error);
    assert_non_null(strstr(f->r.output, "cancelled"));
    answer(f, "late", false);
    assert_int_equal(f->r.calls, 1);
    /* Already cancelled: refused at once, done() never called. */
    assert_int_equal(wk_hub_call(&f->ctx, "memory_get", "{}", on_done, &f->r, &err), -1);
    assert_int_equal(err.code, AG_CANCELLED);
    assert_int_equal(f->r.calls, 1);
}

static void test_deadline(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    f->ctx.deadline_ms = ag_now_mono_ms() + 20;
    assert_int_equal(wk_hub_call(&f->ctx, "memory_get", "{}", on_done, &f->r, &err), 0);
    wait_done(&f->r);
    assert_true(f->r.is_error);
    assert_non_null(strstr(f->r.output, "timed out"));
}

static void test_lost_and_down(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_hub_call(&f->ctx, "spawn_agent", "{}", on_done, &f->r, &err), 0);
    wk_hub_link_lost(f->l, "the stream to the hub ended");
    assert_int_equal(f->r.calls, 1);
    assert_true(f->r.is_error);
    assert_non_null(strstr(f->r.output, "stream to the hub ended"));
    f->s.up = false;
    assert_int_equal(wk_hub_call(&f->ctx, "spawn_agent", "{}", on_done, &f->r, &err), -1);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    struct wk_call_ctx none = f->ctx;
    none.hub = NULL;
    assert_int_equal(wk_hub_call(&none, "spawn_agent", "{}", on_done, &f->r, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    assert_int_equal(f->r.calls, 1);
}

static void test_free_fails_pending(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_hub_call(&f->ctx, "spawn_agent", "{}", on_done, &f->r, &err), 0);
    wk_hub_link_free(f->l);
    f->l = NULL;
    assert_int_equal(f->r.calls, 1);
    assert_non_null(strstr(f->r.output, "stopping"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_and_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_and_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_fails_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
