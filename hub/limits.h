/* hub/limits.h - the hub's fixed limits: what an agent keeps in memory and what a message may
 * carry. Shared by the actor, the agent and the RPC layer; the wire limits are also stated to
 * nodes in Registered. */
#ifndef AGENTRY_HUB_LIMITS_H
#define AGENTRY_HUB_LIMITS_H

#define HUB_RING_SIZE 64                /* recent events kept in memory per agent, for followers */
#define HUB_RING_BYTES (256u << 10)     /* ... and at most this many bytes of them */
#define HUB_MAX_INBOX 1024              /* inputs waiting per agent before SendMessage is refused */
#define HUB_MAX_INBOX_BYTES (16u << 20) /* ... or this many bytes of them */
#define HUB_MAX_MAILBOX 4096            /* commands waiting per agent before callers are refused */
#define HUB_EPOCH_HISTORY 8             /* recent assignments remembered per agent, for fencing */
/* An event payload: a TraceEvent carrying it must fit gRPC's default 4 MiB client limit, with
 * room for its other fields (types.proto). */
#define HUB_MAX_PAYLOAD (3u << 20)
/* A NodeMessage (an EventBatch, whose turn-ending event carries the checkpoint). */
#define HUB_MAX_NODE_MESSAGE (32u << 20)
/* The stored steps of a running turn an Assignment carries (Assignment.steps). With the
 * checkpoint (under HUB_MAX_NODE_MESSAGE) and the inbox (HUB_MAX_INBOX_BYTES) it stays under the
 * node's 128 MiB receive limit; a turn interrupted with more is ended, not placed again. */
#define HUB_MAX_STEPS_BYTES (64u << 20)
/* A whole Assignment, history included (hub/rpc_assign.c): under the node's 128 MiB receive limit
 * with room for the message's own framing. */
#define HUB_MAX_ASSIGN_BYTES (120u << 20)
#define HUB_REASON_MAX 160   /* an interruption's reason, kept to compare the next with */
#define HUB_NAMESPACE_MAX 63 /* a namespace's name, as a Kubernetes one (hub_validate_namespace) */

#endif
