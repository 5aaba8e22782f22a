/* api/agentry/v1/json.c - see json.h. */
#include "agentry/v1/json.h"

#include <string.h>

/* protobuf-c decodes an absent string as "", but a message built in C may leave it NULL. */
static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static cJSON *model_settings_json(const Agentry__V1__ModelSettings *ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "base_url", str_or_empty(ms->base_url));
    cJSON_AddBoolToObject(o, "stream", ms->stream);
    if (ms->temperature_set)
        cJSON_AddNumberToObject(o, "temperature", ms->temperature);
    cJSON_AddNumberToObject(o, "max_tokens", ms->max_tokens);
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    for (size_t i = 0; i < ms->n_headers; i++)
        cJSON_AddStringToObject(h, ms->headers[i]->key, ms->headers[i]->value);
    cJSON_AddStringToObject(o, "api_key_env", str_or_empty(ms->api_key_env));
    return o;
}

/* Each tool's settings as the object it holds; text that is not JSON (only a spec the hub never
 * validated has any) as the string it is. */
static cJSON *tool_settings_json(const Agentry__V1__AgentSpec *spec)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < spec->n_tool_settings; i++) {
        const char *v = str_or_empty(spec->tool_settings[i]->value);
        cJSON *parsed = cJSON_Parse(v);
        cJSON_AddItemToObject(o, str_or_empty(spec->tool_settings[i]->key),
                              parsed ? parsed : cJSON_CreateString(v));
    }
    return o;
}

static cJSON *limits_json(const Agentry__V1__Limits *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "max_tokens", (double)l->max_tokens);
    cJSON_AddNumberToObject(o, "max_cost_usd", l->max_cost_usd);
    cJSON_AddNumberToObject(o, "turn_timeout_ms", (double)l->turn_timeout_ms);
    return o;
}

static cJSON *permissions_json(const Agentry__V1__AgentSpec *spec)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < spec->n_permissions; i++) {
        const Agentry__V1__PermissionRule *r = spec->permissions[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tool", str_or_empty(r->tool));
        cJSON_AddStringToObject(o, "decision", str_or_empty(r->decision));
        cJSON *pats = cJSON_AddArrayToObject(o, "patterns");
        for (size_t j = 0; j < r->n_patterns; j++)
            cJSON_AddItemToArray(pats, cJSON_CreateString(r->patterns[j]));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *str_array(char *const *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(str_or_empty(v[i])));
    return arr;
}

static cJSON *mcp_servers_json(const Agentry__V1__AgentSpec *spec)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < spec->n_mcp_servers; i++) {
        const Agentry__V1__McpServer *m = spec->mcp_servers[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", str_or_empty(m->name));
        cJSON_AddItemToObject(o, "command", str_array(m->command, m->n_command));
        cJSON *env = cJSON_AddObjectToObject(o, "env");
        for (size_t k = 0; k < m->n_env; k++)
            cJSON_AddStringToObject(env, m->env[k]->key, str_or_empty(m->env[k]->value));
        cJSON_AddStringToObject(o, "url", str_or_empty(m->url));
        cJSON *h = cJSON_AddObjectToObject(o, "headers");
        for (size_t k = 0; k < m->n_headers; k++)
            cJSON_AddStringToObject(h, m->headers[k]->key, str_or_empty(m->headers[k]->value));
        cJSON_AddItemToObject(o, "tools", str_array(m->tools, m->n_tools));
        cJSON_AddNumberToObject(o, "timeout_ms", m->timeout_ms);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* The document itself is not repeated (up to 1 MiB in every SPAWNED payload): its size is. */
static cJSON *openapi_json(const Agentry__V1__AgentSpec *spec)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < spec->n_openapi; i++) {
        const Agentry__V1__OpenApiSource *a = spec->openapi[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", str_or_empty(a->name));
        cJSON_AddStringToObject(o, "url", str_or_empty(a->url));
        cJSON_AddNumberToObject(o, "document_bytes", (double)strlen(str_or_empty(a->document)));
        cJSON_AddStringToObject(o, "base_url", str_or_empty(a->base_url));
        cJSON_AddItemToObject(o, "operations", str_array(a->operations, a->n_operations));
        cJSON *h = cJSON_AddObjectToObject(o, "headers");
        for (size_t k = 0; k < a->n_headers; k++)
            cJSON_AddStringToObject(h, a->headers[k]->key, str_or_empty(a->headers[k]->value));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *agentry_json_spec(const Agentry__V1__AgentSpec *spec)
{
    cJSON *o = cJSON_CreateObject();
    if (!spec)
        return o;
    cJSON_AddStringToObject(o, "name", str_or_empty(spec->name));
    cJSON_AddStringToObject(o, "model", str_or_empty(spec->model));
    cJSON_AddStringToObject(o, "system_prompt", str_or_empty(spec->system_prompt));
    cJSON *tools = cJSON_AddArrayToObject(o, "tools");
    for (size_t i = 0; i < spec->n_tools; i++)
        cJSON_AddItemToArray(tools, cJSON_CreateString(spec->tools[i]));
    cJSON_AddNumberToObject(o, "max_iterations", spec->max_iterations);
    cJSON *labels = cJSON_AddObjectToObject(o, "labels");
    for (size_t i = 0; i < spec->n_labels; i++)
        cJSON_AddStringToObject(labels, spec->labels[i]->key, spec->labels[i]->value);
    /* Only when set, so that the payload of an agent without them reads as it always did. */
    if (spec->model_settings)
        cJSON_AddItemToObject(o, "model_settings", model_settings_json(spec->model_settings));
    if (spec->n_tool_settings)
        cJSON_AddItemToObject(o, "tool_settings", tool_settings_json(spec));
    if (spec->limits)
        cJSON_AddItemToObject(o, "limits", limits_json(spec->limits));
    if (spec->n_permissions)
        cJSON_AddItemToObject(o, "permissions", permissions_json(spec));
    if (spec->n_mcp_servers)
        cJSON_AddItemToObject(o, "mcp_servers", mcp_servers_json(spec));
    if (spec->n_openapi)
        cJSON_AddItemToObject(o, "openapi", openapi_json(spec));
    return o;
}
