/* cmd/agentry/cmd_spec.c - 'agentry spec check FILE': read an agent spec file as spawn --spec
 * does, check it against the hub's own limits, and print the spec it makes as JSON (the form
 * 'agentry get --json' shows under "spec"). It talks to no hub, so it cannot tell whether a
 * connected node offers the model and tools: Spawn still checks that. */
#include <stdio.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "cmd/agentry/spec.h"
#include "common/xalloc.h"

static const struct ag_cmd_help spec_help = {
    "agentry spec check FILE",
    "Read the agent spec FILE (YAML, docs/agent-spec.md), check it as the hub would, and print "
    "the spec it makes as JSON. An error names the line and the key; the exit status is then 1.",
    "agentry spec check deploy/templates/researcher.yaml",
};

int cli_cmd_spec(int argc, char **argv)
{
    char *pos[2];
    size_t npos;
    int rc;
    if (!cli_parse("spec", &spec_help, NULL, 0, argc, argv, pos, 2, &npos, &rc))
        return rc;
    if (!cli_need_args("spec", pos, npos, 2, "'check FILE'", &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (strcmp(pos[0], "check") != 0) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "unknown spec command '%.64s'; the one there is: check FILE", pos[0]);
        return cli_usage_error(&err);
    }
    struct ag_arena arena;
    ag_arena_init(&arena, NULL, 0);
    Agentry__V1__AgentSpec *spec;
    rc = CLI_OK;
    if (cli_spec_load(pos[1], &arena, &spec, &err) < 0)
        rc = cli_fail(&err);
    else
        cli_print_json(stdout, cli_print_spec_json(spec), false);
    ag_arena_release(&arena);
    return rc;
}
