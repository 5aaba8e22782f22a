/* cmd/agentry/spec.c - agent spec files (see spec.h; the format is docs/agent-spec.md).
 *
 * libyaml's document API loads the file as one tree (a spec is small), which is then walked with
 * a table of keys per mapping: a key is one row naming its handler. Before loading, one pass over
 * the event stream refuses anchors, aliases and extra documents, which the document API would
 * silently resolve or drop. Strings are copied into the caller's arena, so the tree is freed
 * before returning. */
#include "cmd/agentry/spec.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/flags.h"
#include "common/xalloc.h"
#include "hub/validate.h"

#define SPEC_FILE_MAX (4u << 20) /* a spec's prompt is at most 256 KiB; this is plenty */

struct parse {
    const char *file;
    yaml_document_t doc;
    struct ag_arena *arena;
    struct ag_err *err;
    Agentry__V1__AgentSpec *spec;
    const char *provider, *model_id;   /* model's mapping form, joined at the end */
    Agentry__V1__PermissionRule *rule; /* the rule being read */
    Agentry__V1__McpServer *mcp;       /* the mcp_servers item being read */
    Agentry__V1__OpenApiSource *api;   /* the openapi item being read */
    const char *tool_name;             /* the tools item being read */
    yaml_node_t *tool_settings;
};

static size_t line_of(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 1;
}

static int fail(struct parse *p, const yaml_node_t *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parse *p, const yaml_node_t *at, const char *key, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ag_err_set(p->err, AG_INVALID_ARGUMENT, "%s:%zu: %s%s%s", p->file, line_of(at),
                      key ? key : "", key && *key ? ": " : "", msg);
}

static yaml_node_t *node(struct parse *p, int i)
{
    return yaml_document_get_node(&p->doc, i);
}

static const char *text(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* "key:" with nothing after it, "~" or "null": the field is left unset. */
static bool is_null(const yaml_node_t *n)
{
    const char *s = text(n);
    return s && plain(n) &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"));
}

/* How a wrong value reads in a message: "a list", "a mapping" or "'hot'". */
static const char *shown(struct parse *p, const yaml_node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    const char *t = text(n) ? text(n) : "";
    return ag_arena_printf(p->arena, "'%.40s%s'", t, strlen(t) > 40 ? "..." : "");
}

static const char *sub(struct parse *p, const char *key, const char *child)
{
    return ag_arena_printf(p->arena, "%s%s%s", key, *key ? "." : "", child);
}

/* --- scalars --------------------------------------------------------------------------------- */

static int get_str(struct parse *p, yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(p, n, key, "expected a string, got %s", shown(p, n));
    *out = ag_arena_strdup(p->arena, is_null(n) ? "" : text(n));
    return 0;
}

static int get_int(struct parse *p, yaml_node_t *n, const char *key, long long min, long long max,
                   long long *out)
{
    const char *s = text(n);
    char *end;
    errno = 0;
    long long v = s && *s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno)
        return fail(p, n, key, "expected an integer, got %s", shown(p, n));
    if (v < min || v > max)
        return fail(p, n, key, "%lld is out of range (%lld..%lld)", v, min, max);
    *out = v;
    return 0;
}

static int get_num(struct parse *p, yaml_node_t *n, const char *key, double min, double max,
                   double *out)
{
    const char *s = text(n);
    char *end;
    double v = s && *s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || !isfinite(v))
        return fail(p, n, key, "expected a number, got %s", shown(p, n));
    if (v < min || v > max)
        return fail(p, n, key, "%g is out of range (%g..%g)", v, min, max);
    *out = v;
    return 0;
}

static int get_bool(struct parse *p, yaml_node_t *n, const char *key, protobuf_c_boolean *out)
{
    const char *s = text(n);
    if (s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")))
        *out = 1;
    else if (s && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")))
        *out = 0;
    else
        return fail(p, n, key, "expected true or false, got %s", shown(p, n));
    return 0;
}

/* --- mappings as tables ---------------------------------------------------------------------- */

typedef int field_fn(struct parse *p, yaml_node_t *v, const char *key);
struct field {
    const char *name;
    field_fn *fn;
};

static void keys_list(const struct field *fields, char *buf, size_t cap)
{
    size_t off = 0;
    for (const struct field *f = fields; f->name && off < cap; f++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", f == fields ? "" : ", ", f->name);
}

/* The mapping's key nodes must be strings, each once. */
static int check_keys(struct parse *p, yaml_node_t *m, const char *key)
{
    yaml_node_pair_t *b = m->data.mapping.pairs.start, *e = m->data.mapping.pairs.top;
    for (yaml_node_pair_t *i = b; i < e; i++) {
        yaml_node_t *kn = node(p, i->key);
        if (!text(kn))
            return fail(p, kn, key, "a key must be a string, not %s", shown(p, kn));
        for (yaml_node_pair_t *j = b; j < i; j++)
            if (strcmp(text(node(p, j->key)), text(kn)) == 0)
                return fail(p, kn, sub(p, key, text(kn)), "duplicate key (first at line %zu)",
                            line_of(node(p, j->key)));
    }
    return 0;
}

static int walk(struct parse *p, yaml_node_t *m, const char *key, const struct field *fields)
{
    if (m->type != YAML_MAPPING_NODE)
        return fail(p, m, key, "expected a mapping, got %s", shown(p, m));
    if (check_keys(p, m, key) < 0)
        return -1;
    for (yaml_node_pair_t *i = m->data.mapping.pairs.start; i < m->data.mapping.pairs.top; i++) {
        yaml_node_t *kn = node(p, i->key), *v = node(p, i->value);
        const struct field *f = fields;
        while (f->name && strcmp(f->name, text(kn)) != 0)
            f++;
        if (!f->name) {
            char names[256];
            keys_list(fields, names, sizeof(names));
            return fail(p, kn, key, "unknown key '%.40s' (expected %s)", text(kn), names);
        }
        if (!is_null(v) && f->fn(p, v, sub(p, key, f->name)) < 0)
            return -1;
    }
    return 0;
}

/* A mapping of strings to strings (labels, node_selector, headers); a scalar value is taken as
 * written, so "gpu: true" is the label value "true". */
static int get_str_map(struct parse *p, yaml_node_t *m, const char *key, size_t *n, char ***keys,
                       char ***values)
{
    if (m->type != YAML_MAPPING_NODE)
        return fail(p, m, key, "expected a mapping of names to values, got %s", shown(p, m));
    if (check_keys(p, m, key) < 0)
        return -1;
    size_t cnt = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    *keys = ag_arena_alloc(p->arena, (cnt ? cnt : 1) * sizeof(char *));
    *values = ag_arena_alloc(p->arena, (cnt ? cnt : 1) * sizeof(char *));
    *n = 0;
    for (yaml_node_pair_t *i = m->data.mapping.pairs.start; i < m->data.mapping.pairs.top; i++) {
        const char *k = text(node(p, i->key));
        if (get_str(p, node(p, i->value), sub(p, key, k), &(*values)[*n]) < 0)
            return -1;
        (*keys)[(*n)++] = ag_arena_strdup(p->arena, k);
    }
    return 0;
}

static yaml_node_t *items_of(struct parse *p, yaml_node_t *s, size_t i)
{
    return node(p, s->data.sequence.items.start[i]);
}

static size_t nitems(const yaml_node_t *s)
{
    return (size_t)(s->data.sequence.items.top - s->data.sequence.items.start);
}

static int need_list(struct parse *p, yaml_node_t *n, const char *key, const char *of)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return 0;
    return fail(p, n, key, "expected a list of %s, got %s", of, shown(p, n));
}

static int get_str_list(struct parse *p, yaml_node_t *s, const char *key, size_t *n, char ***out)
{
    if (need_list(p, s, key, "strings") < 0)
        return -1;
    *n = nitems(s);
    *out = ag_arena_alloc(p->arena, (*n ? *n : 1) * sizeof(char *));
    for (size_t i = 0; i < *n; i++)
        if (get_str(p, items_of(p, s, i), ag_arena_printf(p->arena, "%s[%zu]", key, i),
                    &(*out)[i]) < 0)
            return -1;
    return 0;
}

/* --- model ----------------------------------------------------------------------------------- */

static Agentry__V1__ModelSettings *settings(struct parse *p)
{
    if (!p->spec->model_settings) {
        p->spec->model_settings = ag_arena_alloc(p->arena, sizeof(*p->spec->model_settings));
        agentry__v1__model_settings__init(p->spec->model_settings);
    }
    return p->spec->model_settings;
}

static int m_provider(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, (char **)&p->provider);
}

static int m_id(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, (char **)&p->model_id);
}

static int m_base_url(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &settings(p)->base_url);
}

static int m_stream(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_bool(p, v, key, &settings(p)->stream);
}

static int m_temperature(struct parse *p, yaml_node_t *v, const char *key)
{
    settings(p)->temperature_set = 1;
    return get_num(p, v, key, 0, 2, &settings(p)->temperature);
}

static int m_max_tokens(struct parse *p, yaml_node_t *v, const char *key)
{
    long long n = 0;
    if (get_int(p, v, key, 0, 1000000, &n) < 0)
        return -1;
    settings(p)->max_tokens = (uint32_t)n;
    return 0;
}

static int m_headers(struct parse *p, yaml_node_t *v, const char *key)
{
    size_t n;
    char **keys, **values;
    if (get_str_map(p, v, key, &n, &keys, &values) < 0)
        return -1;
    Agentry__V1__ModelSettings *ms = settings(p);
    ms->n_headers = n;
    ms->headers = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(*ms->headers));
    for (size_t i = 0; i < n; i++) {
        ms->headers[i] = ag_arena_alloc(p->arena, sizeof(*ms->headers[i]));
        agentry__v1__model_settings__headers_entry__init(ms->headers[i]);
        ms->headers[i]->key = keys[i];
        ms->headers[i]->value = values[i];
    }
    return 0;
}

static int m_api_key_env(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &settings(p)->api_key_env);
}

/* Listed so that the mistake gets its own answer rather than "unknown key". */
static int m_api_key(struct parse *p, yaml_node_t *v, const char *key)
{
    return fail(p, v, key,
                "a key never goes in a spec; give it to the node (environment or file) and name "
                "its variable with model.api_key_env");
}

static const struct field model_fields[] = {
    {"provider", m_provider},       {"id", m_id},
    {"base_url", m_base_url},       {"stream", m_stream},
    {"temperature", m_temperature}, {"max_tokens", m_max_tokens},
    {"headers", m_headers},         {"api_key_env", m_api_key_env},
    {"api_key", m_api_key},         {NULL, NULL},
};

/* "openai/gpt-4o-mini", or the mapping {provider, id, ...}. */
static int f_model(struct parse *p, yaml_node_t *v, const char *key)
{
    if (v->type == YAML_SCALAR_NODE)
        return get_str(p, v, key, &p->spec->model);
    if (walk(p, v, key, model_fields) < 0)
        return -1;
    if (!p->provider || !*p->provider)
        return fail(p, v, key, "provider is required (openai, anthropic or mock)");
    p->spec->model = p->model_id && *p->model_id
                         ? ag_arena_printf(p->arena, "%s/%s", p->provider, p->model_id)
                         : ag_arena_strdup(p->arena, p->provider);
    return 0;
}

/* --- tools ----------------------------------------------------------------------------------- */

/* A plain scalar as YAML 1.2's core schema reads it (null, booleans, numbers), else a string. */
static cJSON *scalar_json(const yaml_node_t *n)
{
    const char *s = text(n);
    if (!plain(n))
        return cJSON_CreateString(s);
    if (is_null(n))
        return cJSON_CreateNull();
    if (!strcmp(s, "true") || !strcmp(s, "false"))
        return cJSON_CreateBool(s[0] == 't');
    char *end;
    double d = strtod(s, &end);
    if (strchr("+-.0123456789", s[0]) && !*end && !strpbrk(s, "xXnN") && isfinite(d))
        return cJSON_CreateNumber(d);
    return cJSON_CreateString(s);
}

/* The YAML value as JSON; NULL with p->err set on a duplicate key. */
static cJSON *to_json(struct parse *p, yaml_node_t *n, const char *key)
{
    if (n->type == YAML_SCALAR_NODE)
        return scalar_json(n);
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < nitems(n); i++) {
            cJSON *item = to_json(p, items_of(p, n, i), key);
            if (!item) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, item);
        }
        return arr;
    }
    if (check_keys(p, n, key) < 0)
        return NULL;
    cJSON *obj = cJSON_CreateObject();
    for (yaml_node_pair_t *i = n->data.mapping.pairs.start; i < n->data.mapping.pairs.top; i++) {
        const char *k = text(node(p, i->key));
        cJSON *item = to_json(p, node(p, i->value), sub(p, key, k));
        if (!item) {
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, k, item);
    }
    return obj;
}

static int t_name(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, (char **)&p->tool_name);
}

static int t_settings(struct parse *p, yaml_node_t *v, const char *key)
{
    if (v->type != YAML_MAPPING_NODE)
        return fail(p, v, key, "expected a mapping of the tool's settings, got %s", shown(p, v));
    p->tool_settings = v;
    return 0;
}

static const struct field tool_fields[] = {
    {"name", t_name},
    {"settings", t_settings},
    {NULL, NULL},
};

/* One item of tools: a name, or {name, settings}. Settings become the JSON text of
 * spec.tool_settings[name]. */
static int tool_item(struct parse *p, yaml_node_t *it, const char *key)
{
    Agentry__V1__AgentSpec *s = p->spec;
    p->tool_name = NULL;
    p->tool_settings = NULL;
    if (it->type == YAML_SCALAR_NODE) {
        if (get_str(p, it, key, (char **)&p->tool_name) < 0)
            return -1;
    } else if (it->type != YAML_MAPPING_NODE) {
        return fail(p, it, key, "expected a tool name or {name, settings}, got %s", shown(p, it));
    } else if (walk(p, it, key, tool_fields) < 0) {
        return -1;
    }
    if (!p->tool_name || !*p->tool_name)
        return fail(p, it, key, "a tool needs a name");
    for (size_t i = 0; i < s->n_tools; i++)
        if (strcmp(s->tools[i], p->tool_name) == 0)
            return fail(p, it, key, "tool '%.64s' is listed twice", p->tool_name);
    s->tools[s->n_tools++] = (char *)p->tool_name;
    if (!p->tool_settings)
        return 0;
    cJSON *j = to_json(p, p->tool_settings, sub(p, key, "settings"));
    if (!j)
        return -1;
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    Agentry__V1__AgentSpec__ToolSettingsEntry *e = ag_arena_alloc(p->arena, sizeof(*e));
    agentry__v1__agent_spec__tool_settings_entry__init(e);
    e->key = (char *)p->tool_name;
    e->value = ag_arena_strdup(p->arena, json);
    cJSON_free(json);
    s->tool_settings[s->n_tool_settings++] = e;
    return 0;
}

static int f_tools(struct parse *p, yaml_node_t *v, const char *key)
{
    if (need_list(p, v, key, "tools") < 0)
        return -1;
    size_t n = nitems(v);
    p->spec->tools = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(char *));
    p->spec->tool_settings = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(void *));
    for (size_t i = 0; i < n; i++)
        if (tool_item(p, items_of(p, v, i), ag_arena_printf(p->arena, "%s[%zu]", key, i)) < 0)
            return -1;
    return 0;
}

/* --- limits and permissions ------------------------------------------------------------------ */

static Agentry__V1__Limits *limits(struct parse *p)
{
    if (!p->spec->limits) {
        p->spec->limits = ag_arena_alloc(p->arena, sizeof(*p->spec->limits));
        agentry__v1__limits__init(p->spec->limits);
    }
    return p->spec->limits;
}

static int l_max_tokens(struct parse *p, yaml_node_t *v, const char *key)
{
    long long n = 0;
    if (get_int(p, v, key, 0, INT64_MAX, &n) < 0)
        return -1;
    limits(p)->max_tokens = (uint64_t)n;
    return 0;
}

static int l_max_cost_usd(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_num(p, v, key, 0, 1e9, &limits(p)->max_cost_usd);
}

static int l_turn_timeout(struct parse *p, yaml_node_t *v, const char *key)
{
    struct ag_err why = AG_ERR_INIT;
    int64_t ms;
    if (v->type != YAML_SCALAR_NODE || ag_duration_parse(text(v), &ms, &why) < 0)
        return fail(p, v, key, "expected a duration like 90s, 5m or 1h, got %s", shown(p, v));
    if (ms > 86400000)
        return fail(p, v, key, "%s is more than the limit of one day (24h)", text(v));
    limits(p)->turn_timeout_ms = (uint64_t)ms;
    return 0;
}

static int l_approval_timeout(struct parse *p, yaml_node_t *v, const char *key)
{
    struct ag_err why = AG_ERR_INIT;
    int64_t ms;
    if (v->type != YAML_SCALAR_NODE || ag_duration_parse(text(v), &ms, &why) < 0)
        return fail(p, v, key, "expected a duration like 30m, 4h or 720h, got %s", shown(p, v));
    if (ms > 2592000000LL)
        return fail(p, v, key, "%s is more than the limit of 30 days (720h)", text(v));
    limits(p)->approval_timeout_ms = (uint64_t)ms;
    return 0;
}

static int l_max_depth(struct parse *p, yaml_node_t *v, const char *key)
{
    long long n = 0;
    if (get_int(p, v, key, 0, 64, &n) < 0)
        return -1;
    limits(p)->max_depth = (uint32_t)n;
    return 0;
}

static int l_max_children(struct parse *p, yaml_node_t *v, const char *key)
{
    long long n = 0;
    if (get_int(p, v, key, 0, 100000, &n) < 0)
        return -1;
    limits(p)->max_children = (uint32_t)n;
    return 0;
}

static const struct field limit_fields[] = {
    {"max_tokens", l_max_tokens},
    {"max_cost_usd", l_max_cost_usd},
    {"turn_timeout", l_turn_timeout},
    {"max_depth", l_max_depth},
    {"max_children", l_max_children},
    {"approval_timeout", l_approval_timeout},
    {NULL, NULL},
};

static int f_limits(struct parse *p, yaml_node_t *v, const char *key)
{
    limits(p);
    return walk(p, v, key, limit_fields);
}

static int r_tool(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->rule->tool);
}

static int r_decision(struct parse *p, yaml_node_t *v, const char *key)
{
    if (get_str(p, v, key, &p->rule->decision) < 0)
        return -1;
    const char *d = p->rule->decision;
    if (strcmp(d, "allow") != 0 && strcmp(d, "ask") != 0 && strcmp(d, "deny") != 0)
        return fail(p, v, key, "expected allow, ask or deny, got %s", shown(p, v));
    return 0;
}

static int r_patterns(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str_list(p, v, key, &p->rule->n_patterns, &p->rule->patterns);
}

static const struct field rule_fields[] = {
    {"tool", r_tool},
    {"decision", r_decision},
    {"patterns", r_patterns},
    {NULL, NULL},
};

static int f_permissions(struct parse *p, yaml_node_t *v, const char *key)
{
    if (need_list(p, v, key, "rules {tool, decision, patterns}") < 0)
        return -1;
    Agentry__V1__AgentSpec *s = p->spec;
    s->n_permissions = nitems(v);
    s->permissions = ag_arena_alloc(p->arena, (s->n_permissions ? s->n_permissions : 1) *
                                                  sizeof(*s->permissions));
    for (size_t i = 0; i < s->n_permissions; i++) {
        yaml_node_t *it = items_of(p, v, i);
        const char *k = ag_arena_printf(p->arena, "%s[%zu]", key, i);
        p->rule = ag_arena_alloc(p->arena, sizeof(*p->rule));
        agentry__v1__permission_rule__init(p->rule);
        s->permissions[i] = p->rule;
        if (walk(p, it, k, rule_fields) < 0)
            return -1;
        if (!*p->rule->tool || !*p->rule->decision)
            return fail(p, it, k,
                        "a rule needs a tool (or \"*\") and a decision (allow, ask or deny)");
    }
    return 0;
}

/* --- MCP servers and OpenAPI documents ------------------------------------------------------- */

static int mcp_name(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->mcp->name);
}

static int mcp_command(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str_list(p, v, key, &p->mcp->n_command, &p->mcp->command);
}

static int mcp_env(struct parse *p, yaml_node_t *v, const char *key)
{
    size_t n;
    char **keys, **values;
    if (get_str_map(p, v, key, &n, &keys, &values) < 0)
        return -1;
    Agentry__V1__McpServer *m = p->mcp;
    m->env = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(*m->env));
    for (size_t i = 0; i < n; i++) {
        m->env[i] = ag_arena_alloc(p->arena, sizeof(*m->env[i]));
        agentry__v1__mcp_server__env_entry__init(m->env[i]);
        m->env[i]->key = keys[i];
        m->env[i]->value = values[i];
    }
    m->n_env = n;
    return 0;
}

static int mcp_url(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->mcp->url);
}

static int mcp_headers(struct parse *p, yaml_node_t *v, const char *key)
{
    size_t n;
    char **keys, **values;
    if (get_str_map(p, v, key, &n, &keys, &values) < 0)
        return -1;
    Agentry__V1__McpServer *m = p->mcp;
    m->headers = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(*m->headers));
    for (size_t i = 0; i < n; i++) {
        m->headers[i] = ag_arena_alloc(p->arena, sizeof(*m->headers[i]));
        agentry__v1__mcp_server__headers_entry__init(m->headers[i]);
        m->headers[i]->key = keys[i];
        m->headers[i]->value = values[i];
    }
    m->n_headers = n;
    return 0;
}

static int mcp_tools(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str_list(p, v, key, &p->mcp->n_tools, &p->mcp->tools);
}

static int mcp_timeout(struct parse *p, yaml_node_t *v, const char *key)
{
    struct ag_err why = AG_ERR_INIT;
    int64_t ms;
    if (v->type != YAML_SCALAR_NODE || ag_duration_parse(text(v), &ms, &why) < 0)
        return fail(p, v, key, "expected a duration like 30s or 5m, got %s", shown(p, v));
    if (ms < 1 || ms > 3600000)
        return fail(p, v, key, "%s is out of range (1ms..1h)", text(v));
    p->mcp->timeout_ms = (uint32_t)ms;
    return 0;
}

/* How the node's sandbox runs the server (McpServer.settings): a mapping, kept as its JSON. */
static int mcp_settings(struct parse *p, yaml_node_t *v, const char *key)
{
    if (v->type != YAML_MAPPING_NODE)
        return fail(p, v, key, "expected a mapping like {net: true, mem_limit: 512MiB}, got %s",
                    shown(p, v));
    cJSON *j = to_json(p, v, key);
    if (!j)
        return -1;
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    p->mcp->settings = ag_arena_strdup(p->arena, json);
    cJSON_free(json);
    return 0;
}

static const struct field mcp_fields[] = {
    {"name", mcp_name},       {"command", mcp_command},   {"env", mcp_env},
    {"url", mcp_url},         {"headers", mcp_headers},   {"tools", mcp_tools},
    {"timeout", mcp_timeout}, {"settings", mcp_settings}, {NULL, NULL},
};

static int f_mcp_servers(struct parse *p, yaml_node_t *v, const char *key)
{
    if (need_list(p, v, key, "servers {name, command | url, ...}") < 0)
        return -1;
    Agentry__V1__AgentSpec *s = p->spec;
    s->n_mcp_servers = nitems(v);
    s->mcp_servers = ag_arena_alloc(p->arena, (s->n_mcp_servers ? s->n_mcp_servers : 1) *
                                                  sizeof(*s->mcp_servers));
    for (size_t i = 0; i < s->n_mcp_servers; i++) {
        p->mcp = ag_arena_alloc(p->arena, sizeof(*p->mcp));
        agentry__v1__mcp_server__init(p->mcp);
        s->mcp_servers[i] = p->mcp;
        if (walk(p, items_of(p, v, i), ag_arena_printf(p->arena, "%s[%zu]", key, i), mcp_fields) <
            0)
            return -1;
    }
    return 0;
}

static int api_name(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->api->name);
}

static int api_url(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->api->url);
}

static int api_document(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->api->document);
}

/* A file beside the spec (a relative path is the spec file's directory's), read into document. */
static int api_document_file(struct parse *p, yaml_node_t *v, const char *key)
{
    char *path;
    if (get_str(p, v, key, &path) < 0)
        return -1;
    const char *slash = strrchr(p->file, '/');
    if (path[0] != '/' && slash)
        path = ag_arena_printf(p->arena, "%.*s/%s", (int)(slash - p->file), p->file, path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(p, v, key, "cannot read '%s': %s", path, strerror(errno));
    char *buf = ag_arena_alloc(p->arena, (1u << 20) + 2);
    size_t len = fread(buf, 1, (1u << 20) + 1, f);
    fclose(f);
    if (len > (1u << 20))
        return fail(p, v, key, "'%s' is over 1 MiB; serve it and give its url instead", path);
    buf[len] = '\0';
    p->api->document = buf;
    return 0;
}

static int api_base_url(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->api->base_url);
}

static int api_operations(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str_list(p, v, key, &p->api->n_operations, &p->api->operations);
}

static int api_headers(struct parse *p, yaml_node_t *v, const char *key)
{
    size_t n;
    char **keys, **values;
    if (get_str_map(p, v, key, &n, &keys, &values) < 0)
        return -1;
    Agentry__V1__OpenApiSource *a = p->api;
    a->headers = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(*a->headers));
    for (size_t i = 0; i < n; i++) {
        a->headers[i] = ag_arena_alloc(p->arena, sizeof(*a->headers[i]));
        agentry__v1__open_api_source__headers_entry__init(a->headers[i]);
        a->headers[i]->key = keys[i];
        a->headers[i]->value = values[i];
    }
    a->n_headers = n;
    return 0;
}

static const struct field api_fields[] = {
    {"name", api_name},         {"url", api_url},
    {"document", api_document}, {"document_file", api_document_file},
    {"base_url", api_base_url}, {"operations", api_operations},
    {"headers", api_headers},   {NULL, NULL},
};

static int f_openapi(struct parse *p, yaml_node_t *v, const char *key)
{
    if (need_list(p, v, key, "documents {name, url | document | document_file, ...}") < 0)
        return -1;
    Agentry__V1__AgentSpec *s = p->spec;
    s->n_openapi = nitems(v);
    s->openapi = ag_arena_alloc(p->arena, (s->n_openapi ? s->n_openapi : 1) * sizeof(*s->openapi));
    for (size_t i = 0; i < s->n_openapi; i++) {
        p->api = ag_arena_alloc(p->arena, sizeof(*p->api));
        agentry__v1__open_api_source__init(p->api);
        s->openapi[i] = p->api;
        if (walk(p, items_of(p, v, i), ag_arena_printf(p->arena, "%s[%zu]", key, i), api_fields) <
            0)
            return -1;
    }
    return 0;
}

/* --- the rest of the spec -------------------------------------------------------------------- */

static int f_name(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->spec->name);
}

static int f_system_prompt(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->spec->system_prompt);
}

static int f_max_iterations(struct parse *p, yaml_node_t *v, const char *key)
{
    long long n = 0;
    if (get_int(p, v, key, 0, 1000, &n) < 0)
        return -1;
    p->spec->max_iterations = (uint32_t)n;
    return 0;
}

static int f_labels(struct parse *p, yaml_node_t *v, const char *key)
{
    Agentry__V1__AgentSpec *s = p->spec;
    char **keys, **values;
    if (get_str_map(p, v, key, &s->n_labels, &keys, &values) < 0)
        return -1;
    s->labels = ag_arena_alloc(p->arena, (s->n_labels ? s->n_labels : 1) * sizeof(*s->labels));
    for (size_t i = 0; i < s->n_labels; i++) {
        s->labels[i] = ag_arena_alloc(p->arena, sizeof(*s->labels[i]));
        agentry__v1__agent_spec__labels_entry__init(s->labels[i]);
        s->labels[i]->key = keys[i];
        s->labels[i]->value = values[i];
    }
    return 0;
}

static int f_node_selector(struct parse *p, yaml_node_t *v, const char *key)
{
    Agentry__V1__AgentSpec *s = p->spec;
    char **keys, **values;
    if (get_str_map(p, v, key, &s->n_node_selector, &keys, &values) < 0)
        return -1;
    s->node_selector = ag_arena_alloc(p->arena, (s->n_node_selector ? s->n_node_selector : 1) *
                                                    sizeof(*s->node_selector));
    for (size_t i = 0; i < s->n_node_selector; i++) {
        s->node_selector[i] = ag_arena_alloc(p->arena, sizeof(*s->node_selector[i]));
        agentry__v1__agent_spec__node_selector_entry__init(s->node_selector[i]);
        s->node_selector[i]->key = keys[i];
        s->node_selector[i]->value = values[i];
    }
    return 0;
}

static int f_scheduler(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str(p, v, key, &p->spec->scheduler);
}

static int f_anti_affinity(struct parse *p, yaml_node_t *v, const char *key)
{
    return get_str_list(p, v, key, &p->spec->n_anti_affinity, &p->spec->anti_affinity);
}

static int f_priority(struct parse *p, yaml_node_t *v, const char *key)
{
    long long n = 0;
    if (get_int(p, v, key, -1000, 1000, &n) < 0)
        return -1;
    p->spec->priority = (int32_t)n;
    return 0;
}

static Agentry__V1__Resources *resources(struct parse *p)
{
    if (!p->spec->resources) {
        p->spec->resources = ag_arena_alloc(p->arena, sizeof(*p->spec->resources));
        agentry__v1__resources__init(p->spec->resources);
    }
    return p->spec->resources;
}

static int res_cpu(struct parse *p, yaml_node_t *v, const char *key)
{
    struct ag_err why = AG_ERR_INIT;
    int64_t milli;
    if (v->type != YAML_SCALAR_NODE || ag_cpu_parse(text(v), &milli, &why) < 0)
        return fail(p, v, key, "expected CPU like 500m or 2, got %s", shown(p, v));
    if (milli > 1000000)
        return fail(p, v, key, "%s is more than the limit of 1000 cores", text(v));
    resources(p)->cpu_milli = (uint32_t)milli;
    return 0;
}

static int res_memory(struct parse *p, yaml_node_t *v, const char *key)
{
    struct ag_err why = AG_ERR_INIT;
    int64_t bytes;
    if (v->type != YAML_SCALAR_NODE || ag_bytes_parse(text(v), &bytes, &why) < 0)
        return fail(p, v, key, "expected memory like 512Mi or 4Gi, got %s", shown(p, v));
    resources(p)->memory_bytes = (uint64_t)bytes;
    return 0;
}

static const struct field resource_fields[] = {
    {"cpu", res_cpu},
    {"memory", res_memory},
    {NULL, NULL},
};

static int f_resources(struct parse *p, yaml_node_t *v, const char *key)
{
    return walk(p, v, key, resource_fields);
}

static int f_templates(struct parse *p, yaml_node_t *v, const char *key);

static const struct field spec_fields[] = {
    {"name", f_name},
    {"model", f_model},
    {"system_prompt", f_system_prompt},
    {"tools", f_tools},
    {"max_iterations", f_max_iterations},
    {"limits", f_limits},
    {"permissions", f_permissions},
    {"labels", f_labels},
    {"scheduler", f_scheduler},
    {"resources", f_resources},
    {"node_selector", f_node_selector},
    {"anti_affinity", f_anti_affinity},
    {"priority", f_priority},
    {"templates", f_templates},
    {"mcp_servers", f_mcp_servers},
    {"openapi", f_openapi},
    {NULL, NULL},
};

/* templates: {NAME: a spec}, each read as the file's own spec is (its templates ignored by the
 * hub). The parse's per-spec state is saved around each one. */
static int f_templates(struct parse *p, yaml_node_t *v, const char *key)
{
    if (v->type != YAML_MAPPING_NODE)
        return fail(p, v, key, "expected a mapping of template names to specs, got %s",
                    shown(p, v));
    if (check_keys(p, v, key) < 0)
        return -1;
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    Agentry__V1__AgentSpec *parent = p->spec;
    parent->templates = ag_arena_alloc(p->arena, (n ? n : 1) * sizeof(*parent->templates));
    for (yaml_node_pair_t *i = v->data.mapping.pairs.start; i < v->data.mapping.pairs.top; i++) {
        const char *name = text(node(p, i->key));
        Agentry__V1__AgentSpec__TemplatesEntry *t = ag_arena_alloc(p->arena, sizeof(*t));
        agentry__v1__agent_spec__templates_entry__init(t);
        t->key = ag_arena_strdup(p->arena, name);
        t->value = ag_arena_alloc(p->arena, sizeof(*t->value));
        agentry__v1__agent_spec__init(t->value);
        struct parse saved = *p;
        p->spec = t->value;
        p->provider = p->model_id = NULL;
        p->rule = NULL;
        p->tool_name = NULL;
        p->tool_settings = NULL;
        int rc = walk(p, node(p, i->value), sub(p, key, name), spec_fields);
        saved.doc = p->doc;
        *p = saved;
        if (rc < 0)
            return -1;
        parent->templates[parent->n_templates++] = t;
    }
    return 0;
}

/* --- the file -------------------------------------------------------------------------------- */

static int syntax_error(struct parse *p, const yaml_parser_t *ps)
{
    return ag_err_set(p->err, AG_INVALID_ARGUMENT, "%s:%zu: invalid YAML: %s%s%s", p->file,
                      ps->problem_mark.line + 1, ps->context ? ps->context : "",
                      ps->context ? ": " : "", ps->problem ? ps->problem : "unreadable");
}

static const char *anchor_of(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return (const char *)ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
        return (const char *)ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
        return (const char *)ev->data.mapping_start.anchor;
    default:
        return NULL;
    }
}

/* What the document API would accept without a word: an alias is resolved (a spec that shares
 * values is hard to read and review), and a document after the first is dropped. */
static int prescan(struct parse *p, const char *buf, size_t len)
{
    yaml_parser_t ps;
    yaml_parser_initialize(&ps);
    yaml_parser_set_input_string(&ps, (const unsigned char *)buf, len);
    int docs = 0, rc = 0;
    for (bool end = false; !end && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps, &ev)) {
            rc = syntax_error(p, &ps);
            break;
        }
        size_t line = ev.start_mark.line + 1;
        if (ev.type == YAML_ALIAS_EVENT || anchor_of(&ev))
            rc = ag_err_set(p->err, AG_INVALID_ARGUMENT,
                            "%s:%zu: anchors and aliases (&name, *name) are not supported in a "
                            "spec; write the value out",
                            p->file, line);
        else if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            rc = ag_err_set(p->err, AG_INVALID_ARGUMENT,
                            "%s:%zu: a spec file holds one agent: remove the second document "
                            "('---') or split the file",
                            p->file, line);
        end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ps);
    return rc;
}

static int parse_doc(struct parse *p)
{
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    if (!root || is_null(root))
        return ag_err_set(p->err, AG_INVALID_ARGUMENT,
                          "%s: the file is empty; a spec is a mapping with at least 'model' or "
                          "'name' (see docs/agent-spec.md)",
                          p->file);
    if (root->type != YAML_MAPPING_NODE)
        return fail(p, root, "", "a spec is a mapping of keys (name, model, ...), not %s",
                    shown(p, root));
    if (walk(p, root, "", spec_fields) < 0)
        return -1;
    struct ag_err why = AG_ERR_INIT;
    if (hub_validate_spec(p->spec, &why) < 0)
        return ag_err_set(p->err, AG_INVALID_ARGUMENT, "%s: %s", p->file, why.msg);
    return 0;
}

int cli_spec_parse(const char *name, const char *text_, size_t len, struct ag_arena *arena,
                   Agentry__V1__AgentSpec **out, struct ag_err *err)
{
    struct parse p = {.file = name, .arena = arena, .err = err};
    if (prescan(&p, text_, len) < 0)
        return -1;
    yaml_parser_t ps;
    yaml_parser_initialize(&ps);
    yaml_parser_set_input_string(&ps, (const unsigned char *)text_, len);
    if (!yaml_parser_load(&ps, &p.doc)) {
        syntax_error(&p, &ps);
        yaml_parser_delete(&ps);
        return -1;
    }
    yaml_parser_delete(&ps);
    p.spec = ag_arena_alloc(arena, sizeof(*p.spec));
    agentry__v1__agent_spec__init(p.spec);
    int rc = parse_doc(&p);
    yaml_document_delete(&p.doc);
    if (rc == 0)
        *out = p.spec;
    return rc;
}

int cli_spec_load(const char *path, struct ag_arena *arena, Agentry__V1__AgentSpec **out,
                  struct ag_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ag_err_set(err, AG_NOT_FOUND, "cannot read spec file '%s': %s", path,
                          strerror(errno));
    char *buf = ag_xmalloc(SPEC_FILE_MAX + 1);
    size_t len = fread(buf, 1, SPEC_FILE_MAX + 1, f);
    bool bad = ferror(f);
    fclose(f);
    int rc;
    if (bad)
        rc = ag_err_set(err, AG_NOT_FOUND, "cannot read spec file '%s'", path);
    else if (len > SPEC_FILE_MAX)
        rc = ag_err_set(err, AG_INVALID_ARGUMENT, "spec file '%s' is over %u bytes", path,
                        SPEC_FILE_MAX);
    else
        rc = cli_spec_parse(path, buf, len, arena, out, err);
    free(buf);
    return rc;
}
