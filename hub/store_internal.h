/* hub/store_internal.h - private to hub/store*.c: the backend interface behind hub/store.h.
 *
 * Owns: the split between the generic store (store.c: queues, threads, group commit, seq
 * assignment, retries) and a backend (store_sqlite.c, store_pg.c), which only runs
 * statements on a connection it was handed. A new database is a new file plus one row in
 * store.c's backend table; nothing in store.c's logic changes.
 *
 * Connections: store.c opens two per store, the writer's (writer thread only) and the reader's
 * (the reader thread and the synchronous reads, serialized by a lock in store.c). A
 * connection is never used by two threads at the same time. The writer's is opened first and
 * closed last; it creates or migrates the schema, and it is where a backend makes sure that no
 * other process writes the database (sqlite: an exclusive flock on the file, whose descriptor
 * must outlive every sqlite connection of the process to that file, the reader's included;
 * postgres: a session advisory lock).
 * The reader's only reads.
 *
 * Errors: store.c decides whether to retry from the code alone, so a backend must map its
 * failures onto these codes and no others:
 *   AG_ALREADY_EXISTS    a unique key of this op is taken (id, request_id, (agent_id, seq));
 *   AG_NOT_FOUND         the row this op updates does not exist (0 rows changed);
 *   AG_INVALID_ARGUMENT  this op's values are rejected (too big, NULL where not allowed);
 *   AG_RESOURCE_EXHAUSTED  a MEMORY_PUT of a new key whose agent has max_entries already;
 *   AG_FAILED_PRECONDITION  the database's schema is newer than this binary, or another
 *                        process holds the database (another hub) (open only);
 *   AG_UNAVAILABLE       the database itself failed (I/O, disk full, lock held elsewhere,
 *                        connection lost): other writes would fail too, so none is retried;
 *   AG_DATA_LOSS         the database is lost for good: what this connection commits is no
 *                        longer where a restart will look (sqlite: the file or its log was
 *                        deleted, moved or replaced). Writer only, from any writer call.
 *   AG_UNKNOWN           commit only: whether the transaction was stored cannot be learned
 *                        now (postgres: the connection broke during COMMIT and the server is
 *                        still unreachable). store.c then calls nothing but resolve() (and
 *                        rollback/close) until resolve() answers.
 * The first four mean "this write is bad, the others are fine"; store.c then retries each write
 * of the batch alone. A backend may report an op's failure later than its apply(), from a later
 * apply, last_seq or commit of the same transaction (postgres pipelines them: store_pg.c), as
 * long as the code is that op's. Messages name the database and say what an operator can do.
 *
 * Lost is permanent, and store.c owns that: on AG_DATA_LOSS it fails the batch, logs
 * event=store.lost once, and refuses every later write with AG_UNAVAILABLE (the code clients
 * know for "the store is down") and the backend's message; it never calls the writer's
 * connection again except to roll back and close. So a backend reports it once, where it
 * notices, and keeps no state for it.
 *
 * Commit must be definitive: 0 means durable, -1 means not committed, except -1 with AG_UNKNOWN.
 * A backend that can lose the answer (a PostgreSQL connection dropping during COMMIT) must find
 * out which before it returns, or say AG_UNKNOWN and find out in resolve(), or the store could
 * report a committed write as failed and reuse its seqs. The one
 * exception is AG_DATA_LOSS: the backend should notice before COMMIT when it can, but if the
 * loss came during the COMMIT it may be committed into files no restart opens; no seq is handed
 * out after it, so none can be reused. */
#ifndef AGENTRY_HUB_STORE_INTERNAL_H
#define AGENTRY_HUB_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "hub/store.h"

struct hub_store__conn; /* one backend connection, opaque to store.c */

enum hub_store__role {
    HUB_STORE__WRITER, /* opened first: creates/migrates the schema, runs transactions */
    HUB_STORE__READER, /* read-only: events and agents */
};

/* One memory row of a read; returning -1 stops it (its error is returned). */
typedef int hub_store__memory_row_fn(void *arg, const struct hub_store_memory *row,
                                     struct ag_err *err);

/* A backend is a row: its URL scheme and the functions that speak its database. */
struct hub_store__backend {
    const char *scheme; /* "sqlite" serves "sqlite:PATH" */
    const char *alias;  /* another scheme for the same database ("postgresql"), or NULL */
    /* url: the whole URL (its scheme already matched), as libpq wants "postgres://..." whole.
     * fence: hub_store_opts.fence and fence_holder (token 0: none), for the writer. NULL with
     * err set on failure. */
    struct hub_store__conn *(*open)(const char *url, enum hub_store__role role,
                                    const struct hub_store_opts *fence, struct ag_err *err);
    void (*close)(struct hub_store__conn *c); /* NULL is a no-op */

    /* Writer connection only. */
    int (*begin)(struct hub_store__conn *c, struct ag_err *err);
    int (*commit)(struct hub_store__conn *c, struct ag_err *err);
    void (*rollback)(struct hub_store__conn *c); /* no-op if no transaction is open */
    /* One op inside the open transaction; an EVENT_APPEND arrives with its seq already set. */
    int (*apply)(struct hub_store__conn *c, const struct hub_store_op *op, struct ag_err *err);
    /* After commit() said AG_UNKNOWN: 0 if that transaction is durable, -1 with AG_UNKNOWN if
     * it still cannot tell (store.c asks again later; the backend paces its own retries), -1
     * with another code if it was not stored. NULL if commit() never says AG_UNKNOWN. */
    int (*resolve)(struct hub_store__conn *c, struct ag_err *err);
    /* Highest seq stored for agent_id, 0 if none. Called inside the open transaction. */
    int (*last_seq)(struct hub_store__conn *c, const char *agent_id, uint64_t *seq,
                    struct ag_err *err);

    /* Reader connection only. from_seq <= seq <= to_seq (to_seq 0 = no bound), at most max rows,
     * in seq order, cb once per row (row valid during the call). cb returning -1 stops the scan
     * and its error is returned. */
    int (*scan_events)(struct hub_store__conn *c, const char *agent_id, uint64_t from_seq,
                       uint64_t to_seq, uint64_t max, hub_store_event_fn *cb, void *arg,
                       struct ag_err *err);
    /* The agents q names (hub/store.h), in creation order, each with its highest seq. */
    int (*select_agents)(struct hub_store__conn *c, const struct hub_store_agents_query *q,
                         hub_store_agent_fn *cb, void *arg, struct ag_err *err);
    /* Every schedule row, in creation order. */
    int (*select_schedules)(struct hub_store__conn *c, hub_store_schedule_fn *cb, void *arg,
                            struct ag_err *err);
    /* Memory rows q names (hub/store.h), cb once per row (valid during the call; value and
     * vector as the kind says). GET: keys[0] only (store.c runs one per key). */
    int (*scan_memory)(struct hub_store__conn *c, const struct hub_store_memory_query *q,
                       hub_store__memory_row_fn *cb, void *arg, struct ag_err *err);
};

extern const struct hub_store__backend hub_store__sqlite_backend;
extern const struct hub_store__backend hub_store__pg_backend; /* "postgres:", "postgresql:" */

/* Test hook: while paused, neither the writer nor the reader takes anything from its queue, so a
 * test can fill a queue or line up an exact batch. hub_store_close overrides a pause. */
void hub_store__pause(struct hub_store *st, bool paused);

#endif
