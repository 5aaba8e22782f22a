/* worker/tool.h - the tool interface and registry.
 *
 * A tool runs asynchronously like a provider: run() returns at once, done() is called exactly once
 * later (never from inside run()), or never if run() returned -1. The call's context
 * (worker/call.h) carries its cancel handle, deadline and the tool's options: a cancelled or late
 * call still calls done() once, with is_error and an output saying so. Tools are rows of a table
 * (wk_tools), one file each (worker/tool_<name>.c; docs/tools.md lists them): echo, append,
 * the file tools confined to the agent's workspace, shell and http_request. The run checks the
 * spec's permission rules (worker/run_spec.c) before run(); shell starts its program through
 * the node's sandbox (worker/sandbox.h). */
#ifndef AGENTRY_WORKER_TOOL_H
#define AGENTRY_WORKER_TOOL_H

#include <stdbool.h>

#include "common/err.h"
#include "worker/call.h"

/* output: owned by the callee (free()), the tool's text result. is_error: the tool failed and
 * output says why (the model sees it; the turn goes on). */
typedef void wk_tool_done_fn(void *arg, char *output, bool is_error);

struct wk_tool {
    const char *name;
    const char *description; /* one line, for models */
    const char *schema_json; /* JSON schema of the arguments object */
    /* ctx is borrowed for the call only; the pointers inside it stay valid until done(). */
    int (*run)(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
               wk_tool_done_fn *done, void *arg, struct ag_err *err);
    /* Running it twice does what running it once does. A call whose node was lost after its
     * TOOL_CALL was stored, with no TOOL_RESULT, runs again only when this is true; otherwise
     * the model gets the error result "outcome unknown" (docs/operations.md, tool journal). */
    bool idempotent;
    /* As wk_provider_row.check_config; NULL: the tool takes only "timeout". */
    int (*check_config)(const struct wk_config *c, struct ag_err *err);
    /* What permission rules' patterns match for a call (AgentSpec.permissions): the command for
     * shell, the URL's host for http_request, the path for file tools; owned, NULL when the
     * arguments name none (then only rules without patterns match). NULL: the tool has no
     * subject. */
    char *(*subject)(const char *args_json);
    /* Checks the spec's settings for this tool (AgentSpec.tool_settings, a JSON object's text)
     * when a turn starts: -1 with INVALID_ARGUMENT naming the bad key. NULL: the tool takes
     * none, and any settings are refused. */
    int (*check_settings)(const char *settings_json, struct ag_err *err);
};

extern const struct wk_tool wk_tools[];               /* ends with a NULL name */
const struct wk_tool *wk_tool_find(const char *name); /* NULL if unknown */

#endif
