/* worker/mcp_rpc.c - the MCP client's JSON-RPC core: the framing, and a request's life from
 * its message to its one reply. See worker/mcp_rpc.h for what it owns and who uses it.
 *
 * Threads: no state of its own; a request is finished on whichever thread its transport
 * answers it on. */
#include "worker/mcp_rpc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "worker/cancel.h"

/* --- framing ------------------------------------------------------------------------------- */

char *wk_mcp_rpc_frame(int64_t id, const char *method, cJSON *params, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "jsonrpc", "2.0");
    if (id >= 0)
        cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "method", method);
    if (params)
        cJSON_AddItemToObject(o, "params", params);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    /* cJSON escapes control characters, so the line holds no raw newline: one message a line. */
    size_t n = strlen(s);
    char *line = ag_xmalloc(n + 2);
    memcpy(line, s, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    cJSON_free(s);
    *len = n + 1;
    return line;
}

static bool id_of(const cJSON *v, int64_t *id)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 ||
        v->valuedouble != floor(v->valuedouble))
        return false;
    *id = (int64_t)v->valuedouble;
    return true;
}

int wk_mcp_rpc_parse(const char *text, size_t len, cJSON **msg, enum wk_mcp_rpc_kind *kind,
                     int64_t *id, const char **method, struct ag_err *err)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "not a JSON-RPC message (a JSON object)");
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "jsonrpc");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "method");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0) {
        cJSON_Delete(o);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "not a JSON-RPC 2.0 message (jsonrpc != 2.0)");
    }
    *id = -1;
    *method = NULL;
    if (cJSON_IsString(m)) {
        *method = m->valuestring;
        *kind = i && !cJSON_IsNull(i) ? WK_MCP_RPC_REQUEST : WK_MCP_RPC_NOTIFICATION;
        /* A server's own request ids may be strings: answered with the same value, so only a
         * number is read here; the caller echoes the item itself. */
        if (*kind == WK_MCP_RPC_REQUEST)
            id_of(i, id);
    } else {
        if (!id_of(i, id)) {
            cJSON_Delete(o);
            return ag_err_set(err, AG_INVALID_ARGUMENT, "a JSON-RPC response without a valid id");
        }
        *kind = WK_MCP_RPC_RESPONSE;
    }
    *msg = o;
    return 0;
}

cJSON *wk_mcp_rpc_result(cJSON *msg, struct ag_err *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(msg, "error");
    if (e) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "message");
        ag_err_set(err, AG_UNKNOWN, "MCP error %d: %.200s",
                   cJSON_IsNumber(code) ? code->valueint : 0,
                   cJSON_IsString(text) ? text->valuestring : "(no message)");
        return NULL;
    }
    cJSON *r = cJSON_DetachItemFromObjectCaseSensitive(msg, "result");
    if (!r)
        ag_err_set(err, AG_UNKNOWN, "MCP response with neither result nor error");
    return r;
}

cJSON *wk_mcp_rpc_init_params(void)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "protocolVersion", WK_MCP_RPC_PROTOCOL);
    cJSON_AddObjectToObject(p, "capabilities");
    cJSON *info = cJSON_AddObjectToObject(p, "clientInfo");
    cJSON_AddStringToObject(info, "name", "agentry");
    cJSON_AddStringToObject(info, "version", "1");
    return p;
}

/* --- requests ------------------------------------------------------------------------------ */

struct wk_mcp_rpc_req *wk_mcp_rpc_req_new(struct wk_mcp_rpc *m, const char *method, cJSON *params,
                                          bool notify, int64_t deadline_ms,
                                          struct wk_cancel *cancel, wk_mcp_rpc_reply_fn *fn,
                                          void *arg)
{
    struct wk_mcp_rpc_req *r = ag_xcalloc(1, sizeof(*r));
    r->m = m;
    r->id = notify ? -1 : (int64_t)atomic_fetch_add(&m->next_id, 1);
    r->line = wk_mcp_rpc_frame(r->id, method, params, &r->len);
    r->deadline_ms = deadline_ms;
    r->cancel = cancel;
    atomic_init(&r->cancelled, false);
    r->fn = fn;
    r->arg = arg;
    return r;
}

void wk_mcp_rpc_finish(struct wk_mcp_rpc_req *r, cJSON *msg, const struct ag_err *err)
{
    if (r->listening)
        wk_cancel_unlisten(r->cancel, r);
    r->fn(r->arg, msg, err);
    free(r->line);
    free(r->body);
    cJSON_Delete(r->got);
    free(r);
}

void wk_mcp_rpc_fail(struct wk_mcp_rpc_req *r, enum ag_code code, const char *fmt, ...)
{
    struct ag_err err = AG_ERR_INIT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    err.code = code;
    wk_mcp_rpc_finish(r, NULL, &err);
}
