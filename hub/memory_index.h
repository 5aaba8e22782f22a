/* hub/memory_index.h - memory_search's vectors: per (agent, memory namespace), the entries that
 * have a vector, held in memory and searched by cosine similarity, top k.
 *
 * Owns: a cache of "sets", one per (agent, namespace) searched recently. A set is loaded from the
 * store on its first search (hub_store_read_memory, VECTORS: the reader thread, never a CQ
 * thread), kept in step with every put and delete the store has made durable
 * (hub_memory_index_put/_delete, called from the store's completion thread), and dropped least
 * recently searched first when the cache passes its byte budget. A search is an exact scan of
 * the set on the index's own threads (a small work pool), so a CQ thread never computes it.
 *
 * Scale: built for an agent with up to HUB_MEMORY_MAX_ENTRIES (100,000) vectors of a few hundred
 * dimensions: an exact scan costs O(entries x dims) per search (docs/memory.md has the figures).
 * Past that, an approximate index would replace the scan (HNSW, or pgvector's in PostgreSQL);
 * the tool's contract (cosine, top k, min_score) would not change.
 *
 * Consistency: a put or delete is applied to a loaded set after it is durable, so a search never
 * finds what the store does not hold, but may miss a put whose done() has not yet run. One that
 * lands while the set is loading is replayed on it once loaded (put and delete are idempotent,
 * so seeing one twice is harmless).
 *
 * Threads: every function is thread-safe. Locks: mu (the set table, the LRU, the budget, each
 * set's state, waiters and pending updates), then a set's rw (its entries: searches read,
 * updates write). mu is never taken with a set's rw held. */
#ifndef AGENTRY_HUB_MEMORY_INDEX_H
#define AGENTRY_HUB_MEMORY_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub_store;
struct hub_memory_index;

/* One result of a search. */
struct hub_memory_hit {
    char *key; /* owned */
    float score;
};

/* hits: owned by the callee (hub_memory_hits_free), best first; n may be 0. On error hits is NULL
 * and err set. Called on an index thread or the store's reader thread, never inside search(). */
typedef void hub_memory_search_fn(void *arg, struct hub_memory_hit *hits, size_t n,
                                  const struct ag_err *err);

/* cap_bytes: the cache's budget (vectors, keys and their bookkeeping); threads: the search pool. */
struct hub_memory_index *hub_memory_index_new(struct hub_store *st, size_t cap_bytes,
                                              size_t threads, struct ag_err *err);
/* Finishes the searches under way (their callbacks run) and refuses new ones (UNAVAILABLE).
 * Call before the store is closed; updates are still taken until free. */
void hub_memory_index_stop(struct hub_memory_index *x);
/* After the store is closed (no update can come). NULL is a no-op. */
void hub_memory_index_free(struct hub_memory_index *x);

/* The k entries of (agent_id, ns) whose vectors are most like q (cosine, same dims only) and
 * score at least min_score. 0: cb will run once; -1 with err: it will not (RESOURCE_EXHAUSTED
 * when too many searches wait, UNAVAILABLE when stopped). */
int hub_memory_index_search(struct hub_memory_index *x, const char *agent_id, const char *ns,
                            const float *q, uint32_t dims, size_t k, float min_score,
                            hub_memory_search_fn *cb, void *arg, struct ag_err *err);

/* A durable put (v NULL or dims 0: the entry has no vector now) or delete. */
void hub_memory_index_put(struct hub_memory_index *x, const char *agent_id, const char *ns,
                          const char *key, const float *v, uint32_t dims);
void hub_memory_index_delete(struct hub_memory_index *x, const char *agent_id, const char *ns,
                             const char *key);

void hub_memory_hits_free(struct hub_memory_hit *hits, size_t n);

/* The dot product of two vectors of dims floats: the cosine, as the index keeps vectors scaled
 * to length 1 (a zero vector stays zero: it matches nothing). Exposed for tests and the bench. */
float hub_memory_dot(const float *a, const float *b, uint32_t dims);
/* v scaled to length 1 in place (a zero vector left as it is). */
void hub_memory_normalize(float *v, uint32_t dims);

#endif
