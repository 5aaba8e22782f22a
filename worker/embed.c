/* worker/embed.c - picks how a text becomes a vector (see embed.h): the mock's local embedding
 * here, a provider's endpoint through worker/model_http.c.
 *
 * The mock: each word (a run of letters and digits, lower-cased) is hashed (FNV-1a) to one of
 * dims slots and a sign, and added there; the sum is scaled to length 1. Words shared make a
 * high cosine, none a cosine near 0, and the same text always gives the same vector.
 *
 * Threads: no state; done() of a mock embedding runs on the timer thread (wk_call_after). */
#include "worker/embed.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/map.h"
#include "common/xalloc.h"
#include "worker/model.h"

void wk_embed_mock(const char *text, float *out, uint32_t dims)
{
    memset(out, 0, dims * sizeof(float));
    char word[64];
    size_t n = 0;
    for (const char *p = text;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c && (isalnum(c) || c >= 0x80)) {
            if (n + 1 < sizeof(word))
                word[n++] = (char)tolower(c);
            continue;
        }
        if (n) {
            uint64_t h = ag_hash_fnv1a(word, n);
            out[h % dims] += (h >> 63) ? -1.0f : 1.0f;
            n = 0;
        }
        if (!c)
            break;
    }
    double sum = 0;
    for (uint32_t i = 0; i < dims; i++)
        sum += (double)out[i] * out[i];
    if (sum > 0)
        for (uint32_t i = 0; i < dims; i++)
            out[i] = (float)(out[i] / sqrt(sum));
}

struct mock_embed {
    float *vec; /* owned until done() */
    wk_embed_done_fn *done;
    void *arg;
};

static void mock_fire(void *p, enum ag_code code)
{
    struct mock_embed *m = p;
    if (code == AG_OK) {
        m->done(m->arg, m->vec, WK_EMBED_MOCK_DIMS, NULL);
    } else {
        struct ag_err err = AG_ERR_INIT;
        ag_err_set(&err, code,
                   code == AG_CANCELLED ? "embedding cancelled" : "embedding timed out");
        free(m->vec);
        m->done(m->arg, NULL, 0, &err);
    }
    free(m);
}

int wk_embed(const struct wk_call_ctx *ctx, const char *model, const char *text,
             wk_embed_done_fn *done, void *arg, struct ag_err *err)
{
    const char *id = NULL;
    const struct wk_provider_row *row = wk_model_find(model, &id);
    if (!row)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "embedding model '%.80s' names no provider of this node", model);
    if (strcmp(row->name, "mock") == 0) {
        if (!ctx->timers)
            return ag_err_set(err, AG_FAILED_PRECONDITION, "the mock embedding needs timers");
        struct mock_embed *m = ag_xcalloc(1, sizeof(*m));
        m->vec = ag_xmalloc(WK_EMBED_MOCK_DIMS * sizeof(float));
        wk_embed_mock(text, m->vec, WK_EMBED_MOCK_DIMS);
        m->done = done;
        m->arg = arg;
        wk_call_after(ctx, 0, mock_fire, m);
        return 0;
    }
    if (strcmp(row->name, "openai") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "embedding model '%.80s': provider '%s' has no embeddings endpoint; "
                          "use an OpenAI-compatible one (openai/<model>) or mock",
                          model, row->name);
    if (!ctx->configs)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "embedding model '%.80s': the node's provider options are not given",
                          model);
    return wk_model_http_embed(&ctx->configs->models[row - wk_model_providers], ctx, id, text, done,
                               arg, err);
}
