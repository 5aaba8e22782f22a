/* common/xalloc.c - see xalloc.h. */
#include "common/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ag_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *ag_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *ag_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *ag_xstrdup(const char *s)
{
    return ag_xmemdup(s, strlen(s) + 1);
}

char *ag_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = ag_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *ag_xmemdup(const void *p, size_t n)
{
    void *q = ag_xmalloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

char *ag_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return s;
}

void ag_xthread_create(pthread_t *t, void *(*fn)(void *), void *arg, const char *what)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0) {
        fprintf(stderr, "fatal: cannot create the %s thread: %s\n", what, strerror(rc));
        abort();
    }
}
