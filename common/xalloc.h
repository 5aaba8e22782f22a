/* common/xalloc.h - allocation (and thread creation) that never fails.
 * Out of memory is not a recoverable error for a daemon that must not lose data silently: we print
 * one line and abort, as Redis's zmalloc and git's xmalloc do. A thread that cannot be created
 * (EAGAIN: out of memory or of the process's thread limit) is treated the same way where a caller
 * could not carry on without it. */
#ifndef AGENTRY_COMMON_XALLOC_H
#define AGENTRY_COMMON_XALLOC_H

#include <pthread.h>
#include <stddef.h>

#define AG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *ag_xmalloc(size_t n);
void *ag_xcalloc(size_t count, size_t n);
void *ag_xrealloc(void *p, size_t n);
char *ag_xstrdup(const char *s);
char *ag_xstrndup(const char *s, size_t n);
void *ag_xmemdup(const void *p, size_t n);
/* pthread_create with default attributes; aborts with one line naming `what` if it fails. */
void ag_xthread_create(pthread_t *t, void *(*fn)(void *), void *arg, const char *what);
char *ag_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
