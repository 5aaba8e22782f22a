/* tests/unit/test-common-cron.c - cron expressions: what parses (and the error that names the
 * field when not), the next slot after and the last slot at or before a time, checked against
 * known dates and against a search that tries every second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/cron.h"

static int64_t ts(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static struct ag_cron parse_ok(const char *expr)
{
    struct ag_cron c;
    struct ag_err err = AG_ERR_INIT;
    if (ag_cron_parse(expr, &c, &err) != 0)
        fail_msg("'%s' did not parse: %s", expr, err.msg);
    return c;
}

static int64_t next_of(const char *expr, int64_t after)
{
    struct ag_cron c = parse_ok(expr);
    int64_t n = 0;
    assert_true(ag_cron_next(&c, after, &n));
    return n;
}

static int64_t prev_of(const char *expr, int64_t at)
{
    struct ag_cron c = parse_ok(expr);
    int64_t p = 0;
    assert_true(ag_cron_prev(&c, at, &p));
    return p;
}

/* The refusal of expr names `want` (the field and the value). */
static void refused(const char *expr, const char *want)
{
    struct ag_cron c;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_cron_parse(expr, &c, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    if (!strstr(err.msg, want))
        fail_msg("'%s': want '%s' in: %s", expr, want, err.msg);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("61 * * * *", "minute field '61': 61 is out of range 0-59");
    refused("* 24 * * *", "hour field '24'");
    refused("* * 0 * *", "day-of-month field '0'");
    refused("* * * 13 *", "month field '13'");
    refused("* * * * 8", "day-of-week field '8'");
    refused("* * * foo *", "month field 'foo': 'foo' is not a number or a name");
    refused("x * * * *", "minute field 'x': 'x' is not a number");
    refused("60 * * * * *", "second field '60'");
    refused("* * * *", "has 4 fields; want 5");
    refused("* * * * * * *", "has 7 fields");
    refused("", "has 0 fields");
    refused("@reboot", "unknown macro");
    refused("5-1 * * * *", "range '5-1' ends before it starts");
    refused("*/0 * * * *", "the step of '*/0' must be 1..59");
    refused("1,,2 * * * *", "an item of the list is empty");
    refused("1- * * * *", "minute field '1-'");
    refused("1-2x * * * *", "cannot read '1-2x'");
    refused("0 0 30 2 *", "day-of-month field '30': no month");
    refused("0 0 31 apr,jun *", "never fires");
    char big[AG_CRON_MAX_EXPR + 8];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    refused(big, "over 256 bytes");
}

static void test_parse(void **state)
{
    (void)state;
    struct ag_cron c = parse_ok("*/15 0-5/2 1,15 JAN-mar mon-fri");
    assert_int_equal(c.min, (1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45));
    assert_int_equal(c.hour, (1u << 0) | (1u << 2) | (1u << 4));
    assert_int_equal(c.dom, (1u << 1) | (1u << 15));
    assert_int_equal(c.mon, (1u << 1) | (1u << 2) | (1u << 3));
    assert_int_equal(c.dow, 0x3e);
    assert_false(c.dom_star || c.dow_star || c.seconds);
    assert_int_equal(c.sec, 1); /* five fields: second 0 */
    c = parse_ok("*/20 * * * * 7");
    assert_true(c.seconds);
    assert_int_equal(c.sec, (1ULL << 0) | (1ULL << 20) | (1ULL << 40));
    assert_int_equal(c.dow, 1);    /* 7 is Sunday */
    c = parse_ok("10/20 * * * *"); /* A/S: from A to the end */
    assert_int_equal(c.min, (1ULL << 10) | (1ULL << 30) | (1ULL << 50));
    c = parse_ok("  0 12 * * 5-7 ");
    assert_int_equal(c.dow, (1u << 5) | (1u << 6) | 1u);
    assert_true(c.dom_star);
    c = parse_ok("0 0 29 2 *");   /* leap days exist */
    c = parse_ok("0 0 30 2 mon"); /* never the 30th, but every Monday of February */
}

static void test_next(void **state)
{
    (void)state;
    assert_int_equal(next_of("*/15 * * * *", ts(2026, 1, 1, 0, 7, 0)), ts(2026, 1, 1, 0, 15, 0));
    /* strictly after: a slot itself gives the next one */
    assert_int_equal(next_of("*/15 * * * *", ts(2026, 1, 1, 0, 15, 0)), ts(2026, 1, 1, 0, 30, 0));
    assert_int_equal(next_of("*/2 * * * * *", ts(2026, 1, 1, 0, 0, 4)), ts(2026, 1, 1, 0, 0, 6));
    assert_int_equal(next_of("*/2 * * * * *", ts(2026, 1, 1, 0, 0, 5)), ts(2026, 1, 1, 0, 0, 6));
    assert_int_equal(next_of("*/2 * * * * *", ts(2026, 1, 1, 0, 0, 59)), ts(2026, 1, 1, 0, 1, 0));
    /* Saturday 2026-01-03 -> Monday 9:00 */
    assert_int_equal(next_of("0 9 * * mon-fri", ts(2026, 1, 3, 10, 0, 0)), ts(2026, 1, 5, 9, 0, 0));
    /* both day fields restricted: the 1st OR a Monday (2026-01-01 is a Thursday) */
    assert_int_equal(next_of("0 0 1 * mon", ts(2026, 1, 1, 0, 0, 0)), ts(2026, 1, 5, 0, 0, 0));
    assert_int_equal(next_of("0 0 1 * mon", ts(2026, 1, 26, 0, 0, 0)), ts(2026, 2, 1, 0, 0, 0));
    /* day-of-week unrestricted with '*': only the day-of-month counts */
    assert_int_equal(next_of("0 0 13 * *", ts(2026, 1, 1, 0, 0, 0)), ts(2026, 1, 13, 0, 0, 0));
    /* '*' first in day-of-week ('*' then '/2') is unrestricted too (Vixie): AND */
    assert_int_equal(next_of("0 0 13 * */2", ts(2026, 1, 1, 0, 0, 0)), ts(2026, 1, 13, 0, 0, 0));
    assert_int_equal(next_of("0 0 29 2 *", ts(2026, 1, 1, 0, 0, 0)), ts(2028, 2, 29, 0, 0, 0));
    assert_int_equal(next_of("0 0 29 2 *", ts(2096, 3, 1, 0, 0, 0)), ts(2104, 2, 29, 0, 0, 0));
    assert_int_equal(next_of("@yearly", ts(2026, 6, 1, 0, 0, 0)), ts(2027, 1, 1, 0, 0, 0));
    assert_int_equal(next_of("@annually", ts(2026, 6, 1, 0, 0, 0)), ts(2027, 1, 1, 0, 0, 0));
    assert_int_equal(next_of("@monthly", ts(2026, 12, 5, 0, 0, 0)), ts(2027, 1, 1, 0, 0, 0));
    assert_int_equal(next_of("@weekly", ts(2026, 1, 1, 0, 0, 0)), ts(2026, 1, 4, 0, 0, 0));
    assert_int_equal(next_of("@daily", ts(2026, 1, 1, 0, 0, 0)), ts(2026, 1, 2, 0, 0, 0));
    assert_int_equal(next_of("@hourly", ts(2026, 1, 1, 23, 0, 0)), ts(2026, 1, 2, 0, 0, 0));
    assert_int_equal(next_of("0 0 31 * *", ts(2026, 1, 31, 0, 0, 0)), ts(2026, 3, 31, 0, 0, 0));
    struct ag_cron c = parse_ok("* * * * *");
    int64_t out;
    assert_false(ag_cron_next(&c, 253402300799LL, &out)); /* past 9999 */
}

static void test_prev(void **state)
{
    (void)state;
    assert_int_equal(prev_of("*/2 * * * * *", ts(2026, 1, 1, 0, 0, 5)), ts(2026, 1, 1, 0, 0, 4));
    assert_int_equal(prev_of("*/2 * * * * *", ts(2026, 1, 1, 0, 0, 4)), ts(2026, 1, 1, 0, 0, 4));
    assert_int_equal(prev_of("*/15 * * * *", ts(2026, 1, 1, 0, 0, 0)), ts(2026, 1, 1, 0, 0, 0));
    assert_int_equal(prev_of("*/15 * * * *", ts(2026, 1, 1, 0, 14, 59)), ts(2026, 1, 1, 0, 0, 0));
    assert_int_equal(prev_of("0 9 * * mon-fri", ts(2026, 1, 4, 10, 0, 0)), ts(2026, 1, 2, 9, 0, 0));
    assert_int_equal(prev_of("0 0 29 2 *", ts(2027, 6, 1, 0, 0, 0)), ts(2024, 2, 29, 0, 0, 0));
    assert_int_equal(prev_of("@monthly", ts(2026, 1, 15, 0, 0, 0)), ts(2026, 1, 1, 0, 0, 0));
    assert_int_equal(prev_of("0 0 31 * *", ts(2026, 3, 30, 0, 0, 0)), ts(2026, 1, 31, 0, 0, 0));
    struct ag_cron c = parse_ok("0 0 1 1 *");
    int64_t out;
    assert_false(ag_cron_prev(&c, ts(1970, 6, 1, 0, 0, 0) - 365 * 86400LL, &out));
}

/* The slots of each expression over two weeks (around a month end and a leap day), found by
 * trying every second, are exactly those next and prev walk through. */
static bool matches(const struct ag_cron *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    bool dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
    bool day = c->dom_star || c->dow_star ? dom && dow : dom || dow;
    return (c->sec >> tm.tm_sec & 1) && (c->min >> tm.tm_min & 1) && (c->hour >> tm.tm_hour & 1) &&
           (c->mon >> (tm.tm_mon + 1) & 1) && day;
}

static void test_against_brute_force(void **state)
{
    (void)state;
    const char *exprs[] = {"*/7 * * * *",     "30 */5 * * * *", "0 0 29 2 *", "15 3 * * 1,3",
                           "0 12 1,29 * tue", "0 0-23/6 * * *", "@hourly",    "59 59 23 * * *"};
    int64_t from = ts(2028, 2, 20, 0, 0, 0), to = ts(2028, 3, 5, 0, 0, 0);
    for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++) {
        struct ag_cron c = parse_ok(exprs[e]);
        int64_t at = from - 1, slot;
        size_t walked = 0, brute = 0;
        while (ag_cron_next(&c, at, &slot) && slot < to) {
            assert_true(matches(&c, slot));
            int64_t back;
            assert_true(ag_cron_prev(&c, slot, &back));
            assert_int_equal(back, slot);
            if (walked > 0) { /* the slot before is the one walked before */
                assert_true(ag_cron_prev(&c, slot - 1, &back));
                assert_int_equal(back, at);
            }
            at = slot;
            walked++;
        }
        for (int64_t t = from; t < to; t++)
            brute += matches(&c, t);
        if (walked != brute)
            fail_msg("'%s': walked %zu slots, brute force found %zu", exprs[e], walked, brute);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_next),
        cmocka_unit_test(test_prev),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
