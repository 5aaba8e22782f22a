/* tests/unit/test-wk-http.c - the node's HTTP client (worker/http.c) against tests/fake_llm.py,
 * and the server-sent events parser (worker/sse.c) fed chunks split everywhere.
 *
 * Each request waits for done() on a condvar with a generous deadline; a thread-local flag set
 * around wk_http_start catches a done() from inside it. Aborts are checked from the server's
 * side: its "aborted" counter says the connection really closed mid-reply. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "fake_llm.h"
#include "worker/http.h"
#include "worker/sse.h"

static _Thread_local bool in_start;

/* ---- the SSE parser ---------------------------------------------------------------------- */

struct sse_out {
    char log[4096]; /* "[event|data]" per event */
    size_t len;
    int stop_after; /* return 1 after this many events; 0: never */
    int n;
};

static int on_event(void *arg, const char *event, const char *data, size_t len, struct ag_err *err)
{
    (void)err;
    struct sse_out *o = arg;
    o->len += (size_t)snprintf(o->log + o->len, sizeof(o->log) - o->len, "[%s|%.*s]",
                               event ? event : "-", (int)len, data);
    o->n++;
    return o->stop_after && o->n >= o->stop_after ? 1 : 0;
}

static const char sse_stream[] = "\xEF\xBB\xBF: a comment\r\n"
                                 "retry: 100\r\n"
                                 "id: 7\r\n"
                                 "event: message_start\r\n"
                                 "data: {\"t\":\"h\xC3\xA9llo \xE2\x86\x92\"}\r\n"
                                 "\r\n"
                                 "data:no space\n"
                                 "data:  two spaces\n"
                                 "\n"
                                 "event: empty\r\r"
                                 "data\rdata: x\r\r"
                                 "data: [DONE]\n\n"
                                 "data: cut off by the end";
static const char sse_expected[] = "[message_start|{\"t\":\"h\xC3\xA9llo \xE2\x86\x92\"}]"
                                   "[-|no space\n two spaces]"
                                   "[-|\nx]"
                                   "[-|[DONE]]";

static void feed_split(const char *s, size_t len, size_t a, size_t b, struct sse_out *o)
{
    struct wk_sse *p = wk_sse_new(0);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_sse_feed(p, s, a, on_event, o, &err), 0);
    assert_int_equal(wk_sse_feed(p, s + a, b - a, on_event, o, &err), 0);
    assert_int_equal(wk_sse_feed(p, s + b, len - b, on_event, o, &err), 0);
    wk_sse_free(p);
}

static void test_sse_split_everywhere(void **state)
{
    (void)state;
    size_t len = sizeof(sse_stream) - 1;
    /* Every pair of cut points: three chunks, each boundary anywhere (mid CRLF, mid UTF-8). */
    for (size_t a = 3; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            struct sse_out o = {0};
            feed_split(sse_stream, len, a, b, &o);
            if (strcmp(o.log, sse_expected) != 0)
                fail_msg("cut at %zu,%zu: got %s", a, b, o.log);
        }
    }
    /* One byte at a time, the BOM included. */
    struct wk_sse *p = wk_sse_new(0);
    struct sse_out o = {0};
    for (size_t i = 0; i < len; i++)
        assert_int_equal(wk_sse_feed(p, sse_stream + i, 1, on_event, &o, NULL), 0);
    wk_sse_free(p);
    assert_string_equal(o.log, sse_expected);
}

static void test_sse_stop_and_limit(void **state)
{
    (void)state;
    struct sse_out o = {.stop_after = 1};
    struct wk_sse *p = wk_sse_new(0);
    assert_int_equal(wk_sse_feed(p, "data: a\n\ndata: b\n\n", 18, on_event, &o, NULL), 1);
    assert_int_equal(wk_sse_feed(p, "data: c\n\n", 9, on_event, &o, NULL), 1);
    assert_string_equal(o.log, "[-|a]");
    wk_sse_free(p);

    /* 64 bytes at most: a long line split over feeds fails once the event passes the limit. */
    p = wk_sse_new(64);
    struct ag_err err = AG_ERR_INIT;
    struct sse_out o2 = {0};
    assert_int_equal(
        wk_sse_feed(p, "data: 0123456789012345678901234567890123456789", 46, on_event, &o2, &err),
        0);
    assert_int_equal(
        wk_sse_feed(p, "0123456789012345678901234567890123456789", 40, on_event, &o2, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "larger than 64 bytes"));
    wk_sse_free(p);

    /* Keep-alive comments and ignored fields do not count: only what an event keeps does. */
    p = wk_sse_new(64);
    struct sse_out o3 = {0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(wk_sse_feed(p, ": keep-alive\nid: 12345\n", 23, on_event, &o3, &err), 0);
    assert_int_equal(wk_sse_feed(p, "data: x\n\n", 9, on_event, &o3, &err), 0);
    assert_string_equal(o3.log, "[-|x]");
    wk_sse_free(p);
}

/* ---- the HTTP client --------------------------------------------------------------------- */

struct fix {
    struct fake_llm srv;
    struct wk_http *http;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    if (fake_llm_start(&f->srv) != 0)
        return -1;
    f->http = wk_http_new(NULL);
    *state = f;
    return f->http ? 0 : -1;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    wk_http_free(f->http);
    fake_llm_stop(&f->srv);
    free(f);
    return 0;
}

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, done_inside_start, got_data;
    int ndone;
    long status;
    char *body;     /* owned */
    char *streamed; /* owned: what on_data got */
    size_t nstreamed;
    char location[128], ctype[64];
    bool stalled, truncated;
    size_t received;
    struct ag_err err;
    bool has_err;
};

static void result_init(struct result *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    ag_cond_init_mono(&r->cv);
}

static void result_release(struct result *r)
{
    free(r->body);
    free(r->streamed);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static int on_data(void *arg, const struct wk_http_resp *resp, const char *data, size_t len,
                   struct ag_err *err)
{
    (void)resp;
    (void)err;
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->streamed = ag_xrealloc(r->streamed, r->nstreamed + len + 1);
    memcpy(r->streamed + r->nstreamed, data, len);
    r->nstreamed += len;
    r->streamed[r->nstreamed] = '\0';
    r->got_data = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void on_done(void *arg, const struct wk_http_resp *resp, const struct ag_err *err)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->done_inside_start = in_start;
    r->ndone++;
    r->status = resp->status;
    r->body = ag_xstrndup(resp->body, resp->len);
    const char *loc = wk_http_resp_header(resp, "location");
    const char *ct = wk_http_resp_header(resp, "Content-Type");
    snprintf(r->location, sizeof(r->location), "%s", loc ? loc : "");
    snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
    r->stalled = resp->stalled;
    r->truncated = resp->truncated;
    r->received = resp->received;
    if (err) {
        r->err = *err;
        r->has_err = true;
    }
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void wait_for(struct result *r, bool *flag)
{
    int64_t deadline = ag_now_mono_ns() + 30 * 1000000000LL;
    pthread_mutex_lock(&r->mu);
    while (!*flag && ag_cond_wait_until(&r->cv, &r->mu, deadline))
        ;
    bool ok = *flag;
    pthread_mutex_unlock(&r->mu);
    assert_true(ok);
}

static void start(struct fix *f, struct wk_http_opts *o, const char *path, struct result *r)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", f->srv.base, path);
    o->url = url;
    if (!o->method)
        o->method = "GET";
    o->done = on_done;
    o->arg = r;
    in_start = true;
    int rc = wk_http_start(f->http, o, NULL);
    in_start = false;
    assert_int_equal(rc, 0);
}

static void test_post_with_headers(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    const char *hdrs[] = {"X-Test: yes", "Content-Type: application/json"};
    struct wk_http_opts o = {
        .method = "POST", .headers = hdrs, .nheaders = 2, .body = "{\"a\":1}", .body_len = 7};
    start(f, &o, "/_http/echo", &r);
    wait_for(&r, &r.done);
    assert_false(r.has_err);
    assert_false(r.done_inside_start);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "method")->valuestring, "POST");
    assert_string_equal(cJSON_GetObjectItem(j, "body")->valuestring, "{\"a\":1}");
    const cJSON *h = cJSON_GetObjectItem(j, "headers");
    assert_string_equal(cJSON_GetObjectItem(h, "x-test")->valuestring, "yes");
    assert_null(cJSON_GetObjectItem(h, "expect"));
    cJSON_Delete(j);
    result_release(&r);
}

static void test_stream_to_on_data(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_http_opts o = {.on_data = on_data};
    start(f, &o, "/_http/stream/5", &r);
    wait_for(&r, &r.done);
    assert_false(r.has_err);
    assert_string_equal(r.streamed, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    assert_string_equal(r.body, "");
    assert_int_equal(r.received, 40);
    result_release(&r);
}

static void test_error_status_is_collected(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    /* on_data is for 2xx bodies: an error body comes whole to done(). */
    struct wk_http_opts o = {.on_data = on_data};
    start(f, &o, "/_http/status/503", &r);
    wait_for(&r, &r.done);
    assert_false(r.has_err);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "status 503\n");
    assert_null(r.streamed);
    result_release(&r);
}

static void test_redirect_not_followed(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_http_opts o = {0};
    char path[256];
    snprintf(path, sizeof(path), "/_http/status/302?location=%s/_http/bytes/10", f->srv.base);
    start(f, &o, path, &r);
    wait_for(&r, &r.done);
    assert_false(r.has_err);
    assert_int_equal(r.status, 302);
    assert_non_null(strstr(r.location, "/_http/bytes/10"));
    assert_int_equal(fake_llm_stat(&f->srv, "requests"), 1);
    result_release(&r);
}

static void test_max_bytes(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_http_opts o = {.max_bytes = 1000};
    start(f, &o, "/_http/bytes/100000", &r);
    wait_for(&r, &r.done);
    assert_true(r.has_err);
    assert_int_equal(r.err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r.err.msg, "larger than 1000 bytes"));
    result_release(&r);

    result_init(&r);
    struct wk_http_opts t = {.max_bytes = 1000, .truncate = true};
    start(f, &t, "/_http/bytes/100000", &r);
    wait_for(&r, &r.done);
    assert_false(r.has_err);
    assert_true(r.truncated);
    assert_int_equal(strlen(r.body), 1000);
    result_release(&r);
}

static void test_stall(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_http_opts o = {.stall_ms = 300, .on_data = on_data};
    start(f, &o, "/_http/stall", &r);
    wait_for(&r, &r.done);
    assert_true(r.has_err);
    assert_int_equal(r.err.code, AG_DEADLINE_EXCEEDED);
    assert_true(r.stalled);
    assert_string_equal(r.err.msg, "stalled: no data for 300ms");
    assert_string_equal(r.streamed, "hello");
    assert_int_equal(fake_llm_wait_stat(&f->srv, "aborted", 1), 1);
    result_release(&r);
}

static void test_deadline(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    int64_t t0 = ag_now_mono_ms();
    struct wk_http_opts o = {.deadline_ms = t0 + 300, .stall_ms = 10000};
    start(f, &o, "/_http/slow/5000", &r);
    wait_for(&r, &r.done);
    assert_true(r.has_err);
    assert_int_equal(r.err.code, AG_DEADLINE_EXCEEDED);
    assert_false(r.stalled);
    assert_true(ag_now_mono_ms() - t0 < 4000);
    assert_int_equal(fake_llm_wait_stat(&f->srv, "aborted", 1), 1);
    result_release(&r);
}

static void test_cancel_aborts(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_cancel c;
    wk_cancel_init(&c);
    struct wk_http_opts o = {.cancel = &c, .on_data = on_data};
    start(f, &o, "/_http/stall", &r);
    wait_for(&r, &r.got_data);
    wk_cancel_request(&c);
    wait_for(&r, &r.done);
    assert_int_equal(r.err.code, AG_CANCELLED);
    assert_int_equal(fake_llm_wait_stat(&f->srv, "aborted", 1), 1);
    /* A handle already cancelled: done() still runs once, never inside the start. */
    struct result r2;
    result_init(&r2);
    start(f, &o, "/_http/stall", &r2);
    wait_for(&r2, &r2.done);
    assert_false(r2.done_inside_start);
    assert_int_equal(r2.err.code, AG_CANCELLED);
    assert_int_equal(r.ndone, 1);
    wk_cancel_release(&c);
    result_release(&r);
    result_release(&r2);
}

static void test_connection_refused(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_http_opts o = {
        .method = "GET", .url = "http://127.0.0.1:1/", .done = on_done, .arg = &r};
    assert_int_equal(wk_http_start(f->http, &o, NULL), 0);
    wait_for(&r, &r.done);
    assert_int_equal(r.err.code, AG_UNAVAILABLE);
    assert_int_equal(r.status, 0);
    result_release(&r);

    struct ag_err err = AG_ERR_INIT;
    o.url = "file:///etc/passwd";
    assert_int_equal(wk_http_start(f->http, &o, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
}

static void test_keep_alive(void **state)
{
    struct fix *f = *state;
    for (int i = 0; i < 10; i++) {
        struct result r;
        result_init(&r);
        struct wk_http_opts o = {0};
        start(f, &o, "/_http/bytes/10", &r);
        wait_for(&r, &r.done);
        assert_false(r.has_err);
        result_release(&r);
    }
    /* One connection for the ten, plus the one fake_llm_stat opens. */
    assert_int_equal(fake_llm_stat(&f->srv, "connections"), 2);
}

#define MANY 2000

static void test_many_concurrent(void **state)
{
    struct fix *f = *state;
    struct result *rs = calloc(MANY, sizeof(*rs));
    for (int i = 0; i < MANY; i++) {
        result_init(&rs[i]);
        struct wk_http_opts o = {.on_data = on_data, .stall_ms = 20000};
        start(f, &o, "/_http/stream/20", &rs[i]);
    }
    for (int i = 0; i < MANY; i++) {
        wait_for(&rs[i], &rs[i].done);
        if (rs[i].has_err)
            fail_msg("request %d: %s", i, rs[i].err.msg);
        assert_int_equal(rs[i].nstreamed, 20 * 8 + 10 * 1);
        result_release(&rs[i]);
    }
    free(rs);
    assert_int_equal(wk_http_inflight(f->http), 0);
}

static void test_free_cancels_in_flight(void **state)
{
    struct fix *f = *state;
    struct result r;
    result_init(&r);
    struct wk_http_opts o = {.on_data = on_data};
    start(f, &o, "/_http/stall", &r);
    wait_for(&r, &r.got_data);
    wk_http_free(f->http);
    f->http = NULL;
    assert_true(r.done);
    assert_int_equal(r.err.code, AG_CANCELLED);
    result_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_split_everywhere),
        cmocka_unit_test(test_sse_stop_and_limit),
        cmocka_unit_test_setup_teardown(test_post_with_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_to_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_is_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_cancels_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
