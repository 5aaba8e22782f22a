/* cmd/agentry/cmd_kill.c - 'agentry kill AGENT_ID': stop an agent for good, and say what
 * happened ("agent ID killed at seq 12 (was running)"). Killing an agent that was already
 * killed succeeds (the hub answers with the first kill's seq and already_killed) and says so
 * ("agent ID was already killed (at seq 12); nothing changed"): the user's intent holds, but
 * their reason was not recorded. -o json for programs. */
#include <inttypes.h>
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"

static const struct ag_cmd_help kill_help = {
    "agentry kill [flags] AGENT_ID",
    "Stop an agent: its running turn is cancelled on its node and it takes no more input. "
    "Says the seq of the stored 'killed' event and the state the agent was in. An agent that "
    "was already killed stays as it was: kill says so, with the seq of its first 'killed' "
    "event, and succeeds. -o json prints {agent_id, seq, already_killed, was} (was: the state before, when the hub said it).",
    "agentry kill --reason 'runaway loop' 01jd5x8k2m4n6p8q",
};

static void print_killed(const struct cli_client *c, const char *id,
                         const Agentry__V1__KillAgentResponse *resp,
                         const Agentry__V1__Agent *before)
{
    const char *was = before ? cli_print_state_name(before->state) : "";
    if (cli_client_machine(c)) {
        cJSON *o = cli_print_seq_json(id, resp->seq);
        cJSON_AddBoolToObject(o, "already_killed", resp->already_killed);
        if (*was)
            cJSON_AddStringToObject(o, "was", was);
        cli_client_emit(c, o, NULL);
    } else if (resp->already_killed) {
        printf("agent %s was already killed (at seq %" PRIu64 "); nothing changed\n", id,
               resp->seq);
    } else if (*was) {
        printf("agent %s killed at seq %" PRIu64 " (was %s)\n", id, resp->seq, was);
    } else {
        printf("agent %s killed at seq %" PRIu64 "\n", id, resp->seq);
    }
}

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
    if (!cli_parse_agent_id(&c, "kill", &kill_help, flags, nflags, argc, argv, &req.agent_id, &rc))
        return rc;

    struct ag_err err = AG_ERR_INIT;
    req.reason = (char *)reason;
    /* The state before the kill, for the line that says what happened; a hub that cannot say
     * (the agent is unknown: KillAgent will say so) leaves it out. */
    Agentry__V1__GetAgentRequest get = AGENTRY__V1__GET_AGENT_REQUEST__INIT;
    get.agent_id = req.agent_id;
    Agentry__V1__Agent *before = NULL;
    struct ag_err ignored = AG_ERR_INIT;
    if (cli_client_call(&c, CLI_HUB_METHOD("GetAgent"), &get.base, &agentry__v1__agent__descriptor,
                        (void **)&before, &ignored) < 0)
        before = NULL;
    Agentry__V1__KillAgentResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("KillAgent"), &req.base,
                        &agentry__v1__kill_agent_response__descriptor, (void **)&resp, &err) < 0)
        rc = cli_fail(&err);
    else
        print_killed(&c, req.agent_id, resp, before);
    cli_client_close(&c);
    return rc;
}
