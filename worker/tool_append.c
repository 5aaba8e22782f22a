/* worker/tool_append.c - the "append" tool: appends a line to a file. Running it twice writes the
 * line twice, so it is the side effect the tool journal's tests count (tests/e2e/
 * test_exactly_once.py): it is declared not idempotent (worker/tool.c).
 *
 * The arguments are an object with a string "text"; the line is that text plus "\n", written with
 * one write(2) on a descriptor opened O_APPEND (so lines of concurrent calls, from one node or
 * several, never interleave), then fsync'd: once the call's result says so, the line survives a
 * crash. The output is the text; arguments of another shape are an is_error result saying what
 * the tool takes, and nothing is written.
 *
 * Options: append.path=FILE, the file (created 0644 if missing; checked at start by opening it).
 * With no file the call is an is_error result telling the operator how to give one. append.latency
 * =DUR delays every output (default 0; the line is written before the delay, as a slow tool that
 * acted at once would), and the common append.timeout. A call cancelled or late before it starts
 * writes nothing and ends with "tool 'append' was cancelled" or "... timed out"; one cancelled or
 * late during its latency says so and that its line was appended.
 *
 * Threads: run() may be called from any thread and does its write and fsync there (an agent-loop
 * thread for the runner), because the timer thread's callbacks must be quick. done() runs on the
 * timer thread (wk_call_after), never inside run(), as tool.h requires; it touches only its own
 * pending object. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "worker/tool.h"
#include "worker/tool_rows.h"

static const char *const append_keys[] = {"path", "latency", NULL};

struct append_pending {
    wk_tool_done_fn *done;
    void *arg;
    char *output; /* owned until done() */
    bool is_error;
    bool written; /* the line is in the file */
};

static void append_fire(void *p, enum ag_code code)
{
    struct append_pending *pd = p;
    if (code == AG_OK) {
        pd->done(pd->arg, pd->output, pd->is_error);
    } else {
        free(pd->output);
        const char *what = code == AG_CANCELLED ? "was cancelled" : "timed out";
        pd->done(pd->arg,
                 pd->written ? ag_xasprintf("tool 'append' %s; its line was appended", what)
                             : ag_xasprintf("tool 'append' %s", what),
                 true);
    }
    free(pd);
}

static int append_open(const char *path, struct ag_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        ag_err_set(err, AG_FAILED_PRECONDITION, "cannot open '%s' to append: %s", path,
                   strerror(errno));
    return fd;
}

/* One write(2) of text + "\n" and an fsync. On failure the line may be partly written: the
 * result says so, as the outcome is then unknown to the tool too. */
static int append_line(const char *path, const char *text, struct ag_err *err)
{
    int fd = append_open(path, err);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    char *line = ag_xmalloc(len + 1);
    memcpy(line, text, len);
    line[len] = '\n';
    ssize_t n = write(fd, line, len + 1);
    int rc = 0;
    if (n != (ssize_t)(len + 1))
        rc = ag_err_set(err, AG_UNAVAILABLE, "cannot append to '%s': %s", path,
                        n < 0 ? strerror(errno) : "short write (disk full?)");
    else if (fsync(fd) != 0)
        rc = ag_err_set(err, AG_UNAVAILABLE, "cannot append to '%s': fsync: %s", path,
                        strerror(errno));
    free(line);
    close(fd);
    return rc;
}

static bool call_is_over(const struct wk_call_ctx *ctx)
{
    return wk_cancel_requested(ctx->cancel) ||
           (ctx->deadline_ms > 0 && ag_now_mono_ms() >= ctx->deadline_ms);
}

/* Fills pd's output: the text once appended, or an error result. */
static void append_do(struct append_pending *pd, const char *path, const char *args_json)
{
    cJSON *args = cJSON_Parse(args_json);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(args, "text");
    struct ag_err err = AG_ERR_INIT;
    pd->is_error = true;
    if (!path) {
        pd->output = ag_xstrdup("tool 'append' has no file: start the node with --tool-opt "
                                "append.path=FILE");
    } else if (!cJSON_IsObject(args) || !cJSON_IsString(text)) {
        pd->output = ag_xstrdup("tool 'append' takes arguments {\"text\": string}");
    } else if (append_line(path, text->valuestring, &err) != 0) {
        pd->output = ag_xstrdup(err.msg);
    } else {
        pd->output = ag_xstrdup(text->valuestring);
        pd->is_error = false;
        pd->written = true;
    }
    cJSON_Delete(args);
}

int wk_tool__append_check_config(const struct wk_config *c, struct ag_err *err)
{
    int64_t latency = 0;
    if (wk_config_check_keys(c, append_keys, err) != 0 ||
        wk_config_duration(c, "latency", &latency, err) != 0)
        return -1;
    const char *path = wk_config_get(c, "path");
    if (!path)
        return 0;
    if (!*path)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "option 'append.path' needs a file name");
    int fd = append_open(path, err);
    if (fd < 0) {
        ag_err_prefix(err, "option 'append.path'");
        return -1;
    }
    close(fd);
    return 0;
}

int wk_tool__append_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                        const char *args_json, wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    if (!ctx || !ctx->timers)
        return ag_err_set(err, AG_INTERNAL, "cannot run tool 'append': no timers given");
    int64_t latency = 0;
    if (wk_config_duration(ctx->config, "latency", &latency, err) != 0)
        return -1; /* checked at start; kept for callers that skip the check */
    struct append_pending *pd = ag_xcalloc(1, sizeof(*pd));
    pd->done = done;
    pd->arg = arg;
    /* A call already over writes nothing: wk_call_after fires at once with its code. */
    if (!call_is_over(ctx))
        append_do(pd, wk_config_get(ctx->config, "path"), args_json ? args_json : "");
    wk_call_after(ctx, latency, append_fire, pd);
    return 0;
}
