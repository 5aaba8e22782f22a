/* worker/price.h - the node's price table: what a model's tokens cost, for cost budgets.
 *
 * An operator gives prices as `agentry node join --price PROVIDER/MODEL=IN:OUT`, IN and OUT in US
 * dollars per million input and output tokens (the unit providers publish). An entry without a
 * model ("mock=1:2") prices every model of that provider that has no entry of its own. A model
 * without a price costs 0 and its replies carry no cost (types.proto, Usage.cost_usd).
 *
 * Threads: parsed once before the runner starts, read-only afterwards. */
#ifndef AGENTRY_WORKER_PRICE_H
#define AGENTRY_WORKER_PRICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct wk_price {
    char *model; /* owned: "provider/model" or "provider" */
    double in_per_mtok;
    double out_per_mtok;
};

struct wk_prices {
    struct wk_price *items; /* owned */
    size_t n;
};

/* Parse "MODEL=IN:OUT" items into out (zeroed by the caller). INVALID_ARGUMENT naming the item
 * when malformed, negative or given twice; out then holds nothing to release. */
int wk_prices_parse(struct wk_prices *out, const char *const *items, size_t n, struct ag_err *err);
void wk_prices_release(struct wk_prices *p);
/* The price for spec.model ("openai/gpt-4o"), or NULL if none. p may be NULL. */
const struct wk_price *wk_prices_find(const struct wk_prices *p, const char *model);
/* What in and out tokens cost at price pr, in US dollars. */
double wk_price_cost(const struct wk_price *pr, uint64_t in, uint64_t out);

#endif
