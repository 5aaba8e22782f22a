/* cmd/agentry/cmd_nodes.c - 'agentry nodes': the nodes connected to the hub, with their state
 * (ready, cordoned, draining), load, labels, version and age (ListNodes). */
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"
#include "hub/selector.h"

static const struct ag_cmd_help nodes_help = {
    "agentry nodes [flags]",
    "List the nodes connected to the hub, in the order they joined: NODE STATE RUNNING "
    "(turns running / capacity) LABELS VERSION AGE (of the node process); -o wide adds ADDRESS "
    "MODELS TOOLS. STATE is ready, cordoned (no new turns: 'agentry node cordon') or draining "
    "('agentry node drain'). -l keeps the nodes whose labels match, with the terms of 'agentry "
    "ps -l'.",
    "agentry nodes\nagentry nodes -l zone=eu -o wide\nagentry nodes -o json | jq -r "
    "'.nodes[] | select(.state == \"ready\") | .node_id'",
};

/* The nodes whose labels match sel (parsed in arena), in place; returns how many are left. A
 * node's labels are copied into the spec's entry type, which the matcher takes. */
static size_t keep_matching(Agentry__V1__Node **nodes, size_t n, const struct hub_selector *sel,
                            struct ag_arena *arena)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        Agentry__V1__Node *nd = nodes[i];
        Agentry__V1__AgentSpec__LabelsEntry **l = ag_arena_alloc(arena,
                                                                 (nd->n_labels + 1) * sizeof(*l));
        for (size_t k = 0; k < nd->n_labels; k++) {
            l[k] = ag_arena_alloc(arena, sizeof(*l[k]));
            agentry__v1__agent_spec__labels_entry__init(l[k]);
            l[k]->key = nd->labels[k]->key;
            l[k]->value = nd->labels[k]->value;
        }
        if (hub_selector_match(sel, l, nd->n_labels))
            nodes[kept++] = nd;
    }
    return kept;
}

static void print_nodes(const struct cli_client *c, Agentry__V1__Node **nodes, size_t n)
{
    if (cli_client_machine(c)) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "nodes");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, cli_print_node_json(nodes[i]));
        cli_client_emit(c, o, "nodes");
    } else if (n == 0) {
        fprintf(stderr, "No nodes found\n");
    } else {
        struct cli_print_style st = {false, cli_client_format(c) == CLI_FORMAT_WIDE,
                                     cli_client_color(c)};
        cli_print_nodes(stdout, nodes, n, ag_now_unix_ns(), &st);
    }
}

int cli_cmd_nodes(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *selector = "";
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"selector", 'l', AG_FLAG_STR, &selector, "SELECTOR",
         "only nodes whose labels match, e.g. 'zone=eu,gpu'", 0, 0},
    };
    size_t nflags = 1, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    int rc;
    if (!cli_client_parse(&c, "nodes", &nodes_help, flags, nflags, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    struct hub_selector sel;
    if (hub_selector_parse(selector, &c.arena, &sel, &err) < 0) {
        ag_err_prefix(&err, "invalid value for --selector");
        cli_client_close(&c); /* the parse may have used the arena */
        return cli_usage_error(&err);
    }
    Agentry__V1__ListNodesRequest req = AGENTRY__V1__LIST_NODES_REQUEST__INIT;
    Agentry__V1__ListNodesResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ListNodes"), &req.base,
                        &agentry__v1__list_nodes_response__descriptor, (void **)&resp, &err) < 0)
        rc = cli_fail(&err);
    else
        print_nodes(&c, resp->nodes, keep_matching(resp->nodes, resp->n_nodes, &sel, &c.arena));
    cli_client_close(&c);
    return rc;
}
