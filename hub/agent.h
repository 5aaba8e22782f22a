/* hub/agent.h - an agent in the hub's memory: its immutable spec, its committed state, its
 * inbox of unconsumed inputs, its ring of recent events, and the heads of the lists the actor
 * and the RPC layer keep on it.
 *
 * The agent is an actor (hub/actor.h): everything that changes it is a command in its mailbox,
 * decided against its committed state and applied when the store says the write is durable.
 * Fields marked "guarded by lock" are read and written only with a->lock held; the rest is set
 * before the agent is published and never changes. An agent lives while it is in the agent table
 * (hub/agent_table.h), which holds the active ones and the recently used: one at rest and unpinned
 * may be evicted, and is loaded again from the store when asked for.
 *
 * Lock order: an agent's lock, then the agent table's locks or the scheduler's lock, then a
 * call's lock (inside rpc_call_*). Never two agents' locks at once. */
#ifndef AGENTRY_HUB_AGENT_H
#define AGENTRY_HUB_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/types.pb-c.h"
#include "common/arena.h"
#include "common/err.h"
#include "common/id.h"
#include "common/list.h"
#include "common/queue.h"
#include "hub/agent_state.h"
#include "hub/limits.h"
#include "hub/node.h"
#include "hub/sched.h"
#include "hub/trace_ring.h"
#include "hub/usage.h"

/* An input stored but not yet consumed by a turn. */
struct hub_input {
    uint64_t seq;
    char *text; /* owned */
};

/* A stored step of the running turn (MODEL_REQUEST, MODEL_REPLY, TOOL_CALL, TOOL_RESULT): an
 * Assignment carries them, so that an interrupted turn goes on from its last stored step. */
struct hub_step {
    uint64_t seq;
    int kind;
    char *payload; /* owned */
};

/* The part of an agent a write changes; copied, modified, and swapped in on commit. */
struct hub_agent_st {
    int state;                         /* AGENTRY__V1__AGENT_STATE__* */
    struct hub_node *node;             /* node of the running turn (reference held), else NULL */
    char node_id[HUB_NODE_ID_MAX + 1]; /* node of the current/last turn */
    uint64_t epoch;
    uint8_t *ckpt; /* owned packed Checkpoint, may be NULL */
    size_t ckpt_len;
    uint64_t input_seq;     /* inputs up to this seq are in the checkpoint */
    struct hub_usage usage; /* counted from stored events (hub/usage.h), over the agent's life */
    struct hub_usage turn_usage; /* the same for the current (or last) turn, all its attempts */
    uint32_t attempt;            /* placements of the current turn; 0 before the first turn */
    uint32_t streak;             /* interruptions in a row that ended with streak_reason */
    /* The current turn's own iteration limit (ResumeAgent), 0: the spec's. Not in the store's
     * row: a hub that loads a resumed turn still running reads it back from the RESUMED event
     * (hub.c). */
    uint32_t turn_max_iter;
    char streak_reason[HUB_REASON_MAX];
    char *last_output; /* owned, may be NULL */
    char *last_error;  /* owned, may be NULL */
    int64_t updated_ns;
};

struct hub_agent {
    char id[AG_ID_LEN + 1];
    pthread_mutex_t lock;
    /* Immutable after creation: */
    Agentry__V1__AgentSpec *spec; /* decoded from spec_bin, in spec_arena */
    struct ag_arena spec_arena;
    uint8_t *spec_bin; /* owned packed AgentSpec */
    size_t spec_len;
    char ns[HUB_NAMESPACE_MAX + 1]; /* its namespace: "default" unless Spawn named one */
    char *request_id;               /* owned, may be NULL */
    /* owned, NULL without request_id: the agent table's request index key,
     * hub_agent_request_key(ns, request_id), since request ids are unique per namespace */
    char *req_key;
    struct hub_sched_req req; /* what its turns need from a node (borrows spec) */
    int64_t created_ns;
    size_t list_pos;          /* index in the agent table's list (guarded by its list lock) */
    int pins;                 /* holders (hub/agent_table.h), guarded by its shard's lock */
    uint64_t spawn_input_seq; /* the Spawn's input event, 0 if none; set when created */
    /* The agent that spawned it (the spawn_agent tool, hub/team.c), "" for one a client spawned,
     * and its depth below its root (0 for a root); set before it is published. */
    char parent_id[AG_ID_LEN + 1];
    uint32_t depth;
    /* Guarded by lock: */
    int64_t nchildren; /* sub-agents spawned or being spawned (hub/team.c); -1: not counted yet */
    /* The wait_agent call its turn waits on (the turn is PENDING without a node until every
     * child awaited ended its turn; hub/team_wait.h), NULL if none. Rebuilt at load from the turn's
     * last WAITING event (hub_team_wait_note). */
    struct hub_team_wait *wait;
    /* The tool call its turn waits on for a human decision (hub/approval.h; PENDING without a
     * node until ApproveCall, DenyCall or the deadline decides it), NULL if none; rebuilt at load
     * from the turn's events (hub_approval_note). approval_token names the deadline's timer that
     * is current (0: none armed), as retry_token does for a back-off. */
    struct hub_approval *approval;
    uint64_t approval_token;
    /* Its most recent decisions (hub_approval_remember), NULL until the first; a ring. */
    struct hub_approval_decided *decided;
    unsigned decided_next;
    struct hub_agent_st st;  /* committed */
    uint64_t last_seq;       /* highest committed seq */
    struct hub_input *inbox; /* inputs with seq > st.input_seq, oldest first */
    size_t ninbox, cap_inbox;
    size_t inbox_bytes;         /* their texts' bytes */
    struct hub_trace_ring ring; /* recent committed events, kept only while followers exist */
    /* The conversation is the log (types.proto, Checkpoint): an Assignment carries what the node
     * needs of it (hub/rpc_node.c). */
    uint64_t conv_seq; /* the seq of the last turn-ending event, 0 before the first */
    bool ckpt_msgs;    /* st.ckpt holds the conversation up to conv_seq (an older node's) */
    /* The node process that ended the last turn with a checkpoint (its process_key) and that
     * turn's epoch: it may keep the conversation (Assignment.state_epoch). 0: none. Memory only. */
    uint64_t warm_key, warm_epoch;
    struct hub_step *steps; /* the running turn's stored steps, oldest first; emptied by the
                                   event that ends the turn */
    size_t nsteps, cap_steps;
    size_t steps_bytes; /* their payloads' bytes */
    /* The back-off before an interrupted turn is placed again: the pending timer's token (0 if
     * none) and when it fires (monotonic ms). Memory only: a restarted hub places at once. */
    uint64_t retry_token;
    int64_t retry_at_ms;
    struct ag_queue mailbox;     /* of struct hub_cmd (hub/actor.c), HUB_MAX_MAILBOX */
    bool writing;                /* a write is in flight */
    int64_t active_ms;           /* monotonic: its last write ended, or it was loaded */
    bool visible;                /* committed at least once: lookups find it */
    bool dead;                   /* its creating write failed */
    bool deleted;                /* its DeleteAgent committed (hub/actor.c refuses commands) */
    struct hub_agent *next_dead; /* in the table's dead list (guarded by its list lock) */
    struct ag_list followers;    /* of struct hub_follower (hub/rpc_trace.c) */
    struct ag_list waiters;      /* of struct hub_waiter (hub/rpc_agent.c) */
    struct ag_list on_node;      /* on st.node->agents while st.node is set (hub/actor.c;
                                     guarded by the hub's node_agents_lock as well) */
    bool held_unknown; /* loaded from the store: held[] knows nothing of its older epochs */
    /* Who held recent epochs (slot epoch % HUB_EPOCH_HISTORY): an event with an old epoch is a
     * harmless straggler only from the node instance that held that epoch. */
    struct {
        uint64_t epoch;
        uint64_t node_instance;
    } held[HUB_EPOCH_HISTORY];
    /* How the first turn ended: what Invoke answers, also to a retry after later turns.
     * NEEDSWORK: not rebuilt on restart; a retry then gets the agent's latest outcome. */
    struct {
        bool done;
        int state;
        uint64_t seq;
        char *output; /* owned */
        char *error;  /* owned */
        struct hub_usage usage;
    } first;
};

/* A new agent with a fresh id, for Spawn (spec and namespace already validated; ns NULL or "":
 * "default"). */
struct hub_agent *hub_agent_new(const Agentry__V1__AgentSpec *spec, const char *ns,
                                const char *request_id);
/* An agent from its stored parts (a new id is the caller's); takes spec_bin. NULL with err if
 * the spec cannot be decoded. */
struct hub_agent *hub_agent_new_take(const char *id, uint8_t *spec_bin, size_t spec_len,
                                     const char *ns, const char *request_id, int64_t created_ns,
                                     struct ag_err *err);
/* The key of the agent table's request index for request_id in namespace ns (NULL or "":
 * "default"), owned by the caller: "NS/REQUEST_ID", unambiguous since a namespace has no '/'. */
char *hub_agent_request_key(const char *ns, const char *request_id);
struct hub_store_agent;
/* An agent as its store row says (a loaded agent: visible; its inbox and running turn's steps are
 * read from its events by the caller). NULL with err if the spec cannot be decoded. */
struct hub_agent *hub_agent_from_row(const struct hub_store_agent *row, uint64_t last_seq,
                                     struct ag_err *err);
/* Frees the agent; its mailbox, followers and waiters must be empty by now (their owners
 * drain them first: see hub_agents_free_all). s may be NULL for an agent that never ran. */
void hub_agent_free(struct hub_sched *s, struct hub_agent *a);
void hub_agent_st_release(struct hub_sched *s, struct hub_agent_st *st);
/* Did node instance `instance` hold `epoch` (older than the current one) of this agent? True when
 * the epoch is too old to be remembered, or the agent was loaded from the store (such stragglers
 * are discarded anyway); false for epoch 0. Agent lock held. */
bool hub_agent_held(const struct hub_agent *a, uint64_t epoch, uint64_t instance);
void hub_agent_inbox_push(struct hub_agent *a, uint64_t seq, const char *text);
void hub_agent_inbox_trim(struct hub_agent *a, uint64_t upto_seq);
/* Keep a stored event for the turn's next attempt if it is a step (a node's MODEL_REQUEST,
 * MODEL_REPLY, TOOL_CALL or TOOL_RESULT, or the hub's APPROVAL_DECIDED, also remembered as a
 * decision: hub_approval_remember); forget them all if it ends the turn (FINAL, YIELD,
 * ERROR, KILLED). One rule for events stored now (hub/actor.c) and read at load (hub.c). Lock
 * held. */
void hub_agent_steps_note(struct hub_agent *a, uint64_t seq, int kind, const char *payload,
                          size_t len);
/* Does the inbox hold an input newer than input_seq (one no turn has consumed)? Lock held. */
bool hub_agent_input_waiting(const struct hub_agent *a, uint64_t input_seq);
/* What a stored event spent, added to the agent's and its turn's usage (hub_usage_count): one
 * rule for the events stored now (hub/actor.c) and those counted again at load (hub/loader.c).
 * The cost is a MODEL_REPLY payload's (hub_usage_payload_cost). */
void hub_agent_count_usage(struct hub_agent_st *st, int kind, uint64_t input_tokens,
                           uint64_t output_tokens, uint64_t cost_nano_usd);

#endif
