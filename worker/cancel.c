/* worker/cancel.c - the cancel handle (see worker/cancel.h). */
#include "worker/cancel.h"

#include <stddef.h>

void wk_cancel_init(struct wk_cancel *c)
{
    pthread_mutex_init(&c->mu, NULL);
    c->requested = false;
    c->fn = NULL;
    c->arg = NULL;
}

void wk_cancel_release(struct wk_cancel *c)
{
    pthread_mutex_destroy(&c->mu);
}

void wk_cancel_request(struct wk_cancel *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->requested = true;
    wk_cancel_fn *fn = c->fn;
    c->fn = NULL;
    if (fn)
        fn(c->arg); /* under mu: see the top of cancel.h */
    pthread_mutex_unlock(&c->mu);
}

bool wk_cancel_requested(struct wk_cancel *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&c->mu);
    bool r = c->requested;
    pthread_mutex_unlock(&c->mu);
    return r;
}

bool wk_cancel_listen(struct wk_cancel *c, wk_cancel_fn *fn, void *arg)
{
    if (!c)
        return true;
    pthread_mutex_lock(&c->mu);
    bool ok = !c->requested;
    if (ok) {
        c->fn = fn;
        c->arg = arg;
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

void wk_cancel_unlisten(struct wk_cancel *c, void *arg)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->arg == arg) {
        c->fn = NULL;
        c->arg = NULL;
    }
    pthread_mutex_unlock(&c->mu);
}
