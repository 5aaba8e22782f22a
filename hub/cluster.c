/* hub/cluster.c - the hub in an etcd cluster (see cluster.h for the keys and the contract).
 *
 * The election is etcd's create-if-absent on P leader under this hub's lease: whoever creates
 * it leads, and its create_revision is the fencing token. A standby watches the key and runs
 * again when it is deleted (the leader's lease expired or was revoked at its clean stop). The
 * lease is kept alive by a keeper thread; losing it while leading is losing leadership.
 *
 * Once leading, one watch on the whole prefix follows the leader key (another hub's value, or
 * its deletion, means this hub no longer leads) and the nodes' keys (a deletion means that
 * node is lost). Compaction makes the watch resync from a snapshot: nodes seen before and gone
 * from it are lost too. Only nodes seen in etcd are ever declared lost here: a node that joined
 * with --hub alone has no key.
 *
 * Threads: the caller's (new, lead, watch, free), the keeper's and the watch's. mu guards the
 * campaign's flags (aborted, leader_gone, lease_lost, leading); `seen` belongs to the watch
 * thread (and to hub_cluster_watch before the watch starts). */
#include "hub/cluster.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/etcd.h"
#include "common/log.h"
#include "common/map.h"
#include "common/xalloc.h"

#define CLUSTER_DEFAULT_TTL_S 10
#define CLUSTER_MAX_TTL_S 3600
#define CLUSTER_BACKOFF_MIN_MS 100
#define CLUSTER_BACKOFF_MAX_MS 2000

struct hub_cluster {
    struct hub_cluster_opts o; /* strings below are owned copies */
    char *prefix, *hub_id, *advertise;
    char *key_hub, *key_leader, *key_nodes;
    struct ag_etcd *etcd;
    int64_t ttl_s, lease;
    struct ag_etcd_keeper *keeper;
    struct ag_etcd_watch *watch;
    int64_t started_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool aborted, leader_gone, lease_lost, leading;
    atomic_bool lost_told;
    struct ag_map seen; /* node id (owned by the value) -> struct seen_node */
};

struct seen_node {
    char *instance_id; /* owned; may be "" */
    char id[];
};

/* --- helpers --------------------------------------------------------------------------------- */

static char *cat(const char *a, const char *b)
{
    return ag_xasprintf("%s%s", a, b);
}

/* A string field of a JSON object value, copied into buf ("" if absent). */
static void json_str(const char *json, size_t len, const char *field, char *buf, size_t cap)
{
    buf[0] = 0;
    cJSON *v = cJSON_ParseWithLength(json, len);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, field);
    if (cJSON_IsString(f))
        snprintf(buf, cap, "%s", f->valuestring);
    cJSON_Delete(v);
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
}

/* --- lifecycle ------------------------------------------------------------------------------- */

static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    return n >= 2 && p[0] == '/' && p[n - 1] == '/';
}

int hub_cluster_new(const struct hub_cluster_opts *o, struct hub_cluster **out, struct ag_err *err)
{
    *out = NULL;
    const char *prefix = o->prefix ? o->prefix : "/agentry/";
    if (!prefix_ok(prefix))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "--etcd-prefix '%s' must start and end with '/' (e.g. /agentry/)",
                          prefix);
    int64_t ttl = o->ttl_s ? o->ttl_s : CLUSTER_DEFAULT_TTL_S;
    if (ttl < 1 || ttl > CLUSTER_MAX_TTL_S)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "--lease-ttl must be 1s..%ds",
                          CLUSTER_MAX_TTL_S);
    if (!o->advertise || !*o->advertise)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "a hub in an etcd cluster needs an address nodes can dial "
                          "(--advertise HOST:PORT)");
    struct ag_etcd_opts eo = {.endpoints = o->endpoints,
                              .ca_file = o->ca_file,
                              .cert_file = o->cert_file,
                              .key_file = o->key_file};
    struct ag_etcd *etcd;
    if (ag_etcd_new(&eo, &etcd, err) != 0)
        return -1;
    struct hub_cluster *cl = ag_xcalloc(1, sizeof(*cl));
    cl->o = *o;
    cl->etcd = etcd;
    cl->ttl_s = ttl;
    cl->prefix = ag_xstrdup(prefix);
    char host[256] = "hub";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "hub");
    cl->hub_id = o->hub_id && *o->hub_id ? ag_xstrdup(o->hub_id)
                                         : ag_xasprintf("%s-%d", host, (int)getpid());
    cl->advertise = ag_xstrdup(o->advertise);
    cl->key_hub = ag_xasprintf("%shubs/%s", cl->prefix, cl->hub_id);
    cl->key_leader = cat(cl->prefix, "leader");
    cl->key_nodes = cat(cl->prefix, "nodes/");
    cl->started_ns = ag_now_unix_ns();
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    ag_map_init(&cl->seen);
    *out = cl;
    return 0;
}

const char *hub_cluster_id(const struct hub_cluster *cl)
{
    return cl->hub_id;
}

static void seen_clear(struct hub_cluster *cl)
{
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&cl->seen, &it, NULL, &v);) {
        free(((struct seen_node *)v)->instance_id);
        free(v);
    }
    ag_map_release(&cl->seen);
    ag_map_init(&cl->seen);
}

void hub_cluster_free(struct hub_cluster *cl)
{
    if (!cl)
        return;
    ag_etcd_watch_stop(cl->watch);
    ag_etcd_keeper_stop(cl->keeper);
    if (cl->lease) {
        struct ag_err err = AG_ERR_INIT;
        if (ag_etcd_lease_revoke(cl->etcd, cl->lease, &err) != 0 && err.code != AG_NOT_FOUND)
            ag_log_warn("cluster.revoke_failed", "hub=%s err=%s", cl->hub_id, ag_log_q(err.msg));
        else
            ag_log_info("cluster.left", "hub=%s", cl->hub_id);
    }
    seen_clear(cl);
    ag_map_release(&cl->seen);
    ag_etcd_free(cl->etcd);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cv);
    free(cl->prefix);
    free(cl->hub_id);
    free(cl->advertise);
    free(cl->key_hub);
    free(cl->key_leader);
    free(cl->key_nodes);
    free(cl);
}

void hub_cluster_abort(struct hub_cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    cl->aborted = true;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

/* Tell the hub once that it no longer leads. */
static void lose(struct hub_cluster *cl, const char *why)
{
    if (atomic_exchange(&cl->lost_told, true))
        return;
    ag_log_error("cluster.leadership_lost", "hub=%s reason=%s", cl->hub_id, ag_log_q(why));
    if (cl->o.lost)
        cl->o.lost(cl->o.arg, why);
}

/* --- the campaign ---------------------------------------------------------------------------- */

static void on_lease_lost(void *arg, int64_t lease, const char *why)
{
    (void)lease;
    struct hub_cluster *cl = arg;
    pthread_mutex_lock(&cl->mu);
    bool leading = cl->leading;
    cl->lease_lost = true;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    if (leading) {
        char msg[320];
        snprintf(msg, sizeof(msg), "its etcd lease is gone (%s)", why);
        lose(cl, msg);
    }
}

static char *hub_value(const struct hub_cluster *cl, const char *role)
{
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "hub_id", cl->hub_id);
    cJSON_AddStringToObject(v, "address", cl->advertise);
    if (role) {
        cJSON_AddStringToObject(v, "version", AGENTRY_VERSION);
        char ns[24]; /* exact: a JSON number through a double would round it */
        snprintf(ns, sizeof(ns), "%" PRId64, cl->started_ns);
        cJSON_AddRawToObject(v, "started_ns", ns);
        cJSON_AddStringToObject(v, "role", role);
    }
    char *s = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    return s;
}

static int put_hub(struct hub_cluster *cl, const char *role, struct ag_err *err)
{
    char *v = hub_value(cl, role);
    int rc = ag_etcd_put(cl->etcd, cl->key_hub, v, strlen(v), cl->lease, NULL, err);
    cJSON_free(v);
    return rc;
}

/* A lease kept alive, and this hub's key under it. */
static int lease_up(struct hub_cluster *cl, struct ag_err *err)
{
    if (cl->lease && !cl->lease_lost)
        return 0;
    ag_etcd_keeper_stop(cl->keeper);
    cl->keeper = NULL;
    cl->lease = 0;
    pthread_mutex_lock(&cl->mu);
    cl->lease_lost = false;
    pthread_mutex_unlock(&cl->mu);
    int64_t granted;
    if (ag_etcd_lease_grant(cl->etcd, cl->ttl_s, &cl->lease, &granted, err) != 0)
        return -1;
    if (ag_etcd_keeper_start(cl->etcd, cl->lease, granted, on_lease_lost, cl, &cl->keeper, err) !=
        0)
        return -1;
    return put_hub(cl, "standby", err);
}

static void on_leader_event(void *arg, const struct ag_etcd_event *ev)
{
    struct hub_cluster *cl = arg;
    if (ev->type != AG_ETCD_EV_DELETE || strcmp(ev->kv->key, cl->key_leader) != 0)
        return;
    pthread_mutex_lock(&cl->mu);
    cl->leader_gone = true;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

static void on_leader_resync(void *arg, const struct ag_etcd_kvs *snap)
{
    struct hub_cluster *cl = arg;
    bool there = false;
    for (size_t i = 0; i < snap->n; i++)
        there |= strcmp(snap->kvs[i].key, cl->key_leader) == 0;
    if (there)
        return;
    pthread_mutex_lock(&cl->mu);
    cl->leader_gone = true;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

/* Standby: wait until the leader key is deleted (from revision rev on), the lease is lost or
 * the campaign is aborted. */
static int wait_leader_gone(struct hub_cluster *cl, int64_t rev, struct ag_err *err)
{
    struct ag_etcd_watch_cbs cbs = {
        .on_event = on_leader_event, .on_resync = on_leader_resync, .arg = cl};
    struct ag_etcd_watch *w;
    pthread_mutex_lock(&cl->mu);
    cl->leader_gone = false;
    pthread_mutex_unlock(&cl->mu);
    if (ag_etcd_watch_start(cl->etcd, cl->key_leader, rev + 1, &cbs, &w, err) != 0)
        return -1;
    pthread_mutex_lock(&cl->mu);
    while (!cl->leader_gone && !cl->aborted && !cl->lease_lost)
        pthread_cond_wait(&cl->cv, &cl->mu);
    pthread_mutex_unlock(&cl->mu);
    ag_etcd_watch_stop(w);
    return 0;
}

int hub_cluster_lead(struct hub_cluster *cl, int64_t *token)
{
    int backoff = CLUSTER_BACKOFF_MIN_MS;
    char last_err[256] = "", last_owner[256] = "";
    for (;;) {
        pthread_mutex_lock(&cl->mu);
        bool aborted = cl->aborted;
        pthread_mutex_unlock(&cl->mu);
        if (aborted)
            return 1;
        struct ag_err err = AG_ERR_INIT;
        struct ag_etcd_txn_result res = {0};
        char *v = NULL;
        int rc = lease_up(cl, &err);
        if (rc == 0) {
            v = hub_value(cl, NULL);
            rc = ag_etcd_create(cl->etcd, cl->key_leader, v, strlen(v), cl->lease, &res, &err);
            cJSON_free(v);
        }
        if (rc != 0) { /* etcd is down or refuses: say so once, try again */
            if (strcmp(last_err, err.msg) != 0)
                ag_log_warn("cluster.etcd_unavailable", "hub=%s err=%s retry=backoff", cl->hub_id,
                            ag_log_q(err.msg));
            snprintf(last_err, sizeof(last_err), "%s", err.msg);
            ag_etcd_txn_result_release(&res);
            sleep_ms(backoff);
            backoff = backoff * 2 > CLUSTER_BACKOFF_MAX_MS ? CLUSTER_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = CLUSTER_BACKOFF_MIN_MS;
        last_err[0] = 0;
        if (res.succeeded) {
            *token = res.kv.create_revision ? res.kv.create_revision : res.revision;
            ag_etcd_txn_result_release(&res);
            pthread_mutex_lock(&cl->mu);
            cl->leading = true;
            bool lost = cl->lease_lost;
            pthread_mutex_unlock(&cl->mu);
            if (lost) { /* lost between the create and now: the key went with the lease */
                pthread_mutex_lock(&cl->mu);
                cl->leading = false;
                pthread_mutex_unlock(&cl->mu);
                continue;
            }
            if (put_hub(cl, "leader", &err) != 0)
                ag_log_warn("cluster.put_failed", "hub=%s err=%s", cl->hub_id, ag_log_q(err.msg));
            ag_log_info("cluster.leading", "hub=%s token=%" PRId64 " address=%s lease=%" PRId64,
                        cl->hub_id, *token, cl->advertise, cl->lease);
            return 0;
        }
        char owner[256];
        json_str(res.kv.value, res.kv.value_len, "hub_id", owner, sizeof(owner));
        if (strcmp(owner, last_owner) != 0)
            ag_log_info("cluster.standby", "hub=%s leader=%s", cl->hub_id, ag_log_q(owner));
        snprintf(last_owner, sizeof(last_owner), "%s", owner);
        int64_t rev = res.revision;
        ag_etcd_txn_result_release(&res);
        if (wait_leader_gone(cl, rev, &err) != 0) {
            ag_log_warn("cluster.etcd_unavailable", "hub=%s err=%s", cl->hub_id, ag_log_q(err.msg));
            sleep_ms(backoff);
        }
    }
}

/* --- the leader's watch ---------------------------------------------------------------------- */

static void seen_put(struct hub_cluster *cl, const char *id, const char *value, size_t len)
{
    char inst[128];
    json_str(value, len, "instance_id", inst, sizeof(inst));
    struct seen_node *s = ag_map_get(&cl->seen, id);
    if (s) {
        free(s->instance_id);
        s->instance_id = ag_xstrdup(inst);
        return;
    }
    size_t n = strlen(id);
    s = ag_xmalloc(sizeof(*s) + n + 1);
    memcpy(s->id, id, n + 1);
    s->instance_id = ag_xstrdup(inst);
    ag_map_put(&cl->seen, s->id, s);
}

static void seen_gone(struct hub_cluster *cl, const char *id, const char *why)
{
    struct seen_node *s = ag_map_del(&cl->seen, id);
    ag_log_info("cluster.node_unregistered", "node=%s reason=%s", id, ag_log_q(why));
    if (cl->o.node_gone)
        cl->o.node_gone(cl->o.arg, id, s ? s->instance_id : "", why);
    if (s) {
        free(s->instance_id);
        free(s);
    }
}

static bool leader_is_us(struct hub_cluster *cl, const char *value, size_t len)
{
    char owner[256];
    json_str(value, len, "hub_id", owner, sizeof(owner));
    return strcmp(owner, cl->hub_id) == 0;
}

static void on_event(void *arg, const struct ag_etcd_event *ev)
{
    struct hub_cluster *cl = arg;
    const char *key = ev->kv->key;
    if (strcmp(key, cl->key_leader) == 0) {
        if (ev->type == AG_ETCD_EV_DELETE)
            lose(cl, "the leader key was deleted");
        else if (!leader_is_us(cl, ev->kv->value, ev->kv->value_len))
            lose(cl, "the leader key names another hub");
        return;
    }
    size_t np = strlen(cl->key_nodes);
    if (strncmp(key, cl->key_nodes, np) != 0 || !key[np])
        return;
    if (ev->type == AG_ETCD_EV_PUT)
        seen_put(cl, key + np, ev->kv->value, ev->kv->value_len);
    else
        seen_gone(cl, key + np, "its etcd registration expired or was deleted");
}

/* Events were compacted away: reconcile with what is there now. */
static void on_resync(void *arg, const struct ag_etcd_kvs *snap)
{
    struct hub_cluster *cl = arg;
    size_t np = strlen(cl->key_nodes);
    bool leader = false;
    struct ag_map now;
    ag_map_init(&now);
    for (size_t i = 0; i < snap->n; i++) {
        const struct ag_etcd_kv *kv = &snap->kvs[i];
        if (strcmp(kv->key, cl->key_leader) == 0)
            leader = leader_is_us(cl, kv->value, kv->value_len);
        else if (strncmp(kv->key, cl->key_nodes, np) == 0 && kv->key[np])
            ag_map_put(&now, kv->key + np, (void *)kv);
    }
    const char *id;
    size_t ngone = 0;
    char **gone = ag_xcalloc(ag_map_len(&cl->seen) + 1, sizeof(*gone));
    for (struct ag_map_iter it = {0}; ag_map_next(&cl->seen, &it, &id, NULL);)
        if (!ag_map_get(&now, id))
            gone[ngone++] = ag_xstrdup(id);
    for (size_t i = 0; i < ngone; i++) {
        seen_gone(cl, gone[i], "its etcd registration is gone (found at a resync)");
        free(gone[i]);
    }
    free(gone);
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&now, &it, &id, &v);) {
        const struct ag_etcd_kv *kv = v;
        seen_put(cl, id, kv->value, kv->value_len);
    }
    ag_map_release(&now);
    if (!leader)
        lose(cl, "the leader key no longer names this hub");
}

static void on_state(void *arg, bool connected, const char *why)
{
    struct hub_cluster *cl = arg;
    if (connected)
        ag_log_info("cluster.watching", "hub=%s prefix=%s", cl->hub_id, cl->prefix);
    else
        ag_log_warn("cluster.watch_down", "hub=%s reason=%s", cl->hub_id, ag_log_q(why));
}

int hub_cluster_watch(struct hub_cluster *cl, struct ag_err *err)
{
    struct ag_etcd_kvs snap = {0};
    if (ag_etcd_get(cl->etcd, cl->prefix, true, 0, &snap, err) != 0)
        return -1;
    size_t np = strlen(cl->key_nodes);
    for (size_t i = 0; i < snap.n; i++) {
        const struct ag_etcd_kv *kv = &snap.kvs[i];
        if (strncmp(kv->key, cl->key_nodes, np) == 0 && kv->key[np])
            seen_put(cl, kv->key + np, kv->value, kv->value_len);
    }
    int64_t rev = snap.revision;
    ag_etcd_kvs_release(&snap);
    struct ag_etcd_watch_cbs cbs = {.on_event = on_event,
                                    .on_resync = on_resync,
                                    .on_state = on_state,
                                    .arg = cl,
                                    .prev_kv = true};
    return ag_etcd_watch_start(cl->etcd, cl->prefix, rev + 1, &cbs, &cl->watch, err);
}
