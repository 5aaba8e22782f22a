/* worker/model_wire.h - a model API's wire format: how a chat request becomes an HTTP request
 * body, and how the reply (whole, or streamed as server-sent events) becomes a wk_chat_reply.
 *
 * Owns: the contract only. worker/model_wire_openai.c (OpenAI-compatible /chat/completions) and
 * worker/model_wire_anthropic.c (the Messages API) implement it; worker/model_http.c does the
 * transport (the node's HTTP client, retries, cancel, deadlines) and picks the table by provider.
 *
 * Everything here is pure: no I/O, no threads, no state outside a stream object, so the formats
 * are tested byte for byte without a server. A stream object belongs to one call at a time.
 * Errors: -1 or NULL with err set (AG_UNKNOWN for a reply that does not parse, with a message a
 * user can act on: what was malformed, never the API key). */
#ifndef AGENTRY_WORKER_MODEL_WIRE_H
#define AGENTRY_WORKER_MODEL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/model.h"

/* A streamed reply being put together. */
struct wk_wire_stream;

/* Text the model wrote, as a stream event brings it. */
typedef void wk_wire_text_fn(void *arg, const char *text, size_t len);

struct wk_wire {
    const char *name;             /* "openai", "anthropic" */
    const char *path;             /* appended to the base URL: "/chat/completions", "/messages" */
    const char *default_base_url; /* "https://api.openai.com/v1", "https://api.anthropic.com/v1" */
    /* The JSON request body (owned) for req (req->model is the model id, req->settings the
     * temperature and max_tokens), streamed or not. The messages' tool-call arguments are
     * passed on verbatim. NULL with INVALID_ARGUMENT if req cannot be expressed. */
    char *(*request_body)(const struct wk_chat_req *req, bool stream, struct ag_err *err);
    /* The headers the API needs beside "Content-Type: application/json", as "Name: value"
     * strings (owned) in out[0, return value), at most cap (4 is enough): the key's header when
     * api_key is not NULL, and any version header the API requires. */
    size_t (*headers)(const char *api_key, char **out, size_t cap);
    /* A whole 2xx reply body -> the reply (owned), or NULL with err. */
    struct wk_chat_reply *(*parse_reply)(const char *body, size_t len, struct ag_err *err);
    /* The message inside an error reply's body (status >= 400), one line, owned; NULL if the
     * body holds none the format knows. */
    char *(*error_message)(const char *body, size_t len);

    struct wk_wire_stream *(*stream_new)(void);
    /* One server-sent event: its "event:" field (NULL if it had none) and its data (the
     * "data:" lines joined by '\n', not NUL-terminated). Text deltas go to on_text(arg, ...)
     * (on_text may be NULL). Returns 0 to go on, 1 when the stream says the reply is complete
     * ("[DONE]", "message_stop"), -1 with err for a malformed event or an error the API sent
     * inside the stream. */
    int (*stream_event)(struct wk_wire_stream *s, const char *event, const char *data, size_t len,
                        wk_wire_text_fn *on_text, void *arg, struct ag_err *err);
    /* The reply put together (owned): complete is true when stream_event returned 1. A stream
     * that ended before its end marker -> NULL with err ("the stream ended before the reply was
     * complete"). Does not free s. */
    struct wk_chat_reply *(*stream_finish)(struct wk_wire_stream *s, bool complete,
                                           struct ag_err *err);
    void (*stream_free)(struct wk_wire_stream *s); /* NULL is a no-op */
};

extern const struct wk_wire wk_wire_openai;
extern const struct wk_wire wk_wire_anthropic;

/* OpenAI's embeddings API (its path is "/embeddings"; the Messages API has none): the body for
 * one input (owned), and the reply's first vector (owned, *dims floats, at most max_dims), or
 * NULL with err (AG_UNKNOWN: malformed; UNAVAILABLE: the API reported an error). */
char *wk_wire_openai_embed_body(const char *model, const char *input);
float *wk_wire_openai_parse_embedding(const char *body, size_t len, uint32_t max_dims,
                                      uint32_t *dims, struct ag_err *err);

#endif
