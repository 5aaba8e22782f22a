/* hub/usage.h - what an agent spent (types.proto, Usage): the counting rule and the one
 * conversion to and from the protobuf message.
 *
 * Usage is counted by the hub from the events it stores (model and tool calls by an event's
 * kind, tokens and cost as the node counted them), so that a node cannot under-report and a
 * re-run attempt is counted too. Cost is kept in nano-dollars: integers add up exactly however
 * many calls an agent makes, and fit the store's 64-bit integer columns (up to 9.2e9 USD).
 * Plain values: no locks of its own; the owner's lock guards it. */
#ifndef AGENTRY_HUB_USAGE_H
#define AGENTRY_HUB_USAGE_H

#include <stddef.h>
#include <stdint.h>

struct Agentry__V1__Usage;

struct hub_usage {
    uint64_t input_tokens;
    uint64_t output_tokens;
    uint64_t model_calls;
    uint64_t tool_calls;
    uint64_t cost_nano_usd; /* US dollars x 1e9 */
};

/* Add what one stored event of `kind` spent (the cost saturates rather than wraps). */
void hub_usage_count(struct hub_usage *u, int kind, uint64_t input_tokens, uint64_t output_tokens,
                     uint64_t cost_nano_usd);
/* usd in nano-dollars, rounded; NaN or negative is 0 and more than 1e9 USD counts as 1e9 (a
 * node's error, never a wrapped counter). */
uint64_t hub_usage_nano_usd(double usd);
/* What a MODEL_REPLY payload reports under "usage": input and output tokens and the cost in
 * nano-dollars, read in one parse; all 0 for any other kind or what the payload lacks. payload
 * need not be NUL-terminated. */
void hub_usage_payload_read(int kind, const char *payload, size_t len, uint64_t *input_tokens,
                            uint64_t *output_tokens, uint64_t *cost_nano_usd);
/* The cost a MODEL_REPLY payload reports ("usage": {"cost_usd"}), in nano-dollars: 0 for any
 * other kind, or when the node did not price the model. payload need not be NUL-terminated. */
uint64_t hub_usage_payload_cost(int kind, const char *payload, size_t len);
/* The message's counters are 32-bit for calls: larger counts are truncated, as before. The cost
 * goes out as a double (nano-dollars / 1e9). */
void hub_usage_to_pb(const struct hub_usage *u, struct Agentry__V1__Usage *out);
void hub_usage_from_pb(const struct Agentry__V1__Usage *in, struct hub_usage *u);

#endif
