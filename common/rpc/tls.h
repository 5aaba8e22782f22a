/* common/rpc/tls.h - mutual TLS for the gRPC hops: credentials from PEM files, checked at start
 * with a message a user can act on, and a server side that re-reads its files without a restart.
 *
 * Server: rpc_tls_server_new reads and checks ca/cert/key (the key must match the certificate)
 * and hands gRPC a certificate-config fetcher. gRPC asks the fetcher at every new handshake; it
 * answers "unchanged" unless a file's mtime, size or inode changed since the last read or
 * rpc_tls_server_reload was called (SIGHUP), and then reads the files again. A set of files that
 * does not load (a key copied before its certificate) keeps the previous one in use and is logged
 * once per change. Connections already up keep the certificate they were made with. Clients must
 * present a certificate signed by the CA (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_
 * VERIFY).
 *
 * Client: rpc_tls_channel_creds verifies the server against ca and presents cert/key.
 *
 * Threads: the fetcher runs on gRPC's handshake threads, under the server's mutex; reload may be
 * called from any thread (an atomic generation counter). */
#ifndef AGENTRY_COMMON_RPC_TLS_H
#define AGENTRY_COMMON_RPC_TLS_H

#include <grpc/grpc_security.h>
#include <stdbool.h>

#include "common/err.h"

/* Paths of PEM files: the CA that signs the peer, our certificate (chain) and its key. */
struct rpc_tls_files {
    const char *ca;
    const char *cert; /* client side: NULL with key NULL to present none (a bearer token) */
    const char *key;
    /* Server side: clients may come without a certificate (they then need a bearer token, which
     * the application checks); one they do present must still verify against ca. */
    bool client_cert_optional;
};

struct rpc_tls_server;

/* Reads and checks the files; NULL with err (INVALID_ARGUMENT, naming the file) if one cannot be
 * read, is not PEM, or the key does not belong to the certificate. */
struct rpc_tls_server *rpc_tls_server_new(const struct rpc_tls_files *f, struct ag_err *err);
/* Server credentials using t's fetcher (t must outlive the server). */
grpc_server_credentials *rpc_tls_server_creds(struct rpc_tls_server *t);
/* New handshakes re-read the files even if they look unchanged. Any thread. */
void rpc_tls_server_reload(struct rpc_tls_server *t);
/* How many times a changed set of files was loaded (0 after start). */
unsigned rpc_tls_server_loads(struct rpc_tls_server *t);
void rpc_tls_server_free(struct rpc_tls_server *t);

/* Channel credentials: verify the server with f->ca, present f->cert/f->key. NULL with err as
 * rpc_tls_server_new gives it. */
grpc_channel_credentials *rpc_tls_channel_creds(const struct rpc_tls_files *f, struct ag_err *err);

#endif
