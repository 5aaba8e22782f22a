/* hub/agent.c - an agent's life in memory: creation from a spec or a stored row, its inbox of
 * unconsumed inputs, epoch fencing, usage counting and freeing (see agent.h). Everything but
 * creation runs with the agent's lock held, or single-threaded at load and free. */
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/approval.h"
#include "hub/store.h"
#include "hub/team_wait.h"

char *hub_agent_request_key(const char *ns, const char *request_id)
{
    return ag_xasprintf("%s/%s", ns && *ns ? ns : HUB_STORE_DEFAULT_NAMESPACE, request_id);
}

struct hub_agent *hub_agent_new_take(const char *id, uint8_t *spec_bin, size_t spec_len,
                                     const char *ns, const char *request_id, int64_t created_ns,
                                     struct ag_err *err)
{
    struct hub_agent *a = ag_xcalloc(1, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    pthread_mutex_init(&a->lock, NULL);
    ag_list_init(&a->followers);
    ag_list_init(&a->waiters);
    ag_list_init(&a->on_node);
    /* Bounded for callers only: the actor's own commands and node events are never refused. */
    ag_queue_init(&a->mailbox, "agent.mailbox", HUB_MAX_MAILBOX, 0);
    a->spec_bin = spec_bin;
    a->spec_len = spec_len;
    ag_arena_init(&a->spec_arena, NULL, 0);
    /* A private decoded copy, living as long as the agent. */
    a->spec = rpc_pb_unpack_bytes(a->spec_bin, a->spec_len, &agentry__v1__agent_spec__descriptor,
                                  &a->spec_arena, err);
    snprintf(a->ns, sizeof(a->ns), "%s", ns && *ns ? ns : HUB_STORE_DEFAULT_NAMESPACE);
    a->request_id = request_id && *request_id ? ag_xstrdup(request_id) : NULL;
    a->req_key = a->request_id ? hub_agent_request_key(a->ns, a->request_id) : NULL;
    a->created_ns = created_ns;
    a->st.updated_ns = created_ns;
    a->nchildren = -1;
    if (!a->spec) {
        ag_err_prefix(err, "agent '%s' has an unreadable spec", id);
        hub_agent_free(NULL, a); /* fresh: no node, so no scheduler needed */
        return NULL;
    }
    /* The spec is immutable and lives as long as the agent: the scheduler may borrow from it. */
    hub_sched_req_from_spec(&a->req, a, a->id, a->spec, &a->spec_arena);
    return a;
}

static void load_checkpoint(struct hub_agent *a, const struct hub_store_agent *row)
{
    if (!row->checkpoint_len)
        return;
    a->st.ckpt = ag_xmemdup(row->checkpoint, row->checkpoint_len);
    a->st.ckpt_len = row->checkpoint_len;
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    Agentry__V1__Checkpoint *ck = rpc_pb_unpack_bytes(
        row->checkpoint, row->checkpoint_len, &agentry__v1__checkpoint__descriptor, &ar, NULL);
    if (ck) {
        a->st.input_seq = ck->input_seq;
        a->ckpt_msgs = ck->n_messages > 0;
        /* A row from before the hub counted usage itself: the checkpoint's count stands in. */
        if (ck->usage && !row->has_usage) {
            hub_usage_from_pb(ck->usage, &a->st.usage);
        }
    }
    ag_arena_release(&ar);
}

struct hub_agent *hub_agent_from_row(const struct hub_store_agent *row, uint64_t last_seq,
                                     struct ag_err *err)
{
    struct hub_agent *a = hub_agent_new_take(row->id, ag_xmemdup(row->spec, row->spec_len),
                                             row->spec_len, row->namespace, row->request_id,
                                             row->created_ns, err);
    if (!a)
        return NULL;
    a->st.state = row->state;
    snprintf(a->st.node_id, sizeof(a->st.node_id), "%s", row->node_id ? row->node_id : "");
    a->st.epoch = row->epoch;
    a->st.last_output = row->last_output && *row->last_output ? ag_xstrdup(row->last_output) : NULL;
    a->st.last_error = row->last_error && *row->last_error ? ag_xstrdup(row->last_error) : NULL;
    a->st.updated_ns = row->updated_ns;
    a->st.usage = row->usage;
    a->st.turn_usage = row->turn_usage;
    a->st.attempt = row->turn_attempt;
    a->st.streak = row->streak;
    snprintf(a->st.streak_reason, sizeof(a->st.streak_reason), "%s",
             row->streak_reason ? row->streak_reason : "");
    a->spawn_input_seq = row->spawn_input_seq;
    snprintf(a->parent_id, sizeof(a->parent_id), "%s", row->parent_id ? row->parent_id : "");
    a->depth = row->depth;
    a->last_seq = last_seq;
    a->visible = true;
    /* Which node instance held its older epochs died with the memory that knew: their
     * stragglers are harmless now, as the epoch alone fences them (hub_agent_held). */
    a->held_unknown = true;
    if (row->state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING &&
        row->state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING && last_seq > 2) {
        /* Past its first turn: without its history in memory, a retried Invoke gets the latest
         * outcome (see hub_agent.first). */
        a->first.done = true;
        a->first.state = row->state;
        a->first.seq = last_seq;
        a->first.output = a->st.last_output ? ag_xstrdup(a->st.last_output) : NULL;
        a->first.error = a->st.last_error ? ag_xstrdup(a->st.last_error) : NULL;
    }
    load_checkpoint(a, row);
    return a;
}

struct hub_agent *hub_agent_new(const Agentry__V1__AgentSpec *spec, const char *ns,
                                const char *request_id)
{
    char id[AG_ID_LEN + 1];
    ag_id_new(id);
    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *bin = ag_xmalloc(len ? len : 1);
    protobuf_c_message_pack(&spec->base, bin);
    /* The spec was just packed from a valid message: decoding it back cannot fail. */
    return hub_agent_new_take(id, bin, len, ns, request_id, ag_now_unix_ns(), NULL);
}

void hub_agent_st_release(struct hub_sched *s, struct hub_agent_st *st)
{
    if (st->node)
        hub_sched_node_unref(s, st->node);
    st->node = NULL;
    free(st->ckpt);
    free(st->last_output);
    free(st->last_error);
    st->ckpt = NULL;
    st->last_output = st->last_error = NULL;
}

static void steps_clear(struct hub_agent *a)
{
    for (size_t i = 0; i < a->nsteps; i++)
        free(a->steps[i].payload);
    a->nsteps = 0;
    a->steps_bytes = 0;
}

void hub_agent_free(struct hub_sched *s, struct hub_agent *a)
{
    ag_list_remove(&a->on_node); /* no other thread is left to walk the node's list */
    hub_agent_st_release(s, &a->st);
    free(a->first.output);
    free(a->first.error);
    hub_team_wait_free(a->wait);
    hub_approval_free(a->approval);
    hub_approval_forget(a);
    for (size_t i = 0; i < a->ninbox; i++)
        free(a->inbox[i].text);
    free(a->inbox);
    hub_trace_ring_clear(&a->ring);
    steps_clear(a);
    free(a->steps);
    ag_arena_release(&a->spec_arena);
    free(a->spec_bin);
    free(a->request_id);
    free(a->req_key);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

bool hub_agent_held(const struct hub_agent *a, uint64_t epoch, uint64_t instance)
{
    if (epoch == 0)
        return false;
    if (a->st.epoch - epoch >= HUB_EPOCH_HISTORY || a->held_unknown)
        return true;
    const __typeof__(a->held[0]) *h = &a->held[epoch % HUB_EPOCH_HISTORY];
    return h->epoch == epoch && h->node_instance == instance;
}

/* --- the running turn's steps ---------------------------------------------------------------- */

void hub_agent_steps_note(struct hub_agent *a, uint64_t seq, int kind, const char *payload,
                          size_t len)
{
    switch (kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT:
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED:
        hub_approval_remember(a, payload, len, seq);
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED:
        a->conv_seq = seq;
        steps_clear(a);
        /* A long turn's array goes with it: idle agents keep none. */
        free(a->steps);
        a->steps = NULL;
        a->cap_steps = 0;
        return;
    default:
        return;
    }
    if (a->nsteps == a->cap_steps) {
        a->cap_steps = a->cap_steps ? a->cap_steps * 2 : 8;
        a->steps = ag_xrealloc(a->steps, a->cap_steps * sizeof(*a->steps));
    }
    char *p = ag_xmalloc(len + 1);
    memcpy(p, payload, len);
    p[len] = '\0';
    a->steps[a->nsteps++] = (struct hub_step){seq, kind, p};
    a->steps_bytes += len;
}

/* --- inbox --------------------------------------------------------------------------------- */

void hub_agent_inbox_push(struct hub_agent *a, uint64_t seq, const char *text)
{
    if (a->ninbox == a->cap_inbox) {
        a->cap_inbox = a->cap_inbox ? a->cap_inbox * 2 : 4;
        a->inbox = ag_xrealloc(a->inbox, a->cap_inbox * sizeof(*a->inbox));
    }
    a->inbox[a->ninbox].seq = seq;
    a->inbox[a->ninbox].text = ag_xstrdup(text);
    a->ninbox++;
    a->inbox_bytes += strlen(text);
}

bool hub_agent_input_waiting(const struct hub_agent *a, uint64_t input_seq)
{
    /* The inbox is in seq order: its last input is the newest. */
    return a->ninbox && a->inbox[a->ninbox - 1].seq > input_seq;
}

void hub_agent_inbox_trim(struct hub_agent *a, uint64_t upto_seq)
{
    size_t k = 0;
    while (k < a->ninbox && a->inbox[k].seq <= upto_seq) {
        a->inbox_bytes -= strlen(a->inbox[k].text);
        free(a->inbox[k++].text);
    }
    if (k) {
        memmove(a->inbox, a->inbox + k, (a->ninbox - k) * sizeof(*a->inbox));
        a->ninbox -= k;
    }
}

void hub_agent_count_usage(struct hub_agent_st *st, int kind, uint64_t input_tokens,
                           uint64_t output_tokens, uint64_t cost_nano_usd)
{
    hub_usage_count(&st->usage, kind, input_tokens, output_tokens, cost_nano_usd);
    hub_usage_count(&st->turn_usage, kind, input_tokens, output_tokens, cost_nano_usd);
}
