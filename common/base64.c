/* common/base64.c - see base64.h. */
#include "common/base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ag_base64_encode(const void *data, size_t n)
{
    const unsigned char *p = data;
    char *out = ag_xmalloc((n + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int value_of(char ch, int urlsafe)
{
    if (urlsafe && ch == '-')
        return 62;
    if (urlsafe && ch == '_')
        return 63;
    const char *at = ch ? strchr(alphabet, ch) : NULL;
    return at ? (int)(at - alphabet) : -1;
}

int ag_base64_decode(const char *s, int urlsafe, char **out, size_t *out_len)
{
    size_t n = strlen(s);
    if (n % 4)
        return -1;
    size_t pad = n && s[n - 1] == '=' ? (n > 1 && s[n - 2] == '=' ? 2 : 1) : 0;
    char *buf = ag_xmalloc(n / 4 * 3 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = last && k >= 4 - pad ? 0 : value_of(s[i + k], urlsafe);
            if (d < 0) {
                free(buf);
                return -1;
            }
            v = v << 6 | (uint32_t)d;
        }
        buf[len++] = (char)(v >> 16);
        if (!last || pad < 2)
            buf[len++] = (char)(v >> 8 & 0xff);
        if (!last || pad < 1)
            buf[len++] = (char)(v & 0xff);
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}
