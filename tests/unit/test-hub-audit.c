/* tests/unit/test-hub-audit.c - the audit log (hub/audit.c): one JSON object per line with the
 * fields given, rotation by size keeping N files, lines never split across files, and a clear
 * error for a path that cannot be opened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "hub/audit.h"

static char dir[] = "/tmp/agentry-audit-XXXXXX";

/* Every line of file f, each checked to be one JSON object; returns how many. */
static int count_lines(const char *f, int *with_agent)
{
    FILE *in = fopen(f, "r");
    if (!in)
        return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), in)) {
        size_t len = strlen(line);
        assert_true(len > 0 && line[len - 1] == '\n');
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "time")));
        if (with_agent && cJSON_GetObjectItem(o, "agent_id"))
            ++*with_agent;
        cJSON_Delete(o);
        n++;
    }
    fclose(in);
    return n;
}

static void test_lines(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/a.log", dir);
    struct ag_err err = AG_ERR_INIT;
    struct hub_audit_opts o = {.path = path};
    struct hub_audit *a = hub_audit_open(&o, &err);
    assert_non_null(a);
    struct hub_audit_rec r = {.identity = "user/alice",
                              .role = "operator",
                              .rpc = "KillAgent",
                              .agent_id = "01abc",
                              .namespace_ = "team-a",
                              .decision = "allow",
                              .code = "OK",
                              .reason = "a reason\nwith a newline"};
    hub_audit_write(a, &r);
    r.agent_id = NULL;
    r.decision = "deny";
    hub_audit_write(a, &r);
    hub_audit_close(a);
    int with_agent = 0;
    assert_int_equal(count_lines(path, &with_agent), 2);
    assert_int_equal(with_agent, 1);
    FILE *in = fopen(path, "r");
    char line[1024];
    assert_non_null(fgets(line, sizeof(line), in));
    fclose(in);
    cJSON *j = cJSON_Parse(line);
    assert_string_equal(cJSON_GetObjectItem(j, "identity")->valuestring, "user/alice");
    assert_string_equal(cJSON_GetObjectItem(j, "namespace")->valuestring, "team-a");
    assert_string_equal(cJSON_GetObjectItem(j, "reason")->valuestring, "a reason\nwith a newline");
    assert_null(cJSON_GetObjectItem(j, "peer")); /* empty fields are left out */
    cJSON_Delete(j);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777 & ~0640u, 0); /* never more than 0640, whatever umask */
    unlink(path);
}

static void test_rotation(void **state)
{
    (void)state;
    char path[128], p1[140], p2[140], p3[140];
    snprintf(path, sizeof(path), "%s/r.log", dir);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    struct ag_err err = AG_ERR_INIT;
    struct hub_audit_opts o = {.path = path, .max_bytes = 400, .keep = 2};
    struct hub_audit *a = hub_audit_open(&o, &err);
    assert_non_null(a);
    struct hub_audit_rec r = {.identity = "user/bob", .rpc = "Spawn", .decision = "allow"};
    for (int i = 0; i < 40; i++)
        hub_audit_write(a, &r);
    assert_int_equal(hub_audit_failures(a), 0);
    hub_audit_close(a);
    int n0 = count_lines(path, NULL), n1 = count_lines(p1, NULL), n2 = count_lines(p2, NULL);
    assert_true(n0 > 0 && n1 > 0 && n2 > 0);
    assert_int_equal(count_lines(p3, NULL), -1); /* keep 2: the oldest went */
    struct stat st;
    assert_int_equal(stat(p1, &st), 0);
    assert_true(st.st_size <= 400);
    unlink(path);
    unlink(p1);
    unlink(p2);
}

static void test_open_error(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    struct hub_audit_opts o = {.path = "/nonexistent/dir/audit.log"};
    assert_null(hub_audit_open(&o, &err));
    assert_non_null(strstr(err.msg, "cannot open audit log '/nonexistent/dir/audit.log'"));
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_open_error),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
