/* worker/sandbox.h - the executor: every tool that runs a program starts it here.
 *
 * A node has one struct wk_sandbox, made at start from its --sandbox and --sandbox-user options.
 * It runs a start-up self-test and keeps the result: a sandbox that failed it stays usable only
 * for privileged requests, and every other spawn fails with FAILED_PRECONDITION naming the fix.
 * Back ends are rows of a table (sandbox.c):
 *   bwrap   the default ("safe"): bubblewrap with a tmpfs root and read-only binds of /usr and
 *           /etc, the workspace read-write at /workspace, private /tmp and /dev, every namespace
 *           unshared (the network too unless the request allows it), no capabilities, a new
 *           session, --die-with-parent, a seccomp filter; run after dropping to a dedicated
 *           unprivileged host uid (--sandbox-user, default agentry-sbx) when the node is root.
 *   runsc   gVisor's `runsc do` (ptrace platform): the host's root read-only under an in-memory
 *           overlay, so files written in the workspace are discarded when the call ends.
 *   direct  fork and exec with the node's own rights; for requests marked privileged, and for
 *           every request on a node started with --sandbox=unsafe.
 * Limits: rlimits in the child before exec always (CPU, FSIZE, NOFILE, CORE=0; AS when no memory
 * cgroup; NPROC when the sandbox runs as its own uid and no pids cgroup), and a per-call cgroup
 * (memory with swap, pids, CPU quota) where /sys/fs/cgroup is writable, v2 or v1/hybrid. The
 * output limit and the wall clock are the reader's (wk_sandbox_run). proc.applied says which of
 * these held for the call, for the trace.
 *
 * Threads: wk_sandbox_new/free once; everything else is thread-safe (the sandbox is read-only
 * after new). A proc belongs to the thread that spawned it. Spawning forks the node: the child
 * only makes async-signal-safe calls before exec. */
#ifndef AGENTRY_WORKER_SANDBOX_H
#define AGENTRY_WORKER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct wk_sandbox;

struct wk_sandbox_opts {
    const char *mode;    /* "bwrap" (NULL too), "runsc" or "unsafe" */
    const char *user;    /* the host user bwrap runs as when the node is root; NULL: agentry-sbx */
    bool cgroups_off;    /* rlimits only, even where cgroups are writable */
    bool skip_self_test; /* build argv only (unit tests): spawn is then refused */
};

/* -1 only for malformed options (INVALID_ARGUMENT). A back end that fails its self-test gives a
 * sandbox that is not ready (wk_sandbox_ready): the node logs it and runs on. */
struct wk_sandbox *wk_sandbox_new(const struct wk_sandbox_opts *o, struct ag_err *err);
void wk_sandbox_free(struct wk_sandbox *sb);
/* Whether unprivileged requests can run; if not, why is in wk_sandbox_describe. */
bool wk_sandbox_ready(const struct wk_sandbox *sb);
/* One line for logs: "bwrap uid=agentry-sbx(998) cgroups=v1 seccomp=on", or what failed and
 * what to do. Borrowed from sb. */
const char *wk_sandbox_describe(const struct wk_sandbox *sb);

/* 0 means "not limited" for each. */
struct wk_sandbox_limits {
    int64_t cpu_s;        /* CPU seconds per process: RLIMIT_CPU (SIGXCPU, then SIGKILL) */
    int64_t cpu_milli;    /* CPU share: a cgroup quota, 1000 = one CPU */
    int64_t mem_bytes;    /* cgroup memory+swap limit (OOM kill), else RLIMIT_AS (ENOMEM) */
    int64_t procs;        /* cgroup pids.max, else RLIMIT_NPROC under the sandbox's own uid */
    int64_t output_bytes; /* wk_sandbox_run kills the call past it */
    int64_t wall_ms;      /* wk_sandbox_run kills the call after it */
    int64_t nofile;       /* RLIMIT_NOFILE */
    int64_t fsize_bytes;  /* RLIMIT_FSIZE: the largest file it may write (SIGXFSZ) */
};

/* The node's defaults: 10 min CPU, 2 GiB memory, 256 processes, 16 MiB output, 1024 files,
 * 1 GiB files, no CPU quota and no wall clock (the tool's deadline is). */
struct wk_sandbox_limits wk_sandbox_limits_default(void);
/* For a long-lived process (an MCP stdio server): the defaults without the caps that would end
 * it for living long (CPU seconds, output read, wall clock): memory, processes, files and file
 * size stay. */
struct wk_sandbox_limits wk_sandbox_limits_server(void);

struct wk_sandbox_req {
    const char *const *argv; /* argv[0]: absolute inside the sandbox, or found in PATH */
    const char *const *envp; /* the whole environment */
    const char *workspace;   /* host directory: /workspace inside (the host path under direct
                                and runsc), and the cwd */
    bool net;                /* the network is the host's; else only a private loopback */
    bool privileged;         /* the direct back end */
    bool stdin_pipe;         /* else stdin is /dev/null */
    bool merge_stderr;       /* stderr onto stdout's pipe; else its own pipe */
    /* Host directories bound read-only at the same path (bwrap; NULL-terminated, NULL: none):
     * where the operator installed the programs a long-lived server runs from. runsc sees the
     * host's root read-only anyway, direct sees everything. */
    const char *const *ro_paths;
    struct wk_sandbox_limits limits;
};

struct wk_sandbox_proc {
    pid_t pid; /* the wrapper (bwrap, runsc) or the program itself (direct); a session leader */
    int pidfd; /* readable when pid exited */
    int in_fd, out_fd, err_fd; /* owned pipe ends, -1 when not asked for or closed */
    bool reaped;
    int status;        /* waitpid status once reaped */
    char applied[512]; /* "sandbox=bwrap uid=998 net=off seccomp=on limits=cgroup-v1(...)" */
    char fired[160];   /* after reaping: the cgroup counters that fired, "" if none */
    bool wrapped;      /* by bwrap or runsc, which report death by signal N as exit 128+N */
    /* private to sandbox.c */
    const struct wk_sandbox *sb;
    char cg[4][160]; /* the call's cgroup directories, "" if none */
    int cg_kill;     /* index in cg of the one with cgroup.kill, -1 if none */
};

/* Where the workspace is as the command sees it: "/workspace" under bwrap, else workspace. */
const char *wk_sandbox_workdir(const struct wk_sandbox *sb, bool privileged, const char *workspace);

/* Start req. sb may be NULL for a privileged request. On success *out holds a running process and its pipes; release it with
 * wk_sandbox_proc_release. FAILED_PRECONDITION when the sandbox is not ready (or the workspace
 * cannot be handed to its uid), UNAVAILABLE when the process could not start. */
int wk_sandbox_spawn(const struct wk_sandbox *sb, const struct wk_sandbox_req *req,
                     struct wk_sandbox_proc *out, struct ag_err *err);
/* Kill the whole tree: cgroup.kill where there is one, SIGKILL to the wrapper and its group
 * (bwrap's --die-with-parent and the PID namespace take the rest). Does not reap. */
void wk_sandbox_kill(struct wk_sandbox_proc *p);
/* Reap the wrapper, blocking; fills p->status and p->fired. No-op once reaped. */
void wk_sandbox_wait(struct wk_sandbox_proc *p);
/* Kill what is left, reap, remove the cgroups, close the pipes. */
void wk_sandbox_proc_release(struct wk_sandbox_proc *p);
/* End a long-lived process gently, for one whose caller reads its pipes itself (no
 * wk_sandbox_run): its stdin is closed (a server exits at EOF), after grace_ms SIGTERM goes to
 * the wrapper and its group (bwrap's --die-with-parent takes the sandbox with it), after another
 * grace_ms SIGKILL to the whole tree; then it is reaped (p->status). Blocks up to 2 * grace_ms.
 * Release p afterwards. No-op once reaped. */
void wk_sandbox_stop(struct wk_sandbox_proc *p, int64_t grace_ms);

/* How a wk_sandbox_run ended. */
enum wk_sandbox_end {
    WK_SANDBOX_EXITED,    /* on its own: see status */
    WK_SANDBOX_WALL,      /* limits.wall_ms or the deadline passed */
    WK_SANDBOX_OUTPUT,    /* limits.output_bytes were read */
    WK_SANDBOX_CANCELLED, /* wake_fd became readable */
};

/* Output as it is read; may be called many times. */
typedef void wk_sandbox_output_fn(void *arg, const char *data, size_t len);

/* Run a spawned process to its end, reading its stdout (and stderr when not merged) into out().
 * Kills the tree at deadline_ms (ag_now_mono_ms time; 0: only limits.wall_ms), when wake_fd
 * (-1: none) is readable, or past limits.output_bytes. When the wrapper exits, the rest of its
 * tree is killed and what is still in the pipe is read for at most half a second. */
enum wk_sandbox_end wk_sandbox_run(struct wk_sandbox_proc *p, const struct wk_sandbox_req *req,
                                   int64_t deadline_ms, int wake_fd, wk_sandbox_output_fn *out,
                                   void *arg);

/* The first layer for shell commands (sandbox_guard.c): the rule a command breaks ("rm -r of
 * the root", "a fork bomb", ...), a static string, or NULL. Not a boundary: the sandbox is. */
const char *wk_sandbox_guard(const char *command);

/* The command line for req under row ("bwrap", "runsc", "direct"), with seccomp_fd the fd bwrap
 * reads its filter from (-1: none): owned, NULL-terminated, free with wk_sandbox_argv_free.
 * NULL for an unknown row. For tests and the trace; spawn uses the same builder. */
char **wk_sandbox_argv(const char *row, const struct wk_sandbox_req *req, int seccomp_fd);
void wk_sandbox_argv_free(char **argv);

#endif
