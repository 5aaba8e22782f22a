/* hub/effects.h - the contract between the agent actor (hub/actor.c) and the layers that act
 * on its decisions: the RPC layer (hub/rpc_agent.c, rpc_node.c, rpc_trace.c) and teams
 * (hub/team.c).
 *
 * The actor decides what each command does and when it is durable. It never builds a wire
 * message, answers a call, writes to a node's stream, walks an agent's followers and waiters or
 * tells another agent: it says what happened through this table, which hub.c fills at start
 * from those layers' functions (a test may fill it with its own). A call is only a reply target to the actor: it
 * holds a reference the RPC layer took for it, answers it at most once through reply, fail or
 * wait_first_turn, and hands the reference back through release.
 *
 * Locks: each entry says what is held when it is called. "Agent lock" means that agent's lock:
 * the entry may take a call's lock (the order is agent, scheduler, call) and nothing else; it
 * never takes another agent's lock or posts a command to an agent. */
#ifndef AGENTRY_HUB_EFFECTS_H
#define AGENTRY_HUB_EFFECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub;
struct hub_agent;
struct hub_node;
struct hub_ev_batch;
struct hub_store_event;
struct hub_team_end;
struct rpc_call;

/* What a Spawn, SendMessage, KillAgent, ResumeAgent or ImportAgent came to, once durable (or at
 * once, for a retry). */
enum hub_reply_kind {
    HUB_REPLY_SPAWNED,  /* agent_id, state, seq (the Spawn's input, 0 if none), existing */
    HUB_REPLY_SENT,     /* seq (the input's), state */
    HUB_REPLY_KILLED,   /* seq (the KILLED event's), already_killed */
    HUB_REPLY_RESUMED,  /* seq (the RESUMED event's), state */
    HUB_REPLY_IMPORTED, /* agent_id, state, seq (the last event's = the events stored) */
    HUB_REPLY_DECIDED,  /* seq (the APPROVAL_DECIDED event's), already */
    HUB_REPLY_HELD,     /* a DeleteAgent's hold (hub_actor_post_hold): agent_id, state */
};

struct hub_reply {
    enum hub_reply_kind kind;
    const char *agent_id; /* borrowed */
    int state;            /* AGENTRY__V1__AGENT_STATE__*: the agent's committed state */
    uint64_t seq;
    bool existing;       /* SPAWNED: a retry with the request id of an existing agent */
    bool already_killed; /* KILLED: the agent was killed before; seq is the first KILLED */
    bool already;        /* DECIDED: the call was decided so before; seq is that decision */
};

struct hub_effects {
    /* Answer the call. Agent lock held, or no lock at all. */
    void (*reply)(struct rpc_call *call, const struct hub_reply *r);
    /* Answer the call with err. Agent lock held, or no lock at all. */
    void (*fail)(struct rpc_call *call, const struct ag_err *err);
    /* Drop the reference the actor held on call. Any lock or none. */
    void (*release)(struct rpc_call *call);
    /* An Invoke waits for the agent's first turn to end (a->first), with its own reference on
     * call. Agent lock held. */
    void (*wait_first_turn)(struct hub_agent *a, struct rpc_call *call);
    /* a->first is set: answer everything waiting for it. Agent lock held. */
    void (*first_turn_ended)(struct hub_agent *a);
    /* The committed turn of a (a->st: epoch, checkpoint, inbox) runs on n: tell the node. Agent
     * lock held. */
    void (*assign)(struct hub *h, struct hub_agent *a, struct hub_node *n);
    /* An input stored for the turn running on n. Agent lock held. */
    void (*deliver)(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                    uint64_t seq, const char *text);
    /* The turn at epoch on n is over for the hub (killed): the node stops it. Agent lock held. */
    void (*cancel)(struct hub *h, struct hub_node *n, const char *agent_id, uint64_t epoch,
                   const char *reason);
    /* evs[0..n) are durable (a->last_seq covers them): followers may send them. Agent lock
     * held. */
    void (*wake_followers)(struct hub *h, struct hub_agent *a,
                           const struct hub_store_event *const *evs, size_t n);
    /* The events [first, first+n) of a node's batch are settled: stored with seqs (0: dropped
     * as stale), or failed with err. No lock held. */
    void (*events_stored)(struct hub *h, struct hub_ev_batch *b, size_t first, const uint64_t *seqs,
                          size_t n, const struct ag_err *err);
    /* Teams, once a write is durable; no lock held (they may post to other agents): */
    /* A sub-agent ended a turn (e): tell its parent. */
    void (*team_child_ended)(struct hub *h, const char *parent_id, const struct hub_team_end *e);
    /* parent's wait was stored: tell it which children awaited are done already. */
    void (*team_check_wait)(struct hub *h, struct hub_agent *parent);
    /* Agent id was killed: kill its sub-agents. */
    void (*team_kill_children)(struct hub *h, const char *id);
};

#endif
