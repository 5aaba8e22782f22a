/* tests/unit/test-common-metrics.c - the metrics registry (common/metrics.c) and its HTTP
 * endpoint (common/metrics_http.c): the exposition text byte for byte, escaping, cumulative
 * histogram buckets, the bound on series, the process's own series, concurrent updates adding
 * up, and GET /metrics over a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/metrics.h"
#include "common/metrics_http.h"

static char *render(struct ag_metrics *r)
{
    struct ag_strbuf b = {0};
    ag_metrics_render(r, &b);
    return b.s;
}

static void test_counter_and_gauge_format(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    struct ag_metric_family *c = ag_metrics_counter(
        r, "agentry_rpc_requests_total", "RPCs handled.", (const char *[]){"method", "code", NULL});
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"Spawn", "OK"}));
    ag_metrics_add(ag_metrics_at(c, (const char *[]){"Spawn", "OK"}), 2);
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"Kill", "NOT_FOUND"}));
    struct ag_metric_family *g = ag_metrics_gauge(r, "agentry_nodes", "Nodes\\connected\nnow.",
                                                  NULL);
    ag_metrics_set(ag_metrics_at(g, NULL), -3);
    char *s = render(r);
    assert_string_equal(s, "# HELP agentry_rpc_requests_total RPCs handled.\n"
                           "# TYPE agentry_rpc_requests_total counter\n"
                           "agentry_rpc_requests_total{method=\"Spawn\",code=\"OK\"} 3\n"
                           "agentry_rpc_requests_total{method=\"Kill\",code=\"NOT_FOUND\"} 1\n"
                           "# HELP agentry_nodes Nodes\\\\connected\\nnow.\n"
                           "# TYPE agentry_nodes gauge\n"
                           "agentry_nodes -3\n");
    free(s);
    ag_metrics_free(r);
}

static void test_label_escaping(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    struct ag_metric_family *c = ag_metrics_counter(r, "x_total", "",
                                                    (const char *[]){"tool", NULL});
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"a\"b\\c\nd"}));
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){NULL})); /* "" */
    char *s = render(r);
    assert_non_null(strstr(s, "x_total{tool=\"a\\\"b\\\\c\\nd\"} 1\n"));
    assert_non_null(strstr(s, "x_total{tool=\"\"} 1\n"));
    free(s);
    ag_metrics_free(r);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    static const double b[] = {0.005, 0.1, 1};
    struct ag_metric_family *h = ag_metrics_histogram(r, "lat_seconds", "Latency.",
                                                      (const char *[]){"method", NULL}, b, 3, 1e-9);
    struct ag_metric *m = ag_metrics_at(h, (const char *[]){"Ping"});
    ag_metrics_observe(m, 5000000);    /* 5 ms: on the bound, in le=0.005 */
    ag_metrics_observe(m, 5000001);    /* just above: le=0.1 */
    ag_metrics_observe(m, 2000000000); /* 2 s: only +Inf */
    char *s = render(r);
    assert_string_equal(s, "# HELP lat_seconds Latency.\n"
                           "# TYPE lat_seconds histogram\n"
                           "lat_seconds_bucket{method=\"Ping\",le=\"0.005\"} 1\n"
                           "lat_seconds_bucket{method=\"Ping\",le=\"0.1\"} 2\n"
                           "lat_seconds_bucket{method=\"Ping\",le=\"1\"} 2\n"
                           "lat_seconds_bucket{method=\"Ping\",le=\"+Inf\"} 3\n"
                           "lat_seconds_sum{method=\"Ping\"} 2.010000001\n"
                           "lat_seconds_count{method=\"Ping\"} 3\n");
    free(s);
    /* A count histogram without labels: le alone, no leading comma. */
    static const double ops[] = {1, 10};
    struct ag_metric_family *w = ag_metrics_histogram(r, "w", "", NULL, ops, 2, 1);
    ag_metrics_observe(ag_metrics_at(w, NULL), 7);
    s = render(r);
    assert_non_null(
        strstr(s, "w_bucket{le=\"10\"} 1\nw_bucket{le=\"+Inf\"} 1\nw_sum 7\nw_count 1\n"));
    free(s);
    ag_metrics_free(r);
}

static void test_series_bound_folds_into_other(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    struct ag_metric_family *c = ag_metrics_counter(r, "t_total", "",
                                                    (const char *[]){"tool", NULL});
    ag_metrics_set_max_series(c, 3);
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"a"}));
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"b"}));
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"c"}));
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"d"}));
    ag_metrics_inc(ag_metrics_at(c, (const char *[]){"a"}));
    char *s = render(r);
    assert_non_null(strstr(s, "t_total{tool=\"a\"} 2\nt_total{tool=\"b\"} 1\n"
                              "t_total{tool=\"other\"} 2\n"));
    assert_null(strstr(s, "tool=\"c\""));
    free(s);
    ag_metrics_free(r);
}

static void test_null_is_a_noop(void **state)
{
    (void)state;
    struct ag_metric_family *f = ag_metrics_counter(NULL, "x_total", "", NULL);
    assert_null(f);
    struct ag_metric *m = ag_metrics_at(f, NULL);
    assert_null(m);
    ag_metrics_inc(m);
    ag_metrics_observe(m, 1);
    assert_int_equal(ag_metrics_value(m), 0);
}

static void test_process_series(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    ag_metrics_add_process(r);
    char *s = render(r);
    long long rss = 0, threads = 0, fds = 0;
    double start = 0;
    const char *p = strstr(s, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    sscanf(p + 31, "%lld", &rss);
    assert_true(rss > 1 << 20);
    p = strstr(s, "\nprocess_threads ");
    assert_non_null(p);
    sscanf(p + 17, "%lld", &threads);
    assert_true(threads >= 1);
    p = strstr(s, "\nprocess_open_fds ");
    assert_non_null(p);
    sscanf(p + 18, "%lld", &fds);
    assert_true(fds >= 3);
    p = strstr(s, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    sscanf(p + 28, "%lf", &start);
    assert_true(start > 1.5e9);
    assert_non_null(strstr(s, "# TYPE process_cpu_seconds_total counter\n"));
    free(s);
    ag_metrics_free(r);
}

#define SMOKE_THREADS 4
#define SMOKE_N 20000

struct smoke {
    struct ag_metric_family *c, *h;
};

static void *smoke_thread(void *arg)
{
    struct smoke *sm = arg;
    static const char *const tools[] = {"shell", "read_file", "echo"};
    for (int i = 0; i < SMOKE_N; i++) {
        const char *tool = tools[i % 3];
        ag_metrics_inc(ag_metrics_at(sm->c, (const char *[]){tool}));
        ag_metrics_observe(ag_metrics_at(sm->h, (const char *[]){tool}), (uint64_t)i);
    }
    return NULL;
}

static void test_concurrent_updates_add_up(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    static const double b[] = {100, 1000};
    struct smoke sm = {
        ag_metrics_counter(r, "calls_total", "", (const char *[]){"tool", NULL}),
        ag_metrics_histogram(r, "calls_seconds", "", (const char *[]){"tool", NULL}, b, 2, 1)};
    pthread_t t[SMOKE_THREADS];
    for (int i = 0; i < SMOKE_THREADS; i++)
        pthread_create(&t[i], NULL, smoke_thread, &sm);
    for (int i = 0; i < 50; i++) /* scrapes racing the updates */
        free(render(r));
    for (int i = 0; i < SMOKE_THREADS; i++)
        pthread_join(t[i], NULL);
    int64_t total = 0;
    static const char *const tools[] = {"shell", "read_file", "echo"};
    for (int i = 0; i < 3; i++)
        total += ag_metrics_value(ag_metrics_at(sm.c, (const char *[]){tools[i]}));
    assert_int_equal(total, SMOKE_THREADS * SMOKE_N);
    char *s = render(r);
    /* Exactly one series per tool, however the threads raced to make them. */
    assert_int_equal(
        strstr(s, "calls_total{tool=\"shell\"}") - strstr(s, "calls_total{tool=\"shell\"}"), 0);
    int n = 0;
    for (const char *p = s; (p = strstr(p, "calls_total{")); p++)
        n++;
    assert_int_equal(n, 3);
    char want[64];
    snprintf(want, sizeof(want), "calls_seconds_count{tool=\"shell\"} %d\n",
             SMOKE_THREADS * ((SMOKE_N + 2) / 3));
    assert_non_null(strstr(s, want));
    free(s);
    ag_metrics_free(r);
}

static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[128];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    struct ag_strbuf b = {0};
    char buf[4096];
    ssize_t k;
    while ((k = read(fd, buf, sizeof(buf))) > 0)
        ag_strbuf_add(&b, buf, (size_t)k);
    close(fd);
    return b.s;
}

static void test_http_endpoint(void **state)
{
    (void)state;
    struct ag_metrics *r = ag_metrics_new();
    ag_metrics_inc(ag_metrics_at(ag_metrics_counter(r, "hits_total", "Hits.", NULL), NULL));
    struct ag_err err = AG_ERR_INIT;
    struct ag_metrics_http *s = ag_metrics_http_start("127.0.0.1:0", r, &err);
    assert_non_null(s);
    int port = ag_metrics_http_port(s);
    assert_true(port > 0);
    char *resp = http_get(port, "/metrics");
    assert_non_null(strstr(resp, "HTTP/1.0 200") ? resp : strstr(resp, "HTTP/1.1 200"));
    assert_non_null(strstr(resp, "text/plain; version=0.0.4"));
    assert_non_null(strstr(resp, "\r\n\r\n# HELP hits_total Hits.\n"));
    free(resp);
    resp = http_get(port, "/");
    assert_non_null(strstr(resp, " 404 "));
    free(resp);
    /* The port in use: one error naming it. */
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_null(ag_metrics_http_start(addr, r, &err));
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_non_null(strstr(err.msg, addr));
    assert_null(ag_metrics_http_start("nonsense", r, &err));
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    ag_metrics_http_stop(s);
    ag_metrics_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_format),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_series_bound_folds_into_other),
        cmocka_unit_test(test_null_is_a_noop),
        cmocka_unit_test(test_process_series),
        cmocka_unit_test(test_concurrent_updates_add_up),
        cmocka_unit_test(test_http_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
