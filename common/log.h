/* common/log.h - structured logs: one line per event, on stderr, in logfmt (the default) or JSON.
 *
 *   ag_log_info("sched.placed", "agent=%s node=%s epoch=%" PRIu64, id, node, epoch);
 *   -> ts=2026-11-25T10:00:00.123Z level=info comp=hub event=sched.placed agent=... node=...
 *   -> {"ts":"2026-11-25T10:00:00.123Z","level":"info","comp":"hub","event":"sched.placed",
 *       "agent":"...","node":"...","epoch":"7"}                      (AG_LOG_JSON, one line)
 *
 * The JSON form is made from the same logfmt text: each k=v becomes a key, and every value is a
 * JSON string, numbers included (one rule a consumer can rely on; "epoch":"7"). A bare word
 * without '=' becomes a key with the value "". A later duplicate key repeats in the object.
 * Events are named module.past_verb. Values that may hold spaces or quotes go through
 * ag_log_q(), which quotes and escapes them. Each line is written with one write(2), so lines from
 * different threads never interleave. The sink is global and set once, before threads start. */
#ifndef AGENTRY_COMMON_LOG_H
#define AGENTRY_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

enum ag_log_level { AG_LOG_DEBUG, AG_LOG_INFO, AG_LOG_WARN, AG_LOG_ERROR, AG_LOG_OFF };
enum ag_log_format { AG_LOG_TEXT, AG_LOG_JSON };

/* component: "hub", "node", "cli"... (static string). Call before starting threads. */
void ag_log_init(const char *component, enum ag_log_level min);
/* "debug", "info", "warn", "error", "off" -> *out; -1 with INVALID_ARGUMENT naming the choices
 * if s is none of them. */
int ag_log_level_parse(const char *s, enum ag_log_level *out, struct ag_err *err);
/* "text" or "json" -> *out; -1 with INVALID_ARGUMENT naming the choices otherwise. */
int ag_log_format_parse(const char *s, enum ag_log_format *out, struct ag_err *err);
/* Before starting threads, as ag_log_init; the default is AG_LOG_TEXT. */
void ag_log_set_format(enum ag_log_format f);
bool ag_log_enabled(enum ag_log_level level);
void ag_log_write(enum ag_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ag_log_debug(event, ...) ag_log_write(AG_LOG_DEBUG, event, __VA_ARGS__)
#define ag_log_info(event, ...) ag_log_write(AG_LOG_INFO, event, __VA_ARGS__)
#define ag_log_warn(event, ...) ag_log_write(AG_LOG_WARN, event, __VA_ARGS__)
#define ag_log_error(event, ...) ag_log_write(AG_LOG_ERROR, event, __VA_ARGS__)

/* A quoted, escaped copy of s in buf (always NUL-terminated, truncated to fit); returns buf. */
struct ag_log_qbuf {
    char s[320];
};
const char *ag_log_quote(struct ag_log_qbuf *buf, const char *s);
/* Convenience for one value per statement: ag_log_q(s) uses a buffer on the caller's stack. */
#define ag_log_q(str) ag_log_quote(&(struct ag_log_qbuf){{0}}, (str))

#endif
