/* worker/tool_hub.c - the run() of the tools the hub runs (worker/hub_call.h): spawn_agent,
 * send_agent, wait_agent, and the memory tools that need nothing from the node first.
 *
 * The arguments go to the hub as the model wrote them (the hub parses and checks them: a
 * malformed object is the model's error, answered by the hub); the hub's output is the result.
 * wait_agent's "wait" answer sets *ctx->waits before done(), and the run then lets go of the
 * turn with EVENT_KIND_WAITING (worker/run.c).
 *
 * Threads: run() from any thread; done() from the connection thread or the timer thread, never
 * inside run(). */
#include <stdbool.h>
#include <stdlib.h>

#include "common/xalloc.h"
#include "worker/hub_call.h"
#include "worker/tool.h"
#include "worker/tool_rows.h"

struct hub_pending {
    wk_tool_done_fn *done;
    void *arg;
    bool *waits; /* ctx->waits, valid until done() */
};

static void on_hub_done(void *arg, char *output, bool is_error, bool wait)
{
    struct hub_pending *p = arg;
    if (wait && p->waits)
        *p->waits = true;
    p->done(p->arg, output, is_error);
    free(p);
}

int wk_tool__hub_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
                     wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    struct hub_pending *p = ag_xcalloc(1, sizeof(*p));
    p->done = done;
    p->arg = arg;
    p->waits = ctx->waits;
    if (wk_hub_call(ctx, t->name, args_json, on_hub_done, p, err) != 0) {
        free(p);
        return -1;
    }
    return 0;
}
