/* cmd/agentry/cmd_approval.c - human approval of tool calls: 'agentry approvals' lists the calls
 * waiting for a decision (ListApprovals), 'agentry approve AGENT_ID CALL_ID' runs one, as asked
 * or with --edit-args (ApproveCall), and 'agentry deny AGENT_ID CALL_ID --reason TEXT' refuses
 * one (DenyCall).
 *
 * Deciding is idempotent on the hub: deciding a call the same way again answers with the first
 * decision's seq and `already`, which is printed as kill prints an earlier kill (the seq on
 * stdout, a note on stderr), so a script reading the seq works either way. What the CLI can
 * check itself it checks before anything is sent (exit 2): --edit-args must be a JSON object
 * and deny must say why, since the model reads the reason in the call's error result. */
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

#define CELL_MAX 48 /* bytes of the arguments or the reason shown in the table */

static const struct ag_cmd_help approvals_help = {
    "agentry approvals [flags]",
    "List the tool calls waiting for a human decision (a permission rule said 'ask'), oldest "
    "first: [NAMESPACE] AGENT CALL TOOL ARGS REASON AGE EXPIRES_IN, the arguments and the "
    "reason cut to one short line (--json has them whole). Every namespace you may see, unless "
    "-n (or $AGENTRY_NAMESPACE) names one; --agent keeps one agent's calls. Decide each with "
    "'agentry approve' or 'agentry deny'; one left undecided is denied when it expires.",
    "agentry approvals\nagentry approvals -n team-a --agent 01jd5x8k2m4n6p8q\n"
    "agentry approvals --json | jq -r '.approvals[] | .agent_id + \" \" + .call_id'",
};

static const struct ag_cmd_help approve_help = {
    "agentry approve [flags] AGENT_ID CALL_ID",
    "Run a tool call that waits for approval (see 'agentry approvals'): the agent's turn goes "
    "on and the call runs once, as the model asked or with --edit-args instead (the "
    "conversation then shows those). Prints the seq of the stored decision. Approving a call "
    "already approved changes nothing: approve says so and prints the first decision's seq. A "
    "call already denied or expired cannot be approved (exit 1).",
    "agentry approve 01jd5x8k2m4n6p8q call_1\n"
    "agentry approve --edit-args '{\"command\":\"git push --dry-run\"}' --reason 'dry run first' "
    "01jd5x8k2m4n6p8q call_2",
};

static const struct ag_cmd_help deny_help = {
    "agentry deny [flags] AGENT_ID CALL_ID --reason TEXT",
    "Refuse a tool call that waits for approval (see 'agentry approvals'): the call does not "
    "run, the model gets an error result saying who denied it and why, and the turn goes on. "
    "--reason is required. Prints the seq of the stored decision. Denying a call already denied "
    "changes nothing: deny says so and prints the first decision's seq. A call already approved "
    "cannot be denied (exit 1).",
    "agentry deny --reason 'no pushes on Fridays' 01jd5x8k2m4n6p8q call_1",
};

/* --- approvals ------------------------------------------------------------------------------ */

/* A JSON member that holds a JSON object's text: embedded as the object it is, else as text. */
static void add_json_text(cJSON *o, const char *key, const char *text)
{
    cJSON *v = text && *text ? cJSON_Parse(text) : NULL;
    cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateString(text ? text : ""));
}

static cJSON *approval_json(const Agentry__V1__Approval *a)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", a->agent_id);
    cJSON_AddStringToObject(o, "namespace", a->namespace_);
    cJSON_AddStringToObject(o, "agent_name", a->agent_name);
    cJSON_AddStringToObject(o, "call_id", a->call_id);
    cJSON_AddStringToObject(o, "tool", a->tool);
    add_json_text(o, "arguments", a->arguments);
    cJSON_AddStringToObject(o, "reason", a->reason);
    cJSON_AddNumberToObject(o, "seq", (double)a->seq);
    cJSON_AddStringToObject(o, "requested_at",
                            cli_print_time(t, sizeof(t), a->requested_at_ms * 1000000));
    cJSON_AddStringToObject(o, "expires_at",
                            cli_print_time(t, sizeof(t), a->expires_at_ms * 1000000));
    return o;
}

/* A table cell: the first line of v, cut on a character boundary, "..." when cut. */
static void short_cell(char *buf, size_t cap, const char *v)
{
    size_t n = strcspn(v, "\r\n\t");
    size_t keep = n > CELL_MAX ? ag_utf8_prefix(v, CELL_MAX) : n;
    snprintf(buf, cap, "%.*s%s", (int)keep, v, keep < strlen(v) ? "..." : "");
}

enum { A_NS, A_AGENT, A_CALL, A_TOOL, A_ARGS, A_REASON, A_AGE, A_EXPIRES, A_NCOLS };

static void print_approvals(Agentry__V1__Approval *const *v, size_t n, bool show_ns)
{
    static const char *const head[A_NCOLS] = {"NAMESPACE", "AGENT",  "CALL", "TOOL",
                                              "ARGS",      "REASON", "AGE",  "EXPIRES_IN"};
    enum { W = 160 };
    int first = show_ns ? A_NS : A_AGENT, ncols = A_NCOLS - first;
    char(*buf)[W] = ag_xcalloc(n ? n * A_NCOLS : 1, W);
    char **cells = ag_xcalloc(n ? n * A_NCOLS : 1, sizeof(*cells));
    int64_t now_ms = ag_now_unix_ns() / 1000000;
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Approval *a = v[i];
        char(*row)[W] = buf + i * A_NCOLS;
        snprintf(row[A_NS], W, "%s", a->namespace_);
        snprintf(row[A_AGENT], W, "%s", a->agent_id);
        snprintf(row[A_CALL], W, "%s", a->call_id);
        snprintf(row[A_TOOL], W, "%s", a->tool);
        short_cell(row[A_ARGS], W, a->arguments);
        short_cell(row[A_REASON], W, a->reason);
        cli_print_age(row[A_AGE], W, (now_ms - a->requested_at_ms) * 1000000);
        cli_print_span(row[A_EXPIRES], W, a->expires_at_ms - now_ms);
        for (int c = first; c < A_NCOLS; c++)
            cells[i * (size_t)ncols + (size_t)(c - first)] = row[c];
    }
    cli_print_table(stdout, head + first, (size_t)ncols, cells, n);
    free(cells);
    free(buf);
}

int cli_cmd_approvals(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *ns = cli_default_namespace(), *agent = "";
    int64_t limit = 0;
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"namespace", 'n', AG_FLAG_STR, &ns, "NS",
         "only calls of this namespace's agents (default $AGENTRY_NAMESPACE, else every "
         "namespace you may see)",
         0, 0},
        {"agent", 0, AG_FLAG_STR, &agent, "AGENT_ID", "only this agent's calls", 0, 0},
        {"limit", 0, AG_FLAG_INT, &limit, "N", "at most N calls, oldest first (default 1000)", 1,
         1000},
    };
    size_t nflags = 3;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    size_t npos;
    int rc;
    if (!cli_client_parse(&c, "approvals", &approvals_help, flags, nflags, argc, argv, NULL, 0,
                          &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (cli_check_namespace(ns, &err) < 0)
        return cli_usage_error(&err);

    Agentry__V1__ListApprovalsRequest req = AGENTRY__V1__LIST_APPROVALS_REQUEST__INIT;
    req.namespace_ = (char *)ns;
    req.agent_id = (char *)agent;
    req.limit = (uint32_t)limit;
    Agentry__V1__ListApprovalsResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ListApprovals"), &req.base,
                        &agentry__v1__list_approvals_response__descriptor, (void **)&resp,
                        &err) < 0) {
        rc = cli_fail(&err);
    } else if (cli_client_machine(&c)) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "approvals");
        for (size_t i = 0; i < resp->n_approvals; i++)
            cJSON_AddItemToArray(arr, approval_json(resp->approvals[i]));
        cJSON_AddBoolToObject(o, "truncated", resp->truncated);
        cli_client_emit(&c, o, "approvals");
    } else if (resp->n_approvals == 0) {
        fprintf(stderr, "No approvals waiting\n");
    } else {
        print_approvals(resp->approvals, resp->n_approvals, !*ns);
        if (resp->truncated)
            fprintf(stderr, "(more calls wait: use a larger --limit, or --namespace/--agent)\n");
    }
    cli_client_close(&c);
    return rc;
}

/* --- approve and deny ----------------------------------------------------------------------- */

/* What approve and deny print: what happened, as send and kill say it (-o json for scripts:
 * agent_id, seq, call_id, already). */
static void print_decision(const struct cli_client *c, const char *agent_id, const char *call_id,
                           uint64_t seq, bool already, const char *verb)
{
    if (cli_client_machine(c)) {
        cJSON *o = cli_print_seq_json(agent_id, seq);
        cJSON_AddStringToObject(o, "call_id", call_id);
        cJSON_AddBoolToObject(o, "already", already);
        cli_client_emit(c, o, NULL);
        return;
    }
    if (already)
        printf("agent %s call %s was already %s (at seq %" PRIu64 "); nothing changed\n", agent_id,
               call_id, verb, seq);
    else
        printf("agent %s call %s %s at seq %" PRIu64 "\n", agent_id, call_id, verb, seq);
}

/* 0 if s is a JSON object's text; else -1 with err saying what --edit-args wants. */
static int check_edit_args(const char *s, struct ag_err *err)
{
    cJSON *v = cJSON_Parse(s);
    bool ok = cJSON_IsObject(v);
    cJSON_Delete(v);
    if (ok)
        return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "invalid value for --edit-args: want a JSON object, like "
                      "'{\"command\":\"ls\"}'");
}

int cli_cmd_approve(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *args = NULL, *reason = "";
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"edit-args", 0, AG_FLAG_STR, &args, "JSON",
         "run the call with these arguments (a JSON object) instead of the model's", 0, 0},
        {"reason", 0, AG_FLAG_STR, &reason, "TEXT", "why, recorded in the decision", 0, 0},
    };
    size_t nflags = 2;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *pos[2];
    size_t npos;
    int rc;
    if (!cli_client_parse(&c, "approve", &approve_help, flags, nflags, argc, argv, pos, 2, &npos,
                          &rc) ||
        !cli_need_args("approve", pos, npos, 2, "AGENT_ID and CALL_ID", &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (args && check_edit_args(args, &err) < 0)
        return cli_usage_error(&err);

    Agentry__V1__ApproveCallRequest req = AGENTRY__V1__APPROVE_CALL_REQUEST__INIT;
    req.agent_id = pos[0];
    req.call_id = pos[1];
    req.arguments = (char *)(args ? args : "");
    req.reason = (char *)reason;
    Agentry__V1__ApproveCallResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ApproveCall"), &req.base,
                        &agentry__v1__approve_call_response__descriptor, (void **)&resp, &err) < 0)
        rc = cli_fail(&err);
    else
        print_decision(&c, req.agent_id, req.call_id, resp->seq, resp->already, "approved");
    cli_client_close(&c);
    return rc;
}

int cli_cmd_deny(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *reason = "";
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"reason", 0, AG_FLAG_STR, &reason, "TEXT",
         "why (required): the model reads it in the call's error result", 0, 0},
    };
    size_t nflags = 1;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *pos[2];
    size_t npos;
    int rc;
    if (!cli_client_parse(&c, "deny", &deny_help, flags, nflags, argc, argv, pos, 2, &npos, &rc) ||
        !cli_need_args("deny", pos, npos, 2, "AGENT_ID and CALL_ID", &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (!*reason) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "deny needs --reason TEXT: the model reads it in the call's error result");
        return cli_usage_error(&err);
    }

    Agentry__V1__DenyCallRequest req = AGENTRY__V1__DENY_CALL_REQUEST__INIT;
    req.agent_id = pos[0];
    req.call_id = pos[1];
    req.reason = (char *)reason;
    Agentry__V1__DenyCallResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("DenyCall"), &req.base,
                        &agentry__v1__deny_call_response__descriptor, (void **)&resp, &err) < 0)
        rc = cli_fail(&err);
    else
        print_decision(&c, req.agent_id, req.call_id, resp->seq, resp->already, "denied");
    cli_client_close(&c);
    return rc;
}
