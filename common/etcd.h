/* common/etcd.h - a small etcd v3 client on etcd's JSON gateway (libcurl + cJSON).
 *
 * Talks to etcd 3.4's grpc-gateway under /v3/ (docs/etcd.md): unary calls (put, range, delete,
 * compare-and-swap transactions, lease grant/keep-alive/revoke), a lease keeper thread, and
 * watches as long-lived streams that survive reconnects and compaction.
 *
 * Endpoints: a comma-separated list of http:// or https:// URLs. A call that cannot connect to
 * one tries the next; the last one that answered is tried first next time. https uses the
 * system CAs unless ca_file is given; cert_file + key_file present a client certificate. Peer
 * and host verification always stay on.
 *
 * Errors: etcd's own message reaches the caller ("etcd: etcdserver: requested lease not found"),
 * with the gRPC status code etcd sent as the ag_code (they share values). A connection failure
 * names every URL tried. Keys are NUL-terminated strings; values are bytes (pointer + length).
 *
 * Threads: a client is thread-safe. Unary calls share one connection under the client's lock
 * (one call at a time); a keeper and each watch run on their own thread with their own
 * connection, so a slow unary call never delays a keep-alive. Callbacks run on those threads. */
#ifndef AGENTRY_COMMON_ETCD_H
#define AGENTRY_COMMON_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct ag_etcd;

struct ag_etcd_opts {
    const char *endpoints; /* "http://127.0.0.1:2379,https://etcd2:2379" */
    int64_t timeout_ms;    /* per unary call (connect included); 0 = 5000 */
    const char *ca_file;   /* PEM CA bundle for https; NULL = the system's */
    const char *cert_file; /* PEM client certificate; NULL = none (then key_file too) */
    const char *key_file;  /* PEM key of cert_file */
};

/* One key-value as etcd stores it. key and value are owned and NUL-terminated (value_len does
 * not count the NUL), so a text value reads as a string. */
struct ag_etcd_kv {
    char *key;
    char *value;
    size_t value_len;
    int64_t create_revision; /* 0 for a key that does not exist */
    int64_t mod_revision;
    int64_t version;
    int64_t lease; /* 0 = none */
};

/* The result of a range: kvs in key order, and the store's revision at the time of the read. */
struct ag_etcd_kvs {
    struct ag_etcd_kv *kvs; /* owned; n entries */
    size_t n;
    int64_t revision;
};
void ag_etcd_kvs_release(struct ag_etcd_kvs *kvs);

/* Validates every endpoint URL and the TLS files up front (INVALID_ARGUMENT naming the bad one);
 * does not contact etcd. */
int ag_etcd_new(const struct ag_etcd_opts *o, struct ag_etcd **out, struct ag_err *err);
/* Stops nothing else: stop keepers and watches of this client first. NULL is a no-op. */
void ag_etcd_free(struct ag_etcd *c);

/* --- key-value ------------------------------------------------------------------------------ */

/* Put key = value (lease 0 = none); *revision (may be NULL) gets the revision of the write. */
int ag_etcd_put(struct ag_etcd *c, const char *key, const void *value, size_t value_len,
                int64_t lease, int64_t *revision, struct ag_err *err);
/* The key, or every key starting with it when prefix is true; limit 0 = all. Filled out must be
 * released with ag_etcd_kvs_release (on failure it is left empty). */
int ag_etcd_get(struct ag_etcd *c, const char *key, bool prefix, int64_t limit,
                struct ag_etcd_kvs *out, struct ag_err *err);
/* Delete the key (or the prefix); *deleted (may be NULL) gets how many keys went. */
int ag_etcd_delete(struct ag_etcd *c, const char *key, bool prefix, int64_t *deleted,
                   struct ag_err *err);

/* Compact the history up to revision (physical: waits until it is gone). Watches that need older
 * revisions then resync. */
int ag_etcd_compact(struct ag_etcd *c, int64_t revision, struct ag_err *err);

/* --- compare-and-swap ----------------------------------------------------------------------- */

/* What a transaction compares on its key. */
enum ag_etcd_cmp {
    AG_ETCD_IF_CREATE_REV, /* create_revision == rev (0 = the key is absent) */
    AG_ETCD_IF_MOD_REV,    /* mod_revision == rev */
    AG_ETCD_IF_VALUE,      /* value == value/value_len */
};
/* What it does to the key when the comparison holds. */
enum ag_etcd_op {
    AG_ETCD_OP_NONE, /* only read: "is this key still what I think it is?" */
    AG_ETCD_OP_PUT,  /* put put_value (with lease) */
    AG_ETCD_OP_DELETE,
};

struct ag_etcd_txn {
    const char *key;
    enum ag_etcd_cmp cmp;
    int64_t rev;       /* for the _REV comparisons */
    const void *value; /* for AG_ETCD_IF_VALUE */
    size_t value_len;
    enum ag_etcd_op op;
    const void *put_value;
    size_t put_value_len;
    int64_t lease;
};

/* Whether the comparison held, and the key as it is after the transaction either way: on
 * failure that is the current owner. */
struct ag_etcd_txn_result {
    bool succeeded;
    int64_t revision; /* the store's revision after the txn (the write's, when it wrote) */
    bool found;       /* the key exists after the txn; then kv holds it */
    struct ag_etcd_kv kv;
};
void ag_etcd_txn_result_release(struct ag_etcd_txn_result *r);

/* One atomic compare + op + read of t->key. A failed comparison is not an error (returns 0 with
 * succeeded false). res must be released with ag_etcd_txn_result_release. */
int ag_etcd_txn(struct ag_etcd *c, const struct ag_etcd_txn *t, struct ag_etcd_txn_result *res,
                struct ag_err *err);
/* Put key only if it does not exist: the election primitive. On success res->kv.create_revision
 * is the winner's fencing token; on failure res->kv is the current owner. */
int ag_etcd_create(struct ag_etcd *c, const char *key, const void *value, size_t value_len,
                   int64_t lease, struct ag_etcd_txn_result *res, struct ag_err *err);

/* --- leases --------------------------------------------------------------------------------- */

/* Grant a lease of ttl_s seconds; *granted_ttl (may be NULL) is what etcd gave (it may round
 * up to its minimum). */
int ag_etcd_lease_grant(struct ag_etcd *c, int64_t ttl_s, int64_t *id, int64_t *granted_ttl,
                        struct ag_err *err);
/* Renew once; *ttl gets the seconds left, 0 when the lease is gone (expired or revoked: etcd
 * answers OK without a TTL). */
int ag_etcd_lease_keepalive_once(struct ag_etcd *c, int64_t id, int64_t *ttl, struct ag_err *err);
/* Revoke: deletes every key attached. NOT_FOUND with etcd's message if it does not exist. */
int ag_etcd_lease_revoke(struct ag_etcd *c, int64_t id, struct ag_err *err);

/* The keeper renews a lease every ttl/3 on its own thread. When the lease is lost (etcd says it
 * is gone, or no renewal succeeded for ttl_s seconds, e.g. etcd unreachable) it calls
 * on_lost(arg, why) once, on its thread, and stops renewing. */
struct ag_etcd_keeper;
typedef void ag_etcd_lost_fn(void *arg, int64_t lease, const char *why);
int ag_etcd_keeper_start(struct ag_etcd *c, int64_t lease, int64_t ttl_s, ag_etcd_lost_fn *on_lost,
                         void *arg, struct ag_etcd_keeper **out, struct ag_err *err);
/* Stops renewing (does not revoke) and joins the thread; prompt even mid-call. NULL is a
 * no-op. on_lost is never called after it returns. Not from within on_lost (it would join its
 * own thread). */
void ag_etcd_keeper_stop(struct ag_etcd_keeper *k);

/* --- watch ---------------------------------------------------------------------------------- */

enum ag_etcd_event_type { AG_ETCD_EV_PUT, AG_ETCD_EV_DELETE };

/* Borrowed for the duration of the callback. A DELETE's kv has the key and mod_revision only.
 * prev_kv is NULL unless the watch asked for it and etcd still had it. */
struct ag_etcd_event {
    enum ag_etcd_event_type type;
    const struct ag_etcd_kv *kv;
    const struct ag_etcd_kv *prev_kv;
};

struct ag_etcd_watch_cbs {
    /* Each change, in revision order, exactly once across reconnects. */
    void (*on_event)(void *arg, const struct ag_etcd_event *ev);
    /* The history the watch needed was compacted: snap is the prefix's full current content
     * (borrowed for the call). Reconcile against it; events resume after snap->revision. */
    void (*on_resync)(void *arg, const struct ag_etcd_kvs *snap);
    /* The stream went up (connected, why NULL) or down (why says what happened). May be NULL. */
    void (*on_state)(void *arg, bool connected, const char *why);
    void *arg;
    bool prev_kv; /* ask etcd for each event's previous kv */
};

struct ag_etcd_watch;
/* Watch every key under prefix from start_revision (0 = from now) on a new thread. A lost
 * stream (etcd restarted, network, a clean end) reconnects with jittered backoff (50 ms doubling
 * to 2 s) and resumes after the last revision seen. on_resync replaces missed events only when
 * etcd compacted them away. */
int ag_etcd_watch_start(struct ag_etcd *c, const char *prefix, int64_t start_revision,
                        const struct ag_etcd_watch_cbs *cbs, struct ag_etcd_watch **out,
                        struct ag_err *err);
/* Closes the stream and joins the thread, promptly; no callback runs after it returns. NULL is a
 * no-op. Not from within one of its callbacks (it would join its own thread). */
void ag_etcd_watch_stop(struct ag_etcd_watch *w);

#endif
