/* common/log.c - logfmt or JSON lines on stderr. Global state: the component name, minimum level
 * and format, written once by ag_log_init() and ag_log_set_format() before any thread starts,
 * read-only afterwards. A JSON line is converted from the logfmt one, so callers write one format
 * string and both outputs carry the same fields. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "agentry";
static enum ag_log_level log_min = AG_LOG_INFO;
static enum ag_log_format log_format = AG_LOG_TEXT;

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

int ag_log_format_parse(const char *s, enum ag_log_format *out, struct ag_err *err)
{
    if (strcmp(s, "text") == 0 || strcmp(s, "json") == 0) {
        *out = s[0] == 't' ? AG_LOG_TEXT : AG_LOG_JSON;
        return 0;
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "invalid value '%s' for --log-format: want text or json", s);
}

void ag_log_set_format(enum ag_log_format f)
{
    log_format = f;
}

/* A JSON line under construction. It stops growing, and says so, rather than overflow: room
 * for the closing `,"truncated":"true"}` and newline is always kept back. */
struct json_line {
    char s[8192];
    size_t n;
    bool full;
};
#define JSON_TAIL_ROOM 24

static void json_str(struct json_line *j, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t cap = sizeof(j->s) - JSON_TAIL_ROOM;
    if (j->full || j->n + 2 > cap) {
        j->full = true;
        return;
    }
    j->s[j->n++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (j->n + 7 > cap) {
            j->full = true;
            return;
        }
        if (c == '"' || c == '\\') {
            j->s[j->n++] = '\\';
            j->s[j->n++] = (char)c;
        } else if (c < 0x20) {
            memcpy(j->s + j->n, "\\u00", 4);
            j->s[j->n + 4] = hex[c >> 4];
            j->s[j->n + 5] = hex[c & 15];
            j->n += 6;
        } else {
            j->s[j->n++] = (char)c;
        }
    }
    j->s[j->n++] = '"';
}

/* One "key":"value" member, whole or not at all. */
static void json_member(struct json_line *j, const char *k, size_t klen, const char *v, size_t vlen)
{
    size_t at = j->n;
    if (at > 1) /* not the first member */
        j->s[j->n++] = ',';
    json_str(j, k, klen);
    if (!j->full)
        j->s[j->n++] = ':';
    json_str(j, v, vlen);
    if (j->full)
        j->n = at;
}

/* Undo ag_log_quote: "a \"b\"" -> a "b", in place at v; returns the new length. *end is
 * where the token ends in the source. */
static size_t logfmt_unquote(char *v, const char **end)
{
    const char *p = v + 1;
    size_t o = 0;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        v[o++] = *p;
    }
    *end = *p ? p + 1 : p;
    return o;
}

/* body: the caller's "k=v k2=\"v 2\"" part (modified in place). */
static size_t json_from_logfmt(struct json_line *j, const char *head[4], char *body)
{
    static const char *const keys[] = {"ts", "level", "comp", "event"};
    j->s[j->n++] = '{';
    for (int i = 0; i < 4; i++)
        json_member(j, keys[i], strlen(keys[i]), head[i], strlen(head[i]));
    for (char *p = body; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t klen = (size_t)(p - k);
        char *v = p;
        size_t vlen = 0;
        if (*p == '=' && p[1] == '"') {
            const char *end;
            v = p + 1;
            vlen = logfmt_unquote(v, &end);
            p = (char *)end;
        } else if (*p == '=') {
            v = ++p;
            while (*p && *p != ' ')
                p++;
            vlen = (size_t)(p - v);
        }
        json_member(j, k, klen, v, vlen);
    }
    if (j->full) {
        static const char more[] = ",\"truncated\":\"true\"";
        memcpy(j->s + j->n, more, sizeof(more) - 1);
        j->n += sizeof(more) - 1;
    }
    j->s[j->n++] = '}';
    j->s[j->n++] = '\n';
    return j->n;
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
    char tsbuf[96]; /* room for any int the compiler imagines */
    snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));
    int n = snprintf(line, sizeof(line), "ts=%s level=%s comp=%s event=%s ", tsbuf,
                     level_names[level], log_component, event);
    int body = n;
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
    line[n] = '\0';
    if (log_format == AG_LOG_JSON) {
        struct json_line j;
        j.n = 0;
        j.full = false;
        const char *head[4] = {tsbuf, level_names[level], log_component, event};
        size_t jn = json_from_logfmt(&j, head, line + body);
        ssize_t w = write(STDERR_FILENO, j.s, jn);
        (void)w;
        return;
    }
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
