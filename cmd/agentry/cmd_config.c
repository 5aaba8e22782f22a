/* cmd/agentry/cmd_config.c - `agentry config view|get-contexts|use-context|set-context`: read and
 * change the config file's contexts (config.h; docs/cli.md). Each subcommand is a row. The file
 * is only ever rewritten whole and atomically (cli_config_save), mode 0600. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/config.h"
#include "common/flags.h"
#include "common/xalloc.h"

#define CONFIG_MAX_FLAGS 12

/* The file this command reads: --config, $AGENTRY_CONFIG or the default. Missing, it is empty,
 * unless it was named and is only to be read (set-context makes it). */
static int load(struct cli_config *cfg, bool to_write, struct ag_err *err)
{
    char path[PATH_MAX];
    const char *given = cli_config_given_path();
    cli_config_path(given, path, sizeof(path));
    return cli_config_load(path, given != NULL && !to_write, cfg, err);
}

/* Parse argv with the rows given plus --config and --context. false with *rc the exit code when
 * the command is done (help printed, or a usage error). */
static bool parse(const char *cmd, const struct ag_cmd_help *help, struct ag_flag *flags,
                  size_t nflags, int argc, char **argv, char **pos, size_t max_pos, size_t *npos,
                  int *rc)
{
    cli_config_flags(flags, &nflags, CONFIG_MAX_FLAGS);
    struct ag_err err = AG_ERR_INIT;
    int r = ag_flags_parse(cmd, flags, nflags, argc, argv, pos, max_pos, npos, &err);
    if (r == 1) {
        ag_flags_print_help(stdout, help, flags, nflags);
        *rc = CLI_OK;
        return false;
    }
    if (r != 0) {
        *rc = cli_usage_error(&err);
        return false;
    }
    return true;
}

static int config_view(int argc, char **argv)
{
    bool raw = false;
    struct ag_flag flags[CONFIG_MAX_FLAGS] = {
        {"raw", 0, AG_FLAG_BOOL, &raw, NULL, "show tokens instead of REDACTED", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry config view [flags]",
        "Print the config file the CLI reads, as YAML, its path in a comment first. Tokens are "
        "shown as REDACTED unless --raw.",
        NULL};
    size_t npos;
    int rc;
    if (!parse("config view", &help, flags, 1, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct cli_config cfg;
    struct ag_err err = AG_ERR_INIT;
    if (load(&cfg, false, &err) != 0) {
        cli_config_release(&cfg);
        return cli_usage_error(&err);
    }
    printf("# %s%s\n", cfg.path, cfg.exists ? "" : " (no such file yet)");
    cli_config_write(stdout, &cfg, !raw);
    cli_config_release(&cfg);
    return CLI_OK;
}

static int config_get_contexts(int argc, char **argv)
{
    struct ag_flag flags[CONFIG_MAX_FLAGS];
    const struct ag_cmd_help help = {
        "agentry config get-contexts [flags]",
        "List the config file's contexts; '*' marks the one commands use (--context, "
        "$AGENTRY_CONTEXT, else current-context).",
        NULL};
    size_t npos;
    int rc;
    if (!parse("config get-contexts", &help, flags, 0, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct cli_config cfg;
    struct ag_err err = AG_ERR_INIT;
    if (load(&cfg, false, &err) != 0) {
        cli_config_release(&cfg);
        return cli_usage_error(&err);
    }
    const char *used = cli_config_given_context() ? cli_config_given_context() : cfg.current;
    if (cfg.n == 0)
        printf("No contexts in %s (add one with 'agentry config set-context NAME --hub ADDR')\n",
               cfg.path);
    else
        printf("%-7s  %-16s  %-24s  %s\n", "CURRENT", "NAME", "HUB", "NAMESPACE");
    for (size_t i = 0; i < cfg.n; i++) {
        const struct cli_context *c = &cfg.ctx[i];
        printf("%-7s  %-16s  %-24s  %s\n", used && strcmp(used, c->name) == 0 ? "*" : "", c->name,
               c->hub ? c->hub : "-", c->ns ? c->ns : "-");
    }
    cli_config_release(&cfg);
    return CLI_OK;
}

static int config_use_context(int argc, char **argv)
{
    struct ag_flag flags[CONFIG_MAX_FLAGS];
    const struct ag_cmd_help help = {
        "agentry config use-context [flags] NAME",
        "Make NAME the config file's current-context: the context every command uses unless "
        "--context or $AGENTRY_CONTEXT names another. The file is rewritten atomically.",
        "agentry config use-context staging"};
    char *pos[1];
    size_t npos;
    int rc;
    if (!parse("config use-context", &help, flags, 0, argc, argv, pos, 1, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (npos != 1) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "missing context NAME (see 'agentry config use-context --help')");
        return cli_usage_error(&err);
    }
    struct cli_config cfg;
    rc = CLI_OK;
    if (load(&cfg, false, &err) != 0) {
        rc = cli_usage_error(&err);
    } else if (!cli_config_find(&cfg, pos[0])) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "no context '%s' in '%s' (see 'agentry config get-contexts')", pos[0], cfg.path);
        rc = cli_usage_error(&err);
    } else {
        free(cfg.current);
        cfg.current = ag_xstrdup(pos[0]);
        if (cli_config_save(&cfg, &err) != 0)
            rc = cli_fail(&err);
        else
            printf("Switched to context '%s'\n", pos[0]);
    }
    cli_config_release(&cfg);
    return rc;
}

/* Set one field from a flag: NULL leaves it, "" removes it. */
static void set_field(char **field, const char *v)
{
    if (!v)
        return;
    free(*field);
    *field = *v ? ag_xstrdup(v) : NULL;
}

static int config_set_context(int argc, char **argv)
{
    const char *hub = NULL, *ns = NULL, *token = NULL, *dir = NULL, *ca = NULL, *cert = NULL,
               *key = NULL;
    struct ag_flag flags[CONFIG_MAX_FLAGS] = {
        {"hub", 0, AG_FLAG_STR, &hub, "ADDR[,ADDR...]", "the hub address", 0, 0},
        {"namespace", 'n', AG_FLAG_STR, &ns, "NS", "the namespace", 0, 0},
        {"token", 0, AG_FLAG_STR, &token, "TOKEN", "a bearer token (needs TLS: --ca or --tls-dir)",
         0, 0},
        {"tls-dir", 0, AG_FLAG_STR, &dir, "DIR", "a directory with ca.crt, admin.crt, admin.key", 0,
         0},
        {"ca", 0, AG_FLAG_STR, &ca, "FILE", "the CA certificate that signs the hub", 0, 0},
        {"cert", 0, AG_FLAG_STR, &cert, "FILE", "a client certificate", 0, 0},
        {"key", 0, AG_FLAG_STR, &key, "FILE", "the key of --cert", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry config set-context [flags] NAME",
        "Add the context NAME to the config file, or change the settings given (an empty value "
        "removes one). The first context added becomes current-context.",
        "agentry config set-context dev --hub 127.0.0.1:7070 --namespace team-a\n"
        "agentry config set-context prod --hub hub.internal:7070 --tls-dir ~/.agentry/prod"};
    char *pos[1];
    size_t npos;
    int rc;
    if (!parse("config set-context", &help, flags, 7, argc, argv, pos, 1, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (npos != 1) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "missing context NAME (see 'agentry config set-context --help')");
        return cli_usage_error(&err);
    }
    if ((ns && *ns && cli_check_namespace(ns, &err) != 0) ||
        (hub && *hub && cli_check_hub(hub, &err) != 0)) /* refused now, not at every use */
        return cli_usage_error(&err);
    struct cli_config cfg;
    if (load(&cfg, true, &err) != 0) {
        cli_config_release(&cfg);
        return cli_usage_error(&err);
    }
    struct cli_context *c = cli_config_upsert(&cfg, pos[0]);
    set_field(&c->hub, hub);
    set_field(&c->ns, ns);
    set_field(&c->token, token);
    set_field(&c->tls_dir, dir);
    set_field(&c->ca, ca);
    set_field(&c->cert, cert);
    set_field(&c->key, key);
    if (!cfg.current)
        cfg.current = ag_xstrdup(pos[0]);
    rc = CLI_OK;
    if (cli_config_save(&cfg, &err) != 0)
        rc = cli_fail(&err);
    else
        printf("Context '%s' set in %s\n", pos[0], cfg.path);
    cli_config_release(&cfg);
    return rc;
}

static const struct {
    const char *name;
    cli_cmd_fn *run;
    const char *summary;
} config_cmds[] = {
    {"view", config_view, "print the config file (tokens redacted)"},
    {"get-contexts", config_get_contexts, "list the contexts, marking the one in use"},
    {"use-context", config_use_context, "make a context the current one"},
    {"set-context", config_set_context, "add or change a context"},
};

int cli_cmd_config(int argc, char **argv)
{
    for (size_t i = 0; argc >= 1 && i < AG_ARRAY_SIZE(config_cmds); i++)
        if (strcmp(argv[0], config_cmds[i].name) == 0)
            return config_cmds[i].run(argc - 1, argv + 1);
    if (argc < 1 || (strcmp(argv[0], "--help") != 0 && strcmp(argv[0], "-h") != 0)) {
        if (argc < 1)
            fprintf(stderr, "error: missing config command (want view, get-contexts, "
                            "use-context or set-context; see 'agentry config --help')\n");
        else
            fprintf(stderr,
                    "error: unknown config command '%s' (want view, get-contexts, use-context or "
                    "set-context; see 'agentry config --help')\n",
                    argv[0]);
        return CLI_USAGE;
    }
    FILE *out = stdout;
    fprintf(out, "usage: agentry config view|get-contexts|use-context|set-context [flags] ...\n\n");
    for (size_t i = 0; i < AG_ARRAY_SIZE(config_cmds); i++)
        fprintf(out, "  %-13s %s\n", config_cmds[i].name, config_cmds[i].summary);
    fprintf(out, "\nThe file: --config FILE, else $AGENTRY_CONFIG, else\n"
                 "$XDG_CONFIG_HOME/agentry/config.yaml (~/.config/agentry/config.yaml); see "
                 "docs/cli.md.\nSee 'agentry config SUBCOMMAND --help'.\n");
    return CLI_OK;
}
