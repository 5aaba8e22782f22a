/* common/workpool.h - a small fixed pool of threads for blocking work.
 *
 * Some work has no non-blocking form: file system calls, waiting on a child process. A node runs
 * it here instead of on an agent-loop or timer thread, so a slow disk or a long shell command
 * never stalls other agents. The pool has a fixed number of threads, started by new and joined
 * by free, and a bounded queue of work not yet started (common/queue.h, gauge name "workpool").
 *
 * A full queue refuses new work with AG_RESOURCE_EXHAUSTED naming the bound: the caller turns it
 * into an error for its client, never a silent drop. Work runs in submission order as threads
 * free up; there are no priorities.
 *
 * Shutdown runs, never drops: ag_workpool_free lets the threads run everything already queued,
 * then joins them. So every fn that submit accepted runs exactly once, which lets a caller keep a
 * promise such as "done() is called exactly once" without a second path for dropped work. Work
 * that blocks forever therefore blocks free: work that waits (on a child process, say) must
 * watch its own cancel and deadline.
 *
 * Threads: submit is thread-safe, also from inside a work fn (and while free is draining, from
 * work it runs). new and free belong to the owner; nothing may submit once free has returned. */
#ifndef AGENTRY_COMMON_WORKPOOL_H
#define AGENTRY_COMMON_WORKPOOL_H

#include <stddef.h>

#include "common/err.h"
#include "common/queue.h"

struct ag_workpool;
typedef void ag_work_fn(void *arg);

/* threads >= 1 workers; max_queued: how much work may wait for a thread (0: no bound). -1 with
 * INVALID_ARGUMENT if threads is 0. */
struct ag_workpool *ag_workpool_new(size_t threads, size_t max_queued, struct ag_err *err);
/* Run fn(arg) on a pool thread, later (never inside submit). -1 with AG_RESOURCE_EXHAUSTED
 * ("queue 'workpool' is full: ...") when max_queued items already wait; fn then never runs. */
int ag_workpool_submit(struct ag_workpool *p, ag_work_fn *fn, void *arg, struct ag_err *err);
/* Runs all queued work, then joins the threads and frees the pool. NULL is a no-op. */
void ag_workpool_free(struct ag_workpool *p);
/* The queue's gauge (waiting work), readable from any thread without the pool's lock. */
const struct ag_queue_gauge *ag_workpool_gauge(const struct ag_workpool *p);

#endif
