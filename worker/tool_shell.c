/* worker/tool_shell.c - the "shell" tool: a command run with /bin/sh -c in the agent's workspace,
 * through the node's sandbox (worker/sandbox.h; docs/sandbox.md).
 *
 * Arguments {"command": string}. First the guard (wk_sandbox_guard) refuses wipe-shaped commands
 * ("rm -rf /", fork bombs) as an is_error result naming the rule; the node option shell.guard=off
 * turns it off. Then the command runs in the node's sandbox (bwrap by default: no network, a
 * read-only system, the workspace read-write at /workspace and its cwd), or directly with the
 * node's own rights when the spec's settings say {"privileged": true} (refused on a node with
 * shell.privileged=deny). A node without a working sandbox refuses other calls, saying why and
 * what to do. Settings (the spec's; the same keys as node options, which they may only lower):
 * net (true: the host's network), cpu_limit (CPU seconds per process), mem_limit, procs,
 * output_limit (bytes read before the command is killed), max_output (bytes kept in the result).
 *
 * The child: stdin /dev/null, stdout and stderr on one pipe (so the output keeps their
 * interleaving), a new session, default signal dispositions and mask, no fds but 0-2, and a
 * minimal environment: PATH=/usr/local/bin:/usr/bin:/bin, HOME and PWD the workspace (/workspace
 * in the sandbox), LANG=C.UTF-8, TERM=dumb, AGENTRY_AGENT_ID. Output: what the command wrote (at
 * most max_output bytes, default 64 KiB: the first and last halves are kept and the middle cut,
 * with a line saying how much), then "[sandbox: ...]" saying which sandbox and limits applied
 * (and any limit that fired), then "[exit status N]" or "[killed by signal N]". A non-zero
 * status is not is_error (the model reads it); a call that could not start, was cancelled, timed
 * out or passed output_limit is.
 *
 * Ending: the call's deadline (shell.timeout, worker/config.h; 10 minutes when neither it nor the
 * turn's time limit sets one) or a cancel kills the whole tree (wk_sandbox_kill: its cgroup, its
 * PID namespace, its process group) and reports "[killed: ...]". When the shell itself exits,
 * what is left of its tree is killed too, so nothing an agent started outlives its call.
 *
 * Threads: run() on the caller's thread; the command is started and waited for on a pool thread
 * (tool_job.c), which it occupies for its whole run (wk_sandbox_run polls the pipe, a pidfd and
 * the job's cancel eventfd, so a cancel or the deadline acts at once). Size the pool for the
 * shells a node runs at once (worker/runner). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "worker/sandbox.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define SHELL_MAX_OUTPUT (64 << 10)
#define SHELL_DEFAULT_TIMEOUT_MS (10 * 60 * 1000) /* without shell.timeout or a turn limit */

/* The output kept: the first head_cap bytes, and the last tail_cap in a ring. */
struct capture {
    char *head, *tail;
    size_t head_cap, tail_cap, head_len, tail_len, tail_start;
    uint64_t total;
};

static void capture_init(struct capture *c, size_t max)
{
    c->head_cap = max - max / 2;
    c->tail_cap = max / 2;
    c->head = ag_xmalloc(c->head_cap + 1);
    c->tail = ag_xmalloc(c->tail_cap + 1);
    c->head_len = c->tail_len = c->tail_start = 0;
    c->total = 0;
}

static void capture_add(struct capture *c, const char *p, size_t n)
{
    c->total += n;
    size_t h = n < c->head_cap - c->head_len ? n : c->head_cap - c->head_len;
    memcpy(c->head + c->head_len, p, h);
    c->head_len += h;
    for (size_t i = h; i < n && c->tail_cap; i++) {
        size_t at = (c->tail_start + c->tail_len) % c->tail_cap;
        c->tail[at] = p[i];
        if (c->tail_len < c->tail_cap)
            c->tail_len++;
        else
            c->tail_start = (c->tail_start + 1) % c->tail_cap;
    }
}

/* The kept output as text, with a note where the middle was cut, ending with a newline unless
 * empty; frees the buffers. */
static void capture_print(struct capture *c, FILE *out)
{
    char *ring = ag_xmalloc(c->tail_len + 1);
    for (size_t i = 0; i < c->tail_len; i++)
        ring[i] = c->tail[(c->tail_start + i) % c->tail_cap];
    char *text = wk_tool__text(c->head, c->head_len);
    fputs(text, out);
    free(text);
    uint64_t cut = c->total - c->head_len - c->tail_len;
    if (cut)
        fprintf(out, "\n[... %llu bytes of output cut (shell.max_output) ...]\n",
                (unsigned long long)cut);
    text = wk_tool__text(ring, c->tail_len);
    fputs(text, out);
    free(text);
    char last = c->tail_len ? ring[c->tail_len - 1] : c->head_len ? c->head[c->head_len - 1] : 0;
    if (c->total && last != '\n')
        fputc('\n', out);
    free(ring);
    free(c->head);
    free(c->tail);
}

/* The shell's options and settings: limits (sizes), and the words and booleans below. */
static const char *const limit_keys[] = {"max_output", "output_limit", "cpu_limit",
                                         "mem_limit",  "procs",        NULL};
static const char *const option_keys[] = {"max_output", "output_limit", "cpu_limit",  "mem_limit",
                                          "procs",      "guard",        "privileged", NULL};
static const char *const setting_keys[] = {"max_output", "output_limit", "cpu_limit", "mem_limit",
                                           "procs",      "privileged",   "net",       NULL};

static void capture_out(void *arg, const char *data, size_t len)
{
    capture_add(arg, data, len);
}

/* A boolean of the spec's settings for shell; false when absent. */
static bool setting(const char *settings_json, const char *key)
{
    cJSON *s = settings_json ? cJSON_Parse(settings_json) : NULL;
    bool yes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, key));
    cJSON_Delete(s);
    return yes;
}

static bool option_is(const struct wk_tool__job *job, const char *key, const char *value)
{
    const char *v = wk_config_get(job->ctx.config, key);
    return v && strcmp(v, value) == 0;
}

/* Why the call may not start, or NULL. */
static const char *refusal(const struct wk_tool__job *job, bool privileged)
{
    if (privileged && option_is(job, "privileged", "deny"))
        return "this node runs no command unconfined (shell.privileged=deny); drop "
               "\"privileged\" from shell's settings to run it in the sandbox";
    if (!privileged && !job->ctx.sandbox)
        return "this node has no sandbox; give shell the settings {\"privileged\": true} to run "
               "commands unconfined with the node's rights (docs/tools.md)";
    if (!privileged && !wk_sandbox_ready(job->ctx.sandbox))
        return wk_sandbox_describe(job->ctx.sandbox);
    return NULL;
}

static struct wk_sandbox_req shell_req(const struct wk_tool__job *job, const char *const *argv,
                                       const char *const *envp, bool privileged)
{
    struct wk_sandbox_req req = {.argv = argv,
                                 .envp = envp,
                                 .workspace = job->ctx.workspace,
                                 .net = setting(job->ctx.settings_json, "net"),
                                 .privileged = privileged,
                                 .merge_stderr = true,
                                 .limits = wk_sandbox_limits_default()};
    struct wk_sandbox_limits *l = &req.limits;
    l->cpu_s = wk_tool__limit(job, "cpu_limit", l->cpu_s);
    l->mem_bytes = wk_tool__limit(job, "mem_limit", l->mem_bytes);
    l->procs = wk_tool__limit(job, "procs", l->procs);
    l->output_bytes = wk_tool__limit(job, "output_limit", l->output_bytes);
    return req;
}

/* The lines after the output: how it ended, then what isolated the command and what fired. */
static void print_end(FILE *f, const struct wk_sandbox_proc *p, enum wk_sandbox_end end)
{
    if (end == WK_SANDBOX_CANCELLED || end == WK_SANDBOX_WALL)
        fprintf(f, "[killed: %s]",
                end == WK_SANDBOX_CANCELLED ? "the call was cancelled"
                                            : "the call timed out (shell.timeout)");
    else if (end == WK_SANDBOX_OUTPUT)
        fprintf(f, "[killed: the output passed shell.output_limit]");
    else if (WIFEXITED(p->status) && p->wrapped && WEXITSTATUS(p->status) > 128)
        /* bwrap and runsc report a command that died of signal N as 128+N */
        fprintf(f, "[exit status %d: killed by signal %d inside the sandbox]",
                WEXITSTATUS(p->status), WEXITSTATUS(p->status) - 128);
    else if (WIFEXITED(p->status))
        fprintf(f, "[exit status %d]", WEXITSTATUS(p->status));
    else
        fprintf(f, "[killed by signal %d]", WTERMSIG(p->status));
    fprintf(f, "\n[%s%s%s]", p->applied, p->fired[0] ? "; fired: " : "", p->fired);
}

static char *shell_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    const char *command = NULL;
    if (wk_tool__arg_str(job->args, "command", true, &command, &err) != 0)
        return ag_xasprintf("tool 'shell': %s", err.msg);
    const char *rule = option_is(job, "guard", "off") ? NULL : wk_sandbox_guard(command);
    if (rule)
        return ag_xasprintf("tool 'shell' refused the command: it looks like %s (the shell "
                            "guard; docs/sandbox.md)",
                            rule);
    bool privileged = setting(job->ctx.settings_json, "privileged");
    const char *why = refusal(job, privileged);
    if (why)
        return ag_xasprintf("tool 'shell' cannot run the command: %s", why);
    const char *dir = wk_sandbox_workdir(job->ctx.sandbox, privileged, job->ctx.workspace);
    char *home = ag_xasprintf("HOME=%s", dir);
    char *pwd = ag_xasprintf("PWD=%s", dir);
    char *id = ag_xasprintf("AGENTRY_AGENT_ID=%s", job->ctx.agent_id ? job->ctx.agent_id : "");
    const char *envp[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TERM=dumb", home, pwd, id, NULL};
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    struct wk_sandbox_req req = shell_req(job, argv, envp, privileged);
    struct wk_sandbox_proc p;
    char *out = NULL;
    if (wk_sandbox_spawn(job->ctx.sandbox, &req, &p, &err) != 0) {
        out = ag_xasprintf("tool 'shell': %s", err.msg);
    } else {
        struct capture cap;
        capture_init(&cap, (size_t)wk_tool__limit(job, "max_output", SHELL_MAX_OUTPUT));
        enum wk_sandbox_end end = wk_sandbox_run(&p, &req, job->ctx.deadline_ms, job->wake_fd,
                                                 capture_out, &cap);
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        capture_print(&cap, f);
        print_end(f, &p, end);
        fclose(f);
        wk_sandbox_proc_release(&p);
        *is_error = end != WK_SANDBOX_EXITED;
    }
    free(home);
    free(pwd);
    free(id);
    return out;
}

int wk_tool__shell_check_config(const struct wk_config *c, struct ag_err *err)
{
    if (wk_config_check_keys(c, option_keys, err) != 0)
        return -1;
    const char *g = wk_config_get(c, "guard"), *p = wk_config_get(c, "privileged");
    if (g && strcmp(g, "on") != 0 && strcmp(g, "off") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "option 'shell.guard=%s': want on or off", g);
    if (p && strcmp(p, "allow") != 0 && strcmp(p, "deny") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "option 'shell.privileged=%s': want allow or deny", p);
    struct wk_config limits = *c;
    limits.n = 0; /* the limits only, checked as sizes */
    struct wk_config_item items[16];
    for (size_t i = 0; i < c->n && limits.n < 16; i++)
        if (strcmp(c->items[i].key, "guard") != 0 && strcmp(c->items[i].key, "privileged") != 0)
            items[limits.n++] = c->items[i];
    limits.items = items;
    return wk_tool__check_limits(&limits, limit_keys, err);
}

int wk_tool__shell_check_settings(const char *settings_json, struct ag_err *err)
{
    /* "privileged" and "net" are booleans; the rest are limits. */
    cJSON *s = cJSON_Parse(settings_json ? settings_json : "{}");
    int rc = 0;
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        const char *key = i ? "net" : "privileged";
        cJSON *b = cJSON_DetachItemFromObjectCaseSensitive(s, key);
        if (b && !cJSON_IsBool(b))
            rc = ag_err_set(err, AG_INVALID_ARGUMENT, "tool setting '%s' must be true or false",
                            key);
        cJSON_Delete(b);
    }
    if (rc == 0) {
        char *rest = cJSON_IsObject(s) ? cJSON_PrintUnformatted(s) : NULL;
        /* the booleans are gone from rest, but named among what shell takes */
        rc = wk_tool__check_settings(rest ? rest : settings_json, setting_keys, err);
        free(rest);
    }
    cJSON_Delete(s);
    return rc;
}

char *wk_tool__shell_subject(const char *args_json)
{
    cJSON *args = cJSON_Parse(args_json ? args_json : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "command");
    char *out = cJSON_IsString(v) ? ag_xstrdup(v->valuestring) : NULL;
    cJSON_Delete(args);
    return out;
}

int wk_tool__shell_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                       const char *args_json, wk_tool_done_fn *done, void *arg, struct ag_err *err)
{
    /* A command that never ends must not hold a pool thread for ever: without a shell.timeout
     * (or a turn limit), a call gets SHELL_DEFAULT_TIMEOUT_MS. */
    struct wk_call_ctx c = *ctx;
    if (c.deadline_ms == 0)
        c.deadline_ms = ag_now_mono_ms() + SHELL_DEFAULT_TIMEOUT_MS;
    return wk_tool__job_start(t, &c, args_json, shell_work, true, done, arg, err);
}
