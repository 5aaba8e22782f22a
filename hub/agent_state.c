/* hub/agent_state.c - the names of an agent's states (see agent_state.h). */
#include "hub/agent_state.h"
#include "common/xalloc.h"

const char *hub_agent_state_name(int state)
{
    static const char *const names[] = {"unspecified", "pending", "running", "idle",
                                        "yielded",     "failed",  "killed"};
    return state >= 0 && (size_t)state < AG_ARRAY_SIZE(names) ? names[state] : "unknown";
}
