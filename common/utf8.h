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

#endif
