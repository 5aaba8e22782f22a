/* common/cron.c - cron expressions (see cron.h for the syntax).
 *
 * Parsing turns each field into a bit set. Searching walks broken-down UTC time (gmtime_r and
 * timegm, which normalises out-of-range fields) from the coarsest field to the finest: a month
 * that does not match jumps to the next (or previous) month's edge, and so on down to the
 * second, so a search costs a few steps per matching unit rather than one per second. */
#include "common/cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* 9999-12-31T23:59:59Z: gmtime_r and timegm agree on everything up to it. */
#define CRON_MAX_UNIX_S 253402300799LL

struct field {
    const char *name;
    int min, max;
    const char *const *names; /* NULL, or the names of min..min+n-1 */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

static const struct field fields[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, NULL},       [F_MIN] = {"minute", 0, 59, NULL},
    [F_HOUR] = {"hour", 0, 23, NULL},        [F_DOM] = {"day-of-month", 1, 31, NULL},
    [F_MON] = {"month", 1, 12, month_names}, [F_DOW] = {"day-of-week", 0, 7, day_names},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* --- parsing ------------------------------------------------------------------------------------ */

struct parse {
    const char *expr; /* for messages */
    const struct field *f;
    const char *text; /* the whole field, for messages */
    struct ag_err *err;
};

static int field_err(const struct parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int field_err(const struct parse *p, const char *fmt, ...)
{
    char why[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return ag_err_set(p->err, AG_INVALID_ARGUMENT, "cron '%.64s': %s field '%.32s': %s", p->expr,
                      p->f->name, p->text, why);
}

/* A number or (for month and day-of-week) a name, from *s; advances *s past it. */
static int parse_value(const struct parse *p, const char **s, int *out)
{
    const char *b = *s;
    if (isdigit((unsigned char)*b)) {
        char *end;
        long v = strtol(b, &end, 10);
        if (v < p->f->min || v > p->f->max)
            return field_err(p, "%ld is out of range %d-%d", v, p->f->min, p->f->max);
        *s = end;
        *out = (int)v;
        return 0;
    }
    size_t n = 0;
    while (isalpha((unsigned char)b[n]))
        n++;
    for (int i = 0; p->f->names && n == 3 && p->f->names[i]; i++)
        if (strncasecmp(b, p->f->names[i], 3) == 0) {
            *s = b + 3;
            *out = p->f->min + i;
            return 0;
        }
    char tok[16];
    snprintf(tok, sizeof(tok), "%.*s", (int)(n ? (n < 15 ? n : 15) : 1), b);
    if (p->f->names)
        return field_err(p, "'%s' is not a number or a name (%s, %s, ...)", tok, p->f->names[0],
                         p->f->names[1]);
    return field_err(p, "'%s' is not a number", tok);
}

/* One comma-separated item: *, A, A-B, each with an optional /S; A/S means A-max/S. */
static int parse_item(const struct parse *p, const char *item, uint64_t *bits)
{
    const char *s = item;
    int lo = p->f->min, hi = p->f->max, step = 1;
    if (*s == '*') {
        s++;
    } else {
        if (parse_value(p, &s, &lo) != 0)
            return -1;
        hi = lo;
        if (*s == '-') {
            s++;
            if (parse_value(p, &s, &hi) != 0)
                return -1;
            if (hi < lo)
                return field_err(p, "range '%s' ends before it starts", item);
        } else if (*s == '/') {
            hi = p->f->max;
        }
    }
    if (*s == '/') {
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (!isdigit((unsigned char)s[1]) || v < 1 || v > p->f->max)
            return field_err(p, "the step of '%s' must be 1..%d", item, p->f->max);
        step = (int)v;
        s = end;
    }
    if (*s)
        return field_err(p, "cannot read '%s'", item);
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << v;
    return 0;
}

static int parse_field(const char *expr, int which, const char *text, uint64_t *bits,
                       struct ag_err *err)
{
    struct parse p = {expr, &fields[which], text, err};
    char buf[AG_CRON_MAX_EXPR + 1];
    snprintf(buf, sizeof(buf), "%s", text);
    *bits = 0;
    char *save = NULL;
    if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,"))
        return field_err(&p, "an item of the list is empty");
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (parse_item(&p, item, bits) != 0)
            return -1;
    if (which == F_DOW && (*bits & (1ULL << 7))) /* 7 is Sunday too */
        *bits = (*bits & 0x7f) | 1;
    return 0;
}

static const int month_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* With the day-of-week unrestricted, a day-of-month must exist in one of the months, or the
 * expression never fires (the 30th of February); refused here so a search always succeeds. */
static int check_days(const char *expr, const char *dom_text, const struct ag_cron *c,
                      struct ag_err *err)
{
    if (!c->dow_star && !c->dom_star)
        return 0;
    for (int m = 1; m <= 12; m++)
        for (int d = 1; d <= month_days[m]; d++)
            if ((c->mon & (1u << m)) && (c->dom & (1u << d)))
                return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "cron '%.64s': day-of-month field '%.32s': no month of the month field has "
                      "that day, so it never fires",
                      expr, dom_text);
}

int ag_cron_parse(const char *expr, struct ag_cron *out, struct ag_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!expr)
        expr = "";
    if (strlen(expr) > AG_CRON_MAX_EXPR)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cron expression is over %d bytes",
                          AG_CRON_MAX_EXPR);
    const char *src = expr;
    while (isspace((unsigned char)*src))
        src++;
    if (*src == '@') {
        size_t n = strcspn(src, " \t\r\n");
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
            if (strlen(macros[i].name) == n && strncasecmp(src, macros[i].name, n) == 0 &&
                !src[n + strspn(src + n, " \t\r\n")])
                return ag_cron_parse(macros[i].expr, out, err);
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "cron '%.64s': unknown macro; use @yearly, @annually, @monthly, "
                          "@weekly, @daily, @midnight or @hourly",
                          expr);
    }
    char buf[AG_CRON_MAX_EXPR + 1], *tok[F_COUNT + 1], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", src);
    int n = 0;
    for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save))
        if (n++ < F_COUNT)
            tok[n - 1] = t;
    if (n != 5 && n != 6)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "cron '%.64s' has %d fields; want 5 (minute hour day-of-month month "
                          "day-of-week) or 6 (a seconds field first)",
                          expr, n);
    out->seconds = n == 6;
    int first = out->seconds ? F_SEC : F_MIN;
    uint64_t bits[F_COUNT] = {[F_SEC] = 1}; /* five fields: second 0 */
    for (int f = first; f < F_COUNT; f++)
        if (parse_field(expr, f, tok[f - first], &bits[f], err) != 0)
            return -1;
    out->sec = bits[F_SEC];
    out->min = bits[F_MIN];
    out->hour = (uint32_t)bits[F_HOUR];
    out->dom = (uint32_t)bits[F_DOM];
    out->mon = (uint16_t)bits[F_MON];
    out->dow = (uint8_t)bits[F_DOW];
    out->dom_star = tok[F_DOM - first][0] == '*';
    out->dow_star = tok[F_DOW - first][0] == '*';
    return check_days(expr, tok[F_DOM - first], out, err);
}

/* --- searching ---------------------------------------------------------------------------------- */

static bool day_matches(const struct ag_cron *c, const struct tm *tm)
{
    bool dom = c->dom & (1u << tm->tm_mday), dow = c->dow & (1u << tm->tm_wday);
    return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

/* tm from a time, normalised: the one way times are turned into fields below. */
static int64_t settle(struct tm *tm)
{
    time_t t = timegm(tm);
    gmtime_r(&t, tm);
    return (int64_t)t;
}

bool ag_cron_next(const struct ag_cron *c, int64_t after_s, int64_t *next_s)
{
    if (after_s < -1 || after_s >= CRON_MAX_UNIX_S)
        return false;
    time_t t = (time_t)(after_s + 1);
    struct tm tm;
    gmtime_r(&t, &tm);
    int last_year = tm.tm_year + AG_CRON_SEARCH_YEARS;
    while (tm.tm_year <= last_year) {
        if (!(c->mon & (1u << (tm.tm_mon + 1)))) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        } else if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        } else if (!(c->hour & (1u << tm.tm_hour))) {
            tm.tm_hour++;
            tm.tm_min = tm.tm_sec = 0;
        } else if (!(c->min & (1ULL << tm.tm_min))) {
            tm.tm_min++;
            tm.tm_sec = 0;
        } else if (!(c->sec & (1ULL << tm.tm_sec))) {
            tm.tm_sec++;
        } else {
            *next_s = settle(&tm);
            return *next_s <= CRON_MAX_UNIX_S;
        }
        settle(&tm);
    }
    return false;
}

bool ag_cron_prev(const struct ag_cron *c, int64_t at_s, int64_t *prev_s)
{
    if (at_s < 0 || at_s > CRON_MAX_UNIX_S)
        return false;
    time_t t = (time_t)at_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    int first_year = tm.tm_year - AG_CRON_SEARCH_YEARS;
    /* Each miss goes to the last second before the start of the unit that missed. */
    while (tm.tm_year >= first_year && tm.tm_year >= 70) {
        if (!(c->mon & (1u << (tm.tm_mon + 1)))) {
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        } else if (!day_matches(c, &tm)) {
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        } else if (!(c->hour & (1u << tm.tm_hour))) {
            tm.tm_min = tm.tm_sec = 0;
        } else if (!(c->min & (1ULL << tm.tm_min))) {
            tm.tm_sec = 0;
        } else if (!(c->sec & (1ULL << tm.tm_sec))) {
            /* the second itself: step back one below */
        } else {
            *prev_s = settle(&tm);
            return true;
        }
        tm.tm_sec--;
        settle(&tm);
    }
    return false;
}
