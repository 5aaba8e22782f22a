/* worker/tool_echo.c - the "echo" tool: its output is its input.
 *
 * The output is the "text" string of the arguments object. Arguments that are not a JSON object
 * with a string "text" are not an error: the output is then the raw arguments text, so a model
 * that gets the schema wrong still sees what it sent.
 *
 * Options: echo.latency=DUR delays every output (default 0: a slow tool, for tests and demos),
 * and the common echo.timeout. A cancelled call ends at once with is_error output "tool 'echo'
 * was cancelled"; one past its deadline with "tool 'echo' timed out".
 *
 * Threads: run() may be called from any thread. done() runs on the timer thread
 * (wk_call_after), never inside run(), as tool.h requires; it touches only its own pending
 * object. */
#include <stdbool.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h"
#include "worker/tool.h"
#include "worker/tool_rows.h"

static const char *const echo_keys[] = {"latency", NULL};

struct echo_pending {
    wk_tool_done_fn *done;
    void *arg;
    char *output; /* owned until done() */
};

static void echo_fire(void *p, enum ag_code code)
{
    struct echo_pending *pd = p;
    if (code == AG_OK) {
        pd->done(pd->arg, pd->output, false);
    } else {
        free(pd->output);
        pd->done(pd->arg,
                 ag_xstrdup(code == AG_CANCELLED ? "tool 'echo' was cancelled"
                                                 : "tool 'echo' timed out"),
                 true);
    }
    free(pd);
}

static char *echo_output(const char *args_json)
{
    cJSON *args = cJSON_Parse(args_json);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(args, "text");
    char *out = cJSON_IsObject(args) && cJSON_IsString(text) ? ag_xstrdup(text->valuestring)
                                                             : ag_xstrdup(args_json);
    cJSON_Delete(args);
    return out;
}

int wk_tool__echo_check_config(const struct wk_config *c, struct ag_err *err)
{
    int64_t latency = 0;
    if (wk_config_check_keys(c, echo_keys, err) != 0)
        return -1;
    return wk_config_duration(c, "latency", &latency, err);
}

int wk_tool__echo_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
                      wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    if (!ctx || !ctx->timers)
        return ag_err_set(err, AG_INTERNAL, "cannot run tool 'echo': no timers given");
    int64_t latency = 0;
    if (wk_config_duration(ctx->config, "latency", &latency, err) != 0)
        return -1; /* checked at start; kept for callers that skip the check */
    struct echo_pending *pd = ag_xcalloc(1, sizeof(*pd));
    pd->done = done;
    pd->arg = arg;
    pd->output = echo_output(args_json ? args_json : "");
    wk_call_after(ctx, latency, echo_fire, pd);
    return 0;
}
