/* worker/run_spec.c - a run's copy of its spec's settings, limits and rules, and the permission
 * decision under the node's policy (see run_spec.h). */
#include "worker/run_spec.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static char *dup_nonempty(const char *s)
{
    return s && *s ? ag_xstrdup(s) : NULL;
}

static void copy_model_settings(struct wk_run_spec *out, const Agentry__V1__ModelSettings *m)
{
    if (!m)
        return;
    out->base_url = dup_nonempty(m->base_url);
    out->stream = m->stream;
    out->temperature_set = m->temperature_set;
    out->temperature = m->temperature;
    out->max_tokens = m->max_tokens;
    out->api_key_env = dup_nonempty(m->api_key_env);
    if (m->n_headers == 0)
        return;
    out->headers = ag_xcalloc(m->n_headers, sizeof(*out->headers));
    for (size_t i = 0; i < m->n_headers; i++)
        out->headers[out->nheaders++] = ag_xasprintf(
            "%s: %s", m->headers[i]->key ? m->headers[i]->key : "",
            m->headers[i]->value ? m->headers[i]->value : "");
}

static void copy_rules(struct wk_run_spec *out, const Agentry__V1__AgentSpec *spec)
{
    if (spec->n_permissions == 0)
        return;
    out->rules = ag_xcalloc(spec->n_permissions, sizeof(*out->rules));
    for (size_t i = 0; i < spec->n_permissions; i++) {
        const Agentry__V1__PermissionRule *r = spec->permissions[i];
        struct wk_policy_rule *w = &out->rules[out->nrules++];
        w->tool = ag_xstrdup(r->tool && *r->tool ? r->tool : "*");
        /* The hub accepts only the three names; anything else would be a newer hub's
         * decision this node does not know, and the strictest reading is the safe one. */
        if (!wk_policy_decision_parse(r->decision, &w->decision))
            w->decision = WK_DECISION_DENY;
        if (r->n_patterns == 0)
            continue;
        w->patterns = ag_xcalloc(r->n_patterns, sizeof(*w->patterns));
        for (size_t k = 0; k < r->n_patterns; k++)
            w->patterns[w->npatterns++] = ag_xstrdup(r->patterns[k] ? r->patterns[k] : "");
    }
}

void wk_run_spec_copy(struct wk_run_spec *out, const Agentry__V1__AgentSpec *spec)
{
    memset(out, 0, sizeof(*out));
    if (!spec)
        return;
    copy_model_settings(out, spec->model_settings);
    if (spec->n_tool_settings > 0) {
        out->setting_tools = ag_xcalloc(spec->n_tool_settings, sizeof(*out->setting_tools));
        out->setting_json = ag_xcalloc(spec->n_tool_settings, sizeof(*out->setting_json));
        for (size_t i = 0; i < spec->n_tool_settings; i++) {
            out->setting_tools[i] = ag_xstrdup(
                spec->tool_settings[i]->key ? spec->tool_settings[i]->key : "");
            out->setting_json[i] = ag_xstrdup(
                spec->tool_settings[i]->value ? spec->tool_settings[i]->value : "{}");
        }
        out->nsettings = spec->n_tool_settings;
    }
    if (spec->limits) {
        out->token_budget = spec->limits->max_tokens;
        out->cost_budget_usd = spec->limits->max_cost_usd;
        out->turn_timeout_ms = spec->limits->turn_timeout_ms;
    }
    copy_rules(out, spec);
}

void wk_run_spec_release(struct wk_run_spec *s)
{
    free(s->base_url);
    free(s->api_key_env);
    for (size_t i = 0; i < s->nheaders; i++)
        free(s->headers[i]);
    free(s->headers);
    for (size_t i = 0; i < s->nsettings; i++) {
        free(s->setting_tools[i]);
        free(s->setting_json[i]);
    }
    free(s->setting_tools);
    free(s->setting_json);
    wk_policy_rules_free(s->rules, s->nrules);
    memset(s, 0, sizeof(*s));
}

struct wk_model_settings wk_run_spec_model_settings(const struct wk_run_spec *s)
{
    return (struct wk_model_settings){
        .base_url = s->base_url,
        .stream = s->stream,
        .temperature_set = s->temperature_set,
        .temperature = s->temperature,
        .max_tokens = s->max_tokens,
        .headers = (const char *const *)s->headers,
        .nheaders = s->nheaders,
        .api_key_env = s->api_key_env,
    };
}

const char *wk_run_spec_tool_settings(const struct wk_run_spec *s, const char *name)
{
    for (size_t i = 0; i < s->nsettings; i++)
        if (strcmp(s->setting_tools[i], name) == 0)
            return s->setting_json[i];
    return NULL;
}

/* One layer's answer: its first matching rule (NULL: none matched, the layer's default). */
struct layer {
    const char *owner; /* "the node's policy", "the agent's spec" */
    enum wk_decision decision;
    const struct wk_policy_rule *rule;
    size_t at;
};

static struct layer decide_layer(const char *owner, const struct wk_policy_rule *rules, size_t n,
                                 enum wk_decision def, const char *name, const char *subject)
{
    struct layer l = {.owner = owner, .decision = def};
    l.rule = wk_policy_rules_first(rules, n, name, subject, &l.at);
    if (l.rule)
        l.decision = l.rule->decision;
    return l;
}

/* "rule 2 of the agent's spec (deny shell 'rm *')" or "the default of the node's policy (ask)" */
static char *layer_describe(const struct layer *l)
{
    if (!l->rule)
        return ag_xasprintf("the default of %s (%s)", l->owner,
                            wk_policy_decision_name(l->decision));
    char *rule = wk_policy_rule_describe(l->rule);
    char *out = ag_xasprintf("rule %zu of %s (%s)", l->at + 1, l->owner, rule);
    free(rule);
    return out;
}

enum wk_decision wk_run_spec_decide(const struct wk_run_spec *s, const struct wk_policy *node,
                                    const struct wk_tool *t, const char *name,
                                    const char *args_json, char **why)
{
    *why = NULL;
    if (s->nrules == 0 &&
        (!node || (node->nrules == 0 && node->default_decision == WK_DECISION_ALLOW)))
        return WK_DECISION_ALLOW;
    char *subject = t && t->subject ? t->subject(args_json ? args_json : "") : NULL;
    struct layer n = decide_layer("the node's policy", node ? node->rules : NULL,
                                  node ? node->nrules : 0,
                                  node ? node->default_decision : WK_DECISION_ALLOW, name, subject);
    struct layer a = decide_layer("the agent's spec", s->rules, s->nrules, WK_DECISION_ALLOW, name,
                                  subject);
    free(subject);
    /* On a tie the node's rule is named: it is the one that holds whatever a spec says. */
    const struct layer *d = n.decision >= a.decision ? &n : &a;
    if (d->decision == WK_DECISION_ALLOW)
        return WK_DECISION_ALLOW;
    char *which = layer_describe(d);
    if (d->decision == WK_DECISION_ASK) {
        *why = which;
        return WK_DECISION_ASK;
    }
    *why = ag_xasprintf("permission denied: %s forbids this call of tool '%s'", which, name);
    free(which);
    return WK_DECISION_DENY;
}
