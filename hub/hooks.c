/* hub/hooks.c - the observer list (see hooks.h): a fixed array, written before the hub serves
 * and only read after, so running it is lock-free. */
#include <string.h>

#include "hub/hooks.h"

void hub_hooks_init(struct hub_hooks *hk)
{
    memset(hk, 0, sizeof(*hk));
}

int hub_hooks_add(struct hub_hooks *hk, unsigned kinds, hub_hook_fn *fn, void *arg,
                  struct ag_err *err)
{
    if (hk->n == HUB_HOOKS_MAX)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "cannot add a hook: all %d slots are taken; raise HUB_HOOKS_MAX",
                          HUB_HOOKS_MAX);
    hk->row[hk->n].kinds = kinds;
    hk->row[hk->n].fn = fn;
    hk->row[hk->n].arg = arg;
    hk->n++;
    return 0;
}

void hub_hooks_run(const struct hub_hooks *hk, const struct hub_hook_event *ev)
{
    for (size_t i = 0; i < hk->n; i++)
        if (hk->row[i].kinds & ev->kind)
            hk->row[i].fn(hk->row[i].arg, ev);
}
