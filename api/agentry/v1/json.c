/* api/agentry/v1/json.c - see json.h. */
#include "agentry/v1/json.h"

/* protobuf-c decodes an absent string as "", but a message built in C may leave it NULL. */
static const char *str_or_empty(const char *s)
{
    return s ? s : "";
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
    return o;
}
