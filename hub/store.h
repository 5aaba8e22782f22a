/* hub/store.h - the hub's durable state: the agents table, the append-only event log and the
 * schedules table (hub/schedule.c) and the agents' memory (key-value entries with optional
 * vectors).
 *
 * Owns: persistence only. It knows rows, not agent lifecycles; the hub decides what to write.
 *
 * Writes: a caller submits a `struct hub_store_write` (a few ops that must commit together, e.g.
 * "insert agent + append SPAWNED + append INPUT") and returns at once. The store's writer thread
 * takes every write waiting in its queue, applies them all in ONE transaction (group commit), and
 * hands the batch to the store's completion thread, which calls each write's done() in
 * submission order while the writer starts the next transaction. done() must be quick and must
 * not block (hand the result to a gRPC call, update memory, return); it may submit again.
 *
 * Sequence numbers: the store assigns each appended event its seq, per agent 1, 2, 3... with no
 * gap, at commit. done() sees them in op->u.event.seq. Seqs of a write that failed are not used:
 * the next append for that agent gets the same number again.
 *
 * Failure: if the batch transaction fails, each of its writes is retried alone in its own
 * transaction, so one bad write (e.g. a constraint violation) fails only itself (done() with
 * rc -1 and an error) and the others still commit. If the database itself fails, every write
 * gets rc -1 with AG_UNAVAILABLE. A write is never reported done before it is durable
 * (SQLite: WAL + synchronous=FULL unless the URL says otherwise), in the file a restart opens.
 *
 * One writer process: hub_store_open takes the database for this process alone and fails with
 * AG_FAILED_PRECONDITION if another process (another hub) holds it. Readers from elsewhere (the
 * sqlite3 shell) are not blocked.
 *
 * Lost store: if the database stops being the one a restart would open (SQLite: its file or its
 * -wal deleted, moved or replaced under the hub), the store notices at the next commit and
 * stops acknowledging for good: that batch fails (rolled back, unless the loss came during its
 * very COMMIT), and so does every later write, at once (submit returns -1), with AG_UNAVAILABLE
 * and one message saying what happened and what to do; the store logs it once
 * (event=store.lost). Reads still answer from the files the store has open; bound them by the
 * seqs you were acknowledged (the hub does). Only a restart on a good store clears it.
 *
 * Reads: hub_store_read_events and hub_store_read_memory are asynchronous (a reader thread with
 * its own connection, so a long replay never delays commits). select_agents and scan_events are synchronous keyed reads on
 * that connection (serialized with the reader thread): agents loaded on demand, ListAgents pages,
 * and start-up.
 *
 * Threads: submit / read_events are thread-safe. open/close are not (call from the main thread).
 * A second open of the same database in one process is refused too, but drops the first's
 * SQLite locks (POSIX fcntl semantics, see store_sqlite.c): do not.
 * Backends: "sqlite:PATH", and "postgres://..." or "postgres:KEYWORDS" (store_pg.c). */
#ifndef AGENTRY_HUB_STORE_H
#define AGENTRY_HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/queue.h"
#include "hub/usage.h"

struct hub_store;
struct hub_store_write;

/* A row of the agents table. Strings are borrowed (valid until done()/the callback returns);
 * "" and NULL both mean empty. Blobs are packed protobufs. */
struct hub_store_agent {
    const char *id;
    /* The agent's namespace, fixed at insert (NULL or "": "default"). Validated by the hub. */
    const char *namespace;
    const char *request_id; /* idempotency key: unique per namespace when not empty */
    const uint8_t *spec;    /* packed agentry.v1.AgentSpec */
    size_t spec_len;
    int state;                 /* AGENTRY__V1__AGENT_STATE__* */
    const char *node_id;       /* node of the current/last assignment */
    uint64_t epoch;            /* current assignment epoch */
    const uint8_t *checkpoint; /* packed agentry.v1.Checkpoint, may be empty */
    size_t checkpoint_len;
    const char *last_output;
    const char *last_error;
    int64_t created_ns;
    int64_t updated_ns;
    struct hub_usage usage;      /* all time */
    struct hub_usage turn_usage; /* the current (or last) turn */
    uint32_t turn_attempt;       /* placements of the current turn */
    uint32_t streak;             /* interruptions in a row with streak_reason */
    const char *streak_reason;
    uint64_t spawn_input_seq; /* seq of the Spawn's input event, 0 if none (set at insert) */
    /* Idle or yielded with an input no turn has taken yet: a restarted hub must load the agent
     * and start that turn (hub_store_select_agents, HUB_STORE_AGENTS_ACTIVE). */
    bool waiting_input;
    bool has_usage; /* read only: false for rows written before usage was stored */
    /* The agent that spawned it with the spawn_agent tool ("" for one a client spawned) and its
     * depth below its root agent (0 for a root). Set at insert, never updated. */
    const char *parent_id;
    uint32_t depth;
};

/* An event to append (write) or an event read back. */
struct hub_store_event {
    const char *agent_id;
    uint64_t seq;        /* append: set by the store at commit; read: the event's seq */
    int kind;            /* AGENTRY__V1__EVENT_KIND__* */
    const char *payload; /* JSON text, not NUL-terminated necessarily: use payload_len */
    size_t payload_len;
    const char *node_id; /* "" for hub-made events */
    int64_t time_ns;
};

/* A row of the schedules table (hub/schedule.h). Strings borrowed as an agent row's; "" and NULL
 * both mean empty. Times are Unix nanoseconds. */
struct hub_store_schedule {
    const char *id;
    const char *namespace;  /* validated by the hub, never empty */
    const char *request_id; /* idempotency key: unique per namespace when not empty */
    const char *cron;
    const uint8_t *spec; /* packed agentry.v1.AgentSpec */
    size_t spec_len;
    const char *input;
    const char *missed; /* "skip" or "catch_up_once" */
    bool paused;
    int64_t created_ns;
    int64_t next_fire_ns; /* 0 while paused */
    int64_t last_fire_ns; /* 0 before the first fire */
    const char *last_agent_id;
    uint64_t fires;
};

enum hub_store_op_type {
    HUB_STORE_AGENT_INSERT,     /* u.agent: a new row; fails if its id, or its request_id in its
                                   namespace, exists */
    HUB_STORE_AGENT_UPDATE,     /* u.agent: rewrite every mutable column of row u.agent.id (all
                                   but id, namespace, request_id, spec, created_ns and
                                   spawn_input_seq) */
    HUB_STORE_EVENT_APPEND,     /* u.event: append; the store fills u.event.seq */
    HUB_STORE_SCHEDULE_INSERT,  /* u.schedule: a new row; fails if its id, or its request_id in
                                   its namespace, exists */
    HUB_STORE_SCHEDULE_ADVANCE, /* u.schedule: set last_fire_ns, last_agent_id and fires, and
                                   next_fire_ns unless the row is paused (it stays 0 then) */
    HUB_STORE_SCHEDULE_PAUSE,   /* u.schedule: set paused and next_fire_ns */
    HUB_STORE_SCHEDULE_DELETE,  /* u.schedule.id: delete the row */
    HUB_STORE_MEMORY_PUT,       /* u.memory: insert or replace the entry (agent_id, namespace,
                                   key); a new key fails RESOURCE_EXHAUSTED when the agent already
                                   has u.memory.max_entries entries (the other ops of its write
                                   too) */
    HUB_STORE_MEMORY_DELETE,    /* u.memory: delete the entry if it exists (no error if not) */
    HUB_STORE_AGENT_DELETE,     /* u.agent.id: delete the agent's row, all its events and all its
                                   memory (DeleteAgent); no error if there is none. A later
                                   append for that id starts again at seq 1 */
};

/* An entry of an agent's memory (hub/memory.c): a row of the memory table, keyed by
 * (agent_id, namespace, key). Strings borrowed as the op's or the read's. The vector is stored as
 * dims float32s, little-endian (the hub's own byte order: the hub refuses to build elsewhere). An
 * agent's memory outlives the agent's run, its kill and its unload: operators read it
 * (ListMemory, GetMemory); nothing deletes it but memory_delete, and the agent's own deletion
 * (AGENT_DELETE). */
struct hub_store_memory {
    const char *agent_id;
    const char *namespace;
    const char *key;
    const char *value; /* write: value_len bytes of UTF-8; read: NUL-terminated, NULL when the
                          read does not carry values (HUB_STORE_MEMORY_VECTORS) */
    size_t value_len;
    const float *vector; /* dims floats; NULL: none (write), or not read (GET, LIST) */
    uint32_t dims;       /* 0: no vector; read: the stored vector's, even when not read */
    int64_t updated_ns;
    uint64_t max_entries; /* PUT: the agent's limit of entries (0: none) */
};

struct hub_store_op {
    enum hub_store_op_type type;
    union {
        struct hub_store_agent agent;
        struct hub_store_event event;
        struct hub_store_schedule schedule;
        struct hub_store_memory memory;
    } u;
};

/* Called on the completion thread once the write is durable (rc 0) or has failed (rc -1, err set).
 * Ops and their seqs may be read inside; the write may be freed or reused once it returns. */
typedef void hub_store_done_fn(struct hub_store_write *w, int rc, const struct ag_err *err);

/* Embed in (or allocate beside) the caller's own context; everything borrowed until done(). */
struct hub_store_write {
    struct hub_store_op *ops;
    size_t nops;
    hub_store_done_fn *done;
    void *arg;                    /* for the caller */
    struct ag_qnode qn;           /* private to the store: its write queue */
    struct hub_store_write *next; /* private to the store: the batch it is run in */
};

struct ag_metric;

struct hub_store_opts {
    size_t queue_cap;      /* writes waiting at most; 0 = 65536. Full -> AG_RESOURCE_EXHAUSTED */
    size_t max_batch;      /* writes per transaction at most; 0 = 1024 */
    size_t read_queue_cap; /* read requests waiting at most; 0 = 4096 */
    /* A leader's fencing token (> 0: from its election, hub/cluster.c) and its name: the store
     * is taken over for this token, and every transaction commits only while the database
     * still names it, so a hub deposed by a newer leader can never commit again (its writes
     * then fail for good, AG_DATA_LOSS then UNAVAILABLE, as a lost store's). PostgreSQL only;
     * SQLite's file lock already keeps a second process out. 0: no fencing (one hub, as before:
     * a database a leader took over then refuses it). */
    int64_t fence;
    const char *fence_holder;
    /* Histograms (common/metrics.h) the writer observes at each commit: its time in
     * nanoseconds (BEGIN to COMMIT) and its writes. NULL: not observed. */
    struct ag_metric *commit_seconds, *commit_writes;
};

/* url: "sqlite:PATH" (PATH created if missing, schema migrated). Optional query:
 * "sqlite:PATH?synchronous=normal" to trade power-cut durability for speed (logged loudly).
 * "postgres://..." / "postgresql://..." (a libpq URI) or "postgres:KEY=VALUE ..." (a libpq
 * keyword conninfo): see hub/store_pg.c. */
struct hub_store *hub_store_open(const char *url, const struct hub_store_opts *opts,
                                 struct ag_err *err);
/* url as it may be shown to people (logs, errors): a password in it ("user:PASS@" of a URI, or
 * a password=VALUE keyword) replaced by "***". Truncated to fit cap (at least 1). */
void hub_store_url_redact(const char *url, char *buf, size_t cap);

/* Stops accepting, completes every write and read already queued (their callbacks run), joins
 * threads, closes connections. NULL is a no-op. */
void hub_store_close(struct hub_store *st);

/* Queue a write. On -1 (queue full: RESOURCE_EXHAUSTED; closed or broken: UNAVAILABLE) done()
 * will never be called for it. */
int hub_store_submit(struct hub_store *st, struct hub_store_write *w, struct ag_err *err);

/* Events of one agent with from_seq <= seq <= to_seq (to_seq 0 = no upper bound), in order, at
 * most max. Called on the reader thread; rows valid during the call only. n < max means the
 * range was exhausted. On error rows is NULL and err set. */
typedef void hub_store_events_fn(void *arg, const struct hub_store_event *rows, size_t n,
                                 const struct ag_err *err);
int hub_store_read_events(struct hub_store *st, const char *agent_id, uint64_t from_seq,
                          uint64_t to_seq, size_t max, hub_store_events_fn *cb, void *arg,
                          struct ag_err *err);

/* The namespace an agent without one lives in (rows from before namespaces, empty requests). */
#define HUB_STORE_DEFAULT_NAMESPACE "default"

/* Which agent rows hub_store_select_agents reads; each is an index range, never a scan of all
 * agents. Rows come in creation order (created_ns, then id), but ENDED's in end order. */
enum hub_store_agents_kind {
    HUB_STORE_AGENTS_ACTIVE,  /* pending, running, or waiting_input: what a hub starts with */
    HUB_STORE_AGENTS_ID,      /* the agent whose id is key */
    HUB_STORE_AGENTS_REQUEST, /* the agent whose request_id is key, in namespace */
    HUB_STORE_AGENTS_PAGE,    /* up to max rows after (after_ns, after_id), of state (0: any),
                                 of namespace (NULL or "": any), or of one parent */
    HUB_STORE_AGENTS_ENDED,   /* retention (hub/retention.c): up to max root agents (no parent)
                                 killed or failed, last updated before before_ns, in
                                 (updated_ns, id) order strictly after (after_ns, after_id),
                                 through the partial index agents_ended */
};

struct hub_store_agents_query {
    enum hub_store_agents_kind kind;
    const char *key; /* ID, REQUEST */
    /* REQUEST: the request id's namespace (NULL or "": "default"). PAGE: only this one's agents
     * (NULL or "": every namespace), through the index (namespace[, state], created_ns, id). */
    const char *namespace;
    int state; /* PAGE: AGENTRY__V1__AGENT_STATE__*, 0 for any */
    int64_t after_ns;
    const char *after_id; /* PAGE, ENDED: rows strictly after (after_ns, after_id); "" or NULL:
                             first */
    uint64_t max;         /* PAGE, ENDED */
    int64_t before_ns;    /* ENDED: only rows with updated_ns < before_ns */
    /* PAGE: only the sub-agents of this agent, through the index (parent_id, created_ns, id);
     * namespace and state are then not filtered by the store (a sub-agent lives in its
     * parent's namespace: the caller filters the state). */
    const char *parent_id;
};

/* Agent rows, with each one's highest seq (0 if none). Return -1 from cb to stop (its error is
 * returned). Synchronous, on the reader's connection (a keyed read: an agent loaded on demand,
 * a page of ListAgents, the active agents at start-up); cb must not call the store's
 * synchronous reads again. */
typedef int hub_store_agent_fn(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                               struct ag_err *err);
int hub_store_select_agents(struct hub_store *st, const struct hub_store_agents_query *q,
                            hub_store_agent_fn *cb, void *arg, struct ag_err *err);
/* Like read_events but synchronous (on the reader's connection, as select_agents), calling cb
 * once per event. */
typedef int hub_store_event_fn(void *arg, const struct hub_store_event *ev, struct ag_err *err);
int hub_store_scan_events(struct hub_store *st, const char *agent_id, uint64_t from_seq,
                          hub_store_event_fn *cb, void *arg, struct ag_err *err);

/* Every schedule row, in creation order (created_ns, then id): read once, at start-up
 * (hub/schedule.c keeps them in memory). Synchronous, on the reader's connection, as
 * select_agents; return -1 from cb to stop (its error is returned). */
typedef int hub_store_schedule_fn(void *arg, const struct hub_store_schedule *row,
                                  struct ag_err *err);
int hub_store_select_schedules(struct hub_store *st, hub_store_schedule_fn *cb, void *arg,
                               struct ag_err *err);
/* Memory reads: asynchronous, on the reader thread (like read_events), so an RPC or a hub tool
 * never waits for the database on a CQ thread. Keys compare bytewise in both backends. */
enum hub_store_memory_kind {
    HUB_STORE_MEMORY_GET,     /* the entries of keys[] in namespace, in that order; absent keys
                                 give no row */
    HUB_STORE_MEMORY_LIST,    /* up to max entries in (namespace, key) order strictly after
                                 (after_namespace, after_key), whose key starts with prefix; of
                                 namespace (NULL or "": every namespace) */
    HUB_STORE_MEMORY_VECTORS, /* the entries of namespace that have a vector, with the vector
                                 and without the value, in key order: after after_key (NULL or
                                 "": from the first), at most max (0: all) */
};

struct hub_store_memory_query {
    enum hub_store_memory_kind kind;
    const char *agent_id;
    const char *namespace;
    const char *const *keys; /* GET */
    size_t nkeys;
    const char *prefix;          /* LIST: NULL or "": any */
    const char *after_namespace; /* LIST: NULL or "": from the first */
    const char *after_key;       /* LIST, VECTORS */
    uint64_t max;                /* LIST, VECTORS */
};

/* Called on the reader thread; rows valid during the call only. On error rows is NULL and err
 * set. The query was copied at submit: the caller's strings need not outlive the call. */
typedef void hub_store_memory_fn(void *arg, const struct hub_store_memory *rows, size_t n,
                                 const struct ag_err *err);
int hub_store_read_memory(struct hub_store *st, const struct hub_store_memory_query *q,
                          hub_store_memory_fn *cb, void *arg, struct ag_err *err);

struct hub_store_stats {
    uint64_t commits;     /* transactions committed */
    uint64_t writes;      /* writes completed OK */
    uint64_t events;      /* events appended */
    uint64_t failed;      /* writes completed with an error */
    uint64_t max_batch;   /* largest batch committed so far */
    uint64_t queue_depth; /* writes waiting now */
};
void hub_store_get_stats(struct hub_store *st, struct hub_store_stats *out);

#endif
