/* worker/hub_call.h - calling a hub tool from a node (node.proto HubToolCall): the tools whose
 * effects are the hub's state (spawn_agent, send_agent, wait_agent, memory_*).
 *
 * A hub tool's run() (worker/tool_<name>.c) builds its arguments and calls wk_hub_call with
 * its call context; the node sends a HubToolCall on its stream and calls done() exactly once:
 * with the hub's HubToolResult, or with an is_error output when the stream ended first ("hub
 * connection lost before the answer": the hub also lost the turn and places it again, whose
 * replay follows the tool journal's rules), when the call is cancelled, or at its deadline.
 * done() is never called inside wk_hub_call, and comes from the connection's thread or the
 * timer thread.
 *
 * Threads: wk_hub_call from any thread. */
#ifndef AGENTRY_WORKER_HUB_CALL_H
#define AGENTRY_WORKER_HUB_CALL_H

#include <stdbool.h>

#include "common/err.h"
#include "worker/call.h"

/* output: owned by the callee (free()). wait: the hub said wait_agent must wait (see node.proto
 * HubToolResult.wait); only wait_agent sees it. */
typedef void wk_hub_done_fn(void *arg, char *output, bool is_error, bool wait);

/* -1 with FAILED_PRECONDITION when ctx has no hub link (a test host without a hub), done() then
 * never called. name: the hub tool; args_json: a JSON object's text. */
int wk_hub_call(const struct wk_call_ctx *ctx, const char *name, const char *args_json,
                wk_hub_done_fn *done, void *arg, struct ag_err *err);

#endif
