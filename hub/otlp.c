/* hub/otlp.c - the OTLP/HTTP JSON span exporter (hub/otlp.h).
 *
 * Threads: hub_otlp_hook runs on the store's completion thread and only copies events into
 * `q` under `mu`. The exporter thread owns `turns`, the batch and the curl handle.
 *
 * Invariants: a turn is in `turns` from its first event until the event that ends it; its root
 * span is exported then, its children as each one closes. A child still open when its turn
 * ends (a node lost mid-call, a turn killed) is closed at the turn's end with ERROR status. Ids
 * are SHA-256 of the agent id and an event's seq: the same stored events give the same ids. */
#include "hub/otlp.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agentry/v1/types.pb-c.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/map.h"
#include "common/queue.h"
#include "common/xalloc.h"
#include "hub/store.h"

#define OTLP_QUEUE_MAX 8192          /* events waiting for the exporter */
#define OTLP_QUEUE_BYTES (16u << 20) /* ... and their payloads' bytes */
#define OTLP_BATCH_MAX 512           /* spans per POST */
#define OTLP_BATCH_MS 1000           /* a batch waits at most this long */
#define OTLP_ATTEMPTS 3              /* POSTs per batch before it is dropped */
#define OTLP_FLUSH_MS 3000           /* at stop: time allowed for the last POSTs */
#define OTLP_WARN_EVERY_MS 60000     /* one otlp.dropped line per minute at most */
#define OTLP_TURNS_MAX 100000        /* open turns tracked; beyond, new turns are not traced */
#define OTLP_OPEN_MAX 16             /* open children per turn */

enum { SPAN_INTERNAL = 1, SPAN_CLIENT = 3 };
enum { STATUS_UNSET = 0, STATUS_ERROR = 2 };

struct otlp_ev {
    struct ag_qnode node;
    int kind;
    uint64_t seq;
    int64_t time_ns;
    const char *agent_id, *node_id; /* in buf */
    const char *payload;            /* in buf, NUL-terminated */
    char buf[];
};

/* A child span waiting for the event that closes it. */
struct otlp_open {
    int kind;     /* the opening event's kind */
    char key[96]; /* the tool call's id; "" for a model call */
    char name[128];
    uint8_t span_id[8];
    int64_t start_ns;
};

struct otlp_turn {
    char *agent_id; /* owned; the map's key */
    uint8_t trace_id[16], span_id[8];
    uint64_t first_seq;
    int64_t start_ns;
    char node_id[128];
    struct otlp_open open[OTLP_OPEN_MAX];
    size_t nopen;
};

struct hub_otlp {
    char *url; /* owned: endpoint + "/v1/traces" */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ag_queue q; /* of struct otlp_ev; guarded by mu */
    bool stop;         /* guarded by mu */
    _Atomic uint64_t dropped_events;
    /* exporter thread only: */
    struct ag_map turns; /* agent id -> struct otlp_turn */
    cJSON *batch;        /* array of spans */
    size_t nbatch;
    int64_t batch_deadline;
    uint64_t dropped_spans, warned_events, warned_spans;
    int64_t last_warn_ms;
    int64_t flush_deadline; /* 0 until stopping; then every POST must end by it */
    CURL *curl;
    struct curl_slist *headers; /* owned */
};

static void derive_id(const char *agent_id, uint64_t seq, const char *what, uint8_t out[32])
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s\n%" PRIu64 "\n%s", agent_id, seq, what);
    SHA256((const unsigned char *)buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, out);
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void add_hex(cJSON *o, const char *key, const uint8_t *p, size_t n)
{
    char h[65];
    hex(h, p, n);
    cJSON_AddStringToObject(o, key, h);
}

static void add_time(cJSON *o, const char *key, int64_t ns)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRId64, ns);
    cJSON_AddStringToObject(o, key, s); /* OTLP JSON writes 64-bit integers as strings */
}

static void attr_str(cJSON *span, const char *key, const char *v)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "key", key);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(a, "value"), "stringValue", v);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(span, "attributes"), a);
}

static void attr_int(cJSON *span, const char *key, int64_t v)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "key", key);
    add_time(cJSON_AddObjectToObject(a, "value"), "intValue", v);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(span, "attributes"), a);
}

/* A span of turn t; parent NULL for the root. The caller adds attributes, then span_done. */
static cJSON *span_new(const struct otlp_turn *t, const uint8_t span_id[8], const uint8_t *parent,
                       const char *name, int kind, int64_t start_ns, int64_t end_ns)
{
    cJSON *s = cJSON_CreateObject();
    add_hex(s, "traceId", t->trace_id, 16);
    add_hex(s, "spanId", span_id, 8);
    if (parent)
        add_hex(s, "parentSpanId", parent, 8);
    cJSON_AddStringToObject(s, "name", name);
    cJSON_AddNumberToObject(s, "kind", kind);
    add_time(s, "startTimeUnixNano", start_ns);
    add_time(s, "endTimeUnixNano", end_ns < start_ns ? start_ns : end_ns);
    cJSON_AddArrayToObject(s, "attributes");
    attr_str(s, "agentry.agent_id", t->agent_id);
    if (t->node_id[0])
        attr_str(s, "agentry.node_id", t->node_id);
    return s;
}

static void export_batch(struct hub_otlp *x);

static void span_done(struct hub_otlp *x, cJSON *s, int status, const char *msg)
{
    cJSON *st = cJSON_AddObjectToObject(s, "status");
    cJSON_AddNumberToObject(st, "code", status);
    if (msg && *msg)
        cJSON_AddStringToObject(st, "message", msg);
    if (!x->nbatch)
        x->batch_deadline = ag_deadline_in_ms(OTLP_BATCH_MS);
    cJSON_AddItemToArray(x->batch, s);
    if (++x->nbatch >= OTLP_BATCH_MAX)
        export_batch(x);
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int64_t jint(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void open_child(struct otlp_turn *t, const struct otlp_ev *ev, const char *key,
                       const char *name)
{
    if (t->nopen == OTLP_OPEN_MAX)
        return; /* more parallel calls than we track: the extra ones get no span */
    struct otlp_open *o = &t->open[t->nopen++];
    o->kind = ev->kind;
    snprintf(o->key, sizeof(o->key), "%s", key);
    snprintf(o->name, sizeof(o->name), "%s", name);
    uint8_t id[32];
    derive_id(t->agent_id, ev->seq, "span", id);
    memcpy(o->span_id, id, 8);
    o->start_ns = ev->time_ns;
}

/* The open child of `kind` with `key`, removed from t into *out; false if none. */
static bool take_child(struct otlp_turn *t, int kind, const char *key, struct otlp_open *out)
{
    for (size_t i = 0; i < t->nopen; i++)
        if (t->open[i].kind == kind && strcmp(t->open[i].key, key) == 0) {
            *out = t->open[i];
            t->open[i] = t->open[--t->nopen];
            return true;
        }
    return false;
}

static cJSON *child_span(const struct otlp_turn *t, const struct otlp_open *o, int64_t end_ns)
{
    char name[160];
    bool model = o->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST;
    bool tool = o->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL;
    snprintf(name, sizeof(name), "%s %s",
             model  ? "chat"
             : tool ? "execute_tool"
                    : "approval",
             o->name);
    cJSON *s = span_new(t, o->span_id, t->span_id, name, model ? SPAN_CLIENT : SPAN_INTERNAL,
                        o->start_ns, end_ns);
    if (model) {
        attr_str(s, "gen_ai.operation.name", "chat");
        attr_str(s, "gen_ai.request.model", o->name);
    } else {
        attr_str(s, "agentry.tool.name", o->name);
        attr_str(s, "gen_ai.tool.name", o->name);
        if (o->key[0])
            attr_str(s, "gen_ai.tool.call.id", o->key);
    }
    return s;
}

static void turn_end(struct hub_otlp *x, struct otlp_turn *t, const struct otlp_ev *ev,
                     const cJSON *p)
{
    for (size_t i = 0; i < t->nopen; i++) /* closed by the turn's end, not by their own */
        span_done(x, child_span(t, &t->open[i], ev->time_ns), STATUS_ERROR,
                  "the turn ended before this step finished");
    t->nopen = 0;
    cJSON *s = span_new(t, t->span_id, NULL, "invoke_agent", SPAN_INTERNAL, t->start_ns,
                        ev->time_ns);
    attr_str(s, "gen_ai.operation.name", "invoke_agent");
    attr_int(s, "agentry.turn.first_seq", (int64_t)t->first_seq);
    int status = STATUS_UNSET;
    const char *msg = NULL;
    switch (ev->kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        attr_str(s, "agentry.turn.outcome", "final");
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
        attr_str(s, "agentry.turn.outcome", "yield");
        attr_str(s, "agentry.turn.yield_reason", jstr(p, "reason"));
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
        attr_str(s, "agentry.turn.outcome", "error");
        status = STATUS_ERROR;
        msg = jstr(p, "message");
        break;
    default:
        attr_str(s, "agentry.turn.outcome", "killed");
        status = STATUS_ERROR;
        msg = "killed";
    }
    span_done(x, s, status, msg);
}

static bool opens_turn(int kind)
{
    return kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_RESUMED ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ASSIGNED ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL;
}

static bool ends_turn(int kind)
{
    return kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR ||
           kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED;
}

static struct otlp_turn *turn_get(struct hub_otlp *x, const struct otlp_ev *ev)
{
    struct otlp_turn *t = ag_map_get(&x->turns, ev->agent_id);
    if (t || !opens_turn(ev->kind) || ag_map_len(&x->turns) >= OTLP_TURNS_MAX)
        return t;
    t = ag_xcalloc(1, sizeof(*t));
    t->agent_id = ag_xstrdup(ev->agent_id);
    t->first_seq = ev->seq;
    t->start_ns = ev->time_ns;
    uint8_t id[32];
    derive_id(ev->agent_id, ev->seq, "turn", id);
    memcpy(t->trace_id, id, 16);
    memcpy(t->span_id, id + 16, 8);
    ag_map_put(&x->turns, t->agent_id, t);
    return t;
}

static void on_child_event(struct hub_otlp *x, struct otlp_turn *t, const struct otlp_ev *ev,
                           const cJSON *p)
{
    struct otlp_open o;
    cJSON *s;
    switch (ev->kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST:
        if (take_child(t, ev->kind, "", &o)) /* asked again: the first call got no reply */
            span_done(x, child_span(t, &o, ev->time_ns), STATUS_ERROR, "no reply stored");
        open_child(t, ev, "", jstr(p, "model"));
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY:
        if (!take_child(t, AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST, "", &o))
            break;
        s = child_span(t, &o, ev->time_ns);
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "usage");
        attr_int(s, "gen_ai.usage.input_tokens", jint(u, "input_tokens"));
        attr_int(s, "gen_ai.usage.output_tokens", jint(u, "output_tokens"));
        span_done(x, s, STATUS_UNSET, NULL);
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL:
        if (take_child(t, ev->kind, jstr(p, "id"), &o)) /* run again after a lost node */
            span_done(x, child_span(t, &o, ev->time_ns), STATUS_ERROR, "no result stored");
        open_child(t, ev, jstr(p, "id"), jstr(p, "name"));
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT:
        if (!take_child(t, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL, jstr(p, "id"), &o))
            break;
        s = child_span(t, &o, ev->time_ns);
        bool is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "is_error"));
        attr_str(s, "agentry.tool.is_error", is_error ? "true" : "false");
        span_done(x, s, is_error ? STATUS_ERROR : STATUS_UNSET, is_error ? "tool error" : NULL);
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
        open_child(t, ev, jstr(p, "id"), jstr(p, "name"));
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED:
        if (!take_child(t, AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED, jstr(p, "id"),
                        &o))
            break;
        s = child_span(t, &o, ev->time_ns);
        attr_str(s, "agentry.approval.decision", jstr(p, "decision"));
        span_done(x, s, STATUS_UNSET, NULL);
        break;
    default:
        break;
    }
}

static void on_event(struct hub_otlp *x, const struct otlp_ev *ev)
{
    struct otlp_turn *t = turn_get(x, ev);
    if (!t)
        return;
    if (ev->node_id[0] && !t->node_id[0])
        snprintf(t->node_id, sizeof(t->node_id), "%s", ev->node_id);
    cJSON *p = cJSON_Parse(ev->payload); /* NULL for a payload that is not JSON: no fields */
    if (ends_turn(ev->kind)) {
        turn_end(x, t, ev, p);
        ag_map_del(&x->turns, t->agent_id);
        free(t->agent_id);
        free(t);
    } else {
        on_child_event(x, t, ev, p);
    }
    cJSON_Delete(p);
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One POST; 0 on a 2xx answer, else -1 with what went wrong in err. */
static int post(struct hub_otlp *x, const char *body, long timeout_ms, struct ag_err *err)
{
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000);
    CURLcode rc = curl_easy_perform(x->curl);
    if (rc != CURLE_OK)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot POST spans to '%s': %s", x->url,
                          curl_easy_strerror(rc));
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299)
        return ag_err_set(err, AG_UNAVAILABLE, "collector at '%s' answered HTTP %ld", x->url, code);
    return 0;
}

static void warn_dropped(struct hub_otlp *x, const char *why)
{
    uint64_t ev = atomic_load(&x->dropped_events);
    int64_t now = ag_now_mono_ms();
    if (ev == x->warned_events && x->dropped_spans == x->warned_spans)
        return;
    if (x->last_warn_ms && now - x->last_warn_ms < OTLP_WARN_EVERY_MS)
        return;
    x->last_warn_ms = now;
    x->warned_events = ev;
    x->warned_spans = x->dropped_spans;
    ag_log_warn("otlp.dropped",
                "endpoint=%s events_dropped=%" PRIu64 " spans_dropped=%" PRIu64 " err=%s",
                ag_log_q(x->url), ev, x->dropped_spans, ag_log_q(why));
}

/* POST the batch, retrying with backoff; a batch that still fails is dropped and counted. While
 * stopping, only as long as the flush deadline allows. */
static void export_batch(struct hub_otlp *x)
{
    if (!x->nbatch)
        return;
    cJSON *root = cJSON_CreateObject();
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "resourceSpans"), rs);
    cJSON *res = cJSON_AddArrayToObject(cJSON_AddObjectToObject(rs, "resource"), "attributes");
    cJSON *svc = cJSON_CreateObject();
    cJSON_AddStringToObject(svc, "key", "service.name");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(svc, "value"), "stringValue", "agentry-hub");
    cJSON_AddItemToArray(res, svc);
    cJSON *ss = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(rs, "scopeSpans"), ss);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(ss, "scope"), "name", "agentry.hub");
    cJSON_AddItemToObject(ss, "spans", x->batch);
    char *body = cJSON_PrintUnformatted(root);
    struct ag_err err = AG_ERR_INIT;
    ag_err_set(&err, AG_DEADLINE_EXCEEDED, "no time left to export spans at stop");
    bool final = x->flush_deadline != 0;
    int rc = -1;
    for (int i = 0; i < OTLP_ATTEMPTS && rc != 0; i++) {
        int64_t wait_ms = i ? 250LL << (2 * (i - 1)) : 0; /* 0, 250 ms, 1 s */
        if (final && ag_deadline_left_ms(x->flush_deadline) <= wait_ms)
            break;
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        long timeout = final ? (long)ag_deadline_left_ms(x->flush_deadline) : 5000;
        rc = post(x, body, timeout, &err);
    }
    if (rc != 0) {
        x->dropped_spans += x->nbatch;
        warn_dropped(x, err.msg);
    }
    free(body);
    cJSON_Delete(root);
    x->batch = cJSON_CreateArray();
    x->nbatch = 0;
}

static void *exporter(void *arg)
{
    struct hub_otlp *x = arg;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        int64_t deadline = x->nbatch ? x->batch_deadline : ag_deadline_in_ms(OTLP_BATCH_MS);
        while (!x->stop && ag_queue_empty(&x->q) && !ag_deadline_passed(deadline))
            ag_cond_wait_until(&x->cv, &x->mu, deadline);
        struct ag_qnode *chain = ag_queue_take_all(&x->q);
        bool stop = x->stop;
        pthread_mutex_unlock(&x->mu);
        if (stop)
            x->flush_deadline = ag_deadline_in_ms(OTLP_FLUSH_MS);
        for (struct ag_qnode *n = chain, *next; n; n = next) {
            next = n->next;
            struct otlp_ev *ev = AG_QUEUE_ENTRY(n, struct otlp_ev, node);
            on_event(x, ev);
            free(ev);
        }
        if (stop || (x->nbatch && ag_deadline_passed(x->batch_deadline)))
            export_batch(x);
        if (atomic_load(&x->dropped_events) != x->warned_events)
            warn_dropped(x, "the export queue was full");
        if (stop)
            return NULL;
    }
}

void hub_otlp_hook(void *arg, const struct hub_hook_event *ev)
{
    struct hub_otlp *x = arg;
    for (size_t i = 0; i < ev->nevents; i++) {
        const struct hub_store_event *e = ev->events[i];
        if (e->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_DELTA ||
            e->kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_SPAWNED)
            continue; /* no span of their own, and a delta stream is the bulk of a log */
        size_t al = strlen(e->agent_id) + 1, nl = strlen(e->node_id ? e->node_id : "") + 1;
        size_t bytes = sizeof(struct otlp_ev) + al + nl + e->payload_len + 1;
        struct otlp_ev *c = ag_xmalloc(bytes);
        c->kind = e->kind;
        c->seq = e->seq;
        c->time_ns = e->time_ns;
        memcpy(c->buf, e->agent_id, al);
        memcpy(c->buf + al, e->node_id ? e->node_id : "", nl);
        memcpy(c->buf + al + nl, e->payload, e->payload_len);
        c->buf[al + nl + e->payload_len] = '\0';
        c->agent_id = c->buf;
        c->node_id = c->buf + al;
        c->payload = c->buf + al + nl;
        pthread_mutex_lock(&x->mu);
        int rc = ag_queue_push(&x->q, &c->node, bytes, NULL);
        pthread_mutex_unlock(&x->mu);
        if (rc != 0) {
            atomic_fetch_add(&x->dropped_events, 1);
            free(c);
        }
    }
    pthread_cond_signal(&x->cv);
}

struct hub_otlp *hub_otlp_new(const char *endpoint, struct ag_err *err)
{
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "invalid --otlp-endpoint '%s': want http(s)://HOST:PORT, e.g. "
                   "http://127.0.0.1:4318",
                   endpoint);
        return NULL;
    }
    struct hub_otlp *x = ag_xcalloc(1, sizeof(*x));
    size_t el = strlen(endpoint);
    while (el && endpoint[el - 1] == '/')
        el--;
    x->url = ag_xasprintf("%.*s/v1/traces", (int)el, endpoint);
    pthread_mutex_init(&x->mu, NULL);
    ag_cond_init_mono(&x->cv);
    ag_queue_init(&x->q, "otlp.events", OTLP_QUEUE_MAX, OTLP_QUEUE_BYTES);
    ag_map_init(&x->turns);
    x->batch = cJSON_CreateArray();
    x->curl = curl_easy_init();
    if (!x->curl)
        abort(); /* out of memory, as ag_xmalloc */
    curl_easy_setopt(x->curl, CURLOPT_URL, x->url);
    curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, discard_body);
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
    ag_xthread_create(&x->thread, exporter, x, "otlp exporter");
    ag_log_info("otlp.started", "endpoint=%s", ag_log_q(x->url));
    return x;
}

void hub_otlp_free(struct hub_otlp *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    for (struct ag_qnode *n = ag_queue_take_all(&x->q), *next; n; n = next) {
        next = n->next; /* pushed after the exporter's last look: nothing runs hooks by now */
        free(AG_QUEUE_ENTRY(n, struct otlp_ev, node));
    }
    const char *k;
    void *v;
    for (struct ag_map_iter it = {0}; ag_map_next(&x->turns, &it, &k, &v);) {
        struct otlp_turn *t = v;
        free(t->agent_id);
        free(t);
    }
    ag_map_release(&x->turns);
    curl_easy_cleanup(x->curl);
    curl_slist_free_all(x->headers);
    cJSON_Delete(x->batch);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x->url);
    free(x);
}
