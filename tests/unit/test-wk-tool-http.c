/* tests/unit/test-wk-tool-http.c - the http_request tool (worker/tool_http_request.c) against
 * tests/fake_llm.py's /_http/ endpoints: the node's allowlist and the spec's narrowing of it,
 * size and time limits, redirects returned and not followed, and its option and settings checks.
 * Refusals are checked on the server's side too: a refused call sends no request. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/timers.h"
#include "fake_llm.h"
#include "tool_call.h"
#include "worker/http.h"
#include "worker/tool.h"

struct fix {
    struct fake_llm srv;
    struct wk_http *http;
    struct ag_timers *timers;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    if (fake_llm_start(&f->srv) != 0)
        return -1;
    f->http = wk_http_new(NULL);
    f->timers = ag_timers_new(NULL);
    *state = f;
    return f->http && f->timers ? 0 : -1;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    wk_http_free(f->http);
    ag_timers_free(f->timers);
    fake_llm_stop(&f->srv);
    free(f);
    return 0;
}

/* Options "KEY=VALUE" for the node's http_request config. */
static char *run(struct fix *f, const char *const *opts, size_t nopts, const char *settings,
                 const char *args_fmt, bool *is_error)
{
    struct wk_config_item items[4];
    for (size_t i = 0; i < nopts; i++) {
        const char *eq = strchr(opts[i], '=');
        items[i].key = strndup(opts[i], (size_t)(eq - opts[i]));
        items[i].value = strdup(eq + 1);
    }
    struct wk_config cfg = {"http_request", items, nopts, 0};
    assert_int_equal(wk_tool_find("http_request")->check_config(&cfg, NULL), 0);
    char args[1024];
    snprintf(args, sizeof(args), args_fmt, f->srv.base);
    struct wk_call_ctx ctx = {
        .timers = f->timers, .config = &cfg, .http = f->http, .settings_json = settings};
    const struct wk_tool *t = wk_tool_find("http_request");
    struct tool_call_result r;
    tool_call_result_init(&r);
    assert_int_equal(tool_call_start(t, &ctx, args, &r, NULL), 0);
    char *out = tool_call_finish(&r, 30, is_error);
    for (size_t i = 0; i < nopts; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    return out;
}

static void test_get(void **state)
{
    struct fix *f = *state;
    bool is_error = true;
    char *out = run(f, NULL, 0, NULL, "{\"url\":\"%s/_http/bytes/10\"}", &is_error);
    assert_false(is_error);
    assert_string_equal(out, "HTTP 200\nContent-Type: text/plain\nContent-Length: 10\n\n"
                             "xxxxxxxxxx");
    free(out);
}

static void test_post_with_headers(void **state)
{
    struct fix *f = *state;
    bool is_error = true;
    char *out = run(f, NULL, 0, NULL,
                    "{\"url\":\"%s/_http/echo\",\"method\":\"PUT\",\"headers\":{\"X-A\":\"1\"},"
                    "\"body\":\"payload\"}",
                    &is_error);
    assert_false(is_error);
    assert_non_null(strstr(out, "\"method\":\"PUT\""));
    assert_non_null(strstr(out, "\"x-a\":\"1\""));
    assert_non_null(strstr(out, "\"body\":\"payload\""));
    free(out);

    /* A header value that would smuggle a second header is refused. */
    out = run(f, NULL, 0, NULL, "{\"url\":\"%s/_http/echo\",\"headers\":{\"X\":\"a\\r\\nY: b\"}}",
              &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "one-line"));
    free(out);
    assert_int_equal(fake_llm_stat(&f->srv, "requests"), 1);
}

static void test_allowlist(void **state)
{
    struct fix *f = *state;
    bool is_error = false;
    const char *node[] = {"allow_hosts=example.com, *.example.org"};
    char *out = run(f, node, 1, NULL, "{\"url\":\"%s/_http/bytes/1\"}", &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'http_request' refused: host '127.0.0.1' is not allowed (the "
                             "node's http_request.allow_hosts does not list it)");
    free(out);
    /* The spec cannot widen the node's list. */
    out = run(f, node, 1, "{\"allow_hosts\":[\"127.0.0.1\"]}", "{\"url\":\"%s/_http/bytes/1\"}",
              &is_error);
    assert_true(is_error);
    free(out);
    /* It can narrow an open node. */
    out = run(f, NULL, 0, "{\"allow_hosts\":[\"localhost\"]}", "{\"url\":\"%s/_http/bytes/1\"}",
              &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "the agent's spec does not list it"));
    free(out);
    assert_int_equal(fake_llm_stat(&f->srv, "requests"), 0);

    const char *open[] = {"allow_hosts=127.0.0.1"};
    out = run(f, open, 1, "{\"allow_hosts\":[\"127.0.0.1\"]}", "{\"url\":\"%s/_http/bytes/1\"}",
              &is_error);
    assert_false(is_error);
    free(out);
    out = run(f, NULL, 0, NULL, "{\"url\":\"file:///etc/passwd\"}", &is_error);
    assert_true(is_error);
    free(out);
}

static void test_size_limit(void **state)
{
    struct fix *f = *state;
    bool is_error = true;
    const char *node[] = {"max_bytes=100"};
    char *out = run(f, node, 1, NULL, "{\"url\":\"%s/_http/bytes/100000\"}", &is_error);
    assert_false(is_error);
    assert_non_null(strstr(out, "\n[body truncated at 100 bytes]"));
    free(out);
    /* The spec narrows; it cannot widen. */
    out = run(f, node, 1, "{\"max_bytes\":10}", "{\"url\":\"%s/_http/bytes/100000\"}", &is_error);
    assert_non_null(strstr(out, "\n\nxxxxxxxxxx\n[body truncated at 10 bytes]"));
    free(out);
    out = run(f, node, 1, "{\"max_bytes\":100000}", "{\"url\":\"%s/_http/bytes/100000\"}",
              &is_error);
    assert_non_null(strstr(out, "[body truncated at 100 bytes]"));
    free(out);
}

static void test_redirect_returned(void **state)
{
    struct fix *f = *state;
    bool is_error = true;
    const char *node[] = {"allow_hosts=127.0.0.1"};
    char *out = run(f, node, 1, NULL,
                    "{\"url\":\"%s/_http/status/302?location=http://elsewhere.invalid/x\"}",
                    &is_error);
    assert_false(is_error);
    assert_non_null(strstr(out, "HTTP 302 (redirects are not followed)\n"));
    assert_non_null(strstr(out, "Location: http://elsewhere.invalid/x\n"));
    free(out);
    assert_int_equal(fake_llm_stat(&f->srv, "requests"), 1);
}

static void test_timeout_setting(void **state)
{
    struct fix *f = *state;
    bool is_error = false;
    char *out = run(f, NULL, 0, "{\"timeout_ms\":200}", "{\"url\":\"%s/_http/slow/5000\"}",
                    &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'http_request' timed out");
    free(out);
    assert_int_equal(fake_llm_wait_stat(&f->srv, "aborted", 1), 1);
}

static void test_checks_and_subject(void **state)
{
    (void)state;
    const struct wk_tool *t = wk_tool_find("http_request");
    assert_false(t->idempotent);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(t->check_settings("{\"allow_hosts\":[\"a.com\"],\"max_bytes\":10,"
                                       "\"timeout_ms\":5}",
                                       &err),
                     0);
    assert_int_equal(t->check_settings("{\"allow\":[]}", &err), -1);
    assert_non_null(strstr(err.msg, "unknown setting 'allow'"));
    assert_int_equal(t->check_settings("{\"max_bytes\":-1}", &err), -1);
    assert_int_equal(t->check_settings("{\"allow_hosts\":\"a.com\"}", &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);

    struct wk_config_item bad = {"max_bytes", "lots"};
    struct wk_config cfg = {"http_request", &bad, 1, 0};
    assert_int_equal(t->check_config(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "http_request.max_bytes=lots"));
    struct wk_config_item other = {"proxy", "x"};
    cfg.items = &other;
    assert_int_equal(t->check_config(&cfg, &err), -1);

    char *host = t->subject("{\"url\":\"https://API.Example.com:8443/v1?q=1\"}");
    assert_string_equal(host, "api.example.com");
    free(host);
    assert_null(t->subject("{\"url\":\"ftp://x/\"}"));
    assert_null(t->subject("not json"));
}

static void test_no_http_client(void **state)
{
    (void)state;
    struct wk_config cfg = {"http_request", NULL, 0, 0};
    struct wk_call_ctx ctx = {.config = &cfg};
    const struct wk_tool *t = wk_tool_find("http_request");
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(t->run(t, &ctx, "{\"url\":\"http://a/\"}", tool_call_on_done, NULL, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_with_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowlist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_setting, setup, teardown),
        cmocka_unit_test(test_checks_and_subject),
        cmocka_unit_test(test_no_http_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
