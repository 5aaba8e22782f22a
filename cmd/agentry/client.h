/* cmd/agentry/client.h - what every client subcommand (spawn, send, invoke, trace, ps, get, kill,
 * bench) shares: the --hub/--timeout/-o/--json/--color flags, the agent-spec flags of spawn and
 * invoke, argument checks, dialing the hub, calling it, and the one place where a transport
 * error is put in words a user can act on.
 *
 * A subcommand's life: cli_client_init, add its flag rows and the shared ones to one table,
 * cli_client_parse (every check that needs no hub: a bad value is exit 2 before anything is
 * sent), calls (the first one dials), cli_client_close. Responses are decoded into c->arena and
 * live until cli_client_close. Thread: the subcommand's main thread. */
#ifndef AGENTRY_CMD_CLIENT_H
#define AGENTRY_CMD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentry/v1/hub.pb-c.h"
#include "cmd/agentry/print.h"
#include "cmd/agentry/tls_flags.h"
#include "common/arena.h"
#include "common/err.h"
#include "common/flags.h"
#include "common/rpc/client.h"

#define CLI_HUB_METHOD(m) ("/agentry.v1.AgentHub/" m)
#define CLI_TIMEOUT_DEFAULT_MS 10000
/* After --timeout cut a connect short: how long to go on waiting, only to tell "cannot reach hub"
 * from "the deadline was too short" (nothing is sent meanwhile). */
#define CLI_PROBE_TIMEOUT_MS 2000
/* After a Spawn or Invoke deadline: the deadline of the ListAgents call asking what happened. */
#define CLI_FOLLOWUP_TIMEOUT_MS 5000
/* Request ids the CLI makes up when --request-id is not given, so an operator can tell them. */
#define CLI_REQUEST_ID_PREFIX "cli-"
#define CLI_MAX_FLAGS 40 /* rows in one subcommand's table, shared rows included */

struct cli_client {
    const char *hub;        /* --hub; borrowed from argv or the environment */
    int64_t timeout_ms;     /* --timeout; 0 means no deadline */
    bool json;              /* --json: the same as -o json */
    const char *output;     /* -o/--output: table, wide, json, yaml or jsonl */
    const char *color;      /* --color: auto (a terminal without $NO_COLOR), always or never */
    char timeout_help[96];  /* the --timeout help line, which states this command's default */
    struct rpc_channel *ch; /* owned once dialed */
    bool grpc_up;           /* rpc_client_init was called */
    struct ag_arena arena;  /* decoded responses */
    struct cli_tls tls;     /* --tls-dir, --ca, --cert, --key ($AGENTRY_TLS_DIR) */
    const char *token;      /* --token or $AGENTRY_TOKEN: a bearer token instead of a certificate */
};

void cli_client_init(struct cli_client *c, int64_t default_timeout_ms);
/* Append the --hub, --timeout, -o, --json, --color and TLS rows to flags[*n] (cap rows in all).
 * A command whose own rows already have an --output (export's FILE) keeps it, without -o. */
void cli_client_flags(struct cli_client *c, struct ag_flag *flags, size_t *n, size_t cap);
/* cli_parse, then the checks of the shared flags that need no hub: each --hub address is
 * host:port (not a URL), -o and --color name a known value. */
bool cli_client_parse(struct cli_client *c, const char *cmd, const struct ag_cmd_help *help,
                      const struct ag_flag *flags, size_t nflags, int argc, char **argv, char **pos,
                      size_t max_pos, size_t *npos, int *rc);
/* 0 if every address of a --hub list is host:port (or one of grpc's schemes: unix:PATH, ...);
 * else -1 with INVALID_ARGUMENT saying what is wanted ("not a URL" for http://...). */
int cli_check_hub(const char *hub, struct ag_err *err);
/* The output format: json if --json, else -o's (table by default). */
enum cli_format cli_client_format(const struct cli_client *c);
/* True for -o json, yaml or jsonl. */
bool cli_client_machine(const struct cli_client *c);
/* Colour on stdout? --color always/never, else only a terminal, and never with $NO_COLOR set
 * (no-color.org). */
bool cli_client_color(const struct cli_client *c);
/* Print v in the machine format c asks for (cli_print_out) and delete it. */
void cli_client_emit(const struct cli_client *c, cJSON *v, const char *items);
/* Connect lazily to c->hub; a no-op once connected. Fails only on a malformed address. The call
 * helpers below dial themselves; a streaming call dials first. */
int cli_client_dial(struct cli_client *c, struct ag_err *err);
/* A new channel to addr with the command's TLS flags (bench opens several). NULL with err for a
 * malformed address or TLS files that do not load. */
struct rpc_channel *cli_client_channel(struct cli_client *c, const char *addr, struct ag_err *err);
/* A blocking unary call to the hub with c->timeout_ms; *resp lives in c->arena. When the
 * deadline passes before the connection is up, nothing was sent: err is then "cannot reach hub
 * at ..." (AG_UNAVAILABLE) if a short further wait shows the hub cannot be reached, else "could
 * not connect to hub at '<hub>' within 1ms (see --timeout); nothing was sent"
 * (AG_DEADLINE_EXCEEDED). A deadline after the request went out is explained as by
 * cli_client_explain_deadline. */
int cli_client_call(struct cli_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, void **resp, struct ag_err *err);
/* cli_client_call, also telling whether the request may have reached the hub (*sent false:
 * certainly not; see rpc_unary_sent). For calls with effects: Spawn, Invoke. */
int cli_client_call_sent(struct cli_client *c, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, void **resp, bool *sent,
                         struct ag_err *err);
/* Put a transport error in words a user can act on, naming what to check, the original text in
 * a "(detail: ...)" tail: grpc's bare "Deadline Exceeded" becomes "no answer from hub at '<hub>'
 * within 10s (see --timeout)"; "Received http2 header with status: 404" becomes "the server at
 * '<hub>' is not an agentry hub (it answered HTTP 404): check --hub"; and likewise an HTTP/1
 * server, a refused connection, a TLS handshake or a connection that broke. The hub's own
 * messages pass as they are. cli_client_call does this already; streams call it. */
void cli_client_explain(const struct cli_client *c, struct ag_err *err);
/* Free the channel and the arena and shut gRPC down (only if it was started). */
void cli_client_close(struct cli_client *c);

/* Parse argv for `cmd`. Returns true to go on; false with *rc set to the exit code when the
 * command is done: CLI_OK after printing --help, CLI_USAGE after printing the error. */
bool cli_parse(const char *cmd, const struct ag_cmd_help *help, const struct ag_flag *flags,
               size_t nflags, int argc, char **argv, char **pos, size_t max_pos, size_t *npos,
               int *rc);
/* cli_client_parse for a command whose one argument is AGENT_ID (get, kill, trace): false with
 * *rc set as cli_parse does, also when AGENT_ID is missing or empty. */
bool cli_parse_agent_id(struct cli_client *c, const char *cmd, const struct ag_cmd_help *help,
                        const struct ag_flag *flags, size_t nflags, int argc, char **argv,
                        char **agent_id, int *rc);
/* True if npos >= need and none of the first `need` arguments is empty; else prints "error:
 * missing WHAT (see 'agentry CMD --help')" (or "empty ...") and returns false with *rc =
 * CLI_USAGE. */
bool cli_need_args(const char *cmd, char *const *pos, size_t npos, size_t need, const char *what,
                   int *rc);
/* "-" as an argument or a file: all of stdin into *out (in arena), its trailing newlines cut.
 * -1 with err if stdin cannot be read or holds more than CLI_STDIN_MAX bytes. */
#define CLI_STDIN_MAX (16 << 20)
int cli_read_stdin(struct ag_arena *arena, char **out, struct ag_err *err);
/* The words joined by single spaces, in arena. */
char *cli_join_words(struct ag_arena *arena, char **words, size_t n);

/* The body of a command built on the spec flags (spawn, invoke): spec and input (the INPUT words
 * joined, "" without them) live in c->arena; ns is the checked -n/--namespace ("": the hub's
 * default); request_id is never empty. */
typedef int cli_spec_run_fn(struct cli_client *c, Agentry__V1__AgentSpec *spec, char *input,
                            char *ns, char *request_id);
/* Parse the spec and client flags (--help included), require INPUT words when need_input, make
 * up a request id if none was given, build the spec, then run; returns the exit code. */
int cli_spec_cmd(const char *cmd, const struct ag_cmd_help *help, int64_t timeout_ms,
                 bool need_input, cli_spec_run_fn *run, int argc, char **argv);
/* Dial and make a Spawn or Invoke call carrying request id rid in namespace ns. 0 with *resp set; else the
 * exit code, the error printed. When the deadline passes, it finds out what happened (below)
 * and says it in one line (see client.c, report_deadline); `what` is what the deadline cut
 * short ("the turn did not end"), NULL for "no answer from hub at '<hub>'". */
int cli_spec_call(struct cli_client *c, const char *method, const ProtobufCMessage *req,
                  const char *ns, const char *rid, const ProtobufCMessageDescriptor *resp_desc,
                  void **resp, const char *what);

/* The exit code of a command ended by Ctrl-C (128 + SIGINT, as a shell reports it); main.c
 * makes it the default for every command, and those that catch the signal return it. */
#define CLI_INTERRUPTED 130

/* Ctrl-C handling for long calls: block SIGINT/SIGTERM (call before cli_client_dial so gRPC's
 * threads inherit the mask) and run on_signal(arg) (may be NULL) on a watcher thread when one
 * arrives. cli_sigwatch_stop joins the thread; on_signal is never called after it returns. */
struct cli_sigwatch;
struct cli_sigwatch *cli_sigwatch_start(void (*on_signal)(void *arg), void *arg);
/* True if a signal arrived. A second signal exits the process at once (status 130). */
bool cli_sigwatch_fired(struct cli_sigwatch *w);
/* After cli_sigwatch_fired: the exit code it asks for, 128 + the signal (130 for Ctrl-C). */
int cli_sigwatch_exit_code(struct cli_sigwatch *w);
/* Wait ms milliseconds, or less if a signal arrives: true if one did. */
bool cli_sigwatch_sleep(struct cli_sigwatch *w, int64_t ms);
void cli_sigwatch_stop(struct cli_sigwatch *w);

#endif
