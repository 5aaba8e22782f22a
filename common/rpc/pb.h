/* common/rpc/pb.h - protobuf-c messages <-> grpc byte buffers.
 *
 * Decoding allocates from an ag_arena (through a ProtobufCAllocator), so a decoded request is
 * freed with its call's arena, in one go, never field by field. This file knows protobuf-c and
 * grpc, not agentry.v1: callers pass descriptors. */
#ifndef AGENTRY_COMMON_RPC_PB_H
#define AGENTRY_COMMON_RPC_PB_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

#include "common/arena.h"
#include "common/err.h"

struct rpc_call;

/* A new byte buffer holding the packed message (caller destroys it, or hands it to an rpc_*_take
 * function). */
grpc_byte_buffer *rpc_pb_pack(const ProtobufCMessage *m);
/* Decode into memory from `arena`. NULL with INVALID_ARGUMENT if bb is NULL or not a valid
 * message of type d. Nothing to free: the arena owns the result. */
void *rpc_pb_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                    struct ag_arena *arena, struct ag_err *err);
/* A unary handler's request: rpc_pb_unpack into the call's arena; on failure the call is
 * answered with the error (INVALID_ARGUMENT) and NULL returned. */
void *rpc_call_unpack(struct rpc_call *c, grpc_byte_buffer *req,
                      const ProtobufCMessageDescriptor *d);
/* Same from plain bytes. */
void *rpc_pb_unpack_bytes(const void *data, size_t len, const ProtobufCMessageDescriptor *d,
                          struct ag_arena *arena, struct ag_err *err);
/* Pack into a buffer from the arena; *len receives the size. */
uint8_t *rpc_pb_pack_arena(const ProtobufCMessage *m, struct ag_arena *arena, size_t *len);
/* A protobuf-c allocator drawing from the arena (free is a no-op). */
ProtobufCAllocator rpc_pb_arena_allocator(struct ag_arena *arena);
/* The size of the message in bb, without copying. */
size_t rpc_pb_length(grpc_byte_buffer *bb);

#endif
