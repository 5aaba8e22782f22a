/* cmd/agentry/cmd_invoke.c - 'agentry invoke INPUT...': spawn an agent and wait for the end of
 * its first turn. The answer goes to stdout; a turn that did not end with an answer (failed,
 * yielded, killed) is one line on stderr and exit status 1, so scripts can rely on $?. So is a
 * --timeout that passes: the line then says what happened (nothing sent, the agent created, or
 * not yet), found out from the hub by the request id every invoke carries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/xalloc.h"

#define INVOKE_TIMEOUT_DEFAULT_MS 60000

static const struct ag_cmd_help invoke_help = {
    "agentry invoke [flags] INPUT...",
    "Spawn an agent with INPUT (its words joined by spaces; '-' alone reads it from stdin), wait for the end of its first turn "
    "and print the final answer. --timeout bounds the wait; when it passes, invoke says what "
    "happened: nothing was sent, or the agent was created (it keeps running: the deadline only "
    "ends the wait), or the hub has not created it yet (retry with the --request-id it names: "
    "at most one agent is ever created per request id). Without --request-id, one is made up. "
    "Exits 1 if the turn failed, yielded or was killed, or the deadline passed.",
    "agentry invoke --tool echo 'use the echo tool to say hi'\n"
    "agentry invoke --spec deploy/templates/coder.yaml 'make the failing test pass'",
};

static cJSON *invoke_json(const Agentry__V1__InvokeResponse *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", r->agent_id);
    cJSON_AddStringToObject(o, "state", cli_print_state_name(r->state));
    cJSON_AddStringToObject(o, "output", r->output);
    cJSON_AddStringToObject(o, "error", r->error);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    const Agentry__V1__Usage *usage = r->usage;
    cJSON_AddNumberToObject(u, "input_tokens", usage ? (double)usage->input_tokens : 0);
    cJSON_AddNumberToObject(u, "output_tokens", usage ? (double)usage->output_tokens : 0);
    cJSON_AddNumberToObject(u, "model_calls", usage ? usage->model_calls : 0);
    cJSON_AddNumberToObject(u, "tool_calls", usage ? usage->tool_calls : 0);
    cJSON_AddNumberToObject(u, "cost_usd", usage ? usage->cost_usd : 0);
    cJSON_AddNumberToObject(o, "seq", (double)r->seq);
    return o;
}

/* The turn's outcome as an exit code, with the stderr line for anything but an answer. */
static int outcome(const Agentry__V1__InvokeResponse *r)
{
    struct ag_err err = AG_ERR_INIT;
    const char *why = *r->error ? r->error : "no reason given";
    switch (r->state) {
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE:
        return CLI_OK;
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED:
        ag_err_set(&err, AG_ABORTED, "agent '%s' failed: %s", r->agent_id, why);
        break;
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED:
        ag_err_set(&err, AG_ABORTED,
                   "agent '%s' yielded before answering: %s (continue with "
                   "'agentry send %s ...')",
                   r->agent_id, why, r->agent_id);
        break;
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED:
        ag_err_set(&err, AG_ABORTED, "agent '%s' was killed: %s", r->agent_id, why);
        break;
    default:
        ag_err_set(&err, AG_UNKNOWN, "agent '%s' ended its turn in state '%s'", r->agent_id,
                   cli_print_state_name(r->state));
        break;
    }
    return cli_fail(&err);
}

static int invoke(struct cli_client *c, Agentry__V1__AgentSpec *spec, char *input, char *ns,
                  char *request_id)
{
    Agentry__V1__InvokeRequest req = AGENTRY__V1__INVOKE_REQUEST__INIT;
    req.spec = spec;
    req.input = input;
    req.namespace_ = ns;
    req.request_id = request_id;
    Agentry__V1__InvokeResponse *resp = NULL;
    int rc = cli_spec_call(c, CLI_HUB_METHOD("Invoke"), &req.base, ns, req.request_id,
                           &agentry__v1__invoke_response__descriptor, (void **)&resp,
                           "the turn did not end");
    if (rc != 0)
        return rc;
    if (cli_client_machine(c))
        cli_client_emit(c, invoke_json(resp), NULL);
    else if (resp->state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE)
        printf("%s\n", resp->output);
    return outcome(resp);
}

int cli_cmd_invoke(int argc, char **argv)
{
    return cli_spec_cmd("invoke", &invoke_help, INVOKE_TIMEOUT_DEFAULT_MS, true, invoke, argc,
                        argv);
}
