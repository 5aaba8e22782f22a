/* tests/unit/test-hub-usage-history.c - the hub's usage ring (hub/usage_history.c): one-minute
 * bucketing, the window's edges and validation, the bound of 64 keys with its shared "other",
 * the namespace filter and the caller's namespaces, and the order of the series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agentry/v1/types.pb-c.h"
#include "common/arena.h"
#include "hub/usage_history.h"

#define MIN INT64_C(60000000000)
/* A minute well after the epoch, so that 24 hours back stays positive. */
#define T0 (INT64_C(28000000) * MIN)

static bool sees_all(void *arg, const char *ns)
{
    (void)arg;
    (void)ns;
    return true;
}

/* A caller granted the namespaces listed in arg (NULL-terminated); never the shared key. */
static bool sees_listed(void *arg, const char *ns)
{
    for (const char *const *p = arg; *p; p++)
        if (strcmp(*p, ns) == 0)
            return true;
    return false;
}

static size_t query(struct hub_usage_history *uh, uint32_t bs, uint32_t n, int64_t now,
                    const char *ns, hub_usage_history_sees_fn *sees, void *arg, struct ag_arena *ar,
                    struct hub_usage_series **out)
{
    struct hub_usage_window w;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_usage_history_window(bs, n, now, &w, &err), 0);
    return hub_usage_history_query(uh, &w, ns, sees, arg, ar, out);
}

static void test_window_checks(void **state)
{
    (void)state;
    struct hub_usage_window w;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_usage_history_window(0, 0, T0 + 30 * INT64_C(1000000000), &w, &err), 0);
    assert_int_equal(w.bucket_seconds, 60);
    assert_int_equal(w.buckets, 60);
    /* The newest bucket is the current minute. */
    assert_true(w.start_minute == T0 / MIN - 59);
    assert_int_equal(hub_usage_history_window(3600, 24, T0, &w, &err), 0);
    assert_int_equal(hub_usage_history_window(60, 1440, T0, &w, &err), 0);
    assert_int_equal(hub_usage_history_window(90, 10, T0, &w, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "multiple of 60"));
    assert_int_equal(hub_usage_history_window(7200, 1, T0, &w, &err), -1);
    assert_int_equal(hub_usage_history_window(3600, 25, T0, &w, &err), -1);
    assert_non_null(strstr(err.msg, "24 hours"));
    assert_int_equal(hub_usage_history_window(60, 1441, T0, &w, &err), -1);
}

static void test_buckets_and_edges(void **state)
{
    (void)state;
    struct hub_usage_history *uh = hub_usage_history_new();
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    /* Two events in the current minute, one 5 minutes back, one just over 24 hours back (never
     * seen), and one at the first second of the window's first minute. */
    hub_usage_history_add(uh, "a", "mock", T0 + 1, 10, 2, 1000, 1);
    hub_usage_history_add(uh, "a", "mock", T0 + 59 * INT64_C(1000000000), 5, 1, 0, 1);
    hub_usage_history_add(uh, "a", "mock", T0 - 5 * MIN, 7, 0, 0, 0);
    hub_usage_history_add(uh, "a", "mock", T0 - 1440 * MIN, 1000, 0, 0, 0);
    hub_usage_history_add(uh, "a", "mock", T0 - 9 * MIN, 3, 0, 0, 0);
    hub_usage_history_add(uh, "a", "mock", T0, 0, 0, 0, 0); /* nothing: no key made */

    struct hub_usage_series *s;
    assert_int_equal(query(uh, 60, 10, T0, NULL, sees_all, NULL, &ar, &s), 1);
    assert_string_equal(s[0].model, "mock");
    assert_true(s[0].input_tokens[9] == 15 && s[0].output_tokens[9] == 3);
    assert_true(s[0].cost_nano_usd[9] == 1000 && s[0].model_calls[9] == 2);
    assert_true(s[0].input_tokens[4] == 7);
    assert_true(s[0].input_tokens[0] == 3); /* the window's first minute */
    assert_true(s[0].total_tokens == 28);

    /* Five-minute buckets: minutes [T0-9, T0-5) and [T0-4, T0]; the 5-back one is in the first. */
    assert_int_equal(query(uh, 300, 2, T0, NULL, sees_all, NULL, &ar, &s), 1);
    assert_true(s[0].input_tokens[0] == 10 && s[0].input_tokens[1] == 15);

    /* A window that ends before anything happened has no series. */
    assert_int_equal(query(uh, 60, 1, T0 - 20 * MIN, NULL, sees_all, NULL, &ar, &s), 0);

    /* 24 hours later the ring has moved on: the old minutes read as empty, and an event for a
     * minute whose slot holds a newer one is dropped. */
    hub_usage_history_add(uh, "a", "mock", T0 + 1440 * MIN, 1, 0, 0, 0);
    hub_usage_history_add(uh, "a", "mock", T0 + 2, 100, 0, 0, 0);
    assert_int_equal(query(uh, 3600, 24, T0 + 1440 * MIN, NULL, sees_all, NULL, &ar, &s), 1);
    uint64_t sum = 0;
    for (int b = 0; b < 24; b++)
        sum += s[0].input_tokens[b];
    assert_true(sum == 1); /* only the newest: the rest is more than 24 hours old by now */
    ag_arena_release(&ar);
    hub_usage_history_free(uh);
}

static void test_order_and_namespaces(void **state)
{
    (void)state;
    struct hub_usage_history *uh = hub_usage_history_new();
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    hub_usage_history_add(uh, "a", "mock", T0, 5, 0, 0, 1);
    hub_usage_history_add(uh, "b", "mock", T0, 5, 0, 0, 1);
    hub_usage_history_add(uh, "b", "openai/gpt-4o", T0, 20, 0, 0, 1);
    hub_usage_history_add(uh, "c", "", T0, 1, 0, 0, 0); /* no model: "mock" */

    struct hub_usage_series *s;
    /* Every namespace: namespaces merged by model, most tokens first. */
    assert_int_equal(query(uh, 60, 1, T0, NULL, sees_all, NULL, &ar, &s), 2);
    assert_string_equal(s[0].model, "openai/gpt-4o");
    assert_string_equal(s[1].model, "mock");
    assert_true(s[1].input_tokens[0] == 11 && s[1].model_calls[0] == 2);
    /* The namespace filter. */
    assert_int_equal(query(uh, 60, 1, T0, "a", sees_all, NULL, &ar, &s), 1);
    assert_true(s[0].input_tokens[0] == 5);
    /* A caller who sees only "a" and "c": the rest is not there, with or without a filter. */
    const char *ac[] = {"a", "c", NULL};
    assert_int_equal(query(uh, 60, 1, T0, NULL, sees_listed, ac, &ar, &s), 1);
    assert_true(s[0].input_tokens[0] == 6);
    assert_int_equal(query(uh, 60, 1, T0, "b", sees_listed, ac, &ar, &s), 0);

    /* MODEL_REQUEST is a call, MODEL_REPLY brings its payload's usage, others nothing. */
    const char *reply = "{\"content\":\"x\",\"usage\":{\"input_tokens\":30,\"output_tokens\":4,"
                        "\"cost_usd\":0.5}}";
    hub_usage_history_count_event(uh, "d", "mock",
                                  AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST,
                                  "{\"model\":\"mock\"}", 16, T0);
    hub_usage_history_count_event(uh, "d", "mock", AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY,
                                  reply, strlen(reply), T0);
    hub_usage_history_count_event(uh, "d", "mock", AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL,
                                  reply, strlen(reply), T0);
    assert_int_equal(query(uh, 60, 1, T0, "d", sees_all, NULL, &ar, &s), 1);
    assert_true(s[0].input_tokens[0] == 30 && s[0].output_tokens[0] == 4);
    assert_true(s[0].cost_nano_usd[0] == 500000000 && s[0].model_calls[0] == 1);
    ag_arena_release(&ar);
    hub_usage_history_free(uh);
}

static void test_key_bound(void **state)
{
    (void)state;
    struct hub_usage_history *uh = hub_usage_history_new();
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    /* 63 pairs get keys; the 64th and later pairs share "other" with no namespace. */
    char model[32];
    for (int i = 0; i < 70; i++) {
        snprintf(model, sizeof(model), "m%02d", i);
        hub_usage_history_add(uh, i < 69 ? "a" : "b", model, T0, (uint64_t)(100 + i), 0, 0, 1);
    }
    struct hub_usage_series *s;
    size_t n = query(uh, 60, 1, T0, NULL, sees_all, NULL, &ar, &s);
    assert_int_equal(n, HUB_USAGE_HISTORY_KEYS);
    /* "other" holds m63..m69: 7 pairs, the most tokens of all. */
    assert_string_equal(s[0].model, HUB_USAGE_HISTORY_OTHER);
    assert_true(s[0].input_tokens[0] == 163 + 164 + 165 + 166 + 167 + 168 + 169);
    /* A pair with a key keeps counting under it. */
    hub_usage_history_add(uh, "a", "m00", T0, 1, 0, 0, 0);
    n = query(uh, 60, 1, T0, "a", sees_all, NULL, &ar, &s);
    assert_int_equal(n, HUB_USAGE_HISTORY_KEYS - 1); /* the shared key is no namespace's */
    /* m00 and m01 tie at 101 tokens: by name, then. */
    assert_string_equal(s[n - 2].model, "m00");
    assert_true(s[n - 2].input_tokens[0] == 101);
    /* A namespace-scoped caller never sees the shared key, which mixes namespaces. */
    const char *a[] = {"a", NULL};
    n = query(uh, 60, 1, T0, NULL, sees_listed, a, &ar, &s);
    assert_int_equal(n, HUB_USAGE_HISTORY_KEYS - 1);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(s[i].model, HUB_USAGE_HISTORY_OTHER);
    const char *b[] = {"b", NULL};
    assert_int_equal(query(uh, 60, 1, T0, NULL, sees_listed, b, &ar, &s), 0);
    ag_arena_release(&ar);
    hub_usage_history_free(uh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_checks),
        cmocka_unit_test(test_buckets_and_edges),
        cmocka_unit_test(test_order_and_namespaces),
        cmocka_unit_test(test_key_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
