/* cmd/agentry/cmd_spawn.c - 'agentry spawn [INPUT...]': create an agent, optionally with its
 * first input, and print its id. The spec comes from the flags, or from --spec FILE with the
 * flags given over it (client.c, spec.c). When --timeout passes, the line on stderr says
 * whether the agent was created, found out from the hub by the request id every spawn carries. */
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/xalloc.h"

static const struct ag_cmd_help spawn_help = {
    "agentry spawn [flags] [INPUT...]",
    "Create an agent and start its first turn with INPUT (its words joined by spaces; '-' alone "
    "reads it from stdin). Without INPUT the agent is created idle and waits for 'agentry send'. Prints the agent id; "
    "follow it with 'agentry trace -f ID'. If --timeout passes, spawn says whether the agent "
    "was created; retrying with the same --request-id never creates a second one (without "
    "--request-id, one is made up; request ids are per namespace).",
    "agentry spawn --name greeter --tool echo --label team=core 'say hello'\n"
    "agentry spawn -n team-a --request-id nightly-42 'summarize the logs'\n"
    "agentry spawn --spec deploy/templates/researcher.yaml --name r1 'What is HTTP/3?'",
};

static void print_spawned(const struct cli_client *c, const Agentry__V1__SpawnResponse *r)
{
    if (!cli_client_machine(c)) {
        printf("%s\n", r->agent_id);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", r->agent_id);
    cJSON_AddNumberToObject(o, "input_seq", (double)r->input_seq);
    cJSON_AddBoolToObject(o, "existing", r->existing);
    cJSON_AddStringToObject(o, "state", cli_print_state_name(r->state));
    cli_client_emit(c, o, NULL);
}

static int spawn(struct cli_client *c, Agentry__V1__AgentSpec *spec, char *input, char *ns,
                 char *request_id)
{
    Agentry__V1__SpawnRequest req = AGENTRY__V1__SPAWN_REQUEST__INIT;
    req.spec = spec;
    req.input = input;
    req.namespace_ = ns;
    req.request_id = request_id;
    Agentry__V1__SpawnResponse *resp = NULL;
    int rc = cli_spec_call(c, CLI_HUB_METHOD("Spawn"), &req.base, ns, req.request_id,
                           &agentry__v1__spawn_response__descriptor, (void **)&resp, NULL);
    if (rc != 0)
        return rc;
    print_spawned(c, resp);
    return CLI_OK;
}

int cli_cmd_spawn(int argc, char **argv)
{
    return cli_spec_cmd("spawn", &spawn_help, CLI_TIMEOUT_DEFAULT_MS, false, spawn, argc, argv);
}
