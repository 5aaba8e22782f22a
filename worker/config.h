/* worker/config.h - per-provider and per-tool options, from the node's flags.
 *
 * An operator writes "NAME.KEY=VALUE" (agentry node join --model-opt mock.latency=50ms
 * --tool-opt echo.timeout=2s); wk_configs_parse checks and sorts them into one struct wk_config
 * per row of wk_model_providers and of wk_tools, and one for "mcp" (the spec's MCP stdio servers,
 * which are not a tool of the table). Every provider and tool takes "timeout" (a
 * duration: each call's deadline, see worker/call.h); other keys are the row's own, checked by
 * its check_config hook. A bad option is refused at start, with a message naming it, never at the
 * first call.
 *
 * Threads: parsed once before the runner starts, read-only afterwards. */
#ifndef AGENTRY_WORKER_CONFIG_H
#define AGENTRY_WORKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct wk_config_item {
    char *key;   /* owned */
    char *value; /* owned */
};

struct wk_config {
    const char *owner;            /* borrowed: the row's name, for messages */
    struct wk_config_item *items; /* owned */
    size_t n;
    int64_t timeout_ms; /* "timeout"; 0: calls have no deadline */
};

/* The value of key, or NULL if not set. c may be NULL. */
const char *wk_config_get(const struct wk_config *c, const char *key);
/* key as a duration ("50ms", "2s") into *ms; *ms untouched if key is not set. -1 with
 * INVALID_ARGUMENT naming the option if malformed. */
int wk_config_duration(const struct wk_config *c, const char *key, int64_t *ms, struct ag_err *err);
/* -1 with INVALID_ARGUMENT naming the first key that is neither "timeout" nor in known (a
 * NULL-terminated list), and what the row takes. */
int wk_config_check_keys(const struct wk_config *c, const char *const *known, struct ag_err *err);

/* Every row's options. */
struct wk_configs {
    struct wk_config *models; /* owned; one per row of wk_model_providers */
    struct wk_config *tools;  /* owned; one per row of wk_tools */
    struct wk_config *mcp;    /* inside tools, after the rows: "mcp.KEY", the options of the
                                 spec's MCP stdio servers (worker/tool_ext.h) */
};

/* Sort "NAME.KEY=VALUE" items into out (zeroed by the caller or released before). On error
 * (INVALID_ARGUMENT, naming the option) out holds nothing to release. */
int wk_configs_parse(struct wk_configs *out, const char *const *model_opts, size_t nmodel,
                     const char *const *tool_opts, size_t ntool, struct ag_err *err);
void wk_configs_release(struct wk_configs *c);

#endif
