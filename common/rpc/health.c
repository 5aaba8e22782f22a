/* common/rpc/health.c - see health.h. The table is three statuses (liveness, and readiness under
 * two names); the watches are the Watch calls' own states, linked into the table's list while
 * their call lives (each holds a call reference, dropped in on_close). */
#include "common/rpc/health.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "grpc/health/v1/health.pb-c.h"

#define HEALTH_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define HEALTH_NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define HEALTH_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
/* Status changes are rare: a watch that has this many unsent is not reading, and ends. */
#define HEALTH_WATCH_QUEUE 16

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus health_status;

/* A Watch call's state (zeroed per call by the rpc layer). */
struct watch {
    struct rpc_call *call;
    const char *service; /* in the call's arena */
    health_status last;  /* the status sent last */
    bool linked;         /* in the table's list, holding a call reference */
    struct watch *prev, *next;
};

struct rpc_health {
    char *subject; /* owned */
    char *service; /* owned: the readiness name besides "" */
    struct rpc_method rows[RPC_HEALTH_NMETHODS];
    pthread_mutex_t lock;
    /* Guarded by lock: */
    bool ready;
    bool stopping; /* rpc_health_stopping: ready stays false */
    bool shut;
    struct watch *watches;
};

static health_status status_of_locked(struct rpc_health *t, const char *service)
{
    if (strcmp(service, RPC_HEALTH_LIVENESS) == 0)
        return HEALTH_SERVING;
    if (!*service || strcmp(service, t->service) == 0)
        return t->ready ? HEALTH_SERVING : HEALTH_NOT_SERVING;
    return HEALTH_UNKNOWN;
}

static grpc_byte_buffer *pack_status(health_status st)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = st;
    return rpc_pb_pack(&r.base);
}

/* Send w its service's status if it changed since the last one sent. Lock held. */
static void watch_update_locked(struct rpc_health *t, struct watch *w)
{
    health_status st = status_of_locked(t, w->service);
    if (st == w->last)
        return;
    w->last = st;
    struct ag_err err = AG_ERR_INIT;
    if (rpc_call_send_take(w->call, pack_status(st), &err) != 0)
        rpc_call_fail(w->call, &err); /* not reading: it ends (on_close unlinks it) */
}

static void on_check(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct rpc_health *t = rpc_call_method_arg(c);
    Grpc__Health__V1__HealthCheckRequest *in = rpc_call_unpack(
        c, req, &grpc__health__v1__health_check_request__descriptor);
    if (!in)
        return;
    pthread_mutex_lock(&t->lock);
    health_status st = status_of_locked(t, in->service);
    pthread_mutex_unlock(&t->lock);
    if (st == HEALTH_UNKNOWN) {
        struct ag_err err;
        ag_err_set(&err, AG_NOT_FOUND, "unknown service '%s'; ask for '', '%s' or '%s'",
                   in->service, RPC_HEALTH_LIVENESS, t->service);
        rpc_call_fail(c, &err);
        return;
    }
    rpc_call_reply_take(c, pack_status(st));
}

static void on_watch(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct rpc_health *t = rpc_call_method_arg(c);
    struct watch *w = rpc_call_state(c);
    Grpc__Health__V1__HealthCheckRequest *in = rpc_call_unpack(
        c, req, &grpc__health__v1__health_check_request__descriptor);
    if (!in)
        return;
    w->call = c;
    w->service = in->service; /* the arena's, alive with the call */
    w->last = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__UNKNOWN;
    pthread_mutex_lock(&t->lock);
    watch_update_locked(t, w);
    if (t->shut) {
        rpc_call_finish(c, AG_UNAVAILABLE, "the process is stopping");
    } else {
        rpc_call_ref(c);
        w->linked = true;
        w->next = t->watches;
        if (w->next)
            w->next->prev = w;
        t->watches = w;
    }
    pthread_mutex_unlock(&t->lock);
}

static void on_watch_close(struct rpc_call *c, bool cancelled)
{
    struct rpc_health *t = rpc_call_method_arg(c);
    struct watch *w = rpc_call_state(c);
    pthread_mutex_lock(&t->lock);
    bool linked = w->linked;
    if (linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            t->watches = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = false;
    }
    pthread_mutex_unlock(&t->lock);
    if (linked)
        rpc_call_unref(c);
}

struct rpc_health *rpc_health_new(const char *subject, const char *service)
{
    struct rpc_health *t = ag_xcalloc(1, sizeof(*t));
    t->subject = ag_xstrdup(subject);
    t->service = ag_xstrdup(service);
    pthread_mutex_init(&t->lock, NULL);
    t->rows[0] = (struct rpc_method){.path = "/grpc.health.v1.Health/Check",
                                     .kind = RPC_UNARY,
                                     .preposted = 2,
                                     .max_request_bytes = 4096,
                                     .on_call = on_check,
                                     .arg = t};
    t->rows[1] = (struct rpc_method){.path = "/grpc.health.v1.Health/Watch",
                                     .kind = RPC_SERVER_STREAM,
                                     .state_size = sizeof(struct watch),
                                     .preposted = 2,
                                     .max_request_bytes = 4096,
                                     .send_queue_cap = HEALTH_WATCH_QUEUE,
                                     .on_call = on_watch,
                                     .on_close = on_watch_close,
                                     .arg = t};
    return t;
}

void rpc_health_free(struct rpc_health *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->subject);
    free(t->service);
    free(t);
}

void rpc_health_set_ready(struct rpc_health *t, bool ready, const char *why)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    ready = ready && !t->stopping;
    bool changed = t->ready != ready;
    t->ready = ready;
    for (struct watch *w = t->watches; changed && w; w = w->next)
        watch_update_locked(t, w);
    pthread_mutex_unlock(&t->lock);
    if (changed)
        ag_log_info("health.readiness_changed", "%s status=%s why=%s", t->subject,
                    ready ? "SERVING" : "NOT_SERVING", ag_log_q(why));
}

void rpc_health_stopping(struct rpc_health *t, const char *why)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_mutex_unlock(&t->lock);
    rpc_health_set_ready(t, false, why);
}

const struct rpc_method *rpc_health_methods(struct rpc_health *t)
{
    return t->rows;
}

void rpc_health_shutdown(struct rpc_health *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->shut = true;
    for (struct watch *w = t->watches; w; w = w->next)
        rpc_call_finish(w->call, AG_UNAVAILABLE, "the process is stopping");
    pthread_mutex_unlock(&t->lock);
}

struct rpc_server *rpc_health_serve(struct rpc_health *t, const char *listen, struct ag_err *err)
{
    /* One thread is plenty for probes; no TLS, as Kubernetes' gRPC probes speak none. */
    struct rpc_server_opts o = {.listen = listen, .threads = 1, .max_request_bytes = 4096};
    struct rpc_server *s = rpc_server_new(&o, t->rows, RPC_HEALTH_NMETHODS, err);
    if (!s) {
        ag_err_prefix(err, "--health-listen");
        return NULL;
    }
    rpc_server_start(s);
    ag_log_info("health.listening", "%s listen=%s port=%d", t->subject, listen, rpc_server_port(s));
    return s;
}
