/* hub/approval.h - a tool call waiting for a human decision (types.proto,
 * EVENT_KIND_APPROVAL_REQUIRED and EVENT_KIND_APPROVAL_DECIDED; hub.proto, ListApprovals,
 * ApproveCall, DenyCall).
 *
 * The node stores the call's TOOL_CALL and, instead of running it, ends its hold on the turn with
 * APPROVAL_REQUIRED (as a wait_agent call ends it with WAITING): the agent is PENDING without a
 * node, holding no slot, and hub_agent.approval says which call waits, until ApproveCall, DenyCall
 * or the deadline (a timer of the actor) decides it. The decision is an APPROVAL_DECIDED event
 * the hub stores; a refusal's TOOL_RESULT is stored in the same write, and the turn is placed
 * again, on any node. Nothing about a waiting call is kept beside the log: a restarted hub reads
 * it back from the turn's events (hub_approval_note), deadline included (the stored request
 * carries "expires_at_ms").
 *
 * Data only, as hub/team_wait.h: an approval is held by its agent (freed with it) and guarded by
 * its lock; nothing here locks, posts or stores. */
#ifndef AGENTRY_HUB_APPROVAL_H
#define AGENTRY_HUB_APPROVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"

struct hub_store_event;
struct hub_agent;

/* Who decided (APPROVAL_DECIDED "decision"). */
enum hub_approval_decision {
    HUB_APPROVAL_APPROVED,
    HUB_APPROVAL_DENIED,
    HUB_APPROVAL_EXPIRED,
};

/* The call an agent's turn waits on. */
struct hub_approval {
    char *call_id;      /* owned */
    char *tool;         /* owned */
    char *arguments;    /* owned: as the model wrote them */
    char *reason;       /* owned: the rule that asked */
    uint64_t seq;       /* the APPROVAL_REQUIRED event; 0 until its write commits */
    int64_t asked_ms;   /* Unix ms */
    int64_t expires_ms; /* Unix ms */
};

/* The approval an APPROVAL_REQUIRED payload (as stored: stamped) names, NULL if it names no call.
 * time_ns is the event's. */
struct hub_approval *hub_approval_parse(const char *payload, size_t len, uint64_t seq,
                                        int64_t time_ns);
void hub_approval_free(struct hub_approval *ap); /* NULL is a no-op */
/* A node's APPROVAL_REQUIRED payload with "expires_at_ms" set (in ar); NULL if it is not a JSON
 * object. */
const char *hub_approval_stamp(const char *payload, int64_t expires_ms, struct ag_arena *ar);
/* The APPROVAL_DECIDED payload (in ar). by and reason may be NULL; arguments (approved only) NULL
 * or "" when the call runs as asked. */
const char *hub_approval_decided_json(const struct hub_approval *ap, enum hub_approval_decision d,
                                      const char *by, const char *reason, const char *arguments,
                                      struct ag_arena *ar);
/* A refused call's TOOL_RESULT payload (in ar): is_error, the output saying who refused and
 * why, so that the model can go on without it. */
const char *hub_approval_refusal_json(const struct hub_approval *ap, enum hub_approval_decision d,
                                      const char *by, const char *reason, struct ag_arena *ar);
/* A stored APPROVAL_DECIDED of agent a: kept among its HUB_APPROVAL_KEEP most recent decisions,
 * which answer a repeated ApproveCall or DenyCall. Called for the events stored now and those
 * read at load (hub_agent_steps_note). Agent locked. */
#define HUB_APPROVAL_KEEP 8
void hub_approval_remember(struct hub_agent *a, const char *payload, size_t len, uint64_t seq);
/* The decision of call_id among a's recent ones (the last turn's at least: a loaded agent read
 * them back), if any: true with *d and *seq set. Agent locked. */
bool hub_approval_decided(const struct hub_agent *a, const char *call_id,
                          enum hub_approval_decision *d, uint64_t *seq);
/* Frees a's remembered decisions. */
void hub_approval_forget(struct hub_agent *a);
const char *hub_approval_decision_word(enum hub_approval_decision d);
/* Load (hub/loader.c): follow a stored event of the agent, keeping *ap equal to what the log
 * says (an APPROVAL_REQUIRED not followed by its decision or a turn end). */
void hub_approval_note(struct hub_approval **ap, const struct hub_store_event *ev);

#endif
