/* hub/agent_state.h - the names of an agent's states (AGENTRY__V1__AGENT_STATE__*) as the hub
 * writes them: in log lines, and in what agents read of each other (wait_agent's answers, CHILD
 * events). Apart from hub/agent.h so that what an agent holds (hub/team_wait.h) can name them
 * too. Pure: any thread. */
#ifndef AGENTRY_HUB_AGENT_STATE_H
#define AGENTRY_HUB_AGENT_STATE_H

/* "running", "idle", ...; "unknown" for a value out of range. */
const char *hub_agent_state_name(int state);

#endif
