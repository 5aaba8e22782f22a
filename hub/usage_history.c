/* hub/usage_history.c - the per-minute ring of usage by namespace and model (see
 * usage_history.h for the bounds, the "other" key and the lock). */
#include "hub/usage_history.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/types.pb-c.h"
#include "common/xalloc.h"
#include "hub/limits.h"
#include "hub/usage.h"

#define NS_PER_MINUTE INT64_C(60000000000)
#define OVERFLOW_KEY (HUB_USAGE_HISTORY_KEYS - 1)

struct cell {
    uint64_t input_tokens, output_tokens, cost_nano_usd;
    uint32_t model_calls;
};

struct key {
    char ns[HUB_NAMESPACE_MAX + 1]; /* "" for the shared "other" key */
    char model[HUB_USAGE_HISTORY_MODEL_MAX + 1];
    struct cell *cells; /* owned, [HUB_USAGE_HISTORY_MINUTES]; NULL while the key is unused */
};

struct hub_usage_history {
    pthread_mutex_t mu;
    /* The Unix minute each slot holds (slot = minute % MINUTES), -1 for none yet. */
    int64_t minute[HUB_USAGE_HISTORY_MINUTES];
    struct key keys[HUB_USAGE_HISTORY_KEYS]; /* [0, nkeys) in use, plus OVERFLOW_KEY once used */
    size_t nkeys;
};

struct hub_usage_history *hub_usage_history_new(void)
{
    struct hub_usage_history *uh = ag_xcalloc(1, sizeof(*uh));
    pthread_mutex_init(&uh->mu, NULL);
    for (size_t i = 0; i < HUB_USAGE_HISTORY_MINUTES; i++)
        uh->minute[i] = -1;
    return uh;
}

void hub_usage_history_free(struct hub_usage_history *uh)
{
    if (!uh)
        return;
    for (size_t i = 0; i < HUB_USAGE_HISTORY_KEYS; i++)
        free(uh->keys[i].cells);
    pthread_mutex_destroy(&uh->mu);
    free(uh);
}

/* The key of (ns, model), made if there is room, else the shared one. Lock held. */
static struct key *key_of(struct hub_usage_history *uh, const char *ns, const char *model)
{
    for (size_t i = 0; i < uh->nkeys; i++)
        if (strcmp(uh->keys[i].ns, ns) == 0 &&
            strncmp(uh->keys[i].model, model, HUB_USAGE_HISTORY_MODEL_MAX) == 0)
            return &uh->keys[i];
    struct key *k = uh->nkeys < OVERFLOW_KEY ? &uh->keys[uh->nkeys++] : &uh->keys[OVERFLOW_KEY];
    if (!k->cells) {
        bool shared = k == &uh->keys[OVERFLOW_KEY];
        snprintf(k->ns, sizeof(k->ns), "%s", shared ? "" : ns);
        snprintf(k->model, sizeof(k->model), "%s", shared ? HUB_USAGE_HISTORY_OTHER : model);
        k->cells = ag_xcalloc(HUB_USAGE_HISTORY_MINUTES, sizeof(*k->cells));
    }
    return k;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

void hub_usage_history_add(struct hub_usage_history *uh, const char *ns, const char *model,
                           int64_t t_ns, uint64_t input_tokens, uint64_t output_tokens,
                           uint64_t cost_nano_usd, uint32_t model_calls)
{
    if (t_ns < 0 || (!input_tokens && !output_tokens && !cost_nano_usd && !model_calls))
        return;
    int64_t m = t_ns / NS_PER_MINUTE;
    size_t slot = (size_t)(m % HUB_USAGE_HISTORY_MINUTES);
    pthread_mutex_lock(&uh->mu);
    if (uh->minute[slot] > m) { /* more than 24 hours older than what the ring holds */
        pthread_mutex_unlock(&uh->mu);
        return;
    }
    if (uh->minute[slot] < m) {
        uh->minute[slot] = m;
        for (size_t i = 0; i < HUB_USAGE_HISTORY_KEYS; i++)
            if (uh->keys[i].cells)
                uh->keys[i].cells[slot] = (struct cell){0};
    }
    struct cell *c = &key_of(uh, ns ? ns : "", model && *model ? model : "mock")->cells[slot];
    c->input_tokens = sat_add(c->input_tokens, input_tokens);
    c->output_tokens = sat_add(c->output_tokens, output_tokens);
    c->cost_nano_usd = sat_add(c->cost_nano_usd, cost_nano_usd);
    c->model_calls = model_calls > UINT32_MAX - c->model_calls ? UINT32_MAX
                                                               : c->model_calls + model_calls;
    pthread_mutex_unlock(&uh->mu);
}

void hub_usage_history_count_event(struct hub_usage_history *uh, const char *ns, const char *model,
                                   int kind, const char *payload, size_t len, int64_t t_ns)
{
    if (kind == AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REQUEST) {
        hub_usage_history_add(uh, ns, model, t_ns, 0, 0, 0, 1);
        return;
    }
    if (kind != AGENTRY__V1__EVENT_KIND__EVENT_KIND_MODEL_REPLY)
        return;
    uint64_t in, out, nano;
    hub_usage_payload_read(kind, payload, len, &in, &out, &nano);
    hub_usage_history_add(uh, ns, model, t_ns, in, out, nano, 0);
}

int hub_usage_history_window(uint32_t bucket_seconds, uint32_t buckets, int64_t now_ns,
                             struct hub_usage_window *w, struct ag_err *err)
{
    uint32_t bs = bucket_seconds ? bucket_seconds : 60, n = buckets ? buckets : 60;
    if (bs % 60 != 0 || bs > 3600)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid bucket_seconds %u: want a multiple of 60 up to 3600 (0 means "
                          "60)",
                          bucket_seconds);
    if ((uint64_t)n * (bs / 60) > HUB_USAGE_HISTORY_MINUTES)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid window: %u buckets of %u seconds pass the 24 hours the hub "
                          "keeps; ask for at most %u buckets of %u seconds",
                          n, bs, HUB_USAGE_HISTORY_MINUTES / (bs / 60), bs);
    w->bucket_seconds = bs;
    w->buckets = n;
    w->start_minute = now_ns / NS_PER_MINUTE + 1 - (int64_t)n * (bs / 60);
    return 0;
}

/* Add key k's cells in w to s (arrays already allocated). Lock held. */
static void sum_key(const struct hub_usage_history *uh, const struct key *k,
                    const struct hub_usage_window *w, struct hub_usage_series *s)
{
    int64_t per = w->bucket_seconds / 60;
    for (uint32_t b = 0; b < w->buckets; b++)
        for (int64_t m = w->start_minute + b * per; m < w->start_minute + (b + 1) * per; m++) {
            size_t slot = (size_t)(m % HUB_USAGE_HISTORY_MINUTES);
            if (m < 0 || uh->minute[slot] != m)
                continue;
            const struct cell *c = &k->cells[slot];
            s->input_tokens[b] = sat_add(s->input_tokens[b], c->input_tokens);
            s->output_tokens[b] = sat_add(s->output_tokens[b], c->output_tokens);
            s->cost_nano_usd[b] = sat_add(s->cost_nano_usd[b], c->cost_nano_usd);
            s->model_calls[b] += c->model_calls;
            s->total_tokens = sat_add(s->total_tokens, sat_add(c->input_tokens, c->output_tokens));
        }
}

static struct hub_usage_series *series_of(struct hub_usage_series *v, size_t *n, const char *model,
                                          uint32_t buckets, struct ag_arena *ar)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i].model, model) == 0)
            return &v[i];
    struct hub_usage_series *s = &v[(*n)++];
    s->model = ag_arena_strdup(ar, model);
    s->input_tokens = ag_arena_calloc(ar, buckets * sizeof(uint64_t));
    s->output_tokens = ag_arena_calloc(ar, buckets * sizeof(uint64_t));
    s->cost_nano_usd = ag_arena_calloc(ar, buckets * sizeof(uint64_t));
    s->model_calls = ag_arena_calloc(ar, buckets * sizeof(uint32_t));
    s->total_tokens = 0;
    return s;
}

static bool used(const struct hub_usage_series *s, uint32_t buckets)
{
    for (uint32_t b = 0; b < buckets; b++)
        if (s->input_tokens[b] || s->output_tokens[b] || s->cost_nano_usd[b] || s->model_calls[b])
            return true;
    return false;
}

static int by_tokens_desc(const void *pa, const void *pb)
{
    const struct hub_usage_series *a = pa, *b = pb;
    if (a->total_tokens != b->total_tokens)
        return a->total_tokens > b->total_tokens ? -1 : 1;
    return strcmp(a->model, b->model);
}

size_t hub_usage_history_query(struct hub_usage_history *uh, const struct hub_usage_window *w,
                               const char *ns, hub_usage_history_sees_fn *sees, void *arg,
                               struct ag_arena *ar, struct hub_usage_series **out)
{
    struct hub_usage_series *v = ag_arena_calloc(ar, HUB_USAGE_HISTORY_KEYS * sizeof(*v));
    size_t n = 0;
    pthread_mutex_lock(&uh->mu);
    for (size_t i = 0; i < HUB_USAGE_HISTORY_KEYS; i++) {
        const struct key *k = &uh->keys[i];
        if (!k->cells || (ns && *ns && strcmp(k->ns, ns) != 0) || !sees(arg, k->ns))
            continue;
        sum_key(uh, k, w, series_of(v, &n, k->model, w->buckets, ar));
    }
    pthread_mutex_unlock(&uh->mu);
    size_t kept = 0; /* a key with no usage in the window is no series */
    for (size_t i = 0; i < n; i++)
        if (used(&v[i], w->buckets))
            v[kept++] = v[i];
    qsort(v, kept, sizeof(*v), by_tokens_desc);
    *out = v;
    return kept;
}
