/* hub/store_pg.c - the PostgreSQL backend of hub/store.h (libpq).
 *
 * URL, one rule: "postgres://..." and "postgresql://..." go to libpq whole, as URIs; any other
 * text after "postgres:" or "postgresql:" is a libpq keyword conninfo ("postgres:host=/run/pg
 * port=5433 dbname=agentry"). So any libpq connection string works, and nothing is rewritten.
 * Messages name the database by libpq's dbname, host and port, never by the URL (it may carry
 * a password).
 *
 * Owns: one PGconn per struct hub_store__conn, its prepared statements (prepared at connect,
 * again after a reconnect), the schema and its migrations (table schema_migrations), and, on the
 * writer's conn, the session advisory lock that keeps out a second hub, the open pipeline of the
 * running transaction and the commit counter that makes an interrupted COMMIT decidable.
 *
 * Threads: a conn is used by one thread at a time (store_internal.h); libpq is thread-safe for
 * distinct connections.
 *
 * Group commit in one round trip: begin() enters pipeline mode and queues BEGIN; apply() only
 * queues its prepared statement; commit() queues the commit mark and COMMIT, then one sync, and
 * reads every result. So a batch costs one round trip, plus one per seq cache miss (last_seq
 * must read, so it flushes the pipeline and reads what is queued so far). An op's failure thus
 * surfaces later, from last_seq or commit, with that op's own code (store_internal.h allows
 * it): store.c then retries each write alone, and the bad one fails by itself. Every error
 * aborts the transaction, so nothing of the batch is stored. An UPDATE that finds no row is no
 * error to PostgreSQL, so ST_AGENT_UPDATE divides by the number of rows it changed: 22012 on
 * that statement is "no such agent" (AG_NOT_FOUND), and it aborts the pipeline like any error.
 *
 * Durability: synchronous_commit=on is set on the session (whatever the server's default), so
 * COMMIT returns once the WAL is flushed.
 *
 * Commit is definitive: every transaction also sets hub_writer.commit_no to the next number.
 * If the connection drops after COMMIT was queued, and the server had not refused a statement
 * before it (which aborts the transaction, e.g. 57P01 from a server shutting down: the usual
 * case, hence not ambiguous), commit() reconnects, takes the lock
 * again and reads commit_no: ours means committed (0), anything else means not (UNAVAILABLE).
 * If it cannot reconnect or relock yet, it cannot know: AG_UNKNOWN, and store.c holds the
 * batch's writes (unanswered) and asks again through resolve(), which does the same once the
 * backoff allows, until the server answers (store_internal.h).
 *
 * One writer process: the writer's session holds pg_try_advisory_lock(STORE_PG_LOCK_KEY) on the
 * database from open to close; a second hub gets AG_FAILED_PRECONDITION at open. The lock dies
 * with the session, so a hub SIGKILLed releases it at once, and a reconnect must take it again
 * before it writes (else another hub may have started). The reader's session is read-only
 * (default_transaction_read_only) and takes no lock.
 *
 * Lost connection: a call on a broken connection fails UNAVAILABLE; the next begin() or read
 * reconnects (PQreset), sets the session up again and goes on, so the hub recovers by itself
 * once the server is back. While the server stays unreachable a connection retries with backoff
 * (STORE_PG_BACKOFF_*); calls in between fail UNAVAILABLE at once, naming the database and
 * "retrying in N ms", without touching the network. Logging the outage is store.c's (once per
 * state change); a reconnect logs at debug only. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "hub/store_internal.h"

/* The SQLSTATE of agentry_mark's refusal: another hub took the database over (migration 3). */
#define STORE_PG_FENCED "AGF01"
/* The SQLSTATE of agentry_memory_put's refusal: the agent has its most memory entries. */
#define STORE_PG_MEMORY_FULL "AGM01"
/* How long a new leader's takeover waits on the row lock a deposed leader's open transaction
 * holds in all, trying a second at a time (lock_timeout; a stopped leader's session ends after idle_in_transaction). */
#define STORE_PG_TAKEOVER_MAX_MS 60000
#define STORE_PG_IDLE_IN_TXN "10s"

/* "agentry" in ASCII: the advisory lock the writer holds on its database. */
#define STORE_PG_LOCK_KEY "30518646786470521"
/* How long a reconnect waits for the server to end our old session and free the lock. */
#define STORE_PG_RELOCK_MS 5000
#define STORE_PG_LOCK_POLL_MS 50
/* Ops queued before the writer reads their results: bounds what the server buffers for us, so
 * neither side can block writing to the other (a pipeline that never reads can deadlock). */
#define STORE_PG_PIPELINE_MAX 256
/* While the server is unreachable, a connection tries again no sooner than this after a failed
 * reconnect: 100 ms, doubling per failure up to 5 s, each wait drawn in [half, whole] so a
 * reader and a writer (or many hubs) do not retry in step. Calls in between fail at once: a
 * stopped server costs each write nothing, and the server gets at most one try per wait. */
#define STORE_PG_BACKOFF_MIN_MS 100
#define STORE_PG_BACKOFF_MAX_MS 5000

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_MARK,
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
    ST_MEM_PUT,            /* memory (migration 8) */
    ST_MEM_DELETE,
    ST_MEM_GET,
    ST_MEM_LIST_NS,
    ST_MEM_LIST_ALL,
    ST_MEM_VECTORS,
    ST_AGENT_DELETE,
    ST_AGENTS_ENDED, /* retention (migration 9) */
    ST_COUNT
};

struct stmt_def {
    const char *sql;
    int nparams;
};

#define AGENT_COLS                                                                                 \
    "id, request_id, spec, state, node_id, epoch, checkpoint, last_output, last_error, "           \
    "created_ns, updated_ns, input_tokens, output_tokens, model_calls, tool_calls, "               \
    "turn_input_tokens, turn_output_tokens, turn_model_calls, turn_tool_calls, turn_attempt, "     \
    "interrupt_streak, interrupt_reason, spawn_input_seq, waiting_input, namespace, "              \
    "cost_nano_usd, turn_cost_nano_usd, parent_id, depth"

/* What pg_select_agents reads: the columns, then each agent's highest seq. */
#define AGENT_SELECT                                                                               \
    "SELECT " AGENT_COLS ", (SELECT seq FROM events e WHERE e.agent_id = a.id "                    \
    "ORDER BY seq DESC LIMIT 1) FROM agents a "
/* The columns of the schedules table (migration 6), in the order statements list them. */
#define SCHEDULE_COLS                                                                              \
    "id, namespace, request_id, cron, spec, input, missed, paused, created_ns, next_fire_ns, "     \
    "last_fire_ns, last_agent_id, fires"
/* The predicate of the index agents_active (migration 2), said the same way in the query. */
#define AGENT_ACTIVE "(state IN (1, 2) OR waiting_input <> 0)"
/* The predicate of the index agents_ended (migration 9), said the same way by ST_AGENTS_ENDED:
 * root agents failed (5) or killed (6). */
#define AGENT_ENDED "parent_id = '' AND state IN (5, 6)"

static const struct stmt_def stmts[ST_COUNT] = {
    [ST_BEGIN] = {"BEGIN", 0},
    [ST_COMMIT] = {"COMMIT", 0},
    [ST_MARK] = {"SELECT agentry_mark($1, $2)", 2},
    [ST_AGENT_INSERT] = {"INSERT INTO agents(" AGENT_COLS ") VALUES($1, $2, $3, $4, $5, $6, $7, "
                         "$8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, "
                         "$22, $23, $24, $25, $26, $27, $28, $29)",
                         29},
    [ST_AGENT_UPDATE] = {"WITH u AS (UPDATE agents SET state = $2, node_id = $3, epoch = $4, "
                         "checkpoint = $5, last_output = $6, last_error = $7, updated_ns = $8, "
                         "input_tokens = $9, output_tokens = $10, model_calls = $11, "
                         "tool_calls = $12, turn_input_tokens = $13, turn_output_tokens = $14, "
                         "turn_model_calls = $15, turn_tool_calls = $16, turn_attempt = $17, "
                         "interrupt_streak = $18, interrupt_reason = $19, waiting_input = $20, "
                         "cost_nano_usd = $21, turn_cost_nano_usd = $22 "
                         "WHERE id = $1 RETURNING 1) SELECT 1 / count(*) FROM u",
                         22},
    [ST_EVENT_INSERT] = {"INSERT INTO events(agent_id, seq, kind, payload, node_id, time_ns) "
                         "VALUES($1, $2, $3, $4, $5, $6)",
                         6},
    [ST_LAST_SEQ] = {"SELECT seq FROM events WHERE agent_id = $1 ORDER BY seq DESC LIMIT 1", 1},
    [ST_EVENTS] = {"SELECT seq, kind, payload, node_id, time_ns FROM events "
                   "WHERE agent_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                   4},
    [ST_AGENTS_ACTIVE] = {AGENT_SELECT "WHERE " AGENT_ACTIVE " ORDER BY created_ns, id", 0},
    [ST_AGENTS_ID] = {AGENT_SELECT "WHERE id = $1", 1},
    [ST_AGENTS_REQUEST] = {AGENT_SELECT "WHERE namespace = $2 AND request_id = $1", 2},
    [ST_AGENTS_PAGE] = {AGENT_SELECT "WHERE (created_ns, id) > ($1, $2) "
                                     "ORDER BY created_ns, id LIMIT $3",
                        3},
    [ST_AGENTS_PAGE_STATE] = {AGENT_SELECT "WHERE state = $4 AND (created_ns, id) > ($1, $2) "
                                           "ORDER BY state, created_ns, id LIMIT $3",
                              4},
    [ST_AGENTS_PAGE_NS] = {AGENT_SELECT "WHERE namespace = $4 AND (created_ns, id) > ($1, $2) "
                                        "ORDER BY namespace, created_ns, id LIMIT $3",
                           4},
    [ST_AGENTS_PAGE_NS_STATE] = {AGENT_SELECT
                                 "WHERE namespace = $5 AND state = $4 AND (created_ns, id) > "
                                 "($1, $2) ORDER BY namespace, state, created_ns, id LIMIT $3",
                                 5},
    [ST_SCHEDULE_INSERT] = {"INSERT INTO schedules(" SCHEDULE_COLS ") VALUES($1, $2, $3, $4, $5, "
                            "$6, $7, $8, $9, $10, $11, $12, $13)",
                            13},
    /* No row is no error to PostgreSQL: 1 / count(*) makes it 22012, as ST_AGENT_UPDATE. */
    [ST_SCHEDULE_ADVANCE] = {"WITH u AS (UPDATE schedules SET last_fire_ns = $2, "
                             "last_agent_id = $3, fires = $4, next_fire_ns = CASE WHEN "
                             "paused <> 0 THEN 0 ELSE $5::BIGINT END WHERE id = $1 RETURNING 1) "
                             "SELECT 1 / count(*) FROM u",
                             5},
    [ST_SCHEDULE_PAUSE] = {"WITH u AS (UPDATE schedules SET paused = $2, next_fire_ns = $3 "
                           "WHERE id = $1 RETURNING 1) SELECT 1 / count(*) FROM u",
                           3},
    [ST_SCHEDULE_DELETE] = {"WITH u AS (DELETE FROM schedules WHERE id = $1 RETURNING 1) "
                            "SELECT 1 / count(*) FROM u",
                            1},
    [ST_SCHEDULES] = {"SELECT " SCHEDULE_COLS " FROM schedules ORDER BY created_ns, id", 0},
    [ST_AGENTS_PAGE_PARENT] = {AGENT_SELECT "WHERE parent_id = $4 AND (created_ns, id) > ($1, $2) "
                                            "ORDER BY parent_id, created_ns, id LIMIT $3",
                               4},
    [ST_MEM_PUT] = {"SELECT agentry_memory_put($1, $2, $3, $4, $5, $6, $7, $8)", 8},
    [ST_MEM_DELETE] = {"WITH d AS (DELETE FROM memory WHERE agent_id = $1 AND namespace = $2 "
                       "AND key = $3 RETURNING 1) UPDATE memory_usage SET entries = entries - "
                       "(SELECT count(*) FROM d) WHERE agent_id = $1",
                       3},
    [ST_MEM_GET] = {"SELECT namespace, key, value, NULL, dims, updated_ns FROM memory "
                    "WHERE agent_id = $1 AND namespace = $2 AND key = $3",
                    3},
    /* key >= prefix lets the scan start at the prefix; left() keeps only its keys. */
    [ST_MEM_LIST_NS] = {"SELECT namespace, key, value, NULL, dims, updated_ns FROM memory "
                        "WHERE agent_id = $1 AND namespace = $2 AND key > $3 AND key >= $4 "
                        "AND left(key, char_length($4::text)) = $4::text ORDER BY key LIMIT $5",
                        5},
    [ST_MEM_LIST_ALL] =
        {"SELECT namespace, key, value, NULL, dims, updated_ns FROM memory "
         "WHERE agent_id = $1 AND (namespace, key) > ($2, $3) "
         "AND left(key, char_length($4::text)) = $4::text ORDER BY namespace, key LIMIT $5",
         5},
    [ST_MEM_VECTORS] = {"SELECT namespace, key, NULL, vector, dims, updated_ns FROM memory "
                        "WHERE agent_id = $1 AND namespace = $2 AND key > $3 "
                        "AND vector IS NOT NULL ORDER BY key LIMIT $4",
                        4},
    /* One statement for the row, its events and its memory: data-modifying CTEs all run. */
    [ST_AGENT_DELETE] = {"WITH a AS (DELETE FROM agents WHERE id = $1), "
                         "e AS (DELETE FROM events WHERE agent_id = $1), "
                         "m AS (DELETE FROM memory WHERE agent_id = $1) "
                         "DELETE FROM memory_usage WHERE agent_id = $1",
                         1},
    [ST_AGENTS_ENDED] = {AGENT_SELECT "WHERE " AGENT_ENDED " AND updated_ns < $4 "
                                      "AND (updated_ns, id) > ($1, $2) "
                                      "ORDER BY updated_ns, id LIMIT $3",
                         4},
};

/* migrations[i] takes the schema from version i to i + 1, in one transaction, recorded in
 * schema_migrations. Append only: a shipped step never changes. Version 1 is SQLite's schema
 * version 2 (same tables, columns and meaning; request_id NULL when empty), plus hub_writer,
 * the one-row commit counter. */
static const char *const migrations[] = {
    "CREATE TABLE agents("
    " id TEXT NOT NULL PRIMARY KEY, request_id TEXT UNIQUE, spec BYTEA,"
    " state BIGINT NOT NULL, node_id TEXT NOT NULL, epoch BIGINT NOT NULL, checkpoint BYTEA,"
    " last_output TEXT NOT NULL, last_error TEXT NOT NULL,"
    " created_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL,"
    " input_tokens BIGINT, output_tokens BIGINT, model_calls BIGINT, tool_calls BIGINT,"
    " turn_input_tokens BIGINT NOT NULL DEFAULT 0, turn_output_tokens BIGINT NOT NULL DEFAULT 0,"
    " turn_model_calls BIGINT NOT NULL DEFAULT 0, turn_tool_calls BIGINT NOT NULL DEFAULT 0,"
    " turn_attempt BIGINT NOT NULL DEFAULT 0, interrupt_streak BIGINT NOT NULL DEFAULT 0,"
    " interrupt_reason TEXT NOT NULL DEFAULT '', spawn_input_seq BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX agents_by_creation ON agents(created_ns, id);"
    "CREATE TABLE events("
    " agent_id TEXT NOT NULL, seq BIGINT NOT NULL, kind BIGINT NOT NULL,"
    " payload TEXT NOT NULL, node_id TEXT NOT NULL, time_ns BIGINT NOT NULL,"
    " PRIMARY KEY(agent_id, seq));"
    "CREATE TABLE hub_writer(one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),"
    " commit_no BIGINT NOT NULL);"
    "INSERT INTO hub_writer(commit_no) VALUES(0);",
    /* 2: a hub loads only the agents that need it (hub/store.h, select_agents): the active ones
     * at start-up, others by id or request id when asked for, ListAgents a page at a time. */
    "ALTER TABLE agents ADD COLUMN waiting_input BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX agents_active ON agents(created_ns, id) WHERE " AGENT_ACTIVE ";"
    "CREATE INDEX agents_by_state ON agents(state, created_ns, id);",
    /* 3: fencing (hub_store_opts.fence): the leader's token and name, and the commit mark
     * that succeeds only for the hub the database names. Its own SQLSTATE tells the writer
     * that it was deposed. */
    "ALTER TABLE hub_writer ADD COLUMN fence BIGINT NOT NULL DEFAULT 0,"
    " ADD COLUMN fence_holder TEXT NOT NULL DEFAULT '';"
    "CREATE FUNCTION agentry_mark(no BIGINT, token BIGINT) RETURNS void LANGUAGE plpgsql AS $f$"
    " DECLARE cur BIGINT; holder TEXT;"
    " BEGIN"
    "  UPDATE hub_writer SET commit_no = no WHERE fence = token;"
    "  IF NOT FOUND THEN"
    "   SELECT fence, fence_holder INTO cur, holder FROM hub_writer;"
    "   RAISE EXCEPTION 'hub ''%'' leads this database now (fencing token %; this hub''s is %)',"
    "    holder, cur, token USING ERRCODE = '" STORE_PG_FENCED "';"
    "  END IF;"
    " END $f$;",
    /* 4: namespaces (SQLite's version 4). request_id becomes unique per namespace: the
     * column's UNIQUE constraint (named by PostgreSQL's default rule) gives way to a unique
     * index on (namespace, request_id). Existing agents land in 'default', request ids
     * unchanged. A constant default makes ADD COLUMN a catalog change, not a table rewrite. */
    "ALTER TABLE agents ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE agents DROP CONSTRAINT agents_request_id_key;"
    "CREATE UNIQUE INDEX agents_by_request_id ON agents(namespace, request_id);"
    "CREATE INDEX agents_by_namespace ON agents(namespace, created_ns, id);"
    "CREATE INDEX agents_by_namespace_state ON agents(namespace, state, created_ns, id);",
    /* 5: what the model calls cost (SQLite's version 5), in nano-dollars. Rows from before read
     * 0; a constant default keeps ADD COLUMN a catalog change. */
    ("ALTER TABLE agents ADD COLUMN cost_nano_usd BIGINT NOT NULL DEFAULT 0,"
     " ADD COLUMN turn_cost_nano_usd BIGINT NOT NULL DEFAULT 0;"),
    /* 6: cron schedules (SQLite's version 6). Which slots fired is in the agents table: each
     * slot's agent has the request id "schedule/<id>/<slot>". */
    ("CREATE TABLE schedules("
     " id TEXT NOT NULL PRIMARY KEY, namespace TEXT NOT NULL, request_id TEXT,"
     " cron TEXT NOT NULL, spec BYTEA, input TEXT NOT NULL, missed TEXT NOT NULL,"
     " paused BIGINT NOT NULL, created_ns BIGINT NOT NULL, next_fire_ns BIGINT NOT NULL,"
     " last_fire_ns BIGINT NOT NULL, last_agent_id TEXT NOT NULL, fires BIGINT NOT NULL);"
     "CREATE UNIQUE INDEX schedules_by_request_id ON schedules(namespace, request_id);"),
    /* 7: sub-agents (SQLite's version 7): the parent and the depth below the root, fixed at
     * insert, and the index GetAgent's children and ListAgents' parent filter read. */
    ("ALTER TABLE agents ADD COLUMN parent_id TEXT NOT NULL DEFAULT '',"
     " ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;"
     "CREATE INDEX agents_by_parent ON agents(parent_id, created_ns, id);"),
    /* 8: the agents' memory (SQLite's version 8). Keys and namespaces collate "C", so their
     * order and prefixes are bytewise as in SQLite. agentry_memory_put counts a new key in
     * memory_usage and refuses it past the agent's limit with its own SQLSTATE (one statement,
     * so the pipeline stays one round trip per batch). IF NOT EXISTS and OR REPLACE: a test
     * that rewinds the schema's version to rerun an earlier step reruns this one too. */
    ("CREATE TABLE IF NOT EXISTS memory("
     " agent_id TEXT NOT NULL, namespace TEXT COLLATE \"C\" NOT NULL,"
     " key TEXT COLLATE \"C\" NOT NULL, value TEXT NOT NULL, vector BYTEA,"
     " dims BIGINT NOT NULL DEFAULT 0, updated_ns BIGINT NOT NULL,"
     " PRIMARY KEY(agent_id, namespace, key));"
     "CREATE TABLE IF NOT EXISTS memory_usage(agent_id TEXT PRIMARY KEY, entries BIGINT NOT NULL);"
     "CREATE OR REPLACE FUNCTION agentry_memory_put(a TEXT, ns TEXT, k TEXT, v TEXT, vec BYTEA, d BIGINT,"
     " t BIGINT, cap BIGINT) RETURNS void LANGUAGE plpgsql AS $f$"
     " DECLARE n BIGINT;"
     " BEGIN"
     "  UPDATE memory SET value = v, vector = vec, dims = d, updated_ns = t"
     "   WHERE agent_id = a AND namespace = ns AND key = k;"
     "  IF FOUND THEN RETURN; END IF;"
     "  SELECT entries INTO n FROM memory_usage WHERE agent_id = a;"
     "  IF cap > 0 AND COALESCE(n, 0) >= cap THEN"
     "   RAISE EXCEPTION 'agent ''%'' keeps % memory entries, its limit: delete some"
     " (memory_delete) before adding keys', a, n USING ERRCODE = '" STORE_PG_MEMORY_FULL "';"
     "  END IF;"
     "  INSERT INTO memory(agent_id, namespace, key, value, vector, dims, updated_ns)"
     "   VALUES(a, ns, k, v, vec, d, t);"
     "  INSERT INTO memory_usage(agent_id, entries) VALUES(a, 1)"
     "   ON CONFLICT (agent_id) DO UPDATE SET entries = memory_usage.entries + 1;"
     " END $f$;"),
    /* 9: retention (SQLite's version 9): the roots that ended longest ago, through a partial
     * index, so live agents cost the sweep nothing. */
    ("CREATE INDEX agents_ended ON agents(updated_ns, id) WHERE " AGENT_ENDED ";"),
};
#define SCHEMA_VERSION ((int)AG_ARRAY_SIZE(migrations))

/* What the writer queued and has not read the result of yet. */
enum pend_kind { PEND_BEGIN, PEND_OP, PEND_LAST_SEQ, PEND_MARK, PEND_COMMIT };

struct pending {
    enum pend_kind kind;
    const struct hub_store_op *op; /* PEND_OP: borrowed, valid until the write's done() */
};

struct hub_store__conn {
    PGconn *pg;
    enum hub_store__role role;
    char where[256]; /* "postgres database 'DB' at HOST:PORT", for messages */
    /* Writer only: the running transaction's queue, and the last commit number stored. */
    struct pending *pend;
    size_t npend, pend_cap;
    bool piped;  /* in pipeline mode */
    bool broken; /* the connection failed: reconnect before the next use */
    /* The running transaction: COMMIT queued; the server refused a statement before it. */
    bool commit_queued, refused;
    bool synced; /* the pipeline's sync is sent: its PIPELINE_SYNC is still to read */
    uint64_t commit_no;
    /* Writer only: the fencing token this hub writes under (0: none; then it holds the
     * advisory lock instead) and its name (hub_store_opts). */
    int64_t fence;
    char fence_holder[128];
    /* Reconnect backoff (see STORE_PG_BACKOFF_*): set by a failed reconnect, cleared by one
     * that succeeds. down_why is that failure's message, repeated to the calls refused until
     * retry_at_ms. */
    bool down;
    int backoff_ms;
    int64_t retry_at_ms; /* ag_now_mono_ms() */
    uint64_t rng;        /* xorshift state for the jitter */
    char down_why[192];
    /* Writer only: a COMMIT (number unresolved_no) whose outcome is not known yet, and the
     * error that broke it. */
    bool unresolved;
    uint64_t unresolved_no;
    char unresolved_why[192];
};

/* --- errors ----------------------------------------------------------------------------------- */

/* The database failed, not one op: the operator has to act. libpq's messages span lines
 * ("...failed: Connection refused\n\tIs the server running..."): made one line here. */
static int db_err(struct hub_store__conn *c, const char *what, const char *why, struct ag_err *err)
{
    char line[192];
    size_t n = 0;
    for (const char *p = why; *p && n + 1 < sizeof(line); p++) {
        bool space = *p == '\n' || *p == '\t' || *p == '\r';
        if (!space)
            line[n++] = *p;
        else if (n && line[n - 1] != ' ')
            line[n++] = ' ';
    }
    while (n && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    return ag_err_set(err, AG_UNAVAILABLE,
                      "cannot %s (%s): %s; check that the server is up and reachable", what,
                      c->where, line);
}

static int conn_err(struct hub_store__conn *c, const char *what, struct ag_err *err)
{
    return db_err(c, what, PQerrorMessage(c->pg), err);
}

static const char *res_msg(const PGresult *r)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m ? m : r ? PQresultErrorMessage(r) : "no result";
}

/* What an op does and the row it names, for messages. */
static const char *op_what(const struct hub_store_op *op, const char **id)
{
    *id = op->type == HUB_STORE_EVENT_APPEND ? op->u.event.agent_id : op->u.agent.id;
    switch (op->type) {
    case HUB_STORE_AGENT_INSERT:
        return "insert agent";
    case HUB_STORE_AGENT_UPDATE:
        return "update agent";
    case HUB_STORE_EVENT_APPEND:
        return "append an event for agent";
    case HUB_STORE_SCHEDULE_INSERT:
        *id = op->u.schedule.id;
        return "insert schedule";
    case HUB_STORE_SCHEDULE_ADVANCE:
    case HUB_STORE_SCHEDULE_PAUSE:
    case HUB_STORE_SCHEDULE_DELETE:
        *id = op->u.schedule.id;
        return "update schedule";
    case HUB_STORE_MEMORY_PUT:
    case HUB_STORE_MEMORY_DELETE:
        *id = op->u.memory.agent_id;
        return "write the memory of agent";
    case HUB_STORE_AGENT_DELETE:
        return "delete agent";
    }
    return "run an op for";
}

/* A failed result of one op: constraint and data errors are the op's own fault. */
static int op_err(struct hub_store__conn *c, const PGresult *r, const struct hub_store_op *op,
                  struct ag_err *err)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* The updates that divide by the rows they changed: 22012 is "no such row". */
    bool upd = op->type == HUB_STORE_AGENT_UPDATE || op->type == HUB_STORE_SCHEDULE_ADVANCE ||
               op->type == HUB_STORE_SCHEDULE_PAUSE || op->type == HUB_STORE_SCHEDULE_DELETE;
    bool mem = op->type == HUB_STORE_MEMORY_PUT || op->type == HUB_STORE_MEMORY_DELETE;
    const char *id;
    const char *what = op_what(op, &id);
    if (!state || PQstatus(c->pg) == CONNECTION_BAD)
        return db_err(c, what, res_msg(r), err);
    if (mem && strcmp(state, STORE_PG_MEMORY_FULL) == 0)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED, "%s", res_msg(r));
    if (upd && strcmp(state, "22012") == 0)
        return ag_err_set(err, AG_NOT_FOUND, "cannot %s '%s': no such %s", what, id,
                          op->type == HUB_STORE_AGENT_UPDATE ? "agent" : "schedule");
    if (strcmp(state, "23505") == 0)
        return ag_err_set(err, AG_ALREADY_EXISTS, "cannot %s '%s': %s", what, id, res_msg(r));
    /* 22: data exceptions (bad encoding, out of range); 23: other constraints; 54: too big. */
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
        strncmp(state, "54", 2) == 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot %s '%s': %s", what, id, res_msg(r));
    return db_err(c, what, res_msg(r), err);
}

static void notice_quiet(void *arg, const char *msg)
{
    (void)arg;
    ag_log_debug("store.pg_notice", "msg=%s", ag_log_q(msg));
}

/* --- session setup ---------------------------------------------------------------------------- */

static int exec_ok(struct hub_store__conn *c, const char *sql, const char *what, struct ag_err *err)
{
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = db_err(c, what, r ? res_msg(r) : PQerrorMessage(c->pg), err);
    PQclear(r);
    return rc;
}

/* The one value of a one-row query as an integer (NULL: 0). */
static int query_i64(struct hub_store__conn *c, const char *sql, const char *what, int64_t *out,
                     struct ag_err *err)
{
    PGresult *r = PQexec(c->pg, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = db_err(c, what, r ? res_msg(r) : PQerrorMessage(c->pg), err);
    else
        *out = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

/* Takes the writer's advisory lock, trying for wait_ms: after a reconnect our old session may
 * still hold it for a moment (the server ends a dropped session asynchronously). */
static int lock_take(struct hub_store__conn *c, int wait_ms, struct ag_err *err)
{
    for (int waited = 0;; waited += STORE_PG_LOCK_POLL_MS) {
        PGresult *r = PQexec(c->pg, "SELECT pg_try_advisory_lock(" STORE_PG_LOCK_KEY ")");
        bool bad = PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1;
        bool got = !bad && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        if (bad)
            db_err(c, "take the writer's lock", r ? res_msg(r) : PQerrorMessage(c->pg), err);
        PQclear(r);
        if (bad)
            return -1;
        if (got)
            return 0;
        if (waited >= wait_ms)
            return ag_err_set(err, AG_FAILED_PRECONDITION,
                              "another hub is using the %s (it holds advisory lock %s); stop it "
                              "or use another --store",
                              c->where, STORE_PG_LOCK_KEY);
        nanosleep(&(struct timespec){0, STORE_PG_LOCK_POLL_MS * 1000000L}, NULL);
    }
}

static int migrate(struct hub_store__conn *c, struct ag_err *err)
{
    int64_t have;
    /* Under the advisory lock: no other hub runs this at the same time. */
    if (exec_ok(c,
                "CREATE TABLE IF NOT EXISTS schema_migrations(version BIGINT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                "create the migrations table", err) ||
        query_i64(c, "SELECT max(version) FROM schema_migrations", "read the schema version", &have,
                  err))
        return -1;
    if (have > SCHEMA_VERSION)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "%s has schema version %" PRId64 ", newer than this binary's %d (it "
                          "knows versions 1 to %d); upgrade agentry or use another database",
                          c->where, have, SCHEMA_VERSION, SCHEMA_VERSION);
    for (int v = (int)have; v < SCHEMA_VERSION; v++) {
        char rec[96];
        snprintf(rec, sizeof(rec), "INSERT INTO schema_migrations(version) VALUES(%d)", v + 1);
        if (exec_ok(c, "BEGIN", "begin a migration", err) ||
            exec_ok(c, migrations[v], "migrate the schema", err) ||
            exec_ok(c, rec, "record a migration", err) ||
            exec_ok(c, "COMMIT", "commit a migration", err)) {
            PQclear(PQexec(c->pg, "ROLLBACK"));
            return -1;
        }
        ag_log_info("store.migrated", "db=%s from=%d to=%d", ag_log_q(c->where), v, v + 1);
    }
    return 0;
}

/* A hub without a fencing token holds the advisory lock; a database a leader took over is not
 * for it (it would fail every commit anyway): say so at open. */
static int fence_none(struct hub_store__conn *c, struct ag_err *err)
{
    PGresult *r = PQexec(c->pg, "SELECT fence, fence_holder FROM hub_writer");
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = db_err(c, "read the fencing token", r ? res_msg(r) : PQerrorMessage(c->pg), err);
    else if (strcmp(PQgetvalue(r, 0, 0), "0") != 0)
        rc = ag_err_set(err, AG_FAILED_PRECONDITION,
                        "the %s is led through etcd (hub '%s' took it over with fencing token "
                        "%s): start this hub with --etcd too",
                        c->where, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* A leader takes the database over for its token: from the commit of this update on, only
 * commits under it succeed (agentry_mark). The update waits for the row lock that a deposed
 * leader's open transaction holds (its mark took it), so that transaction ends first, either
 * way; a stopped leader's session is ended by the server after idle_in_transaction. A newer
 * token already there: FAILED_PRECONDITION. No advisory lock: a stopped leader's session would
 * hold it for as long as it stays stopped. */
static int fence_take(struct hub_store__conn *c, struct ag_err *err)
{
    if (exec_ok(c, "SET idle_in_transaction_session_timeout = '" STORE_PG_IDLE_IN_TXN "'",
                "set up the session", err) ||
        migrate(c, err))
        return -1;
    char token[24];
    snprintf(token, sizeof(token), "%" PRId64, c->fence);
    const char *vals[] = {token, c->fence_holder};
    int64_t t0 = ag_now_mono_ms();
    if (exec_ok(c, "SET lock_timeout = '1s'", "set up the session", err))
        return -1;
    for (bool logged = false;;) {
        PGresult *r = PQexecParams(c->pg,
                                   "UPDATE hub_writer SET fence = $1, fence_holder = $2"
                                   " WHERE fence <= $1 RETURNING fence",
                                   2, NULL, vals, NULL, NULL, 0);
        ExecStatusType s = PQresultStatus(r);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool busy = s == PGRES_FATAL_ERROR && state && strcmp(state, "55P03") == 0;
        int rc = 0;
        if (s == PGRES_TUPLES_OK && PQntuples(r) == 1)
            rc = 1;
        else if (s == PGRES_TUPLES_OK)
            rc = ag_err_set(err, AG_FAILED_PRECONDITION,
                            "a newer leader holds the %s (its fencing token is above this "
                            "hub's %s)",
                            c->where, token);
        else if (!busy || ag_now_mono_ms() - t0 > STORE_PG_TAKEOVER_MAX_MS)
            rc = db_err(c, "take the database over", r ? res_msg(r) : PQerrorMessage(c->pg), err);
        PQclear(r);
        if (rc < 0)
            return -1;
        if (rc > 0)
            return exec_ok(c, "SET lock_timeout = 0", "set up the session", err);
        if (!logged)
            ag_log_warn("store.takeover_waiting", "db=%s token=%s note=%s", ag_log_q(c->where),
                        token, ag_log_q("the previous leader's transaction is still open"));
        logged = true;
    }
}

/* Everything a fresh session needs: settings, (writer) lock and schema, statements. Run at open
 * and after every reconnect, since a new session has none of them. */
static int session_setup(struct hub_store__conn *c, int wait_lock_ms, struct ag_err *err)
{
    PQsetNoticeProcessor(c->pg, notice_quiet, NULL);
    if (c->role == HUB_STORE__READER) {
        if (exec_ok(c, "SET default_transaction_read_only = on", "set up the session", err))
            return -1;
    } else {
        int64_t no;
        /* One writer: a leader's fence, or else the advisory lock. */
        int taken = c->fence ? fence_take(c, err)
                             : (lock_take(c, wait_lock_ms, err) || migrate(c, err) ||
                                fence_none(c, err));
        if (taken || exec_ok(c, "SET synchronous_commit = on", "set up the session", err) ||
            query_i64(c, "SELECT commit_no FROM hub_writer", "read the commit counter", &no, err))
            return -1;
        c->commit_no = (uint64_t)no;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        char name[8];
        snprintf(name, sizeof(name), "s%d", i);
        PGresult *r = PQprepare(c->pg, name, stmts[i].sql, stmts[i].nparams, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            db_err(c, "prepare statements", r ? res_msg(r) : PQerrorMessage(c->pg), err);
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

static void where_set(struct hub_store__conn *c)
{
    const char *db = PQdb(c->pg), *host = PQhost(c->pg), *port = PQport(c->pg);
    snprintf(c->where, sizeof(c->where), "postgres database '%s' at %s:%s", db ? db : "?",
             host && *host ? host : "localhost", port && *port ? port : "5432");
}

/* The next wait after a failed reconnect: doubled, capped, drawn in [half, whole]. */
static int backoff_next(struct hub_store__conn *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : STORE_PG_BACKOFF_MIN_MS;
    if (c->backoff_ms > STORE_PG_BACKOFF_MAX_MS)
        c->backoff_ms = STORE_PG_BACKOFF_MAX_MS;
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    int half = c->backoff_ms / 2;
    return half + (int)(c->rng % (uint64_t)(half + 1));
}

/* After the connection broke: a new session, set up again. Any failure is UNAVAILABLE (open's
 * other codes mean nothing to a running store: a lock still held is most likely our own old
 * session, not yet ended by the server), and the next call tries again, but not before the
 * backoff has passed: until then every call fails at once, saying when the next try is. The
 * first reconnect after a break is tried at once (the usual case: the server restarted). */
static int reconnect(struct hub_store__conn *c, struct ag_err *err)
{
    int64_t now = ag_now_mono_ms();
    if (c->down && now < c->retry_at_ms)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "%s is down; retrying in %" PRId64 " ms; last try: %s", c->where,
                          c->retry_at_ms - now, c->down_why);
    PQreset(c->pg); /* a new session: out of pipeline mode, nothing pending */
    c->piped = c->synced = false;
    c->npend = 0;
    c->broken = true;
    int rc = PQstatus(c->pg) != CONNECTION_OK ? conn_err(c, "reconnect", err)
                                              : session_setup(c, STORE_PG_RELOCK_MS, err);
    if (rc) {
        int wait = backoff_next(c);
        c->down = true;
        c->retry_at_ms = ag_now_mono_ms() + wait;
        snprintf(c->down_why, sizeof(c->down_why), "%.191s", err->msg);
        return ag_err_set(err, AG_UNAVAILABLE, "%s is down; retrying in %d ms; this try: %s",
                          c->where, wait, c->down_why);
    }
    c->broken = c->down = false;
    c->backoff_ms = 0;
    ag_log_debug("store.reconnected", "db=%s role=%s", ag_log_q(c->where),
                 c->role == HUB_STORE__WRITER ? "writer" : "reader");
    return 0;
}

static void pg_close(struct hub_store__conn *c)
{
    if (!c)
        return;
    PQfinish(c->pg); /* NULL is a no-op; the advisory lock goes with the session */
    free(c->pend);
    free(c);
}

static struct hub_store__conn *pg_open(const char *url, enum hub_store__role role,
                                       const struct hub_store_opts *fence, struct ag_err *err)
{
    const char *colon = strchr(url, ':');
    /* A URI goes whole; after "postgres:" anything else is a keyword conninfo. */
    const char *conninfo = strncmp(colon, "://", 3) == 0 ? url : colon + 1;
    /* libpq reads these in order, later ones winning: the URL's own connect_timeout overrides
     * ours (without one a dead host blocks the writer for minutes), and fallback_application_name
     * gives way to its application_name. */
    const char *const keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
    const char *const vals[] = {"10", conninfo, "agentry-hub", NULL};
    struct hub_store__conn *c = ag_xcalloc(1, sizeof(*c));
    c->role = role;
    if (role == HUB_STORE__WRITER && fence && fence->fence > 0) {
        c->fence = fence->fence;
        snprintf(c->fence_holder, sizeof(c->fence_holder), "%s",
                 fence->fence_holder ? fence->fence_holder : "");
    }
    c->rng = (uint64_t)ag_now_mono_ns() ^ (uintptr_t)c;
    c->rng |= 1; /* xorshift's state must not be 0 */
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg) {
        ag_err_set(err, AG_UNAVAILABLE, "cannot connect to postgres: out of memory");
        goto fail;
    }
    where_set(c);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        conn_err(c, "connect", err);
        goto fail;
    }
    if (session_setup(c, 0, err))
        goto fail;
    return c;
fail:
    pg_close(c);
    return NULL;
}

/* --- parameters: text, except blobs and payloads, which go as binary with their length -------- */

#define MAX_PARAMS 29

struct params {
    const char *val[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    char num[MAX_PARAMS][24];
    int n;
};

static void p_text(struct params *p, const char *v)
{
    p->val[p->n] = v ? v : "";
    p->fmt[p->n++] = 0;
}

static void p_text_or_null(struct params *p, const char *v)
{
    p->val[p->n] = v && *v ? v : NULL;
    p->fmt[p->n++] = 0;
}

/* bytes of text or bytea, n of them (NULL when n is 0 and null_empty). */
static void p_bytes(struct params *p, const void *v, size_t n, bool null_empty)
{
    p->val[p->n] = n ? (const char *)v : null_empty ? NULL : "";
    p->len[p->n] = (int)n;
    p->fmt[p->n++] = 1;
}

static void p_i64(struct params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
    p_text(p, p->num[p->n]);
}

static void p_u64(struct params *p, uint64_t v)
{
    p_i64(p, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void p_usage(struct params *p, const struct hub_usage *u)
{
    p_u64(p, u->input_tokens);
    p_u64(p, u->output_tokens);
    p_u64(p, u->model_calls);
    p_u64(p, u->tool_calls);
}

/* The agent's and its turn's cost (migration 5), last in both statements. */
static void p_costs(struct params *p, const struct hub_store_agent *a)
{
    p_u64(p, a->usage.cost_nano_usd);
    p_u64(p, a->turn_usage.cost_nano_usd);
}

/* The usage, turn and interruption columns, in the order both statements list them. */
static void p_counters(struct params *p, const struct hub_store_agent *a)
{
    p_usage(p, &a->usage);
    p_usage(p, &a->turn_usage);
    p_u64(p, a->turn_attempt);
    p_u64(p, a->streak);
    p_text(p, a->streak_reason);
}

static void schedule_params(const struct hub_store_op *op, struct params *p, enum stmt_id *id)
{
    const struct hub_store_schedule *r = &op->u.schedule;
    p_text(p, r->id);
    switch (op->type) {
    case HUB_STORE_SCHEDULE_INSERT:
        *id = ST_SCHEDULE_INSERT;
        p_text(p, r->namespace && *r->namespace ? r->namespace : HUB_STORE_DEFAULT_NAMESPACE);
        p_text_or_null(p, r->request_id);
        p_text(p, r->cron);
        p_bytes(p, r->spec, r->spec_len, true);
        p_text(p, r->input);
        p_text(p, r->missed);
        p_i64(p, r->paused);
        p_i64(p, r->created_ns);
        p_i64(p, r->next_fire_ns);
        p_i64(p, r->last_fire_ns);
        p_text(p, r->last_agent_id);
        p_u64(p, r->fires);
        return;
    case HUB_STORE_SCHEDULE_ADVANCE:
        *id = ST_SCHEDULE_ADVANCE;
        p_i64(p, r->last_fire_ns);
        p_text(p, r->last_agent_id);
        p_u64(p, r->fires);
        p_i64(p, r->next_fire_ns);
        return;
    case HUB_STORE_SCHEDULE_PAUSE:
        *id = ST_SCHEDULE_PAUSE;
        p_i64(p, r->paused);
        p_i64(p, r->next_fire_ns);
        return;
    default:
        *id = ST_SCHEDULE_DELETE;
        return;
    }
}

static void op_params(const struct hub_store_op *op, struct params *p, enum stmt_id *id)
{
    const struct hub_store_agent *a = &op->u.agent;
    const struct hub_store_event *e = &op->u.event;
    const struct hub_store_memory *m = &op->u.memory;
    p->n = 0;
    switch (op->type) {
    case HUB_STORE_AGENT_INSERT:
        *id = ST_AGENT_INSERT;
        p_text(p, a->id);
        p_text_or_null(p, a->request_id);
        p_bytes(p, a->spec, a->spec_len, true);
        p_i64(p, a->state);
        p_text(p, a->node_id);
        p_u64(p, a->epoch);
        p_bytes(p, a->checkpoint, a->checkpoint_len, true);
        p_text(p, a->last_output);
        p_text(p, a->last_error);
        p_i64(p, a->created_ns);
        p_i64(p, a->updated_ns);
        p_counters(p, a);
        p_u64(p, a->spawn_input_seq);
        p_i64(p, a->waiting_input);
        p_text(p, a->namespace && *a->namespace ? a->namespace : HUB_STORE_DEFAULT_NAMESPACE);
        p_costs(p, a);
        p_text(p, a->parent_id ? a->parent_id : "");
        p_u64(p, a->depth);
        return;
    case HUB_STORE_AGENT_UPDATE:
        *id = ST_AGENT_UPDATE;
        p_text(p, a->id);
        p_i64(p, a->state);
        p_text(p, a->node_id);
        p_u64(p, a->epoch);
        p_bytes(p, a->checkpoint, a->checkpoint_len, true);
        p_text(p, a->last_output);
        p_text(p, a->last_error);
        p_i64(p, a->updated_ns);
        p_counters(p, a);
        p_i64(p, a->waiting_input);
        p_costs(p, a);
        return;
    case HUB_STORE_EVENT_APPEND:
        *id = ST_EVENT_INSERT;
        p_text(p, e->agent_id);
        p_u64(p, e->seq);
        p_i64(p, e->kind);
        p_bytes(p, e->payload, e->payload_len, false); /* need not be NUL-terminated */
        p_text(p, e->node_id);
        p_i64(p, e->time_ns);
        return;
    case HUB_STORE_SCHEDULE_INSERT:
    case HUB_STORE_SCHEDULE_ADVANCE:
    case HUB_STORE_SCHEDULE_PAUSE:
    case HUB_STORE_SCHEDULE_DELETE:
        schedule_params(op, p, id);
        return;
    case HUB_STORE_MEMORY_PUT:
    case HUB_STORE_MEMORY_DELETE:
        *id = op->type == HUB_STORE_MEMORY_PUT ? ST_MEM_PUT : ST_MEM_DELETE;
        p_text(p, m->agent_id);
        p_text(p, m->namespace);
        p_text(p, m->key);
        if (op->type == HUB_STORE_MEMORY_DELETE)
            return;
        p_bytes(p, m->value, m->value_len, false);
        p_bytes(p, m->vector, m->vector ? m->dims * sizeof(float) : 0, true);
        p_u64(p, m->vector ? m->dims : 0);
        p_i64(p, m->updated_ns);
        p_u64(p, m->max_entries);
        return;
    case HUB_STORE_AGENT_DELETE:
        *id = ST_AGENT_DELETE;
        p_text(p, a->id);
        return;
    }
}

/* --- writer: the pipeline ----------------------------------------------------------------------- */

static int send_stmt(struct hub_store__conn *c, enum stmt_id id, const struct params *p,
                     enum pend_kind kind, const struct hub_store_op *op, struct ag_err *err)
{
    char name[8];
    snprintf(name, sizeof(name), "s%d", (int)id);
    if (!PQsendQueryPrepared(c->pg, name, p ? p->n : 0, p ? p->val : NULL, p ? p->len : NULL,
                             p ? p->fmt : NULL, 0)) {
        c->broken = true; /* what of the pipeline went out is unknown */
        return conn_err(c, "send a statement", err);
    }
    if (c->npend == c->pend_cap) {
        c->pend_cap = c->pend_cap ? 2 * c->pend_cap : 64;
        c->pend = ag_xrealloc(c->pend, c->pend_cap * sizeof(*c->pend));
    }
    c->pend[c->npend++] = (struct pending){kind, op};
    return 0;
}

/* Reads the results of everything queued, in order. The first failure is kept in err (the
 * op's own code, or UNAVAILABLE); what follows it was skipped by the server (PIPELINE_ABORTED).
 * With the sync sent, also reads its PIPELINE_SYNC. *seq gets a LAST_SEQ's answer. A broken
 * connection sets c->broken. */
static int drain(struct hub_store__conn *c, uint64_t *seq, struct ag_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < c->npend && !c->broken; i++) {
        const struct pending *p = &c->pend[i];
        PGresult *r = PQgetResult(c->pg);
        ExecStatusType s = PQresultStatus(r);
        if (!r || PQstatus(c->pg) == CONNECTION_BAD) {
            c->broken = true;
            if (rc == 0)
                rc = db_err(c, "run a transaction", r ? res_msg(r) : PQerrorMessage(c->pg), err);
        } else if (s == PGRES_FATAL_ERROR && rc == 0) {
            /* The server's own error (it carries a SQLSTATE) before COMMIT aborts the
             * transaction: whatever happens to the connection next, nothing was committed. */
            c->refused |= p->kind != PEND_COMMIT && PQresultErrorField(r, PG_DIAG_SQLSTATE);
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (p->kind == PEND_MARK && state && strcmp(state, STORE_PG_FENCED) == 0)
                rc = ag_err_set(err, AG_DATA_LOSS,
                                "this hub no longer leads the %s: %s; it must stop (a standby "
                                "took over)",
                                c->where, PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
            else
                rc = p->kind == PEND_OP ? op_err(c, r, p->op, err)
                                        : db_err(c, "run a transaction", res_msg(r), err);
            /* FATAL (57P01 from pg_terminate_backend or a shutting-down server) ends the
             * session, but the socket may close a moment later: marked now, the next begin()
             * reconnects instead of sending its transaction into the dying session. */
            const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
            if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
                c->broken = true;
        } else if (s == PGRES_TUPLES_OK && p->kind == PEND_LAST_SEQ && seq) {
            *seq = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        }
        PQclear(r);
        if (!c->broken)
            PQclear(PQgetResult(c->pg)); /* the NULL that ends each query's results */
    }
    c->npend = 0;
    if (c->synced && !c->broken) {
        PGresult *r = PQgetResult(c->pg);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
            c->broken = true;
            if (rc == 0)
                rc = conn_err(c, "finish a transaction", err);
        }
        PQclear(r);
    }
    c->synced = false;
    return rc || c->broken ? -1 : 0;
}

/* Reads what is queued so far without ending the transaction. */
static int drain_now(struct hub_store__conn *c, uint64_t *seq, struct ag_err *err)
{
    if (!PQsendFlushRequest(c->pg) || PQflush(c->pg) != 0) {
        c->broken = true;
        return conn_err(c, "send a transaction", err);
    }
    return drain(c, seq, err);
}

static int pg_begin(struct hub_store__conn *c, struct ag_err *err)
{
    /* A server that restarted (or ended this session) while the writer idled has said so and
     * closed the socket: reading what is pending finds that out, so the transaction goes to a
     * new session instead of failing on the dead one. */
    struct pollfd in = {.fd = PQsocket(c->pg), .events = POLLIN};
    for (int i = 0; i < 8 && !c->broken && in.fd >= 0 && poll(&in, 1, 0) == 1; i++)
        c->broken = !PQconsumeInput(c->pg); /* its FATAL message, then the end of the file */
    if ((c->broken || PQstatus(c->pg) == CONNECTION_BAD) && reconnect(c, err))
        return -1;
    if (!PQenterPipelineMode(c->pg))
        return conn_err(c, "enter pipeline mode", err);
    c->piped = true;
    c->commit_queued = c->refused = false;
    return send_stmt(c, ST_BEGIN, NULL, PEND_BEGIN, NULL, err);
}

static int pg_apply(struct hub_store__conn *c, const struct hub_store_op *op, struct ag_err *err)
{
    struct params p;
    enum stmt_id id = ST_EVENT_INSERT;
    op_params(op, &p, &id);
    if (send_stmt(c, id, &p, PEND_OP, op, err))
        return -1;
    return c->npend >= STORE_PG_PIPELINE_MAX ? drain_now(c, NULL, err) : 0;
}

static int pg_last_seq(struct hub_store__conn *c, const char *agent_id, uint64_t *seq,
                       struct ag_err *err)
{
    struct params p = {0};
    p_text(&p, agent_id);
    *seq = 0;
    if (send_stmt(c, ST_LAST_SEQ, &p, PEND_LAST_SEQ, NULL, err))
        return -1;
    return drain_now(c, seq, err);
}

/* The connection broke while COMMIT may have reached the server: ask a new session whether
 * commit number `no` made it. Nothing else can have written it: reconnect() takes the lock
 * again first, which also waits for our old session to end (its transaction is then decided).
 * If the server cannot be reached yet: AG_UNKNOWN, and store.c asks again (pg_resolve) until it
 * can; reconnect()'s backoff paces those tries. why: the error that broke the COMMIT. */
static int commit_resolve(struct hub_store__conn *c, uint64_t no, const char *why,
                          struct ag_err *err)
{
    struct ag_err rerr = AG_ERR_INIT;
    int64_t have;
    if (reconnect(c, &rerr) ||
        query_i64(c, "SELECT commit_no FROM hub_writer", "read the commit counter", &have, &rerr)) {
        c->broken = true;
        c->unresolved = true;
        c->unresolved_no = no;
        if (why != c->unresolved_why)
            snprintf(c->unresolved_why, sizeof(c->unresolved_why), "%.191s", why);
        return ag_err_set(err, AG_UNKNOWN,
                          "lost the connection to the %s during COMMIT and cannot find out yet "
                          "whether it was stored: %s",
                          c->where, rerr.msg);
    }
    c->unresolved = false;
    c->commit_no = (uint64_t)have;
    bool stored = (uint64_t)have == no;
    ag_log_warn("store.commit_resolved", "db=%s stored=%s", ag_log_q(c->where),
                stored ? "true" : "false");
    if (stored) {
        ag_err_clear(err);
        return 0;
    }
    ag_err_set(err, AG_UNAVAILABLE, "%s (after reconnecting: not stored)", why);
    return -1;
}

static int pg_resolve(struct hub_store__conn *c, struct ag_err *err)
{
    return commit_resolve(c, c->unresolved_no, c->unresolved_why, err);
}

static int pg_commit(struct hub_store__conn *c, struct ag_err *err)
{
    uint64_t next = c->commit_no + 1;
    struct params p = {0};
    p_u64(&p, next);
    p_i64(&p, c->fence);
    int rc = send_stmt(c, ST_MARK, &p, PEND_MARK, NULL, err);
    rc = rc ? rc : send_stmt(c, ST_COMMIT, NULL, PEND_COMMIT, NULL, err);
    c->commit_queued = rc == 0;
    if (rc == 0 && !PQpipelineSync(c->pg)) {
        c->broken = true;
        rc = conn_err(c, "send a transaction", err);
    } else if (rc == 0) {
        c->synced = true;
        rc = drain(c, NULL, err);
    }
    if (rc == 0) {
        PQexitPipelineMode(c->pg);
        c->piped = false;
        c->commit_no = next;
        return 0;
    }
    /* A statement failed: nothing was committed. The connection failed: COMMIT may have run,
     * unless it never left us or the server refused a statement before it (a server shutting
     * down answers the first statement with 57P01 and closes). */
    if (c->broken || PQstatus(c->pg) == CONNECTION_BAD) {
        c->broken = true;
        if (c->commit_queued && !c->refused) {
            char why[sizeof(err->msg)];
            snprintf(why, sizeof(why), "%s", err->msg);
            return commit_resolve(c, next, why, err);
        }
    }
    return -1;
}

static void pg_rollback(struct hub_store__conn *c)
{
    if (c->broken || PQstatus(c->pg) == CONNECTION_BAD) {
        c->broken = true; /* the server rolls back a dead session's transaction itself */
        c->npend = 0;
        c->synced = false;
        return;
    }
    if (c->piped) {
        struct ag_err err = AG_ERR_INIT;
        /* After an error the server skips everything up to a sync, so always send one. */
        if (c->synced || PQpipelineSync(c->pg)) {
            c->synced = true;
            drain(c, NULL, &err);
        }
        PQexitPipelineMode(c->pg);
        c->piped = false;
    }
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

/* --- reader ----------------------------------------------------------------------------------- */

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Runs a prepared read row by row (single-row mode: a long history is never held whole), calling
 * fn per row; a callback failure stops it and is returned after the rest is discarded. *rows
 * counts the rows handed to fn. */
typedef int row_fn(void *arg, const PGresult *r, struct ag_err *err);

static int read_once(struct hub_store__conn *c, enum stmt_id id, const struct params *p,
                     const char *what, row_fn *fn, void *arg, size_t *rows, struct ag_err *err)
{
    if ((c->broken || PQstatus(c->pg) == CONNECTION_BAD) && reconnect(c, err))
        return -1;
    char name[8];
    snprintf(name, sizeof(name), "s%d", (int)id);
    if (!PQsendQueryPrepared(c->pg, name, p ? p->n : 0, p ? p->val : NULL, p ? p->len : NULL,
                             p ? p->fmt : NULL, 0) ||
        !PQsetSingleRowMode(c->pg)) {
        c->broken = true;
        return conn_err(c, what, err);
    }
    int rc = 0;
    bool stopped = false;
    PGresult *r;
    while ((r = PQgetResult(c->pg)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_SINGLE_TUPLE && !stopped) {
            ++*rows;
            if (fn(arg, r, err) != 0) {
                rc = -1;
                stopped = true;
            }
        } else if (s != PGRES_SINGLE_TUPLE && s != PGRES_TUPLES_OK && rc == 0) {
            rc = db_err(c, what, res_msg(r), err);
        }
        PQclear(r);
    }
    c->broken |= PQstatus(c->pg) == CONNECTION_BAD;
    return rc;
}

/* A read is retried once on a new session if the old one turned out dead before any row came
 * (the server restarted while the reader was idle): reads change nothing, so that is safe. */
static int read_rows(struct hub_store__conn *c, enum stmt_id id, const struct params *p,
                     const char *what, row_fn *fn, void *arg, struct ag_err *err)
{
    size_t rows = 0;
    int rc = read_once(c, id, p, what, fn, arg, &rows, err);
    if (rc != 0 && c->broken && rows == 0) {
        ag_err_clear(err);
        rc = read_once(c, id, p, what, fn, arg, &rows, err);
    }
    return rc;
}

struct scan_ctx {
    const char *agent_id;
    hub_store_event_fn *cb;
    void *arg;
};

static int event_row(void *arg, const PGresult *r, struct ag_err *err)
{
    struct scan_ctx *x = arg;
    struct hub_store_event ev = {.agent_id = x->agent_id,
                                 .seq = (uint64_t)col_i64(r, 0, 0),
                                 .kind = (int)col_i64(r, 0, 1),
                                 .payload = PQgetvalue(r, 0, 2),
                                 .payload_len = (size_t)PQgetlength(r, 0, 2),
                                 .node_id = PQgetvalue(r, 0, 3),
                                 .time_ns = col_i64(r, 0, 4)};
    return x->cb(x->arg, &ev, err);
}

static int pg_scan_events(struct hub_store__conn *c, const char *agent_id, uint64_t from_seq,
                          uint64_t to_seq, uint64_t max, hub_store_event_fn *cb, void *arg,
                          struct ag_err *err)
{
    struct params p = {0};
    p_text(&p, agent_id);
    p_u64(&p, from_seq);
    p_u64(&p, to_seq ? to_seq : UINT64_MAX);
    p_u64(&p, max);
    struct scan_ctx x = {agent_id, cb, arg};
    return read_rows(c, ST_EVENTS, &p, "read events", event_row, &x, err);
}

struct agents_ctx {
    hub_store_agent_fn *cb;
    void *arg;
};

/* bytea in text form ("\x0a1b..."), decoded; libpq allocates it. */
static uint8_t *col_bytea(const PGresult *r, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, 0, col))
        return NULL;
    return PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, col), len);
}

static void col_usage(const PGresult *r, int first, struct hub_usage *u)
{
    u->input_tokens = (uint64_t)col_i64(r, 0, first);
    u->output_tokens = (uint64_t)col_i64(r, 0, first + 1);
    u->model_calls = (uint64_t)col_i64(r, 0, first + 2);
    u->tool_calls = (uint64_t)col_i64(r, 0, first + 3);
}

static int agent_row(void *arg, const PGresult *r, struct ag_err *err)
{
    struct agents_ctx *x = arg;
    size_t spec_len, ckpt_len;
    uint8_t *spec = col_bytea(r, 2, &spec_len), *ckpt = col_bytea(r, 6, &ckpt_len);
    struct hub_store_agent a = {.id = PQgetvalue(r, 0, 0),
                                .request_id = PQgetvalue(r, 0, 1), /* NULL reads as "" */
                                .spec = spec,
                                .spec_len = spec_len,
                                .state = (int)col_i64(r, 0, 3),
                                .node_id = PQgetvalue(r, 0, 4),
                                .epoch = (uint64_t)col_i64(r, 0, 5),
                                .checkpoint = ckpt,
                                .checkpoint_len = ckpt_len,
                                .last_output = PQgetvalue(r, 0, 7),
                                .last_error = PQgetvalue(r, 0, 8),
                                .created_ns = col_i64(r, 0, 9),
                                .updated_ns = col_i64(r, 0, 10),
                                .has_usage = !PQgetisnull(r, 0, 11),
                                .turn_attempt = (uint32_t)col_i64(r, 0, 19),
                                .streak = (uint32_t)col_i64(r, 0, 20),
                                .streak_reason = PQgetvalue(r, 0, 21),
                                .spawn_input_seq = (uint64_t)col_i64(r, 0, 22),
                                .waiting_input = col_i64(r, 0, 23) != 0,
                                .namespace = PQgetvalue(r, 0, 24)};
    col_usage(r, 11, &a.usage);
    col_usage(r, 15, &a.turn_usage);
    a.usage.cost_nano_usd = (uint64_t)col_i64(r, 0, 25);
    a.turn_usage.cost_nano_usd = (uint64_t)col_i64(r, 0, 26);
    a.parent_id = PQgetvalue(r, 0, 27);
    a.depth = (uint32_t)col_i64(r, 0, 28);
    uint64_t last_seq = (uint64_t)col_i64(r, 0, 29); /* NULL: no event */
    int rc = x->cb(x->arg, &a, last_seq, err);
    PQfreemem(spec);
    PQfreemem(ckpt);
    return rc;
}

static int pg_select_agents(struct hub_store__conn *c, const struct hub_store_agents_query *q,
                            hub_store_agent_fn *cb, void *arg, struct ag_err *err)
{
    struct agents_ctx x = {cb, arg};
    struct params p = {0};
    enum stmt_id id = ST_AGENTS_ACTIVE;
    switch (q->kind) {
    case HUB_STORE_AGENTS_ACTIVE:
        break;
    case HUB_STORE_AGENTS_ID:
        id = ST_AGENTS_ID;
        p_text(&p, q->key);
        break;
    case HUB_STORE_AGENTS_REQUEST:
        id = ST_AGENTS_REQUEST;
        p_text(&p, q->key);
        p_text(&p, q->namespace && *q->namespace ? q->namespace : HUB_STORE_DEFAULT_NAMESPACE);
        break;
    case HUB_STORE_AGENTS_PAGE: {
        bool ns = q->namespace && *q->namespace, parent = q->parent_id && *q->parent_id;
        id = parent ? ST_AGENTS_PAGE_PARENT
             : ns   ? (q->state ? ST_AGENTS_PAGE_NS_STATE : ST_AGENTS_PAGE_NS)
                    : (q->state ? ST_AGENTS_PAGE_STATE : ST_AGENTS_PAGE);
        p_i64(&p, q->after_id && *q->after_id ? q->after_ns : INT64_MIN);
        p_text(&p, q->after_id ? q->after_id : "");
        p_u64(&p, q->max);
        if (parent) {
            p_text(&p, q->parent_id);
            break;
        }
        if (q->state)
            p_i64(&p, q->state);
        if (ns) /* $4 or $5: after the state when there is one */
            p_text(&p, q->namespace);
        break;
    }
    case HUB_STORE_AGENTS_ENDED:
        id = ST_AGENTS_ENDED;
        p_i64(&p, q->after_id && *q->after_id ? q->after_ns : INT64_MIN);
        p_text(&p, q->after_id ? q->after_id : "");
        p_u64(&p, q->max);
        p_i64(&p, q->before_ns);
        break;
    default:
        return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown agents query %d", (int)q->kind);
    }
    return read_rows(c, id, &p, "read agents", agent_row, &x, err);
}

struct schedules_ctx {
    hub_store_schedule_fn *cb;
    void *arg;
};

static int schedule_row(void *arg, const PGresult *r, struct ag_err *err)
{
    struct schedules_ctx *x = arg;
    size_t spec_len;
    uint8_t *spec = col_bytea(r, 4, &spec_len);
    struct hub_store_schedule s = {.id = PQgetvalue(r, 0, 0),
                                   .namespace = PQgetvalue(r, 0, 1),
                                   .request_id = PQgetvalue(r, 0, 2), /* NULL reads as "" */
                                   .cron = PQgetvalue(r, 0, 3),
                                   .spec = spec,
                                   .spec_len = spec_len,
                                   .input = PQgetvalue(r, 0, 5),
                                   .missed = PQgetvalue(r, 0, 6),
                                   .paused = col_i64(r, 0, 7) != 0,
                                   .created_ns = col_i64(r, 0, 8),
                                   .next_fire_ns = col_i64(r, 0, 9),
                                   .last_fire_ns = col_i64(r, 0, 10),
                                   .last_agent_id = PQgetvalue(r, 0, 11),
                                   .fires = (uint64_t)col_i64(r, 0, 12)};
    int rc = x->cb(x->arg, &s, err);
    PQfreemem(spec);
    return rc;
}

static int pg_select_schedules(struct hub_store__conn *c, hub_store_schedule_fn *cb, void *arg,
                               struct ag_err *err)
{
    struct schedules_ctx x = {cb, arg};
    return read_rows(c, ST_SCHEDULES, NULL, "read schedules", schedule_row, &x, err);
}

struct memory_ctx {
    const struct hub_store_memory_query *q;
    hub_store__memory_row_fn *cb;
    void *arg;
};

static int memory_row(void *arg, const PGresult *r, struct ag_err *err)
{
    struct memory_ctx *x = arg;
    struct hub_store_memory m = {.agent_id = x->q->agent_id,
                                 .namespace = PQgetvalue(r, 0, 0),
                                 .key = PQgetvalue(r, 0, 1),
                                 .dims = (uint32_t)col_i64(r, 0, 4),
                                 .updated_ns = col_i64(r, 0, 5)};
    if (!PQgetisnull(r, 0, 2)) {
        m.value = PQgetvalue(r, 0, 2);
        m.value_len = (size_t)PQgetlength(r, 0, 2);
    }
    size_t bytes = 0;
    uint8_t *vec = col_bytea(r, 3, &bytes); /* malloc'd by libpq: aligned for floats */
    if (vec && bytes == m.dims * sizeof(float))
        m.vector = (const float *)(const void *)vec;
    int rc = x->cb(x->arg, &m, err);
    PQfreemem(vec);
    return rc;
}

static int pg_scan_memory(struct hub_store__conn *c, const struct hub_store_memory_query *q,
                          hub_store__memory_row_fn *cb, void *arg, struct ag_err *err)
{
    struct memory_ctx x = {q, cb, arg};
    struct params p = {0};
    enum stmt_id id = ST_MEM_GET;
    p_text(&p, q->agent_id);
    switch (q->kind) {
    case HUB_STORE_MEMORY_GET:
        p_text(&p, q->namespace);
        p_text(&p, q->keys[0]);
        break;
    case HUB_STORE_MEMORY_LIST: {
        bool after = q->after_namespace && *q->after_namespace;
        if (q->namespace && *q->namespace) {
            /* After a key of another namespace: that namespace sorts all before or after. */
            int cmp = after ? strcmp(q->after_namespace, q->namespace) : -1;
            if (cmp > 0)
                return 0;
            id = ST_MEM_LIST_NS;
            p_text(&p, q->namespace);
            p_text(&p, cmp == 0 ? q->after_key : "");
        } else {
            id = ST_MEM_LIST_ALL;
            p_text(&p, after ? q->after_namespace : "");
            p_text(&p, after ? q->after_key : "");
        }
        p_text(&p, q->prefix);
        p_u64(&p, q->max);
        break;
    }
    case HUB_STORE_MEMORY_VECTORS:
        id = ST_MEM_VECTORS;
        p_text(&p, q->namespace);
        p_text(&p, q->after_key);
        p_u64(&p, q->max ? q->max : INT64_MAX);
        break;
    }
    return read_rows(c, id, &p, "read the agent's memory", memory_row, &x, err);
}

/* One row for both schemes PostgreSQL's own tools accept. */
const struct hub_store__backend hub_store__pg_backend = {
    .scheme = "postgres",
    .alias = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .resolve = pg_resolve,
    .rollback = pg_rollback,
    .apply = pg_apply,
    .last_seq = pg_last_seq,
    .scan_events = pg_scan_events,
    .select_agents = pg_select_agents,
    .select_schedules = pg_select_schedules,
    .scan_memory = pg_scan_memory,
};
