/* hub/hub_tool.c - the hub tools' table and the road a HubToolCall takes (see hub/hub_tool.h).
 *
 * dispatch (the node stream's CQ thread): check the call's strings, find the row, load the agent
 * and check, under its lock, that the calling node runs the agent's current epoch; then hand
 * run() a request that owns copies of the strings and holds the agent and the node. A call that
 * fails a check is answered at once with is_error (a node of an older epoch may still ask: its
 * answer is simply not used). reply: pack the HubToolResult and queue it on the node's stream
 * (hub_node_send, any thread), then let go of what the request held.
 *
 * The answer is sent even if the node's stream ended meanwhile: hub_node_send on a finished
 * stream drops it, and the node, having lost the stream, has already given up on the call. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/hub_internal.h"
#include "hub/hub_tool.h"
#include "hub/limits.h"
#include "hub/loader.h"
#include "hub/memory.h"
#include "hub/node.h"
#include "hub/sched.h"
#include "hub/team.h"
#include "hub/validate.h"

#define HUB_TOOL_MAX_ARGS (1u << 20) /* the arguments a hub tool takes, at most */
#define HUB_TOOL_MAX_ID 256          /* a tool call id */

const struct hub_tool_row hub_tools[] = {
    {"spawn_agent", hub_team_spawn_agent},
    {"send_agent", hub_team_send_agent},
    {"wait_agent", hub_team_wait_agent},
    {"memory_put", hub_memory_put},
    {"memory_get", hub_memory_get},
    {"memory_list", hub_memory_list},
    {"memory_delete", hub_memory_delete},
    {"memory_search", hub_memory_search},
    {NULL, NULL},
};

const struct hub_tool_row *hub_tool_find(const char *name)
{
    for (const struct hub_tool_row *r = hub_tools; name && r->name; r++)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

/* The request with what only this file sees. */
struct req {
    struct hub_tool_req pub;
    struct hub_node *node; /* reference held */
    uint64_t id;
};

static void send_result(struct hub_node *n, uint64_t id, const char *output, bool is_error,
                        bool wait)
{
    Agentry__V1__HubToolResult r = AGENTRY__V1__HUB_TOOL_RESULT__INIT;
    r.id = id;
    r.output = (char *)(output ? output : "");
    r.is_error = is_error;
    r.wait = wait;
    Agentry__V1__HubMessage m = AGENTRY__V1__HUB_MESSAGE__INIT;
    m.msg_case = AGENTRY__V1__HUB_MESSAGE__MSG_HUB_TOOL_RESULT;
    m.hub_tool_result = &r;
    hub_node_send(n, &m);
}

__attribute__((format(printf, 3, 4))) static void refuse(struct hub_node *n, uint64_t id,
                                                         const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_result(n, id, msg, true, false);
}

/* The calling node runs the agent's current epoch. */
static bool runs_turn(struct hub_agent *a, struct hub_node *n, uint64_t epoch)
{
    pthread_mutex_lock(&a->lock);
    bool ok = a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING &&
              a->st.epoch == epoch && strcmp(a->st.node_id, n->id) == 0;
    pthread_mutex_unlock(&a->lock);
    return ok;
}

void hub_tool_dispatch(struct hub *h, struct hub_node *n, const Agentry__V1__HubToolCall *c)
{
    const char *name = c->name ? c->name : "", *args = c->arguments ? c->arguments : "";
    const char *call_id = c->call_id ? c->call_id : "";
    struct ag_err err = AG_ERR_INIT;
    if (strlen(args) > HUB_TOOL_MAX_ARGS || strlen(call_id) > HUB_TOOL_MAX_ID) {
        refuse(n, c->id, "the arguments of %.64s are over %u bytes, or its call id over %d", name,
               HUB_TOOL_MAX_ARGS, HUB_TOOL_MAX_ID);
        return;
    }
    if (hub_validate_utf8("arguments", args, &err) != 0 ||
        hub_validate_utf8("call_id", call_id, &err) != 0) {
        refuse(n, c->id, "%s", err.msg);
        return;
    }
    const struct hub_tool_row *row = hub_tool_find(name);
    if (!row) {
        refuse(n, c->id, "the hub has no tool '%.64s' (this hub is older than the node?)", name);
        return;
    }
    struct hub_agent *a = c->agent_id && *c->agent_id ? hub_loader_get(h, c->agent_id, &err) : NULL;
    if (!a || !runs_turn(a, n, c->epoch)) {
        refuse(n, c->id, "node '%s' does not run agent '%.64s' at epoch %llu: not this turn", n->id,
               c->agent_id ? c->agent_id : "", (unsigned long long)c->epoch);
        hub_agents_unpin(&h->agents, a);
        return;
    }
    struct req *r = ag_xcalloc(1, sizeof(*r));
    r->pub.h = h;
    r->pub.agent = a; /* the pin moves to the request */
    r->pub.agent_id = a->id;
    r->pub.epoch = c->epoch;
    r->pub.call_id = ag_xstrdup(call_id);
    r->pub.name = row->name;
    r->pub.args_json = ag_xstrdup(args);
    r->node = n;
    hub_sched_node_ref(h->sched, n);
    r->id = c->id;
    ag_log_debug("hub_tool.call", "agent=%s node=%s tool=%s call=%s", a->id, n->id, row->name,
                 ag_log_q(call_id));
    row->run(&r->pub);
}

void hub_tool_reply(struct hub_tool_req *pub, const char *output, bool is_error, bool wait)
{
    struct req *r = (struct req *)pub;
    struct hub *h = pub->h;
    send_result(r->node, r->id, output, is_error, wait);
    hub_sched_node_unref(h->sched, r->node);
    hub_agents_unpin(&h->agents, pub->agent);
    free((char *)pub->call_id);
    free((char *)pub->args_json);
    free(r);
}

void hub_tool_fail(struct hub_tool_req *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hub_tool_reply(r, msg, true, false);
}
