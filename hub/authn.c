/* hub/authn.c - see authn.h. State: one thread-local cache per CQ thread holding the last
 * certificate parsed and its principal, because a client sends many calls on one connection and
 * parsing X.509 per call would cost more than the call; and the process's forwarding secret,
 * made once (pthread_once) from getrandom and never written anywhere. */
#include "hub/authn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/arena.h"
#include "common/certs.h"
#include "common/log.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/audit.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/policy.h"

#define AUTHN_CACHE_PEM 4096
#define AUTHN_NODE_SERVICE "/agentry.v1.NodeService/"
#define AUTHN_HUB_SERVICE "/agentry.v1.AgentHub/"
/* grpc.health.v1 and grpc.reflection: infrastructure, answered to any authenticated caller. */
#define AUTHN_GRPC_SERVICES "/grpc."

static const struct hub_principal anonymous = {.kind = HUB_PRINCIPAL_ANONYMOUS,
                                               .name = "anonymous",
                                               .role = "admin",
                                               .identity = "anonymous",
                                               .grant_role = "admin",
                                               .all_namespaces = true};

static _Thread_local struct {
    size_t len; /* 0: empty */
    char pem[AUTHN_CACHE_PEM];
    struct hub_principal p;
} cache;

int hub_authn_parse_cert(const char *pem, size_t len, struct hub_principal *p, struct ag_err *err)
{
    static const enum hub_principal_kind kinds[] = {[AG_CERTS_KIND_NONE] = HUB_PRINCIPAL_ANONYMOUS,
                                                    [AG_CERTS_KIND_HUB] = HUB_PRINCIPAL_HUB,
                                                    [AG_CERTS_KIND_NODE] = HUB_PRINCIPAL_NODE,
                                                    [AG_CERTS_KIND_USER] = HUB_PRINCIPAL_USER};
    memset(p, 0, sizeof(*p));
    struct ag_certs_identity id;
    if (ag_certs_identity_parse(pem, len, &id, err) != 0) {
        err->code = AG_PERMISSION_DENIED;
        return -1;
    }
    p->kind = kinds[id.kind];
    snprintf(p->name, sizeof(p->name), "%s", id.name);
    if (id.role != AG_CERTS_ROLE_NONE)
        snprintf(p->role, sizeof(p->role), "%s", ag_certs_role_name(id.role));
    for (size_t i = 0; i < id.n_namespaces && p->nnamespaces < HUB_AUTHN_MAX_NS; i++)
        snprintf(p->namespaces[p->nnamespaces++], HUB_AUTHN_MAX_NAME + 1, "%s", id.namespaces[i]);
    return 0;
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

/* --- certificates forwarded by the dashboard ------------------------------------------------ */

static pthread_once_t secret_once = PTHREAD_ONCE_INIT;
static char secret[2 * HUB_AUTHN_SECRET_BYTES + 1];

static void secret_make(void)
{
    unsigned char r[HUB_AUTHN_SECRET_BYTES];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        abort(); /* no entropy at all: nothing else in the hub would be safe either */
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(secret + 2 * i, 3, "%02x", r[i]);
}

const char *hub_authn_forward_secret(void)
{
    pthread_once(&secret_once, secret_make);
    return secret;
}

/* a == the secret, in time that does not depend on where they differ. */
static bool secret_eq(const char *a)
{
    const char *s = hub_authn_forward_secret();
    size_t n = strlen(s);
    if (strlen(a) != n) /* the length is public: always 2 * HUB_AUTHN_SECRET_BYTES */
        return false;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ s[i]);
    return d == 0;
}

/* The host of "127.0.0.1:5000", "[::1]:5000" or "%5B::1%5D:5000" (gRPC's peer strings escape
 * the brackets) into buf. */
static void host_of(const char *hostport, char *buf, size_t cap)
{
    const char *h = hostport;
    const char *end = strrchr(h, ':');
    size_t n = end ? (size_t)(end - h) : strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
        h++, n -= 2;
    else if (n >= 6 && strncmp(h, "%5B", 3) == 0 && strncmp(h + n - 3, "%5D", 3) == 0)
        h += 3, n -= 6;
    snprintf(buf, cap, "%.*s", (int)n, h);
}

/* Did c come over the dashboard's loopback channel? It dials the hub's --listen host (loopback
 * when that is every interface), so the peer ("ipv4:127.0.0.1:5000") is a loopback address or
 * that host; and the channel presents no certificate of its own. */
static bool from_dashboard(struct hub *h, struct rpc_call *c)
{
    size_t len = 0;
    if (!h->opts.http_listen || rpc_call_peer_cert(c, &len))
        return false;
    const char *peer = rpc_call_peer(c);
    const char *scheme_end = strchr(peer, ':');
    char host[128], own[128] = "";
    host_of(scheme_end ? scheme_end + 1 : peer, host, sizeof(host));
    if (h->opts.listen)
        host_of(h->opts.listen, own, sizeof(own));
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           (own[0] && strcmp(host, own) == 0);
}

/* The certificate the dashboard forwarded on c, if any: 0 with *pem NULL when the call carries
 * none; 0 with *pem (in the call's arena) when it carries one with this process's secret over
 * the loopback channel; else -1 with err (UNAUTHENTICATED), logged: a forgery. */
static int forwarded_cert(struct hub *h, struct rpc_call *c, const char **pem, struct ag_err *err)
{
    *pem = rpc_call_metadata(c, HUB_AUTHN_FWD_CERT_MD);
    if (!*pem)
        return 0;
    const char *s = rpc_call_metadata(c, HUB_AUTHN_FWD_SECRET_MD);
    if (s && secret_eq(s) && from_dashboard(h, c))
        return 0;
    const char *why = "no_secret";
    if (s)
        why = secret_eq(s) ? "not_the_dashboard_channel" : "wrong_secret";
    ag_log_warn("authn.forward_refused", "peer=%s method=%s why=%s", ag_log_q(rpc_call_peer(c)),
                rpc_call_method(c), why);
    *pem = NULL;
    return ag_err_set(err, AG_UNAUTHENTICATED,
                      "the call carried a forwarded client certificate, which only this hub's "
                      "dashboard may send");
}

/* --- principals ------------------------------------------------------------------------------ */

/* The principal of c: the certificate the dashboard forwarded (fwd), else the call's own. */
static int principal_of(struct rpc_call *c, const char *fwd, struct hub_principal *out,
                        struct ag_err *err)
{
    size_t len = fwd ? strlen(fwd) : 0;
    const char *pem = fwd ? fwd : rpc_call_peer_cert(c, &len);
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

/* "Spawn" of "/agentry.v1.AgentHub/Spawn". */
static const char *method_name(const struct rpc_method *m)
{
    const char *slash = strrchr(m->path, '/');
    return slash ? slash + 1 : m->path;
}

/* The bearer token of the call's "authorization: Bearer <token>", or NULL. */
static const char *bearer(struct rpc_call *c)
{
    const char *v = rpc_call_metadata(c, "authorization");
    return v && strncmp(v, "Bearer ", 7) == 0 ? v + 7 : NULL;
}

/* The policy's grant for p, copied into the call's arena: the policy may be replaced (SIGHUP)
 * while the call runs. Under the policy's read lock. */
static int grant(struct hub *h, struct rpc_call *c, struct hub_principal *p, const char *token,
                 struct ag_err *err)
{
    struct hub_policy_grant g;
    char *ns[HUB_AUTHN_MAX_NS]; /* the certificate's, which g may borrow: alive to the end */
    if (token) {
        char name[HUB_POLICY_NAME_MAX + 1];
        if (hub_policy_for_token(h->policy, token, name, &g, err) != 0)
            return -1;
        memset(p, 0, sizeof(*p));
        p->kind = HUB_PRINCIPAL_USER;
        p->token = true;
        snprintf(p->name, sizeof(p->name), "%s", name);
        snprintf(p->identity, sizeof(p->identity), "token/%s", name);
    } else {
        static const char *const kind[] = {"anonymous", "hub", "node", "user"};
        snprintf(p->identity, sizeof(p->identity), "%s/%s", kind[p->kind], p->name);
        for (unsigned i = 0; i < p->nnamespaces; i++)
            ns[i] = p->namespaces[i];
        if (hub_policy_for_identity(h->policy, p->identity, p->role, ns, p->nnamespaces, &g, err) !=
            0)
            return -1;
    }
    snprintf(p->grant_role, sizeof(p->grant_role), "%s", g.role);
    p->all_namespaces = g.all_namespaces;
    p->ngrant_ns = g.nnamespaces;
    p->grant_ns = ag_arena_alloc(rpc_call_arena(c), (g.nnamespaces + 1) * sizeof(char *));
    for (size_t i = 0; i < g.nnamespaces; i++)
        p->grant_ns[i] = ag_arena_strdup(rpc_call_arena(c), g.namespaces[i]);
    return 0;
}

/* A refusal of the whole call: audited, then returned to the RPC layer. */
static int deny(struct rpc_call *c, struct ag_err *err)
{
    hub_authn_audit(c, NULL, NULL, false, err->msg);
    return -1;
}

int hub_authn_authorize(struct rpc_call *c, const struct rpc_method *m, struct ag_err *err)
{
    struct hub *h = rpc_call_user(c);
    const char *token = bearer(c);
    if (!rpc_call_tls(c)) {
        if (token) /* gRPC sends no call credentials in the clear; a hand-made header */
            return ag_err_set(err, AG_UNAUTHENTICATED,
                              "bearer tokens are accepted only over TLS (this hub runs without "
                              "--tls-dir)");
        return 0; /* plaintext: hub_authn_principal answers the anonymous admin */
    }
    struct hub_principal *p = ag_arena_alloc(rpc_call_arena(c), sizeof(*p));
    memset(p, 0, sizeof(*p));
    size_t len = 0;
    const char *fwd;
    int frc = forwarded_cert(h, c, &fwd, err);
    if (frc != 0 || (!token && !fwd && !rpc_call_peer_cert(c, &len))) {
        rpc_call_set_auth(c, p); /* for the audit line: an unnamed caller */
        snprintf(p->identity, sizeof(p->identity), "unauthenticated");
        if (frc == 0)
            ag_err_set(err, AG_UNAUTHENTICATED,
                       "the call carried neither a client certificate nor a bearer token");
        return deny(c, err);
    }
    if (!token && principal_of(c, fwd, p, err) != 0) /* a token wins over any certificate */
        return deny(c, err);
    /* Health and reflection reveal no agent and change nothing: whoever the CA or the policy
     * vouches for may ask, whatever its role or kind (a node's probe, a user's grpcurl). */
    bool infra = strncmp(m->path, AUTHN_GRPC_SERVICES, strlen(AUTHN_GRPC_SERVICES)) == 0;
    pthread_rwlock_rdlock(&h->policy_lock);
    int rc = grant(h, c, p, token, err);
    bool allowed = rc == 0 && hub_policy_allows(h->policy, p->grant_role, method_name(m));
    pthread_rwlock_unlock(&h->policy_lock);
    rpc_call_set_auth(c, p);
    if (infra && (rc == 0 || !token))
        return 0;
    if (rc != 0)
        return deny(c, err);
    bool node_svc = strncmp(m->path, AUTHN_NODE_SERVICE, strlen(AUTHN_NODE_SERVICE)) == 0;
    bool hub_svc = strncmp(m->path, AUTHN_HUB_SERVICE, strlen(AUTHN_HUB_SERVICE)) == 0;
    bool is_node = p->kind == HUB_PRINCIPAL_NODE;
    char who[HUB_AUTHN_MAX_NAME + 16];
    if ((is_node && !node_svc) || (!is_node && !hub_svc)) {
        ag_err_set(err, AG_PERMISSION_DENIED, "%s may not call %s: %s",
                   hub_authn_describe(p, who, sizeof(who)), m->path,
                   is_node ? "a node certificate may call only NodeService"
                           : "only a node certificate may call NodeService");
        return deny(c, err);
    }
    if (!allowed) {
        ag_err_set(err, AG_PERMISSION_DENIED, "%s (role %s) may not call %s",
                   hub_authn_describe(p, who, sizeof(who)), p->grant_role, method_name(m));
        return deny(c, err);
    }
    return 0;
}

bool hub_authn_sees(struct rpc_call *c, const char *ns)
{
    const struct hub_principal *p = hub_authn_principal(c);
    if (p->all_namespaces)
        return true;
    for (size_t i = 0; i < p->ngrant_ns; i++)
        if (strcmp(p->grant_ns[i], ns) == 0)
            return true;
    return false;
}

int hub_authn_agent_visible(struct rpc_call *c, const char *agent_id, const char *ns,
                            struct ag_err *err)
{
    if (hub_authn_sees(c, ns))
        return 0;
    char why[HUB_AUTHN_MAX_NAME + 64];
    snprintf(why, sizeof(why), "namespace '%s' is not the caller's", ns);
    hub_authn_audit(c, agent_id, ns, false, why);
    return ag_err_set(err, AG_NOT_FOUND, "no agent with id '%s'", agent_id); /* as if absent */
}

struct hub_agent *hub_authn_get_agent(struct hub *h, struct rpc_call *c, const char *id,
                                      struct ag_err *err)
{
    struct hub_agent *a = hub_loader_get(h, id, err);
    if (a && hub_authn_agent_visible(c, a->id, a->ns, err) != 0) {
        hub_agents_unpin(&h->agents, a);
        return NULL;
    }
    return a;
}

int hub_authn_may_create(struct rpc_call *c, const char *ns, struct ag_err *err)
{
    const char *n = ns && *ns ? ns : "default";
    if (hub_authn_sees(c, n))
        return 0;
    char who[HUB_AUTHN_MAX_NAME + 16];
    ag_err_set(err, AG_PERMISSION_DENIED, "%s may not use namespace '%s'",
               hub_authn_describe(hub_authn_principal(c), who, sizeof(who)), n);
    hub_authn_audit(c, NULL, n, false, err->msg);
    return -1;
}

void hub_authn_audit(struct rpc_call *c, const char *agent_id, const char *ns, bool allowed,
                     const char *reason)
{
    struct hub *h = rpc_call_user(c);
    if (!h->audit)
        return;
    const struct hub_principal *p = hub_authn_principal(c);
    const char *rpc = rpc_call_method(c);
    const char *slash = rpc ? strrchr(rpc, '/') : NULL;
    struct hub_audit_rec r = {.identity = p->identity,
                              .role = p->grant_role,
                              .rpc = slash ? slash + 1 : rpc,
                              .agent_id = agent_id,
                              .namespace_ = ns,
                              .decision = allowed ? "allow" : "deny",
                              .reason = reason,
                              .peer = rpc_call_peer(c)};
    hub_audit_write(h->audit, &r);
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
