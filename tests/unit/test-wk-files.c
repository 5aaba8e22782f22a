/* tests/unit/test-wk-files.c - the file tools (worker/tool_read_file.c, tool_read_lines.c,
 * tool_write_file.c, tool_edit_range.c, tool_list_dir.c, tool_search_files.c) on a fresh temp
 * workspace per test, with the confinement of worker/workspace.c: every escape attempt ("..",
 * absolute paths, symbolic links out, chains, loops, writing through a link) must fail with
 * "outside the workspace" (or another refusal) and leave the directory beside the workspace
 * untouched. Calls run through the real work pool and timers; done() is awaited on a condvar
 * with a generous deadline, and must come exactly once, not from inside run(). Also the listing
 * and removal of the node's workspaces (a deleted agent's, never through a link). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/timers.h"
#include "common/workpool.h"
#include "common/xalloc.h"
#include "worker/tool.h"
#include "worker/workspace.h"

#include "tool_call.h"

#define WAIT_SECONDS 30

/* A temp dir holding "ws" (the workspace) and "out" (beside it, with out/secret.txt). */
struct fixture {
    char base[64], ws[96], out[96];
    struct ag_timers *timers;
    struct ag_workpool *pool;
};

static struct fixture fx;

static void put(const char *rel, const char *content)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx.ws, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* The content of base/rel (owned), or NULL if it does not exist. */
static char *slurp(const char *base, const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = ag_xcalloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void ws_symlink(const char *target, const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx.ws, rel);
    assert_int_equal(symlink(target, path), 0);
}

static void ws_mkdir(const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx.ws, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
    (void)state;
    strcpy(fx.base, "/tmp/agentry-files-XXXXXX");
    assert_non_null(mkdtemp(fx.base));
    snprintf(fx.ws, sizeof(fx.ws), "%s/ws", fx.base);
    snprintf(fx.out, sizeof(fx.out), "%s/out", fx.base);
    assert_int_equal(mkdir(fx.ws, 0755), 0);
    assert_int_equal(mkdir(fx.out, 0755), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/secret.txt", fx.out);
    FILE *f = fopen(path, "w");
    fputs("TOPSECRET\n", f);
    fclose(f);
    fx.timers = ag_timers_new(NULL);
    fx.pool = ag_workpool_new(2, 64, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ag_workpool_free(fx.pool);
    ag_timers_free(fx.timers);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.base);
    assert_int_equal(system(cmd), 0);
    return 0;
}

struct opts {
    const char *settings;
    const struct wk_config *config;
    int64_t deadline_ms;
    bool cancel_first;
};

static char *call_with(const char *name, const char *args, const struct opts *o, bool *is_error)
{
    const struct wk_tool *t = wk_tool_find(name);
    assert_non_null(t);
    struct wk_config none = {name, NULL, 0, 0};
    struct wk_cancel cancel;
    wk_cancel_init(&cancel);
    if (o->cancel_first)
        wk_cancel_request(&cancel);
    struct wk_call_ctx ctx = {.timers = fx.timers,
                              .config = o->config ? o->config : &none,
                              .cancel = &cancel,
                              .deadline_ms = o->deadline_ms,
                              .workpool = fx.pool,
                              .agent_id = "a1",
                              .workspace = fx.ws,
                              .settings_json = o->settings};
    struct tool_call_result r;
    tool_call_result_init(&r);
    struct ag_err err = AG_ERR_INIT;
    if (tool_call_start(t, &ctx, args, &r, &err) != 0)
        fail_msg("run: %s", err.msg);
    /* A second done() would come from a timer or the pool: both are drained by now once the
     * next call has gone through them, which the next test's calls do; here the count must be
     * exactly one already. */
    char *out = tool_call_finish(&r, WAIT_SECONDS, is_error);
    wk_cancel_release(&cancel);
    return out;
}

static char *call(const char *name, const char *args, bool *is_error)
{
    struct opts o = {NULL, NULL, 0, false};
    return call_with(name, args, &o, is_error);
}

/* The call succeeds and its output contains want. */
static void expect_ok(const char *name, const char *args, const char *want)
{
    bool is_error = true;
    char *out = call(name, args, &is_error);
    if (is_error || !strstr(out, want))
        fail_msg("%s %s: want '%s' (no error), got%s '%s'", name, args, want,
                 is_error ? " error" : "", out);
    free(out);
}

/* The call is an error result whose output contains want. */
static void expect_error(const char *name, const char *args, const char *want)
{
    bool is_error = false;
    char *out = call(name, args, &is_error);
    if (!is_error || !strstr(out, want))
        fail_msg("%s %s: want error '%s', got%s '%s'", name, args, want, is_error ? " error" : "",
                 out);
    free(out);
}

static void expect_secret_intact(void)
{
    char *s = slurp(fx.out, "secret.txt");
    assert_non_null(s);
    assert_string_equal(s, "TOPSECRET\n");
    free(s);
}

static void test_read_file(void **state)
{
    (void)state;
    put("a.txt", "hello\nworld\n");
    expect_ok("read_file", "{\"path\":\"a.txt\"}", "hello\nworld\n");
    expect_ok("read_file", "{\"path\":\"./a.txt\"}", "hello");
    /* an absolute path under the workspace means the same file */
    char args[256];
    snprintf(args, sizeof(args), "{\"path\":\"%s/a.txt\"}", fx.ws);
    expect_ok("read_file", args, "world");
    expect_ok("read_file", "{\"path\":\"a.txt\",\"max_bytes\":5}",
              "hello\n[truncated: showed the first 5 of 12 bytes");
    expect_error("read_file", "{\"path\":\"nope.txt\"}", "no file or directory 'nope.txt'");
    ws_mkdir("d");
    expect_error("read_file", "{\"path\":\"d\"}", "'d' is a directory");
    put("bin", "ab");
    char path[256];
    snprintf(path, sizeof(path), "%s/bin", fx.ws);
    FILE *f = fopen(path, "w");
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    expect_error("read_file", "{\"path\":\"bin\"}", "looks binary");
    put("latin1", "caf\xe9\n");
    expect_ok("read_file", "{\"path\":\"latin1\"}", "caf\xEF\xBF\xBD\n");
    expect_error("read_file", "{}", "argument 'path' is required");
    expect_error("read_file", "[1]", "takes a JSON object");
    expect_error("read_file", "{\"path\":\"\"}", "the path is empty");
}

/* The spec's setting lowers the node's option; it never raises it. */
static void test_read_file_limits(void **state)
{
    (void)state;
    put("a.txt", "0123456789");
    struct wk_config_item item = {"max_bytes", "8"};
    struct wk_config cfg = {"read_file", &item, 1, 0};
    struct opts o = {"{\"max_bytes\":4}", &cfg, 0, false};
    bool is_error = true;
    char *out = call_with("read_file", "{\"path\":\"a.txt\"}", &o, &is_error);
    assert_false(is_error);
    assert_non_null(strstr(out, "0123\n[truncated: showed the first 4 of 10"));
    free(out);
    o.settings = "{\"max_bytes\":100}";
    out = call_with("read_file", "{\"path\":\"a.txt\"}", &o, &is_error);
    assert_non_null(strstr(out, "01234567\n[truncated"));
    free(out);
}

static void test_read_lines(void **state)
{
    (void)state;
    put("l.txt", "one\ntwo\nthree\nfour");
    expect_ok("read_lines", "{\"path\":\"l.txt\",\"start\":2,\"end\":3}", "2\ttwo\n3\tthree\n");
    expect_ok("read_lines", "{\"path\":\"l.txt\"}", "1\tone\n2\ttwo\n3\tthree\n4\tfour\n");
    expect_ok("read_lines", "{\"path\":\"l.txt\",\"start\":\"3\",\"end\":9}",
              "3\tthree\n4\tfour\n[end of file: 'l.txt' has 4 lines]");
    expect_error("read_lines", "{\"path\":\"l.txt\",\"start\":7}",
                 "line 7 is past the end of 'l.txt', which has 4 lines");
    expect_error("read_lines", "{\"path\":\"l.txt\",\"start\":3,\"end\":2}", "not a range");
    expect_error("read_lines", "{\"path\":\"l.txt\",\"start\":0}", "not a range");
    put("empty", "");
    expect_ok("read_lines", "{\"path\":\"empty\"}", "'empty' is empty");
    /* the output bound: whole lines, or a first line cut */
    struct opts o = {"{\"max_bytes\":12}", NULL, 0, false};
    bool is_error = true;
    char *out = call_with("read_lines", "{\"path\":\"l.txt\"}", &o, &is_error);
    assert_false(is_error);
    assert_string_equal(out, "1\tone\n2\ttwo\n[cut at 12 bytes; ask for lines from 3 on]");
    free(out);
    put("long", "abcdefghijklmnopqrstuvwxyz\nnext\n");
    out = call_with("read_lines", "{\"path\":\"long\"}", &o, &is_error);
    assert_string_equal(out, "1\tabcdefghij\n[cut at 12 bytes; ask for lines from 2 on]");
    free(out);
}

static void test_write_file(void **state)
{
    (void)state;
    expect_ok("write_file", "{\"path\":\"new/deep/f.txt\",\"content\":\"abc\"}",
              "wrote 3 bytes to 'new/deep/f.txt' (created)");
    char *s = slurp(fx.ws, "new/deep/f.txt");
    assert_string_equal(s, "abc");
    free(s);
    char path[256];
    snprintf(path, sizeof(path), "%s/new/deep/f.txt", fx.ws);
    assert_int_equal(chmod(path, 0600), 0);
    expect_ok("write_file", "{\"path\":\"new/deep/f.txt\",\"content\":\"xyz\\n\"}", "(replaced)");
    s = slurp(fx.ws, "new/deep/f.txt");
    assert_string_equal(s, "xyz\n");
    free(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* kept */
    /* no temporary file left behind */
    expect_ok("list_dir", "{\"path\":\"new/deep\"}", "'new/deep': 1 entries\nfile\t4\tf.txt\n");
    expect_error("write_file", "{\"path\":\"new\",\"content\":\"x\"}", "'new' is a directory");
    expect_error("write_file", "{\"path\":\"new/..\",\"content\":\"x\"}", "does not name a file");
    expect_error("write_file", "{\"path\":\"f\"}", "argument 'content' is required");
    put("plain", "p");
    expect_error("write_file", "{\"path\":\"plain/x\",\"content\":\"x\"}", "not a directory");
    struct wk_config_item item = {"max_bytes", "2"};
    struct wk_config cfg = {"write_file", &item, 1, 0};
    struct opts o = {NULL, &cfg, 0, false};
    bool is_error = false;
    char *out = call_with("write_file", "{\"path\":\"big\",\"content\":\"abc\"}", &o, &is_error);
    assert_true(is_error);
    assert_non_null(strstr(out, "more than the 2"));
    free(out);
}

static void test_edit_range(void **state)
{
    (void)state;
    put("e.txt", "1\n2\n3\n4\n5\n");
    expect_ok("edit_range",
              "{\"path\":\"e.txt\",\"start\":2,\"end\":3,\"replacement\":\"two\\nthree\\nmore\"}",
              "replaced lines 2..3 of 'e.txt' (2 lines) with 3 lines; it now has 6 lines");
    char *s = slurp(fx.ws, "e.txt");
    assert_string_equal(s, "1\ntwo\nthree\nmore\n4\n5\n");
    free(s);
    /* end = start - 1 inserts before start */
    expect_ok("edit_range", "{\"path\":\"e.txt\",\"start\":1,\"end\":0,\"replacement\":\"0\\n\"}",
              "now has 7 lines");
    /* an empty replacement deletes */
    expect_ok("edit_range", "{\"path\":\"e.txt\",\"start\":2,\"end\":5,\"replacement\":\"\"}",
              "now has 3 lines");
    s = slurp(fx.ws, "e.txt");
    assert_string_equal(s, "0\n4\n5\n");
    free(s);
    /* appending after a last line without a newline */
    put("n.txt", "a\nb");
    expect_ok("edit_range", "{\"path\":\"n.txt\",\"start\":3,\"end\":2,\"replacement\":\"c\"}",
              "now has 3 lines");
    s = slurp(fx.ws, "n.txt");
    assert_string_equal(s, "a\nb\nc\n");
    free(s);
    expect_error("edit_range", "{\"path\":\"n.txt\",\"start\":5,\"end\":5,\"replacement\":\"\"}",
                 "lines 5..5 are not in the file, which has 3 lines");
    expect_error("edit_range", "{\"path\":\"n.txt\",\"start\":2,\"end\":0,\"replacement\":\"\"}",
                 "not in the file");
    expect_error("edit_range", "{\"path\":\"missing\",\"start\":1,\"end\":1,\"replacement\":\"\"}",
                 "no such file");
    expect_error("edit_range", "{\"path\":\"n.txt\",\"start\":1,\"end\":1}",
                 "argument 'replacement' is required");
    /* declared: twice is not once */
    assert_false(wk_tool_find("edit_range")->idempotent);
    assert_true(wk_tool_find("write_file")->idempotent);
}

static void test_list_dir(void **state)
{
    (void)state;
    put("b.txt", "12345");
    put("a.txt", "");
    ws_mkdir("sub");
    ws_symlink("a.txt", "l");
    expect_ok(
        "list_dir", "{}",
        "'.': 4 entries\nfile\t0\ta.txt\nfile\t5\tb.txt\nlink\t5\tl -> a.txt\ndir\t-\tsub/\n");
    expect_ok("list_dir", "{\"path\":\"sub\"}", "'sub': 0 entries\n");
    struct opts o = {"{\"max_entries\":2}", NULL, 0, false};
    bool is_error = true;
    char *out = call_with("list_dir", "{\"path\":\".\"}", &o, &is_error);
    assert_false(is_error);
    assert_non_null(strstr(out, "b.txt\n[2 more entries not shown]"));
    free(out);
    expect_error("list_dir", "{\"path\":\"a.txt\"}", "not a directory");
}

static void test_search_files(void **state)
{
    (void)state;
    ws_mkdir("src");
    ws_mkdir(".git");
    put("src/m.c", "int main(void)\n{\n    return foo(1);\n}\n");
    put("src/n.h", "int foo(int);\n");
    put("notes.md", "call foo(x) here\n");
    put(".git/HEAD", "foo\n");
    expect_ok("search_files", "{\"pattern\":\"foo\\\\(\"}",
              "notes.md:1:call foo(x) here\nsrc/m.c:3:    return foo(1);\nsrc/n.h:1:int "
              "foo(int);\n[3 matches]");
    expect_ok("search_files", "{\"pattern\":\"foo(\",\"literal\":true,\"glob\":\"*.c\"}",
              "src/m.c:3:    return foo(1);\n[1 matches]");
    expect_ok("search_files", "{\"pattern\":\"^int\",\"path\":\"src\"}",
              "src/m.c:1:int main(void)\nsrc/n.h:1:int foo(int);\n[2 matches]");
    expect_ok("search_files", "{\"pattern\":\"int\",\"path\":\"src/n.h\"}", "src/n.h:1:");
    expect_ok("search_files", "{\"pattern\":\"foo\",\"glob\":\"src/*.h\"}", "[1 matches]");
    expect_error("search_files", "{\"pattern\":\"foo(\"}", "not a POSIX extended regular");
    struct opts o = {"{\"max_matches\":1}", NULL, 0, false};
    bool is_error = true;
    char *out = call_with("search_files", "{\"pattern\":\"foo\"}", &o, &is_error);
    assert_non_null(strstr(out, "[1 matches; stopped at search_files.max_matches"));
    free(out);
}

/* Each way out, for each tool, and nothing beside the workspace changes. */
static void test_escapes_refused(void **state)
{
    (void)state;
    char target[256];
    ws_mkdir("sub");
    ws_symlink("../sub", "sub/link"); /* stays inside */
    snprintf(target, sizeof(target), "%s/secret.txt", fx.out);
    ws_symlink(target, "out_file");   /* absolute, to a file outside */
    ws_symlink("../out", "out_dir");  /* relative, to a directory outside */
    ws_symlink("out_file", "chain1"); /* a chain that ends outside */
    ws_symlink("chain1", "chain2");
    ws_symlink("loop_b", "loop_a");
    ws_symlink("loop_a", "loop_b");
    ws_symlink("/proc/self/root/etc/passwd", "magic");
    snprintf(target, sizeof(target), "{\"path\":\"%s/secret.txt\"}", fx.out);
    const char *outside[] = {"{\"path\":\"../out/secret.txt\"}",
                             "{\"path\":\"sub/../../out/secret.txt\"}",
                             "{\"path\":\"out_file\"}",
                             "{\"path\":\"out_dir/secret.txt\"}",
                             "{\"path\":\"chain2\"}",
                             "{\"path\":\"sub/link/../../out/secret.txt\"}",
                             "{\"path\":\"magic\"}"};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        expect_error("read_file", outside[i], "is outside the workspace");
        expect_error("read_lines", outside[i], "is outside the workspace");
        char search[256];
        snprintf(search, sizeof(search), "{\"pattern\":\"T\",%s", outside[i] + 1);
        expect_error("search_files", search, "is outside the workspace");
    }
    expect_error("read_file", target, "is outside the workspace");
    expect_error("read_file", "{\"path\":\"/etc/passwd\"}", "is outside the workspace");
    expect_error("read_file", "{\"path\":\"loop_a\"}", "loop of symbolic links");
    expect_error("list_dir", "{\"path\":\"..\"}", "is outside the workspace");
    expect_error("list_dir", "{\"path\":\"out_dir\"}", "is outside the workspace");
    expect_error("list_dir", "{\"path\":\"sub/link/../..\"}", "is outside the workspace");
    expect_error("list_dir", "{\"path\":\"/\"}", "is outside the workspace");
    /* links that stay inside are fine */
    put("sub/in.txt", "inside\n");
    expect_ok("read_file", "{\"path\":\"sub/link/in.txt\"}", "inside");
    expect_ok("list_dir", "{\"path\":\"sub/link/..\"}", "'sub/link/..': ");
    /* a recursive search never follows a link, in or out */
    expect_ok("search_files", "{\"pattern\":\"TOPSECRET|inside\"}",
              "sub/in.txt:1:inside\n[1 matches]");
    expect_secret_intact();
}

static void test_write_escapes_refused(void **state)
{
    (void)state;
    char target[256];
    snprintf(target, sizeof(target), "%s/secret.txt", fx.out);
    ws_symlink(target, "out_file");
    ws_symlink("../out", "out_dir");
    ws_symlink("out_file", "chain");
    ws_mkdir("sub");
    ws_symlink("../sub", "sub/link");
    put("in.txt", "1\n2\n");
    ws_symlink("in.txt", "in_link");
    const char *w[] = {
        "{\"path\":\"../out/secret.txt\",\"content\":\"x\"}",
        "{\"path\":\"a/../../out/secret.txt\",\"content\":\"x\"}",
        "{\"path\":\"out_file\",\"content\":\"x\"}",
        "{\"path\":\"chain\",\"content\":\"x\"}",
        "{\"path\":\"out_dir/secret.txt\",\"content\":\"x\"}",
        "{\"path\":\"out_dir/new.txt\",\"content\":\"x\"}",
        "{\"path\":\"out_dir/newdir/new.txt\",\"content\":\"x\"}",
        "{\"path\":\"sub/link/../../out/new.txt\",\"content\":\"x\"}",
        "{\"path\":\"/etc/agentry-test-escape\",\"content\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        expect_error("write_file", w[i], "is outside the workspace");
    const char *e[] = {
        "{\"path\":\"out_file\",\"start\":1,\"end\":1,\"replacement\":\"x\"}",
        "{\"path\":\"chain\",\"start\":1,\"end\":1,\"replacement\":\"x\"}",
        "{\"path\":\"out_dir/secret.txt\",\"start\":1,\"end\":1,\"replacement\":\"x\"}",
        "{\"path\":\"../out/secret.txt\",\"start\":1,\"end\":1,\"replacement\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
        expect_error("edit_range", e[i], "is outside the workspace");
    /* a link inside as the last component: refused, naming its target */
    expect_error("write_file", "{\"path\":\"in_link\",\"content\":\"x\"}",
                 "is a symbolic link to 'in.txt'");
    expect_error("edit_range", "{\"path\":\"in_link\",\"start\":1,\"end\":1,\"replacement\":\"x\"}",
                 "is a symbolic link to 'in.txt'");
    expect_secret_intact();
    char *s = slurp(fx.out, "new.txt");
    assert_null(s);
    s = slurp(fx.out, "newdir/new.txt");
    assert_null(s);
    struct stat st;
    assert_int_equal(lstat(fx.ws, &st), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/out_file", fx.ws);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* not replaced either */
    /* through a link that stays inside, a parent directory is fine */
    expect_ok("write_file", "{\"path\":\"sub/link/w.txt\",\"content\":\"w\"}", "(created)");
    s = slurp(fx.ws, "sub/w.txt");
    assert_string_equal(s, "w");
    free(s);
}

/* Without a pool or a workspace run() fails and done() is never called. */
static void test_needs_pool_and_workspace(void **state)
{
    (void)state;
    const struct wk_tool *t = wk_tool_find("read_file");
    struct wk_config none = {"read_file", NULL, 0, 0};
    struct wk_call_ctx ctx = {.timers = fx.timers, .config = &none, .workspace = fx.ws};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(t->run(t, &ctx, "{\"path\":\"x\"}", tool_call_on_done, NULL, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "no work pool"));
    ctx.workpool = fx.pool;
    ctx.workspace = NULL;
    assert_int_equal(t->run(t, &ctx, "{\"path\":\"x\"}", tool_call_on_done, NULL, &err), -1);
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "no workspace"));
}

static void test_cancel_and_deadline(void **state)
{
    (void)state;
    put("w.txt", "old");
    struct opts o = {NULL, NULL, 0, true};
    bool is_error = false;
    char *out = call_with("write_file", "{\"path\":\"w.txt\",\"content\":\"new\"}", &o, &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'write_file' was cancelled");
    free(out);
    o.cancel_first = false;
    o.deadline_ms = ag_now_mono_ms() - 1;
    out = call_with("write_file", "{\"path\":\"w.txt\",\"content\":\"new\"}", &o, &is_error);
    assert_true(is_error);
    assert_string_equal(out, "tool 'write_file' timed out");
    free(out);
    char *s = slurp(fx.ws, "w.txt");
    assert_string_equal(s, "old"); /* neither ran */
    free(s);
}

static void test_settings_and_options_checked(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    const struct wk_tool *rf = wk_tool_find("read_file");
    assert_int_equal(rf->check_settings("{\"max_bytes\":100}", &err), 0);
    assert_int_equal(rf->check_settings("{\"max_bytes\":\"64KiB\"}", &err), 0);
    assert_int_equal(rf->check_settings(NULL, &err), 0);
    assert_int_equal(rf->check_settings("{\"max_byte\":100}", &err), -1);
    assert_non_null(strstr(err.msg, "unknown tool setting 'max_byte'"));
    assert_int_equal(rf->check_settings("{\"max_bytes\":-1}", &err), -1);
    assert_int_equal(rf->check_settings("[]", &err), -1);
    struct wk_config_item bad = {"max_bytes", "lots"};
    struct wk_config cfg = {"read_file", &bad, 1, 0};
    assert_int_equal(rf->check_config(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "read_file.max_bytes=lots"));
    struct wk_config_item unknown = {"colour", "1"};
    cfg.items = &unknown;
    assert_int_equal(rf->check_config(&cfg, &err), -1);
    const struct wk_tool *sf = wk_tool_find("search_files");
    assert_int_equal(sf->check_settings("{\"max_matches\":5,\"max_file_bytes\":\"1MiB\"}", &err),
                     0);
}

static void test_subjects(void **state)
{
    (void)state;
    struct {
        const char *tool, *args, *want;
    } cases[] = {
        {"read_file", "{\"path\":\"a/./b//../c.txt\"}", "a/c.txt"},
        {"read_file", "{\"path\":\"./secret\"}", "secret"},
        {"write_file", "{\"path\":\"../x/../y\"}", "../y"},
        {"edit_range", "{\"path\":\"/abs//p/\"}", "/abs/p"},
        {"list_dir", "{}", "."},
        {"search_files", "{\"pattern\":\"x\",\"path\":\"src/\"}", "src"},
        {"read_lines", "{\"path\":\"a/..\"}", "."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct wk_tool *t = wk_tool_find(cases[i].tool);
        char *s = t->subject(cases[i].args);
        assert_non_null(s);
        assert_string_equal(s, cases[i].want);
        free(s);
    }
    assert_null(wk_tool_find("read_file")->subject("{}"));
}

static void test_workspace_dir_for(void **state)
{
    (void)state;
    char root[160];
    snprintf(root, sizeof(root), "%s/roots/deep", fx.base);
    struct ag_err err = AG_ERR_INIT;
    char *dir = wk_workspace_dir_for(root, "a1", &err);
    assert_non_null(dir);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    free(dir);
    dir = wk_workspace_dir_for(root, "a1", &err); /* again: it exists */
    assert_non_null(dir);
    free(dir);
    const char *bad[] = {"", ".", "..", "a/b", "../x", "a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(wk_workspace_dir_for(root, bad[i], &err));
        assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    }
    char link[256];
    snprintf(link, sizeof(link), "%s/evil", root);
    assert_int_equal(symlink(fx.out, link), 0);
    assert_null(wk_workspace_dir_for(root, "evil", &err));
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    /* a root that is a symbolic link (to a directory someone else controls) */
    char linked_root[256];
    snprintf(linked_root, sizeof(linked_root), "%s/linked-root", fx.base);
    assert_int_equal(symlink(fx.out, linked_root), 0);
    assert_null(wk_workspace_dir_for(linked_root, "a1", &err));
    assert_int_equal(err.code, AG_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "is not a directory owned by this user"));
    char *made = slurp(fx.out, "a1");
    assert_null(made); /* nothing was made in it */
}

/* A deleted agent's workspace (node.proto, Forget): the whole tree goes, a directory the model
 * closed (chmod 0) included, but a symbolic link out is removed as a name, never followed; the
 * listing names only the directories that are agent ids. */
static void test_workspace_list_and_remove(void **state)
{
    (void)state;
    char root[160], path[320];
    snprintf(root, sizeof(root), "%s/root", fx.base);
    struct ag_err err = AG_ERR_INIT;
    const char *id = "01jd5x8k2m4n6p8q";
    char *dir = wk_workspace_dir_for(root, id, &err);
    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/a", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/a/b/f.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("0123456789", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/a/out", dir);
    assert_int_equal(symlink(fx.out, path), 0);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    assert_int_equal(chmod(path, 0), 0);
    snprintf(path, sizeof(path), "%s/not-an-id", root);
    assert_int_equal(mkdir(path, 0700), 0);

    char **ids;
    size_t n;
    assert_int_equal(wk_workspace_list(root, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], id);
    free(ids[0]);
    free(ids);

    bool found;
    uint64_t bytes;
    assert_int_equal(wk_workspace_remove(root, id, &found, &bytes, &err), 0);
    assert_true(found);
    assert_int_equal(bytes, 10);
    struct stat st;
    assert_int_equal(lstat(dir, &st), -1);
    char *secret = slurp(fx.out, "secret.txt");
    assert_string_equal(secret, "TOPSECRET\n");
    free(secret);
    assert_int_equal(wk_workspace_remove(root, id, &found, &bytes, &err), 0);
    assert_false(found);
    assert_int_equal(wk_workspace_remove(root, "..", &found, &bytes, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    snprintf(path, sizeof(path), "%s/none", fx.base);
    assert_int_equal(wk_workspace_list(path, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_escapes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_needs_pool_and_workspace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_and_options_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subjects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workspace_list_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workspace_dir_for, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
