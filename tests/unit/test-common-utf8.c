/* tests/unit/test-common-utf8.c - the UTF-8 validator against well-formed text and the classic
 * ill-formed cases (stray continuation bytes, truncation, overlongs, surrogates, > U+10FFFF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/utf8.h"

#define VALID(lit) assert_true(ag_utf8_valid(lit, sizeof(lit) - 1))
#define INVALID(lit) assert_false(ag_utf8_valid(lit, sizeof(lit) - 1))

static void test_well_formed(void **state)
{
    (void)state;
    VALID("");
    VALID("plain ascii");
    VALID("caf\xc3\xa9");                  /* U+00E9 */
    VALID("\xe2\x82\xac");                 /* U+20AC euro */
    VALID("\xed\x9f\xbf");                 /* U+D7FF, just below the surrogates */
    VALID("\xee\x80\x80");                 /* U+E000, just above them */
    VALID("\xf0\x9f\x98\x80");             /* U+1F600 */
    VALID("\xf4\x8f\xbf\xbf");             /* U+10FFFF, the last code point */
    assert_true(ag_utf8_valid("a\0b", 3)); /* NUL is a valid code point */
    assert_true(ag_utf8_valid_str(NULL));
}

static void test_ill_formed(void **state)
{
    (void)state;
    INVALID("bad\xff");          /* never valid */
    INVALID("\x80");             /* stray continuation */
    INVALID("\xc3");             /* truncated */
    INVALID("\xe2\x82");         /* truncated */
    INVALID("\xc0\xaf");         /* overlong '/' */
    INVALID("\xc1\xbf");         /* overlong */
    INVALID("\xe0\x80\xaf");     /* overlong */
    INVALID("\xf0\x80\x80\xaf"); /* overlong */
    INVALID("\xed\xa0\x80");     /* U+D800, a surrogate */
    INVALID("\xf4\x90\x80\x80"); /* U+110000 */
    INVALID("\xf5\x80\x80\x80"); /* lead byte past U+10FFFF */
    INVALID("\xc3\x28");         /* bad continuation */
    assert_false(ag_utf8_valid_str("x\xfe"));
}

/* ag_utf8_prefix: a cut never splits a character, and drops nothing else. */
static void test_prefix(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x86\x92\xf0\x9f\x98\x80"; /* a, é, →, 😀: 1+2+3+4 bytes */
    const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10};
    for (size_t n = 0; n <= 10; n++)
        assert_int_equal(ag_utf8_prefix(s, n), want[n]);
    assert_int_equal(ag_utf8_prefix("abc", 3), 3);
    /* Stray continuation bytes are not a cut character: kept (the caller checks validity). */
    assert_int_equal(ag_utf8_prefix("a\x80\x80\x80\x80", 5), 5);
    assert_int_equal(ag_utf8_prefix("\x80", 1), 1);
    /* A lead byte alone at the end is cut off. */
    assert_int_equal(ag_utf8_prefix("ab\xe2", 3), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_ill_formed),
        cmocka_unit_test(test_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
