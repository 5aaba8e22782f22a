/* hub/actor.h - the agent actor: the only writer of an agent's state.
 *
 * Everything that changes an agent (an input, events from its node, a kill, a placement, the
 * loss of its node) is a command posted to its mailbox. At most one store write per agent is in
 * flight: the actor takes every queued command, decides its effect against the agent's
 * *committed* state, and submits one write; when the write is durable the store's completion
 * thread applies the new state and tells the outside world through hub/effects.h (answers to
 * calls, messages to nodes, followers) and hub/hooks.h (observers). So a decision never rests on
 * a write that may still fail, a failed write leaves memory equal to the database, and one busy
 * agent batches its own events while group commit batches across agents.
 *
 * Threads: posts come from any thread (CQ threads, the timer thread, the housekeeper, the
 * store's completion thread); each takes the agent's lock briefly. Never called with an agent's
 * lock held. A function taking a call takes over one reference the caller holds on it. */
#ifndef AGENTRY_HUB_ACTOR_H
#define AGENTRY_HUB_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/hub.pb-c.h"
#include "agentry/v1/node.pb-c.h"
#include "common/err.h"
#include "hub/effects.h"

struct hub;
struct hub_agent;
struct hub_ev_batch;
struct hub_node;
struct hub_sched_decision;
struct hub_team_end;
struct rpc_call;

/* The answer to a request the hub makes itself (hub/team.c): r once durable, or err (exactly
 * one is NULL). Called once, with the agent's lock held: it must not take another agent's lock
 * or post to an agent (hand the rest to another thread). */
typedef void hub_actor_done_fn(void *arg, const struct hub_reply *r, const struct ag_err *err);

/* A sub-agent's Spawn (the spawn_agent tool): who asks, and who hears the answer. */
struct hub_actor_child {
    const char *parent_id;
    uint32_t depth;          /* the parent's + 1 */
    const char *by;          /* the SPAWNED and INPUT events' "by": "agent/<parent>" */
    hub_actor_done_fn *done; /* HUB_REPLY_SPAWNED (existing: the request id's first child) */
    void *arg;
};

/* Spawn: create and store a new agent in namespace ns (validated; NULL or "": "default");
 * answers `call` (Spawn) or makes it wait for the first turn (Invoke). A retry with a request id
 * known in that namespace goes to the agent that has it. */
void hub_actor_spawn(struct hub *h, struct rpc_call *call, const Agentry__V1__AgentSpec *spec,
                     const char *input, const char *ns, const char *request_id, bool invoke);
/* Spawn of a sub-agent (spec validated, in its parent's namespace); input is required and lives
 * until c->done is called, as the spec's strings do until this returns. */
void hub_actor_spawn_child(struct hub *h, const struct hub_actor_child *c,
                           const Agentry__V1__AgentSpec *spec, const char *input, const char *ns,
                           const char *request_id);
/* Spawn for the hub itself (a schedule's slot, hub/schedule.c): as hub_actor_spawn without a
 * call, answering through done (HUB_REPLY_SPAWNED; existing when the request id had an agent).
 * input is copied; request_id dedups as Spawn's does, so hold the agent of a request id that
 * may be only in the store first (hub_loader_get_by_request). */
void hub_actor_spawn_notify(struct hub *h, const Agentry__V1__AgentSpec *spec, const char *input,
                            const char *ns, const char *request_id, hub_actor_done_fn *done,
                            void *arg);
/* ImportAgent: store an exported agent (validated by hub/rpc_transfer.c) under its own id, its
 * row and all its events in ONE write, and answer `call` once durable. x lives in the call's
 * arena, which outlasts the write. */
void hub_actor_import(struct hub *h, struct rpc_call *call, const Agentry__V1__AgentExport *x);
/* SendMessage: store the input, start a turn if the agent waits for one. */
void hub_actor_post_input(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                          const char *text);
/* An input from another agent (send_agent): as SendMessage, its event's "by" is `by`, and done
 * hears HUB_REPLY_SENT or the refusal. */
void hub_actor_post_input_from(struct hub *h, struct hub_agent *a, const char *text, const char *by,
                               hub_actor_done_fn *done, void *arg);
/* One of a's sub-agents ended a turn (hub/team.h): log it (an EVENT_KIND_CHILD) and, when a's
 * turn waits on it, count it done; the last child awaited stores the wait's TOOL_RESULT and
 * places the turn again. Strings are copied. */
void hub_actor_post_child(struct hub *h, struct hub_agent *a, const struct hub_team_end *e,
                          bool log);
/* KillAgent (call NULL: the hub's own kill of a sub-agent, answered to nobody). */
void hub_actor_post_kill(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                         const char *reason);
/* DeleteAgent's hold (hub/rpc_delete.c): decided in a's mailbox, in order with its other
 * commands. An agent at rest (idle, yielded, failed or killed, no input waiting) whose hold is
 * alone in its write stops taking commands (they queue) and done hears HUB_REPLY_HELD; else
 * done hears FAILED_PRECONDITION naming why. A held agent is then either deleted
 * (hub_actor_deleted) or let go (hub_actor_unhold). */
void hub_actor_post_hold(struct hub *h, struct hub_agent *a, hub_actor_done_fn *done, void *arg);
/* The delete was given up: a held agent takes its queued commands again. */
void hub_actor_unhold(struct hub *h, struct hub_agent *a);
/* The delete of a held agent is durable: its queued commands, and any posted later by a holder
 * of a stale pointer, are refused with NOT_FOUND. */
void hub_actor_deleted(struct hub *h, struct hub_agent *a);
/* ResumeAgent: a yielded or failed agent starts a turn with no new input, at most max_iter
 * model calls (0: the spec's); other states are refused (hub.proto). */
void hub_actor_post_resume(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                           uint32_t max_iter);
/* The events [first, first+n) of batch b, all for agent a, from node (reference taken here);
 * settled through hub_effects.events_stored. events is borrowed from the batch. */
void hub_actor_post_events(struct hub *h, struct hub_agent *a, struct hub_node *node,
                           struct hub_ev_batch *b, size_t first,
                           const Agentry__V1__NodeEvent *const *events, size_t n);
/* The running turn at `epoch` on `node` is lost (node NULL: no node object, after a restart):
 * record it and place the turn again, after a back-off, or end it as failed when it was
 * interrupted too often (the dead-letter rule, types.proto EVENT_KIND_INTERRUPTED). reason is for
 * people and compared with the last one; graceful means the hub itself is stopping, which does
 * not count against the turn. */
void hub_actor_post_interrupt(struct hub *h, struct hub_agent *a, struct hub_node *node,
                              uint64_t epoch, const char *reason, bool graceful);
/* Inputs wait for an idle or yielded agent (a restarted hub found them: the previous one stopped
 * after the turn ended and before it placed the next): start that turn. */
void hub_actor_post_schedule(struct hub *h, struct hub_agent *a);
/* ApproveCall (approve: args NULL or "" to run the call as asked) or DenyCall (reason for the
 * model) of a's waiting call call_id (hub/approval.h): call hears HUB_REPLY_DECIDED once the
 * decision is durable, or the refusal. */
void hub_actor_post_decide(struct hub *h, struct hub_agent *a, struct rpc_call *call,
                           const char *call_id, bool approve, const char *args, const char *reason);
/* Arm the deadline of a loaded agent's waiting call (a->approval), if not armed yet. Agent not
 * locked. */
void hub_actor_watch_approval(struct hub *h, struct hub_agent *a);
/* The scheduler reserved slots: each decision's agent runs its next turn there (the decision's
 * node reference moves to the command). */
void hub_actor_dispatch(struct hub *h, struct hub_sched_decision *d, size_t n);
/* Free the commands still in a's mailbox (the hub is being freed; no thread uses a). */
void hub_actor_drop_mailbox(struct hub *h, struct hub_agent *a);

#endif
