/* tests/unit/tool_call.h - calling a tool as a run does, for the tool tests: a done() that
 * records what it got and whether it came from inside run(), and a wait for it that checks
 * worker/tool.h's rule (done() exactly once, never inside run()).
 *
 * Header-only (static) so each tool test includes it without a library of its own. The wait is
 * a condvar wait with a deadline; nothing sleeps. */
#ifndef AGENTRY_TESTS_TOOL_CALL_H
#define AGENTRY_TESTS_TOOL_CALL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/clock.h"
#include "worker/tool.h"

/* What a call's done() got. */
struct tool_call_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;       /* how often done() came */
    bool inside_run; /* done() came from inside run() at least once */
    bool is_error;
    char *output; /* owned: the last output */
};

/* Set around run(), so that done() can tell whether it came from inside it. */
static _Thread_local bool tool_call_in_run;

static void tool_call_result_init(struct tool_call_result *r)
{
    *r = (struct tool_call_result){.calls = 0};
    pthread_mutex_init(&r->mu, NULL);
    ag_cond_init_mono(&r->cv);
}

static void tool_call_on_done(void *arg, char *output, bool is_error)
{
    struct tool_call_result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->inside_run = r->inside_run || tool_call_in_run;
    free(r->output);
    r->output = output;
    r->is_error = is_error;
    r->calls++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* t->run with r as done()'s argument; its return value. */
static int tool_call_start(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args,
                           struct tool_call_result *r, struct ag_err *err)
{
    tool_call_in_run = true;
    int rc = t->run(t, ctx, args, tool_call_on_done, r, err);
    tool_call_in_run = false;
    return rc;
}

/* Waits up to seconds for done(), asserts it came exactly once and not inside run(), releases
 * r and returns the output (owned), its is_error in *is_error. */
static char *tool_call_finish(struct tool_call_result *r, int seconds, bool *is_error)
{
    int64_t deadline = ag_now_mono_ns() + (int64_t)seconds * 1000000000LL;
    pthread_mutex_lock(&r->mu);
    while (r->calls == 0 && ag_cond_wait_until(&r->cv, &r->mu, deadline))
        ;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(r->calls, 1);
    assert_false(r->inside_run);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    *is_error = r->is_error;
    return r->output;
}

#endif
