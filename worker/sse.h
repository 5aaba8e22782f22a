/* worker/sse.h - a server-sent events parser (the text/event-stream format of the HTML standard).
 *
 * Fed a stream in chunks split anywhere (mid-line, mid-field, mid UTF-8 character, between the
 * CR and LF of a CRLF), it calls back once per event: its "event:" field (NULL if none) and its
 * "data:" lines joined by '\n'. Lines may end in CRLF, LF or CR. Comments (":..."), "id:",
 * "retry:" and unknown fields are ignored; a block without data dispatches nothing, and an event
 * cut off by the end of the stream is dropped, as the standard says.
 *
 * Bounded: an event (its lines, as received) larger than the parser's limit is an error
 * (RESOURCE_EXHAUSTED), never an allocation the server chooses.
 *
 * Threads: none of its own. One parser belongs to one stream, fed from one thread at a time. */
#ifndef AGENTRY_WORKER_SSE_H
#define AGENTRY_WORKER_SSE_H

#include <stddef.h>

#include "common/err.h"

#define WK_SSE_MAX_EVENT (4u << 20) /* the default limit: 4 MiB */

/* One event. data is not NUL-terminated and lives for the call only. Returns 0 to go on, 1 to
 * stop (the stream is complete: the rest is not parsed), -1 with err to fail the feed. */
typedef int wk_sse_event_fn(void *arg, const char *event, const char *data, size_t len,
                            struct ag_err *err);

struct wk_sse;

/* max_event: the limit on one event's size; 0 takes WK_SSE_MAX_EVENT. */
struct wk_sse *wk_sse_new(size_t max_event);
void wk_sse_free(struct wk_sse *s); /* NULL is a no-op */
/* Parse the next len bytes: 0 when all were consumed, 1 when an event returned 1 (later bytes
 * are ignored, and so is every later feed), -1 with err (the parser is then spent too). */
int wk_sse_feed(struct wk_sse *s, const char *buf, size_t len, wk_sse_event_fn *fn, void *arg,
                struct ag_err *err);

#endif
