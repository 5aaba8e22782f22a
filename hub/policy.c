/* hub/policy.c - the RBAC policy file (see policy.h for its format and rules), parsed with
 * libyaml's document API: the whole file is small, so it is loaded as one tree and walked.
 *
 * A role is a set of RPC names (a bit per row of rpc_names). Bindings and tokens are arrays,
 * searched linearly: a policy holds tens of entries, and a caller is resolved once per call. */
#include "hub/policy.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/xalloc.h"
#include "hub/validate.h"

/* Every RPC a role may name, AgentHub's and NodeService's. */
static const char *const rpc_names[] = {
    "Ping",           "Spawn",         "SendMessage",     "Trace",         "Invoke",
    "GetAgent",       "ListAgents",    "KillAgent",       "ResumeAgent",   "ExportAgent",
    "ImportAgent",    "ListNodes",     "CordonNode",      "DrainNode",     "Connect",
    "CreateSchedule", "ListSchedules", "GetSchedule",     "PauseSchedule", "ResumeSchedule",
    "DeleteSchedule", "ListMemory",    "GetMemory",       "ListApprovals", "ApproveCall",
    "DenyCall",       "DeleteAgent",   "GetUsageHistory",
};
/* A role is a 32-bit mask: a row past the 32nd needs a wider one. */
_Static_assert(sizeof(rpc_names) / sizeof(rpc_names[0]) <= 32, "rpc_names outgrew the role mask");
#define NRPC (sizeof(rpc_names) / sizeof(rpc_names[0]))

static uint32_t rpc_bit(const char *name)
{
    for (size_t i = 0; i < NRPC; i++)
        if (strcmp(rpc_names[i], name) == 0)
            return 1u << i;
    return 0;
}

struct role {
    char name[HUB_POLICY_NAME_MAX + 1];
    uint32_t rpcs;
};

struct entry { /* a binding (key: identity) or a token (key: name; hash) */
    char key[HUB_POLICY_NAME_MAX * 2 + 2];
    char hash[65];
    struct hub_policy_grant grant; /* namespaces owned */
};

struct hub_policy {
    struct role *roles;
    size_t nroles;
    struct entry *bindings, *tokens;
    size_t nbindings, ntokens;
};

/* --- built-in roles -------------------------------------------------------------------------- */

static uint32_t bits(const char *const *names)
{
    uint32_t b = 0;
    for (; *names; names++)
        b |= rpc_bit(*names);
    return b;
}

static void add_role(struct hub_policy *p, const char *name, uint32_t rpcs)
{
    p->roles = ag_xrealloc(p->roles, (p->nroles + 1) * sizeof(*p->roles));
    snprintf(p->roles[p->nroles].name, sizeof(p->roles[0].name), "%s", name);
    p->roles[p->nroles++].rpcs = rpcs;
}

static struct hub_policy *with_builtins(void)
{
    static const char *const viewer[] = {"Ping",          "GetAgent",        "ListAgents",
                                         "Trace",         "ListNodes",       "ListSchedules",
                                         "GetSchedule",   "ListMemory",      "GetMemory",
                                         "ListApprovals", "GetUsageHistory", NULL};
    static const char *const operator_only[] = {
        "Spawn",          "SendMessage", "Invoke",         "KillAgent",     "ResumeAgent",
        "CordonNode",     "DrainNode",   "CreateSchedule", "PauseSchedule", "ResumeSchedule",
        "DeleteSchedule", "ApproveCall", "DenyCall",       "DeleteAgent",   NULL};
    static const char *const node[] = {"Connect", NULL};
    struct hub_policy *p = ag_xcalloc(1, sizeof(*p));
    add_role(p, "admin", ((1u << NRPC) - 1) & ~rpc_bit("Connect"));
    add_role(p, "operator", bits(viewer) | bits(operator_only));
    add_role(p, "viewer", bits(viewer));
    add_role(p, "node", bits(node));
    return p;
}

static const struct role *role_find(const struct hub_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nroles; i++)
        if (strcmp(p->roles[i].name, name) == 0)
            return &p->roles[i];
    return NULL;
}

struct hub_policy *hub_policy_default(void)
{
    return with_builtins();
}

static void grant_release(struct hub_policy_grant *g)
{
    for (size_t i = 0; i < g->nnamespaces; i++)
        free(g->namespaces[i]);
    free(g->namespaces);
}

void hub_policy_free(struct hub_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nbindings; i++)
        grant_release(&p->bindings[i].grant);
    for (size_t i = 0; i < p->ntokens; i++)
        grant_release(&p->tokens[i].grant);
    free(p->bindings);
    free(p->tokens);
    free(p->roles);
    free(p);
}

/* --- parsing --------------------------------------------------------------------------------- */

struct parse {
    const char *path;
    yaml_document_t doc;
    struct hub_policy *p;
    struct ag_err *err;
};

static int fail(struct parse *ps, const yaml_node_t *at, const char *fmt, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof(msg), fmt, what);
    return ag_err_set(ps->err, AG_INVALID_ARGUMENT, "%s:%zu: %s", ps->path,
                      at ? at->start_mark.line + 1 : 1, msg);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool name_ok(const char *s, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > HUB_POLICY_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

/* The value of key in mapping m, or NULL. */
static yaml_node_t *get(struct parse *ps, const yaml_node_t *m, const char *key)
{
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        const char *k = scalar(yaml_document_get_node(&ps->doc, pr->key));
        if (k && strcmp(k, key) == 0)
            return yaml_document_get_node(&ps->doc, pr->value);
    }
    return NULL;
}

/* Every key of mapping m is one of allowed (NULL-terminated). */
static int only_keys(struct parse *ps, const yaml_node_t *m, const char *const *allowed)
{
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&ps->doc, pr->key);
        const char *k = scalar(kn);
        bool ok = false;
        for (const char *const *a = allowed; k && *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok)
            return fail(ps, kn, "unknown key '%s'", k ? k : "(not a string)");
    }
    return 0;
}

static int parse_namespaces(struct parse *ps, const yaml_node_t *seq, struct hub_policy_grant *g)
{
    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        return fail(ps, seq, "%s must be a list of namespaces (or [\"*\"])", "namespaces");
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *n = yaml_document_get_node(&ps->doc, *it);
        const char *s = scalar(n);
        if (s && strcmp(s, "*") == 0) {
            g->all_namespaces = true;
            continue;
        }
        struct ag_err why = AG_ERR_INIT;
        if (!s || hub_validate_namespace(s, &why) != 0)
            return fail(ps, n,
                        "bad namespace '%s': 1..63 characters of [a-z0-9-], alphanumeric at "
                        "both ends, or \"*\"",
                        s ? s : "(not a string)");
        g->namespaces = ag_xrealloc(g->namespaces, (g->nnamespaces + 1) * sizeof(char *));
        g->namespaces[g->nnamespaces++] = ag_xstrdup(s);
    }
    return 0;
}

static int parse_roles(struct parse *ps, const yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return fail(ps, m, "%s must map role names to lists of RPCs", "roles");
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&ps->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&ps->doc, pr->value);
        const char *name = scalar(kn);
        if (!name || !name_ok(name, "._-"))
            return fail(ps, kn, "bad role name '%s'", name ? name : "(not a string)");
        if (role_find(ps->p, name))
            return fail(ps, kn, "role '%s' is defined twice (or is a built-in one)", name);
        if (vn->type != YAML_SEQUENCE_NODE)
            return fail(ps, vn, "role '%s' must be a list of RPC names", name);
        uint32_t rpcs = 0;
        for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
             it++) {
            yaml_node_t *n = yaml_document_get_node(&ps->doc, *it);
            const char *r = scalar(n);
            uint32_t b = r ? rpc_bit(r) : 0;
            if (!b)
                return fail(ps, n, "unknown RPC '%s' (AgentHub's method names, or Connect)",
                            r ? r : "(not a string)");
            rpcs |= b;
        }
        if ((rpcs & rpc_bit("Connect")) && rpcs != rpc_bit("Connect"))
            return fail(ps, kn, "role '%s' mixes Connect (nodes only) with client RPCs", name);
        add_role(ps->p, name, rpcs);
    }
    return 0;
}

/* One binding or token entry into e. */
static int parse_entry(struct parse *ps, const yaml_node_t *m, bool token, struct entry *e)
{
    static const char *const bkeys[] = {"identity", "role", "namespaces", NULL};
    static const char *const tkeys[] = {"name", "sha256", "role", "namespaces", NULL};
    if (m->type != YAML_MAPPING_NODE)
        return fail(ps, m, "%s entries must be mappings", token ? "tokens" : "bindings");
    if (only_keys(ps, m, token ? tkeys : bkeys))
        return -1;
    const char *key = scalar(get(ps, m, token ? "name" : "identity"));
    const char *role = scalar(get(ps, m, "role"));
    if (!key)
        return fail(ps, m, "an entry without %s", token ? "name" : "identity");
    if (token ? !name_ok(key, "._-") : (!strchr(key, '/') || !name_ok(key, "._-/")))
        return fail(ps, m,
                    token ? "bad token name '%s'"
                          : "bad identity '%s': want <kind>/<name>, as user/alice or node/n1",
                    key);
    if (!role || !role_find(ps->p, role))
        return fail(ps, m, "unknown role '%s'", role ? role : "(none)");
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->grant.role, sizeof(e->grant.role), "%s", role);
    if (token) {
        const char *h = scalar(get(ps, m, "sha256"));
        bool hex = h && strlen(h) == 64;
        for (size_t i = 0; hex && i < 64; i++)
            hex = isxdigit((unsigned char)h[i]) && !isupper((unsigned char)h[i]);
        if (!hex)
            return fail(ps, m,
                        "token '%s' needs sha256: 64 lowercase hex digits (agentry token "
                        "create prints it)",
                        key);
        memcpy(e->hash, h, 65);
    }
    yaml_node_t *ns = get(ps, m, "namespaces");
    return ns ? parse_namespaces(ps, ns, &e->grant) : 0;
}

static int parse_list(struct parse *ps, const yaml_node_t *seq, bool token)
{
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ps, seq, "%s must be a list", token ? "tokens" : "bindings");
    struct entry **arr = token ? &ps->p->tokens : &ps->p->bindings;
    size_t *n = token ? &ps->p->ntokens : &ps->p->nbindings;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *m = yaml_document_get_node(&ps->doc, *it);
        *arr = ag_xrealloc(*arr, (*n + 1) * sizeof(**arr));
        struct entry *e = &(*arr)[*n];
        memset(e, 0, sizeof(*e));
        ++*n; /* counted at once: freed with the policy even if the entry fails */
        if (parse_entry(ps, m, token, e))
            return -1;
        for (size_t i = 0; i + 1 < *n; i++)
            if (strcmp((*arr)[i].key, e->key) == 0)
                return fail(
                    ps, m, token ? "token name '%s' is used twice" : "identity '%s' is bound twice",
                    e->key);
    }
    return 0;
}

struct hub_policy *hub_policy_load(const char *path, struct ag_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read policy file '%s': %m", path);
        return NULL;
    }
    struct parse ps = {.path = path, .p = with_builtins(), .err = err};
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &ps.doc)) {
        rc = ag_err_set(err, AG_INVALID_ARGUMENT, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                        parser.problem ? parser.problem : "not YAML");
        yaml_parser_delete(&parser);
        fclose(f);
        hub_policy_free(ps.p);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&ps.doc);
    static const char *const top[] = {"roles", "bindings", "tokens", NULL};
    if (!root) { /* an empty file: built-in roles only */
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = fail(&ps, root, "%s", "the policy must be a mapping with roles, bindings, tokens");
    } else if (!(rc = only_keys(&ps, root, top))) {
        yaml_node_t *n;
        if ((n = get(&ps, root, "roles")))
            rc = parse_roles(&ps, n);
        if (!rc && (n = get(&ps, root, "bindings")))
            rc = parse_list(&ps, n, false);
        if (!rc && (n = get(&ps, root, "tokens")))
            rc = parse_list(&ps, n, true);
    }
    yaml_document_delete(&ps.doc);
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc) {
        hub_policy_free(ps.p);
        return NULL;
    }
    return ps.p;
}

/* --- decisions ------------------------------------------------------------------------------- */

int hub_policy_for_identity(const struct hub_policy *p, const char *identity, const char *cert_role,
                            char *const *cert_namespaces, size_t n, struct hub_policy_grant *out,
                            struct ag_err *err)
{
    for (size_t i = 0; i < p->nbindings; i++)
        if (strcmp(p->bindings[i].key, identity) == 0) {
            *out = p->bindings[i].grant;
            return 0;
        }
    if (!cert_role || !*cert_role || !role_find(p, cert_role))
        return ag_err_set(err, AG_PERMISSION_DENIED,
                          "'%s' has no role: its certificate names %s%s%s and the policy binds "
                          "it to none",
                          identity, cert_role && *cert_role ? "role '" : "none",
                          cert_role && *cert_role ? cert_role : "",
                          cert_role && *cert_role ? "' (unknown here)" : "");
    memset(out, 0, sizeof(*out));
    snprintf(out->role, sizeof(out->role), "%s", cert_role);
    out->all_namespaces = strcmp(cert_role, "admin") == 0; /* an admin certificate: all */
    out->namespaces = (char **)cert_namespaces;
    out->nnamespaces = n;
    return 0;
}

void hub_policy_token_hash(const char *token, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int hub_policy_for_token(const struct hub_policy *p, const char *token, char *name,
                         struct hub_policy_grant *out, struct ag_err *err)
{
    char h[65];
    hub_policy_token_hash(token, h);
    const struct entry *found = NULL;
    for (size_t i = 0; i < p->ntokens; i++) /* every entry compared: no early exit */
        if (CRYPTO_memcmp(p->tokens[i].hash, h, 64) == 0)
            found = &p->tokens[i];
    if (!found)
        return ag_err_set(err, AG_UNAUTHENTICATED,
                          "the bearer token is not known to this hub (revoked, or mistyped)");
    snprintf(name, HUB_POLICY_NAME_MAX + 1, "%.*s", HUB_POLICY_NAME_MAX, found->key);
    *out = found->grant;
    return 0;
}

bool hub_policy_allows(const struct hub_policy *p, const char *role, const char *rpc)
{
    const struct role *r = role_find(p, role);
    uint32_t b = rpc_bit(rpc);
    return r && b && (r->rpcs & b);
}

bool hub_policy_grant_has(const struct hub_policy_grant *g, const char *ns)
{
    if (g->all_namespaces)
        return true;
    for (size_t i = 0; i < g->nnamespaces; i++)
        if (strcmp(g->namespaces[i], ns) == 0)
            return true;
    return false;
}
