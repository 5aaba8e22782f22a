/* worker/sse.c - the server-sent events parser (see worker/sse.h).
 *
 * State between chunks: the current line's bytes so far, the event's data and name so far, and
 * whether the last chunk ended on a CR (so an LF opening the next chunk is the rest of a CRLF,
 * not an empty line that would dispatch early). Bytes are never interpreted as UTF-8: multi-byte
 * characters pass through whole because only ASCII CR, LF and ':' are looked at. */
#include "worker/sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct sse_buf {
    char *p; /* owned */
    size_t len, cap;
};

struct wk_sse {
    size_t max_event;
    struct sse_buf line;  /* the current line, without its end */
    struct sse_buf data;  /* the event's data lines, each followed by '\n' */
    struct sse_buf event; /* the event's "event:" value */
    bool has_event;
    bool after_cr; /* the previous byte was a CR ending a line */
    bool bom_done; /* a leading UTF-8 BOM has been looked for */
    size_t size;   /* bytes of the current event's data and event lines, and of the current
                      line, line ends included: what the limit bounds */
    size_t kept;   /* size before the current line: a line that is not kept goes back to it */
    int spent;     /* 0, or the 1 / -1 that ended the feeds */
};

static void buf_put(struct sse_buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = ag_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct wk_sse *wk_sse_new(size_t max_event)
{
    struct wk_sse *s = ag_xcalloc(1, sizeof(*s));
    s->max_event = max_event ? max_event : WK_SSE_MAX_EVENT;
    return s;
}

void wk_sse_free(struct wk_sse *s)
{
    if (!s)
        return;
    free(s->line.p);
    free(s->data.p);
    free(s->event.p);
    free(s);
}

static void event_reset(struct wk_sse *s)
{
    s->data.len = 0;
    s->event.len = 0;
    s->has_event = false;
    s->size = s->kept = 0;
}

/* An empty line: dispatch the event if it has data. */
static int dispatch(struct wk_sse *s, wk_sse_event_fn *fn, void *arg, struct ag_err *err)
{
    if (s->data.len == 0) {
        event_reset(s);
        return 0;
    }
    size_t len = s->data.len - 1; /* the last data line's '\n' is not part of the data */
    s->data.p[len] = '\0';
    int rc = fn(arg, s->has_event ? s->event.p : NULL, s->data.p, len, err);
    event_reset(s);
    return rc;
}

/* One complete line (s->line). */
static int line_done(struct wk_sse *s, wk_sse_event_fn *fn, void *arg, struct ag_err *err)
{
    const char *l = s->line.len ? s->line.p : "";
    size_t n = s->line.len;
    s->line.len = 0;
    if (n == 0)
        return dispatch(s, fn, arg, err);
    if (l[0] == ':') {
        s->size = s->kept; /* a comment, servers send them as keep-alives: not counted */
        return 0;
    }
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = (size_t)(l + n - v);
    if (vlen && *v == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        buf_put(&s->data, v, vlen);
        buf_put(&s->data, "\n", 1);
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        s->event.len = 0;
        buf_put(&s->event, v, vlen);
        s->has_event = true;
    } else {
        s->size = s->kept; /* id, retry, unknown: nothing kept, nothing counted */
    }
    s->kept = s->size;
    return 0;
}

static int grow_size(struct wk_sse *s, size_t n, struct ag_err *err)
{
    s->size += n;
    if (s->size <= s->max_event)
        return 0;
    return ag_err_set(err, AG_RESOURCE_EXHAUSTED, "a server-sent event is larger than %zu bytes",
                      s->max_event);
}

static size_t skip_bom(struct wk_sse *s, const char *buf, size_t len)
{
    /* Checked once, on the first feed with 3 bytes or more; a BOM split over feeds is not
     * worth state: no model API sends one. */
    if (s->bom_done || len < 3)
        return 0;
    s->bom_done = true;
    return memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

int wk_sse_feed(struct wk_sse *s, const char *buf, size_t len, wk_sse_event_fn *fn, void *arg,
                struct ag_err *err)
{
    if (s->spent)
        return s->spent == 1
                   ? 1
                   : ag_err_set(err, AG_FAILED_PRECONDITION, "the event stream already failed");
    size_t i = skip_bom(s, buf, len);
    while (i < len) {
        if (s->after_cr && buf[i] == '\n') {
            s->after_cr = false;
            i++;
            continue;
        }
        s->after_cr = false;
        const char *end = buf + i;
        while (end < buf + len && *end != '\n' && *end != '\r')
            end++;
        size_t n = (size_t)(end - (buf + i));
        if (grow_size(s, n + (end < buf + len), err) != 0) {
            s->spent = -1;
            return -1;
        }
        buf_put(&s->line, buf + i, n);
        i += n;
        if (i == len)
            break; /* the line goes on in the next chunk */
        s->after_cr = buf[i] == '\r';
        i++;
        int rc = line_done(s, fn, arg, err);
        if (rc != 0) {
            s->spent = rc;
            return rc;
        }
    }
    return 0;
}
