/* common/rpc/client.h - gRPC client helpers over the core API.
 *
 * A channel is one HTTP/2 connection (lazily connected, keepalive pings on). Blocking helpers use a
 * private pluck completion queue per call, so any thread may use them on a shared channel. The
 * node's bidi stream and the benchmark drive their own completion queues with
 * rpc_channel_grpc() and rpc_channel_method().
 *
 * A non-OK gRPC status becomes err: code = the status code, msg = the server's details. A hub that
 * cannot be reached gives AG_UNAVAILABLE "cannot reach hub at '<target>' ...", and only when an
 * attempt to connect really failed (refused, unresolvable, broken handshake): a deadline that
 * passes while the connection is still being made is AG_DEADLINE_EXCEEDED, never "cannot reach".
 *
 * Was it sent? After a failed call, a caller whose request has effects (Spawn, Invoke) must know
 * whether the server may have received it. rpc_unary_sent() starts the call only once the channel
 * is connected, within the call's deadline, and says so in *sent:
 *   *sent false: nothing left this process (could not connect before the deadline: AG_DEADLINE_
 *                EXCEEDED, "could not connect to '<target>' before the deadline; nothing was
 *                sent"; or the connection failed: AG_UNAVAILABLE, "cannot reach hub ...").
 *   *sent true:  the request was handed to a connected channel; after a failure (for example
 *                AG_DEADLINE_EXCEEDED) the server may have received it and may still act on it.
 * Streams do not wait for the connection: their DEADLINE_EXCEEDED says nothing about sending.
 *
 * Call rpc_client_init() once before any channel and rpc_client_shutdown() after the last one is
 * freed. */
#ifndef AGENTRY_COMMON_RPC_CLIENT_H
#define AGENTRY_COMMON_RPC_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/err.h"

struct rpc_channel;

struct rpc_channel_opts {
    int max_recv_bytes;   /* 0 = 16 MiB */
    int keepalive_ms;     /* 0 = 20000 */
    int keepalive_timeout_ms; /* 0 = 10000 */
    int max_backoff_ms;   /* reconnect backoff cap; 0 = grpc default */
};

void rpc_client_init(void);
void rpc_client_shutdown(void);

/* target: "host:port" (an IPv4/IPv6 literal or a name). Never fails for a well-formed target;
 * connection errors surface on calls. */
struct rpc_channel *rpc_channel_new(const char *target, const struct rpc_channel_opts *o,
                                    struct ag_err *err);
void rpc_channel_free(struct rpc_channel *ch);
grpc_channel *rpc_channel_grpc(struct rpc_channel *ch);
const char *rpc_channel_target(const struct rpc_channel *ch);
/* A registered-call handle for method (e.g. "/agentry.v1.AgentHub/Ping"), cached per channel. */
void *rpc_channel_method(struct rpc_channel *ch, const char *method);
/* Deadline timespec `ms` from now (ms <= 0: infinite), as ag_deadline_in_ms() reads it. */
gpr_timespec rpc_deadline_ms(int64_t ms);
/* A deadline of common/clock.h as a gRPC deadline. */
gpr_timespec rpc_deadline_gpr(int64_t deadline);
/* Map a finished call's status to err (returns 0 if OK, else -1). details may be a NULL slice.
 * Borrows details: the caller still grpc_slice_unref's them. */
int rpc_status_to_err(grpc_status_code status, grpc_slice details, struct ag_err *err);
/* The same for a call made on ch, as rpc_unary reports it: grpc's own connect failures become
 * "cannot reach hub at '<target>' ..."; DEADLINE_EXCEEDED stays as it is. For callers driving
 * their own completion queue. */
int rpc_channel_status_to_err(struct rpc_channel *ch, grpc_status_code status, grpc_slice details,
                              struct ag_err *err);

/* Wait until ch is connected, at most timeout_ms (<= 0: no limit), connecting if it is idle.
 * 0 when connected; -1 with AG_UNAVAILABLE ("cannot reach hub ...") when an attempt to connect
 * failed, or AG_DEADLINE_EXCEEDED when the time ran out while still connecting. */
int rpc_channel_wait_ready(struct rpc_channel *ch, int64_t timeout_ms, struct ag_err *err);

/* Blocking unary call: *resp is decoded into arena. timeout_ms <= 0: no deadline. The timeout
 * bounds connecting and the call together. */
int rpc_unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, struct ag_arena *arena, void **resp,
              int64_t timeout_ms, struct ag_err *err);
/* rpc_unary, also telling whether the request may have reached the server (see the top of this
 * file): *sent is false only when certainly nothing was sent. sent may be NULL. */
int rpc_unary_sent(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, struct ag_arena *arena, void **resp,
                   int64_t timeout_ms, bool *sent, struct ag_err *err);

/* Blocking server-streaming call. */
struct rpc_stream;
struct rpc_stream *rpc_stream_open(struct rpc_channel *ch, const char *method,
                                   const ProtobufCMessage *req, int64_t timeout_ms,
                                   struct ag_err *err);
/* 1: *msg decoded into arena; 0: the stream ended with OK; -1: it ended with an error (err). */
int rpc_stream_next(struct rpc_stream *s, const ProtobufCMessageDescriptor *d,
                    struct ag_arena *arena, void **msg, struct ag_err *err);
/* Thread-safe: may be called while another thread waits in rpc_stream_next(), which then ends
 * with AG_CANCELLED (used to stop 'agentry trace -f' on Ctrl-C). */
void rpc_stream_cancel(struct rpc_stream *s);
void rpc_stream_free(struct rpc_stream *s); /* cancels if still open */

#endif
