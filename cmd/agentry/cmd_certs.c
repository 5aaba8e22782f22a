/* cmd/agentry/cmd_certs.c - 'agentry certs init|issue|show': a private CA and the certificates a
 * hub, its nodes and its users present to each other (common/certs.h has the rules and the
 * identity URIs). It talks to no hub.
 *
 * init checks every file it would write before writing any, so a refusal (a file exists, no
 * --force) leaves the directory as it was. Exit codes: 2 for a bad flag or value, 1 for a file
 * that cannot be read or written or already exists. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/certs.h"
#include "common/xalloc.h"

/* The files init writes, in order: "<base>.crt" and "<base>.key" under DIR. */
static const char *const init_bases[] = {"ca", "hub", "node", "admin"};

/* The SANs every hub certificate has, so a hub is reachable as localhost in all its spellings. */
static const char *const local_hosts[] = {"localhost", "127.0.0.1", "::1"};

static char *path_of(const char *dir, const char *base, const char *ext)
{
    return ag_xasprintf("%s/%s.%s", dir, base, ext);
}

/* Bad --days is usage (exit 2); the flag table cannot range-check an int flag with default 0. */
static bool days_ok(int64_t days, int *rc)
{
    if (days >= 1 && days <= AG_CERTS_MAX_DAYS)
        return true;
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, AG_INVALID_ARGUMENT, "invalid value '%lld' for --days (want 1..%d)",
               (long long)days, AG_CERTS_MAX_DAYS);
    *rc = cli_usage_error(&err);
    return false;
}

static bool need_flag(const char *cmd, const char *value, const char *flag, int *rc)
{
    if (value && *value)
        return true;
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, AG_INVALID_ARGUMENT, "missing %s (see 'agentry %s --help')", flag, cmd);
    *rc = cli_usage_error(&err);
    return false;
}

/* Issue one leaf and write DIR/base.crt and .key, printing both paths. */
static int issue_to(const struct ag_certs_ca *ca, const struct ag_certs_leaf *leaf, const char *crt,
                    const char *key, bool force, struct ag_err *err)
{
    char *cert_pem = NULL, *key_pem = NULL;
    if (ag_certs_issue(ca, leaf, &cert_pem, &key_pem, err) != 0)
        return -1;
    int rc = ag_certs_write_pair(crt, cert_pem, key, key_pem, force, err);
    free(cert_pem);
    free(key_pem);
    if (rc == 0) {
        printf("wrote %s (%s %s, role %s)\n", crt, ag_certs_kind_name(leaf->kind), leaf->name,
               ag_certs_role_name(leaf->role));
        printf("wrote %s (its private key, mode 0600)\n", key);
    }
    return rc;
}

/* The hub's SANs: --hosts, then localhost and its addresses, without repeats. */
static size_t hub_hosts(const struct ag_strlist *hosts, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < hosts->n + AG_ARRAY_SIZE(local_hosts) && n < cap; i++) {
        const char *h = i < hosts->n ? hosts->items[i] : local_hosts[i - hosts->n];
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(out[j], h) == 0;
        if (!dup)
            out[n++] = h;
    }
    return n;
}

static int init_write(const char *dir, const struct ag_strlist *hosts, int days, bool force,
                      struct ag_err *err)
{
    struct ag_certs_ca *ca = NULL;
    /* A leaf may not outlive its CA (ag_certs_issue): the CA lives a day longer than they. */
    if (ag_certs_ca_new(days >= AG_CERTS_CA_DAYS ? days + 1 : AG_CERTS_CA_DAYS, &ca, err) != 0)
        return -1;
    char *p[2 * AG_ARRAY_SIZE(init_bases)];
    for (size_t i = 0; i < AG_ARRAY_SIZE(init_bases); i++) {
        p[2 * i] = path_of(dir, init_bases[i], "crt");
        p[2 * i + 1] = path_of(dir, init_bases[i], "key");
    }
    const char *sans[64];
    size_t nsans = hub_hosts(hosts, sans, AG_ARRAY_SIZE(sans));
    const char *hub_name = hosts->n > 0 && ag_certs_name_valid(hosts->items[0]) ? hosts->items[0]
                                                                                : "hub";
    const struct ag_certs_leaf hub = {
        AG_CERTS_KIND_HUB, hub_name, AG_CERTS_ROLE_NONE, NULL, 0, sans, nsans, true, true, days};
    const struct ag_certs_leaf node = {
        AG_CERTS_KIND_NODE, "node1", AG_CERTS_ROLE_NODE, NULL, 0, NULL, 0, false, true, days};
    const struct ag_certs_leaf admin = {
        AG_CERTS_KIND_USER, "admin", AG_CERTS_ROLE_ADMIN, NULL, 0, NULL, 0, false, true, days};
    int rc = 0;
    for (size_t i = 0; rc == 0 && !force && i < AG_ARRAY_SIZE(p); i++)
        rc = ag_certs_check_absent(p[i], err);
    if (rc == 0 && (rc = ag_certs_ca_write(ca, p[0], p[1], force, err)) == 0) {
        printf("wrote %s (the CA; give it to every hub, node and client)\n", p[0]);
        printf("wrote %s (the CA's private key, mode 0600: keep it offline)\n", p[1]);
    }
    if (rc == 0)
        rc = issue_to(ca, &hub, p[2], p[3], force, err);
    if (rc == 0)
        rc = issue_to(ca, &node, p[4], p[5], force, err);
    if (rc == 0)
        rc = issue_to(ca, &admin, p[6], p[7], force, err);
    for (size_t i = 0; i < AG_ARRAY_SIZE(p); i++)
        free(p[i]);
    ag_certs_ca_free(ca);
    return rc;
}

static int certs_init(int argc, char **argv)
{
    const char *dir = NULL;
    struct ag_strlist hosts = {0};
    int64_t days = AG_CERTS_LEAF_DAYS;
    bool force = false;
    const struct ag_flag flags[] = {
        {"dir", 0, AG_FLAG_STR, &dir, "DIR", "directory to write into (created if missing)", 0, 0},
        {"hosts", 0, AG_FLAG_LIST, &hosts, "H1,H2",
         "the hub's DNS names or IP addresses (localhost, 127.0.0.1 and ::1 are always added)", 0,
         0},
        {"days", 0, AG_FLAG_INT, &days, "N",
         "validity of the hub, node and admin certificates (default 365; the CA gets 3650 days, "
         "or N+1 if longer)",
         0, 0},
        {"force", 0, AG_FLAG_BOOL, &force, NULL, "replace existing files", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry certs init --dir DIR [--hosts H1,H2] [--days N] [--force]",
        "Create a CA and, signed by it, a hub certificate (kind hub, named after the first host), a "
        "node certificate (node1, role node) and an admin client certificate (admin, role admin), "
        "each with its key, in DIR: ca.crt ca.key hub.crt hub.key node.crt node.key admin.crt "
        "admin.key. Keys are written 0600. Nothing is written if any of the files exists, unless "
        "--force.",
        "agentry certs init --dir /etc/agentry/tls --hosts hub.example.com,10.0.0.5",
    };
    size_t npos;
    int rc;
    if (!cli_parse("certs init", &help, flags, AG_ARRAY_SIZE(flags), argc, argv, NULL, 0, &npos,
                   &rc) ||
        !need_flag("certs init", dir, "--dir", &rc) || !days_ok(days, &rc))
        goto out;
    struct ag_err err = AG_ERR_INIT;
    for (size_t i = 0; i < hosts.n; i++)
        if (!ag_certs_host_valid(hosts.items[i])) {
            ag_err_set(&err, AG_INVALID_ARGUMENT,
                       "invalid value '%s' for --hosts (want DNS names or IP addresses)",
                       hosts.items[i]);
            rc = cli_usage_error(&err);
            goto out;
        }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        ag_err_set(&err, AG_UNAVAILABLE, "cannot create '%s': %s", dir, strerror(errno));
        rc = cli_fail(&err);
        goto out;
    }
    if (init_write(dir, &hosts, (int)days, force, &err) != 0) {
        rc = cli_fail(&err);
        goto out;
    }
    printf(
        "\nnext: the hub uses ca.crt, hub.crt and hub.key (--tls-dir %s, or --ca/--cert/--key);\n"
        "      a node uses ca.crt, node.crt and node.key (its --node-id must be node1);\n"
        "      the CLI uses ca.crt, admin.crt and admin.key.\n"
        "      More with 'agentry certs issue --dir %s --role ROLE --name NAME'.\n",
        dir, dir);
    rc = CLI_OK;
out:
    ag_strlist_release(&hosts);
    return rc;
}

static int certs_issue(int argc, char **argv)
{
    const char *dir = NULL, *role_s = NULL, *name = NULL, *out = NULL;
    struct ag_strlist ns = {0};
    int64_t days = AG_CERTS_LEAF_DAYS;
    bool force = false;
    const struct ag_flag flags[] = {
        {"dir", 0, AG_FLAG_STR, &dir, "DIR", "where ca.crt and ca.key are", 0, 0},
        {"role", 0, AG_FLAG_STR, &role_s, "ROLE", "node, admin, operator or viewer", 0, 0},
        {"name", 0, AG_FLAG_STR, &name, "NAME",
         "the node id (role node) or user name: 1..128 of [A-Za-z0-9._-]", 0, 0},
        {"namespace", 0, AG_FLAG_LIST, &ns, "NS", "a namespace the holder may use; repeatable", 0,
         0},
        {"days", 0, AG_FLAG_INT, &days, "N", "validity in days (default 365)", 0, 0},
        {"out", 0, AG_FLAG_STR, &out, "PREFIX",
         "write PREFIX.crt and PREFIX.key (default DIR/NAME)", 0, 0},
        {"force", 0, AG_FLAG_BOOL, &force, NULL, "replace existing files", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry certs issue --dir DIR --role ROLE --name NAME [--namespace NS ...] [--days N] "
        "[--out PREFIX] [--force]",
        "Issue a client certificate signed by DIR/ca.crt and DIR/ca.key: role node makes a node "
        "certificate (agentry://node/NAME), the others a user one (agentry://user/NAME).",
        "agentry certs issue --dir tls --role operator --name ci --namespace team-a",
    };
    size_t npos;
    int rc;
    struct ag_err err = AG_ERR_INIT;
    enum ag_certs_role role;
    struct ag_certs_ca *ca = NULL;
    char *crt = NULL, *key = NULL, *ca_crt = NULL, *ca_key = NULL;
    if (!cli_parse("certs issue", &help, flags, AG_ARRAY_SIZE(flags), argc, argv, NULL, 0, &npos,
                   &rc) ||
        !need_flag("certs issue", dir, "--dir", &rc) ||
        !need_flag("certs issue", role_s, "--role", &rc) ||
        !need_flag("certs issue", name, "--name", &rc) || !days_ok(days, &rc))
        goto done;
    if (ag_certs_role_parse(role_s, &role, &err) != 0) {
        ag_err_prefix(&err, "invalid value for --role");
        rc = cli_usage_error(&err);
        goto done;
    }
    const struct ag_certs_leaf leaf = {
        role == AG_CERTS_ROLE_NODE ? AG_CERTS_KIND_NODE : AG_CERTS_KIND_USER,
        name,
        role,
        (const char *const *)ns.items,
        ns.n,
        NULL,
        0,
        false,
        true,
        (int)days,
    };
    /* Checked before the CA is read, so a bad value is a usage error whatever the files. */
    if (ag_certs_leaf_check(&leaf, &err) != 0) {
        rc = cli_usage_error(&err);
        goto done;
    }
    ca_crt = path_of(dir, "ca", "crt");
    ca_key = path_of(dir, "ca", "key");
    crt = out ? ag_xasprintf("%s.crt", out) : path_of(dir, name, "crt");
    key = out ? ag_xasprintf("%s.key", out) : path_of(dir, name, "key");
    if (ag_certs_ca_load(ca_crt, ca_key, &ca, &err) != 0 ||
        issue_to(ca, &leaf, crt, key, force, &err) != 0) {
        rc = cli_fail(&err);
        goto done;
    }
    rc = CLI_OK;
done:
    ag_certs_ca_free(ca);
    free(crt);
    free(key);
    free(ca_crt);
    free(ca_key);
    ag_strlist_release(&ns);
    return rc;
}

static const char *utc(int64_t t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "%lld", (long long)t);
    return buf;
}

static void show_json(const char *file, const struct ag_certs_info *in)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "kind", ag_certs_kind_name(in->id.kind));
    cJSON_AddStringToObject(o, "name", in->id.name);
    cJSON_AddStringToObject(o, "role", ag_certs_role_name(in->id.role));
    cJSON *ns = cJSON_AddArrayToObject(o, "namespaces");
    for (size_t i = 0; i < in->id.n_namespaces; i++)
        cJSON_AddItemToArray(ns, cJSON_CreateString(in->id.namespaces[i]));
    if (in->id_error[0])
        cJSON_AddStringToObject(o, "identity_error", in->id_error);
    cJSON_AddStringToObject(o, "not_before", utc(in->not_before, t, sizeof(t)));
    cJSON_AddStringToObject(o, "not_after", utc(in->not_after, t, sizeof(t)));
    cJSON_AddNumberToObject(o, "not_before_unix", (double)in->not_before);
    cJSON_AddNumberToObject(o, "not_after_unix", (double)in->not_after);
    cJSON_AddStringToObject(o, "subject", in->subject);
    cJSON_AddStringToObject(o, "issuer", in->issuer);
    cJSON_AddBoolToObject(o, "is_ca", in->is_ca);
    cJSON *sans = cJSON_AddArrayToObject(o, "sans");
    for (size_t i = 0; i < in->n_sans; i++)
        cJSON_AddItemToArray(sans, cJSON_CreateString(in->sans[i]));
    cli_print_json(stdout, o, false);
}

static void show_text(const char *file, const struct ag_certs_info *in)
{
    char t[32];
    printf("file:        %s\n", file);
    if (in->id_error[0])
        printf("identity:    none (%s)\n", in->id_error);
    printf("kind:        %s\n", ag_certs_kind_name(in->id.kind));
    printf("name:        %s\n", in->id.name[0] ? in->id.name : "-");
    printf("role:        %s\n", ag_certs_role_name(in->id.role));
    printf("namespaces:  ");
    for (size_t i = 0; i < in->id.n_namespaces; i++)
        printf("%s%s", i ? ", " : "", in->id.namespaces[i]);
    printf("%s\n", in->id.n_namespaces ? "" : "-");
    printf("not_before:  %s\n", utc(in->not_before, t, sizeof(t)));
    printf("not_after:   %s\n", utc(in->not_after, t, sizeof(t)));
    printf("subject:     %s\n", in->subject);
    printf("issuer:      %s\n", in->issuer);
    printf("ca:          %s\n", in->is_ca ? "yes" : "no");
    printf("sans:        ");
    for (size_t i = 0; i < in->n_sans; i++)
        printf("%s%s", i ? ", " : "", in->sans[i]);
    printf("%s\n", in->n_sans ? "" : "-");
}

static int certs_show(int argc, char **argv)
{
    bool json = false;
    const struct ag_flag flags[] = {
        {"json", 0, AG_FLAG_BOOL, &json, NULL, "print JSON", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry certs show [--json] FILE",
        "Print a certificate's agentry identity (kind, name, role, namespaces), validity, subject, "
        "issuer and subjectAltNames.",
        "agentry certs show tls/node.crt",
    };
    char *file = NULL;
    size_t npos;
    int rc;
    if (!cli_parse("certs show", &help, flags, AG_ARRAY_SIZE(flags), argc, argv, &file, 1, &npos,
                   &rc) ||
        !cli_need_args("certs show", &file, npos, 1, "FILE", &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    char *pem;
    size_t len;
    struct ag_certs_info info;
    if (ag_certs_read_file(file, &pem, &len, &err) != 0)
        return cli_fail(&err);
    rc = ag_certs_info_read(pem, len, &info, &err);
    free(pem);
    if (rc != 0) {
        ag_err_prefix(&err, "cannot read a certificate from '%s'", file);
        return cli_fail(&err);
    }
    if (json)
        show_json(file, &info);
    else
        show_text(file, &info);
    ag_certs_info_release(&info);
    return CLI_OK;
}

int cli_cmd_certs(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    if (strcmp(sub, "init") == 0)
        return certs_init(argc - 1, argv + 1);
    if (strcmp(sub, "issue") == 0)
        return certs_issue(argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0)
        return certs_show(argc - 1, argv + 1);
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        printf("usage: agentry certs init|issue|show [flags] ...\n\n"
               "  init   create a CA and hub, node and admin certificates in a directory\n"
               "  issue  sign another node or user certificate with that CA\n"
               "  show   print a certificate's identity, validity and names\n\n"
               "See 'agentry certs SUBCOMMAND --help'.\n");
        return CLI_OK;
    }
    fprintf(stderr,
            "error: unknown certs command '%s' (want init, issue or show; see 'agentry certs "
            "--help')\n",
            sub);
    return CLI_USAGE;
}
