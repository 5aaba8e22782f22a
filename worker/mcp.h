/* worker/mcp.h - a Model Context Protocol client: one MCP server an agent spec names
 * (types.proto, McpServer), reached over a child process's stdio or over streamable HTTP.
 *
 * Owns: the server's connection (the child process and its I/O thread, or the HTTP session),
 * its requests in flight and the JSON-RPC 2.0 framing, in layers: this object and its operations
 * (worker/mcp.c) on the two transports (worker/mcp_stdio.c, worker/mcp_http.c), all on the
 * JSON-RPC core (worker/mcp_rpc.h). It speaks only what the node needs:
 * initialize (then notifications/initialized), tools/list (following nextCursor) and tools/call;
 * a request the server sends (ping, roots/list, sampling...) is answered ({} for ping, "method not
 * found" for the rest), notifications are ignored.
 *
 * stdio: the process is started on the first request, by the server's own I/O thread (never on
 * an agent-loop thread), through the node's sandbox (wk_sandbox_spawn, struct wk_mcp_exec): by
 * default bwrap as the sandbox user with the workspace wk_mcp_new was given at /workspace (its
 * cwd), read-only system, no network, the server limits (memory, processes; no CPU-time or wall
 * clock cap), the environment PATH=/usr/local/bin:/usr/bin:/bin and HOME=/workspace plus the
 * spec's env; when privileged, directly with the node's rights, cwd the workspace, the node's PATH
 * and HOME plus the spec's env. Either way a new session (its own process group). A client and
 * its process serve one agent (worker/tool_ext.h keys stdio toolsets by agent): its sandbox
 * shows that agent's workspace alone. Messages
 * are lines of JSON on its stdin and stdout; each line of its stderr goes to the node's log
 * (event mcp.stderr). When the process exits, every request sent to it ends with an error saying
 * so; the next request starts it again, after a backoff that doubles from 100 ms to 30 s while it
 * keeps dying young (under 10 s up). A process nobody sent a request for 10 minutes is stopped
 * (started again on demand). Stopping (wk_sandbox_stop): stdin closed, SIGTERM to the wrapper and
 * its group 1 s later, SIGKILL to the whole tree (its cgroup too) 1 s after that.
 *
 * HTTP: each message is a POST to the URL (worker/http.h, the node's client) with the spec's
 * headers, "Accept: application/json, text/event-stream", and the Mcp-Session-Id the server gave
 * at initialize; the answer comes as a JSON body or as server-sent events (worker/sse.h), of
 * which the one answering the request is taken. A 404 for a session (it expired) initializes again
 * once and retries.
 *
 * Calls: wk_mcp_call ends with done() exactly once, never inside wk_mcp_call: the text of the
 * result's content (is_error from its isError), or an is_error text saying why there is none: the
 * server's JSON-RPC error, its process died, the call timed out (McpServer.timeout_ms, or the
 * ctx's deadline if sooner), or the call was cancelled (ctx->cancel: KillAgent; a stdio server is
 * then sent notifications/cancelled).
 *
 * Threads: every function is thread-safe. done() and list callbacks run on the server's I/O
 * thread (stdio) or the HTTP thread: they must be quick. wk_mcp_free joins the I/O thread. */
#ifndef AGENTRY_WORKER_MCP_H
#define AGENTRY_WORKER_MCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "agentry/v1/types.pb-c.h"
#include "common/err.h"
#include "worker/call.h"
#include "worker/sandbox.h"
#include "worker/tool.h"

#define WK_MCP_DEFAULT_TIMEOUT_MS 60000
#define WK_MCP_MAX_OUTPUT (256u << 10) /* a call's text: longer is cut, saying so */

struct wk_mcp;
struct wk_http;

/* A tool as the server lists it. */
struct wk_mcp_tool {
    char *name;        /* owned: the server's name for it */
    char *description; /* owned, "" if none */
    char *schema_json; /* owned: its inputSchema, an object */
    bool idempotent;   /* annotations readOnlyHint or idempotentHint */
};
void wk_mcp_tools_free(struct wk_mcp_tool *tools, size_t n);

/* How a stdio server's process starts: through the node's executor (worker/sandbox.h), as a
 * long-lived process with pipes. */
struct wk_mcp_exec {
    const struct wk_sandbox *sandbox; /* borrowed, the node's; may be NULL when privileged */
    bool privileged;                  /* the direct back end: the node's own rights */
    bool net;                         /* the host's network; else only a private loopback */
    struct wk_sandbox_limits limits;  /* wk_sandbox_limits_server() and the settings' */
    const char *const *ro_paths;      /* copied: host dirs bound read-only; NULL: none */
};

/* srv is copied. cwd: the stdio process's workspace (copied; /workspace inside the sandbox, the
 * cwd when privileged; NULL: none, and only a privileged process starts, in the node's cwd).
 * http: the node's client, borrowed; needed for a url server. exec: copied; NULL: privileged
 * with wk_sandbox_limits_server() (tests). */
struct wk_mcp *wk_mcp_new(const Agentry__V1__McpServer *srv, const char *cwd, struct wk_http *http,
                          const struct wk_mcp_exec *exec);
/* Stop the process (stdio) and end every request with an error; later requests fail at once
 * (UNAVAILABLE). Joins the I/O thread. Idempotent. */
void wk_mcp_stop(struct wk_mcp *m);
/* Stops, then frees. NULL is a no-op. No request may be in flight on the HTTP client (wk_mcp_stop
 * does not wait for those: free after the HTTP client has ended them, or when none was made). */
void wk_mcp_free(struct wk_mcp *m);
const char *wk_mcp_name(const struct wk_mcp *m);

/* tools: owned by the callee (wk_mcp_tools_free), NULL with err on failure. */
typedef void wk_mcp_list_fn(void *arg, struct wk_mcp_tool *tools, size_t n,
                            const struct ag_err *err);
/* Initialize if needed, then list every tool (all pages). -1 with err: done is not called. */
int wk_mcp_list(struct wk_mcp *m, int64_t deadline_ms, wk_mcp_list_fn *done, void *arg,
                struct ag_err *err);
/* Call tool with args_json (a JSON object's text). ctx: its cancel and deadline. -1 with err:
 * done is not called. */
int wk_mcp_call(struct wk_mcp *m, const char *tool, const char *args_json,
                const struct wk_call_ctx *ctx, wk_tool_done_fn *done, void *arg,
                struct ag_err *err);

/* --- results and listings, for tests ---------------------------------------------------------- */

/* A tools/call result as the model's text (owned): text content as it is, other content
 * described in one line; *is_error from isError. Cut at WK_MCP_MAX_OUTPUT, saying so. */
char *wk_mcp_call_text(const cJSON *result, bool *is_error);
/* Append result's tools to *tools (*n of them, *cap allocated); *cursor: its nextCursor (owned)
 * or NULL. -1 with err if result has no tools array. */
int wk_mcp_list_page(const cJSON *result, struct wk_mcp_tool **tools, size_t *n, size_t *cap,
                     char **cursor, struct ag_err *err);

#endif
