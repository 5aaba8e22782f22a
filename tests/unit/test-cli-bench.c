/* tests/unit/test-cli-bench.c - cmd/agentry/bench.c: when the load engine goes on and when it
 * stops. A hub that answers with errors is still being measured, so the run uses its whole
 * budget and counts them. A hub that is gone (UNAVAILABLE: refused, or shutting down) ends the
 * run after the calls already in flight: those calls fail at once, and going on used to spin
 * through a million of them at 100% CPU.
 *
 * The "hub" is a common/rpc server on 127.0.0.1:0 whose methods always finish with one status;
 * the unreachable one is a port bound but never listened on, held for the whole test so that
 * nothing else can take it, which refuses every connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd/agentry/bench.h"
#include "common/log.h"
#include "common/rpc/client.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"

#define SLOTS 4
#define BIG_BUDGET 1000000 /* far more calls than a test may take: only stopping early passes */

static void exhausted_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    rpc_call_finish(c, AG_RESOURCE_EXHAUSTED, "queue full");
}

static void unavailable_on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    rpc_call_finish(c, AG_UNAVAILABLE, "the hub is shutting down");
}

static const struct rpc_method methods[] = {
    {.path = "/t.Bench/Exhausted", .kind = RPC_UNARY, .on_call = exhausted_on_call},
    {.path = "/t.Bench/Unavailable", .kind = RPC_UNARY, .on_call = unavailable_on_call},
};

/* Runs `calls` calls of method on target, SLOTS at a time, into res. */
static void run(const char *target, const char *method, uint64_t calls, struct bench_result *res)
{
    struct rpc_channel *ch = rpc_channel_new(target, NULL, NULL);
    assert_non_null(ch);
    grpc_slice req = grpc_empty_slice();
    struct bench_cfg cfg = {
        .chans = &ch,
        .nchans = 1,
        .method = method,
        .concurrency = SLOTS,
        .calls = calls,
        .timeout_ms = 5000,
        .reqs = &req,
        .nreqs = 1,
    };
    bench_run(&cfg, res);
    rpc_channel_free(ch);
}

static struct rpc_server *server_start(char *target, size_t cap)
{
    struct rpc_server_opts o = {.listen = "127.0.0.1:0", .threads = 2};
    struct ag_err err = AG_ERR_INIT;
    struct rpc_server *s = rpc_server_new(&o, methods, AG_ARRAY_SIZE(methods), &err);
    if (!s)
        fail_msg("server: %s", err.msg);
    rpc_server_start(s);
    snprintf(target, cap, "127.0.0.1:%d", rpc_server_port(s));
    return s;
}

static void server_stop(struct rpc_server *s)
{
    rpc_server_stop(s, 0);
    rpc_server_free(s);
}

static void test_errors_do_not_stop_the_run(void **state)
{
    char target[64];
    struct rpc_server *s = server_start(target, sizeof(target));
    struct bench_result res;
    run(target, "/t.Bench/Exhausted", 200, &res);
    assert_int_equal(res.calls, 200);
    assert_int_equal(res.errors, 200);
    assert_false(res.hub_lost);
    assert_int_equal(res.first_err.code, AG_RESOURCE_EXHAUSTED);
    assert_string_equal(res.first_err.msg, "queue full");
    bench_result_release(&res);
    server_stop(s);
}

static void test_unavailable_stops_the_run(void **state)
{
    char target[64];
    struct rpc_server *s = server_start(target, sizeof(target));
    struct bench_result res;
    run(target, "/t.Bench/Unavailable", BIG_BUDGET, &res);
    assert_true(res.hub_lost);
    assert_int_equal(res.calls, SLOTS); /* the first call of each slot, and none after */
    assert_int_equal(res.errors, SLOTS);
    assert_int_equal(res.lost_err.code, AG_UNAVAILABLE);
    assert_string_equal(res.lost_err.msg, "the hub is shutting down");
    bench_result_release(&res);
    server_stop(s);
}

static void test_unreachable_stops_the_run(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char target[64], want[96];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(want, sizeof(want), "cannot reach hub at '%s'", target);

    struct bench_result res;
    run(target, "/t.Bench/Exhausted", BIG_BUDGET, &res);
    close(fd);
    assert_true(res.hub_lost);
    assert_int_equal(res.calls, SLOTS);
    assert_int_equal(res.lost_err.code, AG_UNAVAILABLE);
    if (!strstr(res.lost_err.msg, want))
        fail_msg("lost_err '%s' does not say '%s'", res.lost_err.msg, want);
    bench_result_release(&res);
}

int main(void)
{
    ag_log_init("test", AG_LOG_ERROR);
    rpc_client_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_do_not_stop_the_run),
        cmocka_unit_test(test_unavailable_stops_the_run),
        cmocka_unit_test(test_unreachable_stops_the_run),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rpc_client_shutdown();
    return rc;
}
