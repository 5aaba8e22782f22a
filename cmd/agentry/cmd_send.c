/* cmd/agentry/cmd_send.c - 'agentry send AGENT_ID INPUT...': store an input for an agent and
 * say where it was stored ("agent ID input stored at seq 11"); -o json for programs. INPUT "-"
 * is read from stdin. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/xalloc.h"

static const struct ag_cmd_help send_help = {
    "agentry send [flags] AGENT_ID INPUT...",
    "Send an input to an agent; the words of INPUT are joined by spaces, and '-' alone reads it "
    "from stdin. An idle, yielded or failed agent starts its next turn; a running one reads the "
    "input before its next model call. Says the seq of the stored input event ('agent ID input "
    "stored at seq N'); -o json prints {agent_id, seq, state}.",
    "agentry send 01jd5x8k2m4n6p8q 'and now in French'\ngit diff | agentry send 01jd5x8k2m4n6p8q "
    "-\nagentry send -o json 01jd5x8k2m4n6p8q 'next' | jq .seq",
};

static int send_input(struct cli_client *c, char *agent_id, char *input)
{
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__SendMessageRequest req = AGENTRY__V1__SEND_MESSAGE_REQUEST__INIT;
    req.agent_id = agent_id;
    req.input = input;
    Agentry__V1__SendMessageResponse *resp = NULL;
    if (cli_client_call(c, CLI_HUB_METHOD("SendMessage"), &req.base,
                        &agentry__v1__send_message_response__descriptor, (void **)&resp, &err) < 0)
        return cli_fail(&err);
    if (cli_client_machine(c)) {
        cJSON *o = cli_print_seq_json(agent_id, resp->seq);
        cJSON_AddStringToObject(o, "state", cli_print_state_name(resp->state));
        cli_client_emit(c, o, NULL);
    } else {
        printf("agent %s input stored at seq %" PRIu64 " (%s)\n", agent_id, resp->seq,
               cli_print_state_name(resp->state));
    }
    return CLI_OK;
}

int cli_cmd_send(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char **pos = ag_xcalloc((size_t)argc + 1, sizeof(*pos));
    size_t npos;
    int rc;
    if (cli_client_parse(&c, "send", &send_help, flags, nflags, argc, argv, pos, (size_t)argc,
                         &npos, &rc) &&
        cli_need_args("send", pos, npos, 1, "AGENT_ID", &rc) &&
        cli_need_args("send", pos, npos, 2, "INPUT", &rc)) {
        struct ag_err err = AG_ERR_INIT;
        char *input = NULL;
        if (npos == 2 && strcmp(pos[1], "-") == 0 && cli_read_stdin(&c.arena, &input, &err) < 0)
            rc = cli_usage_error(&err);
        else
            rc = send_input(&c, pos[0],
                            input ? input : cli_join_words(&c.arena, pos + 1, npos - 1));
        cli_client_close(&c);
    }
    free(pos);
    return rc;
}
