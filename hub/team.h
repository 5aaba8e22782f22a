/* hub/team.h - sub-agents (issue 16): the hub tools spawn_agent, send_agent and wait_agent
 * (rows of hub_tools, hub/hub_tool.c), and what the agent actor (hub/actor.c) asks of teams
 * once its writes are durable, through the hub_effects entries hub.c installs (hub/effects.h):
 * tell a parent that a child ended a turn, look at the children a parent waits on, kill the
 * children of a killed agent.
 *
 * A sub-agent lives in its parent's namespace, with parent_id and depth fixed at its Spawn
 * (hub_agent, the store's agents row). A parent whose turn calls wait_agent on children still
 * working lets go of its node (EVENT_KIND_WAITING: PENDING, no slot, no thread); its wait
 * (struct hub_team_wait, on hub_agent.wait under the agent's lock) lives in memory and is
 * rebuilt at load from the turn's last WAITING event. Each child that ends a turn posts a CHILD
 * command to its parent (one CHILD event in the parent's log); the CHILD that completes the wait
 * also stores the wait_agent call's TOOL_RESULT and places the turn again, in one write.
 *
 * Files: hub/team.c (the tools, and what travels between agents), hub/team_wait.c (the wait,
 * hub/team_wait.h).
 *
 * Threads: the tools' run() on the node stream's CQ thread (hub_tool.h); the actor's calls below
 * after its agent's lock is released (what needs the store or another agent's lock runs on the
 * timer thread). Never called with an agent's lock held. */
#ifndef AGENTRY_HUB_TEAM_H
#define AGENTRY_HUB_TEAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/team_wait.h"

struct hub;
struct hub_agent;
struct hub_tool_req;

/* The hub tools (hub_tool.h rows). */
void hub_team_spawn_agent(struct hub_tool_req *r);
void hub_team_send_agent(struct hub_tool_req *r);
void hub_team_wait_agent(struct hub_tool_req *r);

/* After the actor's write, no lock held: */
/* Child ended a turn: post it to its parent (loading the parent if it left memory). */
void hub_team_child_ended(struct hub *h, const char *parent_id, const struct hub_team_end *e);
/* Parent's wait was stored (or found at start-up): tell it which children awaited are done
 * already (those that end later post their own CHILD). */
void hub_team_check_wait(struct hub *h, struct hub_agent *parent);
/* Agent id was killed: kill its sub-agents (each one's own kill goes on down its line). */
void hub_team_kill_children(struct hub *h, const char *id);

#endif
