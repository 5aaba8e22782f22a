/* tests/unit/test-common-strbuf.c - the growable text buffer (common/strbuf.c): appends keep it
 * NUL-terminated across growth, and dropping a prefix keeps the rest (a stream's lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"

static void test_add_grows_and_terminates(void **state)
{
    (void)state;
    struct ag_strbuf b = {0};
    ag_strbuf_add(&b, "", 0);
    assert_string_equal(b.s, "");
    for (int i = 0; i < 1000; i++)
        ag_strbuf_add(&b, "abc", 3);
    assert_int_equal(b.len, 3000);
    assert_true(b.cap > b.len);
    assert_int_equal(strlen(b.s), 3000);
    assert_memory_equal(b.s + 2997, "abc", 4);
    free(b.s);
}

static void test_drop_prefix(void **state)
{
    (void)state;
    struct ag_strbuf b = {0};
    ag_strbuf_drop(&b, 0); /* empty, never allocated */
    assert_null(b.s);
    ag_strbuf_add(&b, "line1\nline2\npart", 16);
    ag_strbuf_drop(&b, 6);
    assert_string_equal(b.s, "line2\npart");
    ag_strbuf_drop(&b, b.len);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.s, "");
    free(b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_grows_and_terminates),
        cmocka_unit_test(test_drop_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
