/* common/etcd_internal.h - private to common/etcd*.c: the HTTP connection and JSON helpers that
 * the unary calls (etcd.c) and the keeper and watch threads (etcd_watch.c) share.
 *
 * A conn is one libcurl easy handle with its response buffer; one thread uses it at a time
 * (the client's lock guards the unary one; a keeper or watch owns its own). The one thing
 * another thread may do to a conn is ag_etcd__conn_abort(), which is why fd and aborted are
 * guarded by fd_mu / atomic. */
#ifndef AGENTRY_COMMON_ETCD_INTERNAL_H
#define AGENTRY_COMMON_ETCD_INTERNAL_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/etcd.h"

struct ag_etcd {
    char **urls; /* owned; n_urls endpoint URLs without a trailing slash */
    size_t n_urls;
    _Atomic size_t preferred; /* the endpoint that answered last: tried first */
    int64_t timeout_ms;
    char *ca_file, *cert_file, *key_file; /* owned, NULL when not set */
    pthread_mutex_t mu;                   /* guards unary: one unary call at a time */
    struct ag_etcd__conn *unary;
};

/* Called with each complete line of a streamed response (NUL-terminated, without the newline);
 * false aborts the transfer. */
typedef bool ag_etcd__line_fn(void *arg, char *line);

struct ag_etcd__conn {
    struct ag_etcd *c; /* borrowed */
    CURL *h;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    char *buf; /* owned: the response body, or the unfinished tail line of a stream */
    size_t len, cap;
    ag_etcd__line_fn *on_line; /* NULL for unary calls */
    void *line_arg;
    pthread_mutex_t fd_mu; /* guards fd against ag_etcd__conn_abort from another thread */
    curl_socket_t fd;      /* the socket of the transfer in progress, CURL_SOCKET_BAD if none */
    atomic_bool aborted;   /* sticky: every transfer from now on fails at once */
};

struct ag_etcd__conn *ag_etcd__conn_new(struct ag_etcd *c);
void ag_etcd__conn_free(struct ag_etcd__conn *cn);
/* From any thread: end the transfer in progress now (shutdown of its socket) and refuse later
 * ones. */
void ag_etcd__conn_abort(struct ag_etcd__conn *cn);

/* POST req (not consumed) to path ("/v3/kv/put") and parse the JSON answer into *resp (owned).
 * timeout_ms 0 = none. Non-200 answers become etcd's error. */
int ag_etcd__call(struct ag_etcd__conn *cn, const char *path, const cJSON *req, int64_t timeout_ms,
                  cJSON **resp, struct ag_err *err);
/* POST req to path and feed each line of the answer to on_line until the stream ends: 0 when it
 * ended cleanly (etcd closed it), -1 with err otherwise (including an abort by on_line). */
int ag_etcd__stream(struct ag_etcd__conn *cn, const char *path, const cJSON *req,
                    ag_etcd__line_fn *on_line, void *arg, struct ag_err *err);

/* JSON <-> etcd's encoding: bytes as base64, int64 as strings (absent = 0). */
void ag_etcd__add_bytes(cJSON *obj, const char *name, const void *p, size_t n);
void ag_etcd__add_i64(cJSON *obj, const char *name, int64_t v);
int64_t ag_etcd__i64(const cJSON *obj, const char *name);
int64_t ag_etcd__header_rev(const cJSON *resp);
/* Parse one mvccpb.KeyValue; -1 (INTERNAL) on bad base64. */
int ag_etcd__kv_parse(const cJSON *j, struct ag_etcd_kv *kv, struct ag_err *err);
void ag_etcd__kv_release(struct ag_etcd_kv *kv);
/* A RangeRequest body for key or prefix. */
cJSON *ag_etcd__range_req(const char *key, bool prefix, int64_t limit);
/* The kvs of a RangeResponse (+ revision from its header). */
int ag_etcd__kvs_parse(const cJSON *resp, struct ag_etcd_kvs *out, struct ag_err *err);
/* The unary keep-alive, on any conn. */
int ag_etcd__keepalive(struct ag_etcd__conn *cn, int64_t id, int64_t timeout_ms, int64_t *ttl,
                       struct ag_err *err);

#endif
