/* hub/hooks.h - observers of what the hub committed: metrics, the dashboard, audit and etcd join
 * here, without touching the actor or the RPC layer.
 *
 * A hook is a callback with the kinds of happening it wants (a mask of enum hub_hook_kind). The
 * actor runs the hooks once a write is durable and applied; the node layer runs them when a node
 * joins or is lost. A hook sees facts, never a decision still to be made, and cannot change one.
 *
 * Threads and locks: hooks are added before the hub starts serving (hub_start) and the list
 * never changes after, so running it takes no lock. Agent kinds run on the store's completion
 * thread with that agent's lock held: a hook must not block, take another agent's lock or post
 * to an agent; a lock of its own comes after the agent's in the lock order. Node kinds run on a
 * CQ thread or the housekeeper, with no hub lock held. */
#ifndef AGENTRY_HUB_HOOKS_H
#define AGENTRY_HUB_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub_store_event;

enum hub_hook_kind {
    HUB_HOOK_EVENTS_STORED = 1u << 0, /* events of one agent are durable */
    HUB_HOOK_AGENT_CHANGED = 1u << 1, /* a write changed its state, placed a turn or ended one */
    HUB_HOOK_NODE_JOINED = 1u << 2,   /* a node registered and takes turns */
    HUB_HOOK_NODE_LOST = 1u << 3,     /* a node's stream or heartbeats are gone (each path
                                         that finds it gone says so: may come twice) */
};
#define HUB_HOOK_ALL 0xfu

/* What happened. Pointers are borrowed for the duration of the call. */
struct hub_hook_event {
    enum hub_hook_kind kind;
    const char *agent_id; /* agent kinds */
    const char *node_id;  /* AGENT_CHANGED: node of the current or last turn; node kinds */
    /* EVENTS_STORED: */
    const struct hub_store_event *const *events;
    size_t nevents;
    /* AGENT_CHANGED: */
    int old_state, state; /* AGENTRY__V1__AGENT_STATE__* */
    uint64_t epoch;
    uint64_t last_seq;
    bool turn_placed;      /* a turn (or an attempt of it) was placed, on node_id unless it
                              also ended in the same write */
    bool turn_interrupted; /* the running turn's node was lost */
    bool turn_ended;       /* FINAL, YIELD, ERROR or KILLED */
    /* NODE_LOST: */
    const char *reason;
};

typedef void hub_hook_fn(void *arg, const struct hub_hook_event *ev);

#define HUB_HOOKS_MAX 16

struct hub_hooks {
    struct {
        unsigned kinds; /* mask of enum hub_hook_kind */
        hub_hook_fn *fn;
        void *arg;
    } row[HUB_HOOKS_MAX];
    size_t n;
};

void hub_hooks_init(struct hub_hooks *hk);
/* Add a hook for `kinds`; hooks run in the order they were added. RESOURCE_EXHAUSTED when
 * HUB_HOOKS_MAX are registered. Before the hub serves only. */
int hub_hooks_add(struct hub_hooks *hk, unsigned kinds, hub_hook_fn *fn, void *arg,
                  struct ag_err *err);
/* Call every hook that wants ev->kind. */
void hub_hooks_run(const struct hub_hooks *hk, const struct hub_hook_event *ev);

#endif
