/* worker/run_spec.h - what a run keeps of its agent's spec beyond the model and tool names:
 * the model settings, the tools' settings, the limits and the permission rules
 * (types.proto: AgentSpec.model_settings, tool_settings, limits, permissions).
 *
 * Owns: the run's copies of them, and the permission decision for a tool call: the spec's rules
 * (first matching rule wins; a call no rule matches is allowed) under the node's policy
 * (worker/policy.h), the stricter of the two applying. The hub has checked the fields' shapes and
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
#include "worker/policy.h"
#include "worker/tool.h"

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
    struct wk_policy_rule *rules; /* owned */
    size_t nrules;
};

/* spec may be NULL (nothing to copy). */
void wk_run_spec_copy(struct wk_run_spec *out, const Agentry__V1__AgentSpec *spec);
void wk_run_spec_release(struct wk_run_spec *s);
/* The settings for a model call; the pointers are borrowed from s. */
struct wk_model_settings wk_run_spec_model_settings(const struct wk_run_spec *s);
/* The spec's settings JSON for tool name, NULL if none. */
const char *wk_run_spec_tool_settings(const struct wk_run_spec *s, const char *name);
/* The decision for a call of tool `name` (t: its row, NULL for an MCP/OpenAPI tool or one this
 * node lacks) with args_json: the node's policy (NULL: none) and the spec's rules each decide
 * (first matching rule; none: the node's default / allow), and the stricter applies (deny over ask
 * over allow): the node's policy is a ceiling a spec cannot raise. For ASK and DENY, *why (owned)
 * names the deciding rule, for the model's error result and the trace: DENY's reads "permission
 * denied: rule 2 of the agent's spec (deny shell 'rm *') forbids this call of tool 'shell'" (or
 * "of the node's policy"), ASK's "rule 1 of the node's policy (ask shell 'git push*')". On a tie
 * the node's policy is named. For ALLOW, *why is NULL. */
enum wk_decision wk_run_spec_decide(const struct wk_run_spec *s, const struct wk_policy *node,
                                    const struct wk_tool *t, const char *name,
                                    const char *args_json, char **why);

#endif
