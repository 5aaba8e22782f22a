/* cmd/agentry/tls_flags.h - the TLS flags the hub, the node and every client command share:
 * --tls-dir DIR (or $AGENTRY_TLS_DIR) holding ca.crt and <role>.crt/<role>.key, or the three
 * files one by one with --ca/--cert/--key (--cert/--key also pick another pair inside --tls-dir
 * or $AGENTRY_TLS_DIR).
 *
 * Thread: the command's main thread. The paths live in the struct. */
#ifndef AGENTRY_CMD_TLS_FLAGS_H
#define AGENTRY_CMD_TLS_FLAGS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/flags.h"
#include "common/rpc/tls.h"

struct cli_tls {
    const char *dir, *ca, *cert, *key; /* the flags, borrowed from argv */
    char path[3][PATH_MAX];            /* resolved ca, cert, key */
    struct rpc_tls_files files;
    bool no_cert; /* set before cli_tls_resolve: present no certificate (a bearer token) */
};

/* Append the --tls-dir, --ca, --cert and --key rows (cap rows in all). pair names the default
 * pair in the directory ("hub", "node", "admin"), for the help lines. */
void cli_tls_flags(struct cli_tls *t, const char *pair, struct ag_flag *flags, size_t *n,
                   size_t cap);
/* After parsing: *out = the files to use, or NULL for plaintext (no flag and no
 * $AGENTRY_TLS_DIR). -1 with INVALID_ARGUMENT when the flags are incomplete. */
int cli_tls_resolve(struct cli_tls *t, const char *pair, const struct rpc_tls_files **out,
                    struct ag_err *err);

/* The name in the certificate's SAN URI agentry://<kind>/<name> (a node's default --node-id),
 * into buf; -1 with INVALID_ARGUMENT if the file does not parse or names no such identity. */
int cli_tls_cert_name(const char *cert_path, const char *kind, char *buf, size_t cap,
                      struct ag_err *err);

#endif
