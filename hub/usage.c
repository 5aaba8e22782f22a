/* hub/usage.c - the counting rule for an event's usage and its protobuf form (see usage.h). */
#include "hub/usage.h"

#include <cjson/cJSON.h>

#include "agentry/v1/types.pb-c.h"

/* 1e9 USD in nano-dollars: far above any real spend. */
#define MAX_NANO_USD UINT64_C(1000000000000000000)

void hub_usage_count(struct hub_usage *u, int kind, uint64_t input_tokens, uint64_t output_tokens,
                     uint64_t cost_nano_usd)
{
    u->input_tokens += input_tokens;
    u->output_tokens += output_tokens;
    u->cost_nano_usd = cost_nano_usd > UINT64_MAX - u->cost_nano_usd
                           ? UINT64_MAX
                           : u->cost_nano_usd + cost_nano_usd;
    u->model_calls += kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST;
    u->tool_calls += kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL;
}

uint64_t hub_usage_nano_usd(double usd)
{
    /* Compared before converting: a double beyond uint64_t's range is undefined behaviour. */
    if (!(usd > 0))
        return 0;
    if (usd >= 1e9)
        return MAX_NANO_USD;
    return (uint64_t)(usd * 1e9 + 0.5);
}

/* A token count as the payload gives it: a positive number, else 0. Compared before converting:
 * a double beyond uint64_t's range is undefined behaviour. */
static uint64_t json_count(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1.8e19
               ? (uint64_t)v->valuedouble
               : 0;
}

void hub_usage_payload_read(int kind, const char *payload, size_t len, uint64_t *input_tokens,
                            uint64_t *output_tokens, uint64_t *cost_nano_usd)
{
    *input_tokens = *output_tokens = *cost_nano_usd = 0;
    if (kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY || !payload)
        return;
    cJSON *o = cJSON_ParseWithLength(payload, len);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(u, "cost_usd");
    *input_tokens = json_count(u, "input_tokens");
    *output_tokens = json_count(u, "output_tokens");
    *cost_nano_usd = cJSON_IsNumber(c) ? hub_usage_nano_usd(c->valuedouble) : 0;
    cJSON_Delete(o);
}

uint64_t hub_usage_payload_cost(int kind, const char *payload, size_t len)
{
    uint64_t in, out, nano;
    hub_usage_payload_read(kind, payload, len, &in, &out, &nano);
    return nano;
}

void hub_usage_to_pb(const struct hub_usage *u, struct Agentry__V1__Usage *out)
{
    agentry__v1__usage__init(out);
    out->input_tokens = u->input_tokens;
    out->output_tokens = u->output_tokens;
    out->model_calls = (uint32_t)u->model_calls;
    out->tool_calls = (uint32_t)u->tool_calls;
    out->cost_usd = (double)u->cost_nano_usd / 1e9;
}

void hub_usage_from_pb(const struct Agentry__V1__Usage *in, struct hub_usage *u)
{
    u->input_tokens = in->input_tokens;
    u->output_tokens = in->output_tokens;
    u->model_calls = in->model_calls;
    u->tool_calls = in->tool_calls;
    u->cost_nano_usd = hub_usage_nano_usd(in->cost_usd);
}
