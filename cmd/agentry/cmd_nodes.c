/* cmd/agentry/cmd_nodes.c - 'agentry nodes': the nodes connected to the hub, with their state
 * (ready, cordoned, draining), load, labels, version and age (ListNodes). */
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"

static const struct ag_cmd_help nodes_help = {
    "agentry nodes [flags]",
    "List the nodes connected to the hub, in the order they joined: NODE STATE RUNNING "
    "(turns running / capacity) LABELS VERSION AGE (of the node process). STATE is ready, "
    "cordoned (no new turns: 'agentry node cordon') or draining ('agentry node drain').",
    "agentry nodes\nagentry nodes --json | jq -r '.nodes[] | select(.state == \"ready\") | "
    ".node_id'",
};

int cli_cmd_nodes(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    int rc;
    if (!cli_parse("nodes", &nodes_help, flags, nflags, argc, argv, NULL, 0, &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__ListNodesRequest req = AGENTRY__V1__LIST_NODES_REQUEST__INIT;
    Agentry__V1__ListNodesResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ListNodes"), &req.base,
                        &agentry__v1__list_nodes_response__descriptor, (void **)&resp, &err) < 0) {
        rc = cli_fail(&err);
    } else if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "nodes");
        for (size_t i = 0; i < resp->n_nodes; i++)
            cJSON_AddItemToArray(arr, cli_print_node_json(resp->nodes[i]));
        cli_print_json(stdout, o, false);
    } else if (resp->n_nodes == 0) {
        printf("No nodes connected.\n");
    } else {
        cli_print_nodes(stdout, resp->nodes, resp->n_nodes, ag_now_unix_ns());
    }
    cli_client_close(&c);
    return rc;
}
