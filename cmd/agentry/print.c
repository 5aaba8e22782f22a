/* cmd/agentry/print.c - human and machine renderings of agents and events (see print.h). */
#include "cmd/agentry/print.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yaml.h>

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

/* --- machine formats ------------------------------------------------------------------------- */

static const char *const format_names[] = {"table", "wide", "json", "yaml", "jsonl"};

int cli_print_format_parse(const char *s, enum cli_format *out, struct ag_err *err)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(format_names); i++) {
        if (strcmp(s, format_names[i]) == 0) {
            *out = (enum cli_format)i;
            return 0;
        }
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "invalid value '%s' for --output: want table, wide, json, yaml or jsonl", s);
}

/* True if a YAML 1.1 reader (PyYAML, most tools) would take s, written plain, for something
 * other than a string: empty, null, a bool word, a number or a date (these start with a digit,
 * a sign or a dot). Such strings are quoted. */
static bool yaml_needs_quotes(const char *s)
{
    static const char *const words[] = {"null", "true", "false", "yes", "no", "on", "off", "~"};
    if (!*s || strchr("0123456789+-.", *s))
        return true;
    for (size_t i = 0; i < AG_ARRAY_SIZE(words); i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    return false;
}

static int yaml_scalar(yaml_emitter_t *em, const char *text, bool plain)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), plain, 1,
                                 YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(em, &ev);
}

/* One cJSON value as YAML events; 0 if the emitter refused one (it says why in em->problem). */
static int yaml_value(yaml_emitter_t *em, const cJSON *v)
{
    yaml_event_t ev;
    char num[64];
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        if (obj)
            yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_MAPPING_STYLE);
        else
            yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(em, &ev))
            return 0;
        for (const cJSON *c = v->child; c; c = c->next)
            if ((obj && !yaml_scalar(em, c->string, !yaml_needs_quotes(c->string))) ||
                !yaml_value(em, c))
                return 0;
        if (obj)
            yaml_mapping_end_event_initialize(&ev);
        else
            yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(em, &ev);
    }
    if (cJSON_IsString(v))
        return yaml_scalar(em, v->valuestring, !yaml_needs_quotes(v->valuestring));
    if (cJSON_IsRaw(v)) /* a number cJSON could not hold exactly, as its digits */
        return yaml_scalar(em, v->valuestring, true);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            snprintf(num, sizeof(num), "%.0f", d);
        else
            snprintf(num, sizeof(num), "%.17g", d);
        return yaml_scalar(em, num, true);
    }
    return yaml_scalar(em, cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : "null", true);
}

static int yaml_write(void *data, unsigned char *buf, size_t len)
{
    return fwrite(buf, 1, len, data) == len;
}

static void print_yaml(FILE *out, const cJSON *v)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, yaml_write, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1); /* long strings stay on one line */
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    int ok = yaml_emitter_emit(&em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0);
    ok = ok && yaml_emitter_emit(&em, &ev) && yaml_value(&em, v);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(&em, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&em, &ev) && yaml_emitter_flush(&em);
    if (!ok) /* text that is not UTF-8, say: one line instead of a half-written document */
        fprintf(stderr, "error: cannot print YAML: %s\n", em.problem ? em.problem : "write failed");
    yaml_emitter_delete(&em);
}

void cli_print_out(FILE *out, enum cli_format f, cJSON *v, const char *items)
{
    if (f == CLI_FORMAT_YAML) {
        print_yaml(out, v);
        cJSON_Delete(v);
        return;
    }
    cJSON *arr = cJSON_IsArray(v) ? v : items ? cJSON_GetObjectItemCaseSensitive(v, items) : NULL;
    if (f != CLI_FORMAT_JSONL || !cJSON_IsArray(arr)) {
        cli_print_json(out, v, true);
        return;
    }
    for (cJSON *c = arr->child; c; c = c->next) {
        char *line = cJSON_PrintUnformatted(c);
        if (!line) {
            fprintf(stderr, "error: out of memory printing JSON\n");
            abort();
        }
        fprintf(out, "%s\n", line);
        cJSON_free(line);
    }
    cJSON_Delete(v);
}

/* --- colour and time ------------------------------------------------------------------------- */

const char *cli_print_state_color(Agentry__V1__AgentState s)
{
    switch (s) {
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_RUNNING:
        return "32"; /* green */
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING:
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED:
        return "33"; /* yellow */
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED:
        return "31"; /* red */
    case AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED:
        return "90"; /* grey */
    default:
        return NULL;
    }
}

const char *cli_print_kind_color(Agentry__V1__EventKind k)
{
    switch (k) {
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_FINAL:
        return "32";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_ERROR:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED:
        return "31";
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_YIELD:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED:
    case AGENTRY__V1__EVENT_KIND__EVENT_KIND_INTERRUPTED:
        return "33";
    default:
        return NULL;
    }
}

const char *cli_print_clock(char *buf, size_t cap, int64_t unix_ns, int64_t now_ns)
{
    time_t secs = (time_t)(unix_ns / 1000000000), now = (time_t)(now_ns / 1000000000);
    struct tm tm, today;
    localtime_r(&secs, &tm);
    localtime_r(&now, &today);
    int ms = (int)(unix_ns / 1000000 % 1000);
    if (tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday)
        snprintf(buf, cap, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    else
        snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
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

void cli_print_colored(FILE *out, const char *sgr, const char *s)
{
    if (sgr)
        fprintf(out, "\033[%sm", sgr);
    put_clean(out, s, true, 0);
    if (sgr)
        fputs("\033[0m", out);
}

#define KIND_WIDTH 13 /* the longest common kind, model_request */

void cli_print_event_head(FILE *out, const Agentry__V1__TraceEvent *ev, bool color)
{
    char clock[40];
    const char *kind = cli_print_kind_name(ev->kind);
    fprintf(out, "#%-4llu  %s  ", (unsigned long long)ev->seq,
            cli_print_clock(clock, sizeof(clock), ev->time_unix_nano, ag_now_unix_ns()));
    cli_print_colored(out, color ? cli_print_kind_color(ev->kind) : NULL, kind);
    int pad = KIND_WIDTH - (int)strlen(kind);
    fprintf(out, "%*s", pad > 0 ? pad : 0, "");
}

void cli_print_event(FILE *out, const Agentry__V1__TraceEvent *ev, bool color)
{
    cli_print_event_head(out, ev, color);
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

void cli_print_table_sgr(FILE *out, const char *const *head, size_t ncols, char *const *cells,
                         const char *const *sgr, size_t nrows)
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
            cli_print_colored(out, r > 0 && sgr ? sgr[(r - 1) * ncols + c] : NULL, row[c]);
            if (c + 1 < ncols)
                fprintf(out, "%*s", (int)(width[c] - strlen(row[c]) + 2), "");
        }
        fputc('\n', out);
    }
}

void cli_print_table(FILE *out, const char *const *head, size_t ncols, char *const *cells,
                     size_t nrows)
{
    cli_print_table_sgr(out, head, ncols, cells, NULL, nrows);
}

/* Append "k=v" (after a comma unless first) to buf, within cap; off is the length so far. */
static size_t label_item(char *buf, size_t cap, size_t off, const char *k, const char *v)
{
    if (off >= cap - 1)
        return off;
    size_t n = (size_t)snprintf(buf + off, cap - off, "%s%s=%s", off ? "," : "", k, v);
    return off + n < cap ? off + n : cap - 1;
}

/* --- the agents table ------------------------------------------------------------------------ */

#define TABLE_NAME_MAX 24 /* longer names are cut: the table is for scanning, get shows it all */
#define CELL 128

enum {
    COL_NS,
    COL_ID,
    COL_NAME,
    COL_STATE,
    COL_NODE,
    COL_SEQ,
    COL_AGE,
    COL_MODEL, /* the wide columns from here */
    COL_PARENT,
    COL_LABELS,
    COL_UPDATED,
    NCOLS
};

void cli_print_agents(FILE *out, Agentry__V1__Agent *const *agents, size_t n, int64_t now_ns,
                      const struct cli_print_style *st)
{
    static const char *const head[NCOLS] = {"NAMESPACE", "ID",     "NAME",   "STATE",
                                            "NODE",      "SEQ",    "AGE",    "MODEL",
                                            "PARENT",    "LABELS", "UPDATED"};
    int first = st->show_ns ? COL_NS : COL_ID, last = st->wide ? NCOLS : COL_MODEL;
    size_t ncols = (size_t)(last - first);
    char(*buf)[CELL] = ag_xcalloc(n ? n * NCOLS : 1, CELL);
    char **cells = ag_xcalloc(n ? n * ncols : 1, sizeof(*cells));
    const char **sgr = ag_xcalloc(n ? n * ncols : 1, sizeof(*sgr));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Agent *a = agents[i];
        const Agentry__V1__AgentSpec *sp = a->spec;
        char(*row)[CELL] = buf + i * NCOLS;
        snprintf(row[COL_NS], CELL, "%s", a->namespace_);
        snprintf(row[COL_ID], CELL, "%s", a->id);
        snprintf(row[COL_NAME], CELL, "%.*s", TABLE_NAME_MAX, sp && *sp->name ? sp->name : "-");
        snprintf(row[COL_STATE], CELL, "%s", cli_print_state_name(a->state));
        snprintf(row[COL_NODE], CELL, "%s", *a->node_id ? a->node_id : "-");
        snprintf(row[COL_SEQ], CELL, "%llu", (unsigned long long)a->last_seq);
        cli_print_age(row[COL_AGE], CELL, now_ns - a->created_unix_nano);
        snprintf(row[COL_MODEL], CELL, "%s", sp && *sp->model ? sp->model : "-");
        snprintf(row[COL_PARENT], CELL, "%s", *a->parent_id ? a->parent_id : "-");
        size_t off = 0;
        for (size_t k = 0; sp && k < sp->n_labels; k++)
            off = label_item(row[COL_LABELS], CELL, off, sp->labels[k]->key, sp->labels[k]->value);
        if (!off)
            snprintf(row[COL_LABELS], CELL, "-");
        cli_print_age(row[COL_UPDATED], CELL, now_ns - a->updated_unix_nano);
        for (int c = first; c < last; c++)
            cells[i * ncols + (size_t)(c - first)] = row[c];
        if (st->color)
            sgr[i * ncols + (size_t)(COL_STATE - first)] = cli_print_state_color(a->state);
    }
    cli_print_table_sgr(out, head + first, ncols, cells, sgr, n);
    free(sgr);
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

enum {
    NCOL_ID,
    NCOL_STATE,
    NCOL_LOAD,
    NCOL_LABELS,
    NCOL_VERSION,
    NCOL_AGE,
    NCOL_ADDRESS, /* the wide columns from here */
    NCOL_MODELS,
    NCOL_TOOLS,
    NNCOLS
};

/* "a,b,c" of strings into buf (cut at cap), "-" for none. */
static void list_cell(char *buf, size_t cap, char *const *v, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < n && off < cap - 1; k++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", k ? "," : "", v[k]);
    if (!n)
        snprintf(buf, cap, "-");
}

void cli_print_nodes(FILE *out, Agentry__V1__Node *const *nodes, size_t n, int64_t now_ns,
                     const struct cli_print_style *st)
{
    static const char *const head[NNCOLS] = {"NODE", "STATE",   "RUNNING", "LABELS", "VERSION",
                                             "AGE",  "ADDRESS", "MODELS",  "TOOLS"};
    size_t ncols = st->wide ? NNCOLS : NCOL_ADDRESS;
    char(*buf)[CELL] = ag_xcalloc(n ? n * NNCOLS : 1, CELL);
    char **cells = ag_xcalloc(n ? n * ncols : 1, sizeof(*cells));
    const char **sgr = ag_xcalloc(n ? n * ncols : 1, sizeof(*sgr));
    for (size_t i = 0; i < n; i++) {
        const Agentry__V1__Node *nd = nodes[i];
        char(*row)[CELL] = buf + i * NNCOLS;
        snprintf(row[NCOL_ID], CELL, "%s", nd->node_id);
        snprintf(row[NCOL_STATE], CELL, "%s", nd->state);
        snprintf(row[NCOL_LOAD], CELL, "%u/%u", nd->running, nd->capacity);
        size_t off = 0;
        for (size_t k = 0; k < nd->n_labels; k++)
            off = label_item(row[NCOL_LABELS], CELL, off, nd->labels[k]->key, nd->labels[k]->value);
        if (!off)
            snprintf(row[NCOL_LABELS], CELL, "-");
        snprintf(row[NCOL_VERSION], CELL, "%s", *nd->version ? nd->version : "-");
        /* The age of the node process when it said when it started, else of its connection. */
        int64_t since = nd->started_ns ? nd->started_ns : nd->connected_ns;
        cli_print_age(row[NCOL_AGE], CELL, now_ns - since);
        snprintf(row[NCOL_ADDRESS], CELL, "%s", *nd->address ? nd->address : "-");
        list_cell(row[NCOL_MODELS], CELL, nd->models, nd->n_models);
        list_cell(row[NCOL_TOOLS], CELL, nd->tools, nd->n_tools);
        for (size_t c = 0; c < ncols; c++)
            cells[i * ncols + c] = row[c];
        if (st->color && strcmp(nd->state, "ready") != 0)
            sgr[i * ncols + NCOL_STATE] = "33";
    }
    cli_print_table_sgr(out, head, ncols, cells, sgr, n);
    free(sgr);
    free(cells);
    free(buf);
}
