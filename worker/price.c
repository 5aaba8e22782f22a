/* worker/price.c - the node's price table (see price.h). */
#include "worker/price.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static int parse_amount(const char *s, const char *end, double *out)
{
    if (s == end)
        return -1;
    char buf[64];
    size_t len = (size_t)(end - s);
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *stop = NULL;
    errno = 0;
    double v = strtod(buf, &stop);
    if (errno || *stop || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

int wk_prices_parse(struct wk_prices *out, const char *const *items, size_t n, struct ag_err *err)
{
    out->items = n ? ag_xcalloc(n, sizeof(*out->items)) : NULL;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        const char *it = items[i];
        const char *eq = strrchr(it, '=');
        const char *colon = eq ? strchr(eq, ':') : NULL;
        struct wk_price pr = {0};
        if (!eq || eq == it || !colon || parse_amount(eq + 1, colon, &pr.in_per_mtok) != 0 ||
            parse_amount(colon + 1, colon + strlen(colon), &pr.out_per_mtok) != 0) {
            wk_prices_release(out);
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "--price '%s': expected PROVIDER[/MODEL]=IN:OUT, US dollars per "
                              "million input and output tokens, e.g. openai/gpt-4o=2.5:10",
                              it);
        }
        pr.model = ag_xstrndup(it, (size_t)(eq - it));
        for (size_t k = 0; k < out->n; k++) {
            if (strcmp(out->items[k].model, pr.model) == 0) {
                ag_err_set(err, AG_INVALID_ARGUMENT, "--price: model '%s' is priced twice",
                           pr.model);
                free(pr.model);
                wk_prices_release(out);
                return -1;
            }
        }
        out->items[out->n++] = pr;
    }
    return 0;
}

void wk_prices_release(struct wk_prices *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].model);
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

const struct wk_price *wk_prices_find(const struct wk_prices *p, const char *model)
{
    if (!p || !model)
        return NULL;
    const struct wk_price *provider_wide = NULL;
    size_t plen = strcspn(model, "/");
    for (size_t i = 0; i < p->n; i++) {
        const char *m = p->items[i].model;
        if (strcmp(m, model) == 0)
            return &p->items[i];
        if (strlen(m) == plen && strncmp(m, model, plen) == 0)
            provider_wide = &p->items[i];
    }
    return provider_wide;
}

double wk_price_cost(const struct wk_price *pr, uint64_t in, uint64_t out)
{
    return ((double)in * pr->in_per_mtok + (double)out * pr->out_per_mtok) / 1e6;
}
