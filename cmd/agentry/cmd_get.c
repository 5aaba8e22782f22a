/* cmd/agentry/cmd_get.c - 'agentry get AGENT_ID': one agent, as key: value lines or JSON. */
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"

static const struct ag_cmd_help get_help = {
    "agentry get [flags] AGENT_ID",
    "Show one agent: its spec, state, node, last seq, usage and the result of its last turn.",
    "agentry get 01jd5x8k2m4n6p8q\nagentry get --json 01jd5x8k2m4n6p8q | jq -r .state",
};

int cli_cmd_get(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    Agentry__V1__GetAgentRequest req = AGENTRY__V1__GET_AGENT_REQUEST__INIT;
    int rc;
    if (!cli_parse_agent_id(&c, "get", &get_help, flags, nflags, argc, argv, &req.agent_id, &rc))
        return rc;

    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__Agent *a = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("GetAgent"), &req.base, &agentry__v1__agent__descriptor,
                        (void **)&a, &err) < 0)
        rc = cli_fail(&err);
    else if (cli_client_machine(&c))
        cli_client_emit(&c, cli_print_agent_json(a), NULL);
    else
        cli_print_agent(stdout, a, ag_now_unix_ns());
    cli_client_close(&c);
    return rc;
}
