/* tests/unit/test-wk-sandbox-run.c - the sandbox executor (worker/sandbox.h) against the real
 * kernel: what a command inside can and cannot do, and which mechanism stopped it.
 *
 * Gated: the bwrap sandbox must pass its self-test (bubblewrap installed, the agentry-sbx user
 * when run as root, user namespaces); otherwise the file prints "SKIP: ..." with the reason and
 * exits 77, which ctest reports as skipped, never as passed. Before any destructive test a
 * harmless probe must show /, /etc and /usr read-only from inside; if it does not, the file
 * fails without running the rest. Each test asserts the mechanism that fired (an exit status
 * that says SIGKILL, an errno's text, a cgroup counter), and the canary outside the workspace.
 * Two sandboxes: one with cgroups where the machine has them, one with rlimits only. */
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "worker/sandbox.h"

static struct wk_sandbox *sb_cg, *sb_rl; /* with cgroups (when the machine has them); rlimits */
static char base[64], ws[96], canary[96];

struct res {
    char *out; /* owned */
    size_t len;
    enum wk_sandbox_end end;
    int status;
    char fired[160];
    char applied[512];
    int64_t took_ms;
};

static void collect(void *arg, const char *data, size_t len)
{
    struct res *r = arg;
    r->out = ag_xrealloc(r->out, r->len + len + 1);
    memcpy(r->out + r->len, data, len);
    r->len += len;
    r->out[r->len] = '\0';
}

static struct res run_in(struct wk_sandbox *sb, const char *cmd, bool net,
                         const struct wk_sandbox_limits *l)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};
    struct wk_sandbox_req req = {.argv = argv,
                                 .envp = envp,
                                 .workspace = ws,
                                 .net = net,
                                 .merge_stderr = true,
                                 .limits = l ? *l : wk_sandbox_limits_default()};
    if (req.limits.wall_ms == 0)
        req.limits.wall_ms = 30000;
    struct res r = {.out = ag_xstrdup("")};
    struct wk_sandbox_proc p;
    struct ag_err err = AG_ERR_INIT;
    int64_t t0 = ag_now_mono_ms();
    if (wk_sandbox_spawn(sb, &req, &p, &err) != 0)
        fail_msg("spawn '%s': %s", cmd, err.msg);
    r.end = wk_sandbox_run(&p, &req, 0, -1, collect, &r);
    r.took_ms = ag_now_mono_ms() - t0;
    r.status = p.status;
    snprintf(r.fired, sizeof(r.fired), "%s", p.fired);
    snprintf(r.applied, sizeof(r.applied), "%s", p.applied);
    wk_sandbox_proc_release(&p);
    return r;
}

static struct res run(const char *cmd)
{
    return run_in(sb_cg, cmd, false, NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool file_is(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strcmp(buf, text) == 0;
}

/* bwrap reports a command killed by signal N as exit status 128+N. */
static bool killed_by(int status, int sig)
{
    return (WIFEXITED(status) && WEXITSTATUS(status) == 128 + sig) ||
           (WIFSIGNALED(status) && WTERMSIG(status) == sig);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_rm_rf_root_is_contained(void **state)
{
    (void)state;
    char inside[128];
    snprintf(inside, sizeof(inside), "%s/doomed", ws);
    write_file(inside, "x");
    struct res r = run("rm -rf --no-preserve-root / 2>&1 | grep -c 'Read-only file system'");
    assert_true(file_is(canary, "intact"));
    assert_int_equal(access(inside, F_OK), -1); /* the workspace is the agent's to empty */
    assert_int_equal(access("/etc/passwd", F_OK), 0);
    assert_int_equal(access("/usr/bin/sh", X_OK), 0);
    assert_true(atoi(r.out) > 100); /* the mechanism: read-only mounts, file after file */
    free(r.out);
}

static void test_writes_outside_the_workspace_fail_erofs(void **state)
{
    (void)state;
    struct res r = run(
        "for p in /etc/agentry-x /usr/agentry-x /agentry-x; do cat /dev/null > $p; done; "
        ": > /workspace/ok && echo ws-ok; : > /tmp/t && echo tmp-ok");
    assert_int_equal(count(r.out, "Read-only file system"), 3);
    assert_non_null(strstr(r.out, "ws-ok"));
    assert_non_null(strstr(r.out, "tmp-ok"));
    assert_int_equal(access("/etc/agentry-x", F_OK), -1);
    assert_int_equal(access("/tmp/t", F_OK), -1); /* /tmp is private */
    free(r.out);
}

static void test_shadow_unreadable_and_not_root(void **state)
{
    (void)state;
    struct res r = run("cat /etc/shadow; echo; id -u; grep CapEff /proc/self/status; "
                       "grep NoNewPrivs /proc/self/status");
    /* /dev/null bound over it on a nodev mount: opening it is EACCES */
    assert_non_null(strstr(r.out, "/etc/shadow: Permission denied"));
    assert_null(strstr(r.out, "root:"));
    const struct passwd *pw = geteuid() == 0 ? getpwnam("agentry-sbx") : getpwuid(geteuid());
    assert_non_null(pw);
    char uid[32];
    snprintf(uid, sizeof(uid), "\n%u\n", (unsigned)pw->pw_uid);
    assert_non_null(strstr(r.out, uid)); /* the sandbox user, never root */
    assert_non_null(strstr(r.out, "CapEff:\t0000000000000000"));
    assert_non_null(strstr(r.out, "NoNewPrivs:\t1"));
    free(r.out);
}

static void test_network_off_and_on(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 8), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import socket; socket.create_connection(('127.0.0.1', %d), 5); "
             "print('connected')\" 2>&1 | tail -1",
             ntohs(a.sin_port));
    struct res off = run_in(sb_cg, cmd, false, NULL);
    assert_null(strstr(off.out, "connected"));
    assert_non_null(strstr(off.out, "Address family not supported")); /* seccomp's EAFNOSUPPORT */
    struct res on = run_in(sb_cg, cmd, true, NULL);
    assert_non_null(strstr(on.out, "connected"));
    assert_non_null(strstr(on.applied, "net=on"));
    close(l);
    free(off.out);
    free(on.out);
}

static const char fork_bomb[] = "b(){ b|b& }; b; sleep 2; echo survived";

static void test_fork_bomb_capped(void **state)
{
    (void)state;
    struct wk_sandbox_limits l = wk_sandbox_limits_default();
    l.procs = 64;
    l.wall_ms = 4000;
    /* Never an uncapped bomb: without a pids cgroup and without the sandbox user's
     * RLIMIT_NPROC (a node that is not root has neither) there is nothing to test. */
    struct res probe = run_in(sb_cg, "true", false, &l);
    bool pids = strstr(probe.applied, "pids") != NULL;
    free(probe.out);
    if (!pids && geteuid() != 0) {
        printf("SKIP fork bomb: no pids cgroup and no sandbox user for RLIMIT_NPROC\n");
        skip();
    }
    struct res r = run_in(sb_cg, fork_bomb, false, &l);
    if (pids)
        assert_non_null(strstr(r.fired, "process limit")); /* pids.events max */
    else
        assert_non_null(strstr(r.out, "fork"));
    free(r.out);
    if (geteuid() != 0)
        return;
    r = run_in(sb_rl, fork_bomb, false, &l);
    assert_non_null(strstr(r.applied, "nproc"));
    assert_non_null(strstr(r.out, "fork")); /* "fork: Resource temporarily unavailable" */
    free(r.out);
}

static void test_memory_bomb_killed(void **state)
{
    (void)state;
    struct wk_sandbox_limits l = wk_sandbox_limits_default();
    l.mem_bytes = 256 << 20;
    struct res r = run_in(sb_cg, "tail /dev/zero", false, &l);
    if (strstr(r.applied, "memory")) {
        assert_true(killed_by(r.status, SIGKILL));
        assert_non_null(strstr(r.fired, "OOM-killed"));
    }
    free(r.out);
    r = run_in(sb_rl, "tail /dev/zero", false, &l);
    assert_non_null(strstr(r.applied, "as=256MiB"));
    assert_non_null(strstr(r.out, "memory exhausted")); /* RLIMIT_AS: ENOMEM */
    free(r.out);
}

static void test_cpu_loop_and_wall_clock(void **state)
{
    (void)state;
    struct wk_sandbox_limits l = wk_sandbox_limits_default();
    l.cpu_s = 1;
    l.wall_ms = 20000;
    struct res r = run_in(sb_cg, "while :; do :; done", false, &l);
    assert_int_equal(r.end, WK_SANDBOX_EXITED);
    assert_true(killed_by(r.status, SIGKILL)); /* RLIMIT_CPU's hard limit */
    assert_true(r.took_ms < 10000);
    free(r.out);
    l = wk_sandbox_limits_default();
    l.wall_ms = 500;
    r = run_in(sb_cg, "trap '' TERM; sleep 100", false, &l);
    assert_int_equal(r.end, WK_SANDBOX_WALL);
    assert_true(r.took_ms < 5000);
    free(r.out);
}

static void test_output_cut_at_the_limit(void **state)
{
    (void)state;
    struct wk_sandbox_limits l = wk_sandbox_limits_default();
    l.output_bytes = 1 << 20;
    struct res r = run_in(sb_cg, "head -c 1073741824 /dev/zero", false, &l);
    assert_int_equal(r.end, WK_SANDBOX_OUTPUT);
    assert_int_equal(r.len, 1 << 20);
    assert_true(r.took_ms < 10000);
    free(r.out);
}

static void test_symlink_out_of_the_workspace(void **state)
{
    (void)state;
    char link[128];
    snprintf(link, sizeof(link), "%s/link", ws);
    unlink(link);
    assert_int_equal(symlink(canary, link), 0);
    struct res r = run("cat link; echo overwritten > link; cat ../canary");
    assert_int_equal(count(r.out, "intact"), 0);
    assert_true(file_is(canary, "intact"));
    free(r.out);
}

static void test_kill_takes_the_whole_tree(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "setsid sleep 300 & sleep 300 & wait", NULL};
    const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    struct wk_sandbox_req req = {
        .argv = argv, .envp = envp, .workspace = ws, .limits = wk_sandbox_limits_default()};
    struct wk_sandbox_proc p;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_sandbox_spawn(sb_cg, &req, &p, &err), 0);
    char cgdir[160];
    snprintf(cgdir, sizeof(cgdir), "%s", p.cg[1][0] ? p.cg[1] : p.cg[0]);
    int64_t t0 = ag_now_mono_ms();
    wk_sandbox_kill(&p);
    wk_sandbox_proc_release(&p);
    assert_true(ag_now_mono_ms() - t0 < 3000);
    if (cgdir[0]) /* removable only once every process in it is gone */
        assert_int_equal(access(cgdir, F_OK), -1);
}

/* An MCP stdio server's shape: a long-lived process with its stdin, stdout and stderr on pipes,
 * read by the caller, not wk_sandbox_run. It sees a ro_paths dir read-only (not the canary's),
 * and wk_sandbox_stop ends it at its stdin's EOF with its own status. */
static void test_long_lived_process_with_pipes(void **state)
{
    (void)state;
    char ro[128], file[160];
    snprintf(ro, sizeof(ro), "%s/ro", base);
    snprintf(file, sizeof(file), "%s/visible", ro);
    mkdir(ro, 0755);
    write_file(file, "seen");
    const char *const ro_paths[] = {ro, NULL};
    const char *argv[] = {
        "/bin/sh", "-c",
        "while read p; do cat \"$p\" || echo no; done; true > \"$0/x\" || echo ro; "
        "echo err >&2",
        ro, NULL};
    const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    struct wk_sandbox_req req = {.argv = argv,
                                 .envp = envp,
                                 .workspace = ws,
                                 .stdin_pipe = true,
                                 .ro_paths = ro_paths,
                                 .limits = wk_sandbox_limits_server()};
    struct wk_sandbox_proc p;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_sandbox_spawn(sb_cg, &req, &p, &err), 0);
    char line[512];
    int n = snprintf(line, sizeof(line), "%s\n%s\n", file, canary);
    assert_int_equal(write(p.in_fd, line, (size_t)n), n);
    wk_sandbox_stop(&p, 5000);
    assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
    struct res r = {0};
    ssize_t got;
    while ((got = read(p.out_fd, line, sizeof(line))) > 0)
        collect(&r, line, (size_t)got);
    assert_string_equal(r.out, "seenno\nro\n");
    free(r.out);
    r = (struct res){0};
    while ((got = read(p.err_fd, line, sizeof(line))) > 0)
        collect(&r, line, (size_t)got);
    assert_non_null(strstr(r.out, "Read-only file system"));
    assert_non_null(strstr(r.out, "err\n"));
    free(r.out);
    wk_sandbox_proc_release(&p);
    assert_true(file_is(canary, "intact"));
}

static void test_runsc(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_sandbox_opts o = {.mode = "runsc"};
    struct wk_sandbox *sb = wk_sandbox_new(&o, &err);
    assert_non_null(sb);
    if (!wk_sandbox_ready(sb)) {
        printf("SKIP runsc: %s\n", wk_sandbox_describe(sb));
        wk_sandbox_free(sb);
        skip();
    }
    struct res r = run_in(sb, "echo hi; : > /etc/agentry-runsc && echo overlay", false, NULL);
    assert_non_null(strstr(r.out, "hi\n"));
    assert_int_equal(access("/etc/agentry-runsc", F_OK), -1); /* the overlay kept it */
    free(r.out);
    wk_sandbox_free(sb);
}

/* The harmless probe that guards every destructive test. */
static bool root_is_read_only(void)
{
    struct res r = run("for p in /etc/agentry-probe /usr/agentry-probe /agentry-probe; do "
                       "cat /dev/null > $p; done");
    bool ok = count(r.out, "Read-only file system") == 3 && access("/etc/agentry-probe", F_OK) != 0;
    if (!ok)
        fprintf(stderr, "the write probe did not fail 3 times with EROFS: %s\n", r.out);
    free(r.out);
    return ok;
}

int main(void)
{
    struct ag_err err = AG_ERR_INIT;
    struct wk_sandbox_opts o = {.mode = "bwrap"}, rl = {.mode = "bwrap", .cgroups_off = true};
    sb_cg = wk_sandbox_new(&o, &err);
    sb_rl = wk_sandbox_new(&rl, &err);
    if (!wk_sandbox_ready(sb_cg) || !wk_sandbox_ready(sb_rl)) {
        printf("SKIP: bwrap sandbox unavailable: %s\n", wk_sandbox_describe(sb_cg));
        wk_sandbox_free(sb_cg);
        wk_sandbox_free(sb_rl);
        return 77;
    }
    printf("sandbox: %s\n", wk_sandbox_describe(sb_cg));
    strcpy(base, "/tmp/agentry-sbx-test-XXXXXX");
    assert_non_null(mkdtemp(base));
    chmod(base, 0755); /* the sandbox user must reach the workspace */
    snprintf(ws, sizeof(ws), "%s/ws", base);
    snprintf(canary, sizeof(canary), "%s/canary", base);
    mkdir(ws, 0700);
    write_file(canary, "intact");
    int rc = 1;
    if (root_is_read_only()) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_writes_outside_the_workspace_fail_erofs),
            cmocka_unit_test(test_shadow_unreadable_and_not_root),
            cmocka_unit_test(test_network_off_and_on),
            cmocka_unit_test(test_symlink_out_of_the_workspace),
            cmocka_unit_test(test_output_cut_at_the_limit),
            cmocka_unit_test(test_cpu_loop_and_wall_clock),
            cmocka_unit_test(test_memory_bomb_killed),
            cmocka_unit_test(test_fork_bomb_capped),
            cmocka_unit_test(test_kill_takes_the_whole_tree),
            cmocka_unit_test(test_long_lived_process_with_pipes),
            cmocka_unit_test(test_rm_rf_root_is_contained),
            cmocka_unit_test(test_runsc),
        };
        rc = cmocka_run_group_tests(tests, NULL, NULL);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        rc = 1;
    wk_sandbox_free(sb_cg);
    wk_sandbox_free(sb_rl);
    return rc;
}
