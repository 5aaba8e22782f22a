/* worker/http.c - the node's HTTP client on libcurl's multi interface (see worker/http.h).
 *
 * Threads: the HTTP thread (http_main) owns the multi handle, every easy handle once added, the
 * active list and the timing scan. Other threads touch only what h->mu guards: the queue of
 * requests to start (wk_http_start), the queue of requests to cancel (the cancel listener), the
 * in-flight count and the stop flag; then they wake the thread through its eventfd.
 *
 * The loop is libcurl's socket interface on an epoll set (curl_multi_socket_action): curl says
 * which sockets to watch (on_socket) and when its next timeout is (on_timer), and the thread
 * hands it only the sockets that are ready. curl_multi_perform would visit every transfer on
 * every wake-up, which with 2,000 streams in flight made each chunk cost O(streams).
 *
 * A request's life: wk_http_start builds its easy handle, counts it and queues it; the thread
 * adds it to the multi handle and to the active list; curl's callbacks (on the thread) fill the
 * response or feed on_data; the end (curl's DONE message, an abort by cancel, deadline, stall or
 * a callback) goes through req_finish, the one place that removes the easy handle, stops
 * listening for cancel, takes the request off the cancel queue, calls done() and frees it.
 * Removing an unfinished easy handle makes libcurl close its connection, which is what tells a
 * server the request was aborted.
 *
 * Deadlines and stalls are not curl timeouts (a stall is "no byte for N ms", which curl's
 * low-speed check only approximates): h->next_scan is the earliest moment a request may expire,
 * and a scan of the active list at that moment ends the expired ones and finds the next. */
#include "worker/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/xalloc.h"

#define HTTP_MAX_HEADER_BYTES (256u << 10)
#define HTTP_MAX_POLL_MS 1000
#define HTTP_EPOLL_BATCH 256

struct http_req {
    struct wk_http *h;
    CURL *easy;                 /* owned */
    struct curl_slist *headers; /* owned */
    char *body;                 /* owned copy of the request body */
    int64_t deadline_ms, stall_ms, last_byte_ms;
    size_t max_bytes;
    bool truncate;
    struct wk_cancel *cancel; /* borrowed */
    wk_http_data_fn *on_data;
    wk_http_done_fn *done;
    void *arg;

    /* The response, filled on the HTTP thread. */
    struct wk_http_resp resp;
    char *buf; /* owned: resp.body */
    size_t cap;
    char **hdrs; /* owned: resp.headers_ */
    size_t nhdrs, caphdrs, hdr_bytes;
    bool decided; /* whether the body streams is known (the first body byte came) */
    bool streams; /* 2xx with on_data */
    bool failed;  /* a callback aborted the transfer: err says why */
    struct ag_err err;
    char errbuf[CURL_ERROR_SIZE];

    bool active;            /* HTTP thread: in the multi handle and the active list */
    bool cancel_now;        /* cancel was requested before wk_http_start listened */
    bool queued_cancel;     /* under h->mu: in h->cancels */
    struct http_req *next;  /* h->starts queue (under h->mu) */
    struct http_req *cnext; /* h->cancels queue (under h->mu) */
    struct http_req *prev_active, *next_active; /* HTTP thread */
};

struct wk_http {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    struct http_req *starts, *starts_tail; /* under mu */
    struct http_req *cancels;              /* under mu */
    size_t inflight;                       /* under mu */
    bool stop;                             /* under mu */
    struct http_req *active;               /* HTTP thread */
    int64_t next_scan;                     /* HTTP thread; ag_now_mono_ms time */
    int ep;                                /* owned: the epoll set of curl's sockets and wake_fd */
    int wake_fd;                           /* owned: eventfd, written to wake the thread */
    int64_t curl_timer_at; /* HTTP thread: when curl wants CURL_SOCKET_TIMEOUT; -1: never */
};

/* Any thread: the HTTP thread looks at its queues and stop flag again. */
static void http_wake(struct wk_http *h)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: a wake-up is pending anyway. */
    while (write(h->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

const char *wk_http_resp_header(const struct wk_http_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; r && i < r->nheaders_; i++) {
        const char *h = r->headers_[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

static void req_free(struct http_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->buf);
    for (size_t i = 0; i < r->nhdrs; i++)
        free(r->hdrs[i]);
    free(r->hdrs);
    free(r);
}

static void sync_resp(struct http_req *r)
{
    r->resp.body = r->buf ? r->buf : "";
    r->resp.headers_ = r->hdrs;
    r->resp.nheaders_ = r->nhdrs;
}

/* ---- curl callbacks (HTTP thread) ------------------------------------------------------- */

static size_t abort_with(struct http_req *r, enum ag_code code, const char *msg)
{
    r->failed = true;
    ag_err_set(&r->err, code, "%s", msg);
    return 0; /* any count but the one given makes curl stop with CURLE_WRITE_ERROR */
}

static void header_push(struct http_req *r, const char *line, size_t n)
{
    if (r->nhdrs == r->caphdrs) {
        r->caphdrs = r->caphdrs ? r->caphdrs * 2 : 16;
        r->hdrs = ag_xrealloc(r->hdrs, r->caphdrs * sizeof(*r->hdrs));
    }
    r->hdrs[r->nhdrs++] = ag_xstrndup(line, n);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct http_req *r = ud;
    size_t len = size * n;
    r->last_byte_ms = ag_now_mono_ms();
    r->hdr_bytes += len;
    if (r->hdr_bytes > HTTP_MAX_HEADER_BYTES)
        return abort_with(r, AG_RESOURCE_EXHAUSTED, "the response headers are larger than 256 KiB");
    size_t l = len;
    while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
        l--;
    if (l >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue): the headers so far were not the final. */
        for (size_t i = 0; i < r->nhdrs; i++)
            free(r->hdrs[i]);
        r->nhdrs = 0;
        const char *sp = memchr(p, ' ', l);
        r->resp.status = sp ? strtol(sp + 1, NULL, 10) : 0;
    } else if (l && memchr(p, ':', l)) {
        header_push(r, p, l);
    }
    sync_resp(r);
    return len;
}

static void buf_append(struct http_req *r, const char *p, size_t n)
{
    if (r->resp.len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->resp.len + n + 1)
            cap *= 2;
        r->buf = ag_xrealloc(r->buf, cap);
        r->cap = cap;
    }
    memcpy(r->buf + r->resp.len, p, n);
    r->resp.len += n;
    r->buf[r->resp.len] = '\0';
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    struct http_req *r = ud;
    size_t len = size * n;
    r->last_byte_ms = ag_now_mono_ms();
    if (!r->decided) {
        r->decided = true;
        r->streams = r->on_data && r->resp.status >= 200 && r->resp.status < 300;
    }
    size_t room = r->max_bytes - r->resp.received;
    if (len > room) {
        if (!r->truncate) {
            char msg[96];
            snprintf(msg, sizeof(msg), "the response body is larger than %zu bytes", r->max_bytes);
            return abort_with(r, AG_RESOURCE_EXHAUSTED, msg);
        }
        r->resp.truncated = true;
        len = room;
    }
    r->resp.received += len;
    if (r->streams) {
        sync_resp(r);
        if (len && r->on_data(r->arg, &r->resp, p, len, &r->err) != 0) {
            r->failed = true;
            return 0;
        }
    } else {
        buf_append(r, p, len);
    }
    /* A truncated body ends the transfer here; req_finish sees resp.truncated and succeeds. */
    return r->resp.truncated ? 0 : size * n;
}

/* ---- starting (any thread) -------------------------------------------------------------- */

static void on_cancel(void *arg)
{
    /* Under the cancel handle's lock: queue and wake, nothing more (worker/cancel.h). */
    struct http_req *r = arg;
    struct wk_http *h = r->h;
    pthread_mutex_lock(&h->mu);
    if (!r->queued_cancel) {
        r->queued_cancel = true;
        r->cnext = h->cancels;
        h->cancels = r;
    }
    pthread_mutex_unlock(&h->mu);
    http_wake(h);
}

static bool is_http_url(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

static void set_method(struct http_req *r, const struct wk_http_opts *o)
{
    CURL *e = r->easy;
    if (o->body) {
        r->body = ag_xmemdup(o->body, o->body_len ? o->body_len : 1);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        if (strcmp(o->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    } else if (strcmp(o->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(o->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    }
}

static struct http_req *req_new(struct wk_http *h, const struct wk_http_opts *o)
{
    struct http_req *r = ag_xcalloc(1, sizeof(*r));
    r->h = h;
    r->deadline_ms = o->deadline_ms;
    r->stall_ms = o->stall_ms;
    r->max_bytes = o->max_bytes ? o->max_bytes : WK_HTTP_DEFAULT_MAX_BYTES;
    r->truncate = o->truncate;
    r->cancel = o->cancel;
    r->on_data = o->on_data;
    r->done = o->done;
    r->arg = o->arg;
    r->easy = curl_easy_init();
    if (!r->easy) {
        fprintf(stderr, "fatal: out of memory (curl_easy_init)\n");
        abort();
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    /* A 100-continue round trip only delays model requests; no server here wants it. */
    r->headers = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; i < o->nheaders; i++)
        r->headers = curl_slist_append(r->headers, o->headers[i]);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    set_method(r, o);
    sync_resp(r);
    return r;
}

int wk_http_start(struct wk_http *h, const struct wk_http_opts *o, struct ag_err *err)
{
    if (!o->method || !*o->method || !o->url || !o->done)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "an HTTP request needs a method, URL and done");
    if (!is_http_url(o->url))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "cannot request '%.64s': only http:// and https:// URLs are supported",
                          o->url);
    pthread_mutex_lock(&h->mu);
    bool stopping = h->stop, full = h->inflight >= WK_HTTP_MAX_REQUESTS;
    if (!stopping && !full)
        h->inflight++;
    pthread_mutex_unlock(&h->mu);
    if (stopping)
        return ag_err_set(err, AG_UNAVAILABLE, "the node's HTTP client is stopping");
    if (full)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "%d HTTP requests are already in flight on this node",
                          WK_HTTP_MAX_REQUESTS);
    struct http_req *r = req_new(h, o);
    r->last_byte_ms = ag_now_mono_ms();
    r->cancel_now = !wk_cancel_listen(r->cancel, on_cancel, r);
    pthread_mutex_lock(&h->mu);
    if (h->starts_tail)
        h->starts_tail->next = r;
    else
        h->starts = r;
    h->starts_tail = r;
    pthread_mutex_unlock(&h->mu);
    http_wake(h);
    return 0;
}

size_t wk_http_inflight(struct wk_http *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->inflight;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---- the HTTP thread -------------------------------------------------------------------- */

static void active_unlink(struct wk_http *h, struct http_req *r)
{
    if (r->prev_active)
        r->prev_active->next_active = r->next_active;
    else
        h->active = r->next_active;
    if (r->next_active)
        r->next_active->prev_active = r->prev_active;
    r->active = false;
}

/* The one end of every started request. err NULL: the response came whole. */
static void req_finish(struct wk_http *h, struct http_req *r, const struct ag_err *err)
{
    if (r->active) {
        curl_multi_remove_handle(h->multi, r->easy);
        active_unlink(h, r);
    }
    curl_easy_cleanup(r->easy); /* closes the connection of an unfinished transfer */
    r->easy = NULL;
    wk_cancel_unlisten(r->cancel, r); /* after this the listener neither runs nor will */
    pthread_mutex_lock(&h->mu);
    if (r->queued_cancel) {
        for (struct http_req **pp = &h->cancels; *pp; pp = &(*pp)->cnext) {
            if (*pp == r) {
                *pp = r->cnext;
                break;
            }
        }
    }
    h->inflight--;
    pthread_mutex_unlock(&h->mu);
    sync_resp(r);
    r->done(r->arg, &r->resp, err);
    req_free(r);
}

static void finish_code(struct wk_http *h, struct http_req *r, enum ag_code code, const char *msg)
{
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, code, "%s", msg);
    req_finish(h, r, &err);
}

/* "60s" for whole seconds, "1500ms" otherwise. */
static void fmt_ms(char *buf, size_t cap, int64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, cap, "%lldms", (long long)ms);
}

static void finish_done_msg(struct wk_http *h, struct http_req *r, CURLcode rc)
{
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->resp.truncated && !r->failed)) {
        req_finish(h, r, NULL);
        return;
    }
    if (r->failed) {
        struct ag_err err = r->err;
        req_finish(h, r, &err);
        return;
    }
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, rc == CURLE_OPERATION_TIMEDOUT ? AG_DEADLINE_EXCEEDED : AG_UNAVAILABLE, "%s",
               r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    req_finish(h, r, &err);
}

static void schedule(struct wk_http *h, int64_t at)
{
    if (at > 0 && (h->next_scan == 0 || at < h->next_scan))
        h->next_scan = at;
}

static int64_t expiry_of(const struct http_req *r)
{
    int64_t at = r->deadline_ms;
    if (r->stall_ms > 0 && (at == 0 || r->last_byte_ms + r->stall_ms < at))
        at = r->last_byte_ms + r->stall_ms;
    return at;
}

static void activate(struct wk_http *h, struct http_req *r)
{
    if (r->cancel_now) {
        finish_code(h, r, AG_CANCELLED, "the request was cancelled");
        return;
    }
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        finish_code(h, r, AG_INTERNAL, "libcurl refused the request");
        return;
    }
    r->active = true;
    r->prev_active = NULL;
    r->next_active = h->active;
    if (h->active)
        h->active->prev_active = r;
    h->active = r;
    schedule(h, expiry_of(r));
}

/* End expired requests; find the next moment one may expire. */
static void scan(struct wk_http *h, int64_t now)
{
    h->next_scan = 0;
    struct http_req *next;
    for (struct http_req *r = h->active; r; r = next) {
        next = r->next_active;
        if (r->deadline_ms > 0 && now >= r->deadline_ms) {
            finish_code(h, r, AG_DEADLINE_EXCEEDED, "the request timed out");
        } else if (r->stall_ms > 0 && now >= r->last_byte_ms + r->stall_ms) {
            char d[32], msg[64];
            fmt_ms(d, sizeof(d), r->stall_ms);
            snprintf(msg, sizeof(msg), "stalled: no data for %s", d);
            r->resp.stalled = true;
            finish_code(h, r, AG_DEADLINE_EXCEEDED, msg);
        } else {
            schedule(h, expiry_of(r));
        }
    }
}

/* Start the new requests, then end the cancelled ones (a request is queued to start before its
 * listener can queue it to cancel, so it is active by then). Cancels are popped one at a time:
 * req_finish takes a request off h->cancels, so a finished one is never found there. */
static bool take_queues(struct wk_http *h)
{
    pthread_mutex_lock(&h->mu);
    struct http_req *starts = h->starts;
    h->starts = h->starts_tail = NULL;
    pthread_mutex_unlock(&h->mu);
    struct http_req *next;
    for (struct http_req *r = starts; r; r = next) {
        next = r->next;
        activate(h, r);
    }
    for (;;) {
        pthread_mutex_lock(&h->mu);
        struct http_req *r = h->cancels;
        if (r) {
            h->cancels = r->cnext;
            r->queued_cancel = false;
        }
        bool stop = h->stop;
        pthread_mutex_unlock(&h->mu);
        if (!r)
            return stop;
        finish_code(h, r, AG_CANCELLED, "the request was cancelled");
    }
}

static void drain_messages(struct wk_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct http_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        finish_done_msg(h, r, m->data.result);
    }
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl asks, or stop watching it. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct wk_http *h = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(h->ep, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.data.fd = s};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    /* A descriptor curl closed and reopened may or may not still be in the set. */
    if (epoll_ctl(h->ep, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
        epoll_ctl(h->ep, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl's next timeout, -1 for none. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct wk_http *h = userp;
    h->curl_timer_at = timeout_ms < 0 ? -1 : ag_now_mono_ms() + timeout_ms;
    return 0;
}

static int poll_timeout(struct wk_http *h, int64_t now)
{
    int64_t ms = HTTP_MAX_POLL_MS;
    if (h->curl_timer_at >= 0 && h->curl_timer_at - now < ms)
        ms = h->curl_timer_at - now;
    if (h->next_scan > 0 && h->next_scan - now < ms)
        ms = h->next_scan - now;
    return ms < 0 ? 0 : (int)ms;
}

/* Wait for ready sockets (or a wake-up, or the next timeout) and hand them to curl. */
static void wait_and_act(struct wk_http *h, int timeout_ms)
{
    struct epoll_event evs[HTTP_EPOLL_BATCH];
    int n = epoll_wait(h->ep, evs, HTTP_EPOLL_BATCH, timeout_ms);
    int running = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == h->wake_fd) {
            uint64_t v;
            while (read(h->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
            continue;
        }
        int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                   (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                   (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(h->multi, evs[i].data.fd, mask, &running);
    }
    if (h->curl_timer_at >= 0 && ag_now_mono_ms() >= h->curl_timer_at) {
        h->curl_timer_at = -1;
        curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}

static void *http_main(void *arg)
{
    struct wk_http *h = arg;
    for (;;) {
        bool stop = take_queues(h);
        if (stop)
            break;
        drain_messages(h);
        int64_t now = ag_now_mono_ms();
        if (h->next_scan > 0 && now >= h->next_scan)
            scan(h, now);
        wait_and_act(h, poll_timeout(h, now));
        drain_messages(h);
    }
    /* A wk_http_start that counted its request before the stop may still be queueing it: wait
     * for the count, which every request leaves through req_finish. */
    for (;;) {
        while (h->active)
            finish_code(h, h->active, AG_CANCELLED, "the node's HTTP client stopped");
        if (wk_http_inflight(h) == 0)
            return NULL;
        wait_and_act(h, 10);
        take_queues(h);
    }
}

struct wk_http *wk_http_new(struct ag_err *err)
{
    /* Idempotent after the first call; the node calls it before starting threads. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    if (!multi)
        return ag_err_set(err, AG_INTERNAL, "cannot create the node's HTTP client (libcurl)"), NULL;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event wev = {.events = EPOLLIN, .data.fd = wake};
    if (ep < 0 || wake < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wake, &wev) != 0) {
        ag_err_set(err, AG_RESOURCE_EXHAUSTED, "cannot create the node's HTTP client: %s",
                   strerror(errno));
        if (ep >= 0)
            close(ep);
        if (wake >= 0)
            close(wake);
        curl_multi_cleanup(multi);
        return NULL;
    }
    struct wk_http *h = ag_xcalloc(1, sizeof(*h));
    h->multi = multi;
    h->ep = ep;
    h->wake_fd = wake;
    h->curl_timer_at = -1;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, h);
    /* Idle connections kept for reuse: enough for a burst of parallel model calls to one host. */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)WK_HTTP_MAX_REQUESTS);
    pthread_mutex_init(&h->mu, NULL);
    ag_xthread_create(&h->thread, http_main, h, "the HTTP client thread");
    return h;
}

void wk_http_free(struct wk_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    http_wake(h);
    pthread_join(h->thread, NULL);
    curl_multi_cleanup(h->multi);
    close(h->ep);
    close(h->wake_fd);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
