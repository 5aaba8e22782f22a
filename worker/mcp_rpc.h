/* worker/mcp_rpc.h - the MCP client's JSON-RPC core: private to worker/mcp*.c.
 *
 * Owns: the JSON-RPC 2.0 framing, the connection the transports share (the server as the spec
 * names it, its lock, each transport's session state), the request (one JSON-RPC message and the
 * callback its reply goes to) and the transport table. The files stand in layers: worker/mcp.c
 * (the object and its operations) on the two transports, worker/mcp_stdio.c and
 * worker/mcp_http.c, and all three on this core; mcp.c reaches a transport only through its row
 * (wk_mcp_stdio_transport, wk_mcp_http_transport), and no transport names mcp.c.
 *
 * A request's reply callback runs exactly once (never inside the submit), on the transport's
 * thread, with the whole response message or an error.
 *
 * Locks: wk_mcp_rpc.mu guards stopped, the stdio queue handed to the I/O thread and the HTTP
 * session state; everything about the stdio process belongs to its I/O thread alone. */
#ifndef AGENTRY_WORKER_MCP_RPC_H
#define AGENTRY_WORKER_MCP_RPC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "worker/sandbox.h"

#define WK_MCP_RPC_PROTOCOL "2025-03-26"
#define WK_MCP_RPC_MAX_LINE (8u << 20) /* one message from a server */

struct wk_cancel;
struct wk_http;
struct wk_sse;

/* --- the framing --------------------------------------------------------------------------- */

/* A request (id >= 0) or notification (id < 0) as one line: JSON and '\n'. params: taken, may
 * be NULL. Owned; *len its length. */
char *wk_mcp_rpc_frame(int64_t id, const char *method, cJSON *params, size_t *len);
/* What a line from a server is. */
enum wk_mcp_rpc_kind {
    WK_MCP_RPC_RESPONSE,     /* id and result or error: *id set */
    WK_MCP_RPC_REQUEST,      /* the server asks something: *id set, method in *method */
    WK_MCP_RPC_NOTIFICATION, /* no id */
};
/* Parse one message: *msg owned (cJSON_Delete); -1 with err if it is not a JSON-RPC 2.0 object
 * (a batch array is refused too: the node never sends one). */
int wk_mcp_rpc_parse(const char *text, size_t len, cJSON **msg, enum wk_mcp_rpc_kind *kind,
                     int64_t *id, const char **method, struct ag_err *err);
/* The result of a response (detached, owned), or NULL with err: the JSON-RPC error ("MCP error
 * CODE: message"). */
cJSON *wk_mcp_rpc_result(cJSON *msg, struct ag_err *err);
/* The params of initialize. Owned. */
cJSON *wk_mcp_rpc_init_params(void);

/* --- the connection and its requests ------------------------------------------------------- */

/* msg: the response (owned by the callee), NULL with err on failure. A notification's reply
 * has neither (msg NULL, err NULL) once it was sent. */
typedef void wk_mcp_rpc_reply_fn(void *arg, cJSON *msg, const struct ag_err *err);

struct wk_mcp_rpc_req {
    struct wk_mcp_rpc_req *next;
    struct wk_mcp_rpc *m;
    int64_t id; /* -1: a notification */
    char *line; /* owned: the message and '\n' */
    size_t len;
    int64_t deadline_ms;      /* ag_now_mono_ms() time; 0: none */
    struct wk_cancel *cancel; /* borrowed until the reply; NULL: never cancelled */
    bool listening;           /* stdio: our listener is on cancel */
    atomic_bool cancelled;
    bool retried; /* HTTP: sent again after the session expired */
    wk_mcp_rpc_reply_fn *fn;
    void *arg;
    /* HTTP: the answer as it comes. */
    struct wk_sse *sse; /* owned, when the body is an event stream */
    char *body;         /* owned: a JSON body */
    size_t body_len;
    cJSON *got; /* owned: the response found in the stream */
    bool had_session;
};

/* A transport: one row of functions, defined by its file. */
struct wk_mcp_rpc_transport {
    /* Take r (0), or -1 with err (r is not replied to; the caller frees it). */
    int (*submit)(struct wk_mcp_rpc *m, struct wk_mcp_rpc_req *r, struct ag_err *err);
    /* End every request with an error; later submits fail at once (UNAVAILABLE). Joins the
     * transport's own thread, if it has one. Idempotent. */
    void (*stop)(struct wk_mcp_rpc *m);
};
extern const struct wk_mcp_rpc_transport wk_mcp_stdio_transport; /* worker/mcp_stdio.c */
extern const struct wk_mcp_rpc_transport wk_mcp_http_transport;  /* worker/mcp_http.c */

enum wk_mcp_rpc_hstate { WK_MCP_RPC_H_NONE, WK_MCP_RPC_H_INIT, WK_MCP_RPC_H_READY };

struct wk_mcp_rpc {
    /* Set by wk_mcp_new (worker/mcp.c), read-only after. */
    const struct wk_mcp_rpc_transport *transport;
    char *name;
    char **argv; /* owned, NULL-terminated; NULL for an HTTP server */
    char **envp; /* owned, NULL-terminated */
    char *cwd;   /* owned, may be NULL */
    /* stdio: how the process starts (struct wk_mcp_exec, worker/mcp.h). */
    const struct wk_sandbox *sandbox; /* borrowed */
    bool privileged, net;
    struct wk_sandbox_limits limits;
    char **ro_paths; /* owned, NULL-terminated; NULL: none */
    char *url;       /* owned; NULL for a stdio server */
    char **headers;  /* owned, "Name: value" */
    size_t nheaders;
    int64_t timeout_ms;
    struct wk_http *http; /* borrowed */
    atomic_llong next_id;

    pthread_mutex_t mu;
    bool stopped; /* under mu */
    /* stdio, under mu: requests for the I/O thread, and whether it runs. */
    struct wk_mcp_rpc_req *incoming, **incoming_tail;
    bool thread_started;
    pthread_t thread;
    int wake_fd; /* eventfd: incoming, a cancel, a stop */
    /* HTTP, under mu. */
    enum wk_mcp_rpc_hstate hstate;
    char *session;                              /* owned, the Mcp-Session-Id; NULL: none */
    char *protocol;                             /* owned, the version initialize agreed on */
    struct wk_mcp_rpc_req *hwait, **hwait_tail; /* waiting for initialize */
};

/* A request for method with params (taken, may be NULL); notify sends a notification (id -1). */
struct wk_mcp_rpc_req *wk_mcp_rpc_req_new(struct wk_mcp_rpc *m, const char *method, cJSON *params,
                                          bool notify, int64_t deadline_ms,
                                          struct wk_cancel *cancel, wk_mcp_rpc_reply_fn *fn,
                                          void *arg);
/* Reply once and free the request (stops listening to its cancel first). */
void wk_mcp_rpc_finish(struct wk_mcp_rpc_req *r, cJSON *msg, const struct ag_err *err);
/* Reply with an error of code built from fmt, and free. */
void wk_mcp_rpc_fail(struct wk_mcp_rpc_req *r, enum ag_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
