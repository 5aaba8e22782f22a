/* hub/team.h - sub-agents (issue 16): the hub tools spawn_agent, send_agent and wait_agent
 * (rows of hub_tools, hub/hub_tool.c), and what the agent actor (hub/actor.c) asks of teams
 * once its writes are durable: tell a parent that a child ended a turn, look at the children a
 * parent waits on, kill the children of a killed agent.
 *
 * A sub-agent lives in its parent's namespace, with parent_id and depth fixed at its Spawn
 * (hub_agent, the store's agents row). A parent whose turn calls wait_agent on children still
 * working lets go of its node (EVENT_KIND_WAITING: PENDING, no slot, no thread); its wait
 * (struct hub_team_wait, on hub_agent.wait under the agent's lock) lives in memory and is
 * rebuilt at load from the turn's last WAITING event. Each child that ends a turn posts a CHILD
 * command to its parent (one CHILD event in the parent's log); the CHILD that completes the wait
 * also stores the wait_agent call's TOOL_RESULT and places the turn again, in one write.
 *
 * Files: hub/team.c (the tools, and what travels between agents), hub/team_wait.c (the wait).
 *
 * Threads: the tools' run() on the node stream's CQ thread (hub_tool.h); the actor's calls below
 * after its agent's lock is released (what needs the store or another agent's lock runs on the
 * timer thread). Never called with an agent's lock held, except the wait helpers, which work on
 * a wait its agent's lock guards. */
#ifndef AGENTRY_HUB_TEAM_H
#define AGENTRY_HUB_TEAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/id.h"

struct hub;
struct hub_agent;
struct hub_tool_req;
struct hub_store_event;

/* The hub tools (hub_tool.h rows). */
void hub_team_spawn_agent(struct hub_tool_req *r);
void hub_team_send_agent(struct hub_tool_req *r);
void hub_team_wait_agent(struct hub_tool_req *r);

/* How a child's turn ended, as its parent hears it. */
struct hub_team_end {
    const char *child_id;
    int state;        /* AGENTRY__V1__AGENT_STATE__*: idle, yielded, failed or killed */
    uint64_t seq;     /* the child's event that ended the turn */
    const char *text; /* its output (idle) or error (others) */
    bool settled;     /* no input waits: the child is done until told more (wait_agent's test) */
};

/* A parent's wait_agent: the call and the children awaited, each done or not. */
struct hub_team_wait;

/* The wait a WAITING event's payload ({"id", "agents": [...]}) names, NULL if it names none. */
struct hub_team_wait *hub_team_wait_parse(const char *payload, size_t len);
void hub_team_wait_free(struct hub_team_wait *w); /* NULL is a no-op */
/* Every child of w counts as not done again (the write that completed it failed). */
void hub_team_wait_reset(struct hub_team_wait *w);
/* Children of w not yet done. */
size_t hub_team_wait_left(const struct hub_team_wait *w);
/* The ids of the children of w not yet done, at most max of them (w may be NULL). */
void hub_team_wait_pending(const struct hub_team_wait *w, char (*ids)[AG_ID_LEN + 1], size_t max);
/* Child e->child_id is done (if w awaits it): true when that completes w. */
bool hub_team_wait_mark(struct hub_team_wait *w, const struct hub_team_end *e);
/* The TOOL_RESULT payload of a completed wait (in ar): {"id", "name": "wait_agent", "output":
 * the JSON array of the children's answers as text, "is_error": false}. */
const char *hub_team_wait_result(const struct hub_team_wait *w, struct ag_arena *ar);
/* wait_agent's answer, a JSON array [{"agent_id", "state", "output" | "error"}] (malloc'd), each
 * answer cut to fit an event payload with the others. */
char *hub_team_answers_json(size_t n, const char *const *ids, const int *states,
                            const char *const *texts);
/* Load (hub/loader.c): follow a stored event of the agent's current turn, keeping hub_agent.wait
 * equal to what the log says (a WAITING not followed by its TOOL_RESULT or a turn end). */
void hub_team_wait_note(struct hub_agent *a, const struct hub_store_event *ev);

/* After the actor's write, no lock held: */
/* Child ended a turn: post it to its parent (loading the parent if it left memory). */
void hub_team_child_ended(struct hub *h, const char *parent_id, const struct hub_team_end *e);
/* Parent's wait was stored (or found at start-up): tell it which children awaited are done
 * already (those that end later post their own CHILD). */
void hub_team_check_wait(struct hub *h, struct hub_agent *parent);
/* Agent id was killed: kill its sub-agents (each one's own kill goes on down its line). */
void hub_team_kill_children(struct hub *h, const char *id);

#endif
