/* hub/retention.h - delete the agents that ended long ago (hub_opts.retention_ms;
 * docs/operations.md, "Retention").
 *
 * Ended means failed or killed, as Temporal's retention applies to closed workflows only: an idle
 * or yielded agent is a conversation waiting for its next input, and stays. Only roots are
 * swept: a sub-agent goes with its root, as DeleteAgent deletes it, and a root whose tree is not
 * at rest (a child still running) is left for the next sweep.
 *
 * Each sweep deletes, through DeleteAgent's own path (hub_rpc_delete_tree), the roots failed or
 * killed more than retention_ms ago, oldest first: in batches of HUB_RETENTION_BATCH, a few
 * deletes in flight at a time, a pause between batches, at most HUB_RETENTION_SWEEP_MAX per
 * sweep. Nothing of a sweep is kept but in the store: a hub stopped half-way finds what is left
 * at its next sweep. Only a leader runs a hub (hub/cluster.c), so a standby never sweeps.
 *
 * Threads: the retention thread (started by hub_retention_start when retention_ms > 0) sleeps
 * between sweeps and reads the store synchronously; the deletes end on the timer or the store's
 * completion thread, which hand their count back under the retention's lock. */
#ifndef AGENTRY_HUB_RETENTION_H
#define AGENTRY_HUB_RETENTION_H

#include <stdint.h>

#define HUB_RETENTION_BATCH 100       /* roots read, then deleted, at a time */
#define HUB_RETENTION_INFLIGHT 4      /* deletes of a batch in flight at once */
#define HUB_RETENTION_PAUSE_MS 200    /* between two batches: live writes go first */
#define HUB_RETENTION_SWEEP_MAX 10000 /* roots looked at per sweep; the rest wait for the next */
/* A sweep every minute, or every half retention when that is shorter (not more often than once
 * a second). */
#define HUB_RETENTION_INTERVAL_MS 60000
/* A retention below this is allowed (tests use seconds) but logged as a warning at start. */
#define HUB_RETENTION_SHORT_MS (3600LL * 1000)
#define HUB_RETENTION_MAX_MS (36500LL * 24 * 3600 * 1000) /* 100 years */

struct hub;

/* Start the retention thread if h->opts.retention_ms > 0 (its first sweep at once). */
void hub_retention_start(struct hub *h);
/* Stop sweeping, wait for the deletes in flight, join the thread: before the store closes. A
 * no-op if it never started. */
void hub_retention_stop(struct hub *h);

#endif
