/* worker/sandbox_seccomp.c - the seccomp filter a bwrap sandbox's command runs under.
 *
 * Built once at start with libseccomp for the node's architecture (names resolved by libseccomp,
 * never syscall numbers written here) and exported as BPF that bwrap loads with --seccomp FD
 * just before it execs the command. Everything is allowed except what a tool never needs and a
 * kernel exploit often does: new mounts and namespaces, module and kexec loading, ptrace and
 * cross-process memory writes, bpf, perf, keyrings, userfaultfd, open_by_handle_at (which walks
 * around bind mounts). Those fail with EPERM, so a program sees an ordinary error. Without
 * network, socket(2) for any family but AF_UNIX fails with EAFNOSUPPORT: a first layer in front
 * of the empty network namespace, with an errno a program reports clearly. */
#include "worker/sandbox_internal.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/xalloc.h"

static const char *const denied[] = {
    "mount",         "umount2",
    "pivot_root",    "unshare",
    "setns",         "ptrace",
    "kexec_load",    "kexec_file_load",
    "init_module",   "finit_module",
    "delete_module", "reboot",
    "swapon",        "swapoff",
    "bpf",           "perf_event_open",
    "keyctl",        "add_key",
    "request_key",   "open_by_handle_at",
    "userfaultfd",   "process_vm_writev",
    "fsopen",        "fsmount",
    "move_mount",    "open_tree",
    "mount_setattr", NULL,
};

/* The program for net (0 or 1) into sb->bpf[net]. */
static int build_one(struct wk_sandbox *sb, int net, struct ag_err *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return ag_err_set(err, AG_INTERNAL, "cannot build the seccomp filter: seccomp_init");
    int rc = 0;
    const char *what = NULL;
    for (size_t i = 0; denied[i] && rc == 0; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture or this libseccomp: nothing to deny */
        what = denied[i];
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    if (rc == 0 && !net) {
        what = "socket";
        /* Spelled out: SCMP_A0() leaves datum_b to the compiler, which clang warns about. */
        struct scmp_arg_cmp not_unix = {
            .arg = 0, .op = SCMP_CMP_NE, .datum_a = AF_UNIX, .datum_b = 0};
        rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                    &not_unix);
    }
    int fd = rc == 0 ? memfd_create("agentry-seccomp", MFD_CLOEXEC) : -1;
    if (rc == 0 && fd < 0)
        rc = -errno;
    if (rc == 0) {
        what = "export";
        rc = seccomp_export_bpf(ctx, fd);
    }
    seccomp_release(ctx);
    off_t len = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
    if (len > 0) {
        sb->bpf[net] = ag_xmalloc((size_t)len);
        sb->bpf_len[net] = (size_t)len;
        if (pread(fd, sb->bpf[net], (size_t)len, 0) != len)
            len = -1;
    }
    if (fd >= 0)
        close(fd);
    if (rc != 0 || len <= 0)
        return ag_err_set(err, AG_INTERNAL, "cannot build the seccomp filter: %s: %s",
                          what ? what : "memfd", strerror(rc < 0 ? -rc : EIO));
    return 0;
}

int wk_sandbox__seccomp_build(struct wk_sandbox *sb, struct ag_err *err)
{
    return build_one(sb, 0, err) != 0 ? -1 : build_one(sb, 1, err);
}
