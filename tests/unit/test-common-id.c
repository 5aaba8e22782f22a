/* tests/unit/test-common-id.c - ids are valid and strictly increasing in creation order, also
 * when many are made within one millisecond (ListAgents' order and tokens rely on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/id.h"

static void test_ids_sort_in_creation_order(void **state)
{
    (void)state;
    char prev[AG_ID_LEN + 1], cur[AG_ID_LEN + 1];
    ag_id_new(prev);
    assert_true(ag_id_valid(prev));
    /* 200k ids take a few ms: thousands land in the same millisecond. */
    for (int i = 0; i < 200000; i++) {
        ag_id_new(cur);
        assert_true(ag_id_valid(cur));
        if (strcmp(prev, cur) >= 0)
            fail_msg("id %d '%s' does not sort after '%s'", i, cur, prev);
        memcpy(prev, cur, sizeof(prev));
    }
}

static void test_validity(void **state)
{
    (void)state;
    assert_false(ag_id_valid(""));
    assert_false(ag_id_valid("nope"));
    assert_false(ag_id_valid("01m881hffc9xd7wu")); /* 'u' is not in Crockford's alphabet */
    assert_false(ag_id_valid("01m881hffc9xd7w2x"));
    assert_true(ag_id_valid("01m881hffc9xd7w2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_sort_in_creation_order),
        cmocka_unit_test(test_validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
