/* cmd/agentry/cmd_trace.c - 'agentry trace AGENT_ID': print an agent's events, from --from on,
 * and with -f keep following new ones until the stream ends or Ctrl-C (exit 130). A few kinds
 * print as a sentence instead of their payload (a sub-agent's end, a call waiting for approval
 * and its decision); -o jsonl (also -o json and --jsonl: events are a stream) prints every event
 * whole on its line, -o yaml each as a document. A time shows its date when it is not today.
 *
 * Threads: the main thread reads the stream; a watcher thread (cli_sigwatch) cancels it on
 * Ctrl-C. `lock` guards the stream pointer they share. A follower the hub drops for falling
 * behind (RESOURCE_EXHAUSTED) resumes from its last seq + 1, as hub.proto's Trace suggests, so
 * a slow terminal never loses or repeats an event. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"
#include "common/utf8.h"

#define TRACE_RESUME_TRIES 3 /* consecutive drops without one event in between */

static const struct ag_cmd_help trace_help = {
    "agentry trace [flags] AGENT_ID",
    "Print an agent's events in order: #seq, time (with the date when it is not today), kind, "
    "node and the JSON payload. With -f, keep the stream open and print new events as they are "
    "stored, until Ctrl-C. -o json and -o jsonl print one event per line, -o yaml one document "
    "per event.",
    "agentry trace -f 01jd5x8k2m4n6p8q\nagentry trace --from 5 -o jsonl 01jd5x8k2m4n6p8q | jq "
    ".kind",
};

struct trace_opts {
    bool follow, jsonl;
    int64_t from;
    enum cli_format format; /* after parsing: jsonl for --jsonl, json or jsonl */
    bool color;
};

struct trace_run {
    struct cli_client *c;
    const struct trace_opts *o;
    struct cli_sigwatch *sig;
    pthread_mutex_t lock;
    struct rpc_stream *s; /* guarded by lock */
};

static void on_signal(void *arg)
{
    struct trace_run *t = arg;
    pthread_mutex_lock(&t->lock);
    rpc_stream_cancel(t->s);
    pthread_mutex_unlock(&t->lock);
}

#define CHILD_TEXT_SHOWN 100 /* of a sub-agent's answer on its CHILD line */
#define ARGS_SHOWN 200       /* of a call's arguments on an approval line */

/* The head every line starts with (cli_print_event_head), then two spaces. */
static void print_head(const Agentry__V1__TraceEvent *ev, bool color)
{
    cli_print_event_head(stdout, ev, color);
    fputs("  ", stdout);
}

/* At most max bytes of s (whole characters), "..." when cut, on one line: no control character
 * from the hub gets through. */
static void put_line(const char *s, size_t max)
{
    size_t len = strlen(s);
    size_t keep = len <= max ? len : ag_utf8_prefix(s, max);
    for (size_t i = 0; i < keep; i++)
        putchar((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i]);
    fputs(keep < len ? "..." : "", stdout);
}

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A sub-agent's turn end, by reference: "child AGENT_ID idle (its #seq): the answer's start".
 * False if the payload is not one (then the event prints as any other). */
static bool print_child(const Agentry__V1__TraceEvent *ev, const cJSON *p, bool color)
{
    const char *id = str_item(p, "agent_id"), *st = str_item(p, "state");
    const char *text = str_item(p, "output") ? str_item(p, "output") : str_item(p, "error");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "seq");
    if (!id || !st || !text)
        return false;
    print_head(ev, color);
    printf("%s %s (its #%.0f): ", id, st, cJSON_IsNumber(seq) ? seq->valuedouble : 0.0);
    put_line(text, CHILD_TEXT_SHOWN);
    putchar('\n');
    return true;
}

/* "call_1 shell {"command":"ls"} (rule 1 of the spec (ask shell)), expires in 23h59m": the
 * call's id is what approve and deny take. */
static bool print_approval_required(const Agentry__V1__TraceEvent *ev, const cJSON *p, bool color)
{
    const char *id = str_item(p, "id"), *name = str_item(p, "name");
    const char *args = str_item(p, "arguments"), *reason = str_item(p, "reason");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(p, "expires_at_ms");
    if (!id || !name)
        return false;
    print_head(ev, color);
    put_line(id, 64);
    putchar(' ');
    put_line(name, 128);
    if (args) {
        putchar(' ');
        put_line(args, ARGS_SHOWN);
    }
    if (reason && *reason) {
        fputs(" (", stdout);
        put_line(reason, ARGS_SHOWN);
        putchar(')');
    }
    if (cJSON_IsNumber(exp)) {
        int64_t left = (int64_t)exp->valuedouble - ag_now_unix_ns() / 1000000;
        char d[32];
        if (left > 0) {
            printf(", expires in %s", cli_print_span(d, sizeof(d), left));
        } else {
            time_t secs = (time_t)(exp->valuedouble / 1000);
            struct tm tm;
            localtime_r(&secs, &tm);
            printf(", expiry %02d:%02d:%02d passed", tm.tm_hour, tm.tm_min, tm.tm_sec);
        }
    }
    putchar('\n');
    return true;
}

/* "call_1 shell approved by user/alice with edited arguments {...}: reason", "... denied by
 * user/bob: reason", "... expired (no decision in time)". */
static bool print_approval_decided(const Agentry__V1__TraceEvent *ev, const cJSON *p, bool color)
{
    const char *id = str_item(p, "id"), *name = str_item(p, "name");
    const char *decision = str_item(p, "decision"), *by = str_item(p, "by");
    const char *reason = str_item(p, "reason"), *args = str_item(p, "arguments");
    if (!id || !name || !decision)
        return false;
    print_head(ev, color);
    put_line(id, 64);
    putchar(' ');
    put_line(name, 128);
    putchar(' ');
    put_line(decision, 32);
    if (strcmp(decision, "expired") == 0) {
        fputs(" (no decision in time)", stdout);
    } else if (by && *by) {
        fputs(" by ", stdout);
        put_line(by, 128);
    }
    if (args) {
        fputs(" with edited arguments ", stdout);
        put_line(args, ARGS_SHOWN);
    }
    if (reason && *reason) {
        fputs(": ", stdout);
        put_line(reason, ARGS_SHOWN);
    }
    putchar('\n');
    return true;
}

/* The events that read better as a sentence than as their payload; false for the others, and
 * for a payload that is not what the kind promises (those print as any other event). */
static bool print_readable(const Agentry__V1__TraceEvent *ev, bool color)
{
    bool (*print)(const Agentry__V1__TraceEvent *, const cJSON *, bool) = NULL;
    switch (ev->kind) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_CHILD:
        print = print_child;
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
        print = print_approval_required;
        break;
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED:
        print = print_approval_decided;
        break;
    default:
        return false;
    }
    cJSON *p = cJSON_Parse(ev->payload ? ev->payload : "");
    bool ok = p && print(ev, p, color);
    cJSON_Delete(p);
    return ok;
}

static void print_event(const Agentry__V1__TraceEvent *ev, const struct trace_opts *o)
{
    if (o->format == CLI_FORMAT_JSON || o->format == CLI_FORMAT_JSONL ||
        o->format == CLI_FORMAT_YAML)
        cli_print_out(stdout, o->format, cli_print_event_json(ev), NULL);
    else if (!print_readable(ev, o->color))
        cli_print_event(stdout, ev, o->color);
    fflush(stdout); /* a follower piped into another tool must see each event at once */
}

/* One Trace call from seq `*next`; advances *next past each event printed. Returns true if an
 * event arrived; *end is how the stream ended, as rpc_stream_next reports it (0 or -1). */
static bool read_stream(struct trace_run *t, const char *id, uint64_t *next, int *end,
                        struct ag_err *err)
{
    Agentry__V1__TraceRequest req = AGENTRY__V1__TRACE_REQUEST__INIT;
    req.agent_id = (char *)id;
    req.from_seq = *next;
    req.follow = t->o->follow;
    pthread_mutex_lock(&t->lock);
    t->s = rpc_stream_open(t->c->ch, CLI_HUB_METHOD("Trace"), &req.base,
                           t->o->follow ? 0 : t->c->timeout_ms, err);
    if (t->s && cli_sigwatch_fired(t->sig))
        rpc_stream_cancel(t->s); /* Ctrl-C came before the stream existed */
    pthread_mutex_unlock(&t->lock);
    if (!t->s) {
        *end = -1;
        return false;
    }
    char buf[4096];
    struct ag_arena a;
    ag_arena_init(&a, buf, sizeof(buf));
    bool progress = false;
    Agentry__V1__TraceEvent *ev;
    while ((*end = rpc_stream_next(t->s, &agentry__v1__trace_event__descriptor, &a, (void **)&ev,
                                   err)) == 1) {
        print_event(ev, t->o);
        *next = ev->seq + 1;
        progress = true;
        ag_arena_reset(&a); /* memory stays bounded however long we follow */
    }
    ag_arena_release(&a);
    pthread_mutex_lock(&t->lock);
    rpc_stream_free(t->s);
    t->s = NULL;
    pthread_mutex_unlock(&t->lock);
    return progress;
}

static int trace(struct trace_run *t, const char *id)
{
    struct ag_err err = AG_ERR_INIT;
    uint64_t next = (uint64_t)t->o->from;
    int drops = 0, end;
    if (cli_client_dial(t->c, &err) < 0)
        return cli_fail(&err);
    for (;;) {
        bool progress = read_stream(t, id, &next, &end, &err);
        if (cli_sigwatch_fired(t->sig))
            return cli_sigwatch_exit_code(t->sig);
        if (end == 0)
            return CLI_OK;
        drops = progress ? 1 : drops + 1;
        if (!t->o->follow || err.code != AG_RESOURCE_EXHAUSTED || drops > TRACE_RESUME_TRIES) {
            cli_client_explain(t->c, &err);
            return cli_fail(&err);
        }
        fprintf(stderr,
                "trace: the hub dropped this follower (%s); resuming from seq %" PRIu64 "\n",
                err.msg, next);
    }
}

int cli_cmd_trace(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    snprintf(c.timeout_help, sizeof(c.timeout_help),
             "deadline for reading the log; 0 for none; ignored with -f (default 10s)");
    struct trace_opts o = {false, false, 0, CLI_FORMAT_TABLE, false};
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"follow", 'f', AG_FLAG_BOOL, &o.follow, NULL, "keep printing new events until Ctrl-C", 0,
         0},
        {"from", 0, AG_FLAG_INT, &o.from, "SEQ", "first seq to print (default 1)", 0, INT64_MAX},
        {"jsonl", 0, AG_FLAG_BOOL, &o.jsonl, NULL, "the same as -o jsonl", 0, 0},
    };
    size_t nflags = 3;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *id;
    int rc;
    if (!cli_parse_agent_id(&c, "trace", &trace_help, flags, nflags, argc, argv, &id, &rc))
        return rc;
    o.format = o.jsonl ? CLI_FORMAT_JSONL : cli_client_format(&c);
    o.color = cli_client_color(&c);

    struct trace_run t = {&c, &o, NULL, PTHREAD_MUTEX_INITIALIZER, NULL};
    t.sig = cli_sigwatch_start(on_signal, &t); /* before gRPC starts its threads */
    rc = trace(&t, id);
    cli_sigwatch_stop(t.sig);
    cli_client_close(&c);
    pthread_mutex_destroy(&t.lock);
    return rc;
}
