/* tests/unit/test-wk-providers.c - the "openai" and "anthropic" providers (worker/model_http.c
 * over worker/http.c and the wire formats) against tests/fake_llm.py, streamed and not.
 *
 * Every scenario runs for both providers. Waits are on condvars with generous deadlines; what the
 * server saw (requests per model, arrival times, aborted replies, the last request's headers and
 * body) comes from its /_stats, never from timing asserts here. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "fake_llm.h"
#include "worker/http.h"
#include "worker/model.h"

#define OPENAI_KEY "sk-test-0123456789abcdef-secret"
#define ANTHROPIC_KEY "sk-ant-test-0123456789-secret"

static const char *const providers[] = {"openai", "anthropic"};
static _Thread_local bool in_chat;

struct fix {
    struct fake_llm srv;
    struct wk_http *http;
    struct ag_timers *timers;
};

static int setup(void **state)
{
    setenv("OPENAI_API_KEY", OPENAI_KEY, 1);
    setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY, 1);
    struct fix *f = calloc(1, sizeof(*f));
    if (fake_llm_start(&f->srv) != 0)
        return -1;
    f->http = wk_http_new(NULL);
    f->timers = ag_timers_new(NULL);
    *state = f;
    return f->http && f->timers ? 0 : -1;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    wk_http_free(f->http);
    ag_timers_free(f->timers);
    fake_llm_stop(&f->srv);
    free(f);
    return 0;
}

/* ---- one chat ---------------------------------------------------------------------------- */

struct opts {
    const char *const *node_opts; /* "KEY=VALUE" besides base_url */
    size_t nnode;
    bool stream;
    const char *user;      /* default "héllo → wörld" */
    bool with_results;     /* the conversation holds a reply with two calls and their results */
    bool cancel_when_seen; /* cancel once the server counted the request */
    int64_t timeout_ms;    /* the call's deadline from now; 0: none */
    struct wk_model_settings settings;
};

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, inside_chat, delta_after_done;
    struct wk_chat_reply *reply;
    struct ag_err err;
    char deltas[4096];
    size_t ndeltas;
};

static void on_delta(void *arg, const char *text, size_t len)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->done)
        r->delta_after_done = true;
    if (r->ndeltas + len < sizeof(r->deltas)) {
        memcpy(r->deltas + r->ndeltas, text, len);
        r->ndeltas += len;
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_done(void *arg, struct wk_chat_reply *reply, const struct ag_err *err)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->inside_chat = in_chat;
    r->reply = reply;
    if (err)
        r->err = *err;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static struct wk_provider *make(struct fix *f, const char *name, const struct opts *o,
                                struct wk_config *cfg)
{
    struct wk_config_item *items = calloc(o->nnode + 1, sizeof(*items));
    items[0].key = strdup("base_url");
    items[0].value = ag_xasprintf("%s/v1", f->srv.base);
    for (size_t i = 0; i < o->nnode; i++) {
        const char *eq = strchr(o->node_opts[i], '=');
        items[i + 1].key = strndup(o->node_opts[i], (size_t)(eq - o->node_opts[i]));
        items[i + 1].value = strdup(eq + 1);
    }
    *cfg = (struct wk_config){name, items, o->nnode + 1, 0};
    const struct wk_provider_row *row = wk_model_find(name, NULL);
    struct ag_err err = AG_ERR_INIT;
    if (row->check_config(cfg, &err) != 0)
        fail_msg("check_config: %s", err.msg);
    struct wk_provider_ctx ctx = {.timers = f->timers, .config = cfg, .http = f->http};
    struct wk_provider *p = row->create(&ctx, &err);
    if (!p)
        fail_msg("create: %s", err.msg);
    return p;
}

static void config_release(struct wk_config *cfg)
{
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->items[i].key);
        free(cfg->items[i].value);
    }
    free(cfg->items);
}

static void wait_done(struct result *r)
{
    int64_t deadline = ag_now_mono_ns() + 30 * 1000000000LL;
    pthread_mutex_lock(&r->mu);
    while (!r->done && ag_cond_wait_until(&r->cv, &r->mu, deadline))
        ;
    pthread_mutex_unlock(&r->mu);
    assert_true(r->done);
}

/* The conversation: a user message, and with_results an assistant reply calling echo twice and
 * the two results. */
static size_t conversation(const struct opts *o, struct wk_msg *msgs, struct wk_tool_call *calls)
{
    msgs[0] = (struct wk_msg){.role = "user",
                              .content = (char *)(o->user ? o->user
                                                          : "h\xC3\xA9llo \xE2\x86\x92 "
                                                            "w\xC3\xB6rld")};
    if (!o->with_results)
        return 1;
    calls[0] = (struct wk_tool_call){"call_1", "echo", "{\"text\":\"a\"}"};
    calls[1] = (struct wk_tool_call){"call_2", "echo", "{\"text\":\"b\"}"};
    msgs[1] = (struct wk_msg){.role = "assistant", .content = "", .calls = calls, .ncalls = 2};
    msgs[2] = (struct wk_msg){.role = "tool", .content = "a", .tool_call_id = "call_1"};
    msgs[3] = (struct wk_msg){.role = "tool", .content = "b", .tool_call_id = "call_2"};
    return 4;
}

/* Chat with model (the id after "provider/"); fills r (release with result_release). */
static void chat(struct fix *f, const char *provider, const char *model, const struct opts *o,
                 struct result *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    ag_cond_init_mono(&r->cv);
    struct wk_config cfg;
    struct wk_provider *p = make(f, provider, o, &cfg);
    struct wk_msg msgs[4];
    struct wk_tool_call calls[2];
    struct wk_chat_tool tools[] = {{"echo", "Returns the text.",
                                    "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":"
                                    "\"string\"}},\"required\":[\"text\"]}"}};
    struct wk_chat_req req = {.model = model,
                              .system_prompt = "be brief",
                              .msgs = msgs,
                              .nmsgs = conversation(o, msgs, calls),
                              .tools = tools,
                              .ntools = 1,
                              .settings = o->settings,
                              .on_delta = on_delta};
    req.settings.stream = o->stream;
    struct wk_cancel cancel;
    wk_cancel_init(&cancel);
    struct wk_call_ctx ctx = {.timers = f->timers,
                              .config = &cfg,
                              .cancel = &cancel,
                              .deadline_ms = o->timeout_ms ? ag_now_mono_ms() + o->timeout_ms : 0};
    struct ag_err err = AG_ERR_INIT;
    long before = fake_llm_stat(&f->srv, "requests");
    in_chat = true;
    int rc = p->chat(p, &ctx, &req, on_done, r, &err);
    in_chat = false;
    if (rc != 0)
        fail_msg("chat: %s", err.msg);
    if (o->cancel_when_seen) {
        fake_llm_wait_stat(&f->srv, "requests", before + 1);
        wk_cancel_request(&cancel);
    }
    wait_done(r);
    assert_false(r->inside_chat);
    assert_false(r->delta_after_done);
    p->free(p);
    config_release(&cfg);
    wk_cancel_release(&cancel);
}

static void result_release(struct result *r)
{
    wk_chat_reply_free(r->reply);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void reset(struct fix *f)
{
    cJSON_Delete(fake_llm_call(&f->srv, "POST", "/_reset", ""));
}

/* The server's record of the last request: headers (lowercased) and parsed body. */
static cJSON *last_request(struct fix *f)
{
    cJSON *s = fake_llm_call(&f->srv, "GET", "/_stats", NULL);
    cJSON *last = cJSON_DetachItemFromObject(s, "last");
    cJSON_Delete(s);
    return last;
}

static const char *last_header(const cJSON *last, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(last, "headers"), name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- scenarios --------------------------------------------------------------------------- */

static void test_echo(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            struct result r;
            struct opts o = {.stream = stream};
            chat(f, providers[i], "echo", &o, &r);
            if (!r.reply)
                fail_msg("%s stream=%d: %s", providers[i], stream, r.err.msg);
            assert_string_equal(r.reply->content, "echo: h\xC3\xA9llo \xE2\x86\x92 w\xC3\xB6rld");
            assert_int_equal(r.reply->ncalls, 0);
            assert_true(r.reply->input_tokens > 0);
            assert_true(r.reply->output_tokens > 0);
            if (stream)
                assert_string_equal(r.deltas, r.reply->content);
            else
                assert_int_equal(r.ndeltas, 0);
            cJSON *last = last_request(f);
            const cJSON *body = cJSON_GetObjectItem(last, "body");
            assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")), stream);
            assert_string_equal(cJSON_GetObjectItem(last, "path")->valuestring,
                                i == 0 ? "/v1/chat/completions" : "/v1/messages");
            cJSON_Delete(last);
            result_release(&r);
        }
    }
}

static void test_two_tool_calls(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            struct result r;
            struct opts o = {.stream = stream};
            chat(f, providers[i], "tools2", &o, &r);
            if (!r.reply)
                fail_msg("%s stream=%d: %s", providers[i], stream, r.err.msg);
            assert_int_equal(r.reply->ncalls, 2);
            for (size_t k = 0; k < 2; k++) {
                assert_string_equal(r.reply->calls[k].name, "echo");
                assert_non_null(r.reply->calls[k].id);
                cJSON *a = cJSON_Parse(r.reply->calls[k].arguments);
                assert_string_equal(cJSON_GetObjectItem(a, "text")->valuestring, k ? "b" : "a");
                cJSON_Delete(a);
            }
            result_release(&r);
            o.with_results = true;
            chat(f, providers[i], "tools2", &o, &r);
            if (!r.reply)
                fail_msg("%s stream=%d: %s", providers[i], stream, r.err.msg);
            assert_string_equal(r.reply->content, "tools: a,b");
            result_release(&r);
        }
    }
}

static double arrival(const struct fix *f, const char *model, int i)
{
    cJSON *s = fake_llm_call(&f->srv, "GET", "/_stats", NULL);
    const cJSON *a = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(s, "arrivals"), model), i);
    double t = cJSON_IsNumber(a) ? a->valuedouble : -1;
    cJSON_Delete(s);
    return t;
}

static void test_429_honours_retry_after(void **state)
{
    struct fix *f = *state;
    const char *node[] = {"retry_base=10ms"};
    for (size_t i = 0; i < 2; i++) {
        reset(f);
        struct result r;
        struct opts o = {.node_opts = node, .nnode = 1, .stream = i == 1};
        chat(f, providers[i], "429:1", &o, &r);
        if (!r.reply)
            fail_msg("%s: %s", providers[i], r.err.msg);
        assert_string_equal(r.reply->content, "echo: h\xC3\xA9llo \xE2\x86\x92 w\xC3\xB6rld");
        /* Two requests; the retry came after the server's Retry-After: 1, not after 10 ms. */
        double gap = arrival(f, "429:1", 1) - arrival(f, "429:1", 0);
        if (gap < 0.9)
            fail_msg("%s retried after %.3f s, before Retry-After", providers[i], gap);
        result_release(&r);
    }
}

/* Retry-After as an HTTP date (2 s ahead, at one-second resolution): the retry waits for it. */
static void test_429_retry_after_date(void **state)
{
    struct fix *f = *state;
    const char *node[] = {"retry_base=10ms"};
    struct result r;
    struct opts o = {.node_opts = node, .nnode = 1};
    chat(f, "openai", "429d:1", &o, &r);
    assert_non_null(r.reply);
    double gap = arrival(f, "429d:1", 1) - arrival(f, "429d:1", 0);
    if (gap < 0.9)
        fail_msg("retried after %.3f s, before the Retry-After date", gap);
    result_release(&r);
}

static void test_500_retries_spent(void **state)
{
    struct fix *f = *state;
    const char *node[] = {"retries=2", "retry_base=10ms", "retry_max=20ms"};
    for (size_t i = 0; i < 2; i++) {
        reset(f);
        struct result r;
        struct opts o = {.node_opts = node, .nnode = 3};
        chat(f, providers[i], "500:10", &o, &r);
        assert_null(r.reply);
        assert_int_equal(r.err.code, AG_UNAVAILABLE);
        char want[128];
        snprintf(want, sizeof(want), "model '%s/500:10' answered HTTP 500: ", providers[i]);
        if (strncmp(r.err.msg, want, strlen(want)) != 0 || !strstr(r.err.msg, " (3 attempts)"))
            fail_msg("got '%s'", r.err.msg);
        assert_int_equal(fake_llm_stat(&f->srv, "requests"), 3);
        result_release(&r);
    }
}

/* A streamed reply that stops sending fails after `stall`; a non-streamed one sends nothing
 * until it is complete, so only the call's timeout ends it. */
static void test_stall(void **state)
{
    struct fix *f = *state;
    const char *node[] = {"stall=300ms"};
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            struct result r;
            struct opts o = {.node_opts = node, .nnode = 1, .stream = stream};
            o.timeout_ms = stream ? 0 : 500;
            chat(f, providers[i], "stall", &o, &r);
            assert_null(r.reply);
            assert_int_equal(r.err.code, AG_DEADLINE_EXCEEDED);
            char want[96];
            snprintf(want, sizeof(want),
                     stream ? "model '%s/stall' stalled: no data for 300ms"
                            : "model call to '%s/stall' timed out",
                     providers[i]);
            assert_string_equal(r.err.msg, want);
            result_release(&r);
        }
    }
    assert_int_equal(fake_llm_wait_stat(&f->srv, "aborted", 4), 4);
}

static void test_malformed(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            struct result r;
            struct opts o = {.stream = stream};
            chat(f, providers[i], "malformed", &o, &r);
            assert_null(r.reply);
            assert_int_equal(r.err.code, AG_UNKNOWN);
            char want[64];
            snprintf(want, sizeof(want), "model '%s/malformed' reply is malformed: ", providers[i]);
            if (strncmp(r.err.msg, want, strlen(want)) != 0)
                fail_msg("got '%s'", r.err.msg);
            result_release(&r);
        }
    }
}

static void test_cancel_aborts_request(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        reset(f);
        struct result r;
        struct opts o = {.stream = i == 0, .cancel_when_seen = true};
        chat(f, providers[i], "slow:20000", &o, &r);
        assert_null(r.reply);
        assert_int_equal(r.err.code, AG_CANCELLED);
        assert_int_equal(fake_llm_wait_stat(&f->srv, "aborted", 1), 1);
        result_release(&r);
    }
}

static void test_api_key(void **state)
{
    struct fix *f = *state;
    const char *keys[] = {OPENAI_KEY, ANTHROPIC_KEY};
    for (size_t i = 0; i < 2; i++) {
        struct result r;
        struct opts o = {0};
        chat(f, providers[i], "auth:wrong", &o, &r);
        assert_null(r.reply);
        assert_int_equal(r.err.code, AG_UNAUTHENTICATED);
        char want[64];
        snprintf(want, sizeof(want), "model '%s/auth:wrong' answered HTTP 401: ", providers[i]);
        if (strncmp(r.err.msg, want, strlen(want)) != 0)
            fail_msg("got '%s'", r.err.msg);
        assert_null(strstr(r.err.msg, keys[i]));
        result_release(&r);

        cJSON *last = last_request(f);
        if (i == 0) {
            assert_string_equal(last_header(last, "authorization"), "Bearer " OPENAI_KEY);
        } else {
            assert_string_equal(last_header(last, "x-api-key"), ANTHROPIC_KEY);
            assert_non_null(last_header(last, "anthropic-version"));
            assert_null(last_header(last, "authorization"));
        }
        cJSON_Delete(last);

        char model[96];
        snprintf(model, sizeof(model), "auth:%s", keys[i]);
        chat(f, providers[i], model, &o, &r);
        assert_non_null(r.reply);
        result_release(&r);
    }
}

/* An error message that would carry the key (a server echoing it) has it redacted. */
static void test_key_never_in_errors(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        struct result r;
        /* The base URL is the node's, so the key goes; the server's 404 body quotes the path,
         * which holds the key. */
        char path[160];
        snprintf(path, sizeof(path), "%s/%s", f->srv.base, i == 0 ? OPENAI_KEY : ANTHROPIC_KEY);
        struct wk_config_item items[] = {{"base_url", path}};
        struct wk_config c2 = {providers[i], items, 1, 0};
        struct wk_provider_ctx ctx = {.timers = f->timers, .config = &c2, .http = f->http};
        struct wk_provider *p = wk_model_find(providers[i], NULL)->create(&ctx, NULL);
        assert_non_null(p);
        memset(&r, 0, sizeof(r));
        pthread_mutex_init(&r.mu, NULL);
        ag_cond_init_mono(&r.cv);
        struct wk_msg msg = {.role = "user", .content = "x"};
        struct wk_chat_req req = {.model = "echo", .msgs = &msg, .nmsgs = 1};
        struct wk_call_ctx cctx = {.timers = f->timers, .config = &c2};
        assert_int_equal(p->chat(p, &cctx, &req, on_done, &r, NULL), 0);
        wait_done(&r);
        assert_null(r.reply);
        assert_non_null(strstr(r.err.msg, "answered HTTP 404"));
        assert_non_null(strstr(r.err.msg, "[redacted]"));
        assert_null(strstr(r.err.msg, i == 0 ? OPENAI_KEY : ANTHROPIC_KEY));
        p->free(p);
        result_release(&r);
    }
}

static void test_headers_and_settings(void **state)
{
    struct fix *f = *state;
    const char *node[] = {"header=X-Node: n1", "header=X-Node-Two: n2"};
    const char *spec_headers[] = {"X-Spec: s"};
    for (size_t i = 0; i < 2; i++) {
        struct result r;
        struct opts o = {.node_opts = node, .nnode = 2};
        o.settings.temperature_set = true;
        o.settings.temperature = 0.25;
        o.settings.max_tokens = 77;
        o.settings.headers = spec_headers;
        o.settings.nheaders = 1;
        chat(f, providers[i], "echo", &o, &r);
        assert_non_null(r.reply);
        result_release(&r);
        cJSON *last = last_request(f);
        assert_string_equal(last_header(last, "x-node"), "n1");
        assert_string_equal(last_header(last, "x-node-two"), "n2");
        assert_string_equal(last_header(last, "x-spec"), "s");
        const cJSON *body = cJSON_GetObjectItem(last, "body");
        assert_true(cJSON_GetObjectItem(body, "temperature")->valuedouble == 0.25);
        assert_int_equal(cJSON_GetObjectItem(body, "max_tokens")->valueint, 77);
        assert_string_equal(cJSON_GetObjectItem(body, "model")->valuestring, "echo");
        cJSON_Delete(last);
    }
}

static void test_usage(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            struct result r;
            struct opts o = {.stream = stream};
            chat(f, providers[i], "usage:7:9", &o, &r);
            assert_non_null(r.reply);
            assert_string_equal(r.reply->content, "ok");
            assert_int_equal(r.reply->input_tokens, 7);
            assert_int_equal(r.reply->output_tokens, 9);
            result_release(&r);
        }
    }
}

/* The node's key goes to the node's base URL only; a spec pointing elsewhere names its own. */
static void test_spec_base_url_and_key(void **state)
{
    struct fix *f = *state;
    char other[96];
    snprintf(other, sizeof(other), "http://localhost:%d/v1/", f->srv.port);
    setenv("AGENTRY_TEST_SPEC_KEY", "spec-key-42", 1);
    for (size_t i = 0; i < 2; i++) {
        const char *hdr = i == 0 ? "authorization" : "x-api-key";
        struct result r;
        struct opts o = {0};
        o.settings.base_url = other;
        chat(f, providers[i], "echo", &o, &r);
        assert_non_null(r.reply);
        result_release(&r);
        cJSON *last = last_request(f);
        assert_null(last_header(last, hdr));
        char host[64];
        snprintf(host, sizeof(host), "localhost:%d", f->srv.port);
        assert_string_equal(last_header(last, "host"), host);
        cJSON_Delete(last);

        o.settings.api_key_env = "AGENTRY_TEST_SPEC_KEY";
        chat(f, providers[i], "echo", &o, &r);
        assert_non_null(r.reply);
        result_release(&r);
        last = last_request(f);
        assert_non_null(strstr(last_header(last, hdr), "spec-key-42"));
        cJSON_Delete(last);
    }
}

static void test_key_file(void **state)
{
    struct fix *f = *state;
    char path[] = "/tmp/agentry-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "file-key-7\n", 11), 11);
    close(fd);
    char opt[64];
    snprintf(opt, sizeof(opt), "api_key_file=%s", path);
    const char *node[] = {opt};
    struct result r;
    struct opts o = {.node_opts = node, .nnode = 1};
    chat(f, "openai", "auth:file-key-7", &o, &r);
    assert_non_null(r.reply);
    result_release(&r);
    unlink(path);

    struct wk_config_item items[] = {{"api_key_file", path}};
    struct wk_config cfg = {"openai", items, 1, 0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_model_find("openai", NULL)->check_config(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "cannot read option 'openai.api_key_file'"));
}

static void test_script(void **state)
{
    struct fix *f = *state;
    cJSON_Delete(fake_llm_call(&f->srv, "POST", "/_script/s1",
                               "{\"replies\":[{\"text\":\"first \u2192\",\"tool_calls\":"
                               "[{\"name\":\"echo\",\"arguments\":\"{\\\"text\\\":"
                               "\\\"z\\\"}\"}]}]}"));
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            struct result r;
            struct opts o = {.stream = stream};
            chat(f, providers[i], "script:s1", &o, &r);
            assert_non_null(r.reply);
            assert_string_equal(r.reply->content, "first \xE2\x86\x92");
            assert_int_equal(r.reply->ncalls, 1);
            assert_string_equal(r.reply->calls[0].arguments, "{\"text\":\"z\"}");
            result_release(&r);
            o.with_results = true; /* one assistant message: past the script's end */
            chat(f, providers[i], "script:s1", &o, &r);
            assert_non_null(r.reply);
            assert_string_equal(r.reply->content, "script s1 done");
            result_release(&r);
        }
    }
}

static int threads_now(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (fp && fgets(line, sizeof(line), fp))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (fp)
        fclose(fp);
    return n;
}

#define MANY 2000
/* What the fake server's slow:MS answers: ten words, streamed one every MS/10 ms. */
#define SLOW_TEXT "slow slow slow slow slow slow slow slow slow slow"

/* 2,000 streamed chats in flight at once, each answering in 1 s: all succeed, on the same few
 * threads as one chat. */
static void test_many_streams(void **state)
{
    struct fix *f = *state;
    struct wk_config cfg;
    struct opts o = {0};
    struct wk_provider *p = make(f, "openai", &o, &cfg);
    struct result *rs = calloc(MANY, sizeof(*rs));
    struct wk_msg msg = {.role = "user", .content = "x"};
    struct wk_chat_req req = {.model = "slow:1000", .msgs = &msg, .nmsgs = 1, .on_delta = on_delta};
    req.settings.stream = true;
    struct wk_call_ctx ctx = {.timers = f->timers, .config = &cfg};
    int before = threads_now();
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t0 = ag_now_mono_ms();
    for (int i = 0; i < MANY; i++) {
        pthread_mutex_init(&rs[i].mu, NULL);
        ag_cond_init_mono(&rs[i].cv);
        assert_int_equal(p->chat(p, &ctx, &req, on_done, &rs[i], NULL), 0);
    }
    assert_int_equal(threads_now(), before);
    for (int i = 0; i < MANY; i++) {
        wait_done(&rs[i]);
        if (!rs[i].reply)
            fail_msg("chat %d: %s", i, rs[i].err.msg);
        assert_string_equal(rs[i].reply->content, SLOW_TEXT);
        assert_string_equal(rs[i].deltas, SLOW_TEXT);
        result_release(&rs[i]);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    print_message("%d streamed chats of 1 s: %lld ms, %d threads, cpu %ld ms\n", MANY,
                  (long long)(ag_now_mono_ms() - t0), threads_now(),
                  (long)((ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000 +
                         (ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1000 +
                         (ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000 +
                         (ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1000));
    assert_int_equal(threads_now(), before);
    free(rs);
    p->free(p);
    config_release(&cfg);
}

/* A fast model's stream: every token arrives, and the rate is printed (docs/benchmarks.md). */
static void test_fast_stream(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < 2; i++) {
        struct result r;
        struct opts o = {.stream = true};
        int64_t t0 = ag_now_mono_ns();
        chat(f, providers[i], "fast:20000", &o, &r);
        double secs = (double)(ag_now_mono_ns() - t0) / 1e9;
        assert_non_null(r.reply);
        assert_int_equal(strlen(r.reply->content), 4 * 20000);
        assert_int_equal(r.reply->output_tokens, 20000);
        print_message("%s: 20000 streamed tokens in %.3f s (%.0f tokens/s)\n", providers[i], secs,
                      20000 / secs);
        result_release(&r);
    }
}

static void test_check_config(void **state)
{
    (void)state;
    const struct {
        const char *key, *value, *want;
    } bad[] = {
        {"retries", "many", "option 'openai.retries=many' wants a number from 0 to 20"},
        {"base_url", "ftp://x", "wants an http:// or https:// URL"},
        {"header", "NoColon", "wants one line 'Name: value'"},
        {"stall", "soon", "option 'openai.stall'"},
        {"model", "gpt", "unknown option 'openai.model'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wk_config_item item = {(char *)bad[i].key, (char *)bad[i].value};
        struct wk_config cfg = {"openai", &item, 1, 0};
        struct ag_err err = AG_ERR_INIT;
        assert_int_equal(wk_model_find("openai", NULL)->check_config(&cfg, &err), -1);
        if (!strstr(err.msg, bad[i].want))
            fail_msg("%s=%s: got '%s'", bad[i].key, bad[i].value, err.msg);
    }
    struct wk_config_item both[] = {{"api_key_env", "X"}, {"api_key_file", "/dev/null"}};
    struct wk_config cfg = {"anthropic", both, 2, 0};
    assert_int_equal(wk_model_find("anthropic", NULL)->check_config(&cfg, NULL), -1);

    /* No HTTP client: the provider cannot be made. */
    struct wk_provider_ctx ctx = {0};
    struct ag_err err = AG_ERR_INIT;
    assert_null(wk_model_find("anthropic/claude", NULL)->create(&ctx, &err));
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_tool_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_honours_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retry_after_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_retries_spent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_aborts_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_never_in_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_and_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_base_url_and_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_stream, setup, teardown),
        cmocka_unit_test(test_check_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
