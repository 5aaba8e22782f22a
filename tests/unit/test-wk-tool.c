/* tests/unit/test-wk-tool.c - the tool table and the echo tool (worker/tool.c,
 * worker/tool_echo.c). done() is awaited on a condvar with a generous deadline, and must not
 * come from inside run(). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

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

/* Runs echo with args; returns its output (caller frees). */
static char *run_echo(const char *args, bool *is_error)
{
    struct ag_timers *t = ag_timers_new(NULL);
    assert_non_null(t);
    struct wk_tool_ctx ctx = {t};
    const struct wk_tool *echo = wk_tool_find("echo");
    assert_non_null(echo);
    struct result r = {.done = false};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    in_run = true;
    int rc = echo->run(echo, &ctx, args, on_done, &r, NULL);
    in_run = false;
    assert_int_equal(rc, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&r.mu);
    while (!r.done)
        if (pthread_cond_timedwait(&r.cv, &r.mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&r.mu);
    ag_timers_free(t);
    assert_true(r.done);
    assert_false(r.inside_run);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    *is_error = r.is_error;
    return r.output;
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
        cmocka_unit_test(test_echo_returns_text),
        cmocka_unit_test(test_echo_raw_arguments),
        cmocka_unit_test(test_tool_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
