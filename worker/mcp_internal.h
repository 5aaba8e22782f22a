/* worker/mcp_internal.h - what the MCP client's files share: private to worker/mcp*.c.
 *
 * worker/mcp.c holds the object, the framing and the two operations (list, call) built on one
 * request primitive; worker/mcp_stdio.c and worker/mcp_http.c are its two transports. A request
 * is one JSON-RPC message; its reply callback runs exactly once (never inside the submit), on the
 * transport's thread, with the whole response message or an error.
 *
 * Locks: wk_mcp.mu guards stopped, the stdio queue handed to the I/O thread and the HTTP
 * session state; everything about the stdio process belongs to its I/O thread alone. */
#ifndef AGENTRY_WORKER_MCP_INTERNAL_H
#define AGENTRY_WORKER_MCP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "worker/mcp.h"

struct wk_sse;

/* msg: the response (owned by the callee), NULL with err on failure. A notification's reply
 * has neither (msg NULL, err NULL) once it was sent. */
typedef void wk_mcp__reply_fn(void *arg, cJSON *msg, const struct ag_err *err);

struct wk_mcp__req {
    struct wk_mcp__req *next;
    struct wk_mcp *m;
    int64_t id; /* -1: a notification */
    char *line; /* owned: the message and '\n' */
    size_t len;
    int64_t deadline_ms;      /* ag_now_mono_ms() time; 0: none */
    struct wk_cancel *cancel; /* borrowed until the reply; NULL: never cancelled */
    bool listening;           /* stdio: our listener is on cancel */
    atomic_bool cancelled;
    bool retried; /* HTTP: sent again after the session expired */
    wk_mcp__reply_fn *fn;
    void *arg;
    /* HTTP: the answer as it comes. */
    struct wk_sse *sse; /* owned, when the body is an event stream */
    char *body;         /* owned: a JSON body */
    size_t body_len;
    cJSON *got; /* owned: the response found in the stream */
    bool had_session;
};

enum wk_mcp__hstate { WK_MCP__H_NONE, WK_MCP__H_INIT, WK_MCP__H_READY };

struct wk_mcp {
    /* Set by wk_mcp_new, read-only after. */
    char *name;
    char **argv;    /* owned, NULL-terminated; NULL for an HTTP server */
    char **envp;    /* owned, NULL-terminated */
    char *cwd;      /* owned, may be NULL */
    char *url;      /* owned; NULL for a stdio server */
    char **headers; /* owned, "Name: value" */
    size_t nheaders;
    int64_t timeout_ms;
    struct wk_http *http; /* borrowed */
    atomic_llong next_id;

    pthread_mutex_t mu;
    bool stopped; /* under mu */
    /* stdio, under mu: requests for the I/O thread, and whether it runs. */
    struct wk_mcp__req *incoming, **incoming_tail;
    bool thread_started;
    pthread_t thread;
    int wake_fd; /* eventfd: incoming, a cancel, a stop */
    /* HTTP, under mu. */
    enum wk_mcp__hstate hstate;
    char *session;                           /* owned, the Mcp-Session-Id; NULL: none */
    char *protocol;                          /* owned, the version initialize agreed on */
    struct wk_mcp__req *hwait, **hwait_tail; /* waiting for initialize */
};

/* A request for method with params (taken, may be NULL); id < 0 sends a notification. */
struct wk_mcp__req *wk_mcp__req_new(struct wk_mcp *m, const char *method, cJSON *params,
                                    bool notify, int64_t deadline_ms, struct wk_cancel *cancel,
                                    wk_mcp__reply_fn *fn, void *arg);
/* Reply once and free the request (stops listening to its cancel first). */
void wk_mcp__finish(struct wk_mcp__req *r, cJSON *msg, const struct ag_err *err);
/* Reply with an error of code built from fmt, and free. */
void wk_mcp__fail(struct wk_mcp__req *r, enum ag_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The params of initialize. Owned. */
cJSON *wk_mcp__init_params(void);

/* Transports: take r (0), or -1 with err (r is not replied to; the caller frees it). */
int wk_mcp__stdio_submit(struct wk_mcp *m, struct wk_mcp__req *r, struct ag_err *err);
void wk_mcp__stdio_stop(struct wk_mcp *m);
int wk_mcp__http_submit(struct wk_mcp *m, struct wk_mcp__req *r, struct ag_err *err);
void wk_mcp__http_stop(struct wk_mcp *m);

#endif
