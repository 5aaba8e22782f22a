/* cmd/agentry/cmd_resume.c - 'agentry resume AGENT_ID': continue a yielded or failed agent with
 * a new turn that takes no input (ResumeAgent): the model is asked again from the agent's
 * conversation so far. A refusal (the agent is idle, running, pending or killed) is the hub's
 * FAILED_PRECONDITION, printed as one line on stderr with exit 1. */
#include <inttypes.h>
#include <stdio.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"

/* The hub's limit on a turn's iterations (hub.proto, ResumeAgentRequest.max_iterations). */
#define RESUME_MAX_ITER 1000

static const struct ag_cmd_help resume_help = {
    "agentry resume [flags] AGENT_ID",
    "Continue an agent whose last turn yielded (it reached its iteration limit) or failed: a "
    "new turn starts with no new input, and the model is asked again with the conversation so "
    "far. --max-iterations bounds that turn only; later turns use the spec's limit. An idle "
    "agent (its last turn gave a final answer) is refused: send it a message instead. Prints "
    "the seq of the stored 'resumed' event and the agent's state.",
    "agentry resume --max-iterations 20 01jd5x8k2m4n6p8q",
};

int cli_cmd_resume(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    int64_t max_iter = 0;
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"max-iterations", 0, AG_FLAG_INT, &max_iter, "N",
         "model calls in the resumed turn before it yields (default: the spec's)", 1,
         RESUME_MAX_ITER},
    };
    size_t nflags = 1;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    Agentry__V1__ResumeAgentRequest req = AGENTRY__V1__RESUME_AGENT_REQUEST__INIT;
    int rc;
    if (!cli_parse_agent_id(&c, "resume", &resume_help, flags, nflags, argc, argv, &req.agent_id,
                            &rc))
        return rc;

    struct ag_err err = AG_ERR_INIT;
    req.max_iterations = (uint32_t)max_iter;
    Agentry__V1__ResumeAgentResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ResumeAgent"), &req.base,
                        &agentry__v1__resume_agent_response__descriptor, (void **)&resp,
                        &err) < 0) {
        rc = cli_fail(&err);
    } else if (cli_client_machine(&c)) {
        cJSON *o = cli_print_seq_json(req.agent_id, resp->seq);
        cJSON_AddStringToObject(o, "state", cli_print_state_name(resp->state));
        cli_client_emit(&c, o, NULL);
    } else {
        printf("agent %s resumed at seq %" PRIu64 ", %s\n", req.agent_id, resp->seq,
               cli_print_state_name(resp->state));
    }
    cli_client_close(&c);
    return rc;
}
