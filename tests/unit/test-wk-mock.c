/* tests/unit/test-wk-mock.c - the "mock" model provider and the provider table
 * (worker/model_mock.c, worker/model.c), called directly, without a runner.
 *
 * Each chat waits for done() on a condvar with a generous deadline. done() must come from the
 * timer thread, never from inside chat(): a thread-local flag set around chat() catches that. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/timers.h"
#include "worker/model.h"

#define WAIT_SECONDS 30

static _Thread_local bool in_chat;

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool done_inside_chat;
    struct wk_chat_reply *reply;
    struct ag_err err;
};

struct fix {
    struct ag_timers *timers;
    struct wk_provider *mock;
    struct wk_config config; /* no options */
    struct wk_cancel cancel;
    int64_t deadline_ms; /* for the next chat; 0: none */
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    f->timers = ag_timers_new(NULL);
    f->config.owner = "mock";
    wk_cancel_init(&f->cancel);
    const struct wk_provider_row *row = wk_model_find("mock", NULL);
    struct wk_provider_ctx ctx = {.timers = f->timers, .config = &f->config};
    f->mock = row->create(&ctx, NULL);
    *state = f;
    return f->timers && f->mock ? 0 : -1;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    f->mock->free(f->mock);
    ag_timers_free(f->timers);
    wk_cancel_release(&f->cancel);
    free(f);
    return 0;
}

static void on_done(void *arg, struct wk_chat_reply *reply, const struct ag_err *err)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->done_inside_chat = in_chat;
    r->reply = reply;
    if (err)
        r->err = *err;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* One chat; returns the reply (caller frees) or NULL with *err filled. */
static struct wk_chat_reply *chat(struct fix *f, const char *system, const struct wk_msg *msgs,
                                  size_t nmsgs, const struct wk_chat_tool *tools, size_t ntools,
                                  struct ag_err *err)
{
    struct result r = {.done = false};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    struct wk_chat_req req = {.model = "",
                              .system_prompt = system,
                              .msgs = msgs,
                              .nmsgs = nmsgs,
                              .tools = tools,
                              .ntools = ntools};
    struct wk_call_ctx ctx = {.timers = f->timers,
                              .config = &f->config,
                              .cancel = &f->cancel,
                              .deadline_ms = f->deadline_ms};
    in_chat = true;
    int rc = f->mock->chat(f->mock, &ctx, &req, on_done, &r, err);
    in_chat = false;
    assert_int_equal(rc, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&r.mu);
    while (!r.done)
        if (pthread_cond_timedwait(&r.cv, &r.mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&r.mu);
    assert_true(r.done);
    assert_false(r.done_inside_chat);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    if (err)
        *err = r.err;
    return r.reply;
}

static struct wk_msg msg(const char *role, const char *content)
{
    struct wk_msg m = {(char *)role, (char *)content, NULL, 0, NULL};
    return m;
}

static const struct wk_chat_tool echo_tools[] = {{"echo", "Returns the text.", "{}"}};

static void assert_call(const struct wk_chat_reply *r, const char *id, const char *tool,
                        const char *text)
{
    assert_non_null(r);
    assert_string_equal(r->content, "");
    assert_int_equal(r->ncalls, 1);
    assert_string_equal(r->calls[0].id, id);
    assert_string_equal(r->calls[0].name, tool);
    cJSON *args = cJSON_Parse(r->calls[0].arguments);
    assert_non_null(args);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(args, "text");
    assert_true(cJSON_IsString(t));
    assert_string_equal(t->valuestring, text);
    cJSON_Delete(args);
}

static void assert_echo_call(const struct wk_chat_reply *r, const char *id, const char *text)
{
    assert_call(r, id, "echo", text);
}

static void assert_final(const struct wk_chat_reply *r, const char *content)
{
    assert_non_null(r);
    assert_int_equal(r->ncalls, 0);
    assert_string_equal(r->content, content);
}

static void test_plain_text_with_echo_tool(void **state)
{
    struct fix *f = *state;
    struct wk_tool_call call = {"call_1", "echo", "{\"text\":\"hello\"}"};
    struct wk_msg msgs[3] = {msg("user", "hello"), msg("assistant", ""), msg("tool", "hello")};
    msgs[1].calls = &call;
    msgs[1].ncalls = 1;

    struct wk_chat_reply *r = chat(f, "", msgs, 1, echo_tools, 1, NULL);
    assert_echo_call(r, "call_1", "hello");
    wk_chat_reply_free(r);

    r = chat(f, "", msgs, 3, echo_tools, 1, NULL);
    assert_final(r, "hello");
    wk_chat_reply_free(r);
}

static void test_plain_text_without_tools(void **state)
{
    struct fix *f = *state;
    struct wk_msg m = msg("user", "hello");
    struct wk_chat_reply *r = chat(f, "", &m, 1, NULL, 0, NULL);
    assert_final(r, "hello");
    wk_chat_reply_free(r);
}

/* The k-th reply follows the k-th step after the latest user message; then the default final
 * answer repeats the last tool output. */
static void test_script_echo_then_final(void **state)
{
    struct fix *f = *state;
    struct wk_msg msgs[] = {
        msg("user", "old; stuff"),
        msg("assistant", "x"),
        msg("user", "  echo a b ;; final  done  "),
        msg("assistant", ""),
        msg("tool", "a b"),
        msg("assistant", "done"),
        msg("tool", "late"),
    };
    struct wk_chat_reply *r = chat(f, "", msgs, 3, NULL, 0, NULL);
    assert_echo_call(r, "call_1", "a b"); /* a script runs even without the echo tool */
    wk_chat_reply_free(r);
    r = chat(f, "", msgs, 5, NULL, 0, NULL);
    assert_final(r, "done");
    wk_chat_reply_free(r);
    r = chat(f, "", msgs, 7, NULL, 0, NULL);
    assert_final(r, "late");
    wk_chat_reply_free(r);
}

/* "call <tool> <text>" names any tool, offered or not; the text may be empty; a call without a
 * tool name fails when its turn comes. */
static void test_script_call_names_the_tool(void **state)
{
    struct fix *f = *state;
    struct wk_msg msgs[] = {
        msg("user", "call append  s1 \"x\" ; call  other; call ;final done"),
        msg("assistant", ""),
        msg("tool", "ok"),
        msg("assistant", ""),
        msg("tool", "ok"),
    };
    struct wk_chat_reply *r = chat(f, "", msgs, 1, echo_tools, 1, NULL);
    assert_call(r, "call_1", "append", "s1 \"x\"");
    wk_chat_reply_free(r);
    r = chat(f, "", msgs, 3, echo_tools, 1, NULL);
    assert_call(r, "call_2", "other", "");
    wk_chat_reply_free(r);
    struct ag_err err = AG_ERR_INIT;
    r = chat(f, "", msgs, 5, echo_tools, 1, &err);
    assert_null(r);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_string_equal(err.msg, "mock script step 'call' needs a tool name");
}

/* "wait" names the children that the spawn_agent results of this script returned, in order;
 * other tool results, and those before the user message, are not children of this turn. */
static void test_script_wait_names_the_spawned_children(void **state)
{
    struct fix *f = *state;
    struct wk_msg msgs[] = {
        msg("user", "old"),
        msg("assistant", ""),
        msg("tool", "{\"agent_id\":\"old1\",\"existing\":false}"),
        msg("user", "call spawn_agent {\"input\":\"a\"}; echo x; call spawn_agent {}; wait"),
        msg("assistant", ""),
        msg("tool", "{\"agent_id\":\"kid1\",\"existing\":false}"),
        msg("assistant", ""),
        msg("tool", "{\"agent_id\":\"not-a-spawn\"}"),
        msg("assistant", ""),
        msg("tool", "{\"agent_id\":\"kid2\",\"existing\":true}"),
    };
    struct wk_chat_reply *r = chat(f, "", msgs, sizeof(msgs) / sizeof(msgs[0]), NULL, 0, NULL);
    assert_non_null(r);
    assert_int_equal(r->ncalls, 1);
    assert_string_equal(r->calls[0].id, "call_4");
    assert_string_equal(r->calls[0].name, "wait_agent");
    assert_string_equal(r->calls[0].arguments, "{\"agents\":[\"kid1\",\"kid2\"]}");
    wk_chat_reply_free(r);
}

static void test_script_loop_never_ends(void **state)
{
    struct fix *f = *state;
    struct wk_msg msgs[13] = {msg("user", "loop")};
    for (size_t i = 1; i < 13; i += 2) {
        msgs[i] = msg("assistant", "");
        msgs[i + 1] = msg("tool", "x");
    }
    struct wk_chat_reply *r = chat(f, "", msgs, 1, NULL, 0, NULL);
    assert_echo_call(r, "call_1", "loop 1");
    wk_chat_reply_free(r);
    r = chat(f, "", msgs, 11, NULL, 0, NULL); /* 5 assistant messages so far */
    assert_echo_call(r, "call_6", "loop 6");
    wk_chat_reply_free(r);
}

static void test_script_fail(void **state)
{
    struct fix *f = *state;
    struct wk_msg m = msg("user", "fail boom");
    struct ag_err err = AG_ERR_INIT;
    struct wk_chat_reply *r = chat(f, "", &m, 1, NULL, 0, &err);
    assert_null(r);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_string_equal(err.msg, "boom");
}

static void test_script_bad_step_fails_when_reached(void **state)
{
    struct fix *f = *state;
    struct wk_msg msgs[] = {msg("user", "echo a; bogus step; sleep soon"), msg("assistant", ""),
                            msg("tool", "a")};
    struct wk_chat_reply *r = chat(f, "", msgs, 1, NULL, 0, NULL);
    assert_echo_call(r, "call_1", "a");
    wk_chat_reply_free(r);
    struct ag_err err = AG_ERR_INIT;
    r = chat(f, "", msgs, 3, NULL, 0, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "'bogus step'"));
}

/* The delay is a timer: done() still arrives from the timer thread, with the step's reply. */
static void test_script_sleep_delays_reply(void **state)
{
    struct fix *f = *state;
    struct wk_msg m = msg("user", "sleep 30; final x");
    struct wk_chat_reply *r = chat(f, "", &m, 1, NULL, 0, NULL);
    assert_final(r, "x");
    wk_chat_reply_free(r);
}

static void test_usage_counts_chars(void **state)
{
    struct fix *f = *state;
    struct wk_msg m = msg("user", "hello"); /* 5 + 4 ("sys!") = 9 chars: 3 tokens */
    struct wk_chat_reply *r = chat(f, "sys!", &m, 1, NULL, 0, NULL);
    assert_final(r, "hello");
    assert_int_equal(r->input_tokens, 3);
    assert_int_equal(r->output_tokens, 2);
    wk_chat_reply_free(r);
}

static void test_no_user_message_is_empty_final(void **state)
{
    struct fix *f = *state;
    struct wk_chat_reply *r = chat(f, "", NULL, 0, echo_tools, 1, NULL);
    assert_final(r, "");
    wk_chat_reply_free(r);
}

static void cancel_now(void *cancel)
{
    wk_cancel_request(cancel);
}

/* A reply a minute away ends at once when the call is cancelled, with CANCELLED. */
static void test_cancel_ends_the_call(void **state)
{
    struct fix *f = *state;
    struct ag_timers *canceller = ag_timers_new(NULL);
    /* Cancel from another thread while the chat waits: after 10 ms, on a second timer thread. */
    ag_timers_add(canceller, 10, cancel_now, &f->cancel);
    struct wk_msg m = msg("user", "sleep 60000; final x");
    struct ag_err err = AG_ERR_INIT;
    assert_null(chat(f, "", &m, 1, NULL, 0, &err));
    assert_int_equal(err.code, AG_CANCELLED);
    assert_string_equal(err.msg, "model call to 'mock' was cancelled");
    ag_timers_free(canceller);
}

/* A call made after its run was cancelled ends at once too. */
static void test_cancel_before_the_call(void **state)
{
    struct fix *f = *state;
    assert_false(wk_cancel_requested(&f->cancel));
    wk_cancel_request(&f->cancel);
    assert_true(wk_cancel_requested(&f->cancel));
    struct wk_msg m = msg("user", "final x");
    struct ag_err err = AG_ERR_INIT;
    assert_null(chat(f, "", &m, 1, NULL, 0, &err));
    assert_int_equal(err.code, AG_CANCELLED);
}

/* A reply that would come after the deadline does not: the call ends at the deadline. */
static void test_deadline_cuts_a_slow_reply(void **state)
{
    struct fix *f = *state;
    f->deadline_ms = ag_now_mono_ms() + 20;
    struct wk_msg m = msg("user", "sleep 60000; final x");
    struct ag_err err = AG_ERR_INIT;
    assert_null(chat(f, "", &m, 1, NULL, 0, &err));
    assert_int_equal(err.code, AG_DEADLINE_EXCEEDED);
    /* One that comes in time is untouched. */
    f->deadline_ms = ag_now_mono_ms() + 60000;
    m = msg("user", "final x");
    struct wk_chat_reply *r = chat(f, "", &m, 1, NULL, 0, NULL);
    assert_final(r, "x");
    wk_chat_reply_free(r);
}

/* mock.latency delays every reply: a minute of it meets a 20 ms deadline. */
static void test_latency_option(void **state)
{
    struct fix *f = *state;
    struct wk_config_item item = {"latency", "1m"};
    struct wk_config cfg = {"mock", &item, 1, 0};
    struct wk_provider_ctx pctx = {.timers = f->timers, .config = &cfg};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_model_find("mock", NULL)->check_config(&cfg, &err), 0);
    struct wk_provider *slow = wk_model_find("mock", NULL)->create(&pctx, &err);
    assert_non_null(slow);
    struct wk_provider *fast = f->mock;
    f->mock = slow;
    f->deadline_ms = ag_now_mono_ms() + 20;
    struct wk_msg m = msg("user", "final x");
    assert_null(chat(f, "", &m, 1, NULL, 0, &err));
    assert_int_equal(err.code, AG_DEADLINE_EXCEEDED);
    f->mock = fast;
    slow->free(slow);
}

/* Options are checked before the node starts: unknown keys and bad durations are refused with a
 * message naming them. */
static void test_check_config(void **state)
{
    (void)state;
    int (*check)(const struct wk_config *,
                 struct ag_err *) = wk_model_find("mock", NULL)->check_config;
    struct wk_config_item items[] = {{"timeout", "5s"}, {"latency", "50ms"}};
    struct wk_config cfg = {"mock", items, 2, 0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(check(&cfg, &err), 0);
    items[1].value = "fast";
    assert_int_equal(check(&cfg, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "option 'mock.latency'"));
    items[1].key = "colour";
    assert_int_equal(check(&cfg, &err), -1);
    assert_string_equal(err.msg, "unknown option 'mock.colour': mock takes timeout, latency");
}

static void test_model_find(void **state)
{
    (void)state;
    const char *model = NULL;
    const struct wk_provider_row *row = wk_model_find("mock/tiny", &model);
    assert_non_null(row);
    assert_string_equal(row->name, "mock");
    assert_string_equal(model, "tiny");
    assert_ptr_equal(wk_model_find("mock", &model), row);
    assert_string_equal(model, "");
    assert_ptr_equal(wk_model_find("", NULL), row);
    assert_null(wk_model_find("mockery", NULL));
    assert_null(wk_model_find("nosuch/gpt", NULL));
    assert_string_equal(wk_model_find("openai/gpt", &model)->name, "openai");
    assert_string_equal(model, "gpt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_text_with_echo_tool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_text_without_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_echo_then_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_call_names_the_tool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_wait_names_the_spawned_children, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_script_loop_never_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_bad_step_fails_when_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_sleep_delays_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_counts_chars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_user_message_is_empty_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_ends_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_cuts_a_slow_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_option, setup, teardown),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_model_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
