/* cmd/agentry/cmd_export.c - 'agentry export AGENT_ID [-o FILE]': an agent's whole stored state
 * (ExportAgent), written as a packed agentry.v1.AgentExport (binary protobuf, no framing) for
 * 'agentry import' on another hub. A refusal (the agent is in a turn, unknown, or its export is
 * over the hub's limit) is one line on stderr with exit 1, and no file is left behind. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"

static const struct ag_cmd_help export_help = {
    "agentry export [flags] AGENT_ID",
    "Write an agent's whole state (spec, checkpoint, usage, last result and every stored event) "
    "to FILE, or to stdout, for 'agentry import' on another hub. The file is a packed "
    "agentry.v1.AgentExport protobuf (api/agentry/v1/hub.proto). Only an agent between turns "
    "(idle, yielded, failed or killed) can be exported; the agent stays on this hub, unchanged.",
    "agentry export 01jd5x8k2m4n6p8q > agent.pb\nagentry export -o agent.pb 01jd5x8k2m4n6p8q",
};

/* Write the bytes to path ("" or NULL: stdout); a file is written whole or removed. */
static int write_out(const char *path, const uint8_t *buf, size_t len, struct ag_err *err)
{
    bool to_file = path && *path;
    FILE *f = to_file ? fopen(path, "wb") : stdout;
    if (!f)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot create '%s': %s", path,
                          strerror(errno));
    bool ok = fwrite(buf, 1, len, f) == len;
    ok = (to_file ? fclose(f) : fflush(f)) == 0 && ok;
    if (ok)
        return 0;
    int e = errno;
    if (to_file)
        remove(path);
    return ag_err_set(err, AG_UNAVAILABLE, "cannot write the export to '%s': %s",
                      to_file ? path : "stdout", strerror(e));
}

int cli_cmd_export(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *out = NULL;
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"output", 'o', AG_FLAG_STR, &out, "FILE", "write the export here (default: stdout)", 0, 0},
    };
    size_t nflags = 1;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    Agentry__V1__ExportAgentRequest req = AGENTRY__V1__EXPORT_AGENT_REQUEST__INIT;
    int rc;
    if (!cli_parse_agent_id(&c, "export", &export_help, flags, nflags, argc, argv, &req.agent_id,
                            &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if ((!out || !*out) && isatty(STDOUT_FILENO)) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "the export is binary: redirect stdout to a file or use -o FILE");
        return cli_usage_error(&err);
    }
    Agentry__V1__AgentExport *x = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ExportAgent"), &req.base,
                        &agentry__v1__agent_export__descriptor, (void **)&x, &err) < 0) {
        rc = cli_fail(&err);
    } else {
        size_t len = protobuf_c_message_get_packed_size(&x->base);
        uint8_t *buf = malloc(len ? len : 1);
        protobuf_c_message_pack(&x->base, buf);
        if (write_out(out, buf, len, &err) != 0)
            rc = cli_fail(&err);
        else if (out && *out)
            printf("agent %s exported: %zu events, state %s, %zu bytes to %s\n", x->agent_id,
                   x->n_events, cli_print_state_name(x->state), len, out);
        free(buf);
    }
    cli_client_close(&c);
    return rc;
}
