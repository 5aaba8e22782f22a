/* tests/unit/test-wk-config.c - provider and tool options from the node's flags
 * (worker/config.c): routing to rows, the common "timeout", and the one-line refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "worker/config.h"
#include "worker/model.h"
#include "worker/tool.h"

static size_t row_of_tool(const char *name)
{
    return (size_t)(wk_tool_find(name) - wk_tools);
}

static void test_options_reach_their_rows(void **state)
{
    (void)state;
    const char *const models[] = {"mock.latency=50ms", "mock.timeout=2s"};
    const char *const tools[] = {"echo.timeout=1m"};
    struct wk_configs c = {0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(wk_configs_parse(&c, models, 2, tools, 1, &err), 0);
    const struct wk_config *mock = &c.models[wk_model_find("mock", NULL) - wk_model_providers];
    assert_string_equal(mock->owner, "mock");
    assert_string_equal(wk_config_get(mock, "latency"), "50ms");
    assert_int_equal(mock->timeout_ms, 2000);
    const struct wk_config *echo = &c.tools[row_of_tool("echo")];
    assert_int_equal(echo->timeout_ms, 60000);
    assert_null(wk_config_get(echo, "latency"));
    wk_configs_release(&c);

    /* No options: every row is there, empty, without deadline. */
    assert_int_equal(wk_configs_parse(&c, NULL, 0, NULL, 0, &err), 0);
    assert_int_equal(c.tools[row_of_tool("echo")].n, 0);
    assert_int_equal(c.tools[row_of_tool("echo")].timeout_ms, 0);
    wk_configs_release(&c);
}

static void assert_refused(const char *model_opt, const char *tool_opt, const char *want)
{
    struct wk_configs c = {0};
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(
        wk_configs_parse(&c, &model_opt, model_opt ? 1 : 0, &tool_opt, tool_opt ? 1 : 0, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_string_equal(err.msg, want);
    assert_null(c.models);
}

static void test_refusals_name_the_option(void **state)
{
    (void)state;
    const char *want = "want NAME.KEY=VALUE, e.g. mock.latency=50ms";
    char msg[512];
    const char *malformed[] = {"mock", ".x=1", "mock.=1", "mock=1.x"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        snprintf(msg, sizeof(msg), "invalid model option '%s': %s", malformed[i], want);
        assert_refused(malformed[i], NULL, msg);
    }
    /* The lists follow the tables, which grow as providers and tools are added. */
    char have[128] = "";
    for (size_t i = 0; wk_model_providers[i].name; i++)
        snprintf(have + strlen(have), sizeof(have) - strlen(have), "%s%s", i ? ", " : "",
                 wk_model_providers[i].name);
    snprintf(msg, sizeof(msg),
             "invalid model option 'gpt.temperature=1': this node has no model provider 'gpt' "
             "(it has: %s)",
             have);
    assert_refused("gpt.temperature=1", NULL, msg);
    /* The tools are too many to list whole in a message: the first ones, and how many more. */
    struct wk_configs c = {0};
    struct ag_err err = AG_ERR_INIT;
    const char *nosuch = "nosuch.timeout=1s";
    assert_int_equal(wk_configs_parse(&c, NULL, 0, &nosuch, 1, &err), -1);
    const char *want_start = "invalid tool option 'nosuch.timeout=1s': this node has no tool "
                             "'nosuch' (it has: echo, append, ";
    assert_memory_equal(err.msg, want_start, strlen(want_start));
    assert_non_null(strstr(err.msg, " more)"));
    assert_refused(NULL, "echo.timeout=soon",
                   "option 'echo.timeout': invalid duration 'soon': want a duration like 250ms, "
                   "5s, 2m or 1h");
    assert_refused("mock.colour=red", NULL,
                   "unknown option 'mock.colour': mock takes timeout, latency");
}

/* "mcp" is not a tool of the table but has options: its stdio servers' sandbox. */
static void test_mcp_options(void **state)
{
    (void)state;
    struct wk_configs c = {0};
    struct ag_err err = AG_ERR_INIT;
    const char *ok[] = {"mcp.privileged=deny", "mcp.ro_paths=/opt/mcp:/tmp/x", "mcp.procs=64"};
    assert_int_equal(wk_configs_parse(&c, NULL, 0, ok, 3, &err), 0);
    assert_string_equal(wk_config_get(c.mcp, "privileged"), "deny");
    assert_string_equal(wk_config_get(c.mcp, "ro_paths"), "/opt/mcp:/tmp/x");
    assert_string_equal(c.mcp->owner, "mcp");
    wk_configs_release(&c);
    assert_refused(NULL, "mcp.privileged=maybe",
                   "option 'mcp.privileged=maybe': want allow or deny");
    assert_refused(NULL, "mcp.ro_paths=/opt:/",
                   "option 'mcp.ro_paths': '/' is not an absolute directory other than / "
                   "without '..'; separate paths with ':'");
    assert_refused(NULL, "mcp.ro_paths=/opt/../etc",
                   "option 'mcp.ro_paths': '/opt/../etc' is not an absolute directory other "
                   "than / without '..'; separate paths with ':'");
    assert_refused(NULL, "mcp.timeout=1s",
                   "option 'mcp.timeout': an MCP server's calls take McpServer.timeout_ms");
    assert_refused(NULL, "mcp.net=on",
                   "unknown option 'mcp.net': mcp takes timeout, cpu_limit, mem_limit, procs, "
                   "privileged, ro_paths");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_reach_their_rows),
        cmocka_unit_test(test_refusals_name_the_option),
        cmocka_unit_test(test_mcp_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
