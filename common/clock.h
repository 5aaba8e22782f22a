/* common/clock.h - time sources and deadline arithmetic, in one place.
 *
 * Monotonic time for deadlines and latencies, wall time for event timestamps. A deadline is an
 * absolute CLOCK_MONOTONIC instant in nanoseconds (int64_t, as ag_now_mono_ns() returns), or
 * AG_DEADLINE_NONE for "never": a wall-clock jump (NTP, a suspended VM) must neither fire nor
 * stall a wait, so nothing here looks at CLOCK_REALTIME except ag_now_unix_ns().
 *
 * A thread that waits on a condvar with a deadline inits the condvar with ag_cond_init_mono()
 * (pthread_cond_timedwait measures against the condvar's clock, CLOCK_REALTIME by default) and
 * then waits with ag_cond_wait_until(). gRPC deadlines are built on these in common/rpc
 * (rpc_deadline_ms). Thread-safe: every function here is. */
#ifndef AGENTRY_COMMON_CLOCK_H
#define AGENTRY_COMMON_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

int64_t ag_now_mono_ns(void);
int64_t ag_now_mono_ms(void);
int64_t ag_now_unix_ns(void);
/* unix_ns as RFC 3339 UTC with milliseconds, "2026-11-30T10:00:00.123Z", in buf (32 bytes);
 * empty if it does not fit (a year of more than four digits in a small buffer). */
const char *ag_clock_rfc3339(char *buf, size_t cap, int64_t unix_ns);

/* The deadline that never passes. */
#define AG_DEADLINE_NONE INT64_MAX

/* The deadline timeout_ms from now; timeout_ms <= 0 means none (AG_DEADLINE_NONE), as every
 * --timeout flag and config field of ours reads 0 as "no limit". Saturates instead of
 * overflowing for huge timeouts. */
int64_t ag_deadline_in_ms(int64_t timeout_ms);
/* Nanoseconds left until deadline: 0 once it passed, INT64_MAX for AG_DEADLINE_NONE. */
int64_t ag_deadline_left_ns(int64_t deadline);
/* The same rounded up to whole milliseconds (a wait of "0 ms" while time is left would spin). */
int64_t ag_deadline_left_ms(int64_t deadline);
bool ag_deadline_passed(int64_t deadline);
/* deadline as the absolute CLOCK_MONOTONIC timespec pthread_cond_timedwait() wants on a condvar
 * from ag_cond_init_mono(). AG_DEADLINE_NONE gives a time centuries away. */
struct timespec ag_deadline_timespec(int64_t deadline);

/* pthread_cond_init with CLOCK_MONOTONIC as the condvar's clock. */
void ag_cond_init_mono(pthread_cond_t *cv);
/* pthread_cond_timedwait until deadline on a condvar from ag_cond_init_mono() (with mu held).
 * False when the deadline passed, true when woken (possibly spuriously: re-check the predicate
 * in a loop, as with any condvar). AG_DEADLINE_NONE waits without a limit. */
bool ag_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline);

#endif
