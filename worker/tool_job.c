/* worker/tool_job.c - running a builtin tool's blocking work on the work pool, with the call
 * rules of worker/call.h (see tool_internal.h).
 *
 * A job's life: STARTING (inside run(), until the pool took it), QUEUED (in the pool's queue),
 * RUNNING (its work on a pool thread), DONE (done() called). Exactly one path moves it to DONE
 * and calls done(): the pool thread after the work, or a timer (a cancel, or the deadline) while
 * it is still QUEUED; the state is one atomic, so the race between them has one winner. A job
 * that a timer finished is skipped when the pool reaches it (it holds its queue slot until
 * then). refs counts who may still touch the job (the pool item, the deadline timer, each cancel
 * timer, run() itself); the last one frees it.
 *
 * Threads: run() on the caller's thread; the work on a pool thread; timers on the timer thread;
 * the cancel listener on the cancelling thread (it only pokes wake_fd and queues a timer). */
#include "worker/tool_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/timers.h"
#include "common/workpool.h"
#include "common/xalloc.h"

enum { JOB_STARTING, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
    struct wk_tool__job pub;
    wk_tool__work_fn *work;
    wk_tool_done_fn *done;
    void *arg;
    char *args_json; /* owned until the work parses it */
    atomic_int state;
    atomic_int refs;
    atomic_bool cancel_seen; /* the listener ran, or the call was cancelled before it listened */
};

static void job_unref(struct job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1)
        free(j);
}

/* What only the work needed, released by whoever moved the job to DONE, once the listener is
 * gone: a deadline timer may keep the struct for long after, but not an fd. */
static void job_drop(struct job *j)
{
    if (j->pub.wake_fd >= 0)
        close(j->pub.wake_fd);
    j->pub.wake_fd = -1;
    cJSON_Delete(j->pub.args);
    j->pub.args = NULL;
    free(j->args_json);
    j->args_json = NULL;
}

static bool job_claim(struct job *j, int from)
{
    int expected = from;
    return atomic_compare_exchange_strong(&j->state, &expected, JOB_DONE);
}

static char *over_message(const struct job *j, enum ag_code code)
{
    return ag_xasprintf("tool '%s' %s", j->pub.tool->name,
                        code == AG_CANCELLED ? "was cancelled" : "timed out");
}

/* A cancel or the deadline while the job is still queued: finish it now. */
static void finish_early(struct job *j, enum ag_code code)
{
    if (job_claim(j, JOB_QUEUED)) {
        wk_cancel_unlisten(j->pub.ctx.cancel, j);
        job_drop(j);
        j->done(j->arg, over_message(j, code), true);
    }
}

static void on_cancel_timer(void *arg)
{
    finish_early(arg, AG_CANCELLED);
    job_unref(arg);
}

static void on_deadline_timer(void *arg)
{
    finish_early(arg, AG_DEADLINE_EXCEEDED);
    job_unref(arg);
}

/* Under the cancel handle's lock: quick, and never done(). */
static void on_cancel(void *arg)
{
    struct job *j = arg;
    atomic_store(&j->cancel_seen, true);
    if (j->pub.wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(j->pub.wake_fd, &one, sizeof(one));
        (void)n; /* an eventfd write fails only when its counter would overflow */
    }
    atomic_fetch_add(&j->refs, 1);
    ag_timers_add(j->pub.ctx.timers, 0, on_cancel_timer, j);
}

enum ag_code wk_tool__job_over(const struct wk_tool__job *job)
{
    if (wk_cancel_requested(job->ctx.cancel))
        return AG_CANCELLED;
    if (job->ctx.deadline_ms > 0 && ag_now_mono_ms() >= job->ctx.deadline_ms)
        return AG_DEADLINE_EXCEEDED;
    return AG_OK;
}

static char *job_work(struct job *j, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    *is_error = true;
    enum ag_code over = wk_tool__job_over(&j->pub);
    if (over != AG_OK)
        return over_message(j, over);
    j->pub.args = cJSON_Parse(j->args_json);
    if (!cJSON_IsObject(j->pub.args))
        return ag_xasprintf("tool '%s' takes a JSON object of arguments: %s", j->pub.tool->name,
                            j->pub.tool->schema_json);
    if (wk_workspace_open(&j->pub.ws, j->pub.ctx.workspace, &err) != 0)
        return ag_xasprintf("tool '%s': %s", j->pub.tool->name, err.msg);
    char *out = j->work(&j->pub, is_error);
    wk_workspace_close(&j->pub.ws);
    over = wk_tool__job_over(&j->pub);
    if (over != AG_OK && !*is_error) {
        char *wrapped = ag_xasprintf("tool '%s' %s after it had finished; its output:\n%s",
                                     j->pub.tool->name,
                                     over == AG_CANCELLED ? "was cancelled" : "timed out", out);
        free(out);
        *is_error = true;
        return wrapped;
    }
    return out;
}

static void job_run(void *arg)
{
    struct job *j = arg;
    int expected = JOB_QUEUED, starting = JOB_STARTING;
    if (atomic_compare_exchange_strong(&j->state, &expected, JOB_RUNNING) ||
        atomic_compare_exchange_strong(&j->state, &starting, JOB_RUNNING)) {
        bool is_error = true;
        char *out = job_work(j, &is_error);
        atomic_store(&j->state, JOB_DONE);
        wk_cancel_unlisten(j->pub.ctx.cancel, j);
        job_drop(j);
        j->done(j->arg, out, is_error);
    }
    job_unref(j);
}

int wk_tool__job_start(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                       const char *args_json, wk_tool__work_fn *work, bool wake,
                       wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    if (!ctx || !ctx->timers)
        return ag_err_set(err, AG_INTERNAL, "cannot run tool '%s': no timers given", t->name);
    if (!ctx->workpool)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot run tool '%s': this node gives tools no work pool", t->name);
    if (!ctx->workspace)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot run tool '%s': this node gives agents no workspace directory",
                          t->name);
    struct job *j = ag_xcalloc(1, sizeof(*j));
    j->pub.tool = t;
    j->pub.ctx = *ctx;
    j->pub.ws.root_fd = -1;
    j->pub.wake_fd = wake ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    if (wake && j->pub.wake_fd < 0) {
        free(j);
        return ag_err_set(err, AG_UNAVAILABLE, "cannot run tool '%s': eventfd: %s", t->name,
                          strerror(errno));
    }
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->args_json = ag_xstrdup(args_json ? args_json : "");
    /* STARTING until submit succeeded, so that no timer can call done() for a run() that
     * fails. Refs: the pool item's, the deadline timer's, and run()'s own until it returns. */
    atomic_init(&j->state, JOB_STARTING);
    atomic_init(&j->refs, 2 + (ctx->deadline_ms > 0));
    atomic_init(&j->cancel_seen, false);
    if (!wk_cancel_listen(ctx->cancel, on_cancel, j))
        atomic_store(&j->cancel_seen, true);
    if (ag_workpool_submit(ctx->workpool, job_run, j, err) != 0) {
        atomic_store(&j->state, JOB_DONE);
        wk_cancel_unlisten(ctx->cancel, j);
        job_drop(j);
        job_unref(j);
        if (ctx->deadline_ms > 0)
            job_unref(j);
        job_unref(j);
        ag_err_prefix(err, "cannot run tool '%s'", t->name);
        return -1;
    }
    /* From here done() may have been called: ctx's pointers are not touched again. A cancel
     * timer that ran while the job was STARTING did nothing, so one more is queued. */
    int expected = JOB_STARTING;
    if (atomic_compare_exchange_strong(&j->state, &expected, JOB_QUEUED) &&
        atomic_load(&j->cancel_seen)) {
        atomic_fetch_add(&j->refs, 1);
        ag_timers_add(ctx->timers, 0, on_cancel_timer, j);
    }
    if (ctx->deadline_ms > 0) {
        int64_t left = ctx->deadline_ms - ag_now_mono_ms();
        ag_timers_add(ctx->timers, left > 0 ? left : 0, on_deadline_timer, j);
    }
    job_unref(j);
    return 0;
}
