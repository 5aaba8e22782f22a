/* cmd/agentry/cli.h - the agentry command table and what subcommands share.
 *
 * Each subcommand is a row: its own file (cmd/agentry/cmd_<name>.c) defines cli_cmd_<name>().
 * A subcommand gets argv after its name and returns the process exit code:
 *   0 success, 1 the operation failed (one line on stderr), 2 bad usage (one line on stderr).
 * Output goes to stdout: human-readable by default, JSON with --json. */
#ifndef AGENTRY_CMD_CLI_H
#define AGENTRY_CMD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/flags.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef int cli_cmd_fn(int argc, char **argv);

struct cli_cmd {
    const char *name;
    cli_cmd_fn *run;
    const char *summary;
};
extern const struct cli_cmd cli_cmds[]; /* ends with a NULL name; "__" names are hidden */

cli_cmd_fn cli_cmd_hub, cli_cmd_node, cli_cmd_spawn, cli_cmd_send, cli_cmd_invoke, cli_cmd_trace,
    cli_cmd_ps, cli_cmd_get, cli_cmd_kill, cli_cmd_resume, cli_cmd_export, cli_cmd_import,
    cli_cmd_bench, cli_cmd_version, cli_cmd_nodes, cli_cmd_certs, cli_cmd_token, cli_cmd_spec,
    cli_cmd_schedule, cli_cmd_memory, cli_cmd_approvals, cli_cmd_approve, cli_cmd_deny,
    cli_cmd_delete, cli_cmd_top, cli_cmd_dev, cli_cmd_config, cli_cmd_completion, cli_cmd_complete;
/* 'agentry node cordon|uncordon|drain' (cmd_node_admin.c): the exit code, or -1 if sub is none
 * of them. */
int cli_node_admin(const char *sub, int argc, char **argv);

/* Print "error: <msg>" on stderr (one line) and return CLI_FAIL or CLI_USAGE. */
int cli_fail(const struct ag_err *err);
int cli_usage_error(const struct ag_err *err);

/* A daemon's logging: parse --log-level's and --log-format's values and start logging as
 * `component`. -1 with INVALID_ARGUMENT for an unknown level or format. */
int cli_log_start(const char *component, const char *level, const char *format, struct ag_err *err);

/* The daemons' flags from the environment: --http-listen is also $AGENTRY_HTTP_LISTEN (see
 * ag_flags_parse_env); hub, node join and dev parse with it. */
extern const struct ag_flags_env cli_flags_env;

/* The hub address when --hub is not given: $AGENTRY_HUB, else the context's hub (config.h), else
 * "127.0.0.1:7070". */
const char *cli_default_hub(void);
/* The namespace when -n/--namespace is not given: $AGENTRY_NAMESPACE (if not empty), else the context's
 * namespace, else "" (spawn and invoke: the hub's "default"; ps: every namespace). */
const char *cli_default_namespace(void);
/* 0 if ns is a namespace name the hub accepts ("" too: the default), else -1 with err saying
 * the rule, for a usage error (exit 2) before anything is sent. */
int cli_check_namespace(const char *ns, struct ag_err *err);

#endif
