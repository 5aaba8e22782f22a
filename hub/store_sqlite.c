/* hub/store_sqlite.c - the SQLite backend of hub/store.h.
 *
 * URL: "sqlite:PATH[?OPTION&...]" with OPTION one of synchronous=full|normal|off (default full;
 * anything weaker is logged as a warning) and busy_timeout_ms=N (default 5000: how long a
 * statement waits for a lock held by another process before the write fails UNAVAILABLE).
 *
 * Owns: one sqlite3 handle per struct hub_store__conn, its prepared statements (prepared once at
 * open, reset after every use), the schema and its migrations (PRAGMA user_version), and, on the
 * writer's conn, the exclusive lock on the database file and the identity of the files it writes,
 * and the "agentry-walbuf" VFS through which that conn writes its log (one write per commit
 * instead of two per page; see "the writer's log" below).
 *
 * Threads: a conn is used by one thread at a time (see store_internal.h), so handles are opened
 * with SQLITE_OPEN_NOMUTEX; we only require a thread-safe library build, since the writer's and
 * the reader's handles live on different threads.
 *
 * Durability: journal_mode=WAL, synchronous=FULL unless the URL asks for less (logged as a
 * warning at open). In WAL mode FULL fsyncs the log at every COMMIT, which is what lets the store
 * report a write done only once it would survive a power cut; WAL also lets the reader's snapshot
 * run while the writer commits. The writer uses BEGIN IMMEDIATE so it takes the write lock at
 * the start of a batch and never fails half-way on a lock upgrade.
 *
 * One writer process, enforced: the writer's conn opens the database file itself and takes
 * flock(LOCK_EX|LOCK_NB) on it before SQLite touches it, so a second hub on the same file fails
 * at open (FAILED_PRECONDITION, "in use by another process") instead of interleaving seqs with
 * ours. flock, not fcntl: on Linux the two never interact, so SQLite's own fcntl locks, our
 * reader's conn and other processes' readers (a sqlite3 shell on a live hub) are unaffected,
 * and the kernel drops the lock with the process, so a restart after SIGKILL works at once. The
 * lock is advisory: it keeps out another hub, not a program that writes without asking. (On
 * NFS Linux emulates flock with fcntl locks; WAL mode needs a local filesystem anyway.)
 * POSIX pitfall: closing ANY descriptor a process holds on a file drops all of that process's
 * fcntl locks on it, SQLite's included. So the locked descriptor stays open until the writer's
 * handle is closed, and store.c closes the writer's conn after the reader's (store_internal.h).
 * A second open in the same process is refused too, but closing its descriptor drops the
 * first's SQLite locks; the hub opens its store once, so only tests do that.
 *
 * Files going away: just before and just after every COMMIT the writer checks that PATH still
 * names the file it locked and that PATH-wal is still the log it writes (stat(2)s, next to an
 * fsync; sqlite_commit says why both sides). If either was deleted, moved or replaced, what it
 * commits is not where a restart will look: the commit reports AG_DATA_LOSS and store.c refuses
 * every write from then on (store_internal.h). The reader goes on reading the files it has open.
 * At close, a writer whose file left PATH folds its log into that file and empties it, so PATH
 * keeps no log of another database to replay (orphan_checkpoint).
 *
 * Disk full (SQLITE_FULL, from the disk or a page limit): UNAVAILABLE with a message saying so;
 * SQLite rolls the transaction back, so nothing of it is stored, and the next one succeeds once
 * there is room: store.c retries every write, nothing here keeps state for it.
 *
 * Invariants: one process writes a database file (the hub's seq cache assumes it; the lock
 * enforces it); every statement is reset before its function returns, so no read snapshot
 * outlives a call and WAL checkpoints are never held back by an idle connection. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "hub/store_internal.h"

/* How long a statement waits for a lock another process holds before failing UNAVAILABLE. */
#define STORE_SQLITE_BUSY_MS 5000

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_AGENT_INSERT,
    ST_AGENT_UPDATE,
    ST_EVENT_INSERT,
    ST_LAST_SEQ,
    ST_EVENTS,
    ST_AGENTS_ACTIVE, /* the rows of hub_store_agents_kind, in its order */
    ST_AGENTS_ID,
    ST_AGENTS_REQUEST,
    ST_AGENTS_PAGE,
    ST_AGENTS_PAGE_STATE,
    ST_AGENTS_PAGE_NS, /* PAGE of one namespace */
    ST_AGENTS_PAGE_NS_STATE,
    ST_SCHEDULE_INSERT,
    ST_SCHEDULE_ADVANCE,
    ST_SCHEDULE_PAUSE,
    ST_SCHEDULE_DELETE,
    ST_SCHEDULES,
    ST_AGENTS_PAGE_PARENT, /* PAGE of one parent's sub-agents */
    ST_MEM_EXISTS,         /* memory (migration 8) */
    ST_MEM_ENTRIES,
    ST_MEM_UPSERT,
    ST_MEM_COUNT_ADD,
    ST_MEM_DELETE,
    ST_MEM_GET,
    ST_MEM_LIST_NS,
    ST_MEM_LIST_ALL,
    ST_MEM_VECTORS,
    ST_AGENT_DELETE, /* AGENT_DELETE: the row, then its events, memory and memory count */
    ST_AGENT_DELETE_EVENTS,
    ST_AGENT_DELETE_MEMORY,
    ST_AGENT_DELETE_MEM_COUNT,
    ST_AGENTS_ENDED, /* retention (migration 9) */
    ST_COUNT
};

/* The columns sqlite_select_agents reads, in order, with each agent's highest seq. */
#define AGENT_SELECT                                                                               \
    "SELECT id, request_id, spec, state, node_id, epoch, checkpoint, last_output, "                \
    "last_error, created_ns, updated_ns, "                                                         \
    "(SELECT seq FROM events e WHERE e.agent_id = a.id ORDER BY seq DESC LIMIT 1), "               \
    "input_tokens, output_tokens, model_calls, tool_calls, turn_input_tokens, "                    \
    "turn_output_tokens, turn_model_calls, turn_tool_calls, turn_attempt, "                        \
    "interrupt_streak, interrupt_reason, spawn_input_seq, waiting_input, namespace, "              \
    "cost_nano_usd, turn_cost_nano_usd, parent_id, depth "                                         \
    "FROM agents a "
/* The columns of the schedules table (migration 6), in the order statements list them. */
#define SCHEDULE_COLS                                                                              \
    "id, namespace, request_id, cron, spec, input, missed, paused, created_ns, next_fire_ns, "     \
    "last_fire_ns, last_agent_id, fires"
/* The predicate of the index agents_active (migration 3): the query must say it the same way for
 * the planner to use the index. */
#define AGENT_ACTIVE "(state IN (1, 2) OR waiting_input <> 0)"
/* The predicate of the index agents_ended (migration 9), said the same way by ST_AGENTS_ENDED:
 * root agents failed (5) or killed (6). */
#define AGENT_ENDED "parent_id = '' AND state IN (5, 6)"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_AGENT_INSERT] = "INSERT INTO agents(id, request_id, spec, state, node_id, epoch, "
                        "checkpoint, last_output, last_error, created_ns, updated_ns, "
                        "input_tokens, output_tokens, model_calls, tool_calls, turn_input_tokens, "
                        "turn_output_tokens, turn_model_calls, turn_tool_calls, turn_attempt, "
                        "interrupt_streak, interrupt_reason, spawn_input_seq, waiting_input, "
                        "namespace, cost_nano_usd, turn_cost_nano_usd, parent_id, depth) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                        "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)",
    [ST_AGENT_UPDATE] = "UPDATE agents SET state = ?2, node_id = ?3, epoch = ?4, checkpoint = ?5, "
                        "last_output = ?6, last_error = ?7, updated_ns = ?8, input_tokens = ?9, "
                        "output_tokens = ?10, model_calls = ?11, tool_calls = ?12, "
                        "turn_input_tokens = ?13, turn_output_tokens = ?14, "
                        "turn_model_calls = ?15, turn_tool_calls = ?16, turn_attempt = ?17, "
                        "interrupt_streak = ?18, interrupt_reason = ?19, waiting_input = ?20, "
                        "cost_nano_usd = ?21, turn_cost_nano_usd = ?22 WHERE id = ?1",
    [ST_EVENT_INSERT] = "INSERT INTO events(agent_id, seq, kind, payload, node_id, time_ns) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* ORDER BY .. LIMIT 1 rather than MAX() so the plan is one seek on the primary key. */
    [ST_LAST_SEQ] = "SELECT seq FROM events WHERE agent_id = ?1 ORDER BY seq DESC LIMIT 1",
    [ST_EVENTS] = "SELECT seq, kind, payload, node_id, time_ns FROM events "
                  "WHERE agent_id = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
    [ST_AGENTS_ACTIVE] = AGENT_SELECT "WHERE " AGENT_ACTIVE " ORDER BY created_ns, id",
    [ST_AGENTS_ID] = AGENT_SELECT "WHERE id = ?1",
    [ST_AGENTS_REQUEST] = AGENT_SELECT "WHERE namespace = ?2 AND request_id = ?1",
    [ST_AGENTS_PAGE] = AGENT_SELECT "WHERE (created_ns, id) > (?1, ?2) "
                                    "ORDER BY created_ns, id LIMIT ?3",
    [ST_AGENTS_PAGE_STATE] = AGENT_SELECT "WHERE state = ?4 AND (created_ns, id) > (?1, ?2) "
                                          "ORDER BY state, created_ns, id LIMIT ?3",
    [ST_AGENTS_PAGE_NS] = AGENT_SELECT "WHERE namespace = ?5 AND (created_ns, id) > (?1, ?2) "
                                       "ORDER BY namespace, created_ns, id LIMIT ?3",
    [ST_AGENTS_PAGE_NS_STATE] = AGENT_SELECT
    "WHERE namespace = ?5 AND state = ?4 AND (created_ns, id) > (?1, ?2) "
    "ORDER BY namespace, state, created_ns, id LIMIT ?3",
    [ST_SCHEDULE_INSERT] = "INSERT INTO schedules(" SCHEDULE_COLS ") "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_SCHEDULE_ADVANCE] = "UPDATE schedules SET last_fire_ns = ?2, last_agent_id = ?3, "
                            "fires = ?4, next_fire_ns = CASE WHEN paused <> 0 THEN 0 ELSE ?5 END "
                            "WHERE id = ?1",
    [ST_SCHEDULE_PAUSE] = "UPDATE schedules SET paused = ?2, next_fire_ns = ?3 WHERE id = ?1",
    [ST_SCHEDULE_DELETE] = "DELETE FROM schedules WHERE id = ?1",
    [ST_SCHEDULES] = "SELECT " SCHEDULE_COLS " FROM schedules ORDER BY created_ns, id",
    [ST_AGENTS_PAGE_PARENT] = AGENT_SELECT "WHERE parent_id = ?4 AND (created_ns, id) > (?1, ?2) "
                                           "ORDER BY parent_id, created_ns, id LIMIT ?3",
    [ST_MEM_EXISTS] = "SELECT 1 FROM memory WHERE agent_id = ?1 AND namespace = ?2 AND key = ?3",
    [ST_MEM_ENTRIES] = "SELECT entries FROM memory_usage WHERE agent_id = ?1",
    [ST_MEM_UPSERT] = "INSERT INTO memory(agent_id, namespace, key, value, vector, dims, "
                      "updated_ns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                      "ON CONFLICT(agent_id, namespace, key) DO UPDATE SET value = excluded.value, "
                      "vector = excluded.vector, dims = excluded.dims, "
                      "updated_ns = excluded.updated_ns",
    [ST_MEM_COUNT_ADD] = "INSERT INTO memory_usage(agent_id, entries) VALUES(?1, ?2) "
                         "ON CONFLICT(agent_id) DO UPDATE SET entries = entries + ?2",
    [ST_MEM_DELETE] = "DELETE FROM memory WHERE agent_id = ?1 AND namespace = ?2 AND key = ?3",
    [ST_MEM_GET] = "SELECT namespace, key, value, NULL, dims, updated_ns FROM memory "
                   "WHERE agent_id = ?1 AND namespace = ?2 AND key = ?3",
    /* key >= prefix lets the seek start at the prefix; substr() keeps only its keys. */
    [ST_MEM_LIST_NS] = "SELECT namespace, key, value, NULL, dims, updated_ns FROM memory "
                       "WHERE agent_id = ?1 AND namespace = ?2 AND key > ?3 AND key >= ?4 "
                       "AND substr(key, 1, length(?4)) = ?4 ORDER BY key LIMIT ?5",
    [ST_MEM_LIST_ALL] = "SELECT namespace, key, value, NULL, dims, updated_ns FROM memory "
                        "WHERE agent_id = ?1 AND (namespace, key) > (?2, ?3) "
                        "AND substr(key, 1, length(?4)) = ?4 ORDER BY namespace, key LIMIT ?5",
    [ST_MEM_VECTORS] = "SELECT namespace, key, NULL, vector, dims, updated_ns FROM memory "
                       "WHERE agent_id = ?1 AND namespace = ?2 AND key > ?3 "
                       "AND vector IS NOT NULL ORDER BY key LIMIT ?4",
    [ST_AGENT_DELETE] = "DELETE FROM agents WHERE id = ?1",
    [ST_AGENT_DELETE_EVENTS] = "DELETE FROM events WHERE agent_id = ?1",
    [ST_AGENT_DELETE_MEMORY] = "DELETE FROM memory WHERE agent_id = ?1",
    [ST_AGENT_DELETE_MEM_COUNT] = "DELETE FROM memory_usage WHERE agent_id = ?1",
    /* INDEXED BY: without statistics the planner prefers agents_by_parent (parent_id = ''),
     * which would read every root and sort them. */
    [ST_AGENTS_ENDED] = AGENT_SELECT "INDEXED BY agents_ended "
                                     "WHERE " AGENT_ENDED " AND updated_ns < ?4 "
                                     "AND (updated_ns, id) > (?1, ?2) "
                                     "ORDER BY updated_ns, id LIMIT ?3",
};

/* The columns of schema version 3, which migration 4 copies. */
#define AGENT_V3_COLS                                                                              \
    "id, request_id, spec, state, node_id, epoch, checkpoint, last_output, last_error, "           \
    "created_ns, updated_ns, input_tokens, output_tokens, model_calls, tool_calls, "               \
    "turn_input_tokens, turn_output_tokens, turn_model_calls, turn_tool_calls, turn_attempt, "     \
    "interrupt_streak, interrupt_reason, spawn_input_seq, waiting_input"

/* migrations[i] takes user_version i to i + 1. Append only: a shipped step never changes.
 * request_id is NULL when empty, so UNIQUE holds only between agents that have one. */
static const char *const migrations[] = {
    "CREATE TABLE agents("
    " id TEXT NOT NULL PRIMARY KEY, request_id TEXT UNIQUE, spec BLOB,"
    " state INTEGER NOT NULL, node_id TEXT NOT NULL, epoch INTEGER NOT NULL, checkpoint BLOB,"
    " last_output TEXT NOT NULL, last_error TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);"
    "CREATE INDEX agents_by_creation ON agents(created_ns, id);"
    "CREATE TABLE events("
    " agent_id TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " payload TEXT NOT NULL, node_id TEXT NOT NULL, time_ns INTEGER NOT NULL,"
    " PRIMARY KEY(agent_id, seq)) WITHOUT ROWID;",
    /* 2: usage counted by the hub from events (NULL: a row from before, whose checkpoint's usage
     * stands in), the current turn's attempts and interruptions, the Spawn's input seq. */
    "ALTER TABLE agents ADD COLUMN input_tokens INTEGER;"
    "ALTER TABLE agents ADD COLUMN output_tokens INTEGER;"
    "ALTER TABLE agents ADD COLUMN model_calls INTEGER;"
    "ALTER TABLE agents ADD COLUMN tool_calls INTEGER;"
    "ALTER TABLE agents ADD COLUMN turn_input_tokens INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN turn_output_tokens INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN turn_model_calls INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN turn_tool_calls INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN turn_attempt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN interrupt_streak INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN interrupt_reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE agents ADD COLUMN spawn_input_seq INTEGER NOT NULL DEFAULT 0;",
    /* 3: a hub loads only the agents that need it (hub/store.h, select_agents): the active ones
     * at start-up, others by id or request id when asked for, ListAgents a page at a time. */
    "ALTER TABLE agents ADD COLUMN waiting_input INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX agents_active ON agents(created_ns, id) WHERE " AGENT_ACTIVE ";"
    "CREATE INDEX agents_by_state ON agents(state, created_ns, id);",
    /* 4: namespaces. request_id becomes unique per namespace, so its column-level UNIQUE (an
     * index SQLite cannot drop) has to go: the table is rebuilt, SQLite's documented way to
     * change a constraint (events, the big table, is untouched). Every existing agent lands in
     * 'default' with its request_id unchanged, so existing retries still find their agent. */
    "CREATE TABLE agents_v4("
    " id TEXT NOT NULL PRIMARY KEY, request_id TEXT, spec BLOB,"
    " state INTEGER NOT NULL, node_id TEXT NOT NULL, epoch INTEGER NOT NULL, checkpoint BLOB,"
    " last_output TEXT NOT NULL, last_error TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,"
    " input_tokens INTEGER, output_tokens INTEGER, model_calls INTEGER, tool_calls INTEGER,"
    " turn_input_tokens INTEGER NOT NULL DEFAULT 0, turn_output_tokens INTEGER NOT NULL DEFAULT 0,"
    " turn_model_calls INTEGER NOT NULL DEFAULT 0, turn_tool_calls INTEGER NOT NULL DEFAULT 0,"
    " turn_attempt INTEGER NOT NULL DEFAULT 0, interrupt_streak INTEGER NOT NULL DEFAULT 0,"
    " interrupt_reason TEXT NOT NULL DEFAULT '', spawn_input_seq INTEGER NOT NULL DEFAULT 0,"
    " waiting_input INTEGER NOT NULL DEFAULT 0, namespace TEXT NOT NULL DEFAULT 'default');"
    "INSERT INTO agents_v4(" AGENT_V3_COLS ") SELECT " AGENT_V3_COLS " FROM agents;"
    "DROP TABLE agents;"
    "ALTER TABLE agents_v4 RENAME TO agents;"
    "CREATE INDEX agents_by_creation ON agents(created_ns, id);"
    "CREATE INDEX agents_active ON agents(created_ns, id) WHERE " AGENT_ACTIVE ";"
    "CREATE INDEX agents_by_state ON agents(state, created_ns, id);"
    "CREATE UNIQUE INDEX agents_by_request_id ON agents(namespace, request_id);"
    "CREATE INDEX agents_by_namespace ON agents(namespace, created_ns, id);"
    "CREATE INDEX agents_by_namespace_state ON agents(namespace, state, created_ns, id);",
    /* 5: what the model calls cost (types.proto, Usage.cost_usd), in nano-dollars so sums stay
     * exact integers. Rows from before read 0: nothing was priced then. */
    ("ALTER TABLE agents ADD COLUMN cost_nano_usd INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE agents ADD COLUMN turn_cost_nano_usd INTEGER NOT NULL DEFAULT 0;"),
    /* 6: cron schedules (hub/schedule.c). request_id is NULL when empty, unique per namespace
     * as an agent's. Which slots fired is not here: each slot's agent carries the request id
     * "schedule/<id>/<slot>", so the agents' unique index records it. */
    ("CREATE TABLE schedules("
     " id TEXT NOT NULL PRIMARY KEY, namespace TEXT NOT NULL, request_id TEXT,"
     " cron TEXT NOT NULL, spec BLOB, input TEXT NOT NULL, missed TEXT NOT NULL,"
     " paused INTEGER NOT NULL, created_ns INTEGER NOT NULL, next_fire_ns INTEGER NOT NULL,"
     " last_fire_ns INTEGER NOT NULL, last_agent_id TEXT NOT NULL, fires INTEGER NOT NULL);"
     "CREATE UNIQUE INDEX schedules_by_request_id ON schedules(namespace, request_id);"),
    /* 7: sub-agents (the spawn_agent tool): the parent and the depth below the root, fixed at
     * insert; GetAgent's children and ListAgents' parent filter read them through the index. */
    ("ALTER TABLE agents ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE agents ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX agents_by_parent ON agents(parent_id, created_ns, id);"),
    /* 8: the agents' memory (hub/memory.c): an entry per (agent, memory namespace, key), its
     * vector float32 little-endian or NULL; memory_usage counts each agent's entries, so the
     * limit on them costs one keyed read per new key, not a count. A rowid table: values run to
     * 64 KiB, which WITHOUT ROWID tables store badly. IF NOT EXISTS: a test that rewinds
     * user_version to rerun an earlier step reruns this one too. */
    ("CREATE TABLE IF NOT EXISTS memory("
     " agent_id TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
     " vector BLOB, dims INTEGER NOT NULL DEFAULT 0, updated_ns INTEGER NOT NULL,"
     " PRIMARY KEY(agent_id, namespace, key));"
     "CREATE TABLE IF NOT EXISTS memory_usage(agent_id TEXT NOT NULL PRIMARY KEY, entries INTEGER NOT NULL);"),
    /* 9: retention (hub/retention.c) finds the roots that ended longest ago without reading the
     * agents that did not: a partial index, so live agents cost it nothing. */
    ("CREATE INDEX agents_ended ON agents(updated_ns, id) WHERE " AGENT_ENDED ";"),
};
#define SCHEMA_VERSION ((int)AG_ARRAY_SIZE(migrations))

/* Which file a name stood for when we opened it; a name can come to stand for another. */
struct file_id {
    dev_t dev;
    ino_t ino;
};

struct hub_store__conn {
    sqlite3 *db;
    char *path; /* owned: for messages, and the name a restart opens */
    sqlite3_stmt *stmt[ST_COUNT];
    /* Writer only. lock_fd is the database file under flock, open until after db is closed
     * (-1: none, the reader). wal_name is SQLite's (borrowed from db); wal_known turns true
     * once the log exists, which it does from the first transaction on. */
    int lock_fd;
    struct file_id db_id, wal_id;
    const char *wal_name;
    bool wal_known;
};

/* --- errors ----------------------------------------------------------------------------- */

/* A failure of the database rather than of one op: the operator has to act. A full disk (or a
 * size limit: SQLite reports both as SQLITE_FULL) needs nothing but space: the transaction is
 * rolled back, and the next one succeeds once there is room. */
static int db_err(struct hub_store__conn *c, const char *what, struct ag_err *err)
{
    if ((sqlite3_extended_errcode(c->db) & 0xff) == SQLITE_FULL)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot %s: disk full at sqlite database '%s' (%s): free space; writes "
                          "resume by themselves",
                          what, c->path, sqlite3_errmsg(c->db));
    /* Met on the first read of a file that is some other file (a typo in --store): say that. */
    if ((sqlite3_extended_errcode(c->db) & 0xff) == SQLITE_NOTADB)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "'%s' is not an SQLite database (%s): point --store at an agentry "
                          "database, or at a new file to create one",
                          c->path, sqlite3_errmsg(c->db));
    return ag_err_set(err, AG_UNAVAILABLE,
                      "cannot %s in sqlite database '%s': %s; check disk space, permissions and "
                      "that no other process holds the database",
                      what, c->path, sqlite3_errmsg(c->db));
}

/* rc from a step or bind of one op: constraint and size problems are the op's own fault. */
static int op_err(struct hub_store__conn *c, int rc, const char *what, const char *id,
                  struct ag_err *err)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return ag_err_set(err, AG_ALREADY_EXISTS, "cannot %s '%s': %s", what, id,
                          sqlite3_errmsg(c->db));
    case SQLITE_TOOBIG:
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot %s '%s': value too big for sqlite",
                          what, id);
    default:
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot %s '%s': %s", what, id,
                              sqlite3_errmsg(c->db));
        return db_err(c, what, err);
    }
}

/* --- binding: NULL and "" are both empty; only request_id is stored as NULL ------------------ */

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

static int bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    return v && *v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static const char *ns_or_default(const char *ns)
{
    return ns && *ns ? ns : HUB_STORE_DEFAULT_NAMESPACE;
}

static int bind_blob(sqlite3_stmt *s, int i, const uint8_t *p, size_t n)
{
    return n ? sqlite3_bind_blob64(s, i, p, n, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static sqlite3_int64 clamp64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    const char *v = (const char *)sqlite3_column_text(s, i);
    return v ? v : "";
}

/* Steps a statement that returns no row and resets it; the step's rc (SQLITE_DONE = ok). */
static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc;
}

/* --- the files: one writer process, and noticing they go away -------------------------------- */

/* Opens the database file ourselves, creating it as SQLite would (0644; SQLite takes an empty
 * file for a new, empty database), and takes it for this process alone. */
static int lock_take(struct hub_store__conn *c, struct ag_err *err)
{
    c->lock_fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->lock_fd < 0 && errno == EISDIR)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "sqlite database '%s' is a directory: give a file in it, like "
                          "--store sqlite:%s/agentry.db",
                          c->path, c->path);
    if (c->lock_fd < 0)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot open sqlite database '%s': %s; check that its directory exists "
                          "and is writable",
                          c->path, strerror(errno));
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return ag_err_set(err, AG_FAILED_PRECONDITION,
                              "sqlite database '%s' is in use by another process (another "
                              "agent-hub?); stop it or use another --store",
                              c->path);
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot lock sqlite database '%s': %s; put it on a local filesystem",
                          c->path, strerror(errno));
    }
    struct stat sb;
    if (fstat(c->lock_fd, &sb) != 0)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot stat sqlite database '%s': %s", c->path,
                          strerror(errno));
    c->db_id = (struct file_id){sb.st_dev, sb.st_ino};
    return 0;
}

enum file_fate { FILE_HERE, FILE_GONE, FILE_REPLACED };

/* Whether name still stands for the file id was taken from. A stat failing for another reason
 * (EACCES after a chmod of the directory, EIO) proves nothing, so the file counts as here: a
 * commit is never reported lost on a guess. Inode numbers cannot be reused under us, since we
 * hold the files open. */
static enum file_fate file_fate(const char *name, const struct file_id *id)
{
    struct stat sb;
    if (stat(name, &sb) != 0)
        return errno == ENOENT || errno == ENOTDIR ? FILE_GONE : FILE_HERE;
    return sb.st_dev == id->dev && sb.st_ino == id->ino ? FILE_HERE : FILE_REPLACED;
}

static void wal_remember(struct hub_store__conn *c)
{
    struct stat sb;
    if (c->wal_name && stat(c->wal_name, &sb) == 0) {
        c->wal_id = (struct file_id){sb.st_dev, sb.st_ino};
        c->wal_known = true;
    }
}

/* Around a COMMIT: is what it makes durable where a restart will look? PATH is what a restart
 * opens (through a symlink, if it is one, as now); the log must be the one SQLite writes, or
 * the newest commits live only in a file no one will open again. AG_DATA_LOSS if not. */
static int files_check(struct hub_store__conn *c, struct ag_err *err)
{
    enum file_fate db = file_fate(c->path, &c->db_id);
    if (db != FILE_HERE)
        return ag_err_set(err, AG_DATA_LOSS,
                          "sqlite database '%s' was %s while in use; no write is stored from "
                          "now on; stop the hub, then restore the file or restart on another "
                          "--store",
                          c->path, db == FILE_GONE ? "deleted or moved away" : "replaced");
    if (!c->wal_known) {
        wal_remember(c);
        return 0;
    }
    enum file_fate wal = file_fate(c->wal_name, &c->wal_id);
    if (wal != FILE_HERE)
        /* A clean close checkpoints from the log it still has open into the database, which is
         * still in place: hence SIGTERM, not SIGKILL (test-store.c checks it). */
        return ag_err_set(err, AG_DATA_LOSS,
                          "sqlite log '%s' was %s while in use; no write is stored from now on; "
                          "stop the hub with SIGTERM (that copies the log into the database) and "
                          "restart it",
                          c->wal_name, wal == FILE_GONE ? "deleted or moved away" : "replaced");
    return 0;
}

/* --- the writer's log: one write per commit --------------------------------------------------*/

/* SQLite writes a WAL frame as two pwrite(2)s (its 24-byte header, then the page), so a group
 * commit touching 30 pages costs 60 syscalls before its fsync. The writer's connection opens its
 * files through this shim of the default VFS: writes to the log (SQLITE_OPEN_WAL) that append
 * right after the previous one are kept in memory, up to WALBUF_CAP bytes, and reach the file in
 * one write before anything that needs them there: a sync, a read, a size, a truncate, a file
 * control, a close, a write elsewhere, or a full buffer. Other files pass straight through.
 *
 * Durability is unchanged: SQLite acknowledges a commit only after the log's xSync returned, and
 * xSync writes the buffer first, so a failed write fails the commit (the transaction rolls back
 * and SQLITE_FULL still says "disk full"). Readers (our reader's connection, another process)
 * find frames through the wal-index, which SQLite updates after that sync: they never look for a
 * frame still in the buffer. That holds only when every commit syncs the log, so the shim is
 * used with synchronous=FULL alone; with NORMAL or OFF the writer opens the default VFS. */
#define WALBUF_VFS "agentry-walbuf"
/* Below 128 KiB: the unix VFS masks a write's size to 17 bits (seekAndWriteFd), so one larger
 * write would come back short, read as "disk full". 30 frames of 4 KiB pages. */
#define WALBUF_CAP 0x1f000u

struct walbuf_file {
    sqlite3_file base;   /* pMethods = &walbuf_io, or NULL if the real open failed */
    sqlite3_file *real;  /* the default VFS's file, in the same allocation after this struct */
    bool wal;            /* buffer this file's appends */
    unsigned char *buf;  /* WALBUF_CAP bytes once the log is first written */
    size_t len;          /* bytes buffered */
    sqlite3_int64 start; /* file offset of buf[0] */
};

#define WALBUF_REAL_OFF ((sizeof(struct walbuf_file) + 15) & ~(size_t)15)

static sqlite3_vfs *walbuf_base; /* the default VFS, set once in walbuf_register */

static int walbuf_flush(struct walbuf_file *f)
{
    if (!f->len)
        return SQLITE_OK;
    size_t n = f->len;
    f->len = 0; /* on failure the frames are gone: the commit that needed them fails */
    return f->real->pMethods->xWrite(f->real, f->buf, (int)n, f->start);
}

static int walbuf_close(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    sqlite3_free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int walbuf_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, n, off);
}

static int walbuf_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    if (!f->wal)
        return f->real->pMethods->xWrite(f->real, p, n, off);
    if (f->len && off == f->start + (sqlite3_int64)f->len && f->len + (size_t)n <= WALBUF_CAP) {
        memcpy(f->buf + f->len, p, (size_t)n);
        f->len += (size_t)n;
        return SQLITE_OK;
    }
    int rc = walbuf_flush(f);
    if (rc != SQLITE_OK)
        return rc;
    if ((size_t)n > WALBUF_CAP / 2)
        return f->real->pMethods->xWrite(f->real, p, n, off);
    if (!f->buf && !(f->buf = sqlite3_malloc(WALBUF_CAP)))
        return SQLITE_NOMEM;
    memcpy(f->buf, p, (size_t)n);
    f->len = (size_t)n;
    f->start = off;
    return SQLITE_OK;
}

static int walbuf_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int walbuf_sync(sqlite3_file *pf, int flags)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int walbuf_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int walbuf_lock(sqlite3_file *pf, int lock)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xLock(f->real, lock);
}

static int walbuf_unlock(sqlite3_file *pf, int lock)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xUnlock(f->real, lock);
}

static int walbuf_check_reserved(sqlite3_file *pf, int *out)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int walbuf_file_control(sqlite3_file *pf, int op, void *arg)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int walbuf_sector_size(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int walbuf_device_chars(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int walbuf_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int walbuf_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void walbuf_shm_barrier(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    f->real->pMethods->xShmBarrier(f->real);
}

static int walbuf_shm_unmap(sqlite3_file *pf, int del)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int walbuf_fetch(sqlite3_file *pf, sqlite3_int64 off, int n, void **pp)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = walbuf_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, n, pp);
}

static int walbuf_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods walbuf_io = {
    .iVersion = 3,
    .xClose = walbuf_close,
    .xRead = walbuf_read,
    .xWrite = walbuf_write,
    .xTruncate = walbuf_truncate,
    .xSync = walbuf_sync,
    .xFileSize = walbuf_file_size,
    .xLock = walbuf_lock,
    .xUnlock = walbuf_unlock,
    .xCheckReservedLock = walbuf_check_reserved,
    .xFileControl = walbuf_file_control,
    .xSectorSize = walbuf_sector_size,
    .xDeviceCharacteristics = walbuf_device_chars,
    .xShmMap = walbuf_shm_map,
    .xShmLock = walbuf_shm_lock,
    .xShmBarrier = walbuf_shm_barrier,
    .xShmUnmap = walbuf_shm_unmap,
    .xFetch = walbuf_fetch,
    .xUnfetch = walbuf_unfetch,
};

static int walbuf_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags,
                       int *out_flags)
{
    (void)vfs;
    struct walbuf_file *f = (struct walbuf_file *)pf;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)((char *)pf + WALBUF_REAL_OFF);
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = walbuf_base->xOpen(walbuf_base, name, f->real, flags, out_flags);
    /* SQLite calls xClose only when pMethods is set; the real file needs it if its is. */
    f->base.pMethods = f->real->pMethods ? &walbuf_io : NULL;
    return rc;
}

static int walbuf_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return walbuf_base->xDelete(walbuf_base, name, sync_dir);
}

static int walbuf_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return walbuf_base->xAccess(walbuf_base, name, flags, out);
}

static int walbuf_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return walbuf_base->xFullPathname(walbuf_base, name, n, out);
}

static int walbuf_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return walbuf_base->xRandomness(walbuf_base, n, out);
}

static int walbuf_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return walbuf_base->xSleep(walbuf_base, us);
}

static int walbuf_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return walbuf_base->xCurrentTime(walbuf_base, out);
}

static int walbuf_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return walbuf_base->xGetLastError(walbuf_base, n, out);
}

static int walbuf_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return walbuf_base->xCurrentTimeInt64(walbuf_base, out);
}

static sqlite3_vfs walbuf_vfs = {
    .iVersion = 2,
    .zName = WALBUF_VFS,
    .xOpen = walbuf_open,
    .xDelete = walbuf_delete,
    .xAccess = walbuf_access,
    .xFullPathname = walbuf_full_pathname,
    .xRandomness = walbuf_randomness,
    .xSleep = walbuf_sleep,
    .xCurrentTime = walbuf_current_time,
    .xGetLastError = walbuf_last_error,
    .xCurrentTimeInt64 = walbuf_current_time64,
};

static int walbuf_rc = SQLITE_ERROR;

static void walbuf_register_once(void)
{
    walbuf_base = sqlite3_vfs_find(NULL);
    if (!walbuf_base || walbuf_base->iVersion < 2)
        return;
    walbuf_vfs.mxPathname = walbuf_base->mxPathname;
    walbuf_vfs.szOsFile = (int)(WALBUF_REAL_OFF + (size_t)walbuf_base->szOsFile);
    walbuf_rc = sqlite3_vfs_register(&walbuf_vfs, 0);
}

/* The shim's name once it is registered (not as the default), NULL (the default VFS) if the
 * default VFS is too old to wrap. */
static const char *walbuf_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, walbuf_register_once);
    return walbuf_rc == SQLITE_OK ? WALBUF_VFS : NULL;
}

/* --- open: pragmas, schema, statements -------------------------------------------------------- */

static int exec(struct hub_store__conn *c, const char *sql, struct ag_err *err)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_err(c, "run setup", err);
    return 0;
}

/* Runs a one-row, one-column PRAGMA and copies its text answer into out. */
static int pragma_text(struct hub_store__conn *c, const char *sql, char *out, size_t cap,
                       struct ag_err *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_err(c, "prepare a pragma", err);
    int rc = sqlite3_step(s);
    snprintf(out, cap, "%s", rc == SQLITE_ROW ? col_text(s, 0) : "");
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return db_err(c, "read a pragma", err);
    return 0;
}

static int migrate(struct hub_store__conn *c, struct ag_err *err)
{
    char ver[32];
    /* IMMEDIATE: two processes opening a fresh file must not both create the tables. */
    if (exec(c, "BEGIN IMMEDIATE", err) ||
        pragma_text(c, "PRAGMA user_version", ver, sizeof(ver), err))
        goto fail;
    int have = atoi(ver);
    if (have > SCHEMA_VERSION) {
        ag_err_set(err, AG_FAILED_PRECONDITION,
                   "sqlite database '%s' has schema version %d, newer than this binary's %d; "
                   "upgrade agentry or use another database",
                   c->path, have, SCHEMA_VERSION);
        goto fail;
    }
    for (int v = have; v < SCHEMA_VERSION; v++)
        if (exec(c, migrations[v], err))
            goto fail;
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
    if (exec(c, sql, err) || exec(c, "COMMIT", err))
        goto fail;
    if (have != SCHEMA_VERSION)
        ag_log_info("store.migrated", "path=%s from=%d to=%d", ag_log_q(c->path), have,
                    SCHEMA_VERSION);
    return 0;
fail:
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

struct sqlite_url {
    char *path;       /* owned */
    const char *sync; /* PRAGMA synchronous value: "FULL" (default), "NORMAL", "OFF" */
    int busy_timeout_ms;
};

/* One "key=value" of the URL's query, len bytes at kv. */
static int parse_option(struct sqlite_url *u, const char *kv, size_t len, struct ag_err *err)
{
    static const char *const syncs[][2] = {
        {"synchronous=full", "FULL"}, {"synchronous=normal", "NORMAL"}, {"synchronous=off", "OFF"}};
    for (size_t i = 0; i < AG_ARRAY_SIZE(syncs); i++)
        if (strlen(syncs[i][0]) == len && strncmp(kv, syncs[i][0], len) == 0) {
            u->sync = syncs[i][1];
            return 0;
        }
    static const char busy[] = "busy_timeout_ms=";
    if (len > strlen(busy) && strncmp(kv, busy, strlen(busy)) == 0) {
        char *end;
        long v = strtol(kv + strlen(busy), &end, 10);
        if (end == kv + len && v >= 0 && v <= INT_MAX) {
            u->busy_timeout_ms = (int)v;
            return 0;
        }
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "unknown option '%.*s' in sqlite store url; use "
                      "synchronous=full|normal|off or busy_timeout_ms=N",
                      (int)len, kv);
}

/* "PATH[?OPTION[&OPTION...]]"; the first '?' ends the path. */
static int parse_url(const char *target, struct sqlite_url *u, struct ag_err *err)
{
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    *u = (struct sqlite_url){NULL, "FULL", STORE_SQLITE_BUSY_MS};
    if (plen == 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "store url 'sqlite:%s' has no path; use "
                          "sqlite:/var/lib/agentry/hub.db",
                          target);
    /* SQLite's name for a database that dies with the process: no store, and the lock would
     * create a file of that name. */
    if (plen == strlen(":memory:") && strncmp(target, ":memory:", plen) == 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "store url 'sqlite::memory:' would keep nothing across restarts; use "
                          "sqlite:/var/lib/agentry/hub.db");
    const char *kv = q ? q + 1 : NULL;
    while (kv) {
        const char *amp = strchr(kv, '&');
        if (parse_option(u, kv, amp ? (size_t)(amp - kv) : strlen(kv), err))
            return -1;
        kv = amp ? amp + 1 : NULL;
    }
    u->path = ag_xstrndup(target, plen);
    return 0;
}

static int set_pragmas(struct hub_store__conn *c, enum hub_store__role role, const char *sync,
                       struct ag_err *err)
{
    if (role == HUB_STORE__READER)
        return exec(c, "PRAGMA query_only = 1", err);
    char mode[16];
    if (pragma_text(c, "PRAGMA journal_mode = WAL", mode, sizeof(mode), err))
        return -1;
    if (strcmp(mode, "wal") != 0)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot use WAL mode for sqlite database '%s' (got '%s'); put it on a "
                          "local filesystem",
                          c->path, mode);
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", sync);
    if (exec(c, sql, err))
        return -1;
    if (strcmp(sync, "FULL") != 0)
        ag_log_warn("store.durability_reduced", "path=%s synchronous=%s note=%s", ag_log_q(c->path),
                    sync, ag_log_q("commits acknowledged before fsync; a power cut can lose them"));
    return migrate(c, err);
}

/* The writer's database is no longer at PATH. SQLite skips its checkpoint at close for a moved
 * file and leaves the log at PATH-wal, where it would be replayed into whatever file is put at
 * PATH next (a restored backup). So checkpoint into the file we still have open and truncate
 * the log (by descriptor, so only ours): a moved-away file is then whole on its own, and PATH
 * keeps an empty log. Best effort: a reader elsewhere can hold the checkpoint back. */
static void orphan_checkpoint(struct hub_store__conn *c)
{
    int rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc != SQLITE_OK)
        ag_log_warn("store.checkpoint_failed", "path=%s error=%s note=%s", ag_log_q(c->path),
                    ag_log_q(sqlite3_errmsg(c->db)),
                    ag_log_q("the log left at PATH-wal belongs to the lost file: delete it "
                             "before restoring the database"));
}

static void sqlite_close(struct hub_store__conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmt[i]); /* NULL is a no-op */
    if (c->lock_fd >= 0 && c->db && file_fate(c->path, &c->db_id) != FILE_HERE)
        orphan_checkpoint(c);
    sqlite3_close(c->db);
    /* Only now: closing it earlier would drop the fcntl locks SQLite holds on the file. */
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    free(c->path);
    free(c);
}

/* The writer's files as SQLite opened them. PATH must still be the file we locked (else the
 * lock guards another file than SQLite's); the log exists by now, since migrate() ran a
 * transaction, but is looked for again after each commit if not. */
static int writer_files(struct hub_store__conn *c, struct ag_err *err)
{
    if (file_fate(c->path, &c->db_id) != FILE_HERE)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "sqlite database '%s' was moved or replaced while it was being opened; "
                          "start the hub again",
                          c->path);
    const char *name = sqlite3_db_filename(c->db, "main");
    c->wal_name = name && *name ? sqlite3_filename_wal(name) : NULL;
    wal_remember(c);
    return 0;
}

static struct hub_store__conn *sqlite_open(const char *url, enum hub_store__role role,
                                           const struct hub_store_opts *fence, struct ag_err *err)
{
    (void)fence; /* the file lock keeps every other process out already (see the top) */
    if (!sqlite3_threadsafe()) {
        ag_err_set(err, AG_FAILED_PRECONDITION,
                   "libsqlite3 was built without thread support; "
                   "install a build with SQLITE_THREADSAFE=1");
        return NULL;
    }
    struct sqlite_url u;
    if (parse_url(url + strlen("sqlite:"), &u, err))
        return NULL;
    struct hub_store__conn *c = ag_xcalloc(1, sizeof(*c));
    c->path = u.path;
    c->lock_fd = -1;
    /* Before SQLite opens the file: a second hub must not even run our migrations on it. */
    if (role == HUB_STORE__WRITER && lock_take(c, err))
        goto fail;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const char *vfs = NULL;
    if (role == HUB_STORE__WRITER && strcmp(u.sync, "FULL") == 0)
        vfs = walbuf_register();
    if (sqlite3_open_v2(c->path, &c->db, flags, vfs) != SQLITE_OK) {
        ag_err_set(err, AG_UNAVAILABLE,
                   "cannot open sqlite database '%s': %s; check that its "
                   "directory exists and is writable",
                   c->path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, u.busy_timeout_ms);
    if (set_pragmas(c, role, u.sync, err))
        goto fail;
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[i],
                               NULL) != SQLITE_OK) {
            db_err(c, "prepare statements", err);
            goto fail;
        }
    if (role == HUB_STORE__WRITER && writer_files(c, err))
        goto fail;
    return c;
fail:
    sqlite_close(c);
    return NULL;
}

/* --- writer ----------------------------------------------------------------------------------- */

static int sqlite_begin(struct hub_store__conn *c, struct ag_err *err)
{
    if (step_done(c->stmt[ST_BEGIN]) != SQLITE_DONE)
        return db_err(c, "begin a transaction", err);
    return 0;
}

/* The files are checked on both sides of COMMIT. Before: a loss that happened between
 * transactions (the usual case) fails this one while it can still roll back, so nothing of it
 * lands anywhere (a lost -wal is folded back into the database at a clean stop, which would
 * make a write reported failed durable after all). After: a loss during the COMMIT's fsync is
 * never acknowledged. Four stat(2)s, microseconds, beside an fsync, once per group commit. */
static int sqlite_commit(struct hub_store__conn *c, struct ag_err *err)
{
    if (files_check(c, err))
        return -1;
    if (step_done(c->stmt[ST_COMMIT]) != SQLITE_DONE)
        return db_err(c, "commit", err);
    return files_check(c, err);
}

static void sqlite_rollback(struct hub_store__conn *c)
{
    /* A failed COMMIT may already have rolled back (I/O errors do), a busy one has not. */
    if (sqlite3_get_autocommit(c->db))
        return;
    if (step_done(c->stmt[ST_ROLLBACK]) != SQLITE_DONE)
        ag_log_error("store.rollback_failed", "path=%s error=%s", ag_log_q(c->path),
                     ag_log_q(sqlite3_errmsg(c->db)));
}

/* A usage's four columns, from parameter `first` on, in the order struct hub_usage lists them. */
static int bind_usage(sqlite3_stmt *s, int first, const struct hub_usage *u)
{
    int rc = sqlite3_bind_int64(s, first, clamp64(u->input_tokens));
    rc = rc ? rc : sqlite3_bind_int64(s, first + 1, clamp64(u->output_tokens));
    rc = rc ? rc : sqlite3_bind_int64(s, first + 2, clamp64(u->model_calls));
    rc = rc ? rc : sqlite3_bind_int64(s, first + 3, clamp64(u->tool_calls));
    return rc;
}

static void col_usage(sqlite3_stmt *s, int first, struct hub_usage *u)
{
    u->input_tokens = (uint64_t)sqlite3_column_int64(s, first);
    u->output_tokens = (uint64_t)sqlite3_column_int64(s, first + 1);
    u->model_calls = (uint64_t)sqlite3_column_int64(s, first + 2);
    u->tool_calls = (uint64_t)sqlite3_column_int64(s, first + 3);
}

/* The agent's and its turn's cost (migration 5), from parameter `first` on. */
static int bind_costs(sqlite3_stmt *s, int first, const struct hub_store_agent *a)
{
    int rc = sqlite3_bind_int64(s, first, clamp64(a->usage.cost_nano_usd));
    return rc ? rc : sqlite3_bind_int64(s, first + 1, clamp64(a->turn_usage.cost_nano_usd));
}

/* The usage, turn and interruption columns, in the order both statements list them, from
 * parameter `first` on (11 of them). */
static int bind_counters(sqlite3_stmt *s, int first, const struct hub_store_agent *a)
{
    int rc = bind_usage(s, first, &a->usage);
    rc = rc ? rc : bind_usage(s, first + 4, &a->turn_usage);
    rc = rc ? rc : sqlite3_bind_int64(s, first + 8, a->turn_attempt);
    rc = rc ? rc : sqlite3_bind_int64(s, first + 9, a->streak);
    rc = rc ? rc : bind_text(s, first + 10, a->streak_reason);
    return rc;
}

static int agent_insert(struct hub_store__conn *c, const struct hub_store_agent *a,
                        struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_AGENT_INSERT];
    int rc = bind_text(s, 1, a->id);
    rc = rc ? rc : bind_text_or_null(s, 2, a->request_id);
    rc = rc ? rc : bind_blob(s, 3, a->spec, a->spec_len);
    rc = rc ? rc : sqlite3_bind_int(s, 4, a->state);
    rc = rc ? rc : bind_text(s, 5, a->node_id);
    rc = rc ? rc : sqlite3_bind_int64(s, 6, (sqlite3_int64)a->epoch);
    rc = rc ? rc : bind_blob(s, 7, a->checkpoint, a->checkpoint_len);
    rc = rc ? rc : bind_text(s, 8, a->last_output);
    rc = rc ? rc : bind_text(s, 9, a->last_error);
    rc = rc ? rc : sqlite3_bind_int64(s, 10, a->created_ns);
    rc = rc ? rc : sqlite3_bind_int64(s, 11, a->updated_ns);
    rc = rc ? rc : bind_counters(s, 12, a);
    rc = rc ? rc : sqlite3_bind_int64(s, 23, (sqlite3_int64)a->spawn_input_seq);
    rc = rc ? rc : sqlite3_bind_int(s, 24, a->waiting_input);
    rc = rc ? rc : bind_text(s, 25, ns_or_default(a->namespace));
    rc = rc ? rc : bind_costs(s, 26, a);
    rc = rc ? rc : bind_text(s, 28, a->parent_id);
    rc = rc ? rc : sqlite3_bind_int64(s, 29, a->depth);
    rc = rc ? rc : step_done(s);
    return rc == SQLITE_DONE ? 0 : op_err(c, rc, "insert agent", a->id, err);
}

static int agent_update(struct hub_store__conn *c, const struct hub_store_agent *a,
                        struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_AGENT_UPDATE];
    int rc = bind_text(s, 1, a->id);
    rc = rc ? rc : sqlite3_bind_int(s, 2, a->state);
    rc = rc ? rc : bind_text(s, 3, a->node_id);
    rc = rc ? rc : sqlite3_bind_int64(s, 4, (sqlite3_int64)a->epoch);
    rc = rc ? rc : bind_blob(s, 5, a->checkpoint, a->checkpoint_len);
    rc = rc ? rc : bind_text(s, 6, a->last_output);
    rc = rc ? rc : bind_text(s, 7, a->last_error);
    rc = rc ? rc : sqlite3_bind_int64(s, 8, a->updated_ns);
    rc = rc ? rc : bind_counters(s, 9, a);
    rc = rc ? rc : sqlite3_bind_int(s, 20, a->waiting_input);
    rc = rc ? rc : bind_costs(s, 21, a);
    rc = rc ? rc : step_done(s);
    if (rc != SQLITE_DONE)
        return op_err(c, rc, "update agent", a->id, err);
    if (sqlite3_changes(c->db) == 0)
        return ag_err_set(err, AG_NOT_FOUND, "cannot update agent '%s': no such agent", a->id);
    return 0;
}

static int event_insert(struct hub_store__conn *c, const struct hub_store_event *e,
                        struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_EVENT_INSERT];
    /* Explicit length: the payload need not be NUL-terminated. */
    const char *payload = e->payload_len ? e->payload : "";
    int rc = bind_text(s, 1, e->agent_id);
    rc = rc ? rc : sqlite3_bind_int64(s, 2, (sqlite3_int64)e->seq);
    rc = rc ? rc : sqlite3_bind_int(s, 3, e->kind);
    rc = rc ? rc : sqlite3_bind_text64(s, 4, payload, e->payload_len, SQLITE_STATIC, SQLITE_UTF8);
    rc = rc ? rc : bind_text(s, 5, e->node_id);
    rc = rc ? rc : sqlite3_bind_int64(s, 6, e->time_ns);
    rc = rc ? rc : step_done(s);
    return rc == SQLITE_DONE ? 0 : op_err(c, rc, "append an event for agent", e->agent_id, err);
}

/* --- schedules ------------------------------------------------------------------------------ */

static int schedule_insert(struct hub_store__conn *c, const struct hub_store_schedule *r,
                           struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_SCHEDULE_INSERT];
    int rc = bind_text(s, 1, r->id);
    rc = rc ? rc : bind_text(s, 2, ns_or_default(r->namespace));
    rc = rc ? rc : bind_text_or_null(s, 3, r->request_id);
    rc = rc ? rc : bind_text(s, 4, r->cron);
    rc = rc ? rc : bind_blob(s, 5, r->spec, r->spec_len);
    rc = rc ? rc : bind_text(s, 6, r->input);
    rc = rc ? rc : bind_text(s, 7, r->missed);
    rc = rc ? rc : sqlite3_bind_int(s, 8, r->paused);
    rc = rc ? rc : sqlite3_bind_int64(s, 9, r->created_ns);
    rc = rc ? rc : sqlite3_bind_int64(s, 10, r->next_fire_ns);
    rc = rc ? rc : sqlite3_bind_int64(s, 11, r->last_fire_ns);
    rc = rc ? rc : bind_text(s, 12, r->last_agent_id);
    rc = rc ? rc : sqlite3_bind_int64(s, 13, clamp64(r->fires));
    rc = rc ? rc : step_done(s);
    return rc == SQLITE_DONE ? 0 : op_err(c, rc, "insert schedule", r->id, err);
}

/* ADVANCE, PAUSE and DELETE: one row by id, NOT_FOUND if it is gone. */
static int schedule_change(struct hub_store__conn *c, const struct hub_store_op *op,
                           struct ag_err *err)
{
    const struct hub_store_schedule *r = &op->u.schedule;
    sqlite3_stmt *s;
    int rc;
    if (op->type == HUB_STORE_SCHEDULE_ADVANCE) {
        s = c->stmt[ST_SCHEDULE_ADVANCE];
        rc = sqlite3_bind_int64(s, 2, r->last_fire_ns);
        rc = rc ? rc : bind_text(s, 3, r->last_agent_id);
        rc = rc ? rc : sqlite3_bind_int64(s, 4, clamp64(r->fires));
        rc = rc ? rc : sqlite3_bind_int64(s, 5, r->next_fire_ns);
    } else if (op->type == HUB_STORE_SCHEDULE_PAUSE) {
        s = c->stmt[ST_SCHEDULE_PAUSE];
        rc = sqlite3_bind_int(s, 2, r->paused);
        rc = rc ? rc : sqlite3_bind_int64(s, 3, r->next_fire_ns);
    } else {
        s = c->stmt[ST_SCHEDULE_DELETE];
        rc = SQLITE_OK;
    }
    rc = rc ? rc : bind_text(s, 1, r->id);
    rc = rc ? rc : step_done(s);
    if (rc != SQLITE_DONE)
        return op_err(c, rc, "update schedule", r->id, err);
    if (sqlite3_changes(c->db) == 0)
        return ag_err_set(err, AG_NOT_FOUND, "cannot update schedule '%s': no such schedule",
                          r->id);
    return 0;
}

/* --- memory (migration 8) ---------------------------------------------------------------------- */

/* The first column of a one-row read (0 if no row); -1 on a database error. */
static int step_i64(struct hub_store__conn *c, sqlite3_stmt *s, int64_t *out, struct ag_err *err)
{
    int rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(c, "read the agent's memory", err);
}

static int bind_mem_key(sqlite3_stmt *s, const struct hub_store_memory *m)
{
    int rc = bind_text(s, 1, m->agent_id);
    rc = rc ? rc : bind_text(s, 2, m->namespace);
    return rc ? rc : bind_text(s, 3, m->key);
}

/* A new key is counted in memory_usage, and refused once the agent has max_entries: the
 * writer is the only one, so the count cannot move between the read and the write. */
static int memory_put(struct hub_store__conn *c, const struct hub_store_memory *m,
                      struct ag_err *err)
{
    int64_t exists = 0, entries = 0;
    sqlite3_stmt *s = c->stmt[ST_MEM_EXISTS];
    bind_mem_key(s, m);
    if (step_i64(c, s, &exists, err))
        return -1;
    if (!exists) {
        s = c->stmt[ST_MEM_ENTRIES];
        bind_text(s, 1, m->agent_id);
        if (step_i64(c, s, &entries, err))
            return -1;
        if (m->max_entries && (uint64_t)entries >= m->max_entries)
            return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                              "agent '%s' keeps %" PRId64 " memory entries, its limit: delete "
                              "some (memory_delete) before adding keys",
                              m->agent_id, entries);
        s = c->stmt[ST_MEM_COUNT_ADD];
        int rc = bind_text(s, 1, m->agent_id);
        rc = rc ? rc : sqlite3_bind_int(s, 2, 1);
        rc = rc ? rc : step_done(s);
        if (rc != SQLITE_DONE)
            return op_err(c, rc, "count the memory of agent", m->agent_id, err);
    }
    s = c->stmt[ST_MEM_UPSERT];
    int rc = bind_mem_key(s, m);
    rc = rc ? rc
            : sqlite3_bind_text64(s, 4, m->value_len ? m->value : "", m->value_len, SQLITE_STATIC,
                                  SQLITE_UTF8);
    rc = rc ? rc : bind_blob(s, 5, (const uint8_t *)m->vector, m->dims * sizeof(float));
    rc = rc ? rc : sqlite3_bind_int64(s, 6, m->vector ? m->dims : 0);
    rc = rc ? rc : sqlite3_bind_int64(s, 7, m->updated_ns);
    rc = rc ? rc : step_done(s);
    return rc == SQLITE_DONE ? 0 : op_err(c, rc, "store a memory entry of agent", m->agent_id, err);
}

static int memory_delete(struct hub_store__conn *c, const struct hub_store_memory *m,
                         struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_MEM_DELETE];
    int rc = bind_mem_key(s, m);
    rc = rc ? rc : step_done(s);
    if (rc != SQLITE_DONE)
        return op_err(c, rc, "delete a memory entry of agent", m->agent_id, err);
    if (sqlite3_changes(c->db) == 0)
        return 0;
    s = c->stmt[ST_MEM_COUNT_ADD];
    rc = bind_text(s, 1, m->agent_id);
    rc = rc ? rc : sqlite3_bind_int(s, 2, -1);
    rc = rc ? rc : step_done(s);
    return rc == SQLITE_DONE ? 0 : op_err(c, rc, "count the memory of agent", m->agent_id, err);
}

/* Each statement deletes by the primary key's first column: a range, never a scan. */
static int agent_delete(struct hub_store__conn *c, const char *id, struct ag_err *err)
{
    for (int i = ST_AGENT_DELETE; i <= ST_AGENT_DELETE_MEM_COUNT; i++) {
        sqlite3_stmt *s = c->stmt[i];
        int rc = bind_text(s, 1, id);
        rc = rc ? rc : step_done(s);
        if (rc != SQLITE_DONE)
            return op_err(c, rc, "delete agent", id, err);
    }
    return 0;
}

static sqlite3_stmt *memory_stmt(struct hub_store__conn *c, const struct hub_store_memory_query *q)
{
    sqlite3_stmt *s = NULL;
    switch (q->kind) {
    case HUB_STORE_MEMORY_GET:
        s = c->stmt[ST_MEM_GET];
        bind_text(s, 2, q->namespace);
        bind_text(s, 3, q->keys[0]);
        break;
    case HUB_STORE_MEMORY_LIST:
        if (q->namespace && *q->namespace) {
            s = c->stmt[ST_MEM_LIST_NS];
            bind_text(s, 2, q->namespace);
            /* After a key of another namespace: that namespace's keys sort all before or all
             * after this one's. */
            int cmp = q->after_namespace && *q->after_namespace
                          ? strcmp(q->after_namespace, q->namespace)
                          : -1;
            if (cmp > 0)
                return NULL; /* nothing is after */
            bind_text(s, 3, cmp == 0 ? q->after_key : "");
        } else {
            s = c->stmt[ST_MEM_LIST_ALL];
            bind_text(s, 2, q->after_namespace);
            bind_text(s, 3, q->after_namespace && *q->after_namespace ? q->after_key : "");
        }
        bind_text(s, 4, q->prefix);
        sqlite3_bind_int64(s, 5, clamp64(q->max));
        break;
    case HUB_STORE_MEMORY_VECTORS:
        s = c->stmt[ST_MEM_VECTORS];
        bind_text(s, 2, q->namespace);
        bind_text(s, 3, q->after_key);
        sqlite3_bind_int64(s, 4, q->max ? clamp64(q->max) : INT64_MAX);
        break;
    }
    if (s)
        bind_text(s, 1, q->agent_id);
    return s;
}

static int sqlite_scan_memory(struct hub_store__conn *c, const struct hub_store_memory_query *q,
                              hub_store__memory_row_fn *cb, void *arg, struct ag_err *err)
{
    sqlite3_stmt *s = memory_stmt(c, q);
    if (!s)
        return 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct hub_store_memory m = {.agent_id = q->agent_id,
                                     .namespace = col_text(s, 0),
                                     .key = col_text(s, 1),
                                     .dims = (uint32_t)sqlite3_column_int64(s, 4),
                                     .updated_ns = sqlite3_column_int64(s, 5)};
        if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
            m.value = col_text(s, 2);
            m.value_len = (size_t)sqlite3_column_bytes(s, 2);
        }
        const void *blob = sqlite3_column_blob(s, 3);
        size_t bytes = (size_t)sqlite3_column_bytes(s, 3);
        float *copy = NULL; /* SQLite does not promise a blob aligned for floats */
        if (blob && bytes == m.dims * sizeof(float)) {
            if ((uintptr_t)blob % _Alignof(float) == 0)
                m.vector = blob;
            else
                m.vector = copy = memcpy(ag_xmalloc(bytes), blob, bytes);
        }
        int stop = cb(arg, &m, err);
        free(copy);
        if (stop != 0) {
            sqlite3_reset(s);
            return -1;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_err(c, "read the agent's memory", err);
    return 0;
}

static int sqlite_apply(struct hub_store__conn *c, const struct hub_store_op *op,
                        struct ag_err *err)
{
    switch (op->type) {
    case HUB_STORE_AGENT_INSERT:
        return agent_insert(c, &op->u.agent, err);
    case HUB_STORE_AGENT_UPDATE:
        return agent_update(c, &op->u.agent, err);
    case HUB_STORE_EVENT_APPEND:
        return event_insert(c, &op->u.event, err);
    case HUB_STORE_SCHEDULE_INSERT:
        return schedule_insert(c, &op->u.schedule, err);
    case HUB_STORE_SCHEDULE_ADVANCE:
    case HUB_STORE_SCHEDULE_PAUSE:
    case HUB_STORE_SCHEDULE_DELETE:
        return schedule_change(c, op, err);
    case HUB_STORE_MEMORY_PUT:
        return memory_put(c, &op->u.memory, err);
    case HUB_STORE_MEMORY_DELETE:
        return memory_delete(c, &op->u.memory, err);
    case HUB_STORE_AGENT_DELETE:
        return agent_delete(c, op->u.agent.id, err);
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown store op type %d", (int)op->type);
}

static int sqlite_last_seq(struct hub_store__conn *c, const char *agent_id, uint64_t *seq,
                           struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_LAST_SEQ];
    bind_text(s, 1, agent_id);
    int rc = sqlite3_step(s);
    *seq = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(c, "read the last event seq", err);
    return 0;
}

/* --- reader ----------------------------------------------------------------------------------- */

static int sqlite_scan_events(struct hub_store__conn *c, const char *agent_id, uint64_t from_seq,
                              uint64_t to_seq, uint64_t max, hub_store_event_fn *cb, void *arg,
                              struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_EVENTS];
    bind_text(s, 1, agent_id);
    sqlite3_bind_int64(s, 2, clamp64(from_seq));
    sqlite3_bind_int64(s, 3, to_seq ? clamp64(to_seq) : INT64_MAX);
    sqlite3_bind_int64(s, 4, clamp64(max));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct hub_store_event ev = {.agent_id = agent_id,
                                     .seq = (uint64_t)sqlite3_column_int64(s, 0),
                                     .kind = sqlite3_column_int(s, 1),
                                     .payload = col_text(s, 2),
                                     .node_id = col_text(s, 3),
                                     .time_ns = sqlite3_column_int64(s, 4)};
        /* Length after the text pointer: sqlite documents this order. */
        ev.payload_len = (size_t)sqlite3_column_bytes(s, 2);
        if (cb(arg, &ev, err) != 0) {
            sqlite3_reset(s);
            return -1;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_err(c, "read events", err);
    return 0;
}

static sqlite3_stmt *agents_stmt(struct hub_store__conn *c, const struct hub_store_agents_query *q)
{
    sqlite3_stmt *s;
    switch (q->kind) {
    case HUB_STORE_AGENTS_ACTIVE:
        return c->stmt[ST_AGENTS_ACTIVE];
    case HUB_STORE_AGENTS_ID:
        s = c->stmt[ST_AGENTS_ID];
        bind_text(s, 1, q->key);
        return s;
    case HUB_STORE_AGENTS_REQUEST:
        s = c->stmt[ST_AGENTS_REQUEST];
        bind_text(s, 1, q->key);
        bind_text(s, 2, ns_or_default(q->namespace));
        return s;
    case HUB_STORE_AGENTS_PAGE: {
        bool ns = q->namespace && *q->namespace, parent = q->parent_id && *q->parent_id;
        s = c->stmt[parent ? ST_AGENTS_PAGE_PARENT
                    : ns   ? (q->state ? ST_AGENTS_PAGE_NS_STATE : ST_AGENTS_PAGE_NS)
                           : (q->state ? ST_AGENTS_PAGE_STATE : ST_AGENTS_PAGE)];
        sqlite3_bind_int64(s, 1, q->after_id && *q->after_id ? q->after_ns : INT64_MIN);
        bind_text(s, 2, q->after_id ? q->after_id : "");
        sqlite3_bind_int64(s, 3, clamp64(q->max));
        if (parent) {
            bind_text(s, 4, q->parent_id);
            return s;
        }
        if (q->state)
            sqlite3_bind_int(s, 4, q->state);
        if (ns)
            bind_text(s, 5, q->namespace);
        return s;
    }
    case HUB_STORE_AGENTS_ENDED:
        s = c->stmt[ST_AGENTS_ENDED];
        sqlite3_bind_int64(s, 1, q->after_id && *q->after_id ? q->after_ns : INT64_MIN);
        bind_text(s, 2, q->after_id ? q->after_id : "");
        sqlite3_bind_int64(s, 3, clamp64(q->max));
        sqlite3_bind_int64(s, 4, q->before_ns);
        return s;
    }
    return NULL;
}

static int sqlite_select_agents(struct hub_store__conn *c, const struct hub_store_agents_query *q,
                                hub_store_agent_fn *cb, void *arg, struct ag_err *err)
{
    sqlite3_stmt *s = agents_stmt(c, q);
    if (!s)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown agents query %d", (int)q->kind);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct hub_store_agent a = {.id = col_text(s, 0),
                                    .request_id = col_text(s, 1),
                                    .spec = sqlite3_column_blob(s, 2),
                                    .state = sqlite3_column_int(s, 3),
                                    .node_id = col_text(s, 4),
                                    .epoch = (uint64_t)sqlite3_column_int64(s, 5),
                                    .checkpoint = sqlite3_column_blob(s, 6),
                                    .last_output = col_text(s, 7),
                                    .last_error = col_text(s, 8),
                                    .created_ns = sqlite3_column_int64(s, 9),
                                    .updated_ns = sqlite3_column_int64(s, 10)};
        a.spec_len = (size_t)sqlite3_column_bytes(s, 2);
        a.checkpoint_len = (size_t)sqlite3_column_bytes(s, 6);
        uint64_t last_seq = (uint64_t)sqlite3_column_int64(s, 11); /* NULL reads as 0 */
        a.has_usage = sqlite3_column_type(s, 12) != SQLITE_NULL;
        col_usage(s, 12, &a.usage);
        col_usage(s, 16, &a.turn_usage);
        a.turn_attempt = (uint32_t)sqlite3_column_int64(s, 20);
        a.streak = (uint32_t)sqlite3_column_int64(s, 21);
        a.streak_reason = col_text(s, 22);
        a.spawn_input_seq = (uint64_t)sqlite3_column_int64(s, 23);
        a.waiting_input = sqlite3_column_int(s, 24) != 0;
        a.namespace = col_text(s, 25);
        a.usage.cost_nano_usd = (uint64_t)sqlite3_column_int64(s, 26);
        a.turn_usage.cost_nano_usd = (uint64_t)sqlite3_column_int64(s, 27);
        a.parent_id = col_text(s, 28);
        a.depth = (uint32_t)sqlite3_column_int64(s, 29);
        if (cb(arg, &a, last_seq, err) != 0) {
            sqlite3_reset(s);
            return -1;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_err(c, "read agents", err);
    return 0;
}

static int sqlite_select_schedules(struct hub_store__conn *c, hub_store_schedule_fn *cb, void *arg,
                                   struct ag_err *err)
{
    sqlite3_stmt *s = c->stmt[ST_SCHEDULES];
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct hub_store_schedule r = {.id = col_text(s, 0),
                                       .namespace = col_text(s, 1),
                                       .request_id = col_text(s, 2),
                                       .cron = col_text(s, 3),
                                       .spec = sqlite3_column_blob(s, 4),
                                       .input = col_text(s, 5),
                                       .missed = col_text(s, 6),
                                       .paused = sqlite3_column_int(s, 7) != 0,
                                       .created_ns = sqlite3_column_int64(s, 8),
                                       .next_fire_ns = sqlite3_column_int64(s, 9),
                                       .last_fire_ns = sqlite3_column_int64(s, 10),
                                       .last_agent_id = col_text(s, 11),
                                       .fires = (uint64_t)sqlite3_column_int64(s, 12)};
        r.spec_len = (size_t)sqlite3_column_bytes(s, 4);
        if (cb(arg, &r, err) != 0) {
            sqlite3_reset(s);
            return -1;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_err(c, "read schedules", err);
    return 0;
}

const struct hub_store__backend hub_store__sqlite_backend = {
    .scheme = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .apply = sqlite_apply,
    .last_seq = sqlite_last_seq,
    .scan_events = sqlite_scan_events,
    .select_agents = sqlite_select_agents,
    .select_schedules = sqlite_select_schedules,
    .scan_memory = sqlite_scan_memory,
};
