/* common/map.c - the string-keyed hash map and FNV-1a (see map.h).
 *
 * Invariant (linear probing): an entry sits at its home slot (hash & (cap - 1)) or after it with
 * no free slot in between. Deletion shifts later entries of the run back instead of leaving a
 * tombstone, which keeps lookups short however many deletes happen (agents come and go all day
 * in the hub's tables). */
#include "common/map.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define FNV_OFFSET UINT64_C(14695981039346656037)
#define FNV_PRIME UINT64_C(1099511628211)
#define MAP_MIN_CAP 16

uint64_t ag_hash_fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

uint64_t ag_hash_fnv1a_str(const char *s)
{
    uint64_t h = FNV_OFFSET;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return h;
}

void ag_map_init(struct ag_map *m)
{
    m->slots = NULL;
    m->cap = m->len = 0;
}

void ag_map_release(struct ag_map *m)
{
    free(m->slots);
    ag_map_init(m);
}

/* The slot holding key, or the free slot where it would go. cap > 0. */
static size_t find(const struct ag_map *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct ag_map_slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
            return i;
    }
}

static void grow(struct ag_map *m)
{
    struct ag_map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : MAP_MIN_CAP;
    m->slots = ag_xcalloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            m->slots[find(m, old[i].key, old[i].hash)] = old[i];
    free(old);
}

void *ag_map_get(const struct ag_map *m, const char *key)
{
    if (m->len == 0)
        return NULL;
    const struct ag_map_slot *s = &m->slots[find(m, key, ag_hash_fnv1a_str(key))];
    return s->key ? s->val : NULL;
}

void *ag_map_put(struct ag_map *m, const char *key, void *val)
{
    /* Grow before the table is 3/4 full: linear probing slows down sharply past that. */
    if ((m->len + 1) * 4 > m->cap * 3)
        grow(m);
    uint64_t h = ag_hash_fnv1a_str(key);
    struct ag_map_slot *s = &m->slots[find(m, key, h)];
    void *old = s->key ? s->val : NULL;
    if (!s->key)
        m->len++;
    *s = (struct ag_map_slot){.key = key, .hash = h, .val = val};
    return old;
}

void *ag_map_del(struct ag_map *m, const char *key)
{
    if (m->len == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, key, ag_hash_fnv1a_str(key));
    if (!m->slots[i].key)
        return NULL;
    void *val = m->slots[i].val;
    m->len--;
    /* Backward shift: move each later entry of the run into the hole unless its home slot lies
     * cyclically in (hole, j], where it must stay to remain reachable. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        m->slots[i] = m->slots[j];
        i = j;
    }
    m->slots[i] = (struct ag_map_slot){0};
    return val;
}

size_t ag_map_len(const struct ag_map *m)
{
    return m->len;
}

bool ag_map_next(const struct ag_map *m, struct ag_map_iter *it, const char **key, void **val)
{
    for (; it->i < m->cap; it->i++) {
        const struct ag_map_slot *s = &m->slots[it->i];
        if (!s->key)
            continue;
        if (key)
            *key = s->key;
        if (val)
            *val = s->val;
        it->i++;
        return true;
    }
    return false;
}
