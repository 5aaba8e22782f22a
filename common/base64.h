/* common/base64.h - base64 with the standard alphabet and padding (RFC 4648 section 4), as
 * etcd's JSON gateway and protobuf's JSON mapping encode bytes. Pure functions, any thread. */
#ifndef AGENTRY_COMMON_BASE64_H
#define AGENTRY_COMMON_BASE64_H

#include <stddef.h>

/* An owned NUL-terminated encoding of the n bytes at p. */
char *ag_base64_encode(const void *p, size_t n);
/* Decode s into an owned buffer of *out_len bytes (NUL-terminated beyond them): 0, or -1 if s is
 * not padded base64. urlsafe also accepts '-' and '_' for '+' and '/' (protobuf's JSON input). */
int ag_base64_decode(const char *s, int urlsafe, char **out, size_t *out_len);

#endif
