/* worker/run.c - one run: an agent's turn, from its assignment to its turn-ending event.
 *
 * Owns: the run's copy of the spec and checkpoint, its conversation and counters, and the loop
 * of runner.h (consume inputs; then model call, tool calls, model call... until a final answer,
 * the iteration limit or an error). The loop is a state machine (enum wk_run_phase) advanced by
 * wk_run__step on a pool thread; waiting (on the model, a tool, room in the emit queues, or the
 * hub storing a tool event with durable_tools) returns the thread to the pool, and the wake-up
 * queues the run again.
 *
 * Threads: the turn state belongs to the token holder (see runner_internal.h); the inbox and the
 * cancelled flag are shared under run->mu. Completion callbacks run on the provider's or the
 * tool's thread (the timer thread for the built-in ones), wake-ups from the emit sink on its
 * thread (the connection thread); all only queue the run. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/runner_internal.h"

/* The hub's default when spec.max_iterations is 0 (types.proto, AgentSpec). */
#define WK_RUN_DEFAULT_MAX_ITERATIONS 10
/* Inputs waiting for the next model call. The hub keeps every input until a checkpoint covers
 * it, so refusing one loses nothing: it comes back with the agent's next assignment. */
#define WK_RUN_MAX_INBOX 1024

static char *dup_or_empty(const char *s)
{
    return ag_xstrdup(s ? s : "");
}

static struct wk_msg *msgs_push(struct wk_run *run, const char *role)
{
    if (run->nmsgs == run->msgs_cap) {
        run->msgs_cap = run->msgs_cap ? run->msgs_cap * 2 : 8;
        run->msgs = ag_xrealloc(run->msgs, run->msgs_cap * sizeof(*run->msgs));
    }
    struct wk_msg *m = &run->msgs[run->nmsgs++];
    memset(m, 0, sizeof(*m));
    m->role = ag_xstrdup(role);
    return m;
}

static void msg_copy_pb(struct wk_msg *m, const Agentry__V1__Message *pb)
{
    m->content = dup_or_empty(pb->content);
    if (pb->tool_call_id && *pb->tool_call_id)
        m->tool_call_id = ag_xstrdup(pb->tool_call_id);
    if (pb->n_tool_calls == 0)
        return;
    m->calls = ag_xcalloc(pb->n_tool_calls, sizeof(*m->calls));
    m->ncalls = pb->n_tool_calls;
    for (size_t i = 0; i < pb->n_tool_calls; i++) {
        m->calls[i].id = dup_or_empty(pb->tool_calls[i]->id);
        m->calls[i].name = dup_or_empty(pb->tool_calls[i]->name);
        m->calls[i].arguments = dup_or_empty(pb->tool_calls[i]->arguments);
    }
}

/* A user input becomes a user message. Inputs at or below input_seq are already in the
 * conversation (a resent Deliver, or an Assignment overlapping its checkpoint): adding them
 * again would show the model the same message twice. */
static void consume_input(struct wk_run *run, uint64_t seq, char *text_take)
{
    if (run->input_seq > 0 && seq <= run->input_seq) {
        free(text_take);
        return;
    }
    struct wk_msg *m = msgs_push(run, "user");
    m->content = text_take;
    if (seq > run->input_seq)
        run->input_seq = seq;
}

static void copy_spec(struct wk_run *run, const Agentry__V1__AgentSpec *spec)
{
    const char *model = spec && spec->model && *spec->model ? spec->model : "mock";
    run->model = ag_xstrdup(model);
    const char *slash = strchr(run->model, '/');
    run->model_name = slash ? slash + 1 : "";
    run->system_prompt = dup_or_empty(spec ? spec->system_prompt : NULL);
    run->max_iterations =
        spec && spec->max_iterations ? spec->max_iterations : WK_RUN_DEFAULT_MAX_ITERATIONS;
    if (!spec || spec->n_tools == 0)
        return;
    run->tools = ag_xcalloc(spec->n_tools, sizeof(*run->tools));
    run->tool_specs = ag_xcalloc(spec->n_tools, sizeof(*run->tool_specs));
    run->ntools = spec->n_tools;
    for (size_t i = 0; i < spec->n_tools; i++) {
        run->tools[i] = dup_or_empty(spec->tools[i]);
        /* A tool this node lacks is still shown (the hub places agents only where their tools
         * are, so this is a race with an upgrade): calling it gives the model an error result. */
        const struct wk_tool *t = wk_tool_find(run->tools[i]);
        run->tool_specs[i] = (struct wk_chat_tool){
            run->tools[i], t ? t->description : "", t ? t->schema_json : "{\"type\":\"object\"}"};
    }
}

static void copy_checkpoint(struct wk_run *run, const Agentry__V1__Checkpoint *cp)
{
    if (!cp)
        return;
    for (size_t i = 0; i < cp->n_messages; i++)
        msg_copy_pb(msgs_push(run, cp->messages[i]->role ? cp->messages[i]->role : ""),
                    cp->messages[i]);
    run->input_seq = cp->input_seq;
    if (cp->usage) {
        run->base_usage.input_tokens = cp->usage->input_tokens;
        run->base_usage.output_tokens = cp->usage->output_tokens;
        run->base_usage.model_calls = cp->usage->model_calls;
        run->base_usage.tool_calls = cp->usage->tool_calls;
    }
    if (cp->user_state.len > 0) {
        run->user_state = ag_xmemdup(cp->user_state.data, cp->user_state.len);
        run->user_state_len = cp->user_state.len;
    }
}

struct wk_run *wk_run__new(const Agentry__V1__Assignment *a, struct wk_runner *r,
                           struct wk_provider *p, const struct wk_config *model_config,
                           bool consume_inputs)
{
    struct wk_run *run = ag_xcalloc(1, sizeof(*run));
    run->runner = r;
    run->provider = p;
    run->model_config = model_config;
    run->agent_id = dup_or_empty(a->agent_id);
    run->epoch = a->epoch;
    copy_spec(run, a->spec);
    copy_checkpoint(run, a->checkpoint);
    run->turn_start = run->nmsgs;
    wk_runner__limits(r, &run->max_payload, &run->max_event);
    for (size_t i = 0; consume_inputs && i < a->n_inputs; i++)
        consume_input(run, a->inputs[i]->seq, dup_or_empty(a->inputs[i]->text));
    run->phase = WK_RUN_CALL_MODEL;
    wk_cancel_init(&run->cancel);
    pthread_mutex_init(&run->mu, NULL);
    atomic_init(&run->refs, 1);
    return run;
}

static void run_free(struct wk_run *run)
{
    free(run->agent_id);
    free(run->model);
    free(run->system_prompt);
    for (size_t i = 0; i < run->ntools; i++)
        free(run->tools[i]);
    free(run->tools);
    free(run->tool_specs);
    free(run->user_state);
    for (size_t i = 0; i < run->nmsgs; i++)
        wk_msg_release(&run->msgs[i]);
    free(run->msgs);
    wk_chat_reply_free(run->reply);
    free(run->tool_output);
    for (size_t i = 0; i < run->ninbox; i++)
        free(run->inbox[i].text);
    free(run->inbox);
    wk_cancel_release(&run->cancel);
    pthread_mutex_destroy(&run->mu);
    free(run);
}

void wk_run__ref(struct wk_run *run)
{
    atomic_fetch_add(&run->refs, 1);
}

void wk_run__unref(struct wk_run *run)
{
    if (run && atomic_fetch_sub(&run->refs, 1) == 1)
        run_free(run);
}

int wk_run__deliver(struct wk_run *run, uint64_t seq, const char *text, struct ag_err *err)
{
    pthread_mutex_lock(&run->mu);
    if (run->cancelled) {
        pthread_mutex_unlock(&run->mu);
        return ag_err_set(err, AG_NOT_FOUND,
                          "cannot deliver input %" PRIu64 " to agent '%s': its turn was cancelled",
                          seq, run->agent_id);
    }
    if (run->ninbox == WK_RUN_MAX_INBOX) {
        pthread_mutex_unlock(&run->mu);
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "cannot deliver input %" PRIu64
                          " to agent '%s': %d inputs already wait for its next model call",
                          seq, run->agent_id, WK_RUN_MAX_INBOX);
    }
    if (run->ninbox == run->inbox_cap) {
        run->inbox_cap = run->inbox_cap ? run->inbox_cap * 2 : 4;
        run->inbox = ag_xrealloc(run->inbox, run->inbox_cap * sizeof(*run->inbox));
    }
    run->inbox[run->ninbox++] = (struct wk_run_input){seq, ag_xstrdup(text ? text : "")};
    pthread_mutex_unlock(&run->mu);
    return 0;
}

void wk_run__cancel(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    run->cancelled = true;
    pthread_mutex_unlock(&run->mu);
    /* The call ends early and its done() finds the run cancelled: a model call a minute away
     * does not hold the run (and its memory) for that minute. */
    wk_cancel_request(&run->cancel);
}

/* The context of the run's next model or tool call: the deadline is the option "timeout" from
 * now. */
static struct wk_call_ctx call_ctx(struct wk_run *run, const struct wk_config *config)
{
    return (struct wk_call_ctx){
        .timers = wk_runner__timers(run->runner),
        .config = config,
        .cancel = &run->cancel,
        .deadline_ms = config->timeout_ms > 0 ? ag_now_mono_ms() + config->timeout_ms : 0,
    };
}

static bool run_is_cancelled(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    bool c = run->cancelled;
    pthread_mutex_unlock(&run->mu);
    return c;
}

/* The token holder found the run cancelled: the turn ends here, silently. */
static void run_drop(struct wk_run *run)
{
    ag_log_info("run.finished", "agent=%s epoch=%" PRIu64 " outcome=cancelled iterations=%u",
                run->agent_id, run->epoch, run->iterations);
    wk_run__unref(run);
}

void wk_run__resume(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    if (run->cancelled) {
        pthread_mutex_unlock(&run->mu);
        run_drop(run);
        return;
    }
    wk_runner__ready_push(run->runner, run);
    pthread_mutex_unlock(&run->mu);
}

static void on_room(void *arg)
{
    wk_run__resume(arg);
}

static void on_model_done(void *arg, struct wk_chat_reply *reply, const struct ag_err *err)
{
    struct wk_run *run = arg;
    run->reply = reply;
    if (!reply && err)
        run->model_err = *err;
    else if (!reply)
        ag_err_set(&run->model_err, AG_UNKNOWN, "model '%s' failed without a reason", run->model);
    run->phase = WK_RUN_MODEL_DONE;
    wk_run__resume(run);
}

static void on_tool_done(void *arg, char *output, bool is_error)
{
    struct wk_run *run = arg;
    run->tool_output = output ? output : ag_xstrdup("");
    run->tool_is_error = is_error;
    run->phase = WK_RUN_TOOL_DONE;
    wk_run__resume(run);
}

static const char *outcome_name(Agentry__V1__EventKind kind)
{
    switch (kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        return "final";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
        return "yield";
    default:
        return "error";
    }
}

/* Leave the run table first, then emit: the hub may answer a FINAL with the agent's next
 * Assignment at once, and that must not find this run still holding the agent. */
static void end_turn(struct wk_run *run, Agentry__V1__EventKind kind, const char *text)
{
    if (!wk_runner__table_remove(run->runner, run)) {
        run_drop(run); /* a cancel took the run from the table: it ends silently */
        return;
    }
    wk_run__emit_end(run, kind, text);
    ag_log_info("run.finished", "agent=%s epoch=%" PRIu64 " outcome=%s iterations=%u%s%s",
                run->agent_id, run->epoch, outcome_name(kind), run->iterations,
                kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR ? " error=" : "",
                kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR ? ag_log_q(text) : "");
    wk_run__unref(run); /* the table's reference */
    wk_run__unref(run); /* the token */
}

/* An event of the turn outgrew the hub's limits (why): the turn ends here with an ERROR. */
static bool fail_turn(struct wk_run *run, const struct ag_err *why)
{
    end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, why->msg);
    return false;
}

static void drain_inbox(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    struct wk_run_input *inbox = run->inbox;
    size_t n = run->ninbox;
    run->inbox = NULL;
    run->ninbox = run->inbox_cap = 0;
    pthread_mutex_unlock(&run->mu);
    for (size_t i = 0; i < n; i++)
        consume_input(run, inbox[i].seq, inbox[i].text);
    free(inbox);
}

/* Each step function returns true to go on, false when the token has left this thread. */

static bool call_model(struct wk_run *run)
{
    if (run->iterations >= run->max_iterations) {
        end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD, "max_iterations");
        return false;
    }
    drain_inbox(run);
    run->iterations++;
    run->usage.model_calls++;
    struct ag_err err = AG_ERR_INIT;
    if (wk_run__emit_model_request(run, &err) != 0)
        return fail_turn(run, &err);
    run->phase = WK_RUN_MODEL_DONE;
    struct wk_chat_req req = {
        .model = run->model_name,
        .system_prompt = run->system_prompt,
        .msgs = run->msgs,
        .nmsgs = run->nmsgs,
        .tools = run->tool_specs,
        .ntools = run->ntools,
    };
    struct wk_call_ctx ctx = call_ctx(run, run->model_config);
    if (run->provider->chat(run->provider, &ctx, &req, on_model_done, run, &err) == 0)
        return false; /* on_model_done has the token now, perhaps already ran */
    end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, err.msg);
    return false;
}

static bool handle_reply(struct wk_run *run)
{
    struct wk_chat_reply *reply = run->reply;
    run->reply = NULL;
    if (!reply) {
        end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, run->model_err.msg);
        return false;
    }
    run->usage.input_tokens += reply->input_tokens;
    run->usage.output_tokens += reply->output_tokens;
    struct ag_err err = AG_ERR_INIT;
    if (wk_run__emit_model_reply(run, reply, &err) != 0) {
        wk_chat_reply_free(reply);
        return fail_turn(run, &err);
    }

    struct wk_msg *m = msgs_push(run, "assistant");
    m->content = reply->content ? reply->content : ag_xstrdup("");
    m->calls = reply->calls;
    m->ncalls = reply->ncalls;
    reply->content = NULL;
    reply->calls = NULL;
    reply->ncalls = 0;
    wk_chat_reply_free(reply);

    if (m->ncalls == 0) {
        end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL, m->content);
        return false;
    }
    run->call_msg = run->nmsgs - 1;
    run->tool_idx = 0;
    run->phase = WK_RUN_NEXT_TOOL;
    return true;
}

static bool tool_enabled(const struct wk_run *run, const char *name)
{
    for (size_t i = 0; i < run->ntools; i++)
        if (strcmp(run->tools[i], name) == 0)
            return true;
    return false;
}

/* The tool to run, or NULL with *why set (owned) to the error result the model will see. */
static const struct wk_tool *tool_for(const struct wk_run *run, const char *name, char **why)
{
    if (!tool_enabled(run, name)) {
        *why = ag_xasprintf("tool '%s' is not enabled for this agent", name);
        return NULL;
    }
    const struct wk_tool *t = wk_tool_find(name);
    if (!t)
        *why = ag_xasprintf("tool '%s' is not available on this node", name);
    return t;
}

static bool next_tool(struct wk_run *run)
{
    const struct wk_msg *m = &run->msgs[run->call_msg];
    if (run->tool_idx == m->ncalls) {
        run->phase = WK_RUN_CALL_MODEL;
        return true;
    }
    const struct wk_tool_call *c = &m->calls[run->tool_idx];
    run->usage.tool_calls++;
    struct ag_err err = AG_ERR_INIT;
    bool parked = false;
    run->phase = WK_RUN_RUN_TOOL; /* before a park hands the token on */
    if (wk_run__emit_tool_call(run, c, wk_runner__durable_tools(run->runner) ? &parked : NULL,
                               &err) != 0)
        return fail_turn(run, &err);
    return !parked; /* parked: on_stored has the token, and the tool runs once it is stored */
}

static bool run_tool(struct wk_run *run)
{
    const struct wk_tool_call *c = &run->msgs[run->call_msg].calls[run->tool_idx];
    struct ag_err err = AG_ERR_INIT;
    run->phase = WK_RUN_TOOL_DONE;
    char *why = NULL;
    const struct wk_tool *t = tool_for(run, c->name, &why);
    if (!t) {
        run->tool_output = why;
        run->tool_is_error = true;
        return true;
    }
    struct wk_call_ctx ctx = call_ctx(run, wk_runner__tool_config(run->runner, t));
    if (t->run(t, &ctx, c->arguments, on_tool_done, run, &err) == 0)
        return false; /* on_tool_done has the token now */
    run->tool_output = ag_xasprintf("tool '%s' could not start: %s", c->name, err.msg);
    run->tool_is_error = true;
    return true;
}

/* The result joins the conversation before it is emitted, so that a run parked on it resumes
 * with nothing left to do but the next call; if it cannot be emitted it leaves again, and the
 * turn's ERROR checkpoint holds what it held before. */
static bool handle_tool_result(struct wk_run *run)
{
    const struct wk_tool_call *c = &run->msgs[run->call_msg].calls[run->tool_idx];
    char *id = ag_xstrdup(c->id); /* before msgs_push: it may move c */
    struct wk_msg *m = msgs_push(run, "tool");
    m->content = run->tool_output;
    m->tool_call_id = id;
    run->tool_output = NULL;
    c = &run->msgs[run->call_msg].calls[run->tool_idx];
    run->tool_idx++;
    run->phase = WK_RUN_NEXT_TOOL;
    struct ag_err err = AG_ERR_INIT;
    bool parked = false;
    if (wk_run__emit_tool_result(run, c, m->content, run->tool_is_error,
                                 wk_runner__durable_tools(run->runner) ? &parked : NULL,
                                 &err) != 0) {
        wk_msg_release(&run->msgs[--run->nmsgs]);
        run->tool_idx--;
        return fail_turn(run, &err);
    }
    return !parked; /* parked: on_stored has the token, and the turn goes on once it is stored */
}

void wk_run__step(struct wk_run *run)
{
    bool more = true;
    while (more) {
        if (run_is_cancelled(run)) {
            run_drop(run);
            return;
        }
        if (run->emit_err.code != AG_OK) { /* a parked-on event will never be stored */
            end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, run->emit_err.msg);
            return;
        }
        /* Back-pressure: with the emit queues full the run waits, holding no thread, instead
         * of adding to them. Checked between steps, so a step's events (two at most, each
         * within the hub's message limit) always go out whole. */
        if (!wk_runner__room(run->runner, on_room, run))
            return; /* on_room has the token */
        switch (run->phase) {
        case WK_RUN_CALL_MODEL:
            more = call_model(run);
            break;
        case WK_RUN_MODEL_DONE:
            more = handle_reply(run);
            break;
        case WK_RUN_NEXT_TOOL:
            more = next_tool(run);
            break;
        case WK_RUN_RUN_TOOL:
            more = run_tool(run);
            break;
        case WK_RUN_TOOL_DONE:
            more = handle_tool_result(run);
            break;
        }
    }
}
