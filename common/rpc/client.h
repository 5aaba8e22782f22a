/* common/rpc/client.h - gRPC client helpers over the core API.
 *
 * A channel is one HTTP/2 connection (lazily connected, keepalive pings on). Blocking helpers use a
 * private pluck completion queue per call, so any thread may use them on a shared channel. The
 * node's bidi stream and the benchmark drive their own completion queues with the asynchronous
 * call (rpc_async_*, below), which rpc_unary also uses for its one batch.
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
#include "common/rpc/tls.h"

struct rpc_channel;

struct rpc_channel_opts {
    int max_recv_bytes;              /* 0 = 16 MiB */
    int keepalive_ms;                /* 0 = 20000 */
    int keepalive_timeout_ms;        /* 0 = 10000 */
    int max_backoff_ms;              /* reconnect backoff cap; 0 = grpc default */
    const struct rpc_tls_files *tls; /* NULL: plaintext; else mutual TLS (tls.h). The server's
                                        certificate must name the target's host. */
    const char *bearer; /* a token sent as "authorization: Bearer ..." on every call; only over
                           TLS (gRPC never sends call credentials in the clear) */
};

void rpc_client_init(void);
void rpc_client_shutdown(void);

/* target: "host:port" (an IPv4/IPv6 literal or a name). Fails only for a malformed target or,
 * with TLS, files that do not load; connection errors surface on calls. A failed TLS handshake
 * is reported on calls as one line saying which side refused: "the hub's certificate is not
 * signed by --ca '<ca>' ..." or "the hub refused our certificate '<cert>' ...". */
struct rpc_channel *rpc_channel_new(const char *target, const struct rpc_channel_opts *o,
                                    struct ag_err *err);
void rpc_channel_free(struct rpc_channel *ch);
grpc_channel *rpc_channel_grpc(struct rpc_channel *ch);
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

/* --- asynchronous calls on the caller's completion queue -----------------------------------
 *
 * For callers that drive their own completion queue and loop (the node's bidi stream, the
 * benchmark's many unary calls). Each operation is one function that starts one batch and
 * takes the caller's tag; the event with that tag comes out of the caller's queue, and the
 * caller then calls the matching *_done/_take/status function. When an operation returns -1
 * (grpc_call_error, AG_INTERNAL), no event with its tag will come, as in libuv.
 *
 * A unary call (bench.c): rpc_async_start(); rpc_async_unary(bb, tag); on tag:
 * rpc_async_status() then rpc_async_recv_take() for the reply; rpc_async_release().
 *
 * A bidi stream (how worker/conn.c maps onto it; every op below is one batch):
 *   rpc_async_start(&a, ch, cq, CONN_METHOD, AG_DEADLINE_NONE, err)
 *   rpc_async_recv_status(&a, &tag_status);  outstanding for the stream's life
 *   rpc_async_send(&a, register_bb, &tag_send); the first send carries the initial metadata;
 *       on tag_send: rpc_async_send_done(&a); only one send may be in flight
 *   rpc_async_recv(&a, &tag_recv);           the first receive also takes the server's
 *       initial metadata; on tag_recv: bb = rpc_async_recv_take(&a), NULL = the server
 *       closed its side (or the call failed): wait for tag_status; else decode, free, recv again
 *   rpc_async_close(&a, &tag_send);          half-close, once, when no send is in flight
 *   rpc_async_cancel(&a);                    from any thread; every outstanding tag completes
 *   on tag_status: rpc_async_status(&a, err) -> 0 for OK, else -1 with the status in err
 *       (through rpc_channel_status_to_err: "cannot reach hub ..." for connect failures);
 *   once all tags are back: rpc_async_release(&a).
 *
 * Threads: the struct is the caller's; ops on one call must not race each other (conn.c starts
 * them under its lock), except rpc_async_cancel, which any thread may call at any time. The
 * struct must stay in place while a batch is outstanding (grpc writes into its fields). */
struct rpc_async_call {
    struct rpc_channel *ch; /* borrowed */
    grpc_call *call;        /* owned; NULL before start and after release */
    grpc_byte_buffer *send; /* owned: the message of the send in flight */
    grpc_byte_buffer *recv; /* owned: the last message received, until taken */
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status; /* valid once the status (or unary) batch completed */
    grpc_slice details;      /* status details, unref'd by rpc_async_status or release */
    bool md_sent, md_received;
};

/* Create the call on ch for method, its events going to cq, ending at deadline (common/clock.h;
 * AG_DEADLINE_NONE for none). No batch is started yet. -1 (AG_INTERNAL) if gRPC refuses. */
int rpc_async_start(struct rpc_async_call *a, struct rpc_channel *ch, grpc_completion_queue *cq,
                    const char *method, int64_t deadline, struct ag_err *err);
/* A whole unary call in one batch: send bb (taken) and half-close, receive the reply and status.
 * On tag: rpc_async_status() and rpc_async_recv_take(). */
int rpc_async_unary(struct rpc_async_call *a, grpc_byte_buffer *bb, void *tag, struct ag_err *err);
/* Send bb (taken; with the initial metadata the first time). On tag: rpc_async_send_done(). */
int rpc_async_send(struct rpc_async_call *a, grpc_byte_buffer *bb, void *tag, struct ag_err *err);
/* Free the buffer of the send that completed. */
void rpc_async_send_done(struct rpc_async_call *a);
/* Half-close (with the initial metadata if nothing was sent). */
int rpc_async_close(struct rpc_async_call *a, void *tag, struct ag_err *err);
/* Receive one message (with the initial metadata the first time). On tag: recv_take. */
int rpc_async_recv(struct rpc_async_call *a, void *tag, struct ag_err *err);
/* The received message, now the caller's (grpc_byte_buffer_destroy); NULL when the stream ended
 * or the call failed. */
grpc_byte_buffer *rpc_async_recv_take(struct rpc_async_call *a);
/* Ask for the final status: on tag, rpc_async_status(). */
int rpc_async_recv_status(struct rpc_async_call *a, void *tag, struct ag_err *err);
/* After the status (or unary) batch completed: 0 for OK, else -1 with err as
 * rpc_channel_status_to_err gives it. Unrefs the details; a->status stays readable. */
int rpc_async_status(struct rpc_async_call *a, struct ag_err *err);
/* Cancel the call (any thread; a no-op before start and after release). Every outstanding batch
 * then completes, the status one with CANCELLED. */
void rpc_async_cancel(struct rpc_async_call *a);
/* Once no batch is outstanding: free the call and whatever it still holds. The struct may then
 * be started again. Also fine on a zeroed or already released struct. */
void rpc_async_release(struct rpc_async_call *a);

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
