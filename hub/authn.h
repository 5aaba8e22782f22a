/* hub/authn.h - who is calling: the principal of each call, read from its verified client
 * certificate, and the checks that need nothing but the identity.
 *
 * A certificate names its holder in SAN URIs: agentry://<kind>/<name> (kind hub, node or user),
 * agentry://role/<role> and agentry://namespace/<ns> (any number). The RPC server runs
 * hub_authn_authorize before every handler (common/rpc/server.h, rpc_authorize_fn): it parses the
 * certificate, attaches the principal to the call and enforces the separation of services: a node
 * certificate may call only NodeService, a user or hub certificate only AgentHub. The standard
 * grpc.health.v1 and grpc.reflection services are open to every authenticated caller (a
 * certificate the CA signed, or a token the policy knows), whatever its kind or role. A hub serving
 * plaintext (loopback only, see cmd_hub.c) treats every call as the anonymous admin, as before
 * TLS existed. RBAC reads the principal with hub_authn_principal.
 *
 * A call may carry a bearer token instead of a certificate (hub/policy.h); with both, the token
 * wins. The dashboard (hub/web.c) forwards a browser's verified certificate on its loopback call
 * as metadata HUB_AUTHN_FWD_CERT_MD, next to HUB_AUTHN_FWD_SECRET_MD = hub_authn_forward_secret(),
 * random per process and never logged. Only a call that carries that secret, on a hub with
 * --http-listen, from a loopback address (or the --listen host) and without a certificate of its
 * own, gets the forwarded certificate as its principal, exactly as if it had presented it; any
 * other call carrying a forwarded certificate is refused (UNAUTHENTICATED), logged and audited.
 *
 * Threads: the callbacks run on the RPC CQ threads; the principal lives in the call's arena and
 * is read-only once attached. */
#ifndef AGENTRY_HUB_AUTHN_H
#define AGENTRY_HUB_AUTHN_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/rpc/server.h"

#define HUB_AUTHN_MAX_NAME 128
#define HUB_AUTHN_MAX_NS 8
#define HUB_AUTHN_SECRET_BYTES 32
#define HUB_AUTHN_FWD_CERT_MD "agentry-forwarded-cert-bin" /* PEM; -bin: gRPC base64s it */
#define HUB_AUTHN_FWD_SECRET_MD "agentry-forward-secret"   /* hex */

enum hub_principal_kind {
    HUB_PRINCIPAL_ANONYMOUS, /* a plaintext hub's caller: admin, as before TLS */
    HUB_PRINCIPAL_HUB,
    HUB_PRINCIPAL_NODE,
    HUB_PRINCIPAL_USER,
};

struct hub_principal {
    enum hub_principal_kind kind;
    char name[HUB_AUTHN_MAX_NAME + 1]; /* node id, user or hub name; "anonymous"; a token's name */
    char role[HUB_AUTHN_MAX_NAME + 1]; /* "" when the certificate names none */
    char namespaces[HUB_AUTHN_MAX_NS][HUB_AUTHN_MAX_NAME + 1];
    unsigned nnamespaces;
    /* What the policy grants this call (hub/policy.h), set by hub_authn_authorize: */
    bool token;                                /* authenticated by a bearer token */
    char identity[2 * HUB_AUTHN_MAX_NAME + 8]; /* "user/alice", "token/dashboard", "anonymous" */
    char grant_role[HUB_AUTHN_MAX_NAME + 1];
    bool all_namespaces;
    char **grant_ns; /* in the call's arena */
    size_t ngrant_ns;
};

/* The principal of a certificate (PEM): 0, or -1 with err (PERMISSION_DENIED) when it names no
 * agentry:// kind, or names more than one. */
int hub_authn_parse_cert(const char *pem, size_t len, struct hub_principal *p, struct ag_err *err);

/* This process's forwarding secret: 2 * HUB_AUTHN_SECRET_BYTES hex digits, made on first use.
 * Any thread. */
const char *hub_authn_forward_secret(void);

/* rpc_authorize_fn of the hub's server. */
int hub_authn_authorize(struct rpc_call *c, const struct rpc_method *m, struct ag_err *err);

/* The call's principal; never NULL (the anonymous admin on a plaintext hub). */
const struct hub_principal *hub_authn_principal(struct rpc_call *c);

/* "node 'node1'", "user 'admin'", "anonymous caller": for messages. */
const char *hub_authn_describe(const struct hub_principal *p, char *buf, size_t cap);

/* May the call's caller see and touch agents of namespace ns? (The anonymous admin of a
 * plaintext hub and an admin grant: every namespace.) */
bool hub_authn_sees(struct rpc_call *c, const char *ns);
/* The rule for calls naming an agent by id: an agent of a namespace the caller may not see is
 * answered exactly as one that does not exist (NOT_FOUND, "no agent with id ..."), so its
 * existence is not revealed. 0 if visible, else -1 with err set so (and an audit line). */
int hub_authn_agent_visible(struct rpc_call *c, const char *agent_id, const char *ns,
                            struct ag_err *err);
/* The agent with this id, pinned, if the caller may see it (hub_loader_get, then the rule
 * above); NULL with err otherwise. */
struct hub_agent;
struct hub;
struct hub_agent *hub_authn_get_agent(struct hub *h, struct rpc_call *c, const char *id,
                                      struct ag_err *err);
/* Creating in namespace ns (Spawn, Invoke): 0, or -1 with PERMISSION_DENIED (audited). */
int hub_authn_may_create(struct rpc_call *c, const char *ns, struct ag_err *err);
/* One audit line for the call (hub/audit.h), if the hub keeps an audit log: decision "allow"
 * or "deny", the agent and namespace concerned (may be NULL), and why. */
void hub_authn_audit(struct rpc_call *c, const char *agent_id, const char *ns, bool allowed,
                     const char *reason);

/* A node registering as node_id: 0 if the call's certificate names that node (or the hub is
 * plaintext), else -1 with PERMISSION_DENIED saying which node the certificate names. */
int hub_authn_check_node_id(struct rpc_call *c, const char *node_id, struct ag_err *err);

#endif
