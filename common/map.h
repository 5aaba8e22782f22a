/* common/map.h - a hash map from borrowed string keys to void * values, and FNV-1a.
 *
 * Keys are borrowed: the key's memory belongs to the value (an agent's id inside the agent), so
 * it must stay valid and unchanged while the entry is in the map; put with the same key text
 * replaces the stored key pointer too. Values are never NULL (NULL is what get returns on a
 * miss). Open addressing with linear probing and backward-shift deletion (no tombstones), each
 * slot caching the key's hash; the table doubles past a load of 3/4 and never shrinks.
 * Users: the hub's agent tables (by id, sharded: pick the shard with ag_hash_fnv1a_str and keep
 * one map and one lock per shard; by request id), the runner's run table.
 *
 * Threads: not thread-safe; the owner's lock guards the map. Iteration sees every entry once if
 * the map does not change during it; collect what to delete, then delete. */
#ifndef AGENTRY_COMMON_MAP_H
#define AGENTRY_COMMON_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a of n bytes; of a NUL-terminated string. */
uint64_t ag_hash_fnv1a(const void *p, size_t n);
uint64_t ag_hash_fnv1a_str(const char *s);

struct ag_map_slot {
    const char *key; /* borrowed; NULL: the slot is free */
    uint64_t hash;
    void *val;
};

struct ag_map {
    struct ag_map_slot *slots; /* owned; NULL until the first put */
    size_t cap;                /* a power of two, or 0 */
    size_t len;
};

/* Embedded use: init, then release (frees the table, not the keys or values). */
void ag_map_init(struct ag_map *m);
void ag_map_release(struct ag_map *m);

/* The value stored under key, or NULL. */
void *ag_map_get(const struct ag_map *m, const char *key);
/* Store val (not NULL) under key; returns the value it replaced, or NULL if key was new. */
void *ag_map_put(struct ag_map *m, const char *key, void *val);
/* Remove key; returns its value, or NULL if it was absent. */
void *ag_map_del(struct ag_map *m, const char *key);
size_t ag_map_len(const struct ag_map *m);

/* for (struct ag_map_iter it = {0}; ag_map_next(m, &it, &k, &v);) ... k or v may be NULL. */
struct ag_map_iter {
    size_t i;
};
bool ag_map_next(const struct ag_map *m, struct ag_map_iter *it, const char **key, void **val);

#endif
