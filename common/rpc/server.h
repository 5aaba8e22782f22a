/* common/rpc/server.h - a gRPC server on the core API: a fixed pool of threads, one completion
 * queue each, registered methods, calls as small state machines.
 *
 * With rpc_server_opts.tls it serves mutual TLS only (tls.h), and each call exposes the
 * client's verified certificate (rpc_call_peer_cert).
 *
 * Methods are rows of a table (path, kind, handlers). A call object is allocated from a per-method
 * pool with `state_size` bytes of zeroed handler state and a call arena; nothing is malloc'd per
 * call in steady state beyond what gRPC needs for the messages themselves.
 *
 * Lifecycle of a call, as the handler sees it:
 *   authorize(call, m)   the server's hook (rpc_server_opts), first, on the call's CQ thread:
 *                        a refusal ends the call with its status before on_call.
 *   on_call(call, req)   on the call's CQ thread; req (unary / server-streaming) is borrowed for
 *                        the duration of on_call (decode it into rpc_call_arena(call)).
 *   on_recv(call, msg)   bidi only, after rpc_call_recv(); msg borrowed for the call; NULL means
 *                        the client half-closed or the stream broke.
 *   on_sent(call)        a send finished and the send queue is empty (server-streaming handlers
 *                        produce the next messages here).
 *   on_close(call, cancelled)  exactly once, when the call is over: the client cancelled or went
 *                        away (cancelled = true), its deadline passed (true), or the status was
 *                        delivered (false). Methods with on_close learn of a cancellation at once;
 *                        without it, unary methods only learn at their reply. After on_close
 *                        returns, the rpc layer drops its own reference.
 *
 * Threads: rpc_call_reply_take, rpc_call_send_take, rpc_call_finish, rpc_call_recv, rpc_call_ref
 * and rpc_call_unref may be called from any thread (for example a store thread completing a
 * write). A handler that passes the call to another thread must hold a reference
 * (rpc_call_ref) until that thread is done with it; after on_close, every operation on the call
 * is a harmless no-op. Callbacks never run with the call's lock held, and the callbacks of one
 * call never run concurrently (all its completions arrive on one CQ, drained by one thread). */
#ifndef AGENTRY_COMMON_RPC_SERVER_H
#define AGENTRY_COMMON_RPC_SERVER_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/arena.h"
#include "common/err.h"
#include "common/rpc/tls.h"

struct rpc_server;
struct rpc_call;

enum rpc_kind { RPC_UNARY, RPC_SERVER_STREAM, RPC_BIDI };

typedef void rpc_on_call_fn(struct rpc_call *call, grpc_byte_buffer *req);
typedef void rpc_on_recv_fn(struct rpc_call *call, grpc_byte_buffer *msg);
typedef void rpc_on_sent_fn(struct rpc_call *call);
typedef void rpc_on_close_fn(struct rpc_call *call, bool cancelled);

struct rpc_method;
/* Runs on the call's CQ thread before on_call, for every method: -1 with err (for example
 * PERMISSION_DENIED) ends the call with that status and the handler never sees it. It may attach
 * what it learnt about the caller with rpc_call_set_auth. */
typedef int rpc_authorize_fn(struct rpc_call *call, const struct rpc_method *m, struct ag_err *err);

struct rpc_method {
    const char *path; /* "/agentry.v1.AgentHub/Ping" */
    enum rpc_kind kind;
    size_t state_size;        /* handler state per call, zeroed at each call */
    unsigned preposted;       /* requests kept posted per CQ; 0 = 8 */
    size_t max_request_bytes; /* larger messages get INVALID_ARGUMENT; 0 = server default */
    unsigned send_queue_cap;  /* streaming: queued messages per call; 0 = server default */
    rpc_on_call_fn *on_call;
    rpc_on_recv_fn *on_recv;   /* bidi only */
    rpc_on_sent_fn *on_sent;   /* may be NULL */
    rpc_on_close_fn *on_close; /* may be NULL */
    void *arg; /* the handlers' own (rpc_call_method_arg), e.g. a table several servers share */
};

/* A dispatched call is over (its object is being released): its method's index in the table
 * given to rpc_server_new, the status it ended with (AG_CANCELLED if none was sent: the client
 * went away) and the nanoseconds since it was dispatched. For metrics: it runs on whichever
 * thread dropped the call's last reference, and must be quick and must not block. */
typedef void rpc_call_done_fn(void *user, size_t method, enum ag_code code, int64_t ns);

struct rpc_server_opts {
    const char *listen;              /* "127.0.0.1:7070", "0.0.0.0:7070", "[::]:0" */
    unsigned threads;                /* CQ threads; 0 = number of CPUs (at least 2) */
    size_t max_request_bytes;        /* default per-method limit; 0 = 4 MiB */
    unsigned send_queue_cap;         /* queued messages per streaming call; 0 = 64 */
    void *user;                      /* returned by rpc_call_user(), e.g. struct hub * */
    const struct rpc_tls_files *tls; /* NULL: plaintext; else mutual TLS only (tls.h) */
    rpc_authorize_fn *authorize;     /* NULL: every call is let through */
    rpc_call_done_fn *call_done;     /* NULL: nobody counts calls */
};

/* Creates the server and binds its listening address, exclusively (no SO_REUSEPORT): NULL with
 * err (UNAVAILABLE, saying why) if the address is in use or invalid. Nothing is served until
 * rpc_server_start; connections wait in the listen backlog. */
struct rpc_server *rpc_server_new(const struct rpc_server_opts *o, const struct rpc_method *methods,
                                  size_t nmethods, struct ag_err *err);
/* Start serving on the bound address: start the threads and post the requests. */
void rpc_server_start(struct rpc_server *s);
/* The bound port (useful with port 0), known once rpc_server_new returned. */
int rpc_server_port(const struct rpc_server *s);
/* Stop accepting calls, give in-flight calls grace_ms to end, then cancel the rest. Returns when
 * gRPC reports every call ended and every on_close has returned. Handlers may still hold
 * references (e.g. store writes in flight): release them, then call rpc_server_free. */
void rpc_server_stop(struct rpc_server *s, int grace_ms);
/* Waits until every call object is released, then destroys the server, CQs and threads. */
void rpc_server_free(struct rpc_server *s);

/* With TLS: new handshakes re-read the certificate files (SIGHUP). A no-op without TLS. */
void rpc_server_reload_tls(struct rpc_server *s);

/* Live calls being handled right now (for metrics and tests). */
unsigned rpc_server_active_calls(struct rpc_server *s);

void *rpc_call_state(struct rpc_call *c);
void *rpc_call_user(struct rpc_call *c);
/* The arg of the call's method row. */
void *rpc_call_method_arg(struct rpc_call *c);
struct ag_arena *rpc_call_arena(struct rpc_call *c);
/* "ipv4:127.0.0.1:51234"; owned by the call. */
const char *rpc_call_peer(struct rpc_call *c);
/* The client's verified certificate (PEM, *len bytes, not NUL-terminated) from the call's TLS
 * session; NULL on a plaintext server. Owned by the call, valid until its last reference. */
const char *rpc_call_peer_cert(struct rpc_call *c, size_t *len);
/* True if the call came over mutual TLS (the server has TLS). */
bool rpc_call_tls(struct rpc_call *c);
/* The call's method path, "/agentry.v1.AgentHub/Spawn". */
const char *rpc_call_method(struct rpc_call *c);
/* The value of the request's metadata key (lowercase, e.g. "authorization"), NUL-terminated in
 * the call's arena, or NULL if absent. */
const char *rpc_call_metadata(struct rpc_call *c, const char *key);
/* What the authorize callback learnt about the caller; NULL if nothing was attached. */
void rpc_call_set_auth(struct rpc_call *c, const void *auth);
const void *rpc_call_auth(struct rpc_call *c);

void rpc_call_ref(struct rpc_call *c);
void rpc_call_unref(struct rpc_call *c);

/* Unary: send resp and status OK in one batch. Takes resp (even on failure). */
void rpc_call_reply_take(struct rpc_call *c, grpc_byte_buffer *resp);
/* Send the status (after any queued messages). code AG_OK for success; msg may be NULL. */
void rpc_call_finish(struct rpc_call *c, enum ag_code code, const char *msg);
/* Finish with err's code and message. */
void rpc_call_fail(struct rpc_call *c, const struct ag_err *err);
/* Streaming: queue msg. Takes msg. -1 if the queue is full (RESOURCE_EXHAUSTED) or the call is
 * over (CANCELLED); the message is then dropped. */
int rpc_call_send_take(struct rpc_call *c, grpc_byte_buffer *msg, struct ag_err *err);
/* Messages queued or in flight. */
unsigned rpc_call_send_pending(struct rpc_call *c);
/* Bidi: read the next message; on_recv follows. One read at a time. */
void rpc_call_recv(struct rpc_call *c);
/* True once the call is over or its status has been requested. */
bool rpc_call_done(struct rpc_call *c);

#endif
