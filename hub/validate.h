/* hub/validate.h - limits on what clients and nodes may send, with messages that say what to
 * change. Everything here is checked before anything is queued or stored. Pure functions, but
 * for hub_validate_spawn (it asks the scheduler; any thread). */
#ifndef AGENTRY_HUB_VALIDATE_H
#define AGENTRY_HUB_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/types.pb-c.h"
#include "common/err.h"

int hub_validate_spec(const Agentry__V1__AgentSpec *spec, struct ag_err *err);
int hub_validate_input(const char *input, bool required, struct ag_err *err);
int hub_validate_agent_id(const char *id, struct ag_err *err);
int hub_validate_utf8(const char *field, const char *s, struct ag_err *err);
/* Is s made only of ASCII letters, digits and the characters in punct? (Ids and label keys.) */
bool hub_validate_name_chars_ok(const char *s, const char *punct);
int hub_validate_labels(const char *what, size_t n, const char *const *keys,
                        const char *const *values, struct ag_err *err);
/* A namespace's name, as a Kubernetes namespace's: 1..HUB_NAMESPACE_MAX of [a-z0-9-], starting
 * and ending with a letter or digit. NULL and "" pass: they mean "default". */
int hub_validate_namespace(const char *ns, struct ag_err *err);
int hub_validate_kill_reason(const char *reason, struct ag_err *err);
/* ApproveCall / DenyCall: a call id (1..256 bytes), arguments (approve only: empty, or a JSON
 * object of at most 1 MiB) and a reason (at most 1024 bytes). */
int hub_validate_decision(const char *call_id, const char *arguments, const char *reason,
                          struct ag_err *err);
/* ResumeAgent.max_iterations: the limit AgentSpec.max_iterations has (0 means the spec's). */
int hub_validate_resume_iterations(uint32_t max_iterations, struct ag_err *err);
struct hub;
/* Everything Spawn and Invoke refuse, before anything is stored (spawn_agent's children too):
 * the request's own limits, then whether any node can run the spec at all (a misspelt model
 * would otherwise wait forever). -1 with err (INVALID_ARGUMENT). */
int hub_validate_spawn(struct hub *h, const Agentry__V1__AgentSpec *spec, const char *input,
                       bool input_required, const char *ns, const char *request_id,
                       struct ag_err *err);
/* INVALID_ARGUMENT if text's INPUT event payload ({"text": ...}) would pass HUB_MAX_PAYLOAD. */
int hub_validate_input_payload(const char *text, struct ag_err *err);

#endif
