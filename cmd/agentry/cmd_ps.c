/* cmd/agentry/cmd_ps.c - 'agentry ps': list agents in creation order, a page at a time or, with
 * --all, every page. Pages are kept in the client's arena and printed together, so the table's
 * columns line up across pages. */
#include <stdio.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"
#include "common/xalloc.h"

static const struct ag_cmd_help ps_help = {
    "agentry ps [flags]",
    "List agents in creation order: NAMESPACE ID NAME STATE NODE SEQ AGE. Lists every "
    "namespace, unless -n (or $AGENTRY_NAMESPACE) names one: then only its agents, without "
    "the NAMESPACE column; -A lists every namespace even when $AGENTRY_NAMESPACE is set. Shows "
    "one page of --limit agents; --all follows the pages to the end. The filters combine: an "
    "agent is listed if all of them hold. A selector is comma-separated terms that must all "
    "hold: k=v (or k==v), k!=v (also true when k is absent), k (present) or !k (absent). "
    "--request-id looks in -n's namespace ('default' without one).",
    "agentry ps --state running\nagentry ps -n team-a -l 'team=core,!draft' --all\n"
    "agentry ps --request-id nightly-42 --json\nagentry ps --all --json | jq -r '.agents[].id'",
};

struct ps_opts {
    const char *state;
    const char *selector, *name, *request_id; /* "" for none; borrowed from argv */
    const char *ns;                           /* "": every namespace */
    bool all_ns;                              /* -A: ignore $AGENTRY_NAMESPACE */
    int64_t limit;
    bool all;
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
    do {
        Agentry__V1__ListAgentsResponse *page = NULL;
        if (cli_client_call(c, CLI_HUB_METHOD("ListAgents"), &req.base,
                            &agentry__v1__list_agents_response__descriptor, (void **)&page,
                            err) < 0)
            return -1;
        append_page(c, l, page);
        req.page_token = (char *)l->next_token;
    } while (o->all && *l->next_token);
    return 0;
}

static void print_list(const struct ps_list *l, bool json, bool show_ns)
{
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "agents");
        for (size_t i = 0; i < l->n; i++)
            cJSON_AddItemToArray(arr, cli_print_agent_json(l->agents[i]));
        cJSON_AddStringToObject(o, "next_page_token", l->next_token);
        cli_print_json(stdout, o, false);
        return;
    }
    cli_print_agents(stdout, l->agents, l->n, ag_now_unix_ns(), show_ns);
    if (*l->next_token)
        fprintf(stderr, "(more agents: use --all, or a larger --limit)\n");
}

int cli_cmd_ps(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ps_opts o = {.state = "",
                        .selector = "",
                        .name = "",
                        .request_id = "",
                        .ns = cli_default_namespace(),
                        .limit = 100,
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
    };
    size_t nflags = 8;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    size_t npos;
    int rc;
    if (!cli_parse("ps", &ps_help, flags, nflags, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    struct ps_list l = {NULL, 0, ""};
    if (*o.state && cli_print_state_parse(o.state, &o.st, &err) < 0)
        return cli_usage_error(&err);
    if (o.all_ns)
        o.ns = "";
    if (cli_check_namespace(o.ns, &err) < 0)
        return cli_usage_error(&err);
    rc = CLI_OK;
    if (list_agents(&c, &o, &l, &err) < 0)
        rc = cli_fail(&err);
    else
        print_list(&l, c.json, !*o.ns);
    cli_client_close(&c);
    return rc;
}
