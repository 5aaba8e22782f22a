/* hub/json_payload.c - the INPUT event's payload, written without a JSON library (see
 * json_payload.h). */
#include <string.h>

#include "hub/json_payload.h"

/* {"text":"..."} without a JSON library: the INPUT payload is on the hot path of SendMessage.
 * The text is valid UTF-8 (checked at the door), so only quotes, backslashes and control
 * characters need escaping. The length is counted first so the arena holds exactly the payload,
 * not six times the input in case every byte needed \u00XX. */
static size_t escaped_len(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\n' || c == '\t')
        return 2;
    return c < 0x20 ? 6 : 1;
}

size_t hub_json_text_payload_len(const char *text)
{
    size_t n = sizeof("{\"text\":\"\"}") - 1;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++)
        n += escaped_len(*s);
    return n;
}

const char *hub_json_text_payload(struct ag_arena *ar, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    char *out = ag_arena_alloc(ar, hub_json_text_payload_len(text) + 1);
    char *p = out;
    memcpy(p, "{\"text\":\"", 9);
    p += 9;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else if (c == '\t') {
            *p++ = '\\';
            *p++ = 't';
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    memcpy(p, "\"}", 3); /* with the NUL */
    return out;
}
