/* tests/unit/test-common-clock.c - deadline arithmetic on CLOCK_MONOTONIC (common/clock.c).
 *
 * The timed waits use short deadlines that must pass (a condvar nobody signals), so nothing
 * here sleeps to let time go by. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/clock.h"

static void test_none(void **state)
{
    (void)state;
    assert_true(ag_deadline_in_ms(0) == AG_DEADLINE_NONE);
    assert_true(ag_deadline_in_ms(-5) == AG_DEADLINE_NONE);
    assert_true(ag_deadline_in_ms(INT64_MAX) == AG_DEADLINE_NONE); /* saturates */
    assert_false(ag_deadline_passed(AG_DEADLINE_NONE));
    assert_true(ag_deadline_left_ns(AG_DEADLINE_NONE) == INT64_MAX);
    assert_true(ag_deadline_left_ms(AG_DEADLINE_NONE) == INT64_MAX);
    struct timespec ts = ag_deadline_timespec(AG_DEADLINE_NONE);
    assert_true(ts.tv_sec > (time_t)100 * 365 * 24 * 3600); /* centuries away */
}

static void test_in_and_left(void **state)
{
    (void)state;
    int64_t before = ag_now_mono_ns();
    int64_t d = ag_deadline_in_ms(60000);
    int64_t after = ag_now_mono_ns();
    assert_true(d >= before + INT64_C(60000) * 1000000);
    assert_true(d <= after + INT64_C(60000) * 1000000);
    assert_false(ag_deadline_passed(d));
    int64_t left = ag_deadline_left_ms(d);
    assert_true(left > 59000 && left <= 60000);
    /* a deadline in the past */
    int64_t past = ag_now_mono_ns() - 1;
    assert_true(ag_deadline_passed(past));
    assert_int_equal(ag_deadline_left_ns(past), 0);
    assert_int_equal(ag_deadline_left_ms(past), 0);
    /* a nanosecond left rounds up to a millisecond, so a wait never becomes a spin */
    assert_int_equal(ag_deadline_left_ms(ag_now_mono_ns() + 1000000000), 1000);
    struct timespec ts = ag_deadline_timespec(INT64_C(3) * 1000000000 + 5);
    assert_int_equal(ts.tv_sec, 3);
    assert_int_equal(ts.tv_nsec, 5);
}

static void test_cond_wait_until_times_out(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    ag_cond_init_mono(&cv);
    int64_t d = ag_deadline_in_ms(20);
    pthread_mutex_lock(&mu);
    bool woken = true;
    /* spurious wake-ups are allowed: loop as a real waiter does */
    while (woken && !ag_deadline_passed(d))
        woken = ag_cond_wait_until(&cv, &mu, d);
    pthread_mutex_unlock(&mu);
    assert_true(ag_deadline_passed(d));
    /* a deadline already passed returns at once */
    pthread_mutex_lock(&mu);
    assert_false(ag_cond_wait_until(&cv, &mu, ag_now_mono_ns() - 1));
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_in_and_left),
        cmocka_unit_test(test_cond_wait_until_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
