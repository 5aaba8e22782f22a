/* hub/json_payload.h - the JSON payloads the hub writes itself on hot paths, without a JSON
 * library: the INPUT event's {"text": ...}. Pure functions; any thread. */
#ifndef AGENTRY_HUB_JSON_PAYLOAD_H
#define AGENTRY_HUB_JSON_PAYLOAD_H

#include <stddef.h>

#include "common/arena.h"

/* {"text":"..."} for a valid UTF-8 text, in the arena. */
const char *hub_json_text_payload(struct ag_arena *ar, const char *text);
size_t hub_json_text_payload_len(const char *text); /* its strlen */

#endif
