/* hub/authn.h - who is calling: the principal of each call, read from its verified client
 * certificate, and the checks that need nothing but the identity.
 *
 * A certificate names its holder in SAN URIs: agentry://<kind>/<name> (kind hub, node or user),
 * agentry://role/<role> and agentry://namespace/<ns> (any number). The RPC server runs
 * hub_authn_authorize before every handler (common/rpc/server.h, rpc_authorize_fn): it parses the
 * certificate, attaches the principal to the call and enforces the separation of services: a node
 * certificate may call only NodeService, a user or hub certificate only AgentHub. A hub serving
 * plaintext (loopback only, see cmd_hub.c) treats every call as the anonymous admin, as before
 * TLS existed. RBAC reads the principal with hub_authn_principal.
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

enum hub_principal_kind {
    HUB_PRINCIPAL_ANONYMOUS, /* a plaintext hub's caller: admin, as before TLS */
    HUB_PRINCIPAL_HUB,
    HUB_PRINCIPAL_NODE,
    HUB_PRINCIPAL_USER,
};

struct hub_principal {
    enum hub_principal_kind kind;
    char name[HUB_AUTHN_MAX_NAME]; /* node id, user or hub name; "anonymous" */
    char role[HUB_AUTHN_MAX_NAME]; /* "" when the certificate names none */
    char namespaces[HUB_AUTHN_MAX_NS][HUB_AUTHN_MAX_NAME];
    unsigned nnamespaces;
};

/* The principal of a certificate (PEM): 0, or -1 with err (PERMISSION_DENIED) when it names no
 * agentry:// kind, or names more than one. */
int hub_authn_parse_cert(const char *pem, size_t len, struct hub_principal *p, struct ag_err *err);

/* rpc_authorize_fn of the hub's server. */
int hub_authn_authorize(struct rpc_call *c, const struct rpc_method *m, struct ag_err *err);

/* The call's principal; never NULL (the anonymous admin on a plaintext hub). */
const struct hub_principal *hub_authn_principal(struct rpc_call *c);

/* "node 'node1'", "user 'admin'", "anonymous caller": for messages. */
const char *hub_authn_describe(const struct hub_principal *p, char *buf, size_t cap);

/* A node registering as node_id: 0 if the call's certificate names that node (or the hub is
 * plaintext), else -1 with PERMISSION_DENIED saying which node the certificate names. */
int hub_authn_check_node_id(struct rpc_call *c, const char *node_id, struct ag_err *err);

#endif
