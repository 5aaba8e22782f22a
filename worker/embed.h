/* worker/embed.h - text to a vector, for the memory tools (worker/tool_memory.c).
 *
 * A model is named as an agent's spec names one, "<provider>/<model>":
 *   "openai/<model>"  the provider's embeddings endpoint, POST {base_url}/embeddings
 *                     {"model", "input"} -> data[0].embedding, with the node's options for the
 *                     "openai" provider (base_url, api_key_env / api_key_file, header: the same
 *                     key handling as its chats, worker/model_http.c); one attempt, bounded by
 *                     the call's deadline and cancel;
 *   "mock", "mock/<anything>"  a local, deterministic embedding (no network): a hashed bag of
 *                     words, WK_EMBED_MOCK_DIMS floats, scaled to length 1. Texts sharing words
 *                     score high; for tests, demos and the benchmark.
 * Other providers have no embeddings endpoint: the call fails to start, saying so.
 *
 * Threads: wk_embed from any thread; done() exactly once, never inside wk_embed, on the HTTP
 * thread or the timer thread. */
#ifndef AGENTRY_WORKER_EMBED_H
#define AGENTRY_WORKER_EMBED_H

#include <stdint.h>

#include "common/err.h"
#include "worker/call.h"

#define WK_EMBED_MOCK_DIMS 256
#define WK_EMBED_MAX_DIMS 4096   /* the hub's limit on a vector (hub/memory.h) */
#define WK_EMBED_MAX_INPUT 65536 /* bytes of text embedded at most (a memory value's limit) */

/* vec: owned by the callee (free()), dims floats; NULL with err on failure. */
typedef void wk_embed_done_fn(void *arg, float *vec, uint32_t dims, const struct ag_err *err);

/* 0: done() will run; -1 with err: it will not (INVALID_ARGUMENT for a model no provider serves,
 * FAILED_PRECONDITION when ctx lacks the node's options or HTTP client). */
int wk_embed(const struct wk_call_ctx *ctx, const char *model, const char *text,
             wk_embed_done_fn *done, void *arg, struct ag_err *err);

/* The mock's embedding of text into out[dims]. */
void wk_embed_mock(const char *text, float *out, uint32_t dims);

/* worker/model_http.c: the "openai" provider's embeddings request. config: that provider's node
 * options. As wk_embed. */
int wk_model_http_embed(const struct wk_config *config, const struct wk_call_ctx *ctx,
                        const char *model, const char *text, wk_embed_done_fn *done, void *arg,
                        struct ag_err *err);

#endif
