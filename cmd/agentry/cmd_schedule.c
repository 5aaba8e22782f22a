/* cmd/agentry/cmd_schedule.c - 'agentry schedule create|ls|get|pause|resume|delete': cron
 * schedules on the hub (hub.proto, CreateSchedule and the rest; docs/schedules.md). The cron
 * expression, the missed policy and the spec file are checked here first, so a typo is a usage
 * error (exit 2) that names the field before anything is sent. */
#include <stdio.h>
#include <string.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "cmd/agentry/spec.h"
#include "common/clock.h"
#include "common/cron.h"
#include "common/xalloc.h"

static const struct ag_cmd_help create_help = {
    "agentry schedule create --cron EXPR [--spec FILE] [--input TEXT] [flags]",
    "Create a schedule: at every slot of EXPR (UTC) the hub spawns an agent from the spec with "
    "the input, exactly once per slot, also across hub restarts. EXPR has five fields (minute "
    "hour day-of-month month day-of-week), or six with seconds first, or is one of @hourly, "
    "@daily, @weekly, @monthly, @yearly. --missed says what slots that passed while no hub ran "
    "do: skip (the default) or catch_up_once (the latest one fires once). Prints the schedule "
    "id. The agents carry the label agentry.dev/schedule=ID (agentry ps -l ...).",
    "agentry schedule create --cron '0 6 * * mon-fri' --spec report.yaml --input 'daily report'\n"
    "agentry schedule create --cron '*/10 * * * * *' --input 'final ping' --missed "
    "catch_up_once\n"
    "agentry schedule create -n team-a --request-id nightly --cron @daily --spec nightly.yaml",
};

static const struct ag_cmd_help ls_help = {
    "agentry schedule ls [flags]",
    "List the schedules (of -n NS, else of every namespace you may see), in creation order: ID "
    "CRON NEXT LAST FIRES PAUSED (times in UTC).",
    "agentry schedule ls\nagentry schedule ls -n team-a --json",
};

static const struct ag_cmd_help id_help[] = {
    {"agentry schedule get [flags] SCHEDULE_ID", "Show one schedule.",
     "agentry schedule get 01jd5x8k2m4n6p8q --json"},
    {"agentry schedule pause [flags] SCHEDULE_ID",
     "Stop a schedule's firing (idempotent). Prints its id.", "agentry schedule pause ID"},
    {"agentry schedule resume [flags] SCHEDULE_ID",
     "Fire again from the next slot on; the slots passed while paused are skipped. Prints its "
     "id.",
     "agentry schedule resume ID"},
    {"agentry schedule delete [flags] SCHEDULE_ID",
     "Delete a schedule; the agents it spawned stay. Prints its id.", "agentry schedule delete ID"},
};

static cJSON *schedule_json(const Agentry__V1__Schedule *s)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "namespace", s->namespace_);
    cJSON_AddStringToObject(o, "cron", s->cron);
    if (s->spec)
        cJSON_AddItemToObject(o, "spec", cli_print_spec_json(s->spec));
    cJSON_AddStringToObject(o, "input", s->input);
    cJSON_AddStringToObject(o, "missed", s->missed);
    cJSON_AddBoolToObject(o, "paused", s->paused);
    cJSON_AddStringToObject(o, "created_at", cli_print_time(t, sizeof(t), s->created_unix_nano));
    if (s->next_fire_unix_nano)
        cJSON_AddStringToObject(o, "next_fire_at",
                                cli_print_time(t, sizeof(t), s->next_fire_unix_nano));
    if (s->last_fire_unix_nano)
        cJSON_AddStringToObject(o, "last_fire_at",
                                cli_print_time(t, sizeof(t), s->last_fire_unix_nano));
    cJSON_AddStringToObject(o, "last_agent_id", s->last_agent_id);
    cJSON_AddNumberToObject(o, "fires", (double)s->fires);
    cJSON_AddStringToObject(o, "request_id", s->request_id);
    return o;
}

static char *time_cell(struct ag_arena *ar, int64_t ns)
{
    char t[32];
    return ns ? ag_arena_strdup(ar, cli_print_time(t, sizeof(t), ns)) : "-";
}

/* One schedule as FIELD VALUE rows (the table printer keeps control characters out). */
static void print_one(const Agentry__V1__Schedule *s, struct ag_arena *ar)
{
    char *spec = "{}";
    if (s->spec) {
        cJSON *j = cli_print_spec_json(s->spec);
        char *txt = cJSON_PrintUnformatted(j);
        spec = ag_arena_strdup(ar, txt ? txt : "{}");
        cJSON_free(txt);
        cJSON_Delete(j);
    }
    char *cells[] = {
        "id",         s->id,
        "namespace",  s->namespace_,
        "cron",       s->cron,
        "missed",     s->missed,
        "paused",     s->paused ? "yes" : "no",
        "next",       time_cell(ar, s->next_fire_unix_nano),
        "last",       time_cell(ar, s->last_fire_unix_nano),
        "last_agent", *s->last_agent_id ? s->last_agent_id : "-",
        "fires",      ag_arena_printf(ar, "%llu", (unsigned long long)s->fires),
        "created",    time_cell(ar, s->created_unix_nano),
        "request_id", *s->request_id ? s->request_id : "-",
        "input",      s->input,
        "spec",       spec,
    };
    static const char *const head[] = {"FIELD", "VALUE"};
    cli_print_table(stdout, head, 2, cells, AG_ARRAY_SIZE(cells) / 2);
}

static int schedule_create(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *cron = NULL, *spec_file = NULL, *input = "", *missed = "skip";
    const char *ns = cli_default_namespace(), *request_id = "";
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"cron", 0, AG_FLAG_STR, &cron, "EXPR", "when, in UTC (required; see above)", 0, 0},
        {"spec", 0, AG_FLAG_STR, &spec_file, "FILE",
         "the agent spec file, YAML or JSON (docs/agent-spec.md); default: the mock model", 0, 0},
        {"input", 0, AG_FLAG_STR, &input, "TEXT", "the first input of each agent", 0, 0},
        {"missed", 0, AG_FLAG_STR, &missed, "POLICY",
         "slots missed while no hub ran: skip (default) or catch_up_once", 0, 0},
        {"namespace", 'n', AG_FLAG_STR, &ns, "NS",
         "where the schedule and its agents live (default $AGENTRY_NAMESPACE, else 'default')", 0,
         0},
        {"request-id", 0, AG_FLAG_STR, &request_id, "KEY",
         "idempotency key: retrying with it returns the same schedule", 0, 0},
    };
    size_t nflags = 6;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    int rc;
    size_t npos;
    if (!cli_client_parse(&c, "schedule create", &create_help, flags, nflags, argc, argv, NULL, 0,
                          &npos, &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    struct ag_cron parsed;
    Agentry__V1__AgentSpec *spec = NULL;
    if (!cron)
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--cron is required (see 'agentry schedule create "
                   "--help')");
    else if (ag_cron_parse(cron, &parsed, &err) == 0 && strcmp(missed, "skip") != 0 &&
             strcmp(missed, "catch_up_once") != 0)
        ag_err_set(&err, AG_INVALID_ARGUMENT, "--missed '%s': use skip or catch_up_once", missed);
    if (err.code == AG_OK && cli_check_namespace(ns, &err) == 0 && spec_file)
        cli_spec_load(spec_file, &c.arena, &spec, &err);
    if (err.code != AG_OK) {
        cli_client_close(&c);
        return cli_usage_error(&err);
    }
    Agentry__V1__Schedule sched = AGENTRY__V1__SCHEDULE__INIT;
    sched.namespace_ = (char *)ns;
    sched.cron = (char *)cron;
    sched.spec = spec;
    sched.input = (char *)input;
    sched.missed = (char *)missed;
    Agentry__V1__CreateScheduleRequest req = AGENTRY__V1__CREATE_SCHEDULE_REQUEST__INIT;
    req.schedule = &sched;
    req.request_id = (char *)request_id;
    Agentry__V1__Schedule *out = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("CreateSchedule"), &req.base,
                        &agentry__v1__schedule__descriptor, (void **)&out, &err) < 0)
        rc = err.code == AG_INVALID_ARGUMENT ? cli_usage_error(&err) : cli_fail(&err);
    else if (cli_client_machine(&c))
        cli_client_emit(&c, schedule_json(out), NULL);
    else
        printf("%s\n", out->id);
    cli_client_close(&c);
    return rc;
}

static int schedule_ls(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    const char *ns = cli_default_namespace();
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"namespace", 'n', AG_FLAG_STR, &ns, "NS",
         "only this namespace's (default $AGENTRY_NAMESPACE, else every one you may see)", 0, 0},
    };
    size_t nflags = 1, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    int rc;
    if (!cli_client_parse(&c, "schedule ls", &ls_help, flags, nflags, argc, argv, NULL, 0, &npos,
                          &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    if (cli_check_namespace(ns, &err) != 0) {
        cli_client_close(&c);
        return cli_usage_error(&err);
    }
    Agentry__V1__ListSchedulesRequest req = AGENTRY__V1__LIST_SCHEDULES_REQUEST__INIT;
    req.namespace_ = (char *)ns;
    Agentry__V1__ListSchedulesResponse *out = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("ListSchedules"), &req.base,
                        &agentry__v1__list_schedules_response__descriptor, (void **)&out,
                        &err) < 0) {
        rc = cli_fail(&err);
    } else if (cli_client_machine(&c)) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < out->n_schedules; i++)
            cJSON_AddItemToArray(a, schedule_json(out->schedules[i]));
        cli_client_emit(&c, a, NULL);
    } else if (out->n_schedules == 0) {
        fprintf(stderr, "No schedules found\n");
    } else {
        static const char *const head[] = {"ID", "CRON", "NEXT", "LAST", "FIRES", "PAUSED"};
        char **cells = ag_arena_alloc(&c.arena, (out->n_schedules * 6 + 1) * sizeof(*cells));
        for (size_t i = 0; i < out->n_schedules; i++) {
            const Agentry__V1__Schedule *s = out->schedules[i];
            char **row = cells + i * 6;
            row[0] = s->id;
            row[1] = s->cron;
            row[2] = time_cell(&c.arena, s->next_fire_unix_nano);
            row[3] = time_cell(&c.arena, s->last_fire_unix_nano);
            row[4] = ag_arena_printf(&c.arena, "%llu", (unsigned long long)s->fires);
            row[5] = s->paused ? "yes" : "no";
        }
        cli_print_table(stdout, head, 6, cells, out->n_schedules);
    }
    cli_client_close(&c);
    return rc;
}

/* get, pause, resume, delete: one SCHEDULE_ID. which indexes id_help and the methods. */
static int schedule_by_id(int which, int argc, char **argv)
{
    static const char *const cmds[] = {"schedule get", "schedule pause", "schedule resume",
                                       "schedule delete"};
    static const char *const methods[] = {
        CLI_HUB_METHOD("GetSchedule"), CLI_HUB_METHOD("PauseSchedule"),
        CLI_HUB_METHOD("ResumeSchedule"), CLI_HUB_METHOD("DeleteSchedule")};
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *id = NULL;
    int rc;
    if (!cli_client_parse(&c, cmds[which], &id_help[which], flags, nflags, argc, argv, &id, 1,
                          &npos, &rc) ||
        !cli_need_args(cmds[which], &id, npos, 1, "SCHEDULE_ID", &rc))
        return rc;
    /* The four requests are one field, schedule_id: GetScheduleRequest's bytes are theirs. */
    Agentry__V1__GetScheduleRequest req = AGENTRY__V1__GET_SCHEDULE_REQUEST__INIT;
    req.schedule_id = id;
    bool del = which == 3;
    void *out = NULL;
    struct ag_err err = AG_ERR_INIT;
    rc = CLI_OK;
    if (cli_client_call(&c, methods[which], &req.base,
                        del ? &agentry__v1__delete_schedule_response__descriptor
                            : &agentry__v1__schedule__descriptor,
                        &out, &err) < 0) {
        rc = cli_fail(&err);
    } else if (cli_client_machine(&c) && del) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddBoolToObject(o, "deleted", true);
        cli_client_emit(&c, o, NULL);
    } else if (cli_client_machine(&c)) {
        cli_client_emit(&c, schedule_json(out), NULL);
    } else if (which == 0) {
        print_one(out, &c.arena);
    } else {
        printf("%s\n", id);
    }
    cli_client_close(&c);
    return rc;
}

int cli_cmd_schedule(int argc, char **argv)
{
    static const char *const subs[] = {"get", "pause", "resume", "delete"};
    const char *sub = argc >= 1 ? argv[0] : "";
    if (strcmp(sub, "create") == 0)
        return schedule_create(argc - 1, argv + 1);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return schedule_ls(argc - 1, argv + 1);
    for (int i = 0; i < 4; i++)
        if (strcmp(sub, subs[i]) == 0)
            return schedule_by_id(i, argc - 1, argv + 1);
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        printf("usage: agentry schedule create|ls|get|pause|resume|delete [flags] [SCHEDULE_ID]\n\n"
               "Cron schedules: the hub spawns an agent at every slot (docs/schedules.md). See "
               "'agentry schedule create --help'.\n");
        return CLI_OK;
    }
    fprintf(stderr,
            "error: unknown schedule command '%s' (want create, ls, get, pause, resume or "
            "delete)\n",
            sub);
    return CLI_USAGE;
}
