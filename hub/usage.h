/* hub/usage.h - what an agent spent (types.proto, Usage): the counting rule and the one
 * conversion to and from the protobuf message.
 *
 * Usage is counted by the hub from the events it stores (model and tool calls by an event's
 * kind, tokens as the node counted them), so that a node cannot under-report and a re-run
 * attempt is counted too. Plain values: no locks of its own; the owner's lock guards it. */
#ifndef AGENTRY_HUB_USAGE_H
#define AGENTRY_HUB_USAGE_H

#include <stdint.h>

struct Agentry__V1__Usage;

struct hub_usage {
    uint64_t input_tokens;
    uint64_t output_tokens;
    uint64_t model_calls;
    uint64_t tool_calls;
};

/* Add what one stored event of `kind` spent. */
void hub_usage_count(struct hub_usage *u, int kind, uint64_t input_tokens, uint64_t output_tokens);
/* The message's counters are 32-bit for calls: larger counts are truncated, as before. */
void hub_usage_to_pb(const struct hub_usage *u, struct Agentry__V1__Usage *out);
void hub_usage_from_pb(const struct Agentry__V1__Usage *in, struct hub_usage *u);

#endif
