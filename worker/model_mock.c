/* worker/model_mock.c - the "mock" model provider: deterministic replies scripted by the user.
 *
 * The mock reads the latest message with role "user" and counts the assistant messages after it
 * (k: how many replies this script has already produced). The user text is a script of steps
 * separated by ';' (whitespace around a step is trimmed, empty steps are skipped):
 *
 *   echo <text>   reply with one tool call to "echo", arguments {"text":"<text>"}
 *   call <tool> <text>
 *                 reply with one tool call to <tool>, arguments {"text":"<text>"}, or <text>
 *                 itself when it is a JSON object ("call read_file {\"path\":\"a.txt\"}"; it
 *                 cannot hold a ';') (<text> may be
 *                 empty; the tool need not be among the request's tools, as for echo)
 *   final <text>  reply with content <text> and no tool call
 *   wait          reply with one tool call to "wait_agent" naming every sub-agent that the
 *                 spawn_agent results after the user message returned ({"agents":[ids...]}): a
 *                 script cannot know its children's ids when it is written (an agent_0 that
 *                 spawns, then waits for its children, with no real model)
 *   sleep <ms>    not a reply: every following reply is delivered <ms> later (the last sleep
 *                 before a reply wins; delays are timers, no thread ever waits)
 *   loop          reply with an echo tool call ({"text":"loop <k+1>"}) now and forever; only the
 *                 agent's iteration limit ends the turn
 *   fail <text>   the chat fails: done() gets no reply and an UNAVAILABLE error whose message is
 *                 <text>
 *
 * The k-th reply comes from the k-th step that is not a sleep. When the steps run out, the reply
 * is a final answer whose content is the content of the last tool message after the user message,
 * or the user text if there is none. A step whose keyword is unknown, or a sleep without a valid
 * number, fails the chat when its turn comes, naming the step.
 *
 * If the text's first word is not a keyword, the text is not a script: the mock behaves as if
 * the script were `echo <text>` when "echo" is among the request's tools (and as the empty script
 * otherwise), followed by the default final answer. So "hello" with tools [echo] gives an echo
 * call, the tool result "hello", then the final answer "hello"; with no tools, the final answer
 * "hello" at once. An empty text, or no user message at all, is the empty script.
 *
 * Tool call ids are "call_<k+1>". Usage: input_tokens = ceil(chars / 4) over the system prompt
 * and every message's content; output_tokens = ceil(chars / 4) over the reply's content and each
 * call's name and arguments.
 *
 * Options: mock.latency=DUR is added to every reply's delay (default 0: a slow model without
 * scripting it), and the common mock.timeout. A cancelled chat ends at once with AG_CANCELLED;
 * one whose deadline comes before its reply ends at the deadline with AG_DEADLINE_EXCEEDED.
 *
 * Threads: chat() is thread-safe and keeps no state between calls. done() always runs on the
 * timer thread (wk_call_after; a delay of 0 when no sleep applies), never inside chat(). The
 * timer callback touches only its own pending object, never the provider, so a provider freed
 * while replies are pending is safe. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h"
#include "worker/model.h"
#include "worker/model_rows.h"

static const char *const mock_keys[] = {"latency", NULL};

/* The provider's state. */
struct mock_state {
    int64_t latency_ms; /* mock.latency */
};

enum mock_kind {
    MOCK_ECHO,
    MOCK_CALL,
    MOCK_FINAL,
    MOCK_SLEEP,
    MOCK_LOOP,
    MOCK_FAIL,
    MOCK_WAIT,
    MOCK_BAD
};

static const struct {
    const char *word;
    enum mock_kind kind;
} mock_keywords[] = {
    {"echo", MOCK_ECHO}, {"call", MOCK_CALL}, {"final", MOCK_FINAL}, {"sleep", MOCK_SLEEP},
    {"loop", MOCK_LOOP}, {"fail", MOCK_FAIL}, {"wait", MOCK_WAIT},
};

struct mock_step {
    enum mock_kind kind; /* never MOCK_SLEEP: sleeps become delay_ms */
    char *tool;          /* owned: MOCK_CALL's tool name; NULL for every other kind */
    char *text;          /* owned: the argument, or the error for MOCK_BAD */
    int64_t delay_ms;    /* the sleep in force when this step is reached */
};

struct mock_script {
    struct mock_step *steps; /* owned */
    size_t n, cap;
    int64_t tail_delay_ms; /* the sleep in force after the last step */
};

/* What the mock reads from a request. */
struct mock_view {
    const char *user_text; /* borrowed; "" if no user message */
    size_t k;              /* assistant messages after it */
    const char *last_tool; /* borrowed; content of the last tool message after it, or NULL */
    size_t start;          /* index of the first message after it */
};

/* Called on the timer thread. */
struct mock_pending {
    wk_model_done_fn *done;
    void *arg;
    struct wk_chat_reply *reply; /* owned until done(); NULL means err */
    struct ag_err err;
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Cuts s after its first word; returns the keyword's kind, or MOCK_BAD if it is not a keyword. */
static enum mock_kind keyword_split(char *s, char **rest)
{
    char *p = s;
    while (*p && !isspace((unsigned char)*p))
        p++;
    *rest = p;
    if (*p) {
        *p = '\0';
        *rest = trim(p + 1);
    }
    for (size_t i = 0; i < AG_ARRAY_SIZE(mock_keywords); i++)
        if (strcmp(s, mock_keywords[i].word) == 0)
            return mock_keywords[i].kind;
    return MOCK_BAD;
}

static void script_push_call(struct mock_script *s, enum mock_kind kind, char *tool_take,
                             char *text_take)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->steps = ag_xrealloc(s->steps, s->cap * sizeof(*s->steps));
    }
    s->steps[s->n++] = (struct mock_step){kind, tool_take, text_take, s->tail_delay_ms};
}

static void script_push(struct mock_script *s, enum mock_kind kind, char *text_take)
{
    script_push_call(s, kind, NULL, text_take);
}

static void script_release(struct mock_script *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->steps[i].tool);
        free(s->steps[i].text);
    }
    free(s->steps);
}

/* A sleep updates the delay in force; a bad number becomes a failing step at its place. */
static void script_sleep(struct mock_script *s, const char *arg)
{
    char *end;
    errno = 0;
    long long ms = strtoll(arg, &end, 10);
    if (*arg && !*end && errno == 0 && ms >= 0) {
        s->tail_delay_ms = ms;
        return;
    }
    script_push(s, MOCK_BAD,
                ag_xasprintf("mock script step 'sleep %s' needs a number of milliseconds", arg));
}

/* "call <tool> <text>": the tool's name is the first word of arg; a call without one becomes a
 * failing step at its place. */
static void script_call(struct mock_script *s, char *arg)
{
    if (!*arg) {
        script_push(s, MOCK_BAD, ag_xstrdup("mock script step 'call' needs a tool name"));
        return;
    }
    char *text = arg;
    while (*text && !isspace((unsigned char)*text))
        text++;
    char *tool = ag_xstrndup(arg, (size_t)(text - arg));
    script_push_call(s, MOCK_CALL, tool, ag_xstrdup(trim(text)));
}

static void script_step(struct mock_script *s, char *step)
{
    char *rest;
    enum mock_kind kind = keyword_split(step, &rest);
    if (kind == MOCK_SLEEP) {
        script_sleep(s, rest);
    } else if (kind == MOCK_CALL) {
        script_call(s, rest);
    } else if (kind == MOCK_BAD) {
        script_push(s, MOCK_BAD,
                    ag_xasprintf("mock script step '%s%s%s' does not start with echo, call, "
                                 "final, sleep, loop, fail or wait",
                                 step, *rest ? " " : "", rest));
    } else {
        script_push(s, kind, ag_xstrdup(rest));
    }
}

static void script_parse(const char *text, bool echo_enabled, struct mock_script *s)
{
    memset(s, 0, sizeof(*s));
    char *copy = ag_xstrdup(text);
    char *t = trim(copy);
    char *first = ag_xstrdup(t), *rest;
    bool is_script = *t && keyword_split(first, &rest) != MOCK_BAD;
    free(first);
    if (!is_script) {
        /* Plain text: a chatty model that echoes when it can. */
        if (*t && echo_enabled)
            script_push(s, MOCK_ECHO, ag_xstrdup(t));
        free(copy);
        return;
    }
    char *save = NULL;
    for (char *tok = strtok_r(t, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char *step = trim(tok);
        if (*step)
            script_step(s, step);
    }
    free(copy);
}

/* The step giving reply k, or NULL when the steps have run out. A loop step answers every
 * reply from its position on. */
static const struct mock_step *script_step_for(const struct mock_script *s, size_t k)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->steps[i].kind == MOCK_LOOP || i == k)
            return &s->steps[i];
    return NULL;
}

static struct mock_view view_of(const struct wk_chat_req *req)
{
    struct mock_view v = {"", 0, NULL, 0};
    size_t start = 0;
    for (size_t i = req->nmsgs; i > 0; i--) {
        if (strcmp(req->msgs[i - 1].role, "user") == 0) {
            v.user_text = req->msgs[i - 1].content;
            start = i;
            break;
        }
    }
    v.start = start;
    for (size_t i = start; i < req->nmsgs; i++) {
        if (strcmp(req->msgs[i].role, "assistant") == 0)
            v.k++;
        else if (strcmp(req->msgs[i].role, "tool") == 0)
            v.last_tool = req->msgs[i].content;
    }
    return v;
}

static bool req_has_tool(const struct wk_chat_req *req, const char *name)
{
    for (size_t i = 0; i < req->ntools; i++)
        if (strcmp(req->tools[i].name, name) == 0)
            return true;
    return false;
}

static uint64_t tokens_of(size_t chars)
{
    return (chars + 3) / 4;
}

static struct wk_chat_reply *reply_final(const char *content)
{
    struct wk_chat_reply *r = ag_xcalloc(1, sizeof(*r));
    r->content = ag_xstrdup(content);
    return r;
}

/* raw_json: a text that is a JSON object is the arguments themselves (call <tool> {...}). */
static struct wk_chat_reply *reply_call(size_t k, const char *tool, const char *text, bool raw_json)
{
    struct wk_chat_reply *r = reply_final("");
    cJSON *args = raw_json && text[0] == '{' ? cJSON_Parse(text) : NULL;
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "text", text);
    }
    char *json = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    r->calls = ag_xcalloc(1, sizeof(*r->calls));
    r->ncalls = 1;
    r->calls[0].id = ag_xasprintf("call_%zu", k + 1);
    r->calls[0].name = ag_xstrdup(tool);
    r->calls[0].arguments = ag_xstrdup(json);
    cJSON_free(json);
    return r;
}

/* wait_agent's arguments: the agent_id of every spawn_agent result ({"agent_id", "existing"})
 * among the tool messages from index start on, in order. */
static char *wait_args(const struct wk_chat_req *req, size_t start)
{
    cJSON *args = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(args, "agents");
    for (size_t i = start; i < req->nmsgs; i++) {
        if (strcmp(req->msgs[i].role, "tool") != 0)
            continue;
        cJSON *out = cJSON_Parse(req->msgs[i].content);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(out, "agent_id");
        if (cJSON_IsString(id) && cJSON_HasObjectItem(out, "existing"))
            cJSON_AddItemToArray(ids, cJSON_CreateString(id->valuestring));
        cJSON_Delete(out);
    }
    char *json = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    char *copy = ag_xstrdup(json);
    cJSON_free(json);
    return copy;
}

static void reply_set_usage(struct wk_chat_reply *r, const struct wk_chat_req *req)
{
    size_t in = req->system_prompt ? strlen(req->system_prompt) : 0;
    for (size_t i = 0; i < req->nmsgs; i++)
        in += strlen(req->msgs[i].content);
    size_t out = strlen(r->content);
    for (size_t i = 0; i < r->ncalls; i++)
        out += strlen(r->calls[i].name) + strlen(r->calls[i].arguments);
    r->input_tokens = tokens_of(in);
    r->output_tokens = tokens_of(out);
}

/* Fills pd->reply, or pd->err for a failing step. */
static void answer(struct mock_pending *pd, const struct mock_step *step, const struct mock_view *v,
                   const struct wk_chat_req *req)
{
    if (!step) {
        pd->reply = reply_final(v->last_tool ? v->last_tool : v->user_text);
        return;
    }
    switch (step->kind) {
    case MOCK_ECHO:
        pd->reply = reply_call(v->k, "echo", step->text, false);
        break;
    case MOCK_CALL:
        pd->reply = reply_call(v->k, step->tool, step->text, true);
        break;
    case MOCK_WAIT: {
        char *args = wait_args(req, v->start);
        pd->reply = reply_call(v->k, "wait_agent", args, true);
        free(args);
        break;
    }
    case MOCK_LOOP: {
        char text[32];
        snprintf(text, sizeof(text), "loop %zu", v->k + 1);
        pd->reply = reply_call(v->k, "echo", text, false);
        break;
    }
    case MOCK_FINAL:
        pd->reply = reply_final(step->text);
        break;
    case MOCK_FAIL:
    case MOCK_BAD:
    case MOCK_SLEEP: /* not a reply step; kept for -Wswitch */
        ag_err_set(&pd->err, AG_UNAVAILABLE, "%s", step->text);
        break;
    }
}

static void mock_fire(void *arg, enum ag_code code)
{
    struct mock_pending *pd = arg;
    if (code != AG_OK) {
        wk_chat_reply_free(pd->reply);
        pd->reply = NULL;
        ag_err_set(&pd->err, code,
                   code == AG_CANCELLED ? "model call to 'mock' was cancelled"
                                        : "model call to 'mock' timed out");
    }
    pd->done(pd->arg, pd->reply, pd->reply ? NULL : &pd->err);
    free(pd);
}

static int mock_chat(struct wk_provider *p, const struct wk_call_ctx *ctx,
                     const struct wk_chat_req *req, wk_model_done_fn *done, void *arg,
                     struct ag_err *err)
{
    if (!ctx || !ctx->timers)
        return ag_err_set(err, AG_INTERNAL, "cannot call model 'mock': no timers given");
    const struct mock_state *st = p->state;
    struct mock_view v = view_of(req);
    struct mock_script s;
    script_parse(v.user_text, req_has_tool(req, "echo"), &s);
    const struct mock_step *step = script_step_for(&s, v.k);

    struct mock_pending *pd = ag_xcalloc(1, sizeof(*pd));
    pd->done = done;
    pd->arg = arg;
    answer(pd, step, &v, req);
    if (pd->reply)
        reply_set_usage(pd->reply, req);
    int64_t delay_ms = (step ? step->delay_ms : s.tail_delay_ms) + st->latency_ms;
    script_release(&s);
    /* Last: from here the timer thread may run done() and the caller may reuse req. */
    wk_call_after(ctx, delay_ms, mock_fire, pd);
    return 0;
}

static void mock_free(struct wk_provider *p)
{
    if (p)
        free(p->state);
    free(p);
}

int wk_model__mock_check_config(const struct wk_config *c, struct ag_err *err)
{
    int64_t latency = 0;
    if (wk_config_check_keys(c, mock_keys, err) != 0)
        return -1;
    return wk_config_duration(c, "latency", &latency, err);
}

struct wk_provider *wk_model__mock_create(const struct wk_provider_ctx *ctx, struct ag_err *err)
{
    struct mock_state *st = ag_xcalloc(1, sizeof(*st));
    if (wk_config_duration(ctx ? ctx->config : NULL, "latency", &st->latency_ms, err) != 0) {
        free(st);
        return NULL;
    }
    struct wk_provider *p = ag_xcalloc(1, sizeof(*p));
    p->name = "mock";
    p->chat = mock_chat;
    p->free = mock_free;
    p->state = st;
    return p;
}
