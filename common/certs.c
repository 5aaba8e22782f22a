/* common/certs.c - making certificates: the CA, the leaves it signs, and their files (the rules
 * are in certs.h). Reading them back is certs_identity.c's.
 *
 * SAN entries are built as GENERAL_NAMEs, not through OpenSSL's "DNS:a,IP:b" config strings, so
 * that no name or host can smuggle in a second entry with a comma. */
#include "common/certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/xalloc.h"

#define CA_CN "agentry CA"
#define SKEW_SECONDS (5 * 60)
#define MAX_FILE_BYTES (1 << 20)

struct ag_certs_ca {
    X509 *cert;    /* owned */
    EVP_PKEY *key; /* owned */
};

/* err with OpenSSL's last reason appended; clears OpenSSL's error queue. */
static int ossl_fail(struct ag_err *err, const char *what)
{
    char reason[160] = "unknown reason";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    return ag_err_set(err, AG_INTERNAL, "cannot %s: %s", what, reason);
}

static EVP_PKEY *new_key(struct ag_err *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key)
        ossl_fail(err, "generate an EC P-256 key");
    return key;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, struct ag_err *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : ossl_fail(err, "add a certificate extension");
}

/* A certificate with serial, validity, subject CN and public key; not yet signed. */
static X509 *new_cert(const char *cn, EVP_PKEY *key, int days, struct ag_err *err)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    /* 128 random bits with the top one set: always 16 bytes, positive, never zero. */
    bool ok = x && bn && X509_set_version(x, X509_VERSION_3) &&
              BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
              X509_gmtime_adj(X509_getm_notBefore(x), -SKEW_SECONDS) &&
              X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) &&
              X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                                         (const unsigned char *)cn, -1, -1, 0) &&
              X509_set_pubkey(x, key);
    BN_free(bn);
    if (ok)
        return x;
    X509_free(x);
    ossl_fail(err, "build a certificate");
    return NULL;
}

static int sign(X509 *x, EVP_PKEY *key, struct ag_err *err)
{
    return X509_sign(x, key, EVP_sha256()) > 0 ? 0 : ossl_fail(err, "sign the certificate");
}

int ag_certs_ca_new(int days, struct ag_certs_ca **out, struct ag_err *err)
{
    /* One day more than a leaf may have, so a CA can outlive the longest leaf it signs. */
    if (days < 1 || days > AG_CERTS_MAX_DAYS + 1)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid CA validity %d days (want 1..%d)",
                          days, AG_CERTS_MAX_DAYS + 1);
    struct ag_certs_ca *ca = ag_xcalloc(1, sizeof(*ca));
    if (!(ca->key = new_key(err)) || !(ca->cert = new_cert(CA_CN, ca->key, days, err)))
        goto fail;
    X509 *x = ca->cert;
    if (!X509_set_issuer_name(x, X509_get_subject_name(x))) {
        ossl_fail(err, "set the CA's issuer");
        goto fail;
    }
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE", err) != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", err) != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash", err) != 0 || sign(x, ca->key, err) != 0)
        goto fail;
    *out = ca;
    return 0;
fail:
    ag_certs_ca_free(ca);
    return -1;
}

void ag_certs_ca_free(struct ag_certs_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

bool ag_certs_host_valid(const char *host)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        return true;
    const char *p = strncmp(host, "*.", 2) == 0 ? host + 2 : host;
    size_t n = strlen(p);
    if (n == 0 || strlen(host) > 253 || p[0] == '.' || p[0] == '-' || p[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Append one SAN entry: type GEN_DNS/GEN_URI with a string, or GEN_IPADD from an address. */
static int push_san(GENERAL_NAMES *gens, int type, const char *value, struct ag_err *err)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s = NULL;
    if (g && type == GEN_IPADD)
        s = a2i_IPADDRESS(value);
    else if (g && (s = ASN1_IA5STRING_new()) && !ASN1_STRING_set(s, value, -1)) {
        ASN1_STRING_free(s);
        s = NULL;
    }
    if (!g || !s) {
        GENERAL_NAME_free(g);
        return ossl_fail(err, "build a subjectAltName entry");
    }
    GENERAL_NAME_set0_value(g, type, s);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return ossl_fail(err, "build the subjectAltName");
    }
    return 0;
}

static bool is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int add_sans(X509 *x, const struct ag_certs_leaf *leaf, struct ag_err *err)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens)
        return ossl_fail(err, "build the subjectAltName");
    char uri[AG_CERTS_NAME_MAX + 32];
    snprintf(uri, sizeof(uri), "agentry://%s/%s", ag_certs_kind_name(leaf->kind), leaf->name);
    int rc = push_san(gens, GEN_URI, uri, err);
    if (rc == 0 && leaf->role != AG_CERTS_ROLE_NONE) {
        snprintf(uri, sizeof(uri), "agentry://role/%s", ag_certs_role_name(leaf->role));
        rc = push_san(gens, GEN_URI, uri, err);
    }
    for (size_t i = 0; rc == 0 && i < leaf->n_namespaces; i++) {
        snprintf(uri, sizeof(uri), "agentry://namespace/%s", leaf->namespaces[i]);
        rc = push_san(gens, GEN_URI, uri, err);
    }
    for (size_t i = 0; rc == 0 && i < leaf->n_hosts; i++)
        rc = push_san(gens, is_ip(leaf->hosts[i]) ? GEN_IPADD : GEN_DNS, leaf->hosts[i], err);
    if (rc == 0 && !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
        rc = ossl_fail(err, "add the subjectAltName");
    GENERAL_NAMES_free(gens);
    return rc;
}

int ag_certs_leaf_check(const struct ag_certs_leaf *leaf, struct ag_err *err)
{
    if (leaf->kind == AG_CERTS_KIND_NONE || !(leaf->server_auth || leaf->client_auth))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "a leaf certificate needs a kind and a purpose (server or client)");
    if (!ag_certs_name_valid(leaf->name))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid name '%.140s' (want 1..128 characters of [A-Za-z0-9._-])",
                          leaf->name);
    if (leaf->n_namespaces > AG_CERTS_MAX_NAMESPACES)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "too many namespaces (%zu; at most %d)",
                          leaf->n_namespaces, AG_CERTS_MAX_NAMESPACES);
    for (size_t i = 0; i < leaf->n_namespaces; i++)
        if (!ag_certs_name_valid(leaf->namespaces[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "invalid namespace '%.140s' (want 1..128 characters of "
                              "[A-Za-z0-9._-])",
                              leaf->namespaces[i]);
    for (size_t i = 0; i < leaf->n_hosts; i++)
        if (!ag_certs_host_valid(leaf->hosts[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "invalid host '%.140s' (want a DNS name or an IP address)",
                              leaf->hosts[i]);
    if (leaf->days < 1 || leaf->days > AG_CERTS_MAX_DAYS)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid validity %d days (want 1..%d)",
                          leaf->days, AG_CERTS_MAX_DAYS);
    return 0;
}

static char *pem_of(int (*enc)(BIO *, const void *), const void *obj, struct ag_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    if (bio && enc(bio, obj)) {
        long n = BIO_get_mem_data(bio, &data);
        out = ag_xstrndup(data, (size_t)n);
    } else {
        ossl_fail(err, "encode PEM");
    }
    BIO_free(bio);
    return out;
}

static int write_cert_bio(BIO *bio, const void *x)
{
    return PEM_write_bio_X509(bio, (X509 *)x);
}

static int write_key_bio(BIO *bio, const void *k)
{
    return PEM_write_bio_PrivateKey(bio, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

int ag_certs_issue(const struct ag_certs_ca *ca, const struct ag_certs_leaf *leaf, char **cert_pem,
                   char **key_pem, struct ag_err *err)
{
    if (ag_certs_leaf_check(leaf, err) != 0)
        return -1;
    char eku[32];
    snprintf(eku, sizeof(eku), "%s%s%s", leaf->server_auth ? "serverAuth" : "",
             leaf->server_auth && leaf->client_auth ? "," : "",
             leaf->client_auth ? "clientAuth" : "");
    EVP_PKEY *key = new_key(err);
    X509 *x = key ? new_cert(leaf->name, key, leaf->days, err) : NULL;
    int rc = -1;
    if (!x)
        goto out;
    if (!X509_set_issuer_name(x, X509_get_subject_name(ca->cert))) {
        ossl_fail(err, "set the issuer");
        goto out;
    }
    /* Past the CA's end the leaf stops verifying anyway: say so now, not on that day. */
    if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca->cert)) > 0) {
        ag_err_set(err, AG_FAILED_PRECONDITION,
                   "a certificate valid %d days would outlive its CA; ask for fewer --days",
                   leaf->days);
        goto out;
    }
    if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE", err) != 0 ||
        add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature", err) != 0 ||
        add_ext(x, ca->cert, NID_ext_key_usage, eku, err) != 0 ||
        add_ext(x, ca->cert, NID_subject_key_identifier, "hash", err) != 0 ||
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always", err) != 0 ||
        add_sans(x, leaf, err) != 0 || sign(x, ca->key, err) != 0)
        goto out;
    *cert_pem = pem_of(write_cert_bio, x, err);
    *key_pem = *cert_pem ? pem_of(write_key_bio, key, err) : NULL;
    if (*cert_pem && !*key_pem) {
        free(*cert_pem);
        *cert_pem = NULL;
    }
    rc = *key_pem ? 0 : -1;
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/* --- files ------------------------------------------------------------------------------- */

int ag_certs_check_absent(const char *path, struct ag_err *err)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return ag_err_set(err, AG_ALREADY_EXISTS, "'%s' already exists; pass --force to replace it",
                          path);
    if (errno != ENOENT)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot check '%s': %s", path, strerror(errno));
    return 0;
}

/* Create path with mode (O_EXCL: never through an existing file or symlink) and write data. */
static int write_new(const char *path, const char *data, mode_t mode, bool force,
                     struct ag_err *err)
{
    if (force && unlink(path) != 0 && errno != ENOENT)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot replace '%s': %s", path, strerror(errno));
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return ag_err_set(err, AG_ALREADY_EXISTS,
                              "'%s' already exists; pass --force to replace it", path);
        return ag_err_set(err, AG_UNAVAILABLE, "cannot create '%s': %s", path, strerror(errno));
    }
    size_t len = strlen(data), done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return ag_err_set(err, AG_UNAVAILABLE, "cannot write '%s': %s", path, strerror(e));
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

int ag_certs_write_pair(const char *crt_path, const char *cert_pem, const char *key_path,
                        const char *key_pem, bool force, struct ag_err *err)
{
    if (!force &&
        (ag_certs_check_absent(crt_path, err) != 0 || ag_certs_check_absent(key_path, err) != 0))
        return -1;
    /* The key first: a certificate without its key is useless, a key alone is just retried. */
    if (write_new(key_path, key_pem, 0600, force, err) != 0)
        return -1;
    return write_new(crt_path, cert_pem, 0644, force, err);
}

int ag_certs_read_file(const char *path, char **out, size_t *len, struct ag_err *err)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot open '%s': %s", path, strerror(errno));
    char *buf = ag_xmalloc(MAX_FILE_BYTES + 1);
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    if (bad || n > MAX_FILE_BYTES) {
        free(buf);
        return bad ? ag_err_set(err, AG_UNAVAILABLE, "cannot read '%s': %s", path, strerror(bad))
                   : ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' is larger than 1 MiB", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* --- the CA's files ---------------------------------------------------------------------- */

int ag_certs_ca_write(const struct ag_certs_ca *ca, const char *crt_path, const char *key_path,
                      bool force, struct ag_err *err)
{
    char *crt = pem_of(write_cert_bio, ca->cert, err);
    char *key = crt ? pem_of(write_key_bio, ca->key, err) : NULL;
    int rc = key ? ag_certs_write_pair(crt_path, crt, key_path, key, force, err) : -1;
    free(crt);
    if (key)
        OPENSSL_cleanse(key, strlen(key));
    free(key);
    return rc;
}

static void *load_pem(const char *path, bool is_key, struct ag_err *err)
{
    char *data;
    size_t len;
    if (ag_certs_read_file(path, &data, &len, err) != 0)
        return NULL;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    void *obj = !bio     ? NULL
                : is_key ? (void *)PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                         : (void *)PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(data, len);
    free(data);
    ERR_clear_error();
    if (!obj)
        ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' holds no PEM %s", path,
                   is_key ? "private key" : "certificate");
    return obj;
}

int ag_certs_ca_load(const char *crt_path, const char *key_path, struct ag_certs_ca **out,
                     struct ag_err *err)
{
    struct ag_certs_ca *ca = ag_xcalloc(1, sizeof(*ca));
    if (!(ca->cert = load_pem(crt_path, false, err)) || !(ca->key = load_pem(key_path, true, err)))
        goto fail;
    if (X509_check_ca(ca->cert) <= 0) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' is not a CA certificate", crt_path);
        goto fail;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' is not the key of '%s'", key_path, crt_path);
        goto fail;
    }
    *out = ca;
    return 0;
fail:
    ag_certs_ca_free(ca);
    return -1;
}
