/* tests/unit/test-wk-shell.c - the shell tool (worker/tool_shell.c): refused without
 * {"privileged": true} on a node without a sandbox; with it, output, exit status (and the trace's
 * sandbox line: direct), cwd, stdin and environment; the output cap;
 * and that a deadline, a cancel, or the shell's own exit leave no process of its group alive
 * (the pid of a `sleep 100` child is read back from the workspace and must be gone). Calls run
 * through the real work pool and timers; waits are on condvars or polls with a deadline. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/timers.h"
#include "common/workpool.h"
#include "common/xalloc.h"
#include "worker/tool.h"

#include "tool_call.h"

#define WAIT_MS 30000
#define PRIVILEGED "{\"privileged\":true}"

static char base[64];
static struct ag_timers *timers;
static struct ag_workpool *pool;

struct call {
    struct tool_call_result r;
    struct wk_cancel cancel;
    struct wk_config none;
    struct wk_call_ctx ctx;
};

static int setup(void **state)
{
    (void)state;
    strcpy(base, "/tmp/agentry-shell-XXXXXX");
    assert_non_null(mkdtemp(base));
    timers = ag_timers_new(NULL);
    pool = ag_workpool_new(2, 16, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ag_workpool_free(pool);
    ag_timers_free(timers);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static struct call *start(const char *command, const char *settings, int64_t deadline_ms)
{
    struct call *c = ag_xcalloc(1, sizeof(*c));
    tool_call_result_init(&c->r);
    wk_cancel_init(&c->cancel);
    c->none = (struct wk_config){"shell", NULL, 0, 0};
    c->ctx = (struct wk_call_ctx){.timers = timers,
                                  .config = &c->none,
                                  .cancel = &c->cancel,
                                  .deadline_ms = deadline_ms,
                                  .workpool = pool,
                                  .agent_id = "a1",
                                  .workspace = base,
                                  .settings_json = settings};
    const struct wk_tool *t = wk_tool_find("shell");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "command", command);
    char *json = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    struct ag_err err = AG_ERR_INIT;
    int rc = tool_call_start(t, &c->ctx, json, &c->r, &err);
    free(json);
    if (rc != 0)
        fail_msg("run: %s", err.msg);
    return c;
}

/* Waits for done(); returns the output (owned) and frees c. */
static char *finish(struct call *c, bool *is_error)
{
    char *out = tool_call_finish(&c->r, WAIT_MS / 1000, is_error);
    wk_cancel_release(&c->cancel);
    free(c);
    return out;
}

static char *run_shell(const char *command, const char *settings, bool *is_error)
{
    return finish(start(command, settings, 0), is_error);
}

/* The output up to the trace's sandbox line, whose limits may change. */
static void assert_prefix(const char *out, const char *want)
{
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("output \"%s\" does not start with \"%s\"", out, want);
}

/* Wait until the file base/name holds a pid; returns it. */
static pid_t read_pid(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", base, name);
    int64_t until = ag_now_mono_ms() + WAIT_MS;
    while (ag_now_mono_ms() < until) {
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f) {
            int n = fscanf(f, "%d", &pid);
            fclose(f);
            if (n == 1 && pid > 0)
                return pid;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("no pid in '%s'", path);
    return 0;
}

/* Gone, or a zombie waiting for a reaper that is not ours (pid 1 in a container may not reap). */
static bool process_gone(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static void expect_gone(pid_t pid)
{
    int64_t until = ag_now_mono_ms() + WAIT_MS;
    while (!process_gone(pid) && ag_now_mono_ms() < until) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!process_gone(pid)) {
        kill(pid, SIGKILL);
        fail_msg("process %d outlived its shell call", (int)pid);
    }
}

static void test_refused_without_privileged(void **state)
{
    (void)state;
    const char *settings[] = {NULL, "{}", "{\"privileged\":false}"};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        bool is_error = false;
        char *out = run_shell("touch ran", settings[i], &is_error);
        assert_true(is_error);
        assert_non_null(strstr(out, "give shell the settings {\"privileged\": true}"));
        free(out);
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/ran", base);
    assert_int_not_equal(access(path, F_OK), 0); /* nothing was started */
}

static void test_runs_with_privileged(void **state)
{
    (void)state;
    bool is_error = true;
    char *out = run_shell("echo out; echo err >&2; exit 3", PRIVILEGED, &is_error);
    assert_false(is_error);
    assert_prefix(out, "out\nerr\n[exit status 3]\n[sandbox=direct ");
    free(out);
    char want[8300];
    char real[4096];
    assert_non_null(realpath(base, real));
    out = run_shell("pwd -P; echo \"$HOME\"; cat; echo \"[$AGENTRY_AGENT_ID]\"; env | wc -l",
                    PRIVILEGED, &is_error);
    snprintf(want, sizeof(want), "%s\n%s\n[a1]\n", real, base);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "[exit status 0]"));
    free(out);
    out = run_shell("printf 'no newline'", PRIVILEGED, &is_error);
    assert_prefix(out, "no newline\n[exit status 0]\n[sandbox=direct ");
    free(out);
    out = run_shell("kill -9 $$", PRIVILEGED, &is_error);
    assert_prefix(out, "[killed by signal 9]\n[sandbox=direct ");
    free(out);
}

/* The first and last halves of the cap are kept. */
static void test_output_cap(void **state)
{
    (void)state;
    bool is_error = true;
    char *out = run_shell("echo BEGIN; seq 1 100000; echo END",
                          "{\"privileged\":true,\"max_output\":1000}", &is_error);
    assert_false(is_error);
    assert_true(strncmp(out, "BEGIN\n1\n2\n", 10) == 0);
    assert_non_null(strstr(out, "bytes of output cut (shell.max_output)"));
    assert_non_null(strstr(out, "99999\n100000\nEND\n[exit status 0]"));
    assert_true(strlen(out) < 1500); /* with the sandbox line */
    free(out);
}

static void test_timeout_kills_group(void **state)
{
    (void)state;
    int64_t t0 = ag_now_mono_ms();
    struct call *c = start("sh -c 'sleep 100' & echo $! > pid; sleep 100", PRIVILEGED,
                           ag_now_mono_ms() + 500);
    bool is_error = false;
    char *out = finish(c, &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "[killed: the call timed out"));
    assert_true(ag_now_mono_ms() - t0 < 10000);
    free(out);
    expect_gone(read_pid("pid"));
}

static void test_cancel_kills_group(void **state)
{
    (void)state;
    struct call *c = start("sleep 100 & echo $! > pid2; wait", PRIVILEGED, 0);
    pid_t pid = read_pid("pid2");
    wk_cancel_request(&c->cancel);
    bool is_error = false;
    char *out = finish(c, &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "[killed: the call was cancelled]"));
    free(out);
    expect_gone(pid);
}

/* A background job does not keep the call (or itself) alive after the shell exits. */
static void test_background_jobs_end_with_shell(void **state)
{
    (void)state;
    int64_t t0 = ag_now_mono_ms();
    bool is_error = true;
    char *out = run_shell("sleep 100 & echo $! > pid3; echo started", PRIVILEGED, &is_error);
    assert_false(is_error);
    assert_prefix(out, "started\n[exit status 0]\n[sandbox=direct ");
    assert_true(ag_now_mono_ms() - t0 < 10000);
    free(out);
    expect_gone(read_pid("pid3"));
}

/* One pool thread, busy with a long command: a call waiting behind it ends at once when
 * cancelled or late, and a call that finds the queue full is refused by run(). */
static void test_queued_calls(void **state)
{
    (void)state;
    struct ag_workpool *big = pool;
    pool = ag_workpool_new(1, 2, NULL);
    struct call *busy = start("sleep 100 & echo $! > pid4; wait", PRIVILEGED, 0);
    pid_t pid = read_pid("pid4");
    struct call *queued = start("echo never", PRIVILEGED, 0);
    int64_t t0 = ag_now_mono_ms();
    wk_cancel_request(&queued->cancel);
    bool is_error = false;
    char *out = finish(queued, &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'shell' was cancelled");
    assert_true(ag_now_mono_ms() - t0 < 10000);
    free(out);
    struct call *late = start("echo never", PRIVILEGED, ag_now_mono_ms() + 50);
    out = finish(late, &is_error);
    assert_string_equal(out, "tool 'shell' timed out");
    free(out);
    /* The two finished calls still sit in the queue (skipped when reached): it is full. */
    const struct wk_tool *t = wk_tool_find("shell");
    struct wk_config none = {"shell", NULL, 0, 0};
    struct wk_call_ctx ctx = {.timers = timers,
                              .config = &none,
                              .workpool = pool,
                              .workspace = base,
                              .settings_json = PRIVILEGED};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(t->run(t, &ctx, "{\"command\":\"true\"}", tool_call_on_done, NULL, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "cannot run tool 'shell': queue 'workpool' is full"));
    wk_cancel_request(&busy->cancel);
    out = finish(busy, &is_error);
    assert_non_null(strstr(out, "[killed: the call was cancelled]"));
    free(out);
    expect_gone(pid);
    ag_workpool_free(pool);
    pool = big;
}

static void test_settings_checked(void **state)
{
    (void)state;
    const struct wk_tool *t = wk_tool_find("shell");
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(t->check_settings(PRIVILEGED, &err), 0);
    assert_int_equal(t->check_settings("{\"privileged\":true,\"max_output\":\"4KiB\"}", &err), 0);
    assert_int_equal(t->check_settings(NULL, &err), 0);
    assert_int_equal(t->check_settings("{\"privileged\":\"yes\"}", &err), -1);
    assert_non_null(strstr(err.msg, "'privileged' must be true or false"));
    assert_int_equal(t->check_settings("{\"sandbox\":false}", &err), -1);
    assert_non_null(strstr(err.msg, "unknown tool setting 'sandbox'"));
    char *s = t->subject("{\"command\":\"ls -la\"}");
    assert_string_equal(s, "ls -la");
    free(s);
    assert_false(t->idempotent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refused_without_privileged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs_with_privileged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_kills_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_jobs_end_with_shell, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_checked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
