/* cmd/agentry/client.c - the flags, dialing and call helpers every client subcommand shares
 * (see client.h). Thread: the subcommand's main thread, except the Ctrl-C watcher at the end. */
#include "cmd/agentry/client.h"

#include <ctype.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/config.h"
#include "cmd/agentry/print.h"
#include "cmd/agentry/spec.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/xalloc.h"
#include "hub/sched.h"

void cli_client_init(struct cli_client *c, int64_t default_timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->hub = cli_default_hub();
    c->timeout_ms = default_timeout_ms;
    char d[32];
    cli_print_duration(d, sizeof(d), default_timeout_ms);
    snprintf(c->timeout_help, sizeof(c->timeout_help),
             "deadline for the call; 0 for none (default %s)", d);
    ag_arena_init(&c->arena, NULL, 0);
}

static bool has_flag(const struct ag_flag *flags, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(flags[i].name, name) == 0)
            return true;
    return false;
}

void cli_client_flags(struct cli_client *c, struct ag_flag *flags, size_t *n, size_t cap)
{
    ag_flags_push(
        flags, n, cap,
        (struct ag_flag){"hub", 0, AG_FLAG_STR, &c->hub, "ADDR[,ADDR...]",
                         "hub address host:port, or a list tried in order: the first that "
                         "accepts a connection is used (a standby hub does not) (default "
                         "$AGENTRY_HUB or 127.0.0.1:7070)",
                         0, 0});
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"timeout", 0, AG_FLAG_DURATION, &c->timeout_ms, "DURATION",
                                   c->timeout_help, 0, 0});
    if (!has_flag(flags, *n, "output"))
        ag_flags_push(flags, n, cap,
                      (struct ag_flag){"output", 'o', AG_FLAG_STR, &c->output, "FORMAT",
                                       "table, wide (more columns), json (one line), yaml or jsonl "
                                       "(one object per line) (default table)",
                                       0, 0});
    ag_flags_push(
        flags, n, cap,
        (struct ag_flag){"json", 0, AG_FLAG_BOOL, &c->json, NULL, "the same as -o json", 0, 0});
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"color", 0, AG_FLAG_STR, &c->color, "WHEN",
                                   "auto (on a terminal, unless $NO_COLOR is set), always or never "
                                   "(default auto)",
                                   0, 0});
    cli_tls_flags(&c->tls, "admin", flags, n, cap);
    ag_flags_push(flags, n, cap,
                  (struct ag_flag){"token", 0, AG_FLAG_STR, &c->token, "TOKEN",
                                   "a bearer token ('agentry token create') instead of a client "
                                   "certificate; needs TLS (--ca or --tls-dir) (default "
                                   "$AGENTRY_TOKEN)",
                                   0, 0});
    cli_config_flags(flags, n, cap);
}

enum cli_format cli_client_format(const struct cli_client *c)
{
    enum cli_format f = CLI_FORMAT_TABLE;
    struct ag_err err = AG_ERR_INIT;
    if (c->json)
        return CLI_FORMAT_JSON;
    if (c->output)
        cli_print_format_parse(c->output, &f, &err); /* checked by cli_client_parse */
    return f;
}

bool cli_client_machine(const struct cli_client *c)
{
    enum cli_format f = cli_client_format(c);
    return f != CLI_FORMAT_TABLE && f != CLI_FORMAT_WIDE;
}

bool cli_client_color(const struct cli_client *c)
{
    if (c->color && strcmp(c->color, "always") == 0)
        return true;
    if (c->color && strcmp(c->color, "never") == 0)
        return false;
    const char *no = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(no && *no);
}

void cli_client_emit(const struct cli_client *c, cJSON *v, const char *items)
{
    cli_print_out(stdout, cli_client_format(c), v, items);
}

struct rpc_channel *cli_client_channel(struct cli_client *c, const char *addr, struct ag_err *err)
{
    struct rpc_channel_opts o = {0};
    cli_config_client_defaults(&c->tls, &c->token); /* $AGENTRY_TOKEN, the context's */
    if (cli_config_check(err) < 0)
        return NULL;
    c->tls.no_cert = c->token && !c->tls.cert;
    if (cli_tls_resolve(&c->tls, "admin", &o.tls, err) != 0)
        return NULL;
    if (c->token && !o.tls) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "a bearer token is sent only over TLS: give --ca or --tls-dir");
        return NULL;
    }
    o.bearer = c->token;
    struct rpc_channel *ch = rpc_channel_new(addr, &o, err);
    if (!ch && err && err->code == AG_INVALID_ARGUMENT &&
        strncmp(err->msg, "invalid address", 15) == 0)
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "invalid hub address '%s': want host:port (set --hub or AGENTRY_HUB)", addr);
    return ch;
}

/* --hub a,b,...: the first hub that accepts a connection within a moment. Only the leader of
 * hubs sharing a store listens (hub/cluster.h), so this finds it. */
static int dial_list(struct cli_client *c, struct ag_err *err)
{
    char *list = ag_xstrdup(c->hub), *save = NULL;
    struct ag_err last = AG_ERR_INIT;
    int64_t wait = c->timeout_ms > 0 && c->timeout_ms < CLI_PROBE_TIMEOUT_MS ? c->timeout_ms
                                                                             : CLI_PROBE_TIMEOUT_MS;
    for (char *a = strtok_r(list, ",", &save); a && !c->ch; a = strtok_r(NULL, ",", &save)) {
        struct rpc_channel *ch = cli_client_channel(c, a, err);
        if (!ch) {
            free(list);
            return -1;
        }
        if (rpc_channel_wait_ready(ch, wait, &last) == 0)
            c->ch = ch;
        else
            rpc_channel_free(ch);
    }
    free(list);
    if (c->ch)
        return 0;
    return ag_err_set(err, AG_UNAVAILABLE, "cannot reach any hub of '%s' (the last said: %s)",
                      c->hub, last.msg[0] ? last.msg : "no answer");
}

int cli_client_dial(struct cli_client *c, struct ag_err *err)
{
    if (c->ch)
        return 0;
    if (!c->grpc_up) {
        rpc_client_init();
        c->grpc_up = true;
    }
    if (strchr(c->hub, ','))
        return dial_list(c, err);
    c->ch = cli_client_channel(c, c->hub, err);
    return c->ch ? 0 : -1;
}

/* A transport error's text (grpc's, not the hub's) and what it means for the user. `pattern` is
 * found anywhere in the message; %s in `say` is the hub address, %.*s the number after the
 * pattern (an HTTP status) when the row wants one. */
static const struct {
    const char *pattern;
    bool number;
    const char *say;
} transport_texts[] = {
    {"Received http2 header with status: ", true,
     "the server at '%s' is not an agentry hub (it answered HTTP %.*s): check --hub"},
    {"Trying to connect an http1.x server", false,
     "the server at '%s' speaks HTTP/1, not gRPC: it is not an agentry hub (the dashboard's "
     "--http-listen port?); check --hub"},
    {"Failed parsing HTTP/2", false,
     "the server at '%s' does not speak gRPC: it is not an agentry hub (a web server, or the "
     "dashboard's --http-listen port?); check --hub"},
    {"Connection refused", false,
     "cannot reach hub at '%s': nothing listens there (is 'agentry hub' running? check --hub)"},
    {"DNS resolution failed", false, "cannot resolve the host of '%s': check --hub"},
    {"failed to connect to all addresses", false,
     "cannot reach hub at '%s' (is 'agentry hub' running? check --hub)"},
    {"Handshake failed", false,
     "TLS handshake with '%s' failed: check --tls-dir/--ca, and that the hub serves TLS"},
    {"SSL", false,
     "TLS handshake with '%s' failed: check --tls-dir/--ca, and that the hub serves TLS"},
    {"Socket closed", false,
     "the hub at '%s' closed the connection: if it serves TLS, pass --tls-dir (or set "
     "AGENTRY_TLS_DIR); else it may have restarted, so retry"},
    {"Connection reset by peer", false,
     "the connection to '%s' was reset: if the hub serves TLS, pass --tls-dir; else retry"},
    {"Broken pipe", false, "the connection to hub at '%s' broke during the call: retry"},
    {"GOAWAY", false, "the hub at '%s' is shutting down the connection: retry"},
};

void cli_client_explain(const struct cli_client *c, struct ag_err *err)
{
    /* grpc's own text says nothing about which deadline; the hub's own messages pass as is. */
    if (err->code == AG_DEADLINE_EXCEEDED && strcmp(err->msg, "Deadline Exceeded") == 0) {
        char d[32];
        ag_err_set(err, AG_DEADLINE_EXCEEDED,
                   "no answer from hub at '%s' within %s (see --timeout)", c->hub,
                   cli_print_duration(d, sizeof(d), c->timeout_ms));
        return;
    }
    /* Transport failures come as UNAVAILABLE, INTERNAL or UNKNOWN; a status the hub sent with
     * another code is its own message. grpc's text is the whole message, or the "(detail: ...)"
     * tail of common/rpc's "cannot reach hub". */
    if (err->code != AG_UNAVAILABLE && err->code != AG_INTERNAL && err->code != AG_UNKNOWN)
        return;
    const char *tail = strstr(err->msg, "(detail: ");
    const char *raw = tail ? tail + 9 : err->msg;
    for (size_t i = 0; i < AG_ARRAY_SIZE(transport_texts); i++) {
        const char *at = strstr(raw, transport_texts[i].pattern);
        if (!at)
            continue;
        char said[256], detail[sizeof(err->msg)];
        size_t len = strlen(raw);
        if (tail && len && raw[len - 1] == ')')
            len--;
        snprintf(detail, sizeof(detail), "%.*s", (int)len, raw);
        if (transport_texts[i].number) {
            const char *num = at + strlen(transport_texts[i].pattern);
            int digits = (int)strspn(num, "0123456789");
            snprintf(said, sizeof(said), transport_texts[i].say, c->hub, digits, num);
        } else {
            snprintf(said, sizeof(said), transport_texts[i].say, c->hub);
        }
        ag_err_set(err, err->code, "%s (detail: %s)", said, detail);
        return;
    }
}

/* --timeout passed before the connection was up, so nothing was sent. Was the hub reachable at
 * all? A little more waiting tells a refused or unresolvable hub ("cannot reach hub", which the
 * user fixes with --hub) from a deadline too short to connect (fixed with --timeout). */
static void explain_not_connected(struct cli_client *c, struct ag_err *err)
{
    struct ag_err probe = AG_ERR_INIT;
    if (rpc_channel_wait_ready(c->ch, CLI_PROBE_TIMEOUT_MS, &probe) != 0 &&
        probe.code == AG_UNAVAILABLE) {
        *err = probe;
        return;
    }
    char d[32];
    ag_err_set(err, AG_DEADLINE_EXCEEDED,
               "could not connect to hub at '%s' within %s (see --timeout); nothing was sent",
               c->hub, cli_print_duration(d, sizeof(d), c->timeout_ms));
}

int cli_client_call_sent(struct cli_client *c, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, void **resp, bool *sent,
                         struct ag_err *err)
{
    if (sent)
        *sent = false;
    if (cli_client_dial(c, err) < 0)
        return -1;
    struct ag_err e = AG_ERR_INIT;
    bool was_sent = false;
    int rc = rpc_unary_sent(c->ch, method, req, resp_desc, &c->arena, resp, c->timeout_ms,
                            &was_sent, &e);
    if (sent)
        *sent = was_sent;
    if (rc == 0)
        return 0;
    if (!was_sent && e.code == AG_DEADLINE_EXCEEDED)
        explain_not_connected(c, &e);
    cli_client_explain(c, &e);
    if (err)
        *err = e;
    return -1;
}

int cli_client_call(struct cli_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, void **resp, struct ag_err *err)
{
    return cli_client_call_sent(c, method, req, resp_desc, resp, NULL, err);
}

void cli_client_close(struct cli_client *c)
{
    rpc_channel_free(c->ch);
    c->ch = NULL;
    ag_arena_release(&c->arena);
    if (c->grpc_up)
        rpc_client_shutdown();
    c->grpc_up = false;
}

/* --- arguments ------------------------------------------------------------------------------- */

bool cli_parse(const char *cmd, const struct ag_cmd_help *help, const struct ag_flag *flags,
               size_t nflags, int argc, char **argv, char **pos, size_t max_pos, size_t *npos,
               int *rc)
{
    struct ag_err err = AG_ERR_INIT;
    int r = ag_flags_parse(cmd, flags, nflags, argc, argv, pos, max_pos, npos, &err);
    if (r == 1) {
        ag_flags_print_help(stdout, help, flags, nflags);
        *rc = CLI_OK;
        return false;
    }
    if (r < 0 || cli_config_check(&err) < 0) {
        *rc = cli_usage_error(&err);
        return false;
    }
    return true;
}

/* One --hub address: host:port, or one of grpc's own schemes (unix:PATH, dns:..., ipv4:...,
 * ipv6:...). A URL is the likeliest mistake ("http://host:7070"), so it is named. */
static int check_hub_addr(const char *a, size_t len, struct ag_err *err)
{
    static const char *const schemes[] = {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"};
    const char *sep = memmem(a, len, "://", 3);
    if (sep && strncmp(a, "dns:", 4) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid hub address '%.*s': want host:port, not a URL (drop '%.*s'; "
                          "set --hub or AGENTRY_HUB)",
                          (int)len, a, (int)(sep + 3 - a), a);
    for (size_t i = 0; i < AG_ARRAY_SIZE(schemes); i++)
        if (len > strlen(schemes[i]) && strncmp(a, schemes[i], strlen(schemes[i])) == 0)
            return 0;
    const char *colon = len ? memrchr(a, ':', len) : NULL;
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    bool spaces = false;
    for (size_t i = 0; i < len; i++)
        spaces = spaces || isspace((unsigned char)a[i]) || iscntrl((unsigned char)a[i]);
    if (!colon || colon == a || spaces || digits == 0 || colon + 1 + digits != a + len ||
        port < 1 || port > 65535)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid hub address '%.*s': want host:port, e.g. 127.0.0.1:7070 (set "
                          "--hub or AGENTRY_HUB)",
                          (int)len, a);
    return 0;
}

int cli_check_hub(const char *hub, struct ag_err *err)
{
    const char *p = hub;
    do {
        size_t len = strcspn(p, ",");
        if (check_hub_addr(p, len, err) < 0)
            return -1;
        p += len + (p[len] == ',');
    } while (*p);
    return 0;
}

bool cli_client_parse(struct cli_client *c, const char *cmd, const struct ag_cmd_help *help,
                      const struct ag_flag *flags, size_t nflags, int argc, char **argv, char **pos,
                      size_t max_pos, size_t *npos, int *rc)
{
    if (!cli_parse(cmd, help, flags, nflags, argc, argv, pos, max_pos, npos, rc))
        return false;
    struct ag_err err = AG_ERR_INIT;
    enum cli_format f;
    if (c->output && cli_print_format_parse(c->output, &f, &err) < 0) {
        *rc = cli_usage_error(&err);
        return false;
    }
    if (c->color && strcmp(c->color, "auto") != 0 && strcmp(c->color, "always") != 0 &&
        strcmp(c->color, "never") != 0) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "invalid value '%s' for --color: want auto, always or never", c->color);
        *rc = cli_usage_error(&err);
        return false;
    }
    if (cli_check_hub(c->hub, &err) < 0) {
        *rc = cli_usage_error(&err);
        return false;
    }
    return true;
}

bool cli_parse_agent_id(struct cli_client *c, const char *cmd, const struct ag_cmd_help *help,
                        const struct ag_flag *flags, size_t nflags, int argc, char **argv,
                        char **agent_id, int *rc)
{
    size_t npos;
    return cli_client_parse(c, cmd, help, flags, nflags, argc, argv, agent_id, 1, &npos, rc) &&
           cli_need_args(cmd, agent_id, npos, 1, "AGENT_ID", rc);
}

bool cli_need_args(const char *cmd, char *const *pos, size_t npos, size_t need, const char *what,
                   int *rc)
{
    struct ag_err err = AG_ERR_INIT;
    if (npos < need) {
        ag_err_set(&err, AG_INVALID_ARGUMENT, "missing %s (see 'agentry %s --help')", what, cmd);
        *rc = cli_usage_error(&err);
        return false;
    }
    for (size_t i = 0; i < need; i++) {
        if (!*pos[i]) {
            ag_err_set(&err, AG_INVALID_ARGUMENT, "empty %s (see 'agentry %s --help')", what, cmd);
            *rc = cli_usage_error(&err);
            return false;
        }
    }
    return true;
}

int cli_read_stdin(struct ag_arena *arena, char **out, struct ag_err *err)
{
    size_t cap = 4096, len = 0;
    char *buf = ag_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = ag_xrealloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (len > CLI_STDIN_MAX) {
            free(buf);
            return ag_err_set(err, AG_INVALID_ARGUMENT, "stdin holds more than %d MiB",
                              CLI_STDIN_MAX >> 20);
        }
        if (n == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read stdin");
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    *out = ag_arena_strndup(arena, buf, len);
    free(buf);
    return 0;
}

char *cli_join_words(struct ag_arena *arena, char **words, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *out = ag_arena_alloc(arena, len + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        size_t wl = strlen(words[i]);
        if (i > 0)
            *p++ = ' ';
        memcpy(p, words[i], wl);
        p += wl;
    }
    *p = '\0';
    return out;
}

/* --- agent spec flags ------------------------------------------------------------------------ */

/* The agent-spec flags shared by spawn and invoke. */
struct spec_opts {
    /* --spec FILE, read first; each flag below that is given overrides its field. A flag not
     * given is NULL, -1 (INT64_MIN for --priority) or an empty list. */
    const char *spec_file;
    const char *name, *model, *system;
    /* --request-id, or (after cli_spec_cmd's parse) a new "cli-<id>": always sent, so that after
     * a deadline the hub can be asked what became of the request, and it can be retried. */
    const char *request_id;
    char made_request_id[sizeof(CLI_REQUEST_ID_PREFIX) + AG_ID_LEN];
    const char *ns; /* -n/--namespace, default $AGENTRY_NAMESPACE; "": the hub's default */
    struct ag_strlist tools, labels; /* owned */
    int64_t max_iterations;          /* 0: the hub's default */
    /* Placement (AgentSpec.scheduler, resources, node_selector, anti_affinity, priority). */
    const char *scheduler;
    int64_t cpu_milli, mem_bytes, priority;
    struct ag_strlist selector, anti_affinity; /* owned */
};

static void spec_init(struct spec_opts *s)
{
    memset(s, 0, sizeof(*s));
    s->request_id = "";
    s->ns = cli_default_namespace();
    s->max_iterations = s->cpu_milli = s->mem_bytes = -1;
    s->priority = INT64_MIN;
}

static void spec_flags(struct spec_opts *s, struct ag_flag *flags, size_t *n, size_t cap)
{
    const struct ag_flag rows[] = {
        {"spec", 0, AG_FLAG_STR, &s->spec_file, "FILE",
         "read the agent spec from a YAML file (docs/agent-spec.md; - for stdin); the flags below "
         "override its fields",
         0, 0},
        {"name", 0, AG_FLAG_STR, &s->name, "NAME", "a human-readable name (not unique)", 0, 0},
        {"model", 0, AG_FLAG_STR, &s->model, "MODEL",
         "model as provider or provider/model (default mock)", 0, 0},
        {"system", 0, AG_FLAG_STR, &s->system, "TEXT", "the system prompt", 0, 0},
        {"tool", 0, AG_FLAG_LIST, &s->tools, "NAME",
         "a tool the agent may call; repeatable or comma-separated (replaces the file's list)", 0,
         0},
        {"max-iterations", 0, AG_FLAG_INT, &s->max_iterations, "N",
         "model calls per turn before it yields (default: the hub's, 10)", 1, 100000},
        {"label", 0, AG_FLAG_LIST, &s->labels, "K=V",
         "a label; repeatable or comma-separated (over the file's, key by key)", 0, 0},
        {"request-id", 0, AG_FLAG_STR, &s->request_id, "KEY",
         "idempotency key: retrying with it returns the same agent", 0, 0},
        {"namespace", 'n', AG_FLAG_STR, &s->ns, "NS",
         "the namespace the agent lives in (default $AGENTRY_NAMESPACE, else 'default')", 0, 0},
        {"scheduler", 0, AG_FLAG_STR, &s->scheduler, "NAME",
         "placement strategy for this agent: round-robin, binpack or spread (default: the hub's)",
         0, 0},
        {"cpu", 0, AG_FLAG_CPU, &s->cpu_milli, "CPU",
         "CPU each turn reserves on its node: 500m, 2 (cores) (default none)", 0, 0},
        {"memory", 0, AG_FLAG_BYTES, &s->mem_bytes, "BYTES",
         "memory each turn reserves on its node: 512Mi, 4Gi, 1G (default none)", 0, 0},
        {"selector", 0, AG_FLAG_LIST, &s->selector, "K=V",
         "run only on nodes with this label; repeatable or comma-separated", 0, 0},
        {"anti-affinity", 0, AG_FLAG_LIST, &s->anti_affinity, "KEY",
         "never share a node with an agent whose label KEY has the same value; repeatable", 0, 0},
        {"priority", 0, AG_FLAG_INT, &s->priority, "N",
         "waiting agents are served highest first: -1000..1000 (default 0)", -1000, 1000},
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(rows); i++)
        ag_flags_push(flags, n, cap, rows[i]);
}

/* The K=V values of a repeatable flag, checked, as "K=V" items of kv. */
static int parse_kv(const struct ag_strlist *in, struct ag_strlist *kv, struct ag_err *err)
{
    for (size_t i = 0; i < in->n; i++) {
        if (ag_labels_parse(in->items[i], kv, err) < 0) {
            ag_strlist_release(kv);
            return -1;
        }
    }
    return 0;
}

/* --label or --selector K=V items as (key, value) pairs in arena; *n of them. */
static int flag_pairs(const struct ag_strlist *flag, struct ag_arena *arena, char ***pairs,
                      size_t *n, struct ag_err *err)
{
    struct ag_strlist kv = {NULL, 0};
    if (parse_kv(flag, &kv, err) < 0)
        return -1;
    *pairs = ag_arena_alloc(arena, (kv.n ? kv.n : 1) * 2 * sizeof(char *));
    for (size_t i = 0; i < kv.n; i++) {
        char *eq = strchr(kv.items[i], '=');
        (*pairs)[2 * i] = ag_arena_strndup(arena, kv.items[i], (size_t)(eq - kv.items[i]));
        (*pairs)[2 * i + 1] = ag_arena_strdup(arena, eq + 1);
    }
    *n = kv.n;
    ag_strlist_release(&kv);
    return 0;
}

/* --label over the file's labels, key by key. */
static int merge_labels(const struct spec_opts *s, struct ag_arena *arena,
                        Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    char **kv;
    size_t n;
    if (flag_pairs(&s->labels, arena, &kv, &n, err) < 0)
        return -1;
    Agentry__V1__AgentSpec__LabelsEntry **m = ag_arena_alloc(arena,
                                                             (spec->n_labels + n + 1) * sizeof(*m));
    if (spec->n_labels)
        memcpy(m, spec->labels, spec->n_labels * sizeof(*m));
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < spec->n_labels && strcmp(m[j]->key, kv[2 * i]) != 0)
            j++;
        if (j == spec->n_labels) {
            m[j] = ag_arena_alloc(arena, sizeof(*m[j]));
            agentry__v1__agent_spec__labels_entry__init(m[j]);
            m[j]->key = kv[2 * i];
            spec->n_labels++;
        }
        m[j]->value = kv[2 * i + 1];
    }
    spec->labels = m;
    return 0;
}

/* --selector over the file's node_selector, key by key. */
static int merge_selector(const struct spec_opts *s, struct ag_arena *arena,
                          Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    char **kv;
    size_t n;
    if (flag_pairs(&s->selector, arena, &kv, &n, err) < 0)
        return -1;
    Agentry__V1__AgentSpec__NodeSelectorEntry **m = ag_arena_alloc(
        arena, (spec->n_node_selector + n + 1) * sizeof(*m));
    if (spec->n_node_selector)
        memcpy(m, spec->node_selector, spec->n_node_selector * sizeof(*m));
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < spec->n_node_selector && strcmp(m[j]->key, kv[2 * i]) != 0)
            j++;
        if (j == spec->n_node_selector) {
            m[j] = ag_arena_alloc(arena, sizeof(*m[j]));
            agentry__v1__agent_spec__node_selector_entry__init(m[j]);
            m[j]->key = kv[2 * i];
            spec->n_node_selector++;
        }
        m[j]->value = kv[2 * i + 1];
    }
    spec->node_selector = m;
    return 0;
}

/* --tool replaces the list; settings the file gave a tool still listed are kept. */
static void override_tools(const struct spec_opts *s, Agentry__V1__AgentSpec *spec)
{
    spec->n_tools = s->tools.n;
    spec->tools = s->tools.items;
    size_t kept = 0;
    for (size_t i = 0; i < spec->n_tool_settings; i++)
        for (size_t j = 0; j < s->tools.n; j++)
            if (strcmp(spec->tool_settings[i]->key, s->tools.items[j]) == 0) {
                spec->tool_settings[kept++] = spec->tool_settings[i];
                break;
            }
    spec->n_tool_settings = kept;
}

/* Where the agent's turns may run and in which order it is served. */
static int override_placement(const struct spec_opts *s, struct ag_arena *arena,
                              Agentry__V1__AgentSpec *spec, struct ag_err *err)
{
    if (s->scheduler)
        spec->scheduler = (char *)s->scheduler;
    if (s->priority != INT64_MIN)
        spec->priority = (int32_t)s->priority;
    if (s->anti_affinity.n) {
        spec->n_anti_affinity = s->anti_affinity.n;
        spec->anti_affinity = s->anti_affinity.items;
    }
    if (s->cpu_milli >= 0 || s->mem_bytes >= 0) {
        Agentry__V1__Resources *r = ag_arena_alloc(arena, sizeof(*r));
        agentry__v1__resources__init(r);
        if (spec->resources)
            *r = *spec->resources;
        if (s->cpu_milli >= 0)
            r->cpu_milli = s->cpu_milli > UINT32_MAX ? UINT32_MAX : (uint32_t)s->cpu_milli;
        if (s->mem_bytes >= 0)
            r->memory_bytes = (uint64_t)s->mem_bytes;
        spec->resources = r;
    }
    return merge_selector(s, arena, spec, err);
}

/* The spec (allocated in arena): the --spec file's, or every default ("mock"), then each flag
 * given over its field. -1 with err on a bad file (INVALID_ARGUMENT naming its line) or label. */
static int spec_build(const struct spec_opts *s, struct ag_arena *arena,
                      Agentry__V1__AgentSpec **out, struct ag_err *err)
{
    Agentry__V1__AgentSpec *spec;
    if (s->spec_file) {
        if (cli_spec_load(s->spec_file, arena, &spec, err) < 0)
            return -1;
    } else {
        spec = ag_arena_alloc(arena, sizeof(*spec));
        agentry__v1__agent_spec__init(spec);
        spec->model = "mock";
    }
    if (s->name)
        spec->name = (char *)s->name;
    if (s->model)
        spec->model = (char *)s->model;
    if (s->system)
        spec->system_prompt = (char *)s->system;
    if (s->tools.n)
        override_tools(s, spec);
    if (s->max_iterations >= 0)
        spec->max_iterations = (uint32_t)s->max_iterations;
    if (merge_labels(s, arena, spec, err) < 0 || override_placement(s, arena, spec, err) < 0)
        return -1;
    *out = spec;
    return 0;
}

static void spec_release(struct spec_opts *s)
{
    ag_strlist_release(&s->tools);
    ag_strlist_release(&s->labels);
    ag_strlist_release(&s->selector);
    ag_strlist_release(&s->anti_affinity);
}

/* --- Ctrl-C ---------------------------------------------------------------------------------- */

struct cli_sigwatch {
    pthread_t thread;
    sigset_t set, old;
    void (*fn)(void *arg);
    void *arg;
    atomic_bool fired, stopping;
    atomic_int sig; /* the first signal that came */
    int wake[2];    /* a byte on wake[1] when a signal arrived: cli_sigwatch_sleep polls wake[0] */
};

static void *sigwatch_main(void *p)
{
    struct cli_sigwatch *w = p;
    for (;;) {
        int sig = 0;
        if (sigwait(&w->set, &sig) != 0 || atomic_load(&w->stopping))
            return NULL;
        if (atomic_exchange(&w->fired, true)) /* the second Ctrl-C: the user means it */
            _exit(128 + sig);
        atomic_store(&w->sig, sig);
        if (w->fn)
            w->fn(w->arg);
        ssize_t n = write(w->wake[1], "x", 1);
        (void)n; /* a full pipe already says "stop" */
    }
}

struct cli_sigwatch *cli_sigwatch_start(void (*on_signal)(void *arg), void *arg)
{
    struct cli_sigwatch *w = ag_xcalloc(1, sizeof(*w));
    w->fn = on_signal;
    w->arg = arg;
    atomic_init(&w->fired, false);
    atomic_init(&w->stopping, false);
    atomic_init(&w->sig, 0);
    if (pipe(w->wake) != 0) {
        perror("error: cannot make a pipe");
        abort();
    }
    sigemptyset(&w->set);
    sigaddset(&w->set, SIGINT);
    sigaddset(&w->set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &w->set, &w->old);
    if (pthread_create(&w->thread, NULL, sigwatch_main, w) != 0) {
        perror("error: cannot start the signal thread");
        abort();
    }
    return w;
}

bool cli_sigwatch_fired(struct cli_sigwatch *w)
{
    return w && atomic_load(&w->fired);
}

int cli_sigwatch_exit_code(struct cli_sigwatch *w)
{
    int sig = atomic_load(&w->sig);
    return sig ? 128 + sig : CLI_INTERRUPTED;
}

bool cli_sigwatch_sleep(struct cli_sigwatch *w, int64_t ms)
{
    struct pollfd p = {w->wake[0], POLLIN, 0};
    int64_t end = ag_now_mono_ms() + ms;
    while (!cli_sigwatch_fired(w)) {
        int64_t left = end - ag_now_mono_ms();
        if (left <= 0)
            return false;
        poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
    }
    return true;
}

void cli_sigwatch_stop(struct cli_sigwatch *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, true);
    pthread_kill(w->thread, SIGTERM); /* blocked everywhere, so only sigwait sees it */
    pthread_join(w->thread, NULL);
    pthread_sigmask(SIG_SETMASK, &w->old, NULL);
    close(w->wake[0]);
    close(w->wake[1]);
    free(w);
}

/* --- what a Spawn or Invoke did when its deadline passed ---------------------------------------- */

static const char *make_request_id(char out[sizeof(CLI_REQUEST_ID_PREFIX) + AG_ID_LEN])
{
    char id[AG_ID_LEN + 1];
    ag_id_new(id);
    memcpy(out, CLI_REQUEST_ID_PREFIX, sizeof(CLI_REQUEST_ID_PREFIX) - 1);
    memcpy(out + sizeof(CLI_REQUEST_ID_PREFIX) - 1, id, AG_ID_LEN + 1);
    return out;
}

/* "error: <line>" on stderr. Not an ag_err: these lines quote a request id (up to 128 bytes)
 * twice, which a 256-byte message could cut. */
static int fail_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_FAIL;
}

/* rid as one shell word for a command to copy: as is when it is plain, else single-quoted. */
static const char *shell_word(struct ag_arena *ar, const char *rid)
{
    if (*rid && strspn(rid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                            "._:/+=@%-") == strlen(rid))
        return rid;
    char *out = ag_arena_alloc(ar, strlen(rid) * 4 + 3), *p = out;
    *p++ = '\'';
    for (const char *s = rid; *s; s++) {
        if (*s == '\'') {
            memcpy(p, "'\\''", 4);
            p += 4;
        } else {
            *p++ = *s;
        }
    }
    memcpy(p, "'", 2);
    return out;
}

/* The agent the hub holds for request id rid: 1 with *agent, 0 when it has none (yet), -1 with
 * err when it could not be asked or its answer does not settle the question. */
static int find_request(struct cli_client *c, const char *ns, const char *rid,
                        Agentry__V1__Agent **agent, struct ag_err *err)
{
    Agentry__V1__ListAgentsRequest req = AGENTRY__V1__LIST_AGENTS_REQUEST__INIT;
    req.request_id = (char *)rid;
    req.namespace_ = (char *)ns;
    Agentry__V1__ListAgentsResponse *r = NULL;
    if (rpc_unary(c->ch, CLI_HUB_METHOD("ListAgents"), &req.base,
                  &agentry__v1__list_agents_response__descriptor, &c->arena, (void **)&r,
                  CLI_FOLLOWUP_TIMEOUT_MS, err) < 0)
        return -1;
    for (size_t i = 0; i < r->n_agents; i++) {
        if (strcmp(r->agents[i]->request_id, rid) == 0) {
            *agent = r->agents[i];
            return 1;
        }
    }
    if (r->n_agents == 0)
        return 0;
    /* A hub older than the request_id filter ignores it and lists whatever comes first. */
    return ag_err_set(err, AG_UNIMPLEMENTED,
                      "it listed agents with other request ids: is it older than this CLI?");
}

static bool keeps_running(Agentry__V1__AgentState s)
{
    return s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING ||
           s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING;
}

/* A Spawn or Invoke with request id rid failed with AG_DEADLINE_EXCEEDED (err; sent as
 * cli_client_call_sent said). Find out what happened and say it in one line on stderr; returns
 * CLI_FAIL. Exactly one of:
 *   nothing was sent: err's "could not connect ...", so no agent was created;
 *   `late`; agent '<id>' was created and keeps running (or: is now <state>), with the command
 *     to follow it (the hub listed it for rid);
 *   `late`, and the hub has no agent for rid yet: it may still create one, so retry with
 *     --request-id rid (safe: at most one agent);
 *   `late`, and asking the hub failed: retry likewise.
 * `late` says what the deadline cut short, e.g. "the turn did not end within 1ms (see
 * --timeout)". The question is a ListAgents by request id with a deadline of its own
 * (CLI_FOLLOWUP_TIMEOUT_MS); an agent whose request_id is not rid is never taken for it. */
static int report_deadline(struct cli_client *c, const char *late, const char *ns, const char *rid,
                           bool sent, const struct ag_err *err)
{
    if (!sent)
        return fail_line("%s, so no agent was created (request id '%s')", err->msg, rid);
    Agentry__V1__Agent *a = NULL;
    struct ag_err why = AG_ERR_INIT;
    int found = find_request(c, ns, rid, &a, &why);
    const char *word = shell_word(&c->arena, rid);
    if (found > 0 && keeps_running(a->state))
        return fail_line("%s; agent '%s' was created and keeps running: follow it with "
                         "'agentry trace -f %s'",
                         late, a->id, a->id);
    if (found > 0)
        return fail_line("%s; agent '%s' was created and is now %s: follow it with "
                         "'agentry trace -f %s'",
                         late, a->id, cli_print_state_name(a->state), a->id);
    if (found == 0)
        return fail_line("%s, and the hub has no agent for request id '%s' yet: it may still "
                         "create one, so retry with --request-id %s (safe: at most one agent)",
                         late, rid, word);
    return fail_line("%s, and asking the hub about request id '%s' failed (%s): it may have "
                     "created an agent, so retry with --request-id %s (safe: at most one agent)",
                     late, rid, why.msg, word);
}

int cli_spec_call(struct cli_client *c, const char *method, const ProtobufCMessage *req,
                  const char *ns, const char *rid, const ProtobufCMessageDescriptor *resp_desc,
                  void **resp, const char *what)
{
    struct ag_err err = AG_ERR_INIT;
    bool sent = false;
    if (cli_client_call_sent(c, method, req, resp_desc, resp, &sent, &err) == 0)
        return 0;
    if (err.code != AG_DEADLINE_EXCEEDED)
        return cli_fail(&err);
    char d[32], late[320];
    cli_print_duration(d, sizeof(d), c->timeout_ms);
    if (what)
        snprintf(late, sizeof(late), "%s within %s (see --timeout)", what, d);
    else
        snprintf(late, sizeof(late), "no answer from hub at '%s' within %s (see --timeout)", c->hub,
                 d);
    return report_deadline(c, late, ns, rid, sent, &err);
}

/* What spawn and invoke check before anything is sent: the namespace, --scheduler's name, and
 * the spec (its file, or stdin for "--spec -"). */
static int spec_check(struct cli_client *c, struct spec_opts *s, Agentry__V1__AgentSpec **spec,
                      struct ag_err *err)
{
    if (cli_check_namespace(s->ns, err) < 0)
        return -1;
    if (s->scheduler && *s->scheduler && !hub_sched_find(s->scheduler)) {
        char names[128];
        hub_sched_names(names, sizeof(names));
        return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown scheduler '%s' (use one of: %s)",
                          s->scheduler, names);
    }
    if (s->spec_file && strcmp(s->spec_file, "-") == 0)
        s->spec_file = "/dev/stdin";
    return spec_build(s, &c->arena, spec, err);
}

static int build_and_run(struct cli_client *c, struct spec_opts *s, char **words, size_t nwords,
                         cli_spec_run_fn *run)
{
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__AgentSpec *spec = NULL;
    char *input = NULL;
    bool from_stdin = nwords == 1 && strcmp(words[0], "-") == 0;
    if (from_stdin && s->spec_file && strcmp(s->spec_file, "-") == 0) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "stdin can hold the spec (--spec -) or the input (-), not both");
        return cli_usage_error(&err);
    }
    if (spec_check(c, s, &spec, &err) < 0)
        return cli_usage_error(&err);
    if (from_stdin && cli_read_stdin(&c->arena, &input, &err) < 0)
        return cli_usage_error(&err);
    if (!from_stdin)
        input = cli_join_words(&c->arena, words, nwords);
    return run(c, spec, input, (char *)s->ns, (char *)s->request_id);
}

int cli_spec_cmd(const char *cmd, const struct ag_cmd_help *help, int64_t timeout_ms,
                 bool need_input, cli_spec_run_fn *run, int argc, char **argv)
{
    struct cli_client c;
    struct spec_opts spec;
    cli_client_init(&c, timeout_ms);
    spec_init(&spec);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0;
    spec_flags(&spec, flags, &nflags, CLI_MAX_FLAGS);
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char **pos = ag_xcalloc((size_t)argc + 1, sizeof(*pos));
    size_t npos;
    int rc;
    if (cli_client_parse(&c, cmd, help, flags, nflags, argc, argv, pos, (size_t)argc, &npos, &rc) &&
        (!need_input || cli_need_args(cmd, pos, npos, 1, "INPUT", &rc))) {
        if (!*spec.request_id)
            spec.request_id = make_request_id(spec.made_request_id);
        rc = build_and_run(&c, &spec, pos, npos, run);
        cli_client_close(&c);
    }
    spec_release(&spec);
    free(pos);
    return rc;
}
