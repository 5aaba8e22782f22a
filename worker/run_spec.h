/* worker/run_spec.h - what a run keeps of its agent's spec beyond the model and tool names:
 * the model settings, the tools' settings, the limits and the permission rules
 * (types.proto: AgentSpec.model_settings, tool_settings, limits, permissions).
 *
 * Owns: the run's copies of them, and the permission decision for a tool call (first matching
 * rule wins; a call no rule matches is allowed). The hub has checked the fields' shapes and
 * sizes (hub/validate.c); the tools check their own settings (wk_tool.check_settings).
 *
 * Threads: copied when the run is made, read-only afterwards: safe from any thread. */
#ifndef AGENTRY_WORKER_RUN_SPEC_H
#define AGENTRY_WORKER_RUN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/types.pb-c.h"
#include "worker/model.h"
#include "worker/tool.h"

struct wk_run_rule {
    char *tool; /* owned; a glob of tool names: "*" for every tool, "mcp__fs__*" */
    bool allow;
    char **patterns; /* owned; fnmatch globs against the call's subject */
    size_t npatterns;
};

struct wk_run_spec {
    /* model_settings */
    char *base_url; /* owned, NULL: the node's */
    bool stream;
    bool temperature_set;
    double temperature;
    uint32_t max_tokens;
    char **headers; /* owned, "Name: value" */
    size_t nheaders;
    char *api_key_env; /* owned, NULL: the node's */
    /* tool_settings, by tool name */
    char **setting_tools; /* owned */
    char **setting_json;  /* owned, parallel to setting_tools */
    size_t nsettings;
    /* limits */
    uint64_t token_budget;
    double cost_budget_usd;
    uint64_t turn_timeout_ms;
    /* permissions */
    struct wk_run_rule *rules; /* owned */
    size_t nrules;
};

/* spec may be NULL (nothing to copy). */
void wk_run_spec_copy(struct wk_run_spec *out, const Agentry__V1__AgentSpec *spec);
void wk_run_spec_release(struct wk_run_spec *s);
/* The settings for a model call; the pointers are borrowed from s. */
struct wk_model_settings wk_run_spec_model_settings(const struct wk_run_spec *s);
/* The spec's settings JSON for tool name, NULL if none. */
const char *wk_run_spec_tool_settings(const struct wk_run_spec *s, const char *name);
/* NULL when the call of tool name (t: its row, NULL if this node lacks it) with args_json is
 * allowed; otherwise why not (owned), for the model's error result and the trace. */
char *wk_run_spec_denied(const struct wk_run_spec *s, const struct wk_tool *t, const char *name,
                         const char *args_json);

#endif
