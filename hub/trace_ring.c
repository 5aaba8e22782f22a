/* hub/trace_ring.c - packed TraceEvents and the per-agent ring of recent ones (see
 * trace_ring.h): shared, refcounted slices, so every follower sends the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/xalloc.h"
#include "hub/store.h"
#include "hub/trace_ring.h"

grpc_slice hub_trace_ring_pack(const char *agent_id, const struct hub_store_event *ev)
{
    /* Store payloads carry a length, protobuf-c wants a C string. */
    char stackbuf[1024];
    char *payload = ev->payload_len < sizeof(stackbuf) ? stackbuf : ag_xmalloc(ev->payload_len + 1);
    memcpy(payload, ev->payload, ev->payload_len);
    payload[ev->payload_len] = '\0';
    Agentry__V1__TraceEvent te = AGENTRY__V1__TRACE_EVENT__INIT;
    te.agent_id = (char *)agent_id;
    te.seq = ev->seq;
    te.time_unix_nano = ev->time_ns;
    te.kind = (Agentry__V1__EventKind)ev->kind;
    te.payload = payload;
    te.node_id = (char *)(ev->node_id ? ev->node_id : "");
    size_t n = protobuf_c_message_get_packed_size(&te.base);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(&te.base, GRPC_SLICE_START_PTR(s));
    if (payload != stackbuf)
        free(payload);
    return s;
}

static void ring_drop(struct hub_trace_ring *r, size_t k)
{
    if (!r->slot[k].seq)
        return;
    r->bytes -= GRPC_SLICE_LENGTH(r->slot[k].ev);
    grpc_slice_unref(r->slot[k].ev);
    r->slot[k].seq = 0;
}

void hub_trace_ring_put(struct hub_trace_ring *r, uint64_t seq, grpc_slice ev)
{
    size_t k = seq % HUB_RING_SIZE, len = GRPC_SLICE_LENGTH(ev);
    ring_drop(r, k);
    if (len > HUB_RING_BYTES / 4) { /* followers read it from the store */
        grpc_slice_unref(ev);
        return;
    }
    /* Oldest first: the slots after k hold seq - HUB_RING_SIZE + 1 onwards. */
    for (size_t i = 1; i < HUB_RING_SIZE && r->bytes + len > HUB_RING_BYTES; i++)
        ring_drop(r, (k + i) % HUB_RING_SIZE);
    r->slot[k].seq = seq;
    r->slot[k].ev = ev;
    r->bytes += len;
}

void hub_trace_ring_clear(struct hub_trace_ring *r)
{
    for (size_t k = 0; k < HUB_RING_SIZE; k++)
        ring_drop(r, k);
}

bool hub_trace_ring_get(struct hub_trace_ring *r, uint64_t seq, grpc_slice *ev)
{
    size_t k = seq % HUB_RING_SIZE;
    if (r->slot[k].seq != seq)
        return false;
    *ev = grpc_slice_ref(r->slot[k].ev);
    return true;
}
