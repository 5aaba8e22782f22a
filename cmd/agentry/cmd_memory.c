/* cmd/agentry/cmd_memory.c - 'agentry memory ls|get AGENT_ID ...': read an agent's durable memory
 * (ListMemory, GetMemory), what its memory_* tools stored. ls prints a table (NAMESPACE KEY
 * BYTES VECTOR UPDATED VALUE, the value cut to one short line) or JSON; get prints the whole
 * value as it is (or the entry as JSON). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"
#include "common/utf8.h"
#include "common/xalloc.h"

#define LS_VALUE_MAX 60 /* bytes of a value shown in the table */

static const struct ag_cmd_help ls_help = {
    "agentry memory ls [flags] AGENT_ID",
    "List the entries of an agent's memory in (namespace, key) order: NAMESPACE KEY BYTES VECTOR "
    "UPDATED VALUE, the value cut to its first line. Every memory namespace unless --namespace "
    "names one; --prefix keeps the keys that start with it. Shows one page of --limit entries; "
    "--all follows the pages to the end. A killed agent's memory is still listed.",
    "agentry memory ls 01jd5x8k2m4n6p8q\nagentry memory ls --namespace notes --prefix user/ "
    "01jd5x8k2m4n6p8q\nagentry memory ls --all --json 01jd5x8k2m4n6p8q | jq -r '.entries[].key'",
};

static const struct ag_cmd_help get_help = {
    "agentry memory get [flags] AGENT_ID KEY",
    "Print the value an agent's memory holds under KEY (in --namespace, default 'default'), as "
    "it is; --json prints the whole entry. Exit 1 when there is no such key.",
    "agentry memory get 01jd5x8k2m4n6p8q user/name\nagentry memory get --namespace notes --json "
    "01jd5x8k2m4n6p8q todo",
};

static cJSON *entry_json(const Agentry__V1__MemoryEntry *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "namespace", e->namespace_);
    cJSON_AddStringToObject(o, "key", e->key);
    cJSON_AddStringToObject(o, "value", e->value);
    char t[24];
    snprintf(t, sizeof(t), "%" PRId64, e->updated_unix_nano);
    cJSON_AddRawToObject(o, "updated_unix_nano", t);
    cJSON_AddBoolToObject(o, "has_vector", e->has_vector);
    cJSON_AddNumberToObject(o, "dimensions", e->dimensions);
    return o;
}

/* The table's VALUE cell: the first line, cut on a character boundary, "..." when cut. */
static void value_cell(char *buf, size_t cap, const char *v)
{
    size_t n = strcspn(v, "\r\n\t");
    size_t keep = n > LS_VALUE_MAX ? ag_utf8_prefix(v, LS_VALUE_MAX) : n;
    snprintf(buf, cap, "%.*s%s", (int)keep, v, keep < strlen(v) ? "..." : "");
}

static void print_table(Agentry__V1__MemoryEntry *const *ents, size_t n, int64_t now_ns)
{
    static const char *const head[] = {"NAMESPACE", "KEY", "BYTES", "VECTOR", "UPDATED", "VALUE"};
    enum { NC = 6, W = 600 };
    char(*buf)[W] = ag_xcalloc(n ? n * NC : 1, W);
    char **cells = ag_xcalloc(n ? n * NC : 1, sizeof(*cells));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__MemoryEntry *e = ents[i];
        char(*row)[W] = buf + i * NC;
        snprintf(row[0], W, "%s", e->namespace_);
        snprintf(row[1], W, "%s", e->key);
        snprintf(row[2], W, "%zu", strlen(e->value));
        if (e->has_vector)
            snprintf(row[3], W, "%u", e->dimensions);
        else
            snprintf(row[3], W, "-");
        cli_print_age(row[4], W, now_ns - e->updated_unix_nano);
        value_cell(row[5], W, e->value);
        for (int c = 0; c < NC; c++)
            cells[i * NC + c] = row[c];
    }
    cli_print_table(stdout, head, NC, cells, n);
    free(cells);
    free(buf);
}

static int memory_ls(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *ns = "", *prefix = "";
    int64_t limit = 100;
    bool all = false;
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"namespace", 0, AG_FLAG_STR, &ns, "NS", "only this memory namespace (default: all)", 0, 0},
        {"prefix", 0, AG_FLAG_STR, &prefix, "P", "only keys that start with P", 0, 0},
        {"limit", 0, AG_FLAG_INT, &limit, "N", "entries per page (default 100)", 1, 1000},
        {"all", 'a', AG_FLAG_BOOL, &all, NULL, "follow the pages to the last entry", 0, 0},
    };
    size_t nflags = 4;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    Agentry__V1__ListMemoryRequest req = AGENTRY__V1__LIST_MEMORY_REQUEST__INIT;
    int rc;
    if (!cli_parse_agent_id(&c, "memory ls", &ls_help, flags, nflags, argc, argv, &req.agent_id,
                            &rc))
        return rc;
    req.namespace_ = (char *)ns;
    req.prefix = (char *)prefix;
    req.page_size = (uint32_t)limit;
    Agentry__V1__MemoryEntry **ents = NULL;
    size_t n = 0;
    const char *next = "";
    struct ag_err err = AG_ERR_INIT;
    rc = CLI_OK;
    do {
        Agentry__V1__ListMemoryResponse *page = NULL;
        if (cli_client_call(&c, CLI_HUB_METHOD("ListMemory"), &req.base,
                            &agentry__v1__list_memory_response__descriptor, (void **)&page,
                            &err) < 0) {
            rc = cli_fail(&err);
            break;
        }
        Agentry__V1__MemoryEntry **more = ag_arena_alloc(&c.arena,
                                                         (n + page->n_entries + 1) * sizeof(*more));
        if (n)
            memcpy(more, ents, n * sizeof(*more));
        if (page->n_entries)
            memcpy(more + n, page->entries, page->n_entries * sizeof(*more));
        ents = more;
        n += page->n_entries;
        next = page->next_page_token;
        req.page_token = (char *)next;
    } while (all && *next);
    if (rc == CLI_OK && cli_client_machine(&c)) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "entries");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, entry_json(ents[i]));
        cJSON_AddStringToObject(o, "next_page_token", next);
        cli_client_emit(&c, o, "entries");
    } else if (rc == CLI_OK && n == 0) {
        fprintf(stderr, "No memory entries found\n");
    } else if (rc == CLI_OK) {
        print_table(ents, n, ag_now_unix_ns());
        if (*next)
            fprintf(stderr, "(more entries: use --all, or a larger --limit)\n");
    }
    cli_client_close(&c);
    return rc;
}

static int memory_get(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *ns = "";
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"namespace", 0, AG_FLAG_STR, &ns, "NS", "the memory namespace (default 'default')", 0, 0},
    };
    size_t nflags = 1, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *pos[2] = {NULL, NULL};
    int rc;
    if (!cli_client_parse(&c, "memory get", &get_help, flags, nflags, argc, argv, pos, 2, &npos,
                          &rc) ||
        !cli_need_args("memory get", pos, npos, 2, "AGENT_ID and KEY", &rc))
        return rc;
    Agentry__V1__GetMemoryRequest req = AGENTRY__V1__GET_MEMORY_REQUEST__INIT;
    req.agent_id = pos[0];
    req.key = pos[1];
    req.namespace_ = (char *)ns;
    Agentry__V1__MemoryEntry *e = NULL;
    struct ag_err err = AG_ERR_INIT;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("GetMemory"), &req.base,
                        &agentry__v1__memory_entry__descriptor, (void **)&e, &err) < 0)
        rc = cli_fail(&err);
    else if (cli_client_machine(&c))
        cli_client_emit(&c, entry_json(e), NULL);
    else
        printf("%s\n", e->value);
    cli_client_close(&c);
    return rc;
}

int cli_cmd_memory(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "ls") == 0)
        return memory_ls(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "get") == 0)
        return memory_get(argc - 1, argv + 1);
    bool help = argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0);
    fprintf(help ? stdout : stderr, "usage: agentry memory ls|get [flags] AGENT_ID ...\n\n"
                                    "  ls   list the entries of an agent's memory\n"
                                    "  get  print the value under one key\n\n"
                                    "Run 'agentry memory ls --help' for a subcommand's flags.\n");
    return help ? CLI_OK : CLI_USAGE;
}
