/* hub/hub_tool.h - tools the hub runs for agents: the contract between the node stream
 * (hub/rpc_node.c, which receives HubToolCall and sends HubToolResult) and the files that
 * implement each tool (hub/team.c: spawn_agent, send_agent, wait_agent; hub/memory.c: the
 * memory_* tools).
 *
 * A hub tool is a tool whose effect is the hub's own state (another agent, the agent's memory),
 * so the node forwards the call (node.proto, HubToolCall) after its TOOL_CALL is durable, and
 * the hub answers with the output the node stores as the TOOL_RESULT. Rows of hub_tools name the
 * tools; hub/hub_tool.c looks them up, checks that the call comes from the node running the
 * agent's current epoch (else the answer is an error and run() is never called), and hands
 * run() a request it owns until it answers.
 *
 * Rules for run(): answer exactly once, with hub_tool_reply (from any thread, possibly inside
 * run(), never with an agent's lock held); be idempotent per (agent_id, call_id), since a call
 * is replayed when its node was lost before the TOOL_RESULT was stored; answer only once what
 * the output reports is durable. The request's strings live until the reply.
 *
 * Threads: run() is called on the stream's CQ thread with no lock held; it must not block (post
 * to an actor, submit a store write, answer from the completion). */
#ifndef AGENTRY_HUB_HUB_TOOL_H
#define AGENTRY_HUB_HUB_TOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "agentry/v1/node.pb-c.h"

struct hub;
struct hub_agent;
struct hub_node;

struct hub_tool_req {
    struct hub *h;
    struct hub_agent *agent; /* the calling agent (reference held until the reply) */
    const char *agent_id;
    uint64_t epoch;
    const char *call_id;   /* the model's tool call id: the idempotency key with agent_id */
    const char *name;      /* the tool */
    const char *args_json; /* the arguments, a JSON object's text (not yet parsed) */
};

struct hub_tool_row {
    const char *name;
    void (*run)(struct hub_tool_req *r);
};

/* Ends with a NULL name. */
extern const struct hub_tool_row hub_tools[];

/* The row for name, NULL if the hub has no such tool. */
const struct hub_tool_row *hub_tool_find(const char *name);

/* A HubToolCall from node n (the stream's CQ thread): checked, then run or answered with an
 * error. Never fails the stream: a bad call is the model's problem, not the node's. */
void hub_tool_dispatch(struct hub *h, struct hub_node *n, const Agentry__V1__HubToolCall *c);

/* Answer r (see node.proto HubToolResult) and free it: output is copied. wait: wait_agent only,
 * the turn waits for children (EVENT_KIND_WAITING). */
void hub_tool_reply(struct hub_tool_req *r, const char *output, bool is_error, bool wait);

/* Convenience for errors the model should read: printf-style output, is_error set. */
void hub_tool_fail(struct hub_tool_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
