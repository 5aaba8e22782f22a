/* cmd/agentry/print.c - human and JSON renderings of agents and events (see print.h). */
#include "cmd/agentry/print.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agentry/v1/json.h"
#include "common/clock.h"
#include "common/xalloc.h"

/* Indexed by enum value; the protobuf enums are dense from 0. */
static const char *const state_names[] = {"unspecified", "pending", "running", "idle",
                                          "yielded",     "failed",  "killed"};
static const char *const kind_names[] = {
    "unspecified",
    "spawned",
    "input",
    "assigned",
    "model_request",
    "model_reply",
    "tool_call",
    "tool_result",
    "final",
    "yield",
    "error",
    "killed",
    "interrupted",
    "resumed",
    "model_delta",
    "waiting",
    "child",
    "approval_required",
    "approval_decided",
};

const char *cli_print_duration(char *buf, size_t cap, int64_t ms)
{
    if (ms % 1000 != 0)
        snprintf(buf, cap, "%lldms", (long long)ms);
    else
        snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    return buf;
}

const char *cli_print_state_name(Agentry__V1__AgentState s)
{
    return (unsigned)s < AG_ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

const char *cli_print_kind_name(Agentry__V1__EventKind k)
{
    return (unsigned)k < AG_ARRAY_SIZE(kind_names) ? kind_names[k] : "unknown";
}

int cli_print_state_parse(const char *s, Agentry__V1__AgentState *out, struct ag_err *err)
{
    const char *name = strncasecmp(s, "AGENT_STATE_", 12) == 0 ? s + 12 : s;
    for (size_t i = 1; i < AG_ARRAY_SIZE(state_names); i++) {
        if (strcasecmp(name, state_names[i]) == 0) {
            *out = (Agentry__V1__AgentState)i;
            return 0;
        }
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "unknown state '%s': want pending, running, idle, yielded, failed or killed",
                      s);
}

const char *cli_print_time(char *buf, size_t cap, int64_t unix_ns)
{
    if (unix_ns <= 0) {
        snprintf(buf, cap, "%s", "");
        return buf;
    }
    return ag_clock_rfc3339(buf, cap, unix_ns);
}

const char *cli_print_age(char *buf, size_t cap, int64_t age_ns)
{
    int64_t s = age_ns > 0 ? age_ns / 1000000000 : 0;
    if (s < 60)
        snprintf(buf, cap, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm", (long long)(s / 60));
    else if (s < 48 * 3600)
        snprintf(buf, cap, "%lldh", (long long)(s / 3600));
    else
        snprintf(buf, cap, "%lldd", (long long)(s / 86400));
    return buf;
}

const char *cli_print_span(char *buf, size_t cap, int64_t ms)
{
    int64_t s = ms > 0 ? ms / 1000 : 0;
    if (s < 60)
        snprintf(buf, cap, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
    else if (s < 48 * 3600)
        snprintf(buf, cap, "%lldh%lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
    else
        snprintf(buf, cap, "%lldd%lldh", (long long)(s / 86400), (long long)(s / 3600 % 24));
    return buf;
}

/* --- JSON ------------------------------------------------------------------------------------ */

static cJSON *usage_json(const Agentry__V1__Usage *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_tokens", u ? (double)u->input_tokens : 0);
    cJSON_AddNumberToObject(o, "output_tokens", u ? (double)u->output_tokens : 0);
    cJSON_AddNumberToObject(o, "model_calls", u ? u->model_calls : 0);
    cJSON_AddNumberToObject(o, "tool_calls", u ? u->tool_calls : 0);
    cJSON_AddNumberToObject(o, "cost_usd", u ? u->cost_usd : 0);
    return o;
}

cJSON *cli_print_seq_json(const char *agent_id, uint64_t seq)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", agent_id);
    cJSON_AddNumberToObject(o, "seq", (double)seq);
    return o;
}

cJSON *cli_print_spec_json(const Agentry__V1__AgentSpec *spec)
{
    cJSON *o = agentry_json_spec(spec);
    if (!spec)
        return o;
    cJSON_AddStringToObject(o, "scheduler", spec->scheduler ? spec->scheduler : "");
    cJSON *r = cJSON_AddObjectToObject(o, "resources");
    cJSON_AddNumberToObject(r, "cpu_milli", spec->resources ? spec->resources->cpu_milli : 0);
    cJSON_AddNumberToObject(r, "memory_bytes",
                            spec->resources ? (double)spec->resources->memory_bytes : 0);
    cJSON *sel = cJSON_AddObjectToObject(o, "node_selector");
    for (size_t i = 0; i < spec->n_node_selector; i++)
        cJSON_AddStringToObject(sel, spec->node_selector[i]->key, spec->node_selector[i]->value);
    cJSON *anti = cJSON_AddArrayToObject(o, "anti_affinity");
    for (size_t i = 0; i < spec->n_anti_affinity; i++)
        cJSON_AddItemToArray(anti, cJSON_CreateString(spec->anti_affinity[i]));
    cJSON_AddNumberToObject(o, "priority", spec->priority);
    return o;
}

cJSON *cli_print_agent_json(const Agentry__V1__Agent *a)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "namespace", a->namespace_);
    cJSON_AddStringToObject(o, "request_id", a->request_id);
    cJSON_AddItemToObject(o, "spec", cli_print_spec_json(a->spec));
    cJSON_AddStringToObject(o, "state", cli_print_state_name(a->state));
    cJSON_AddStringToObject(o, "state_reason", a->state_reason);
    cJSON_AddNumberToObject(o, "turn_attempt", a->turn_attempt);
    cJSON_AddStringToObject(o, "node_id", a->node_id);
    cJSON_AddNumberToObject(o, "epoch", (double)a->epoch);
    cJSON_AddNumberToObject(o, "last_seq", (double)a->last_seq);
    cJSON_AddStringToObject(o, "created_at", cli_print_time(t, sizeof(t), a->created_unix_nano));
    cJSON_AddStringToObject(o, "updated_at", cli_print_time(t, sizeof(t), a->updated_unix_nano));
    cJSON_AddItemToObject(o, "usage", usage_json(a->usage));
    cJSON_AddStringToObject(o, "last_output", a->last_output);
    cJSON_AddStringToObject(o, "last_error", a->last_error);
    cJSON_AddNumberToObject(o, "pending_inputs", a->pending_inputs);
    cJSON_AddStringToObject(o, "parent_id", a->parent_id);
    cJSON_AddNumberToObject(o, "depth", a->depth);
    cJSON *kids = cJSON_AddArrayToObject(o, "children");
    for (size_t i = 0; i < a->n_children; i++)
        cJSON_AddItemToArray(kids, cJSON_CreateString(a->children[i]));
    return o;
}

cJSON *cli_print_event_json(const Agentry__V1__TraceEvent *ev)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", ev->agent_id);
    cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
    cJSON_AddStringToObject(o, "time", cli_print_time(t, sizeof(t), ev->time_unix_nano));
    cJSON_AddStringToObject(o, "kind", cli_print_kind_name(ev->kind));
    cJSON_AddStringToObject(o, "node_id", ev->node_id);
    /* The payload is a JSON object by contract; if a hub ever breaks that, keep the text. */
    cJSON *payload = ev->payload && *ev->payload ? cJSON_Parse(ev->payload) : cJSON_CreateObject();
    cJSON_AddItemToObject(o, "payload", payload ? payload : cJSON_CreateString(ev->payload));
    return o;
}

void cli_print_json(FILE *out, cJSON *v, bool compact)
{
    char *s = compact ? cJSON_PrintUnformatted(v) : cJSON_Print(v);
    if (!s) {
        fprintf(stderr, "error: out of memory printing JSON\n");
        abort();
    }
    fprintf(out, "%s\n", s);
    cJSON_free(s);
    cJSON_Delete(v);
}

/* --- human ----------------------------------------------------------------------------------- */

/* Print s, with newlines and tabs as spaces (one_line) or newlines indented by `indent`, and any
 * other control character as '?', so that hub data cannot move the cursor or change colours. */
static void put_clean(FILE *out, const char *s, bool one_line, int indent)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n' && !one_line)
            fprintf(out, "\n%*s", indent, "");
        else if (ch == '\n' || ch == '\r' || ch == '\t')
            fputc(' ', out);
        else if (iscntrl(ch))
            fputc('?', out);
        else
            fputc(ch, out);
    }
}

#define AGENT_KEY_WIDTH 16

static void kv(FILE *out, const char *key, const char *value)
{
    fprintf(out, "%s:%*s", key, (int)(AGENT_KEY_WIDTH - strlen(key) - 1), "");
    put_clean(out, value, false, AGENT_KEY_WIDTH);
    fputc('\n', out);
}

static void kv_u64(FILE *out, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    kv(out, key, buf);
}

static void kv_time(FILE *out, const char *key, int64_t unix_ns, int64_t now_ns)
{
    char t[32], age[16], buf[64] = "";
    if (unix_ns > 0)
        snprintf(buf, sizeof(buf), "%s (%s ago)", cli_print_time(t, sizeof(t), unix_ns),
                 cli_print_age(age, sizeof(age), now_ns - unix_ns));
    kv(out, key, buf);
}

/* Where its turns may run and in which order it is served: only what the spec sets, so that
 * an agent without placement rules prints as before. */
static void print_placement(FILE *out, const Agentry__V1__AgentSpec *sp)
{
    if (sp->scheduler && *sp->scheduler)
        kv(out, "scheduler", sp->scheduler);
    if (sp->resources && sp->resources->cpu_milli)
        fprintf(out, "%-*s%um\n", AGENT_KEY_WIDTH, "cpu:", sp->resources->cpu_milli);
    if (sp->resources && sp->resources->memory_bytes)
        kv_u64(out, "memory_bytes", sp->resources->memory_bytes);
    if (sp->n_node_selector) {
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, "node_selector:");
        for (size_t i = 0; i < sp->n_node_selector; i++) {
            fputs(i ? ", " : "", out);
            put_clean(out, sp->node_selector[i]->key, true, 0);
            fputc('=', out);
            put_clean(out, sp->node_selector[i]->value, true, 0);
        }
        fputc('\n', out);
    }
    if (sp->n_anti_affinity) {
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, "anti_affinity:");
        for (size_t i = 0; i < sp->n_anti_affinity; i++) {
            fputs(i ? ", " : "", out);
            put_clean(out, sp->anti_affinity[i], true, 0);
        }
        fputc('\n', out);
    }
    if (sp->priority)
        fprintf(out, "%-*s%d\n", AGENT_KEY_WIDTH, "priority:", sp->priority);
}

/* How the model is called, beside the node's settings: only what the spec sets. Header values
 * are not shown (a header may carry a credential the operator put there); --json has them. */
static void print_model_settings(FILE *out, const Agentry__V1__ModelSettings *ms)
{
    if (!ms)
        return;
    if (ms->base_url && *ms->base_url)
        kv(out, "base_url", ms->base_url);
    kv(out, "stream", ms->stream ? "true" : "false");
    if (ms->temperature_set)
        fprintf(out, "%-*s%g\n", AGENT_KEY_WIDTH, "temperature:", ms->temperature);
    if (ms->max_tokens)
        fprintf(out, "%-*s%u per call\n", AGENT_KEY_WIDTH, "max_tokens:", ms->max_tokens);
    if (ms->api_key_env && *ms->api_key_env)
        kv(out, "api_key_env", ms->api_key_env);
    if (ms->n_headers) {
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, "headers:");
        for (size_t i = 0; i < ms->n_headers; i++) {
            fputs(i ? ", " : "", out);
            put_clean(out, ms->headers[i]->key, true, 0);
        }
        fputc('\n', out);
    }
}

/* The permission rules, one line each, in the order they are matched. */
static void print_permissions(FILE *out, const Agentry__V1__AgentSpec *sp)
{
    for (size_t i = 0; i < sp->n_permissions; i++) {
        const Agentry__V1__PermissionRule *r = sp->permissions[i];
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, i ? "" : "permissions:");
        put_clean(out, r->decision, true, 0);
        fputc(' ', out);
        put_clean(out, r->tool, true, 0);
        for (size_t j = 0; j < r->n_patterns; j++) {
            fputs(j ? ", " : " ", out);
            put_clean(out, r->patterns[j], true, 0);
        }
        fputc('\n', out);
    }
}

/* The spec's MCP servers and OpenAPI documents, one line each: what runs or is called, and the
 * names of headers and variables (their values may be credentials; --json has them). */
static void print_ext_tools(FILE *out, const Agentry__V1__AgentSpec *sp)
{
    for (size_t i = 0; i < sp->n_mcp_servers; i++) {
        const Agentry__V1__McpServer *m = sp->mcp_servers[i];
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, i ? "" : "mcp_servers:");
        put_clean(out, m->name, true, 0);
        fputs(": ", out);
        for (size_t k = 0; k < m->n_command; k++) {
            fputs(k ? " " : "", out);
            put_clean(out, m->command[k], true, 0);
        }
        put_clean(out, m->url, true, 0);
        for (size_t k = 0; k < m->n_tools; k++) {
            fputs(k ? ", " : " (tools: ", out);
            put_clean(out, m->tools[k], true, 0);
        }
        fputs(m->n_tools ? ")" : "", out);
        for (size_t k = 0; k < m->n_env + m->n_headers; k++) {
            fputs(k ? ", " : m->n_env ? " (env: " : " (headers: ", out);
            put_clean(out, k < m->n_env ? m->env[k]->key : m->headers[k - m->n_env]->key, true, 0);
        }
        fputs(m->n_env + m->n_headers ? ")" : "", out);
        if (m->timeout_ms)
            fprintf(out, " (timeout %u ms)", m->timeout_ms);
        fputc('\n', out);
    }
    for (size_t i = 0; i < sp->n_openapi; i++) {
        const Agentry__V1__OpenApiSource *a = sp->openapi[i];
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, i ? "" : "openapi:");
        put_clean(out, a->name, true, 0);
        fputs(": ", out);
        if (a->url && *a->url)
            put_clean(out, a->url, true, 0);
        else
            fprintf(out, "(a document of %zu bytes)", strlen(a->document ? a->document : ""));
        if (a->base_url && *a->base_url) {
            fputs(" (base_url ", out);
            put_clean(out, a->base_url, true, 0);
            fputc(')', out);
        }
        for (size_t k = 0; k < a->n_operations; k++) {
            fputs(k ? ", " : " (operations: ", out);
            put_clean(out, a->operations[k], true, 0);
        }
        fputs(a->n_operations ? ")" : "", out);
        fputc('\n', out);
    }
}

static void print_spec(FILE *out, const Agentry__V1__AgentSpec *sp)
{
    static const Agentry__V1__AgentSpec empty = AGENTRY__V1__AGENT_SPEC__INIT;
    if (!sp)
        sp = &empty;
    kv(out, "name", sp->name);
    kv(out, "model", sp->model);
    kv(out, "system_prompt", sp->system_prompt);
    print_model_settings(out, sp->model_settings);
    fprintf(out, "%-*s", AGENT_KEY_WIDTH, "tools:");
    for (size_t i = 0; i < sp->n_tools; i++) {
        fputs(i ? ", " : "", out);
        put_clean(out, sp->tools[i], true, 0);
    }
    fputc('\n', out);
    for (size_t i = 0; i < sp->n_tool_settings; i++) {
        fputs("  ", out);
        put_clean(out, sp->tool_settings[i]->key, true, 0);
        fputs(": ", out);
        put_clean(out, sp->tool_settings[i]->value, true, 0);
        fputc('\n', out);
    }
    if (sp->max_iterations)
        kv_u64(out, "max_iterations", sp->max_iterations);
    else
        kv(out, "max_iterations", "node default");
    fprintf(out, "%-*s", AGENT_KEY_WIDTH, "labels:");
    for (size_t i = 0; i < sp->n_labels; i++) {
        fputs(i ? ", " : "", out);
        put_clean(out, sp->labels[i]->key, true, 0);
        fputc('=', out);
        put_clean(out, sp->labels[i]->value, true, 0);
    }
    fputc('\n', out);
    print_permissions(out, sp);
    print_ext_tools(out, sp);
    print_placement(out, sp);
}

/* The spec's limits beside what the agent spent: "1234 of 50000 (2%)". Only the limits set. */
static void print_budgets(FILE *out, const Agentry__V1__Agent *a)
{
    const Agentry__V1__Limits *l = a->spec ? a->spec->limits : NULL;
    const Agentry__V1__Usage *u = a->usage;
    if (!l)
        return;
    if (l->max_tokens) {
        unsigned long long used = u ? (unsigned long long)(u->input_tokens + u->output_tokens) : 0;
        fprintf(out, "%-*s%llu of %llu (%.0f%%)\n", AGENT_KEY_WIDTH, "token_budget:", used,
                (unsigned long long)l->max_tokens, 100.0 * (double)used / (double)l->max_tokens);
    }
    if (l->max_cost_usd > 0) {
        double used = u ? u->cost_usd : 0;
        fprintf(out, "%-*s$%.4f of $%.4f (%.0f%%)\n", AGENT_KEY_WIDTH, "cost_budget:", used,
                l->max_cost_usd, 100.0 * used / l->max_cost_usd);
    }
    if (l->turn_timeout_ms) {
        char d[32];
        kv(out, "turn_timeout", cli_print_duration(d, sizeof(d), (int64_t)l->turn_timeout_ms));
    }
}

#define CHILDREN_SHOWN 20 /* ids on the children line; the rest is counted */

/* "children: N: id id ...": the first ids, then how many more (ps --tree lists them all). */
static void print_children(FILE *out, const Agentry__V1__Agent *a)
{
    size_t shown = a->n_children < CHILDREN_SHOWN ? a->n_children : CHILDREN_SHOWN;
    char *line = ag_xasprintf("%zu%s", a->n_children, a->n_children >= 1000 ? " or more" : "");
    for (size_t i = 0; i < shown; i++) {
        char *next = ag_xasprintf("%s%s%s", line, i ? " " : ": ", a->children[i]);
        free(line);
        line = next;
    }
    if (shown < a->n_children) {
        char *next = ag_xasprintf("%s ... (agentry ps --tree lists them)", line);
        free(line);
        line = next;
    }
    kv(out, "children", line);
    free(line);
}

void cli_print_agent(FILE *out, const Agentry__V1__Agent *a, int64_t now_ns)
{
    kv(out, "id", a->id);
    kv(out, "namespace", a->namespace_);
    kv(out, "request_id", a->request_id);
    kv(out, "state", cli_print_state_name(a->state));
    kv(out, "state_reason", a->state_reason);
    print_spec(out, a->spec);
    kv(out, "node", a->node_id);
    kv_u64(out, "epoch", a->epoch);
    kv_u64(out, "turn_attempt", a->turn_attempt);
    kv_u64(out, "last_seq", a->last_seq);
    kv_u64(out, "pending_inputs", a->pending_inputs);
    kv_time(out, "created", a->created_unix_nano, now_ns);
    kv_time(out, "updated", a->updated_unix_nano, now_ns);
    const Agentry__V1__Usage *u = a->usage;
    char usage[200];
    snprintf(usage, sizeof(usage),
             "model_calls=%u tool_calls=%u input_tokens=%llu output_tokens=%llu cost_usd=%.4f",
             u ? u->model_calls : 0, u ? u->tool_calls : 0,
             (unsigned long long)(u ? u->input_tokens : 0),
             (unsigned long long)(u ? u->output_tokens : 0), u ? u->cost_usd : 0.0);
    kv(out, "usage", usage);
    print_budgets(out, a);
    kv(out, "last_output", a->last_output);
    kv(out, "last_error", a->last_error);
    if (*a->parent_id) {
        kv(out, "parent", a->parent_id);
        kv_u64(out, "depth", a->depth);
    }
    const Agentry__V1__AgentSpec *sp = a->spec;
    if (sp && sp->n_templates) {
        fprintf(out, "%-*s", AGENT_KEY_WIDTH, "templates:");
        for (size_t i = 0; i < sp->n_templates; i++) {
            fputs(i ? ", " : "", out);
            put_clean(out, sp->templates[i]->key, true, 0);
        }
        fputc('\n', out);
    }
    if (sp && sp->limits && (sp->limits->max_depth || sp->limits->max_children))
        fprintf(out, "%-*smax_depth=%u max_children=%u (0: the defaults, 8 and 1000)\n",
                AGENT_KEY_WIDTH, "team_limits:", sp->limits->max_depth, sp->limits->max_children);
    if (a->n_children)
        print_children(out, a);
}

void cli_print_event(FILE *out, const Agentry__V1__TraceEvent *ev)
{
    time_t secs = (time_t)(ev->time_unix_nano / 1000000000);
    struct tm tm;
    localtime_r(&secs, &tm);
    fprintf(out, "#%-4llu  %02d:%02d:%02d.%03d  %-13s", (unsigned long long)ev->seq, tm.tm_hour,
            tm.tm_min, tm.tm_sec, (int)(ev->time_unix_nano / 1000000 % 1000),
            cli_print_kind_name(ev->kind));
    if (ev->node_id && *ev->node_id) {
        fputs("  node=", out);
        put_clean(out, ev->node_id, true, 0);
    }
    if (ev->payload && *ev->payload) {
        fputs("  ", out);
        put_clean(out, ev->payload, true, 0);
    }
    fputc('\n', out);
}

/* --- tables -------------------------------------------------------------------------------- */

void cli_print_table(FILE *out, const char *const *head, size_t ncols, char *const *cells,
                     size_t nrows)
{
    size_t width[16] = {0};
    if (ncols > 16)
        ncols = 16;
    for (size_t c = 0; c < ncols; c++)
        width[c] = strlen(head[c]);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            if (strlen(cells[r * ncols + c]) > width[c])
                width[c] = strlen(cells[r * ncols + c]);
    for (size_t r = 0; r <= nrows; r++) {
        const char *const *row = r == 0 ? head : (const char *const *)cells + (r - 1) * ncols;
        for (size_t c = 0; c < ncols; c++) {
            put_clean(out, row[c], true, 0);
            if (c + 1 < ncols)
                fprintf(out, "%*s", (int)(width[c] - strlen(row[c]) + 2), "");
        }
        fputc('\n', out);
    }
}

/* --- the agents table ------------------------------------------------------------------------ */

#define TABLE_NAME_MAX 24 /* longer names are cut: the table is for scanning, get shows it all */

enum { COL_NS, COL_ID, COL_NAME, COL_STATE, COL_NODE, COL_SEQ, COL_AGE, NCOLS };

void cli_print_agents(FILE *out, Agentry__V1__Agent *const *agents, size_t n, int64_t now_ns,
                      bool show_ns)
{
    static const char *const head[NCOLS] = {"NAMESPACE", "ID",  "NAME", "STATE",
                                            "NODE",      "SEQ", "AGE"};
    int first = show_ns ? COL_NS : COL_ID, ncols = NCOLS - first;
    char(*buf)[64] = ag_xcalloc(n ? n * NCOLS : 1, 64);
    char **cells = ag_xcalloc(n ? n * NCOLS : 1, sizeof(*cells));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Agent *a = agents[i];
        char(*row)[64] = buf + i * NCOLS;
        const char *name = a->spec && *a->spec->name ? a->spec->name : "-";
        snprintf(row[COL_NS], 64, "%s", a->namespace_);
        snprintf(row[COL_ID], 64, "%s", a->id);
        snprintf(row[COL_NAME], 64, "%.*s", TABLE_NAME_MAX, name);
        snprintf(row[COL_STATE], 64, "%s", cli_print_state_name(a->state));
        snprintf(row[COL_NODE], 64, "%s", *a->node_id ? a->node_id : "-");
        snprintf(row[COL_SEQ], 64, "%llu", (unsigned long long)a->last_seq);
        cli_print_age(row[COL_AGE], 64, now_ns - a->created_unix_nano);
        for (int c = first; c < NCOLS; c++)
            cells[i * ncols + c - first] = row[c];
    }
    cli_print_table(out, head + first, (size_t)ncols, cells, n);
    free(cells);
    free(buf);
}

/* --- nodes ----------------------------------------------------------------------------------- */

static cJSON *strv_json(char *const *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(v[i]));
    return arr;
}

cJSON *cli_print_node_json(const Agentry__V1__Node *n)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node_id", n->node_id);
    cJSON_AddStringToObject(o, "state", n->state);
    cJSON_AddNumberToObject(o, "capacity", n->capacity);
    cJSON_AddNumberToObject(o, "running", n->running);
    cJSON *labels = cJSON_AddObjectToObject(o, "labels");
    for (size_t i = 0; i < n->n_labels; i++)
        cJSON_AddStringToObject(labels, n->labels[i]->key, n->labels[i]->value);
    cJSON_AddStringToObject(o, "version", n->version);
    cJSON_AddStringToObject(o, "address", n->address);
    cJSON_AddStringToObject(o, "connected_at", cli_print_time(t, sizeof(t), n->connected_ns));
    if (n->started_ns)
        cJSON_AddStringToObject(o, "started_at", cli_print_time(t, sizeof(t), n->started_ns));
    cJSON_AddItemToObject(o, "models", strv_json(n->models, n->n_models));
    cJSON_AddItemToObject(o, "tools", strv_json(n->tools, n->n_tools));
    return o;
}

enum { NCOL_ID, NCOL_STATE, NCOL_LOAD, NCOL_LABELS, NCOL_VERSION, NCOL_AGE, NNCOLS };

void cli_print_nodes(FILE *out, Agentry__V1__Node *const *nodes, size_t n, int64_t now_ns)
{
    static const char *const head[NNCOLS] = {"NODE",   "STATE",   "RUNNING",
                                             "LABELS", "VERSION", "AGE"};
    char(*buf)[128] = ag_xcalloc(n ? n * NNCOLS : 1, 128);
    char **cells = ag_xcalloc(n ? n * NNCOLS : 1, sizeof(*cells));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Node *nd = nodes[i];
        char(*row)[128] = buf + i * NNCOLS;
        snprintf(row[NCOL_ID], 128, "%s", nd->node_id);
        snprintf(row[NCOL_STATE], 128, "%s", nd->state);
        snprintf(row[NCOL_LOAD], 128, "%u/%u", nd->running, nd->capacity);
        size_t off = 0;
        for (size_t k = 0; k < nd->n_labels && off < 127; k++)
            off += (size_t)snprintf(row[NCOL_LABELS] + off, 128 - off, "%s%s=%s", k ? "," : "",
                                    nd->labels[k]->key, nd->labels[k]->value);
        if (!nd->n_labels)
            snprintf(row[NCOL_LABELS], 128, "-");
        snprintf(row[NCOL_VERSION], 128, "%s", *nd->version ? nd->version : "-");
        /* The age of the node process when it said when it started, else of its connection. */
        int64_t since = nd->started_ns ? nd->started_ns : nd->connected_ns;
        cli_print_age(row[NCOL_AGE], 128, now_ns - since);
        for (int c = 0; c < NNCOLS; c++)
            cells[i * NNCOLS + c] = row[c];
    }
    cli_print_table(out, head, NNCOLS, cells, n);
    free(cells);
    free(buf);
}
