/* tests/unit/test-common-certs.c - common/certs.c and certs_identity.c: what 'agentry certs init'
 * writes (a CA, then hub, node and admin leaves in a temp dir, loaded back from the files) verifies
 * with OpenSSL's own X509_verify_cert for the right purpose, carries the SANs and identity URIs
 * certs.h promises, has the promised file modes, and reads back through ag_certs_identity_parse;
 * the parser refuses certificates without an agentry identity or with malformed ones (made here
 * with OpenSSL directly, since ag_certs_issue would not sign them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/certs.h"
#include "common/xalloc.h"

struct fx {
    char dir[64];
    char *path[8]; /* ca.crt ca.key hub.crt hub.key node.crt node.key admin.crt admin.key */
};

static const char *const bases[] = {"ca", "hub", "node", "admin"};
static const char *const hub_hosts[] = {"hub.example.com", "10.0.0.5", "localhost", "127.0.0.1",
                                        "::1"};
static const char *const admin_ns[] = {"team-a", "team_b.2"};

static void issue_file(const struct ag_certs_ca *ca, const struct ag_certs_leaf *leaf,
                       const char *crt, const char *key)
{
    char *c = NULL, *k = NULL;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_certs_issue(ca, leaf, &c, &k, &err), 0);
    assert_int_equal(ag_certs_write_pair(crt, c, key, k, false, &err), 0);
    free(c);
    free(k);
}

/* What 'agentry certs init --hosts hub.example.com,10.0.0.5' does, through the library. */
static int setup(void **state)
{
    struct fx *f = ag_xcalloc(1, sizeof(*f));
    umask(022);
    snprintf(f->dir, sizeof(f->dir), "/tmp/agentry-certs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (size_t i = 0; i < 4; i++) {
        f->path[2 * i] = ag_xasprintf("%s/%s.crt", f->dir, bases[i]);
        f->path[2 * i + 1] = ag_xasprintf("%s/%s.key", f->dir, bases[i]);
    }
    struct ag_err err = AG_ERR_INIT;
    struct ag_certs_ca *ca = NULL;
    assert_int_equal(ag_certs_ca_new(AG_CERTS_CA_DAYS, &ca, &err), 0);
    assert_int_equal(ag_certs_ca_write(ca, f->path[0], f->path[1], false, &err), 0);
    ag_certs_ca_free(ca);
    /* Everything else is signed by the CA as loaded from its files, as 'certs issue' does. */
    assert_int_equal(ag_certs_ca_load(f->path[0], f->path[1], &ca, &err), 0);
    const struct ag_certs_leaf hub = {AG_CERTS_KIND_HUB,
                                      "hub.example.com",
                                      AG_CERTS_ROLE_NONE,
                                      NULL,
                                      0,
                                      hub_hosts,
                                      5,
                                      true,
                                      true,
                                      365};
    const struct ag_certs_leaf node = {
        AG_CERTS_KIND_NODE, "node1", AG_CERTS_ROLE_NODE, NULL, 0, NULL, 0, false, true, 365};
    const struct ag_certs_leaf admin = {
        AG_CERTS_KIND_USER, "admin", AG_CERTS_ROLE_ADMIN, admin_ns, 2, NULL, 0, false, true, 30};
    issue_file(ca, &hub, f->path[2], f->path[3]);
    issue_file(ca, &node, f->path[4], f->path[5]);
    issue_file(ca, &admin, f->path[6], f->path[7]);
    ag_certs_ca_free(ca);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < 8; i++) {
        unlink(f->path[i]);
        free(f->path[i]);
    }
    char *extra[] = {"x.crt", "x.key"};
    for (size_t i = 0; i < 2; i++) {
        char *p = ag_xasprintf("%s/%s", f->dir, extra[i]);
        unlink(p);
        free(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    char *data;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_certs_read_file(path, &data, len, &err), 0);
    return data;
}

static X509 *load_x509(const char *path)
{
    size_t len;
    char *pem = slurp(path, &len);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    free(pem);
    assert_non_null(x);
    return x;
}

/* 1 if leaf verifies against ca for purpose (X509_PURPOSE_SSL_SERVER/CLIENT). */
static int verify(X509 *ca, X509 *leaf, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

static void test_leaves_verify_for_their_purpose(void **state)
{
    struct fx *f = *state;
    X509 *ca = load_x509(f->path[0]), *hub = load_x509(f->path[2]);
    X509 *node = load_x509(f->path[4]), *admin = load_x509(f->path[6]);
    assert_int_equal(verify(ca, hub, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_equal(verify(ca, hub, X509_PURPOSE_SSL_CLIENT), 1);
    assert_int_equal(verify(ca, node, X509_PURPOSE_SSL_CLIENT), 1);
    assert_int_equal(verify(ca, admin, X509_PURPOSE_SSL_CLIENT), 1);
    /* Client certificates cannot serve: a stolen node key does not impersonate the hub. */
    assert_int_not_equal(verify(ca, node, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_not_equal(verify(ca, admin, X509_PURPOSE_SSL_SERVER), 1);
    /* Another CA's leaves do not verify. */
    struct ag_certs_ca *other = NULL;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_certs_ca_new(10, &other, &err), 0);
    char *ocrt = ag_xasprintf("%s/x.crt", f->dir), *okey = ag_xasprintf("%s/x.key", f->dir);
    assert_int_equal(ag_certs_ca_write(other, ocrt, okey, false, &err), 0);
    /* A leaf may not outlive its CA (10 days here). */
    const struct ag_certs_leaf long_leaf = {
        AG_CERTS_KIND_NODE, "n", AG_CERTS_ROLE_NODE, NULL, 0, NULL, 0, false, true, 11};
    char *c = NULL, *k = NULL;
    assert_int_equal(ag_certs_issue(other, &long_leaf, &c, &k, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    assert_null(c);
    X509 *oca = load_x509(ocrt);
    assert_int_not_equal(verify(oca, hub, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_not_equal(verify(ca, oca, X509_PURPOSE_SSL_CLIENT), 1);
    /* The CA and the leaves' extensions. */
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
    assert_int_equal(X509_check_ca(hub), 0);
    assert_int_equal(X509_get_key_usage(hub), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(hub), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_int_equal(X509_get_extended_key_usage(node), XKU_SSL_CLIENT);
    /* EC P-256, and a 128-bit random serial. */
    EVP_PKEY *pk = X509_get0_pubkey(node);
    assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
    char group[32];
    size_t glen;
    assert_int_equal(EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen), 1);
    assert_string_equal(group, "prime256v1");
    BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(node), NULL);
    assert_int_equal(BN_num_bits(sn), 128);
    BIGNUM *sn2 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(admin), NULL);
    assert_int_not_equal(BN_cmp(sn, sn2), 0);
    BN_free(sn);
    BN_free(sn2);
    X509_free(oca);
    free(ocrt);
    free(okey);
    ag_certs_ca_free(other);
    X509_free(ca);
    X509_free(hub);
    X509_free(node);
    X509_free(admin);
}

static void test_sans_and_identity(void **state)
{
    struct fx *f = *state;
    size_t len;
    char *pem = slurp(f->path[2], &len);
    struct ag_certs_info info;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_certs_info_read(pem, len, &info, &err), 0);
    free(pem);
    const char *want[] = {"URI:agentry://hub/hub.example.com",
                          "DNS:hub.example.com",
                          "IP:10.0.0.5",
                          "DNS:localhost",
                          "IP:127.0.0.1",
                          "IP:::1"};
    assert_int_equal(info.n_sans, AG_ARRAY_SIZE(want));
    for (size_t i = 0; i < AG_ARRAY_SIZE(want); i++)
        assert_string_equal(info.sans[i], want[i]);
    assert_string_equal(info.subject, "CN=hub.example.com");
    assert_string_equal(info.issuer, "CN=agentry CA");
    assert_int_equal(info.id.kind, AG_CERTS_KIND_HUB);
    assert_int_equal(info.id.role, AG_CERTS_ROLE_NONE);
    assert_string_equal(info.id_error, "");
    ag_certs_info_release(&info);

    pem = slurp(f->path[6], &len);
    struct ag_certs_identity id;
    assert_int_equal(ag_certs_identity_parse(pem, len, &id, &err), 0);
    free(pem);
    assert_int_equal(id.kind, AG_CERTS_KIND_USER);
    assert_string_equal(id.name, "admin");
    assert_int_equal(id.role, AG_CERTS_ROLE_ADMIN);
    assert_int_equal(id.n_namespaces, 2);
    assert_string_equal(id.namespaces[0], "team-a");
    assert_string_equal(id.namespaces[1], "team_b.2");

    pem = slurp(f->path[4], &len);
    assert_int_equal(ag_certs_identity_parse(pem, len, &id, &err), 0);
    free(pem);
    assert_int_equal(id.kind, AG_CERTS_KIND_NODE);
    assert_string_equal(id.name, "node1");
    assert_int_equal(id.role, AG_CERTS_ROLE_NODE);
    assert_int_equal(id.n_namespaces, 0);
}

static void test_file_modes(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < 8; i++) {
        struct stat st;
        assert_int_equal(stat(f->path[i], &st), 0);
        assert_int_equal(st.st_mode & 0777, i % 2 ? 0600 : 0644);
    }
}

static void test_days_set_not_after(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    size_t len;
    const int days[] = {30, 365, 365}; /* admin, hub, node as issued in setup */
    const char *files[] = {f->path[6], f->path[2], f->path[4]};
    for (size_t i = 0; i < 3; i++) {
        char *pem = slurp(files[i], &len);
        struct ag_certs_identity id;
        struct ag_err err = AG_ERR_INIT;
        assert_int_equal(ag_certs_identity_parse(pem, len, &id, &err), 0);
        free(pem);
        int64_t want = now + (int64_t)days[i] * 86400;
        assert_true(id.not_after > want - 120 && id.not_after <= want + 5);
        assert_true(id.not_before <= now && id.not_before > now - 3600);
    }
}

static void test_overwrite_refused_without_force(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    struct ag_certs_ca *ca = NULL;
    assert_int_equal(ag_certs_ca_load(f->path[0], f->path[1], &ca, &err), 0);
    const struct ag_certs_leaf leaf = {
        AG_CERTS_KIND_NODE, "node1", AG_CERTS_ROLE_NODE, NULL, 0, NULL, 0, false, true, 7};
    char *c = NULL, *k = NULL;
    assert_int_equal(ag_certs_issue(ca, &leaf, &c, &k, &err), 0);
    size_t len;
    char *before = slurp(f->path[5], &len);
    assert_int_equal(ag_certs_write_pair(f->path[4], c, f->path[5], k, false, &err), -1);
    assert_int_equal(err.code, AG_ALREADY_EXISTS);
    assert_non_null(strstr(err.msg, f->path[4]));
    assert_non_null(strstr(err.msg, "--force"));
    char *after = slurp(f->path[5], &len);
    assert_string_equal(before, after);
    free(after);
    /* With force both are replaced, and the key is still 0600. */
    assert_int_equal(ag_certs_write_pair(f->path[4], c, f->path[5], k, true, &err), 0);
    after = slurp(f->path[5], &len);
    assert_string_equal(after, k);
    struct stat st;
    assert_int_equal(stat(f->path[5], &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The CA's files too. */
    assert_int_equal(ag_certs_ca_write(ca, f->path[0], f->path[1], false, &err), -1);
    assert_non_null(strstr(err.msg, f->path[0]));
    free(before);
    free(after);
    free(c);
    free(k);
    ag_certs_ca_free(ca);
}

static void test_ca_load_checks(void **state)
{
    struct fx *f = *state;
    struct ag_err err = AG_ERR_INIT;
    struct ag_certs_ca *ca = NULL;
    /* A leaf is not a CA; a key that is not the certificate's; a missing file. */
    assert_int_equal(ag_certs_ca_load(f->path[2], f->path[3], &ca, &err), -1);
    assert_non_null(strstr(err.msg, "is not a CA certificate"));
    assert_int_equal(ag_certs_ca_load(f->path[0], f->path[3], &ca, &err), -1);
    assert_non_null(strstr(err.msg, "is not the key of"));
    char *missing = ag_xasprintf("%s/nope.crt", f->dir);
    assert_int_equal(ag_certs_ca_load(missing, f->path[1], &ca, &err), -1);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, "No such file or directory"));
    free(missing);
    assert_null(ca);
}

/* A self-signed certificate whose subjectAltName holds exactly these URIs (none: no SAN). */
static char *cert_with_uris(const char *const *uris, size_t n)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    if (n) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        for (size_t i = 0; i < n; i++) {
            GENERAL_NAME *g = GENERAL_NAME_new();
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            ASN1_STRING_set(s, uris[i], -1);
            GENERAL_NAME_set0_value(g, GEN_URI, s);
            sk_GENERAL_NAME_push(gens, g);
        }
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
        GENERAL_NAMES_free(gens);
    }
    X509_sign(x, key, EVP_sha256());
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *out = ag_xstrndup(data, (size_t)len);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return out;
}

static int parse_uris(const char *const *uris, size_t n, struct ag_certs_identity *id,
                      struct ag_err *err)
{
    char *pem = cert_with_uris(uris, n);
    int rc = ag_certs_identity_parse(pem, strlen(pem), id, err);
    free(pem);
    return rc;
}

static void expect_refused(const char *const *uris, size_t n, const char *msg_part)
{
    struct ag_certs_identity id;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(parse_uris(uris, n, &id, &err), -1);
    assert_int_equal(err.code, AG_UNAUTHENTICATED);
    if (!strstr(err.msg, msg_part))
        fail_msg("message '%s' lacks '%s'", err.msg, msg_part);
    assert_int_equal(id.kind, AG_CERTS_KIND_NONE);
}

static void test_parse_refuses(void **state)
{
    (void)state;
    char long_name[160];
    memset(long_name, 'a', sizeof(long_name));
    snprintf(long_name, sizeof(long_name), "agentry://node/%0129d", 7);
    const char *none[] = {"https://example.com/x"};
    expect_refused(NULL, 0, "no agentry identity");
    expect_refused(none, 1, "no agentry identity");
    const char *only_role[] = {"agentry://role/admin"};
    expect_refused(only_role, 1, "no agentry identity");
    const char *bad[][2] = {
        {"agentry://node/bad name", "malformed"},
        {"agentry://node/", "malformed"},
        {"agentry://node", "malformed"},
        {"agentry://node/a/b", "malformed"},
        {"agentry://node/caf\xc3\xa9", "malformed"},
        {long_name, "malformed"},
        {"agentry://gizmo/x", "unknown type"},
        {"agentry://Node/x", "unknown type"},
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        const char *u[] = {bad[i][0], "agentry://user/ok"};
        /* Refused alone and next to a good identity: one bad agentry URI spoils the certificate. */
        expect_refused(u, 1, bad[i][1]);
        const char *u2[] = {"agentry://user/ok", bad[i][0]};
        expect_refused(u2, 2, bad[i][1]);
    }
    const char *two_kinds[] = {"agentry://user/a", "agentry://node/a"};
    expect_refused(two_kinds, 2, "more than one identity");
    const char *two_roles[] = {"agentry://user/a", "agentry://role/viewer", "agentry://role/admin"};
    expect_refused(two_roles, 3, "more than one role");
    const char *bad_role[] = {"agentry://user/a", "agentry://role/god"};
    expect_refused(bad_role, 2, "unknown role 'god'");
    const char *bad_ns[] = {"agentry://user/a", "agentry://namespace/a,b"};
    expect_refused(bad_ns, 2, "malformed");

    /* Not a certificate at all. */
    struct ag_certs_identity id;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_certs_identity_parse("hello", 5, &id, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
}

static void test_parse_accepts(void **state)
{
    (void)state;
    /* Other schemes are ignored; order does not matter; 128 characters is the limit. */
    char name128[160];
    snprintf(name128, sizeof(name128), "agentry://namespace/%0128d", 5);
    const char *uris[] = {"spiffe://x/y", "agentry://role/viewer", name128,
                          "agentry://user/A.b_c-9"};
    struct ag_certs_identity id;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(parse_uris(uris, 4, &id, &err), 0);
    assert_int_equal(id.kind, AG_CERTS_KIND_USER);
    assert_string_equal(id.name, "A.b_c-9");
    assert_int_equal(id.role, AG_CERTS_ROLE_VIEWER);
    assert_int_equal(id.n_namespaces, 1);
    assert_int_equal(strlen(id.namespaces[0]), 128);
    /* A hub certificate: no role. */
    const char *hub[] = {"agentry://hub/h"};
    assert_int_equal(parse_uris(hub, 1, &id, &err), 0);
    assert_int_equal(id.kind, AG_CERTS_KIND_HUB);
    assert_int_equal(id.role, AG_CERTS_ROLE_NONE);
}

static void test_issue_refuses_bad_values(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    const char *bad_ns[] = {"ok", "not ok"};
    const char *bad_host[] = {"a,b"};
    struct ag_certs_leaf leaf = {
        AG_CERTS_KIND_USER, "x", AG_CERTS_ROLE_VIEWER, NULL, 0, NULL, 0, false, true, 1};
    assert_int_equal(ag_certs_leaf_check(&leaf, &err), 0);
    leaf.name = "a/b";
    assert_int_equal(ag_certs_leaf_check(&leaf, &err), -1);
    assert_string_equal(err.msg, "invalid name 'a/b' (want 1..128 characters of [A-Za-z0-9._-])");
    leaf.name = "x";
    leaf.namespaces = bad_ns;
    leaf.n_namespaces = 2;
    assert_int_equal(ag_certs_leaf_check(&leaf, &err), -1);
    assert_non_null(strstr(err.msg, "'not ok'"));
    leaf.n_namespaces = 0;
    leaf.hosts = bad_host;
    leaf.n_hosts = 1;
    assert_int_equal(ag_certs_leaf_check(&leaf, &err), -1);
    assert_non_null(strstr(err.msg, "'a,b'"));
    leaf.n_hosts = 0;
    leaf.days = 0;
    assert_int_equal(ag_certs_leaf_check(&leaf, &err), -1);
    assert_true(ag_certs_name_valid("a"));
    assert_false(ag_certs_name_valid(""));
    assert_true(ag_certs_host_valid("*.example.com"));
    assert_true(ag_certs_host_valid("fe80::1"));
    assert_false(ag_certs_host_valid("-x"));
    assert_false(ag_certs_host_valid("a b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leaves_verify_for_their_purpose, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sans_and_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_days_set_not_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite_refused_without_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_load_checks, setup, teardown),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_issue_refuses_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
