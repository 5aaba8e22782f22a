/* tests/unit/test-wk-tool.c - the tool table and the echo tool (worker/tool.c,
 * worker/tool_echo.c), with its options, cancel and deadline. done() is awaited on a condvar with
 * a generous deadline, and must not come from inside run(). */
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

#include "common/clock.h"
#include "common/timers.h"
#include "worker/tool.h"

#define WAIT_SECONDS 30

static _Thread_local bool in_run;

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, inside_run, is_error;
    char *output;
};

static void on_done(void *arg, char *output, bool is_error)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->inside_run = in_run;
    r->output = output;
    r->is_error = is_error;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* How run_echo_with calls echo. */
struct call {
    const struct wk_config *config; /* NULL: no options */
    int64_t deadline_ms;
    bool cancel; /* cancel once the call is under way */
};

/* Runs echo with args; returns its output (caller frees). */
static char *run_echo_with(const char *args, const struct call *c, bool *is_error)
{
    struct ag_timers *t = ag_timers_new(NULL);
    assert_non_null(t);
    struct wk_config none = {"echo", NULL, 0, 0};
    struct wk_cancel cancel;
    wk_cancel_init(&cancel);
    struct wk_call_ctx ctx = {t, c->config ? c->config : &none, &cancel, c->deadline_ms};
    const struct wk_tool *echo = wk_tool_find("echo");
    assert_non_null(echo);
    struct result r = {.done = false};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    in_run = true;
    int rc = echo->run(echo, &ctx, args, on_done, &r, NULL);
    in_run = false;
    assert_int_equal(rc, 0);
    if (c->cancel)
        wk_cancel_request(&cancel);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&r.mu);
    while (!r.done)
        if (pthread_cond_timedwait(&r.cv, &r.mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&r.mu);
    ag_timers_free(t);
    wk_cancel_release(&cancel);
    assert_true(r.done);
    assert_false(r.inside_run);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    *is_error = r.is_error;
    return r.output;
}

static char *run_echo(const char *args, bool *is_error)
{
    struct call c = {NULL, 0, false};
    return run_echo_with(args, &c, is_error);
}

static void test_echo_returns_text(void **state)
{
    (void)state;
    bool is_error = true;
    char *out = run_echo("{\"text\":\"hi \\\"there\\\"\"}", &is_error);
    assert_string_equal(out, "hi \"there\"");
    assert_false(is_error);
    free(out);
}

/* Arguments that are not an object with a string "text" come back as sent. */
static void test_echo_raw_arguments(void **state)
{
    (void)state;
    const char *cases[] = {"{\"text\":5}", "[1,2]", "not json", ""};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool is_error = true;
        char *out = run_echo(cases[i], &is_error);
        assert_string_equal(out, cases[i]);
        assert_false(is_error);
        free(out);
    }
}

/* A minute of echo.latency, cancelled: the call ends at once, as an error result. */
static void test_echo_honours_cancel(void **state)
{
    (void)state;
    struct wk_config_item item = {"latency", "1m"};
    struct wk_config cfg = {"echo", &item, 1, 0};
    struct call c = {&cfg, 0, true};
    bool is_error = false;
    char *out = run_echo_with("{\"text\":\"hi\"}", &c, &is_error);
    assert_string_equal(out, "tool 'echo' was cancelled");
    assert_true(is_error);
    free(out);
}

static void test_echo_honours_deadline(void **state)
{
    (void)state;
    struct wk_config_item item = {"latency", "1m"};
    struct wk_config cfg = {"echo", &item, 1, 0};
    struct call c = {&cfg, ag_now_mono_ms() + 20, false};
    bool is_error = false;
    char *out = run_echo_with("{\"text\":\"hi\"}", &c, &is_error);
    assert_string_equal(out, "tool 'echo' timed out");
    assert_true(is_error);
    free(out);
}

static void test_echo_check_config(void **state)
{
    (void)state;
    const struct wk_tool *echo = wk_tool_find("echo");
    struct wk_config_item items[] = {{"latency", "5ms"}, {"timeout", "1s"}};
    struct wk_config cfg = {"echo", items, 2, 0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(echo->check_config(&cfg, &err), 0);
    items[0].value = "5";
    assert_int_equal(echo->check_config(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "option 'echo.latency'"));
    items[0].key = "mode";
    assert_int_equal(echo->check_config(&cfg, &err), -1);
    assert_string_equal(err.msg, "unknown option 'echo.mode': echo takes timeout, latency");
}

static void test_tool_find(void **state)
{
    (void)state;
    const struct wk_tool *echo = wk_tool_find("echo");
    assert_non_null(echo);
    assert_string_equal(echo->name, "echo");
    assert_non_null(echo->schema_json);
    assert_null(wk_tool_find("shell"));
    assert_null(wk_tool_find(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_returns_text),   cmocka_unit_test(test_echo_raw_arguments),
        cmocka_unit_test(test_echo_honours_cancel), cmocka_unit_test(test_echo_honours_deadline),
        cmocka_unit_test(test_echo_check_config),   cmocka_unit_test(test_tool_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
