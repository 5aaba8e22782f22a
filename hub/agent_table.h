/* hub/agent_table.h - the hub's agents: lookup by id (sharded), lookup by request id, the
 * creation-order list ListAgents pages through, and the agents whose creating write failed.
 *
 * Agents are never removed while the hub runs (there is no deletion yet), so pointers from the
 * table are valid until hub_agents_free_all, and list positions are stable page tokens. An agent
 * enters the id index and the list when its creating write commits (hub_agents_publish); the
 * request-id index holds it from the moment Spawn starts, so a concurrent retry finds it.
 *
 * Locks: each shard has its own lock; list_lock guards the list, the request-id index and the
 * dead list. No agent lock is ever taken here, so callers may hold one (agent, then table). */
#ifndef AGENTRY_HUB_AGENT_TABLE_H
#define AGENTRY_HUB_AGENT_TABLE_H

#include <pthread.h>
#include <stddef.h>

#include "common/err.h"
#include "common/map.h"

struct hub_agent;
struct hub_sched;

#define HUB_SHARDS 64

struct hub_shard {
    pthread_mutex_t lock;
    struct ag_map by_id; /* id (borrowed from the agent) -> agent */
};

struct hub_agents {
    struct hub_shard shards[HUB_SHARDS];
    pthread_mutex_t list_lock; /* guards list, by_req, dead */
    struct hub_agent **list;   /* visible agents in commit order (ListAgents) */
    size_t nlist, cap_list;
    struct hub_agent *dead; /* agents whose creating write failed, freed with the table */
    struct ag_map by_req;   /* request_id (borrowed from the agent) -> agent */
};

void hub_agents_init(struct hub_agents *t);
/* Calls release(arg, a) for every agent (listed or dead), then frees it: where the owners of
 * an agent's mailbox, waiters and followers drain them. One thread, no other user left. */
void hub_agents_free_all(struct hub_agents *t, struct hub_sched *s,
                         void (*release)(void *arg, struct hub_agent *a), void *arg);
/* A visible agent, or NULL. */
struct hub_agent *hub_agents_find(struct hub_agents *t, const char *id);
/* As a client asked for it: INVALID_ARGUMENT for a malformed id, NOT_FOUND naming the id. */
struct hub_agent *hub_agents_lookup(struct hub_agents *t, const char *id, struct ag_err *err);
void hub_agents_publish(struct hub_agents *t, struct hub_agent *a); /* make visible (commit) */
/* Keep an agent whose creating write failed until the table is freed: a retry that found it by
 * request id may still post to it. */
void hub_agents_bury(struct hub_agents *t, struct hub_agent *a);
/* The agent with that request id (visible or being created), or NULL; inserts `a` when no agent
 * has it and a is not NULL. */
struct hub_agent *hub_agents_claim_request(struct hub_agents *t, const char *request_id,
                                           struct hub_agent *a);
void hub_agents_forget_request(struct hub_agents *t, const char *request_id);
/* How many agents are visible: list positions run from 0 to this, in commit order. */
size_t hub_agents_count(struct hub_agents *t);
/* Up to max visible agents from list position `from` on, in commit order, into out, under one
 * lock: how many were copied (0: none at or after from). */
size_t hub_agents_snapshot(struct hub_agents *t, size_t from, struct hub_agent **out, size_t max);
/* How many agents a caller of hub_agents_snapshot takes per batch. */
#define HUB_AGENTS_BATCH 64

#endif
