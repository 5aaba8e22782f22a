/* common/utf8.h - UTF-8 validation. protobuf-c does not check that `string` fields are UTF-8,
 * but clients in other languages do when they decode, so anything the hub stores and later
 * serves must be checked when it comes in. */
#ifndef AGENTRY_COMMON_UTF8_H
#define AGENTRY_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
bool ag_utf8_valid(const char *s, size_t n);
/* The same for a NUL-terminated string; NULL counts as valid (an empty field). */
bool ag_utf8_valid_str(const char *s);
/* The longest prefix of s[0, n) that does not end inside a multi-byte sequence: where to cut
 * text to at most n bytes without splitting a character, or how much of a buffer that may end
 * mid-character holds whole ones. Only an incomplete last sequence is dropped (at most 3
 * bytes); what comes before it is not checked. */
size_t ag_utf8_prefix(const char *s, size_t n);

#endif
