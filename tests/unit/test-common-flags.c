/* tests/unit/test-common-flags.c - common/flags.c: every accepted form and every error message.
 * Messages are part of the CLI's interface (users read them, scripts grep them), so the tests
 * compare them exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/flags.h"
#include "common/xalloc.h"

/* A command with one flag of each type, like 'agentry trace' plus a few. */
struct opts {
    bool follow, json;
    const char *hub;
    int64_t capacity, from;
    int64_t timeout_ms;
    struct ag_strlist tools;
};

#define NFLAGS 7

static void table(struct opts *o, struct ag_flag f[NFLAGS])
{
    memset(o, 0, sizeof(*o));
    o->json = true; /* so --no-json has something to turn off */
    o->hub = "127.0.0.1:7070";
    o->timeout_ms = 10000;
    struct ag_flag rows[NFLAGS] = {
        {"follow", 'f', AG_FLAG_BOOL, &o->follow, NULL, "keep following", 0, 0},
        {"json", 0, AG_FLAG_BOOL, &o->json, NULL, "print JSON", 0, 0},
        {"hub", 0, AG_FLAG_STR, &o->hub, "ADDR", "hub address", 0, 0},
        {"capacity", 'c', AG_FLAG_INT, &o->capacity, "N", "slots", 1, 100000},
        {"from", 0, AG_FLAG_INT, &o->from, "SEQ", "first seq", 0, 0},
        {"timeout", 't', AG_FLAG_DURATION, &o->timeout_ms, NULL, "deadline (default 10s)", 0,
         86400000},
        {"tool", 0, AG_FLAG_LIST, &o->tools, "NAME", "tools, repeatable", 0, 0},
    };
    memcpy(f, rows, sizeof(rows));
}

/* Parse a NULL-terminated list of arguments for command "trace". */
struct result {
    int rc;
    struct ag_err err;
    char *pos[4];
    size_t npos;
};

static struct result run(struct opts *o, size_t max_pos, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, max_pos);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    struct ag_flag f[NFLAGS];
    table(o, f);
    struct result r = {0, AG_ERR_INIT, {0}, 0};
    r.rc = ag_flags_parse("trace", f, NFLAGS, argc, argv, r.pos, max_pos, &r.npos, &r.err);
    return r;
}

static void expect_error(struct result r, const char *msg)
{
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.err.code, AG_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, msg);
}

static void test_defaults_kept(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.npos, 0);
    assert_string_equal(o.hub, "127.0.0.1:7070");
    assert_int_equal(o.timeout_ms, 10000);
    assert_true(o.json);
    assert_false(o.follow);
    assert_int_equal(o.tools.n, 0);
}

static void test_long_forms(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "--hub", "h:1", "--capacity=42", "--from", "-3", "--follow",
                          "--no-json", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "h:1");
    assert_int_equal(o.capacity, 42);
    assert_int_equal(o.from, -3); /* a negative number is a value, not a flag */
    assert_true(o.follow);
    assert_false(o.json);
}

static void test_short_forms(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "-f", "-c", "7", "-t", "250ms", NULL);
    assert_int_equal(r.rc, 0);
    assert_true(o.follow);
    assert_int_equal(o.capacity, 7);
    assert_int_equal(o.timeout_ms, 250);
}

static void test_bool_values(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "--json=false", "--follow=true", NULL);
    assert_int_equal(r.rc, 0);
    assert_false(o.json);
    assert_true(o.follow);
    r = run(&o, 4, "--json=0", "--follow=yes", NULL);
    assert_int_equal(r.rc, 0);
    assert_false(o.json);
    assert_true(o.follow);
    expect_error(run(&o, 4, "--json=maybe", NULL),
                 "invalid value 'maybe' for --json: want true or false");
    expect_error(run(&o, 4, "--no-json=1", NULL), "flag '--no-json' takes no value");
}

static void test_positionals_mixed(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "a1", "--hub", "x:1", "b2", "-", "-f", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.npos, 3);
    assert_string_equal(r.pos[0], "a1");
    assert_string_equal(r.pos[1], "b2");
    assert_string_equal(r.pos[2], "-"); /* "-" alone is an argument (stdin by convention) */
    assert_string_equal(o.hub, "x:1");
    assert_true(o.follow);
}

static void test_double_dash(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "-f", "--", "--hub", "-h", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.npos, 2);
    assert_string_equal(r.pos[0], "--hub");
    assert_string_equal(r.pos[1], "-h");
    assert_string_equal(o.hub, "127.0.0.1:7070");
}

static void test_value_with_dash(void **state)
{
    struct opts o;
    /* A token that is not one of our flags is taken as the value. */
    struct result r = run(&o, 4, "--hub", "-weird", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "-weird");
    r = run(&o, 4, "--hub=--json", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "--json");
    r = run(&o, 4, "--hub=", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "");
}

static void test_last_wins(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "--hub", "a:1", "--hub=b:2", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "b:2");
}

static void test_list(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "--tool", "echo", "--tool=http,,shell,", "--tool", "x", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(o.tools.n, 4);
    assert_string_equal(o.tools.items[0], "echo");
    assert_string_equal(o.tools.items[1], "http");
    assert_string_equal(o.tools.items[2], "shell");
    assert_string_equal(o.tools.items[3], "x");
    ag_strlist_release(&o.tools);
    assert_null(o.tools.items);
    assert_int_equal(o.tools.n, 0);
    ag_strlist_release(&o.tools); /* twice is harmless */
    ag_strlist_release(NULL);
}

static void test_help(void **state)
{
    struct opts o;
    assert_int_equal(run(&o, 0, "--help", NULL).rc, 1);
    assert_int_equal(run(&o, 0, "-h", NULL).rc, 1);
    /* Help wins over any other problem on the line. */
    assert_int_equal(run(&o, 0, "--frm", "x", "y", "--capacity", "0", "-h", NULL).rc, 1);
    /* After "--" it is an argument. */
    struct result r = run(&o, 1, "--", "--help", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.pos[0], "--help");
}

static void test_unknown_flags(void **state)
{
    struct opts o;
    expect_error(run(&o, 4, "--frm", "3", NULL),
                 "unknown flag '--frm' (see 'agentry trace --help')");
    expect_error(run(&o, 4, "--frm=3", NULL), "unknown flag '--frm' (see 'agentry trace --help')");
    expect_error(run(&o, 4, "-x", NULL), "unknown flag '-x' (see 'agentry trace --help')");
    expect_error(run(&o, 4, "-fc", NULL), "unknown flag '-fc' (see 'agentry trace --help')");
    expect_error(run(&o, 4, "--no-hub", NULL),
                 "unknown flag '--no-hub' (see 'agentry trace --help')");
    expect_error(run(&o, 4, "--no-", NULL), "unknown flag '--no-' (see 'agentry trace --help')");
    expect_error(run(&o, 4, "---", NULL), "unknown flag '---' (see 'agentry trace --help')");
}

static void test_missing_values(void **state)
{
    struct opts o;
    expect_error(run(&o, 4, "--capacity", NULL), "flag '--capacity' needs a value");
    expect_error(run(&o, 4, "-c", NULL), "flag '-c' needs a value");
    expect_error(run(&o, 4, "--hub", "--json", NULL), "flag '--hub' needs a value");
    expect_error(run(&o, 4, "--hub", "-f", NULL), "flag '--hub' needs a value");
    expect_error(run(&o, 4, "--hub", "--", NULL), "flag '--hub' needs a value");
    expect_error(run(&o, 4, "--hub", "--no-json", NULL), "flag '--hub' needs a value");
    expect_error(run(&o, 4, "--tool", NULL), "flag '--tool' needs a value");
}

static void test_int_values(void **state)
{
    struct opts o;
    expect_error(run(&o, 4, "--capacity", "x", NULL),
                 "invalid value 'x' for --capacity: want an integer in 1..100000");
    expect_error(run(&o, 4, "--capacity=0", NULL),
                 "invalid value '0' for --capacity: want an integer in 1..100000");
    expect_error(run(&o, 4, "-c", "100001", NULL),
                 "invalid value '100001' for --capacity: want an integer in 1..100000");
    expect_error(run(&o, 4, "--capacity=", NULL),
                 "invalid value '' for --capacity: want an integer in 1..100000");
    expect_error(run(&o, 4, "--capacity= 5", NULL),
                 "invalid value ' 5' for --capacity: want an integer in 1..100000");
    expect_error(run(&o, 4, "--from", "12abc", NULL),
                 "invalid value '12abc' for --from: want an integer");
    expect_error(run(&o, 4, "--from", "99999999999999999999", NULL),
                 "invalid value '99999999999999999999' for --from: want an integer");
    struct ag_flag seq = {"seq", 0, AG_FLAG_INT, &o.from, "SEQ", "from", 0, INT64_MAX};
    char *argv[] = {"--seq=-1"}, *pos[1];
    size_t npos;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_flags_parse("trace", &seq, 1, 1, argv, pos, 1, &npos, &err), -1);
    assert_string_equal(err.msg, "invalid value '-1' for --seq: want an integer >= 0");
    struct result r = run(&o, 4, "--capacity", "100000", "--from", "9223372036854775807", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(o.capacity, 100000);
    assert_true(o.from == INT64_MAX);
}

static void test_duration_flag(void **state)
{
    struct opts o;
    struct result r = run(&o, 4, "--timeout", "2m", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(o.timeout_ms, 120000);
    expect_error(run(&o, 4, "--timeout=5x", NULL),
                 "invalid value '5x' for --timeout: want a duration like 250ms, 5s, 2m or 1h");
    /* A maximum, stated in its largest whole unit; the value is left as it was. */
    r = run(&o, 4, "--timeout", "24h", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(o.timeout_ms, 86400000);
    expect_error(run(&o, 4, "--timeout", "86400001ms", NULL),
                 "invalid value '86400001ms' for --timeout: at most 1d");
}

/* A bare number used to be milliseconds: "--duration 5" ran 5 ms, "--handshake-timeout 1" gave up
 * after 1 ms and reconnected forever. Now it is refused, naming what is missing. */
static void test_duration_flag_needs_a_unit(void **state)
{
    struct opts o;
    expect_error(run(&o, 4, "--timeout", "5", NULL),
                 "invalid value '5' for --timeout: missing unit (want 5s, 5ms, 2m or 1h)");
    expect_error(run(&o, 4, "-t", "1500", NULL),
                 "invalid value '1500' for --timeout: missing unit (want 1500s, 1500ms, 2m or 1h)");
    expect_error(run(&o, 4, "--timeout=1.5", NULL),
                 "invalid value '1.5' for --timeout: missing unit (want 1.5s, 1.5ms, 2m or 1h)");
    assert_int_equal(o.timeout_ms, 10000); /* a refused value leaves the default alone */
    struct result r = run(&o, 4, "--timeout", "0", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(o.timeout_ms, 0); /* zero needs no unit: it means none */
}

static void test_too_many(void **state)
{
    struct opts o;
    expect_error(run(&o, 1, "a", "b", NULL), "too many arguments (see 'agentry trace --help')");
    expect_error(run(&o, 0, "a", NULL), "too many arguments (see 'agentry trace --help')");
    expect_error(run(&o, 1, "a", "--", "b", NULL),
                 "too many arguments (see 'agentry trace --help')");
}

static int64_t dur(const char *s)
{
    int64_t ms = -42;
    struct ag_err err = AG_ERR_INIT;
    if (ag_duration_parse(s, &ms, &err) < 0) {
        assert_int_equal(err.code, AG_INVALID_ARGUMENT);
        return -1;
    }
    return ms;
}

static void test_durations(void **state)
{
    assert_int_equal(dur("250ms"), 250);
    assert_int_equal(dur("5s"), 5000);
    assert_int_equal(dur("2m"), 120000);
    assert_int_equal(dur("1h"), 3600000);
    assert_int_equal(dur("30d"), 30LL * 24 * 3600000);
    assert_int_equal(dur("1d12h"), 36LL * 3600000);
    assert_int_equal(dur("0"), 0);
    assert_int_equal(dur("0s"), 0);
    assert_int_equal(dur("1m30s"), 90000);
    assert_int_equal(dur("1h2m3s4ms"), 3723004);
    assert_int_equal(dur("1.5s"), 1500);
    assert_int_equal(dur(".25s"), 250);
    assert_int_equal(dur("0.001s"), 1);
    const char *bad[] = {"",
                         "s",
                         "5x",
                         "-1s",
                         "5 s",
                         " 5s",
                         "5s ",
                         "1.5",
                         "5s10",
                         "5min",
                         "5S",
                         "1..5s",
                         "99999999999999999999h",
                         "5",
                         "1500",
                         "00",
                         "0.0",
                         "1.",
                         "-0",
                         "0x",
                         "10 "};
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        if (dur(bad[i]) != -1)
            fail_msg("'%s' should be rejected", bad[i]);
    }
    struct ag_err err = AG_ERR_INIT;
    int64_t ms;
    assert_int_equal(ag_duration_parse("5x", &ms, &err), -1);
    assert_string_equal(err.msg, "invalid duration '5x': want a duration like 250ms, 5s, 2m or 1h");
    ms = 7;
    assert_int_equal(ag_duration_parse("5", &ms, &err), -1);
    assert_string_equal(err.msg, "invalid duration '5': missing unit (want 5s, 5ms, 2m or 1h)");
    assert_int_equal(ms, 7);                                    /* untouched on failure */
    assert_int_equal(ag_duration_parse("5s10", &ms, &err), -1); /* a unit, then a bare number */
    assert_string_equal(err.msg,
                        "invalid duration '5s10': want a duration like 250ms, 5s, 2m or 1h");
    assert_int_equal(ag_duration_parse("bad", &ms, NULL), -1); /* err may be NULL */
}

/* Kubernetes-style quantities: cpu in millicores, memory in bytes. */
static void test_quantities(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t want;
    } cpu[] = {{"500m", 500},   {"2", 2000},  {"1.5", 1500}, {"0", 0},
               {"2000m", 2000}, {"0.0001", 1} /* a fraction of a millicore rounds up */},
      mem[] = {{"1000", 1000},           {"512Mi", INT64_C(512) << 20}, {"4Gi", INT64_C(4) << 30},
               {"1G", 1000000000},       {"1.5Gi", INT64_C(3) << 29},   {"2k", 2000},
               {"1Ei", INT64_C(1) << 60}};
    struct ag_err err = AG_ERR_INIT;
    int64_t v;
    for (size_t i = 0; i < AG_ARRAY_SIZE(cpu); i++) {
        if (ag_cpu_parse(cpu[i].in, &v, &err) != 0 || v != cpu[i].want)
            fail_msg("cpu '%s': want %lld", cpu[i].in, (long long)cpu[i].want);
    }
    for (size_t i = 0; i < AG_ARRAY_SIZE(mem); i++) {
        if (ag_bytes_parse(mem[i].in, &v, &err) != 0 || v != mem[i].want)
            fail_msg("memory '%s': want %lld", mem[i].in, (long long)mem[i].want);
    }
    const char *bad_cpu[] = {"", "m", "-1", "2x", "1.5m.", "1e3", "2 ", ".5", "1Gi"};
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad_cpu); i++) {
        v = 7;
        if (ag_cpu_parse(bad_cpu[i], &v, &err) != -1 || v != 7)
            fail_msg("cpu '%s' should be rejected", bad_cpu[i]);
    }
    const char *bad_mem[] = {"", "Gi", "4gi", "4GB", "1m", "-5", "16Ei", "99999999999999999999"};
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad_mem); i++) {
        if (ag_bytes_parse(bad_mem[i], &v, &err) != -1)
            fail_msg("memory '%s' should be rejected", bad_mem[i]);
    }
    assert_string_equal(err.msg, "invalid memory '99999999999999999999': want bytes like 1000, "
                                 "512Mi, 4Gi or 1G");
    /* As flags: the maximum is checked and the flag named. */
    int64_t c = 0, m = 0;
    const struct ag_flag flags[] = {{"cpu", 0, AG_FLAG_CPU, &c, NULL, "", 0, 1000000},
                                    {"memory", 0, AG_FLAG_BYTES, &m, NULL, "", 0, 0}};
    char *ok[] = {"--cpu", "250m", "--memory=2Gi"}, *big[] = {"--cpu", "1001"};
    size_t npos = 0;
    assert_int_equal(ag_flags_parse("t", flags, 2, 3, ok, NULL, 0, &npos, &err), 0);
    assert_int_equal(c, 250);
    assert_int_equal(m, INT64_C(2) << 30);
    assert_int_equal(ag_flags_parse("t", flags, 2, 2, big, NULL, 0, &npos, &err), -1);
    assert_string_equal(err.msg, "invalid value '1001' for --cpu: the limit is 1000000m");
}

static void test_labels(void **state)
{
    struct ag_strlist l = {NULL, 0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_labels_parse("team=core,env=dev", &l, &err), 0);
    assert_int_equal(ag_labels_parse("empty=,eq=a=b", &l, &err), 0);
    assert_int_equal(ag_labels_parse("", &l, &err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.items[0], "team=core");
    assert_string_equal(l.items[1], "env=dev");
    assert_string_equal(l.items[2], "empty=");
    assert_string_equal(l.items[3], "eq=a=b");
    /* A bad list appends nothing. */
    assert_int_equal(ag_labels_parse("ok=1,novalue", &l, &err), -1);
    assert_string_equal(err.msg, "invalid label 'novalue': want key=value with a non-empty key");
    assert_int_equal(ag_labels_parse("=v", &l, &err), -1);
    assert_string_equal(err.msg, "invalid label '=v': want key=value with a non-empty key");
    assert_int_equal(l.n, 4);
    ag_strlist_release(&l);
}

static void test_print_help(void **state)
{
    struct opts o;
    struct ag_flag f[NFLAGS];
    table(&o, f);
    struct ag_cmd_help h = {"agentry trace [flags] AGENT_ID", "Print an agent's events.",
                            "agentry trace -f 01j0\nagentry trace --from 5 01j0"};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    ag_flags_print_help(out, &h, f, NFLAGS);
    fclose(out);
    assert_non_null(
        strstr(buf, "usage: agentry trace [flags] AGENT_ID\n\nPrint an agent's events.\n"));
    assert_non_null(strstr(buf, "  -f, --follow              keep following\n"));
    assert_non_null(strstr(buf, "      --hub ADDR            hub address\n"));
    assert_non_null(strstr(buf, "  -t, --timeout DURATION    deadline (default 10s)\n"));
    assert_non_null(strstr(buf, "      --tool NAME           tools, repeatable\n"));
    assert_non_null(strstr(buf, "  -h, --help                show this help\n"));
    assert_non_null(
        strstr(buf, "example:\n  agentry trace -f 01j0\n  agentry trace --from 5 01j0\n"));
    free(buf);

    /* No example section when there is none; a long flag puts its help on the next line. */
    struct ag_flag wide = {"a-very-long-flag-name", 0, AG_FLAG_STR, &o.hub, "ADDRESS", "x", 0, 0};
    h.example = NULL;
    out = open_memstream(&buf, &len);
    ag_flags_print_help(out, &h, &wide, 1);
    fclose(out);
    assert_null(strstr(buf, "example:"));
    assert_non_null(
        strstr(buf, "      --a-very-long-flag-name ADDRESS\n                            x\n"));
    free(buf);

    /* Summary and flag help wrap at 80 columns, flag help under its own column. */
    struct ag_flag chatty = {"x",
                             0,
                             AG_FLAG_BOOL,
                             &o.follow,
                             NULL,
                             "one two three four five six seven eight nine ten eleven twelve "
                             "thirteen fourteen",
                             0,
                             0};
    h.summary = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
                "pi rho\nsigma\n\nnew  paragraph";
    out = open_memstream(&buf, &len);
    ag_flags_print_help(out, &h, &chatty, 1);
    fclose(out);
    assert_non_null(
        strstr(buf, "\n\nalpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
                    "omicron\npi rho sigma\n\nnew paragraph\n"));
    assert_non_null(
        strstr(buf, "      --x                   one two three four five six seven eight nine ten\n"
                    "                            eleven twelve thirteen fourteen\n"));
    for (char *line = buf; *line;) {
        size_t l = strcspn(line, "\n");
        assert_true(l <= 80);
        line += l + (line[l] == '\n');
    }
    free(buf);
}

/* ag_flags_parse_env with prefix "T_" and the variables given as NAME, VALUE pairs (set for this
 * parse only), then the arguments; both lists NULL-terminated. */
static struct result run_env(struct opts *o, const char *const *vars, ...)
{
    for (const char *const *v = vars; *v; v += 2)
        setenv(v[0], v[1], 1);
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, vars);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    struct ag_flag f[NFLAGS];
    table(o, f);
    static const char *const skip[] = {"from", NULL};
    const struct ag_flags_env env = {"T_", skip};
    struct result r = {0, AG_ERR_INIT, {0}, 0};
    r.rc = ag_flags_parse_env("trace", &env, f, NFLAGS, argc, argv, r.pos, 4, &r.npos, &r.err);
    for (const char *const *v = vars; *v; v += 2)
        unsetenv(v[0]);
    return r;
}

static void test_env_names(void **state)
{
    char buf[64];
    assert_string_equal(ag_flags_env_name(buf, sizeof(buf), "AGENTRY_", "http-listen"),
                        "AGENTRY_HTTP_LISTEN");
    assert_string_equal(ag_flags_env_name(buf, sizeof(buf), "AGENTRY_", "threads"),
                        "AGENTRY_THREADS");
    assert_string_equal(ag_flags_env_name(buf, 12, "AGENTRY_", "capacity"), "AGENTRY_CAP");
}

static void test_env_values(void **state)
{
    struct opts o;
    const char *const vars[] = {"T_HUB",  "e:1",      "T_CAPACITY", "9",      "T_TIMEOUT",
                                "2s",     "T_FOLLOW", "true",       "T_JSON", "0",
                                "T_TOOL", "a,b",      "T_FROM",     "5",      NULL};
    struct result r = run_env(&o, vars, NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "e:1");
    assert_int_equal(o.capacity, 9);
    assert_int_equal(o.timeout_ms, 2000);
    assert_true(o.follow);
    assert_false(o.json);
    assert_int_equal(o.tools.n, 2);
    assert_string_equal(o.tools.items[1], "b");
    assert_int_equal(o.from, 0); /* skipped: never read from T_FROM */
    ag_strlist_release(&o.tools);
    const char *const empty[] = {"T_HUB", "", NULL};
    r = run_env(&o, empty, NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "127.0.0.1:7070"); /* empty is unset */
}

static void test_env_flag_wins(void **state)
{
    struct opts o;
    const char *const vars[] = {"T_HUB",  "e:1", "T_CAPACITY", "9", "T_JSON", "1",
                                "T_TOOL", "a,b", "T_FOLLOW",   "1", NULL};
    struct result r = run_env(&o, vars, "--hub=f:2", "-c", "3", "--no-json", "--tool", "z",
                              "--follow=false", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "f:2");
    assert_int_equal(o.capacity, 3);
    assert_false(o.json);
    assert_false(o.follow);
    assert_int_equal(o.tools.n, 1); /* the command line replaces the variable's items */
    assert_string_equal(o.tools.items[0], "z");
    ag_strlist_release(&o.tools);
    /* After "--" nothing is a flag: the variable still applies. */
    r = run_env(&o, vars, "--", "--hub=f:2", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(o.hub, "e:1");
    ag_strlist_release(&o.tools);
}

static void test_env_errors(void **state)
{
    struct opts o;
    const char *const bad_int[] = {"T_CAPACITY", "lots", NULL};
    expect_error(run_env(&o, bad_int, NULL),
                 "T_CAPACITY: invalid value 'lots' for --capacity: want an integer in 1..100000");
    const char *const bad_dur[] = {"T_TIMEOUT", "5", NULL};
    expect_error(
        run_env(&o, bad_dur, NULL),
        "T_TIMEOUT: invalid value '5' for --timeout: missing unit (want 5s, 5ms, 2m or 1h)");
    const char *const bad_bool[] = {"T_FOLLOW", "maybe", NULL};
    expect_error(run_env(&o, bad_bool, NULL),
                 "T_FOLLOW: invalid value 'maybe' for --follow: want true or false");
    /* A flag on the command line hides a bad variable, and --help hides everything. */
    struct result r = run_env(&o, bad_int, "--capacity", "4", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(o.capacity, 4);
    assert_int_equal(run_env(&o, bad_int, "--help", NULL).rc, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_kept),
        cmocka_unit_test(test_long_forms),
        cmocka_unit_test(test_short_forms),
        cmocka_unit_test(test_bool_values),
        cmocka_unit_test(test_positionals_mixed),
        cmocka_unit_test(test_double_dash),
        cmocka_unit_test(test_value_with_dash),
        cmocka_unit_test(test_last_wins),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_unknown_flags),
        cmocka_unit_test(test_missing_values),
        cmocka_unit_test(test_int_values),
        cmocka_unit_test(test_duration_flag),
        cmocka_unit_test(test_duration_flag_needs_a_unit),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_print_help),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_env_values),
        cmocka_unit_test(test_env_flag_wins),
        cmocka_unit_test(test_env_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
