/* common/rpc/tls.c - see tls.h. State: one struct rpc_tls_server per TLS server, its PEM
 * contents and the stat of each file at the last load, guarded by its mutex; the reload request
 * is an atomic generation counter so a signal thread can bump it without that mutex. */
#include "common/rpc/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/xalloc.h"

#define RPC_TLS_MAX_PEM (1u << 20)

struct rpc_tls_stamp {
    struct timespec mtime;
    off_t size;
    ino_t ino;
};

struct rpc_tls_server {
    char *path[3]; /* ca, cert, key */
    bool optional; /* rpc_tls_files.client_cert_optional */
    pthread_mutex_t lock;
    /* Guarded by lock: */
    struct rpc_tls_stamp stamp[3];
    unsigned seen_gen;  /* the reload generation of the last look at the files */
    bool given;         /* gRPC has a config (the first fetch happened) */
    bool failed_logged; /* the current broken set was already reported */
    char *pem[3];       /* contents of the set in use */
    unsigned loads;
    atomic_uint gen; /* bumped by rpc_tls_server_reload */
};

static const char *const what[3] = {"CA certificate", "certificate", "private key"};

static int read_pem(const char *path, const char *kind, char **out, struct rpc_tls_stamp *st,
                    struct ag_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read the %s '%s': %s", kind, path,
                          strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size <= 0 || sb.st_size > RPC_TLS_MAX_PEM) {
        fclose(f);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "the %s '%s' is empty or too large", kind,
                          path);
    }
    char *buf = ag_xmalloc((size_t)sb.st_size + 1);
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    fclose(f);
    buf[n] = '\0';
    if (st)
        *st = (struct rpc_tls_stamp){sb.st_mtim, sb.st_size, sb.st_ino};
    *out = buf;
    return 0;
}

/* The PEM texts parse, and the key belongs to the certificate: gRPC itself would only say so at
 * the first handshake, as a TLS alert the peer cannot explain. */
static int check_set(char *const pem[3], char *const path[3], struct ag_err *err)
{
    BIO *b = BIO_new_mem_buf(pem[0], -1);
    X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(pem[1], -1);
    X509 *crt = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(pem[2], -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    int rc = 0;
    if (!ca)
        rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                        "the CA certificate '%s' is not a PEM certificate", path[0]);
    else if (!crt)
        rc = ag_err_set(err, AG_INVALID_ARGUMENT, "the certificate '%s' is not a PEM certificate",
                        path[1]);
    else if (!key)
        rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                        "the private key '%s' is not an unencrypted PEM key", path[2]);
    else if (X509_check_private_key(crt, key) != 1)
        rc = ag_err_set(err, AG_INVALID_ARGUMENT, "the key '%s' does not belong to '%s'", path[2],
                        path[1]);
    ERR_clear_error();
    X509_free(ca);
    X509_free(crt);
    EVP_PKEY_free(key);
    return rc;
}

/* Read the three files into pem[] (the caller frees) and check them. */
static int load_set(char *const path[3], char *pem[3], struct rpc_tls_stamp st[3],
                    struct ag_err *err)
{
    memset(pem, 0, 3 * sizeof(*pem));
    for (int i = 0; i < 3; i++)
        if (read_pem(path[i], what[i], &pem[i], st ? &st[i] : NULL, err) != 0)
            goto fail;
    if (check_set(pem, path, err) == 0)
        return 0;
fail:
    for (int i = 0; i < 3; i++) {
        free(pem[i]);
        pem[i] = NULL;
    }
    return -1;
}

static bool files_changed(struct rpc_tls_server *t)
{
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        if (stat(t->path[i], &sb) != 0)
            return false; /* mid-rename: keep what we have, look again next handshake */
        const struct rpc_tls_stamp *s = &t->stamp[i];
        if (sb.st_mtim.tv_sec != s->mtime.tv_sec || sb.st_mtim.tv_nsec != s->mtime.tv_nsec ||
            sb.st_size != s->size || sb.st_ino != s->ino)
            return true;
    }
    return false;
}

static grpc_ssl_server_certificate_config *config_of(struct rpc_tls_server *t)
{
    grpc_ssl_pem_key_cert_pair kp = {.private_key = t->pem[2], .cert_chain = t->pem[1]};
    return grpc_ssl_server_certificate_config_create(t->pem[0], &kp, 1); /* copies the PEM */
}

static grpc_ssl_certificate_config_reload_status fetch(void *arg,
                                                       grpc_ssl_server_certificate_config **config)
{
    struct rpc_tls_server *t = arg;
    grpc_ssl_certificate_config_reload_status rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    pthread_mutex_lock(&t->lock);
    unsigned gen = atomic_load(&t->gen);
    if (!t->given) {
        *config = config_of(t);
        t->given = true;
        rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
    } else if (gen != t->seen_gen || files_changed(t)) {
        char *pem[3];
        struct rpc_tls_stamp st[3];
        struct ag_err err = AG_ERR_INIT;
        if (load_set(t->path, pem, st, &err) == 0) {
            for (int i = 0; i < 3; i++) {
                free(t->pem[i]);
                t->pem[i] = pem[i];
                t->stamp[i] = st[i];
            }
            t->loads++;
            t->failed_logged = false;
            *config = config_of(t);
            rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
            ag_log_info("rpc.tls_reloaded", "cert=%s loads=%u", ag_log_q(t->path[1]), t->loads);
        } else if (!t->failed_logged) {
            t->failed_logged = true;
            ag_log_error("rpc.tls_reload_failed", "err=%s action=kept_previous", ag_log_q(err.msg));
        }
    }
    t->seen_gen = gen;
    pthread_mutex_unlock(&t->lock);
    return rs;
}

struct rpc_tls_server *rpc_tls_server_new(const struct rpc_tls_files *f, struct ag_err *err)
{
    struct rpc_tls_server *t = ag_xcalloc(1, sizeof(*t));
    t->path[0] = ag_xstrdup(f->ca);
    t->path[1] = ag_xstrdup(f->cert);
    t->path[2] = ag_xstrdup(f->key);
    t->optional = f->client_cert_optional;
    pthread_mutex_init(&t->lock, NULL);
    atomic_init(&t->gen, 0);
    if (load_set(t->path, t->pem, t->stamp, err) != 0) {
        rpc_tls_server_free(t);
        return NULL;
    }
    return t;
}

grpc_server_credentials *rpc_tls_server_creds(struct rpc_tls_server *t)
{
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            t->optional ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                        : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
            fetch, t);
    return grpc_ssl_server_credentials_create_with_options(o); /* takes o */
}

void rpc_tls_server_reload(struct rpc_tls_server *t)
{
    atomic_fetch_add(&t->gen, 1);
}

unsigned rpc_tls_server_loads(struct rpc_tls_server *t)
{
    pthread_mutex_lock(&t->lock);
    unsigned n = t->loads;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void rpc_tls_server_free(struct rpc_tls_server *t)
{
    if (!t)
        return;
    for (int i = 0; i < 3; i++) {
        free(t->path[i]);
        free(t->pem[i]);
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

grpc_channel_credentials *rpc_tls_channel_creds(const struct rpc_tls_files *f, struct ag_err *err)
{
    if (!f->cert && !f->key) { /* verify the server only: the caller shows a bearer token */
        char *ca = NULL;
        if (read_pem(f->ca, what[0], &ca, NULL, err) != 0)
            return NULL;
        grpc_channel_credentials *c = grpc_ssl_credentials_create(ca, NULL, NULL, NULL);
        free(ca);
        return c;
    }
    char *path[3] = {(char *)f->ca, (char *)f->cert, (char *)f->key};
    char *pem[3];
    if (load_set(path, pem, NULL, err) != 0)
        return NULL;
    grpc_ssl_pem_key_cert_pair kp = {.private_key = pem[2], .cert_chain = pem[1]};
    grpc_channel_credentials *c = grpc_ssl_credentials_create(pem[0], &kp, NULL, NULL);
    for (int i = 0; i < 3; i++)
        free(pem[i]); /* the credentials keep copies */
    return c;
}
