/* hub/rpc_transfer.c - ExportAgent and ImportAgent (hub.proto): move an agent's whole state
 * between hubs.
 *
 * Export (CQ thread, then the store's reader thread): under the agent's lock, refuse an agent in
 * a turn and copy its committed state and last_seq into the call's arena; then read events
 * 1..last_seq from the store and answer from the reader's callback. The events up to last_seq are
 * durable and never change, so state and events form one snapshot even if the agent moves on
 * while they are read.
 *
 * Import (CQ thread): everything the export must satisfy is checked here, before anything is
 * queued; then the actor stores the agent in one write (hub_actor_import) and answers once it is
 * durable. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/limits.h"
#include "hub/loader.h"
#include "hub/rpc_transfer.h"
#include "hub/store.h"
#include "hub/usage.h"
#include "hub/validate.h"

#define EXPORT_FORMAT_VERSION 1
#define EXPORT_MAX_REQUEST_ID 128 /* SpawnRequest.request_id */
#define DEFAULT_MAX_MESSAGE (4u << 20)

/* What an export is in between its two threads: the answer being built (in the call's arena). */
struct export_call {
    struct hub *h;
    struct rpc_call *call;
    Agentry__V1__AgentExport *x;
    struct hub_agent *a; /* pinned until export_read: x->spec is its own */
};

static size_t request_limit(const struct hub *h)
{
    return h->opts.max_message_bytes ? h->opts.max_message_bytes : DEFAULT_MAX_MESSAGE;
}

static bool between_turns(int state)
{
    return state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
           state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED ||
           state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED ||
           state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED;
}

static Agentry__V1__Usage *usage_pb(struct ag_arena *ar, const struct hub_usage *u)
{
    Agentry__V1__Usage *m = ag_arena_alloc(ar, sizeof(*m));
    hub_usage_to_pb(u, m);
    return m;
}

/* The agent's committed state, copied into the arena. Agent lock held. */
static void export_fill(struct ag_arena *ar, const struct hub_agent *a, Agentry__V1__AgentExport *x)
{
    const struct hub_agent_st *st = &a->st;
    x->format_version = EXPORT_FORMAT_VERSION;
    x->agent_id = ag_arena_strdup(ar, a->id);
    x->spec = a->spec; /* immutable, and the export holds a pin on the agent */
    x->request_id = ag_arena_strdup(ar, a->request_id ? a->request_id : "");
    x->namespace_ = ag_arena_strdup(ar, a->ns);
    x->created_unix_nano = a->created_ns;
    x->state = (Agentry__V1__AgentState)st->state;
    x->node_id = ag_arena_strdup(ar, st->node_id);
    x->epoch = st->epoch;
    if (st->ckpt_len) {
        x->checkpoint.data = ag_arena_alloc(ar, st->ckpt_len);
        memcpy(x->checkpoint.data, st->ckpt, st->ckpt_len);
        x->checkpoint.len = st->ckpt_len;
    }
    x->input_seq = st->input_seq;
    x->usage = usage_pb(ar, &st->usage);
    x->turn_usage = usage_pb(ar, &st->turn_usage);
    x->last_output = ag_arena_strdup(ar, st->last_output ? st->last_output : "");
    x->last_error = ag_arena_strdup(ar, st->last_error ? st->last_error : "");
    x->turn_attempt = st->attempt;
    x->streak = st->streak;
    x->streak_reason = ag_arena_strdup(ar, st->streak_reason);
    x->spawn_input_seq = a->spawn_input_seq;
    x->last_seq = a->last_seq;
}

/* Reader thread: the events 1..last_seq, then the answer. */
static void export_read(void *arg, const struct hub_store_event *rows, size_t n,
                        const struct ag_err *err)
{
    struct export_call *ec = arg;
    struct rpc_call *c = ec->call;
    Agentry__V1__AgentExport *x = ec->x;
    struct ag_arena *ar = rpc_call_arena(c);
    struct ag_err e = AG_ERR_INIT;
    if (err) {
        rpc_call_fail(c, err);
        goto out;
    }
    if (n != x->last_seq) {
        ag_err_set(&e, AG_DATA_LOSS,
                   "agent '%s' has %zu stored events where %" PRIu64 " were expected; the store "
                   "may be damaged",
                   x->agent_id, n, x->last_seq);
        rpc_call_fail(c, &e);
        goto out;
    }
    x->events = ag_arena_alloc(ar, (n ? n : 1) * sizeof(*x->events));
    for (size_t i = 0; i < n; i++) {
        Agentry__V1__TraceEvent *ev = ag_arena_alloc(ar, sizeof(*ev));
        agentry__v1__trace_event__init(ev);
        ev->agent_id = x->agent_id;
        ev->seq = rows[i].seq;
        ev->time_unix_nano = rows[i].time_ns;
        ev->kind = (Agentry__V1__EventKind)rows[i].kind;
        ev->payload = ag_arena_strndup(ar, rows[i].payload, rows[i].payload_len);
        ev->node_id = ag_arena_strdup(ar, rows[i].node_id ? rows[i].node_id : "");
        x->events[i] = ev;
    }
    x->n_events = n;
    size_t size = protobuf_c_message_get_packed_size(&x->base);
    if (size > request_limit(ec->h)) {
        ag_err_set(&e, AG_RESOURCE_EXHAUSTED,
                   "agent '%s' exports to %zu bytes, over this hub's request limit of %zu bytes "
                   "(agent-hub --max-message-bytes), so no hub with that limit could import it",
                   x->agent_id, size, request_limit(ec->h));
        rpc_call_fail(c, &e);
        goto out;
    }
    rpc_call_reply_take(c, rpc_pb_pack(&x->base));
out:
    hub_agents_unpin(&ec->h->agents, ec->a);
    rpc_call_unref(c);
}

static void on_export(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    struct ag_arena *ar = rpc_call_arena(c);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__ExportAgentRequest *in = rpc_pb_unpack(
        req, &agentry__v1__export_agent_request__descriptor, ar, &err);
    struct hub_agent *a = in ? hub_authn_get_agent(h, c, in->agent_id, &err) : NULL;
    if (!a) {
        rpc_call_fail(c, &err);
        return;
    }
    struct export_call *ec = rpc_call_state(c);
    ec->h = h;
    ec->call = c;
    ec->a = a;
    ec->x = ag_arena_alloc(ar, sizeof(*ec->x));
    agentry__v1__agent_export__init(ec->x);
    pthread_mutex_lock(&a->lock);
    int state = a->st.state;
    if (between_turns(state))
        export_fill(ar, a, ec->x);
    pthread_mutex_unlock(&a->lock);
    if (!between_turns(state)) {
        ag_err_set(&err, AG_FAILED_PRECONDITION,
                   "agent '%s' is %s: a turn is under way; stop or wait for the turn to end", a->id,
                   hub_agent_state_name(state));
        rpc_call_fail(c, &err);
        hub_agents_unpin(&h->agents, a);
        return;
    }
    rpc_call_ref(c); /* the reader's, until export_read answers */
    if (hub_store_read_events(h->store, a->id, 1, ec->x->last_seq, ec->x->last_seq, export_read, ec,
                              &err) != 0) {
        rpc_call_fail(c, &err);
        hub_agents_unpin(&h->agents, a);
        rpc_call_unref(c);
    }
}

/* --- import --------------------------------------------------------------------------------- */

static int check_event(const Agentry__V1__TraceEvent *ev, uint64_t want, uint64_t last,
                       struct ag_err *err)
{
    if (ev->seq != want)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "event %" PRIu64 " has seq %" PRIu64 "; events must be seqs 1..%" PRIu64
                          " in order",
                          want, ev->seq, last);
    if (ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED ||
        !protobuf_c_enum_descriptor_get_value(&agentry__v1__event_kind__descriptor, ev->kind))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "event %" PRIu64 " has unknown kind %d", want,
                          (int)ev->kind);
    if ((want == 1) != (ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_SPAWNED))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "event %" PRIu64 ": an agent's log starts with its one SPAWNED event",
                          want);
    if (ev->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED && want != last)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "event %" PRIu64 " is KILLED but not the last event", want);
    size_t len = ev->payload ? strlen(ev->payload) : 0;
    if (len > HUB_MAX_PAYLOAD)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "event %" PRIu64 "'s payload is %zu bytes, over the limit of %u", want,
                          len, HUB_MAX_PAYLOAD);
    if (ev->node_id && strlen(ev->node_id) > HUB_NODE_ID_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "event %" PRIu64 "'s node_id is over %d bytes",
                          want, HUB_NODE_ID_MAX);
    if (hub_validate_utf8("payload", ev->payload, err) != 0 ||
        hub_validate_utf8("node_id", ev->node_id, err) != 0) {
        ag_err_prefix(err, "event %" PRIu64, want);
        return -1;
    }
    return 0;
}

static int check_events(const Agentry__V1__AgentExport *x, struct ag_err *err)
{
    if (x->last_seq == 0 || x->n_events != x->last_seq)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "the export holds %zu events but says last_seq %" PRIu64
                          "; is the file truncated?",
                          x->n_events, x->last_seq);
    for (size_t i = 0; i < x->n_events; i++)
        if (check_event(x->events[i], i + 1, x->last_seq, err) != 0)
            return -1;
    bool killed_last = x->events[x->n_events - 1]->kind ==
                       AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED;
    if (killed_last != (x->state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "state and log disagree: a killed agent's last event, and only a killed "
                          "agent's, is KILLED");
    if (x->input_seq > x->last_seq || x->spawn_input_seq > x->last_seq)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "input_seq or spawn_input_seq is past last_seq %" PRIu64, x->last_seq);
    return 0;
}

/* The agent's own fields. */
static int check_agent(const Agentry__V1__AgentExport *x, struct ag_arena *ar, struct ag_err *err)
{
    if (x->format_version != EXPORT_FORMAT_VERSION)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "export format_version %u is not one this hub reads (%d)",
                          x->format_version, EXPORT_FORMAT_VERSION);
    if (!x->agent_id || !ag_id_valid(x->agent_id))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "agent_id '%.64s' is not an agent id",
                          x->agent_id ? x->agent_id : "");
    if (!x->spec)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "the export has no spec");
    if (hub_validate_spec(x->spec, err) != 0 || hub_validate_namespace(x->namespace_, err) != 0)
        return -1;
    if (!between_turns(x->state))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "state %d is not one an export has (idle, yielded, failed or killed)",
                          (int)x->state);
    if (strlen(x->request_id) > EXPORT_MAX_REQUEST_ID || strlen(x->node_id) > HUB_NODE_ID_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "request_id or node_id is too long");
    if (hub_validate_utf8("request_id", x->request_id, err) != 0 ||
        hub_validate_utf8("node_id", x->node_id, err) != 0 ||
        hub_validate_utf8("last_output", x->last_output, err) != 0 ||
        hub_validate_utf8("last_error", x->last_error, err) != 0 ||
        hub_validate_utf8("streak_reason", x->streak_reason, err) != 0)
        return -1;
    if (x->checkpoint.len && !rpc_pb_unpack_bytes(x->checkpoint.data, x->checkpoint.len,
                                                  &agentry__v1__checkpoint__descriptor, ar, err)) {
        ag_err_prefix(err, "the export's checkpoint does not decode");
        return -1;
    }
    return check_events(x, err);
}

static void on_import(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    struct ag_arena *ar = rpc_call_arena(c);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__ImportAgentRequest *in = rpc_pb_unpack(
        req, &agentry__v1__import_agent_request__descriptor, ar, &err);
    if (!in) {
        rpc_call_fail(c, &err);
        return;
    }
    if (atomic_load(&h->closing)) {
        rpc_call_finish(c, AG_UNAVAILABLE,
                        "the hub is shutting down; retry on another hub or later");
        return;
    }
    Agentry__V1__AgentExport *x = in->agent;
    int rc = x ? check_agent(x, ar, &err)
               : ag_err_set(&err, AG_INVALID_ARGUMENT, "the request has no agent to import");
    if (rc == 0)
        rc = hub_authn_may_create(c, x->namespace_, &err);
    if (rc == 0)
        hub_authn_audit(c, x->agent_id, *x->namespace_ ? x->namespace_ : "default", true, NULL);
    if (rc == 0) {
        struct ag_err lookup = AG_ERR_INIT;
        struct hub_agent *there = hub_loader_get(h, x->agent_id, &lookup);
        hub_agents_unpin(&h->agents, there);
        if (there)
            rc = ag_err_set(&err, AG_ALREADY_EXISTS, "agent '%s' already exists on this hub",
                            x->agent_id);
        else if (lookup.code != AG_NOT_FOUND)
            rc = (err = lookup, -1);
    }
    if (rc != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    rpc_call_ref(c); /* the actor's, until it answers */
    hub_actor_import(h, c, x);
}

const struct rpc_method hub_rpc_transfer_methods[] = {
    {.path = "/agentry.v1.AgentHub/ExportAgent",
     .kind = RPC_UNARY,
     .state_size = sizeof(struct export_call),
     .on_call = on_export},
    {.path = "/agentry.v1.AgentHub/ImportAgent", .kind = RPC_UNARY, .on_call = on_import},
};
const size_t hub_rpc_transfer_nmethods = AG_ARRAY_SIZE(hub_rpc_transfer_methods);
