/* cmd/agentry/config.h - where the CLI keeps its files: the data directory and the config file
 * with contexts (docs/cli.md).
 *
 * Data directory: --data-dir, else $AGENTRY_DATA_DIR, else $XDG_DATA_HOME/agentry, else
 * $HOME/.local/share/agentry; made (mode 0700, with its parents) when missing. The hub's default
 * store and `agentry dev`'s store and logs live there.
 *
 * Config file: --config FILE, else $AGENTRY_CONFIG, else $XDG_CONFIG_HOME/agentry/config.yaml,
 * else $HOME/.config/agentry/config.yaml. Like a kubeconfig it names contexts (a hub address, a
 * namespace and credentials) and the current one:
 *
 *     current-context: dev
 *     contexts:
 *       - name: dev
 *         hub: 127.0.0.1:7070
 *         namespace: team-a
 *
 * The context a command uses is --context NAME, else $AGENTRY_CONTEXT, else current-context.
 * Each setting follows one order: flag > environment variable > the context > built-in default.
 * A missing default file is no file; a named file (--config, $AGENTRY_CONFIG) must exist. Unknown
 * keys are refused with FILE:LINE, as the spec and policy files do.
 *
 * Thread: the command's main thread. The file a command reads is loaded once, on first use, and
 * kept for the life of the process: the defaults it gives are borrowed pointers into it. */
#ifndef AGENTRY_CMD_CONFIG_H
#define AGENTRY_CMD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cmd/agentry/tls_flags.h"
#include "common/err.h"
#include "common/flags.h"

struct cli_context {
    char *name, *hub, *ns, *token, *tls_dir, *ca, *cert, *key; /* owned; NULL if not set */
    size_t line; /* where it starts in the file (0: not from a file) */
};

struct cli_config {
    char *path;              /* owned */
    bool exists;             /* the file was there */
    char *current;           /* owned; current-context, NULL if none */
    struct cli_context *ctx; /* owned, n of them, in file order */
    size_t n;
};

/* The data directory (see above), made if missing, into buf. given: --data-dir or NULL. -1 with
 * err if it cannot be made or is not a directory. */
int cli_data_dir(const char *given, char *buf, size_t cap, struct ag_err *err);

/* The config file's path (see above) into buf; given: --config or NULL. */
void cli_config_path(const char *given, char *buf, size_t cap);
/* Read the file at path into cfg (zeroed first). A missing file is an empty config, unless
 * must_exist. -1 with INVALID_ARGUMENT and "FILE:LINE: what" for a file that does not parse. */
int cli_config_load(const char *path, bool must_exist, struct cli_config *cfg, struct ag_err *err);
void cli_config_release(struct cli_config *cfg);
/* The context called name, or NULL. */
struct cli_context *cli_config_find(const struct cli_config *cfg, const char *name);
/* The context called name, added at the end if there is none. */
struct cli_context *cli_config_upsert(struct cli_config *cfg, const char *name);
/* Print cfg as YAML; with redact, tokens read "REDACTED". */
void cli_config_write(FILE *out, const struct cli_config *cfg, bool redact);
/* Write cfg to cfg->path atomically (a temporary file in the same directory, then rename), mode
 * 0600 since it may hold tokens; the directory is made (0700) if missing. */
int cli_config_save(const struct cli_config *cfg, struct ag_err *err);

/* --- the selection of this process ----------------------------------------------------------- */

/* Note --config FILE and --context NAME in argv (before "--"), before any command resolves its
 * defaults: client commands compute theirs while building their flag tables. */
void cli_config_scan_args(int argc, char **argv);
/* Append the --config and --context rows (cap rows in all). */
void cli_config_flags(struct ag_flag *flags, size_t *n, size_t cap);
/* --config as given (or $AGENTRY_CONFIG), NULL if neither; --context likewise. */
const char *cli_config_given_path(void);
const char *cli_config_given_context(void);
/* The context this command uses, or NULL for none. The file is read on the first call. A config
 * file that does not parse, or a context that is not in it, gives NULL too and is kept for
 * cli_config_check: defaults are taken before the flags are parsed, and --help must still work
 * with a broken file. */
const struct cli_context *cli_config_context(void);
/* After the flags are parsed: -1 with err (INVALID_ARGUMENT) if a default was sought in a config
 * file that is broken or lacks the context named, a usage error no command can go on from. Reads
 * nothing itself: a command that never looked at the file is not held up by it. */
int cli_config_check(struct ag_err *err);
/* A client's credentials when no flag gave them: *token (if NULL) from $AGENTRY_TOKEN, else the
 * context's; t's files (if no TLS flag and no $AGENTRY_TLS_DIR) from the context's tls-dir, ca,
 * cert and key. */
void cli_config_client_defaults(struct cli_tls *t, const char **token);

#endif
