/* hub/team_wait.h - a parent's wait_agent (see hub/team.h): the children it awaits and which of
 * them are done, the TOOL_RESULT it ends with, and the wait read back from the log at load.
 *
 * A wait is data an agent holds (hub_agent.wait, freed with it) and the actor's write works on
 * (hub/actor.c): it knows ids and answers, not agents, so the agent, the actor and the team
 * layer all build on it. Threads: none of its own; a wait is guarded by its agent's lock, and
 * nothing here locks or posts. */
#ifndef AGENTRY_HUB_TEAM_WAIT_H
#define AGENTRY_HUB_TEAM_WAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/id.h"

struct hub_store_event;

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
/* Load (hub/loader.c): follow a stored event of the agent's current turn, keeping *w (its
 * hub_agent.wait) equal to what the log says (a WAITING not followed by its TOOL_RESULT or a turn
 * end). */
void hub_team_wait_note(struct hub_team_wait **w, const struct hub_store_event *ev);

#endif
