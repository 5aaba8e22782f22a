/* common/clock.h - time sources. Monotonic time for deadlines and latencies, wall time for event
 * timestamps. Tests that need time to pass advance a struct ag_clock instead of sleeping. */
#ifndef AGENTRY_COMMON_CLOCK_H
#define AGENTRY_COMMON_CLOCK_H

#include <stdint.h>

int64_t ag_now_mono_ns(void);
int64_t ag_now_mono_ms(void);
int64_t ag_now_unix_ns(void);

/* An injectable clock: real by default; a test sets `fake` and moves `fake_mono_ms`. */
struct ag_clock {
    int fake;
    int64_t fake_mono_ms;
};
int64_t ag_clock_mono_ms(const struct ag_clock *c);

#endif
