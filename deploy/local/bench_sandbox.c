/* deploy/local/bench_sandbox.c - what the sandbox costs per call (docs/benchmarks.md).
 *
 * Runs `true` N times, one after the other, through each way the node can start a program, and
 * prints calls/s, p50 and p99 of spawn-to-reap latency, and the CPU the calling process (the
 * node's side: fork, pipes, cgroup files, the reader) and its children (bwrap or runsc and the
 * command) spend per call:
 *   posix_spawn   the floor: posix_spawn + waitpid, nothing else
 *   direct        wk_sandbox_spawn/run/release of a privileged request (rlimits, pidfd, pipes)
 *   bwrap-rlimit  the bwrap sandbox with rlimits only
 *   bwrap-cgroup  the bwrap sandbox with per-call cgroups (when /sys/fs/cgroup is writable)
 *   runsc         gVisor (when installed; N/10 calls, it is far slower)
 *
 *   build/bench-sandbox [N]        (default 200; as root for the sandbox user and cgroups)
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/sandbox.h"

extern char **environ;

static char ws[] = "/tmp/agentry-bench-sandbox-XXXXXX";

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_ms(int who)
{
    struct rusage r;
    getrusage(who, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
}

static void discard(void *arg, const char *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
}

/* One call; its latency in microseconds, -1 on failure. */
static int64_t one(const struct wk_sandbox *sb, bool privileged, bool raw)
{
    static const char *const argv[] = {"/bin/true", NULL};
    static const char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
    int64_t t0 = now_us();
    if (raw) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, argv[0], NULL, NULL, (char **)argv, environ) != 0 ||
            waitpid(pid, &st, 0) != pid)
            return -1;
        return now_us() - t0;
    }
    struct wk_sandbox_req req = {.argv = argv,
                                 .envp = envp,
                                 .workspace = ws,
                                 .privileged = privileged,
                                 .merge_stderr = true,
                                 .limits = wk_sandbox_limits_default()};
    struct wk_sandbox_proc p;
    struct ag_err err = AG_ERR_INIT;
    if (wk_sandbox_spawn(sb, &req, &p, &err) != 0) {
        fprintf(stderr, "spawn: %s\n", err.msg);
        return -1;
    }
    wk_sandbox_run(&p, &req, 0, -1, discard, NULL);
    int st = p.status;
    wk_sandbox_proc_release(&p);
    return st == 0 ? now_us() - t0 : -1;
}

static void bench(const char *name, const struct wk_sandbox *sb, bool privileged, bool raw, int n)
{
    int64_t *lat = calloc((size_t)n, sizeof(*lat));
    double self0 = cpu_ms(RUSAGE_SELF), kids0 = cpu_ms(RUSAGE_CHILDREN);
    int64_t t0 = now_us();
    for (int i = 0; i < n; i++)
        if ((lat[i] = one(sb, privileged, raw)) < 0) {
            printf("%-13s failed\n", name);
            free(lat);
            return;
        }
    double secs = (double)(now_us() - t0) / 1e6;
    double self = cpu_ms(RUSAGE_SELF) - self0, kids = cpu_ms(RUSAGE_CHILDREN) - kids0;
    qsort(lat, (size_t)n, sizeof(*lat), cmp);
    printf("%-13s %6d calls %8.1f calls/s  p50 %7.2f ms  p99 %7.2f ms  caller CPU %6.3f ms/call"
           "  children CPU %6.2f ms/call\n",
           name, n, n / secs, lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, self / n, kids / n);
    free(lat);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (n < 1 || !mkdtemp(ws))
        return 2;
    chmod(ws, 0755);
    struct ag_err err = AG_ERR_INIT;
    struct wk_sandbox_opts cg = {.mode = "bwrap"}, rl = {.mode = "bwrap", .cgroups_off = true},
                           rs = {.mode = "runsc"};
    struct wk_sandbox *sb_cg = wk_sandbox_new(&cg, &err), *sb_rl = wk_sandbox_new(&rl, &err);
    struct wk_sandbox *sb_rs = wk_sandbox_new(&rs, &err);
    printf("sandbox: %s\n", wk_sandbox_describe(sb_cg));
    bench("posix_spawn", NULL, true, true, n);
    bench("direct", NULL, true, false, n);
    if (wk_sandbox_ready(sb_rl))
        bench("bwrap-rlimit", sb_rl, false, false, n);
    if (wk_sandbox_ready(sb_cg) && !strstr(wk_sandbox_describe(sb_cg), "cgroups=off"))
        bench("bwrap-cgroup", sb_cg, false, false, n);
    if (wk_sandbox_ready(sb_rs))
        bench("runsc", sb_rs, false, false, n / 10 > 0 ? n / 10 : 1);
    else
        printf("runsc: %s\n", wk_sandbox_describe(sb_rs));
    wk_sandbox_free(sb_cg);
    wk_sandbox_free(sb_rl);
    wk_sandbox_free(sb_rs);
    rmdir(ws);
    return 0;
}
