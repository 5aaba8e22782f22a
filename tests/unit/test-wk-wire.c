/* tests/unit/test-wk-wire.c - the OpenAI and Anthropic wire formats (worker/model_wire*.c),
 * called directly: request bodies are parsed back and checked field by field, replies and
 * streamed event sequences are fed in as a server would send them, including the malformed and
 * the cut-short ones. No server, no threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/err.h"
#include "worker/model.h"
#include "worker/model_wire.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static struct wk_msg msg(const char *role, const char *content)
{
    struct wk_msg m = {(char *)role, (char *)content, NULL, 0, NULL};
    return m;
}

static struct wk_msg tool_msg(const char *id, const char *content)
{
    struct wk_msg m = {"tool", (char *)content, NULL, 0, (char *)id};
    return m;
}

static struct wk_tool_call two_calls[] = {
    {"call_a", "read_file", "{\"path\":\"a.txt\"}"},
    {"call_b", "echo", "{\"text\":\"hi\"}"},
};

static const struct wk_chat_tool tools[] = {
    {"echo", "Returns the text.",
     "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}"},
    {"nothing", "", ""},
};

static const cJSON *get(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(v);
    return v;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static const cJSON *at(const cJSON *a, int i)
{
    assert_true(cJSON_IsArray(a));
    const cJSON *v = cJSON_GetArrayItem(a, i);
    assert_non_null(v);
    return v;
}

static cJSON *body(const struct wk_wire *w, const struct wk_chat_req *req, bool stream)
{
    struct ag_err err = AG_ERR_INIT;
    char *b = w->request_body(req, stream, &err);
    if (!b)
        fail_msg("request_body: %s", err.msg);
    cJSON *j = cJSON_Parse(b);
    free(b);
    assert_non_null(j);
    return j;
}

/* The text given to on_text, concatenated, and how many times it was called. */
struct texts {
    char buf[4096];
    size_t len;
    int calls;
};

static void on_text(void *arg, const char *text, size_t len)
{
    struct texts *t = arg;
    assert_true(t->len + len < sizeof(t->buf));
    memcpy(t->buf + t->len, text, len);
    t->len += len;
    t->buf[t->len] = '\0';
    t->calls++;
}

struct ev {
    const char *event; /* NULL: no event field */
    const char *data;
};

/* Feeds events in order; returns the last rc, stopping at the first that is not 0. */
static int feed(const struct wk_wire *w, struct wk_wire_stream *s, const struct ev *evs, size_t n,
                struct texts *t, struct ag_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = w->stream_event(s, evs[i].event, evs[i].data, strlen(evs[i].data), on_text, t, err);
    return rc;
}

static void feed1(const struct wk_wire *w, struct wk_wire_stream *s, const char *event,
                  const char *data, struct texts *t)
{
    struct ag_err err = AG_ERR_INIT;
    int rc = w->stream_event(s, event, data, strlen(data), on_text, t, &err);
    if (rc != 0)
        fail_msg("event %s: rc %d: %s", data, rc, err.msg);
}

static struct wk_chat_reply *parse(const struct wk_wire *w, const char *b, struct ag_err *err)
{
    return w->parse_reply(b, strlen(b), err);
}

static void assert_parse_fails(const struct wk_wire *w, const char *b, enum ag_code code,
                               const char *needle)
{
    struct ag_err err = AG_ERR_INIT;
    assert_null(parse(w, b, &err));
    assert_int_equal(err.code, code);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' does not contain '%s'", err.msg, needle);
}

static const char utf8_text[] = "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80";

/* ---- openai ------------------------------------------------------------------------------- */

static void test_openai_request_full(void **state)
{
    (void)state;
    struct wk_msg msgs[] = {msg("user", "read a.txt and say hi"),
                            msg("assistant", ""),
                            tool_msg("call_a", "contents"),
                            tool_msg("call_b", "hi"),
                            msg("assistant", "done"),
                            msg("user", utf8_text)};
    msgs[1].calls = two_calls;
    msgs[1].ncalls = 2;
    struct wk_chat_req req = {
        .model = "gpt-4o",
        .system_prompt = "be brief",
        .msgs = msgs,
        .nmsgs = 6,
        .tools = tools,
        .ntools = 2,
        .settings = {.temperature_set = true, .temperature = 0.25, .max_tokens = 100}};
    cJSON *j = body(&wk_wire_openai, &req, true);
    assert_string_equal(str(j, "model"), "gpt-4o");
    assert_true(num(j, "temperature") == 0.25);
    assert_int_equal(num(j, "max_tokens"), 100);
    assert_true(cJSON_IsTrue(get(j, "stream")));
    assert_true(cJSON_IsTrue(get(get(j, "stream_options"), "include_usage")));

    const cJSON *m = get(j, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 7);
    assert_string_equal(str(at(m, 0), "role"), "system");
    assert_string_equal(str(at(m, 0), "content"), "be brief");
    assert_string_equal(str(at(m, 1), "role"), "user");
    assert_string_equal(str(at(m, 1), "content"), "read a.txt and say hi");
    const cJSON *a = at(m, 2);
    assert_string_equal(str(a, "role"), "assistant");
    assert_true(cJSON_IsNull(get(a, "content")));
    const cJSON *calls = get(a, "tool_calls");
    assert_int_equal(cJSON_GetArraySize(calls), 2);
    assert_string_equal(str(at(calls, 0), "id"), "call_a");
    assert_string_equal(str(at(calls, 0), "type"), "function");
    assert_string_equal(str(get(at(calls, 0), "function"), "name"), "read_file");
    /* Verbatim: a string, not an object. */
    assert_string_equal(str(get(at(calls, 0), "function"), "arguments"), "{\"path\":\"a.txt\"}");
    assert_string_equal(str(get(at(calls, 1), "function"), "name"), "echo");
    assert_string_equal(str(at(m, 3), "role"), "tool");
    assert_string_equal(str(at(m, 3), "tool_call_id"), "call_a");
    assert_string_equal(str(at(m, 3), "content"), "contents");
    assert_string_equal(str(at(m, 4), "tool_call_id"), "call_b");
    assert_string_equal(str(at(m, 5), "content"), "done");
    assert_null(cJSON_GetObjectItemCaseSensitive(at(m, 5), "tool_calls"));
    assert_string_equal(str(at(m, 6), "content"), utf8_text);

    const cJSON *t = get(j, "tools");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_string_equal(str(at(t, 0), "type"), "function");
    const cJSON *fn = get(at(t, 0), "function");
    assert_string_equal(str(fn, "name"), "echo");
    assert_string_equal(str(fn, "description"), "Returns the text.");
    assert_string_equal(str(get(get(get(fn, "parameters"), "properties"), "text"), "type"),
                        "string");
    fn = get(at(t, 1), "function");
    assert_null(cJSON_GetObjectItemCaseSensitive(fn, "description"));
    assert_string_equal(str(get(fn, "parameters"), "type"), "object");
    cJSON_Delete(j);
}

static void test_openai_request_minimal(void **state)
{
    (void)state;
    struct wk_msg msgs[] = {msg("user", "hi")};
    struct wk_chat_req req = {.model = "", .system_prompt = "", .msgs = msgs, .nmsgs = 1};
    char *b = wk_wire_openai.request_body(&req, false, NULL);
    assert_string_equal(b, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    free(b);
    req.model = "llama";
    req.settings.temperature_set = true; /* 0 is a temperature */
    cJSON *j = body(&wk_wire_openai, &req, false);
    assert_true(num(j, "temperature") == 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "max_tokens"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "stream"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "stream_options"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "tools"));
    cJSON_Delete(j);
}

static void assert_request_fails(const struct wk_wire *w, const struct wk_chat_req *req,
                                 const char *needle)
{
    struct ag_err err = AG_ERR_INIT;
    assert_null(w->request_body(req, false, &err));
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' does not contain '%s'", err.msg, needle);
}

static void test_request_errors(void **state)
{
    (void)state;
    const struct wk_wire *wires[] = {&wk_wire_openai, &wk_wire_anthropic};
    for (size_t i = 0; i < 2; i++) {
        struct wk_msg no_id[] = {msg("user", "x"), tool_msg(NULL, "out")};
        struct wk_chat_req req = {.model = "m", .msgs = no_id, .nmsgs = 2};
        assert_request_fails(wires[i], &req, "message 1");
        struct wk_msg bad_role[] = {msg("narrator", "x")};
        req.msgs = bad_role;
        req.nmsgs = 1;
        assert_request_fails(wires[i], &req, "role 'narrator'");
        struct wk_chat_tool bad_schema[] = {{"t", "", "{not json"}};
        struct wk_msg ok[] = {msg("user", "x")};
        req.msgs = ok;
        req.tools = bad_schema;
        req.ntools = 1;
        assert_request_fails(wires[i], &req, "tool 't'");
    }
}

static void test_headers(void **state)
{
    (void)state;
    char *h[4] = {0};
    assert_int_equal(wk_wire_openai.headers("sk-1", h, 4), 1);
    assert_string_equal(h[0], "Authorization: Bearer sk-1");
    free(h[0]);
    assert_int_equal(wk_wire_openai.headers(NULL, h, 4), 0);
    assert_int_equal(wk_wire_openai.headers("", h, 4), 0);
    /* A key file's newline never ends up in (or after) the header. */
    assert_int_equal(wk_wire_openai.headers("sk-2\nX-Evil: 1", h, 4), 1);
    assert_string_equal(h[0], "Authorization: Bearer sk-2");
    free(h[0]);

    assert_int_equal(wk_wire_anthropic.headers("k", h, 4), 2);
    assert_string_equal(h[0], "x-api-key: k");
    assert_string_equal(h[1], "anthropic-version: 2023-06-01");
    free(h[0]);
    free(h[1]);
    assert_int_equal(wk_wire_anthropic.headers(NULL, h, 4), 1);
    assert_string_equal(h[0], "anthropic-version: 2023-06-01");
    free(h[0]);
    assert_int_equal(wk_wire_anthropic.headers("k", h, 1), 1);
    free(h[0]);
}

static void test_openai_reply_text(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_chat_reply *r = parse(
        &wk_wire_openai,
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"h\\u00e9llo \\u2603 "
        "\\ud83d\\ude00\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}",
        &err);
    assert_non_null(r);
    assert_string_equal(r->content, utf8_text);
    assert_int_equal(r->ncalls, 0);
    assert_int_equal(r->input_tokens, 12);
    assert_int_equal(r->output_tokens, 5);
    wk_chat_reply_free(r);
}

static void test_openai_reply_tool_calls(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_chat_reply *r = parse(
        &wk_wire_openai,
        "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"echo\","
        "\"arguments\":\"{\\\"text\\\":\\\"a\\\"}\"}},"
        "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"read_file\","
        "\"arguments\":\"{broken\"}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"list_dir\",\"arguments\":{\"p\":1}}}]}}]}",
        &err);
    assert_non_null(r);
    assert_string_equal(r->content, "");
    assert_int_equal(r->ncalls, 3);
    assert_string_equal(r->calls[0].id, "c1");
    assert_string_equal(r->calls[0].name, "echo");
    assert_string_equal(r->calls[0].arguments, "{\"text\":\"a\"}");
    /* Malformed arguments are kept as the model wrote them. */
    assert_string_equal(r->calls[1].arguments, "{broken");
    /* No id: one is made up; arguments as an object: printed. */
    assert_string_equal(r->calls[2].id, "call_3");
    assert_string_equal(r->calls[2].arguments, "{\"p\":1}");
    assert_int_equal(r->input_tokens, 0);
    wk_chat_reply_free(r);
}

static void test_openai_reply_malformed(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_openai;
    assert_parse_fails(w, "{\"choices\":[{\"message\":", AG_UNKNOWN,
                       "the openai reply is not valid JSON");
    assert_parse_fails(w, "", AG_UNKNOWN, "not valid JSON");
    assert_parse_fails(w, "<html>502 Bad Gateway</html>", AG_UNKNOWN, "<html>502");
    assert_parse_fails(w, "{} trailing", AG_UNKNOWN, "bytes after its JSON value");
    assert_parse_fails(w, "[1,2]", AG_UNKNOWN, "not a JSON object");
    assert_parse_fails(w, "{\"choices\":[]}", AG_UNKNOWN, "no choices[0].message");
    assert_parse_fails(w, "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{}}]}}]}",
                       AG_UNKNOWN, "tool call 1 has no name");
    assert_parse_fails(w, "{\"error\":{\"message\":\"quota\"}}", AG_UNAVAILABLE, "quota");
    /* Deeper than cJSON's nesting limit: an error, not a stack overflow. */
    char deep[4096];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    assert_parse_fails(w, deep, AG_UNKNOWN, "not valid JSON");
    /* A body with a NUL inside is cut there: still a clear error. */
    struct ag_err err = AG_ERR_INIT;
    assert_null(w->parse_reply("{\"a\"\0:1}", 8, &err));
    assert_int_equal(err.code, AG_UNKNOWN);
}

static void test_error_message(void **state)
{
    (void)state;
    const struct wk_wire *wires[] = {&wk_wire_openai, &wk_wire_anthropic};
    for (size_t i = 0; i < 2; i++) {
        const struct wk_wire *w = wires[i];
        const char *b = "{\"error\":{\"message\":\"Incorrect API key\\nprovided\","
                        "\"type\":\"invalid_request_error\"}}";
        char *m = w->error_message(b, strlen(b));
        assert_string_equal(m, "Incorrect API key provided");
        free(m);
        b = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
            "\"Overloaded\"}}";
        m = w->error_message(b, strlen(b));
        assert_string_equal(m, "Overloaded");
        free(m);
        b = "{\"error\":\"model 'x' not found\"}"; /* Ollama's shape */
        m = w->error_message(b, strlen(b));
        assert_string_equal(m, "model 'x' not found");
        free(m);
        assert_null(w->error_message("Bad Gateway", 11));
        assert_null(w->error_message("{\"detail\":\"x\"}", 14));
        assert_null(w->error_message(NULL, 0));
    }
}

static void test_openai_stream_text(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_openai;
    struct wk_wire_stream *s = w->stream_new();
    struct texts t = {0};
    const char *role = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                       "\"content\":\"\"}}],\"usage\":null}";
    feed1(w, s, NULL, role, &t);
    feed1(w, s, NULL, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\\u00e9l\"}}]}", &t);
    feed1(w, s, NULL, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u2603 \"}}]}", &t);
    feed1(w, s, NULL,
          "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\ud83d\\ude00\"},"
          "\"finish_reason\":\"stop\"}]}",
          &t);
    feed1(w, s, NULL, "", &t); /* an empty event is nothing */
    feed1(w, s, NULL, "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}",
          &t);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(w->stream_event(s, NULL, "[DONE]\n", 7, on_text, &t, &err), 1);
    assert_string_equal(t.buf, utf8_text);
    assert_int_equal(t.calls, 3);
    struct wk_chat_reply *r = w->stream_finish(s, true, &err);
    assert_non_null(r);
    assert_string_equal(r->content, utf8_text);
    assert_int_equal(r->ncalls, 0);
    assert_int_equal(r->input_tokens, 9);
    assert_int_equal(r->output_tokens, 4);
    wk_chat_reply_free(r);
    w->stream_free(s);
    w->stream_free(NULL);
}

/* Two calls whose arguments arrive one byte per chunk, interleaved: the second call starts
 * before the first call's arguments are complete. */
static void test_openai_stream_tool_fragments(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_openai;
    struct wk_wire_stream *s = w->stream_new();
    struct texts t = {0};
    feed1(w, s, NULL,
          "{\"choices\":[{\"delta\":{\"content\":\"Let me look.\",\"tool_calls\":[{\"index\":0,"
          "\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":\"read_file\","
          "\"arguments\":\"\"}}]}}]}",
          &t);
    feed1(w, s, NULL,
          "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_y\","
          "\"type\":\"function\",\"function\":{\"name\":\"echo\",\"arguments\":\"\"}}]}}]}",
          &t);
    /* Raw UTF-8 split between chunks, and an escape split between chunks. */
    const char *a0 = "{\"path\":\"d\xc3\xa9j\\u00e0.txt\"}", *a1 = "{\"text\":\"hi\"}";
    size_t n0 = strlen(a0), n1 = strlen(a1);
    for (size_t i = 0; i < n0 || i < n1; i++) {
        for (int k = 0; k < 2; k++) {
            const char *a = k ? a1 : a0;
            if (i >= (k ? n1 : n0))
                continue;
            /* One byte of the arguments, as a JSON string. */
            char piece[2] = {a[i], '\0'};
            cJSON *j = cJSON_CreateObject();
            cJSON *frag = cJSON_CreateObject();
            cJSON_AddNumberToObject(frag, "index", k);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(frag, "function"), "arguments", piece);
            cJSON *calls = cJSON_CreateArray();
            cJSON_AddItemToArray(calls, frag);
            cJSON *delta = cJSON_CreateObject();
            cJSON_AddItemToObject(delta, "tool_calls", calls);
            cJSON *choice = cJSON_CreateObject();
            cJSON_AddItemToObject(choice, "delta", delta);
            cJSON *choices = cJSON_AddArrayToObject(j, "choices");
            cJSON_AddItemToArray(choices, choice);
            char *data = cJSON_PrintUnformatted(j);
            feed1(w, s, NULL, data, &t);
            free(data);
            cJSON_Delete(j);
        }
    }
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(w->stream_event(s, NULL, "[DONE]", 6, on_text, &t, &err), 1);
    struct wk_chat_reply *r = w->stream_finish(s, true, &err);
    assert_non_null(r);
    assert_string_equal(r->content, "Let me look.");
    assert_int_equal(r->ncalls, 2);
    assert_string_equal(r->calls[0].id, "call_x");
    assert_string_equal(r->calls[0].name, "read_file");
    assert_string_equal(r->calls[0].arguments, a0);
    assert_string_equal(r->calls[1].id, "call_y");
    assert_string_equal(r->calls[1].name, "echo");
    assert_string_equal(r->calls[1].arguments, a1);
    wk_chat_reply_free(r);
    w->stream_free(s);
}

static void test_openai_stream_errors(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_openai;
    struct texts t = {0};
    struct ag_err err = AG_ERR_INIT;

    /* Cut before [DONE]. */
    struct wk_wire_stream *s = w->stream_new();
    feed1(w, s, NULL, "{\"choices\":[{\"delta\":{\"content\":\"par\"}}]}", &t);
    assert_null(w->stream_finish(s, false, &err));
    assert_int_equal(err.code, AG_UNKNOWN);
    assert_non_null(strstr(err.msg, "ended before the reply was complete"));
    w->stream_free(s);

    /* A chunk cut in the middle of its JSON. */
    s = w->stream_new();
    const struct ev bad[] = {{NULL, "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"},
                             {NULL, "{\"choices\":[{\"delta\":{\"cont"}};
    assert_int_equal(feed(w, s, bad, 2, &t, &err), -1);
    assert_int_equal(err.code, AG_UNKNOWN);
    assert_non_null(strstr(err.msg, "the openai stream chunk is not valid JSON"));
    w->stream_free(s);

    /* The API's error inside the stream. */
    s = w->stream_new();
    const struct ev apierr[] = {
        {NULL, "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"},
        {NULL, "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}"}};
    assert_int_equal(feed(w, s, apierr, 2, &t, &err), -1);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_string_equal(err.msg, "the openai stream reported an error: The server had an error");
    w->stream_free(s);

    /* A fragment with a nonsense index; a call that never got a name. */
    s = w->stream_new();
    const struct ev badidx[] = {
        {NULL, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1e300}]}}]}"}};
    assert_int_equal(feed(w, s, badidx, 1, &t, &err), -1);
    assert_non_null(strstr(err.msg, "index"));
    w->stream_free(s);
    s = w->stream_new();
    feed1(w, s, NULL,
          "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
          "{\"arguments\":\"{}\"}}]}}]}",
          &t);
    assert_null(w->stream_finish(s, true, &err));
    assert_non_null(strstr(err.msg, "has no name"));
    w->stream_free(s);
}

/* Servers that leave out "index" send each call whole, with its id. */
static void test_openai_stream_without_index(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_openai;
    struct wk_wire_stream *s = w->stream_new();
    struct texts t = {0};
    feed1(w, s, NULL,
          "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":"
          "\"echo\",\"arguments\":\"{\\\"text\\\":\"}}]}}]}",
          &t);
    feed1(w, s, NULL,
          "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"\\\"x\\\"}"
          "\"}}]}}]}",
          &t);
    feed1(w, s, NULL,
          "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":"
          "\"echo\",\"arguments\":\"{}\"}}]}}]}",
          &t);
    struct ag_err err = AG_ERR_INIT;
    struct wk_chat_reply *r = w->stream_finish(s, true, &err);
    assert_non_null(r);
    assert_int_equal(r->ncalls, 2);
    assert_string_equal(r->calls[0].arguments, "{\"text\":\"x\"}");
    assert_string_equal(r->calls[1].id, "b");
    assert_string_equal(r->calls[1].arguments, "{}");
    wk_chat_reply_free(r);
    w->stream_free(s);
}

/* ---- anthropic ---------------------------------------------------------------------------- */

static void test_anthropic_request_full(void **state)
{
    (void)state;
    struct wk_tool_call calls[] = {
        {"toolu_1", "read_file", "{\"path\":\"a.txt\"}"},
        {"toolu_2", "echo", "{oops"},
    };
    struct wk_msg msgs[] = {msg("user", "read a.txt"),       msg("assistant", "Reading."),
                            tool_msg("toolu_1", "contents"), tool_msg("toolu_2", "bad args"),
                            msg("user", utf8_text),          msg("assistant", "ok")};
    msgs[1].calls = calls;
    msgs[1].ncalls = 2;
    struct wk_chat_req req = {.model = "claude-x",
                              .system_prompt = "be brief",
                              .msgs = msgs,
                              .nmsgs = 6,
                              .tools = tools,
                              .ntools = 2,
                              .settings = {.temperature_set = true, .temperature = 1}};
    cJSON *j = body(&wk_wire_anthropic, &req, true);
    assert_string_equal(str(j, "model"), "claude-x");
    assert_int_equal(num(j, "max_tokens"), 4096);
    assert_string_equal(str(j, "system"), "be brief");
    assert_true(num(j, "temperature") == 1);
    assert_true(cJSON_IsTrue(get(j, "stream")));

    const cJSON *m = get(j, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 4);
    assert_string_equal(str(at(m, 0), "role"), "user");
    const cJSON *c = get(at(m, 0), "content");
    assert_int_equal(cJSON_GetArraySize(c), 1);
    assert_string_equal(str(at(c, 0), "type"), "text");
    assert_string_equal(str(at(c, 0), "text"), "read a.txt");

    assert_string_equal(str(at(m, 1), "role"), "assistant");
    c = get(at(m, 1), "content");
    assert_int_equal(cJSON_GetArraySize(c), 3);
    assert_string_equal(str(at(c, 0), "text"), "Reading.");
    assert_string_equal(str(at(c, 1), "type"), "tool_use");
    assert_string_equal(str(at(c, 1), "id"), "toolu_1");
    assert_string_equal(str(at(c, 1), "name"), "read_file");
    assert_string_equal(str(get(at(c, 1), "input"), "path"), "a.txt");
    /* Malformed arguments: an empty input object, and the request still goes. */
    const cJSON *input = get(at(c, 2), "input");
    assert_true(cJSON_IsObject(input));
    assert_null(input->child);

    /* Both tool results and the user text after them: one user message. */
    assert_string_equal(str(at(m, 2), "role"), "user");
    c = get(at(m, 2), "content");
    assert_int_equal(cJSON_GetArraySize(c), 3);
    assert_string_equal(str(at(c, 0), "type"), "tool_result");
    assert_string_equal(str(at(c, 0), "tool_use_id"), "toolu_1");
    assert_string_equal(str(at(c, 0), "content"), "contents");
    assert_string_equal(str(at(c, 1), "tool_use_id"), "toolu_2");
    assert_string_equal(str(at(c, 2), "type"), "text");
    assert_string_equal(str(at(c, 2), "text"), utf8_text);
    assert_string_equal(str(at(m, 3), "role"), "assistant");

    const cJSON *t = get(j, "tools");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_string_equal(str(at(t, 0), "name"), "echo");
    assert_string_equal(str(at(t, 0), "description"), "Returns the text.");
    assert_string_equal(str(get(at(t, 0), "input_schema"), "type"), "object");
    assert_null(cJSON_GetObjectItemCaseSensitive(at(t, 1), "description"));
    assert_string_equal(str(get(at(t, 1), "input_schema"), "type"), "object");
    cJSON_Delete(j);
}

static void test_anthropic_request_minimal(void **state)
{
    (void)state;
    /* An empty assistant reply says nothing: left out, and the users around it joined. */
    struct wk_msg msgs[] = {msg("user", "a"), msg("assistant", ""), msg("user", "b")};
    struct wk_chat_req req = {.model = "claude-x",
                              .system_prompt = "",
                              .msgs = msgs,
                              .nmsgs = 3,
                              .settings = {.max_tokens = 77}};
    char *b = wk_wire_anthropic.request_body(&req, false, NULL);
    assert_string_equal(b, "{\"model\":\"claude-x\",\"max_tokens\":77,\"messages\":[{\"role\":"
                           "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":"
                           "\"text\",\"text\":\"b\"}]}]}");
    free(b);
    req.model = "";
    assert_request_fails(&wk_wire_anthropic, &req, "needs a model id");
}

/* An input delivered while the tools ran sits between the calls and their results: the user
 * message still starts with the results. */
static void test_anthropic_results_before_text(void **state)
{
    (void)state;
    struct wk_tool_call calls[] = {{"t1", "echo", "{}"}, {"t2", "echo", "{}"}};
    struct wk_msg msgs[] = {msg("user", "go"), msg("assistant", ""), tool_msg("t1", "a"),
                            msg("user", "also this"), tool_msg("t2", "b")};
    msgs[1].calls = calls;
    msgs[1].ncalls = 2;
    struct wk_chat_req req = {.model = "m", .msgs = msgs, .nmsgs = 5};
    cJSON *j = body(&wk_wire_anthropic, &req, false);
    const cJSON *m = get(j, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 3);
    const cJSON *c = get(at(m, 2), "content");
    assert_int_equal(cJSON_GetArraySize(c), 3);
    assert_string_equal(str(at(c, 0), "tool_use_id"), "t1");
    assert_string_equal(str(at(c, 1), "tool_use_id"), "t2");
    assert_string_equal(str(at(c, 2), "text"), "also this");
    cJSON_Delete(j);
}

static void test_anthropic_reply(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_chat_reply *r = parse(
        &wk_wire_anthropic,
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"x\"},"
        "{\"type\":\"text\",\"text\":\"I'll \"},{\"type\":\"text\",\"text\":\"look.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"read_file\",\"input\":"
        "{\"path\":\"\\u00e9.txt\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"echo\",\"input\":{}}],"
        "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":20,"
        "\"cache_read_input_tokens\":100,\"output_tokens\":7}}",
        &err);
    assert_non_null(r);
    assert_string_equal(r->content, "I'll look.");
    assert_int_equal(r->ncalls, 2);
    assert_string_equal(r->calls[0].id, "toolu_1");
    assert_string_equal(r->calls[0].name, "read_file");
    assert_string_equal(r->calls[0].arguments, "{\"path\":\"\xc3\xa9.txt\"}");
    assert_string_equal(r->calls[1].arguments, "{}");
    assert_int_equal(r->input_tokens, 120);
    assert_int_equal(r->output_tokens, 7);
    wk_chat_reply_free(r);

    const struct wk_wire *w = &wk_wire_anthropic;
    assert_parse_fails(w, "{\"type\":\"message\"}", AG_UNKNOWN, "no content array");
    assert_parse_fails(w, "{\"content\":[{\"type\":\"tool_use\",\"input\":{}}]}", AG_UNKNOWN,
                       "has no name");
    assert_parse_fails(w, "{\"content\":[", AG_UNKNOWN, "the anthropic reply is not valid JSON");
    assert_parse_fails(w,
                       "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                       "\"Internal\"}}",
                       AG_UNAVAILABLE, "Internal (api_error)");
}

static void test_anthropic_stream(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_anthropic;
    struct wk_wire_stream *s = w->stream_new();
    struct texts t = {0};
    feed1(w, s, "message_start",
          "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
          "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":25,"
          "\"output_tokens\":1}}}",
          &t);
    feed1(w, s, "content_block_start",
          "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
          "\"text\":\"\"}}",
          &t);
    feed1(w, s, "ping", "{\"type\": \"ping\"}", &t);
    feed1(w, s, "content_block_delta",
          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
          "\"text\":\"h\\u00e9llo \"}}",
          &t);
    feed1(w, s, "content_block_delta",
          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
          "\"text\":\"\\u2603 \\ud83d\\ude00\"}}",
          &t);
    feed1(w, s, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}", &t);
    feed1(w, s, "content_block_start",
          "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
          "\"tool_use\",\"id\":\"toolu_9\",\"name\":\"read_file\",\"input\":{}}}",
          &t);
    const char *args = "{\"path\": \"src/main.c\", \"lines\": [1, 20]}";
    for (size_t i = 0; args[i]; i++) {
        /* One byte per event, escaped as JSON. */
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "type", "content_block_delta");
        cJSON_AddNumberToObject(j, "index", 1);
        cJSON *d = cJSON_AddObjectToObject(j, "delta");
        cJSON_AddStringToObject(d, "type", "input_json_delta");
        char piece[2] = {args[i], '\0'};
        cJSON_AddStringToObject(d, "partial_json", piece);
        char *data = cJSON_PrintUnformatted(j);
        feed1(w, s, "content_block_delta", data, &t);
        free(data);
        cJSON_Delete(j);
    }
    feed1(w, s, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}", &t);
    /* A tool with no arguments: no delta, the start's input stands. */
    feed1(w, s, "content_block_start",
          "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
          "\"tool_use\",\"id\":\"toolu_10\",\"name\":\"list_dir\",\"input\":{}}}",
          &t);
    feed1(w, s, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}", &t);
    feed1(w, s, "message_delta",
          "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
          "\"usage\":{\"output_tokens\":42}}",
          &t);
    feed1(w, s, "some_future_event", "{\"type\":\"some_future_event\"}", &t);
    struct ag_err err = AG_ERR_INIT;
    const char *stop = "{\"type\":\"message_stop\"}";
    assert_int_equal(w->stream_event(s, "message_stop", stop, strlen(stop), on_text, &t, &err), 1);
    assert_string_equal(t.buf, utf8_text);
    assert_int_equal(t.calls, 2);
    struct wk_chat_reply *r = w->stream_finish(s, true, &err);
    assert_non_null(r);
    assert_string_equal(r->content, utf8_text);
    assert_int_equal(r->ncalls, 2);
    assert_string_equal(r->calls[0].id, "toolu_9");
    assert_string_equal(r->calls[0].name, "read_file");
    assert_string_equal(r->calls[0].arguments, args);
    assert_string_equal(r->calls[1].name, "list_dir");
    assert_string_equal(r->calls[1].arguments, "{}");
    assert_int_equal(r->input_tokens, 25);
    assert_int_equal(r->output_tokens, 42);
    wk_chat_reply_free(r);
    w->stream_free(s);
}

static void test_anthropic_stream_errors(void **state)
{
    (void)state;
    const struct wk_wire *w = &wk_wire_anthropic;
    struct texts t = {0};
    struct ag_err err = AG_ERR_INIT;
    const struct ev start[] = {
        {"message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":{}}}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                "{\"type\":\"text_delta\",\"text\":\"part\"}}"},
    };

    /* No message_stop. */
    struct wk_wire_stream *s = w->stream_new();
    assert_int_equal(feed(w, s, start, 3, &t, &err), 0);
    assert_null(w->stream_finish(s, false, &err));
    assert_non_null(strstr(err.msg, "the anthropic stream ended before the reply was complete"));
    w->stream_free(s);

    /* The API's error event. */
    s = w->stream_new();
    const struct ev overloaded[] = {{"error",
                                     "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                     "\"message\":\"Overloaded\"}}"}};
    assert_int_equal(feed(w, s, start, 3, &t, &err), 0);
    assert_int_equal(feed(w, s, overloaded, 1, &t, &err), -1);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_string_equal(err.msg,
                        "the anthropic stream reported an error: Overloaded (overloaded_error)");
    w->stream_free(s);

    /* Malformed JSON; a delta for a block that never started; a bad index. */
    const char *bad[] = {
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_",
        ("{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\","
         "\"text\":\"x\"}}"),
        "{\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{}}",
        "{\"type\":\"content_block_delta\",\"index\":\"0\"}",
        "null",
    };
    const char *why[] = {"not valid JSON", "before its start", "no valid block index",
                         "no valid block index", "not a JSON object"};
    for (size_t i = 0; i < 5; i++) {
        s = w->stream_new();
        assert_int_equal(feed(w, s, start, 3, &t, &err), 0);
        assert_int_equal(w->stream_event(s, NULL, bad[i], strlen(bad[i]), on_text, &t, &err), -1);
        assert_int_equal(err.code, AG_UNKNOWN);
        if (!strstr(err.msg, why[i]))
            fail_msg("'%s' does not contain '%s'", err.msg, why[i]);
        w->stream_free(s);
    }
}

static void test_tables(void **state)
{
    (void)state;
    assert_string_equal(wk_wire_openai.name, "openai");
    assert_string_equal(wk_wire_openai.path, "/chat/completions");
    assert_string_equal(wk_wire_openai.default_base_url, "https://api.openai.com/v1");
    assert_string_equal(wk_wire_anthropic.name, "anthropic");
    assert_string_equal(wk_wire_anthropic.path, "/messages");
    assert_string_equal(wk_wire_anthropic.default_base_url, "https://api.anthropic.com/v1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_openai_request_full),
        cmocka_unit_test(test_openai_request_minimal),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_openai_reply_text),
        cmocka_unit_test(test_openai_reply_tool_calls),
        cmocka_unit_test(test_openai_reply_malformed),
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_openai_stream_text),
        cmocka_unit_test(test_openai_stream_tool_fragments),
        cmocka_unit_test(test_openai_stream_errors),
        cmocka_unit_test(test_openai_stream_without_index),
        cmocka_unit_test(test_anthropic_request_full),
        cmocka_unit_test(test_anthropic_request_minimal),
        cmocka_unit_test(test_anthropic_results_before_text),
        cmocka_unit_test(test_anthropic_reply),
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_anthropic_stream_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
