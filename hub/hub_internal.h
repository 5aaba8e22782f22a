/* hub/hub_internal.h - private to hub/: the hub struct, the agent actor and its commands.
 *
 * The agent is an actor. Everything that changes an agent (an input, events from its node, a
 * kill, a placement, the loss of its node) is a command queued in its mailbox. At most one store
 * write per agent is in flight: hub_agent_kick() takes every queued command, decides its effect
 * against the agent's *committed* state, and submits one write; when the write is durable the
 * store's completion thread applies the new state, answers the RPCs and tells nodes and followers
 * (hub/agent_log.c). So a decision never rests on a write that may still fail, a failed write
 * leaves memory equal to the database, and one busy agent batches its own events while group
 * commit batches across agents.
 *
 * Locks, in the order they may be taken: agent->lock, then scheduler lock, then a call's lock
 * (inside rpc_call_*). Never two agents' locks at once. */
#ifndef AGENTRY_HUB_INTERNAL_H
#define AGENTRY_HUB_INTERNAL_H

#include <grpc/slice.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agentry/v1/hub.pb-c.h"
#include "agentry/v1/node.pb-c.h"
#include "common/arena.h"
#include "common/err.h"
#include "common/id.h"
#include "common/rpc/server.h"
#include "hub/effects.h"
#include "hub/hub.h"
#include "hub/sched.h"
#include "hub/store.h"

struct rpc_call;
struct rpc_server;

#define HUB_RING_SIZE 64         /* recent events kept in memory per agent, for followers */
#define HUB_RING_BYTES (256u << 10) /* ... and at most this many bytes of them */
#define HUB_MAX_INBOX 1024       /* inputs waiting per agent before SendMessage is refused */
#define HUB_MAX_INBOX_BYTES (16u << 20) /* ... or this many bytes of them */
#define HUB_MAX_MAILBOX 4096     /* commands waiting per agent before callers are refused */
#define HUB_DEFAULT_MAX_ITER 10
#define HUB_EPOCH_HISTORY 8      /* recent assignments remembered per agent, for fencing */
/* An event payload: a TraceEvent carrying it must fit gRPC's default 4 MiB client limit, with
 * room for its other fields (types.proto). */
#define HUB_MAX_PAYLOAD (3u << 20)
/* A NodeMessage (an EventBatch, whose turn-ending event carries the checkpoint). */
#define HUB_MAX_NODE_MESSAGE (32u << 20)
#define HUB_REASON_MAX 160       /* an interruption's reason, kept to compare the next with */

/* --- the agent --------------------------------------------------------------------------- */

/* An input stored but not yet consumed by a turn. */
struct hub_input {
    uint64_t seq;
    char *text; /* owned */
};

/* The part of an agent a write changes; copied, modified, and swapped in on commit. */
struct hub_agent_st {
    int state;                  /* AGENTRY__V1__AGENT_STATE__* */
    struct hub_node *node;      /* node of the running turn (reference held), else NULL */
    char node_id[HUB_NODE_ID_MAX + 1]; /* node of the current/last turn */
    uint64_t epoch;
    uint8_t *ckpt;              /* owned packed Checkpoint, may be NULL */
    size_t ckpt_len;
    uint64_t input_seq;         /* inputs up to this seq are in the checkpoint */
    struct hub_usage usage;     /* counted from stored events (hub/usage.h), over the agent's life */
    struct hub_usage turn_usage; /* the same for the current (or last) turn, all its attempts */
    uint32_t attempt;           /* placements of the current turn; 0 before the first turn */
    uint32_t streak;            /* interruptions in a row that ended with streak_reason */
    char streak_reason[HUB_REASON_MAX];
    char *last_output;          /* owned, may be NULL */
    char *last_error;           /* owned, may be NULL */
    int64_t updated_ns;
};

struct hub_follower;  /* a Trace call (hub/rpc_trace.c) */
struct hub_waiter;    /* an Invoke call waiting for the end of the first turn */
struct hub_cmd;

struct hub_agent {
    char id[AG_ID_LEN + 1];
    pthread_mutex_t lock;
    /* Immutable after creation: */
    Agentry__V1__AgentSpec *spec; /* decoded from spec_bin, in spec_arena */
    struct ag_arena spec_arena;
    uint8_t *spec_bin;            /* owned packed AgentSpec */
    size_t spec_len;
    char *request_id;             /* owned, may be NULL */
    struct hub_sched_req req;     /* what its turns need from a node (borrows spec) */
    int64_t created_ns;
    size_t list_pos;              /* index in the hub's creation-order list */
    uint64_t spawn_input_seq;     /* the Spawn's input event, 0 if none; set when created */
    /* Guarded by lock: */
    struct hub_agent_st st;       /* committed */
    uint64_t last_seq;            /* highest committed seq */
    struct hub_input *inbox;      /* inputs with seq > st.input_seq, oldest first */
    size_t ninbox, cap_inbox;
    size_t inbox_bytes;           /* their texts' bytes */
    struct { uint64_t seq; grpc_slice ev; } ring[HUB_RING_SIZE]; /* packed TraceEvents */
    size_t ring_bytes;            /* bytes held by ring, at most HUB_RING_BYTES */
    /* The back-off before an interrupted turn is placed again: the pending timer's token (0 if
     * none) and when it fires (monotonic ms). Memory only: a restarted hub places at once. */
    uint64_t retry_token;
    int64_t retry_at_ms;
    struct hub_cmd *mb_head, *mb_tail;
    size_t mb_len;
    bool writing;                 /* a write is in flight */
    bool visible;                 /* committed at least once: lookups find it */
    bool dead;                    /* its creating write failed */
    struct hub_agent *next_dead;  /* in hub->dead (guarded by the hub's list_lock) */
    struct hub_follower *followers;
    struct hub_waiter *waiters;
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
/* Did node instance `instance` hold `epoch` of this agent? True when the epoch is too old to be
 * remembered (such stragglers are discarded anyway); false for epoch 0. Agent lock held. */
bool hub_agent_held(const struct hub_agent *a, uint64_t epoch, uint64_t instance);

/* --- commands ------------------------------------------------------------------------------ */

enum hub_cmd_type {
    HUB_CMD_INPUT,      /* SendMessage: store the input, start a turn if idle */
    HUB_CMD_EVENTS,     /* events from the node running the turn */
    HUB_CMD_KILL,       /* KillAgent */
    HUB_CMD_ASSIGN,     /* the scheduler reserved a slot for the agent's next turn */
    HUB_CMD_INTERRUPT,  /* the node of the running turn is gone */
    HUB_CMD_SCHEDULE,   /* inputs are waiting: place a turn if none runs */
    HUB_CMD_SPAWN_DUP,  /* a Spawn/Invoke retry with this agent's request_id */
    HUB_CMD_RETRY,      /* an interrupted turn's back-off is over: place it */
};

struct hub_ev_batch; /* one EventBatch from a node, acked when all its agents' writes commit */

struct hub_cmd {
    enum hub_cmd_type type;
    struct hub_cmd *next;
    struct rpc_call *call;        /* reply target (reference held), may be NULL */
    struct hub_node *node;        /* EVENTS/ASSIGN/INTERRUPT (reference held) */
    uint64_t epoch;               /* INTERRUPT; RETRY: the timer's token */
    bool graceful;                /* INTERRUPT: the hub is stopping; not the turn's fault */
    bool already;                 /* KILL of a killed agent: answer with the first KILLED */
    char *text;                   /* owned: INPUT text, KILL and INTERRUPT reasons */
    struct hub_ev_batch *batch;   /* EVENTS: acknowledged through hub_effects.events_stored */
    size_t first, n;              /* EVENTS: the batch's events [first, first+n) ... */
    const Agentry__V1__NodeEvent *const *events; /* ... borrowed from the batch */
    bool invoke;                  /* SPAWN_DUP from Invoke: wait for the turn's end */
};

/* --- the hub -------------------------------------------------------------------------------- */

#define HUB_SHARDS 64

struct hub_shard {
    pthread_mutex_t lock;
    struct hub_agent **slots; /* open addressing by id hash */
    size_t cap, len;
};

struct hub {
    struct hub_opts opts;
    struct hub_store *store;
    struct rpc_server *rpc;
    struct hub_sched *sched;
    struct hub_effects fx;       /* how the actor's decisions reach calls and nodes (hub.c) */
    struct hub_shard shards[HUB_SHARDS];
    pthread_mutex_t list_lock;   /* guards list, request ids */
    struct hub_agent **list;     /* visible agents in commit order (ListAgents) */
    size_t nlist, cap_list;
    struct hub_agent *dead;      /* agents whose creating write failed, freed with the hub */
    struct hub_agent **by_req;   /* open addressing by request_id hash */
    size_t req_cap, req_len;
    atomic_uint_fast64_t node_instances;
    struct rpc_method *methods;  /* owned: the method table given to the RPC server */
    struct ag_timers *timers;    /* back-offs before re-placing interrupted turns */
    atomic_uint_fast64_t retry_tokens;
    int64_t started_ms;          /* monotonic; 0 until hub_start */
    bool hk_started;
    pthread_t housekeeper;
    pthread_mutex_t hk_lock;
    pthread_cond_t hk_cond;
    bool stopping;               /* guarded by hk_lock */
    atomic_bool closing;         /* refuse new work: hub_stop has begun */
};

/* hub/agents.c: the table */
struct hub_agent *hub_agent_new(const Agentry__V1__AgentSpec *spec, const char *request_id);
/* An agent from its stored parts (a new id is the caller's); takes spec_bin. NULL with err if
 * the spec cannot be decoded. */
struct hub_agent *hub_agent_new_take(const char *id, uint8_t *spec_bin, size_t spec_len,
                                     const char *request_id, int64_t created_ns,
                                     struct ag_err *err);
void hub_agent_free(struct hub *h, struct hub_agent *a);
/* A visible agent, or NULL. Agents live as long as the hub. */
struct hub_agent *hub_agents_find(struct hub *h, const char *id);
/* As a client asked for it: INVALID_ARGUMENT for a malformed id, NOT_FOUND naming the id. */
struct hub_agent *hub_agents_lookup(struct hub *h, const char *id, struct ag_err *err);
void hub_agents_publish(struct hub *h, struct hub_agent *a); /* make visible (commit) */
/* The agent with that request id (visible or being created), or NULL; inserts `a` when no agent
 * has it and a is not NULL. */
struct hub_agent *hub_agents_claim_request(struct hub *h, const char *request_id,
                                           struct hub_agent *a);
void hub_agents_forget_request(struct hub *h, const char *request_id);
void hub_agents_free_all(struct hub *h);
/* Visit visible agents from position `from` in commit order; stop when fn returns false. */
size_t hub_agents_count(struct hub *h);
struct hub_agent *hub_agents_at(struct hub *h, size_t pos);
void hub_agent_st_release(struct hub *h, struct hub_agent_st *st);
void hub_agent_inbox_push(struct hub_agent *a, uint64_t seq, const char *text);
void hub_agent_inbox_trim(struct hub_agent *a, uint64_t upto_seq);
/* Does the inbox hold an input newer than input_seq (one no turn has consumed)? Lock held. */
bool hub_agent_input_waiting(const struct hub_agent *a, uint64_t input_seq);

/* hub/agent_log.c: the write pipeline */
void hub_cmd_post(struct hub *h, struct hub_agent *a, struct hub_cmd *cmd);
void hub_agent_kick(struct hub *h, struct hub_agent *a);
/* Spawn: create and store a new agent; answers `call` (Spawn) or attaches it as a waiter
 * (Invoke). Takes over a reference the caller holds on call. */
void hub_spawn(struct hub *h, struct rpc_call *call, const Agentry__V1__AgentSpec *spec,
               const char *input, const char *request_id, bool invoke);
void hub_dispatch_decisions(struct hub *h, struct hub_sched_decision *d, size_t n);
/* The running turn at `epoch` on `node` is lost (node NULL: no node object, after a restart):
 * record it and place the turn again, after a back-off, or end it as failed when it was
 * interrupted too often (the dead-letter rule, types.proto EVENT_KIND_INTERRUPTED). reason is for
 * people and compared with the last one; graceful means the hub itself is stopping, which does
 * not count against the turn. */
void hub_post_interrupt(struct hub *h, struct hub_agent *a, struct hub_node *node, uint64_t epoch,
                        const char *reason, bool graceful);
/* Spawn's check that some node can run the spec (INVALID_ARGUMENT if the nodes connected do not
 * offer its model or tools, unless nodes may still be joining: see hub_opts.join_grace_ms). */
int hub_check_placeable(struct hub *h, const struct hub_sched_req *req, struct ag_err *err);
/* What a stored event spent, added to the agent's and its turn's usage (hub_usage_count): one
 * rule for the events stored now (agent_log.c) and those counted again at load (hub.c). */
void hub_agent_count_usage(struct hub_agent_st *st, int kind, uint64_t input_tokens,
                           uint64_t output_tokens);
/* Why the agent is in its state, for Agent.state_reason; agent lock held. */
void hub_agent_state_reason(struct hub *h, struct hub_agent *a, char *buf, size_t cap);
void hub_cmd_free(struct hub *h, struct hub_cmd *c);
/* Commands from the RPC layer. Each takes over a reference the caller holds on call. */
void hub_actor_post_input(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                          const char *text);
void hub_actor_post_kill(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                         const char *reason);
/* The events [first, first+n) of batch b, all for agent a, from node (reference taken here). */
void hub_actor_post_events(struct hub *h, struct hub_agent *a, struct hub_node *node,
                           struct hub_ev_batch *b, size_t first,
                           const Agentry__V1__NodeEvent *const *events, size_t n);

/* hub/events.c: building TraceEvents, payloads, messages */
grpc_slice hub_event_pack(const char *agent_id, const struct hub_store_event *ev);
void hub_agent_ring_put(struct hub_agent *a, uint64_t seq, grpc_slice ev);
void hub_agent_ring_clear(struct hub_agent *a); /* the last follower left: free it */
bool hub_agent_ring_get(struct hub_agent *a, uint64_t seq, grpc_slice *ev);
void hub_agent_to_pb(struct hub *h, struct hub_agent *a, Agentry__V1__Agent *out,
                     struct ag_arena *arena);
const char *hub_state_name(int state);
const char *hub_json_text_payload(struct ag_arena *ar, const char *text);
size_t hub_json_text_payload_len(const char *text); /* its strlen */

/* hub/rpc_trace.c: followers. A follower is a Trace call with a cursor (next_seq): it sends
 * next_seq from the agent's ring if still there, else reads it from the store; it never queues
 * events of its own, so a slow follower costs nothing but its cursor. Fields guarded by the
 * agent's lock. */
struct hub_follower {
    struct hub_follower *next, *prev;
    struct rpc_call *call;
    struct hub *h;
    struct hub_agent *agent;
    uint64_t next_seq;
    bool follow;
    bool linked;   /* on agent->followers */
    bool reading;  /* a store read is in flight (holds a call reference) */
    bool closed;   /* the call is over */
};
#define HUB_TRACE_STATE_SIZE sizeof(struct hub_follower)
void hub_trace_on_call(struct rpc_call *call, grpc_byte_buffer *req);
void hub_trace_on_sent(struct rpc_call *call);
void hub_trace_on_close(struct rpc_call *call, bool cancelled);
void hub_rpc_trace_fail_all(struct hub_agent *a, const struct ag_err *err); /* lock held */
void hub_rpc_trace_wake(struct hub *h, struct hub_agent *a,
                        const struct hub_store_event *const *evs, size_t n);
/* hub/rpc_agent.c: the actor's answers and Invoke's waiters (hub_effects) */
void hub_rpc_agent_reply(struct rpc_call *call, const struct hub_reply *r);
void hub_rpc_agent_first_turn_ended(struct hub_agent *a);
void hub_rpc_agent_wait_first_turn(struct hub_agent *a, struct rpc_call *call);
void hub_rpc_agent_fail_waiters(struct hub_agent *a, const struct ag_err *err); /* lock held */

/* hub/rpc_node.c */
void hub_rpc_node_assign(struct hub *h, struct hub_agent *a, struct hub_node *n);
void hub_rpc_node_deliver(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                          uint64_t seq, const char *text);
void hub_rpc_node_cancel(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                         const char *reason);
void hub_rpc_node_events_stored(struct hub *h, struct hub_ev_batch *b, size_t first,
                                const uint64_t *seqs, size_t n, const struct ag_err *err);
void hub_rpc_node_lost(struct hub *h, struct hub_node *n, const char *reason);
void hub_rpc_node_close_stream(struct hub *h, struct hub_node *n, enum ag_code code,
                               const char *msg);
extern const struct rpc_method hub_node_methods[];
extern const size_t hub_node_nmethods;

/* hub/rpc_agent.c + rpc_trace.c method rows */
extern const struct rpc_method hub_agent_methods[];
extern const size_t hub_agent_nmethods;

/* hub/validate.c */
int hub_validate_spec(const Agentry__V1__AgentSpec *spec, struct ag_err *err);
int hub_validate_input(const char *input, bool required, struct ag_err *err);
int hub_validate_agent_id(const char *id, struct ag_err *err);
int hub_validate_utf8(const char *field, const char *s, struct ag_err *err);
/* Is s made only of ASCII letters, digits and the characters in punct? (Ids and label keys.) */
bool hub_name_chars_ok(const char *s, const char *punct);
int hub_validate_labels(const char *what, size_t n, const char *const *keys,
                        const char *const *values, struct ag_err *err);
int hub_validate_kill_reason(const char *reason, struct ag_err *err);
/* INVALID_ARGUMENT if text's INPUT event payload ({"text": ...}) would pass HUB_MAX_PAYLOAD. */
int hub_validate_input_payload(const char *text, struct ag_err *err);

#endif
