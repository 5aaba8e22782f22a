/* common/strbuf.h - a growable NUL-terminated text buffer (the node's MCP results, OpenAPI
 * URLs, and an MCP server's stdio lines are built in it).
 *
 * Zero-initialise it ({0}); s is NULL until the first add, then always NUL-terminated. The
 * caller owns s (free() it, or keep it). Not thread-safe: one owner at a time. */
#ifndef AGENTRY_COMMON_STRBUF_H
#define AGENTRY_COMMON_STRBUF_H

#include <stddef.h>

struct ag_strbuf {
    char *s;
    size_t len, cap;
};

/* Append n bytes of p (growing the buffer; allocation failure aborts, as ag_xrealloc). */
void ag_strbuf_add(struct ag_strbuf *b, const char *p, size_t n);
/* Remove the first n (<= len) bytes: a consumed line of a stream read into the buffer. */
void ag_strbuf_drop(struct ag_strbuf *b, size_t n);

#endif
