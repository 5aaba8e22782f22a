/* hub/rpc_trace.h - AgentHub.Trace: followers of an agent's log, and their wake-up after each
 * commit (a hub_effects entry, installed by hub.c); also in-process followers, for the
 * dashboard's Server-Sent Events (hub/web_sse.c). */
#ifndef AGENTRY_HUB_RPC_TRACE_H
#define AGENTRY_HUB_RPC_TRACE_H

#include <grpc/slice.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/rpc/server.h"

struct hub;
struct hub_agent;
struct hub_store_event;
struct hub_follower;

/* Events a follower hands its reader ahead of what the reader has taken. */
#define HUB_RPC_TRACE_WINDOW 32

extern const struct rpc_method hub_rpc_trace_methods[];
extern const size_t hub_rpc_trace_nmethods;

/* Agent lock held for wake and fail_all. */
void hub_rpc_trace_wake(struct hub *h, struct hub_agent *a,
                        const struct hub_store_event *const *evs, size_t n);
/* End every follow of a with err. */
void hub_rpc_trace_fail_all(struct hub_agent *a, const struct ag_err *err);
/* Add a's followers to *calls (Trace calls) and *in_process (sinks). */
void hub_rpc_trace_count(const struct hub_agent *a, size_t *calls, size_t *in_process);

/* An in-process reader of an agent's log. Both functions are called with the agent's lock held,
 * from whichever thread committed or read the event, so they only hand it over (no call back
 * into this file, no blocking). */
struct hub_rpc_trace_sink {
    /* The next event, packed as an agentry.v1.TraceEvent; the slice is the sink's to unref. */
    void (*event)(void *ctx, grpc_slice packed);
    /* The end, once, after every event: OK when the log was read to its end (follow off) or
     * past KILLED; else why (UNAVAILABLE at hub shutdown, NOT_FOUND when deleted, ...). */
    void (*end)(void *ctx, enum ag_code code, const char *msg);
    void *ctx;
};

/* Follow agent_id's log from from_seq (0: the beginning) as Trace does, into sink (borrowed
 * until unsubscribe). Who may is the caller's business: nothing is checked here. NULL with err
 * when the agent does not exist (NOT_FOUND) or cannot be loaded. */
struct hub_follower *hub_rpc_trace_subscribe(struct hub *h, const char *agent_id, uint64_t from_seq,
                                             bool follow, const struct hub_rpc_trace_sink *sink,
                                             struct ag_err *err);
/* The reader has taken n more events: up to n more may be delivered (from this thread). */
void hub_rpc_trace_consumed(struct hub_follower *f, unsigned n);
/* Leave: no callback runs once this returns; f is freed. NULL is a no-op. */
void hub_rpc_trace_unsubscribe(struct hub_follower *f);

#endif
