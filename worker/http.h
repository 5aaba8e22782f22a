/* worker/http.h - the node's HTTP client: many requests in flight on one thread.
 *
 * One wk_http per node owns one libcurl multi handle and one thread driving it with epoll
 * (curl's socket interface): every request of the node (model calls, the http_request tool) is a
 * state machine on it, so 2,000 streaming model calls cost 2,000 sockets, not 2,000 threads. The
 * multi handle keeps idle connections open and reuses them (HTTP/1.1 keep-alive, HTTP/2
 * multiplexing over TLS).
 *
 * A request is started from any thread with wk_http_start and ends with exactly one done(), on
 * the HTTP thread, never inside wk_http_start: after the whole response (any status: a 404 is a
 * response, not an error), or with an error:
 *   AG_CANCELLED          its cancel handle was cancelled (the connection is closed, so the server
 *                         sees the request aborted), or the client is being freed;
 *   AG_DEADLINE_EXCEEDED  deadline_ms passed, or no byte came for stall_ms (resp->stalled);
 *   AG_RESOURCE_EXHAUSTED the body passed max_bytes (unless truncate is set: then the body is cut
 *                         there and done() reports success with resp->truncated);
 *   AG_UNAVAILABLE        no connection, or it broke (refused, reset, TLS, DNS);
 *   whatever on_data returned, when it refused a chunk.
 * Redirects are never followed: a 3xx is the response, its Location a header to look up.
 *
 * A 2xx body goes to on_data chunk by chunk as it arrives, when on_data is set (a stream); any
 * other body, or every body without on_data, is collected and given to done() whole.
 *
 * Bounded: at most WK_HTTP_MAX_REQUESTS in flight (RESOURCE_EXHAUSTED beyond, from
 * wk_http_start), response headers at most 256 KiB, bodies at most max_bytes.
 *
 * Threads: wk_http_start is thread-safe and may be called from done() or on_data(). on_data()
 * and done() run on the HTTP thread and must be quick: they hold up every other request. A
 * cancel listener (worker/cancel.h) only queues the request for the HTTP thread and wakes it
 * (an eventfd), as the listener must be quick. DNS lookups use libcurl's resolver, which
 * may run a short-lived thread per lookup of a name it has not cached; IP literals need none.
 * wk_http_free ends every request still in flight with AG_CANCELLED (done() still runs once, on
 * the HTTP thread), then joins it: call it after every caller that may start requests has
 * stopped (a provider's retry timer, a run). */
#ifndef AGENTRY_WORKER_HTTP_H
#define AGENTRY_WORKER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/cancel.h"

#define WK_HTTP_MAX_REQUESTS 4096
#define WK_HTTP_DEFAULT_MAX_BYTES (64u << 20) /* when wk_http_opts.max_bytes is 0 */

/* The response as far as it came. Borrowed: valid during the on_data or done call only. */
struct wk_http_resp {
    long status;      /* 0: no status line came */
    const char *body; /* NUL-terminated, never NULL; empty when on_data took the body */
    size_t len;
    size_t received; /* body bytes that came, to on_data or into body */
    bool truncated;  /* truncate was set and the body passed max_bytes: body holds the start */
    bool stalled;    /* DEADLINE_EXCEEDED because nothing came for stall_ms */
    /* Private: use wk_http_resp_header. */
    char *const *headers_; /* "Name: value" lines of the final response */
    size_t nheaders_;
};

/* The value of header name (case-insensitive; the first if repeated), without surrounding
 * blanks; NULL if absent. Borrowed as the response is. */
const char *wk_http_resp_header(const struct wk_http_resp *r, const char *name);

/* A chunk of a 2xx body. Returns 0 to go on, or -1 with err to abort the request (done() then
 * gets that error). */
typedef int wk_http_data_fn(void *arg, const struct wk_http_resp *resp, const char *data,
                            size_t len, struct ag_err *err);
/* err is NULL when the response came whole; resp is never NULL. */
typedef void wk_http_done_fn(void *arg, const struct wk_http_resp *resp, const struct ag_err *err);

struct wk_http_opts {
    const char *method;         /* "GET", "POST", "HEAD", any token */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* "Name: value"; borrowed for the call to wk_http_start */
    size_t nheaders;
    const char *body; /* copied; NULL: none */
    size_t body_len;
    int64_t deadline_ms;      /* ag_now_mono_ms() time; 0: none */
    int64_t stall_ms;         /* no byte for this long ends it; 0: no limit */
    size_t max_bytes;         /* of the body; 0: WK_HTTP_DEFAULT_MAX_BYTES */
    bool truncate;            /* past max_bytes: stop and succeed with resp->truncated */
    struct wk_cancel *cancel; /* borrowed until done(); NULL: never cancelled */
    wk_http_data_fn *on_data; /* NULL: collect 2xx bodies too */
    wk_http_done_fn *done;    /* required */
    void *arg;
};

struct wk_http;

/* The client and its thread. NULL with err if libcurl cannot make a multi handle. */
struct wk_http *wk_http_new(struct ag_err *err);
/* Ends every request with AG_CANCELLED, joins the thread, frees. NULL is a no-op. */
void wk_http_free(struct wk_http *h);
/* Start a request: 0 (done() will run) or -1 with err (done() will not run): INVALID_ARGUMENT
 * for a missing method, URL or done, or a URL that is not http(s); RESOURCE_EXHAUSTED when
 * WK_HTTP_MAX_REQUESTS are in flight; UNAVAILABLE while the client is being freed. */
int wk_http_start(struct wk_http *h, const struct wk_http_opts *o, struct ag_err *err);
/* Requests in flight now (for gauges and tests). */
size_t wk_http_inflight(struct wk_http *h);

#endif
