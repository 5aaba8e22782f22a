/* common/certs_identity.c - reading certificates: the agentry identity in the subjectAltName URIs
 * (the scheme is in certs.h), and the fields `agentry certs show` prints.
 *
 * The parser is strict on purpose: the hub decides who may do what from its answer, so any
 * agentry:// URI it cannot read exactly, or a second kind or role, refuses the whole certificate
 * rather than guessing which one counts. Other URIs and SANs are someone else's and are ignored. */
#include "common/certs.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/xalloc.h"

#define URI_PREFIX "agentry://"

static const char *const kind_names[] = {"none", "hub", "node", "user"};
static const char *const role_names[] = {"none", "admin", "operator", "viewer", "node"};

bool ag_certs_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AG_CERTS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

const char *ag_certs_kind_name(enum ag_certs_kind kind)
{
    return (size_t)kind < AG_ARRAY_SIZE(kind_names) ? kind_names[kind] : "none";
}

const char *ag_certs_role_name(enum ag_certs_role role)
{
    return (size_t)role < AG_ARRAY_SIZE(role_names) ? role_names[role] : "none";
}

int ag_certs_role_parse(const char *s, enum ag_certs_role *out, struct ag_err *err)
{
    for (size_t i = AG_CERTS_ROLE_ADMIN; i < AG_ARRAY_SIZE(role_names); i++)
        if (strcmp(s, role_names[i]) == 0) {
            *out = (enum ag_certs_role)i;
            return 0;
        }
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "unknown role '%s' (want admin, operator, viewer or node)", s);
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

static X509 *pem_cert(const char *pem, size_t len, struct ag_err *err)
{
    if (len > INT32_MAX) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "certificate PEM too large (%zu bytes)", len);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        ag_err_set(err, AG_INTERNAL, "cannot allocate a BIO for the certificate");
        return NULL;
    }
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!x)
        ag_err_set(err, AG_INVALID_ARGUMENT, "no PEM certificate found");
    return x;
}

/* A SAN's string as a C string if it holds no NUL byte (a NUL would let "a\0b" pass as "a"). */
static bool asn1_cstr(const ASN1_STRING *s, char *buf, size_t cap)
{
    int n = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    if (n < 0 || (size_t)n >= cap || memchr(d, '\0', (size_t)n))
        return false;
    memcpy(buf, d, (size_t)n);
    buf[n] = '\0';
    return true;
}

/* One agentry:// URI (rest is what follows the prefix) into id. */
static int add_uri(struct ag_certs_identity *id, const char *uri, const char *rest,
                   struct ag_err *err)
{
    const char *slash = strchr(rest, '/');
    size_t tlen = slash ? (size_t)(slash - rest) : 0;
    const char *val = slash ? slash + 1 : "";
    if (!slash || !ag_certs_name_valid(val))
        return ag_err_set(err, AG_UNAUTHENTICATED,
                          "certificate URI '%.140s' is malformed (want agentry://<kind>/<name>, "
                          "names of 1..128 characters of [A-Za-z0-9._-])",
                          uri);
    if (tlen == 4 && strncmp(rest, "role", 4) == 0) {
        if (id->role != AG_CERTS_ROLE_NONE)
            return ag_err_set(err, AG_UNAUTHENTICATED, "certificate names more than one role");
        if (ag_certs_role_parse(val, &id->role, err) != 0)
            return ag_err_set(err, AG_UNAUTHENTICATED,
                              "certificate names unknown role '%.128s' (want admin, operator, "
                              "viewer or node)",
                              val);
        return 0;
    }
    if (tlen == 9 && strncmp(rest, "namespace", 9) == 0) {
        if (id->n_namespaces == AG_CERTS_MAX_NAMESPACES)
            return ag_err_set(err, AG_UNAUTHENTICATED, "certificate names more than %d namespaces",
                              AG_CERTS_MAX_NAMESPACES);
        strcpy(id->namespaces[id->n_namespaces++], val);
        return 0;
    }
    for (size_t k = AG_CERTS_KIND_HUB; k < AG_ARRAY_SIZE(kind_names); k++) {
        if (strlen(kind_names[k]) != tlen || strncmp(rest, kind_names[k], tlen) != 0)
            continue;
        if (id->kind != AG_CERTS_KIND_NONE)
            return ag_err_set(err, AG_UNAUTHENTICATED,
                              "certificate names more than one identity ('%s/%s' and '%.140s')",
                              ag_certs_kind_name(id->kind), id->name, uri);
        id->kind = (enum ag_certs_kind)k;
        strcpy(id->name, val);
        return 0;
    }
    return ag_err_set(err, AG_UNAUTHENTICATED,
                      "certificate URI '%.140s' has an unknown type (want hub, node, user, role or "
                      "namespace)",
                      uri);
}

static int identity_from(X509 *x, struct ag_certs_identity *out, struct ag_err *err)
{
    memset(out, 0, sizeof(*out));
    out->not_before = asn1_unix(X509_get0_notBefore(x));
    out->not_after = asn1_unix(X509_get0_notAfter(x));
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;
    for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI)
            continue;
        char uri[512];
        if (!asn1_cstr(g->d.uniformResourceIdentifier, uri, sizeof(uri))) {
            /* Too long or with a NUL: refuse only if it claims to be ours. */
            const unsigned char *d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            int n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
            if (n >= (int)strlen(URI_PREFIX) && memcmp(d, URI_PREFIX, strlen(URI_PREFIX)) == 0)
                rc = ag_err_set(err, AG_UNAUTHENTICATED,
                                "certificate has a malformed agentry:// URI (too long or with a "
                                "NUL byte)");
            continue;
        }
        if (strncmp(uri, URI_PREFIX, strlen(URI_PREFIX)) == 0)
            rc = add_uri(out, uri, uri + strlen(URI_PREFIX), err);
    }
    GENERAL_NAMES_free(gens);
    if (rc == 0 && out->kind == AG_CERTS_KIND_NONE)
        rc = ag_err_set(
            err, AG_UNAUTHENTICATED,
            "certificate carries no agentry identity (no agentry://hub|node|user/<name> "
            "URI in its subjectAltName; issue it with 'agentry certs issue')");
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int ag_certs_identity_parse(const char *pem, size_t len, struct ag_certs_identity *out,
                            struct ag_err *err)
{
    X509 *x = pem_cert(pem, len, err);
    if (!x)
        return -1;
    int rc = identity_from(x, out, err);
    X509_free(x);
    return rc;
}

static void name_line(const X509_NAME *name, char *buf, size_t cap)
{
    buf[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, buf, (int)cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
}

static char *san_str(const GENERAL_NAME *g)
{
    char buf[600], addr[INET6_ADDRSTRLEN];
    switch (g->type) {
    case GEN_DNS:
        return asn1_cstr(g->d.dNSName, buf, sizeof(buf)) ? ag_xasprintf("DNS:%s", buf)
                                                         : ag_xstrdup("DNS:?");
    case GEN_URI:
        return asn1_cstr(g->d.uniformResourceIdentifier, buf, sizeof(buf))
                   ? ag_xasprintf("URI:%s", buf)
                   : ag_xstrdup("URI:?");
    case GEN_EMAIL:
        return asn1_cstr(g->d.rfc822Name, buf, sizeof(buf)) ? ag_xasprintf("email:%s", buf)
                                                            : ag_xstrdup("email:?");
    case GEN_IPADD: {
        int n = ASN1_STRING_length(g->d.iPAddress);
        const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
        int af = n == 4 ? AF_INET : n == 16 ? AF_INET6 : 0;
        if (af && inet_ntop(af, d, addr, sizeof(addr)))
            return ag_xasprintf("IP:%s", addr);
        return ag_xstrdup("IP:?");
    }
    default:
        return ag_xstrdup("other");
    }
}

int ag_certs_info_read(const char *pem, size_t len, struct ag_certs_info *info, struct ag_err *err)
{
    memset(info, 0, sizeof(*info));
    X509 *x = pem_cert(pem, len, err);
    if (!x)
        return -1;
    struct ag_err id_err = AG_ERR_INIT;
    if (identity_from(x, &info->id, &id_err) != 0)
        snprintf(info->id_error, sizeof(info->id_error), "%s", id_err.msg);
    info->not_before = asn1_unix(X509_get0_notBefore(x));
    info->not_after = asn1_unix(X509_get0_notAfter(x));
    info->is_ca = X509_check_ca(x) > 0;
    name_line(X509_get_subject_name(x), info->subject, sizeof(info->subject));
    name_line(X509_get_issuer_name(x), info->issuer, sizeof(info->issuer));
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = sk_GENERAL_NAME_num(gens);
    if (n > 0) {
        info->sans = ag_xcalloc((size_t)n, sizeof(char *));
        for (int i = 0; i < n; i++)
            info->sans[info->n_sans++] = san_str(sk_GENERAL_NAME_value(gens, i));
    }
    GENERAL_NAMES_free(gens);
    X509_free(x);
    return 0;
}

void ag_certs_info_release(struct ag_certs_info *info)
{
    for (size_t i = 0; i < info->n_sans; i++)
        free(info->sans[i]);
    free(info->sans);
    info->sans = NULL;
    info->n_sans = 0;
}
