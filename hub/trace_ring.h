/* hub/trace_ring.h - packed TraceEvents and the per-agent ring of recent ones.
 *
 * A committed event is packed once into a refcounted slice that every follower sends as is. The
 * ring keeps the last HUB_RING_SIZE of them, at most HUB_RING_BYTES: it only saves followers a
 * store read, so a big event is not worth pinning in every idle agent's memory. Not thread-safe:
 * the ring is guarded by its agent's lock. */
#ifndef AGENTRY_HUB_TRACE_RING_H
#define AGENTRY_HUB_TRACE_RING_H

#include <grpc/slice.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/limits.h"

struct hub_store_event;

struct hub_trace_ring {
    struct {
        uint64_t seq; /* 0: empty */
        grpc_slice ev;
    } slot[HUB_RING_SIZE];
    size_t bytes; /* held by the slots, at most HUB_RING_BYTES */
};

/* The event as a packed agentry.v1.TraceEvent (the caller owns the slice). */
grpc_slice hub_trace_ring_pack(const char *agent_id, const struct hub_store_event *ev);
/* Keep ev (taken) as seq, dropping the oldest as needed; too big an event is not kept. */
void hub_trace_ring_put(struct hub_trace_ring *r, uint64_t seq, grpc_slice ev);
/* seq's packed event with a reference for the caller, if the ring still has it. */
bool hub_trace_ring_get(struct hub_trace_ring *r, uint64_t seq, grpc_slice *ev);
void hub_trace_ring_clear(struct hub_trace_ring *r);

#endif
