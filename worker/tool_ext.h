/* worker/tool_ext.h - the tools an agent's spec brings beside the builtin ones: its MCP servers'
 * (worker/mcp.h) and its OpenAPI operations (worker/openapi.h), listed once per spec on a node.
 *
 * Owns: the node's cache of toolsets (struct wk_tool_ext, one per runner), and each toolset: the
 * MCP clients and parsed APIs of one spec's mcp_servers and openapi, and the tools they offer.
 * Agents whose specs list the same servers and documents (byte for byte) share one toolset and
 * its listing, unless a stdio server is among them: then the toolset is the agent's own (its key
 * holds the agent's id), because its processes run in that agent's workspace, mounted at
 * /workspace in their sandbox, and must never serve, or see the files of, another agent. (The
 * alternative, one process shared by agents, would need one sandbox seeing every workspace.)
 * The cache keeps at most WK_TOOL_EXT_MAX_SETS that no run holds: past it, the least recently
 * asked-for of those is stopped (its processes too) and dropped; a process nobody called for 10
 * minutes stops on its own (worker/mcp.h) and starts again with the agent's next call.
 *
 * Stdio servers start through the node's sandbox (struct wk_mcp_exec): how is the server's
 * McpServer.settings (privileged, net, cpu_limit, mem_limit, procs), within the node's "mcp.*"
 * options (wk_tool_ext_check_config), as shell's settings are within its options. A server that
 * may not start (privileged where mcp.privileged=deny, or sandboxed on a node whose sandbox is
 * unavailable, or with bad settings) fails the listing, saying why.
 *
 * Listing: the first wk_tool_ext_wait starts it, off the caller's thread: each MCP server is
 * initialized and asked tools/list; each OpenAPI document is fetched (url: the node's HTTP client,
 * at most 1 MiB, 30 s) and parsed on the node's work pool. The waiter is called back once it ends.
 * A failed listing is remembered for WK_TOOL_EXT_RETRY_MS (turns in that time fail at once with
 * its error), then tried again. A listed toolset keeps its tools for its life: a server that
 * changes its tools (notifications/tools/list_changed) is not listed again.
 *
 * Tool names, as the model sees them and permission rules match them: "mcp__<server>__<tool>" and
 * "<openapi name>__<operationId>". Model APIs take names of 1..64 characters of [A-Za-z0-9_-]:
 * any other character becomes '_', and a name that had to change, or is longer than 64, gets
 * "_" and 8 hex digits of a hash of the original (cut to fit 64), so the name is stable from node
 * to node and two names that differ stay different. Two tools with the same final name fail
 * the listing, naming both.
 *
 * Threads: every function is thread-safe. Waiter callbacks run on an MCP server's I/O thread,
 * the HTTP thread or a pool thread: they must be quick. */
#ifndef AGENTRY_WORKER_TOOL_EXT_H
#define AGENTRY_WORKER_TOOL_EXT_H

#include <stdbool.h>
#include <stddef.h>

#include "agentry/v1/types.pb-c.h"
#include "common/err.h"
#include "worker/tool.h"

#define WK_TOOL_EXT_MAX_SETS 64
#define WK_TOOL_EXT_RETRY_MS 5000
#define WK_TOOL_EXT_NAME_MAX 64

struct wk_tool_ext;
struct wk_tool_ext_set;
struct wk_http;
struct ag_workpool;
struct wk_sandbox;
struct wk_config;

/* One tool of a toolset; lives as long as the toolset. */
struct wk_tool_ext_tool {
    char *name;        /* owned: the full name the model sees */
    char *description; /* owned */
    char *schema_json; /* owned */
    bool idempotent;
    bool mcp;      /* an MCP server's; else an OpenAPI operation */
    size_t source; /* index in the spec's mcp_servers or openapi */
    char *remote;  /* owned: the MCP tool's name, or the operationId */
};

/* http, pool, sandbox (may be NULL) and options (the node's "mcp.*", may be NULL): the node's,
 * borrowed; they must outlive wk_tool_ext_stop. */
struct wk_tool_ext *wk_tool_ext_new(struct wk_http *http, struct ag_workpool *pool,
                                    const struct wk_sandbox *sandbox,
                                    const struct wk_config *options);
/* check_config of the node's "mcp.*" options (worker/config.h): privileged (allow or deny),
 * ro_paths (host dirs bound read-only into every stdio server's sandbox, ':' between them),
 * cpu_limit, mem_limit, procs. */
int wk_tool_ext_check_config(const struct wk_config *c, struct ag_err *err);
/* Stop every server (their calls end with an error) and refuse new listings and calls. Before
 * the HTTP client and the pool go. */
void wk_tool_ext_stop(struct wk_tool_ext *x);
/* Drops the cache's references (a toolset a run still holds lives until it lets go). NULL: no-op. */
void wk_tool_ext_free(struct wk_tool_ext *x);
/* The agent was deleted (node.proto, Forget): its own toolsets (those with a stdio server) leave
 * the cache, and their server processes stop, releasing its workspace. */
void wk_tool_ext_forget(struct wk_tool_ext *x, const char *agent_id);

/* The toolset of spec for agent_id, with a reference for the caller; NULL if the spec has no
 * mcp_servers and no openapi. */
struct wk_tool_ext_set *wk_tool_ext_get(struct wk_tool_ext *x, const Agentry__V1__AgentSpec *spec,
                                        const char *agent_id);
void wk_tool_ext_unref(struct wk_tool_ext_set *ts); /* NULL is a no-op */

typedef void wk_tool_ext_ready_fn(void *arg);
/* 0: listed. 1: listing; fn(arg) runs once when it ends (never inside this call), after which
 * wait answers 0 or -1. -1: the listing failed; err says which server or document, and why.
 * cwd: the working directory for stdio servers this toolset starts (copied; NULL: the node's). */
int wk_tool_ext_wait(struct wk_tool_ext_set *ts, const char *cwd, wk_tool_ext_ready_fn *fn,
                     void *arg, struct ag_err *err);
/* The tools, once wait answered 0 (else none). */
const struct wk_tool_ext_tool *wk_tool_ext_tools(const struct wk_tool_ext_set *ts, size_t *n);
/* The tool named name, NULL if there is none or the toolset is not listed yet. */
const struct wk_tool_ext_tool *wk_tool_ext_find(const struct wk_tool_ext_set *ts, const char *name);
/* Call t as a tool's run() does (worker/tool.h): done() exactly once, never inside. An OpenAPI
 * call's ctx must carry http_request's options and settings (worker/tool_http_request.h). */
int wk_tool_ext_call(struct wk_tool_ext_set *ts, const struct wk_tool_ext_tool *t,
                     const struct wk_call_ctx *ctx, const char *args_json, wk_tool_done_fn *done,
                     void *arg, struct ag_err *err);

/* prefix + "__" + a (+ "__" + b if b), made a valid tool name as above. Owned. */
char *wk_tool_ext_name(const char *prefix, const char *a, const char *b);

#endif
