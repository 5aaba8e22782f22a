/* worker/tool_memory.c - memory_put and memory_search on the node: hub tools (worker/hub_call.h)
 * whose entries the hub stores (hub/memory.c; docs/memory.md). memory_get, memory_list and
 * memory_delete need nothing from the node: their rows run worker/tool_hub.c's forwarding.
 *
 * Both forward the model's arguments to the hub after computing an embedding here, on the node,
 * where the providers' keys live (worker/embed.h): memory_put of its "value" (added as "vector",
 * so memory_search can find the entry), memory_search of its "query" (the hub searches with that
 * "vector"). The embedding model is the agent's
 * tool_settings.memory_search.embedding_model, else the node's option
 * memory_search.embedding_model; with neither, memory_put stores no vector and memory_search
 * fails, saying how to set one.
 *
 * Both are idempotent (a replayed call does what the first did: the same value put again, a
 * search searched again), so a call whose node was lost runs again.
 *
 * Threads: run() from any thread; done() from the connection's, HTTP or timer thread, never
 * inside run(). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h"
#include "worker/embed.h"
#include "worker/hub_call.h"
#include "worker/run_spec.h"
#include "worker/tool.h"
#include "worker/tool_rows.h"

static const char *const search_keys[] = {"embedding_model", NULL};

/* One call from run() to done(). */
struct mem_call {
    char *name;             /* owned: the tool */
    cJSON *args;            /* owned: the model's arguments, a vector added */
    struct wk_call_ctx ctx; /* copied; its pointers valid until done() */
    wk_tool_done_fn *done;
    void *arg;
};

static void mem_call_free(struct mem_call *m)
{
    free(m->name);
    cJSON_Delete(m->args);
    free(m);
}

static void on_hub_done(void *arg, char *output, bool is_error, bool wait)
{
    (void)wait; /* wait_agent's alone */
    struct mem_call *m = arg;
    m->done(m->arg, output, is_error);
    mem_call_free(m);
}

/* Sends the call to the hub; -1 with err when it could not (done() then never runs). */
static int forward(struct mem_call *m, struct ag_err *err)
{
    char *text = cJSON_PrintUnformatted(m->args);
    int rc = wk_hub_call(&m->ctx, m->name, text, on_hub_done, m, err);
    free(text);
    return rc;
}

static void on_embedded(void *arg, float *vec, uint32_t dims, const struct ag_err *err)
{
    struct mem_call *m = arg;
    struct ag_err e = AG_ERR_INIT;
    if (vec) {
        cJSON_DeleteItemFromObjectCaseSensitive(m->args, "vector");
        cJSON *v = cJSON_AddArrayToObject(m->args, "vector");
        for (uint32_t i = 0; i < dims; i++)
            cJSON_AddItemToArray(v, cJSON_CreateNumber(vec[i]));
        free(vec);
        if (forward(m, &e) == 0)
            return;
    } else {
        e = *err;
    }
    m->done(m->arg, ag_xasprintf("tool '%s' failed: %s", m->name, e.msg), true);
    mem_call_free(m);
}

/* The embedding model for this agent (owned): its memory_search settings, else the node's
 * option; NULL: none. The settings were checked when the turn started (check_settings). */
static char *embedding_model(const struct wk_call_ctx *ctx)
{
    const char *settings = ctx->spec ? wk_run_spec_tool_settings(ctx->spec, "memory_search") : NULL;
    cJSON *s = settings ? cJSON_Parse(settings) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "embedding_model");
    char *out = cJSON_IsString(m) && *m->valuestring ? ag_xstrdup(m->valuestring) : NULL;
    cJSON_Delete(s);
    if (out || !ctx->configs)
        return out;
    const struct wk_tool *t = wk_tool_find("memory_search");
    const char *opt = t ? wk_config_get(&ctx->configs->tools[t - wk_tools], "embedding_model")
                        : NULL;
    return opt && *opt ? ag_xstrdup(opt) : NULL;
}

/* text_key: the argument to embed ("value", "query"); required: no model is an error. */
static int mem_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
                   const char *text_key, bool required, wk_tool_done_fn *done, void *arg,
                   struct ag_err *err)
{
    cJSON *args = cJSON_Parse(args_json ? args_json : "");
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "the arguments are not a JSON object");
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(args, text_key);
    char *model = embedding_model(ctx);
    if (required && (!cJSON_IsString(text) || !model)) {
        cJSON_Delete(args);
        free(model);
        if (!cJSON_IsString(text))
            return ag_err_set(err, AG_INVALID_ARGUMENT, "\"%s\" (a string) is required", text_key);
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "no embedding model: set tool_settings.memory_search.embedding_model in "
                          "the agent's spec (\"openai/<model>\" or \"mock\"), or start the node "
                          "with --tool-opt memory_search.embedding_model=MODEL");
    }
    struct mem_call *m = ag_xcalloc(1, sizeof(*m));
    m->name = ag_xstrdup(t->name);
    m->args = args;
    m->ctx = *ctx;
    m->done = done;
    m->arg = arg;
    bool embed = model && cJSON_IsString(text) && *text->valuestring &&
                 strlen(text->valuestring) <= WK_EMBED_MAX_INPUT;
    int rc = embed ? wk_embed(ctx, model, text->valuestring, on_embedded, m, err) : forward(m, err);
    free(model);
    if (rc != 0)
        mem_call_free(m);
    return rc;
}

int wk_tool__memory_put_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err)
{
    return mem_run(t, ctx, args_json, "value", false, done, arg, err);
}

int wk_tool__memory_search_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                               const char *args_json, wk_tool_done_fn *done, void *arg,
                               struct ag_err *err)
{
    return mem_run(t, ctx, args_json, "query", true, done, arg, err);
}

int wk_tool__memory_search_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_config_check_keys(c, search_keys, err);
}

int wk_tool__memory_search_check_settings(const char *settings_json, struct ag_err *err)
{
    cJSON *s = cJSON_Parse(settings_json ? settings_json : "");
    int rc = 0;
    if (!cJSON_IsObject(s)) {
        rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                        "tool_settings for memory_search must be a JSON object");
    } else {
        for (const cJSON *e = s->child; e && rc == 0; e = e->next)
            if (strcmp(e->string, "embedding_model") != 0 || !cJSON_IsString(e))
                rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                                "tool_settings for memory_search: unknown or malformed key "
                                "'%.64s'; it takes \"embedding_model\" (a string)",
                                e->string);
    }
    cJSON_Delete(s);
    return rc;
}
