/* hub/rpc_assign.c - what an Assignment carries, and the store reads it may need first.
 *
 * The conversation is the agent's log (types.proto, Checkpoint; node.proto, Assignment.steps),
 * so that a turn costs the same whatever the history behind it:
 * - warm: the node process that ended the agent's last turn with a checkpoint keeps the
 *   conversation (it said so in Register.keeps_state). It gets state_epoch and only the running
 *   turn's stored steps (in memory, hub_agent.steps): nothing that grows with history is read,
 *   encoded or sent.
 * - cold: any other node gets the agent's whole log up to its last turn end, read from the store
 *   on its reader thread in chunks, then the running turn's steps and the inputs from memory. The
 *   Assignment goes out once the read is done, if the turn is still the one placed there. An
 *   agent with no turn behind it has no log to read and is sent at once.
 * - an agent whose checkpoint holds its conversation (stored by an older node) gets it and the
 *   steps, as before.
 * A node that was told warm and keeps nothing asks (StateRequest) and gets it cold.
 *
 * Failure: a turn whose history cannot be read (the read queue is full, the store fails) or does
 * not fit an Assignment is interrupted with the reason, so the dead-letter rule (hub/actor.c)
 * bounds its retries; it never waits silently.
 *
 * Threads: hub_rpc_assign runs under the agent's lock (hub_effects.assign); a cold read
 * completes on the store's reader thread, which takes the agent's lock to send; a read that
 * cannot start is reported from the timer thread (no agent lock may be taken under another). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/hub_internal.h"
#include "hub/limits.h"
#include "hub/node.h"
#include "hub/sched.h"
#include "hub/store.h"
#include "hub/usage.h"

#define ASSIGN_READ_CHUNK 1024

/* A cold Assignment waiting for the agent's log. */
struct cold {
    struct hub *h;
    struct hub_agent *a; /* pinned */
    struct hub_node *n;  /* reference held */
    uint64_t epoch;      /* the turn placed on n */
    uint64_t upto;       /* the last seq read: the agent's last turn end when asked */
    struct ag_arena arena;
    Agentry__V1__TraceEvent **evs; /* in arena */
    size_t nevs, cap;
    size_t bytes;
    struct ag_err err; /* why it failed */
};

/* The events a node rebuilds the conversation from (node.proto, Assignment.steps). */
static bool carried(int kind)
{
    switch (kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED: /* an approved call's arguments */
        return true;
    default:
        return false;
    }
}

/* Send a's Assignment for its current turn to n: history (the log up to its last turn end, in
 * seq order) then the running turn's steps, or only the steps with state_epoch. Agent locked. */
static void send_assignment(struct hub *h, struct hub_agent *a, struct hub_node *n,
                            Agentry__V1__TraceEvent *const *history, size_t nhist,
                            uint64_t state_epoch)
{
    struct ag_arena ar;
    char buf[2048];
    ag_arena_init(&ar, buf, sizeof(buf));
    Agentry__V1__Assignment as = AGENTRY__V1__ASSIGNMENT__INIT;
    as.agent_id = a->id;
    as.epoch = a->st.epoch;
    as.spec = a->spec;
    as.max_iterations = a->st.turn_max_iter;
    as.state_epoch = state_epoch;
    /* What the node checks the spec's token and cost budgets against. */
    Agentry__V1__Usage usage;
    hub_usage_to_pb(&a->st.usage, &usage);
    as.usage = &usage;
    if (a->st.ckpt_len)
        as.checkpoint = rpc_pb_unpack_bytes(a->st.ckpt, a->st.ckpt_len,
                                            &agentry__v1__checkpoint__descriptor, &ar, NULL);
    as.inputs = ag_arena_alloc(&ar, (a->ninbox ? a->ninbox : 1) * sizeof(*as.inputs));
    for (size_t i = 0; i < a->ninbox; i++) {
        if (a->inbox[i].seq <= a->st.input_seq)
            continue;
        Agentry__V1__Input *in = ag_arena_alloc(&ar, sizeof(*in));
        agentry__v1__input__init(in);
        in->seq = a->inbox[i].seq;
        in->text = a->inbox[i].text;
        as.inputs[as.n_inputs++] = in;
    }
    uint64_t last = nhist ? history[nhist - 1]->seq : 0;
    as.steps = ag_arena_alloc(&ar, (nhist + a->nsteps + 1) * sizeof(*as.steps));
    for (size_t i = 0; i < nhist; i++)
        as.steps[as.n_steps++] = history[i];
    for (size_t i = 0; i < a->nsteps; i++) {
        if (a->steps[i].seq <= last)
            continue;
        Agentry__V1__TraceEvent *e = ag_arena_alloc(&ar, sizeof(*e));
        agentry__v1__trace_event__init(e);
        e->seq = a->steps[i].seq;
        e->kind = a->steps[i].kind;
        e->payload = a->steps[i].payload;
        as.steps[as.n_steps++] = e;
    }
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_ASSIGN;
    m.assign = &as;
    hub_node_send(n, &m);
    ag_arena_release(&ar);
}

static void cold_free(struct cold *c)
{
    hub_agents_unpin(&c->h->agents, c->a);
    hub_sched_node_unref(c->h->sched, c->n);
    ag_arena_release(&c->arena);
    free(c);
}

/* The history cannot be had: the turn goes elsewhere (or ends, by the dead-letter rule). No
 * lock held. */
static void cold_fail(struct cold *c)
{
    ag_log_warn("assign.history_failed", "agent=%s node=%s epoch=%" PRIu64 " err=%s", c->a->id,
                c->n->id, c->epoch, ag_log_q(c->err.msg));
    if (!atomic_load(&c->h->closing))
        hub_actor_post_interrupt(c->h, c->a, c->n, c->epoch, c->err.msg, false);
    cold_free(c);
}

static void cold_fail_later(void *arg)
{
    cold_fail(arg);
}

/* Reader thread: the read is done; send if the turn is still the one placed on c->n. */
static void cold_send(struct cold *c)
{
    struct hub_agent *a = c->a;
    pthread_mutex_lock(&a->lock);
    bool current = a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING &&
                   a->st.node == c->n && a->st.epoch == c->epoch;
    size_t total = c->bytes + a->steps_bytes + a->inbox_bytes + a->st.ckpt_len;
    bool fits = total <= HUB_MAX_ASSIGN_BYTES;
    if (current && fits)
        send_assignment(c->h, a, c->n, c->evs, c->nevs, 0);
    pthread_mutex_unlock(&a->lock);
    if (current && !fits) {
        ag_err_set(&c->err, AG_RESOURCE_EXHAUSTED,
                   "agent '%s' cannot move to node '%s': its conversation takes %zu bytes, over "
                   "the %u an assignment may carry; it can go on only on the node that keeps it",
                   a->id, c->n->id, total, HUB_MAX_ASSIGN_BYTES);
        cold_fail(c);
        return;
    }
    if (current)
        ag_log_debug("assign.cold", "agent=%s node=%s epoch=%" PRIu64 " events=%zu bytes=%zu",
                     a->id, c->n->id, c->epoch, c->nevs, c->bytes);
    cold_free(c);
}

static int cold_read_from(struct cold *c, uint64_t from, struct ag_err *err);

/* Reader thread: a chunk of the log. */
static void cold_read(void *arg, const struct hub_store_event *rows, size_t n,
                      const struct ag_err *err)
{
    struct cold *c = arg;
    if (!rows) {
        c->err = *err;
        ag_err_prefix(&c->err, "cannot read the history of agent '%s'", c->a->id);
        cold_fail(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!carried(rows[i].kind))
            continue;
        if (c->nevs == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 64;
            Agentry__V1__TraceEvent **evs = ag_arena_alloc(&c->arena, cap * sizeof(*evs));
            if (c->nevs)
                memcpy(evs, c->evs, c->nevs * sizeof(*evs));
            c->evs = evs;
            c->cap = cap;
        }
        Agentry__V1__TraceEvent *e = ag_arena_alloc(&c->arena, sizeof(*e));
        agentry__v1__trace_event__init(e);
        e->seq = rows[i].seq;
        e->kind = rows[i].kind;
        e->payload = ag_arena_strndup(&c->arena, rows[i].payload, rows[i].payload_len);
        c->evs[c->nevs++] = e;
        c->bytes += rows[i].payload_len;
    }
    uint64_t next = n ? rows[n - 1].seq + 1 : c->upto + 1;
    if (n < ASSIGN_READ_CHUNK || next > c->upto || c->bytes > HUB_MAX_ASSIGN_BYTES) {
        cold_send(c);
        return;
    }
    if (cold_read_from(c, next, &c->err) != 0)
        cold_fail(c);
}

static int cold_read_from(struct cold *c, uint64_t from, struct ag_err *err)
{
    if (hub_store_read_events(c->h->store, c->a->id, from, c->upto, ASSIGN_READ_CHUNK, cold_read, c,
                              err) == 0)
        return 0;
    ag_err_prefix(err, "cannot read the history of agent '%s'", c->a->id);
    return -1;
}

void hub_rpc_assign(struct hub *h, struct hub_agent *a, struct hub_node *n)
{
    if (n->keeps_state && a->warm_epoch && a->warm_key == n->process_key) {
        send_assignment(h, a, n, NULL, 0, a->warm_epoch);
        return;
    }
    if (a->ckpt_msgs || a->conv_seq == 0) {
        send_assignment(h, a, n, NULL, 0, 0);
        return;
    }
    struct cold *c = ag_xcalloc(1, sizeof(*c));
    c->h = h;
    c->a = a;
    c->n = n;
    hub_agents_pin(&h->agents, a);
    hub_sched_node_ref(h->sched, n);
    c->epoch = a->st.epoch;
    c->upto = a->conv_seq;
    ag_arena_init(&c->arena, NULL, 0);
    if (cold_read_from(c, 1, &c->err) != 0)
        ag_timers_add(h->timers, 0, cold_fail_later, c);
}

void hub_rpc_assign_state_request(struct hub *h, struct hub_node *n,
                                  const Agentry__V1__StateRequest *r)
{
    struct hub_agent *a = r->agent_id ? hub_agents_find(&h->agents, r->agent_id) : NULL;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING && a->st.node == n &&
        a->st.epoch == r->epoch) {
        ag_log_info("assign.state_requested", "agent=%s node=%s epoch=%" PRIu64, a->id, n->id,
                    r->epoch);
        a->warm_key = a->warm_epoch = 0; /* that node keeps nothing for it now */
        hub_rpc_assign(h, a, n);
    }
    pthread_mutex_unlock(&a->lock);
    hub_agents_unpin(&h->agents, a);
}
