/* common/pbjson.h - protobuf messages <-> JSON, for any protobuf-c message, by its descriptor:
 * protobuf's canonical JSON mapping for proto3 (what grpc-gateway serves).
 *
 * Output: proto field names (agent_id, as preserving_proto_field_name), enums by name (a value
 * the descriptor does not know as its number), 64-bit integers as strings, bytes as padded
 * base64, float and double as numbers ("NaN", "Infinity", "-Infinity" as strings), maps as
 * objects, and default values omitted: a proto3 field at its zero value, an optional field not
 * set, a oneof member not chosen.
 *
 * Input accepts more: proto names or lowerCamelCase json names, integers as numbers or strings,
 * enums by name or number, bytes in standard or URL-safe base64, null for "the default". An
 * unknown field, a value of the wrong type or out of range, or two members of one oneof are
 * INVALID_ARGUMENT naming the field by its path ("spec.max_turns").
 *
 * Pure functions of their arguments; any thread. */
#ifndef AGENTRY_COMMON_PBJSON_H
#define AGENTRY_COMMON_PBJSON_H

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"

/* m as a new JSON object (the caller's: cJSON_Delete). */
cJSON *ag_pbjson_encode(const ProtobufCMessage *m);
/* The JSON object json as a new message of type d, allocated as protobuf-c's default allocator
 * does (free it with protobuf_c_message_free_unpacked(m, NULL)). NULL with err (INVALID_ARGUMENT)
 * when json does not fit d. */
ProtobufCMessage *ag_pbjson_decode(const ProtobufCMessageDescriptor *d, const cJSON *json,
                                   struct ag_err *err);

#endif
