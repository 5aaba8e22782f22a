/* cmd/agentry/spec.h - agent spec files: the YAML format of docs/agent-spec.md read into an
 * agentry.v1.AgentSpec, for 'agentry spawn --spec', 'invoke --spec' and 'spec check'.
 *
 * Strict on purpose: an unknown key, a duplicate key, a value of the wrong type, an anchor or
 * alias, or a second document is refused, so a typo never passes silently as a default. Every
 * error names the file, the line and the key: "agent.yaml:7: model.temperature: expected a
 * number, got 'hot'". Thread: the command's main thread. */
#ifndef AGENTRY_CMD_SPEC_H
#define AGENTRY_CMD_SPEC_H

#include <stddef.h>

#include "agentry/v1/types.pb-c.h"
#include "common/arena.h"
#include "common/err.h"

/* Read the spec file at path. 0 with *out (everything in arena); -1 with err
 * (INVALID_ARGUMENT, or NOT_FOUND if the file cannot be read). The result is checked against
 * the hub's own limits too (hub_validate_spec), so what passes here passes Spawn's checks. */
int cli_spec_load(const char *path, struct ag_arena *arena, Agentry__V1__AgentSpec **out,
                  struct ag_err *err);
/* cli_spec_load on text already in memory; `name` stands for the file in messages. */
int cli_spec_parse(const char *name, const char *text, size_t len, struct ag_arena *arena,
                   Agentry__V1__AgentSpec **out, struct ag_err *err);

#endif
