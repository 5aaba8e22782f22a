/* worker/tool.c - the tool table: each tool is a row here plus a file, worker/tool_<name>.c.
 * docs/tools.md lists every tool with its schema, settings and options. The file tools and shell
 * share worker/tool_internal.h (their work runs on the node's work pool, confined to the agent's
 * workspace). No state, no threads: safe to call from any thread. */
#include "worker/tool.h"

#include <string.h>

#include "worker/tool_rows.h"

const struct wk_tool wk_tools[] = {
    {
        .name = "echo",
        .description = "Returns the given text unchanged.",
        .schema_json = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                       "\"required\":[\"text\"]}",
        .idempotent = true,
        .run = wk_tool__echo_run,
        .check_config = wk_tool__echo_check_config,
    },
    {
        .name = "append",
        .description = "Appends the given text as one line to the node's file (append.path).",
        .schema_json = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                       "\"required\":[\"text\"]}",
        /* Twice is two lines: a call lost after it started gets "outcome unknown". */
        .idempotent = false,
        .run = wk_tool__append_run,
        .check_config = wk_tool__append_check_config,
    },
    {
        .name = "read_file",
        .description = "Reads a text file of the workspace (path relative to it).",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description"
            "\":\"file path, relative to the workspace\"},\"max_bytes\":{\"type\":\"integer\""
            ",\"description\":\"read at most this many bytes\"}},\"required\":[\"path\"]}",
        .idempotent = true,
        .run = wk_tool__read_file_run,
        .check_config = wk_tool__read_file_check_config,
        .subject = wk_tool__read_file_subject,
        .check_settings = wk_tool__read_file_check_settings,
    },
    {
        .name = "read_lines",
        .description = "Reads lines start..end (1-based, inclusive) of a workspace file, numbered.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description"
            "\":\"file path, relative to the workspace\"},\"start\":{\"type\":\"integer\",\"d"
            "escription\":\"first line, from 1 (default 1)\"},\"end\":{\"type\":\"integer\","
            "\"description\":\"last line, inclusive (default: the last)\"}},\"required\":[\"p"
            "ath\"]}",
        .idempotent = true,
        .run = wk_tool__read_lines_run,
        .check_config = wk_tool__read_lines_check_config,
        .subject = wk_tool__read_lines_subject,
        .check_settings = wk_tool__read_lines_check_settings,
    },
    {
        .name = "write_file",
        .description = "Creates or replaces a workspace file with the given content, creating "
                       "parent directories.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description"
            "\":\"file path, relative to the workspace\"},\"content\":{\"type\":\"string\",\""
            "description\":\"the whole new content\"}},\"required\":[\"path\",\"content\"]}",
        /* The same content twice leaves what once does. */
        .idempotent = true,
        .run = wk_tool__write_file_run,
        .check_config = wk_tool__write_file_check_config,
        .subject = wk_tool__write_file_subject,
        .check_settings = wk_tool__write_file_check_settings,
    },
    {
        .name = "edit_range",
        .description = "Replaces lines start..end of a workspace file with the replacement text "
                       "(end = start - 1 inserts).",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description"
            "\":\"file path, relative to the workspace\"},\"start\":{\"type\":\"integer\",\"d"
            "escription\":\"first line to replace, from 1\"},\"end\":{\"type\":\"integer\",\""
            "description\":\"last line to replace, inclusive; start - 1 to insert before star"
            "t\"},\"replacement\":{\"type\":\"string\",\"description\":\"the new lines; empty"
            " deletes the range\"}},\"required\":[\"path\",\"start\",\"end\",\"replacement\"]"
            "}",
        /* Twice replaces what the first call put there: a lost call gets "outcome unknown". */
        .idempotent = false,
        .run = wk_tool__edit_range_run,
        .check_config = wk_tool__edit_range_check_config,
        .subject = wk_tool__edit_range_subject,
        .check_settings = wk_tool__edit_range_check_settings,
    },
    {
        .name = "list_dir",
        .description = "Lists a workspace directory: type, size and name of each entry, sorted.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description"
            "\":\"directory path, relative to the workspace (default \\\".\\\")\"}},\"require"
            "d\":[]}",
        .idempotent = true,
        .run = wk_tool__list_dir_run,
        .check_config = wk_tool__list_dir_check_config,
        .subject = wk_tool__list_dir_subject,
        .check_settings = wk_tool__list_dir_check_settings,
    },
    {
        .name = "search_files",
        .description = "Searches workspace files for lines matching a POSIX extended regex (or a "
                       "literal string); prints path:line:text.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\",\"descript"
            "ion\":\"POSIX extended regular expression, or a plain string with literal\"},\"p"
            "ath\":{\"type\":\"string\",\"description\":\"file or directory to search, relati"
            "ve to the workspace (default \\\".\\\")\"},\"glob\":{\"type\":\"string\",\"descr"
            "iption\":\"only files whose name matches this glob, e.g. \\\"*.c\\\"\"},\"litera"
            "l\":{\"type\":\"boolean\",\"description\":\"match pattern as a plain substring\""
            "}},\"required\":[\"pattern\"]}",
        .idempotent = true,
        .run = wk_tool__search_files_run,
        .check_config = wk_tool__search_files_check_config,
        .subject = wk_tool__search_files_subject,
        .check_settings = wk_tool__search_files_check_settings,
    },
    {
        .name = "shell",
        .description =
            "Runs a command with /bin/sh -c in the workspace; returns its output and exit status.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"descript"
            "ion\":\"the shell command line\"}},\"required\":[\"command\"]}",
        /* A command may do anything, twice. */
        .idempotent = false,
        .run = wk_tool__shell_run,
        .check_config = wk_tool__shell_check_config,
        .subject = wk_tool__shell_subject,
        .check_settings = wk_tool__shell_check_settings,
    },
    {
        .name = "http_request",
        .description = "Makes one HTTP request and returns the status, a few headers and the "
                       "body as text; redirects are returned, not followed.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{"
            "\"method\":{\"type\":\"string\",\"description\":\"GET (default), POST, PUT, "
            "PATCH, DELETE, HEAD...\"},"
            "\"url\":{\"type\":\"string\",\"description\":\"an http:// or https:// URL\"},"
            "\"headers\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
            "\"string\"}},"
            "\"body\":{\"type\":\"string\"}},\"required\":[\"url\"]}",
        /* A POST may have acted: a call lost after it started gets "outcome unknown". */
        .idempotent = false,
        .run = wk_tool__http_request_run,
        .check_config = wk_tool__http_request_check_config,
        .subject = wk_tool__http_request_subject,
        .check_settings = wk_tool__http_request_check_settings,
    },
    /* The team tools run on the hub (worker/tool_hub.c, hub/team.c; docs/teams.md). */
    {
        .name = "spawn_agent",
        .description = "Starts a sub-agent with the given input, from one of this agent's "
                       "templates or from this agent's own spec with the given overrides; "
                       "returns its agent_id at once (wait_agent gets its answer).",
        .schema_json = "{\"type\":\"object\",\"properties\":{"
                       "\"input\":{\"type\":\"string\",\"description\":\"the sub-agent's task\"},"
                       "\"template\":{\"type\":\"string\",\"description\":\"a template of this "
                       "agent's spec\"},"
                       "\"name\":{\"type\":\"string\"},\"system_prompt\":{\"type\":\"string\"},"
                       "\"model\":{\"type\":\"string\"},"
                       "\"tools\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
                       "\"description\":\"a subset of this agent's tools\"},"
                       "\"labels\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
                       "\"string\"}}},\"required\":[\"input\"]}",
        /* The hub spawns with the request id <agent>/<call id>: a replay finds the child. */
        .idempotent = true,
        .run = wk_tool__hub_run,
    },
    {
        .name = "send_agent",
        .description = "Sends a message to one of this agent's sub-agents, which starts its "
                       "next turn with it.",
        .schema_json = "{\"type\":\"object\",\"properties\":{"
                       "\"agent_id\":{\"type\":\"string\"},\"text\":{\"type\":\"string\"}},"
                       "\"required\":[\"agent_id\",\"text\"]}",
        /* Twice is two messages: a call lost after it started gets "outcome unknown". */
        .idempotent = false,
        .run = wk_tool__hub_run,
    },
    {
        .name = "wait_agent",
        .description = "Waits until the given sub-agents have finished their current work and "
                       "returns their answers; the agent holds no resources while it waits.",
        .schema_json = "{\"type\":\"object\",\"properties\":{"
                       "\"agents\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
                       "\"description\":\"sub-agent ids (spawn_agent's agent_id)\"}},"
                       "\"required\":[\"agents\"]}",
        .idempotent = true,
        .run = wk_tool__hub_run,
    },
    {
        .name = "memory_put",
        .description = "Stores a value under a key in the agent's durable memory (replacing any "
                       "value there); with an embedding model, memory_search can find it.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{"
            "\"namespace\":{\"type\":\"string\",\"description\":\"memory namespace (default "
            "\\\"default\\\")\"},"
            "\"key\":{\"type\":\"string\",\"description\":\"1 to 512 bytes\"},"
            "\"value\":{\"type\":\"string\",\"description\":\"text, at most 64 KiB\"}},"
            "\"required\":[\"key\",\"value\"]}",
        /* The same value put twice is stored once. */
        .idempotent = true,
        .run = wk_tool__memory_put_run,
    },
    {
        .name = "memory_get",
        .description = "Reads the value stored under a key in the agent's memory.",
        .schema_json = "{\"type\":\"object\",\"properties\":{"
                       "\"namespace\":{\"type\":\"string\",\"description\":\"memory namespace "
                       "(default \\\"default\\\")\"},"
                       "\"key\":{\"type\":\"string\"}},\"required\":[\"key\"]}",
        .idempotent = true,
        .run = wk_tool__hub_run,
    },
    {
        .name = "memory_list",
        .description = "Lists keys of the agent's memory in key order, with a preview of each "
                       "value; page with \"after\".",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{"
            "\"namespace\":{\"type\":\"string\",\"description\":\"memory namespace (default "
            "\\\"default\\\")\"},"
            "\"prefix\":{\"type\":\"string\",\"description\":\"only keys starting with this\"},"
            "\"limit\":{\"type\":\"integer\",\"description\":\"1 to 100 (default 20)\"},"
            "\"after\":{\"type\":\"string\",\"description\":\"the next_after of the previous "
            "page\"}},\"required\":[]}",
        .idempotent = true,
        .run = wk_tool__hub_run,
    },
    {
        .name = "memory_delete",
        .description = "Deletes a key from the agent's memory (nothing happens if it is absent).",
        .schema_json = "{\"type\":\"object\",\"properties\":{"
                       "\"namespace\":{\"type\":\"string\",\"description\":\"memory namespace "
                       "(default \\\"default\\\")\"},"
                       "\"key\":{\"type\":\"string\"}},\"required\":[\"key\"]}",
        /* Deleting twice deletes once. */
        .idempotent = true,
        .run = wk_tool__hub_run,
    },
    {
        .name = "memory_search",
        .description = "Finds the entries of the agent's memory whose values are most similar "
                       "in meaning to the query (cosine of embeddings), best first.",
        .schema_json =
            "{\"type\":\"object\",\"properties\":{"
            "\"query\":{\"type\":\"string\",\"description\":\"what to look for\"},"
            "\"namespace\":{\"type\":\"string\",\"description\":\"memory namespace (default "
            "\\\"default\\\")\"},"
            "\"k\":{\"type\":\"integer\",\"description\":\"results, 1 to 50 (default 5)\"},"
            "\"min_score\":{\"type\":\"number\",\"description\":\"only results scoring at "
            "least this (-1 to 1)\"}},\"required\":[\"query\"]}",
        .idempotent = true,
        .run = wk_tool__memory_search_run,
        .check_config = wk_tool__memory_search_check_config,
        .check_settings = wk_tool__memory_search_check_settings,
    },
    {.name = NULL},
};

const struct wk_tool *wk_tool_find(const char *name)
{
    if (!name)
        return NULL;
    for (const struct wk_tool *t = wk_tools; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}
