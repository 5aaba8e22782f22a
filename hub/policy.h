/* hub/policy.h - who may call what, in which namespaces: roles, bindings and tokens (RBAC).
 *
 * A policy file (agentry hub --policy FILE, YAML) says:
 *
 *   roles:                        # optional: more roles beside the built-in ones
 *     auditor: [GetAgent, ListAgents, Trace, ListNodes]
 *   bindings:                     # identities (from client certificates) -> role, namespaces
 *     - identity: user/alice      # <kind>/<name> of the certificate (agentry://user/alice)
 *       role: operator
 *       namespaces: [team-a, team-b]   # or ["*"]: every namespace
 *   tokens:                       # bearer tokens, for clients without a certificate
 *     - name: dashboard           # the caller is then "token/dashboard"
 *       sha256: 9f86d081...       # hex SHA-256 of the token: the token itself is never stored
 *       role: viewer
 *       namespaces: [default]
 *
 * Built-in roles (a file may not redefine them): admin (every RPC), operator (what a viewer
 * does, and Spawn, SendMessage, Invoke, KillAgent, ResumeAgent, CordonNode, DrainNode,
 * CreateSchedule, PauseSchedule, ResumeSchedule, DeleteSchedule), viewer (Ping, GetAgent,
 * ListAgents, Trace, ListNodes, ListSchedules, GetSchedule, ListMemory, GetMemory), node (NodeService.Connect only; a node may call
 * nothing else, and no other role may call it). RPCs are named by their method names.
 *
 * Resolution: a certificate identity with a binding gets the binding's role and namespaces;
 * without one, the role and namespaces its certificate carries (agentry://role/..,
 * agentry://namespace/..; common/certs.h); with neither, nothing (deny). A token must match an
 * entry's hash (compared in constant time) or the call is unauthenticated; removing the entry
 * and reloading revokes it. Deny by default: an RPC a role does not list is refused.
 *
 * Loading checks everything (unknown keys, unknown RPC names, bad namespace names, hashes that
 * are not 64 hex digits, duplicate identities or token names) and fails with the file, line and
 * what is wrong; the caller keeps its previous policy then (reload on SIGHUP).
 *
 * Threads: a loaded policy is immutable; share it by pointer and free it when no reader is left
 * (hub/authn.c swaps them under its lock). */
#ifndef AGENTRY_HUB_POLICY_H
#define AGENTRY_HUB_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define HUB_POLICY_NAME_MAX 128

struct hub_policy;

/* What a caller may do: its role, and its namespaces (all: every one). */
struct hub_policy_grant {
    char role[HUB_POLICY_NAME_MAX + 1];
    bool all_namespaces;
    char **namespaces; /* owned, unless borrowed from a policy: see the functions */
    size_t nnamespaces;
};

/* Parse the file. NULL with err (INVALID_ARGUMENT, "FILE:LINE: ...") on any problem. */
struct hub_policy *hub_policy_load(const char *path, struct ag_err *err);
/* The policy with no file: built-in roles, no bindings, no tokens. */
struct hub_policy *hub_policy_default(void);
void hub_policy_free(struct hub_policy *p);

/* The grant for a certificate identity "<kind>/<name>" whose certificate carries cert_role
 * (may be NULL or "") and cert_namespaces: 0 with *out filled (namespaces borrowed from p or
 * cert_namespaces: valid while both are), -1 with PERMISSION_DENIED if neither a binding nor
 * the certificate gives it a role. */
int hub_policy_for_identity(const struct hub_policy *p, const char *identity, const char *cert_role,
                            char *const *cert_namespaces, size_t n, struct hub_policy_grant *out,
                            struct ag_err *err);
/* The grant for a bearer token (its name in *name, HUB_POLICY_NAME_MAX + 1 bytes):
 * UNAUTHENTICATED if no entry's hash matches. Namespaces borrowed from p. */
int hub_policy_for_token(const struct hub_policy *p, const char *token, char *name,
                         struct hub_policy_grant *out, struct ag_err *err);
/* May role call rpc (a method name such as "Spawn" or "Connect")? */
bool hub_policy_allows(const struct hub_policy *p, const char *role, const char *rpc);
/* Does the grant cover namespace ns? */
bool hub_policy_grant_has(const struct hub_policy_grant *g, const char *ns);

/* The hex SHA-256 of token into out (65 bytes): what a policy file stores. */
void hub_policy_token_hash(const char *token, char out[65]);

#endif
