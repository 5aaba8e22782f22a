/* common/clock.c - see clock.h. */
#include "common/clock.h"

#include <time.h>

static int64_t ts_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ag_now_mono_ns(void)
{
    return ts_ns(CLOCK_MONOTONIC);
}

int64_t ag_now_mono_ms(void)
{
    return ts_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t ag_now_unix_ns(void)
{
    return ts_ns(CLOCK_REALTIME);
}

int64_t ag_clock_mono_ms(const struct ag_clock *c)
{
    if (c && c->fake)
        return c->fake_mono_ms;
    return ag_now_mono_ms();
}
