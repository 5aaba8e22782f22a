/* cmd/agentry/main.c - entry point: picks the subcommand and hands it the rest of argv.
 * Invoked as agent-hub or agent-node (symlinks), it behaves as "agentry hub" / "agentry node".
 * "agentry help CMD [SUB]" is "agentry CMD [SUB] --help".
 *
 * Ctrl-C: until a command says otherwise, SIGINT and SIGTERM end the process with 128 + the
 * signal (130 for Ctrl-C), so every command exits 130 when interrupted, as a shell reports it;
 * the commands that must clean up first (trace -f, ps --watch, top, bench, the daemons) take
 * the signals over and return the same code themselves. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: agentry <command> [flags] [args]\n\n"
                 "A distributed runtime for LLM agents: one hub, many nodes.\n\ncommands:\n");
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        if (strncmp(c->name, "__", 2) != 0)
            fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\nRun 'agentry help <command>' or 'agentry <command> --help' for a command's "
                 "flags.\n");
}

static void on_signal(int sig)
{
    _exit(128 + sig);
}

static const struct cli_cmd *find_cmd(const char *name)
{
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int unknown(const char *name)
{
    fprintf(stderr, "error: unknown command '%s' (see 'agentry --help')\n", name);
    return CLI_USAGE;
}

/* "agentry help CMD [SUB...]": the command's own --help, so there is one text to keep. */
static int help(int argc, char **argv)
{
    if (argc == 0) {
        usage(stdout);
        return CLI_OK;
    }
    const struct cli_cmd *c = find_cmd(argv[0]);
    if (!c)
        return unknown(argv[0]);
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    if (!args)
        abort();
    for (int i = 1; i < argc; i++)
        args[i - 1] = argv[i];
    args[argc - 1] = "--help";
    int rc = c->run(argc, args);
    free(args);
    return rc;
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
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "help") == 0)
        return help(argc - first, argv + first);
    if (strcmp(name, "--version") == 0)
        name = "version";
    cli_config_scan_args(argc - first, argv + first);
    const struct cli_cmd *c = find_cmd(name);
    return c ? c->run(argc - first, argv + first) : unknown(name);
}
