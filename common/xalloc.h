/* common/xalloc.h - allocation that never returns NULL.
 * Out of memory is not a recoverable error for a daemon that must not lose data silently: we print
 * one line and abort, as Redis's zmalloc and git's xmalloc do. */
#ifndef AGENTRY_COMMON_XALLOC_H
#define AGENTRY_COMMON_XALLOC_H

#include <stddef.h>

#define AG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *ag_xmalloc(size_t n);
void *ag_xcalloc(size_t count, size_t n);
void *ag_xrealloc(void *p, size_t n);
char *ag_xstrdup(const char *s);
char *ag_xstrndup(const char *s, size_t n);
void *ag_xmemdup(const void *p, size_t n);
char *ag_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
