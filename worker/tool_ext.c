/* worker/tool_ext.c - the node's cache of toolsets and each toolset's listing and calls
 * (see tool_ext.h).
 *
 * Locks: wk_tool_ext.mu guards the cache list and stopped; wk_toolset.mu guards a toolset's state,
 * its waiters and its sources while listing. Never both at once, except cache then toolset when
 * the cache picks a toolset to evict (it reads the toolset's refs, an atomic, and takes no lock).
 * Once a toolset is READY its tools and sources are read-only and read without the lock. */
#include "worker/tool_ext.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/workpool.h"
#include "common/xalloc.h"
#include "worker/http.h"
#include "worker/mcp.h"
#include "worker/openapi.h"
#include "worker/sandbox.h"
#include "worker/tool_http_request.h"
#include "worker/tool_internal.h"

#define EXT_DOC_TIMEOUT_MS 30000

enum ts_state { TS_IDLE, TS_LISTING, TS_READY, TS_FAILED };

struct ts_waiter {
    wk_tool_ext_ready_fn *fn;
    void *arg;
};

struct wk_tool_ext_set {
    struct wk_http *http;             /* borrowed: the node's, alive until wk_tool_ext_stop */
    struct ag_workpool *pool;         /* borrowed: likewise */
    const struct wk_sandbox *sandbox; /* borrowed: likewise */
    const struct wk_config *options;  /* borrowed: the node's "mcp.*" options */
    uint8_t *key; /* owned: the packed mcp_servers and openapi, then the agent's id when a stdio
                     server is among them */
    size_t key_len;
    size_t spec_len; /* key[0, spec_len) is the spec; past it, NUL and the agent's id, if any */
    Agentry__V1__AgentSpec *spec; /* owned (protobuf-c unpacked): only those two fields */
    atomic_uint refs;
    int64_t used_ms; /* under the cache's mu */

    pthread_mutex_t mu;
    bool stopped; /* wk_tool_ext_stop, or evicted: no listing starts */
    enum ts_state state;
    struct ag_err failed; /* TS_FAILED */
    int64_t failed_ms;
    struct ts_waiter *waiters;
    size_t nwaiters;
    size_t pending;      /* sources still listing */
    struct wk_mcp **mcp; /* owned, one per mcp_servers entry, made at the first listing; NULL
                            for a server refused (mcp_refused says why) */
    struct ag_err *mcp_refused;
    struct wk_mcp_tool **mcp_tools; /* owned listings while LISTING */
    size_t *mcp_ntools;
    struct wk_openapi **apis;       /* owned, one per openapi entry */
    struct ag_err source_err;       /* the first source that failed */
    struct wk_tool_ext_tool *tools; /* owned; READY */
    size_t ntools;
};

struct wk_tool_ext {
    struct wk_http *http;             /* borrowed */
    struct ag_workpool *pool;         /* borrowed */
    const struct wk_sandbox *sandbox; /* borrowed, may be NULL */
    const struct wk_config *options;  /* borrowed, may be NULL */
    pthread_mutex_t mu;
    bool stopped;
    struct wk_tool_ext_set **sets; /* each holds one reference */
    size_t nsets;
};

/* --- names ----------------------------------------------------------------------------------- */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

char *wk_tool_ext_name(const char *prefix, const char *a, const char *b)
{
    char *full = b ? ag_xasprintf("%s__%s__%s", prefix, a, b) : ag_xasprintf("%s__%s", prefix, a);
    bool changed = false;
    for (char *c = full; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!ok) {
            *c = '_';
            changed = true;
        }
    }
    size_t n = strlen(full);
    if (!changed && n <= WK_TOOL_EXT_NAME_MAX)
        return full;
    /* The hash is of the name before it was changed: "a.b" and "a_b" stay apart. */
    char *orig = b ? ag_xasprintf("%s__%s__%s", prefix, a, b) : ag_xasprintf("%s__%s", prefix, a);
    uint32_t h = fnv1a(orig);
    free(orig);
    size_t keep = n > WK_TOOL_EXT_NAME_MAX - 9 ? WK_TOOL_EXT_NAME_MAX - 9 : n;
    char *out = ag_xasprintf("%.*s_%08" PRIx32, (int)keep, full, h);
    free(full);
    return out;
}

/* --- the toolset's lifetime ----------------------------------------------------------------- */

static void ts_free(struct wk_tool_ext_set *ts)
{
    for (size_t i = 0; ts->mcp && i < ts->spec->n_mcp_servers; i++) {
        wk_mcp_free(ts->mcp[i]);
        wk_mcp_tools_free(ts->mcp_tools[i], ts->mcp_ntools[i]);
    }
    free(ts->mcp);
    free(ts->mcp_refused);
    free(ts->mcp_tools);
    free(ts->mcp_ntools);
    for (size_t i = 0; ts->apis && i < ts->spec->n_openapi; i++)
        wk_openapi_free(ts->apis[i]);
    free(ts->apis);
    for (size_t i = 0; i < ts->ntools; i++) {
        free(ts->tools[i].name);
        free(ts->tools[i].description);
        free(ts->tools[i].schema_json);
        free(ts->tools[i].remote);
    }
    free(ts->tools);
    free(ts->waiters);
    agentry__v1__agent_spec__free_unpacked(ts->spec, NULL);
    free(ts->key);
    pthread_mutex_destroy(&ts->mu);
    free(ts);
}

static void ts_ref(struct wk_tool_ext_set *ts)
{
    atomic_fetch_add(&ts->refs, 1);
}

void wk_tool_ext_unref(struct wk_tool_ext_set *ts)
{
    if (ts && atomic_fetch_sub(&ts->refs, 1) == 1)
        ts_free(ts);
}

static void ts_stop(struct wk_tool_ext_set *ts)
{
    pthread_mutex_lock(&ts->mu);
    ts->stopped = true;
    struct wk_mcp **mcp = ts->mcp;
    size_t n = mcp ? ts->spec->n_mcp_servers : 0;
    pthread_mutex_unlock(&ts->mu);
    for (size_t i = 0; i < n; i++)
        if (mcp[i])
            wk_mcp_stop(mcp[i]);
}

static bool has_stdio(const Agentry__V1__AgentSpec *spec)
{
    for (size_t i = 0; i < spec->n_mcp_servers; i++)
        if (spec->mcp_servers[i]->n_command > 0)
            return true;
    return false;
}

/* The key: spec with only mcp_servers and openapi, packed (*spec_len bytes), then, when a stdio
 * server is among them, a NUL and agent_id: a stdio server's process sees its agent's workspace,
 * so it never serves another agent. Owned. */
static uint8_t *spec_key(const Agentry__V1__AgentSpec *spec, const char *agent_id, size_t *len,
                         size_t *spec_len)
{
    Agentry__V1__AgentSpec k = AGENTRY__V1__AGENT_SPEC__INIT;
    k.n_mcp_servers = spec->n_mcp_servers;
    k.mcp_servers = spec->mcp_servers;
    k.n_openapi = spec->n_openapi;
    k.openapi = spec->openapi;
    *spec_len = agentry__v1__agent_spec__get_packed_size(&k);
    size_t id_len = has_stdio(spec) ? strlen(agent_id ? agent_id : "") + 1 : 0;
    *len = *spec_len + id_len;
    uint8_t *buf = ag_xmalloc(*len ? *len : 1);
    agentry__v1__agent_spec__pack(&k, buf);
    if (id_len) {
        buf[*spec_len] = '\0';
        memcpy(buf + *spec_len + 1, agent_id, id_len - 1);
    }
    return buf;
}

static struct wk_tool_ext_set *ts_new(struct wk_tool_ext *x, uint8_t *key_take, size_t len,
                                      size_t spec_len)
{
    struct wk_tool_ext_set *ts = ag_xcalloc(1, sizeof(*ts));
    ts->http = x->http;
    ts->pool = x->pool;
    ts->sandbox = x->sandbox;
    ts->options = x->options;
    ts->key = key_take;
    ts->key_len = len;
    ts->spec_len = spec_len;
    ts->spec = agentry__v1__agent_spec__unpack(NULL, spec_len, key_take);
    if (!ts->spec) /* it was packed a moment ago: only memory can make this fail */
        abort();
    atomic_init(&ts->refs, 1);
    pthread_mutex_init(&ts->mu, NULL);
    return ts;
}

/* --- the cache ------------------------------------------------------------------------------ */

struct wk_tool_ext *wk_tool_ext_new(struct wk_http *http, struct ag_workpool *pool,
                                    const struct wk_sandbox *sandbox,
                                    const struct wk_config *options)
{
    struct wk_tool_ext *x = ag_xcalloc(1, sizeof(*x));
    x->http = http;
    x->pool = pool;
    x->sandbox = sandbox;
    x->options = options;
    pthread_mutex_init(&x->mu, NULL);
    return x;
}

void wk_tool_ext_stop(struct wk_tool_ext *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stopped = true;
    pthread_mutex_unlock(&x->mu);
    /* Once stopped the list never changes (wk_tool_ext_get): read without the lock. */
    for (size_t i = 0; i < x->nsets; i++)
        ts_stop(x->sets[i]);
}

void wk_tool_ext_free(struct wk_tool_ext *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nsets; i++)
        wk_tool_ext_unref(x->sets[i]);
    free(x->sets);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

/* Is ts the own toolset of agent_id (a stdio server's: see spec_key)? */
static bool owned_by(const struct wk_tool_ext_set *ts, const char *agent_id)
{
    size_t n = strlen(agent_id);
    return ts->key_len == ts->spec_len + 1 + n &&
           memcmp(ts->key + ts->spec_len + 1, agent_id, n) == 0;
}

void wk_tool_ext_forget(struct wk_tool_ext *x, const char *agent_id)
{
    if (!x)
        return;
    struct wk_tool_ext_set **gone = NULL;
    size_t ngone = 0;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; !x->stopped && i < x->nsets;) {
        if (!owned_by(x->sets[i], agent_id)) {
            i++;
            continue;
        }
        gone = ag_xrealloc(gone, (ngone + 1) * sizeof(*gone));
        gone[ngone++] = x->sets[i];
        x->sets[i] = x->sets[--x->nsets];
    }
    pthread_mutex_unlock(&x->mu);
    for (size_t i = 0; i < ngone; i++) {
        ts_stop(gone[i]);
        wk_tool_ext_unref(gone[i]);
    }
    free(gone);
}

/* Under x->mu: make room by dropping the least recently used set nobody else holds. */
static struct wk_tool_ext_set *evict_one(struct wk_tool_ext *x)
{
    size_t best = x->nsets;
    for (size_t i = 0; i < x->nsets; i++)
        if (atomic_load(&x->sets[i]->refs) == 1 &&
            (best == x->nsets || x->sets[i]->used_ms < x->sets[best]->used_ms))
            best = i;
    if (best == x->nsets)
        return NULL;
    struct wk_tool_ext_set *ts = x->sets[best];
    x->sets[best] = x->sets[--x->nsets];
    return ts;
}

struct wk_tool_ext_set *wk_tool_ext_get(struct wk_tool_ext *x, const Agentry__V1__AgentSpec *spec,
                                        const char *agent_id)
{
    if (!x || !spec || (spec->n_mcp_servers == 0 && spec->n_openapi == 0))
        return NULL;
    size_t len, spec_len;
    uint8_t *key = spec_key(spec, agent_id, &len, &spec_len);
    struct wk_tool_ext_set *ts = NULL, *evicted = NULL;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < x->nsets && !ts; i++)
        if (x->sets[i]->key_len == len && memcmp(x->sets[i]->key, key, len) == 0)
            ts = x->sets[i];
    if (ts) {
        free(key);
        ts_ref(ts);
    } else {
        ts = ts_new(x, key, len, spec_len); /* the caller's reference */
        /* Every set is in the list, even past the bound when runs hold them all, so that
         * wk_tool_ext_stop reaches every server. Once stopped the list never changes: a new
         * set is born stopped (it will never list, so it has nothing to stop). */
        if (x->stopped) {
            ts->stopped = true; /* no lock: nobody else has it yet */
        } else {
            if (x->nsets >= WK_TOOL_EXT_MAX_SETS)
                evicted = evict_one(x);
            x->sets = ag_xrealloc(x->sets, (x->nsets + 1) * sizeof(*x->sets));
            x->sets[x->nsets++] = ts;
            ts_ref(ts);
        }
    }
    ts->used_ms = ag_now_mono_ms();
    pthread_mutex_unlock(&x->mu);
    if (evicted) {
        ts_stop(evicted);
        wk_tool_ext_unref(evicted);
    }
    return ts;
}

/* --- listing --------------------------------------------------------------------------------- */

static void add_tool(struct wk_tool_ext_set *ts, char *name_take, const char *desc,
                     const char *schema, bool idempotent, bool mcp, size_t source,
                     const char *remote)
{
    ts->tools = ag_xrealloc(ts->tools, (ts->ntools + 1) * sizeof(*ts->tools));
    ts->tools[ts->ntools++] = (struct wk_tool_ext_tool){
        .name = name_take,
        .description = ag_xstrdup(desc),
        .schema_json = ag_xstrdup(schema),
        .idempotent = idempotent,
        .mcp = mcp,
        .source = source,
        .remote = ag_xstrdup(remote),
    };
}

static bool mcp_wanted(const Agentry__V1__McpServer *srv, const char *tool)
{
    if (srv->n_tools == 0)
        return true;
    for (size_t i = 0; i < srv->n_tools; i++)
        if (strcmp(srv->tools[i], tool) == 0)
            return true;
    return false;
}

/* A name McpServer.tools gives that the server does not list: a typo would otherwise leave
 * the agent without the tool and nobody told. NULL if every name is listed. */
static const char *mcp_missing(const Agentry__V1__McpServer *srv, const struct wk_mcp_tool *t,
                               size_t n)
{
    for (size_t i = 0; i < srv->n_tools; i++) {
        size_t k = 0;
        while (k < n && strcmp(t[k].name, srv->tools[i]) != 0)
            k++;
        if (k == n)
            return srv->tools[i];
    }
    return NULL;
}

/* Under ts->mu, every source listed: the tools in spec order, or the reason there are none. */
static void ts_collect(struct wk_tool_ext_set *ts, struct ag_err *err)
{
    for (size_t i = 0; i < ts->spec->n_mcp_servers; i++) {
        const Agentry__V1__McpServer *srv = ts->spec->mcp_servers[i];
        const char *missing = mcp_missing(srv, ts->mcp_tools[i], ts->mcp_ntools[i]);
        if (missing) {
            ag_err_set(err, AG_INVALID_ARGUMENT,
                       "MCP server '%s' lists no tool '%.64s' (spec.mcp_servers[%zu].tools names "
                       "it)",
                       srv->name, missing, i);
            return;
        }
        for (size_t k = 0; k < ts->mcp_ntools[i]; k++) {
            const struct wk_mcp_tool *t = &ts->mcp_tools[i][k];
            if (mcp_wanted(srv, t->name))
                add_tool(ts, wk_tool_ext_name("mcp", srv->name, t->name), t->description,
                         t->schema_json, t->idempotent, true, i, t->name);
        }
        wk_mcp_tools_free(ts->mcp_tools[i], ts->mcp_ntools[i]);
        ts->mcp_tools[i] = NULL;
        ts->mcp_ntools[i] = 0;
    }
    for (size_t i = 0; i < ts->spec->n_openapi; i++) {
        const struct wk_openapi *api = ts->apis[i];
        for (size_t k = 0; k < api->nops; k++)
            add_tool(ts, wk_tool_ext_name(ts->spec->openapi[i]->name, api->ops[k].id, NULL),
                     api->ops[k].description, api->ops[k].schema_json, api->ops[k].idempotent,
                     false, i, api->ops[k].id);
    }
    for (size_t i = 0; i < ts->ntools; i++)
        for (size_t k = 0; k < i; k++)
            if (strcmp(ts->tools[i].name, ts->tools[k].name) == 0) {
                ag_err_set(err, AG_INVALID_ARGUMENT,
                           "two tools are both named '%s' ('%s' and '%s'); list only one of "
                           "them (McpServer.tools or OpenApiSource.operations)",
                           ts->tools[i].name, ts->tools[k].remote, ts->tools[i].remote);
                return;
            }
}

/* One source is done (why: its failure, NULL if it listed). The last one settles the toolset
 * and hands its waiters back (called outside the lock). */
static void ts_source_done(struct wk_tool_ext_set *ts, const struct ag_err *why)
{
    pthread_mutex_lock(&ts->mu);
    if (why && ts->source_err.code == AG_OK)
        ts->source_err = *why;
    struct ts_waiter *w = NULL;
    size_t nw = 0;
    if (--ts->pending == 0) {
        struct ag_err err = ts->source_err;
        if (err.code == AG_OK)
            ts_collect(ts, &err);
        if (err.code != AG_OK) {
            for (size_t i = 0; i < ts->ntools; i++) {
                free(ts->tools[i].name);
                free(ts->tools[i].description);
                free(ts->tools[i].schema_json);
                free(ts->tools[i].remote);
            }
            free(ts->tools);
            ts->tools = NULL;
            ts->ntools = 0;
            ts->failed = err;
            ts->failed_ms = ag_now_mono_ms();
            ag_log_warn("tools.list_failed", "error=%s", ag_log_q(err.msg));
        } else {
            ag_log_info("tools.listed", "tools=%zu mcp_servers=%zu openapi=%zu", ts->ntools,
                        ts->spec->n_mcp_servers, ts->spec->n_openapi);
        }
        ts->state = err.code == AG_OK ? TS_READY : TS_FAILED;
        w = ts->waiters;
        nw = ts->nwaiters;
        ts->waiters = NULL;
        ts->nwaiters = 0;
    }
    pthread_mutex_unlock(&ts->mu);
    for (size_t i = 0; i < nw; i++)
        w[i].fn(w[i].arg);
    free(w);
    wk_tool_ext_unref(ts); /* each source's listing held one */
}

struct mcp_job {
    struct wk_tool_ext_set *ts;
    size_t i;
};

static void on_mcp_listed(void *arg, struct wk_mcp_tool *tools, size_t n, const struct ag_err *err)
{
    struct mcp_job *j = arg;
    struct wk_tool_ext_set *ts = j->ts;
    pthread_mutex_lock(&ts->mu);
    ts->mcp_tools[j->i] = tools;
    ts->mcp_ntools[j->i] = n;
    pthread_mutex_unlock(&ts->mu);
    free(j);
    ts_source_done(ts, err);
}

struct api_job {
    struct wk_tool_ext_set *ts;
    size_t i;
    char *text; /* owned: the document */
    size_t len;
    char *url; /* owned: where it came from, NULL if inline */
};

static void api_parse(void *arg)
{
    struct api_job *j = arg;
    struct wk_tool_ext_set *ts = j->ts;
    const Agentry__V1__OpenApiSource *src = ts->spec->openapi[j->i];
    struct ag_err err = AG_ERR_INIT;
    struct wk_openapi *api = wk_openapi_parse(j->text, j->len, j->url, src, &err);
    if (!api)
        ag_err_prefix(&err, "OpenAPI source '%s'%s%s", src->name, j->url ? " at " : "",
                      j->url ? j->url : "");
    pthread_mutex_lock(&ts->mu);
    ts->apis[j->i] = api;
    pthread_mutex_unlock(&ts->mu);
    free(j->text);
    free(j->url);
    free(j);
    ts_source_done(ts, api ? NULL : &err);
}

static void api_submit(struct api_job *j)
{
    struct ag_err err = AG_ERR_INIT;
    if (ag_workpool_submit(j->ts->pool, api_parse, j, &err) == 0)
        return;
    struct wk_tool_ext_set *ts = j->ts;
    ag_err_prefix(&err, "OpenAPI source '%s'", ts->spec->openapi[j->i]->name);
    free(j->text);
    free(j->url);
    free(j);
    ts_source_done(ts, &err);
}

static void on_doc(void *arg, const struct wk_http_resp *resp, const struct ag_err *err)
{
    struct api_job *j = arg;
    struct ag_err e = AG_ERR_INIT;
    if (err)
        e = *err;
    else if (resp->status != 200)
        ag_err_set(&e, AG_UNAVAILABLE, "the server answered HTTP %ld", resp->status);
    if (e.code != AG_OK) {
        struct wk_tool_ext_set *ts = j->ts;
        ag_err_prefix(&e, "OpenAPI source '%s': cannot fetch '%s'", ts->spec->openapi[j->i]->name,
                      j->url);
        free(j->url);
        free(j);
        ts_source_done(ts, &e);
        return;
    }
    j->text = ag_xmemdup(resp->body, resp->len);
    j->len = resp->len;
    api_submit(j); /* parsing is not for the HTTP thread */
}

static void start_api(struct wk_tool_ext_set *ts, size_t i)
{
    const Agentry__V1__OpenApiSource *src = ts->spec->openapi[i];
    struct api_job *j = ag_xcalloc(1, sizeof(*j));
    *j = (struct api_job){.ts = ts, .i = i};
    if (!src->url || !*src->url) {
        j->len = strlen(src->document ? src->document : "");
        j->text = ag_xmemdup(src->document ? src->document : "", j->len + 1);
        api_submit(j);
        return;
    }
    j->url = ag_xstrdup(src->url);
    struct wk_http_opts o = {
        .method = "GET",
        .url = j->url,
        .deadline_ms = ag_now_mono_ms() + EXT_DOC_TIMEOUT_MS,
        .max_bytes = WK_OPENAPI_MAX_DOC,
        .done = on_doc,
        .arg = j,
    };
    struct ag_err err = AG_ERR_INIT;
    if (wk_http_start(ts->http, &o, &err) != 0) {
        ag_err_prefix(&err, "OpenAPI source '%s': cannot fetch '%s'", src->name, j->url);
        free(j->url);
        free(j);
        ts_source_done(ts, &err);
    }
}

static void start_mcp(struct wk_tool_ext_set *ts, size_t i)
{
    if (!ts->mcp[i]) {
        ts_source_done(ts, &ts->mcp_refused[i]);
        return;
    }
    struct mcp_job *j = ag_xcalloc(1, sizeof(*j));
    *j = (struct mcp_job){ts, i};
    struct ag_err err = AG_ERR_INIT;
    if (wk_mcp_list(ts->mcp[i], 0, on_mcp_listed, j, &err) != 0) {
        free(j);
        ts_source_done(ts, &err);
    }
}

/* --- how a stdio server runs --------------------------------------------------------------- */

/* The node's "mcp.*" options: "privileged" (allow, deny), "ro_paths" (absolute host dirs, ':'
 * between them) and the limits; "timeout" is McpServer.timeout_ms's. */
static const char *const mcp_limit_keys[] = {"cpu_limit", "mem_limit", "procs", NULL};
static const char *const mcp_option_keys[] = {"cpu_limit",  "mem_limit", "procs",
                                              "privileged", "ro_paths",  NULL};

int wk_tool_ext_check_config(const struct wk_config *c, struct ag_err *err)
{
    if (wk_config_get(c, "timeout"))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option 'mcp.timeout': an MCP server's calls take McpServer.timeout_ms");
    if (wk_config_check_keys(c, mcp_option_keys, err) != 0)
        return -1;
    const char *p = wk_config_get(c, "privileged"), *ro = wk_config_get(c, "ro_paths");
    if (p && strcmp(p, "allow") != 0 && strcmp(p, "deny") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option 'mcp.privileged=%s': want allow or deny", p);
    for (const char *at = ro; at && *at;) {
        size_t n = strcspn(at, ":");
        char *path = ag_xasprintf("%.*s", (int)n, at);
        size_t len = strlen(path);
        /* "/" would show the sandbox every workspace on the node */
        bool bad = path[0] != '/' || strspn(path, "/") == len || strstr(path, "/../") ||
                   (len >= 3 && strcmp(path + len - 3, "/..") == 0);
        free(path);
        if (bad)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "option 'mcp.ro_paths': '%.*s' is not an absolute directory other "
                              "than / without '..'; separate paths with ':'",
                              (int)n, at);
        at += n + (at[n] == ':');
    }
    struct wk_config limits = *c;
    struct wk_config_item items[8];
    limits.items = items;
    limits.n = 0;
    for (size_t i = 0; i < c->n && limits.n < 8; i++)
        if (strcmp(c->items[i].key, "privileged") != 0 && strcmp(c->items[i].key, "ro_paths") != 0)
            items[limits.n++] = c->items[i];
    return wk_tool__check_limits(&limits, mcp_limit_keys, err);
}

/* McpServer.settings: "privileged" and "net" booleans, the limits sizes. */
static int mcp_check_settings(const char *settings, bool *privileged, bool *net, struct ag_err *err)
{
    static const char *const keys[] = {"cpu_limit",  "mem_limit", "procs",
                                       "privileged", "net",       NULL};
    cJSON *s = cJSON_Parse(settings && *settings ? settings : "{}");
    int rc = cJSON_IsObject(s) ? 0 : ag_err_set(err, AG_INVALID_ARGUMENT, "not a JSON object");
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        const char *key = i ? "net" : "privileged";
        cJSON *b = cJSON_DetachItemFromObjectCaseSensitive(s, key);
        if (b && !cJSON_IsBool(b))
            rc = ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' must be true or false", key);
        *(i ? net : privileged) = cJSON_IsTrue(b);
        cJSON_Delete(b);
    }
    char *rest = rc == 0 ? cJSON_PrintUnformatted(s) : NULL;
    if (rc == 0)
        rc = wk_tool__check_settings(rest, keys, err);
    cJSON_free(rest);
    cJSON_Delete(s);
    return rc;
}

/* A limit: the node's option or def, lowered by the server's setting; 0 (def or option): none,
 * which a setting may still set. */
static int64_t mcp_limit(const struct wk_tool_ext_set *ts, const char *settings, const char *key,
                         int64_t def)
{
    struct wk_tool__job job = {.ctx = {.config = ts->options, .settings_json = settings}};
    int64_t v = wk_tool__limit(&job, key, def ? def : INT64_MAX);
    return v == INT64_MAX ? 0 : v;
}

/* The node's mcp.ro_paths as a NULL-terminated list (owned), NULL if none. */
static char **mcp_ro_paths(const struct wk_config *options)
{
    const char *ro = wk_config_get(options, "ro_paths");
    char **v = NULL;
    size_t n = 0;
    for (const char *at = ro; at && *at;) {
        size_t len = strcspn(at, ":");
        v = ag_xrealloc(v, (n + 2) * sizeof(*v));
        v[n++] = ag_xasprintf("%.*s", (int)len, at);
        v[n] = NULL;
        at += len + (at[len] == ':');
    }
    return v;
}

/* Server i's client, or NULL with why it may not start on this node: its settings are bad, it
 * asks to be privileged where the node denies that, or it needs the sandbox and there is none. */
static struct wk_mcp *mcp_make(struct wk_tool_ext_set *ts, size_t i, const char *cwd,
                               struct ag_err *why)
{
    const Agentry__V1__McpServer *srv = ts->spec->mcp_servers[i];
    if (srv->n_command == 0)
        return wk_mcp_new(srv, cwd, ts->http, NULL);
    struct wk_mcp_exec e = {.sandbox = ts->sandbox, .limits = wk_sandbox_limits_server()};
    const char *deny = wk_config_get(ts->options, "privileged");
    if (mcp_check_settings(srv->settings, &e.privileged, &e.net, why) != 0) {
        ag_err_prefix(why, "spec.mcp_servers[%zu].settings", i);
        return NULL;
    }
    if (e.privileged && deny && strcmp(deny, "deny") == 0) {
        ag_err_set(why, AG_FAILED_PRECONDITION,
                   "MCP server '%s' may not run unconfined on this node (mcp.privileged=deny); "
                   "drop \"privileged\" from spec.mcp_servers[%zu].settings to run it in the "
                   "sandbox",
                   srv->name, i);
        return NULL;
    }
    if (!e.privileged && !wk_sandbox_ready(ts->sandbox)) {
        ag_err_set(why, AG_FAILED_PRECONDITION, "MCP server '%s' cannot start: %s", srv->name,
                   ts->sandbox ? wk_sandbox_describe(ts->sandbox)
                               : "this node has no sandbox; give the server the settings "
                                 "{\"privileged\": true} to run it with the node's rights");
        return NULL;
    }
    e.limits.cpu_s = mcp_limit(ts, srv->settings, "cpu_limit", e.limits.cpu_s);
    e.limits.mem_bytes = mcp_limit(ts, srv->settings, "mem_limit", e.limits.mem_bytes);
    e.limits.procs = mcp_limit(ts, srv->settings, "procs", e.limits.procs);
    char **ro = mcp_ro_paths(ts->options);
    e.ro_paths = (const char *const *)ro;
    struct wk_mcp *m = wk_mcp_new(srv, cwd, ts->http, &e);
    for (size_t k = 0; ro && ro[k]; k++)
        free(ro[k]);
    free(ro);
    return m;
}

/* Under ts->mu: the clients, made once (their processes start with the first request). */
static void ts_make_sources(struct wk_tool_ext_set *ts, const char *cwd)
{
    size_t nm = ts->spec->n_mcp_servers, na = ts->spec->n_openapi;
    if (!ts->mcp) {
        ts->mcp = ag_xcalloc(nm + 1, sizeof(*ts->mcp));
        ts->mcp_refused = ag_xcalloc(nm + 1, sizeof(*ts->mcp_refused));
        ts->mcp_tools = ag_xcalloc(nm + 1, sizeof(*ts->mcp_tools));
        ts->mcp_ntools = ag_xcalloc(nm + 1, sizeof(*ts->mcp_ntools));
        for (size_t i = 0; i < nm; i++)
            ts->mcp[i] = mcp_make(ts, i, cwd, &ts->mcp_refused[i]);
    }
    for (size_t i = 0; i < nm; i++) { /* a failed listing's leftovers */
        wk_mcp_tools_free(ts->mcp_tools[i], ts->mcp_ntools[i]);
        ts->mcp_tools[i] = NULL;
        ts->mcp_ntools[i] = 0;
    }
    if (!ts->apis)
        ts->apis = ag_xcalloc(na + 1, sizeof(*ts->apis));
    for (size_t i = 0; i < na; i++) {
        wk_openapi_free(ts->apis[i]);
        ts->apis[i] = NULL;
    }
}

int wk_tool_ext_wait(struct wk_tool_ext_set *ts, const char *cwd, wk_tool_ext_ready_fn *fn,
                     void *arg, struct ag_err *err)
{
    pthread_mutex_lock(&ts->mu);
    if (ts->state == TS_READY) {
        pthread_mutex_unlock(&ts->mu);
        return 0;
    }
    if (ts->stopped ||
        (ts->state == TS_FAILED && ag_now_mono_ms() - ts->failed_ms < WK_TOOL_EXT_RETRY_MS)) {
        if (ts->stopped)
            ag_err_set(err, AG_UNAVAILABLE, "the node is stopping: its MCP servers are stopped");
        else
            *err = ts->failed;
        pthread_mutex_unlock(&ts->mu);
        return -1;
    }
    ts->waiters = ag_xrealloc(ts->waiters, (ts->nwaiters + 1) * sizeof(*ts->waiters));
    ts->waiters[ts->nwaiters++] = (struct ts_waiter){fn, arg};
    if (ts->state == TS_LISTING) {
        pthread_mutex_unlock(&ts->mu);
        return 1;
    }
    ts->state = TS_LISTING;
    ts->source_err = (struct ag_err)AG_ERR_INIT;
    ts_make_sources(ts, cwd);
    size_t nm = ts->spec->n_mcp_servers, na = ts->spec->n_openapi;
    /* One more than the sources: this call's own, so that a source failing at once cannot
     * settle the toolset (and call fn) inside this call. */
    ts->pending = nm + na + 1;
    for (size_t i = 0; i < nm + na + 1; i++)
        ts_ref(ts);
    pthread_mutex_unlock(&ts->mu);
    ag_log_info("tools.listing", "mcp_servers=%zu openapi=%zu", nm, na);
    for (size_t i = 0; i < nm; i++)
        start_mcp(ts, i);
    for (size_t i = 0; i < na; i++)
        start_api(ts, i);
    /* This call's share: if it is the last, the waiter (fn, ours) is not called but answered. */
    pthread_mutex_lock(&ts->mu);
    bool last = ts->pending == 1;
    if (last) {
        for (size_t i = 0; i < ts->nwaiters; i++)
            if (ts->waiters[i].fn == fn && ts->waiters[i].arg == arg) {
                ts->waiters[i] = ts->waiters[--ts->nwaiters];
                break;
            }
    }
    pthread_mutex_unlock(&ts->mu);
    ts_source_done(ts, NULL);
    if (!last)
        return 1;
    pthread_mutex_lock(&ts->mu);
    int rc = ts->state == TS_READY ? 0 : -1;
    if (rc != 0)
        *err = ts->failed;
    pthread_mutex_unlock(&ts->mu);
    return rc;
}

const struct wk_tool_ext_tool *wk_tool_ext_tools(const struct wk_tool_ext_set *ts, size_t *n)
{
    pthread_mutex_lock((pthread_mutex_t *)&ts->mu);
    bool ready = ts->state == TS_READY;
    pthread_mutex_unlock((pthread_mutex_t *)&ts->mu);
    *n = ready ? ts->ntools : 0;
    return ready ? ts->tools : NULL;
}

const struct wk_tool_ext_tool *wk_tool_ext_find(const struct wk_tool_ext_set *ts, const char *name)
{
    size_t n;
    const struct wk_tool_ext_tool *t = wk_tool_ext_tools(ts, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

/* --- calls ----------------------------------------------------------------------------------- */

struct refusal {
    wk_tool_done_fn *done;
    void *arg;
    char *output; /* owned */
};

static void on_refusal(void *arg, enum ag_code code)
{
    struct refusal *r = arg;
    (void)code; /* refused before any request: the refusal is the answer either way */
    r->done(r->arg, r->output, true);
    free(r);
}

int wk_tool_ext_call(struct wk_tool_ext_set *ts, const struct wk_tool_ext_tool *t,
                     const struct wk_call_ctx *ctx, const char *args_json, wk_tool_done_fn *done,
                     void *arg, struct ag_err *err)
{
    if (t->mcp)
        return wk_mcp_call(ts->mcp[t->source], t->remote, args_json, ctx, done, arg, err);
    const struct wk_openapi *api = ts->apis[t->source];
    const struct wk_openapi_op *op = wk_openapi_find(api, t->remote);
    struct ag_err why = AG_ERR_INIT;
    cJSON *req = wk_openapi_request(api, op, args_json, &why);
    if (!req) {
        if (!ctx->timers)
            return ag_err_set(err, AG_FAILED_PRECONDITION, "no timers to answer tool '%s'",
                              t->name);
        struct refusal *r = ag_xcalloc(1, sizeof(*r));
        *r = (struct refusal){done, arg, ag_xasprintf("tool '%s': %s", t->name, why.msg)};
        wk_call_after(ctx, 0, on_refusal, r);
        return 0;
    }
    int rc = wk_tool_http_request_call(ctx, req, api->host, done, arg, err);
    cJSON_Delete(req);
    return rc;
}
