/* worker/sandbox_cgroup.c - a cgroup per sandboxed call, where /sys/fs/cgroup is writable.
 *
 * Layout (statfs of /sys/fs/cgroup): CGROUP2_SUPER_MAGIC is pure v2: one group per call under
 * /sys/fs/cgroup/agentry-sbx with memory.max (+ memory.swap.max 0), pids.max and cpu.max, and
 * cgroup.kill. TMPFS_MAGIC is v1 or hybrid: a group per call in each of the memory, pids and cpu
 * hierarchies (memory.limit_in_bytes and memory.memsw.limit_in_bytes, pids.max,
 * cpu.cfs_quota_us), plus one under the v2 mount at unified/ when it has cgroup.kill, which kills
 * a whole tree in one write. A controller that cannot be set up leaves the limit to the rlimits;
 * the caller reports which held. The child joins the groups itself (writing "0" to each
 * cgroup.procs) before it drops its uid, so nothing of the call ever runs outside them.
 * Groups are removed once the call's processes are gone. */
#include "worker/sandbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "worker/metrics.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_PARENT "agentry-sbx"

static atomic_uint cg_seq;

static int write_file(const char *dir, const char *name, const char *value)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, value, strlen(value));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

static bool is_fs(const char *path, long magic)
{
    struct statfs s;
    return statfs(path, &s) == 0 && (long)s.f_type == magic;
}

static bool make_parent(char *out, size_t cap, const char *hier)
{
    snprintf(out, cap, CG_ROOT "%s%s/" CG_PARENT, *hier ? "/" : "", hier);
    return mkdir(out, 0755) == 0 || errno == EEXIST;
}

void wk_sandbox__cg_detect(struct wk_sandbox__cg *cg, bool off)
{
    memset(cg, 0, sizeof(*cg));
    if (off) {
        snprintf(cg->why, sizeof(cg->why), "turned off");
    } else if (is_fs(CG_ROOT, CGROUP2_SUPER_MAGIC)) {
        /* The controllers must be enabled for the children of our parent group. */
        if (!make_parent(cg->base[0], sizeof(cg->base[0]), "") ||
            (write_file(CG_ROOT, "cgroup.subtree_control", "+memory +pids +cpu") != 0 &&
             errno != EBUSY) ||
            write_file(cg->base[0], "cgroup.subtree_control", "+memory +pids +cpu") != 0)
            snprintf(cg->why, sizeof(cg->why), "cannot set up %s: %s", cg->base[0],
                     strerror(errno));
        else
            cg->version = 2;
    } else if (is_fs(CG_ROOT, TMPFS_MAGIC)) {
        static const char *const hier[] = {"memory", "pids", "cpu"};
        cg->version = 1;
        for (int i = 0; i < 3 && cg->version; i++)
            if (!make_parent(cg->base[i], sizeof(cg->base[i]), hier[i])) {
                snprintf(cg->why, sizeof(cg->why), "cannot create %s: %s", cg->base[i],
                         strerror(errno));
                cg->version = 0;
            }
        if (cg->version && is_fs(CG_ROOT "/unified", CGROUP2_SUPER_MAGIC) &&
            !make_parent(cg->base[3], sizeof(cg->base[3]), "unified"))
            cg->base[3][0] = '\0';
    } else {
        snprintf(cg->why, sizeof(cg->why), "no cgroup file system at " CG_ROOT);
    }
}

/* Make dir/name into p->cg[i]; false if mkdir failed. */
static bool make_child(struct wk_sandbox_proc *p, int i, const char *base, const char *name)
{
    snprintf(p->cg[i], sizeof(p->cg[i]), "%s/%s", base, name);
    if (mkdir(p->cg[i], 0755) == 0)
        return true;
    p->cg[i][0] = '\0';
    return false;
}

static int create_v2(const struct wk_sandbox__cg *cg, const struct wk_sandbox_limits *l,
                     struct wk_sandbox_proc *p, const char *name)
{
    if (!make_child(p, 0, cg->base[0], name))
        return 0;
    char v[64];
    int got = 0;
    snprintf(v, sizeof(v), "%lld", (long long)l->mem_bytes);
    if (l->mem_bytes > 0 && write_file(p->cg[0], "memory.max", v) == 0) {
        write_file(p->cg[0], "memory.swap.max", "0"); /* absent without swap accounting */
        got |= WK_SANDBOX__CG_MEM;
    }
    snprintf(v, sizeof(v), "%lld", (long long)l->procs);
    if (l->procs > 0 && write_file(p->cg[0], "pids.max", v) == 0)
        got |= WK_SANDBOX__CG_PIDS;
    snprintf(v, sizeof(v), "%lld 100000", (long long)l->cpu_milli * 100);
    if (l->cpu_milli > 0 && write_file(p->cg[0], "cpu.max", v) == 0)
        got |= WK_SANDBOX__CG_CPU;
    p->cg_kill = 0;
    return got;
}

static int create_v1(const struct wk_sandbox__cg *cg, const struct wk_sandbox_limits *l,
                     struct wk_sandbox_proc *p, const char *name)
{
    char v[64];
    int got = 0;
    snprintf(v, sizeof(v), "%lld", (long long)l->mem_bytes);
    if (l->mem_bytes > 0 && make_child(p, 0, cg->base[0], name)) {
        /* memsw after the plain limit: it may never be below it. Absent without swap
         * accounting, where the plain limit is the whole limit. */
        if (write_file(p->cg[0], "memory.limit_in_bytes", v) == 0 &&
            (write_file(p->cg[0], "memory.memsw.limit_in_bytes", v) == 0 || errno == ENOENT))
            got |= WK_SANDBOX__CG_MEM;
    }
    snprintf(v, sizeof(v), "%lld", (long long)l->procs);
    if (l->procs > 0 && make_child(p, 1, cg->base[1], name) &&
        write_file(p->cg[1], "pids.max", v) == 0)
        got |= WK_SANDBOX__CG_PIDS;
    snprintf(v, sizeof(v), "%lld", (long long)l->cpu_milli * 100);
    if (l->cpu_milli > 0 && make_child(p, 2, cg->base[2], name) &&
        write_file(p->cg[2], "cpu.cfs_quota_us", v) == 0)
        got |= WK_SANDBOX__CG_CPU;
    if (cg->base[3][0] && make_child(p, 3, cg->base[3], name)) {
        char path[192];
        snprintf(path, sizeof(path), "%s/cgroup.kill", p->cg[3]);
        if (access(path, W_OK) == 0)
            p->cg_kill = 3;
    }
    return got;
}

int wk_sandbox__cg_create(const struct wk_sandbox__cg *cg, const struct wk_sandbox_limits *l,
                          struct wk_sandbox_proc *p, char *applied, size_t cap)
{
    for (int i = 0; i < 4; i++)
        p->cg[i][0] = '\0';
    p->cg_kill = -1;
    if (cg->version == 0) {
        snprintf(applied, cap, "cgroups=off%s%s%s", cg->why[0] ? "(" : "", cg->why,
                 cg->why[0] ? ")" : "");
        return 0;
    }
    char name[48];
    snprintf(name, sizeof(name), "c%ld-%u", (long)getpid(), atomic_fetch_add(&cg_seq, 1));
    int got = cg->version == 2 ? create_v2(cg, l, p, name) : create_v1(cg, l, p, name);
    snprintf(applied, cap, "cgroup-v%d(%s%s%s%s)", cg->version,
             got & WK_SANDBOX__CG_MEM ? "memory " : "", got & WK_SANDBOX__CG_PIDS ? "pids " : "",
             got & WK_SANDBOX__CG_CPU ? "cpu " : "", p->cg_kill >= 0 ? "kill" : "");
    return got;
}

/* The number after key in dir/file ("key N" lines), or -1. */
static long long read_counter(const char *dir, const char *file, const char *key)
{
    char path[256], line[128];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "re");
    long long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            v = atoll(line + kl + 1);
    if (f)
        fclose(f);
    return v;
}

void wk_sandbox__cg_fired(struct wk_sandbox_proc *p)
{
    p->fired[0] = '\0';
    const char *mem = p->cg[0], *pids = p->cg[1][0] ? p->cg[1] : p->cg[0];
    if (!*mem && !*pids)
        return;
    long long oom = *mem ? read_counter(
                               mem, p->sb->cg.version == 2 ? "memory.events" : "memory.oom_control",
                               "oom_kill")
                         : -1;
    long long forks = *pids ? read_counter(pids, "pids.events", "max") : -1;
    size_t n = 0;
    if (oom > 0) {
        /* Counted here, once per program (the wrapper is reaped once): the kernel killed it, so
         * the poll loop's own reasons never saw it. */
        wk_metrics_sandbox_kill("memory");
        n += (size_t)snprintf(p->fired + n, sizeof(p->fired) - n,
                              "memory limit: %lld process(es) OOM-killed", oom);
    }
    if (forks > 0)
        snprintf(p->fired + n, sizeof(p->fired) - n, "%sprocess limit: %lld fork(s) refused",
                 n ? "; " : "", forks);
}

void wk_sandbox__cg_kill(const struct wk_sandbox_proc *p)
{
    if (p->cg_kill >= 0)
        write_file(p->cg[p->cg_kill], "cgroup.kill", "1");
}

void wk_sandbox__cg_remove(struct wk_sandbox_proc *p)
{
    for (int i = 0; i < 4; i++) {
        if (!p->cg[i][0])
            continue;
        /* The last processes of a killed tree may take a moment to leave: bounded retries. */
        for (int t = 0; t < 200 && rmdir(p->cg[i]) != 0 && errno == EBUSY; t++) {
            struct timespec ms = {0, 5 * 1000 * 1000};
            wk_sandbox__cg_kill(p);
            nanosleep(&ms, NULL);
        }
        p->cg[i][0] = '\0';
    }
    p->cg_kill = -1;
}
