/* tests/unit/test-cli-config.c - cmd/agentry/config.c: the config file read back as written
 * (values that YAML would read as something else stay strings), what it refuses with FILE:LINE,
 * and the data directory. The e2e test (tests/e2e/test_cli_config.py) covers the commands and
 * the order of precedence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/agentry/config.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/agentry-test-config-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_round_trip(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/sub/dir/config.yaml", dir);
    struct cli_config cfg;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(cli_config_load(path, false, &cfg, &err), 0);
    assert_false(cfg.exists);
    /* Values a plain YAML scalar would change or cut: booleans, null, comments, quotes, colons,
     * a leading dash, spaces, an empty-looking one. */
    const char *odd[] = {"true", "null", "a #b", "say \"hi\"\\", "-x", "h:1,h:2", " pad ", "~"};
    struct cli_context *c = cli_config_upsert(&cfg, "true");
    c->hub = strdup(odd[5]);
    c->token = strdup(odd[3]);
    c->ns = strdup("team-a");
    for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++) {
        char name[32];
        snprintf(name, sizeof(name), "c%zu", i);
        cli_config_upsert(&cfg, name)->cert = strdup(odd[i]);
    }
    cfg.current = strdup("true");
    assert_int_equal(cli_config_save(&cfg, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    struct cli_config back;
    assert_int_equal(cli_config_load(path, true, &back, &err), 0);
    assert_true(back.exists);
    assert_string_equal(back.current, "true");
    assert_int_equal(back.n, cfg.n);
    const struct cli_context *b = cli_config_find(&back, "true");
    assert_non_null(b);
    assert_string_equal(b->hub, "h:1,h:2");
    assert_string_equal(b->token, "say \"hi\"\\");
    assert_string_equal(b->ns, "team-a");
    assert_null(b->tls_dir);
    for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++) {
        char name[32];
        snprintf(name, sizeof(name), "c%zu", i);
        const struct cli_context *x = cli_config_find(&back, name);
        assert_non_null(x);
        assert_string_equal(x->cert, odd[i]);
    }
    cli_config_release(&back);
    cli_config_release(&cfg);
}

static void assert_refused(const char *text, const char *want)
{
    char path[128], msg[320];
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    write_file(path, text);
    struct cli_config cfg;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(cli_config_load(path, true, &cfg, &err), -1);
    snprintf(msg, sizeof(msg), "%s:%s", path, want);
    assert_string_equal(err.msg, msg);
    cli_config_release(&cfg);
}

static void test_refused(void **state)
{
    assert_refused("contexts:\n  - name: a\n    hubb: x\n",
                   "3: contexts[0]: unknown key 'hubb' (expected name, hub, namespace, token, "
                   "tls-dir, ca, cert, key)");
    assert_refused("current: a\n", "1: unknown key 'current' (expected current-context, contexts)");
    assert_refused("contexts:\n  - name: a\n    hub: x\n    hub: y\n",
                   "4: contexts[0]: duplicate key 'hub' (first at line 3)");
    assert_refused("contexts:\n  - hub: x\n", "2: contexts[0]: a context needs a name");
    assert_refused("contexts:\n  - name: a\n  - name: a\n",
                   "3: contexts[1]: a second context named 'a'");
    assert_refused("contexts:\n  - name: a\n    hub: [x]\n", "3: hub: expected a string");
    assert_refused("contexts: a\n", "1: contexts: expected a list of contexts");
    assert_refused("- a\n", "1: expected a mapping with current-context and contexts");
    assert_refused("contexts: [\n", "2: not YAML: did not find expected node content");
}

static void test_empty_and_missing(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/empty.yaml", dir);
    write_file(path, "");
    struct cli_config cfg;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(cli_config_load(path, true, &cfg, &err), 0);
    assert_int_equal(cfg.n, 0);
    assert_null(cfg.current);
    cli_config_release(&cfg);
    snprintf(path, sizeof(path), "%s/none.yaml", dir);
    assert_int_equal(cli_config_load(path, false, &cfg, &err), 0);
    cli_config_release(&cfg);
    assert_int_equal(cli_config_load(path, true, &cfg, &err), -1);
    cli_config_release(&cfg);
}

static void test_paths(void **state)
{
    char buf[256], want[256];
    setenv("XDG_DATA_HOME", dir, 1);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(cli_data_dir(NULL, buf, sizeof(buf), &err), 0);
    snprintf(want, sizeof(want), "%s/agentry", dir);
    assert_string_equal(buf, want);
    struct stat st;
    assert_int_equal(stat(buf, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    setenv("XDG_DATA_HOME", "relative", 1); /* ignored, as the XDG spec says */
    setenv("HOME", dir, 1);
    assert_int_equal(cli_data_dir(NULL, buf, sizeof(buf), &err), 0);
    snprintf(want, sizeof(want), "%s/.local/share/agentry", dir);
    assert_string_equal(buf, want);
    snprintf(want, sizeof(want), "%s/agentry.db", dir); /* a file where a directory should be */
    write_file(want, "");
    assert_int_equal(cli_data_dir(want, buf, sizeof(buf), &err), -1);
    assert_non_null(strstr(err.msg, "cannot make the data directory"));
    unsetenv("XDG_CONFIG_HOME");
    cli_config_path(NULL, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%s/.config/agentry/config.yaml", dir);
    assert_string_equal(buf, want);
    cli_config_path("/x.yaml", buf, sizeof(buf));
    assert_string_equal(buf, "/x.yaml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
