/* hub/usage_history.h - tokens, cost and model calls over the last 24 hours, by namespace and
 * model, in one-minute buckets: what GetUsageHistory answers (the dashboard's heat-map).
 *
 * Counted from the events the hub stores, as Usage is (hub/usage.h): a MODEL_REQUEST is a model
 * call, a MODEL_REPLY's payload "usage" brings its tokens and cost. Fed by a hook on stored
 * events (hub/rpc_usage.c), so an event is counted once, when its write commits; the events a
 * hub reads back at load are not (memory only, from the hub's start, as hub.proto says).
 *
 * Bounds: a ring of HUB_USAGE_HISTORY_MINUTES one-minute slots, each slot remembering which
 * minute it holds (a slot is zeroed for every key when a newer minute takes it; an event older
 * than the minute its slot holds is dropped). At most HUB_USAGE_HISTORY_KEYS keys: the first
 * HUB_USAGE_HISTORY_KEYS - 1 (namespace, model) pairs seen get a key each; usage of any later
 * pair is counted under one shared key, model "other" with no namespace. That key is shown only
 * to a caller who sees every namespace and asks for all of them: it mixes namespaces, so showing
 * it to anyone else would leak another namespace's usage. A namespace-scoped caller does not see
 * its own share of it either (the price of never leaking). Memory: about 46 KiB per key.
 *
 * Threads: one mutex (mu) guards everything; add and query hold it briefly (a query copies at
 * most 64 x 1440 cells). The hook calls add on the store's completion thread with an agent's
 * lock held: mu comes after an agent's lock and the agent table's in the hub's lock order
 * (hub/hub_internal.h), and nothing is taken under it. */
#ifndef AGENTRY_HUB_USAGE_HISTORY_H
#define AGENTRY_HUB_USAGE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/err.h"

#define HUB_USAGE_HISTORY_MINUTES 1440 /* 24 hours */
#define HUB_USAGE_HISTORY_KEYS 64
#define HUB_USAGE_HISTORY_MODEL_MAX 128 /* AgentSpec.model's bound */
#define HUB_USAGE_HISTORY_OTHER "other"

struct hub_usage_history;

struct hub_usage_history *hub_usage_history_new(void);
void hub_usage_history_free(struct hub_usage_history *uh); /* NULL is a no-op */

/* Count what happened at t_ns (Unix nanoseconds) for an agent of namespace ns using model. A
 * model longer than HUB_USAGE_HISTORY_MODEL_MAX is cut there. */
void hub_usage_history_add(struct hub_usage_history *uh, const char *ns, const char *model,
                           int64_t t_ns, uint64_t input_tokens, uint64_t output_tokens,
                           uint64_t cost_nano_usd, uint32_t model_calls);
/* Count one stored event of `kind` (AGENTRY__V1__EVENT_KIND__*): a MODEL_REQUEST as a call, a
 * MODEL_REPLY's payload "usage" (input_tokens, output_tokens, cost_usd); anything else is
 * nothing. payload need not be NUL-terminated. */
void hub_usage_history_count_event(struct hub_usage_history *uh, const char *ns, const char *model,
                                   int kind, const char *payload, size_t len, int64_t t_ns);

/* The buckets a request asks for, ending with the minute of now_ns. */
struct hub_usage_window {
    uint32_t bucket_seconds; /* a multiple of 60 */
    uint32_t buckets;
    int64_t start_minute; /* Unix minutes: the first bucket's first minute */
};
/* The window for GetUsageHistoryRequest's bucket_seconds and buckets (0: 60 for each): -1 with
 * INVALID_ARGUMENT, saying what is allowed, when bucket_seconds is not a multiple of 60 or is
 * above 3600, or the window is longer than 24 hours. */
int hub_usage_history_window(uint32_t bucket_seconds, uint32_t buckets, int64_t now_ns,
                             struct hub_usage_window *w, struct ag_err *err);

/* One model's usage per bucket, oldest first (arrays of the window's `buckets`, in the arena). */
struct hub_usage_series {
    const char *model; /* in the arena */
    uint64_t *input_tokens, *output_tokens, *cost_nano_usd;
    uint32_t *model_calls;
    uint64_t total_tokens; /* input and output over the window */
};

/* May the caller see namespace ns? ("" is the shared "other" key: only a caller who sees every
 * namespace should say yes to it.) */
typedef bool hub_usage_history_sees_fn(void *arg, const char *ns);

/* The models with any usage in w among the keys of namespace ns ("" or NULL: every namespace)
 * that sees admits, namespaces merged, most tokens first (then by model name): how many, with
 * *out in the arena. */
size_t hub_usage_history_query(struct hub_usage_history *uh, const struct hub_usage_window *w,
                               const char *ns, hub_usage_history_sees_fn *sees, void *arg,
                               struct ag_arena *ar, struct hub_usage_series **out);

#endif
