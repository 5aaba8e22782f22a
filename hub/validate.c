/* hub/validate.c - limits on what clients may send, with messages that say what to change.
 * Everything here is checked before anything is queued or stored. All but hub_validate_spawn
 * are pure; it also asks the scheduler whether any node connected can run the spec. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/utf8.h"

#include "hub/hub_internal.h"
#include "hub/json_payload.h"
#include "hub/limits.h"
#include "hub/sched.h"
#include "hub/validate.h"

#define MAX_NAME 128
#define MAX_MODEL 128
#define MAX_PROMPT (256 * 1024)
#define MAX_TOOLS 64
#define MAX_TOOL_NAME 64
#define MAX_ITER 1000
#define MAX_LABELS 64
#define MAX_LABEL_KEY 63
#define MAX_LABEL_VALUE 256
#define HUB_MAX_INPUT_BYTES (1024 * 1024)
#define MAX_KILL_REASON 1024
#define MAX_REQUEST_ID 128
/* The model, tool and limit fields (types.proto: ModelSettings, Limits, PermissionRule). */
#define MAX_BASE_URL 2048
#define MAX_HEADERS 32
#define MAX_HEADER_NAME 128
#define MAX_HEADER_VALUE 4096
#define MAX_KEY_ENV 128
#define MAX_MODEL_TOKENS 1000000
#define MAX_TOOL_SETTINGS 64
#define MAX_TOOL_SETTINGS_BYTES 65536
#define MAX_TURN_TIMEOUT_MS 86400000 /* one day */
#define MAX_RULES 64
#define MAX_PATTERNS 32
#define MAX_PATTERN 1024
#define MAX_APPROVAL_TIMEOUT_MS (30ULL * 24 * 3600 * 1000) /* types.proto, Limits */
/* Teams (types.proto: AgentSpec.templates, Limits.max_depth and max_children). */
#define MAX_TEMPLATES 32
#define MAX_TEMPLATE_NAME 64
#define MAX_DEPTH 64
#define MAX_CHILDREN 100000

static size_t len0(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Every string the hub stores is served again to clients in other languages, which reject
 * invalid UTF-8 when they decode: refuse it at the door, naming the field. */
int hub_validate_utf8(const char *field, const char *s, struct ag_err *err)
{
    if (ag_utf8_valid_str(s))
        return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT, "%s is not valid UTF-8", field);
}

int hub_validate_namespace(const char *ns, struct ag_err *err)
{
    if (!ns || !*ns)
        return 0;
    size_t n = strlen(ns);
    bool ok = n <= HUB_NAMESPACE_MAX && ns[0] != '-' && ns[n - 1] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = (ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') || ns[i] == '-';
    if (ok)
        return 0;
    /* Quoted only when it is short and printable enough to help: the rule says the rest. */
    bool show = n <= HUB_NAMESPACE_MAX * 2 && ag_utf8_valid_str(ns);
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "namespace '%s' is not a valid name: use 1 to %d lowercase letters, digits "
                      "or '-', starting and ending with a letter or digit",
                      show ? ns : "(too long or not UTF-8)", HUB_NAMESPACE_MAX);
}

static int spec_utf8(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (hub_validate_utf8("spec.name", spec->name, err) != 0 ||
        hub_validate_utf8("spec.model", spec->model, err) != 0 ||
        hub_validate_utf8("spec.system_prompt", spec->system_prompt, err) != 0)
        return -1;
    for (size_t i = 0; i < spec->n_tools; i++)
        if (hub_validate_utf8("spec.tools", spec->tools[i], err) != 0)
            return -1;
    for (size_t i = 0; i < spec->n_labels; i++)
        if (hub_validate_utf8("spec.labels key", spec->labels[i]->key, err) != 0 ||
            hub_validate_utf8("spec.labels value", spec->labels[i]->value, err) != 0)
            return -1;
    for (size_t i = 0; i < spec->n_anti_affinity; i++)
        if (hub_validate_utf8("spec.anti_affinity", spec->anti_affinity[i], err) != 0)
            return -1;
    return hub_validate_utf8("spec.scheduler", spec->scheduler, err);
}

static int spec_labels(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    const char *keys[MAX_LABELS], *values[MAX_LABELS];
    for (size_t i = 0; i < spec->n_labels && i < MAX_LABELS; i++) {
        keys[i] = spec->labels[i]->key;
        values[i] = spec->labels[i]->value;
    }
    return hub_validate_labels("spec.labels", spec->n_labels, keys, values, err);
}

static int spec_node_selector(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    const char *keys[MAX_LABELS], *values[MAX_LABELS];
    for (size_t i = 0; i < spec->n_node_selector && i < MAX_LABELS; i++) {
        keys[i] = spec->node_selector[i]->key;
        values[i] = spec->node_selector[i]->value;
    }
    return hub_validate_labels("spec.node_selector", spec->n_node_selector, keys, values, err);
}

static bool has_label_key(const Agentry__V1__AgentSpec *spec, const char *key)
{
    for (size_t i = 0; i < spec->n_labels; i++)
        if (strcmp(spec->labels[i]->key, key) == 0)
            return true;
    return false;
}

/* Where and in which order its turns are placed: hub/sched.h. */
static int spec_placement(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (spec->scheduler && *spec->scheduler && !hub_sched_find(spec->scheduler)) {
        char names[128];
        hub_sched_names(names, sizeof(names));
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.scheduler '%.64s' is unknown; use one of: %s", spec->scheduler,
                          names);
    }
    const Agentry__V1__Resources *r = spec->resources;
    if (r && r->cpu_milli > HUB_SCHED_CPU_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.resources.cpu_milli is %u; the limit is %u (1000 cores)",
                          r->cpu_milli, HUB_SCHED_CPU_MAX);
    if (r && r->memory_bytes > HUB_SCHED_MEMORY_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.resources.memory_bytes is %" PRIu64 "; the limit is %" PRIu64
                          " (16 TiB)",
                          r->memory_bytes, HUB_SCHED_MEMORY_MAX);
    if (spec->priority < HUB_SCHED_PRIORITY_MIN || spec->priority > HUB_SCHED_PRIORITY_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "spec.priority is %d; it must be in %d..%d",
                          spec->priority, HUB_SCHED_PRIORITY_MIN, HUB_SCHED_PRIORITY_MAX);
    if (spec->n_anti_affinity > HUB_SCHED_ANTI_AFFINITY_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.anti_affinity has %zu entries; the limit is %d",
                          spec->n_anti_affinity, HUB_SCHED_ANTI_AFFINITY_MAX);
    for (size_t i = 0; i < spec->n_anti_affinity; i++)
        if (!has_label_key(spec, spec->anti_affinity[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.anti_affinity names '%.64s', which is not a key of "
                              "spec.labels; give the agent that label (--label %.64s=VALUE)",
                              spec->anti_affinity[i], spec->anti_affinity[i]);
    return spec_node_selector(spec, err);
}

/* An HTTP header name is a token (RFC 9110, 5.6.2): no spaces, colons or control characters, so
 * that it cannot end the header early or start another. */
static bool header_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= MAX_HEADER_NAME && hub_validate_name_chars_ok(s, "!#$%&'*+-.^_`|~");
}

static int model_headers(const Agentry__V1__ModelSettings *ms, struct ag_err *err)
{
    if (ms->n_headers > MAX_HEADERS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.model_settings.headers has %zu entries; the limit is %d",
                          ms->n_headers, MAX_HEADERS);
    for (size_t i = 0; i < ms->n_headers; i++) {
        const char *k = ms->headers[i]->key, *v = ms->headers[i]->value;
        if (!k || !header_name_ok(k))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.model_settings.headers name '%.64s' must be 1..%d token "
                              "characters (letters, digits and !#$%%&'*+-.^_`|~)",
                              k && ag_utf8_valid_str(k) ? k : "", MAX_HEADER_NAME);
        if (hub_validate_utf8("spec.model_settings.headers value", v, err) != 0)
            return -1;
        if (len0(v) > MAX_HEADER_VALUE || (v && strpbrk(v, "\r\n")))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.model_settings.headers '%s' value must be at most %d bytes "
                              "without CR or LF",
                              k, MAX_HEADER_VALUE);
    }
    return 0;
}

static int model_settings(const Agentry__V1__ModelSettings *ms, struct ag_err *err)
{
    if (!ms)
        return 0;
    const char *url = ms->base_url ? ms->base_url : "";
    if (hub_validate_utf8("spec.model_settings.base_url", url, err) != 0)
        return -1;
    if (*url && (strlen(url) > MAX_BASE_URL ||
                 (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) ||
                 strpbrk(url, " \t\r\n")))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.model_settings.base_url must be an http:// or https:// URL of at "
                          "most %d bytes without spaces, like https://api.openai.com/v1",
                          MAX_BASE_URL);
    if (ms->temperature_set && !(ms->temperature >= 0 && ms->temperature <= 2))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.model_settings.temperature is %g; it must be in 0..2",
                          ms->temperature);
    if (ms->max_tokens > MAX_MODEL_TOKENS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.model_settings.max_tokens is %u; the limit is %d (0: the "
                          "provider's default)",
                          ms->max_tokens, MAX_MODEL_TOKENS);
    const char *env = ms->api_key_env ? ms->api_key_env : "";
    if (strlen(env) > MAX_KEY_ENV || !hub_validate_name_chars_ok(env, "_"))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.model_settings.api_key_env must be at most %d characters of "
                          "[A-Za-z0-9_] (the name of the node's variable, never the key)",
                          MAX_KEY_ENV);
    return model_headers(ms, err);
}

static bool has_tool(const Agentry__V1__AgentSpec *spec, const char *name)
{
    for (size_t i = 0; i < spec->n_tools; i++)
        if (strcmp(spec->tools[i], name) == 0)
            return true;
    return false;
}

static int tool_settings(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (spec->n_tool_settings > MAX_TOOL_SETTINGS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.tool_settings has %zu entries; the limit is %d",
                          spec->n_tool_settings, MAX_TOOL_SETTINGS);
    for (size_t i = 0; i < spec->n_tool_settings; i++) {
        const char *k = spec->tool_settings[i]->key ? spec->tool_settings[i]->key : "";
        const char *v = spec->tool_settings[i]->value ? spec->tool_settings[i]->value : "";
        if (hub_validate_utf8("spec.tool_settings key", k, err) != 0 ||
            hub_validate_utf8("spec.tool_settings value", v, err) != 0)
            return -1;
        if (!has_tool(spec, k))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.tool_settings names '%.64s', which is not in spec.tools; "
                              "list the tool too",
                              k);
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->tool_settings[j]->key, k) == 0)
                return ag_err_set(err, AG_INVALID_ARGUMENT, "spec.tool_settings has '%.64s' twice",
                                  k);
        if (strlen(v) > MAX_TOOL_SETTINGS_BYTES)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.tool_settings['%.64s'] is %zu bytes; the limit is %d", k,
                              strlen(v), MAX_TOOL_SETTINGS_BYTES);
        cJSON *o = cJSON_Parse(v);
        bool obj = cJSON_IsObject(o);
        cJSON_Delete(o);
        if (!obj)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.tool_settings['%.64s'] must be a JSON object, like "
                              "{\"allow_hosts\": [\"api.example.com\"]}",
                              k);
    }
    return 0;
}

static int limits(const Agentry__V1__Limits *l, struct ag_err *err)
{
    if (!l)
        return 0;
    if (!(l->max_cost_usd >= 0) || isinf(l->max_cost_usd))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.limits.max_cost_usd is %g; it must be 0 (no budget) or more",
                          l->max_cost_usd);
    if (l->turn_timeout_ms > MAX_TURN_TIMEOUT_MS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.limits.turn_timeout_ms is %" PRIu64 "; the limit is %d (one day)",
                          l->turn_timeout_ms, MAX_TURN_TIMEOUT_MS);
    if (l->max_depth > MAX_DEPTH)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.limits.max_depth is %u; the limit is %d (0 means 8)", l->max_depth,
                          MAX_DEPTH);
    if (l->max_children > MAX_CHILDREN)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.limits.max_children is %u; the limit is %d (0 means 1000)",
                          l->max_children, MAX_CHILDREN);
    if (l->approval_timeout_ms > MAX_APPROVAL_TIMEOUT_MS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.limits.approval_timeout_ms is %" PRIu64
                          "; the limit is %llu (30 days; 0 means the hub's --approval-timeout)",
                          l->approval_timeout_ms, MAX_APPROVAL_TIMEOUT_MS);
    return 0;
}

/* The specs a sub-agent may be spawned from: each one a spec as Spawn takes it (its own
 * templates are ignored, so they are not checked). */
static int templates(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (spec->n_templates > MAX_TEMPLATES)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.templates has %zu entries; the limit is %d", spec->n_templates,
                          MAX_TEMPLATES);
    for (size_t i = 0; i < spec->n_templates; i++) {
        const Agentry__V1__AgentSpec__TemplatesEntry *t = spec->templates[i];
        const char *k = t->key ? t->key : "";
        if (!*k || strlen(k) > MAX_TEMPLATE_NAME || !hub_validate_name_chars_ok(k, "_-"))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.templates: the name '%.64s' must be 1..%d bytes of "
                              "[A-Za-z0-9_-]",
                              ag_utf8_valid_str(k) ? k : "?", MAX_TEMPLATE_NAME);
        if (!t->value)
            continue;
        Agentry__V1__AgentSpec one = *t->value;
        one.n_templates = 0;
        one.templates = NULL;
        if (hub_validate_spec(&one, err) != 0) {
            ag_err_prefix(err, "spec.templates['%s']", k);
            return -1;
        }
    }
    return 0;
}

static int permission_rule(const Agentry__V1__PermissionRule *r, size_t i, struct ag_err *err)
{
    const char *tool = r->tool ? r->tool : "", *d = r->decision ? r->decision : "";
    if (!*tool || strlen(tool) > MAX_TOOL_NAME || !ag_utf8_valid_str(tool))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.permissions[%zu].tool must be a tool name of 1..%d bytes, or \"*\"",
                          i, MAX_TOOL_NAME);
    if (strcmp(d, "allow") != 0 && strcmp(d, "ask") != 0 && strcmp(d, "deny") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.permissions[%zu].decision is '%.16s'; use allow, ask or deny", i,
                          ag_utf8_valid_str(d) ? d : "");
    if (r->n_patterns > MAX_PATTERNS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.permissions[%zu].patterns has %zu entries; the limit is %d", i,
                          r->n_patterns, MAX_PATTERNS);
    for (size_t j = 0; j < r->n_patterns; j++) {
        if (hub_validate_utf8("spec.permissions patterns", r->patterns[j], err) != 0)
            return -1;
        size_t n = len0(r->patterns[j]);
        if (n == 0 || n > MAX_PATTERN)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "spec.permissions[%zu].patterns[%zu] must be 1..%d bytes", i, j,
                              MAX_PATTERN);
    }
    return 0;
}

/* How the model is called, what the tools may do, and what the agent may spend. */
static int spec_model_tools(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (model_settings(spec->model_settings, err) != 0 || tool_settings(spec, err) != 0 ||
        limits(spec->limits, err) != 0)
        return -1;
    if (spec->n_permissions > MAX_RULES)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.permissions has %zu rules; the limit is %d", spec->n_permissions,
                          MAX_RULES);
    for (size_t i = 0; i < spec->n_permissions; i++)
        if (permission_rule(spec->permissions[i], i, err) != 0)
            return -1;
    return 0;
}

/* --- MCP servers and OpenAPI sources (types.proto: McpServer, OpenApiSource) ---------------- */

#define MAX_EXT_SOURCES 16
#define MAX_EXT_NAME 32
#define MAX_MCP_ARGV 64
#define MAX_MCP_ARG 4096
#define MAX_MCP_ENV 64
#define MAX_EXT_FILTER 256
#define MAX_MCP_TIMEOUT_MS 3600000
#define MAX_OPENAPI_DOC (1024 * 1024)

static bool ext_name_ok(const char *s)
{
    size_t n = len0(s);
    if (n == 0 || n > MAX_EXT_NAME)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

static bool http_url_ok(const char *url)
{
    return len0(url) <= MAX_BASE_URL &&
           (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) &&
           !strpbrk(url, " \t\r\n") && ag_utf8_valid_str(url);
}

/* field: "spec.mcp_servers[0].headers". keys and values: n of each. */
static int ext_headers(const char *field, size_t n, const char *const *keys,
                       const char *const *values, struct ag_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i], *v = values[i];
        if (!k || !header_name_ok(k))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s name '%.64s' must be 1..%d token characters (letters, digits "
                              "and !#$%%&'*+-.^_`|~)",
                              field, k && ag_utf8_valid_str(k) ? k : "", MAX_HEADER_NAME);
        if (!ag_utf8_valid_str(v) || len0(v) > MAX_HEADER_VALUE || (v && strpbrk(v, "\r\n")))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s '%s' value must be UTF-8, at most %d bytes, without CR or LF",
                              field, k, MAX_HEADER_VALUE);
    }
    return 0;
}

/* A list of names (McpServer.tools, OpenApiSource.operations). */
static int ext_filter(const char *field, size_t n, char *const *v, struct ag_err *err)
{
    if (n > MAX_EXT_FILTER)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s has %zu entries; the limit is %d", field, n,
                          MAX_EXT_FILTER);
    for (size_t i = 0; i < n; i++)
        if (!v[i] || !*v[i] || strlen(v[i]) > MAX_TOOL_NAME * 4 || !ag_utf8_valid_str(v[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s[%zu] must be a name of 1..%d bytes of UTF-8", field, i,
                              MAX_TOOL_NAME * 4);
    return 0;
}

static bool env_name_ok(const char *s)
{
    if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    return strlen(s) <= MAX_KEY_ENV && hub_validate_name_chars_ok(s, "_");
}

static int mcp_stdio(const Agentry__V1__McpServer *m, const char *f, struct ag_err *err)
{
    if (m->n_command > MAX_MCP_ARGV)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s.command has %zu entries; the limit is %d",
                          f, m->n_command, MAX_MCP_ARGV);
    for (size_t i = 0; i < m->n_command; i++)
        if (len0(m->command[i]) > MAX_MCP_ARG || !ag_utf8_valid_str(m->command[i]) ||
            (i == 0 && !*m->command[0]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s.command[%zu] must be UTF-8 of %s..%d bytes", f, i,
                              i == 0 ? "1" : "0", MAX_MCP_ARG);
    if (m->n_env > MAX_MCP_ENV)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s.env has %zu entries; the limit is %d", f,
                          m->n_env, MAX_MCP_ENV);
    for (size_t i = 0; i < m->n_env; i++) {
        const char *k = m->env[i]->key, *v = m->env[i]->value;
        if (!env_name_ok(k))
            return ag_err_set(
                err, AG_INVALID_ARGUMENT,
                "%s.env name '%.64s' must be a variable name ([A-Za-z_][A-Za-z0-9_]*, "
                "at most %d)",
                f, k && ag_utf8_valid_str(k) ? k : "", MAX_KEY_ENV);
        if (!ag_utf8_valid_str(v) || len0(v) > MAX_MCP_ARG)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s.env '%s' value must be UTF-8 of at most %d bytes", f, k,
                              MAX_MCP_ARG);
    }
    return 0;
}

static int mcp_server(const Agentry__V1__McpServer *m, const char *f, struct ag_err *err)
{
    bool stdio = m->n_command > 0, http = len0(m->url) > 0;
    if (stdio == http)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s must have exactly one of command (a stdio server) and url (a "
                          "streamable HTTP one)",
                          f);
    if (stdio && (m->n_headers > 0))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.headers is for a url server; a command server takes env", f);
    if (http && m->n_env > 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.env is for a command server; a url server takes headers", f);
    if (stdio && mcp_stdio(m, f, err) != 0)
        return -1;
    if (len0(m->settings) > 0) {
        cJSON *o = stdio && len0(m->settings) <= MAX_TOOL_SETTINGS_BYTES ? cJSON_Parse(m->settings)
                                                                         : NULL;
        bool obj = cJSON_IsObject(o);
        cJSON_Delete(o);
        if (!obj)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s.settings must be a JSON object of at most %d bytes, for a "
                              "command server only (docs/mcp.md)",
                              f, MAX_TOOL_SETTINGS_BYTES);
    }
    if (http && !http_url_ok(m->url))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.url must be an http:// or https:// URL of at most %d bytes without "
                          "spaces",
                          f, MAX_BASE_URL);
    if (m->n_headers > MAX_HEADERS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s.headers has %zu entries; the limit is %d",
                          f, m->n_headers, MAX_HEADERS);
    const char *keys[MAX_HEADERS], *values[MAX_HEADERS];
    for (size_t i = 0; i < m->n_headers; i++) {
        keys[i] = m->headers[i]->key;
        values[i] = m->headers[i]->value;
    }
    char hf[80];
    snprintf(hf, sizeof(hf), "%s.headers", f);
    char tf[80];
    snprintf(tf, sizeof(tf), "%s.tools", f);
    if (ext_headers(hf, m->n_headers, keys, values, err) != 0 ||
        ext_filter(tf, m->n_tools, m->tools, err) != 0)
        return -1;
    if (m->timeout_ms > MAX_MCP_TIMEOUT_MS)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.timeout_ms is %u; the limit is %d (one hour; 0: 60000)", f,
                          m->timeout_ms, MAX_MCP_TIMEOUT_MS);
    return 0;
}

static int openapi_source(const Agentry__V1__OpenApiSource *o, const char *f, struct ag_err *err)
{
    bool url = len0(o->url) > 0, doc = len0(o->document) > 0;
    if (url == doc)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s must have exactly one of url (where the node fetches the document) "
                          "and document (its text)",
                          f);
    if (url && !http_url_ok(o->url))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.url must be an http:// or https:// URL of at most %d bytes without "
                          "spaces",
                          f, MAX_BASE_URL);
    if (doc && (len0(o->document) > MAX_OPENAPI_DOC || !ag_utf8_valid_str(o->document)))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.document must be UTF-8 text (JSON or YAML) of at most %d bytes; "
                          "serve a larger one and give its url",
                          f, MAX_OPENAPI_DOC);
    if (len0(o->base_url) > 0 && !http_url_ok(o->base_url))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s.base_url must be an http:// or https:// URL of at most %d bytes "
                          "without spaces",
                          f, MAX_BASE_URL);
    if (o->n_headers > MAX_HEADERS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s.headers has %zu entries; the limit is %d",
                          f, o->n_headers, MAX_HEADERS);
    const char *keys[MAX_HEADERS], *values[MAX_HEADERS];
    for (size_t i = 0; i < o->n_headers; i++) {
        keys[i] = o->headers[i]->key;
        values[i] = o->headers[i]->value;
    }
    char hf[80];
    snprintf(hf, sizeof(hf), "%s.headers", f);
    char of[80];
    snprintf(of, sizeof(of), "%s.operations", f);
    if (ext_headers(hf, o->n_headers, keys, values, err) != 0)
        return -1;
    return ext_filter(of, o->n_operations, o->operations, err);
}

/* The names of one list: each valid and unique. */
static int ext_names(const char *field, size_t n, const char *(*name_of)(const void *, size_t),
                     const void *list, struct ag_err *err)
{
    if (n > MAX_EXT_SOURCES)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s has %zu entries; the limit is %d", field, n,
                          MAX_EXT_SOURCES);
    for (size_t i = 0; i < n; i++) {
        const char *name = name_of(list, i);
        if (!ext_name_ok(name))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s[%zu].name '%.40s' must be 1..%d characters of [a-z0-9_-]", field,
                              i, name && ag_utf8_valid_str(name) ? name : "", MAX_EXT_NAME);
        for (size_t j = 0; j < i; j++)
            if (strcmp(name_of(list, j), name) == 0)
                return ag_err_set(err, AG_INVALID_ARGUMENT,
                                  "%s[%zu].name '%s' is also the name of entry %zu; names are "
                                  "unique",
                                  field, i, name, j);
    }
    return 0;
}

static const char *mcp_name_of(const void *list, size_t i)
{
    return ((Agentry__V1__McpServer *const *)list)[i]->name;
}

static const char *openapi_name_of(const void *list, size_t i)
{
    return ((Agentry__V1__OpenApiSource *const *)list)[i]->name;
}

static int spec_ext_tools(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (ext_names("spec.mcp_servers", spec->n_mcp_servers, mcp_name_of, spec->mcp_servers, err) !=
            0 ||
        ext_names("spec.openapi", spec->n_openapi, openapi_name_of, spec->openapi, err) != 0)
        return -1;
    char f[64];
    for (size_t i = 0; i < spec->n_mcp_servers; i++) {
        snprintf(f, sizeof(f), "spec.mcp_servers[%zu]", i);
        if (mcp_server(spec->mcp_servers[i], f, err) != 0)
            return -1;
    }
    for (size_t i = 0; i < spec->n_openapi; i++) {
        snprintf(f, sizeof(f), "spec.openapi[%zu]", i);
        if (openapi_source(spec->openapi[i], f, err) != 0)
            return -1;
    }
    return 0;
}

int hub_validate_spec(const Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (!spec)
        return 0; /* an empty spec means every default */
    if (spec_utf8(spec, err) != 0)
        return -1;
    if (len0(spec->name) > MAX_NAME)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "spec.name is %zu bytes; the limit is %d",
                          len0(spec->name), MAX_NAME);
    if (len0(spec->model) > MAX_MODEL)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "spec.model is %zu bytes; the limit is %d",
                          len0(spec->model), MAX_MODEL);
    if (len0(spec->system_prompt) > MAX_PROMPT)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.system_prompt is %zu bytes; the limit is %d",
                          len0(spec->system_prompt), MAX_PROMPT);
    if (spec->n_tools > MAX_TOOLS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "spec.tools has %zu entries; the limit is %d",
                          spec->n_tools, MAX_TOOLS);
    for (size_t i = 0; i < spec->n_tools; i++)
        if (!spec->tools[i][0] || strlen(spec->tools[i]) > MAX_TOOL_NAME)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "spec.tools[%zu] must be 1..%d bytes", i,
                              MAX_TOOL_NAME);
    if (spec->max_iterations > MAX_ITER)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "spec.max_iterations is %u; the limit is %d (0 means the node's default)",
                          spec->max_iterations, MAX_ITER);
    if (spec_labels(spec, err) != 0 || spec_model_tools(spec, err) != 0 ||
        templates(spec, err) != 0 || spec_ext_tools(spec, err) != 0)
        return -1;
    return spec_placement(spec, err);
}

bool hub_validate_name_chars_ok(const char *s, const char *punct)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(punct, *s)))
            return false;
    return true;
}

/* Keys are what a label selector can name (ListAgents, hub.proto): no '=', '!', ',' or spaces. */
static bool label_key_ok(const char *k)
{
    return hub_validate_name_chars_ok(k, "._/-");
}

int hub_validate_labels(const char *what, size_t n, const char *const *keys,
                        const char *const *values, struct ag_err *err)
{
    if (n > MAX_LABELS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s has %zu entries; the limit is %d", what, n,
                          MAX_LABELS);
    for (size_t i = 0; i < n; i++) {
        size_t k = len0(keys[i]);
        if (k == 0 || k > MAX_LABEL_KEY || !label_key_ok(keys[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "%s key '%.64s' must be 1..%d characters of [A-Za-z0-9._/-]", what,
                              keys[i] ? keys[i] : "", MAX_LABEL_KEY);
        if (len0(values[i]) > MAX_LABEL_VALUE)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "%s '%s' value is over %d bytes", what,
                              keys[i], MAX_LABEL_VALUE);
        if (hub_validate_utf8(what, values[i], err) != 0)
            return -1;
    }
    return 0;
}

int hub_validate_kill_reason(const char *reason, struct ag_err *err)
{
    if (hub_validate_utf8("reason", reason, err) != 0)
        return -1;
    if (len0(reason) > MAX_KILL_REASON)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "reason is %zu bytes; the limit is %d",
                          len0(reason), MAX_KILL_REASON);
    return 0;
}

#define MAX_CALL_ID 256
#define MAX_EDITED_ARGS (1024 * 1024)

int hub_validate_decision(const char *call_id, const char *arguments, const char *reason,
                          struct ag_err *err)
{
    if (len0(call_id) == 0 || len0(call_id) > MAX_CALL_ID)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "call_id must be 1..%d bytes: the tool call's id that ListApprovals "
                          "shows",
                          MAX_CALL_ID);
    if (hub_validate_utf8("call_id", call_id, err) != 0 ||
        hub_validate_kill_reason(reason, err) != 0 ||
        hub_validate_utf8("arguments", arguments, err) != 0)
        return -1;
    if (len0(arguments) == 0)
        return 0;
    if (len0(arguments) > MAX_EDITED_ARGS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "arguments is %zu bytes; the limit is %d",
                          len0(arguments), MAX_EDITED_ARGS);
    cJSON *o = cJSON_Parse(arguments);
    bool obj = cJSON_IsObject(o);
    cJSON_Delete(o);
    if (!obj)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "arguments must be a JSON object (the tool's arguments), for example "
                          "{\"command\": \"ls\"}");
    return 0;
}

int hub_validate_resume_iterations(uint32_t max_iterations, struct ag_err *err)
{
    if (max_iterations > MAX_ITER)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "max_iterations is %u; the limit is %d (0 means the spec's)",
                          max_iterations, MAX_ITER);
    return 0;
}

int hub_validate_input_payload(const char *text, struct ag_err *err)
{
    size_t n = hub_json_text_payload_len(text ? text : "");
    if (n <= HUB_MAX_PAYLOAD)
        return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "input is %zu bytes as a JSON event payload (control characters take 6 "
                      "bytes each); the limit is %u",
                      n, HUB_MAX_PAYLOAD);
}

int hub_validate_input(const char *input, bool required, struct ag_err *err)
{
    size_t n = len0(input);
    if (hub_validate_utf8("input", input, err) != 0)
        return -1;
    if (required && n == 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "input is empty; send some text");
    if (n > HUB_MAX_INPUT_BYTES)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "input is %zu bytes; the limit is %d", n,
                          HUB_MAX_INPUT_BYTES);
    return 0;
}

int hub_validate_agent_id(const char *id, struct ag_err *err)
{
    if (!id || !*id)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "agent_id is empty");
    if (!ag_id_valid(id))
        return ag_err_set(err, AG_NOT_FOUND, "no agent with id '%.64s'", id);
    return 0;
}

/* Spawn's check that some node can run the spec: INVALID_ARGUMENT if the nodes connected do not
 * offer its model or tools, unless nodes may still be joining (hub_opts.join_grace_ms). */
static int check_placeable(struct hub *h, const struct hub_sched_req *req, struct ag_err *err)
{
    struct ag_err e = AG_ERR_INIT;
    if (hub_sched_check(h->sched, req, &e) >= 0)
        return 0; /* some node can run it, or none is connected yet: it waits */
    /* Right after a start, nodes are still reconnecting: the one that offers it may be next. */
    if (!h->started_ms || ag_now_mono_ms() - h->started_ms < h->opts.join_grace_ms)
        return 0;
    *err = e;
    return -1;
}

static const Agentry__V1__AgentSpec empty_spec = AGENTRY__V1__AGENT_SPEC__INIT;

int hub_validate_spawn(struct hub *h, const Agentry__V1__AgentSpec *spec, const char *input,
                       bool input_required, const char *ns, const char *request_id,
                       struct ag_err *err)
{
    if (hub_validate_namespace(ns, err) != 0 || hub_validate_spec(spec, err) != 0 ||
        hub_validate_input(input, input_required, err) != 0)
        return -1;
    if (input && *input && hub_validate_input_payload(input, err) != 0)
        return -1;
    if (request_id && strlen(request_id) > MAX_REQUEST_ID)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "request_id is over %d bytes", MAX_REQUEST_ID);
    if (hub_validate_utf8("request_id", request_id, err) != 0)
        return -1;
    if (!spec)
        spec = &empty_spec;
    struct hub_sched_req req;
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    hub_sched_req_from_spec(&req, NULL, NULL, spec, &ar);
    int rc = check_placeable(h, &req, err);
    ag_arena_release(&ar);
    return rc;
}
