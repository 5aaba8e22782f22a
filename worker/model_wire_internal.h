/* worker/model_wire_internal.h - private to worker/model_wire*.c: what the OpenAI and Anthropic
 * wire formats share (worker/model_wire.c).
 *
 * A streamed reply is put together the same way in both formats: text appended as it comes, and
 * "parts" keyed by the index the stream gives them (OpenAI's tool_calls[].index, Anthropic's
 * content block index), a tool call's arguments concatenated from fragments. The stream object
 * is therefore one struct for both. Pure: no I/O, no threads, no globals. */
#ifndef AGENTRY_WORKER_MODEL_WIRE_INTERNAL_H
#define AGENTRY_WORKER_MODEL_WIRE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "worker/model.h"
#include "worker/model_wire.h"

/* A growable string; p is NULL or NUL-terminated. */
struct wk_wire__buf {
    char *p; /* owned */
    size_t len, cap;
};
void wk_wire__buf_add(struct wk_wire__buf *b, const char *s, size_t n);

/* One indexed piece of a streamed reply: a tool call, or (Anthropic) a text block. */
struct wk_wire__part {
    long index;
    bool is_call;
    char *id;                 /* owned, NULL until the stream names it */
    char *name;               /* owned, NULL until the stream names it */
    struct wk_wire__buf args; /* the arguments' fragments, concatenated */
    char *start_input;        /* owned: Anthropic's input at content_block_start, or NULL */
};

struct wk_wire_stream {
    struct wk_wire__buf text;
    struct wk_wire__part *parts; /* owned, in the order they started */
    size_t nparts, cap;
    uint64_t input_tokens, output_tokens;
};

struct wk_wire_stream *wk_wire__stream_new(void);
void wk_wire__stream_free(struct wk_wire_stream *s);
/* The part with this index; NULL if none. */
struct wk_wire__part *wk_wire__part_find(struct wk_wire_stream *s, long index);
/* The part with this index, added empty if it did not exist. */
struct wk_wire__part *wk_wire__part_get(struct wk_wire_stream *s, long index);
/* Append text to the reply and pass it to on_text (which may be NULL). */
void wk_wire__stream_text(struct wk_wire_stream *s, const char *text, wk_wire_text_fn *on_text,
                          void *arg);
/* The reply put together (owned): text, the call parts ordered by index, usage. wire names the
 * format in messages ("openai"). A call without an id gets "call_<n>" (n counts calls from 1). */
struct wk_chat_reply *wk_wire__stream_reply(struct wk_wire_stream *s, const char *wire,
                                            bool complete, struct ag_err *err);

/* body as a JSON object, or NULL with AG_UNKNOWN naming what is wrong and where
 * ("the openai reply is not JSON at byte 12: ..."). what: "reply", "stream event". */
cJSON *wk_wire__parse(const char *wire, const char *what, const char *body, size_t len,
                      struct ag_err *err);
/* error.message (or error as a plain string, as some compatible servers send it), one line,
 * owned; NULL if there is none. */
char *wk_wire__error_text(const cJSON *root);
char *wk_wire__error_message(const char *body, size_t len);
/* A string member, or NULL if missing or not a string. */
const char *wk_wire__str(const cJSON *obj, const char *key);
/* A non-negative integer member, or 0 if missing or not one. */
uint64_t wk_wire__u64(const cJSON *obj, const char *key);
/* A stream's index: an integer 0..999999 into *out; false if v is anything else. */
bool wk_wire__index(const cJSON *v, long *out);
/* s, or "" for NULL. */
const char *wk_wire__or_empty(const char *s);
/* The unformatted JSON of j (owned by the caller, free()). */
char *wk_wire__print(const cJSON *j);
/* Append a call to r; takes ownership of arguments. */
void wk_wire__reply_add_call(struct wk_chat_reply *r, const char *id, const char *name,
                             char *arguments_take);
/* A tool's schema as JSON: parsed schema_json, or an empty object schema when there is none.
 * NULL with INVALID_ARGUMENT if it does not parse. */
cJSON *wk_wire__tool_schema(const char *wire, const struct wk_chat_tool *t, struct ag_err *err);
/* "<prefix><key>" (owned) into out[0] if cap > 0 and key is not NULL or "", cut at the first
 * CR or LF (a key file's trailing newline; never a header injected through the key). Returns
 * how many strings it wrote. */
size_t wk_wire__key_header(const char *prefix, const char *key, char **out, size_t cap);

#endif
