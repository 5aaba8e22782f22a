/* cmd/agentry/cmd_ps.c - 'agentry ps': list agents in creation order, a page at a time or, with
 * --all, every page. Pages are kept in the client's arena and printed together, so the table's
 * columns line up across pages. --watch lists again every --interval until Ctrl-C (exit 130):
 * on a terminal each list replaces the last (so AGE moves on); otherwise a list is printed only
 * when an agent changed, so a pipe sees changes, not ticks.
 *
 * Threads: the main thread; with --watch, a watcher thread (cli_sigwatch) wakes it on Ctrl-C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"
#include "common/xalloc.h"
#include "hub/selector.h"

#define PS_WATCH_INTERVAL_MS 2000
#define TERM_HOME_CLEAR "\033[H\033[2J"

static const struct ag_cmd_help ps_help = {
    "agentry ps [flags]",
    "List agents in creation order: NAMESPACE ID NAME STATE NODE SEQ AGE. Lists every "
    "namespace, unless -n (or $AGENTRY_NAMESPACE) names one: then only its agents, without "
    "the NAMESPACE column; -A lists every namespace even when $AGENTRY_NAMESPACE is set. Shows "
    "one page of --limit agents; --all follows the pages to the end. The filters combine: an "
    "agent is listed if all of them hold. A selector is comma-separated terms that must all "
    "hold: k=v (or k==v), k!=v (also true when k is absent), k (present) or !k (absent). "
    "--request-id looks in -n's namespace ('default' without one). --tree lists every page and "
    "shows sub-agents indented under their parents, with their DEPTH; --parent lists one "
    "agent's sub-agents. -o wide adds MODEL PARENT LABELS UPDATED; -o json prints one object "
    "{agents, next_page_token} on one line, -o jsonl one agent per line. --watch lists again "
    "every --interval until Ctrl-C.",
    "agentry ps --state running\nagentry ps -n team-a -l 'team=core,!draft' --all\n"
    "agentry ps --request-id nightly-42 -o json\nagentry ps --all -o jsonl | jq -r .id\n"
    "agentry ps --tree\nagentry ps --parent 01jd5x8k2m4n6p8q --all\nagentry ps --watch -o wide",
};

struct ps_opts {
    const char *state;
    const char *selector, *name, *request_id; /* "" for none; borrowed from argv */
    const char *parent;                       /* "": any; else only its sub-agents */
    bool tree;                                /* children under their parents (every page) */
    const char *ns;                           /* "": every namespace */
    bool all_ns;                              /* -A: ignore $AGENTRY_NAMESPACE */
    int64_t limit;
    bool all;
    bool watch;
    int64_t interval_ms;        /* of --watch */
    Agentry__V1__AgentState st; /* parsed from state */
};

/* The agents of every page, gathered in one array (arena memory). */
struct ps_list {
    Agentry__V1__Agent **agents;
    size_t n;
    const char *next_token; /* "" after the last page */
};

static void append_page(struct cli_client *c, struct ps_list *l,
                        const Agentry__V1__ListAgentsResponse *page)
{
    Agentry__V1__Agent **all = ag_arena_alloc(&c->arena,
                                              (l->n + page->n_agents + 1) * sizeof(*all));
    if (l->n)
        memcpy(all, l->agents, l->n * sizeof(*all));
    if (page->n_agents)
        memcpy(all + l->n, page->agents, page->n_agents * sizeof(*all));
    l->agents = all;
    l->n += page->n_agents;
    l->next_token = page->next_page_token;
}

static int list_agents(struct cli_client *c, const struct ps_opts *o, struct ps_list *l,
                       struct ag_err *err)
{
    Agentry__V1__ListAgentsRequest req = AGENTRY__V1__LIST_AGENTS_REQUEST__INIT;
    req.state = o->st;
    req.page_size = (uint32_t)o->limit;
    req.label_selector = (char *)o->selector;
    req.name = (char *)o->name;
    req.request_id = (char *)o->request_id;
    req.namespace_ = (char *)o->ns;
    req.parent_id = (char *)o->parent;
    do {
        Agentry__V1__ListAgentsResponse *page = NULL;
        if (cli_client_call(c, CLI_HUB_METHOD("ListAgents"), &req.base,
                            &agentry__v1__list_agents_response__descriptor, (void **)&page,
                            err) < 0)
            return -1;
        append_page(c, l, page);
        req.page_token = (char *)l->next_token;
    } while ((o->all || o->tree) && *l->next_token);
    return 0;
}

/* --- the tree ---------------------------------------------------------------------------------- */

/* Tree order (each agent followed by its sub-agents, depth first, in creation order); the roots
 * are the agents whose parent is not listed. */
struct tree {
    Agentry__V1__Agent **order;
    int *level; /* indentation, per agent of order */
    size_t n;
};

static bool listed(const struct ps_list *l, const char *id)
{
    for (size_t i = 0; *id && i < l->n; i++)
        if (strcmp(l->agents[i]->id, id) == 0)
            return true;
    return false;
}

/* Quadratic in the agents listed: fine for the pages a terminal shows (ps --json for more). */
static void tree_add(const struct ps_list *l, struct tree *t, Agentry__V1__Agent *a, int level)
{
    t->order[t->n] = a;
    t->level[t->n++] = level;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->agents[i]->parent_id, a->id) == 0)
            tree_add(l, t, l->agents[i], level + 1);
}

enum { T_NS, T_ID, T_NAME, T_STATE, T_NODE, T_DEPTH, T_SEQ, T_AGE, T_NCOLS };

static void print_tree(const struct ps_list *l, bool show_ns, bool color)
{
    static const char *const head[T_NCOLS] = {"NAMESPACE", "ID",    "NAME", "STATE",
                                              "NODE",      "DEPTH", "SEQ",  "AGE"};
    struct tree t = {ag_xcalloc(l->n + 1, sizeof(*t.order)), ag_xcalloc(l->n + 1, sizeof(int)), 0};
    for (size_t i = 0; i < l->n; i++)
        if (!listed(l, l->agents[i]->parent_id))
            tree_add(l, &t, l->agents[i], 0);
    int first = show_ns ? T_NS : T_ID, ncols = T_NCOLS - first;
    char(*buf)[96] = ag_xcalloc(t.n ? t.n * T_NCOLS : 1, 96);
    char **cells = ag_xcalloc(t.n ? t.n * T_NCOLS : 1, sizeof(*cells));
    const char **sgr = ag_xcalloc(t.n ? t.n * T_NCOLS : 1, sizeof(*sgr));
    int64_t now = ag_now_unix_ns();
    for (size_t i = 0; i < t.n; i++) {
        const Agentry__V1__Agent *a = t.order[i];
        char(*row)[96] = buf + i * T_NCOLS;
        int indent = t.level[i] > 16 ? 32 : 2 * t.level[i];
        snprintf(row[T_NS], 96, "%s", a->namespace_);
        snprintf(row[T_ID], 96, "%*s%s%s", indent, "", t.level[i] ? "\\_ " : "", a->id);
        snprintf(row[T_NAME], 96, "%.24s", a->spec && *a->spec->name ? a->spec->name : "-");
        snprintf(row[T_STATE], 96, "%s", cli_print_state_name(a->state));
        snprintf(row[T_NODE], 96, "%s", *a->node_id ? a->node_id : "-");
        snprintf(row[T_DEPTH], 96, "%u", a->depth);
        snprintf(row[T_SEQ], 96, "%llu", (unsigned long long)a->last_seq);
        cli_print_age(row[T_AGE], 96, now - a->created_unix_nano);
        for (int c = first; c < T_NCOLS; c++)
            cells[i * (size_t)ncols + (size_t)(c - first)] = row[c];
        if (color)
            sgr[i * (size_t)ncols + (size_t)(T_STATE - first)] = cli_print_state_color(a->state);
    }
    cli_print_table_sgr(stdout, head + first, (size_t)ncols, cells, sgr, t.n);
    free(sgr);
    free(cells);
    free(buf);
    free(t.order);
    free(t.level);
}

static cJSON *list_json(const struct ps_list *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "agents");
    for (size_t i = 0; i < l->n; i++)
        cJSON_AddItemToArray(arr, cli_print_agent_json(l->agents[i]));
    cJSON_AddStringToObject(o, "next_page_token", l->next_token);
    return o;
}

/* The list in c's format. An empty table is a line saying so, on `empty` (stderr, so that
 * stdout stays a table; stdout for --watch on a terminal, whose screen is stdout). */
static void print_list(const struct cli_client *c, const struct ps_list *l, bool show_ns, bool tree,
                       FILE *empty)
{
    if (cli_client_machine(c)) {
        cli_client_emit(c, list_json(l), "agents");
        return;
    }
    if (l->n == 0) {
        fprintf(empty, "No agents found\n");
        return;
    }
    struct cli_print_style st = {show_ns, cli_client_format(c) == CLI_FORMAT_WIDE,
                                 cli_client_color(c)};
    if (tree)
        print_tree(l, show_ns, st.color);
    else
        cli_print_agents(stdout, l->agents, l->n, ag_now_unix_ns(), &st);
    if (*l->next_token)
        fprintf(stderr, "(more agents: use --all, or a larger --limit)\n");
}

/* The list's text for telling a change from a tick: its JSON, which has no ages. */
static char *list_key(const struct ps_list *l)
{
    cJSON *o = list_json(l);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int watch(struct cli_client *c, const struct ps_opts *o)
{
    struct cli_sigwatch *sig = cli_sigwatch_start(NULL, NULL); /* before gRPC's threads */
    bool tty = isatty(STDOUT_FILENO);
    char *last = NULL;
    int rc = CLI_OK;
    do {
        struct ag_err err = AG_ERR_INIT;
        struct ps_list l = {NULL, 0, ""};
        ag_arena_reset(&c->arena);
        if (list_agents(c, o, &l, &err) < 0) {
            rc = cli_fail(&err);
            break;
        }
        char *key = list_key(&l);
        if (tty || !last || strcmp(key, last) != 0) {
            if (tty)
                fputs(TERM_HOME_CLEAR, stdout);
            else if (last && !cli_client_machine(c))
                putchar('\n');
            print_list(c, &l, !*o->ns, o->tree, tty ? stdout : stderr);
            fflush(stdout);
        }
        cJSON_free(last);
        last = key;
    } while (!cli_sigwatch_sleep(sig, o->interval_ms));
    if (cli_sigwatch_fired(sig)) /* Ctrl-C ends the watch, also during a failing call */
        rc = cli_sigwatch_exit_code(sig);
    cJSON_free(last);
    cli_sigwatch_stop(sig);
    return rc;
}

int cli_cmd_ps(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ps_opts o = {.state = "",
                        .selector = "",
                        .name = "",
                        .request_id = "",
                        .parent = "",
                        .ns = cli_default_namespace(),
                        .limit = 100,
                        .interval_ms = PS_WATCH_INTERVAL_MS,
                        .st = AGENTRY__V1__AGENT_STATE__AGENT_STATE_UNSPECIFIED};
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"state", 0, AG_FLAG_STR, &o.state, "STATE",
         "only agents in STATE: pending, running, idle, yielded, failed or killed", 0, 0},
        {"limit", 0, AG_FLAG_INT, &o.limit, "N", "agents per page (default 100)", 1, 1000},
        {"all", 'a', AG_FLAG_BOOL, &o.all, NULL, "follow the pages to the last agent", 0, 0},
        {"selector", 'l', AG_FLAG_STR, &o.selector, "SELECTOR",
         "only agents whose labels match, e.g. 'team=core,tier!=gold'", 0, 0},
        {"name", 0, AG_FLAG_STR, &o.name, "NAME", "only agents with exactly this name", 0, 0},
        {"request-id", 0, AG_FLAG_STR, &o.request_id, "KEY",
         "only the agent spawned with this idempotency key", 0, 0},
        {"namespace", 'n', AG_FLAG_STR, &o.ns, "NS",
         "only agents of this namespace (default $AGENTRY_NAMESPACE, else every namespace)", 0, 0},
        {"all-namespaces", 'A', AG_FLAG_BOOL, &o.all_ns, NULL,
         "every namespace, even when $AGENTRY_NAMESPACE names one", 0, 0},
        {"tree", 0, AG_FLAG_BOOL, &o.tree, NULL,
         "every page, sub-agents indented under their parents, with a DEPTH column", 0, 0},
        {"parent", 0, AG_FLAG_STR, &o.parent, "AGENT_ID", "only the sub-agents of this agent", 0,
         0},
        {"watch", 'w', AG_FLAG_BOOL, &o.watch, NULL,
         "list again every --interval until Ctrl-C (off a terminal: only when something changed)",
         0, 0},
        {"interval", 0, AG_FLAG_DURATION, &o.interval_ms, "DURATION",
         "how often --watch lists (default 2s)", 0, 0},
    };
    size_t nflags = 12;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    size_t npos;
    int rc;
    if (!cli_client_parse(&c, "ps", &ps_help, flags, nflags, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    struct ps_list l = {NULL, 0, ""};
    struct hub_selector sel;
    if (*o.state && cli_print_state_parse(o.state, &o.st, &err) < 0)
        goto usage;
    if (hub_selector_parse(o.selector, &c.arena, &sel, &err) < 0) {
        ag_err_prefix(&err, "invalid value for --selector");
        goto usage;
    }
    if (o.interval_ms <= 0) {
        ag_err_set(&err, AG_INVALID_ARGUMENT, "invalid value for --interval: want more than 0");
        goto usage;
    }
    if (o.all_ns)
        o.ns = "";
    if (cli_check_namespace(o.ns, &err) < 0)
        goto usage;
    rc = CLI_OK;
    if (o.watch)
        rc = watch(&c, &o);
    else if (list_agents(&c, &o, &l, &err) < 0)
        rc = cli_fail(&err);
    else
        print_list(&c, &l, !*o.ns, o.tree, stderr);
    cli_client_close(&c);
    return rc;
usage: /* the selector's parse may have used the arena */
    cli_client_close(&c);
    return cli_usage_error(&err);
}
