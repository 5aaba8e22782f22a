/* common/rpc/pb.c - see pb.h. */
#include "common/rpc/pb.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <string.h>

#include "common/rpc/server.h"

static void *arena_pb_alloc(void *data, size_t size)
{
    return ag_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *p)
{
    (void)data;
    (void)p; /* the arena frees everything at once */
}

ProtobufCAllocator rpc_pb_arena_allocator(struct ag_arena *arena)
{
    ProtobufCAllocator a = {arena_pb_alloc, arena_pb_free, arena};
    return a;
}

grpc_byte_buffer *rpc_pb_pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

uint8_t *rpc_pb_pack_arena(const ProtobufCMessage *m, struct ag_arena *arena, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = ag_arena_alloc(arena, n ? n : 1);
    protobuf_c_message_pack(m, buf);
    *len = n;
    return buf;
}

void *rpc_pb_unpack_bytes(const void *data, size_t len, const ProtobufCMessageDescriptor *d,
                          struct ag_arena *arena, struct ag_err *err)
{
    ProtobufCAllocator a = rpc_pb_arena_allocator(arena);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &a, len, data);
    if (!m) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot decode %s: malformed protobuf (%zu bytes)",
                   d->name, len);
        return NULL;
    }
    return m;
}

size_t rpc_pb_length(grpc_byte_buffer *bb)
{
    return bb ? grpc_byte_buffer_length(bb) : 0;
}

void *rpc_pb_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                    struct ag_arena *arena, struct ag_err *err)
{
    if (!bb) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "missing %s message", d->name);
        return NULL;
    }
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read %s message", d->name);
        return NULL;
    }
    /* Most messages arrive as one slice: decode it in place. Otherwise copy into the arena. */
    /* protobuf-c copies every string and bytes field it decodes, so nothing points into bb. */
    grpc_slice *first = NULL, s;
    void *m;
    if (grpc_byte_buffer_reader_peek(&r, &first) &&
        grpc_byte_buffer_length(bb) == GRPC_SLICE_LENGTH(*first)) {
        m = rpc_pb_unpack_bytes(GRPC_SLICE_START_PTR(*first), GRPC_SLICE_LENGTH(*first), d, arena,
                                err);
    } else {
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_reader_init(&r, bb);
        size_t total = grpc_byte_buffer_length(bb), off = 0;
        uint8_t *buf = ag_arena_alloc(arena, total ? total : 1);
        while (grpc_byte_buffer_reader_next(&r, &s)) {
            memcpy(buf + off, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
            off += GRPC_SLICE_LENGTH(s);
            grpc_slice_unref(s);
        }
        m = rpc_pb_unpack_bytes(buf, off, d, arena, err);
    }
    grpc_byte_buffer_reader_destroy(&r);
    return m;
}

void *rpc_call_unpack(struct rpc_call *c, grpc_byte_buffer *req,
                      const ProtobufCMessageDescriptor *d)
{
    struct ag_err err = AG_ERR_INIT;
    void *m = rpc_pb_unpack(req, d, rpc_call_arena(c), &err);
    if (!m)
        rpc_call_fail(c, &err);
    return m;
}
