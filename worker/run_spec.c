/* worker/run_spec.c - a run's copy of its spec's settings, limits and rules (see run_spec.h). */
#include "worker/run_spec.h"

#include <fnmatch.h>
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
        struct wk_run_rule *w = &out->rules[out->nrules++];
        w->tool = ag_xstrdup(r->tool && *r->tool ? r->tool : "*");
        w->allow = r->decision && strcmp(r->decision, "allow") == 0;
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
    for (size_t i = 0; i < s->nrules; i++) {
        free(s->rules[i].tool);
        for (size_t k = 0; k < s->rules[i].npatterns; k++)
            free(s->rules[i].patterns[k]);
        free(s->rules[i].patterns);
    }
    free(s->rules);
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

/* A rule's tool is a glob ("*", "mcp__fs__*": a spec's MCP and OpenAPI tools share a prefix).
 * A rule with patterns matches only a call with a subject one of them matches. */
static bool rule_matches(const struct wk_run_rule *r, const char *name, const char *subject)
{
    if (fnmatch(r->tool, name, 0) != 0)
        return false;
    if (r->npatterns == 0)
        return true;
    if (!subject)
        return false;
    for (size_t i = 0; i < r->npatterns; i++)
        if (fnmatch(r->patterns[i], subject, 0) == 0)
            return true;
    return false;
}

char *wk_run_spec_denied(const struct wk_run_spec *s, const struct wk_tool *t, const char *name,
                         const char *args_json)
{
    if (s->nrules == 0)
        return NULL;
    char *subject = t && t->subject ? t->subject(args_json ? args_json : "") : NULL;
    char *why = NULL;
    for (size_t i = 0; i < s->nrules; i++) {
        const struct wk_run_rule *r = &s->rules[i];
        if (!rule_matches(r, name, subject))
            continue;
        if (!r->allow)
            why = ag_xasprintf("permission denied: rule %zu of the agent's spec (deny %s%s%s%s) "
                               "forbids this call of tool '%s'",
                               i + 1, r->tool, r->npatterns ? " '" : "",
                               r->npatterns ? r->patterns[0] : "",
                               r->npatterns ? (r->npatterns > 1 ? "', ..." : "'") : "", name);
        break;
    }
    free(subject);
    return why;
}
