/* hub/authn.c - see authn.h. State: one thread-local cache per CQ thread holding the last
 * certificate parsed and its principal, because a client sends many calls on one connection and
 * parsing X.509 per call would cost more than the call. */
#include "hub/authn.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "common/arena.h"

#define AUTHN_URI_PREFIX "agentry://"
#define AUTHN_CACHE_PEM 4096
#define AUTHN_NODE_SERVICE "/agentry.v1.NodeService/"
#define AUTHN_HUB_SERVICE "/agentry.v1.AgentHub/"

static const struct hub_principal anonymous = {
    .kind = HUB_PRINCIPAL_ANONYMOUS, .name = "anonymous", .role = "admin"};

static _Thread_local struct {
    size_t len; /* 0: empty */
    char pem[AUTHN_CACHE_PEM];
    struct hub_principal p;
} cache;

/* One SAN URI "agentry://<what>/<value>" into p. */
static int take_uri(struct hub_principal *p, const char *uri, size_t n, struct ag_err *err)
{
    static const struct {
        const char *what;
        enum hub_principal_kind kind;
    } kinds[] = {
        {"hub", HUB_PRINCIPAL_HUB}, {"node", HUB_PRINCIPAL_NODE}, {"user", HUB_PRINCIPAL_USER}};
    size_t pl = strlen(AUTHN_URI_PREFIX);
    if (n <= pl || strncmp(uri, AUTHN_URI_PREFIX, pl) != 0)
        return 0; /* someone else's URI: not ours to judge */
    const char *what = uri + pl, *end = uri + n;
    const char *slash = memchr(what, '/', (size_t)(end - what));
    if (!slash || slash + 1 == end || (size_t)(end - slash - 1) >= HUB_AUTHN_MAX_NAME)
        return ag_err_set(err, AG_PERMISSION_DENIED, "the certificate's SAN '%.*s' is malformed",
                          (int)n, uri);
    size_t wl = (size_t)(slash - what), vl = (size_t)(end - slash - 1);
    const char *v = slash + 1;
    if (wl == 4 && strncmp(what, "role", 4) == 0) {
        memcpy(p->role, v, vl);
        p->role[vl] = '\0';
        return 0;
    }
    if (wl == 9 && strncmp(what, "namespace", 9) == 0) {
        if (p->nnamespaces < HUB_AUTHN_MAX_NS) {
            memcpy(p->namespaces[p->nnamespaces], v, vl);
            p->namespaces[p->nnamespaces++][vl] = '\0';
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strlen(kinds[i].what) != wl || strncmp(what, kinds[i].what, wl) != 0)
            continue;
        if (p->kind != HUB_PRINCIPAL_ANONYMOUS)
            return ag_err_set(err, AG_PERMISSION_DENIED,
                              "the certificate names more than one identity");
        p->kind = kinds[i].kind;
        memcpy(p->name, v, vl);
        p->name[vl] = '\0';
        return 0;
    }
    return 0; /* an agentry:// URI of a later version: ignored */
}

int hub_authn_parse_cert(const char *pem, size_t len, struct hub_principal *p, struct ag_err *err)
{
    memset(p, 0, sizeof(*p));
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x) {
        ERR_clear_error();
        return ag_err_set(err, AG_PERMISSION_DENIED, "the client certificate does not parse");
    }
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const ASN1_STRING *s = g->d.uniformResourceIdentifier;
        rc = take_uri(p, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s),
                      err);
    }
    GENERAL_NAMES_free(names);
    X509_free(x);
    if (rc == 0 && p->kind == HUB_PRINCIPAL_ANONYMOUS)
        rc = ag_err_set(err, AG_PERMISSION_DENIED,
                        "the client certificate names no agentry:// identity (a SAN URI "
                        "agentry://node/NAME or agentry://user/NAME; see 'agentry certs')");
    return rc;
}

const char *hub_authn_describe(const struct hub_principal *p, char *buf, size_t cap)
{
    static const char *const kind[] = {"anonymous caller", "hub", "node", "user"};
    if (p->kind == HUB_PRINCIPAL_ANONYMOUS)
        snprintf(buf, cap, "%s", kind[0]);
    else
        snprintf(buf, cap, "%s '%s'", kind[p->kind], p->name);
    return buf;
}

static int principal_of(struct rpc_call *c, struct hub_principal *out, struct ag_err *err)
{
    size_t len = 0;
    const char *pem = rpc_call_peer_cert(c, &len);
    if (!pem)
        return ag_err_set(err, AG_UNAUTHENTICATED, "the call carried no client certificate");
    if (cache.len == len && memcmp(cache.pem, pem, len) == 0) {
        *out = cache.p;
        return 0;
    }
    if (hub_authn_parse_cert(pem, len, out, err) != 0)
        return -1;
    if (len <= AUTHN_CACHE_PEM) {
        memcpy(cache.pem, pem, len);
        cache.len = len;
        cache.p = *out;
    }
    return 0;
}

int hub_authn_authorize(struct rpc_call *c, const struct rpc_method *m, struct ag_err *err)
{
    if (!rpc_call_tls(c))
        return 0; /* plaintext: hub_authn_principal answers the anonymous admin */
    struct hub_principal *p = ag_arena_alloc(rpc_call_arena(c), sizeof(*p));
    if (principal_of(c, p, err) != 0)
        return -1;
    bool node_svc = strncmp(m->path, AUTHN_NODE_SERVICE, strlen(AUTHN_NODE_SERVICE)) == 0;
    bool hub_svc = strncmp(m->path, AUTHN_HUB_SERVICE, strlen(AUTHN_HUB_SERVICE)) == 0;
    bool is_node = p->kind == HUB_PRINCIPAL_NODE;
    if ((is_node && !node_svc) || (!is_node && !hub_svc)) {
        char who[HUB_AUTHN_MAX_NAME + 16];
        return ag_err_set(err, AG_PERMISSION_DENIED, "%s may not call %s: %s",
                          hub_authn_describe(p, who, sizeof(who)), m->path,
                          is_node ? "a node certificate may call only NodeService"
                                  : "only a node certificate may call NodeService");
    }
    rpc_call_set_auth(c, p);
    return 0;
}

const struct hub_principal *hub_authn_principal(struct rpc_call *c)
{
    const struct hub_principal *p = rpc_call_auth(c);
    return p ? p : &anonymous;
}

int hub_authn_check_node_id(struct rpc_call *c, const char *node_id, struct ag_err *err)
{
    const struct hub_principal *p = hub_authn_principal(c);
    if (p->kind == HUB_PRINCIPAL_ANONYMOUS || strcmp(p->name, node_id) == 0)
        return 0;
    return ag_err_set(err, AG_PERMISSION_DENIED,
                      "node_id '%s' does not match this node's certificate, which names node '%s'",
                      node_id, p->name);
}
