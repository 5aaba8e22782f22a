/* cmd/agentry/cmd_token.c - 'agentry token create': a new bearer token for a client that cannot
 * hold a certificate. The token (32 random bytes from the kernel, "agt_" + 64 hex digits) is
 * printed once, with the policy entry that grants it: the hub stores only its SHA-256
 * (hub/policy.h), so a lost token is replaced, never recovered, and a leaked policy file gives
 * no token away. Nothing here talks to a hub: paste the entry into the policy file and send the
 * hub SIGHUP. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cmd/agentry/cli.h"
#include "common/flags.h"
#include "common/xalloc.h"
#include "hub/policy.h"
#include "hub/validate.h"

static int token_create(int argc, char **argv)
{
    const char *role = NULL, *name = NULL;
    struct ag_strlist namespaces = {0};
    const struct ag_flag flags[] = {
        {"role", 0, AG_FLAG_STR, &role, "ROLE",
         "what the token may do: admin, operator, viewer, or a role of the policy file", 0, 0},
        {"namespace", 'n', AG_FLAG_LIST, &namespaces, "NS",
         "a namespace it may use, repeatable; '*' for every one (default: default)", 0, 0},
        {"name", 0, AG_FLAG_STR, &name, "NAME",
         "the caller's name in the audit log, as token/NAME (default: the role)", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry token create --role ROLE [--namespace NS ...] [--name NAME]",
        "Make a bearer token and print it once, with the entry to add under 'tokens:' in the\n"
        "hub's --policy file (then send the hub SIGHUP). The file stores only the token's\n"
        "SHA-256. Clients send it as 'authorization: Bearer TOKEN' over TLS (agentry --token).",
        "agentry token create --role viewer --namespace team-a --name dashboard"};
    struct ag_err err = AG_ERR_INIT;
    size_t npos = 0;
    int rc = ag_flags_parse("token create", flags, AG_ARRAY_SIZE(flags), argc, argv, NULL, 0, &npos,
                            &err);
    if (rc == 1) {
        ag_flags_print_help(stdout, &help, flags, AG_ARRAY_SIZE(flags));
        rc = CLI_OK;
        goto out;
    }
    if (rc == 0 && (!role || !*role))
        rc = ag_err_set(&err, AG_INVALID_ARGUMENT, "--role is required (admin, operator, viewer)");
    for (size_t i = 0; rc == 0 && i < namespaces.n; i++) /* what the policy would refuse */
        if (strcmp(namespaces.items[i], "*") != 0)
            rc = hub_validate_namespace(namespaces.items[i], &err);
    if (rc != 0) {
        rc = cli_usage_error(&err);
        goto out;
    }
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        perror("error: cannot read random bytes");
        rc = CLI_FAIL;
        goto out;
    }
    char token[4 + 64 + 1] = "agt_", hash[65];
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(token + 4 + 2 * i, 3, "%02x", raw[i]);
    hub_policy_token_hash(token, hash);
    printf(
        "token: %s\n\n# add under 'tokens:' in the hub's policy file, then: kill -HUP <hub pid>\n"
        "  - name: %s\n    sha256: %s\n    role: %s\n    namespaces: [",
        token, name && *name ? name : role, hash, role);
    if (!namespaces.n)
        printf("default");
    for (size_t i = 0; i < namespaces.n; i++) {
        bool all = strcmp(namespaces.items[i], "*") == 0; /* YAML needs "*" quoted */
        printf("%s%s", i ? ", " : "", all ? "\"*\"" : namespaces.items[i]);
    }
    printf("]\n");
    rc = CLI_OK;
out:
    ag_strlist_release(&namespaces);
    return rc;
}

int cli_cmd_token(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "create") == 0)
        return token_create(argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: agentry token create --role ROLE [--namespace NS ...] [--name NAME]\n\n"
               "Make a bearer token for the hub's policy file. See 'agentry token create "
               "--help'.\n");
        return CLI_OK;
    }
    fprintf(stderr, "error: unknown token command '%s' (want 'agentry token create')\n",
            argc >= 1 ? argv[0] : "");
    return CLI_USAGE;
}
