/* cmd/agentry/print.h - how the CLI shows agents and events: human-readable lines and tables, or
 * a machine format (-o json|yaml|jsonl) rendered from the same cJSON trees.
 *
 * Names of states and event kinds drop their enum prefix and are lowercase ("idle",
 * "model_reply"), in both renderings. JSON mirrors the protobuf messages with their field names;
 * times are RFC 3339 UTC strings ("created_at", "updated_at", "time") because an int64 of Unix
 * nanoseconds does not survive a JSON number; an event's payload is embedded as the JSON object it
 * is. Human output never lets a control character from the hub reach the terminal. */
#ifndef AGENTRY_CMD_PRINT_H
#define AGENTRY_CMD_PRINT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/err.h"

/* "pending", "idle", ...; "unknown" for a value this CLI does not know. */
/* "10s" or "250ms". */
const char *cli_print_duration(char *buf, size_t cap, int64_t ms);
const char *cli_print_state_name(Agentry__V1__AgentState s);
/* "input", "model_reply", ...; "unknown" likewise. */
const char *cli_print_kind_name(Agentry__V1__EventKind k);
/* "idle", "IDLE" or "AGENT_STATE_IDLE" -> the state; -1 with INVALID_ARGUMENT if unknown. */
int cli_print_state_parse(const char *s, Agentry__V1__AgentState *out, struct ag_err *err);

/* "2026-11-25T10:00:00.123Z" (UTC, milliseconds); buf needs 32 bytes. */
const char *cli_print_time(char *buf, size_t cap, int64_t unix_ns);
/* "45s", "12m", "5h", "3d". */
const char *cli_print_age(char *buf, size_t cap, int64_t age_ns);
/* A time still to go, to the minute where it matters: "45s", "4m10s", "23h59m", "3d2h" ("0s"
 * for none left). */
const char *cli_print_span(char *buf, size_t cap, int64_t ms);

/* The spec's JSON form (agentry_json_spec) with its placement fields too: "scheduler",
 * "resources": {"cpu_milli", "memory_bytes"}, "node_selector", "anti_affinity", "priority". */
cJSON *cli_print_spec_json(const Agentry__V1__AgentSpec *spec);
cJSON *cli_print_agent_json(const Agentry__V1__Agent *a);
cJSON *cli_print_event_json(const Agentry__V1__TraceEvent *ev);
/* {"agent_id": ..., "seq": ...}: the start of what send and kill print with --json. */
cJSON *cli_print_seq_json(const char *agent_id, uint64_t seq);
/* Print v followed by a newline (indented, or on one line if compact) and delete v. */
void cli_print_json(FILE *out, cJSON *v, bool compact);

/* -o: how a command prints. TABLE is the human form; WIDE adds columns where a command has
 * more to show; the others are for programs. */
enum cli_format {
    CLI_FORMAT_TABLE,
    CLI_FORMAT_WIDE,
    CLI_FORMAT_JSON,
    CLI_FORMAT_YAML,
    CLI_FORMAT_JSONL
};
/* "table", "wide", "json", "yaml" or "jsonl"; -1 with INVALID_ARGUMENT naming them otherwise. */
int cli_print_format_parse(const char *s, enum cli_format *out, struct ag_err *err);
/* Print v in a machine format and delete it. json: v on one line. yaml: v as one YAML document
 * (starting with "---", so that several make a stream). jsonl: one line per element of v's
 * array member `items` (of v itself if it is an array, or v on one line when items is NULL).
 * A table format prints json. Strings that YAML would read as another type are quoted. */
void cli_print_out(FILE *out, enum cli_format f, cJSON *v, const char *items);

/* Colour (SGR parameters such as "31") for a state or an event kind; NULL for none. */
const char *cli_print_state_color(Agentry__V1__AgentState s);
const char *cli_print_kind_color(Agentry__V1__EventKind k);
/* Print s between "ESC[<sgr>m" and "ESC[0m" when sgr is set, else s alone; s is cleaned of
 * control characters as every human line is. */
void cli_print_colored(FILE *out, const char *sgr, const char *s);
/* "HH:MM:SS.mmm" in local time, with "YYYY-MM-DD " before it when the day is not now_ns's. */
const char *cli_print_clock(char *buf, size_t cap, int64_t unix_ns, int64_t now_ns);

/* "key: value" lines. */
void cli_print_agent(FILE *out, const Agentry__V1__Agent *a, int64_t now_ns);
/* "#seq  [date ]HH:MM:SS.mmm  kind" (local time; cli_print_clock), the kind coloured when color
 * and padded to a column: the head of every trace line. */
void cli_print_event_head(FILE *out, const Agentry__V1__TraceEvent *ev, bool color);
/* The head, then "node=...  payload". */
void cli_print_event(FILE *out, const Agentry__V1__TraceEvent *ev, bool color);
/* A table with a header row: columns as wide as their widest cell, two spaces apart (at most 16
 * columns; cells row-major, nrows * ncols of them). */
void cli_print_table(FILE *out, const char *const *head, size_t ncols, char *const *cells,
                     size_t nrows);
/* The same, each cell coloured by sgr (row-major like cells; NULL, or a NULL entry: plain).
 * Widths count the text only. */
void cli_print_table_sgr(FILE *out, const char *const *head, size_t ncols, char *const *cells,
                         const char *const *sgr, size_t nrows);

/* How the agents and nodes tables look: NAMESPACE shown, the wide columns, colour. */
struct cli_print_style {
    bool show_ns, wide, color;
};
/* The table [NAMESPACE] ID NAME STATE NODE SEQ AGE, with a header row; NAMESPACE if show_ns;
 * wide adds MODEL PARENT LABELS UPDATED. */
void cli_print_agents(FILE *out, Agentry__V1__Agent *const *agents, size_t n, int64_t now_ns,
                      const struct cli_print_style *st);
/* The table NODE STATE RUNNING LABELS VERSION AGE, with a header row; wide adds ADDRESS
 * MODELS TOOLS. */
void cli_print_nodes(FILE *out, Agentry__V1__Node *const *nodes, size_t n, int64_t now_ns,
                     const struct cli_print_style *st);
cJSON *cli_print_node_json(const Agentry__V1__Node *n);

#endif
