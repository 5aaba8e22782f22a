/* cmd/agentry/cmd_kill.c - 'agentry kill AGENT_ID': stop an agent for good. Killing an agent
 * that was already killed succeeds (the hub answers with the first kill's seq and
 * already_killed), and says so on stderr: the user's intent holds, but their reason was not
 * recorded. */
#include <inttypes.h>
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"

static const struct ag_cmd_help kill_help = {
    "agentry kill [flags] AGENT_ID",
    "Stop an agent: its running turn is cancelled on its node and it takes no more input. "
    "Prints the seq of the stored 'killed' event. An agent that was already killed stays as it "
    "was: kill says so and prints the seq of its first 'killed' event.",
    "agentry kill --reason 'runaway loop' 01jd5x8k2m4n6p8q",
};

int cli_cmd_kill(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *reason = "";
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"reason", 0, AG_FLAG_STR, &reason, "TEXT", "why, recorded in the 'killed' event", 0, 0},
    };
    size_t nflags = 1;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    Agentry__V1__KillAgentRequest req = AGENTRY__V1__KILL_AGENT_REQUEST__INIT;
    int rc;
    if (!cli_parse_agent_id("kill", &kill_help, flags, nflags, argc, argv, &req.agent_id, &rc))
        return rc;

    struct ag_err err = AG_ERR_INIT;
    req.reason = (char *)reason;
    Agentry__V1__KillAgentResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("KillAgent"), &req.base,
                        &agentry__v1__kill_agent_response__descriptor, (void **)&resp, &err) < 0) {
        rc = cli_fail(&err);
    } else if (c.json) {
        cJSON *o = cli_print_seq_json(req.agent_id, resp->seq);
        cJSON_AddBoolToObject(o, "already_killed", resp->already_killed);
        cli_print_json(stdout, o, false);
    } else {
        printf("%" PRIu64 "\n", resp->seq);
        if (resp->already_killed)
            fprintf(stderr, "agent '%s' was already killed (at seq %" PRIu64 "); nothing changed\n",
                    req.agent_id, resp->seq);
    }
    cli_client_close(&c);
    return rc;
}
