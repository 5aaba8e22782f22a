/* cmd/agentry/cli.c - the subcommand table and the helpers every subcommand shares. Defaults
 * follow one order: flag > environment variable > the config file's context > built-in
 * (docs/cli.md). */
#include "cmd/agentry/cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "cmd/agentry/config.h"
#include "common/log.h"
#include "hub/validate.h"

const struct cli_cmd cli_cmds[] = {
    {"hub", cli_cmd_hub, "run the hub daemon (agent-hub)"},
    {"node", cli_cmd_node,
     "run a worker node ('agentry node join', agent-node); cordon, uncordon or drain one"},
    {"nodes", cli_cmd_nodes, "list the nodes connected to the hub"},
    {"spawn", cli_cmd_spawn, "create an agent and start its first turn"},
    {"send", cli_cmd_send, "send an input to an agent"},
    {"invoke", cli_cmd_invoke, "spawn an agent and wait for its answer"},
    {"trace", cli_cmd_trace, "print an agent's events (-f to follow)"},
    {"ps", cli_cmd_ps, "list agents"},
    {"top", cli_cmd_top, "a live terminal view of nodes, busy agents and rates"},
    {"get", cli_cmd_get, "show one agent"},
    {"memory", cli_cmd_memory, "read an agent's memory ('memory ls|get AGENT_ID')"},
    {"kill", cli_cmd_kill, "stop an agent"},
    {"approvals", cli_cmd_approvals, "list the tool calls waiting for a human decision"},
    {"approve", cli_cmd_approve, "run a tool call that waits for approval"},
    {"deny", cli_cmd_deny, "refuse a tool call that waits for approval"},
    {"resume", cli_cmd_resume, "continue a yielded or failed agent's work"},
    {"delete", cli_cmd_delete, "delete an agent at rest, its sub-agents and their workspaces"},
    {"rm", cli_cmd_delete, "the same as delete"},
    {"export", cli_cmd_export, "write an agent's whole state to a file, for import elsewhere"},
    {"import", cli_cmd_import, "create an agent from an export file"},
    {"spec", cli_cmd_spec, "check an agent spec file and print it as JSON ('spec check FILE')"},
    {"bench", cli_cmd_bench, "load-test a hub"},
    {"schedule", cli_cmd_schedule, "spawn agents on a cron schedule (create, ls, pause, ...)"},
    {"token", cli_cmd_token, "make a bearer token for the hub's policy file"},
    {"certs", cli_cmd_certs, "make a CA and the mTLS certificates of hubs, nodes and users"},
    {"dev", cli_cmd_dev, "a local hub, nodes and dashboard in one command, for trying things"},
    {"config", cli_cmd_config,
     "show or change the config file's contexts (view, use-context, ...)"},
    {"completion", cli_cmd_completion, "print a bash or zsh completion script"},
    {"version", cli_cmd_version, "print the version"},
    {"__complete", cli_cmd_complete, "(hidden) the completion script's candidates"},
    {NULL, NULL, NULL},
};

int cli_fail(const struct ag_err *err)
{
    fprintf(stderr, "error: %s\n", err->msg[0] ? err->msg : ag_code_name(err->code));
    return CLI_FAIL;
}

int cli_usage_error(const struct ag_err *err)
{
    fprintf(stderr, "error: %s\n", err->msg);
    return CLI_USAGE;
}

const char *cli_default_namespace(void)
{
    const char *env = getenv("AGENTRY_NAMESPACE");
    if (env && *env)
        return env;
    const struct cli_context *c = cli_config_context();
    return c && c->ns ? c->ns : "";
}

int cli_check_namespace(const char *ns, struct ag_err *err)
{
    /* The hub's own rule, so the CLI refuses exactly what the hub would. */
    return hub_validate_namespace(ns, err);
}

const char *cli_default_hub(void)
{
    const char *env = getenv("AGENTRY_HUB");
    if (env && *env)
        return env;
    const struct cli_context *c = cli_config_context();
    return c && c->hub ? c->hub : "127.0.0.1:7070";
}

const struct ag_flags_env cli_flags_env = {"AGENTRY_", NULL};

int cli_log_start(const char *component, const char *level, const char *format, struct ag_err *err)
{
    enum ag_log_level lv;
    enum ag_log_format fmt;
    if (ag_log_level_parse(level, &lv, err) != 0 || ag_log_format_parse(format, &fmt, err) != 0)
        return -1;
    ag_log_init(component, lv);
    ag_log_set_format(fmt);
    return 0;
}
