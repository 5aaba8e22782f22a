/* hub/agent_pb.h - an agent as the API shows it: the agentry.v1.Agent message of GetAgent and
 * ListAgents, and why it is in its state. Called with the agent's lock held (it reads the
 * committed state; the scheduler's lock is taken inside to explain a wait). */
#ifndef AGENTRY_HUB_AGENT_PB_H
#define AGENTRY_HUB_AGENT_PB_H

#include <stddef.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/arena.h"

struct hub;
struct hub_agent;

/* out's strings are copied into arena, or borrowed from the agent's immutable spec. */
void hub_agent_pb_fill(struct hub *h, struct hub_agent *a, Agentry__V1__Agent *out,
                       struct ag_arena *arena);
/* Why the agent is in its state, for Agent.state_reason ("" when there is nothing to say). */
void hub_agent_pb_state_reason(struct hub *h, struct hub_agent *a, char *buf, size_t cap);

#endif
