/* worker/run.c - one run: an agent's turn, from its assignment to its turn-ending event.
 *
 * Owns: the run's copy of the spec and checkpoint, its conversation and counters, and the loop
 * of runner.h (consume inputs; then model call, tool calls, model call... until a final answer,
 * the iteration limit or an error). The loop is a state machine (enum wk_run_phase) advanced by
 * wk_run__step on a pool thread; waiting (on the model, a tool, room in the emit queues, or the
 * hub storing a step) returns the thread to the pool, and the wake-up queues the run again.
 *
 * Steps are durable one by one: a tool runs only once the hub stored its TOOL_CALL (the tool-call
 * journal), and the model is asked after a tool only once the hub stored its TOOL_RESULT. A turn
 * placed again after its node was lost starts from its stored steps (worker/run_replay.c): a
 * model call with no stored reply is asked again, a tool call with a stored result is never run
 * again, and one stored as started without a result runs again only if its tool is idempotent;
 * otherwise its result is an "outcome unknown" error the model sees.
 *
 * It talks to its host (worker/runner.c) only through worker/run.h, and builds its events with
 * worker/run_event.c; handing them on is here (run_emit), so that the cancel check, the hand-off
 * and a park on the event's completion are one step under run->mu.
 *
 * Threads: the turn state belongs to the token holder (see run.h); the inbox and the cancelled
 * flag are shared under run->mu. Completion callbacks run on the provider's or the tool's thread
 * (the timer thread for the built-in ones), wake-ups from the emit sink on its thread (the
 * connection thread); all only queue the run. */
#include "worker/run.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/call.h"
#include "worker/cancel.h"
#include "worker/metrics.h"
#include "worker/price.h"
#include "worker/run_event.h"
#include "worker/run_replay.h"
#include "worker/run_spec.h"
#include "worker/tool.h"
#include "worker/tool_ext.h"
#include "worker/warm.h"
#include "worker/workspace.h"

/* The default when spec.max_iterations is 0 and the node sets none (types.proto, AgentSpec). */
#define WK_RUN_DEFAULT_MAX_ITERATIONS 10
/* A streamed reply's text goes out at most this often by default (wk_run_opts.delta_interval_ms)
 * and in pieces of at most this many bytes: a fast model writes a few events a second, not one
 * per token. */
#define WK_RUN_DELTA_INTERVAL_MS 200
#define WK_RUN_DELTA_MAX_BYTES (16 * 1024)
/* Inputs waiting for the next model call. The hub keeps every input until a checkpoint covers
 * it, so refusing one loses nothing: it comes back with the agent's next assignment. */
#define WK_RUN_MAX_INBOX 1024

/* A delivered input waiting for the next model call. */
struct wk_run_input {
    uint64_t seq;
    char *text; /* owned */
};

/* What the token holder does next with the run. */
enum wk_run_phase {
    WK_RUN_CALL_MODEL, /* yield at the limit, or drain the inbox and call the model */
    WK_RUN_MODEL_DONE, /* the reply is in reply (or the failure in model_err) */
    WK_RUN_NEXT_TOOL,  /* emit call tool_idx of msgs[call_msg], or go back to the model */
    WK_RUN_RUN_TOOL,   /* run call tool_idx, its TOOL_CALL emitted */
    WK_RUN_TOOL_DONE,  /* the tool's output is in tool_output */
    WK_RUN_END,        /* end the turn with end_kind and end_text, as resuming found it */
};

struct wk_run {
    /* Set by run_new, read-only afterwards. */
    const struct wk_run_host *host; /* borrowed; called only while not cancelled (see run.h) */
    void *host_ctx;
    struct wk_provider *provider; /* borrowed from the host; NULL for a rejected assignment */
    const struct wk_config *model_config; /* borrowed from the host; NULL if no provider */
    const struct wk_config *tool_configs; /* borrowed from the host; one per row of wk_tools */
    const struct wk_configs *configs;     /* borrowed from the host: every row's options */
    struct ag_timers *timers;             /* borrowed from the host */
    struct wk_hub_link *hub;              /* borrowed from the host, may be NULL */
    char *agent_id;                       /* owned */
    uint64_t epoch;
    char *model;                     /* owned: spec.model, "mock" if it was empty */
    const char *model_name;          /* borrowed from model: the part after "provider/" */
    char *system_prompt;             /* owned */
    char **tools;                    /* owned: spec.tools */
    struct wk_chat_tool *tool_specs; /* owned array (strings borrowed): tools, for the model */
    size_t ntools;
    /* The spec's MCP and OpenAPI tools (worker/tool_ext.h): a reference, NULL if it has none.
     * Offered (appended to tool_specs, strings borrowed from it) before the first model call. */
    struct wk_tool_ext_set *ext;
    size_t nspecs; /* tool_specs in use: ntools, plus the toolset's once offered */
    bool ext_offered;
    /* The resumed call stopped at is one of them, stored as started, and this node had not
     * listed it yet: whether it may run again is decided once listed (next_tool). */
    bool ext_recheck;
    uint32_t max_iterations;      /* the assignment's or the spec's, 0 replaced by the default */
    struct wk_run_spec spec;      /* model settings, tool settings, limits, permission rules */
    struct wk_http *http;         /* borrowed from the host, may be NULL */
    struct ag_workpool *workpool; /* borrowed from the host, may be NULL */
    const struct wk_sandbox *sandbox; /* borrowed from the host, may be NULL */
    const struct wk_policy *policy;   /* borrowed from the host: the node's, NULL if none */
    const struct wk_price *price;     /* borrowed from the host: the model's price, NULL if none */
    const char *workspace_root;       /* borrowed from the host; NULL: agents get no workspace */
    char *workspace;                  /* owned: workspace_root/<agent id>, once made */
    int64_t turn_deadline_ms;         /* ag_now_mono_ms() time the turn yields at; 0: none */
    int64_t delta_interval_ms;
    /* Spent before this run, as the hub counted it (Assignment.usage), and by this run's own
     * model calls (replayed replies are in the hub's count already): the budgets' measure. */
    uint64_t spent_tokens;
    double spent_usd;
    struct wk_usage base_usage; /* the checkpoint's cumulative usage */
    uint8_t *user_state;        /* owned, opaque, returned unchanged in the checkpoint */
    size_t user_state_len;
    size_t max_payload; /* the hub's limits when the run started (see run_event.c) */
    size_t max_event;
    /* The conversation came in the checkpoint (an older node stored it there): turn ends keep
     * carrying it whole, and nothing is kept on the node. Otherwise the conversation is the log
     * (worker/run_replay.c) and turn ends carry only the counters. */
    bool legacy;
    size_t kept_bytes; /* what the kept conversation it started from weighed (worker/warm.h) */

    /* Turn state: token holder only. */
    struct wk_msg *msgs; /* owned: the conversation, oldest first */
    size_t nmsgs, msgs_cap;
    size_t turn_start;     /* msgs[0, turn_start) came with the checkpoint */
    uint32_t iterations;   /* model calls in this turn */
    uint64_t input_seq;    /* highest input seq in msgs */
    struct wk_usage usage; /* this turn */
    enum wk_run_phase phase;
    struct wk_chat_reply *reply; /* owned; WK_RUN_MODEL_DONE, NULL if the model failed */
    struct ag_err model_err;
    size_t call_msg;   /* index in msgs of the assistant message whose calls are running */
    size_t tool_idx;   /* the call running, in msgs[call_msg].calls */
    char *tool_output; /* owned; WK_RUN_TOOL_DONE */
    bool tool_is_error;
    int64_t step_ns; /* ag_now_mono_ns() when the model call or tool under way started; 0: none
                        started (a refused tool), for worker/metrics.h */
    bool tool_waits; /* wait_agent: the hub said the turn waits for sub-agents (ctx.waits) */
    /* owned: the id of the call a person approved (APPROVAL_DECIDED among the steps), which runs
     * although a rule asks about it; NULL if none */
    char *approved_call;
    struct ag_err emit_err; /* set when a parked-on event will never be stored */
    /* An event went out without a park since the last parked one was stored: the hub may not
     * have stored it yet, so the turn cannot be handed back here (wk_run__release). */
    bool unstored;
    Agentry__V1__EventKind end_kind; /* WK_RUN_END */
    char *end_text;                  /* owned; WK_RUN_END */
    /* A streamed reply's text not yet sent as a MODEL_DELTA: written by the provider's
     * callbacks (which hold the token while the call is in flight), flushed under mu. */
    char *delta;
    size_t delta_len, delta_cap;
    int64_t delta_sent_ms; /* when the last delta went out; 0: none yet this call */

    struct wk_cancel cancel; /* requested by wk_run__cancel; the in-flight call listens */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    bool cancelled;
    bool release;               /* wk_run__release: hand the turn back at the next step boundary */
    struct wk_run_input *inbox; /* owned */
    size_t ninbox, inbox_cap;

    struct ag_qnode ready_node; /* the host's ready queue; under its queue lock */
    atomic_uint refs;
};

static char *dup_or_empty(const char *s)
{
    return ag_xstrdup(s ? s : "");
}

static struct wk_msg *msgs_push(struct wk_run *run, const char *role)
{
    return wk_msg_push(&run->msgs, &run->nmsgs, &run->msgs_cap, role);
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

static void copy_spec(struct wk_run *run, const Agentry__V1__AgentSpec *spec,
                      uint32_t default_max_iterations)
{
    const char *model = spec && spec->model && *spec->model ? spec->model : "mock";
    run->model = ag_xstrdup(model);
    const char *slash = strchr(run->model, '/');
    run->model_name = slash ? slash + 1 : "";
    run->system_prompt = dup_or_empty(spec ? spec->system_prompt : NULL);
    run->max_iterations = spec && spec->max_iterations ? spec->max_iterations
                          : default_max_iterations     ? default_max_iterations
                                                       : WK_RUN_DEFAULT_MAX_ITERATIONS;
    wk_run_spec_copy(&run->spec, spec);
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
        run->tool_specs[i] = (struct wk_chat_tool){run->tools[i], t ? t->description : "",
                                                   t ? t->schema_json : "{\"type\":\"object\"}"};
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
        run->base_usage.cost_usd = cp->usage->cost_usd;
    }
    if (cp->user_state.len > 0) {
        run->user_state = ag_xmemdup(cp->user_state.data, cp->user_state.len);
        run->user_state_len = cp->user_state.len;
    }
}

/* text_take: owned by the inbox from now on. */
static void inbox_push(struct wk_run *run, uint64_t seq, char *text_take)
{
    if (run->ninbox == run->inbox_cap) {
        run->inbox_cap = run->inbox_cap ? run->inbox_cap * 2 : 4;
        run->inbox = ag_xrealloc(run->inbox, run->inbox_cap * sizeof(*run->inbox));
    }
    run->inbox[run->ninbox++] = (struct wk_run_input){seq, text_take};
}

static bool tool_enabled(const struct wk_run *run, const char *name)
{
    for (size_t i = 0; i < run->ntools; i++)
        if (strcmp(run->tools[i], name) == 0)
            return true;
    return false;
}

/* The call a resumed turn stopped at was stored as started, with no result. Running it again is
 * right only when that is harmless; a tool this node cannot run was never run (its result was an
 * error made here), so asking again gives the same error. */
static bool may_run_again(const struct wk_run *run, const char *name)
{
    const struct wk_tool *t = wk_tool_find(name);
    if (!t && run->ext) {
        /* An MCP or OpenAPI tool: as its listing says, if this node has listed it already;
         * otherwise its nature is unknown here, and running it again could act twice. */
        const struct wk_tool_ext_tool *x = wk_tool_ext_find(run->ext, name);
        return x && x->idempotent;
    }
    return !t || !tool_enabled(run, name) || t->idempotent;
}

/* A tool of the spec's MCP servers or OpenAPI documents that this node has not listed yet, so
 * whether it is idempotent is not known here yet. */
static bool ext_unlisted(const struct wk_run *run, const char *name)
{
    return run->ext && !wk_tool_find(name) && !wk_tool_ext_find(run->ext, name);
}

/* The resumed call c is not run again: its result says why. */
static void outcome_unknown(struct wk_run *run, const struct wk_tool_call *c)
{
    run->phase = WK_RUN_TOOL_DONE;
    run->tool_output = ag_xasprintf(
        "outcome unknown: the node running tool '%s' (call %s) was lost after it started "
        "and before it reported; the tool is not idempotent, so it was not run again. "
        "Check whether its effect happened before relying on it.",
        c->name, c->id);
    run->tool_is_error = true;
}

static void end_with(struct wk_run *run, Agentry__V1__EventKind kind, const char *text)
{
    run->phase = WK_RUN_END;
    run->end_kind = kind;
    run->end_text = ag_xstrdup(text);
}

/* An interrupted turn goes on from its stored steps (run_replay.h); the inputs they do not cover
 * wait in the inbox for the next model call, as a Deliver would. */
static void go_on_from_steps(struct wk_run *run, const Agentry__V1__Assignment *a)
{
    struct wk_run_replay rp;
    struct ag_err err = AG_ERR_INIT;
    if (wk_run_replay_read((const Agentry__V1__TraceEvent *const *)a->steps, a->n_steps,
                           (const Agentry__V1__Input *const *)a->inputs, a->n_inputs,
                           run->input_seq, &rp, &err) != 0) {
        end_with(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, err.msg);
        return;
    }
    /* The messages and the inputs left move over whole: rp keeps nothing to release. */
    if (run->nmsgs + rp.nmsgs > run->msgs_cap) {
        run->msgs_cap = run->nmsgs + rp.nmsgs;
        run->msgs = ag_xrealloc(run->msgs, run->msgs_cap * sizeof(*run->msgs));
    }
    if (rp.nmsgs)
        memcpy(run->msgs + run->nmsgs, rp.msgs, rp.nmsgs * sizeof(*rp.msgs));
    run->nmsgs += rp.nmsgs;
    rp.nmsgs = 0;
    for (size_t i = 0; i < rp.nrest; i++)
        inbox_push(run, rp.rest[i].seq, rp.rest[i].text);
    rp.nrest = 0;
    run->input_seq = rp.input_seq;
    run->iterations = rp.iterations;
    run->usage = (struct wk_usage){.input_tokens = rp.input_tokens,
                                   .output_tokens = rp.output_tokens,
                                   .model_calls = rp.model_calls,
                                   .tool_calls = rp.tool_calls};
    run->call_msg = run->turn_start + rp.call_msg;
    run->tool_idx = rp.tool_idx;
    if (rp.next == WK_RUN_REPLAY_TOOL && rp.tool_approved)
        run->approved_call = ag_xstrdup(run->msgs[run->call_msg].calls[run->tool_idx].id);
    const char *next = "model";
    if (rp.next == WK_RUN_REPLAY_FINAL) {
        end_with(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL, run->msgs[run->call_msg].content);
        next = "final";
    } else if (rp.next == WK_RUN_REPLAY_TOOL) {
        const struct wk_tool_call *c = &run->msgs[run->call_msg].calls[run->tool_idx];
        run->phase = WK_RUN_NEXT_TOOL;
        next = "tool";
        if (rp.tool_started && ext_unlisted(run, c->name)) {
            run->ext_recheck = true;
            next = "tool_once_listed";
        } else if (rp.tool_started && !may_run_again(run, c->name)) {
            outcome_unknown(run, c);
            next = "outcome_unknown";
        }
    }
    wk_run_replay_release(&rp);
    ag_log_info("run.resumed", "agent=%s epoch=%" PRIu64 " steps=%zu iterations=%u next=%s",
                run->agent_id, run->epoch, a->n_steps, run->iterations, next);
}

/* Each tool checks the spec's settings for it before the turn asks the model anything: a
 * setting it does not take ends the turn with an ERROR naming it (owned), NULL if all are fine. */
static char *settings_refused(const struct wk_run *run)
{
    for (size_t i = 0; i < run->spec.nsettings; i++) {
        const char *name = run->spec.setting_tools[i];
        const struct wk_tool *t = wk_tool_find(name);
        if (!t)
            continue; /* not on this node: a call gets an error result anyway */
        struct ag_err err = AG_ERR_INIT;
        if (!t->check_settings)
            return ag_xasprintf("spec.tool_settings[\"%s\"]: tool '%s' takes no settings", name,
                                name);
        if (t->check_settings(run->spec.setting_json[i], &err) != 0)
            return ag_xasprintf("spec.tool_settings[\"%s\"]: %s", name, err.msg);
    }
    return NULL;
}

/* consume_inputs: append a's inputs as user messages (false for a rejected assignment, whose
 * inputs stay unconsumed). */
static struct wk_run *run_new(const Agentry__V1__Assignment *a, const struct wk_run_opts *o,
                              bool consume_inputs)
{
    struct wk_run *run = ag_xcalloc(1, sizeof(*run));
    run->host = o->host;
    run->host_ctx = o->host_ctx;
    run->provider = o->provider;
    run->model_config = o->model_config;
    run->tool_configs = o->tool_configs;
    run->configs = o->configs;
    run->timers = o->timers;
    run->hub = o->hub;
    run->agent_id = dup_or_empty(a->agent_id);
    run->epoch = a->epoch;
    copy_spec(run, a->spec, o->default_max_iterations);
    run->http = o->http;
    run->workpool = o->workpool;
    run->sandbox = o->sandbox;
    run->policy = o->policy;
    run->price = wk_prices_find(o->prices, run->model);
    run->workspace_root = o->workspace_root && *o->workspace_root ? o->workspace_root : NULL;
    run->delta_interval_ms = o->delta_interval_ms > 0 ? o->delta_interval_ms
                                                      : WK_RUN_DELTA_INTERVAL_MS;
    run->ext = wk_tool_ext_get(o->ext, a->spec, a->agent_id);
    run->nspecs = run->ntools;
    /* The wall clock starts at the assignment: a turn placed again starts it anew. */
    uint64_t timeout = run->spec.turn_timeout_ms ? run->spec.turn_timeout_ms
                                                 : (uint64_t)o->default_turn_timeout_ms;
    if (timeout)
        run->turn_deadline_ms = ag_now_mono_ms() + (int64_t)timeout;
    if (a->usage) {
        run->spent_tokens = a->usage->input_tokens + a->usage->output_tokens;
        run->spent_usd = a->usage->cost_usd;
    }
    /* A resumed turn's own limit (ResumeAgent) overrides the spec's for this turn only. */
    if (a->max_iterations)
        run->max_iterations = a->max_iterations;
    run->legacy = a->checkpoint && a->checkpoint->n_messages > 0;
    if (o->warm) {
        run->msgs = o->warm;
        run->nmsgs = run->msgs_cap = o->nwarm;
        run->kept_bytes = o->warm_bytes;
    }
    copy_checkpoint(run, a->checkpoint);
    run->turn_start = run->nmsgs;
    run->max_payload = o->max_payload;
    run->max_event = o->max_event;
    run->phase = WK_RUN_CALL_MODEL;
    wk_cancel_init(&run->cancel);
    pthread_mutex_init(&run->mu, NULL);
    if (consume_inputs && a->n_steps > 0) {
        /* Without a conversation to start from, the steps are the agent's whole log: its
         * inputs are taken from the first. */
        if (!run->legacy && !a->state_epoch)
            run->input_seq = 0;
        go_on_from_steps(run, a);
    } else {
        for (size_t i = 0; consume_inputs && i < a->n_inputs; i++)
            consume_input(run, a->inputs[i]->seq, dup_or_empty(a->inputs[i]->text));
    }
    char *bad = NULL;
    if (consume_inputs && run->phase != WK_RUN_END && (bad = settings_refused(run)) != NULL) {
        end_with(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, bad);
        free(bad);
    }
    atomic_init(&run->refs, 1);
    return run;
}

struct wk_run *wk_run__new(const Agentry__V1__Assignment *a, const struct wk_run_opts *o)
{
    return run_new(a, o, true);
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
    wk_tool_ext_unref(run->ext);
    free(run->user_state);
    for (size_t i = 0; i < run->nmsgs; i++)
        wk_msg_release(&run->msgs[i]);
    free(run->msgs);
    wk_chat_reply_free(run->reply);
    free(run->tool_output);
    free(run->end_text);
    free(run->approved_call);
    free(run->workspace);
    free(run->delta);
    wk_run_spec_release(&run->spec);
    for (size_t i = 0; i < run->ninbox; i++)
        free(run->inbox[i].text);
    free(run->inbox);
    wk_cancel_release(&run->cancel);
    pthread_mutex_destroy(&run->mu);
    free(run);
}

const char *wk_run__agent_id(const struct wk_run *run)
{
    return run->agent_id;
}

uint64_t wk_run__epoch(const struct wk_run *run)
{
    return run->epoch;
}

const char *wk_run__model(const struct wk_run *run)
{
    return run->model;
}

struct ag_qnode *wk_run__qnode(struct wk_run *run)
{
    return &run->ready_node;
}

struct wk_run *wk_run__from_qnode(struct ag_qnode *n)
{
    return AG_QUEUE_ENTRY(n, struct wk_run, ready_node);
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
    inbox_push(run, seq, ag_xstrdup(text ? text : ""));
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

void wk_run__release(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    run->release = true;
    pthread_mutex_unlock(&run->mu);
}

static bool release_asked(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    bool r = run->release;
    pthread_mutex_unlock(&run->mu);
    return r;
}

/* The context of the run's next model or tool call: the deadline is the option "timeout" from
 * now, or the turn's wall-clock limit if that comes first. */
static struct wk_call_ctx call_ctx(struct wk_run *run, const struct wk_config *config)
{
    int64_t deadline = config->timeout_ms > 0 ? ag_now_mono_ms() + config->timeout_ms : 0;
    if (run->turn_deadline_ms && (!deadline || run->turn_deadline_ms < deadline))
        deadline = run->turn_deadline_ms;
    return (struct wk_call_ctx){
        .timers = run->timers,
        .config = config,
        .cancel = &run->cancel,
        .deadline_ms = deadline,
        .http = run->http,
        .workpool = run->workpool,
        .sandbox = run->sandbox,
    };
}

static bool turn_timed_out(const struct wk_run *run)
{
    return run->turn_deadline_ms && ag_now_mono_ms() >= run->turn_deadline_ms;
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

/* A wake-up (completion, room, stored event) hands the token back: to the host's ready queue,
 * or it is dropped if the run was cancelled (then the host may be gone and is not touched). */
static void run_resume(struct wk_run *run)
{
    pthread_mutex_lock(&run->mu);
    if (run->cancelled) {
        pthread_mutex_unlock(&run->mu);
        run_drop(run);
        return;
    }
    run->host->ready(run->host_ctx, run);
    pthread_mutex_unlock(&run->mu);
}

static void on_room(void *arg)
{
    run_resume(arg);
}

/* The hub stored (or will never store) the event a run parked on: the token comes back. */
static void on_stored(void *arg, const struct ag_err *err)
{
    struct wk_run *run = arg;
    if (err)
        run->emit_err = *err;
    /* The hub stores an agent's events in order: every earlier one is stored too. */
    run->unstored = false;
    run_resume(run);
}

/* Hand ev on to the host's emit() under mu, unless the run was cancelled: the check and the
 * hand-off are one step, so a cancel that has returned is never followed by an event. park:
 * hand it on with on_stored as its completion. Returns true when it did, and on_stored now holds
 * the token (the run resumes, in the phase it set before the call, once the hub stored the event;
 * emit_err is set if it never will be): the caller must not touch the run. false: nothing to
 * wait for, the caller keeps the token (not parking, the run was cancelled, or no stream is up
 * and emit_err now says so). */
static bool run_emit(struct wk_run *run, struct wk_run_event *ev, bool park)
{
    bool parked = false;
    pthread_mutex_lock(&run->mu);
    if (run->cancelled) {
        free(ev->buf);
    } else if (park) {
        parked = run->host->emit(run->host_ctx, ev->buf, ev->len, on_stored, run) == 0;
        /* No stream: the event will never be stored, so what waits on it must not happen. */
        if (!parked)
            ag_err_set(&run->emit_err, AG_UNAVAILABLE,
                       "turn stopped: its %s event cannot be stored, no stream to the hub is up",
                       wk_run_event_kind_word(ev->kind));
    } else {
        run->unstored = run->host->emit(run->host_ctx, ev->buf, ev->len, NULL, NULL) == 0;
    }
    pthread_mutex_unlock(&run->mu);
    return parked;
}

static struct wk_run_event_head event_head(const struct wk_run *run)
{
    return (struct wk_run_event_head){run->agent_id, run->epoch, run->max_payload, run->max_event};
}

/* The turn-ending event (see wk_run_event_end): false if even its smallest form does not fit. The
 * conversation goes in only for a legacy run (see wk_run.legacy). */
static bool build_end(struct wk_run *run, Agentry__V1__EventKind kind, const char *text,
                      struct wk_run_event *ev)
{
    struct wk_run_event_head h = event_head(run);
    struct wk_run_event_state st = {
        .msgs = run->msgs,
        .nmsgs = run->legacy ? run->nmsgs : 0,
        .turn_start = run->legacy ? run->turn_start : 0,
        .iterations = run->iterations,
        .input_seq = run->input_seq,
        .base_usage = run->base_usage,
        .usage = run->usage,
        .user_state = run->user_state,
        .user_state_len = run->user_state_len,
    };
    return wk_run_event_end(&h, &st, kind, text, ev) == 0;
}

void wk_run__reject(const Agentry__V1__Assignment *a, const struct wk_run_opts *o, const char *why)
{
    /* The turn never started: the checkpoint goes back as it came and the inputs stay
     * unconsumed (above input_seq), so a later turn still sees them. */
    struct wk_run *run = run_new(a, o, false);
    struct wk_run_event ev;
    if (build_end(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, why ? why : "rejected", &ev))
        run_emit(run, &ev, false);
    ag_log_warn("run.finished", "agent=%s epoch=%" PRIu64 " outcome=rejected iterations=0 error=%s",
                run->agent_id, run->epoch, ag_log_q(why));
    wk_run__unref(run);
}

/* Send what the model wrote since the last delta. Called by the provider's callback, which
 * holds the run's token while its call is in flight, so delta needs no lock; the hand-off to
 * the host is under mu as every emit is. A delta that does not fit the hub's limits is dropped:
 * it is informational, and the reply carries the text. */
static void flush_delta(struct wk_run *run)
{
    /* Whole characters only (the payload is JSON text); a cut one waits for the next piece. */
    size_t n = ag_utf8_prefix(run->delta, run->delta_len);
    if (n == 0)
        return;
    struct ag_err err = AG_ERR_INIT;
    struct wk_run_event_head h = event_head(run);
    struct wk_run_event ev;
    if (wk_run_event_model_delta(&h, run->iterations, run->delta, n, &ev, &err) == 0)
        run_emit(run, &ev, false);
    memmove(run->delta, run->delta + n, run->delta_len - n);
    run->delta_len -= n;
    run->delta_sent_ms = ag_now_mono_ms();
}

/* Coalesced: the first piece of a call goes at once (a follower sees the model start), later
 * ones at most every delta_interval_ms or when WK_RUN_DELTA_MAX_BYTES gathered. What is left
 * when the reply arrives is not sent: MODEL_REPLY holds the whole text. */
static void on_model_delta(void *arg, const char *text, size_t len)
{
    struct wk_run *run = arg;
    if (len == 0)
        return;
    if (run->delta_len + len > run->delta_cap) {
        run->delta_cap = run->delta_len + len > 2 * run->delta_cap ? run->delta_len + len
                                                                   : 2 * run->delta_cap;
        run->delta = ag_xrealloc(run->delta, run->delta_cap);
    }
    memcpy(run->delta + run->delta_len, text, len);
    run->delta_len += len;
    int64_t now = ag_now_mono_ms();
    if (run->delta_sent_ms == 0 || now - run->delta_sent_ms >= run->delta_interval_ms ||
        run->delta_len >= WK_RUN_DELTA_MAX_BYTES)
        flush_delta(run);
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
    run_resume(run);
}

static void on_tool_done(void *arg, char *output, bool is_error)
{
    struct wk_run *run = arg;
    run->tool_output = output ? output : ag_xstrdup("");
    run->tool_is_error = is_error;
    run->phase = WK_RUN_TOOL_DONE;
    run_resume(run);
}

/* Leave the run table first, then emit: the hub may answer a FINAL with the agent's next
 * Assignment at once, and that must not find this run still holding the agent. */
static void end_turn(struct wk_run *run, Agentry__V1__EventKind kind, const char *text)
{
    if (!run->host->finished(run->host_ctx, run)) {
        run_drop(run); /* a cancel took the run from the table: it ends silently */
        return;
    }
    ag_log_info("run.finished", "agent=%s epoch=%" PRIu64 " outcome=%s iterations=%u%s%s",
                run->agent_id, run->epoch, wk_run_event_kind_word(kind), run->iterations,
                kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR ? " error=" : "",
                kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR ? ag_log_q(text) : "");
    /* Built (text copied: it may be a message's) before the conversation is kept, and kept
     * before the event goes: the hub's next Assignment, which may follow the event at once, must
     * find it. Kept even if the event is never stored: the hub then never names this epoch. A
     * WAITING (or APPROVAL_REQUIRED) turn is not over: the hub goes on with a later attempt of
     * it, whose Assignment carries the steps, so nothing is kept. */
    struct wk_run_event ev;
    bool built = build_end(run, kind, text, &ev);
    if (!run->legacy && run->host->keep && kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING &&
        kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED) {
        /* Only this turn's messages are weighed: a turn costs the same whatever came before. */
        size_t bytes = run->kept_bytes;
        if (run->nmsgs > run->turn_start)
            bytes += wk_warm_msgs_bytes(run->msgs + run->turn_start, run->nmsgs - run->turn_start);
        run->host->keep(run->host_ctx, run->agent_id, run->epoch, run->msgs, run->nmsgs, bytes);
        run->msgs = NULL;
        run->nmsgs = run->msgs_cap = 0;
    }
    if (built)
        run_emit(run, &ev, false);
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

/* The limit that stops the turn before its next model call, NULL if none does: a yield, not an
 * error (types.proto, EVENT_KIND_YIELD's reasons). */
static const char *limit_reached(const struct wk_run *run)
{
    if (run->iterations >= run->max_iterations)
        return "max_iterations";
    if (run->spec.token_budget && run->spent_tokens >= run->spec.token_budget)
        return "token_budget";
    if (run->spec.cost_budget_usd > 0 && run->spent_usd >= run->spec.cost_budget_usd)
        return "cost_budget";
    if (turn_timed_out(run))
        return "turn_timeout";
    return NULL;
}

static void on_ext_listed(void *arg)
{
    run_resume(arg);
}

/* The spec's MCP and OpenAPI tools join the model's tools before the run's first model or
 * tool call; the stdio servers run in the agent's workspace, made here as run_tool makes it.
 * 0: offered, go on; 1: the token left, parked on the listing (on_ext_listed has it); -1: the
 * listing failed, err says why. */
static int offer_ext_tools(struct wk_run *run, struct ag_err *err)
{
    int rc = -1;
    if (!run->workspace_root || run->workspace ||
        (run->workspace = wk_workspace_dir_for(run->workspace_root, run->agent_id, err)))
        rc = wk_tool_ext_wait(run->ext, run->workspace, on_ext_listed, run, err);
    if (rc != 0)
        return rc;
    size_t n;
    const struct wk_tool_ext_tool *x = wk_tool_ext_tools(run->ext, &n);
    run->tool_specs = ag_xrealloc(run->tool_specs,
                                  (run->ntools + n + 1) * sizeof(*run->tool_specs));
    for (size_t i = 0; i < n; i++)
        run->tool_specs[run->ntools + i] = (struct wk_chat_tool){x[i].name, x[i].description,
                                                                 x[i].schema_json};
    run->nspecs = run->ntools + n;
    run->ext_offered = true;
    return 0;
}

static bool call_model(struct wk_run *run)
{
    const char *limit = limit_reached(run);
    if (limit) {
        end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD, limit);
        return false;
    }
    struct ag_err err = AG_ERR_INIT;
    int listed = run->ext && !run->ext_offered ? offer_ext_tools(run, &err) : 0;
    if (listed != 0) {
        if (listed < 0) /* the model would be asked without the tools its spec promised */
            end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, err.msg);
        return false;
    }
    drain_inbox(run);
    run->iterations++;
    run->usage.model_calls++;
    struct wk_run_event_head h = event_head(run);
    struct wk_run_event ev;
    if (wk_run_event_model_request(&h, run->model, run->iterations, run->nmsgs, run->input_seq, &ev,
                                   &err) != 0)
        return fail_turn(run, &err);
    run_emit(run, &ev, false);
    run->phase = WK_RUN_MODEL_DONE;
    struct wk_chat_req req = {
        .model = run->model_name,
        .system_prompt = run->system_prompt,
        .msgs = run->msgs,
        .nmsgs = run->nmsgs,
        .tools = run->tool_specs,
        .ntools = run->nspecs,
        .settings = wk_run_spec_model_settings(&run->spec),
        .on_delta = run->spec.stream ? on_model_delta : NULL,
    };
    run->delta_len = 0;
    run->delta_sent_ms = 0;
    struct wk_call_ctx ctx = call_ctx(run, run->model_config);
    run->step_ns = ag_now_mono_ns();
    if (run->provider->chat(run->provider, &ctx, &req, on_model_done, run, &err) == 0)
        return false; /* on_model_done has the token now, perhaps already ran */
    end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, err.msg);
    return false;
}

static bool handle_reply(struct wk_run *run)
{
    struct wk_chat_reply *reply = run->reply;
    run->reply = NULL;
    wk_metrics_model_call(run->model, ag_now_mono_ns() - run->step_ns, reply != NULL,
                          reply ? reply->input_tokens : 0, reply ? reply->output_tokens : 0);
    run->step_ns = 0;
    if (!reply) {
        /* The call ran out of the turn's time, not its own: the turn yields at its limit. */
        bool turn_limit = run->model_err.code == AG_DEADLINE_EXCEEDED && turn_timed_out(run);
        end_turn(run,
                 turn_limit ? AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD
                            : AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR,
                 turn_limit ? "turn_timeout" : run->model_err.msg);
        return false;
    }
    run->usage.input_tokens += reply->input_tokens;
    run->usage.output_tokens += reply->output_tokens;
    double cost = run->price ? wk_price_cost(run->price, reply->input_tokens, reply->output_tokens)
                             : 0;
    run->usage.cost_usd += cost;
    run->spent_tokens += reply->input_tokens + reply->output_tokens;
    run->spent_usd += cost;
    struct ag_err err = AG_ERR_INIT;
    struct wk_run_event_head h = event_head(run);
    struct wk_run_event ev;
    if (wk_run_event_model_reply(&h, reply, run->price != NULL, cost, &ev, &err) != 0) {
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
        run_emit(run, &ev, false);
        end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL, m->content);
        return false;
    }
    run->call_msg = run->nmsgs - 1;
    run->tool_idx = 0;
    run->phase = WK_RUN_NEXT_TOOL;
    /* A turn being handed back waits for its reply to be stored, then stops before the tool
     * calls (a step boundary); otherwise the reply goes out with the first TOOL_CALL. */
    return !run_emit(run, &ev, release_asked(run));
}

/* Released at a step boundary: everything emitted is stored, no step is under way. */
static void release_turn(struct wk_run *run)
{
    if (!run->host->released(run->host_ctx, run)) {
        run_drop(run); /* a cancel took the run from the table */
        return;
    }
    ag_log_info("run.finished", "agent=%s epoch=%" PRIu64 " outcome=released iterations=%u",
                run->agent_id, run->epoch, run->iterations);
    wk_run__unref(run); /* the table's reference */
    wk_run__unref(run); /* the token */
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
    struct ag_err err = AG_ERR_INIT;
    if (run->ext_recheck) { /* see wk_run.ext_recheck */
        int listed = run->ext_offered ? 0 : offer_ext_tools(run, &err);
        if (listed == 1)
            return false; /* on_ext_listed has the token: back here, listed */
        run->ext_recheck = false;
        if (!may_run_again(run, c->name)) {
            outcome_unknown(run, c);
            return true;
        }
    }
    run->usage.tool_calls++;
    struct wk_run_event_head h = event_head(run);
    struct wk_run_event ev;
    run->phase = WK_RUN_RUN_TOOL; /* before a park hands the token on */
    if (wk_run_event_tool_call(&h, c, &ev, &err) != 0)
        return fail_turn(run, &err);
    /* parked: on_stored has the token, and the tool runs once it is stored */
    return !run_emit(run, &ev, true);
}

/* The call ends without running: text (owned) is its error result, which the model sees. */
static bool tool_refused(struct wk_run *run, char *text)
{
    run->tool_output = text;
    run->tool_is_error = true;
    return true;
}

/* The permission decision for call c of tool t (NULL for an MCP or OpenAPI tool): the node's
 * policy and the spec's rules (worker/run_spec.h). A call a person approved runs although a rule
 * asks about it; a deny still stops it (the node's policy may have changed since). For ASK and
 * DENY, *why (owned) says which rule. */
static enum wk_decision permit(struct wk_run *run, const struct wk_tool *t,
                               const struct wk_tool_call *c, char **why)
{
    enum wk_decision d = wk_run_spec_decide(&run->spec, run->policy, t, c->name, c->arguments, why);
    if (d == WK_DECISION_ASK && run->approved_call && strcmp(run->approved_call, c->id) == 0) {
        free(*why);
        *why = NULL;
        return WK_DECISION_ALLOW;
    }
    if (d == WK_DECISION_DENY)
        ag_log_info("run.tool_denied", "agent=%s epoch=%" PRIu64 " tool=%s call=%s", run->agent_id,
                    run->epoch, c->name, ag_log_q(c->id));
    return d;
}

/* A rule asks a person about call c (why: which rule, owned): unless the call is the one a person
 * approved, the run lets go of the turn with APPROVAL_REQUIRED (types.proto), its TOOL_CALL
 * stored and the decision left to the hub, which places the turn again once it is made. The
 * call then runs (approved: its TOOL_CALL stored again) or has the hub's error result. */
static bool ask_approval(struct wk_run *run, const struct wk_tool_call *c, char *why)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "id", c->id);
    cJSON_AddStringToObject(p, "name", c->name);
    cJSON_AddStringToObject(p, "arguments", c->arguments ? c->arguments : "");
    cJSON_AddStringToObject(p, "reason", why);
    char *text = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    ag_log_info("run.approval_required", "agent=%s epoch=%" PRIu64 " tool=%s call=%s reason=%s",
                run->agent_id, run->epoch, c->name, ag_log_q(c->id), ag_log_q(why));
    free(why);
    end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED, text);
    cJSON_free(text);
    return false;
}

/* The gate every call of tool t (NULL for an MCP or OpenAPI tool) passes before it runs: past
 * the turn's wall clock no tool starts, but every call of the reply still gets a result (a model
 * API refuses a conversation with a call left unanswered; the turn then yields before its next
 * model call); a denied call gets its error result; a call a rule asks about lets go of the turn.
 * true: run it. false: it does not run, and *more is the step's answer. */
static bool may_start(struct wk_run *run, const struct wk_tool *t, const struct wk_tool_call *c,
                      bool *more)
{
    char *why = NULL;
    if (turn_timed_out(run)) {
        *more = tool_refused(run, ag_xasprintf("tool '%s' was not run: the turn reached its time "
                                               "limit (spec.limits.turn_timeout_ms)",
                                               c->name));
        return false;
    }
    switch (permit(run, t, c, &why)) {
    case WK_DECISION_ASK:
        *more = ask_approval(run, c, why);
        return false;
    case WK_DECISION_DENY:
        *more = tool_refused(run, why);
        return false;
    case WK_DECISION_ALLOW:
        break;
    }
    return true;
}

/* An MCP or OpenAPI tool (worker/tool_ext.h): refused, timed out and traced as a builtin is.
 * Its permission rules match its full name; it has no subject. An OpenAPI call goes through
 * http_request's options and settings (worker/tool_http_request.h). */
static bool run_ext_tool(struct wk_run *run, const struct wk_tool_call *c,
                         const struct wk_tool_ext_tool *x)
{
    static const struct wk_config mcp_config = {.owner = "mcp"}; /* its own timeout_ms rules */
    bool more;
    if (!may_start(run, NULL, c, &more))
        return more;
    const struct wk_tool *http = wk_tool_find("http_request");
    struct wk_call_ctx ctx = call_ctx(run,
                                      x->mcp ? &mcp_config : &run->tool_configs[http - wk_tools]);
    ctx.agent_id = run->agent_id;
    ctx.settings_json = x->mcp ? NULL : wk_run_spec_tool_settings(&run->spec, "http_request");
    ctx.workspace = run->workspace;
    struct ag_err err = AG_ERR_INIT;
    run->step_ns = ag_now_mono_ns();
    if (wk_tool_ext_call(run->ext, x, &ctx, c->arguments, on_tool_done, run, &err) == 0)
        return false; /* on_tool_done has the token now */
    return tool_refused(run, ag_xasprintf("tool '%s' could not start: %s", c->name, err.msg));
}

static bool run_tool(struct wk_run *run)
{
    const struct wk_tool_call *c = &run->msgs[run->call_msg].calls[run->tool_idx];
    struct ag_err err = AG_ERR_INIT;
    /* A resumed turn may start here, before any model call offered them; the call that waits
     * has its TOOL_CALL stored, so a failed listing is its error result, not the turn's end. */
    int listed = run->ext && !run->ext_offered ? offer_ext_tools(run, &err) : 0;
    if (listed == 1)
        return false;
    run->phase = WK_RUN_TOOL_DONE;
    if (listed < 0)
        return tool_refused(run, ag_xasprintf("tool '%s' could not start: %s", c->name, err.msg));
    const struct wk_tool_ext_tool *x = run->ext ? wk_tool_ext_find(run->ext, c->name) : NULL;
    if (x)
        return run_ext_tool(run, c, x);
    char *why = NULL;
    const struct wk_tool *t = tool_for(run, c->name, &why);
    if (!t)
        return tool_refused(run, why);
    bool more;
    if (!may_start(run, t, c, &more))
        return more;
    struct wk_call_ctx ctx = call_ctx(run, &run->tool_configs[t - wk_tools]);
    ctx.agent_id = run->agent_id;
    ctx.epoch = run->epoch;
    ctx.call_id = c->id;
    ctx.hub = run->hub;
    run->tool_waits = false;
    ctx.waits = &run->tool_waits;
    ctx.settings_json = wk_run_spec_tool_settings(&run->spec, c->name);
    ctx.spec = &run->spec;
    ctx.configs = run->configs;
    /* Made at the first tool call (a turn that calls none leaves no directory behind), on the
     * pool thread: a mkdir or two, once per run. */
    if (run->workspace_root && !run->workspace &&
        !(run->workspace = wk_workspace_dir_for(run->workspace_root, run->agent_id, &err)))
        return tool_refused(run, ag_xasprintf("tool '%s' could not start: %s", c->name, err.msg));
    ctx.workspace = run->workspace;
    run->step_ns = ag_now_mono_ns();
    if (t->run(t, &ctx, c->arguments, on_tool_done, run, &err) == 0)
        return false; /* on_tool_done has the token now */
    return tool_refused(run, ag_xasprintf("tool '%s' could not start: %s", c->name, err.msg));
}

/* The result joins the conversation before it is emitted, so that a run parked on it resumes
 * with nothing left to do but the next call; if it cannot be emitted it leaves again, and the
 * turn's ERROR checkpoint holds what it held before. */
/* wait_agent's answer was "wait": the run lets go of the turn with WAITING (types.proto), the
 * call's TOOL_CALL stored and its result left to the hub. The hub's output names the agents
 * awaited; one that does not parse ends the call as an error instead, and the turn goes on. */
static bool wait_for_children(struct wk_run *run, const struct wk_tool_call *c)
{
    cJSON *out = cJSON_Parse(run->tool_output);
    cJSON *agents = cJSON_DetachItemFromObjectCaseSensitive(out, "agents");
    cJSON_Delete(out);
    if (!cJSON_IsArray(agents)) {
        cJSON_Delete(agents);
        char *why = ag_xasprintf("tool '%s': the hub's wait answer names no agents: %.200s",
                                 c->name, run->tool_output);
        free(run->tool_output);
        run->tool_output = why;
        run->tool_is_error = true;
        run->tool_waits = false;
        return true;
    }
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "id", c->id);
    cJSON_AddItemToObject(p, "agents", agents);
    char *text = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    free(run->tool_output);
    run->tool_output = NULL;
    run->tool_waits = false;
    ag_log_info("run.waiting", "agent=%s epoch=%" PRIu64 " call=%s", run->agent_id, run->epoch,
                ag_log_q(c->id));
    end_turn(run, AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING, text);
    cJSON_free(text);
    return false;
}

static bool handle_tool_result(struct wk_run *run)
{
    const struct wk_tool_call *c = &run->msgs[run->call_msg].calls[run->tool_idx];
    wk_metrics_tool_call(c->name, run->step_ns ? ag_now_mono_ns() - run->step_ns : -1,
                         run->tool_is_error);
    run->step_ns = 0;
    if (run->tool_waits && !run->tool_is_error)
        return wait_for_children(run, c);
    char *id = ag_xstrdup(c->id); /* before msgs_push: it may move c */
    struct wk_msg *m = msgs_push(run, "tool");
    m->content = run->tool_output;
    m->tool_call_id = id;
    run->tool_output = NULL;
    c = &run->msgs[run->call_msg].calls[run->tool_idx];
    run->tool_idx++;
    run->phase = WK_RUN_NEXT_TOOL;
    struct ag_err err = AG_ERR_INIT;
    struct wk_run_event_head h = event_head(run);
    struct wk_run_event ev;
    if (wk_run_event_tool_result(&h, c, m->content, run->tool_is_error, &ev, &err) != 0) {
        wk_msg_release(&run->msgs[--run->nmsgs]);
        run->tool_idx--;
        return fail_turn(run, &err);
    }
    /* parked: on_stored has the token, and the turn goes on once it is stored */
    return !run_emit(run, &ev, true);
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
        /* Step boundaries: before a model call or a tool call starts, with nothing unstored. */
        if ((run->phase == WK_RUN_CALL_MODEL || run->phase == WK_RUN_NEXT_TOOL) && !run->unstored &&
            release_asked(run)) {
            release_turn(run);
            return;
        }
        /* Back-pressure: with the emit queues full the run waits, holding no thread, instead
         * of adding to them. Checked between steps, so a step's events (two at most, each
         * within the hub's message limit) always go out whole. */
        if (!run->host->room(run->host_ctx, on_room, run))
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
        case WK_RUN_END:
            end_turn(run, run->end_kind, run->end_text);
            return;
        }
    }
}
