/* worker/warm.h - conversations a node keeps between an agent's turns, so that the agent's next
 * turn on this node starts without the hub sending (or anyone decoding) its history.
 *
 * After a turn ends with a checkpoint, its run leaves the conversation here, tagged with the
 * turn's epoch. The hub tells a node in Assignment.state_epoch that it may start from the
 * conversation as of the end of that epoch's turn; wk_warm_take hands it over only for that exact
 * epoch (anything else is stale: the agent ran elsewhere since, or the turn's end was never
 * stored). The store is bounded in bytes and forgets the least recently used conversation first:
 * a miss costs one StateRequest to the hub, never a wrong conversation.
 *
 * Threads: every function is thread-safe (one mutex; no callbacks, nothing slow under it). */
#ifndef AGENTRY_WORKER_WARM_H
#define AGENTRY_WORKER_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/model.h"

struct wk_warm;

/* max_bytes: what the conversations may take together (their text), 0: keep none. */
struct wk_warm *wk_warm_new(size_t max_bytes);
void wk_warm_free(struct wk_warm *w); /* NULL is a no-op */

/* What messages weigh against the bound: their text's bytes. A caller that keeps a conversation
 * turn after turn adds its new messages' weight to what wk_warm_take said, rather than weighing
 * the whole conversation again each turn. */
size_t wk_warm_msgs_bytes(const struct wk_msg *msgs, size_t n);
/* Keep agent_id's conversation as of the end of its turn with this epoch: takes msgs[0, n) (the
 * array too), weighing `bytes` (wk_warm_msgs_bytes), replacing what was kept for the agent. Frees
 * them at once if they alone are over the bound. */
void wk_warm_put(struct wk_warm *w, const char *agent_id, uint64_t epoch, struct wk_msg *msgs,
                 size_t n, size_t bytes);
/* Hand over (and forget) the conversation kept for agent_id at exactly this epoch: true with
 * *msgs (owned by the caller; NULL when empty), *n and *bytes (its weight). false if there is
 * none; a conversation kept at another epoch is forgotten too (it can never be asked for
 * again). */
bool wk_warm_take(struct wk_warm *w, const char *agent_id, uint64_t epoch, struct wk_msg **msgs,
                  size_t *n, size_t *bytes);

/* Forget what is kept of agent_id (it was deleted): true if there was something. */
bool wk_warm_forget(struct wk_warm *w, const char *agent_id);

/* Bytes and conversations kept now. */
size_t wk_warm_bytes(struct wk_warm *w);
size_t wk_warm_count(struct wk_warm *w);

#endif
