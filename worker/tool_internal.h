/* worker/tool_internal.h - what the builtin file tools and shell share: private to worker/tool*.c.
 *
 * A job is one call's blocking work, run on the node's work pool (common/workpool.h) with the
 * agent's workspace open (worker/workspace.h). wk_tool__job_start does what worker/call.h asks
 * of every tool, so that a tool file holds only its own work:
 *   - no work pool, no workspace or no timers in the ctx: run() fails with FAILED_PRECONDITION;
 *     a full pool: run() fails with RESOURCE_EXHAUSTED. done() is then never called.
 *   - arguments that are not a JSON object: an is_error output naming what the tool takes.
 *   - cancel or deadline before the work starts (also while it waits in the pool's queue): done()
 *     at once, from the timer thread, with "tool 'x' was cancelled" / "tool 'x' timed out", and
 *     the work never runs. Once it runs, it runs to its end: file work is short, and work that
 *     waits (shell) watches wk_tool__job_over and wake_fd itself. Work that ended after a cancel
 *     or its deadline without saying so itself is reported as an error that says it finished.
 *   - done() exactly once, never inside run(): from the pool thread or the timer thread.
 *
 * Limits: a tool's size and count limits come from a node option (NAME.KEY, worker/config.h; a
 * size such as "64KiB" or a plain number) with a built-in default, and a spec may lower them,
 * never raise them, with the same key in its settings for the tool (a positive number). */
#ifndef AGENTRY_WORKER_TOOL_INTERNAL_H
#define AGENTRY_WORKER_TOOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "worker/tool.h"
#include "worker/workspace.h"

struct wk_tool__job {
    const struct wk_tool *tool;
    struct wk_call_ctx ctx; /* a copy; its pointers stay valid while work runs */
    struct wk_workspace ws; /* open while work runs */
    cJSON *args;            /* owned: the arguments, a JSON object */
    int wake_fd; /* an eventfd, readable once the call is cancelled; -1 unless asked for */
};

/* Returns the output (owned) and sets *is_error. Runs on a pool thread. */
typedef char *wk_tool__work_fn(struct wk_tool__job *job, bool *is_error);

/* The body of a file tool's run(). wake: give the work a wake_fd. */
int wk_tool__job_start(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                       const char *args_json, wk_tool__work_fn *work, bool wake,
                       wk_tool_done_fn *done, void *arg, struct ag_err *err);
/* AG_CANCELLED or AG_DEADLINE_EXCEEDED once the call should stop, else AG_OK. */
enum ag_code wk_tool__job_over(const struct wk_tool__job *job);

/* Arguments. A missing optional one leaves *out as it was; a wrong type or a missing required
 * one is INVALID_ARGUMENT naming it. Integers may come as JSON numbers or decimal strings. */
int wk_tool__arg_str(const cJSON *args, const char *key, bool required, const char **out,
                     struct ag_err *err);
int wk_tool__arg_int(const cJSON *args, const char *key, bool required, int64_t *out,
                     struct ag_err *err);
int wk_tool__arg_bool(const cJSON *args, const char *key, bool *out, struct ag_err *err);

/* "123", "64KiB", "1MiB", "1GiB" (also "K", "M", "G"): binary multiples; > 0. */
int wk_tool__parse_size(const char *s, int64_t *out);
/* check_config for a tool whose options are the limits in keys (NULL-terminated). */
int wk_tool__check_limits(const struct wk_config *c, const char *const *keys, struct ag_err *err);
/* check_settings for a tool whose settings are the limits in keys (NULL-terminated). */
int wk_tool__check_settings(const char *settings_json, const char *const *keys, struct ag_err *err);
/* The limit `key` for this call: the node option or def, lowered by the spec's setting. */
int64_t wk_tool__limit(const struct wk_tool__job *job, const char *key, int64_t def);

/* The subject of a file tool's call: the string argument `key` of args_json (def, may be NULL,
 * if absent), cleaned as a path without looking at the disk ("a/./b//../c" is "a/c"), so that a
 * permission rule's pattern cannot be dodged by spelling. Owned. */
char *wk_tool__subject_arg(const char *args_json, const char *key, const char *def);

/* Open path beneath the workspace for reading: a regular file (FAILED_PRECONDITION naming a
 * directory or a device). Its stat in *st. Never blocks on a FIFO. */
int wk_tool__open_file(const struct wk_tool__job *job, const char *path, struct stat *st,
                       struct ag_err *err);
/* Read fd to its end or max bytes, whichever comes first, into *buf (owned, NUL-terminated) and
 * *len; *more: the file has more (then *len is cut back to a UTF-8 character boundary). */
int wk_tool__read_fd(int fd, size_t max, const char *shown, char **buf, size_t *len, bool *more,
                     struct ag_err *err);

/* s[0..n) as a valid UTF-8 string: each byte that does not start a well-formed character, and
 * each NUL, becomes U+FFFD. Owned. */
char *wk_tool__text(const char *s, size_t n);

#endif
