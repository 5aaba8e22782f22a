/* cmd/agentry/tls_flags.c - see tls_flags.h. */
#include "cmd/agentry/tls_flags.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_tls_flags(struct cli_tls *t, const char *pair, struct ag_flag *flags, size_t *n,
                   size_t cap)
{
    memset(t, 0, sizeof(*t));
    static char help_dir[3][160];
    int i = pair[0] == 'h' ? 0 : pair[0] == 'n' ? 1 : 2; /* static help text per pair */
    snprintf(help_dir[i], sizeof(help_dir[i]),
             "mutual TLS with the files in DIR: ca.crt, %s.crt, %s.key (default "
             "$AGENTRY_TLS_DIR; none: plaintext)",
             pair, pair);
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"tls-dir", 0, AG_FLAG_STR, &t->dir, "DIR", help_dir[i], 0, 0});
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"ca", 0, AG_FLAG_STR, &t->ca, "FILE",
                                   "CA certificate that signs the peer (default DIR/ca.crt)", 0,
                                   0});
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"cert", 0, AG_FLAG_STR, &t->cert, "FILE",
                                   "our certificate (a name without '/' is looked up in --tls-dir)",
                                   0, 0});
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"key", 0, AG_FLAG_STR, &t->key, "FILE",
                                   "the private key of --cert", 0, 0});
}

/* given (a flag) or DIR/<name><ext>. A bare given name is looked up in DIR too. -1 if the path
 * does not fit. */
static int pick(char *out, const char *dir, const char *given, const char *name, const char *ext)
{
    int n;
    if (given && (strchr(given, '/') || !dir))
        n = snprintf(out, PATH_MAX, "%s", given);
    else if (given)
        n = snprintf(out, PATH_MAX, "%s/%s", dir, given);
    else
        n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, ext);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

int cli_tls_resolve(struct cli_tls *t, const char *pair, const struct rpc_tls_files **out,
                    struct ag_err *err)
{
    *out = NULL;
    const char *dir = t->dir;
    if (!dir) { /* the environment's directory, also for --cert/--key picking another pair */
        const char *env = getenv("AGENTRY_TLS_DIR");
        dir = env && *env ? env : NULL;
    }
    if (!dir && !t->ca && !t->cert && !t->key)
        return 0;
    if (!dir && t->no_cert && !t->ca)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "a bearer token needs TLS: --ca FILE (or --tls-dir DIR with ca.crt)");
    if (!dir && !t->no_cert && (!t->ca || !t->cert || !t->key))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "TLS needs --tls-dir DIR, or all of --ca, --cert and --key");
    char key_default[PATH_MAX];
    const char *key = t->key;
    if (!key && t->cert) { /* --cert admin2.crt: its key is admin2.key */
        snprintf(key_default, sizeof(key_default), "%s", t->cert);
        char *dot = strrchr(key_default, '.');
        if (dot && strcmp(dot, ".crt") == 0) {
            strcpy(dot, ".key");
            key = key_default;
        } else {
            return ag_err_set(err, AG_INVALID_ARGUMENT, "--cert '%s' needs --key", t->cert);
        }
    }
    if (pick(t->path[0], dir, t->ca, "ca", ".crt") != 0 ||
        pick(t->path[1], dir, t->cert, pair, ".crt") != 0 ||
        pick(t->path[2], dir, key, pair, ".key") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "a TLS file path is longer than %d bytes",
                          PATH_MAX - 1);
    t->files = (struct rpc_tls_files){.ca = t->path[0], .cert = t->path[1], .key = t->path[2]};
    if (t->no_cert) /* a bearer token instead: verify the hub, show no certificate */
        t->files.cert = t->files.key = NULL;
    *out = &t->files;
    return 0;
}

int cli_tls_cert_name(const char *cert_path, const char *kind, char *buf, size_t cap,
                      struct ag_err *err)
{
    FILE *f = fopen(cert_path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    ERR_clear_error();
    if (!x)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read the certificate '%s'", cert_path);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "agentry://%s/", kind);
    size_t pl = strlen(prefix);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = -1;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && rc != 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        size_t n = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (n > pl && n - pl < cap && strncmp(u, prefix, pl) == 0) {
            memcpy(buf, u + pl, n - pl);
            buf[n - pl] = '\0';
            rc = 0;
        }
    }
    GENERAL_NAMES_free(names);
    X509_free(x);
    if (rc != 0)
        ag_err_set(err, AG_INVALID_ARGUMENT, "the certificate '%s' names no %s (no SAN URI %sNAME)",
                   cert_path, kind, prefix);
    return rc;
}
