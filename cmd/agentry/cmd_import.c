/* cmd/agentry/cmd_import.c - 'agentry import FILE|-': create an agent from an 'agentry export'
 * file (ImportAgent) on this hub, with the same id, state and events. A file that is not an
 * export, and every refusal by the hub (the id exists, a bad format version, a truncated file),
 * is one line on stderr with exit 1; nothing is created then. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/rpc/pb.h"

/* Bigger than any hub's default request limit (4 MiB) many times over: a file this big is not
 * an export a hub would take. */
#define IMPORT_MAX_FILE (256u << 20)

static const struct ag_cmd_help import_help = {
    "agentry import [flags] FILE|-",
    "Create an agent on this hub from a file written by 'agentry export' (or stdin, '-'): the "
    "same id, spec, state, checkpoint and events, stored in one write. An idle agent then takes "
    "messages, a yielded or failed one can be resumed. Refused if this hub already has the id.",
    "agentry export --hub a:7070 -o agent.pb 01jd5x8k2m4n6p8q\n"
    "agentry import --hub b:7070 agent.pb",
};

/* The whole file (or stdin for "-") into the arena. */
static int read_all(const char *path, struct ag_arena *ar, uint8_t **data, size_t *len,
                    struct ag_err *err)
{
    bool std = strcmp(path, "-") == 0;
    FILE *f = std ? stdin : fopen(path, "rb");
    if (!f)
        return ag_err_set(err, AG_NOT_FOUND, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t k; (k = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap && cap < IMPORT_MAX_FILE) {
            cap *= 2;
            buf = realloc(buf, cap);
        } else if (n == cap) {
            break;
        }
    }
    bool bad = ferror(f), big = n == cap && cap >= IMPORT_MAX_FILE;
    if (!std)
        fclose(f);
    if (!bad && !big) {
        *data = ag_arena_alloc(ar, n ? n : 1);
        memcpy(*data, buf, n);
        *len = n;
    }
    free(buf);
    if (bad)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot read '%s'", path);
    if (big)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' is over %u bytes: not an agent export",
                          path, IMPORT_MAX_FILE);
    return 0;
}

int cli_cmd_import(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *pos[1];
    size_t npos = 0;
    int rc;
    if (!cli_client_parse(&c, "import", &import_help, flags, nflags, argc, argv, pos, 1, &npos,
                          &rc) ||
        !cli_need_args("import", pos, npos, 1, "FILE", &rc))
        return rc;

    struct ag_err err = AG_ERR_INIT;
    uint8_t *data = NULL;
    size_t len = 0;
    Agentry__V1__ImportAgentRequest req = AGENTRY__V1__IMPORT_AGENT_REQUEST__INIT;
    if (read_all(pos[0], &c.arena, &data, &len, &err) != 0) {
        rc = cli_fail(&err);
        goto out;
    }
    req.agent = len ? rpc_pb_unpack_bytes(data, len, &agentry__v1__agent_export__descriptor,
                                          &c.arena, &err)
                    : NULL;
    if (!req.agent) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "'%s' is not an agent export (%s); write one with 'agentry export'", pos[0],
                   len ? "it does not decode" : "it is empty");
        rc = cli_fail(&err);
        goto out;
    }
    Agentry__V1__ImportAgentResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ImportAgent"), &req.base,
                        &agentry__v1__import_agent_response__descriptor, (void **)&resp,
                        &err) < 0) {
        rc = cli_fail(&err);
    } else if (cli_client_machine(&c)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "agent_id", resp->agent_id);
        cJSON_AddNumberToObject(o, "events", (double)resp->events);
        cJSON_AddStringToObject(o, "state", cli_print_state_name(resp->state));
        cli_client_emit(&c, o, NULL);
    } else {
        printf("agent %s imported: %" PRIu64 " events, state %s\n", resp->agent_id, resp->events,
               cli_print_state_name(resp->state));
    }
out:
    cli_client_close(&c);
    return rc;
}
