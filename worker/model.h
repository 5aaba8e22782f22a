/* worker/model.h - the model provider interface and its registry.
 *
 * A provider answers one chat request asynchronously: chat() returns at once and calls done()
 * exactly once, later, from any thread (a timer, an HTTP thread), or never if chat() returned -1.
 * done() must not be called from inside chat() itself, so callers never recurse. The call's
 * context (worker/call.h) carries its cancel handle, deadline and the provider's options; a
 * cancelled call ends with AG_CANCELLED, a late one with AG_DEADLINE_EXCEEDED, still through
 * exactly one done().
 * Providers are rows of a table (wk_model_providers): "mock" (scripted, for tests and demos),
 * "openai" (any OpenAI-compatible /chat/completions) and "anthropic" (the Messages API), the
 * last two over the node's HTTP client (worker/model_http.c, wire formats in
 * worker/model_wire.h). An agent's spec.model is "<provider>" or "<provider>/<model>". */
#ifndef AGENTRY_WORKER_MODEL_H
#define AGENTRY_WORKER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/call.h"

struct ag_timers;
struct wk_http;

/* One conversation message, as the agent loop keeps it. */
struct wk_tool_call {
    char *id;        /* owned */
    char *name;      /* owned */
    char *arguments; /* owned, JSON object text */
};

struct wk_msg {
    char *role;                 /* owned: "user", "assistant", "tool" */
    char *content;              /* owned, never NULL */
    struct wk_tool_call *calls; /* owned array (assistant) */
    size_t ncalls;
    char *tool_call_id; /* owned, may be NULL (tool) */
};

/* A tool the model may call, as a model API wants it. */
struct wk_chat_tool {
    const char *name;        /* borrowed */
    const char *description; /* borrowed: one line, "" if the node does not have the tool */
    const char *schema_json; /* borrowed: JSON schema of the arguments object */
};

/* The spec's settings for the call (AgentSpec.model_settings); zero/NULL fields take the node's
 * options for the provider. All borrowed. */
struct wk_model_settings {
    const char *base_url; /* NULL or "": the node's "<provider>.base_url" */
    bool stream;          /* ask for a streamed reply; text goes to wk_chat_req.on_delta */
    bool temperature_set;
    double temperature;
    uint32_t max_tokens;        /* 0: the provider's default */
    const char *const *headers; /* "Name: value", sent after the node's */
    size_t nheaders;
    const char *api_key_env; /* NULL or "": the node's "<provider>.api_key_env" */
};

/* Text of a streamed reply as it arrives: called on the provider's thread, any number of times
 * before done() and never after it, never inside chat(). arg is chat()'s arg. Must be quick. */
typedef void wk_model_delta_fn(void *arg, const char *text, size_t len);

struct wk_chat_req {
    const char *model;         /* the part after "provider/", "" if none */
    const char *system_prompt; /* borrowed */
    const struct wk_msg *msgs; /* borrowed, oldest first */
    size_t nmsgs;
    const struct wk_chat_tool *tools; /* borrowed: the tools the agent may call */
    size_t ntools;
    struct wk_model_settings settings;
    wk_model_delta_fn *on_delta; /* NULL: nobody follows the text (a provider may still stream) */
};

struct wk_chat_reply {
    char *content;              /* owned, never NULL */
    struct wk_tool_call *calls; /* owned */
    size_t ncalls;
    uint64_t input_tokens;
    uint64_t output_tokens;
};
void wk_chat_reply_free(struct wk_chat_reply *r);
void wk_tool_call_release(struct wk_tool_call *c);
void wk_msg_release(struct wk_msg *m);
/* Append an empty message with this role to the growable array *msgs (*n used, *cap allocated):
 * the new message, its content still NULL. */
struct wk_msg *wk_msg_push(struct wk_msg **msgs, size_t *n, size_t *cap, const char *role);

/* reply: owned by the callee (free with wk_chat_reply_free), NULL on error (err set). */
typedef void wk_model_done_fn(void *arg, struct wk_chat_reply *reply, const struct ag_err *err);

struct wk_provider {
    const char *name;
    /* Returns 0 (done will be called) or -1 with err (done will not be called). req is borrowed
     * for the call only; ctx's pointers stay valid until done(). */
    int (*chat)(struct wk_provider *p, const struct wk_call_ctx *ctx, const struct wk_chat_req *req,
                wk_model_done_fn *done, void *arg, struct ag_err *err);
    void (*free)(struct wk_provider *p);
    void *state;
};

/* Providers are created per node; they may use the node's timers for delays. */
struct wk_provider_ctx {
    struct ag_timers *timers;       /* borrowed */
    const struct wk_config *config; /* borrowed, outlives the provider; checked by check_config */
    struct wk_http *http;           /* borrowed: the node's HTTP client; NULL in tests without */
};

struct wk_provider_row {
    const char *name;
    struct wk_provider *(*create)(const struct wk_provider_ctx *ctx, struct ag_err *err);
    /* Refuse options the provider does not take (see wk_config_check_keys) or cannot parse,
     * before the node starts. NULL: it takes only "timeout". */
    int (*check_config)(const struct wk_config *c, struct ag_err *err);
};
extern const struct wk_provider_row wk_model_providers[]; /* ends with a NULL name */

/* "mock/foo" -> the "mock" row; NULL if unknown. model_out gets the part after '/' ("" if none). */
const struct wk_provider_row *wk_model_find(const char *spec_model, const char **model_out);

#endif
