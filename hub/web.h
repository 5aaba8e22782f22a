/* hub/web.h - the dashboard's HTTP side (agentry hub --http-listen ADDR; docs/dashboard.md):
 * the page's files, and the hub's AgentHub API as JSON over HTTP and Trace as Server-Sent
 * Events. A gateway, not a second API: every request becomes a call to the hub's own gRPC port
 * on loopback with the caller's credentials, and gets that call's checks and answer. The one
 * exception is the events of a Trace stream, which come in-process once a Trace call with the
 * caller's credentials has said the caller may read them (hub/web_sse.c).
 *
 * Threads: libmicrohttpd's listening thread and one thread per connection (at most
 * HUB_WEB_MAX_CONNECTIONS): a request, and an SSE stream for its whole life, runs on its
 * connection's thread, blocking on its gRPC call or, for an SSE stream's events, on the stream's
 * own condition variable. hub_web_new/hub_web_stop/hub_web_free are called from the hub's main
 * thread. */
#ifndef AGENTRY_HUB_WEB_H
#define AGENTRY_HUB_WEB_H

#include "common/err.h"
#include "common/rpc/tls.h"

#define HUB_WEB_MAX_CONNECTIONS 256

struct hub_web;

struct hub;

struct hub_web_opts {
    struct hub *hub;                 /* borrowed for the server's life */
    const char *listen;              /* "127.0.0.1:8080" */
    const char *hub_listen;          /* the gRPC --listen, whose host the loopback calls dial */
    int hub_port;                    /* the gRPC port bound */
    const struct rpc_tls_files *tls; /* NULL: plain HTTP, every caller the anonymous admin;
                                        else HTTPS with the hub's certificate, callers sign in
                                        with a bearer token or a client certificate signed by
                                        tls->ca */
};

/* Binds o->listen and reads the TLS files, serving nothing yet: the hub binds every address
 * before it opens its store, so that an address in use fails before anything is logged. NULL
 * with err: INVALID_ARGUMENT for an address that does not parse or TLS files that cannot be
 * read, UNAVAILABLE when the address is in use. */
struct hub_web *hub_web_new(const struct hub_web_opts *o, struct ag_err *err);
/* Serve, once the hub has its store (logged as web.listening). -1 with err (UNAVAILABLE) if the
 * HTTP server does not start, for example a certificate and key that do not parse. */
int hub_web_start(struct hub_web *w, struct ag_err *err);
/* Refuse new requests, cancel the gRPC calls under way, close every connection. Open SSE streams
 * end with the hub's own end of its followers (hub_stop's end_streams, before this). Idempotent. */
void hub_web_stop(struct hub_web *w);
/* hub_web_stop, then free. NULL is a no-op. */
void hub_web_free(struct hub_web *w);

#endif
