/* hub/rpc_schedule.h - the AgentHub schedule methods (CreateSchedule, ListSchedules, GetSchedule,
 * PauseSchedule, ResumeSchedule, DeleteSchedule): rows of the hub's method table (hub.c). */
#ifndef AGENTRY_HUB_RPC_SCHEDULE_H
#define AGENTRY_HUB_RPC_SCHEDULE_H

#include <stddef.h>

#include "common/rpc/server.h"

extern const struct rpc_method hub_rpc_schedule_methods[];
extern const size_t hub_rpc_schedule_nmethods;

#endif
