/* common/certs.h - X.509 certificates for agentry's mTLS: a private CA, the leaf certificates it
 * signs, and the identity a certificate carries. Built on OpenSSL's libcrypto; the `openssl`
 * program is never run.
 *
 * Identity URIs. A leaf certificate names who holds it in its subjectAltName, as URIs:
 *   agentry://<kind>/<name>       exactly one; kind is hub, node or user. For a node, name is
 *                                 its node id; for a user, the person or program.
 *   agentry://role/<role>         at most one; admin, operator, viewer or node. A hub's
 *                                 certificate has none.
 *   agentry://namespace/<ns>      zero or more: the namespaces the holder may see and touch.
 * Names and namespaces are 1..128 characters of [A-Za-z0-9._-]. The subject CN is the name too,
 * for people reading the certificate; only the URIs count. Other SANs (DNS, IP, URIs with another
 * scheme) are ignored by the parser. An agentry:// URI of any other form makes the certificate
 * unusable, as does a second kind or role URI: an identity we cannot read exactly is refused.
 *
 * Certificates issued here: EC P-256 keys, SHA-256 signatures, a random 128-bit serial, not
 * before now minus 5 minutes (clock skew between hosts), not after now plus the days asked for.
 * The CA: CA:TRUE (critical), keyCertSign and cRLSign. A leaf: CA:FALSE, digitalSignature,
 * extendedKeyUsage serverAuth and/or clientAuth, the identity URIs and, for a server, DNS and IP
 * entries.
 *
 * Files: keys are created 0600 with open(O_CREAT|O_EXCL), so no other user ever sees one, not even
 * briefly; certificates are created 0644 (both less the umask). An existing file is never
 * overwritten unless `force` is set; then it is unlinked first and created anew, so a replaced key
 * also gets 0600. Key files hold unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY").
 *
 * Threads: every function is reentrant; nothing is shared. */
#ifndef AGENTRY_COMMON_CERTS_H
#define AGENTRY_COMMON_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define AG_CERTS_NAME_MAX 128
#define AG_CERTS_MAX_NAMESPACES 32
#define AG_CERTS_CA_DAYS 3650
#define AG_CERTS_LEAF_DAYS 365
#define AG_CERTS_MAX_DAYS 36500

enum ag_certs_kind {
    AG_CERTS_KIND_NONE,
    AG_CERTS_KIND_HUB,
    AG_CERTS_KIND_NODE,
    AG_CERTS_KIND_USER
};
enum ag_certs_role {
    AG_CERTS_ROLE_NONE,
    AG_CERTS_ROLE_ADMIN,
    AG_CERTS_ROLE_OPERATOR,
    AG_CERTS_ROLE_VIEWER,
    AG_CERTS_ROLE_NODE,
};

/* What a certificate says about its holder. Fixed arrays: filling one allocates nothing, and the
 * hub fills one per connection. */
struct ag_certs_identity {
    enum ag_certs_kind kind;
    char name[AG_CERTS_NAME_MAX + 1];
    enum ag_certs_role role; /* AG_CERTS_ROLE_NONE without a role URI */
    size_t n_namespaces;
    char namespaces[AG_CERTS_MAX_NAMESPACES][AG_CERTS_NAME_MAX + 1];
    int64_t not_before, not_after; /* unix seconds */
};

/* Read the identity of the first certificate in pem[0..len). -1 with err: UNAUTHENTICATED if the
 * certificate carries no agentry://<kind>/ URI, a malformed or unknown agentry:// URI, a second
 * kind or role, or more than AG_CERTS_MAX_NAMESPACES namespaces; INVALID_ARGUMENT if pem holds no
 * certificate. It checks no signature or date: the TLS layer verified the chain first. */
int ag_certs_identity_parse(const char *pem, size_t len, struct ag_certs_identity *out,
                            struct ag_err *err);

/* True if s is 1..AG_CERTS_NAME_MAX characters of [A-Za-z0-9._-]. */
bool ag_certs_name_valid(const char *s);
/* "hub", "node", "user"; "none". */
const char *ag_certs_kind_name(enum ag_certs_kind kind);
/* "admin", "operator", "viewer", "node"; "none". */
const char *ag_certs_role_name(enum ag_certs_role role);
/* The role named s (not "none"); -1 with INVALID_ARGUMENT naming the accepted ones. */
int ag_certs_role_parse(const char *s, enum ag_certs_role *out, struct ag_err *err);

/* A CA: its certificate and private key. */
struct ag_certs_ca;

/* A new self-signed CA, subject CN "agentry CA", valid 1..AG_CERTS_MAX_DAYS + 1 days. */
int ag_certs_ca_new(int days, struct ag_certs_ca **out, struct ag_err *err);
/* Load a CA from its certificate and key files; -1 if either cannot be read or parsed, if the
 * certificate is not a CA, or if the key is not the certificate's (each message names the file). */
int ag_certs_ca_load(const char *crt_path, const char *key_path, struct ag_certs_ca **out,
                     struct ag_err *err);
/* Write the CA's certificate and key (see Files above). */
int ag_certs_ca_write(const struct ag_certs_ca *ca, const char *crt_path, const char *key_path,
                      bool force, struct ag_err *err);
void ag_certs_ca_free(struct ag_certs_ca *ca);

/* What a leaf certificate says; every pointer borrowed. */
struct ag_certs_leaf {
    enum ag_certs_kind kind; /* not NONE */
    const char *name;
    enum ag_certs_role role;
    const char *const *namespaces;
    size_t n_namespaces;
    const char *const *hosts; /* SAN entries: an IPv4 or IPv6 address is an IP entry, else DNS */
    size_t n_hosts;
    bool server_auth, client_auth; /* at least one */
    int days;                      /* 1..AG_CERTS_MAX_DAYS */
};

/* -1 with INVALID_ARGUMENT if leaf is not one ag_certs_issue would sign (bad name, namespace, host,
 * day count, no kind or no purpose); the message names the value. */
int ag_certs_leaf_check(const struct ag_certs_leaf *leaf, struct ag_err *err);
/* Issue a leaf signed by ca with a new key; *cert_pem and *key_pem are owned (free()). -1 with
 * INVALID_ARGUMENT if ag_certs_leaf_check refuses the leaf, FAILED_PRECONDITION if it would
 * outlive the CA. */
int ag_certs_issue(const struct ag_certs_ca *ca, const struct ag_certs_leaf *leaf, char **cert_pem,
                   char **key_pem, struct ag_err *err);
/* True if host is a valid SAN entry: an IP address, or 1..253 characters of [A-Za-z0-9.-] with an
 * optional leading "*." wildcard label. */
bool ag_certs_host_valid(const char *host);

/* Write a certificate (0644) and its key (0600). Both paths are checked before either is written,
 * so without force an existing file leaves nothing half-done. */
int ag_certs_write_pair(const char *crt_path, const char *cert_pem, const char *key_path,
                        const char *key_pem, bool force, struct ag_err *err);
/* -1 with ALREADY_EXISTS naming path if it exists ("pass --force to replace it"). */
int ag_certs_check_absent(const char *path, struct ag_err *err);
/* Read a whole file (at most 1 MiB) into *out (owned, NUL-terminated), its length in *len. */
int ag_certs_read_file(const char *path, char **out, size_t *len, struct ag_err *err);

/* Everything `agentry certs show` prints about one certificate. */
struct ag_certs_info {
    struct ag_certs_identity id; /* id.kind NONE if id_error is set */
    char id_error[256];          /* why the identity did not parse ("" if it did) */
    char subject[256], issuer[256];
    bool is_ca;
    int64_t not_before, not_after;
    char **sans; /* owned: "DNS:host", "IP:addr", "URI:uri", "email:x", "other" */
    size_t n_sans;
};
/* Fill info from the first certificate in pem; -1 with INVALID_ARGUMENT if there is none. */
int ag_certs_info_read(const char *pem, size_t len, struct ag_certs_info *info, struct ag_err *err);
void ag_certs_info_release(struct ag_certs_info *info);

#endif
