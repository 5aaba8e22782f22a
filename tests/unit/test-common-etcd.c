/* tests/unit/test-common-etcd.c - the etcd v3 client (common/etcd.c, common/etcd_watch.c)
 * against a real etcd that the test starts through tests/etcd_fixture.sh (found through
 * AGENTRY_SRC, which ctest sets): one plain etcd for the group, halted and restarted by the
 * restart test, and a second one over TLS with client-certificate auth for the TLS test.
 *
 * Every callback records into one struct rec under its lock and broadcasts; the test waits on
 * the condvar with a deadline for what it expects. Each test uses its own key prefix, so they
 * share the server without seeing each other's keys. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/etcd.h"

#define WAIT_MS 10000

static char state_file[128]; /* the plain fixture's STATE */
static char url[128];        /* its client URL */
static struct ag_etcd *cli;  /* a client of it */

/* --- the fixture --------------------------------------------------------------------------- */

static int fixture(const char *cmd, const char *state)
{
    const char *src = getenv("AGENTRY_SRC");
    if (!src) {
        fprintf(stderr, "AGENTRY_SRC is not set: run through ctest or set it to the source tree\n");
        return -1;
    }
    char line[512];
    snprintf(line, sizeof(line), "sh %s/tests/etcd_fixture.sh %s %s >/dev/null", src, cmd, state);
    return system(line) == 0 ? 0 : -1;
}

static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, (int)n, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static int group_setup(void **state)
{
    snprintf(state_file, sizeof(state_file), "/tmp/agentry-etcd-test-%d", (int)getpid());
    char path[160];
    snprintf(path, sizeof(path), "%s.url", state_file);
    if (fixture("start", state_file) < 0 || read_line(path, url, sizeof(url)) < 0)
        return -1;
    struct ag_etcd_opts o = {.endpoints = url};
    return ag_etcd_new(&o, &cli, NULL);
}

static int group_teardown(void **state)
{
    ag_etcd_free(cli);
    return fixture("stop", state_file);
}

/* --- recording callbacks --------------------------------------------------------------------- */

struct ev {
    enum ag_etcd_event_type type;
    char key[64], value[64], prev[64];
    bool has_prev;
    int64_t mod_revision;
};

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ev ev[64];
    int n_ev;
    int n_resync, events_at_resync;
    size_t snap_n;
    char snap_key0[64];
    int64_t snap_rev;
    int ups, downs;
    bool up;
    int lost;
    char why[300];
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    ag_cond_init_mono(&r->cv);
}

static void rec_release(struct rec *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static void copy(char *dst, const char *src)
{
    snprintf(dst, 64, "%s", src ? src : "");
}

static void on_event(void *arg, const struct ag_etcd_event *e)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n_ev < 64) {
        struct ev *v = &r->ev[r->n_ev++];
        v->type = e->type;
        copy(v->key, e->kv->key);
        copy(v->value, e->kv->value);
        v->has_prev = e->prev_kv != NULL;
        copy(v->prev, e->prev_kv ? e->prev_kv->value : "");
        v->mod_revision = e->kv->mod_revision;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_resync(void *arg, const struct ag_etcd_kvs *snap)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->n_resync++;
    r->events_at_resync = r->n_ev;
    r->snap_n = snap->n;
    copy(r->snap_key0, snap->n ? snap->kvs[0].key : "");
    r->snap_rev = snap->revision;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_state(void *arg, bool connected, const char *why)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->up = connected;
    if (connected)
        r->ups++;
    else
        r->downs++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_lost(void *arg, int64_t lease, const char *why)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->lost++;
    snprintf(r->why, sizeof(r->why), "%s", why);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Wait until *field (read under r->mu) reaches want; false on timeout. */
static bool wait_for(struct rec *r, const int *field, int want)
{
    int64_t deadline = ag_deadline_in_ms(WAIT_MS);
    pthread_mutex_lock(&r->mu);
    while (*field < want && ag_cond_wait_until(&r->cv, &r->mu, deadline))
        ;
    bool ok = *field >= want;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static struct ag_etcd_watch *watch(const char *prefix, int64_t from, struct rec *r)
{
    struct ag_etcd_watch_cbs cbs = {.on_event = on_event,
                                    .on_resync = on_resync,
                                    .on_state = on_state,
                                    .arg = r,
                                    .prev_kv = true};
    struct ag_etcd_watch *w = NULL;
    assert_int_equal(ag_etcd_watch_start(cli, prefix, from, &cbs, &w, NULL), 0);
    return w;
}

static void put(const char *key, const char *value, int64_t *rev)
{
    struct ag_err err = AG_ERR_INIT;
    if (ag_etcd_put(cli, key, value, strlen(value), 0, rev, &err) < 0)
        fail_msg("put %s: %s", key, err.msg);
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_put_get_delete(void **state)
{
    int64_t r1, r2, r3;
    put("/kv/a", "1", &r1);
    /* a value with a NUL and high bytes survives base64 both ways */
    static const char bin[] = {'x', 0, (char)0xff, 'y'};
    assert_int_equal(ag_etcd_put(cli, "/kv/b", bin, sizeof(bin), 0, &r2, NULL), 0);
    put("/kv0", "outside", &r3);
    assert_true(r1 > 0 && r2 == r1 + 1 && r3 == r2 + 1);

    struct ag_etcd_kvs kvs;
    assert_int_equal(ag_etcd_get(cli, "/kv/a", false, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 1);
    assert_string_equal(kvs.kvs[0].key, "/kv/a");
    assert_string_equal(kvs.kvs[0].value, "1");
    assert_int_equal(kvs.kvs[0].create_revision, r1);
    assert_int_equal(kvs.kvs[0].version, 1);
    assert_true(kvs.revision >= r3);
    ag_etcd_kvs_release(&kvs);

    assert_int_equal(ag_etcd_get(cli, "/kv/", true, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 2); /* not /kv0 */
    assert_string_equal(kvs.kvs[1].key, "/kv/b");
    assert_int_equal(kvs.kvs[1].value_len, sizeof(bin));
    assert_memory_equal(kvs.kvs[1].value, bin, sizeof(bin));
    ag_etcd_kvs_release(&kvs);

    assert_int_equal(ag_etcd_get(cli, "/kv/", true, 1, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 1);
    ag_etcd_kvs_release(&kvs);

    assert_int_equal(ag_etcd_get(cli, "/kv/none", false, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 0);
    assert_null(kvs.kvs);
    ag_etcd_kvs_release(&kvs);

    int64_t deleted = -1;
    assert_int_equal(ag_etcd_delete(cli, "/kv/", true, &deleted, NULL), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(ag_etcd_delete(cli, "/kv0", false, &deleted, NULL), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(ag_etcd_get(cli, "/kv", true, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 0);
    ag_etcd_kvs_release(&kvs);
}

static void test_cas(void **state)
{
    struct ag_etcd_txn_result res;
    assert_int_equal(ag_etcd_create(cli, "/cas/leader", "h1", 2, 0, &res, NULL), 0);
    assert_true(res.succeeded);
    assert_true(res.found);
    int64_t token = res.kv.create_revision;
    assert_int_equal(token, res.revision);
    ag_etcd_txn_result_release(&res);

    /* the second candidate loses and learns who won */
    assert_int_equal(ag_etcd_create(cli, "/cas/leader", "h2", 2, 0, &res, NULL), 0);
    assert_false(res.succeeded);
    assert_true(res.found);
    assert_string_equal(res.kv.value, "h1");
    assert_int_equal(res.kv.create_revision, token);
    int64_t mod = res.kv.mod_revision;
    ag_etcd_txn_result_release(&res);

    /* "is it still mine": a read-only compare on the fencing token */
    struct ag_etcd_txn mine = {.key = "/cas/leader", .cmp = AG_ETCD_IF_CREATE_REV, .rev = token};
    assert_int_equal(ag_etcd_txn(cli, &mine, &res, NULL), 0);
    assert_true(res.succeeded);
    ag_etcd_txn_result_release(&res);

    struct ag_etcd_txn t = {.key = "/cas/leader",
                            .cmp = AG_ETCD_IF_MOD_REV,
                            .rev = mod + 100,
                            .op = AG_ETCD_OP_PUT,
                            .put_value = "h3",
                            .put_value_len = 2};
    assert_int_equal(ag_etcd_txn(cli, &t, &res, NULL), 0);
    assert_false(res.succeeded);
    assert_string_equal(res.kv.value, "h1");
    ag_etcd_txn_result_release(&res);
    t.rev = mod;
    assert_int_equal(ag_etcd_txn(cli, &t, &res, NULL), 0);
    assert_true(res.succeeded);
    assert_string_equal(res.kv.value, "h3");
    assert_int_equal(res.kv.create_revision, token);
    ag_etcd_txn_result_release(&res);

    struct ag_etcd_txn del = {.key = "/cas/leader",
                              .cmp = AG_ETCD_IF_VALUE,
                              .value = "h1",
                              .value_len = 2,
                              .op = AG_ETCD_OP_DELETE};
    assert_int_equal(ag_etcd_txn(cli, &del, &res, NULL), 0);
    assert_false(res.succeeded); /* the value is h3 now */
    assert_true(res.found);
    ag_etcd_txn_result_release(&res);
    del.value = "h3";
    assert_int_equal(ag_etcd_txn(cli, &del, &res, NULL), 0);
    assert_true(res.succeeded);
    assert_false(res.found);
    ag_etcd_txn_result_release(&res);

    assert_int_equal(ag_etcd_txn(cli, &mine, &res, NULL), 0);
    assert_false(res.succeeded); /* gone: no longer ours */
    assert_false(res.found);
    ag_etcd_txn_result_release(&res);
}

static void test_lease(void **state)
{
    int64_t id = 0, ttl = 0;
    assert_int_equal(ag_etcd_lease_grant(cli, 5, &id, &ttl, NULL), 0);
    assert_true(id != 0);
    assert_int_equal(ttl, 5);
    assert_int_equal(ag_etcd_put(cli, "/lease/k", "v", 1, id, NULL, NULL), 0);
    struct ag_etcd_kvs kvs;
    assert_int_equal(ag_etcd_get(cli, "/lease/k", false, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 1);
    assert_int_equal(kvs.kvs[0].lease, id);
    ag_etcd_kvs_release(&kvs);

    assert_int_equal(ag_etcd_lease_keepalive_once(cli, id, &ttl, NULL), 0);
    assert_true(ttl > 0 && ttl <= 5);
    assert_int_equal(ag_etcd_lease_revoke(cli, id, NULL), 0);
    assert_int_equal(ag_etcd_get(cli, "/lease/k", false, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 0); /* revoking deleted the key */
    ag_etcd_kvs_release(&kvs);
    assert_int_equal(ag_etcd_lease_keepalive_once(cli, id, &ttl, NULL), 0);
    assert_int_equal(ttl, 0); /* gone */

    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_etcd_lease_revoke(cli, id, &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_non_null(strstr(err.msg, "etcd: etcdserver: requested lease not found"));
    ag_err_clear(&err);
    assert_int_equal(ag_etcd_put(cli, "/lease/k", "v", 1, id, NULL, &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_non_null(strstr(err.msg, "requested lease not found"));
    assert_non_null(strstr(err.msg, "/lease/k"));
}

static void test_keeper(void **state)
{
    int64_t id, ttl;
    /* 2 s, not etcd's 1 s minimum: a loaded test machine must not lose it between renewals. */
    assert_int_equal(ag_etcd_lease_grant(cli, 2, &id, &ttl, NULL), 0);
    assert_int_equal(ttl, 2);
    assert_int_equal(ag_etcd_put(cli, "/keep/k", "v", 1, id, NULL, NULL), 0);
    struct rec r;
    rec_init(&r);
    struct ag_etcd_keeper *k;
    assert_int_equal(ag_etcd_keeper_start(cli, id, ttl, on_lost, &r, &k, NULL), 0);
    /* Two TTLs pass: the key must stay all along (this waits on time itself, not an event). */
    int64_t until = ag_deadline_in_ms(4000);
    while (!ag_deadline_passed(until)) {
        struct ag_etcd_kvs kvs;
        assert_int_equal(ag_etcd_get(cli, "/keep/k", false, 0, &kvs, NULL), 0);
        assert_int_equal(kvs.n, 1);
        ag_etcd_kvs_release(&kvs);
        usleep(100 * 1000);
    }
    assert_int_equal(r.lost, 0);
    /* revoked behind its back: the keeper notices at its next renewal */
    assert_int_equal(ag_etcd_lease_revoke(cli, id, NULL), 0);
    assert_true(wait_for(&r, &r.lost, 1));
    assert_non_null(strstr(r.why, "is gone"));
    ag_etcd_keeper_stop(k);
    assert_int_equal(r.lost, 1);
    rec_release(&r);
}

static void test_keeper_unreachable(void **state)
{
    struct ag_etcd *dead;
    struct ag_etcd_opts o = {.endpoints = "http://127.0.0.1:1"};
    assert_int_equal(ag_etcd_new(&o, &dead, NULL), 0);
    struct rec r;
    rec_init(&r);
    struct ag_etcd_keeper *k;
    int64_t t0 = ag_now_mono_ms();
    assert_int_equal(ag_etcd_keeper_start(dead, 42, 1, on_lost, &r, &k, NULL), 0);
    assert_true(wait_for(&r, &r.lost, 1));
    assert_true(ag_now_mono_ms() - t0 >= 1000); /* not before the TTL ran out */
    assert_non_null(strstr(r.why, "not renewed"));
    assert_non_null(strstr(r.why, "http://127.0.0.1:1"));
    ag_etcd_keeper_stop(k);
    ag_etcd_free(dead);
    rec_release(&r);
}

static void test_watch(void **state)
{
    struct rec r;
    rec_init(&r);
    struct ag_etcd_watch *w = watch("/w/", 0, &r);
    assert_true(wait_for(&r, &r.ups, 1));
    put("/w/a", "v1", NULL);
    put("/other", "x", NULL);
    put("/w/a", "v2", NULL);
    assert_int_equal(ag_etcd_delete(cli, "/w/a", false, NULL, NULL), 0);
    assert_true(wait_for(&r, &r.n_ev, 3));
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.ev[0].type, AG_ETCD_EV_PUT);
    assert_string_equal(r.ev[0].key, "/w/a");
    assert_string_equal(r.ev[0].value, "v1");
    assert_false(r.ev[0].has_prev);
    assert_int_equal(r.ev[1].type, AG_ETCD_EV_PUT);
    assert_string_equal(r.ev[1].value, "v2");
    assert_string_equal(r.ev[1].prev, "v1");
    assert_int_equal(r.ev[2].type, AG_ETCD_EV_DELETE);
    assert_string_equal(r.ev[2].key, "/w/a");
    assert_string_equal(r.ev[2].prev, "v2");
    assert_true(r.ev[0].mod_revision < r.ev[1].mod_revision);
    assert_true(r.ev[1].mod_revision < r.ev[2].mod_revision);
    pthread_mutex_unlock(&r.mu);
    /* an idle stream stops at once, not at its next byte */
    int64_t t0 = ag_now_mono_ms();
    ag_etcd_watch_stop(w);
    assert_true(ag_now_mono_ms() - t0 < 500);
    assert_int_equal(r.n_ev, 3);
    assert_int_equal(r.downs, 0);
    rec_release(&r);
}

static void test_watch_survives_restart(void **state)
{
    struct rec r;
    rec_init(&r);
    struct ag_etcd_watch *w = watch("/r/", 0, &r);
    assert_true(wait_for(&r, &r.ups, 1));
    put("/r/1", "before", NULL);
    assert_true(wait_for(&r, &r.n_ev, 1));
    assert_int_equal(fixture("halt", state_file), 0);
    assert_true(wait_for(&r, &r.downs, 1));
    assert_int_equal(fixture("restart", state_file), 0);
    put("/r/2", "after", NULL); /* right away: possibly before the watch is back */
    assert_true(wait_for(&r, &r.n_ev, 2));
    assert_true(wait_for(&r, &r.ups, 2));
    pthread_mutex_lock(&r.mu);
    assert_string_equal(r.ev[1].key, "/r/2");
    assert_string_equal(r.ev[1].value, "after");
    assert_true(r.up);
    pthread_mutex_unlock(&r.mu);
    ag_etcd_watch_stop(w);
    assert_int_equal(r.n_ev, 2); /* once each, no replays */
    assert_int_equal(r.n_resync, 0);
    rec_release(&r);
}

static void test_watch_compaction_resyncs(void **state)
{
    int64_t first, last;
    put("/c/a", "1", &first);
    put("/c/b", "2", NULL);
    put("/c/a", "3", NULL);
    assert_int_equal(ag_etcd_delete(cli, "/c/b", false, NULL, NULL), 0);
    put("/c/x", "4", &last);
    assert_int_equal(ag_etcd_delete(cli, "/c/x", false, NULL, NULL), 0);
    assert_int_equal(ag_etcd_compact(cli, last, NULL), 0);
    struct rec r;
    rec_init(&r);
    struct ag_etcd_watch *w = watch("/c/", first, &r); /* history it asks for is gone */
    assert_true(wait_for(&r, &r.n_resync, 1));
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.events_at_resync, 0);
    assert_int_equal(r.snap_n, 1);
    assert_string_equal(r.snap_key0, "/c/a");
    assert_true(r.snap_rev > last);
    pthread_mutex_unlock(&r.mu);
    put("/c/z", "5", NULL);
    assert_true(wait_for(&r, &r.n_ev, 1));
    ag_etcd_watch_stop(w);
    assert_int_equal(r.n_ev, 1);
    assert_string_equal(r.ev[0].key, "/c/z");
    assert_int_equal(r.n_resync, 1);
    rec_release(&r);
}

static void test_tls_client_cert(void **state)
{
    char tls_state[160], dir[160], tls_url[160], path[200];
    snprintf(tls_state, sizeof(tls_state), "%s-tls", state_file);
    assert_int_equal(fixture("start-tls", tls_state), 0);
    snprintf(path, sizeof(path), "%s.url", tls_state);
    assert_int_equal(read_line(path, tls_url, sizeof(tls_url)), 0);
    assert_int_equal(read_line(tls_state, dir, sizeof(dir)), 0);
    assert_int_equal(strncmp(tls_url, "https://", 8), 0);
    char ca[200], cert[200], key[200];
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    snprintf(cert, sizeof(cert), "%s/client.crt", dir);
    snprintf(key, sizeof(key), "%s/client.key", dir);

    struct ag_etcd *c;
    struct ag_etcd_opts o = {
        .endpoints = tls_url, .ca_file = ca, .cert_file = cert, .key_file = key};
    assert_int_equal(ag_etcd_new(&o, &c, NULL), 0);
    struct ag_err err = AG_ERR_INIT;
    if (ag_etcd_put(c, "/tls/k", "v", 1, 0, NULL, &err) < 0)
        fail_msg("put over TLS: %s", err.msg);
    struct ag_etcd_kvs kvs;
    assert_int_equal(ag_etcd_get(c, "/tls/k", false, 0, &kvs, NULL), 0);
    assert_int_equal(kvs.n, 1);
    assert_string_equal(kvs.kvs[0].value, "v");
    ag_etcd_kvs_release(&kvs);
    ag_etcd_free(c);

    /* without the client certificate the server refuses the handshake */
    struct ag_etcd_opts no_cert = {.endpoints = tls_url, .ca_file = ca};
    assert_int_equal(ag_etcd_new(&no_cert, &c, NULL), 0);
    assert_int_equal(ag_etcd_put(c, "/tls/k", "v", 1, 0, NULL, &err), -1);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_non_null(strstr(err.msg, tls_url));
    ag_etcd_free(c);
    assert_int_equal(fixture("stop", tls_state), 0);
}

static void test_errors(void **state)
{
    struct ag_etcd *c = NULL;
    struct ag_err err = AG_ERR_INIT;
    struct ag_etcd_opts bad = {.endpoints = "http://127.0.0.1:2379,ftp://etcd:2379"};
    assert_int_equal(ag_etcd_new(&bad, &c, &err), -1);
    assert_null(c);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "'ftp://etcd:2379'"));
    struct ag_etcd_opts empty = {.endpoints = ""};
    assert_int_equal(ag_etcd_new(&empty, &c, &err), -1);
    assert_non_null(strstr(err.msg, "no etcd endpoint"));
    struct ag_etcd_opts half = {.endpoints = url, .cert_file = "/etc/hostname"};
    assert_int_equal(ag_etcd_new(&half, &c, &err), -1);
    assert_non_null(strstr(err.msg, "cert and a key"));
    struct ag_etcd_opts missing = {.endpoints = url, .ca_file = "/nonexistent/ca.crt"};
    assert_int_equal(ag_etcd_new(&missing, &c, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/ca.crt"));

    struct ag_etcd_opts dead = {.endpoints = "http://127.0.0.1:1"};
    assert_int_equal(ag_etcd_new(&dead, &c, NULL), 0);
    assert_int_equal(ag_etcd_put(c, "/e/k", "v", 1, 0, NULL, &err), -1);
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "cannot reach etcd at 'http://127.0.0.1:1'"));
    ag_etcd_free(c);

    /* the dead endpoint first: the call moves on to the live one */
    char both[300];
    snprintf(both, sizeof(both), "http://127.0.0.1:1, %s/", url);
    struct ag_etcd_opts failover = {.endpoints = both};
    assert_int_equal(ag_etcd_new(&failover, &c, NULL), 0);
    assert_int_equal(ag_etcd_put(c, "/e/k", "v", 1, 0, NULL, NULL), 0);
    assert_int_equal(ag_etcd_delete(c, "/e/k", false, NULL, NULL), 0);
    ag_etcd_free(c);

    /* etcd's own message for a request it refuses */
    int64_t ttl;
    assert_int_equal(ag_etcd_lease_keepalive_once(cli, 12345, &ttl, NULL), 0);
    assert_int_equal(ttl, 0);
    assert_int_equal(ag_etcd_lease_revoke(cli, 12345, &err), -1);
    assert_string_equal(err.msg, "revoke lease 12345: etcd: etcdserver: requested lease not found");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_delete),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_keeper),
        cmocka_unit_test(test_keeper_unreachable),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_watch_survives_restart),
        cmocka_unit_test(test_watch_compaction_resyncs),
        cmocka_unit_test(test_tls_client_cert),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
