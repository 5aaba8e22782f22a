/* hub/actor.c - the agent actor's write pipeline (see actor.h for the model).
 *
 * kick: with the agent locked and no write in flight, take every queued command, decide each one
 * against a working copy of the committed state (struct hub_agent_st), collect the store ops and
 * the effects to carry out once durable, and submit ONE write.
 * write_done (store completion thread): on success swap the working state in, record the events
 * (last_seq, inbox), run the hooks (hub/hooks.h), then answer the callers and tell nodes and
 * followers through h->fx (hub/effects.h), all under the agent's lock; on failure answer the
 * callers with the store's error and forget the working state. Then kick again.
 *
 * What takes other locks (the scheduler handing a slot to another agent, posting commands to
 * other agents, settling node batches) runs after the agent's lock is released.
 *
 * Turns and attempts: a turn begins when a waiting agent (idle, yielded, failed, or new) gets an
 * input, or when a yielded or failed one is resumed (no input: the model is asked again from the
 * checkpoint, with the resume's own iteration limit for that turn); each placement of it on a node
 * is an attempt. A turn ends with FINAL, YIELD, ERROR or KILLED. An ERROR is never retried by the
 * hub (the agent is FAILED until the next input). An interruption (the node was lost) is: at once
 * the first time, then after a back-off that doubles, until the turn was interrupted
 * max_interruptions times in a row for one reason (or 4x that in all), when the hub ends it with an
 * ERROR of its own: a turn that can never succeed does not run forever. Usage is counted from the
 * events stored (types.proto, Usage), attempts included. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/json.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/approval.h"
#include "hub/authn.h"
#include "hub/hooks.h"
#include "hub/hub_internal.h"
#include "hub/json_payload.h"
#include "hub/limits.h"
#include "hub/node.h"
#include "hub/sched.h"
#include "hub/store.h"
#include "hub/team_wait.h"

#define KICK_MAX_CMDS 512

enum hub_cmd_type {
    HUB_CMD_INPUT,     /* SendMessage: store the input, start a turn if idle */
    HUB_CMD_EVENTS,    /* events from the node running the turn */
    HUB_CMD_KILL,      /* KillAgent */
    HUB_CMD_ASSIGN,    /* the scheduler reserved a slot for the agent's next turn */
    HUB_CMD_INTERRUPT, /* the node of the running turn is gone */
    HUB_CMD_SCHEDULE,  /* inputs are waiting: place a turn if none runs */
    HUB_CMD_SPAWN_DUP, /* a Spawn/Invoke retry with this agent's request_id */
    HUB_CMD_RETRY,     /* an interrupted turn's back-off is over: place it */
    HUB_CMD_RESUME,    /* ResumeAgent: a new turn without input for a yielded or failed agent */
    HUB_CMD_CHILD,     /* a sub-agent ended a turn (hub/team.h) */
    HUB_CMD_DECIDE,    /* ApproveCall, DenyCall, or an approval's deadline (hub/approval.h) */
    HUB_CMD_HOLD,      /* DeleteAgent: hold an agent at rest until it is deleted or let go */
};

/* A command in an agent's mailbox (hub_agent.mailbox, guarded by the agent's lock), then in the
 * write that decides it (agent_write.cmds, linked by next). */
struct hub_cmd {
    enum hub_cmd_type type;
    struct ag_qnode qn;
    struct hub_cmd *next;
    struct rpc_call *call;      /* reply target (reference held), may be NULL */
    struct hub_node *node;      /* EVENTS/ASSIGN/INTERRUPT (reference held) */
    uint64_t epoch;             /* INTERRUPT; RETRY: the timer's token */
    bool graceful;              /* INTERRUPT: the hub is stopping; not the turn's fault */
    bool already;               /* KILL of a killed agent: answer with the first KILLED */
    char *text;                 /* owned: INPUT text, KILL and INTERRUPT reasons */
    struct hub_ev_batch *batch; /* EVENTS: settled through hub_effects.events_stored */
    size_t first, n;            /* EVENTS: the batch's events [first, first+n) ... */
    const Agentry__V1__NodeEvent *const *events; /* ... borrowed from the batch */
    bool invoke;             /* SPAWN_DUP from Invoke: wait for the turn's end */
    uint32_t max_iter;       /* RESUME: the turn's iteration limit, 0: the spec's */
    hub_actor_done_fn *done; /* the hub's own reply target, instead of call (may be NULL) */
    void *done_arg;
    char *by; /* owned: INPUT from another agent: its events' "by" */
    /* CHILD: which sub-agent ended how (text: its output or error), and whether to log it */
    char child_id[AG_ID_LEN + 1];
    int child_state;
    uint64_t child_seq;
    bool settled, log;
    /* DECIDE: the call, the decision (enum hub_approval_decision), the edited arguments (owned,
     * may be NULL), the reason in text and the decider in by; an EXPIRED one's timer token in
     * epoch. already: the same decision was stored before (the answer names it). */
    char *call_id; /* owned */
    char *args;    /* owned */
    int decision;
};

/* An INPUT op of a write and its text (borrowed from its command), for the inbox on commit. */
struct input_op {
    size_t op;
    const char *text;
};

struct agent_write {
    struct hub_store_write w;
    struct hub *h;
    struct hub_agent *a;
    struct ag_arena arena;
    struct hub_store_op *ops;
    size_t nops, cap_ops;
    struct hub_agent_st next; /* working state: scalars; blobs below */
    bool creating;            /* ops[0] is the AGENT_INSERT of a Spawn or an import */
    bool importing;           /* creating, from ImportAgent: ops[1..] are events 1..n */
    uint64_t import_spawn_input_seq;
    struct rpc_call *spawn_call; /* creating: the Spawn/Invoke/ImportAgent call (reference held) */
    hub_actor_done_fn *spawn_done; /* creating: a sub-agent's, instead of spawn_call */
    void *spawn_done_arg;
    bool spawn_invoke;
    size_t spawn_input_op;   /* SIZE_MAX if no input */
    const uint8_t *new_ckpt; /* in arena; replaces st.ckpt on commit when set */
    size_t new_ckpt_len;
    bool ckpt_set;
    bool new_ckpt_msgs; /* new_ckpt holds a conversation (an older node's) */
    uint64_t warm_key;  /* the turn ended with a checkpoint from this node process, 0: not */
    const char *new_output, *new_error; /* in arena; replace on commit when out_set */
    bool out_set;
    struct hub_cmd *cmds; /* in order; each has its op index in cmd_op */
    size_t *cmd_op;       /* per command: index of its event op, or SIZE_MAX */
    size_t ncmds;
    size_t **ev_ops;           /* per EVENTS command: op index per event (SIZE_MAX: discarded) */
    struct hub_node **release; /* slots to give back after the write (references held) */
    size_t nrelease, cap_release;
    struct hub_node *assign_node; /* send an Assignment after commit */
    bool assigned_here;
    struct hub_node *cancel_node; /* send a Cancel after commit (reference held) */
    uint64_t cancel_epoch;
    bool enqueue_pending; /* the agent waits for a slot after commit */
    bool turn_ended;      /* FINAL/YIELD/ERROR/KILLED: answer Invoke waiters */
    bool interrupted;     /* the running turn's node was lost (for the hooks) */
    bool reschedule;      /* the turn ended with inputs still unconsumed */
    int64_t retry_in_ms;  /* > 0: an interrupted turn waits this long (after commit) */
    size_t turn_end_op;
    struct hub_team_wait *new_wait;    /* owned: the turn waits on children from commit on */
    bool wait_over;                    /* the wait (committed or new) ends with this write */
    bool wait_check;                   /* after commit: look at the children the new wait names */
    struct hub_approval *new_approval; /* owned: the turn waits on a decision from commit on */
    size_t approval_op;                /* ... whose APPROVAL_REQUIRED is this op */
    bool approval_over;                /* the approval (committed or new) ends with this write */
    bool killed_here;                  /* a KILLED in this write: its children go too */
    bool child_end;                    /* a sub-agent's turn ended: tell its parent after commit */
    struct hub_team_end end;           /* ... how (strings in the arena) */
    size_t inputs_here;                /* INPUT ops in this write */
    size_t inputs_bytes;               /* their texts' bytes */
    struct input_op *inputs;           /* their texts (borrowed from the commands), for the inbox */
    size_t cap_inputs;
};

static void write_done(struct hub_store_write *w, int rc, const struct ag_err *err);
static void write_finish(struct agent_write *aw, bool ok, const struct ag_err *err);

/* --- small helpers ------------------------------------------------------------------------- */

static char *json_take(struct ag_arena *ar, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    char *r = ag_arena_strdup(ar, s ? s : "{}");
    free(s);
    cJSON_Delete(o);
    return r;
}

/* call: a reference the caller took, now the command's. */
static struct hub_cmd *cmd_new(enum hub_cmd_type type, struct rpc_call *call)
{
    struct hub_cmd *c = ag_xcalloc(1, sizeof(*c));
    c->type = type;
    c->call = call;
    return c;
}

static void cmd_free(struct hub *h, struct hub_cmd *c)
{
    if (c->call)
        h->fx.release(c->call);
    if (c->node)
        hub_sched_node_unref(h->sched, c->node);
    free(c->text);
    free(c->by);
    free(c->call_id);
    free(c->args);
    free(c);
}

/* Answer a command's caller: its RPC call, the hub's own reply target, or nobody (r or err). */
static void answer(struct hub *h, struct hub_cmd *c, const struct hub_reply *r,
                   const struct ag_err *err)
{
    if (c->done) {
        c->done(c->done_arg, err ? NULL : r, err);
        c->done = NULL;
    } else if (c->call && err) {
        h->fx.fail(c->call, err);
    } else if (c->call) {
        h->fx.reply(c->call, r);
    }
}

/* Room for one more element in an arena array of n (capacity doubles; the old block is simply
 * left to the arena). */
static void *arena_grow(struct ag_arena *ar, void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *grown = ag_arena_alloc(ar, ncap * elem);
    if (n)
        memcpy(grown, arr, n * elem);
    *cap = ncap;
    return grown;
}

static size_t add_op(struct agent_write *aw, enum hub_store_op_type type)
{
    aw->ops = arena_grow(&aw->arena, aw->ops, aw->nops, &aw->cap_ops, sizeof(*aw->ops));
    struct hub_store_op *op = &aw->ops[aw->nops];
    memset(op, 0, sizeof(*op));
    op->type = type;
    return aw->nops++;
}

static size_t add_event(struct agent_write *aw, int kind, const char *payload, const char *node_id)
{
    size_t i = add_op(aw, HUB_STORE_EVENT_APPEND);
    struct hub_store_event *ev = &aw->ops[i].u.event;
    ev->agent_id = aw->a->id;
    ev->kind = kind;
    ev->payload = payload;
    ev->payload_len = strlen(payload);
    ev->node_id = node_id ? node_id : "";
    ev->time_ns = ag_now_unix_ns();
    return i;
}

/* Who made the call, for the "by" of the event it stores (the audit trail in the agent's own
 * log): the caller's identity on a hub with TLS ("user/alice", "token/ci"); NULL on a plaintext
 * hub, whose callers are all the anonymous admin (their events stay as they were). */
static const char *caller_of(struct rpc_call *call)
{
    const struct hub_principal *p = call ? hub_authn_principal(call) : NULL;
    return p && p->kind != HUB_PRINCIPAL_ANONYMOUS ? p->identity : NULL;
}

/* by: another agent's "agent/<id>" (hub/team.c), else the caller's identity. */
static void add_by(cJSON *o, struct rpc_call *call, const char *by)
{
    by = by ? by : caller_of(call);
    if (by)
        cJSON_AddStringToObject(o, "by", by);
}

/* An INPUT event; its text joins the inbox when the write commits. */
static size_t add_input(struct agent_write *aw, const char *text, struct rpc_call *call,
                        const char *by)
{
    const char *payload;
    if (by || caller_of(call)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", text);
        add_by(o, call, by);
        payload = json_take(&aw->arena, o);
    } else { /* the hot path: no JSON library */
        payload = hub_json_text_payload(&aw->arena, text);
    }
    size_t op = add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT, payload, NULL);
    aw->inputs = arena_grow(&aw->arena, aw->inputs, aw->inputs_here, &aw->cap_inputs,
                            sizeof(*aw->inputs));
    aw->inputs[aw->inputs_here].op = op;
    aw->inputs[aw->inputs_here].text = text;
    aw->inputs_here++;
    aw->inputs_bytes += strlen(text);
    return op;
}

static void add_release(struct agent_write *aw, struct hub_node *n)
{
    aw->release = arena_grow(&aw->arena, aw->release, aw->nrelease, &aw->cap_release,
                             sizeof(*aw->release));
    aw->release[aw->nrelease++] = n;
}

static struct agent_write *write_new(struct hub *h, struct hub_agent *a)
{
    struct agent_write *aw = ag_xcalloc(1, sizeof(*aw));
    aw->h = h;
    aw->a = a;
    ag_arena_init(&aw->arena, NULL, 0);
    aw->next = a->st; /* shallow: blobs stay owned by a->st; replacements go to new_* */
    aw->spawn_input_op = SIZE_MAX;
    aw->w.done = write_done;
    aw->w.arg = aw;
    return aw;
}

static bool waiting_state(int s)
{
    return s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
           s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED ||
           s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED;
}

static bool has_unconsumed_input(struct agent_write *aw)
{
    return aw->inputs_here > 0 || hub_agent_input_waiting(aw->a, aw->next.input_seq);
}

/* --- decisions (agent locked) -------------------------------------------------------------- */

static void assign_to(struct agent_write *aw, struct hub_node *n)
{
    aw->next.epoch++;
    aw->next.attempt++;
    aw->next.state = AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING;
    aw->next.node = n; /* the reservation's reference moves here */
    snprintf(aw->next.node_id, sizeof(aw->next.node_id), "%s", n->id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", n->id);
    cJSON_AddNumberToObject(o, "epoch", (double)aw->next.epoch);
    cJSON_AddNumberToObject(o, "attempt", aw->next.attempt);
    add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ASSIGNED, json_take(&aw->arena, o), NULL);
    aw->assign_node = n;
    aw->assigned_here = true;
}

/* Start a turn now if a slot is free, else wait in the FIFO (after commit). */
static void place_turn(struct agent_write *aw)
{
    struct hub_node *n = hub_sched_try_reserve(aw->h->sched, &aw->a->req);
    if (n) {
        assign_to(aw, n);
    } else {
        aw->next.state = AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING;
        aw->enqueue_pending = true;
    }
}

/* A waiting agent starts a new turn: its attempts, interruptions and usage count from zero. */
static void begin_turn(struct agent_write *aw)
{
    aw->next.turn_usage = (struct hub_usage){0};
    aw->next.attempt = 0;
    aw->next.streak = 0;
    aw->next.streak_reason[0] = '\0';
    aw->next.turn_max_iter = 0;
}

/* The running turn is over: its slot goes back after commit. */
static void end_turn(struct agent_write *aw, int new_state)
{
    if (aw->next.node)
        add_release(aw, aw->next.node);
    aw->next.node = NULL;
    aw->next.state = new_state;
}

/* An input: *op is its event's op; -1 with err when the agent refuses it. */
static int cmd_input(struct agent_write *aw, struct hub_cmd *c, size_t *op, struct ag_err *err)
{
    struct hub_agent *a = aw->a;
    if (aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "agent '%s' is killed; it takes no more input", a->id);
    if (a->ninbox + aw->inputs_here >= HUB_MAX_INBOX)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "agent '%s' has %d inputs waiting; retry when it has consumed some",
                          a->id, HUB_MAX_INBOX);
    size_t waiting = a->inbox_bytes + aw->inputs_bytes;
    if (waiting + strlen(c->text) > HUB_MAX_INBOX_BYTES)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "agent '%s' has %zu bytes of input waiting and this would pass the "
                          "limit of %u; retry when it has consumed some",
                          a->id, waiting, HUB_MAX_INBOX_BYTES);
    *op = add_input(aw, c->text, c->call, c->by);
    if (waiting_state(aw->next.state)) {
        begin_turn(aw);
        place_turn(aw);
    }
    return 0;
}

/* ResumeAgent: *op is the RESUMED event's op; -1 with err when the agent's state refuses it.
 * Decided against the working state, so of two resumes in one write the second finds the turn
 * started. */
static int cmd_resume(struct agent_write *aw, struct hub_cmd *c, size_t *op, struct ag_err *err)
{
    const char *id = aw->a->id;
    const char *from;
    switch (aw->next.state) {
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED:
        from = "yielded";
        break;
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED:
        from = "failed";
        break;
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE:
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "agent '%s' is idle: its last turn finished; send it a message instead",
                          id);
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED:
        return ag_err_set(err, AG_FAILED_PRECONDITION, "agent '%s' is killed; it cannot be resumed",
                          id);
    default:
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "agent '%s' is already running (%s): a turn is under way; wait for it to "
                          "end",
                          id,
                          aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING
                              ? "pending"
                              : "running");
    }
    uint32_t limit = c->max_iter ? c->max_iter : aw->a->spec->max_iterations;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "from", from);
    cJSON_AddNumberToObject(o, "max_iterations", limit);
    add_by(o, c->call, NULL);
    *op = add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_RESUMED, json_take(&aw->arena, o),
                    NULL);
    begin_turn(aw);
    aw->next.turn_max_iter = c->max_iter;
    place_turn(aw);
    return 0;
}

/* Killing a killed agent answers with the first KILLED event (hub.proto): at once when that is
 * committed (it is the agent's last event: SIZE_MAX, answered), else with the op of this write
 * that stores it. */
static size_t cmd_kill_again(struct agent_write *aw, struct hub_cmd *c)
{
    c->already = true;
    if (aw->a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED) {
        struct hub_reply r = {
            .kind = HUB_REPLY_KILLED, .seq = aw->a->last_seq, .already_killed = true};
        answer(aw->h, c, &r, NULL);
        return SIZE_MAX;
    }
    return aw->turn_end_op; /* killed earlier in this write */
}

/* The KILLED event's op, or SIZE_MAX when the caller was answered at once. */
static size_t cmd_kill(struct agent_write *aw, struct hub_cmd *c)
{
    if (aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED)
        return cmd_kill_again(aw, c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "reason", c->text && *c->text ? c->text : "killed by request");
    add_by(o, c->call, NULL);
    size_t op = add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED, json_take(&aw->arena, o),
                          NULL);
    if (aw->next.node) {
        hub_sched_node_ref(aw->h->sched, aw->next.node);
        aw->cancel_node = aw->next.node;
        aw->cancel_epoch = aw->next.epoch;
    }
    end_turn(aw, AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED);
    aw->new_error = ag_arena_strdup(&aw->arena, c->text && *c->text ? c->text : "killed");
    aw->new_output = NULL;
    aw->out_set = true;
    aw->turn_ended = true;
    aw->turn_end_op = op;
    aw->enqueue_pending = false;
    aw->wait_over = true; /* a wait of its ends here: no answer will come for it */
    aw->approval_over = true;
    aw->killed_here = true;
    return op;
}

/* DeleteAgent's hold (command idx of the write), decided against the working state. It must be
 * the write's last command and the write must store nothing: a command after it in the same
 * batch (a racing SendMessage) would be decided too, and one before it that stored something
 * would end the hold with its write; either makes it refuse, and the caller may retry. Held, the
 * agent keeps `writing` set with no write in flight: kick takes nothing from its mailbox until
 * hub_actor_unhold, or hub_actor_deleted refuses it all. */
static void cmd_hold(struct agent_write *aw, struct hub_cmd *c, size_t idx)
{
    struct hub_agent *a = aw->a;
    int s = aw->next.state;
    struct ag_err err = AG_ERR_INIT;
    if (!waiting_state(s) && s != AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED)
        ag_err_set(&err, AG_FAILED_PRECONDITION,
                   "agent '%s' is %s: kill it or wait for its turn to end, then delete", a->id,
                   hub_agent_state_name(s));
    else if (s != AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED && has_unconsumed_input(aw))
        ag_err_set(&err, AG_FAILED_PRECONDITION,
                   "agent '%s' has input waiting for its next turn: kill it or wait for that turn "
                   "to end, then delete",
                   a->id);
    else if (idx + 1 < aw->ncmds || aw->nops > 0)
        ag_err_set(&err, AG_FAILED_PRECONDITION,
                   "agent '%s' is busy (other requests for it are being stored); retry", a->id);
    if (err.code != AG_OK) {
        answer(aw->h, c, NULL, &err);
        return;
    }
    a->writing = true;
    struct hub_reply r = {.kind = HUB_REPLY_HELD, .agent_id = a->id, .state = s};
    answer(aw->h, c, &r, NULL);
}

/* A command for a deleted agent: its caller hears NOT_FOUND (a node's events, which no agent at
 * rest has, are dropped as stale). No lock held. */
static void refuse_deleted(struct hub *h, struct hub_agent *a, struct hub_cmd *c)
{
    struct ag_err err;
    ag_err_set(&err, AG_NOT_FOUND, "no agent with id '%s' (it was deleted)", a->id);
    if (c->type == HUB_CMD_EVENTS) {
        uint64_t *seqs = ag_xcalloc(c->n ? c->n : 1, sizeof(*seqs));
        h->fx.events_stored(h, c->batch, c->first, seqs, c->n, NULL);
        free(seqs);
    } else {
        answer(h, c, NULL, &err);
    }
    cmd_free(h, c);
}

void hub_actor_deleted(struct hub *h, struct hub_agent *a)
{
    pthread_mutex_lock(&a->lock);
    a->deleted = true;
    a->visible = false;
    struct hub_cmd *queued = NULL, **tail = &queued; /* refused below, without the lock */
    for (struct ag_qnode *n; (n = ag_queue_pop(&a->mailbox));) {
        *tail = AG_QUEUE_ENTRY(n, struct hub_cmd, qn);
        (*tail)->next = NULL;
        tail = &(*tail)->next;
    }
    pthread_mutex_unlock(&a->lock);
    while (queued) {
        struct hub_cmd *c = queued;
        queued = c->next;
        refuse_deleted(h, a, c);
    }
}

/* A turn-ending event carries the agent's new checkpoint and the turn's result. */
static void take_turn_end(struct agent_write *aw, const Agentry__V1__NodeEvent *ev,
                          const struct hub_node *n, size_t op)
{
    int st = ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL
                 ? AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE
             : ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD
                 ? AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED
                 : AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED;
    end_turn(aw, st);
    /* Without a checkpoint (a node whose turn state outgrew the limits) the agent stays as it
     * was before the turn, its inputs unconsumed. Usage is not taken from the checkpoint: the hub
     * counted it from the events (hub_usage_count). */
    if (ev->checkpoint) {
        aw->new_ckpt = rpc_pb_pack_arena(&ev->checkpoint->base, &aw->arena, &aw->new_ckpt_len);
        aw->ckpt_set = true;
        aw->new_ckpt_msgs = ev->checkpoint->n_messages > 0;
        aw->next.input_seq = ev->checkpoint->input_seq;
        aw->warm_key = n->keeps_state ? n->process_key : 0;
    }
    aw->next.streak = 0;
    aw->next.streak_reason[0] = '\0';
    const char *out = ev->result && ev->result->output ? ev->result->output : "";
    const char *er = ev->result && ev->result->error ? ev->result->error : "";
    aw->new_output = st == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE
                         ? ag_arena_strdup(&aw->arena, out)
                         : NULL;
    aw->new_error = st != AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE
                        ? ag_arena_strdup(&aw->arena, er)
                        : NULL;
    aw->out_set = true;
    aw->turn_ended = true;
    aw->turn_end_op = op;
}

/* The turn waits for sub-agents (hub/team.h): its node lets go of it (the slot comes back), but
 * the turn goes on: no result, no checkpoint taken (the next attempt replays its steps, as after
 * an interruption), PENDING until the children awaited are done. A wait is progress: the
 * attempts and interruptions counted against the turn (the dead-letter rule) start again, or a
 * parent that delegates step by step would be abandoned after a few waits and one lost node. */
static void take_waiting(struct agent_write *aw, const Agentry__V1__NodeEvent *ev)
{
    end_turn(aw, AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING);
    aw->next.attempt = 0;
    aw->next.streak = 0;
    aw->next.streak_reason[0] = '\0';
    hub_team_wait_free(aw->new_wait);
    aw->new_wait = hub_team_wait_parse(ev->payload ? ev->payload : "{}",
                                       ev->payload ? strlen(ev->payload) : 2);
    aw->wait_over = false;
    aw->wait_check = true;
    if (!aw->new_wait) /* names no child: nothing to wait for (a node's bug); go on at once */
        place_turn(aw);
}

/* The wait the turn is under in this write, NULL if none. */
static struct hub_team_wait *working_wait(struct agent_write *aw)
{
    if (aw->wait_over)
        return NULL;
    return aw->new_wait ? aw->new_wait : aw->a->wait;
}

/* The approval the turn waits on in this write, NULL if none. */
static struct hub_approval *working_approval(struct agent_write *aw)
{
    if (aw->approval_over)
        return NULL;
    return aw->new_approval ? aw->new_approval : aw->a->approval;
}

/* A node's APPROVAL_REQUIRED, stored with its deadline: spec.limits.approval_timeout_ms, or the
 * hub's. Like WAITING, it ends the attempt and not the turn, and counts as progress; the turn is
 * PENDING without a node until the call is decided (cmd_decide). A payload that names no call
 * (a node's bug) is stored as sent and the turn goes on at once. */
static size_t take_approval(struct agent_write *aw, const Agentry__V1__NodeEvent *ev,
                            const char *node_id)
{
    const Agentry__V1__AgentSpec *spec = aw->a->spec;
    uint64_t t = spec->limits && spec->limits->approval_timeout_ms
                     ? spec->limits->approval_timeout_ms
                     : (uint64_t)aw->h->opts.approval_timeout_ms;
    int64_t now_ns = ag_now_unix_ns();
    const char *payload = ev->payload ? ev->payload : "{}";
    const char *stamped = hub_approval_stamp(payload, now_ns / 1000000 + (int64_t)t, &aw->arena);
    size_t op = add_event(aw, ev->kind, stamped ? stamped : payload, node_id);
    aw->ops[op].u.event.time_ns = now_ns;
    end_turn(aw, AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING);
    aw->next.attempt = 0;
    aw->next.streak = 0;
    aw->next.streak_reason[0] = '\0';
    hub_approval_free(aw->new_approval);
    aw->new_approval = stamped ? hub_approval_parse(stamped, strlen(stamped), 0, now_ns) : NULL;
    aw->approval_op = op;
    aw->approval_over = false;
    if (!aw->new_approval)
        place_turn(aw);
    return op;
}

/* The reply to a decision on call c->call_id that is not waiting: the same decision stored
 * before in this turn answers OK (already); another is FAILED_PRECONDITION; none, NOT_FOUND. */
static size_t decided_before(struct agent_write *aw, struct hub_cmd *c, struct ag_err *err)
{
    enum hub_approval_decision d;
    uint64_t seq;
    if (!hub_approval_decided(aw->a, c->call_id, &d, &seq)) {
        ag_err_set(err, AG_NOT_FOUND,
                   "agent '%s' has no tool call '%.128s' waiting for approval; `agentry approvals` "
                   "lists the calls that wait",
                   aw->a->id, c->call_id);
        return SIZE_MAX;
    }
    bool same = (int)d == c->decision ||
                (d != HUB_APPROVAL_APPROVED && c->decision != HUB_APPROVAL_APPROVED);
    if (!same) {
        ag_err_set(err, AG_FAILED_PRECONDITION,
                   "tool call '%.128s' of agent '%s' was %s already (event %llu)", c->call_id,
                   aw->a->id, hub_approval_decision_word(d), (unsigned long long)seq);
        return SIZE_MAX;
    }
    struct hub_reply r = {.kind = HUB_REPLY_DECIDED, .seq = seq, .already = true};
    answer(aw->h, c, &r, NULL);
    return SIZE_MAX;
}

/* ApproveCall, DenyCall, or the deadline: the waiting call's APPROVAL_DECIDED (and a refused
 * call's TOOL_RESULT) is stored and the turn placed again, on any node; the approved call runs
 * there (the node reads the decision among the turn's steps). An expiry whose timer is not the
 * current one, or that finds the call decided, does nothing. */
static size_t cmd_decide(struct agent_write *aw, struct hub_cmd *c, struct ag_err *err)
{
    struct hub_approval *ap = working_approval(aw);
    bool expiry = c->decision == HUB_APPROVAL_EXPIRED;
    if (!ap || aw->next.state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING ||
        strcmp(ap->call_id, c->call_id) != 0) {
        if (expiry)
            return SIZE_MAX;
        if (aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED) {
            ag_err_set(err, AG_FAILED_PRECONDITION, "agent '%s' was killed", aw->a->id);
            return SIZE_MAX;
        }
        return decided_before(aw, c, err);
    }
    if (expiry && (ap != aw->a->approval || aw->a->approval_token != c->epoch))
        return SIZE_MAX;
    const char *by = expiry ? "timeout" : c->by ? c->by : caller_of(c->call);
    enum hub_approval_decision d = (enum hub_approval_decision)c->decision;
    size_t op = add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED,
                          hub_approval_decided_json(ap, d, by, c->text, c->args, &aw->arena), NULL);
    if (d != HUB_APPROVAL_APPROVED)
        add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT,
                  hub_approval_refusal_json(ap, d, by, c->text, &aw->arena), NULL);
    ag_log_info("approval.decided", "agent=%s call=%s tool=%s decision=%s by=%s", aw->a->id,
                ag_log_q(ap->call_id), ap->tool, hub_approval_decision_word(d),
                ag_log_q(by ? by : "anonymous"));
    aw->approval_over = true;
    place_turn(aw);
    return op;
}

/* A sub-agent ended a turn: logged in this agent's trace (by reference: the child's own log
 * holds its events); when it was the last child the turn waits on, the wait_agent call's
 * TOOL_RESULT is stored here and the turn placed again (a new attempt of the same turn). The
 * marks are memory only: a restarted hub asks the children again (hub/team.h). */
static void cmd_child(struct agent_write *aw, struct hub_cmd *c)
{
    if (c->log && aw->next.state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "agent_id", c->child_id);
        cJSON_AddStringToObject(o, "state", hub_agent_state_name(c->child_state));
        cJSON_AddNumberToObject(o, "seq", (double)c->child_seq);
        cJSON_AddStringToObject(
            o, c->child_state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ? "output" : "error",
            c->text ? c->text : "");
        add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_CHILD, json_take(&aw->arena, o), NULL);
    }
    struct hub_team_wait *w = working_wait(aw);
    struct hub_team_end e = {.child_id = c->child_id,
                             .state = c->child_state,
                             .seq = c->child_seq,
                             .text = c->text,
                             .settled = c->settled};
    if (!w || aw->next.state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING ||
        !hub_team_wait_mark(w, &e))
        return;
    add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT,
              hub_team_wait_result(w, &aw->arena), NULL);
    aw->wait_over = true;
    place_turn(aw);
}

static bool is_turn_end(int kind)
{
    return kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR;
}

/* Events from a node: kept only while they belong to the running turn; others (an older epoch,
 * or a turn the hub already ended or killed) are acknowledged with seq 0 and dropped. */
static void cmd_events(struct agent_write *aw, struct hub_cmd *c, size_t idx)
{
    size_t *ops = ag_arena_alloc(&aw->arena, (c->n ? c->n : 1) * sizeof(*ops));
    for (size_t i = 0; i < c->n; i++) {
        const Agentry__V1__NodeEvent *ev = c->events[i];
        ops[i] = SIZE_MAX;
        if (ev->epoch != aw->next.epoch ||
            aw->next.state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING ||
            aw->next.node != c->node)
            continue;
        ops[i] = ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED
                     ? take_approval(aw, ev, c->node->id)
                     : add_event(aw, ev->kind, ev->payload ? ev->payload : "{}", c->node->id);
        hub_agent_count_usage(
            &aw->next, ev->kind, ev->usage ? ev->usage->input_tokens : 0,
            ev->usage ? ev->usage->output_tokens : 0,
            hub_usage_payload_cost(ev->kind, ev->payload, ev->payload ? strlen(ev->payload) : 0));
        if (is_turn_end(ev->kind))
            take_turn_end(aw, ev, c->node, ops[i]);
        else if (ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING)
            take_waiting(aw, ev);
    }
    aw->ev_ops[idx] = ops;
}

static void cmd_assign(struct agent_write *aw, struct hub_cmd *c)
{
    struct hub_node *n = c->node;
    c->node = NULL; /* the reservation's reference moves on */
    if (aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING && !aw->next.node &&
        !working_wait(aw) && !working_approval(aw))
        assign_to(aw, n);
    else
        add_release(aw, n);
}

/* The back-off before the next attempt of a turn interrupted `interruptions` times: none after the
 * first (another node can take over at once), then retry_backoff_ms, doubling, capped. */
static int64_t retry_delay_ms(const struct hub *h, uint32_t interruptions)
{
    int64_t max = h->opts.retry_backoff_max_ms;
    if (interruptions <= 1)
        return 0;
    int64_t d = h->opts.retry_backoff_ms;
    for (uint32_t i = 2; i < interruptions && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

/* The dead-letter rule: the hub ends the turn with an ERROR of its own. */
static void abandon_turn(struct agent_write *aw, const char *reason)
{
    char *msg = ag_arena_printf(&aw->arena,
                                "turn abandoned after %u interruptions (%u in a row: %s); send a "
                                "message to try again",
                                aw->next.attempt, aw->next.streak, reason);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    size_t op = add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR, json_take(&aw->arena, o),
                          NULL);
    aw->next.state = AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED;
    aw->enqueue_pending = false;
    aw->new_output = NULL;
    aw->new_error = msg;
    aw->out_set = true;
    aw->turn_ended = true;
    aw->turn_end_op = op;
}

static void cmd_interrupt(struct agent_write *aw, struct hub_cmd *c)
{
    if (aw->next.state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING ||
        aw->next.node != c->node || aw->next.epoch != c->epoch)
        return;
    const char *reason = c->text ? c->text : "node lost";
    uint32_t limit = aw->h->opts.max_interruptions;
    if (!c->graceful) {
        if (aw->next.streak && strcmp(aw->next.streak_reason, reason) == 0) {
            aw->next.streak++;
        } else {
            aw->next.streak = 1;
            snprintf(aw->next.streak_reason, sizeof(aw->next.streak_reason), "%s", reason);
        }
    }
    bool give_up = !c->graceful && (aw->next.streak >= limit || aw->next.attempt >= 4 * limit);
    /* The next attempt must be told every stored step; a turn that stored more than an
     * Assignment may carry cannot go on anywhere. */
    if (aw->a->steps_bytes > HUB_MAX_STEPS_BYTES) {
        give_up = true;
        reason = ag_arena_printf(&aw->arena,
                                 "%s; its %zu bytes of stored steps are over the %u an assignment "
                                 "may carry",
                                 reason, aw->a->steps_bytes, HUB_MAX_STEPS_BYTES);
    }
    int64_t delay = c->graceful || give_up ? 0 : retry_delay_ms(aw->h, aw->next.attempt);
    cJSON *o = cJSON_CreateObject();
    /* After a hub restart there is no node object (c->node is NULL): the id is in the state. */
    cJSON_AddStringToObject(o, "node", aw->next.node_id);
    cJSON_AddNumberToObject(o, "epoch", (double)c->epoch);
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddNumberToObject(o, "attempt", aw->next.attempt);
    cJSON_AddNumberToObject(o, "limit", limit);
    cJSON_AddNumberToObject(o, "retry_in_ms", give_up ? -1 : (double)delay);
    add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_INTERRUPTED, json_take(&aw->arena, o), NULL);
    aw->interrupted = true;
    end_turn(aw, AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING);
    if (give_up)
        abandon_turn(aw, reason);
    else if (delay > 0)
        aw->retry_in_ms = delay; /* the timer starts once this is durable */
    else
        place_turn(aw);
}

/* A back-off is over: place the turn, unless the agent moved on (killed, or placed already). */
static void cmd_retry(struct agent_write *aw, struct hub_cmd *c)
{
    struct hub_agent *a = aw->a;
    if (a->retry_token != c->epoch ||
        aw->next.state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING || aw->next.node)
        return;
    /* Memory only: if this write fails, on_failed queues the agent for a slot instead. */
    a->retry_token = 0;
    place_turn(aw);
}

static void reply_spawn_dup(struct hub *h, struct hub_agent *a, struct hub_cmd *c)
{
    if (a->dead) {
        struct ag_err e;
        ag_err_set(&e, AG_UNAVAILABLE, "the first Spawn with request id '%s' failed; retry",
                   a->request_id);
        answer(h, c, NULL, &e);
        return;
    }
    if (c->invoke) {
        /* Invoke answers with the first turn: wait for it, or answer at once if it is over. */
        h->fx.wait_first_turn(a, c->call);
        if (a->first.done)
            h->fx.first_turn_ended(a);
        return;
    }
    struct hub_reply r = {.kind = HUB_REPLY_SPAWNED,
                          .agent_id = a->id,
                          .state = a->st.state,
                          .seq = a->spawn_input_seq,
                          .existing = true};
    answer(h, c, &r, NULL);
}

/* Decide one command. Returns its event op index, SIZE_MAX if it has none; on refusal answers
 * the caller at once. */
static size_t apply_cmd(struct agent_write *aw, struct hub_cmd *c, size_t idx)
{
    struct ag_err err = AG_ERR_INIT;
    size_t op = SIZE_MAX;
    switch (c->type) {
    case HUB_CMD_INPUT:
        if (cmd_input(aw, c, &op, &err) != 0) {
            answer(aw->h, c, NULL, &err);
            return SIZE_MAX;
        }
        break;
    case HUB_CMD_KILL:
        op = cmd_kill(aw, c);
        break;
    case HUB_CMD_RESUME:
        if (cmd_resume(aw, c, &op, &err) != 0) {
            answer(aw->h, c, NULL, &err);
            return SIZE_MAX;
        }
        break;
    case HUB_CMD_EVENTS:
        cmd_events(aw, c, idx);
        break;
    case HUB_CMD_ASSIGN:
        cmd_assign(aw, c);
        break;
    case HUB_CMD_INTERRUPT:
        cmd_interrupt(aw, c);
        break;
    case HUB_CMD_SCHEDULE:
        if (waiting_state(aw->next.state) && has_unconsumed_input(aw)) {
            begin_turn(aw);
            place_turn(aw);
        }
        break;
    case HUB_CMD_SPAWN_DUP:
        reply_spawn_dup(aw->h, aw->a, c);
        break;
    case HUB_CMD_RETRY:
        cmd_retry(aw, c);
        break;
    case HUB_CMD_CHILD:
        cmd_child(aw, c);
        break;
    case HUB_CMD_DECIDE:
        op = cmd_decide(aw, c, &err);
        if (err.code != AG_OK)
            answer(aw->h, c, NULL, &err);
        break;
    case HUB_CMD_HOLD:
        cmd_hold(aw, c, idx);
        break;
    }
    return op;
}

/* Whether the agent's row must be written. Usage alone does not count: a running attempt's
 * events would otherwise rewrite the row (and its checkpoint) each time; what they spent is
 * stored with the next state change, and recounted from the events at load (hub.c). */
static bool st_changed(const struct agent_write *aw, const struct hub_agent_st *old)
{
    return aw->next.state != old->state || aw->next.epoch != old->epoch ||
           strcmp(aw->next.node_id, old->node_id) != 0 || aw->ckpt_set || aw->out_set ||
           aw->next.attempt != old->attempt || aw->next.streak != old->streak;
}

static void fill_agent_row(struct agent_write *aw, struct hub_store_agent *row)
{
    struct hub_agent *a = aw->a;
    row->id = a->id;
    row->namespace = a->ns;
    row->request_id = a->request_id;
    row->parent_id = a->parent_id;
    row->depth = a->depth;
    row->spec = a->spec_bin;
    row->spec_len = a->spec_len;
    row->state = aw->next.state;
    row->node_id = aw->next.node_id;
    row->epoch = aw->next.epoch;
    row->checkpoint = aw->ckpt_set ? aw->new_ckpt : a->st.ckpt;
    row->checkpoint_len = aw->ckpt_set ? aw->new_ckpt_len : a->st.ckpt_len;
    row->last_output = aw->out_set ? aw->new_output : a->st.last_output;
    row->last_error = aw->out_set ? aw->new_error : a->st.last_error;
    row->created_ns = a->created_ns;
    row->updated_ns = ag_now_unix_ns();
    row->usage = aw->next.usage;
    row->turn_usage = aw->next.turn_usage;
    row->turn_attempt = aw->next.attempt;
    row->streak = aw->next.streak;
    row->streak_reason = aw->next.streak_reason;
    /* Spawn's write is SPAWNED then INPUT: a new agent's input is its event 2. */
    row->spawn_input_seq = aw->spawn_input_op != SIZE_MAX ? 2 : 0;
    /* A turn ending with input waiting starts the next one after this commit: a hub that stops
     * in between must find this agent at start-up (hub_store_select_agents, ACTIVE). */
    row->waiting_input = (aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
                          aw->next.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED) &&
                         has_unconsumed_input(aw);
    aw->next.updated_ns = row->updated_ns;
}

/* --- kick ---------------------------------------------------------------------------------- */

static void submit(struct agent_write *aw)
{
    /* Held until write_done is over: its effects touch the agent after its lock is let go. */
    hub_agents_pin(&aw->h->agents, aw->a);
    struct ag_err err = AG_ERR_INIT;
    aw->w.ops = aw->ops;
    aw->w.nops = aw->nops;
    if (hub_store_submit(aw->h->store, &aw->w, &err) != 0)
        write_done(&aw->w, -1, &err);
}

static void kick(struct hub *h, struct hub_agent *a)
{
    for (;;) {
        pthread_mutex_lock(&a->lock);
        if (a->writing || ag_queue_empty(&a->mailbox)) {
            pthread_mutex_unlock(&a->lock);
            return;
        }
        struct agent_write *aw = write_new(h, a);
        size_t n = ag_queue_len(&a->mailbox);
        if (n > KICK_MAX_CMDS)
            n = KICK_MAX_CMDS;
        aw->ncmds = n;
        aw->cmd_op = ag_arena_alloc(&aw->arena, n * sizeof(*aw->cmd_op));
        aw->ev_ops = ag_arena_calloc(&aw->arena, n * sizeof(*aw->ev_ops));
        struct hub_cmd **tail = &aw->cmds;
        for (size_t i = 0; i < n; i++) {
            struct hub_cmd *c = AG_QUEUE_ENTRY(ag_queue_pop(&a->mailbox), struct hub_cmd, qn);
            c->next = NULL;
            *tail = c;
            tail = &c->next;
            aw->cmd_op[i] = apply_cmd(aw, c, i);
        }
        if (st_changed(aw, &a->st)) {
            size_t i = add_op(aw, HUB_STORE_AGENT_UPDATE);
            fill_agent_row(aw, &aw->ops[i].u.agent);
        }
        if (aw->nops == 0) {
            /* Everything was answered or was a no-op: nothing to make durable. */
            pthread_mutex_unlock(&a->lock);
            write_finish(aw, true, NULL);
            continue;
        }
        a->writing = true;
        pthread_mutex_unlock(&a->lock);
        submit(aw);
        return;
    }
}

static void cmd_post(struct hub *h, struct hub_agent *a, struct hub_cmd *cmd)
{
    pthread_mutex_lock(&a->lock);
    if (a->deleted) {
        pthread_mutex_unlock(&a->lock);
        refuse_deleted(h, a, cmd);
        return;
    }
    /* A caller's request may be refused; a node's events (already accepted from its batch) and
     * the hub's own commands may not: they would be lost. */
    if (cmd->call && cmd->type != HUB_CMD_EVENTS) {
        struct ag_err e = AG_ERR_INIT;
        if (ag_queue_push(&a->mailbox, &cmd->qn, 1, &e) != 0) {
            pthread_mutex_unlock(&a->lock);
            ag_err_set(&e, AG_RESOURCE_EXHAUSTED,
                       "agent '%s' has %d requests waiting to be stored; retry with backoff", a->id,
                       HUB_MAX_MAILBOX);
            h->fx.fail(cmd->call, &e);
            cmd_free(h, cmd);
            return;
        }
    } else {
        ag_queue_push_over(&a->mailbox, &cmd->qn, 1);
    }
    pthread_mutex_unlock(&a->lock);
    kick(h, a);
}

/* --- spawn --------------------------------------------------------------------------------- */

/* Spawn's and spawn_agent's: call answers a client, child (not NULL) a parent agent. */
static void spawn(struct hub *h, struct rpc_call *call, const struct hub_actor_child *child,
                  const Agentry__V1__AgentSpec *spec, const char *input, const char *ns,
                  const char *request_id, bool invoke)
{
    Agentry__V1__AgentSpec norm = *spec;
    if (!norm.model || !*norm.model)
        norm.model = "mock";
    struct hub_agent *a = hub_agent_new(&norm, ns, request_id);
    if (child) {
        snprintf(a->parent_id, sizeof(a->parent_id), "%s",
                 child->parent_id ? child->parent_id : "");
        a->depth = child->depth;
    }
    if (a->req_key) {
        struct hub_agent *owner = hub_agents_claim_request(&h->agents, a->req_key, a);
        if (owner != a) {
            hub_agent_free(h->sched, a);
            struct hub_cmd *c = cmd_new(HUB_CMD_SPAWN_DUP, call);
            c->invoke = invoke;
            c->done = child ? child->done : NULL;
            c->done_arg = child ? child->arg : NULL;
            cmd_post(h, owner, c);
            hub_agents_unpin(&h->agents, owner);
            return;
        }
    }
    const char *by = child ? child->by : NULL;
    pthread_mutex_lock(&a->lock);
    a->writing = true;
    struct agent_write *aw = write_new(h, a);
    aw->creating = true;
    aw->spawn_call = call;
    aw->spawn_done = child ? child->done : NULL;
    aw->spawn_done_arg = child ? child->arg : NULL;
    aw->spawn_invoke = invoke;
    size_t ins = add_op(aw, HUB_STORE_AGENT_INSERT);
    cJSON *spawned = agentry_json_spec(a->spec);
    cJSON_AddStringToObject(spawned, "namespace", a->ns);
    if (child && child->parent_id)
        cJSON_AddStringToObject(spawned, "parent_id", child->parent_id);
    add_by(spawned, call, by);
    const char *sj = json_take(&aw->arena, spawned);
    add_event(aw, AGENTRY__V1__EVENT_KIND__EVENT_KIND_SPAWNED, sj, NULL);
    aw->next.state = AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE;
    if (input && *input) {
        /* A caller's input lives in its call arena (or its tool call's), which outlasts this
         * write; the hub's own (a schedule's) may not: copied. */
        if (!call && !by)
            input = ag_arena_strdup(&aw->arena, input);
        aw->spawn_input_op = add_input(aw, input, call, by);
        place_turn(aw);
    }
    fill_agent_row(aw, &aw->ops[ins].u.agent);
    pthread_mutex_unlock(&a->lock);
    submit(aw);
}

void hub_actor_spawn(struct hub *h, struct rpc_call *call, const Agentry__V1__AgentSpec *spec,
                     const char *input, const char *ns, const char *request_id, bool invoke)
{
    spawn(h, call, NULL, spec, input, ns, request_id, invoke);
}

void hub_actor_spawn_child(struct hub *h, const struct hub_actor_child *c,
                           const Agentry__V1__AgentSpec *spec, const char *input, const char *ns,
                           const char *request_id)
{
    spawn(h, NULL, c, spec, input, ns, request_id, false);
}

void hub_actor_spawn_notify(struct hub *h, const Agentry__V1__AgentSpec *spec, const char *input,
                            const char *ns, const char *request_id, hub_actor_done_fn *done,
                            void *arg)
{
    const struct hub_actor_child root = {.done = done, .arg = arg};
    spawn(h, NULL, &root, spec, input, ns, request_id, false);
}

/* --- import -------------------------------------------------------------------------------- */

/* One exported event, appended as it was stored; an input after the checkpoint joins the inbox
 * on commit (its payload is {"text": ...}, as hub_json_text_payload wrote it). */
static void import_event(struct agent_write *aw, const Agentry__V1__TraceEvent *e,
                         uint64_t input_seq)
{
    size_t op = add_event(aw, e->kind, e->payload, e->node_id);
    aw->ops[op].u.event.time_ns = e->time_unix_nano;
    if (e->kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT || e->seq <= input_seq)
        return;
    cJSON *o = cJSON_Parse(e->payload);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    aw->inputs = arena_grow(&aw->arena, aw->inputs, aw->inputs_here, &aw->cap_inputs,
                            sizeof(*aw->inputs));
    aw->inputs[aw->inputs_here].op = op;
    aw->inputs[aw->inputs_here].text = ag_arena_strdup(&aw->arena,
                                                       cJSON_IsString(t) ? t->valuestring : "");
    aw->inputs_here++;
    cJSON_Delete(o);
}

/* The exported committed state becomes the working state the write stores. */
static void import_state(struct agent_write *aw, const Agentry__V1__AgentExport *x)
{
    aw->next.state = x->state;
    snprintf(aw->next.node_id, sizeof(aw->next.node_id), "%s", x->node_id ? x->node_id : "");
    aw->next.epoch = x->epoch;
    aw->next.input_seq = x->input_seq;
    if (x->usage)
        hub_usage_from_pb(x->usage, &aw->next.usage);
    if (x->turn_usage)
        hub_usage_from_pb(x->turn_usage, &aw->next.turn_usage);
    aw->next.attempt = x->turn_attempt;
    aw->next.streak = x->streak;
    snprintf(aw->next.streak_reason, sizeof(aw->next.streak_reason), "%s",
             x->streak_reason ? x->streak_reason : "");
    aw->new_ckpt = x->checkpoint.data;
    aw->new_ckpt_len = x->checkpoint.len;
    aw->ckpt_set = true;
    /* An export from an older hub may carry the conversation in its checkpoint. */
    const Agentry__V1__Checkpoint *ck = x->checkpoint.len
                                            ? rpc_pb_unpack_bytes(
                                                  x->checkpoint.data, x->checkpoint.len,
                                                  &agentry__v1__checkpoint__descriptor, &aw->arena,
                                                  NULL)
                                            : NULL;
    aw->new_ckpt_msgs = ck && ck->n_messages > 0;
    aw->new_output = x->last_output && *x->last_output ? x->last_output : NULL;
    aw->new_error = x->last_error && *x->last_error ? x->last_error : NULL;
    aw->out_set = true;
    aw->import_spawn_input_seq = x->spawn_input_seq;
}

void hub_actor_import(struct hub *h, struct rpc_call *call, const Agentry__V1__AgentExport *x)
{
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__AgentSpec norm = *x->spec; /* as Spawn stores it */
    if (!norm.model || !*norm.model)
        norm.model = "mock";
    size_t len = protobuf_c_message_get_packed_size(&norm.base);
    uint8_t *bin = ag_xmalloc(len ? len : 1);
    protobuf_c_message_pack(&norm.base, bin);
    struct hub_agent *a = hub_agent_new_take(x->agent_id, bin, len, x->namespace_, x->request_id,
                                             x->created_unix_nano, &err);
    struct hub_agent *owner = a && a->req_key ? hub_agents_claim_request(&h->agents, a->req_key, a)
                                              : a;
    if (owner != a) {
        hub_agents_unpin(&h->agents, owner);
        ag_err_set(&err, AG_ALREADY_EXISTS,
                   "request id '%s' belongs to another agent of namespace '%s' on this hub",
                   a->request_id, a->ns);
        hub_agent_free(h->sched, a);
        a = NULL;
    }
    if (!a) {
        h->fx.fail(call, &err);
        h->fx.release(call);
        return;
    }
    pthread_mutex_lock(&a->lock);
    a->writing = true;
    struct agent_write *aw = write_new(h, a);
    aw->creating = true;
    aw->importing = true;
    aw->spawn_call = call;
    size_t ins = add_op(aw, HUB_STORE_AGENT_INSERT);
    for (size_t i = 0; i < x->n_events; i++)
        import_event(aw, x->events[i], x->input_seq);
    import_state(aw, x);
    struct hub_store_agent *row = &aw->ops[ins].u.agent;
    fill_agent_row(aw, row);
    row->spawn_input_seq = x->spawn_input_seq;
    pthread_mutex_unlock(&a->lock);
    submit(aw);
}

/* --- after the write ----------------------------------------------------------------------- */

static void commit_state(struct agent_write *aw)
{
    struct hub_agent *a = aw->a;
    if (aw->ckpt_set) {
        free(a->st.ckpt);
        a->st.ckpt = aw->new_ckpt_len ? ag_xmemdup(aw->new_ckpt, aw->new_ckpt_len) : NULL;
        a->st.ckpt_len = aw->new_ckpt_len;
        a->ckpt_msgs = aw->new_ckpt_msgs;
    }
    if (aw->turn_ended) {
        /* Only a node's own checkpoint leaves its conversation where it ran: a turn the hub
         * ended (or one whose state did not fit) may hold steps that node never had. */
        a->warm_key = aw->warm_key;
        a->warm_epoch = aw->warm_key ? aw->next.epoch : 0;
    }
    if (aw->out_set) {
        free(a->st.last_output);
        free(a->st.last_error);
        a->st.last_output = aw->new_output ? ag_xstrdup(aw->new_output) : NULL;
        a->st.last_error = aw->new_error ? ag_xstrdup(aw->new_error) : NULL;
    }
    if (aw->new_wait || aw->wait_over) {
        hub_team_wait_free(a->wait);
        a->wait = aw->wait_over ? NULL : aw->new_wait;
        if (!aw->wait_over)
            aw->new_wait = NULL; /* now the agent's */
    }
    if (aw->new_approval || aw->approval_over) {
        hub_approval_free(a->approval);
        a->approval = aw->approval_over ? NULL : aw->new_approval;
        if (a->approval)
            a->approval->seq = aw->ops[aw->approval_op].u.event.seq;
        if (!aw->approval_over)
            aw->new_approval = NULL; /* now the agent's */
        a->approval_token = 0;       /* an armed deadline is no longer the current one */
    }
    a->st.state = aw->next.state;
    if (a->st.node != aw->next.node) {
        /* The node's list follows st.node, so losing a node visits only its agents. */
        pthread_mutex_lock(&aw->h->node_agents_lock);
        ag_list_remove(&a->on_node);
        if (aw->next.node)
            ag_list_insert_tail(&aw->next.node->agents, &a->on_node);
        pthread_mutex_unlock(&aw->h->node_agents_lock);
    }
    a->st.node = aw->next.node;
    memcpy(a->st.node_id, aw->next.node_id, sizeof(a->st.node_id));
    a->st.epoch = aw->next.epoch;
    a->st.input_seq = aw->next.input_seq;
    a->st.usage = aw->next.usage;
    a->st.turn_usage = aw->next.turn_usage;
    a->st.attempt = aw->next.attempt;
    a->st.streak = aw->next.streak;
    a->st.turn_max_iter = aw->next.turn_max_iter;
    memcpy(a->st.streak_reason, aw->next.streak_reason, sizeof(a->st.streak_reason));
    if (aw->next.updated_ns)
        a->st.updated_ns = aw->next.updated_ns;
}

/* The write's events, now durable, in seq order (for the followers); in the arena. */
static const struct hub_store_event **record_events(struct agent_write *aw, size_t *nevs)
{
    struct hub_agent *a = aw->a;
    const struct hub_store_event **evs = ag_arena_alloc(&aw->arena,
                                                        (aw->nops ? aw->nops : 1) * sizeof(*evs));
    *nevs = 0;
    for (size_t i = 0; i < aw->nops; i++) {
        struct hub_store_op *op = &aw->ops[i];
        if (op->type != HUB_STORE_EVENT_APPEND)
            continue;
        struct hub_store_event *ev = &op->u.event;
        if (ev->seq > a->last_seq)
            a->last_seq = ev->seq;
        /* The steps of a turn that ends in this write would be kept only to be dropped by its
         * end (a one-step turn's are all here): note from the end on. */
        if (!aw->turn_ended || i >= aw->turn_end_op)
            hub_agent_steps_note(a, ev->seq, ev->kind, ev->payload, ev->payload_len);
        evs[(*nevs)++] = ev;
    }
    for (size_t i = 0; i < aw->inputs_here; i++)
        hub_agent_inbox_push(a, aw->ops[aw->inputs[i].op].u.event.seq, aw->inputs[i].text);
    hub_agent_inbox_trim(a, a->st.input_seq);
    return evs;
}

/* Answer each command's caller (agent locked, after commit). */
static void reply_cmds(struct agent_write *aw)
{
    struct hub_agent *a = aw->a;
    struct hub_cmd *c = aw->cmds;
    for (size_t i = 0; c; i++, c = c->next) {
        size_t op = aw->cmd_op[i];
        if (c->type == HUB_CMD_INPUT && op != SIZE_MAX) {
            uint64_t seq = aw->ops[op].u.event.seq;
            struct hub_reply r = {.kind = HUB_REPLY_SENT, .seq = seq, .state = a->st.state};
            answer(aw->h, c, &r, NULL);
            if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING &&
                !aw->assigned_here && a->st.node)
                aw->h->fx.deliver(aw->h, a->st.node, a->id, a->st.epoch, seq, c->text);
        } else if (c->type == HUB_CMD_KILL && op != SIZE_MAX) {
            struct hub_reply r = {.kind = HUB_REPLY_KILLED,
                                  .seq = aw->ops[op].u.event.seq,
                                  .already_killed = c->already};
            answer(aw->h, c, &r, NULL);
        } else if (c->type == HUB_CMD_DECIDE && op != SIZE_MAX) {
            struct hub_reply r = {.kind = HUB_REPLY_DECIDED, .seq = aw->ops[op].u.event.seq};
            answer(aw->h, c, &r, NULL);
        } else if (c->type == HUB_CMD_RESUME && op != SIZE_MAX) {
            struct hub_reply r = {
                .kind = HUB_REPLY_RESUMED, .seq = aw->ops[op].u.event.seq, .state = a->st.state};
            answer(aw->h, c, &r, NULL);
        }
    }
}

static void reply_spawn(struct agent_write *aw)
{
    struct hub_agent *a = aw->a;
    if (aw->importing) {
        struct hub_reply r = {.kind = HUB_REPLY_IMPORTED,
                              .agent_id = a->id,
                              .state = a->st.state,
                              .seq = a->last_seq};
        aw->h->fx.reply(aw->spawn_call, &r);
        return;
    }
    if (aw->spawn_invoke) {
        aw->h->fx.wait_first_turn(a, aw->spawn_call);
        return;
    }
    struct hub_reply r = {.kind = HUB_REPLY_SPAWNED,
                          .agent_id = a->id,
                          .state = a->st.state,
                          .seq = a->spawn_input_seq};
    if (aw->spawn_done)
        aw->spawn_done(aw->spawn_done_arg, &r, NULL);
    else
        aw->h->fx.reply(aw->spawn_call, &r);
}

struct retry_timer {
    struct hub *h;
    struct hub_agent *a;
    uint64_t token;
};

/* Timer thread: the back-off is over. The timer holds a pin on the agent, and the timers are
 * freed (running what is left) before the agents are. */
static void retry_fire(void *arg)
{
    struct retry_timer *t = arg;
    if (!atomic_load(&t->h->closing)) {
        struct hub_cmd *c = cmd_new(HUB_CMD_RETRY, NULL);
        c->epoch = t->token;
        cmd_post(t->h, t->a, c);
    }
    hub_agents_unpin(&t->h->agents, t->a);
    free(t);
}

/* Agent lock held. */
static void start_retry_timer(struct hub *h, struct hub_agent *a, int64_t delay_ms)
{
    struct retry_timer *t = ag_xmalloc(sizeof(*t));
    t->h = h;
    t->a = a;
    t->token = atomic_fetch_add(&h->retry_tokens, 1) + 1;
    a->retry_token = t->token;
    a->retry_at_ms = ag_now_mono_ms() + delay_ms;
    hub_agents_pin(&h->agents, a);
    ag_timers_add(h->timers, delay_ms, retry_fire, t);
}

struct approval_timer {
    struct hub *h;
    char agent_id[AG_ID_LEN + 1];
    uint64_t token;
    char *call_id; /* owned */
};

/* Timer thread: an approval's deadline passed. Unlike a back-off's, the timer holds no pin: a
 * deadline may be days away, and the call is often decided long before. An agent whose call
 * still waits is PENDING, which keeps it in memory: one not found there waits for nothing. */
static void approval_fire(void *arg)
{
    struct approval_timer *t = arg;
    struct hub_agent *a = atomic_load(&t->h->closing) ? NULL
                                                      : hub_agents_find(&t->h->agents, t->agent_id);
    if (a) {
        struct hub_cmd *c = cmd_new(HUB_CMD_DECIDE, NULL);
        c->decision = HUB_APPROVAL_EXPIRED;
        c->epoch = t->token;
        c->call_id = t->call_id;
        t->call_id = NULL;
        cmd_post(t->h, a, c);
        hub_agents_unpin(&t->h->agents, a);
    }
    free(t->call_id);
    free(t);
}

/* Arm a->approval's deadline. Agent lock held. */
static void start_approval_timer(struct hub *h, struct hub_agent *a)
{
    struct approval_timer *t = ag_xmalloc(sizeof(*t));
    t->h = h;
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", a->id);
    t->token = atomic_fetch_add(&h->retry_tokens, 1) + 1;
    t->call_id = ag_xstrdup(a->approval->call_id);
    a->approval_token = t->token;
    int64_t delay = a->approval->expires_ms - ag_now_unix_ns() / 1000000;
    ag_timers_add(h->timers, delay > 0 ? delay : 0, approval_fire, t);
}

/* Tell the observers what this write committed (agent locked, state applied). */
static void run_hooks(struct agent_write *aw, int old_state, const struct hub_store_event **evs,
                      size_t nevs)
{
    struct hub *h = aw->h;
    struct hub_agent *a = aw->a;
    if (nevs) {
        struct hub_hook_event ev = {
            .kind = HUB_HOOK_EVENTS_STORED, .agent_id = a->id, .events = evs, .nevents = nevs};
        hub_hooks_run(&h->hooks, &ev);
    }
    if (old_state == a->st.state && !aw->assigned_here && !aw->turn_ended && !aw->interrupted)
        return;
    struct hub_hook_event ev = {.kind = HUB_HOOK_AGENT_CHANGED,
                                .agent_id = a->id,
                                .node_id = a->st.node_id,
                                .old_state = old_state,
                                .state = a->st.state,
                                .epoch = a->st.epoch,
                                .last_seq = a->last_seq,
                                .turn_placed = aw->assigned_here,
                                .turn_interrupted = aw->interrupted,
                                .turn_ended = aw->turn_ended};
    hub_hooks_run(&h->hooks, &ev);
}

/* A sub-agent's turn ended: what its parent hears after the write (strings in the arena). */
static void note_child_end(struct agent_write *aw)
{
    struct hub_agent *a = aw->a;
    int s = a->st.state;
    const char *t = s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ? a->st.last_output
                                                                    : a->st.last_error;
    aw->child_end = true;
    aw->end = (struct hub_team_end){.child_id = a->id,
                                    .state = s,
                                    .seq = aw->ops[aw->turn_end_op].u.event.seq,
                                    .text = ag_arena_strdup(&aw->arena, t ? t : ""),
                                    .settled = s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED ||
                                               !hub_agent_input_waiting(a, a->st.input_seq)};
}

static void on_committed(struct agent_write *aw)
{
    struct hub *h = aw->h;
    struct hub_agent *a = aw->a;
    int old_state = aw->creating ? AGENTRY__V1__AGENT_STATE__AGENT_STATE_UNSPECIFIED : a->st.state;
    commit_state(aw);
    size_t nevs;
    const struct hub_store_event **evs = record_events(aw, &nevs);
    if (aw->creating) {
        /* Findable before the client hears of it: a GetAgent right after Spawn must work.
         * (The table's locks never take an agent's lock, so this nests safely.) */
        a->spawn_input_seq = aw->importing ? aw->import_spawn_input_seq
                             : aw->spawn_input_op != SIZE_MAX
                                 ? aw->ops[aw->spawn_input_op].u.event.seq
                                 : 0;
        /* Inputs that waited on the first hub start their turn here as they would have there. */
        aw->reschedule = aw->importing &&
                         (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
                          a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED) &&
                         hub_agent_input_waiting(a, a->st.input_seq);
        a->visible = true;
        hub_agents_publish(&h->agents, a);
    }
    /* Observers hear of the commit before any client does: a client that has its answer finds
     * it counted. */
    run_hooks(aw, old_state, evs, nevs);
    if (aw->creating)
        reply_spawn(aw);
    reply_cmds(aw);
    h->fx.wake_followers(h, a, evs, nevs);
    if (aw->turn_ended) {
        if (!a->first.done) {
            a->first.done = true;
            a->first.state = a->st.state;
            a->first.seq = aw->ops[aw->turn_end_op].u.event.seq;
            a->first.output = a->st.last_output ? ag_xstrdup(a->st.last_output) : NULL;
            a->first.error = a->st.last_error ? ag_xstrdup(a->st.last_error) : NULL;
            a->first.usage = a->st.usage; /* = the first turn's */
        }
        h->fx.first_turn_ended(a);
        /* Input that came during the turn starts the next one, unless the turn failed: a failed
         * turn is never run again by itself (the next SendMessage will). */
        aw->reschedule = (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
                          a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED) &&
                         hub_agent_input_waiting(a, a->st.input_seq);
        if (a->parent_id[0])
            note_child_end(aw);
    }
    /* A stopping hub starts no back-off: the next hub places its pending agents at once. */
    if (aw->retry_in_ms > 0 && !atomic_load(&h->closing))
        start_retry_timer(h, a, aw->retry_in_ms);
    if (a->approval && !a->approval_token && !atomic_load(&h->closing))
        start_approval_timer(h, a);
    if (aw->assign_node && a->st.node == aw->assign_node) {
        a->held[a->st.epoch % HUB_EPOCH_HISTORY].epoch = a->st.epoch;
        a->held[a->st.epoch % HUB_EPOCH_HISTORY].node_instance = aw->assign_node->instance;
        h->fx.assign(h, a, aw->assign_node);
    }
    if (aw->cancel_node)
        h->fx.cancel(h, aw->cancel_node, a->id, aw->cancel_epoch, "killed");
}

/* What a client hears of a failed write: only codes hub.proto documents. The store's own
 * per-write codes (a key taken, a row missing, a value refused) mean the hub and its store
 * disagree, which no retry by the client fixes: INTERNAL, with the store's words. */
static void client_err(const struct ag_err *err, struct ag_err *out)
{
    if (err->code == AG_UNAVAILABLE || err->code == AG_RESOURCE_EXHAUSTED) {
        *out = *err;
        return;
    }
    ag_err_set(out, AG_INTERNAL,
               "the hub's store refused the write (%s: %s); the hub and its store disagree: see "
               "the hub's log",
               ag_code_name(err->code), err->msg);
}

static void on_failed(struct agent_write *aw, const struct ag_err *store_err)
{
    struct hub_agent *a = aw->a;
    /* A store that is down (or lost) has said so once, in its own log line; a line per refused
     * write would bury it. A write refused on its own is worth an error line each. */
    enum ag_log_level lv = store_err->code == AG_UNAVAILABLE ? AG_LOG_DEBUG : AG_LOG_ERROR;
    ag_log_write(lv, "agent.write_failed", "agent=%s ops=%zu code=%s err=%s", a->id, aw->nops,
                 ag_code_name(store_err->code), ag_log_q(store_err->msg));
    struct ag_err e, *err = &e;
    if (aw->importing && store_err->code == AG_ALREADY_EXISTS)
        ag_err_set(&e, AG_ALREADY_EXISTS,
                   "agent '%s' (or its request id) already exists on this hub", a->id);
    else
        client_err(store_err, &e);
    if (aw->creating) {
        a->dead = true;
        if (aw->spawn_done)
            aw->spawn_done(aw->spawn_done_arg, NULL, err);
        else
            aw->h->fx.fail(aw->spawn_call, err);
    }
    struct hub_cmd *c = aw->cmds;
    for (size_t i = 0; c; i++, c = c->next)
        if ((c->type == HUB_CMD_INPUT || c->type == HUB_CMD_KILL || c->type == HUB_CMD_RESUME ||
             c->type == HUB_CMD_DECIDE) &&
            aw->cmd_op[i] != SIZE_MAX)
            answer(aw->h, c, NULL, err);
    /* A wait this write ended, or began, is as it was: its children are asked again (the marks
     * this write made count for nothing, as its CHILD events were not stored). */
    if (aw->wait_over && a->wait)
        hub_team_wait_reset(a->wait);
    aw->wait_check = a->wait != NULL;
    aw->killed_here = aw->child_end = false;
    /* Slots reserved for this write go back; the committed state keeps its own. */
    if (aw->assign_node)
        add_release(aw, aw->assign_node);
    for (size_t i = 0; i < aw->nrelease; i++)
        if (aw->release[i] == a->st.node)
            aw->release[i] = NULL; /* still the committed turn's slot */
    /* A pending agent whose placement was in this write must wait in the queue again. */
    aw->enqueue_pending = !aw->creating &&
                          a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING;
    aw->turn_ended = false;
}

/* Effects that take other locks, after the agent's lock is released. */
static void after_unlock(struct agent_write *aw, bool ok)
{
    struct hub *h = aw->h;
    struct hub_agent *a = aw->a;
    struct hub_sched_decision d[8];
    for (size_t i = 0; i < aw->nrelease; i++) {
        if (!aw->release[i])
            continue;
        size_t k = hub_sched_release(h->sched, aw->release[i], &a->req, d, AG_ARRAY_SIZE(d));
        hub_actor_dispatch(h, d, k);
        while (k == AG_ARRAY_SIZE(d)) { /* a larger reservation may free room for several */
            k = hub_sched_drain(h->sched, d, AG_ARRAY_SIZE(d));
            hub_actor_dispatch(h, d, k);
        }
    }
    if (aw->cancel_node)
        hub_sched_node_unref(h->sched, aw->cancel_node);
    if (aw->enqueue_pending) {
        /* The decision, or the queue's entry until it becomes one, holds a pin. */
        hub_agents_pin(&h->agents, a);
        struct hub_node *n = hub_sched_place_or_queue(h->sched, &a->req);
        if (n) {
            d[0].agent = a;
            d[0].node = n;
            hub_actor_dispatch(h, d, 1);
        }
    }
    if (ok && aw->reschedule)
        cmd_post(h, a, cmd_new(HUB_CMD_SCHEDULE, NULL));
    /* Teams (hub/team.h, through h->fx): other agents hear of this write only now. */
    if (aw->child_end)
        h->fx.team_child_ended(h, a->parent_id, &aw->end);
    if (aw->wait_check)
        h->fx.team_check_wait(h, a);
    if (aw->killed_here)
        h->fx.team_kill_children(h, a->id);
    /* The node may have gone while this write was in flight, after its loss was handled. Its
     * loss's own reason: when that handling interrupts the turn too, the two agree (only the
     * first counts), so the dead-letter streak sees one reason. */
    char why[HUB_REASON_MAX];
    if (ok && aw->assign_node && !hub_sched_node_alive(h->sched, aw->assign_node, why, sizeof(why)))
        hub_actor_post_interrupt(h, a, aw->assign_node, a->st.epoch, why, atomic_load(&h->closing));
}

static void ack_batches(struct agent_write *aw, const struct ag_err *err)
{
    struct hub_cmd *c = aw->cmds;
    for (size_t i = 0; c; i++, c = c->next) {
        if (c->type != HUB_CMD_EVENTS)
            continue;
        uint64_t *seqs = ag_arena_alloc(&aw->arena, (c->n ? c->n : 1) * sizeof(*seqs));
        for (size_t k = 0; k < c->n; k++) {
            size_t op = aw->ev_ops[i] ? aw->ev_ops[i][k] : SIZE_MAX;
            seqs[k] = !err && op != SIZE_MAX ? aw->ops[op].u.event.seq : 0;
        }
        aw->h->fx.events_stored(aw->h, c->batch, c->first, seqs, c->n, err);
    }
}

static void write_finish(struct agent_write *aw, bool ok, const struct ag_err *err)
{
    struct hub *h = aw->h;
    after_unlock(aw, ok);
    ack_batches(aw, ok ? NULL : err);
    while (aw->cmds) {
        struct hub_cmd *c = aw->cmds;
        aw->cmds = c->next;
        cmd_free(h, c);
    }
    if (aw->spawn_call)
        h->fx.release(aw->spawn_call);
    hub_team_wait_free(aw->new_wait);
    hub_approval_free(aw->new_approval);
    ag_arena_release(&aw->arena);
    free(aw);
}

/* An import keeps the exported seqs only because the store numbers a new agent's events 1..n in
 * the order appended (store.h): check it did. If not, the rows are stored but the agent is not
 * served (the caller gets INTERNAL; the hub's log says which seq). */
static int import_seqs_check(struct agent_write *aw, struct ag_err *err)
{
    uint64_t want = 1;
    for (size_t i = 0; i < aw->nops; i++) {
        const struct hub_store_op *op = &aw->ops[i];
        if (op->type != HUB_STORE_EVENT_APPEND)
            continue;
        if (op->u.event.seq != want)
            return ag_err_set(
                err, AG_INTERNAL, "the store gave imported agent '%s' seq %llu for its event %llu",
                aw->a->id, (unsigned long long)op->u.event.seq, (unsigned long long)want);
        want++;
    }
    return 0;
}

static void write_done(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct agent_write *aw = w->arg;
    struct hub *h = aw->h;
    struct hub_agent *a = aw->a;
    struct ag_err seq_err = AG_ERR_INIT;
    if (rc == 0 && aw->importing && import_seqs_check(aw, &seq_err) != 0) {
        rc = -1;
        err = &seq_err;
    }
    bool created_dead = aw->creating && rc != 0;
    pthread_mutex_lock(&a->lock);
    if (rc == 0)
        on_committed(aw);
    else
        on_failed(aw, err);
    a->writing = false;
    a->active_ms = ag_now_mono_ms();
    pthread_mutex_unlock(&a->lock);
    write_finish(aw, rc == 0, err);
    if (created_dead) {
        /* Never published. A retry that found it by request id may still post to it, so it is
         * kept (answering such retries with UNAVAILABLE) until the hub is freed. */
        if (a->req_key)
            hub_agents_forget_request(&h->agents, a->req_key);
        hub_agents_bury(&h->agents, a);
    }
    kick(h, a);
    hub_agents_unpin(&h->agents, a);
}

void hub_actor_post_input(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                          const char *text)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_INPUT, call);
    c->text = ag_xstrdup(text);
    cmd_post(h, a, c);
}

void hub_actor_post_input_from(struct hub *h, struct hub_agent *a, const char *text, const char *by,
                               hub_actor_done_fn *done, void *arg)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_INPUT, NULL);
    c->text = ag_xstrdup(text);
    c->by = ag_xstrdup(by);
    c->done = done;
    c->done_arg = arg;
    cmd_post(h, a, c);
}

void hub_actor_post_child(struct hub *h, struct hub_agent *a, const struct hub_team_end *e,
                          bool log)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_CHILD, NULL);
    snprintf(c->child_id, sizeof(c->child_id), "%s", e->child_id);
    c->child_state = e->state;
    c->child_seq = e->seq;
    c->text = ag_xstrdup(e->text ? e->text : "");
    c->settled = e->settled;
    c->log = log;
    cmd_post(h, a, c);
}

void hub_actor_post_kill(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                         const char *reason)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_KILL, call);
    c->text = ag_xstrdup(reason ? reason : "");
    cmd_post(h, a, c);
}

void hub_actor_post_hold(struct hub *h, struct hub_agent *a, hub_actor_done_fn *done, void *arg)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_HOLD, NULL);
    c->done = done;
    c->done_arg = arg;
    cmd_post(h, a, c);
}

void hub_actor_unhold(struct hub *h, struct hub_agent *a)
{
    pthread_mutex_lock(&a->lock);
    a->writing = false;
    pthread_mutex_unlock(&a->lock);
    kick(h, a);
}

void hub_actor_post_resume(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                           uint32_t max_iter)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_RESUME, call);
    c->max_iter = max_iter;
    cmd_post(h, a, c);
}

void hub_actor_post_events(struct hub *h, struct hub_agent *a, struct hub_node *node,
                           struct hub_ev_batch *b, size_t first,
                           const Agentry__V1__NodeEvent *const *events, size_t n)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_EVENTS, NULL);
    c->node = node;
    hub_sched_node_ref(h->sched, node);
    c->batch = b;
    c->first = first;
    c->events = events;
    c->n = n;
    cmd_post(h, a, c);
}

void hub_actor_post_interrupt(struct hub *h, struct hub_agent *a, struct hub_node *node,
                              uint64_t epoch, const char *reason, bool graceful)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_INTERRUPT, NULL);
    c->node = node;
    if (node)
        hub_sched_node_ref(h->sched, node);
    c->epoch = epoch;
    c->graceful = graceful;
    c->text = reason ? ag_xstrdup(reason) : NULL;
    cmd_post(h, a, c);
}

void hub_actor_post_decide(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                           const char *call_id, bool approve, const char *args, const char *reason)
{
    struct hub_cmd *c = cmd_new(HUB_CMD_DECIDE, call);
    c->decision = approve ? HUB_APPROVAL_APPROVED : HUB_APPROVAL_DENIED;
    c->call_id = ag_xstrdup(call_id);
    c->args = args && *args ? ag_xstrdup(args) : NULL;
    c->text = reason && *reason ? ag_xstrdup(reason) : NULL;
    cmd_post(h, a, c);
}

void hub_actor_watch_approval(struct hub *h, struct hub_agent *a)
{
    pthread_mutex_lock(&a->lock);
    if (a->approval && !a->approval_token && !atomic_load(&h->closing))
        start_approval_timer(h, a);
    pthread_mutex_unlock(&a->lock);
}

void hub_actor_post_schedule(struct hub *h, struct hub_agent *a)
{
    cmd_post(h, a, cmd_new(HUB_CMD_SCHEDULE, NULL));
}

void hub_actor_dispatch(struct hub *h, struct hub_sched_decision *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct hub_cmd *c = cmd_new(HUB_CMD_ASSIGN, NULL);
        c->node = d[i].node;
        cmd_post(h, d[i].agent, c);
        hub_agents_unpin(&h->agents, d[i].agent); /* the queue entry's: the command holds it now */
    }
}

void hub_actor_drop_mailbox(struct hub *h, struct hub_agent *a)
{
    for (struct ag_qnode *n; (n = ag_queue_pop(&a->mailbox));)
        cmd_free(h, AG_QUEUE_ENTRY(n, struct hub_cmd, qn));
}
