/* common/clock.c - time sources and deadline arithmetic (see clock.h). No state. */
#include "common/clock.h"

#include <errno.h>
#include <string.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

static int64_t ts_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int64_t ag_now_mono_ns(void)
{
    return ts_ns(CLOCK_MONOTONIC);
}

int64_t ag_now_mono_ms(void)
{
    return ts_ns(CLOCK_MONOTONIC) / NS_PER_MS;
}

int64_t ag_now_unix_ns(void)
{
    return ts_ns(CLOCK_REALTIME);
}

int64_t ag_deadline_in_ms(int64_t timeout_ms)
{
    if (timeout_ms <= 0)
        return AG_DEADLINE_NONE;
    int64_t now = ag_now_mono_ns();
    /* Timeouts come from flags and configs: a huge one means "never", not an overflow. */
    if (timeout_ms > (AG_DEADLINE_NONE - now) / NS_PER_MS)
        return AG_DEADLINE_NONE;
    return now + timeout_ms * NS_PER_MS;
}

int64_t ag_deadline_left_ns(int64_t deadline)
{
    if (deadline == AG_DEADLINE_NONE)
        return INT64_MAX;
    int64_t left = deadline - ag_now_mono_ns();
    return left > 0 ? left : 0;
}

int64_t ag_deadline_left_ms(int64_t deadline)
{
    int64_t left = ag_deadline_left_ns(deadline);
    if (left == INT64_MAX)
        return INT64_MAX;
    return left / NS_PER_MS + (left % NS_PER_MS != 0);
}

bool ag_deadline_passed(int64_t deadline)
{
    return deadline != AG_DEADLINE_NONE && ag_now_mono_ns() >= deadline;
}

struct timespec ag_deadline_timespec(int64_t deadline)
{
    if (deadline < 0)
        deadline = 0;
    return (struct timespec){.tv_sec = (time_t)(deadline / NS_PER_S),
                             .tv_nsec = (long)(deadline % NS_PER_S)};
}

void ag_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

bool ag_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
    if (deadline == AG_DEADLINE_NONE) {
        pthread_cond_wait(cv, mu);
        return true;
    }
    struct timespec ts = ag_deadline_timespec(deadline);
    return pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT;
}

const char *ag_clock_rfc3339(char *buf, size_t cap, int64_t unix_ns)
{
    time_t secs = (time_t)(unix_ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* strftime, not snprintf("%04d", year): an int64 of nanoseconds can hold years of more than
     * four digits, which -O3's -Wformat-truncation rightly points out; strftime says 0 when the
     * result does not fit, and then we print nothing rather than half a date. */
    int ms = (int)(unix_ns / 1000000 % 1000);
    size_t n = cap > 5 ? strftime(buf, cap - 5, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    if (n == 0) {
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    char tail[6] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '\0'};
    memcpy(buf + n, tail, sizeof(tail));
    return buf;
}
