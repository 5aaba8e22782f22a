/* worker/sandbox_internal.h - what worker/sandbox*.c share: private to them.
 *
 * sandbox.c owns the back-end table, the self-test, spawn and the reader; sandbox_cgroup.c the
 * per-call cgroups; sandbox_seccomp.c the filter bwrap loads. The struct is read-only after
 * wk_sandbox_new, so any thread may spawn. */
#ifndef AGENTRY_WORKER_SANDBOX_INTERNAL_H
#define AGENTRY_WORKER_SANDBOX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "worker/sandbox.h"

/* The cgroup layout found at start. version 0: none usable (why says why). */
struct wk_sandbox__cg {
    int version;      /* 0, 1 (v1 or hybrid) or 2 */
    char base[4][96]; /* v1: memory, pids, cpu, unified (for cgroup.kill; "" if none);
                            v2: base[0] only */
    char why[160];    /* when version is 0 */
};

struct wk_sandbox {
    const struct wk_sandbox__row *row; /* the back end of unprivileged requests */
    bool ready;
    char describe[512];
    char *user; /* owned: the host user bwrap runs as, NULL when the node is not root */
    uid_t uid;
    gid_t gid;
    int cap_last; /* /proc/sys/kernel/cap_last_cap: the bounding set to drop */
    struct wk_sandbox__cg cg;
    unsigned char *bpf[2]; /* owned: the seccomp program without [0] and with [1] network */
    size_t bpf_len[2];
};

/* Detect the layout under /sys/fs/cgroup and make the node's parent groups; off: rlimits only. */
void wk_sandbox__cg_detect(struct wk_sandbox__cg *cg, bool off);
/* Make p's cgroups with l's memory, pids and CPU limits. Returns the limits it took over as
 * flags (WK_SANDBOX__CG_*), 0 with nothing made when it could not, and describes them in
 * applied. */
enum { WK_SANDBOX__CG_MEM = 1, WK_SANDBOX__CG_PIDS = 2, WK_SANDBOX__CG_CPU = 4 };
int wk_sandbox__cg_create(const struct wk_sandbox__cg *cg, const struct wk_sandbox_limits *l,
                          struct wk_sandbox_proc *p, char *applied, size_t cap);
/* The counters that fired (OOM kills, fork refusals) into p->fired. */
void wk_sandbox__cg_fired(struct wk_sandbox_proc *p);
void wk_sandbox__cg_kill(const struct wk_sandbox_proc *p);
void wk_sandbox__cg_remove(struct wk_sandbox_proc *p);

/* Build the two seccomp programs into sb->bpf; -1 with a message when libseccomp fails. */
int wk_sandbox__seccomp_build(struct wk_sandbox *sb, struct ag_err *err);

#endif
