/* tests/unit/test-hub-usage.c - the usage counting rule (hub/usage.c): costs in nano-dollars
 * from MODEL_REPLY payloads, what a node's bad number becomes, and the protobuf form. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agentry/v1/types.pb-c.h"
#include "hub/usage.h"

#define REPLY AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY

static uint64_t cost_of(int kind, const char *payload)
{
    return hub_usage_payload_cost(kind, payload, strlen(payload));
}

static void test_nano_usd(void **state)
{
    (void)state;
    assert_int_equal(hub_usage_nano_usd(0.0125), 12500000);
    assert_int_equal(hub_usage_nano_usd(0.0000005), 500);
    assert_int_equal(hub_usage_nano_usd(1.5e-9), 2); /* rounded, not cut */
    assert_int_equal(hub_usage_nano_usd(-1), 0);
    assert_int_equal(hub_usage_nano_usd(NAN), 0);
    assert_int_equal(hub_usage_nano_usd(1e300), UINT64_C(1000000000000000000));
    assert_int_equal(hub_usage_nano_usd(INFINITY), UINT64_C(1000000000000000000));
}

static void test_payload_cost(void **state)
{
    (void)state;
    assert_int_equal(cost_of(REPLY, "{\"usage\":{\"input_tokens\":3,\"cost_usd\":0.25}}"),
                     250000000);
    assert_int_equal(cost_of(REPLY, "{\"usage\":{\"input_tokens\":3}}"), 0);
    assert_int_equal(cost_of(REPLY, "{\"usage\":{\"cost_usd\":\"0.25\"}}"), 0);
    assert_int_equal(cost_of(REPLY, "{\"usage\":{\"cost_usd\":-3}}"), 0);
    assert_int_equal(cost_of(REPLY, "{\"usage\":{\"cost_usd\":0.25"), 0); /* cut short */
    assert_int_equal(cost_of(REPLY, "{}"), 0);
    assert_int_equal(hub_usage_payload_cost(REPLY, NULL, 0), 0);
    /* Only a model's reply has a price. */
    assert_int_equal(
        cost_of(AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT, "{\"usage\":{\"cost_usd\":1}}"),
        0);
    /* Not NUL-terminated: only len bytes are read. */
    const char p[] = "{\"usage\":{\"cost_usd\":2}}xx";
    assert_int_equal(hub_usage_payload_cost(REPLY, p, sizeof(p) - 3), 2000000000);
}

static void test_count_and_pb(void **state)
{
    (void)state;
    struct hub_usage u = {0};
    hub_usage_count(&u, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST, 0, 0, 0);
    hub_usage_count(&u, REPLY, 10, 2, 12500000);
    hub_usage_count(&u, REPLY, 1, 1, 500);
    assert_int_equal(u.model_calls, 1);
    assert_int_equal(u.input_tokens, 11);
    assert_int_equal(u.cost_nano_usd, 12500500);

    Agentry__V1__Usage pb;
    hub_usage_to_pb(&u, &pb);
    assert_true(fabs(pb.cost_usd - 0.0125005) < 1e-15);
    struct hub_usage back = {0};
    hub_usage_from_pb(&pb, &back);
    assert_memory_equal(&back, &u, sizeof(u));

    /* A sum past 2^64 saturates instead of wrapping to a small spend. */
    u.cost_nano_usd = UINT64_MAX - 5;
    hub_usage_count(&u, REPLY, 0, 0, 10);
    assert_true(u.cost_nano_usd == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nano_usd),
        cmocka_unit_test(test_payload_cost),
        cmocka_unit_test(test_count_and_pb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
