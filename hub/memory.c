/* hub/memory.c - the memory_* hub tools (see memory.h): arguments checked against the limits,
 * writes through the store's group commit, reads and searches answered from the store's reader
 * thread or the search pool (hub/memory_index.c), outputs as JSON objects the model reads.
 *
 * Every answer goes out once what it reports is durable: a put or delete from the write's done()
 * (the store's completion thread), which also brings a loaded search set in step. A call replayed
 * after its node was lost (same agent and call id) does the same again, which is the same: a put
 * writes the same value, a delete deletes nothing more.
 *
 * Errors the model can act on are tool errors (is_error, the turn goes on): a bad argument names
 * it and the limit; a full memory says so and what to do (memory_delete). */
#include "hub/memory.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/xalloc.h"
#include "hub/hub_internal.h"
#include "hub/memory_index.h"
#include "hub/store.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error                                                                                             \
    "memory vectors are stored as little-endian float32s (hub/store.h): a big-endian hub would need to swap them"
#endif

/* --- limits ----------------------------------------------------------------------------------- */

int hub_memory_check_namespace(const char *ns, struct ag_err *err)
{
    size_t n = ns ? strlen(ns) : 0;
    bool ok = n >= 1 && n <= HUB_MEMORY_NS_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = ns[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (ok)
        return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "memory namespace '%.80s' is not 1 to %d bytes of A-Z a-z 0-9 . _ -",
                      ns ? ns : "", HUB_MEMORY_NS_MAX);
}

int hub_memory_check_key(const char *key, struct ag_err *err)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > HUB_MEMORY_KEY_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "memory key must be 1 to %d bytes (this one is %zu)", HUB_MEMORY_KEY_MAX,
                          n);
    return 0;
}

/* --- start and stop --------------------------------------------------------------------------- */

int hub_memory_start(struct hub *h, struct ag_err *err)
{
    h->memory = hub_memory_index_new(h->store, HUB_MEMORY_CACHE_BYTES, HUB_MEMORY_SEARCH_THREADS,
                                     err);
    return h->memory ? 0 : -1;
}

void hub_memory_stop(struct hub *h)
{
    hub_memory_index_stop(h->memory);
}

void hub_memory_free(struct hub *h)
{
    hub_memory_index_free(h->memory);
    h->memory = NULL;
}

/* --- arguments -------------------------------------------------------------------------------- */

/* The parsed arguments of any memory tool; strings borrowed from json. */
struct margs {
    cJSON *json; /* owned */
    const char *ns, *key, *value, *prefix, *after;
    float *vector; /* owned */
    uint32_t dims;
    double k, limit, min_score;
};

static void margs_release(struct margs *a)
{
    cJSON_Delete(a->json);
    free(a->vector);
}

/* A string field: absent -> NULL; present but not a string -> error. */
static int arg_str(const cJSON *o, const char *name, const char **out, struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "\"%s\" must be a string", name);
    *out = v->valuestring;
    return 0;
}

static int arg_num(const cJSON *o, const char *name, double *out, struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "\"%s\" must be a number", name);
    *out = v->valuedouble;
    return 0;
}

static int arg_vector(const cJSON *o, struct margs *a, struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vector");
    if (!v || cJSON_IsNull(v))
        return 0;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 1 || n > HUB_MEMORY_DIMS_MAX)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "\"vector\" must be an array of 1 to %d numbers", HUB_MEMORY_DIMS_MAX);
    a->vector = ag_xmalloc((size_t)n * sizeof(float));
    a->dims = (uint32_t)n;
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 3.0e38)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "\"vector\"[%d] is not a finite number", i);
        a->vector[i] = (float)e->valuedouble;
    }
    return 0;
}

/* Parses r's arguments; on -1 the call was answered with the error. need_key: the tool needs
 * "key". */
static int margs_parse(struct hub_tool_req *r, bool need_key, struct margs *a)
{
    struct ag_err err = AG_ERR_INIT;
    *a = (struct margs){.k = HUB_MEMORY_SEARCH_K, .limit = HUB_MEMORY_LIST_LIMIT, .min_score = -1};
    a->json = cJSON_Parse(r->args_json);
    if (!cJSON_IsObject(a->json)) {
        hub_tool_fail(r, "%s: the arguments are not a JSON object", r->name);
        return -1;
    }
    int rc = arg_str(a->json, "namespace", &a->ns, &err);
    rc = rc ? rc : arg_str(a->json, "key", &a->key, &err);
    rc = rc ? rc : arg_str(a->json, "value", &a->value, &err);
    rc = rc ? rc : arg_str(a->json, "prefix", &a->prefix, &err);
    rc = rc ? rc : arg_str(a->json, "after", &a->after, &err);
    rc = rc ? rc : arg_num(a->json, "k", &a->k, &err);
    rc = rc ? rc : arg_num(a->json, "limit", &a->limit, &err);
    rc = rc ? rc : arg_num(a->json, "min_score", &a->min_score, &err);
    rc = rc ? rc : arg_vector(a->json, a, &err);
    if (rc == 0 && (!a->ns || !*a->ns))
        a->ns = HUB_MEMORY_DEFAULT_NS;
    rc = rc ? rc : hub_memory_check_namespace(a->ns, &err);
    if (rc == 0 && need_key)
        rc = hub_memory_check_key(a->key, &err);
    if (rc == 0)
        return 0;
    hub_tool_fail(r, "%s: %s", r->name, err.msg);
    margs_release(a);
    return -1;
}

/* --- outputs ---------------------------------------------------------------------------------- */

static void reply_json(struct hub_tool_req *r, cJSON *out)
{
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    hub_tool_reply(r, text, false, false);
    free(text);
}

static cJSON *out_new(const char *ns)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "namespace", ns);
    return o;
}

/* value cut to at most max bytes on a character boundary; *cut tells whether it was. */
static void add_value(cJSON *o, const char *name, const char *value, size_t len, size_t max)
{
    size_t n = len <= max ? len : ag_utf8_prefix(value, max);
    char *v = ag_xmalloc(n + 1);
    memcpy(v, value, n);
    v[n] = '\0';
    cJSON_AddStringToObject(o, name, v);
    free(v);
    if (n < len)
        cJSON_AddBoolToObject(o, "truncated", true);
}

/* --- writes: put and delete ------------------------------------------------------------------- */

struct mwrite {
    struct hub_store_write w;
    struct hub_store_op op;
    struct hub_tool_req *r;
    struct margs a;
};

static void mwrite_done(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct mwrite *m = w->arg;
    struct hub_tool_req *r = m->r;
    const struct hub_store_memory *e = &m->op.u.memory;
    bool put = m->op.type == HUB_STORE_MEMORY_PUT;
    if (rc != 0 && err->code == AG_RESOURCE_EXHAUSTED) {
        hub_tool_fail(r,
                      "memory_put: memory is full: agent '%s' keeps %d entries, the most it may; "
                      "delete some with memory_delete, then put again",
                      r->agent_id, HUB_MEMORY_MAX_ENTRIES);
    } else if (rc != 0) {
        hub_tool_fail(r, "%s: not stored: %s", r->name, err->msg);
    } else {
        if (put)
            hub_memory_index_put(r->h->memory, r->agent_id, e->namespace, e->key, e->vector,
                                 e->dims);
        else
            hub_memory_index_delete(r->h->memory, r->agent_id, e->namespace, e->key);
        cJSON *o = out_new(e->namespace);
        cJSON_AddStringToObject(o, "key", e->key);
        cJSON_AddBoolToObject(o, put ? "stored" : "deleted", true);
        if (put) {
            cJSON_AddNumberToObject(o, "bytes", (double)e->value_len);
            cJSON_AddNumberToObject(o, "dims", e->dims);
        }
        reply_json(r, o);
    }
    margs_release(&m->a);
    free(m);
}

static void write_submit(struct hub_tool_req *r, struct mwrite *m)
{
    struct ag_err err = AG_ERR_INIT;
    m->r = r;
    m->w = (struct hub_store_write){.ops = &m->op, .nops = 1, .done = mwrite_done, .arg = m};
    if (hub_store_submit(r->h->store, &m->w, &err) == 0)
        return;
    hub_tool_fail(r, "%s: not stored: %s", r->name, err.msg);
    margs_release(&m->a);
    free(m);
}

void hub_memory_put(struct hub_tool_req *r)
{
    struct mwrite *m = ag_xcalloc(1, sizeof(*m));
    if (margs_parse(r, true, &m->a) != 0) {
        free(m);
        return;
    }
    const char *value = m->a.value;
    size_t len = value ? strlen(value) : 0;
    if (!value || len > HUB_MEMORY_VALUE_MAX) {
        if (!value)
            hub_tool_fail(r, "memory_put: \"value\" (a string) is required");
        else
            hub_tool_fail(r,
                          "memory_put: \"value\" is %zu bytes, over the limit of %u; store "
                          "less, or split it over several keys",
                          len, HUB_MEMORY_VALUE_MAX);
        margs_release(&m->a);
        free(m);
        return;
    }
    m->op.type = HUB_STORE_MEMORY_PUT;
    m->op.u.memory = (struct hub_store_memory){.agent_id = r->agent_id,
                                               .namespace = m->a.ns,
                                               .key = m->a.key,
                                               .value = value,
                                               .value_len = len,
                                               .vector = m->a.vector,
                                               .dims = m->a.dims,
                                               .updated_ns = ag_now_unix_ns(),
                                               .max_entries = HUB_MEMORY_MAX_ENTRIES};
    write_submit(r, m);
}

void hub_memory_delete(struct hub_tool_req *r)
{
    struct mwrite *m = ag_xcalloc(1, sizeof(*m));
    if (margs_parse(r, true, &m->a) != 0) {
        free(m);
        return;
    }
    m->op.type = HUB_STORE_MEMORY_DELETE;
    m->op.u.memory = (struct hub_store_memory){
        .agent_id = r->agent_id, .namespace = m->a.ns, .key = m->a.key};
    write_submit(r, m);
}

/* --- reads: get and list ---------------------------------------------------------------------- */

struct mread {
    struct hub_tool_req *r;
    struct margs a;
    size_t limit; /* list */
};

static void mread_free(struct mread *m)
{
    margs_release(&m->a);
    free(m);
}

static void on_get(void *arg, const struct hub_store_memory *rows, size_t n,
                   const struct ag_err *err)
{
    struct mread *m = arg;
    if (err) {
        hub_tool_fail(m->r, "memory_get: %s", err->msg);
        mread_free(m);
        return;
    }
    cJSON *o = out_new(m->a.ns);
    cJSON_AddStringToObject(o, "key", m->a.key);
    cJSON_AddBoolToObject(o, "found", n > 0);
    if (n > 0) {
        cJSON_AddStringToObject(o, "value", rows[0].value ? rows[0].value : "");
        char ns[24]; /* raw: a double would round nanoseconds */
        snprintf(ns, sizeof(ns), "%" PRId64, rows[0].updated_ns);
        cJSON_AddRawToObject(o, "updated_unix_nano", ns);
        cJSON_AddNumberToObject(o, "dims", rows[0].dims);
    }
    reply_json(m->r, o);
    mread_free(m);
}

static void on_list(void *arg, const struct hub_store_memory *rows, size_t n,
                    const struct ag_err *err)
{
    struct mread *m = arg;
    if (err) {
        hub_tool_fail(m->r, "memory_list: %s", err->msg);
        mread_free(m);
        return;
    }
    cJSON *o = out_new(m->a.ns);
    cJSON *list = cJSON_AddArrayToObject(o, "entries");
    size_t shown = n < m->limit ? n : m->limit;
    for (size_t i = 0; i < shown; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "key", rows[i].key);
        cJSON_AddNumberToObject(e, "bytes", (double)rows[i].value_len);
        add_value(e, "preview", rows[i].value ? rows[i].value : "", rows[i].value_len,
                  HUB_MEMORY_PREVIEW);
        if (rows[i].dims)
            cJSON_AddNumberToObject(e, "dims", rows[i].dims);
        cJSON_AddItemToArray(list, e);
    }
    /* One row more than the page was read: its presence says there is more. */
    if (n > m->limit)
        cJSON_AddStringToObject(o, "next_after", rows[shown - 1].key);
    reply_json(m->r, o);
    mread_free(m);
}

static void read_submit(struct mread *m, const struct hub_store_memory_query *q,
                        hub_store_memory_fn *cb)
{
    struct ag_err err = AG_ERR_INIT;
    if (hub_store_read_memory(m->r->h->store, q, cb, m, &err) == 0)
        return;
    hub_tool_fail(m->r, "%s: %s", m->r->name, err.msg);
    mread_free(m);
}

void hub_memory_get(struct hub_tool_req *r)
{
    struct mread *m = ag_xcalloc(1, sizeof(*m));
    m->r = r;
    if (margs_parse(r, true, &m->a) != 0) {
        free(m);
        return;
    }
    const char *keys[] = {m->a.key};
    struct hub_store_memory_query q = {.kind = HUB_STORE_MEMORY_GET,
                                       .agent_id = r->agent_id,
                                       .namespace = m->a.ns,
                                       .keys = keys,
                                       .nkeys = 1};
    read_submit(m, &q, on_get);
}

void hub_memory_list(struct hub_tool_req *r)
{
    struct mread *m = ag_xcalloc(1, sizeof(*m));
    m->r = r;
    if (margs_parse(r, false, &m->a) != 0) {
        free(m);
        return;
    }
    if (m->a.limit < 1 || m->a.limit > HUB_MEMORY_LIST_LIMIT_MAX) {
        hub_tool_fail(r, "memory_list: \"limit\" must be 1 to %d", HUB_MEMORY_LIST_LIMIT_MAX);
        mread_free(m);
        return;
    }
    m->limit = (size_t)m->a.limit;
    struct hub_store_memory_query q = {.kind = HUB_STORE_MEMORY_LIST,
                                       .agent_id = r->agent_id,
                                       .namespace = m->a.ns,
                                       .prefix = m->a.prefix,
                                       .after_namespace = m->a.after ? m->a.ns : NULL,
                                       .after_key = m->a.after,
                                       .max = m->limit + 1};
    read_submit(m, &q, on_list);
}

/* --- search ----------------------------------------------------------------------------------- */

struct msearch_call {
    struct hub_tool_req *r;
    struct margs a;
    struct hub_memory_hit *hits; /* owned */
    size_t n;
    int64_t started_ns;
};

static void msearch_call_free(struct msearch_call *s)
{
    hub_memory_hits_free(s->hits, s->n);
    margs_release(&s->a);
    free(s);
}

/* The hits' values, read after the scan: in score order, skipping a key deleted since. */
static void on_values(void *arg, const struct hub_store_memory *rows, size_t n,
                      const struct ag_err *err)
{
    struct msearch_call *s = arg;
    if (err) {
        hub_tool_fail(s->r, "memory_search: %s", err->msg);
        msearch_call_free(s);
        return;
    }
    cJSON *o = out_new(s->a.ns);
    cJSON *list = cJSON_AddArrayToObject(o, "results");
    for (size_t i = 0; i < s->n; i++)
        for (size_t j = 0; j < n; j++) {
            if (strcmp(rows[j].key, s->hits[i].key) != 0)
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "key", rows[j].key);
            /* Four decimals: what a model can use, without float noise. */
            cJSON_AddNumberToObject(e, "score", round(s->hits[i].score * 1e4) / 1e4);
            add_value(e, "value", rows[j].value ? rows[j].value : "", rows[j].value_len,
                      HUB_MEMORY_SEARCH_VALUE);
            cJSON_AddItemToArray(list, e);
            break;
        }
    ag_log_debug("memory.searched", "agent=%s namespace=%s dims=%u results=%zu took_us=%" PRId64,
                 s->r->agent_id, s->a.ns, s->a.dims, s->n,
                 (ag_now_mono_ns() - s->started_ns) / 1000);
    reply_json(s->r, o);
    msearch_call_free(s);
}

static void on_hits(void *arg, struct hub_memory_hit *hits, size_t n, const struct ag_err *err)
{
    struct msearch_call *s = arg;
    if (err) {
        hub_tool_fail(s->r, "memory_search: %s", err->msg);
        msearch_call_free(s);
        return;
    }
    s->hits = hits;
    s->n = n;
    if (n == 0) {
        on_values(s, NULL, 0, NULL);
        return;
    }
    const char **keys = ag_xmalloc(n * sizeof(*keys));
    for (size_t i = 0; i < n; i++)
        keys[i] = hits[i].key;
    struct hub_store_memory_query q = {.kind = HUB_STORE_MEMORY_GET,
                                       .agent_id = s->r->agent_id,
                                       .namespace = s->a.ns,
                                       .keys = keys,
                                       .nkeys = n};
    struct ag_err e = AG_ERR_INIT;
    int rc = hub_store_read_memory(s->r->h->store, &q, on_values, s, &e);
    free(keys); /* copied by the store */
    if (rc != 0) {
        hub_tool_fail(s->r, "memory_search: %s", e.msg);
        msearch_call_free(s);
    }
}

void hub_memory_search(struct hub_tool_req *r)
{
    struct msearch_call *s = ag_xcalloc(1, sizeof(*s));
    s->r = r;
    s->started_ns = ag_now_mono_ns();
    if (margs_parse(r, false, &s->a) != 0) {
        free(s);
        return;
    }
    const char *why = NULL;
    if (!s->a.vector)
        why = "memory_search: no \"vector\": the node computes it from \"query\" with the "
              "embedding model set in the agent's tool_settings for memory_search or the "
              "node's option memory_search.embedding_model (docs/memory.md)";
    else if (s->a.k < 1 || s->a.k > HUB_MEMORY_SEARCH_K_MAX)
        why = "memory_search: \"k\" must be 1 to 50";
    if (why) {
        hub_tool_fail(r, "%s", why);
        msearch_call_free(s);
        return;
    }
    struct ag_err err = AG_ERR_INIT;
    if (hub_memory_index_search(r->h->memory, r->agent_id, s->a.ns, s->a.vector, s->a.dims,
                                (size_t)s->a.k, (float)s->a.min_score, on_hits, s, &err) != 0) {
        hub_tool_fail(r, "memory_search: %s", err.msg);
        msearch_call_free(s);
    }
}
