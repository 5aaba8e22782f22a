/* hub/usage.c - the counting rule for an event's usage and its protobuf form (see usage.h). */
#include "hub/usage.h"

#include "agentry/v1/types.pb-c.h"

void hub_usage_count(struct hub_usage *u, int kind, uint64_t input_tokens, uint64_t output_tokens)
{
    u->input_tokens += input_tokens;
    u->output_tokens += output_tokens;
    u->model_calls += kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST;
    u->tool_calls += kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL;
}

void hub_usage_to_pb(const struct hub_usage *u, struct Agentry__V1__Usage *out)
{
    agentry__v1__usage__init(out);
    out->input_tokens = u->input_tokens;
    out->output_tokens = u->output_tokens;
    out->model_calls = (uint32_t)u->model_calls;
    out->tool_calls = (uint32_t)u->tool_calls;
}

void hub_usage_from_pb(const struct Agentry__V1__Usage *in, struct hub_usage *u)
{
    u->input_tokens = in->input_tokens;
    u->output_tokens = in->output_tokens;
    u->model_calls = in->model_calls;
    u->tool_calls = in->tool_calls;
}
