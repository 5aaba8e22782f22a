/* hub/memory.h - an agent's durable memory: the hub tools memory_put, memory_get, memory_list,
 * memory_delete and memory_search (rows of hub_tools, hub/hub_tool.c), and the limits the
 * operator RPCs (hub/rpc_memory.c) share with them.
 *
 * An entry is (memory namespace, key) -> a UTF-8 value and, optionally, an embedding vector the
 * node computed (worker/tool_memory.c). Entries are stored by the hub (hub/store.h, both
 * backends): a put or delete is answered once durable; reads and searches never wait for the
 * database on a CQ thread. Memory belongs to the agent and outlives its turns, its node, a hub
 * restart and the agent's kill: operators read it (agentry memory ls|get); only memory_delete
 * removes an entry. docs/memory.md describes the tools for operators and model authors.
 *
 * Threads: every function may be called from any thread. */
#ifndef AGENTRY_HUB_MEMORY_H
#define AGENTRY_HUB_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "hub/hub_tool.h"

/* The limits (docs/memory.md). */
#define HUB_MEMORY_KEY_MAX 512               /* bytes of a key (at least 1) */
#define HUB_MEMORY_NS_MAX 64                 /* bytes of a memory namespace: [A-Za-z0-9._-] */
#define HUB_MEMORY_VALUE_MAX (64u << 10)     /* bytes of a value */
#define HUB_MEMORY_MAX_ENTRIES 100000        /* entries per agent, all namespaces together */
#define HUB_MEMORY_DIMS_MAX 4096             /* floats in a vector */
#define HUB_MEMORY_DEFAULT_NS "default"      /* the namespace of a call that names none */
#define HUB_MEMORY_SEARCH_K 5                /* memory_search's default k */
#define HUB_MEMORY_SEARCH_K_MAX 50           /* ... and its largest */
#define HUB_MEMORY_LIST_LIMIT 20             /* memory_list's default limit */
#define HUB_MEMORY_LIST_LIMIT_MAX 100        /* ... and its largest */
#define HUB_MEMORY_PREVIEW 200               /* bytes of a value memory_list shows */
#define HUB_MEMORY_SEARCH_VALUE 2000         /* bytes of a value memory_search shows */
#define HUB_MEMORY_CACHE_BYTES (1024u << 20) /* memory_search's vectors held (memory_index.h) */
#define HUB_MEMORY_SEARCH_THREADS 2          /* threads that run searches */

/* -1 with INVALID_ARGUMENT saying what a valid one is. */
int hub_memory_check_namespace(const char *ns, struct ag_err *err);
int hub_memory_check_key(const char *key, struct ag_err *err);

/* Start and stop (hub/hub.c): new after the store opened; stop before it closes (searches under
 * way finish), free after. */
int hub_memory_start(struct hub *h, struct ag_err *err);
void hub_memory_stop(struct hub *h);
void hub_memory_free(struct hub *h);

/* The rows' run functions (hub/hub_tool.h). */
void hub_memory_put(struct hub_tool_req *r);
void hub_memory_get(struct hub_tool_req *r);
void hub_memory_list(struct hub_tool_req *r);
void hub_memory_delete(struct hub_tool_req *r);
void hub_memory_search(struct hub_tool_req *r);

#endif
