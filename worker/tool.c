/* worker/tool.c - the tool table: each tool is a row here plus a file, worker/tool_<name>.c.
 * No state, no threads: safe to call from any thread. */
#include "worker/tool.h"

#include <string.h>

/* Defined in worker/tool_echo.c. */
int wk_tool__echo_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
                      wk_tool_done_fn *done, void *arg, struct ag_err *err);
int wk_tool__echo_check_config(const struct wk_config *c, struct ag_err *err);
/* Defined in worker/tool_append.c. */
int wk_tool__append_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                        const char *args_json, wk_tool_done_fn *done, void *arg,
                        struct ag_err *err);
int wk_tool__append_check_config(const struct wk_config *c, struct ag_err *err);

const struct wk_tool wk_tools[] = {
    {
        .name = "echo",
        .description = "Returns the given text unchanged.",
        .schema_json = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                       "\"required\":[\"text\"]}",
        .idempotent = true,
        .run = wk_tool__echo_run,
        .check_config = wk_tool__echo_check_config,
    },
    {
        .name = "append",
        .description = "Appends the given text as one line to the node's file (append.path).",
        .schema_json = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                       "\"required\":[\"text\"]}",
        /* Twice is two lines: a call lost after it started gets "outcome unknown". */
        .idempotent = false,
        .run = wk_tool__append_run,
        .check_config = wk_tool__append_check_config,
    },
    {.name = NULL},
};

const struct wk_tool *wk_tool_find(const char *name)
{
    if (!name)
        return NULL;
    for (const struct wk_tool *t = wk_tools; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}
