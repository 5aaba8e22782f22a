/* cmd/agentry/cmd_delete.c - 'agentry delete AGENT_ID' (alias 'rm'): delete an agent at rest and
 * its sub-agents from the hub, with their events and memory; their nodes remove their
 * workspaces. Prints the ids deleted, one per line, the one named first. */
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"

static const struct ag_cmd_help delete_help = {
    "agentry delete [flags] AGENT_ID",
    "Delete an agent and its sub-agents: their records, events and memory leave the hub's store, "
    "and every node removes their workspaces (a node that is offline does so when it next "
    "connects). Each one must be at rest (idle, yielded, failed or killed): kill a running one "
    "first. A sub-agent is deleted only with its root. Prints the ids deleted, the one named "
    "first. Alias: rm.",
    "agentry delete 01jd5x8k2m4n6p8q",
};

int cli_cmd_delete(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    Agentry__V1__DeleteAgentRequest req = AGENTRY__V1__DELETE_AGENT_REQUEST__INIT;
    int rc;
    if (!cli_parse_agent_id(&c, "delete", &delete_help, flags, nflags, argc, argv, &req.agent_id,
                            &rc))
        return rc;

    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__DeleteAgentResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("DeleteAgent"), &req.base,
                        &agentry__v1__delete_agent_response__descriptor, (void **)&resp,
                        &err) < 0) {
        rc = cli_fail(&err);
    } else if (cli_client_machine(&c)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "agent_id", req.agent_id);
        cJSON *ids = cJSON_AddArrayToObject(o, "deleted");
        for (size_t i = 0; i < resp->n_deleted; i++)
            cJSON_AddItemToArray(ids, cJSON_CreateString(resp->deleted[i]));
        cli_client_emit(&c, o, NULL);
    } else {
        for (size_t i = 0; i < resp->n_deleted; i++)
            printf("%s\n", resp->deleted[i]);
    }
    cli_client_close(&c);
    return rc;
}
