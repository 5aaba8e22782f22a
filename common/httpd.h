/* common/httpd.h - what the HTTP servers (GET /metrics, the hub's dashboard) share: the listening
 * socket. It is bound here rather than by libmicrohttpd so that an address in use fails with a
 * message naming it, as the gRPC listen does, and so port 0 works for tests. Any thread. */
#ifndef AGENTRY_COMMON_HTTPD_H
#define AGENTRY_COMMON_HTTPD_H

#include "common/err.h"

/* A bound, listening socket for addr ("127.0.0.1:9464", "[::1]:9464", ":9464" for every
 * interface; port 0 for any), its port in *port. -1 with err: INVALID_ARGUMENT for an address that
 * does not parse, UNAVAILABLE when it cannot be bound (in use); what names the server in the
 * message ("cannot serve <what> on '<addr>': Address already in use"). */
int ag_httpd_listen(const char *addr, const char *what, int *port, struct ag_err *err);

#endif
