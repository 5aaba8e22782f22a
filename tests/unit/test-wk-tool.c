/* tests/unit/test-wk-tool.c - the tool table and the echo and append tools (worker/tool.c,
 * worker/tool_echo.c, worker/tool_append.c), with their options, cancel and deadline. done() is
 * awaited on a condvar with a generous deadline, and must not come from inside run(). Append
 * writes into a fresh temp dir per test. */
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
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/timers.h"
#include "worker/tool.h"

#include "tool_call.h"

#define WAIT_SECONDS 30

/* How run_tool calls a tool. */
struct call {
    const struct wk_config *config; /* NULL: no options */
    int64_t deadline_ms;
    bool cancel; /* cancel once the call is under way */
};

/* Runs the tool `name` with args; returns its output (caller frees). */
static char *run_tool(const char *name, const char *args, const struct call *c, bool *is_error)
{
    struct ag_timers *t = ag_timers_new(NULL);
    assert_non_null(t);
    struct wk_config none = {name, NULL, 0, 0};
    struct wk_cancel cancel;
    wk_cancel_init(&cancel);
    struct wk_call_ctx ctx = {.timers = t,
                              .config = c->config ? c->config : &none,
                              .cancel = &cancel,
                              .deadline_ms = c->deadline_ms};
    const struct wk_tool *tool = wk_tool_find(name);
    assert_non_null(tool);
    struct tool_call_result r;
    tool_call_result_init(&r);
    assert_int_equal(tool_call_start(tool, &ctx, args, &r, NULL), 0);
    if (c->cancel)
        wk_cancel_request(&cancel);
    char *out = tool_call_finish(&r, WAIT_SECONDS, is_error);
    ag_timers_free(t);
    wk_cancel_release(&cancel);
    return out;
}

static char *run_echo_with(const char *args, const struct call *c, bool *is_error)
{
    return run_tool("echo", args, c, is_error);
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

/* A temp dir holding the append tool's file, and its append.path option. */
struct append_fix {
    char dir[64];
    char path[96];
    struct wk_config_item items[2]; /* path, then latency */
    struct wk_config cfg;
};

static int append_setup(void **state)
{
    struct append_fix *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-wk-tool-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/lines", f->dir);
    f->items[0] = (struct wk_config_item){"path", f->path};
    f->items[1] = (struct wk_config_item){"latency", "0"};
    f->cfg = (struct wk_config){"append", f->items, 1, 0};
    *state = f;
    return 0;
}

static int append_teardown(void **state)
{
    struct append_fix *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The file's whole text (caller frees); "" if it does not exist. */
static char *slurp(const char *path)
{
    char *buf = calloc(1, 4096);
    FILE *fp = fopen(path, "r");
    if (fp) {
        size_t n = fread(buf, 1, 4095, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

static void assert_file(const char *path, const char *want)
{
    char *got = slurp(path);
    assert_string_equal(got, want);
    free(got);
}

static char *run_append(struct append_fix *f, const char *args, const struct call *how,
                        bool *is_error)
{
    struct call c = how ? *how : (struct call){&f->cfg, 0, false};
    return run_tool("append", args, &c, is_error);
}

/* Each call adds exactly one line, its output is the text, and the tool is not idempotent. */
static void test_append_writes_one_line_per_call(void **state)
{
    struct append_fix *f = *state;
    assert_false(wk_tool_find("append")->idempotent);
    assert_true(wk_tool_find("echo")->idempotent);
    bool is_error = true;
    char *out = run_append(f, "{\"text\":\"a1-s1\"}", NULL, &is_error);
    assert_false(is_error);
    assert_string_equal(out, "a1-s1");
    free(out);
    out = run_append(f, "{\"text\":\"a1-s1\"}", NULL, &is_error);
    free(out);
    out = run_append(f, "{\"text\":\"\"}", NULL, &is_error);
    assert_false(is_error);
    free(out);
    assert_file(f->path, "a1-s1\na1-s1\n\n");
}

/* No file configured, or arguments without a string "text": an error result, nothing written. */
static void test_append_refuses_without_file_or_text(void **state)
{
    struct append_fix *f = *state;
    struct wk_config none = {"append", NULL, 0, 0};
    struct call c = {&none, 0, false};
    bool is_error = false;
    char *out = run_append(f, "{\"text\":\"x\"}", &c, &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'append' has no file: start the node with --tool-opt "
                             "append.path=FILE");
    free(out);
    const char *bad[] = {"{\"text\":5}", "[1]", "not json", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_error = false;
        out = run_append(f, bad[i], NULL, &is_error);
        assert_true(is_error);
        assert_string_equal(out, "tool 'append' takes arguments {\"text\": string}");
        free(out);
    }
    assert_file(f->path, "");
}

/* Cancelled during a minute of latency: the line was written first, and the result says so. */
static void test_append_honours_cancel(void **state)
{
    struct append_fix *f = *state;
    f->items[1].value = "1m";
    f->cfg.n = 2;
    struct call c = {&f->cfg, 0, true};
    bool is_error = false;
    char *out = run_append(f, "{\"text\":\"late\"}", &c, &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'append' was cancelled; its line was appended");
    free(out);
    assert_file(f->path, "late\n");
}

/* A call whose deadline has passed before it starts writes nothing. */
static void test_append_honours_deadline(void **state)
{
    struct append_fix *f = *state;
    struct call c = {&f->cfg, ag_now_mono_ms() - 1, false};
    bool is_error = false;
    char *out = run_append(f, "{\"text\":\"never\"}", &c, &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'append' timed out");
    free(out);
    assert_file(f->path, "");
}

static void test_append_check_config(void **state)
{
    struct append_fix *f = *state;
    const struct wk_tool *append = wk_tool_find("append");
    struct ag_err err = AG_ERR_INIT;
    f->items[1].value = "5ms";
    f->cfg.n = 2;
    assert_int_equal(append->check_config(&f->cfg, &err), 0);
    f->items[1].value = "5";
    assert_int_equal(append->check_config(&f->cfg, &err), -1);
    assert_non_null(strstr(err.msg, "option 'append.latency'"));
    f->cfg.n = 1;
    f->items[0].value = "";
    assert_int_equal(append->check_config(&f->cfg, &err), -1);
    assert_string_equal(err.msg, "option 'append.path' needs a file name");
    f->items[0].value = "/nonexistent-dir/lines";
    assert_int_equal(append->check_config(&f->cfg, &err), -1);
    assert_string_equal(err.msg, "option 'append.path': cannot open '/nonexistent-dir/lines' to "
                                 "append: No such file or directory");
    f->items[0].key = "file";
    assert_int_equal(append->check_config(&f->cfg, &err), -1);
    assert_string_equal(err.msg,
                        "unknown option 'append.file': append takes timeout, path, latency");
}

static void test_tool_find(void **state)
{
    (void)state;
    const struct wk_tool *echo = wk_tool_find("echo");
    assert_non_null(echo);
    assert_string_equal(echo->name, "echo");
    assert_non_null(echo->schema_json);
    assert_string_equal(wk_tool_find("append")->name, "append");
    assert_null(wk_tool_find("browser"));
    assert_null(wk_tool_find(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_returns_text),
        cmocka_unit_test(test_echo_raw_arguments),
        cmocka_unit_test(test_echo_honours_cancel),
        cmocka_unit_test(test_echo_honours_deadline),
        cmocka_unit_test(test_echo_check_config),
        cmocka_unit_test(test_tool_find),
        cmocka_unit_test_setup_teardown(test_append_writes_one_line_per_call, append_setup,
                                        append_teardown),
        cmocka_unit_test_setup_teardown(test_append_refuses_without_file_or_text, append_setup,
                                        append_teardown),
        cmocka_unit_test_setup_teardown(test_append_honours_cancel, append_setup, append_teardown),
        cmocka_unit_test_setup_teardown(test_append_honours_deadline, append_setup,
                                        append_teardown),
        cmocka_unit_test_setup_teardown(test_append_check_config, append_setup, append_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
