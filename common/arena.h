/* common/arena.h - a bump allocator whose memory is freed as a whole.
 *
 * Each RPC call and each agent step gets one, for decoded protobufs, JSON and scratch strings, so
 * the hot path does not malloc per field and cannot leak per field. An arena may start on a
 * caller-provided buffer (for example inside a pooled call object); it grows by malloc'd blocks
 * when that is exhausted. Not thread-safe: an arena belongs to whoever owns its call or step. */
#ifndef AGENTRY_COMMON_ARENA_H
#define AGENTRY_COMMON_ARENA_H

#include <stddef.h>

struct ag_arena_block;

struct ag_arena {
    char *ptr;   /* next free byte */
    char *end;   /* end of the current block */
    void *first; /* borrowed initial buffer, may be NULL */
    size_t first_size;
    struct ag_arena_block *extra; /* owned: blocks allocated after `first` ran out */
};

/* buf may be NULL (size 0): the first allocation then mallocs a block. */
void ag_arena_init(struct ag_arena *a, void *buf, size_t size);
/* Never NULL; aligned for any type. */
void *ag_arena_alloc(struct ag_arena *a, size_t n);
void *ag_arena_calloc(struct ag_arena *a, size_t n);
char *ag_arena_strdup(struct ag_arena *a, const char *s);
char *ag_arena_strndup(struct ag_arena *a, const char *s, size_t n);
char *ag_arena_printf(struct ag_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Forget every allocation; keeps the initial buffer, frees extra blocks. */
void ag_arena_reset(struct ag_arena *a);
/* Free extra blocks; the arena must be re-initialised before reuse. */
void ag_arena_release(struct ag_arena *a);

#endif
