/* hub/rpc_memory.c - ListMemory and GetMemory: operators read an agent's memory (hub.proto).
 *
 * Read-only, authorized as GetAgent is (the viewer role may call both): an agent the caller may
 * not see is NOT_FOUND, as if absent, and so is an agent that does not exist. Memory outlives the
 * agent's kill, so a killed agent's memory is read as a live one's.
 *
 * Threads: the handlers run on CQ threads and only check the request and find the agent; the read
 * itself goes to the store's reader thread (hub_store_read_memory), whose callback packs the
 * answer. The call holds a reference until then.
 *
 * Pages: in (namespace, key) order, page_size entries (0: 100, at most 1000), and never more
 * than LIST_MAX_BYTES packed (values run to 64 KiB: a page of big values stops early, with a
 * token). The token is "<namespace>/<key>" of the last entry sent (a namespace has no '/'). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/rpc/pb.h"
#include "common/rpc/server.h"
#include "common/xalloc.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/memory.h"
#include "hub/rpc_memory.h"
#include "hub/store.h"
#include "hub/validate.h"

#define LIST_DEFAULT_PAGE 100
#define LIST_MAX_PAGE 1000
/* gRPC's default receive limit is 4 MiB: a page stays well under it. */
#define LIST_MAX_BYTES (3u << 20)

/* The agent visible to the caller (unpinned again: only its existence is needed), else the call
 * is answered NOT_FOUND and false returned. */
static bool agent_visible(struct hub *h, struct rpc_call *c, const char *id)
{
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *a = hub_authn_get_agent(h, c, id, &err);
    if (!a) {
        rpc_call_fail(c, &err);
        return false;
    }
    hub_agents_unpin(&h->agents, a);
    return true;
}

static void entry_fill(Agentry__V1__MemoryEntry *e, const struct hub_store_memory *m)
{
    agentry__v1__memory_entry__init(e);
    e->namespace_ = (char *)m->namespace;
    e->key = (char *)m->key;
    e->value = (char *)(m->value ? m->value : "");
    e->updated_unix_nano = m->updated_ns;
    e->has_vector = m->dims > 0;
    e->dimensions = m->dims;
}

/* --- ListMemory ------------------------------------------------------------------------------- */

struct list_req {
    struct rpc_call *call; /* reference held */
    uint32_t page;
};

static void on_list_rows(void *arg, const struct hub_store_memory *rows, size_t n,
                         const struct ag_err *err)
{
    struct list_req *q = arg;
    if (err) {
        rpc_call_fail(q->call, err);
        goto out;
    }
    Agentry__V1__ListMemoryResponse r = AGENTRY__V1__LIST_MEMORY_RESPONSE__INIT;
    size_t shown = n < q->page ? n : q->page;
    Agentry__V1__MemoryEntry *ents = ag_xcalloc(shown ? shown : 1, sizeof(*ents));
    Agentry__V1__MemoryEntry **ptrs = ag_xcalloc(shown ? shown : 1, sizeof(*ptrs));
    size_t bytes = 0, i = 0;
    for (; i < shown; i++) {
        entry_fill(&ents[i], &rows[i]);
        size_t sz = agentry__v1__memory_entry__get_packed_size(&ents[i]) + 8;
        if (i > 0 && bytes + sz > LIST_MAX_BYTES)
            break;
        bytes += sz;
        ptrs[i] = &ents[i];
    }
    r.entries = ptrs;
    r.n_entries = i;
    char *token = NULL;
    if (i < n) /* a row more than the page was read, or the page stopped at its byte limit */
        token = ag_xasprintf("%s/%s", rows[i - 1].namespace, rows[i - 1].key);
    r.next_page_token = token ? token : "";
    rpc_call_reply_take(q->call, rpc_pb_pack(&r.base));
    free(token);
    free(ents);
    free(ptrs);
out:
    rpc_call_unref(q->call);
    free(q);
}

/* "<namespace>/<key>" into its halves (pointers into tok, which is modified). */
static int token_split(char *tok, const char **ns, const char **key, struct ag_err *err)
{
    char *slash = strchr(tok, '/');
    if (!slash || slash == tok || !slash[1])
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "page_token is not one this hub gave; start again without it");
    *slash = '\0';
    *ns = tok;
    *key = slash + 1;
    return 0;
}

static void on_list(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ListMemoryRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__list_memory_request__descriptor);
    if (!in)
        return;
    struct ag_err err = AG_ERR_INIT;
    const char *ns = in->namespace_ && *in->namespace_ ? in->namespace_ : NULL;
    const char *after_ns = NULL, *after_key = NULL;
    if (in->page_size > LIST_MAX_PAGE)
        ag_err_set(&err, AG_INVALID_ARGUMENT, "page_size %u is over %d", in->page_size,
                   LIST_MAX_PAGE);
    else if (ns)
        hub_memory_check_namespace(ns, &err);
    if (err.code == AG_OK && in->page_token && *in->page_token)
        token_split(in->page_token, &after_ns, &after_key, &err);
    if (err.code == AG_OK)
        hub_validate_utf8("prefix", in->prefix, &err);
    if (err.code != AG_OK) {
        rpc_call_fail(c, &err);
        return;
    }
    if (!agent_visible(h, c, in->agent_id))
        return;
    struct list_req *q = ag_xcalloc(1, sizeof(*q));
    q->call = c;
    q->page = in->page_size ? in->page_size : LIST_DEFAULT_PAGE;
    struct hub_store_memory_query mq = {.kind = HUB_STORE_MEMORY_LIST,
                                        .agent_id = in->agent_id,
                                        .namespace = ns,
                                        .prefix = in->prefix,
                                        .after_namespace = after_ns,
                                        .after_key = after_key,
                                        .max = q->page + 1};
    rpc_call_ref(c);
    if (hub_store_read_memory(h->store, &mq, on_list_rows, q, &err) != 0) {
        rpc_call_fail(c, &err);
        rpc_call_unref(c);
        free(q);
    }
}

/* --- GetMemory -------------------------------------------------------------------------------- */

struct get_req {
    struct rpc_call *call; /* reference held */
    char *what;            /* owned: "key 'k' in memory namespace 'ns' of agent 'a'" */
};

static void on_get_rows(void *arg, const struct hub_store_memory *rows, size_t n,
                        const struct ag_err *err)
{
    struct get_req *q = arg;
    if (err) {
        rpc_call_fail(q->call, err);
    } else if (n == 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "no %s", q->what);
        rpc_call_finish(q->call, AG_NOT_FOUND, msg);
    } else {
        Agentry__V1__MemoryEntry e;
        entry_fill(&e, &rows[0]);
        rpc_call_reply_take(q->call, rpc_pb_pack(&e.base));
    }
    rpc_call_unref(q->call);
    free(q->what);
    free(q);
}

static void on_get(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__GetMemoryRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__get_memory_request__descriptor);
    if (!in)
        return;
    struct ag_err err = AG_ERR_INIT;
    const char *ns = in->namespace_ && *in->namespace_ ? in->namespace_ : HUB_MEMORY_DEFAULT_NS;
    if (hub_memory_check_namespace(ns, &err) != 0 || hub_memory_check_key(in->key, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    if (!agent_visible(h, c, in->agent_id))
        return;
    struct get_req *q = ag_xcalloc(1, sizeof(*q));
    q->call = c;
    q->what = ag_xasprintf("key '%.200s' in memory namespace '%s' of agent '%s'", in->key, ns,
                           in->agent_id);
    const char *keys[] = {in->key};
    struct hub_store_memory_query mq = {.kind = HUB_STORE_MEMORY_GET,
                                        .agent_id = in->agent_id,
                                        .namespace = ns,
                                        .keys = keys,
                                        .nkeys = 1};
    rpc_call_ref(c);
    if (hub_store_read_memory(h->store, &mq, on_get_rows, q, &err) != 0) {
        rpc_call_fail(c, &err);
        rpc_call_unref(c);
        free(q->what);
        free(q);
    }
}

const struct rpc_method hub_rpc_memory_methods[] = {
    {.path = "/agentry.v1.AgentHub/ListMemory", .kind = RPC_UNARY, .on_call = on_list},
    {.path = "/agentry.v1.AgentHub/GetMemory", .kind = RPC_UNARY, .on_call = on_get},
};
const size_t hub_rpc_memory_nmethods = AG_ARRAY_SIZE(hub_rpc_memory_methods);
