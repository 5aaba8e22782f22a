/* worker/registry.c - the node's key in etcd under a kept lease, and the leading hub's address
 * (see registry.h for the contract).
 *
 * One registry thread does every write: grant a lease, create P nodes/<id> if absent (or
 * overwrite our own), start the keeper; on a lost lease, do it again after a backoff; at stop,
 * revoke. It sleeps on `cond` between attempts; the keeper's on_lost and wk_registry_stop wake
 * it. When the node follows its hub through etcd the same thread reads P leader once and then
 * watches it; the watch's callbacks update `leader` and `gen`.
 *
 * Logging: etcd failing is logged when it starts failing and when it answers again, not on every
 * retry; a node id held by another process is logged once per episode.
 *
 * Threads and locks: `lock` guards the fields marked so; lease, keeper and watch belong to the
 * registry thread (and to wk_registry_stop after the thread is joined). */
#include "worker/registry.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/etcd.h"
#include "common/log.h"
#include "common/xalloc.h"

/* Retry delays after an etcd failure: doubling from the first to the cap. */
#define REG_BACKOFF_MIN_MS 200
#define REG_BACKOFF_MAX_MS 5000
/* How often a node id held by another process is tried again. */
#define REG_CONFLICT_RETRY_MS 1000
/* How many TTLs a node id held by another process is waited for before giving up. */
#define REG_CONFLICT_TTLS 3

struct wk_registry {
    char *endpoints, *prefix, *node_id, *instance_id, *record;
    int64_t ttl_s;
    bool watch_leader;
    char *node_key, *leader_key;
    struct ag_etcd *c;
    pthread_t thread;
    bool joined; /* the thread is gone (or never ran) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Guarded by lock: */
    bool stop;
    bool lost; /* the keeper reported the lease lost */
    char *lost_why;
    bool failed;
    struct ag_err fail_err;
    char *leader;              /* the leader's address; NULL while absent */
    int64_t leader_create_rev; /* of the P leader key `leader` came from */
    uint64_t gen;
    bool watch_up;
    /* Registry thread only: */
    int64_t lease; /* 0: not registered */
    struct ag_etcd_keeper *keeper;
    struct ag_etcd_watch *watch;
    bool etcd_down; /* the last etcd call failed (logged once) */
};

int wk_registry_check_opts(const struct wk_registry_opts *o, struct ag_err *err)
{
    size_t pl = o->prefix ? strlen(o->prefix) : 0;
    if (pl == 0 || o->prefix[0] != '/' || o->prefix[pl - 1] != '/')
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "--etcd-prefix '%s' must start and end with '/' (e.g. /agentry/)",
                          o->prefix ? o->prefix : "");
    if (o->ttl_s < WK_REGISTRY_TTL_MIN || o->ttl_s > WK_REGISTRY_TTL_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "--lease-ttl is %" PRId64 "s; want 1s to 1h (whole seconds)", o->ttl_s);
    struct ag_etcd_opts eo = {.endpoints = o->endpoints,
                              .ca_file = o->ca_file,
                              .cert_file = o->cert_file,
                              .key_file = o->key_file};
    struct ag_etcd *c = NULL;
    if (ag_etcd_new(&eo, &c, err) != 0) {
        ag_err_prefix(err, "--etcd");
        return -1;
    }
    ag_etcd_free(c);
    return 0;
}

/* --- state changes (lock held unless said) ---------------------------------------------- */

/* etcd answered or failed: log only the changes. Registry thread. */
static void etcd_state(struct wk_registry *r, const struct ag_err *err)
{
    if (err && !r->etcd_down)
        ag_log_warn("registry.etcd_unavailable", "node=%s endpoints=%s err=%s retrying=1",
                    r->node_id, r->endpoints, ag_log_q(err->msg));
    else if (!err && r->etcd_down)
        ag_log_info("registry.etcd_available", "node=%s endpoints=%s", r->node_id, r->endpoints);
    r->etcd_down = err != NULL;
}

/* The "address" of a P leader value; NULL if it has none. */
static char *leader_address(const struct ag_etcd_kv *kv, char **hub_id)
{
    cJSON *j = cJSON_ParseWithLength(kv->value, kv->value_len);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "address");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "hub_id");
    char *out = cJSON_IsString(a) && *a->valuestring ? ag_xstrdup(a->valuestring) : NULL;
    *hub_id = ag_xstrdup(cJSON_IsString(h) ? h->valuestring : "");
    cJSON_Delete(j);
    return out;
}

/* P leader is now kv (NULL: absent). A new value, or the same value under a key written again,
 * is a new leader: gen grows and the node reconnects. Watch thread or registry thread. */
static void set_leader(struct wk_registry *r, const struct ag_etcd_kv *kv)
{
    char *hub_id = NULL, *addr = kv ? leader_address(kv, &hub_id) : NULL;
    if (kv && !addr)
        ag_log_warn("registry.bad_leader", "node=%s key=%s value=%s", r->node_id, r->leader_key,
                    ag_log_q(kv->value));
    pthread_mutex_lock(&r->lock);
    if (!addr) {
        if (r->leader)
            ag_log_info("registry.leader_gone", "node=%s key=%s", r->node_id, r->leader_key);
        free(r->leader);
        r->leader = NULL;
        r->leader_create_rev = 0;
    } else if (!r->leader || strcmp(addr, r->leader) != 0 ||
               kv->create_revision != r->leader_create_rev) {
        r->gen++;
        ag_log_info("registry.leader", "node=%s hub_id=%s address=%s key=%s", r->node_id,
                    ag_log_q(hub_id), addr, r->leader_key);
        free(r->leader);
        r->leader = addr;
        r->leader_create_rev = kv->create_revision;
        addr = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    free(addr);
    free(hub_id);
}

static void on_leader_event(void *arg, const struct ag_etcd_event *ev)
{
    struct wk_registry *r = arg;
    if (strcmp(ev->kv->key, r->leader_key) != 0) /* the watch is a prefix: P leaderX */
        return;
    set_leader(r, ev->type == AG_ETCD_EV_PUT ? ev->kv : NULL);
}

static void on_leader_resync(void *arg, const struct ag_etcd_kvs *snap)
{
    struct wk_registry *r = arg;
    const struct ag_etcd_kv *kv = NULL;
    for (size_t i = 0; i < snap->n; i++)
        if (strcmp(snap->kvs[i].key, r->leader_key) == 0)
            kv = &snap->kvs[i];
    set_leader(r, kv);
}

static void on_leader_state(void *arg, bool connected, const char *why)
{
    struct wk_registry *r = arg;
    pthread_mutex_lock(&r->lock);
    bool changed = r->watch_up != connected;
    r->watch_up = connected;
    pthread_mutex_unlock(&r->lock);
    if (changed && connected)
        ag_log_info("registry.leader_watch_up", "node=%s key=%s", r->node_id, r->leader_key);
    else if (changed)
        ag_log_warn("registry.leader_watch_down", "node=%s key=%s why=%s", r->node_id,
                    r->leader_key, ag_log_q(why));
}

/* Keeper thread: only note it; the registry thread re-registers. */
static void on_lost(void *arg, int64_t lease, const char *why)
{
    struct wk_registry *r = arg;
    pthread_mutex_lock(&r->lock);
    if (lease == r->lease && !r->lost) {
        r->lost = true;
        free(r->lost_why);
        r->lost_why = ag_xstrdup(why ? why : "");
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
}

/* --- the registry thread's steps ---------------------------------------------------------- */

/* Read P leader, then watch it from the next revision. */
static int start_leader_watch(struct wk_registry *r, struct ag_err *err)
{
    struct ag_etcd_kvs kvs = {0};
    if (ag_etcd_get(r->c, r->leader_key, false, 1, &kvs, err) != 0)
        return -1;
    set_leader(r, kvs.n ? &kvs.kvs[0] : NULL);
    if (!kvs.n)
        ag_log_info("registry.no_leader", "node=%s key=%s", r->node_id, r->leader_key);
    struct ag_etcd_watch_cbs cbs = {.on_event = on_leader_event,
                                    .on_resync = on_leader_resync,
                                    .on_state = on_leader_state,
                                    .arg = r};
    int rc = ag_etcd_watch_start(r->c, r->leader_key, kvs.revision + 1, &cbs, &r->watch, err);
    ag_etcd_kvs_release(&kvs);
    return rc;
}

/* The instance_id in a P nodes/<id> value ("" if it has none). */
static char *owner_instance(const struct ag_etcd_kv *kv)
{
    cJSON *j = cJSON_ParseWithLength(kv->value, kv->value_len);
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "instance_id");
    char *out = ag_xstrdup(cJSON_IsString(i) ? i->valuestring : "");
    cJSON_Delete(j);
    return out;
}

/* Grant a lease and write our key under it. 0: registered; 1: another process holds the id
 * (*owner gets its instance id); -1: etcd failed (err). */
static int try_register(struct wk_registry *r, char **owner, struct ag_err *err)
{
    int64_t lease = 0, ttl = 0;
    if (ag_etcd_lease_grant(r->c, r->ttl_s, &lease, &ttl, err) != 0)
        return -1;
    size_t len = strlen(r->record);
    struct ag_etcd_txn_result res = {0};
    int rc = ag_etcd_create(r->c, r->node_key, r->record, len, lease, &res, err);
    if (rc == 0 && !res.succeeded) {
        char *inst = owner_instance(&res.kv);
        if (strcmp(inst, r->instance_id) == 0) { /* our own earlier lease: take the key over */
            free(inst);
            rc = ag_etcd_put(r->c, r->node_key, r->record, len, lease, NULL, err);
        } else {
            *owner = inst;
            rc = 1;
        }
    }
    ag_etcd_txn_result_release(&res);
    pthread_mutex_lock(&r->lock);
    r->lease = rc == 0 ? lease : 0; /* before the keeper: its on_lost checks it */
    pthread_mutex_unlock(&r->lock);
    if (rc == 0 &&
        ag_etcd_keeper_start(r->c, lease, ttl ? ttl : r->ttl_s, on_lost, r, &r->keeper, err) != 0)
        rc = -1;
    if (rc != 0) {
        pthread_mutex_lock(&r->lock);
        r->lease = 0;
        pthread_mutex_unlock(&r->lock);
        struct ag_err ignored = AG_ERR_INIT; /* best effort: an unkept lease expires anyway */
        ag_etcd_lease_revoke(r->c, lease, &ignored);
        return rc;
    }
    etcd_state(r, NULL); /* "available" before "registered" */
    ag_log_info("registry.registered", "node=%s lease=%" PRId64 " ttl=%" PRId64 " key=%s",
                r->node_id, lease, ttl, r->node_key);
    return 0;
}

static int64_t next_backoff(int64_t ms)
{
    return ms == 0 ? REG_BACKOFF_MIN_MS : ms * 2 > REG_BACKOFF_MAX_MS ? REG_BACKOFF_MAX_MS : ms * 2;
}

static void *registry_main(void *arg)
{
    struct wk_registry *r = arg;
    int64_t backoff = 0, next_try = 0, conflict_since = 0;
    pthread_mutex_lock(&r->lock);
    while (!r->stop && !r->failed) {
        if (r->lost) {
            char *why = r->lost_why;
            r->lost_why = NULL;
            r->lost = false;
            int64_t old = r->lease;
            r->lease = 0;
            pthread_mutex_unlock(&r->lock);
            ag_log_warn("registry.lease_lost", "node=%s lease=%" PRId64 " why=%s action=register",
                        r->node_id, old, ag_log_q(why));
            free(why);
            ag_etcd_keeper_stop(r->keeper);
            r->keeper = NULL;
            backoff = 0; /* the first attempt at once: the key is likely gone already */
            next_try = 0;
            pthread_mutex_lock(&r->lock);
            continue;
        }
        bool need_watch = r->watch_leader && !r->watch, need_reg = r->lease == 0;
        int64_t now = ag_now_mono_ms();
        if ((need_watch || need_reg) && now >= next_try) {
            pthread_mutex_unlock(&r->lock);
            struct ag_err err = AG_ERR_INIT;
            char *owner = NULL;
            int rc = need_watch ? start_leader_watch(r, &err) : 0;
            if (rc == 0 && need_reg)
                rc = try_register(r, &owner, &err);
            etcd_state(r, rc < 0 ? &err : NULL);
            now = ag_now_mono_ms();
            if (rc < 0) {
                backoff = next_backoff(backoff);
                next_try = now + backoff;
            } else {
                backoff = 0;
            }
            if (rc == 1 && conflict_since == 0) {
                conflict_since = now;
                ag_log_warn("registry.id_taken",
                            "node=%s key=%s owner_instance=%s action=wait max_s=%" PRId64,
                            r->node_id, r->node_key, ag_log_q(owner), REG_CONFLICT_TTLS * r->ttl_s);
            }
            if (rc == 1 && now - conflict_since >= REG_CONFLICT_TTLS * r->ttl_s * 1000) {
                pthread_mutex_lock(&r->lock);
                r->failed = true;
                ag_err_set(&r->fail_err, AG_ALREADY_EXISTS,
                           "node id '%s' is held by another live process (instance %s, etcd key "
                           "%s) after waiting %" PRId64
                           "s; stop that node or choose another --node-id",
                           r->node_id, owner, r->node_key, REG_CONFLICT_TTLS * r->ttl_s);
                pthread_mutex_unlock(&r->lock);
                ag_log_error("registry.id_taken", "node=%s key=%s owner_instance=%s action=give_up",
                             r->node_id, r->node_key, ag_log_q(owner));
            } else if (rc == 1) {
                next_try = now + REG_CONFLICT_RETRY_MS;
            } else if (rc == 0 && need_reg) {
                conflict_since = 0;
            }
            free(owner);
            pthread_mutex_lock(&r->lock);
            continue;
        }
        bool pending = need_watch || need_reg;
        ag_cond_wait_until(&r->cond, &r->lock, pending ? next_try * 1000000 : AG_DEADLINE_NONE);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

struct wk_registry *wk_registry_start(const struct wk_registry_opts *o, struct ag_err *err)
{
    struct wk_registry *r = ag_xcalloc(1, sizeof(*r));
    r->joined = true;
    pthread_mutex_init(&r->lock, NULL);
    ag_cond_init_mono(&r->cond);
    r->endpoints = ag_xstrdup(o->endpoints);
    r->prefix = ag_xstrdup(o->prefix);
    r->node_id = ag_xstrdup(o->node_id);
    r->instance_id = ag_xstrdup(o->instance_id);
    r->record = ag_xstrdup(o->record);
    r->ttl_s = o->ttl_s;
    r->watch_leader = o->watch_leader;
    r->node_key = ag_xasprintf("%snodes/%s", o->prefix, o->node_id);
    r->leader_key = ag_xasprintf("%sleader", o->prefix);
    struct ag_etcd_opts eo = {.endpoints = o->endpoints,
                              .ca_file = o->ca_file,
                              .cert_file = o->cert_file,
                              .key_file = o->key_file};
    if (ag_etcd_new(&eo, &r->c, err) != 0) {
        wk_registry_free(r);
        return NULL;
    }
    if (pthread_create(&r->thread, NULL, registry_main, r) != 0) {
        ag_err_set(err, AG_INTERNAL, "cannot start the etcd registry thread");
        wk_registry_free(r);
        return NULL;
    }
    r->joined = false;
    ag_log_info("registry.starting", "node=%s endpoints=%s key=%s ttl=%" PRId64 " follow_leader=%d",
                r->node_id, r->endpoints, r->node_key, r->ttl_s, r->watch_leader);
    return r;
}

char *wk_registry_leader(struct wk_registry *r, uint64_t *gen)
{
    pthread_mutex_lock(&r->lock);
    char *out = r->leader ? ag_xstrdup(r->leader) : NULL;
    if (gen)
        *gen = r->gen;
    pthread_mutex_unlock(&r->lock);
    return out;
}

uint64_t wk_registry_leader_gen(struct wk_registry *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t g = r->gen;
    pthread_mutex_unlock(&r->lock);
    return g;
}

bool wk_registry_failed(struct wk_registry *r, struct ag_err *err)
{
    pthread_mutex_lock(&r->lock);
    bool f = r->failed;
    if (f && err)
        *err = r->fail_err;
    pthread_mutex_unlock(&r->lock);
    return f;
}

void wk_registry_stop(struct wk_registry *r)
{
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    bool joined = r->joined;
    r->joined = true;
    pthread_mutex_unlock(&r->lock);
    if (joined)
        return;
    pthread_join(r->thread, NULL);
    /* The thread is gone: its fields are ours. Stop renewing before revoking, so the keeper
     * does not report the revoked lease as lost. */
    ag_etcd_keeper_stop(r->keeper);
    r->keeper = NULL;
    ag_etcd_watch_stop(r->watch);
    r->watch = NULL;
    if (r->lease) {
        struct ag_err err = AG_ERR_INIT;
        if (ag_etcd_lease_revoke(r->c, r->lease, &err) == 0)
            ag_log_info("registry.revoked", "node=%s lease=%" PRId64 " key=%s", r->node_id,
                        r->lease, r->node_key);
        else
            ag_log_warn("registry.revoke_failed", "node=%s lease=%" PRId64 " err=%s", r->node_id,
                        r->lease, ag_log_q(err.msg));
        r->lease = 0;
    }
}

void wk_registry_free(struct wk_registry *r)
{
    if (!r)
        return;
    wk_registry_stop(r);
    ag_etcd_free(r->c);
    free(r->endpoints);
    free(r->prefix);
    free(r->node_id);
    free(r->instance_id);
    free(r->record);
    free(r->node_key);
    free(r->leader_key);
    free(r->lost_why);
    free(r->leader);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
