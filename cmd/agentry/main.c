/* cmd/agentry/main.c - entry point: picks the subcommand and hands it the rest of argv.
 * Invoked as agent-hub or agent-node (symlinks), it behaves as "agentry hub" / "agentry node". */
#include <stdio.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: agentry <command> [flags] [args]\n\n"
                 "A distributed runtime for LLM agents: one hub, many nodes.\n\ncommands:\n");
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        fprintf(out, "  %-9s %s\n", c->name, c->summary);
    fprintf(out, "\nRun 'agentry <command> --help' for a command's flags.\n");
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    const char *alias = strcmp(self, "agent-hub") == 0    ? "hub"
                        : strcmp(self, "agent-node") == 0 ? "node"
                                                          : NULL;
    int first = alias ? 1 : 2;
    const char *name = alias ? alias : (argc > 1 ? argv[1] : NULL);
    if (!name) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    cli_config_scan_args(argc - first, argv + first);
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->run(argc - first, argv + first);
    fprintf(stderr, "error: unknown command '%s' (see 'agentry --help')\n", name);
    return CLI_USAGE;
}
