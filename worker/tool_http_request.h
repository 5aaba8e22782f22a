/* worker/tool_http_request.h - the http_request tool's request path, for other tools whose calls
 * are HTTP requests (an OpenAPI operation: worker/openapi.c, worker/tool_ext.c).
 *
 * The call gets exactly what an http_request call gets: the node's http_request options and the
 * spec's settings for http_request (ctx->config, ctx->settings_json: allowed hosts, max_bytes,
 * timeout), the same output (status, a few headers, the body as text) and the same errors. One
 * difference: implicit_host, when given, is allowed even if the allowlists do not name it (the
 * API an agent's spec names is allowed by naming it).
 *
 * Threads: as the tool's run() (worker/tool_http_request.c). */
#ifndef AGENTRY_WORKER_TOOL_HTTP_REQUEST_H
#define AGENTRY_WORKER_TOOL_HTTP_REQUEST_H

#include <cjson/cJSON.h>

#include "worker/tool.h"

/* args as the tool's: {"method", "url", "headers": {name: value}, "body"} (borrowed for the
 * call). As run(): 0 and done() later exactly once, or -1 with err and no done(). */
int wk_tool_http_request_call(const struct wk_call_ctx *ctx, const cJSON *args,
                              const char *implicit_host, wk_tool_done_fn *done, void *arg,
                              struct ag_err *err);

#endif
