/* worker/model_wire_openai.c - the OpenAI-compatible /chat/completions wire format (OpenAI,
 * vLLM, Ollama, llama.cpp server, LiteLLM), as the contract in worker/model_wire.h says.
 *
 * Request: {"model", "messages", "tools", "temperature", "max_tokens", "stream",
 * "stream_options"}, each optional field sent only when set: the system prompt first as a
 * "system" message, assistant tool calls as tool_calls[] with their arguments string verbatim
 * (content null when the message has calls and no text), tool results as "tool" messages. An
 * empty model id is left out (servers with one model, such as llama.cpp's, need none; the others
 * answer with an error that names the field). A tool message without a tool_call_id, or a role
 * other than user/assistant/tool, cannot be expressed: INVALID_ARGUMENT.
 *
 * Reply: choices[0].message: content (null -> "", an array of text parts is joined), tool_calls
 * (a call without an id gets "call_<n>", arguments given as an object are printed, missing ones
 * are "{}"), usage.prompt_tokens / completion_tokens.
 *
 * Stream: one JSON chunk per event; choices[0].delta.content is text, delta.tool_calls[] are
 * fragments keyed by "index" (id and name come in the first, the first non-empty value is kept;
 * "arguments" pieces are concatenated). A fragment without an index continues the call with its
 * id, else the last call. The usage chunk has empty choices. "[DONE]" ends the reply; an "error"
 * object in a chunk fails the call with UNAVAILABLE and the API's message.
 *
 * Embeddings (the memory tools, worker/embed.c): POST /embeddings {"model", "input"}; the reply's
 * data[0].embedding is the vector. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h"
#include "worker/model_wire_internal.h"

#define WIRE "openai"

static cJSON *tool_calls_json(const struct wk_msg *m)
{
    cJSON *calls = cJSON_CreateArray();
    for (size_t i = 0; i < m->ncalls; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", wk_wire__or_empty(m->calls[i].id));
        cJSON_AddStringToObject(c, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(fn, "name", wk_wire__or_empty(m->calls[i].name));
        cJSON_AddStringToObject(fn, "arguments", wk_wire__or_empty(m->calls[i].arguments));
        cJSON_AddItemToArray(calls, c);
    }
    return calls;
}

/* Message i of the conversation as OpenAI wants it, or NULL with err. */
static cJSON *msg_json(const struct wk_msg *m, size_t i, struct ag_err *err)
{
    const char *role = wk_wire__or_empty(m->role);
    const char *content = wk_wire__or_empty(m->content);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "role", role);
    if (strcmp(role, "user") == 0) {
        cJSON_AddStringToObject(j, "content", content);
    } else if (strcmp(role, "assistant") == 0) {
        if (m->ncalls > 0 && !*content)
            cJSON_AddNullToObject(j, "content");
        else
            cJSON_AddStringToObject(j, "content", content);
        if (m->ncalls > 0)
            cJSON_AddItemToObject(j, "tool_calls", tool_calls_json(m));
    } else if (strcmp(role, "tool") == 0 && m->tool_call_id) {
        cJSON_AddStringToObject(j, "tool_call_id", m->tool_call_id);
        cJSON_AddStringToObject(j, "content", content);
    } else {
        cJSON_Delete(j);
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   strcmp(role, "tool") == 0
                       ? "cannot send message %zu to " WIRE ": a tool result needs the id of "
                         "its tool call"
                       : "cannot send message %zu to " WIRE ": role '%s' is not user, "
                         "assistant or tool",
                   i, role);
        return NULL;
    }
    return j;
}

static cJSON *tool_json(const struct wk_chat_tool *t, struct ag_err *err)
{
    cJSON *schema = wk_wire__tool_schema(WIRE, t, err);
    if (!schema)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(j, "function");
    cJSON_AddStringToObject(fn, "name", wk_wire__or_empty(t->name));
    if (t->description && *t->description)
        cJSON_AddStringToObject(fn, "description", t->description);
    cJSON_AddItemToObject(fn, "parameters", schema);
    return j;
}

/* The messages and tools arrays into root; -1 with err. */
static int add_conversation(cJSON *root, const struct wk_chat_req *req, struct ag_err *err)
{
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (req->system_prompt && *req->system_prompt) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", req->system_prompt);
        cJSON_AddItemToArray(msgs, sys);
    }
    for (size_t i = 0; i < req->nmsgs; i++) {
        cJSON *m = msg_json(&req->msgs[i], i, err);
        if (!m)
            return -1;
        cJSON_AddItemToArray(msgs, m);
    }
    if (req->ntools == 0)
        return 0;
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    for (size_t i = 0; i < req->ntools; i++) {
        cJSON *t = tool_json(&req->tools[i], err);
        if (!t)
            return -1;
        cJSON_AddItemToArray(tools, t);
    }
    return 0;
}

static char *openai_request_body(const struct wk_chat_req *req, bool stream, struct ag_err *err)
{
    cJSON *root = cJSON_CreateObject();
    if (req->model && *req->model)
        cJSON_AddStringToObject(root, "model", req->model);
    if (add_conversation(root, req, err) != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    if (req->settings.temperature_set)
        cJSON_AddNumberToObject(root, "temperature", req->settings.temperature);
    if (req->settings.max_tokens > 0)
        cJSON_AddNumberToObject(root, "max_tokens", req->settings.max_tokens);
    if (stream) {
        cJSON_AddTrueToObject(root, "stream");
        /* Without it the stream carries no token counts, and budgets need them. */
        cJSON *opts = cJSON_AddObjectToObject(root, "stream_options");
        cJSON_AddTrueToObject(opts, "include_usage");
    }
    char *body = wk_wire__print(root);
    cJSON_Delete(root);
    return body;
}

static size_t openai_headers(const char *api_key, char **out, size_t cap)
{
    return wk_wire__key_header("Authorization: Bearer ", api_key, out, cap);
}

/* A message's content: a string, null, or (some servers) an array of {"type":"text","text"}. */
static char *content_text(const cJSON *content)
{
    if (cJSON_IsString(content))
        return ag_xstrdup(content->valuestring);
    struct wk_wire__buf b = {0};
    const cJSON *part;
    cJSON_ArrayForEach(part, (cJSON_IsArray(content) ? content : NULL))
    {
        const char *text = wk_wire__str(part, "text");
        if (text)
            wk_wire__buf_add(&b, text, strlen(text));
    }
    return b.p ? b.p : ag_xstrdup("");
}

/* A whole call's arguments: the string verbatim, an object printed, missing -> "{}". */
static char *arguments_text(const cJSON *args)
{
    if (cJSON_IsString(args))
        return ag_xstrdup(args->valuestring);
    if (cJSON_IsObject(args))
        return wk_wire__print(args);
    return ag_xstrdup("{}");
}

static int add_calls(struct wk_chat_reply *r, const cJSON *calls, struct ag_err *err)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, (cJSON_IsArray(calls) ? calls : NULL))
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const char *name = wk_wire__str(fn, "name");
        if (!name || !*name)
            return ag_err_set(err, AG_UNKNOWN, "the " WIRE " reply's tool call %zu has no name",
                              r->ncalls + 1);
        const char *id = wk_wire__str(c, "id");
        char *made = id && *id ? NULL : ag_xasprintf("call_%zu", r->ncalls + 1);
        wk_wire__reply_add_call(r, made ? made : id, name,
                                arguments_text(cJSON_GetObjectItemCaseSensitive(fn, "arguments")));
        free(made);
    }
    return 0;
}

/* The API's error inside a 2xx body or a stream chunk: -1 with UNAVAILABLE; 0 if none. */
static int api_error(const cJSON *root, const char *where, struct ag_err *err)
{
    if (!cJSON_GetObjectItemCaseSensitive(root, "error"))
        return 0;
    char *msg = wk_wire__error_text(root);
    ag_err_set(err, AG_UNAVAILABLE, "the " WIRE " %s reported an error: %s", where,
               msg ? msg : "(no message)");
    free(msg);
    return -1;
}

static struct wk_chat_reply *openai_parse_reply(const char *body, size_t len, struct ag_err *err)
{
    cJSON *root = wk_wire__parse(WIRE, "reply", body, len, err);
    if (!root)
        return NULL;
    struct wk_chat_reply *r = NULL;
    if (api_error(root, "reply", err) != 0)
        goto fail;
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(msg)) {
        ag_err_set(err, AG_UNKNOWN, "the " WIRE " reply has no choices[0].message");
        goto fail;
    }
    r = ag_xcalloc(1, sizeof(*r));
    r->content = content_text(cJSON_GetObjectItemCaseSensitive(msg, "content"));
    if (add_calls(r, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), err) != 0)
        goto fail;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    r->input_tokens = wk_wire__u64(usage, "prompt_tokens");
    r->output_tokens = wk_wire__u64(usage, "completion_tokens");
    cJSON_Delete(root);
    return r;
fail:
    wk_chat_reply_free(r);
    cJSON_Delete(root);
    return NULL;
}

/* The call a fragment continues, or a new one (see the top comment); NULL for a bad index. */
static struct wk_wire__part *fragment_part(struct wk_wire_stream *s, const cJSON *frag)
{
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(frag, "index");
    long at;
    if (index && !cJSON_IsNull(index))
        return wk_wire__index(index, &at) ? wk_wire__part_get(s, at) : NULL;
    const char *id = wk_wire__str(frag, "id");
    long next = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        if (id && s->parts[i].id && strcmp(s->parts[i].id, id) == 0)
            return &s->parts[i];
        if (s->parts[i].index >= next)
            next = s->parts[i].index + 1;
    }
    if (!id && s->nparts > 0)
        return &s->parts[s->nparts - 1];
    return wk_wire__part_get(s, next);
}

static int add_fragment(struct wk_wire_stream *s, const cJSON *frag, struct ag_err *err)
{
    struct wk_wire__part *p = fragment_part(s, frag);
    if (!p)
        return ag_err_set(err, AG_UNKNOWN,
                          "the " WIRE " stream sent a tool call fragment whose index is not a "
                          "small non-negative integer");
    p->is_call = true;
    const char *id = wk_wire__str(frag, "id");
    if (!p->id && id && *id)
        p->id = ag_xstrdup(id);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(frag, "function");
    const char *name = wk_wire__str(fn, "name");
    if (!p->name && name && *name)
        p->name = ag_xstrdup(name);
    const char *args = wk_wire__str(fn, "arguments");
    if (args)
        wk_wire__buf_add(&p->args, args, strlen(args));
    return 0;
}

static int openai_stream_event(struct wk_wire_stream *s, const char *event, const char *data,
                               size_t len, wk_wire_text_fn *on_text, void *arg, struct ag_err *err)
{
    (void)event; /* OpenAI-compatible servers name no events; the data says it all */
    while (len > 0 && (data[len - 1] == ' ' || data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len == 0)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return 1;
    cJSON *root = wk_wire__parse(WIRE, "stream chunk", data, len, err);
    if (!root)
        return -1;
    if (api_error(root, "stream", err) != 0) {
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    const char *text = wk_wire__str(delta, "content");
    if (text)
        wk_wire__stream_text(s, text, on_text, arg);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    const cJSON *frag;
    cJSON_ArrayForEach(frag, (cJSON_IsArray(calls) ? calls : NULL))
    {
        if (add_fragment(s, frag, err) != 0) {
            cJSON_Delete(root);
            return -1;
        }
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        s->input_tokens = wk_wire__u64(usage, "prompt_tokens");
        s->output_tokens = wk_wire__u64(usage, "completion_tokens");
    }
    cJSON_Delete(root);
    return 0;
}

static struct wk_chat_reply *openai_stream_finish(struct wk_wire_stream *s, bool complete,
                                                  struct ag_err *err)
{
    return wk_wire__stream_reply(s, WIRE, complete, err);
}

const struct wk_wire wk_wire_openai = {
    .name = WIRE,
    .path = "/chat/completions",
    .default_base_url = "https://api.openai.com/v1",
    .request_body = openai_request_body,
    .headers = openai_headers,
    .parse_reply = openai_parse_reply,
    .error_message = wk_wire__error_message,
    .stream_new = wk_wire__stream_new,
    .stream_event = openai_stream_event,
    .stream_finish = openai_stream_finish,
    .stream_free = wk_wire__stream_free,
};

char *wk_wire_openai_embed_body(const char *model, const char *input)
{
    cJSON *root = cJSON_CreateObject();
    if (model && *model)
        cJSON_AddStringToObject(root, "model", model);
    cJSON_AddStringToObject(root, "input", input ? input : "");
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return body;
}

float *wk_wire_openai_parse_embedding(const char *body, size_t len, uint32_t max_dims,
                                      uint32_t *dims, struct ag_err *err)
{
    cJSON *root = wk_wire__parse(WIRE, "embeddings reply", body, len, err);
    if (!root)
        return NULL;
    float *v = NULL;
    if (api_error(root, "embeddings reply", err) != 0)
        goto done;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "data"), 0);
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(first, "embedding");
    int n = cJSON_IsArray(emb) ? cJSON_GetArraySize(emb) : 0;
    if (n < 1 || (uint32_t)n > max_dims) {
        ag_err_set(err, AG_UNKNOWN,
                   "the " WIRE " embeddings reply has no data[0].embedding of 1 to %u numbers",
                   max_dims);
        goto done;
    }
    v = ag_xmalloc((size_t)n * sizeof(float));
    int i = 0;
    for (const cJSON *e = emb->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
            ag_err_set(err, AG_UNKNOWN, "the " WIRE " embeddings reply's value %d is no number", i);
            free(v);
            v = NULL;
            goto done;
        }
        v[i] = (float)e->valuedouble;
    }
    *dims = (uint32_t)n;
done:
    cJSON_Delete(root);
    return v;
}
