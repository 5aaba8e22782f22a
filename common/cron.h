/* common/cron.h - cron expressions, in UTC: parse one once, then ask for the slot after (or at or
 * before) a time. Pure functions, any thread.
 *
 * Syntax, as crontab(5) (Vixie cron): five fields, minute (0-59), hour (0-23), day-of-month
 * (1-31), month (1-12 or jan-dec), day-of-week (0-7, 0 and 7 both Sunday, or sun-sat), each a
 * comma-separated list of items: `*`, a number or name, a range `A-B`, and a step `/S` after
 * either (`1-30/5`; `*` then `/15` is every 15th); `A/S` means `A-max/S` (as Quartz and
 * robfig/cron). Names are
 * case-insensitive. A sixth field in front makes it a seconds field (0-59, same syntax) so a
 * schedule can fire every few seconds; with five fields the second is 0. Macros: @yearly
 * (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
 *
 * Days, as Vixie cron: when both day-of-month and day-of-week are restricted (neither field
 * starts with `*`), a day matches if EITHER matches ("0 0 1 * mon": the 1st and every Monday);
 * otherwise both must (the `*` one always does).
 *
 * A slot is a whole Unix second. Errors are AG_INVALID_ARGUMENT naming the field and the value
 * ("cron '61 * * * *': minute field '61': 61 is out of range 0-59"). An expression that can
 * never fire (day-of-month 30 in February only) is refused at parse, so next and prev always
 * find a slot within AG_CRON_SEARCH_YEARS of a time in years 1970..9999. */
#ifndef AGENTRY_COMMON_CRON_H
#define AGENTRY_COMMON_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define AG_CRON_MAX_EXPR 256
/* How far next and prev look: Feb 29 every 4 years, 8 across a century year such as 2100. */
#define AG_CRON_SEARCH_YEARS 10

/* The set of values each field matches, one bit per value. */
struct ag_cron {
    uint64_t sec, min;       /* bit i: second / minute i */
    uint32_t hour;           /* bit i: hour i */
    uint32_t dom;            /* bit i: day of month i, 1..31 */
    uint16_t mon;            /* bit i: month i, 1..12 */
    uint8_t dow;             /* bit i: weekday i, 0 (Sunday)..6 */
    bool dom_star, dow_star; /* the field started with '*' (the day rule above) */
    bool seconds;            /* the expression had a seconds field */
};

/* Parse expr into *out. -1 with AG_INVALID_ARGUMENT naming the field and the value. */
int ag_cron_parse(const char *expr, struct ag_cron *out, struct ag_err *err);
/* The first slot strictly after after_s, in *next_s; false if there is none within
 * AG_CRON_SEARCH_YEARS (or after_s is outside years 1970..9999). */
bool ag_cron_next(const struct ag_cron *c, int64_t after_s, int64_t *next_s);
/* The last slot at or before at_s, in *prev_s; false if there is none within
 * AG_CRON_SEARCH_YEARS (or at_s is outside years 1970..9999). */
bool ag_cron_prev(const struct ag_cron *c, int64_t at_s, int64_t *prev_s);

#endif
