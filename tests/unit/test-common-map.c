/* tests/unit/test-common-map.c - the string map and FNV-1a (common/map.c).
 *
 * The churn test checks the map against a plain array through thousands of puts and deletes,
 * which is what exercises backward-shift deletion across wrapped probe runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/map.h"

static void test_fnv1a_known_values(void **state)
{
    (void)state;
    /* Published FNV-1a 64-bit test vectors. */
    assert_true(ag_hash_fnv1a("", 0) == UINT64_C(0xcbf29ce484222325));
    assert_true(ag_hash_fnv1a("a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(ag_hash_fnv1a("foobar", 6) == UINT64_C(0x85944171f73967e8));
    assert_true(ag_hash_fnv1a_str("foobar") == UINT64_C(0x85944171f73967e8));
    assert_true(ag_hash_fnv1a_str("") == ag_hash_fnv1a("", 0));
}

static void test_put_get_del(void **state)
{
    (void)state;
    struct ag_map m;
    ag_map_init(&m);
    int a = 1, b = 2, c = 3;
    assert_null(ag_map_get(&m, "a"));
    assert_null(ag_map_del(&m, "a"));
    assert_null(ag_map_put(&m, "a", &a));
    assert_null(ag_map_put(&m, "b", &b));
    assert_int_equal(ag_map_len(&m), 2);
    assert_ptr_equal(ag_map_get(&m, "a"), &a);
    /* replace returns the old value; a key with the same text but other memory matches */
    char key[] = "a";
    assert_ptr_equal(ag_map_put(&m, key, &c), &a);
    assert_int_equal(ag_map_len(&m), 2);
    assert_ptr_equal(ag_map_get(&m, "a"), &c);
    assert_ptr_equal(ag_map_del(&m, "a"), &c);
    assert_null(ag_map_get(&m, "a"));
    assert_int_equal(ag_map_len(&m), 1);
    assert_ptr_equal(ag_map_get(&m, "b"), &b);
    ag_map_release(&m);
    assert_int_equal(ag_map_len(&m), 0);
    ag_map_release(&m); /* twice is fine */
}

#define N 3000

static void test_churn_against_array(void **state)
{
    (void)state;
    static char keys[N][16];
    static bool in[N];
    static int vals[N];
    struct ag_map m;
    ag_map_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "agent-%d", i);
        vals[i] = i;
        in[i] = false;
    }
    uint64_t rng = 42;
    size_t len = 0;
    for (int step = 0; step < 40000; step++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int k = (int)((rng >> 33) % N);
        if ((rng >> 20) & 1) {
            void *old = ag_map_put(&m, keys[k], &vals[k]);
            assert_ptr_equal(old, in[k] ? &vals[k] : NULL);
            len += !in[k];
            in[k] = true;
        } else {
            void *old = ag_map_del(&m, keys[k]);
            assert_ptr_equal(old, in[k] ? &vals[k] : NULL);
            len -= in[k];
            in[k] = false;
        }
        if (step % 4000 == 0)
            for (int i = 0; i < N; i++)
                assert_ptr_equal(ag_map_get(&m, keys[i]), in[i] ? &vals[i] : NULL);
    }
    assert_int_equal(ag_map_len(&m), len);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(ag_map_get(&m, keys[i]), in[i] ? &vals[i] : NULL);

    /* iteration sees each entry once, with its own key */
    static bool seen[N];
    memset(seen, 0, sizeof(seen));
    size_t count = 0;
    const char *k;
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&m, &it, &k, &v);) {
        int i = *(int *)v;
        assert_true(in[i]);
        assert_false(seen[i]);
        assert_ptr_equal(k, keys[i]);
        seen[i] = true;
        count++;
    }
    assert_int_equal(count, len);
    ag_map_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_known_values),
        cmocka_unit_test(test_put_get_del),
        cmocka_unit_test(test_churn_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
