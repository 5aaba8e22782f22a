/* common/err.h - the one error convention of the code base.
 *
 * A function that can fail returns int: 0 on success, -1 on failure, and fills a caller-owned
 * struct ag_err (which may be NULL when the caller does not care why). ag_err_set() returns -1 so
 * a failure reads `return ag_err_set(err, AG_NOT_FOUND, "no agent '%s'", id);`.
 *
 * enum ag_code has the values of grpc_status_code, so the RPC layer maps an error to a gRPC status
 * without a table. Messages follow git: what failed first, the subject in quotes, then what to do.
 * The fixed buffer keeps the error path allocation-free. Add context on the way up with
 * ag_err_prefix(); log once, where the error is handled. */
#ifndef AGENTRY_COMMON_ERR_H
#define AGENTRY_COMMON_ERR_H

#include <stdarg.h>

enum ag_code {
    AG_OK = 0,
    AG_CANCELLED = 1,
    AG_UNKNOWN = 2,
    AG_INVALID_ARGUMENT = 3,
    AG_DEADLINE_EXCEEDED = 4,
    AG_NOT_FOUND = 5,
    AG_ALREADY_EXISTS = 6,
    AG_PERMISSION_DENIED = 7,
    AG_RESOURCE_EXHAUSTED = 8,
    AG_FAILED_PRECONDITION = 9,
    AG_ABORTED = 10,
    AG_OUT_OF_RANGE = 11,
    AG_UNIMPLEMENTED = 12,
    AG_INTERNAL = 13,
    AG_UNAVAILABLE = 14,
    AG_DATA_LOSS = 15,
    AG_UNAUTHENTICATED = 16,
};

struct ag_err {
    enum ag_code code;
    char msg[256];
};

/* clang-format 14 spreads a macro body that starts with a brace over one line per token. */
/* clang-format off */
#define AG_ERR_INIT {AG_OK, {0}}
/* clang-format on */

/* Fill err (if not NULL) and return -1. */
int ag_err_set(struct ag_err *err, enum ag_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend "<context>: " to the message, keeping the code. */
void ag_err_prefix(struct ag_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ag_err_clear(struct ag_err *err);
/* "NOT_FOUND", "UNAVAILABLE", ... as gRPC spells them. */
const char *ag_code_name(enum ag_code code);

#endif
