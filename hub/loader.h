/* hub/loader.h - the agents the hub holds: loaded from the store at start-up (the active ones)
 * and on demand (any other one a call names), and let go once at rest (see loader.c). */
#ifndef AGENTRY_HUB_LOADER_H
#define AGENTRY_HUB_LOADER_H

#include <stddef.h>

#include "common/err.h"

struct hub;
struct hub_agent;

/* Start-up: hold every agent that is running, pending or has an input waiting, with its inbox and
 * its running turn's steps (*loaded: how many). The others stay in the store until asked for. */
int hub_loader_load_active(struct hub *h, size_t *loaded, struct ag_err *err);
/* An agent by id (INVALID_ARGUMENT for a malformed one), pinned (hub/agent_table.h): held in
 * memory, or loaded from the store (a keyed read on the caller's thread). NOT_FOUND naming the id
 * if there is none; the store's error if it cannot be read. */
struct hub_agent *hub_loader_get(struct hub *h, const char *id, struct ag_err *err);
/* The agent with this request id in namespace ns (NULL or "": "default"), pinned, as
 * hub_loader_get; NULL with err unset if none. */
struct hub_agent *hub_loader_get_by_request(struct hub *h, const char *ns, const char *request_id,
                                            struct ag_err *err);
/* Let go of the agents at rest for opts.unload_idle_ms (the housekeeper, each round). */
void hub_loader_unload_idle(struct hub *h);

#endif
