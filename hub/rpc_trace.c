/* hub/rpc_trace.c - Trace: replay the stored log from from_seq, then follow live events.
 *
 * No gap, no duplicate: a follower only ever sends its cursor's seq and then advances it, under
 * the agent's lock. Events up to agent->last_seq are durable; an event newer than the cursor is
 * taken from the agent's ring of recent events (the same packed bytes for every follower) or, if
 * it has left the ring, read back from the store. Registration happens before the first read,
 * so an event committed between the replay and the switch to live is still seen: the cursor
 * simply reaches it. The pump sends at most TRACE_WINDOW messages ahead of the client; the rest
 * waits in the log, not in memory. A follow ends (OK) once the cursor is past the KILLED event,
 * the last event an agent ever has.
 *
 * A follower's events go to one of two kinds of reader: a Trace call, or an in-process sink
 * (the dashboard's Server-Sent Events, hub/web_sse.c), which gets the same packed bytes under
 * the same window, counted as delivered until it says it consumed them. The in-process reader
 * saves the dashboard a loopback HTTP/2 hop per event; who may read is checked before it
 * subscribes, by a Trace call with the caller's credentials (web_sse.c), so the grant is
 * gRPC's. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/rpc_trace.h"
#include "hub/store.h"
#include "hub/trace_ring.h"

#define TRACE_WINDOW HUB_RPC_TRACE_WINDOW

/* A follower is a reader with a cursor (next_seq): it sends next_seq from the agent's ring if
 * still there, else reads it from the store; it never queues events of its own, so a slow
 * follower costs nothing but its cursor. Fields guarded by the agent's lock. */
struct hub_follower {
    struct ag_list link;                   /* on agent->followers while linked */
    struct rpc_call *call;                 /* the Trace call, or NULL for an in-process sink */
    const struct hub_rpc_trace_sink *sink; /* an in-process follower's reader */
    unsigned delivered;                    /* in-process: handed to the sink, not yet consumed */
    struct hub *h;
    struct hub_agent *agent;
    uint64_t next_seq;
    bool follow;
    bool reading;   /* a store read is in flight (holds a call reference, or the follower) */
    bool closed;    /* the reader has had its end */
    bool call_over; /* the reader left (on_close, unsubscribe): the pin goes with the last of it
                       and the read, and an in-process follower is freed with it */
};

static void unlink_locked(struct hub_follower *f)
{
    struct hub_agent *a = f->agent;
    if (!ag_list_linked(&f->link))
        return;
    ag_list_remove(&f->link);
    if (ag_list_empty(
            &a->followers)) /* the ring only ever serves followers: an idle agent keeps none */
        hub_trace_ring_clear(&a->ring);
}

static void finish_locked(struct hub_follower *f, enum ag_code code, const char *msg)
{
    unlink_locked(f);
    f->closed = true;
    if (f->call)
        rpc_call_finish(f->call, code, msg);
    else
        f->sink->end(f->sink->ctx, code, msg);
}

static unsigned pending_locked(const struct hub_follower *f)
{
    return f->call ? rpc_call_send_pending(f->call) : f->delivered;
}

static bool send_slice(struct hub_follower *f, grpc_slice s)
{
    if (!f->call) {
        f->sink->event(f->sink->ctx, s);
        f->delivered++;
        f->next_seq++;
        return true;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    struct ag_err err = AG_ERR_INIT;
    if (rpc_call_send_take(f->call, bb, &err) != 0) {
        f->closed = true;
        unlink_locked(f);
        return false;
    }
    f->next_seq++;
    return true;
}

static void on_read(void *arg, const struct hub_store_event *rows, size_t n,
                    const struct ag_err *err);

static void pump_locked(struct hub_follower *f)
{
    struct hub_agent *a = f->agent;
    while (!f->closed && !f->reading) {
        unsigned pending = pending_locked(f);
        if (pending >= TRACE_WINDOW)
            return; /* on_sent resumes */
        if (f->next_seq > a->last_seq) {
            /* KILLED is the agent's last event (types.proto): following it any further would
             * wait forever. */
            if (!f->follow || a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED)
                finish_locked(f, AG_OK, NULL);
            return; /* parked until the next commit wakes us */
        }
        grpc_slice s;
        if (hub_trace_ring_get(&a->ring, f->next_seq, &s)) {
            if (!send_slice(f, s))
                return;
            continue;
        }
        struct ag_err err = AG_ERR_INIT;
        f->reading = true;
        if (f->call)
            rpc_call_ref(f->call);
        if (hub_store_read_events(f->h->store, a->id, f->next_seq, a->last_seq,
                                  TRACE_WINDOW - pending, on_read, f, &err) != 0) {
            f->reading = false;
            if (f->call)
                rpc_call_unref(f->call);
            finish_locked(f, err.code, err.msg);
        }
        return;
    }
}

static void on_read(void *arg, const struct hub_store_event *rows, size_t n,
                    const struct ag_err *err)
{
    struct hub_follower *f = arg;
    struct hub_agent *a = f->agent;
    struct rpc_call *call = f->call;
    pthread_mutex_lock(&a->lock);
    f->reading = false;
    if (!f->closed && err) {
        finish_locked(f, err->code, err->msg);
    } else if (!f->closed) {
        /* Everything up to last_seq is committed, so the rows must be exactly the next seqs. */
        bool gap = n == 0;
        for (size_t i = 0; i < n && !f->closed; i++) {
            if (rows[i].seq != f->next_seq) {
                gap = true;
                break;
            }
            if (!send_slice(f, hub_trace_ring_pack(a->id, &rows[i])))
                break;
        }
        if (gap && !f->closed) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "agent '%s' log has no event at seq %" PRIu64 "; the store may be damaged",
                     a->id, f->next_seq);
            ag_log_error("trace.gap", "agent=%s seq=%" PRIu64, a->id, f->next_seq);
            finish_locked(f, AG_DATA_LOSS, msg);
        }
        pump_locked(f);
    }
    bool unpin = f->call_over;
    struct hub *h = f->h;
    pthread_mutex_unlock(&a->lock);
    if (unpin) /* the reader left while the read was out */
        hub_agents_unpin(&h->agents, a);
    if (call)
        rpc_call_unref(call);
    else if (unpin)
        free(f);
}

/* Start f on its agent (pinned, lock not held): the shutdown check, then the first pump. */
static void start(struct hub_follower *f)
{
    struct hub_agent *a = f->agent;
    pthread_mutex_lock(&a->lock);
    if (atomic_load(&f->h->closing)) {
        finish_locked(f, AG_UNAVAILABLE, "the hub is shutting down; resume from your last seq");
    } else {
        ag_list_insert_head(&a->followers, &f->link);
        pump_locked(f);
    }
    pthread_mutex_unlock(&a->lock);
}

static void on_trace(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__TraceRequest *in = rpc_pb_unpack(req, &agentry__v1__trace_request__descriptor,
                                                  rpc_call_arena(c), &err);
    /* Pinned until the call is over and no read is in flight (on_trace_close, on_read). */
    struct hub_agent *a = in ? hub_authn_get_agent(h, c, in->agent_id, &err) : NULL;
    if (!a) {
        rpc_call_fail(c, &err);
        return;
    }
    struct hub_follower *f = rpc_call_state(c);
    f->call = c;
    f->h = h;
    ag_list_init(&f->link); /* before agent: on_trace_close looks at the link once agent is set */
    f->agent = a;
    f->next_seq = in->from_seq ? in->from_seq : 1;
    f->follow = in->follow;
    start(f);
}

static void on_trace_sent(struct rpc_call *c)
{
    struct hub_follower *f = rpc_call_state(c);
    if (!f->agent)
        return;
    pthread_mutex_lock(&f->agent->lock);
    pump_locked(f);
    pthread_mutex_unlock(&f->agent->lock);
}

static void on_trace_close(struct rpc_call *c, bool cancelled)
{
    struct hub_follower *f = rpc_call_state(c);
    struct hub_agent *a = f->agent;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    f->closed = true;
    f->call_over = true;
    unlink_locked(f);
    bool unpin = !f->reading;
    pthread_mutex_unlock(&a->lock);
    if (unpin)
        hub_agents_unpin(&f->h->agents, a);
}

void hub_rpc_trace_wake(struct hub *h, struct hub_agent *a,
                        const struct hub_store_event *const *evs, size_t n)
{
    (void)h;
    /* The ring only saves followers a store read; with none there is nobody to save. */
    for (size_t i = 0; i < n && !ag_list_empty(&a->followers); i++)
        hub_trace_ring_put(&a->ring, evs[i]->seq, hub_trace_ring_pack(a->id, evs[i]));
    struct ag_list *pos, *tmp;
    AG_LIST_FOREACH_SAFE(pos, tmp, &a->followers) /* pump may unlink the follower at pos */
    pump_locked(AG_LIST_ENTRY(pos, struct hub_follower, link));
}

void hub_rpc_trace_fail_all(struct hub_agent *a, const struct ag_err *err)
{
    struct ag_list *first;
    while ((first = ag_list_first(&a->followers)))
        finish_locked(AG_LIST_ENTRY(first, struct hub_follower, link), err->code, err->msg);
}

struct hub_follower *hub_rpc_trace_subscribe(struct hub *h, const char *agent_id, uint64_t from_seq,
                                             bool follow, const struct hub_rpc_trace_sink *sink,
                                             struct ag_err *err)
{
    struct hub_agent *a = hub_loader_get(h, agent_id, err);
    if (!a)
        return NULL;
    struct hub_follower *f = ag_xcalloc(1, sizeof(*f));
    f->sink = sink;
    f->h = h;
    ag_list_init(&f->link);
    f->agent = a;
    f->next_seq = from_seq ? from_seq : 1;
    f->follow = follow;
    start(f);
    return f;
}

void hub_rpc_trace_consumed(struct hub_follower *f, unsigned n)
{
    pthread_mutex_lock(&f->agent->lock);
    f->delivered -= n < f->delivered ? n : f->delivered;
    pump_locked(f);
    pthread_mutex_unlock(&f->agent->lock);
}

void hub_rpc_trace_unsubscribe(struct hub_follower *f)
{
    if (!f)
        return;
    struct hub_agent *a = f->agent;
    pthread_mutex_lock(&a->lock);
    f->closed = true; /* no callback from here on */
    f->call_over = true;
    unlink_locked(f);
    bool last = !f->reading; /* else on_read unpins and frees */
    pthread_mutex_unlock(&a->lock);
    if (last) {
        hub_agents_unpin(&f->h->agents, a);
        free(f);
    }
}

void hub_rpc_trace_count(const struct hub_agent *a, size_t *calls, size_t *in_process)
{
    const struct ag_list *pos;
    AG_LIST_FOREACH(pos, &a->followers)
    {
        const struct hub_follower *f = AG_LIST_ENTRY(pos, const struct hub_follower, link);
        (*(f->call ? calls : in_process))++;
    }
}

const struct rpc_method hub_rpc_trace_methods[] = {
    {.path = "/agentry.v1.AgentHub/Trace",
     .kind = RPC_SERVER_STREAM,
     .preposted = 16,
     .state_size = sizeof(struct hub_follower),
     .on_call = on_trace,
     .on_sent = on_trace_sent,
     .on_close = on_trace_close},
};
const size_t hub_rpc_trace_nmethods = AG_ARRAY_SIZE(hub_rpc_trace_methods);
