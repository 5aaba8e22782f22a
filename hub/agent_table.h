/* hub/agent_table.h - the agents a hub holds in memory: by id (sharded), by request id, and a
 * list to sweep them. A cache of the store: an agent is here while it is active or was used
 * recently; hub.c loads one on a miss and evicts the ones at rest (hub_agents_evict).
 *
 * Pins: every pointer taken from the table is pinned (find, claim, snapshot, adopt) and
 * must be unpinned when the caller is done with it; an agent is evicted only with no pin but the
 * evicter's. Whoever holds an agent across threads or time (a Trace call, a retry timer, a write
 * in flight, a cold assignment) keeps a pin for as long. Pins are counted under the agent's
 * shard lock.
 *
 * An agent enters the id index and the list when its creating write commits
 * (hub_agents_publish) or when it is loaded (hub_agents_adopt); the request-id index holds it
 * from the moment Spawn starts, so a concurrent retry finds it.
 *
 * Locks: each shard has its own lock; list_lock guards the list, the request-id index and the
 * dead list. No agent lock is ever taken here, so callers may hold one (agent, then table). */
#ifndef AGENTRY_HUB_AGENT_TABLE_H
#define AGENTRY_HUB_AGENT_TABLE_H

#include <pthread.h>
#include <stdbool.h>
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
    struct hub_agent **list;   /* the agents held, in no order (hub_agent.list_pos) */
    size_t nlist, cap_list;
    struct hub_agent *dead; /* agents whose creating write failed, freed with the table */
    struct ag_map by_req;   /* req_key (borrowed from the agent: namespace and request_id,
                               hub_agent_request_key) -> agent */
};

void hub_agents_init(struct hub_agents *t);
/* Calls release(arg, a) for every agent (held or dead), then frees it: where the owners of an
 * agent's mailbox, waiters and followers drain them. One thread, no other user left. */
void hub_agents_free_all(struct hub_agents *t, struct hub_sched *s,
                         void (*release)(void *arg, struct hub_agent *a), void *arg);
/* A visible agent held in memory, pinned; or NULL (hub.c then looks in the store). */
struct hub_agent *hub_agents_find(struct hub_agents *t, const char *id);
void hub_agents_pin(struct hub_agents *t, struct hub_agent *a);
void hub_agents_unpin(struct hub_agents *t, struct hub_agent *a);   /* NULL is a no-op */
void hub_agents_publish(struct hub_agents *t, struct hub_agent *a); /* make visible (commit) */
/* An agent loaded from the store (visible): a, pinned, now in the table with its request id;
 * or, if another thread loaded it first, that one, pinned (the caller frees a). */
struct hub_agent *hub_agents_adopt(struct hub_agents *t, struct hub_agent *a);
/* Take a out of the table if the caller's pin is its only one: true, and the caller frees a once
 * it lets go of a's lock (no one else can reach it now). Agent locked by the caller. */
bool hub_agents_evict(struct hub_agents *t, struct hub_agent *a);
/* Take a deleted agent (DeleteAgent, hub/rpc_delete.c) out of every index, whatever its pins:
 * true if the caller's pin is its only one (the caller frees it); else others still hold it,
 * and it is kept with the dead until the table is freed. Agent not locked. */
bool hub_agents_remove(struct hub_agents *t, struct hub_agent *a);
/* Keep an agent whose creating write failed until the table is freed: a retry that found it by
 * request id may still post to it. */
void hub_agents_bury(struct hub_agents *t, struct hub_agent *a);
/* The agent with that request key (hub_agent_request_key: a request id in its namespace) held in
 * memory (visible or being created), pinned, or NULL; inserts `a` (not pinned: its Spawn owns
 * it) under a->req_key when no agent has it and a is not NULL, and then returns a. */
struct hub_agent *hub_agents_claim_request(struct hub_agents *t, const char *req_key,
                                           struct hub_agent *a);
void hub_agents_forget_request(struct hub_agents *t, const char *req_key);
/* How many agents are held. */
size_t hub_agents_count(struct hub_agents *t);
/* Up to max held agents from list position `from` on, pinned, into out: how many (0: none at or
 * after from). Positions move as agents leave: a sweep may see one twice or miss one. */
size_t hub_agents_snapshot(struct hub_agents *t, size_t from, struct hub_agent **out, size_t max);
/* How many agents a caller of hub_agents_snapshot takes per batch. */
#define HUB_AGENTS_BATCH 64

#endif
