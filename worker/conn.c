/* worker/conn.c - the node's one stream to the hub (NodeService.Connect), and its lifecycle.
 *
 * The connection thread (wk_node_run) loops: open the stream, send Register, wait for Registered
 * within the handshake deadline, then serve until the stream ends; then cancel every run (the hub
 * places them elsewhere) and reconnect after a jittered exponential backoff, so a fleet does not
 * reconnect in lockstep.
 *
 * Sending: events emitted by agent loops (any pool thread) join an outbox; whoever finds no send
 * in flight packs the outbox into one EventBatch and starts the send (gRPC allows starting
 * batches from any thread), so events batch up exactly when the stream is busy. A batch is capped
 * by count and by bytes (CONN_BATCH_BYTES; an event bigger than that goes alone): the hub ends a
 * stream whose message is over its limit, which would interrupt every agent on the node. The runs
 * themselves never emit an event over the hub's limits (Registered tells them; run_event.c). A
 * batch stays unacked until the hub's EventAck says it is durable; then the completions of its
 * events run (a run may be parked on one). The outbox and the unacked batches are bounded in bytes
 * (worker/outbox.h): when the outbox is full, on_room parks the runs until a send or an ack makes
 * room; when the unacked batches are, nothing more is sent until an ack comes. A lost stream
 * fails every pending completion and wakes every parked run, after cancelling the runs.
 * Workspaces: after Registered the node lists its workspaces (on the work pool) and sends their
 * agent ids; the hub answers with a Forget of the deleted ones, as it sends one on every
 * DeleteAgent. A Forget's removals run on the work pool too (wk_runner_forget), never here.
 * Hub tool calls (worker/hub_call.h) go out as HubToolCalls queued beside the control messages;
 * their HubToolResults go to the link, and a lost stream fails the calls still waiting.
 *
 * Registration: Register carries the models and tools this node offers (the hub places an agent
 * only where both are), a per-process instance id, and the version with the build's git revision
 * (AGENTRY_VERSION_GIT, e.g. "0.1.0+1a2b3c4", also in the etcd record). A refusal that retrying
 * cannot fix (the id is taken by a live node, the hub finds the registration invalid) ends
 * wk_node_run with the hub's message instead of reconnecting forever.
 *
 * etcd (worker/registry.h), with --etcd: the registry keeps the node's key on its own threads.
 * Without --hub, the address to dial is asked of the registry before each connect (resolve_hub:
 * a new channel when the leader's address changed) and a new leader ends the current stream the
 * usual way (stream_must_end), then the node reconnects at once. A registry that gives up (the
 * node id is held by another live process) ends wk_node_run like a final refusal. wk_node_stop
 * revokes the lease before the half-close.
 *
 * Readiness (opts.health, grpc.health.v1): SERVING from Registered until the stream ends, except
 * while the hub says the node is draining (NodeState); NOT_SERVING from wk_node_stop on.
 *
 * The stream is one asynchronous call (common/rpc/client.h, rpc_async_*) on the connection
 * thread's completion queue: the status batch stays outstanding for the stream's life, one send
 * and one read at a time, and `outstanding` counts the batches so the stream ends only when all
 * are back.
 *
 * Threads and locks: `lock` guards the outbox (with its unacked list and parked runs), the
 * stream's call and the flags; completions are handled on the connection thread only. emit() comes
 * with a run's lock held, so under `lock` nothing calls into a run: event completions and
 * wake-ups are collected under it and run on the connection thread after letting go. */
#include <cjson/cJSON.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agentry/v1/node.pb-c.h"
#include "agentry_version.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rpc/client.h"
#include "common/rpc/health.h"
#include "common/rpc/pb.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "worker/config.h"
#include "worker/hub_call.h"
#include "worker/metrics.h"
#include "worker/model.h"
#include "worker/node.h"
#include "worker/outbox.h"
#include "worker/price.h"
#include "worker/registry.h"
#include "worker/runner.h"
#include "worker/sandbox.h"
#include "worker/tool.h"
#include "worker/workspace.h"

#define CONN_MAX_BATCH 1024
#define CONN_MAX_ADDRESS 256 /* the hub's limit on Register.address (node.proto) */
/* Events packed into one batch, unless a single event is bigger (it then goes alone). */
#define CONN_BATCH_BYTES (1u << 20)
/* Bytes of a NodeMessage around its events (tags, lengths, batch id), with room to spare. */
#define CONN_BATCH_OVERHEAD 128
/* The hub's limits when an old hub does not say (Registered's fields were added later). */
#define CONN_DEFAULT_MAX_MESSAGE (4u << 20)
#define CONN_DEFAULT_MAX_PAYLOAD (3u << 20)
/* What the node accepts from its hub: an Assignment carries a checkpoint (up to the hub's node
 * message limit) plus waiting inputs. The hub bounds both; this only guards the node's memory. */
#define CONN_MAX_RECV (128 << 20)
#define CONN_METHOD "/agentry.v1.NodeService/Connect"
#define CONN_WORKSPACES_PAGE 1000 /* agent ids per Workspaces message (node.proto) */

/* Completion-queue tags: only their distinct addresses matter. */
static char tag_send, tag_recv, tag_status;

struct wk_node {
    struct wk_node_opts o;
    char *node_id;
    char instance_id[33]; /* Register.instance_id, and in the etcd record */
    char *address;        /* Register.address */
    /* etcd membership (NULL without --etcd); with o.hub NULL it also names the hub to dial. */
    struct wk_registry *reg;
    int64_t started_ns;      /* when wk_node_new ran: Register.started_ns */
    grpc_slice register_msg; /* the packed NodeMessage{register}: the same on every stream */
    struct ag_timers *timers;
    struct wk_runner *runner;
    struct wk_sandbox *sandbox; /* owned; read-only after wk_node_new */
    struct wk_hub_link *link;   /* hub tool calls of the runs (worker/hub_call.h) */
    bool metrics;               /* this node serves the process's metrics (worker/metrics.h) */
    int root_lock;              /* wk_workspace_claim's fd on the workspace root, or -1 */
    struct rpc_channel *ch;
    grpc_completion_queue *cq;
    pthread_mutex_t lock;
    /* Guarded by lock: */
    struct rpc_async_call a; /* the current stream; a.call is NULL between streams */
    bool up;                 /* Registered received on the current stream */
    bool sending;            /* a send batch is in flight */
    bool closing;            /* half-close requested */
    bool stop;
    struct wk_outbox out; /* events from emit to EventAck, and the runs waiting for room */
    /* StateRequests and Releaseds to send (agent ids owned), oldest first; one per assignment
     * at most, so bounded by the hub's capacity of assignments. Dropped with the stream: the hub
     * re-assigns the turns of a lost stream anyway. */
    struct conn_state_req {
        char *agent_id;
        uint64_t epoch;
        bool released; /* Released, else StateRequest */
    } * state_reqs;
    size_t nstate_reqs, cap_state_reqs;
    /* Packed HubToolCalls (bounded by the link's pending limit) and Workspaces pages (one
     * listing per registration) to send (owned), oldest first. */
    grpc_byte_buffer **calls;
    size_t ncalls, cap_calls;
    bool heartbeat_due;
    unsigned hb_running; /* runs counted before taking the lock (see kick_send_locked) */
    size_t batch_bytes;  /* from Registered: see CONN_BATCH_BYTES */
    int outstanding;     /* batches in flight on the current call */
    /* Connection thread only: */
    char *hub;        /* the address n->ch dials; NULL before the first leader is known */
    uint64_t hub_gen; /* wk_registry_leader_gen when hub was resolved */
    uint32_t heartbeat_ms;
    int64_t next_heartbeat_ms;
    bool fatal;    /* the hub refused us in a way retrying cannot fix */
    bool draining; /* the hub's last NodeState said so; reset with each stream */
    struct ag_err fatal_err;
};

/* --- sending (lock held) ------------------------------------------------------------------ */

/* Takes bb. */
static void start_send_locked(struct wk_node *n, grpc_byte_buffer *bb)
{
    struct ag_err err = AG_ERR_INIT;
    if (rpc_async_send(&n->a, bb, &tag_send, &err) != 0) {
        ag_log_error("conn.send_rejected", "node=%s err=%s", n->node_id, ag_log_q(err.msg));
        rpc_async_send_done(&n->a); /* no completion will free it */
        return;
    }
    n->sending = true;
    n->outstanding++;
}

static void start_close_locked(struct wk_node *n)
{
    n->closing = false;
    if (rpc_async_close(&n->a, &tag_send, NULL) != 0)
        return;
    n->sending = true;
    n->outstanding++;
}

static void state_reqs_clear_locked(struct wk_node *n)
{
    for (size_t i = 0; i < n->nstate_reqs; i++)
        free(n->state_reqs[i].agent_id);
    n->nstate_reqs = 0;
    for (size_t i = 0; i < n->ncalls; i++)
        grpc_byte_buffer_destroy(n->calls[i]);
    n->ncalls = 0;
}

/* Send whatever is due: a StateRequest (a turn waits on it) or Released (sent only once every
 * event of its turn is stored, so it needs no place among them), else a hub tool call (sent
 * after its TOOL_CALL was acknowledged, so it too needs no place among the events), else queued
 * events (one batch), else a heartbeat, else a half-close. */
static void kick_send_locked(struct wk_node *n)
{
    if (!n->a.call || !n->up || n->sending)
        return;
    if (!n->nstate_reqs && n->ncalls) {
        grpc_byte_buffer *bb = n->calls[0];
        memmove(n->calls, n->calls + 1, --n->ncalls * sizeof(*n->calls));
        start_send_locked(n, bb);
        return;
    }
    if (n->nstate_reqs) {
        struct conn_state_req q = n->state_reqs[0];
        memmove(n->state_reqs, n->state_reqs + 1, --n->nstate_reqs * sizeof(*n->state_reqs));
        Agentry__V1__StateRequest sr = AGENTRY__V1__STATE_REQUEST__INIT;
        Agentry__V1__Released rel = AGENTRY__V1__RELEASED__INIT;
        Agentry__V1__NodeMessage m = AGENTRY__V1__NODE_MESSAGE__INIT;
        if (q.released) {
            rel.agent_id = q.agent_id;
            rel.epoch = q.epoch;
            m.msg_case = AGENTRY__V1__NODE_MESSAGE__MSG_RELEASED;
            m.released = &rel;
        } else {
            sr.agent_id = q.agent_id;
            sr.epoch = q.epoch;
            m.msg_case = AGENTRY__V1__NODE_MESSAGE__MSG_STATE_REQUEST;
            m.state_request = &sr;
        }
        start_send_locked(n, rpc_pb_pack(&m.base));
        free(q.agent_id);
        return;
    }
    struct wk_outbox_batch *b = wk_outbox_next_batch(&n->out, CONN_MAX_BATCH, n->batch_bytes);
    if (b) {
        start_send_locked(n, wk_outbox_pack(b));
    } else if (n->heartbeat_due) {
        n->heartbeat_due = false;
        Agentry__V1__Heartbeat hb = AGENTRY__V1__HEARTBEAT__INIT;
        /* Never call into the runner here: emit() holds a run's lock while taking ours. */
        hb.running = n->hb_running;
        Agentry__V1__NodeMessage m = AGENTRY__V1__NODE_MESSAGE__INIT;
        m.msg_case = AGENTRY__V1__NODE_MESSAGE__MSG_HEARTBEAT;
        m.heartbeat = &hb;
        start_send_locked(n, rpc_pb_pack(&m.base));
    } else if (n->closing) {
        start_close_locked(n);
    }
}

/* Queue a packed message beside the hub tool calls (sent when the stream is free). Lock held. */
static void queue_call_locked(struct wk_node *n, grpc_byte_buffer *bb)
{
    if (n->ncalls == n->cap_calls) {
        n->cap_calls = n->cap_calls ? n->cap_calls * 2 : 8;
        n->calls = ag_xrealloc(n->calls, n->cap_calls * sizeof(*n->calls));
    }
    n->calls[n->ncalls++] = bb;
    kick_send_locked(n);
}

/* Runner callback (wk_emit_fn), on pool threads with the run's lock held. */
static int on_emit(void *ctx, uint8_t *ev, size_t len, wk_emit_done_fn *done, void *done_arg)
{
    struct wk_node *n = ctx;
    pthread_mutex_lock(&n->lock);
    if (!n->up) { /* the stream is gone: the hub will run this turn again elsewhere */
        pthread_mutex_unlock(&n->lock);
        free(ev);
        return -1;
    }
    wk_outbox_push(&n->out, ev, len, done, done_arg);
    /* Room made here (a batch leaving the outbox) wakes nobody, as a run's lock is held: the
     * connection thread wakes the waiters when this send completes (on_send_done). */
    kick_send_locked(n);
    pthread_mutex_unlock(&n->lock);
    return 0;
}

/* The hub link's send (wk_hub_send_fn), with the link's lock held, from a tool's run(). */
static int on_hub_call(void *ctx, uint8_t *buf, size_t len)
{
    struct wk_node *n = ctx;
    pthread_mutex_lock(&n->lock);
    if (!n->up) {
        pthread_mutex_unlock(&n->lock);
        free(buf);
        return -1;
    }
    grpc_slice sl = grpc_slice_new(buf, len, free);
    queue_call_locked(n, grpc_raw_byte_buffer_create(&sl, 1));
    grpc_slice_unref(sl);
    pthread_mutex_unlock(&n->lock);
    return 0;
}

/* Work pool (wk_runner_ids_fn): the workspaces this node holds go to the hub in pages, which
 * answers with a Forget of the agents it no longer has (deleted while the node was away). A
 * stream lost meanwhile drops them: the next registration lists again. */
static void on_workspaces_listed(void *arg, char **ids, size_t nids)
{
    struct wk_node *n = arg;
    pthread_mutex_lock(&n->lock);
    for (size_t at = 0; n->up && at < nids; at += CONN_WORKSPACES_PAGE) {
        Agentry__V1__Workspaces w = AGENTRY__V1__WORKSPACES__INIT;
        w.agent_ids = ids + at;
        w.n_agent_ids = nids - at < CONN_WORKSPACES_PAGE ? nids - at : CONN_WORKSPACES_PAGE;
        Agentry__V1__NodeMessage m = AGENTRY__V1__NODE_MESSAGE__INIT;
        m.msg_case = AGENTRY__V1__NODE_MESSAGE__MSG_WORKSPACES;
        m.workspaces = &w;
        queue_call_locked(n, rpc_pb_pack(&m.base));
    }
    pthread_mutex_unlock(&n->lock);
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
}

/* Runner callback (wk_room_fn), on pool threads with no run lock held. */
static bool on_room(void *ctx, wk_wake_fn *wake, void *arg)
{
    struct wk_node *n = ctx;
    if (!wk_outbox_full_hint(&n->out))
        return true; /* the common case costs no lock */
    pthread_mutex_lock(&n->lock);
    /* Without a stream, emits are dropped (and the runs cancelled): nothing to wait for. */
    bool room = !n->up || wk_outbox_room(&n->out, wake, arg);
    pthread_mutex_unlock(&n->lock);
    return room;
}

/* --- receiving ---------------------------------------------------------------------------- */

static void on_ack(struct wk_node *n, const Agentry__V1__EventAck *ack)
{
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    pthread_mutex_lock(&n->lock);
    bool found = wk_outbox_ack(&n->out, ack->batch_id, ack->seqs, ack->n_seqs, &calls);
    kick_send_locked(n); /* sends held back by a full unacked list may go now */
    pthread_mutex_unlock(&n->lock);
    wk_outbox_calls_run(&calls); /* completions first: a run parked on its event goes on */
    if (!found) {
        ag_log_warn("conn.unknown_ack", "node=%s batch=%" PRIu64, n->node_id, ack->batch_id);
        return;
    }
    size_t dropped = 0;
    for (size_t i = 0; i < ack->n_seqs; i++)
        dropped += ack->seqs[i] == 0;
    if (dropped)
        ag_log_debug("conn.events_discarded", "node=%s batch=%" PRIu64 " discarded=%zu", n->node_id,
                     ack->batch_id, dropped);
}

/* Queue a StateRequest or a Released and send it as soon as the stream is free. */
static void queue_ctl(struct wk_node *n, const char *agent_id, uint64_t epoch, bool released)
{
    pthread_mutex_lock(&n->lock);
    if (n->up) {
        if (n->nstate_reqs == n->cap_state_reqs) {
            n->cap_state_reqs = n->cap_state_reqs ? n->cap_state_reqs * 2 : 8;
            n->state_reqs = ag_xrealloc(n->state_reqs, n->cap_state_reqs * sizeof(*n->state_reqs));
        }
        n->state_reqs[n->nstate_reqs++] = (struct conn_state_req){ag_xstrdup(agent_id), epoch,
                                                                  released};
        kick_send_locked(n);
    }
    pthread_mutex_unlock(&n->lock);
}

/* Runner callback (wk_released_fn), on a pool thread with no run lock held. */
static void on_released(void *ctx, const char *agent_id, uint64_t epoch)
{
    struct wk_node *n = ctx;
    ag_log_info("run.released", "node=%s agent=%s epoch=%" PRIu64, n->node_id, agent_id, epoch);
    queue_ctl(n, agent_id, epoch, true);
}

static void on_assign(struct wk_node *n, const Agentry__V1__Assignment *a)
{
    struct ag_err err = AG_ERR_INIT;
    if (wk_runner_assign(n->runner, a, &err) == 0)
        return;
    if (err.code == AG_NOT_FOUND) {
        /* The conversation it names is gone from this node: the hub sends it whole. */
        ag_log_info("conn.state_requested", "node=%s agent=%s epoch=%" PRIu64, n->node_id,
                    a->agent_id, a->epoch);
        queue_ctl(n, a->agent_id, a->epoch, false);
        return;
    }
    ag_log_warn("conn.assignment_refused", "node=%s agent=%s epoch=%" PRIu64 " err=%s", n->node_id,
                a->agent_id, a->epoch, ag_log_q(err.msg));
    if (err.code == AG_INVALID_ARGUMENT)
        wk_runner_reject(n->runner, a, err.msg);
}

static void on_registered(struct wk_node *n, const Agentry__V1__Registered *r)
{
    size_t max_msg = r->max_message_bytes ? (size_t)r->max_message_bytes : CONN_DEFAULT_MAX_MESSAGE;
    size_t max_payload = r->max_payload_bytes ? (size_t)r->max_payload_bytes
                                              : CONN_DEFAULT_MAX_PAYLOAD;
    if (max_msg < 2 * CONN_BATCH_OVERHEAD)
        max_msg = 2 * CONN_BATCH_OVERHEAD; /* a hub this strict gets ERRORs, not a broken stream */
    /* Before `up`: no assignment of this stream can start a run with the old limits. */
    wk_runner_set_limits(n->runner, max_payload, max_msg - CONN_BATCH_OVERHEAD);
    pthread_mutex_lock(&n->lock);
    n->up = true;
    n->batch_bytes = max_msg - CONN_BATCH_OVERHEAD < CONN_BATCH_BYTES
                         ? max_msg - CONN_BATCH_OVERHEAD
                         : CONN_BATCH_BYTES;
    n->heartbeat_ms = r->heartbeat_interval_ms ? r->heartbeat_interval_ms : 2000;
    n->next_heartbeat_ms = ag_now_mono_ms() + n->heartbeat_ms;
    pthread_mutex_unlock(&n->lock);
    ag_log_info("node.registered",
                "node=%s hub=%s capacity=%u hub_version=%s max_message_bytes=%zu "
                "max_payload_bytes=%zu",
                n->node_id, n->hub, n->o.capacity, r->hub_version, max_msg, max_payload);
    rpc_health_set_ready(n->o.health, !n->draining, "registered with the hub");
    struct ag_err err = AG_ERR_INIT;
    if (wk_runner_list_workspaces(n->runner, on_workspaces_listed, n, &err) != 0)
        ag_log_warn("node.workspaces_unlisted", "node=%s err=%s", n->node_id, ag_log_q(err.msg));
}

static void on_node_state(struct wk_node *n, const Agentry__V1__NodeState *st)
{
    if (st->draining == n->draining)
        return;
    n->draining = st->draining;
    ag_log_info(st->draining ? "node.draining" : "node.undrained", "node=%s hub=%s cordoned=%d",
                n->node_id, n->hub, st->cordoned);
    rpc_health_set_ready(n->o.health, !st->draining,
                         st->draining ? "the hub drains this node" : "uncordoned");
}

static void handle_msg(struct wk_node *n, const Agentry__V1__HubMessage *m)
{
    struct ag_err err = AG_ERR_INIT;
    switch (m->msg_case) {
    case AGENTRY__V1__HUB_MESSAGE__MSG_REGISTERED:
        on_registered(n, m->registered);
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_ASSIGN:
        on_assign(n, m->assign);
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_DELIVER:
        if (m->deliver->input &&
            wk_runner_deliver(n->runner, m->deliver->agent_id, m->deliver->epoch,
                              m->deliver->input->seq, m->deliver->input->text, &err) != 0)
            ag_log_debug("conn.deliver_missed", "agent=%s err=%s", m->deliver->agent_id,
                         ag_log_q(err.msg));
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_CANCEL:
        ag_log_info("run.cancelled", "node=%s agent=%s epoch=%" PRIu64 " reason=%s", n->node_id,
                    m->cancel->agent_id, m->cancel->epoch, ag_log_q(m->cancel->reason));
        wk_runner_cancel(n->runner, m->cancel->agent_id, m->cancel->epoch);
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_ACK:
        on_ack(n, m->ack);
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_FORGET:
        if (wk_runner_forget(n->runner, (const char *const *)m->forget->agent_ids,
                             m->forget->n_agent_ids, &err) != 0)
            ag_log_warn("node.forget_deferred", "node=%s agents=%zu err=%s", n->node_id,
                        m->forget->n_agent_ids, ag_log_q(err.msg));
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_HUB_TOOL_RESULT:
        wk_hub_link_result(n->link, m->hub_tool_result);
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_NODE_STATE:
        on_node_state(n, m->node_state);
        break;
    case AGENTRY__V1__HUB_MESSAGE__MSG_RELEASE:
        ag_log_info("run.release_asked", "node=%s agent=%s epoch=%" PRIu64 " reason=%s", n->node_id,
                    m->release->agent_id, m->release->epoch, ag_log_q(m->release->reason));
        if (!wk_runner_release(n->runner, m->release->agent_id, m->release->epoch))
            ag_log_debug("conn.release_missed", "node=%s agent=%s", n->node_id,
                         m->release->agent_id);
        break;
    default:
        break;
    }
}

/* Read the next message (the first read also takes the hub's initial metadata). A read that
 * cannot start ends the stream: without reads no ack or assignment would ever arrive. */
static void start_recv(struct wk_node *n)
{
    struct ag_err err = AG_ERR_INIT;
    pthread_mutex_lock(&n->lock);
    if (rpc_async_recv(&n->a, &tag_recv, &err) == 0) {
        n->outstanding++;
    } else {
        ag_log_error("conn.recv_rejected", "node=%s err=%s", n->node_id, ag_log_q(err.msg));
        rpc_async_cancel(&n->a);
    }
    pthread_mutex_unlock(&n->lock);
}

/* --- one stream --------------------------------------------------------------------------- */

/* Start the stream: the status (outstanding for its life), Register (the first send carries the
 * initial metadata) and the first read. -1 with err if gRPC refuses the call or its status batch:
 * then no completion of it will come. */
static int open_stream(struct wk_node *n, struct ag_err *err)
{
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&n->register_msg, 1); /* own ref */
    pthread_mutex_lock(&n->lock);
    if (n->outstanding != 0)
        ag_log_error("conn.leaked_batches", "node=%s outstanding=%d", n->node_id, n->outstanding);
    n->outstanding = 0;
    n->up = false;
    n->closing = false;
    n->sending = false;
    int rc = rpc_async_start(&n->a, n->ch, n->cq, CONN_METHOD, AG_DEADLINE_NONE, err);
    if (rc == 0)
        rc = rpc_async_recv_status(&n->a, &tag_status, err);
    if (rc == 0) {
        n->outstanding++;
        start_send_locked(n, bb);
    } else {
        grpc_byte_buffer_destroy(bb);
        rpc_async_release(&n->a);
    }
    pthread_mutex_unlock(&n->lock);
    if (rc == 0)
        start_recv(n);
    return rc;
}

static void on_send_done(struct wk_node *n)
{
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    pthread_mutex_lock(&n->lock);
    n->outstanding--;
    n->sending = false;
    rpc_async_send_done(&n->a); /* NULL after a half-close: a no-op */
    kick_send_locked(n);
    wk_outbox_wake_if_room(&n->out, &calls); /* also for batches on_emit sent */
    pthread_mutex_unlock(&n->lock);
    wk_outbox_calls_run(&calls);
}

static void on_recv_done(struct wk_node *n)
{
    pthread_mutex_lock(&n->lock);
    n->outstanding--;
    pthread_mutex_unlock(&n->lock);
    grpc_byte_buffer *bb = rpc_async_recv_take(&n->a); /* connection thread: reads only here */
    if (!bb)
        return; /* the hub ended the stream */
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__HubMessage *m = rpc_pb_unpack(bb, &agentry__v1__hub_message__descriptor, &ar,
                                               &err);
    grpc_byte_buffer_destroy(bb);
    if (m)
        handle_msg(n, m);
    else
        ag_log_error("conn.bad_message", "node=%s err=%s", n->node_id, ag_log_q(err.msg));
    ag_arena_release(&ar);
    start_recv(n);
}

static bool stopping(struct wk_node *n)
{
    pthread_mutex_lock(&n->lock);
    bool s = n->stop;
    pthread_mutex_unlock(&n->lock);
    return s;
}

/* Statuses of a refused registration that the same Register would get again: reconnecting
 * cannot help, so the node stops with the hub's message. */
static bool refusal_is_final(grpc_status_code status)
{
    return status == GRPC_STATUS_INVALID_ARGUMENT || status == GRPC_STATUS_ALREADY_EXISTS ||
           status == GRPC_STATUS_PERMISSION_DENIED || status == GRPC_STATUS_UNAUTHENTICATED;
}

/* The stream ended: forget everything tied to it. Runs are cancelled: the hub has (or will)
 * put them elsewhere with a new epoch, so nothing of theirs may be sent again. */
static void stream_over(struct wk_node *n, bool was_up)
{
    /* The status batch has completed, so these are the hub's (or gRPC's) last word. */
    grpc_status_code status = n->a.status;
    char *details = grpc_slice_to_c_string(n->a.details);
    if (!was_up && refusal_is_final(status)) {
        n->fatal = true;
        ag_err_set(&n->fatal_err, (enum ag_code)status, "the hub at '%s' refused node '%s': %s",
                   n->hub, n->node_id, *details ? details : ag_code_name((enum ag_code)status));
    }
    /* A goodbye we asked for is news, not a problem. */
    enum ag_log_level lv = stopping(n) && status == GRPC_STATUS_OK ? AG_LOG_INFO : AG_LOG_WARN;
    ag_log_write(lv, "node.disconnected", "node=%s hub=%s status=%d was_registered=%d details=%s",
                 n->node_id, n->hub, (int)status, was_up, ag_log_q(details));
    gpr_free(details);
    /* Cancel first: the runs parked on an event or on room then end silently when woken. */
    wk_runner_cancel_all(n->runner);
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    struct ag_err lost = AG_ERR_INIT;
    ag_err_set(&lost, AG_UNAVAILABLE,
               "the stream to the hub at '%s' ended before the hub "
               "acknowledged the event",
               n->hub);
    pthread_mutex_lock(&n->lock);
    rpc_async_release(&n->a); /* every batch is back (serve_stream) */
    n->up = false;
    n->draining = false; /* the next hub (or this one again) says so anew */
    wk_outbox_drop_all(&n->out, &lost, &calls);
    state_reqs_clear_locked(n);
    pthread_mutex_unlock(&n->lock);
    wk_outbox_calls_run(&calls);
    wk_hub_link_lost(n->link, "the stream to the hub ended");
    rpc_health_set_ready(n->o.health, false, "disconnected from the hub");
}

/* Whether the node follows its hub through etcd (no --hub). */
static bool following(const struct wk_node *n)
{
    return n->reg && !n->o.hub;
}

/* Whether etcd names another leader than the one n->hub came from. */
static bool leader_moved(struct wk_node *n)
{
    return following(n) && wk_registry_leader_gen(n->reg) != n->hub_gen;
}

/* The current stream must go: a new leader, or the registry gave up (the node stops). */
static bool stream_must_end(struct wk_node *n)
{
    if (n->reg && wk_registry_failed(n->reg, NULL))
        return true;
    if (!leader_moved(n))
        return false;
    ag_log_info("node.leader_changed", "node=%s hub=%s action=reconnect", n->node_id, n->hub);
    return true;
}

/* Serve one stream until it ends. Returns whether it had registered. */
static bool serve_stream(struct wk_node *n)
{
    int64_t handshake_deadline = ag_now_mono_ms() + n->o.handshake_ms;
    bool status_seen = false, was_up = false, cancelled = false;
    struct ag_err err = AG_ERR_INIT;
    if (open_stream(n, &err) != 0) { /* nothing started: nothing to wait for */
        ag_log_error("conn.open_failed", "node=%s hub=%s err=%s", n->node_id, n->hub,
                     ag_log_q(err.msg));
        return false;
    }
    for (;;) {
        pthread_mutex_lock(&n->lock);
        bool up = n->up;
        int outstanding = n->outstanding;
        int64_t hb_at = n->next_heartbeat_ms;
        pthread_mutex_unlock(&n->lock);
        was_up |= up;
        if (status_seen && outstanding == 0)
            break;
        if (!cancelled && stream_must_end(n)) {
            rpc_async_cancel(&n->a); /* the usual end: runs cancelled, then reconnect */
            cancelled = true;
        }
        int64_t now = ag_now_mono_ms();
        if (!up && !cancelled && now >= handshake_deadline) {
            ag_log_warn("node.handshake_timeout", "node=%s hub=%s after_ms=%" PRId64, n->node_id,
                        n->hub, n->o.handshake_ms);
            rpc_async_cancel(&n->a);
            cancelled = true;
        }
        if (up && now >= hb_at) {
            unsigned running = wk_runner_running(n->runner);
            pthread_mutex_lock(&n->lock);
            n->hb_running = running;
            n->heartbeat_due = true;
            n->next_heartbeat_ms = now + n->heartbeat_ms;
            kick_send_locked(n);
            pthread_mutex_unlock(&n->lock);
        }
        int64_t wait = up ? hb_at - now : handshake_deadline - now;
        if (wait > 200 || wait < 1)
            wait = wait < 1 ? 1 : 200; /* also bounds how late a stop request is seen */
        grpc_event ev = grpc_completion_queue_next(n->cq, rpc_deadline_ms(wait), NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            if (stopping(n) && !cancelled && (status_seen || !up)) {
                rpc_async_cancel(&n->a);
                cancelled = true;
            }
            continue;
        }
        if (ev.tag == &tag_send) {
            on_send_done(n);
        } else if (ev.tag == &tag_recv) {
            on_recv_done(
                n); /* at the end of the stream it posts no more reads; the status follows */
        } else if (ev.tag == &tag_status) {
            /* The call is over: from now on no thread may start a batch on it (kick_send_locked
             * and on_emit check `up` under the lock), so `outstanding` can only fall to zero
             * and every completion of this call arrives in this loop, none in the backoff wait. */
            pthread_mutex_lock(&n->lock);
            n->outstanding--;
            n->up = false;
            pthread_mutex_unlock(&n->lock);
            status_seen = true;
        }
    }
    stream_over(n, was_up);
    return was_up;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

/* The names of the providers and tools this node offers, for Register (borrowed, static). */
static const char **offered_models(size_t *n)
{
    size_t k = 0;
    while (wk_model_providers[k].name)
        k++;
    const char **out = ag_xcalloc(k + 1, sizeof(*out));
    for (size_t i = 0; i < k; i++)
        out[i] = wk_model_providers[i].name;
    *n = k;
    return out;
}

/* The builtin tools, then the kinds of tools a spec brings (worker/tool_ext.h): an agent with
 * mcp_servers or openapi is placed only on a node offering "mcp" or "openapi". */
static const char **offered_tools(size_t *n)
{
    static const char *const ext[] = {"mcp", "openapi"};
    size_t k = 0;
    while (wk_tools[k].name)
        k++;
    const char **out = ag_xcalloc(k + AG_ARRAY_SIZE(ext) + 1, sizeof(*out));
    for (size_t i = 0; i < k; i++)
        out[i] = wk_tools[i].name;
    for (size_t i = 0; i < AG_ARRAY_SIZE(ext); i++)
        out[k++] = ext[i];
    *n = k;
    return out;
}

/* 32 hex digits from the kernel's random source: this process's Register.instance_id. */
static void new_instance_id(char out[33])
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)ag_now_mono_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &t, sizeof(t));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* The JSON value of <prefix>nodes/<id> (docs/operations.md). Labels were checked by
 * pack_register. Numbers that may pass 2^53 are written as integers by hand: cJSON prints
 * doubles. */
static char *etcd_record(const struct wk_node *n)
{
    cJSON *j = cJSON_CreateObject(), *labels = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "node_id", n->node_id);
    cJSON_AddStringToObject(j, "instance_id", n->instance_id);
    cJSON_AddStringToObject(j, "address", n->address);
    cJSON_AddNumberToObject(j, "capacity", n->o.capacity);
    cJSON_AddNumberToObject(j, "cpu_milli", n->o.cpu_milli);
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, n->o.mem_bytes);
    cJSON_AddRawToObject(j, "memory_bytes", num);
    for (size_t i = 0; i < n->o.nlabels; i++) {
        const char *kv = n->o.labels[i], *eq = strchr(kv, '=');
        char *k = ag_xstrndup(kv, (size_t)(eq - kv));
        cJSON_DeleteItemFromObjectCaseSensitive(labels, k); /* the last of a repeated key wins */
        cJSON_AddStringToObject(labels, k, eq + 1);
        free(k);
    }
    cJSON_AddItemToObject(j, "labels", labels);
    cJSON_AddStringToObject(j, "version", AGENTRY_VERSION_GIT);
    snprintf(num, sizeof(num), "%" PRId64, n->started_ns);
    cJSON_AddRawToObject(j, "started_ns", num);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

/* Register never changes for a node: pack it once, from "k=v" labels. */
static int pack_register(struct wk_node *n, const struct wk_node_opts *o, struct ag_err *err)
{
    size_t nl = o->nlabels;
    Agentry__V1__Register__LabelsEntry *ents = ag_xcalloc(nl + 1, sizeof(*ents));
    Agentry__V1__Register__LabelsEntry **pents = ag_xcalloc(nl + 1, sizeof(*pents));
    char **keys = ag_xcalloc(nl + 1, sizeof(*keys));
    int rc = 0;
    for (size_t i = 0; i < nl; i++) {
        const char *eq = strchr(o->labels[i], '=');
        if (!eq) {
            rc = ag_err_set(err, AG_INVALID_ARGUMENT, "label '%s' is not key=value", o->labels[i]);
            break;
        }
        keys[i] = ag_xstrndup(o->labels[i], (size_t)(eq - o->labels[i]));
        agentry__v1__register__labels_entry__init(&ents[i]);
        ents[i].key = keys[i];
        ents[i].value = (char *)eq + 1;
        pents[i] = &ents[i];
    }
    if (rc == 0) {
        size_t nmodels, ntools;
        const char **models = offered_models(&nmodels), **tools = offered_tools(&ntools);
        Agentry__V1__Register reg = AGENTRY__V1__REGISTER__INIT;
        reg.node_id = n->node_id;
        reg.capacity = n->o.capacity;
        reg.cpu_milli = n->o.cpu_milli;
        reg.memory_bytes = n->o.mem_bytes;
        reg.version = AGENTRY_VERSION_GIT;
        reg.labels = pents;
        reg.n_labels = nl;
        reg.models = (char **)models;
        reg.n_models = nmodels;
        reg.tools = (char **)tools;
        reg.n_tools = ntools;
        reg.instance_id = n->instance_id;
        reg.keeps_state = o->keep_bytes > 0;
        reg.address = n->address;
        reg.started_ns = n->started_ns;
        Agentry__V1__NodeMessage m = AGENTRY__V1__NODE_MESSAGE__INIT;
        m.msg_case = AGENTRY__V1__NODE_MESSAGE__MSG_REGISTER;
        m.register_ = &reg;
        n->register_msg = grpc_slice_malloc(protobuf_c_message_get_packed_size(&m.base));
        protobuf_c_message_pack(&m.base, GRPC_SLICE_START_PTR(n->register_msg));
        free(models);
        free(tools);
    }
    for (size_t i = 0; i < nl; i++)
        free(keys[i]);
    free(keys);
    free(ents);
    free(pents);
    return rc;
}

/* The registry's options for o (strings borrowed from o and n). */
static struct wk_registry_opts registry_opts(const struct wk_node_opts *o)
{
    return (struct wk_registry_opts){.endpoints = o->etcd,
                                     .ca_file = o->etcd_ca,
                                     .cert_file = o->etcd_cert,
                                     .key_file = o->etcd_key,
                                     .prefix = o->etcd_prefix ? o->etcd_prefix : "/agentry/",
                                     .ttl_s = (o->lease_ttl_ms + 999) / 1000,
                                     .watch_leader = !o->hub};
}

int wk_node_check_opts(const struct wk_node_opts *o, struct ag_err *err)
{
    if (o->address && strlen(o->address) > CONN_MAX_ADDRESS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "--address is over %d bytes", CONN_MAX_ADDRESS);
    if (!o->hub && !o->etcd)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "no hub: give --hub ADDR or --etcd URL");
    if (o->etcd) {
        if (o->lease_ttl_ms < WK_REGISTRY_TTL_MIN * 1000 ||
            o->lease_ttl_ms > WK_REGISTRY_TTL_MAX * 1000)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "--lease-ttl is %" PRId64 "ms; want 1s to 1h", o->lease_ttl_ms);
        struct wk_registry_opts ro = registry_opts(o);
        if (wk_registry_check_opts(&ro, err) != 0)
            return -1;
    }
    if (o->sandbox && strcmp(o->sandbox, "bwrap") != 0 && strcmp(o->sandbox, "runsc") != 0 &&
        strcmp(o->sandbox, "unsafe") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "--sandbox is '%s'; want bwrap (the default), runsc or unsafe",
                          o->sandbox);
    struct wk_configs c = {0};
    if (wk_configs_parse(&c, o->model_opts, o->nmodel_opts, o->tool_opts, o->ntool_opts, err) != 0)
        return -1;
    wk_configs_release(&c);
    struct wk_prices pr = {0};
    if (wk_prices_parse(&pr, o->prices, o->nprices, err) != 0)
        return -1;
    wk_prices_release(&pr);
    return 0;
}

#define CONN_CHANNEL_OPTS                                                                          \
    {                                                                                              \
        .max_backoff_ms = 1000, .max_recv_bytes = CONN_MAX_RECV                                    \
    }

/* The executor, after its self-test. A sandbox that failed it is no reason to stop the node (its
 * other tools work): it is logged loudly, once, and each call that needs it says why. */
static int node_sandbox(struct wk_node *n, const struct wk_node_opts *o, struct ag_err *err)
{
    struct wk_sandbox_opts so = {.mode = o->sandbox, .user = o->sandbox_user};
    n->sandbox = wk_sandbox_new(&so, err);
    if (!n->sandbox)
        return -1;
    if (!wk_sandbox_ready(n->sandbox))
        ag_log_error("node.sandbox_unavailable", "node=%s why=%s", n->node_id,
                     ag_log_q(wk_sandbox_describe(n->sandbox)));
    else if (o->sandbox && strcmp(o->sandbox, "unsafe") == 0)
        ag_log_warn("node.sandbox_unsafe", "node=%s sandbox=%s", n->node_id,
                    ag_log_q(wk_sandbox_describe(n->sandbox)));
    else
        ag_log_info("node.sandbox_ready", "node=%s sandbox=%s", n->node_id,
                    ag_log_q(wk_sandbox_describe(n->sandbox)));
    return 0;
}

/* The running-turns gauge's source (worker/metrics.h), read at each scrape. */
static size_t running_turns(void *runner)
{
    return wk_runner_running(runner);
}

struct wk_node *wk_node_new(const struct wk_node_opts *o, struct ag_err *err)
{
    struct wk_node *n = ag_xcalloc(1, sizeof(*n));
    n->o = *o;
    n->root_lock = -1;
    n->started_ns = ag_now_unix_ns();
    n->o.capacity = o->capacity ? o->capacity : 64;
    n->o.handshake_ms = o->handshake_ms ? o->handshake_ms : 5000;
    n->o.max_backoff_ms = o->max_backoff_ms ? o->max_backoff_ms : 5000;
    if (o->node_id && *o->node_id) {
        n->node_id = ag_xstrdup(o->node_id);
    } else {
        char host[64] = "node";
        gethostname(host, sizeof(host) - 1);
        n->node_id = ag_xasprintf("%s-%d", host, (int)getpid());
    }
    new_instance_id(n->instance_id);
    char host[256] = "";
    if (!o->address && gethostname(host, sizeof(host) - 1) != 0)
        host[0] = 0;
    n->address = ag_xstrdup(o->address ? o->address : host);
    pthread_mutex_init(&n->lock, NULL);
    wk_outbox_init(&n->out, 0, 0);
    n->register_msg = grpc_empty_slice();
    /* Before the sandbox: a metrics address in use fails before anything is logged. */
    if (o->metrics_listen) {
        if (wk_metrics_start(o->metrics_listen, err) != 0) {
            wk_node_free(n);
            return NULL;
        }
        n->metrics = true;
    }
    /* Before the sandbox's self-test logs: a root another node holds is the only line. */
    if (o->workspace_root && *o->workspace_root &&
        (n->root_lock = wk_workspace_claim(o->workspace_root, err)) < 0) {
        wk_node_free(n);
        return NULL;
    }
    if (pack_register(n, o, err) != 0) {
        wk_node_free(n);
        return NULL;
    }
    rpc_client_init();
    n->timers = ag_timers_new(err);
    if (!n->timers) {
        wk_node_free(n);
        return NULL;
    }
    n->link = wk_hub_link_new(n->timers, on_hub_call, n);
    if (node_sandbox(n, o, err) != 0) {
        wk_node_free(n);
        return NULL;
    }
    struct wk_runner_opts ro = {.threads = o->threads,
                                .emit = on_emit,
                                .room = on_room,
                                .released = on_released,
                                .emit_ctx = n,
                                .timers = n->timers,
                                .hub = n->link,
                                .keep_bytes = o->keep_bytes,
                                .model_opts = o->model_opts,
                                .nmodel_opts = o->nmodel_opts,
                                .tool_opts = o->tool_opts,
                                .ntool_opts = o->ntool_opts,
                                .prices = o->prices,
                                .nprices = o->nprices,
                                .workspace_root = o->workspace_root,
                                .sandbox = n->sandbox,
                                .policy = o->policy,
                                .default_max_iterations = o->default_max_iterations,
                                .default_turn_timeout_ms = o->default_turn_timeout_ms};
    n->runner = wk_runner_new(&ro, err);
    if (!n->runner) {
        wk_node_free(n);
        return NULL;
    }
    if (n->metrics)
        wk_metrics_set_running(running_turns, n->runner);
    if (o->hub) { /* else the channel is made once etcd names the leader (resolve_hub) */
        struct rpc_channel_opts co = CONN_CHANNEL_OPTS;
        co.tls = o->tls;
        n->hub = ag_xstrdup(o->hub);
        n->ch = rpc_channel_new(o->hub, &co, err);
        if (!n->ch) {
            wk_node_free(n);
            return NULL;
        }
    }
    if (o->etcd) {
        struct wk_registry_opts reg = registry_opts(o);
        char *record = etcd_record(n);
        reg.node_id = n->node_id;
        reg.instance_id = n->instance_id;
        reg.record = record;
        n->reg = wk_registry_start(&reg, err);
        free(record);
        if (!n->reg) {
            wk_node_free(n);
            return NULL;
        }
    }
    n->cq = grpc_completion_queue_create_for_next(NULL);
    return n;
}

static int64_t jitter(int64_t ms)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)ag_now_mono_ns();
    return ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1)); /* 50%..100% of ms */
}

/* Point n->ch at the hub etcd names as leader. false while there is none (or its address is
 * unusable): the caller waits. Connection thread, between streams. */
static bool resolve_hub(struct wk_node *n, uint64_t *bad_gen)
{
    if (!following(n))
        return true;
    uint64_t gen = 0;
    char *addr = wk_registry_leader(n->reg, &gen);
    if (!addr)
        return false;
    if (n->ch && strcmp(addr, n->hub) == 0) {
        n->hub_gen = gen;
        free(addr);
        return true;
    }
    struct rpc_channel_opts co = CONN_CHANNEL_OPTS;
    co.tls = n->o.tls;
    struct ag_err err = AG_ERR_INIT;
    struct rpc_channel *ch = rpc_channel_new(addr, &co, &err);
    if (!ch) {
        if (*bad_gen != gen) /* once per leader value */
            ag_log_error("node.bad_hub_address", "node=%s err=%s", n->node_id, ag_log_q(err.msg));
        *bad_gen = gen;
        free(addr);
        return false;
    }
    rpc_channel_free(n->ch); /* no call on it: the last stream is over */
    n->ch = ch;
    free(n->hub);
    n->hub = addr;
    n->hub_gen = gen;
    ag_log_info("node.hub_found", "node=%s hub=%s", n->node_id, n->hub);
    return true;
}

/* Wait up to ms, returning early on a stop request or a new leader. */
static void pause_ms(struct wk_node *n, int64_t ms)
{
    int64_t until = ag_now_mono_ms() + ms;
    while (!stopping(n) && ag_now_mono_ms() < until && !leader_moved(n) &&
           !(n->reg && wk_registry_failed(n->reg, NULL))) {
        int64_t left = until - ag_now_mono_ms();
        grpc_completion_queue_next(n->cq, rpc_deadline_ms(left < 100 ? left : 100), NULL);
    }
}

int wk_node_run(struct wk_node *n, struct ag_err *err)
{
    int64_t backoff = 100;
    uint64_t bad_gen = 0;
    bool waiting = false;
    ag_log_info("node.starting", "node=%s hub=%s capacity=%u", n->node_id,
                n->o.hub ? n->o.hub : "(etcd leader)", n->o.capacity);
    while (!stopping(n)) {
        if (n->reg && wk_registry_failed(n->reg, err)) /* the caller reports it, once */
            return -1;
        if (!resolve_hub(n, &bad_gen)) {
            if (!waiting) {
                char *msg = ag_xasprintf("waiting for a hub to lead (etcd key %sleader)",
                                         n->o.etcd_prefix ? n->o.etcd_prefix : "/agentry/");
                ag_log_info("node.waiting_for_hub", "node=%s msg=%s", n->node_id, ag_log_q(msg));
                free(msg);
            }
            waiting = true;
            pause_ms(n, 100);
            n->hub_gen = wk_registry_leader_gen(n->reg); /* a change seen here is no news */
            continue;
        }
        waiting = false;
        if (serve_stream(n))
            backoff = 100;
        if (n->fatal) { /* the caller reports it, once */
            if (err)
                *err = n->fatal_err;
            return -1;
        }
        if (stopping(n))
            break;
        if (n->reg && wk_registry_failed(n->reg, err))
            return -1;
        if (leader_moved(n)) /* a new leader: go there at once, not after a failure's backoff */
            backoff = 100;
        int64_t wait = jitter(backoff);
        ag_log_info("node.reconnecting", "node=%s in_ms=%" PRId64, n->node_id, wait);
        pause_ms(n, wait);
        backoff = backoff * 2 > n->o.max_backoff_ms ? n->o.max_backoff_ms : backoff * 2;
    }
    ag_log_info("node.stopped", "node=%s", n->node_id);
    return 0;
}

void wk_node_stop(struct wk_node *n)
{
    /* The lease first: the hub (watching etcd) learns at once that the node leaves on purpose. */
    rpc_health_stopping(n->o.health, "the node is stopping");
    if (n->reg)
        wk_registry_stop(n->reg);
    pthread_mutex_lock(&n->lock);
    n->stop = true;
    /* Say goodbye with a half-close, so the hub logs a clean departure; the connection
     * thread cancels the call if the hub does not end it. */
    if (n->a.call && n->up) {
        n->closing = true;
        kick_send_locked(n);
    } else if (n->a.call) {
        rpc_async_cancel(&n->a);
    }
    pthread_mutex_unlock(&n->lock);
}

void wk_node_free(struct wk_node *n)
{
    if (!n)
        return;
    wk_registry_free(n->reg); /* revokes the lease if wk_node_stop did not */
    if (n->metrics)
        wk_metrics_unserve(); /* scrapes read the runner */
    wk_runner_free(n->runner);
    if (n->metrics)
        wk_metrics_stop(); /* no run is left to update a series */
    wk_sandbox_free(n->sandbox);
    if (n->root_lock >= 0) /* after the runner: no run uses the root any more */
        close(n->root_lock);
    /* Runs still parked in the outbox were cancelled by wk_runner_free: waking them frees them. */
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    struct ag_err stopped = AG_ERR_INIT;
    ag_err_set(&stopped, AG_CANCELLED, "node '%s' stopped", n->node_id);
    wk_outbox_drop_all(&n->out, &stopped, &calls);
    wk_outbox_calls_run(&calls);
    wk_outbox_release(&n->out);
    /* After the runner: its runs were cancelled, their calls end now if the timers have not
     * ended them yet (a late answer is nobody's). Before the timers, which may still hold a
     * call's deadline: freeing them runs it, and it finds the call over. */
    wk_hub_link_free(n->link);
    state_reqs_clear_locked(n); /* no other thread is left */
    free(n->state_reqs);
    free(n->calls);
    ag_timers_free(n->timers);
    if (n->cq) {
        grpc_completion_queue_shutdown(n->cq);
        while (grpc_completion_queue_next(n->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(n->cq);
    }
    rpc_channel_free(n->ch);
    if (n->timers || n->runner || n->ch)
        rpc_client_shutdown();
    grpc_slice_unref(n->register_msg);
    free(n->node_id);
    free(n->address);
    free(n->hub);
    pthread_mutex_destroy(&n->lock);
    free(n);
}
