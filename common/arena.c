/* common/arena.c - see arena.h. Blocks double in size up to 64 KiB; a request larger than a block
 * gets a block of its own, so one big message never wastes a chain of small ones. */
#include "common/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct ag_arena_block {
    struct ag_arena_block *next;
    size_t size;
    max_align_t data[];
};

#define ARENA_ALIGN (sizeof(max_align_t))
#define ARENA_MIN_BLOCK 1024u
#define ARENA_MAX_BLOCK (64u * 1024u)

void ag_arena_init(struct ag_arena *a, void *buf, size_t size)
{
    a->first = buf;
    a->first_size = buf ? size : 0;
    a->ptr = buf;
    a->end = buf ? (char *)buf + size : NULL;
    a->extra = NULL;
}

static char *align_up(char *p)
{
    uintptr_t u = (uintptr_t)p;
    return (char *)((u + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1));
}

void *ag_arena_alloc(struct ag_arena *a, size_t n)
{
    if (n == 0)
        n = 1;
    char *p = a->ptr ? align_up(a->ptr) : NULL;
    if (p && p + n <= a->end) {
        a->ptr = p + n;
        return p;
    }
    size_t last = a->extra ? a->extra->size : ARENA_MIN_BLOCK / 2;
    size_t bsize = last * 2 > ARENA_MAX_BLOCK ? ARENA_MAX_BLOCK : last * 2;
    if (bsize < n)
        bsize = n;
    struct ag_arena_block *b = ag_xmalloc(sizeof(*b) + bsize);
    b->size = bsize;
    b->next = a->extra;
    a->extra = b;
    a->ptr = (char *)b->data + n;
    a->end = (char *)b->data + bsize;
    return b->data;
}

void *ag_arena_calloc(struct ag_arena *a, size_t n)
{
    void *p = ag_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *ag_arena_strndup(struct ag_arena *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = ag_arena_alloc(a, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ag_arena_strdup(struct ag_arena *a, const char *s)
{
    return ag_arena_strndup(a, s, SIZE_MAX);
}

char *ag_arena_printf(struct ag_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = ag_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(p, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void ag_arena_release(struct ag_arena *a)
{
    struct ag_arena_block *b = a->extra;
    while (b) {
        struct ag_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->extra = NULL;
}

void ag_arena_reset(struct ag_arena *a)
{
    ag_arena_release(a);
    ag_arena_init(a, a->first, a->first_size);
}
