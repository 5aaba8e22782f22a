/* cmd/agentry/cmd_top.c - 'agentry top': a terminal view of the hub's nodes, its busiest agents
 * and the rates between refreshes, redrawn every --interval, for operators without a browser.
 *
 * A frame costs a bounded number of calls whatever the number of agents: ListNodes, one
 * ListAgents page (at most TOP_PAGE agents) per state, filtered by state on the hub's index, and
 * one ListApprovals of at most TOP_PAGE calls. So the state counts are exact up to TOP_PAGE and
 * show "1000+" beyond; the agents table and the rates come from the running and pending pages.
 *
 * Rates compare a frame with the one before (top_prev): "turns ended/s" counts the agents that
 * were running and are now neither running nor pending (a turn that starts and ends between two
 * refreshes is not seen); "tokens/s" sums the growth of Usage's input + output tokens of the
 * agents listed running or pending in both frames (and of those created since the last frame).
 *
 * Output: one frame is rendered into a memory buffer, then written at once. Live mode (stdout a
 * terminal, no --once) switches to the alternate screen, hides the cursor, and draws each frame
 * after cursor home + clear; a failed frame shows its error in the header and the next interval
 * tries again. --once (or stdout not a terminal) prints one frame without any control sequence.
 *
 * Threads: the main thread draws; a watcher thread (cli_sigwatch) turns SIGINT/SIGTERM into a
 * byte on a pipe the main thread polls between frames, so the terminal is restored and the
 * command exits 130 (CLI_INTERRUPTED), as every interrupted command does. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"
#include "common/xalloc.h"

#define TOP_PAGE 1000       /* agents per state, approvals: the most a frame asks for */
#define TOP_TIMEOUT_MS 5000 /* a frame's calls; a hub that does not answer shows as an error */
#define TOP_LABELS_SHOWN 40 /* of a node's labels, in the nodes table */
#define TOP_NAME_SHOWN 24   /* of an agent's name */
#define TOP_HEADER_LINES 4  /* above the tables */

static const struct ag_cmd_help top_help = {
    "agentry top [flags]",
    "A live view of the hub, redrawn every --interval until Ctrl-C: agents by state, nodes "
    "connected and approvals pending; the nodes (STATE, RUNNING/capacity, LABELS); the busiest "
    "agents (running first, then pending; most tokens first); and the rates since the last "
    "refresh: turns ended/s (agents seen running that are now at rest) and tokens/s (growth of "
    "the running and pending agents' usage). Counts are exact up to 1000 per state ('1000+' "
    "beyond): each refresh reads at most one page of agents per state. With --once, or when "
    "stdout is not a terminal, prints one frame without control sequences and exits.",
    "agentry top\nagentry top -n team-a --interval 5s\nagentry top --once | head -20",
};

struct top_opts {
    int64_t interval_ms, limit;
    const char *ns; /* "": every namespace */
    bool once;
};

/* What one frame read from the hub; the messages live in the client's arena. */
struct top_frame {
    Agentry__V1__ListNodesResponse *nodes;
    size_t count[AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED + 1];
    bool more[AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED + 1]; /* the page did not hold all */
    Agentry__V1__Agent **busy; /* running then pending, busiest first */
    size_t nbusy;
    size_t approvals;
    bool approvals_more, approvals_known; /* known: ListApprovals answered */
    int64_t at_ns;
};

/* The previous frame's running and pending agents, sorted by id, for the rates. */
struct top_seen {
    char *id;
    uint64_t tokens;
    bool running;
};
struct top_prev {
    struct top_seen *v;
    size_t n;
    bool complete; /* neither page was cut: an agent missing from them is at rest */
    int64_t at_ns; /* 0: no previous frame */
};

struct top_rates {
    bool known;
    double turns_per_s, tokens_per_s;
};

static uint64_t tokens_of(const Agentry__V1__Agent *a)
{
    return a->usage ? a->usage->input_tokens + a->usage->output_tokens : 0;
}

static int cmp_busy(const void *pa, const void *pb)
{
    const Agentry__V1__Agent *a = *(Agentry__V1__Agent *const *)pa;
    const Agentry__V1__Agent *b = *(Agentry__V1__Agent *const *)pb;
    /* RUNNING (2) before PENDING (1), then the most tokens, then the oldest. */
    if (a->state != b->state)
        return a->state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING ? -1 : 1;
    uint64_t ta = tokens_of(a), tb = tokens_of(b);
    if (ta != tb)
        return ta > tb ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int cmp_seen(const void *pa, const void *pb)
{
    return strcmp(((const struct top_seen *)pa)->id, ((const struct top_seen *)pb)->id);
}

static const struct top_seen *prev_find(const struct top_prev *p, const char *id)
{
    struct top_seen key = {(char *)id, 0, false};
    return p->n ? bsearch(&key, p->v, p->n, sizeof(*p->v), cmp_seen) : NULL;
}

static void prev_clear(struct top_prev *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].id);
    free(p->v);
    *p = (struct top_prev){0};
}

/* Remember f's running and pending agents in p, which is empty (copies: the arena is reset
 * before the next frame). */
static void prev_keep(struct top_prev *p, const struct top_frame *f)
{
    p->v = ag_xcalloc(f->nbusy + 1, sizeof(*p->v));
    for (size_t i = 0; i < f->nbusy; i++)
        p->v[i] = (struct top_seen){ag_xstrdup(f->busy[i]->id), tokens_of(f->busy[i]),
                                    f->busy[i]->state ==
                                        AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING};
    p->n = f->nbusy;
    qsort(p->v, p->n, sizeof(*p->v), cmp_seen);
    p->complete = !f->more[AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING] &&
                  !f->more[AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING];
    p->at_ns = f->at_ns;
}

/* The rates from the frame before (prev) to this one (f, and now: f's agents as prev_keep keeps
 * them). "Created since" compares the hub's clock with ours: a skew only moves a new agent's
 * tokens into the next rate or out of it. */
static struct top_rates rates_between(const struct top_prev *prev, const struct top_frame *f,
                                      const struct top_prev *now)
{
    struct top_rates r = {0};
    if (!prev->at_ns || f->at_ns <= prev->at_ns)
        return r;
    double secs = (double)(f->at_ns - prev->at_ns) / 1e9;
    uint64_t tokens = 0;
    for (size_t i = 0; i < f->nbusy; i++) {
        const Agentry__V1__Agent *a = f->busy[i];
        const struct top_seen *s = prev_find(prev, a->id);
        if (s && tokens_of(a) > s->tokens)
            tokens += tokens_of(a) - s->tokens;
        else if (!s && a->created_unix_nano > prev->at_ns)
            tokens += tokens_of(a);
    }
    size_t ended = 0;
    /* Missing from a page that was cut proves nothing: it may be on the next one. */
    if (prev->complete && now->complete)
        for (size_t i = 0; i < prev->n; i++)
            if (prev->v[i].running && !prev_find(now, prev->v[i].id))
                ended++;
    r.known = true;
    r.turns_per_s = (double)ended / secs;
    r.tokens_per_s = (double)tokens / secs;
    return r;
}

/* --- reading a frame ------------------------------------------------------------------------- */

static int list_state(struct cli_client *c, const struct top_opts *o, Agentry__V1__AgentState st,
                      Agentry__V1__ListAgentsResponse **page, struct ag_err *err)
{
    Agentry__V1__ListAgentsRequest req = AGENTRY__V1__LIST_AGENTS_REQUEST__INIT;
    req.state = st;
    req.page_size = TOP_PAGE;
    req.namespace_ = (char *)o->ns;
    return cli_client_call(c, CLI_HUB_METHOD("ListAgents"), &req.base,
                           &agentry__v1__list_agents_response__descriptor, (void **)page, err);
}

static int frame_read(struct cli_client *c, const struct top_opts *o, struct top_frame *f,
                      struct ag_err *err)
{
    memset(f, 0, sizeof(*f));
    Agentry__V1__ListNodesRequest nreq = AGENTRY__V1__LIST_NODES_REQUEST__INIT;
    if (cli_client_call(c, CLI_HUB_METHOD("ListNodes"), &nreq.base,
                        &agentry__v1__list_nodes_response__descriptor, (void **)&f->nodes, err) < 0)
        return -1;
    Agentry__V1__ListAgentsResponse *run = NULL, *pend = NULL;
    for (int st = AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING;
         st <= AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED; st++) {
        Agentry__V1__ListAgentsResponse *page = NULL;
        if (list_state(c, o, (Agentry__V1__AgentState)st, &page, err) < 0)
            return -1;
        f->count[st] = page->n_agents;
        f->more[st] = *page->next_page_token != '\0';
        if (st == AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING)
            run = page;
        else if (st == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING)
            pend = page;
    }
    f->nbusy = run->n_agents + pend->n_agents;
    f->busy = ag_arena_alloc(&c->arena, (f->nbusy + 1) * sizeof(*f->busy));
    if (run->n_agents)
        memcpy(f->busy, run->agents, run->n_agents * sizeof(*f->busy));
    if (pend->n_agents)
        memcpy(f->busy + run->n_agents, pend->agents, pend->n_agents * sizeof(*f->busy));
    qsort(f->busy, f->nbusy, sizeof(*f->busy), cmp_busy);

    /* Approvals are a detail of the header: a caller the hub does not let list them (or a hub
     * without them) still gets the rest of the frame. */
    Agentry__V1__ListApprovalsRequest areq = AGENTRY__V1__LIST_APPROVALS_REQUEST__INIT;
    Agentry__V1__ListApprovalsResponse *ap = NULL;
    struct ag_err aerr = AG_ERR_INIT;
    areq.namespace_ = (char *)o->ns;
    areq.limit = TOP_PAGE;
    if (cli_client_call(c, CLI_HUB_METHOD("ListApprovals"), &areq.base,
                        &agentry__v1__list_approvals_response__descriptor, (void **)&ap,
                        &aerr) == 0) {
        f->approvals = ap->n_approvals;
        f->approvals_more = ap->truncated;
        f->approvals_known = true;
    }
    f->at_ns = ag_now_unix_ns();
    return 0;
}

/* --- drawing --------------------------------------------------------------------------------- */

static void put_count(FILE *out, const char *name, size_t n, bool more)
{
    fprintf(out, "  %s %zu%s", name, n, more ? "+" : "");
}

static void draw_header(FILE *out, const struct cli_client *c, const struct top_opts *o,
                        const struct top_frame *f, const struct top_rates *r,
                        const struct ag_err *failed)
{
    char when[32], every[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(out, "agentry top - hub %s  namespace %s  %s", c->hub, *o->ns ? o->ns : "(all)", when);
    if (!o->once)
        fprintf(out, "  every %s", cli_print_duration(every, sizeof(every), o->interval_ms));
    fputc('\n', out);
    if (failed) {
        fprintf(out, "error: %s\n(retrying every %s; Ctrl-C to quit)\n",
                failed->msg[0] ? failed->msg : ag_code_name(failed->code), every);
        return;
    }
    fprintf(out, "agents:");
    for (int st = AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING;
         st <= AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED; st++)
        put_count(out, cli_print_state_name((Agentry__V1__AgentState)st), f->count[st],
                  f->more[st]);
    if (f->approvals_known)
        fprintf(out, "   approvals pending %zu%s\n", f->approvals, f->approvals_more ? "+" : "");
    else
        fprintf(out, "   approvals pending -\n");
    uint32_t running = 0, capacity = 0;
    size_t ready = 0;
    for (size_t i = 0; i < f->nodes->n_nodes; i++) {
        running += f->nodes->nodes[i]->running;
        capacity += f->nodes->nodes[i]->capacity;
        ready += strcmp(f->nodes->nodes[i]->state, "ready") == 0;
    }
    fprintf(out, "nodes: %zu connected (%zu ready), %" PRIu32 "/%" PRIu32 " turn slots busy\n",
            f->nodes->n_nodes, ready, running, capacity);
    if (r->known)
        fprintf(out, "rates: %.2f turns ended/s  %.1f tokens/s  (since the last refresh)\n",
                r->turns_per_s, r->tokens_per_s);
    else
        fprintf(out, "rates: - (shown from the second refresh on)\n");
}

enum { N_ID, N_STATE, N_LOAD, N_LABELS, N_AGE, N_NCOLS };

static void draw_nodes(FILE *out, const Agentry__V1__ListNodesResponse *nodes, int64_t now_ns)
{
    static const char *const head[N_NCOLS] = {"NODE", "STATE", "RUNNING", "LABELS", "AGE"};
    size_t n = nodes->n_nodes;
    if (!n) {
        fprintf(out, "No nodes connected.\n");
        return;
    }
    char(*buf)[80] = ag_xcalloc(n * N_NCOLS, 80);
    char **cells = ag_xcalloc(n * N_NCOLS, sizeof(*cells));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Node *nd = nodes->nodes[i];
        char(*row)[80] = buf + i * N_NCOLS;
        snprintf(row[N_ID], 80, "%s", nd->node_id);
        snprintf(row[N_STATE], 80, "%s", nd->state);
        snprintf(row[N_LOAD], 80, "%u/%u", nd->running, nd->capacity);
        char labels[256] = "-";
        size_t off = 0;
        for (size_t k = 0; k < nd->n_labels && off < sizeof(labels) - 1; k++) {
            int w = snprintf(labels + off, sizeof(labels) - off, "%s%s=%s", k ? "," : "",
                             nd->labels[k]->key, nd->labels[k]->value);
            off += w > 0 ? (size_t)w : 0;
        }
        if (strlen(labels) > TOP_LABELS_SHOWN)
            snprintf(row[N_LABELS], 80, "%.*s...", TOP_LABELS_SHOWN - 3, labels);
        else
            snprintf(row[N_LABELS], 80, "%.79s", labels);
        int64_t since = nd->started_ns ? nd->started_ns : nd->connected_ns;
        cli_print_age(row[N_AGE], 80, now_ns - since);
        for (int col = 0; col < N_NCOLS; col++)
            cells[i * N_NCOLS + (size_t)col] = row[col];
    }
    cli_print_table(out, head, N_NCOLS, cells, n);
    free(cells);
    free(buf);
}

enum { A_ID, A_NAME, A_STATE, A_NODE, A_AGE, A_TOKENS, A_COST, A_NCOLS };

static void draw_agents(FILE *out, const struct top_frame *f, size_t rows, int64_t now_ns)
{
    static const char *const head[A_NCOLS] = {"AGENT", "NAME",   "STATE", "NODE",
                                              "AGE",   "TOKENS", "COST"};
    size_t n = f->nbusy < rows ? f->nbusy : rows;
    if (!f->nbusy) {
        fprintf(out, "No agent running or pending.\n");
        return;
    }
    char(*buf)[64] = ag_xcalloc(n ? n * A_NCOLS : 1, 64);
    char **cells = ag_xcalloc(n ? n * A_NCOLS : 1, sizeof(*cells));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Agent *a = f->busy[i];
        char(*row)[64] = buf + i * A_NCOLS;
        snprintf(row[A_ID], 64, "%s", a->id);
        snprintf(row[A_NAME], 64, "%.*s", TOP_NAME_SHOWN,
                 a->spec && *a->spec->name ? a->spec->name : "-");
        snprintf(row[A_STATE], 64, "%s", cli_print_state_name(a->state));
        snprintf(row[A_NODE], 64, "%s", *a->node_id ? a->node_id : "-");
        /* How long it has been in its state: for a running agent, its turn so far. */
        cli_print_age(row[A_AGE], 64, now_ns - a->updated_unix_nano);
        snprintf(row[A_TOKENS], 64, "%" PRIu64, tokens_of(a));
        snprintf(row[A_COST], 64, "$%.4f", a->usage ? a->usage->cost_usd : 0.0);
        for (int col = 0; col < A_NCOLS; col++)
            cells[i * A_NCOLS + (size_t)col] = row[col];
    }
    cli_print_table(out, head, A_NCOLS, cells, n);
    size_t listed = f->nbusy;
    bool more = f->more[AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING] ||
                f->more[AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING];
    if (n < listed || more)
        fprintf(out, "(%zu of %zu%s running or pending agents shown; see 'agentry ps')\n", n,
                listed, more ? "+" : "");
    free(cells);
    free(buf);
}

/* The agents table's rows: --limit, and in live mode no more than the terminal has room for. */
static size_t agent_rows(const struct top_opts *o, const struct top_frame *f)
{
    size_t rows = (size_t)o->limit;
    struct winsize ws;
    if (o->once || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0)
        return rows;
    /* Header, a blank line, the nodes table with its head, a blank line, the agents' head and
     * the "shown" line. */
    size_t used = TOP_HEADER_LINES + 1 + (f->nodes->n_nodes + 1) + 1 + 2;
    size_t room = ws.ws_row > used ? ws.ws_row - used : 1;
    return rows < room ? rows : room;
}

/* One frame as text (owned by the caller); failed: the error to show instead of the data. */
static char *frame_render(const struct cli_client *c, const struct top_opts *o,
                          const struct top_frame *f, const struct top_rates *r,
                          const struct ag_err *failed)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        perror("error: cannot draw a frame");
        abort();
    }
    draw_header(out, c, o, f, r, failed);
    if (!failed) {
        int64_t now = ag_now_unix_ns();
        fputc('\n', out);
        draw_nodes(out, f->nodes, now);
        fputc('\n', out);
        draw_agents(out, f, agent_rows(o, f), now);
    }
    fclose(out);
    return text;
}

/* --- the loop -------------------------------------------------------------------------------- */

#define TERM_ENTER "\033[?1049h\033[?25l" /* the alternate screen, cursor hidden */
#define TERM_LEAVE "\033[?25h\033[?1049l"
#define TERM_HOME_CLEAR "\033[H\033[2J"

static void on_signal(void *arg)
{
    int fd = *(int *)arg;
    ssize_t w = write(fd, "x", 1);
    (void)w; /* a full pipe already says "stop" */
}

static int top_once(struct cli_client *c, const struct top_opts *o)
{
    struct ag_err err = AG_ERR_INIT;
    struct top_frame f;
    struct top_rates r = {0};
    if (frame_read(c, o, &f, &err) < 0)
        return cli_fail(&err);
    char *text = frame_render(c, o, &f, &r, NULL);
    fputs(text, stdout);
    free(text);
    return CLI_OK;
}

static int top_live(struct cli_client *c, const struct top_opts *o)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        fprintf(stderr, "error: cannot make a pipe: %s\n", strerror(errno));
        return CLI_FAIL;
    }
    struct cli_sigwatch *sig = cli_sigwatch_start(on_signal, &pipefd[1]);
    struct top_prev prev = {0};
    fputs(TERM_ENTER, stdout);
    for (;;) {
        struct ag_err err = AG_ERR_INIT;
        struct top_frame f;
        struct top_rates r = {0};
        ag_arena_reset(&c->arena);
        bool ok = frame_read(c, o, &f, &err) == 0;
        if (ok) {
            struct top_prev now = {0};
            prev_keep(&now, &f);
            r = rates_between(&prev, &f, &now);
            prev_clear(&prev);
            prev = now;
        }
        char *text = frame_render(c, o, &f, &r, ok ? NULL : &err);
        fputs(TERM_HOME_CLEAR, stdout);
        fputs(text, stdout);
        fflush(stdout);
        free(text);
        if (cli_sigwatch_fired(sig))
            break;
        struct pollfd p = {pipefd[0], POLLIN, 0};
        int n = poll(&p, 1, (int)o->interval_ms);
        if (n > 0 || cli_sigwatch_fired(sig))
            break;
    }
    fputs(TERM_LEAVE, stdout);
    fflush(stdout);
    int rc = cli_sigwatch_exit_code(sig); /* only a signal ends the loop */
    cli_sigwatch_stop(sig);
    prev_clear(&prev);
    close(pipefd[0]);
    close(pipefd[1]);
    return rc;
}

int cli_cmd_top(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, TOP_TIMEOUT_MS);
    struct top_opts o = {.interval_ms = 2000, .limit = 20, .ns = cli_default_namespace()};
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"interval", 0, AG_FLAG_DURATION, &o.interval_ms, "DUR",
         "time between refreshes (default 2s; at least 100ms)", 0, 0},
        {"namespace", 'n', AG_FLAG_STR, &o.ns, "NS",
         "only this namespace's agents and approvals (default $AGENTRY_NAMESPACE, else every "
         "namespace)",
         0, 0},
        {"once", 0, AG_FLAG_BOOL, &o.once, NULL,
         "print one frame without control sequences and exit (also when stdout is not a "
         "terminal)",
         0, 0},
        {"limit", 0, AG_FLAG_INT, &o.limit, "N", "agents shown at most (default 20)", 1, TOP_PAGE},
    };
    size_t nflags = 4, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    /* A screen, not data: no --json or -o (ps and nodes have them). */
    for (size_t i = 0; i < nflags;) {
        if (strcmp(flags[i].name, "json") == 0 || strcmp(flags[i].name, "output") == 0) {
            nflags--;
            memmove(&flags[i], &flags[i + 1], (nflags - i) * sizeof(*flags));
        } else {
            i++;
        }
    }
    int rc;
    if (!cli_client_parse(&c, "top", &top_help, flags, nflags, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (o.interval_ms < 100 || o.interval_ms > INT32_MAX) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--interval must be between 100ms and 24 days (see 'agentry top --help')");
        return cli_usage_error(&err);
    }
    if (cli_check_namespace(o.ns, &err) < 0)
        return cli_usage_error(&err);
    if (!isatty(STDOUT_FILENO))
        o.once = true;
    rc = o.once ? top_once(&c, &o) : top_live(&c, &o);
    cli_client_close(&c);
    return rc;
}
