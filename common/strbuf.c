/* common/strbuf.c - see common/strbuf.h. Capacity doubles past what is needed, so n appends
 * cost O(total length). */
#include "common/strbuf.h"

#include <string.h>

#include "common/xalloc.h"

void ag_strbuf_add(struct ag_strbuf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = ag_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void ag_strbuf_drop(struct ag_strbuf *b, size_t n)
{
    if (!b->s) /* empty, never grown: memmove may not be given NULL, even for 0 bytes */
        return;
    memmove(b->s, b->s + n, b->len - n);
    b->len -= n;
    b->s[b->len] = '\0';
}
