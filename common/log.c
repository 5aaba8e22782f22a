/* common/log.c - logfmt lines on stderr. Global state: the component name and minimum level,
 * written once by ag_log_init() before any thread starts, read-only afterwards. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "agentry";
static enum ag_log_level log_min = AG_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void ag_log_init(const char *component, enum ag_log_level min)
{
    log_component = component;
    log_min = min;
}

int ag_log_level_parse(const char *s, enum ag_log_level *out, struct ag_err *err)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum ag_log_level)i;
            return 0;
        }
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "invalid value '%s' for --log-level: want debug, info, warn, error or off",
                      s);
}

bool ag_log_enabled(enum ag_log_level level)
{
    return level >= log_min && level != AG_LOG_OFF;
}

void ag_log_write(enum ag_log_level level, const char *event, const char *fmt, ...)
{
    if (!ag_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s event=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_component, event);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if ((size_t)n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    /* The format's own content can carry no newline: an entry is one line, always. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

const char *ag_log_quote(struct ag_log_qbuf *buf, const char *s)
{
    size_t o = 0, cap = sizeof(buf->s) - 2;
    buf->s[o++] = '"';
    for (; s && *s && o < cap - 1; s++) {
        char c = *s;
        if (c == '"' || c == '\\') {
            buf->s[o++] = '\\';
            buf->s[o++] = c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            buf->s[o++] = ' ';
        } else {
            buf->s[o++] = c;
        }
    }
    buf->s[o++] = '"';
    buf->s[o] = '\0';
    return buf->s;
}
