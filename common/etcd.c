/* common/etcd.c - the etcd client's connection handling and unary calls (see etcd.h).
 *
 * Every call is a POST of a JSON body to etcd's gRPC gateway under /v3/. The gateway encodes
 * bytes as base64 and int64 as JSON strings, and omits every zero or false field (a missing
 * key has no "kvs", a failed txn no "succeeded", a dead lease's keep-alive no "TTL"), so each
 * reader here treats "absent" as 0/false. Non-200 answers carry {"error","code"} where code is a
 * gRPC status: it becomes the ag_code as is.
 *
 * Threads: the unary conn is used under c->mu only. A conn's socket is opened and closed through
 * our callbacks so that ag_etcd__conn_abort() can shut it down from another thread: a watch
 * idle for minutes stops at once instead of at its next byte. */
#include "common/etcd_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/xalloc.h"

#define ETCD_DEFAULT_TIMEOUT_MS 5000
#define ETCD_CONNECT_TIMEOUT_MS 2000

/* --- JSON helpers ---------------------------------------------------------------------------- */

void ag_etcd__add_bytes(cJSON *obj, const char *name, const void *p, size_t n)
{
    char *s = ag_base64_encode(p, n);
    cJSON_AddStringToObject(obj, name, s);
    free(s);
}

void ag_etcd__add_i64(cJSON *obj, const char *name, int64_t v)
{
    /* As a string: lease IDs use all 63 bits, more than a JSON number (a double) holds. */
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)v);
    cJSON_AddStringToObject(obj, name, s);
}

int64_t ag_etcd__i64(const cJSON *obj, const char *name)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsString(j))
        return strtoll(j->valuestring, NULL, 10);
    if (cJSON_IsNumber(j))
        return (int64_t)j->valuedouble;
    return 0;
}

int64_t ag_etcd__header_rev(const cJSON *resp)
{
    return ag_etcd__i64(cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision");
}

static int decode_field(const cJSON *j, const char *name, char **out, size_t *len,
                        struct ag_err *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, name);
    const char *s = cJSON_IsString(f) ? f->valuestring : "";
    if (ag_base64_decode(s, 0, out, len) < 0)
        return ag_err_set(err, AG_INTERNAL, "etcd sent a %s that is not base64", name);
    return 0;
}

int ag_etcd__kv_parse(const cJSON *j, struct ag_etcd_kv *kv, struct ag_err *err)
{
    memset(kv, 0, sizeof(*kv));
    size_t key_len;
    if (decode_field(j, "key", &kv->key, &key_len, err) < 0)
        return -1;
    if (decode_field(j, "value", &kv->value, &kv->value_len, err) < 0) {
        ag_etcd__kv_release(kv);
        return -1;
    }
    kv->create_revision = ag_etcd__i64(j, "create_revision");
    kv->mod_revision = ag_etcd__i64(j, "mod_revision");
    kv->version = ag_etcd__i64(j, "version");
    kv->lease = ag_etcd__i64(j, "lease");
    return 0;
}

void ag_etcd__kv_release(struct ag_etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

void ag_etcd_kvs_release(struct ag_etcd_kvs *kvs)
{
    for (size_t i = 0; i < kvs->n; i++)
        ag_etcd__kv_release(&kvs->kvs[i]);
    free(kvs->kvs);
    memset(kvs, 0, sizeof(*kvs));
}

/* Adds key (and range_end for a prefix). The smallest key after every key that starts with p is
 * p with its last byte below 0xff incremented and what follows dropped; a prefix of only 0xff
 * bytes (or the empty one) has no such key, and "\0" as range_end means "to the end". An empty
 * key is not allowed, so the empty prefix starts at "\0": every key. */
static void add_key_range(cJSON *obj, const char *key, bool prefix)
{
    size_t n = strlen(key);
    if (!prefix) {
        ag_etcd__add_bytes(obj, "key", key, n);
        return;
    }
    ag_etcd__add_bytes(obj, "key", n ? key : "", n ? n : 1);
    unsigned char *end = (unsigned char *)ag_xmemdup(key, n + 1);
    size_t end_len = n;
    while (end_len && end[end_len - 1] == 0xff)
        end_len--;
    if (end_len)
        end[end_len - 1]++;
    else
        end[end_len++] = 0;
    ag_etcd__add_bytes(obj, "range_end", end, end_len);
    free(end);
}

cJSON *ag_etcd__range_req(const char *key, bool prefix, int64_t limit)
{
    cJSON *req = cJSON_CreateObject();
    add_key_range(req, key, prefix);
    if (limit > 0)
        ag_etcd__add_i64(req, "limit", limit);
    return req;
}

int ag_etcd__kvs_parse(const cJSON *resp, struct ag_etcd_kvs *out, struct ag_err *err)
{
    memset(out, 0, sizeof(*out));
    out->revision = ag_etcd__header_rev(resp);
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs");
    int n = cJSON_GetArraySize(kvs);
    if (n <= 0)
        return 0;
    out->kvs = ag_xcalloc((size_t)n, sizeof(*out->kvs));
    const cJSON *j;
    cJSON_ArrayForEach(j, kvs)
    {
        if (ag_etcd__kv_parse(j, &out->kvs[out->n], err) < 0) {
            ag_etcd_kvs_release(out);
            return -1;
        }
        out->n++;
    }
    return 0;
}

/* --- the connection -------------------------------------------------------------------------- */

static void buf_append(struct ag_etcd__conn *cn, const char *p, size_t n)
{
    if (cn->len + n + 1 > cn->cap) {
        cn->cap = (cn->len + n + 1) * 2;
        cn->buf = ag_xrealloc(cn->buf, cn->cap);
    }
    memcpy(cn->buf + cn->len, p, n);
    cn->len += n;
    cn->buf[cn->len] = '\0';
}

/* libcurl hands us arbitrary slices: a watch line (a 1 MB value is a 1.3 MB line) spans many
 * calls and one call may end mid-line. Keep the unfinished tail for the next call. */
static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct ag_etcd__conn *cn = arg;
    size_t n = size * nmemb;
    buf_append(cn, p, n);
    long status = 0;
    curl_easy_getinfo(cn->h, CURLINFO_RESPONSE_CODE, &status);
    if (!cn->on_line || status != 200)
        return n; /* a unary body, or an error body read whole after the transfer */
    char *s = cn->buf, *end = cn->buf + cn->len, *nl;
    while ((nl = memchr(s, '\n', (size_t)(end - s)))) {
        *nl = '\0';
        if (nl > s && !cn->on_line(cn->line_arg, s))
            return 0; /* libcurl aborts the transfer with CURLE_WRITE_ERROR */
        s = nl + 1;
    }
    cn->len = (size_t)(end - s);
    memmove(cn->buf, s, cn->len);
    cn->buf[cn->len] = '\0';
    return n;
}

static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct ag_etcd__conn *cn = arg;
    pthread_mutex_lock(&cn->fd_mu);
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (!atomic_load(&cn->aborted)) {
        fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
        cn->fd = fd < 0 ? CURL_SOCKET_BAD : fd;
    }
    pthread_mutex_unlock(&cn->fd_mu);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int on_close_socket(void *arg, curl_socket_t fd)
{
    struct ag_etcd__conn *cn = arg;
    pthread_mutex_lock(&cn->fd_mu);
    if (cn->fd == fd)
        cn->fd = CURL_SOCKET_BAD;
    pthread_mutex_unlock(&cn->fd_mu);
    return close(fd);
}

/* Also catches an abort that came before the socket existed (during name resolution). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct ag_etcd__conn *cn = arg;
    return atomic_load(&cn->aborted) ? 1 : 0;
}

struct ag_etcd__conn *ag_etcd__conn_new(struct ag_etcd *c)
{
    struct ag_etcd__conn *cn = ag_xcalloc(1, sizeof(*cn));
    cn->c = c;
    cn->fd = CURL_SOCKET_BAD;
    pthread_mutex_init(&cn->fd_mu, NULL);
    cn->h = curl_easy_init();
    if (!cn->h) {
        fprintf(stderr, "fatal: curl_easy_init failed (out of memory)\n");
        abort();
    }
    cn->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *h = cn->h;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, cn->hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cn->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, cn);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, cn);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, cn);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, cn);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ETCD_CONNECT_TIMEOUT_MS);
    /* Idle watches are silent for minutes (progress_notify is every 10 min): TCP keep-alive,
     * not a low-speed limit, notices a dead peer. */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->cert_file) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
    }
    return cn;
}

void ag_etcd__conn_free(struct ag_etcd__conn *cn)
{
    if (!cn)
        return;
    curl_easy_cleanup(cn->h);
    curl_slist_free_all(cn->hdrs);
    pthread_mutex_destroy(&cn->fd_mu);
    free(cn->buf);
    free(cn);
}

void ag_etcd__conn_abort(struct ag_etcd__conn *cn)
{
    pthread_mutex_lock(&cn->fd_mu);
    atomic_store(&cn->aborted, true);
    if (cn->fd != CURL_SOCKET_BAD)
        shutdown(cn->fd, SHUT_RDWR); /* wakes libcurl's poll at once; libcurl still closes it */
    pthread_mutex_unlock(&cn->fd_mu);
}

/* Failures where another endpoint may do better: nothing reached this one. */
static bool unreachable(CURL *h, CURLcode rc)
{
    if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT)
        return true;
    /* Zero until the request could be sent, also on a reused connection (where the connect
     * time is zero too): a timeout before that point never reached etcd. */
    curl_off_t pretransfer = 0;
    curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    return rc == CURLE_OPERATION_TIMEDOUT && pretransfer == 0;
}

/* Turn a finished transfer's non-200 answer into an error: etcd's own message when the body is
 * its {"error","code"}, else the status and the start of the body. */
static int http_error(struct ag_etcd__conn *cn, const char *url, long status, struct ag_err *err)
{
    cJSON *j = cJSON_Parse(cn->buf ? cn->buf : "");
    const cJSON *body = j, *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(e)) { /* on a stream, the error is wrapped: {"error":{...}} */
        body = e;
        e = cJSON_GetObjectItemCaseSensitive(e, "message");
    }
    int rc;
    if (cJSON_IsString(e)) {
        int64_t code = ag_etcd__i64(body, "code");
        rc = ag_err_set(err,
                        code > 0 && code <= AG_UNAUTHENTICATED ? (enum ag_code)code : AG_UNKNOWN,
                        "etcd: %s", e->valuestring);
    } else {
        rc = ag_err_set(err, status == 404 ? AG_UNIMPLEMENTED : AG_UNKNOWN,
                        "etcd at '%s' answered HTTP %ld: %.80s; is it etcd 3.4 or later?", url,
                        status, cn->buf ? cn->buf : "");
    }
    cJSON_Delete(j);
    return rc;
}

/* One POST, trying the endpoints in turn while they cannot be reached. */
static int post(struct ag_etcd__conn *cn, const char *path, const cJSON *req, int64_t timeout_ms,
                struct ag_err *err)
{
    struct ag_etcd *c = cn->c;
    char *body = cJSON_PrintUnformatted(req);
    curl_easy_setopt(cn->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(cn->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    size_t first = atomic_load(&c->preferred);
    char tried[160] = "";
    int rc = -1;
    for (size_t i = 0; i < c->n_urls; i++) {
        size_t at = (first + i) % c->n_urls;
        char *url = ag_xasprintf("%s%s", c->urls[at], path);
        cn->len = 0;
        cn->errbuf[0] = '\0';
        curl_easy_setopt(cn->h, CURLOPT_URL, url);
        CURLcode cc = curl_easy_perform(cn->h);
        long status = 0;
        curl_easy_getinfo(cn->h, CURLINFO_RESPONSE_CODE, &status);
        const char *why = cn->errbuf[0] ? cn->errbuf : curl_easy_strerror(cc);
        if (cc == CURLE_OK) {
            atomic_store(&c->preferred, at);
            rc = status == 200 ? 0 : http_error(cn, url, status, err);
        } else if (atomic_load(&cn->aborted)) {
            rc = ag_err_set(err, AG_CANCELLED, "etcd call to '%s' cancelled", url);
        } else if (unreachable(cn->h, cc)) {
            size_t n = strlen(tried);
            snprintf(tried + n, sizeof(tried) - n, "%s'%s'", n ? ", " : "", c->urls[at]);
            rc = ag_err_set(err, AG_UNAVAILABLE, "cannot reach etcd at %s: %s; check the etcd URL",
                            tried, why);
            free(url);
            continue;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            rc = ag_err_set(err, AG_DEADLINE_EXCEEDED, "etcd at '%s' did not answer in %lld ms",
                            url, (long long)timeout_ms);
        } else {
            atomic_store(&c->preferred, at);
            rc = ag_err_set(err, AG_UNAVAILABLE, "etcd call to '%s' failed: %s", url, why);
        }
        free(url);
        break;
    }
    curl_easy_setopt(cn->h, CURLOPT_POSTFIELDS, NULL);
    free(body);
    return rc;
}

int ag_etcd__call(struct ag_etcd__conn *cn, const char *path, const cJSON *req, int64_t timeout_ms,
                  cJSON **resp, struct ag_err *err)
{
    cn->on_line = NULL;
    if (post(cn, path, req, timeout_ms, err) < 0)
        return -1;
    *resp = cJSON_Parse(cn->buf ? cn->buf : "");
    if (!*resp)
        return ag_err_set(err, AG_INTERNAL, "etcd answered '%s' with invalid JSON: %.60s", path,
                          cn->buf ? cn->buf : "");
    return 0;
}

int ag_etcd__stream(struct ag_etcd__conn *cn, const char *path, const cJSON *req,
                    ag_etcd__line_fn *on_line, void *arg, struct ag_err *err)
{
    cn->on_line = on_line;
    cn->line_arg = arg;
    int rc = post(cn, path, req, 0, err);
    cn->on_line = NULL;
    return rc;
}

/* --- the client ------------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int check_file(const char *what, const char *path, struct ag_err *err)
{
    if (path && access(path, R_OK) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read etcd %s '%s'", what, path);
    return 0;
}

/* Split "u1,u2" into c->urls, each http(s)://host[:port] without a trailing slash. */
static int parse_endpoints(struct ag_etcd *c, const char *list, struct ag_err *err)
{
    char *copy = ag_xstrdup(list ? list : ""), *save = NULL;
    for (char *u = strtok_r(copy, ", ", &save); u; u = strtok_r(NULL, ", ", &save)) {
        const char *host = !strncmp(u, "http://", 7)    ? u + 7
                           : !strncmp(u, "https://", 8) ? u + 8
                                                        : NULL;
        size_t n = strlen(u);
        while (n && u[n - 1] == '/')
            u[--n] = '\0';
        if (!host || !*host || strchr(host, '/')) {
            ag_err_set(err, AG_INVALID_ARGUMENT,
                       "bad etcd endpoint '%s': want http://HOST:PORT or https://HOST:PORT", u);
            free(copy);
            return -1;
        }
        c->urls = ag_xrealloc(c->urls, (c->n_urls + 1) * sizeof(*c->urls));
        c->urls[c->n_urls++] = ag_xstrdup(u);
    }
    free(copy);
    if (!c->n_urls)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "no etcd endpoint given: want a comma-separated list of http(s) URLs");
    return 0;
}

int ag_etcd_new(const struct ag_etcd_opts *o, struct ag_etcd **out, struct ag_err *err)
{
    *out = NULL;
    if (!o->cert_file != !o->key_file)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "an etcd client certificate needs both a cert and a key file");
    if (check_file("CA file", o->ca_file, err) < 0 ||
        check_file("client certificate", o->cert_file, err) < 0 ||
        check_file("client key", o->key_file, err) < 0)
        return -1;
    struct ag_etcd *c = ag_xcalloc(1, sizeof(*c));
    if (parse_endpoints(c, o->endpoints, err) < 0) {
        ag_etcd_free(c);
        return -1;
    }
    pthread_once(&curl_once, curl_init_once);
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : ETCD_DEFAULT_TIMEOUT_MS;
    c->ca_file = o->ca_file ? ag_xstrdup(o->ca_file) : NULL;
    c->cert_file = o->cert_file ? ag_xstrdup(o->cert_file) : NULL;
    c->key_file = o->key_file ? ag_xstrdup(o->key_file) : NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->unary = ag_etcd__conn_new(c);
    *out = c;
    return 0;
}

void ag_etcd_free(struct ag_etcd *c)
{
    if (!c)
        return;
    if (c->unary) {
        ag_etcd__conn_free(c->unary);
        pthread_mutex_destroy(&c->mu);
    }
    for (size_t i = 0; i < c->n_urls; i++)
        free(c->urls[i]);
    free(c->urls);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c);
}

/* A unary call on the client's shared conn; consumes req. */
static int unary(struct ag_etcd *c, const char *path, cJSON *req, cJSON **resp, struct ag_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = ag_etcd__call(c->unary, path, req, c->timeout_ms, resp, err);
    pthread_mutex_unlock(&c->mu);
    cJSON_Delete(req);
    return rc;
}

/* --- key-value ------------------------------------------------------------------------------- */

static cJSON *put_req(const char *key, const void *value, size_t value_len, int64_t lease)
{
    cJSON *req = cJSON_CreateObject();
    ag_etcd__add_bytes(req, "key", key, strlen(key));
    ag_etcd__add_bytes(req, "value", value, value_len);
    if (lease)
        ag_etcd__add_i64(req, "lease", lease);
    return req;
}

int ag_etcd_put(struct ag_etcd *c, const char *key, const void *value, size_t value_len,
                int64_t lease, int64_t *revision, struct ag_err *err)
{
    cJSON *resp;
    if (unary(c, "/v3/kv/put", put_req(key, value, value_len, lease), &resp, err) < 0) {
        ag_err_prefix(err, "put '%s'", key);
        return -1;
    }
    if (revision)
        *revision = ag_etcd__header_rev(resp);
    cJSON_Delete(resp);
    return 0;
}

int ag_etcd_get(struct ag_etcd *c, const char *key, bool prefix, int64_t limit,
                struct ag_etcd_kvs *out, struct ag_err *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *resp;
    if (unary(c, "/v3/kv/range", ag_etcd__range_req(key, prefix, limit), &resp, err) < 0) {
        ag_err_prefix(err, "get '%s'", key);
        return -1;
    }
    int rc = ag_etcd__kvs_parse(resp, out, err);
    cJSON_Delete(resp);
    return rc;
}

int ag_etcd_delete(struct ag_etcd *c, const char *key, bool prefix, int64_t *deleted,
                   struct ag_err *err)
{
    cJSON *req = cJSON_CreateObject(), *resp;
    add_key_range(req, key, prefix);
    if (unary(c, "/v3/kv/deleterange", req, &resp, err) < 0) {
        ag_err_prefix(err, "delete '%s'", key);
        return -1;
    }
    if (deleted)
        *deleted = ag_etcd__i64(resp, "deleted");
    cJSON_Delete(resp);
    return 0;
}

int ag_etcd_compact(struct ag_etcd *c, int64_t revision, struct ag_err *err)
{
    cJSON *req = cJSON_CreateObject(), *resp;
    ag_etcd__add_i64(req, "revision", revision);
    cJSON_AddTrueToObject(req, "physical");
    if (unary(c, "/v3/kv/compaction", req, &resp, err) < 0) {
        ag_err_prefix(err, "compact to revision %lld", (long long)revision);
        return -1;
    }
    cJSON_Delete(resp);
    return 0;
}

/* --- transactions ---------------------------------------------------------------------------- */

void ag_etcd_txn_result_release(struct ag_etcd_txn_result *r)
{
    ag_etcd__kv_release(&r->kv);
    memset(r, 0, sizeof(*r));
}

static cJSON *txn_compare(const struct ag_etcd_txn *t)
{
    cJSON *cmp = cJSON_CreateObject();
    ag_etcd__add_bytes(cmp, "key", t->key, strlen(t->key));
    switch (t->cmp) {
    case AG_ETCD_IF_CREATE_REV:
        cJSON_AddStringToObject(cmp, "target", "CREATE");
        ag_etcd__add_i64(cmp, "create_revision", t->rev);
        break;
    case AG_ETCD_IF_MOD_REV:
        cJSON_AddStringToObject(cmp, "target", "MOD");
        ag_etcd__add_i64(cmp, "mod_revision", t->rev);
        break;
    case AG_ETCD_IF_VALUE:
        cJSON_AddStringToObject(cmp, "target", "VALUE");
        ag_etcd__add_bytes(cmp, "value", t->value, t->value_len);
        break;
    }
    /* result EQUAL is the zero value, so the gateway's default is what we mean. */
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cmp);
    return arr;
}

/* [op?, range(key)]: both branches end by reading the key, so the caller sees the owner. */
static cJSON *txn_branch(const struct ag_etcd_txn *t, bool success)
{
    cJSON *arr = cJSON_CreateArray();
    if (success && t->op == AG_ETCD_OP_PUT) {
        cJSON *op = cJSON_CreateObject();
        cJSON_AddItemToObject(op, "request_put",
                              put_req(t->key, t->put_value, t->put_value_len, t->lease));
        cJSON_AddItemToArray(arr, op);
    } else if (success && t->op == AG_ETCD_OP_DELETE) {
        cJSON *op = cJSON_CreateObject(), *del = cJSON_CreateObject();
        ag_etcd__add_bytes(del, "key", t->key, strlen(t->key));
        cJSON_AddItemToObject(op, "request_delete_range", del);
        cJSON_AddItemToArray(arr, op);
    }
    cJSON *op = cJSON_CreateObject();
    cJSON_AddItemToObject(op, "request_range", ag_etcd__range_req(t->key, false, 0));
    cJSON_AddItemToArray(arr, op);
    return arr;
}

int ag_etcd_txn(struct ag_etcd *c, const struct ag_etcd_txn *t, struct ag_etcd_txn_result *res,
                struct ag_err *err)
{
    memset(res, 0, sizeof(*res));
    cJSON *req = cJSON_CreateObject(), *resp;
    cJSON_AddItemToObject(req, "compare", txn_compare(t));
    cJSON_AddItemToObject(req, "success", txn_branch(t, true));
    cJSON_AddItemToObject(req, "failure", txn_branch(t, false));
    if (unary(c, "/v3/kv/txn", req, &resp, err) < 0) {
        ag_err_prefix(err, "transaction on '%s'", t->key);
        return -1;
    }
    res->succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "succeeded"));
    res->revision = ag_etcd__header_rev(resp);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(resp, "responses");
    const cJSON *last = cJSON_GetArrayItem(rs, cJSON_GetArraySize(rs) - 1);
    const cJSON *range = cJSON_GetObjectItemCaseSensitive(last, "response_range");
    const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(range, "kvs"), 0);
    int rc = 0;
    if (kv) {
        rc = ag_etcd__kv_parse(kv, &res->kv, err);
        res->found = rc == 0;
    }
    cJSON_Delete(resp);
    return rc;
}

int ag_etcd_create(struct ag_etcd *c, const char *key, const void *value, size_t value_len,
                   int64_t lease, struct ag_etcd_txn_result *res, struct ag_err *err)
{
    struct ag_etcd_txn t = {.key = key,
                            .cmp = AG_ETCD_IF_CREATE_REV,
                            .rev = 0,
                            .op = AG_ETCD_OP_PUT,
                            .put_value = value,
                            .put_value_len = value_len,
                            .lease = lease};
    return ag_etcd_txn(c, &t, res, err);
}

/* --- leases ---------------------------------------------------------------------------------- */

int ag_etcd_lease_grant(struct ag_etcd *c, int64_t ttl_s, int64_t *id, int64_t *granted_ttl,
                        struct ag_err *err)
{
    cJSON *req = cJSON_CreateObject(), *resp;
    ag_etcd__add_i64(req, "TTL", ttl_s);
    if (unary(c, "/v3/lease/grant", req, &resp, err) < 0) {
        ag_err_prefix(err, "grant a %lld s lease", (long long)ttl_s);
        return -1;
    }
    *id = ag_etcd__i64(resp, "ID");
    if (granted_ttl)
        *granted_ttl = ag_etcd__i64(resp, "TTL");
    cJSON_Delete(resp);
    if (!*id)
        return ag_err_set(err, AG_INTERNAL, "etcd granted a lease without an ID");
    return 0;
}

int ag_etcd__keepalive(struct ag_etcd__conn *cn, int64_t id, int64_t timeout_ms, int64_t *ttl,
                       struct ag_err *err)
{
    cJSON *req = cJSON_CreateObject(), *resp;
    ag_etcd__add_i64(req, "ID", id);
    int rc = ag_etcd__call(cn, "/v3/lease/keepalive", req, timeout_ms, &resp, err);
    cJSON_Delete(req);
    if (rc < 0) {
        ag_err_prefix(err, "keep lease %lld alive", (long long)id);
        return -1;
    }
    /* A stream with one message: {"result":{...}} or {"error":{...}}. */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (e) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        int64_t code = ag_etcd__i64(e, "code");
        ag_err_set(err, code > 0 && code <= AG_UNAUTHENTICATED ? (enum ag_code)code : AG_UNKNOWN,
                   "etcd: keep lease %lld alive: %s", (long long)id,
                   cJSON_IsString(m) ? m->valuestring : "unknown error");
        cJSON_Delete(resp);
        return -1;
    }
    *ttl = ag_etcd__i64(cJSON_GetObjectItemCaseSensitive(resp, "result"), "TTL");
    cJSON_Delete(resp);
    return 0;
}

int ag_etcd_lease_keepalive_once(struct ag_etcd *c, int64_t id, int64_t *ttl, struct ag_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = ag_etcd__keepalive(c->unary, id, c->timeout_ms, ttl, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int ag_etcd_lease_revoke(struct ag_etcd *c, int64_t id, struct ag_err *err)
{
    cJSON *req = cJSON_CreateObject(), *resp;
    ag_etcd__add_i64(req, "ID", id);
    if (unary(c, "/v3/lease/revoke", req, &resp, err) < 0) {
        ag_err_prefix(err, "revoke lease %lld", (long long)id);
        return -1;
    }
    cJSON_Delete(resp);
    return 0;
}
