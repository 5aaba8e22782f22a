/* worker/model_wire_anthropic.c - the Anthropic Messages API wire format (/v1/messages), as the
 * contract in worker/model_wire.h says.
 *
 * Request: {"model", "max_tokens", "system", "messages", "tools", "temperature", "stream"}.
 * max_tokens is always sent (the API requires it): the spec's, else 4096. The model id is
 * required too: an empty one is INVALID_ARGUMENT. Messages must alternate user/assistant, so the
 * conversation is folded: every message becomes content blocks, and blocks for the same role as
 * the message before join it. Tool results are "tool_result" blocks of a user message, so
 * consecutive tool results, and a user text next to them, make one user message (results
 * first, as the API wants, even when the text came between the call and its results). An
 * assistant message becomes a text block (when it has text) and a "tool_use" block per call; an
 * assistant message with neither is left out (it says nothing, and the API refuses empty text).
 * A call's arguments become the tool_use "input" object; arguments that are not a JSON object
 * (the model wrote them malformed) are sent as {}: the API accepts nothing else, and the tool
 * result that follows already tells the model its arguments were wrong. A tool message without
 * the id of its call, or an unknown role, is INVALID_ARGUMENT.
 *
 * Reply: text blocks concatenated, tool_use blocks as calls whose arguments are the input object
 * printed as JSON; other blocks (thinking) are skipped. Input tokens count the cache reads and
 * writes too, when the API reports them: they were all sent to the model.
 *
 * Stream: events named by their data's "type": message_start (input tokens),
 * content_block_start / _delta / _stop (text_delta is text; input_json_delta pieces of a tool_use
 * block are concatenated), message_delta (output tokens so far), message_stop (the end), ping and
 * unknown events ignored (the API may add some), error -> UNAVAILABLE with the API's message. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h"
#include "worker/model_wire_internal.h"

#define WIRE "anthropic"
#define DEFAULT_MAX_TOKENS 4096

/* The content array to add role's blocks to: the last message's if it has this role, else a new
 * message's. */
static cJSON *blocks_for(cJSON *msgs, const char *role)
{
    cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const char *last_role = wk_wire__str(last, "role");
    if (last_role && strcmp(last_role, role) == 0)
        return cJSON_GetObjectItemCaseSensitive(last, "content");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON *blocks = cJSON_AddArrayToObject(m, "content");
    cJSON_AddItemToArray(msgs, m);
    return blocks;
}

static void add_text_block(cJSON *blocks, const char *text)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", text);
    cJSON_AddItemToArray(blocks, b);
}

static void add_tool_use(cJSON *blocks, const struct wk_tool_call *c)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_use");
    cJSON_AddStringToObject(b, "id", wk_wire__or_empty(c->id));
    cJSON_AddStringToObject(b, "name", wk_wire__or_empty(c->name));
    cJSON *input = c->arguments ? cJSON_Parse(c->arguments) : NULL;
    if (!cJSON_IsObject(input)) {
        cJSON_Delete(input);
        input = cJSON_CreateObject();
    }
    cJSON_AddItemToObject(b, "input", input);
    cJSON_AddItemToArray(blocks, b);
}

/* The API wants a user message's tool results before its text: a result goes after the results
 * already there, ahead of any text (an input delivered while the tools ran). */
static void add_tool_result(cJSON *blocks, cJSON *result)
{
    int at = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, blocks)
    {
        const char *type = wk_wire__str(b, "type");
        if (!type || strcmp(type, "tool_result") != 0)
            break;
        at++;
    }
    /* Moved rather than inserted: the cJSON we build with (1.7.15) refuses to insert before a
     * later item (cJSON_InsertItemInArray returns false). */
    cJSON *text = cJSON_CreateArray();
    while (cJSON_GetArraySize(blocks) > at)
        cJSON_AddItemToArray(text, cJSON_DetachItemFromArray(blocks, at));
    cJSON_AddItemToArray(blocks, result);
    while (cJSON_GetArraySize(text) > 0)
        cJSON_AddItemToArray(blocks, cJSON_DetachItemFromArray(text, 0));
    cJSON_Delete(text);
}

static int add_msg(cJSON *msgs, const struct wk_msg *m, size_t i, struct ag_err *err)
{
    const char *role = wk_wire__or_empty(m->role);
    const char *content = wk_wire__or_empty(m->content);
    if (strcmp(role, "user") == 0) {
        cJSON *blocks = blocks_for(msgs, "user");
        /* Never an empty message; an empty text joining others would be refused. */
        if (*content || cJSON_GetArraySize(blocks) == 0)
            add_text_block(blocks, content);
    } else if (strcmp(role, "assistant") == 0) {
        if (!*content && m->ncalls == 0)
            return 0;
        cJSON *blocks = blocks_for(msgs, "assistant");
        if (*content)
            add_text_block(blocks, content);
        for (size_t k = 0; k < m->ncalls; k++)
            add_tool_use(blocks, &m->calls[k]);
    } else if (strcmp(role, "tool") == 0 && m->tool_call_id) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_result");
        cJSON_AddStringToObject(b, "tool_use_id", m->tool_call_id);
        cJSON_AddStringToObject(b, "content", content);
        add_tool_result(blocks_for(msgs, "user"), b);
    } else if (strcmp(role, "tool") == 0) {
        return ag_err_set(
            err, AG_INVALID_ARGUMENT,
            "cannot send message %zu to " WIRE ": a tool result needs the id of its tool call", i);
    } else {
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "cannot send message %zu to " WIRE
                          ": role '%s' is not user, assistant or tool",
                          i, role);
    }
    return 0;
}

static int add_tools(cJSON *root, const struct wk_chat_req *req, struct ag_err *err)
{
    if (req->ntools == 0)
        return 0;
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    for (size_t i = 0; i < req->ntools; i++) {
        const struct wk_chat_tool *t = &req->tools[i];
        cJSON *schema = wk_wire__tool_schema(WIRE, t, err);
        if (!schema)
            return -1;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", wk_wire__or_empty(t->name));
        if (t->description && *t->description)
            cJSON_AddStringToObject(j, "description", t->description);
        cJSON_AddItemToObject(j, "input_schema", schema);
        cJSON_AddItemToArray(tools, j);
    }
    return 0;
}

static char *anthropic_request_body(const struct wk_chat_req *req, bool stream, struct ag_err *err)
{
    if (!req->model || !*req->model) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "the " WIRE " API needs a model id: set the spec's model to "
                   "'anthropic/<model>'");
        return NULL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", req->model);
    uint32_t max_tokens = req->settings.max_tokens;
    cJSON_AddNumberToObject(root, "max_tokens", max_tokens ? max_tokens : DEFAULT_MAX_TOKENS);
    if (req->system_prompt && *req->system_prompt)
        cJSON_AddStringToObject(root, "system", req->system_prompt);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    for (size_t i = 0; i < req->nmsgs; i++)
        if (add_msg(msgs, &req->msgs[i], i, err) != 0)
            goto fail;
    if (add_tools(root, req, err) != 0)
        goto fail;
    if (req->settings.temperature_set)
        cJSON_AddNumberToObject(root, "temperature", req->settings.temperature);
    if (stream)
        cJSON_AddTrueToObject(root, "stream");
    char *body = wk_wire__print(root);
    cJSON_Delete(root);
    return body;
fail:
    cJSON_Delete(root);
    return NULL;
}

static size_t anthropic_headers(const char *api_key, char **out, size_t cap)
{
    size_t n = wk_wire__key_header("x-api-key: ", api_key, out, cap);
    if (n < cap)
        out[n++] = ag_xstrdup("anthropic-version: 2023-06-01");
    return n;
}

static uint64_t input_tokens(const cJSON *usage)
{
    return wk_wire__u64(usage, "input_tokens") +
           wk_wire__u64(usage, "cache_creation_input_tokens") +
           wk_wire__u64(usage, "cache_read_input_tokens");
}

/* An error the API sent ({"type":"error","error":{"type","message"}}): -1 with UNAVAILABLE. */
static int api_error(const cJSON *root, const char *where, struct ag_err *err)
{
    char *msg = wk_wire__error_text(root);
    const char *type = wk_wire__str(cJSON_GetObjectItemCaseSensitive(root, "error"), "type");
    ag_err_set(err, AG_UNAVAILABLE, "the " WIRE " %s reported an error: %s%s%s%s", where,
               msg ? msg : "(no message)", type ? " (" : "", type ? type : "", type ? ")" : "");
    free(msg);
    return -1;
}

static bool is_error(const cJSON *root)
{
    const char *type = wk_wire__str(root, "type");
    return (type && strcmp(type, "error") == 0) || cJSON_HasObjectItem(root, "error");
}

static void add_block(struct wk_chat_reply *r, struct wk_wire__buf *text, const cJSON *b)
{
    const char *type = wk_wire__str(b, "type");
    if (!type)
        return;
    const char *s = wk_wire__str(b, "text");
    if (strcmp(type, "text") == 0 && s) {
        wk_wire__buf_add(text, s, strlen(s));
    } else if (strcmp(type, "tool_use") == 0) {
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
        const char *id = wk_wire__str(b, "id");
        char *made = id && *id ? NULL : ag_xasprintf("call_%zu", r->ncalls + 1);
        wk_wire__reply_add_call(r, made ? made : id, wk_wire__str(b, "name"),
                                input ? wk_wire__print(input) : ag_xstrdup("{}"));
        free(made);
    }
}

static struct wk_chat_reply *anthropic_parse_reply(const char *body, size_t len, struct ag_err *err)
{
    cJSON *root = wk_wire__parse(WIRE, "reply", body, len, err);
    if (!root)
        return NULL;
    struct wk_chat_reply *r = NULL;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (is_error(root)) {
        api_error(root, "reply", err);
        goto fail;
    }
    if (!cJSON_IsArray(content)) {
        ag_err_set(err, AG_UNKNOWN, "the " WIRE " reply has no content array");
        goto fail;
    }
    r = ag_xcalloc(1, sizeof(*r));
    struct wk_wire__buf text = {0};
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const char *type = wk_wire__str(b, "type");
        const char *name = wk_wire__str(b, "name");
        if (type && strcmp(type, "tool_use") == 0 && (!name || !*name)) {
            free(text.p);
            ag_err_set(err, AG_UNKNOWN, "the " WIRE " reply's tool_use block %zu has no name",
                       r->ncalls + 1);
            goto fail;
        }
        add_block(r, &text, b);
    }
    r->content = text.p ? text.p : ag_xstrdup("");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    r->input_tokens = input_tokens(usage);
    r->output_tokens = wk_wire__u64(usage, "output_tokens");
    cJSON_Delete(root);
    return r;
fail:
    wk_chat_reply_free(r);
    cJSON_Delete(root);
    return NULL;
}

/* The block index of a content_block_* event, or -1 with err. */
static int event_index(const cJSON *root, const char *type, long *index, struct ag_err *err)
{
    if (wk_wire__index(cJSON_GetObjectItemCaseSensitive(root, "index"), index))
        return 0;
    return ag_err_set(err, AG_UNKNOWN, "the " WIRE " stream's %s event has no valid block index",
                      type);
}

static int block_start(struct wk_wire_stream *s, const cJSON *root, wk_wire_text_fn *on_text,
                       void *arg, struct ag_err *err)
{
    long index;
    if (event_index(root, "content_block_start", &index, err) != 0)
        return -1;
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(root, "content_block");
    const char *type = wk_wire__or_empty(wk_wire__str(block, "type"));
    struct wk_wire__part *p = wk_wire__part_get(s, index);
    if (strcmp(type, "tool_use") == 0) {
        const char *name = wk_wire__str(block, "name"), *id = wk_wire__str(block, "id");
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(block, "input");
        p->is_call = true;
        if (!p->name && name)
            p->name = ag_xstrdup(name);
        if (!p->id && id && *id)
            p->id = ag_xstrdup(id);
        if (!p->start_input && cJSON_IsObject(input))
            p->start_input = wk_wire__print(input);
    } else if (strcmp(type, "text") == 0) {
        const char *text = wk_wire__str(block, "text");
        if (text)
            wk_wire__stream_text(s, text, on_text, arg);
    }
    return 0;
}

static int block_delta(struct wk_wire_stream *s, const cJSON *root, wk_wire_text_fn *on_text,
                       void *arg, struct ag_err *err)
{
    long index;
    if (event_index(root, "content_block_delta", &index, err) != 0)
        return -1;
    struct wk_wire__part *p = wk_wire__part_find(s, index);
    if (!p)
        return ag_err_set(err, AG_UNKNOWN,
                          "the " WIRE " stream sent a delta for block %ld before its start", index);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(root, "delta");
    const char *type = wk_wire__or_empty(wk_wire__str(delta, "type"));
    const char *text = wk_wire__str(delta, "text");
    const char *json = wk_wire__str(delta, "partial_json");
    if (strcmp(type, "text_delta") == 0 && text)
        wk_wire__stream_text(s, text, on_text, arg);
    else if (strcmp(type, "input_json_delta") == 0 && json && p->is_call)
        wk_wire__buf_add(&p->args, json, strlen(json));
    return 0;
}

static void message_usage(struct wk_wire_stream *s, const cJSON *usage)
{
    /* message_start holds the input count; message_delta's counts are cumulative. */
    if (cJSON_HasObjectItem(usage, "input_tokens"))
        s->input_tokens = input_tokens(usage);
    if (cJSON_HasObjectItem(usage, "output_tokens"))
        s->output_tokens = wk_wire__u64(usage, "output_tokens");
}

static int anthropic_stream_event(struct wk_wire_stream *s, const char *event, const char *data,
                                  size_t len, wk_wire_text_fn *on_text, void *arg,
                                  struct ag_err *err)
{
    if (len == 0)
        return 0;
    cJSON *root = wk_wire__parse(WIRE, "stream event", data, len, err);
    if (!root)
        return -1;
    const char *type = wk_wire__str(root, "type");
    if (!type)
        type = wk_wire__or_empty(event);
    int rc = 0;
    if (strcmp(type, "error") == 0)
        rc = api_error(root, "stream", err);
    else if (strcmp(type, "message_start") == 0)
        message_usage(s, cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetObjectItemCaseSensitive(root, "message"), "usage"));
    else if (strcmp(type, "content_block_start") == 0)
        rc = block_start(s, root, on_text, arg, err);
    else if (strcmp(type, "content_block_delta") == 0)
        rc = block_delta(s, root, on_text, arg, err);
    else if (strcmp(type, "message_delta") == 0)
        message_usage(s, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    else if (strcmp(type, "message_stop") == 0)
        rc = 1;
    cJSON_Delete(root);
    return rc;
}

static struct wk_chat_reply *anthropic_stream_finish(struct wk_wire_stream *s, bool complete,
                                                     struct ag_err *err)
{
    return wk_wire__stream_reply(s, WIRE, complete, err);
}

const struct wk_wire wk_wire_anthropic = {
    .name = WIRE,
    .path = "/messages",
    .default_base_url = "https://api.anthropic.com/v1",
    .request_body = anthropic_request_body,
    .headers = anthropic_headers,
    .parse_reply = anthropic_parse_reply,
    .error_message = wk_wire__error_message,
    .stream_new = wk_wire__stream_new,
    .stream_event = anthropic_stream_event,
    .stream_finish = anthropic_stream_finish,
    .stream_free = wk_wire__stream_free,
};
