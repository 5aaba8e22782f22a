/* worker/tool_shell.c - the "shell" tool: a command run with /bin/sh -c in the agent's workspace.
 *
 * Until the sandbox lands (docs/design: sandbox), a command runs with the node's own user and
 * rights, so the tool runs only for agents whose spec gives it the setting {"privileged": true};
 * any other call is an is_error result saying so, and nothing is started.
 *
 * Arguments {"command": string}. The child: /bin/sh -c COMMAND, cwd the workspace, stdin
 * /dev/null, stdout and stderr on one pipe (so the output keeps their interleaving), a new
 * session (setsid: its own process group), default signal dispositions and mask, no fds but
 * 0-2, and a minimal environment: PATH=/usr/local/bin:/usr/bin:/bin, HOME and PWD the workspace,
 * LANG=C.UTF-8, TERM=dumb, AGENTRY_AGENT_ID. Output: what the command wrote (at most
 * shell.max_output bytes, default 64 KiB, which the spec may lower with "max_output": the first
 * and last halves are kept and the middle cut, with a line saying how much), then a last line
 * "[exit status N]" or "[killed by signal N]". A non-zero status is not is_error (the model
 * reads it); a call that could not start, was cancelled or timed out is.
 *
 * Ending: the call's deadline (shell.timeout, worker/config.h; 10 minutes when neither it nor the
 * turn's time limit sets one) or a cancel kills the whole
 * process group with SIGKILL and reports "[killed: ...]". When the shell itself exits, what is
 * left of its group (background jobs) is killed too, so nothing an agent started outlives its
 * call; a process that left the group with setsid escapes this (the sandbox's pid namespace will
 * close that gap). Output still open after that is read for at most SHELL_DRAIN_MS.
 *
 * Threads: run() on the caller's thread; the command is started and waited for on a pool thread
 * (tool_job.c), which it occupies for its whole run: poll(2) on the pipe, a pidfd and the job's
 * cancel eventfd, so a cancel or the deadline acts at once. Size the pool for the shells an
 * node runs at once (worker/runner). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define SHELL_MAX_OUTPUT (64 << 10)
#define SHELL_DRAIN_MS 500
#define SHELL_DEFAULT_TIMEOUT_MS (10 * 60 * 1000) /* without shell.timeout or a turn limit */

static const char *const shell_keys[] = {"max_output", NULL};

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

/* A running command: its pid (and process group), its pidfd and the read end of its pipe. */
struct child {
    pid_t pid;
    int pidfd, out_fd;
    bool reaped;
    int status;
};

/* Kill the process group, then reap the shell if that is still to do. While the shell is a
 * zombie its pid is still its group's id, so the kill cannot reach another process. */
static void child_kill(struct child *ch)
{
    kill(-ch->pid, SIGKILL);
    if (!ch->reaped) {
        while (waitpid(ch->pid, &ch->status, 0) < 0 && errno == EINTR) {
        }
        ch->reaped = true;
    }
}

static int child_spawn(struct child *ch, const struct wk_tool__job *job, const char *command,
                       struct ag_err *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot start the command: pipe: %s",
                          strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawn_file_actions_addchdir_np(&fa, job->ctx.workspace);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *home = ag_xasprintf("HOME=%s", job->ctx.workspace);
    char *pwd = ag_xasprintf("PWD=%s", job->ctx.workspace);
    char *id = ag_xasprintf("AGENTRY_AGENT_ID=%s", job->ctx.agent_id ? job->ctx.agent_id : "");
    char *envp[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TERM=dumb", home, pwd, id, NULL};
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    int rc = posix_spawn(&ch->pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(home);
    free(pwd);
    free(id);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return ag_err_set(err, AG_UNAVAILABLE, "cannot start /bin/sh in '%s': %s",
                          job->ctx.workspace, strerror(rc));
    }
    ch->out_fd = p[0];
    ch->reaped = false;
    ch->pidfd = (int)syscall(SYS_pidfd_open, ch->pid, 0);
    if (ch->pidfd < 0) {
        int e = errno;
        child_kill(ch);
        close(ch->out_fd);
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot wait for the command: pidfd_open: %s (Linux 5.3 or later is "
                          "needed)",
                          strerror(e));
    }
    return 0;
}

static int64_t poll_timeout(int64_t until_ms)
{
    if (until_ms <= 0)
        return -1;
    int64_t left = until_ms - ag_now_mono_ms();
    return left < 0 ? 0 : left > 60000 ? 60000 : left;
}

/* Read the command's output until the shell exits (then for at most SHELL_DRAIN_MS more, for
 * what is still in the pipe), or a cancel or the deadline kills it. Returns AG_OK, or why the
 * group was killed. The shell may close its output long before it exits: waiting goes on. */
static enum ag_code child_wait(struct child *ch, const struct wk_tool__job *job,
                               struct capture *cap)
{
    enum ag_code why = AG_OK;
    int64_t drain_until = 0;
    while (!ch->reaped || (ch->out_fd >= 0 && ag_now_mono_ms() < drain_until)) {
        struct pollfd fds[3] = {{ch->out_fd, POLLIN, 0},
                                {ch->reaped ? -1 : ch->pidfd, POLLIN, 0},
                                {why == AG_OK ? job->wake_fd : -1, POLLIN, 0}};
        int n = poll(fds, 3, (int)poll_timeout(ch->reaped ? drain_until : job->ctx.deadline_ms));
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && fds[0].revents) {
            char buf[16384];
            ssize_t r = read(ch->out_fd, buf, sizeof(buf));
            if (r > 0) {
                capture_add(cap, buf, (size_t)r);
            } else if (r == 0 || errno != EINTR) {
                close(ch->out_fd);
                ch->out_fd = -1;
            }
        }
        if (n > 0 && fds[1].revents) {
            child_kill(ch); /* background jobs go with the shell */
            drain_until = ag_now_mono_ms() + SHELL_DRAIN_MS;
        }
        if (why == AG_OK && !ch->reaped && (why = wk_tool__job_over(job)) != AG_OK) {
            child_kill(ch);
            drain_until = ag_now_mono_ms() + SHELL_DRAIN_MS;
        }
    }
    if (!ch->reaped)
        child_kill(ch);
    if (ch->out_fd >= 0)
        close(ch->out_fd);
    close(ch->pidfd);
    return why;
}

/* Whether the spec's settings for shell say {"privileged": true}. */
static bool privileged(const char *settings_json)
{
    cJSON *s = settings_json ? cJSON_Parse(settings_json) : NULL;
    bool yes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "privileged"));
    cJSON_Delete(s);
    return yes;
}

static char *shell_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    const char *command = NULL;
    if (!privileged(job->ctx.settings_json))
        return ag_xstrdup("tool 'shell' is not allowed for this agent: until the sandbox lands, "
                          "a command runs with the node's own rights, so the agent's spec must "
                          "give shell the settings {\"privileged\": true} (docs/tools.md)");
    if (wk_tool__arg_str(job->args, "command", true, &command, &err) != 0)
        return ag_xasprintf("tool 'shell': %s", err.msg);
    struct child ch;
    if (child_spawn(&ch, job, command, &err) != 0)
        return ag_xasprintf("tool 'shell': %s", err.msg);
    struct capture cap;
    capture_init(&cap, (size_t)wk_tool__limit(job, "max_output", SHELL_MAX_OUTPUT));
    enum ag_code why = child_wait(&ch, job, &cap);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    capture_print(&cap, f);
    if (why != AG_OK)
        fprintf(f, "[killed: %s]",
                why == AG_CANCELLED ? "the call was cancelled"
                                    : "the call timed out (shell.timeout)");
    else if (WIFEXITED(ch.status))
        fprintf(f, "[exit status %d]", WEXITSTATUS(ch.status));
    else
        fprintf(f, "[killed by signal %d]", WTERMSIG(ch.status));
    fclose(f);
    *is_error = why != AG_OK;
    return out;
}

int wk_tool__shell_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, shell_keys, err);
}

int wk_tool__shell_check_settings(const char *settings_json, struct ag_err *err)
{
    /* "privileged" is a boolean; the rest are limits. */
    cJSON *s = cJSON_Parse(settings_json ? settings_json : "{}");
    cJSON *priv = cJSON_DetachItemFromObjectCaseSensitive(s, "privileged");
    int rc = 0;
    if (priv && !cJSON_IsBool(priv)) {
        rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                        "tool setting 'privileged' must be true or "
                        "false");
    } else {
        char *rest = cJSON_IsObject(s) ? cJSON_PrintUnformatted(s) : NULL;
        /* "privileged" is gone from rest, but named among what shell takes. */
        static const char *const all_keys[] = {"privileged", "max_output", NULL};
        rc = wk_tool__check_settings(rest ? rest : settings_json, all_keys, err);
        free(rest);
    }
    cJSON_Delete(priv);
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
