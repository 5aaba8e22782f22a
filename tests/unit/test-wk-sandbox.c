/* tests/unit/test-wk-sandbox.c - the sandbox's pure parts (worker/sandbox.h), no privileges
 * needed: the command lines each back end builds, the server limits, stopping a long-lived
 * process (on the direct back end), the refusals of a sandbox that is not ready,
 * unknown modes, and the shell guard's rules (blocked shapes, quoted and spaced variants, and
 * ordinary commands it must let through). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "worker/sandbox.h"

static const char *const cmd[] = {"/bin/sh", "-c", "echo hi", NULL};
static const char *const env[] = {"PATH=/usr/bin:/bin", NULL};

/* Index of the first occurrence of the words (consecutive) in argv, or -1. */
static int find(char **argv, const char *const *words)
{
    for (int i = 0; argv[i]; i++) {
        int j = 0;
        while (words[j] && argv[i + j] && strcmp(argv[i + j], words[j]) == 0)
            j++;
        if (!words[j])
            return i;
    }
    return -1;
}

#define HAS(argv, ...) (find((argv), (const char *const[]){__VA_ARGS__, NULL}) >= 0)

static void test_bwrap_argv(void **state)
{
    (void)state;
    struct wk_sandbox_req req = {.argv = cmd, .envp = env, .workspace = "/srv/ws/a1"};
    char **a = wk_sandbox_argv("bwrap", &req, 3);
    assert_string_equal(a[0], "bwrap");
    assert_true(HAS(a, "--unshare-all"));
    assert_true(HAS(a, "--die-with-parent"));
    assert_true(HAS(a, "--new-session"));
    assert_true(HAS(a, "--cap-drop", "ALL"));
    assert_true(HAS(a, "--ro-bind", "/usr", "/usr"));
    assert_true(HAS(a, "--ro-bind", "/etc", "/etc"));
    assert_true(HAS(a, "--ro-bind", "/dev/null", "/etc/shadow"));
    assert_true(HAS(a, "--tmpfs", "/tmp"));
    assert_true(HAS(a, "--bind", "/srv/ws/a1", "/workspace"));
    assert_true(HAS(a, "--chdir", "/workspace"));
    assert_true(HAS(a, "--remount-ro", "/"));
    assert_true(HAS(a, "--seccomp", "3"));
    assert_false(HAS(a, "--share-net"));
    /* a read-only bind of / cannot take the /workspace mount point (sandbox.md §2) */
    assert_false(HAS(a, "--ro-bind", "/", "/"));
    /* the command comes last, after "--", untouched */
    int dd = find(a, (const char *const[]){"--", "/bin/sh", "-c", "echo hi", NULL});
    assert_true(dd > 0);
    assert_null(a[dd + 4]);
    wk_sandbox_argv_free(a);

    req.net = true;
    a = wk_sandbox_argv("bwrap", &req, -1);
    assert_true(HAS(a, "--share-net"));
    assert_false(HAS(a, "--seccomp"));
    wk_sandbox_argv_free(a);
}

/* A long-lived server's program dirs: bound read-only after the private /tmp (which would hide
 * one under /tmp), before the workspace; the other back ends see the host's paths anyway. */
static void test_ro_paths_argv(void **state)
{
    (void)state;
    static const char *const ro[] = {"/opt/mcp", "/tmp/servers", NULL};
    struct wk_sandbox_req req = {
        .argv = cmd, .envp = env, .workspace = "/srv/ws/a1", .ro_paths = ro};
    char **a = wk_sandbox_argv("bwrap", &req, -1);
    int tmp = find(a, (const char *const[]){"--tmpfs", "/tmp", NULL});
    int opt = find(a, (const char *const[]){"--ro-bind", "/opt/mcp", "/opt/mcp", NULL});
    int srv = find(a, (const char *const[]){"--ro-bind", "/tmp/servers", "/tmp/servers", NULL});
    int wsb = find(a, (const char *const[]){"--bind", "/srv/ws/a1", "/workspace", NULL});
    assert_true(tmp >= 0 && opt > tmp && srv > opt && wsb > srv);
    wk_sandbox_argv_free(a);
    a = wk_sandbox_argv("direct", &req, -1);
    assert_false(HAS(a, "/opt/mcp"));
    wk_sandbox_argv_free(a);
}

/* A server lives long: no cap that ends a process for living (CPU seconds, output, wall clock);
 * the rest of the defaults hold. */
static void test_server_limits(void **state)
{
    (void)state;
    struct wk_sandbox_limits d = wk_sandbox_limits_default(), s = wk_sandbox_limits_server();
    assert_int_equal(s.cpu_s, 0);
    assert_int_equal(s.output_bytes, 0);
    assert_int_equal(s.wall_ms, 0);
    assert_int_equal(s.mem_bytes, d.mem_bytes);
    assert_int_equal(s.procs, d.procs);
    assert_int_equal(s.nofile, d.nofile);
    assert_int_equal(s.fsize_bytes, d.fsize_bytes);
}

/* wk_sandbox_stop, on the direct back end (no privileges needed): a process that exits at EOF
 * ends at once with its own status; one that ignores SIGTERM is killed after the two graces (a
 * privileged request without a workspace runs in the node's cwd). */
static void test_stop_a_long_lived_process(void **state)
{
    (void)state;
    static const char *const cat[] = {"cat", NULL};
    struct wk_sandbox_req req = {.argv = cat,
                                 .envp = env,
                                 .workspace = "/tmp",
                                 .privileged = true,
                                 .stdin_pipe = true,
                                 .limits = wk_sandbox_limits_server()};
    struct wk_sandbox_proc p;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_sandbox_spawn(NULL, &req, &p, &err), 0);
    assert_true(p.in_fd >= 0 && p.out_fd >= 0 && p.err_fd >= 0);
    assert_int_equal(write(p.in_fd, "ping\n", 5), 5);
    char buf[16] = {0};
    assert_int_equal(read(p.out_fd, buf, sizeof(buf) - 1), 5);
    assert_string_equal(buf, "ping\n");
    int64_t t0 = ag_now_mono_ms();
    wk_sandbox_stop(&p, 2000);
    assert_true(ag_now_mono_ms() - t0 < 1500);
    assert_true(p.reaped && WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
    assert_int_equal(p.in_fd, -1);
    wk_sandbox_stop(&p, 2000); /* once reaped: nothing */
    wk_sandbox_proc_release(&p);

    static const char *const stubborn[] = {
        "/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done", NULL};
    req.argv = stubborn;
    req.workspace = NULL;
    assert_int_equal(wk_sandbox_spawn(NULL, &req, &p, &err), 0);
    assert_int_equal(read(p.out_fd, buf, sizeof(buf) - 1), 3); /* the trap is set */
    t0 = ag_now_mono_ms();
    wk_sandbox_stop(&p, 200);
    int64_t took = ag_now_mono_ms() - t0;
    assert_true(took >= 400 && took < 3000);
    assert_true(WIFSIGNALED(p.status) && WTERMSIG(p.status) == SIGKILL);
    wk_sandbox_proc_release(&p);
}

static void test_runsc_and_direct_argv(void **state)
{
    (void)state;
    struct wk_sandbox_req req = {.argv = cmd, .envp = env, .workspace = "/srv/ws/a1"};
    char **a = wk_sandbox_argv("runsc", &req, 3);
    assert_string_equal(a[0], "runsc");
    assert_true(HAS(a, "--network=none"));
    assert_true(HAS(a, "--platform=ptrace"));
    assert_true(HAS(a, "do"));
    assert_true(HAS(a, "--cwd", "/srv/ws/a1", "/bin/sh", "-c", "echo hi"));
    wk_sandbox_argv_free(a);
    req.net = true;
    a = wk_sandbox_argv("runsc", &req, -1);
    assert_true(HAS(a, "--network=host"));
    wk_sandbox_argv_free(a);
    a = wk_sandbox_argv("direct", &req, -1);
    assert_string_equal(a[0], "/bin/sh");
    assert_string_equal(a[2], "echo hi");
    assert_null(a[3]);
    wk_sandbox_argv_free(a);
    assert_null(wk_sandbox_argv("docker", &req, -1));
}

static void test_modes(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_sandbox_opts o = {.mode = "docker"};
    assert_null(wk_sandbox_new(&o, &err));
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "want bwrap (the default), runsc or unsafe"));

    o = (struct wk_sandbox_opts){.mode = "unsafe"};
    struct wk_sandbox *sb = wk_sandbox_new(&o, &err);
    assert_true(wk_sandbox_ready(sb));
    assert_non_null(strstr(wk_sandbox_describe(sb), "unsafe"));
    assert_string_equal(wk_sandbox_workdir(sb, false, "/srv/ws"), "/srv/ws");
    wk_sandbox_free(sb);
}

/* A sandbox that did not pass its self-test refuses unprivileged requests, naming the fix. */
static void test_not_ready_refuses(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct wk_sandbox_opts o = {.mode = "bwrap", .user = "no-such-user-x", .skip_self_test = true};
    struct wk_sandbox *sb = wk_sandbox_new(&o, &err);
    assert_non_null(sb);
    assert_false(wk_sandbox_ready(sb));
    assert_non_null(strstr(wk_sandbox_describe(sb), "--sandbox=unsafe"));
    struct wk_sandbox_req req = {
        .argv = cmd, .envp = env, .workspace = "/tmp", .limits = wk_sandbox_limits_default()};
    struct wk_sandbox_proc p;
    assert_int_equal(wk_sandbox_spawn(sb, &req, &p, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "unavailable"));
    assert_string_equal(wk_sandbox_workdir(sb, false, "/srv/ws"), "/workspace");
    assert_string_equal(wk_sandbox_workdir(sb, true, "/srv/ws"), "/srv/ws");
    wk_sandbox_free(sb);
    /* no sandbox at all: only privileged requests */
    assert_int_equal(wk_sandbox_spawn(NULL, &req, &p, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
}

static void test_guard_blocks(void **state)
{
    (void)state;
    static const char *const blocked[] = {
        "rm -rf /",
        "rm -rf --no-preserve-root /",
        "rm --no-preserve-root -r /",
        "rm -r -f /*",
        "rm -fr //",
        "rm -Rf /.",
        "rm -rf /usr/..",
        "  rm\t-rf   '/'  ",
        "rm -rf \"/\"",
        "rm -rf \\/",
        "echo ok; rm -rf / ; echo done",
        "true && sudo rm -rf /",
        "FOO=1 env -i nice rm -rf /",
        "/bin/rm -rf /",
        "cd /tmp | rm --recursive --force /",
        "rm -rf ~",
        "rm -rf $HOME",
        "chmod -R 777 /",
        "mkfs.ext4 /dev/sda1",
        "dd if=/dev/zero of=/dev/sda bs=1M",
        "shutdown -h now",
        ":(){ :|:& };:",
        "bomb() { bomb | bomb & }; bomb",
        NULL,
    };
    for (const char *const *c = blocked; *c; c++)
        if (!wk_sandbox_guard(*c))
            fail_msg("not blocked: %s", *c);
    assert_string_equal(wk_sandbox_guard("rm -rf /"), "rm -r of the root");
    assert_string_equal(wk_sandbox_guard("rm -rf --no-preserve-root /"), "rm --no-preserve-root");
    assert_string_equal(wk_sandbox_guard(":(){ :|:& };:"), "a fork bomb");
}

static void test_guard_allows(void **state)
{
    (void)state;
    static const char *const allowed[] = {
        "rm -rf ./build",
        "rm -rf build/ /workspace/out",
        "rm -f /tmp/x",
        "rm /",
        "echo 'rm -rf /'",
        "grep -r rm /etc/passwd",
        "ls -la /",
        "chmod -R g+w src",
        "dd if=/dev/zero of=/dev/null count=1",
        "dd if=/dev/zero of=img bs=1M count=1",
        "f() { echo hi; }; f",
        "make -j2 && ./run_tests",
        "",
        NULL,
    };
    for (const char *const *c = allowed; *c; c++)
        if (wk_sandbox_guard(*c))
            fail_msg("blocked: %s (%s)", *c, wk_sandbox_guard(*c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bwrap_argv),
        cmocka_unit_test(test_runsc_and_direct_argv),
        cmocka_unit_test(test_ro_paths_argv),
        cmocka_unit_test(test_server_limits),
        cmocka_unit_test(test_stop_a_long_lived_process),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_not_ready_refuses),
        cmocka_unit_test(test_guard_blocks),
        cmocka_unit_test(test_guard_allows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
