/* api/agentry/v1/json.h - the JSON forms of API messages that types.proto documents, in one place.
 *
 * The hub writes an agent's spec into its SPAWNED event's payload and the CLI prints the same
 * spec in `agentry get --json`: both use these, so the two can never drift apart. Hand-written
 * (protobuf-c has no JSON mapping); compiled into agentry_api_json, which the hub and the CLI link
 * and common/ never does. Pure functions: any thread. */
#ifndef AGENTRY_API_V1_JSON_H
#define AGENTRY_API_V1_JSON_H

#include <cjson/cJSON.h>

#include "agentry/v1/types.pb-c.h"

/* {"name", "model", "system_prompt", "tools": [..], "max_iterations", "labels": {..}}, and
 * each of "model_settings": {"base_url", "stream", "temperature" (only when set), "max_tokens",
 * "headers": {..}, "api_key_env"}, "tool_settings": {tool: its settings object}, "limits":
 * {"max_tokens", "max_cost_usd", "turn_timeout_ms"} and "permissions": [{"tool", "decision",
 * "patterns": [..]}], "mcp_servers": [{"name", "command": [..], "env": {..}, "url", "headers":
 * {..}, "tools": [..], "timeout_ms"}] and "openapi": [{"name", "url", "document_bytes" (the
 * document's size, not its text), "base_url", "operations": [..], "headers": {..}}] only when
 * the spec sets it (types.proto, EVENT_KIND_SPAWNED). A NULL spec gives {}. The caller owns the
 * result. */
cJSON *agentry_json_spec(const Agentry__V1__AgentSpec *spec);

#endif
