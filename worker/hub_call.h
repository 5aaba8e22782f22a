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
 * The node's connection (worker/conn.c) owns the link: it sends what the link hands it, gives it
 * every HubToolResult, and tells it when the stream ended. At most WK_HUB_MAX_PENDING calls wait
 * for answers at once (a node runs one tool call per turn at a time, so this bounds nothing a
 * sane node reaches; beyond it, RESOURCE_EXHAUSTED).
 *
 * Threads: every function is thread-safe; the link's lock is taken last (send() is called with
 * it held, so send must not call back into the link). */
#ifndef AGENTRY_WORKER_HUB_CALL_H
#define AGENTRY_WORKER_HUB_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "worker/call.h"

/* output: owned by the callee (free()). wait: the hub said wait_agent must wait (see node.proto
 * HubToolResult.wait); only wait_agent sees it. */
typedef void wk_hub_done_fn(void *arg, char *output, bool is_error, bool wait);

/* -1 with FAILED_PRECONDITION when ctx has no hub link (a test host without a hub), done() then
 * never called. name: the hub tool; args_json: a JSON object's text. */
int wk_hub_call(const struct wk_call_ctx *ctx, const char *name, const char *args_json,
                wk_hub_done_fn *done, void *arg, struct ag_err *err);

#define WK_HUB_MAX_PENDING 65536

/* Queue a packed NodeMessage (buf owned by the callee) on the stream; -1 when there is no
 * registered stream (then buf is freed by the callee too). */
typedef int wk_hub_send_fn(void *ctx, uint8_t *buf, size_t len);

struct ag_timers;
struct wk_hub_link *wk_hub_link_new(struct ag_timers *timers, wk_hub_send_fn *send, void *ctx);
/* Every call still waiting gets done() with an error first. NULL is a no-op. */
void wk_hub_link_free(struct wk_hub_link *l);
/* A HubToolResult came: the call it answers completes (an unknown id, one cancelled or timed
 * out already, is ignored). */
void wk_hub_link_result(struct wk_hub_link *l, const Agentry__V1__HubToolResult *r);
/* The stream ended: every call waiting completes with an is_error output naming why. */
void wk_hub_link_lost(struct wk_hub_link *l, const char *why);

#endif
