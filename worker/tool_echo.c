/* worker/tool_echo.c - the "echo" tool: its output is its input.
 *
 * The output is the "text" string of the arguments object. Arguments that are not a JSON object
 * with a string "text" are not an error: the output is then the raw arguments text, so a model
 * that gets the schema wrong still sees what it sent.
 *
 * Threads: run() may be called from any thread. done() runs on the timer thread (delay 0), never
 * inside run(), as tool.h requires; the timer callback touches only its own pending object. */
#include <stdbool.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h"
#include "common/timers.h"
#include "worker/tool.h"

int wk_tool__echo_run(const struct wk_tool *t, const struct wk_tool_ctx *ctx, const char *args_json,
                      wk_tool_done_fn *done, void *arg, struct ag_err *err);

struct echo_pending {
    wk_tool_done_fn *done;
    void *arg;
    char *output; /* owned until done() */
};

static void echo_fire(void *p)
{
    struct echo_pending *pd = p;
    pd->done(pd->arg, pd->output, false);
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

int wk_tool__echo_run(const struct wk_tool *t, const struct wk_tool_ctx *ctx, const char *args_json,
                      wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    if (!ctx || !ctx->timers)
        return ag_err_set(err, AG_INTERNAL, "cannot run tool 'echo': no timers given");
    struct echo_pending *pd = ag_xcalloc(1, sizeof(*pd));
    pd->done = done;
    pd->arg = arg;
    pd->output = echo_output(args_json ? args_json : "");
    ag_timers_add(ctx->timers, 0, echo_fire, pd);
    return 0;
}
