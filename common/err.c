/* common/err.c - struct ag_err helpers. See err.h for the convention. */
#include "common/err.h"

#include <stdio.h>
#include <string.h>

int ag_err_set(struct ag_err *err, enum ag_code code, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = code;
    return -1;
}

void ag_err_prefix(struct ag_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t hlen = (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1;
    size_t cap = sizeof(err->msg), old = strnlen(err->msg, cap - 1);
    if (hlen + 2 >= cap)
        return;
    /* Keep as much of the old message as still fits behind "<head>: ". */
    if (old > cap - 1 - hlen - 2)
        old = cap - 1 - hlen - 2;
    memmove(err->msg + hlen + 2, err->msg, old);
    memcpy(err->msg, head, hlen);
    err->msg[hlen] = ':';
    err->msg[hlen + 1] = ' ';
    err->msg[hlen + 2 + old] = '\0';
}

void ag_err_clear(struct ag_err *err)
{
    if (!err)
        return;
    err->code = AG_OK;
    err->msg[0] = '\0';
}

const char *ag_code_name(enum ag_code code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((unsigned)code < sizeof(names) / sizeof(names[0]))
        return names[code];
    return "UNKNOWN";
}
