/* worker/sandbox.c - the back-end table, the start-up self-test, spawn, kill and the reader
 * (see sandbox.h).
 *
 * Why a dedicated uid: bwrap run by host root maps the sandbox's root to host uid 0, and with
 * every capability dropped that uid still owns root's files, so /etc/shadow (0640 root) and any
 * root-owned file on a writable bind stay readable and writable (measured:
 * shared/design/sandbox.md). So when the node is root the child drops to --sandbox-user (groups
 * cleared, bounding set emptied, no_new_privs) before it execs bwrap, and the workspace is
 * handed to that user's group (worker/workspace.h, wk_workspace_share). A node that is not root
 * is already unprivileged: bwrap runs as the node's own uid.
 *
 * The child between fork and exec makes only async-signal-safe calls (the node has many
 * threads): everything it needs (argv, envp, the cgroup files, the rlimits, the seccomp program
 * in a pipe) is prepared by the parent. It reports a failed step through a close-on-exec pipe.
 *
 * Threads: new/free on one thread; spawn, run, kill and release on the caller's, for its own
 * proc; the sandbox is read-only after new. */
#include "worker/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/metrics.h"
#include "worker/sandbox_internal.h"
#include "worker/workspace.h"

#define SANDBOX_DEFAULT_USER "agentry-sbx"
#define SANDBOX_DRAIN_MS 500
#define SANDBOX_PATH "PATH=/usr/local/bin:/usr/bin:/bin"
#define SANDBOX_SECCOMP_FD 3
#define SANDBOX_ERR_FD 4
/* Fds the child moves into 0..4 are first put at or above this, so no dup2 clobbers another. */
#define SANDBOX_HIGH_FD 10

/* A growing argv. */
struct argv {
    char **v;
    size_t n, cap;
};

static void av_add(struct argv *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = ag_xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = ag_xstrdup(s);
    a->v[a->n] = NULL;
}

static void av_addv(struct argv *a, const char *const *v)
{
    for (; *v; v++)
        av_add(a, *v);
}

static void av_add_cmd(struct argv *a, const struct wk_sandbox_req *req)
{
    for (const char *const *p = req->argv; *p; p++)
        av_add(a, *p);
}

/* sandbox.md §2, with the namespaces, session and capabilities of the safe mode: a tmpfs root
 * (a read-only bind of / cannot take the /workspace mount point), /usr and /etc read-only (the
 * shadow files masked), merged-/usr symlinks, private /dev, /proc and /tmp. */
static void build_bwrap(struct argv *a, const struct wk_sandbox_req *req, int seccomp_fd)
{
    static const char *const head[] = {"bwrap",
                                       "--unshare-all",
                                       "--die-with-parent",
                                       "--new-session",
                                       "--cap-drop",
                                       "ALL",
                                       "--ro-bind",
                                       "/usr",
                                       "/usr",
                                       "--symlink",
                                       "usr/bin",
                                       "/bin",
                                       "--symlink",
                                       "usr/sbin",
                                       "/sbin",
                                       "--symlink",
                                       "usr/lib",
                                       "/lib",
                                       "--symlink",
                                       "usr/lib64",
                                       "/lib64",
                                       "--ro-bind",
                                       "/etc",
                                       "/etc",
                                       "--ro-bind",
                                       "/dev/null",
                                       "/etc/shadow",
                                       "--ro-bind",
                                       "/dev/null",
                                       "/etc/gshadow",
                                       "--dev",
                                       "/dev",
                                       "--proc",
                                       "/proc",
                                       "--tmpfs",
                                       "/tmp",
                                       NULL};
    av_addv(a, head);
    if (req->net)
        av_add(a, "--share-net");
    /* After the tmpfs /tmp, which would hide a path under it bound before. */
    for (const char *const *p = req->ro_paths; p && *p; p++) {
        av_add(a, "--ro-bind");
        av_add(a, *p);
        av_add(a, *p);
    }
    static const char *const ws[] = {
        "--chdir",    "/workspace", "--setenv", "HOME",         "/workspace", "--setenv", "PWD",
        "/workspace", "--hostname", "sandbox",  "--remount-ro", "/",          NULL};
    av_add(a, "--bind");
    av_add(a, req->workspace);
    av_add(a, "/workspace");
    av_addv(a, ws);
    if (seccomp_fd >= 0) {
        char fd[16];
        snprintf(fd, sizeof(fd), "%d", seccomp_fd);
        av_add(a, "--seccomp");
        av_add(a, fd);
    }
    av_add(a, "--");
    av_add_cmd(a, req);
}

/* gVisor's own kernel between the command and the host; ptrace platform (kvm hung on these
 * machines). `do` puts an in-memory overlay over the host's root. */
static void build_runsc(struct argv *a, const struct wk_sandbox_req *req, int seccomp_fd)
{
    (void)seccomp_fd; /* gVisor filters the host calls of its own kernel */
    av_add(a, "runsc");
    av_add(a, req->net ? "--network=host" : "--network=none");
    av_add(a, "--platform=ptrace");
    av_add(a, "do");
    av_add(a, "--quiet");
    av_add(a, "--cwd");
    av_add(a, req->workspace);
    av_add_cmd(a, req);
}

static void build_direct(struct argv *a, const struct wk_sandbox_req *req, int seccomp_fd)
{
    (void)seccomp_fd;
    av_add_cmd(a, req);
}

/* A back end: how its command line is built and run. */
struct wk_sandbox__row {
    const char *name;
    const char *program; /* the wrapper found in PATH; NULL: argv[0] is the command */
    void (*build)(struct argv *a, const struct wk_sandbox_req *req, int seccomp_fd);
    bool drops_uid;      /* runs as the sandbox user when the node is root */
    bool uses_seccomp;   /* we pass our filter */
    bool limits_address; /* RLIMIT_AS is safe for it (Go's runtime reserves far more) */
    bool at_workspace;   /* the command sees the workspace at /workspace */
};

static const struct wk_sandbox__row rows[] = {
    {"bwrap", "bwrap", build_bwrap, true, true, true, true},
    {"runsc", "runsc", build_runsc, false, false, false, false},
    {"direct", NULL, build_direct, false, false, true, false},
    {NULL, NULL, NULL, false, false, false, false},
};

static const struct wk_sandbox__row *row_find(const char *name)
{
    for (const struct wk_sandbox__row *r = rows; r->name; r++)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

char **wk_sandbox_argv(const char *row, const struct wk_sandbox_req *req, int seccomp_fd)
{
    const struct wk_sandbox__row *r = row_find(row);
    if (!r)
        return NULL;
    struct argv a = {0};
    r->build(&a, req, seccomp_fd);
    return a.v;
}

void wk_sandbox_argv_free(char **argv)
{
    for (char **p = argv; p && *p; p++)
        free(*p);
    free(argv);
}

struct wk_sandbox_limits wk_sandbox_limits_default(void)
{
    return (struct wk_sandbox_limits){.cpu_s = 600,
                                      .mem_bytes = INT64_C(2) << 30,
                                      .procs = 256,
                                      .output_bytes = 16 << 20,
                                      .nofile = 1024,
                                      .fsize_bytes = INT64_C(1) << 30};
}

struct wk_sandbox_limits wk_sandbox_limits_server(void)
{
    struct wk_sandbox_limits l = wk_sandbox_limits_default();
    l.cpu_s = 0;
    l.output_bytes = 0;
    l.wall_ms = 0;
    return l;
}

/* The first of dirs holding an executable name; owned, NULL if none. */
static char *find_program(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? ag_xstrdup(name) : NULL;
    static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin",
                                       "/usr/sbin",      "/sbin",    NULL};
    for (const char *const *d = dirs; *d; d++) {
        char *p = ag_xasprintf("%s/%s", *d, name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

/* What the child does between fork and exec, all prepared by the parent. */
struct plan {
    char *path;  /* owned: what to exec */
    char **argv; /* owned */
    char *const *envp;
    int fds[5]; /* stdin, stdout, stderr, seccomp (-1: none), the error pipe; all >= HIGH_FD */
    char procs[4][192];
    struct {
        int res;
        rlim_t v;
    } rl[8];
    int nrl;
    bool drop; /* to uid/gid, emptying the bounding set up to cap_last */
    uid_t uid;
    gid_t gid;
    int cap_last;
    bool no_new_privs;
    const char *cwd;
};

enum step {
    ST_SETSID,
    ST_DUP,
    ST_CGROUP,
    ST_RLIMIT,
    ST_CAPS,
    ST_SETGROUPS,
    ST_SETGID,
    ST_SETUID,
    ST_PRCTL,
    ST_CHDIR,
    ST_EXEC
};
static const char *const step_names[] = {
    "setsid",    "dup2",      "join its cgroup", "setrlimit", "drop capabilities",
    "setgroups", "setresgid", "setresuid",       "prctl",     "chdir",
    "exec"};

static _Noreturn void child_fail(int fd, enum step s)
{
    int msg[2] = {(int)s, errno};
    ssize_t n = write(fd, msg, sizeof(msg));
    (void)n;
    _exit(127);
}

static _Noreturn void child_main(const struct plan *c)
{
    int ep = c->fds[4];
    if (setsid() < 0)
        child_fail(ep, ST_SETSID);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP and the RT gaps */
    for (int i = 0; i < 4; i++)
        if (c->fds[i] >= 0 && dup2(c->fds[i], i) < 0)
            child_fail(ep, ST_DUP);
    if (dup3(ep, SANDBOX_ERR_FD, O_CLOEXEC) < 0)
        child_fail(ep, ST_DUP);
    ep = SANDBOX_ERR_FD;
    if (c->fds[3] < 0)
        close(SANDBOX_SECCOMP_FD);
    syscall(SYS_close_range, SANDBOX_ERR_FD + 1, ~0U, 0);
    for (int i = 0; i < 4; i++) {
        if (!c->procs[i][0])
            continue;
        int fd = open(c->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            child_fail(ep, ST_CGROUP);
        close(fd);
    }
    for (int i = 0; i < c->nrl; i++) {
        struct rlimit r = {c->rl[i].v, c->rl[i].v};
        if (setrlimit(c->rl[i].res, &r) != 0)
            child_fail(ep, ST_RLIMIT);
    }
    if (c->drop) {
        for (int cap = 0; cap <= c->cap_last; cap++)
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
                child_fail(ep, ST_CAPS);
        if (setgroups(0, NULL) != 0)
            child_fail(ep, ST_SETGROUPS);
        if (setresgid(c->gid, c->gid, c->gid) != 0)
            child_fail(ep, ST_SETGID);
        if (setresuid(c->uid, c->uid, c->uid) != 0)
            child_fail(ep, ST_SETUID);
    }
    /* After the uid change, which clears it: the wrapper dies with the node's thread. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 ||
        (c->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0))
        child_fail(ep, ST_PRCTL);
    if (c->cwd && chdir(c->cwd) != 0)
        child_fail(ep, ST_CHDIR);
    execve(c->path, c->argv, c->envp);
    child_fail(ep, ST_EXEC);
}

/* fd moved to at least SANDBOX_HIGH_FD, close-on-exec (the child's dup2 clears that). */
static int high_fd(int fd)
{
    if (fd < 0 || fd >= SANDBOX_HIGH_FD)
        return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, SANDBOX_HIGH_FD);
    close(fd);
    return h;
}

static void plan_rlimit(struct plan *c, int res, int64_t v)
{
    if (v > 0) {
        c->rl[c->nrl].res = res;
        c->rl[c->nrl++].v = (rlim_t)v;
    }
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A pipe holding the seccomp program, its read end for bwrap: each spawn gets its own, so no
 * two bwraps share a file offset. The program is a few hundred bytes, far below a pipe's
 * buffer. */
static int seccomp_pipe(const struct wk_sandbox *sb, bool net)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    ssize_t n = write(p[1], sb->bpf[net], sb->bpf_len[net]);
    close(p[1]);
    if (n != (ssize_t)sb->bpf_len[net]) {
        close(p[0]);
        return -1;
    }
    return high_fd(p[0]);
}

/* The pipes, the filter and the error pipe; parent's ends into p. -1 with errno. */
static int plan_fds(const struct wk_sandbox *sb, const struct wk_sandbox__row *row,
                    const struct wk_sandbox_req *req, struct plan *c, struct wk_sandbox_proc *p,
                    int *err_r)
{
    int io[2];
    for (int i = 0; i < 5; i++)
        c->fds[i] = -1;
    if (req->stdin_pipe) {
        if (pipe2(io, O_CLOEXEC) != 0)
            return -1;
        c->fds[0] = high_fd(io[0]);
        p->in_fd = io[1];
    } else if ((c->fds[0] = high_fd(open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) {
        return -1;
    }
    if (pipe2(io, O_CLOEXEC) != 0)
        return -1;
    c->fds[1] = high_fd(io[1]);
    p->out_fd = io[0];
    if (req->merge_stderr) {
        c->fds[2] = c->fds[1];
    } else {
        if (pipe2(io, O_CLOEXEC) != 0)
            return -1;
        c->fds[2] = high_fd(io[1]);
        p->err_fd = io[0];
    }
    if (row->uses_seccomp && (c->fds[3] = seccomp_pipe(sb, req->net)) < 0)
        return -1;
    if (pipe2(io, O_CLOEXEC) != 0)
        return -1;
    *err_r = io[0];
    c->fds[4] = high_fd(io[1]);
    for (int i = 0; i < 5; i++)
        if (c->fds[i] < 0 && (i < 3 || i == 4))
            return -1;
    return 0;
}

static void plan_release(struct plan *c)
{
    for (int i = 0; i < 5; i++)
        if (c->fds[i] >= 0 && !(i == 2 && c->fds[2] == c->fds[1]))
            close(c->fds[i]);
    free(c->path);
    wk_sandbox_argv_free(c->argv);
}

static void fmt_size(char *out, size_t cap, int64_t v)
{
    if (v >= (INT64_C(1) << 30) && v % (INT64_C(1) << 30) == 0)
        snprintf(out, cap, "%lldGiB", (long long)(v >> 30));
    else if (v >= (1 << 20) && v % (1 << 20) == 0)
        snprintf(out, cap, "%lldMiB", (long long)(v >> 20));
    else
        snprintf(out, cap, "%lld", (long long)v);
}

/* Limits into the plan (what the cgroups did not take, cg: WK_SANDBOX__CG_*), and the trace's
 * words for them into p->applied. */
static void plan_limits(const struct wk_sandbox *sb, const struct wk_sandbox__row *row,
                        const struct wk_sandbox_req *req, struct plan *c, int cg,
                        const char *cg_text, struct wk_sandbox_proc *p)
{
    const struct wk_sandbox_limits *l = &req->limits;
    c->rl[0].res = RLIMIT_CORE; /* a crashed tool's core could fill the workspace */
    c->rl[0].v = 0;
    c->nrl = 1;
    plan_rlimit(c, RLIMIT_CPU, l->cpu_s);
    plan_rlimit(c, RLIMIT_FSIZE, l->fsize_bytes);
    plan_rlimit(c, RLIMIT_NOFILE, l->nofile);
    bool as = !(cg & WK_SANDBOX__CG_MEM) && row->limits_address && l->mem_bytes > 0;
    bool nproc = !(cg & WK_SANDBOX__CG_PIDS) && c->drop && l->procs > 0;
    if (as)
        plan_rlimit(c, RLIMIT_AS, l->mem_bytes);
    if (nproc)
        plan_rlimit(c, RLIMIT_NPROC, l->procs);
    char mem[24], fsize[24], out[24];
    fmt_size(mem, sizeof(mem), l->mem_bytes);
    fmt_size(fsize, sizeof(fsize), l->fsize_bytes);
    fmt_size(out, sizeof(out), l->output_bytes);
    snprintf(p->applied, sizeof(p->applied),
             "sandbox=%s%s%s net=%s seccomp=%s limits: %s rlimit(cpu=%llds fsize=%s nofile=%lld "
             "core=0%s%s%s%s) memory=%s procs=%lld output=%s",
             row->name, c->drop ? " user=" : "", c->drop ? sb->user : "", req->net ? "on" : "off",
             c->fds[3] >= 0 ? "on" : "off", cg_text, (long long)l->cpu_s, fsize,
             (long long)l->nofile, as ? " as=" : "", as ? mem : "", nproc ? " nproc=" : "",
             nproc ? "(per uid)" : "", mem, (long long)l->procs, out);
}

/* Fork and exec the plan; the child's failed step, if any, as an error. */
static int plan_run(struct plan *c, int err_r, struct wk_sandbox_proc *p, struct ag_err *err)
{
    pid_t pid = fork();
    if (pid == 0)
        child_main(c);
    int e = errno;
    close_fd(&c->fds[4]);
    if (pid < 0) {
        close(err_r);
        return ag_err_set(err, AG_UNAVAILABLE, "cannot start '%s': fork: %s", c->argv[0],
                          strerror(e));
    }
    p->pid = pid;
    int msg[2];
    ssize_t n;
    while ((n = read(err_r, msg, sizeof(msg))) < 0 && errno == EINTR) {
    }
    close(err_r);
    if (n == (ssize_t)sizeof(msg) && msg[0] >= 0 && msg[0] <= ST_EXEC) {
        while (waitpid(pid, &p->status, 0) < 0 && errno == EINTR) {
        }
        p->reaped = true;
        return ag_err_set(err, AG_UNAVAILABLE, "cannot start '%s': %s: %s", c->argv[0],
                          step_names[msg[0]], strerror(msg[1]));
    }
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (p->pidfd < 0)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot wait for '%s': pidfd_open: %s (Linux 5.3 or later is needed)",
                          c->argv[0], strerror(errno));
    return 0;
}

int wk_sandbox_spawn(const struct wk_sandbox *sb, const struct wk_sandbox_req *req,
                     struct wk_sandbox_proc *out, struct ag_err *err)
{
    memset(out, 0, sizeof(*out));
    out->pid = -1;
    out->pidfd = out->in_fd = out->out_fd = out->err_fd = -1;
    out->cg_kill = -1;
    out->sb = sb;
    out->reaped = true;                  /* until there is a child */
    static const struct wk_sandbox none; /* a privileged request without a sandbox */
    if (!sb && !req->privileged)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "no sandbox to run '%s' in", req->argv[0]);
    sb = sb ? sb : &none;
    const struct wk_sandbox__row *row = req->privileged ? row_find("direct") : sb->row;
    if (!req->privileged && !sb->ready)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "no sandbox to run '%s' in: %s",
                          req->argv[0], sb->describe);
    out->wrapped = row->program != NULL;
    if (!req->workspace && row != row_find("direct"))
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot run '%s' in the sandbox without a workspace (set the node's "
                          "--workspace-root)",
                          req->argv[0]);
    struct plan c = {.envp = (char *const *)req->envp,
                     .drop = row->drops_uid && sb->user,
                     .uid = sb->uid,
                     .gid = sb->gid,
                     .cap_last = sb->cap_last,
                     .no_new_privs = row != row_find("direct"),
                     .cwd = req->workspace};
    if (c.drop && wk_workspace_share(req->workspace, sb->gid, err) != 0) {
        ag_err_prefix(err, "cannot give the sandbox user '%s' the workspace", sb->user);
        return -1;
    }
    c.argv = wk_sandbox_argv(row->name, req, row->uses_seccomp ? SANDBOX_SECCOMP_FD : -1);
    c.path = find_program(row->program ? row->program : req->argv[0]);
    int err_r = -1, rc = 0;
    if (!c.path) {
        rc = ag_err_set(err, AG_FAILED_PRECONDITION, "cannot start '%s': no such program",
                        row->program ? row->program : req->argv[0]);
    } else if (plan_fds(sb, row, req, &c, out, &err_r) != 0) {
        rc = ag_err_set(err, AG_UNAVAILABLE, "cannot start '%s': pipe: %s", req->argv[0],
                        strerror(errno));
    } else {
        char cg_text[96];
        int cg = wk_sandbox__cg_create(&sb->cg, &req->limits, out, cg_text, sizeof(cg_text));
        for (int i = 0; i < 4; i++)
            if (out->cg[i][0])
                snprintf(c.procs[i], sizeof(c.procs[i]), "%s/cgroup.procs", out->cg[i]);
        plan_limits(sb, row, req, &c, cg, cg_text, out);
        out->reaped = false;
        rc = plan_run(&c, err_r, out, err);
        err_r = -1;
    }
    if (err_r >= 0)
        close(err_r);
    plan_release(&c);
    if (rc != 0)
        wk_sandbox_proc_release(out);
    return rc;
}

void wk_sandbox_kill(struct wk_sandbox_proc *p)
{
    wk_sandbox__cg_kill(p);
    /* While the wrapper is unreaped (a zombie at worst) its pid and group id cannot be reused. */
    if (!p->reaped && p->pid > 0) {
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
    }
}

void wk_sandbox_wait(struct wk_sandbox_proc *p)
{
    if (p->reaped)
        return;
    /* What the wrapper left behind in its group goes with it, as bwrap's children do: killed
     * while the wrapper is a zombie, so the group id cannot have been reused. */
    siginfo_t si;
    while (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    kill(-p->pid, SIGKILL);
    while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR) {
    }
    p->reaped = true;
    wk_sandbox__cg_fired(p);
}

void wk_sandbox_proc_release(struct wk_sandbox_proc *p)
{
    if (!p->reaped) {
        wk_sandbox_kill(p);
        wk_sandbox_wait(p);
    }
    wk_sandbox__cg_kill(p);
    wk_sandbox__cg_remove(p);
    close_fd(&p->pidfd);
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
}

/* Whether the wrapper exits within ms (its pidfd becomes readable). */
static bool exits_within(const struct wk_sandbox_proc *p, int64_t ms)
{
    int64_t until = ag_now_mono_ms() + ms;
    for (;;) {
        int64_t left = until - ag_now_mono_ms();
        struct pollfd f = {p->pidfd, POLLIN, 0};
        int n = poll(&f, 1, left < 0 ? 0 : (int)left);
        if (n > 0)
            return true;
        if (n == 0 || errno != EINTR)
            return false;
    }
}

void wk_sandbox_stop(struct wk_sandbox_proc *p, int64_t grace_ms)
{
    close_fd(&p->in_fd);
    if (p->reaped)
        return;
    if (!exits_within(p, grace_ms)) {
        /* Unreaped, so neither id can have been reused. */
        kill(-p->pid, SIGTERM);
        kill(p->pid, SIGTERM);
        if (!exits_within(p, grace_ms))
            wk_sandbox_kill(p);
    }
    wk_sandbox_wait(p);
    wk_sandbox__cg_kill(p); /* what the wrapper left in its cgroup */
}

static int poll_ms(int64_t until_ms)
{
    if (until_ms <= 0)
        return -1;
    int64_t left = until_ms - ag_now_mono_ms();
    return left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

/* One read from *fd into out(), up to the output limit; closes *fd at its end. Returns false
 * when this read went past the limit. */
static bool read_some(int *fd, const struct wk_sandbox_req *req, uint64_t *total,
                      wk_sandbox_output_fn *out, void *arg)
{
    char buf[65536];
    ssize_t r = read(*fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
        return true;
    if (r <= 0) {
        close_fd(fd);
        return true;
    }
    uint64_t max = req->limits.output_bytes > 0 ? (uint64_t)req->limits.output_bytes : UINT64_MAX;
    size_t keep = *total >= max                ? 0
                  : max - *total < (uint64_t)r ? (size_t)(max - *total)
                                               : (size_t)r;
    *total += (uint64_t)r;
    if (keep)
        out(arg, buf, keep);
    return *total <= max;
}

enum wk_sandbox_end wk_sandbox_run(struct wk_sandbox_proc *p, const struct wk_sandbox_req *req,
                                   int64_t deadline_ms, int wake_fd, wk_sandbox_output_fn *out,
                                   void *arg)
{
    int64_t until = deadline_ms;
    if (req->limits.wall_ms > 0) {
        int64_t wall = ag_now_mono_ms() + req->limits.wall_ms;
        until = until > 0 && until < wall ? until : wall;
    }
    enum wk_sandbox_end end = WK_SANDBOX_EXITED;
    uint64_t total = 0;
    int64_t drain_until = 0;
    while (!p->reaped || ((p->out_fd >= 0 || p->err_fd >= 0) && ag_now_mono_ms() < drain_until)) {
        struct pollfd fds[4] = {{p->out_fd, POLLIN, 0},
                                {p->err_fd, POLLIN, 0},
                                {p->reaped ? -1 : p->pidfd, POLLIN, 0},
                                {end == WK_SANDBOX_EXITED ? wake_fd : -1, POLLIN, 0}};
        int n = poll(fds, 4, poll_ms(p->reaped ? drain_until : until));
        if (n < 0 && errno != EINTR)
            break;
        enum wk_sandbox_end why = WK_SANDBOX_EXITED;
        for (int i = 0; i < 2 && n > 0; i++)
            if (fds[i].revents && !read_some(i ? &p->err_fd : &p->out_fd, req, &total, out, arg))
                why = WK_SANDBOX_OUTPUT;
        if (n > 0 && fds[3].revents)
            why = WK_SANDBOX_CANCELLED;
        if (!p->reaped && until > 0 && ag_now_mono_ms() >= until)
            why = WK_SANDBOX_WALL;
        if (why != WK_SANDBOX_EXITED && end == WK_SANDBOX_EXITED) {
            end = why;
            wk_metrics_sandbox_kill(why == WK_SANDBOX_WALL     ? "wall"
                                    : why == WK_SANDBOX_OUTPUT ? "output"
                                                               : "cancelled");
            wk_sandbox_kill(p);
        }
        if (n > 0 && fds[2].revents) {
            wk_sandbox_wait(p);
            wk_sandbox_kill(p); /* the rest of the tree (a cgroup outlives its wrapper) */
            drain_until = ag_now_mono_ms() + SANDBOX_DRAIN_MS;
        }
    }
    if (!p->reaped) {
        wk_sandbox_kill(p);
        wk_sandbox_wait(p);
    }
    wk_sandbox__cg_kill(p);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    return end;
}

static void collect(void *arg, const char *data, size_t len)
{
    FILE *f = arg;
    fwrite(data, 1, len, f);
}

/* Run argv in the sandbox with an empty workspace; its output (owned) and status. */
static int self_run(struct wk_sandbox *sb, const char *const *argv, char **output, int *status,
                    struct ag_err *err)
{
    char ws[] = "/tmp/agentry-sandbox-probe-XXXXXX";
    if (!mkdtemp(ws))
        return ag_err_set(err, AG_UNAVAILABLE, "cannot make a probe directory: %s",
                          strerror(errno));
    const char *envp[] = {SANDBOX_PATH, "LANG=C.UTF-8", NULL};
    struct wk_sandbox_req req = {.argv = argv,
                                 .envp = envp,
                                 .workspace = ws,
                                 .merge_stderr = true,
                                 .limits = wk_sandbox_limits_default()};
    req.limits.wall_ms = 60000;
    struct wk_sandbox_proc p;
    int rc = wk_sandbox_spawn(sb, &req, &p, err);
    if (rc == 0) {
        size_t len = 0;
        FILE *f = open_memstream(output, &len);
        wk_sandbox_run(&p, &req, 0, -1, collect, f);
        fclose(f);
        *status = p.status;
        wk_sandbox_proc_release(&p);
    }
    rmdir(ws);
    return rc;
}

/* bwrap: `true` runs, and a write to /etc fails with EROFS. runsc: `true` runs. */
static int self_test(struct wk_sandbox *sb, struct ag_err *err)
{
    static const char probe_path[] = "/etc/.agentry-sandbox-probe";
    static const char *const probe[] = {"/bin/sh", "-c", "true && : > /etc/.agentry-sandbox-probe",
                                        NULL};
    char *out = NULL;
    int status = 0;
    sb->ready = true; /* for self_run's spawn */
    int rc = self_run(sb, probe, &out, &status, err);
    sb->ready = false;
    bool wrote = access(probe_path, F_OK) == 0;
    if (wrote)
        unlink(probe_path);
    if (rc == 0 && wrote)
        rc = ag_err_set(err, AG_FAILED_PRECONDITION,
                        "the self-test wrote to the host's /etc from inside the sandbox");
    else if (rc == 0 && sb->row->uses_seccomp && !strstr(out, "Read-only file system"))
        rc = ag_err_set(err, AG_FAILED_PRECONDITION,
                        "the self-test's write to /etc did not fail with EROFS (status %d): %.160s",
                        status, out ? out : "");
    else if (rc == 0 && !sb->row->uses_seccomp && status != 0)
        rc = ag_err_set(err, AG_FAILED_PRECONDITION, "the self-test failed (status %d): %.160s",
                        status, out ? out : "");
    free(out);
    return rc;
}

/* The host user to run as: NULL when the node is not root (it is unprivileged already). */
static int find_user(struct wk_sandbox *sb, const char *name, struct ag_err *err)
{
    sb->uid = geteuid();
    sb->gid = getegid();
    if (geteuid() != 0)
        return 0;
    char buf[4096];
    struct passwd pw, *res = NULL;
    if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "the sandbox user '%s' does not exist (run 'make deps', or 'useradd "
                          "--system --no-create-home --shell /usr/sbin/nologin %s')",
                          name, name);
    if (res->pw_uid == 0 || res->pw_gid == 0)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "the sandbox user '%s' is root or in group root; give it its own "
                          "unprivileged uid and group",
                          name);
    sb->user = ag_xstrdup(name);
    sb->uid = res->pw_uid;
    sb->gid = res->pw_gid;
    return 0;
}

static int read_cap_last(void)
{
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    int v = 63; /* drop every possible bit when the kernel does not say */
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 63;
        fclose(f);
    }
    return v;
}

/* Set sb up for its back end; -1 with why it cannot run unprivileged requests. */
static int sandbox_setup(struct wk_sandbox *sb, const struct wk_sandbox_opts *o, struct ag_err *err)
{
    char *prog = sb->row->program ? find_program(sb->row->program) : NULL;
    if (sb->row->program && !prog)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "'%s' is not installed (run 'make deps', or apt-get install %s)",
                          sb->row->program,
                          strcmp(sb->row->program, "bwrap") == 0 ? "bubblewrap" : "runsc");
    free(prog);
    if (sb->row->drops_uid && find_user(sb, o->user ? o->user : SANDBOX_DEFAULT_USER, err) != 0)
        return -1;
    if (sb->row->uses_seccomp && wk_sandbox__seccomp_build(sb, err) != 0)
        return -1;
    if (o->skip_self_test)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "the self-test was skipped");
    return self_test(sb, err);
}

struct wk_sandbox *wk_sandbox_new(const struct wk_sandbox_opts *o, struct ag_err *err)
{
    const char *mode = o->mode ? o->mode : "bwrap";
    const struct wk_sandbox__row *row = strcmp(mode, "unsafe") == 0   ? row_find("direct")
                                        : strcmp(mode, "direct") == 0 ? NULL
                                                                      : row_find(mode);
    if (!row) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "unknown sandbox '%s': want bwrap (the default), runsc or unsafe", mode);
        return NULL;
    }
    struct wk_sandbox *sb = ag_xcalloc(1, sizeof(*sb));
    sb->row = row;
    sb->cap_last = read_cap_last();
    wk_sandbox__cg_detect(&sb->cg, o->cgroups_off);
    char cg[200];
    if (sb->cg.version)
        snprintf(cg, sizeof(cg), "cgroups=v%d", sb->cg.version);
    else
        snprintf(cg, sizeof(cg), "cgroups=off(%s) limits=rlimits", sb->cg.why);
    struct ag_err why = AG_ERR_INIT;
    if (!row->program) {
        sb->ready = true;
        snprintf(sb->describe, sizeof(sb->describe),
                 "unsafe: commands run unconfined with the node's own rights (--sandbox=unsafe) "
                 "%s",
                 cg);
    } else if (sandbox_setup(sb, o, &why) != 0) {
        snprintf(sb->describe, sizeof(sb->describe),
                 "sandbox '%s' is unavailable: %s; tools that run programs refuse until it "
                 "works, unless the node runs with --sandbox=unsafe (unconfined) or the tool's "
                 "settings say privileged",
                 row->name, why.msg);
    } else {
        sb->ready = true;
        snprintf(sb->describe, sizeof(sb->describe), "%s user=%s uid=%u %s seccomp=%s", row->name,
                 sb->user ? sb->user : "(the node's)", (unsigned)sb->uid, cg,
                 row->uses_seccomp ? "on" : "gvisor");
    }
    return sb;
}

void wk_sandbox_free(struct wk_sandbox *sb)
{
    if (!sb)
        return;
    free(sb->user);
    free(sb->bpf[0]);
    free(sb->bpf[1]);
    free(sb);
}

const char *wk_sandbox_workdir(const struct wk_sandbox *sb, bool privileged, const char *workspace)
{
    return sb && !privileged && sb->row->at_workspace ? "/workspace" : workspace;
}

bool wk_sandbox_ready(const struct wk_sandbox *sb)
{
    return sb && sb->ready;
}

const char *wk_sandbox_describe(const struct wk_sandbox *sb)
{
    return sb->describe;
}
