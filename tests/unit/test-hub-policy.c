/* tests/unit/test-hub-policy.c - the RBAC policy file (hub/policy.c): built-in roles, custom
 * roles, bindings, the certificate's own role as the fallback, tokens by hash, namespaces, and a
 * clear "FILE:LINE: what" for every kind of mistake. Each test writes its file in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub/policy.h"

static char dir[] = "/tmp/agentry-policy-XXXXXX";
static char path[sizeof(dir) + 16];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static struct hub_policy *load_ok(const char *text)
{
    write_file(text);
    struct ag_err err = AG_ERR_INIT;
    struct hub_policy *p = hub_policy_load(path, &err);
    if (!p)
        fail_msg("load failed: %s", err.msg);
    return p;
}

static void expect_bad(const char *text, const char *line_and_what)
{
    write_file(text);
    struct ag_err err = AG_ERR_INIT;
    struct hub_policy *p = hub_policy_load(path, &err);
    assert_null(p);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    char want[256];
    snprintf(want, sizeof(want), "%s:%s", path, line_and_what);
    if (!strstr(err.msg, want))
        fail_msg("error '%s' does not contain '%s'", err.msg, want);
}

static void test_builtin_roles(void **state)
{
    (void)state;
    struct hub_policy *p = hub_policy_default();
    assert_true(hub_policy_allows(p, "admin", "ImportAgent"));
    assert_true(hub_policy_allows(p, "admin", "DrainNode"));
    assert_false(hub_policy_allows(p, "admin", "Connect")); /* nodes only */
    assert_true(hub_policy_allows(p, "operator", "KillAgent"));
    assert_true(hub_policy_allows(p, "operator", "Trace"));
    assert_false(hub_policy_allows(p, "operator", "ImportAgent"));
    assert_true(hub_policy_allows(p, "viewer", "ListAgents"));
    assert_false(hub_policy_allows(p, "viewer", "KillAgent"));
    assert_false(hub_policy_allows(p, "viewer", "ExportAgent"));
    assert_true(hub_policy_allows(p, "node", "Connect"));
    assert_false(hub_policy_allows(p, "node", "Spawn"));
    assert_false(hub_policy_allows(p, "nobody", "Ping"));
    assert_false(hub_policy_allows(p, "admin", "NoSuchRpc"));
    hub_policy_free(p);
}

static const char *const good = "roles:\n"
                                "  auditor: [GetAgent, ListAgents, Trace]\n"
                                "bindings:\n"
                                "  - identity: user/alice\n"
                                "    role: operator\n"
                                "    namespaces: [team-a, team-b]\n"
                                "  - identity: user/root\n"
                                "    role: auditor\n"
                                "    namespaces: [\"*\"]\n"
                                "tokens:\n"
                                "  - name: dashboard\n"
                                "    sha256: HASH\n"
                                "    role: viewer\n"
                                "    namespaces: [default]\n";

static struct hub_policy *load_good(void)
{
    char h[65], text[1024];
    hub_policy_token_hash("agt_secret", h);
    const char *at = strstr(good, "HASH");
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - good), good, h, at + 4);
    return load_ok(text);
}

static void test_bindings_and_fallback(void **state)
{
    (void)state;
    struct hub_policy *p = load_good();
    struct ag_err err = AG_ERR_INIT;
    struct hub_policy_grant g;
    /* A binding wins over what the certificate says. */
    char *cert_ns[] = {"other"};
    assert_int_equal(hub_policy_for_identity(p, "user/alice", "admin", cert_ns, 1, &g, &err), 0);
    assert_string_equal(g.role, "operator");
    assert_true(hub_policy_grant_has(&g, "team-b"));
    assert_false(hub_policy_grant_has(&g, "other"));
    assert_false(hub_policy_grant_has(&g, "default"));
    assert_int_equal(hub_policy_for_identity(p, "user/root", NULL, NULL, 0, &g, &err), 0);
    assert_string_equal(g.role, "auditor");
    assert_true(hub_policy_grant_has(&g, "anything"));
    assert_true(hub_policy_allows(p, "auditor", "Trace"));
    assert_false(hub_policy_allows(p, "auditor", "Spawn"));
    /* No binding: the certificate's role and namespaces. */
    assert_int_equal(hub_policy_for_identity(p, "user/bob", "viewer", cert_ns, 1, &g, &err), 0);
    assert_string_equal(g.role, "viewer");
    assert_true(hub_policy_grant_has(&g, "other"));
    assert_false(hub_policy_grant_has(&g, "default"));
    assert_int_equal(hub_policy_for_identity(p, "user/ops", "admin", NULL, 0, &g, &err), 0);
    assert_true(hub_policy_grant_has(&g, "default")); /* an admin certificate: every one */
    /* Neither: denied, saying why. */
    assert_int_equal(hub_policy_for_identity(p, "user/eve", NULL, NULL, 0, &g, &err), -1);
    assert_int_equal(err.code, AG_PERMISSION_DENIED);
    assert_non_null(strstr(err.msg, "'user/eve' has no role"));
    assert_int_equal(hub_policy_for_identity(p, "user/eve", "root", NULL, 0, &g, &err), -1);
    assert_non_null(strstr(err.msg, "unknown here"));
    hub_policy_free(p);
}

static void test_tokens(void **state)
{
    (void)state;
    struct hub_policy *p = load_good();
    struct ag_err err = AG_ERR_INIT;
    struct hub_policy_grant g;
    char name[HUB_POLICY_NAME_MAX + 1];
    assert_int_equal(hub_policy_for_token(p, "agt_secret", name, &g, &err), 0);
    assert_string_equal(name, "dashboard");
    assert_string_equal(g.role, "viewer");
    assert_true(hub_policy_grant_has(&g, "default"));
    assert_int_equal(hub_policy_for_token(p, "agt_secreT", name, &g, &err), -1);
    assert_int_equal(err.code, AG_UNAUTHENTICATED);
    hub_policy_free(p);
    /* Revoked: the same file without the entry. */
    p = load_ok("roles: {}\n");
    assert_int_equal(hub_policy_for_token(p, "agt_secret", name, &g, &err), -1);
    hub_policy_free(p);
    /* The hash is SHA-256's, in lowercase hex. */
    char h[65];
    hub_policy_token_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_empty_file_is_builtins(void **state)
{
    (void)state;
    struct hub_policy *p = load_ok("");
    assert_true(hub_policy_allows(p, "viewer", "Trace"));
    hub_policy_free(p);
}

static void test_mistakes(void **state)
{
    (void)state;
    expect_bad("roles:\n  a: [Spawn]\ncolour: blue\n", "3: unknown key 'colour'");
    expect_bad("roles:\n  a: [Spawn, Fly]\n", "2: unknown RPC 'Fly'");
    expect_bad("roles:\n  admin: [Spawn]\n", "2: role 'admin' is defined twice");
    expect_bad("roles:\n  mixed: [Connect, Spawn]\n", "2: role 'mixed' mixes Connect");
    expect_bad("bindings:\n  - identity: alice\n    role: viewer\n",
               "2: bad identity 'alice': want <kind>/<name>");
    expect_bad("bindings:\n  - identity: user/a\n    role: king\n", "2: unknown role 'king'");
    expect_bad("bindings:\n  - identity: user/a\n    role: viewer\n    namespaces: [Team_A]\n",
               "4: bad namespace 'Team_A'");
    expect_bad("bindings:\n  - identity: user/a\n    role: viewer\n"
               "  - identity: user/a\n    role: admin\n",
               "4: identity 'user/a' is bound twice");
    expect_bad("tokens:\n  - name: t\n    sha256: abc\n    role: viewer\n",
               "2: token 't' needs sha256: 64 lowercase hex digits");
    expect_bad("roles: [a, b\n", "");
    expect_bad("- just\n- a list\n", "1: the policy must be a mapping");
    struct ag_err err = AG_ERR_INIT;
    assert_null(hub_policy_load("/nonexistent/policy.yaml", &err));
    assert_non_null(strstr(err.msg, "cannot read policy file '/nonexistent/policy.yaml'"));
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/policy.yaml", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_roles), cmocka_unit_test(test_bindings_and_fallback),
        cmocka_unit_test(test_tokens),        cmocka_unit_test(test_empty_file_is_builtins),
        cmocka_unit_test(test_mistakes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return rc;
}
