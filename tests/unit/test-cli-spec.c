/* tests/unit/test-cli-spec.c - cmd/agentry/spec.c: what a spec file becomes, field by field, and
 * what it refuses, with the line and key. The e2e test (tests/e2e/test_spec_files.py) runs the
 * templates through a hub; this one pins the corners: the long and short model forms, how a
 * tool's YAML settings become JSON (YAML 1.2 core types for plain scalars, strings for quoted
 * ones), null meaning "unset", and the errors' exact wording. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "cmd/agentry/spec.h"

static Agentry__V1__AgentSpec *parse_ok(struct ag_arena *a, const char *text)
{
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__AgentSpec *spec = NULL;
    int rc = cli_spec_parse("t.yaml", text, strlen(text), a, &spec, &err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err.msg);
    return spec;
}

static void assert_refused(const char *text, const char *want)
{
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__AgentSpec *spec = NULL;
    assert_int_equal(cli_spec_parse("t.yaml", text, strlen(text), &a, &spec, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_string_equal(err.msg, want);
    assert_null(spec);
    ag_arena_release(&a);
}

static void test_long_model_form(void **state)
{
    (void)state;
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    Agentry__V1__AgentSpec *s = parse_ok(&a, "model:\n"
                                             "  provider: openai\n"
                                             "  id: llama3.1:8b\n"
                                             "  base_url: http://127.0.0.1:11434/v1\n"
                                             "  stream: true\n"
                                             "  temperature: 0\n"
                                             "  max_tokens: 512\n"
                                             "  headers: {X-Team: core}\n"
                                             "  api_key_env: LOCAL_KEY\n");
    assert_string_equal(s->model, "openai/llama3.1:8b");
    const Agentry__V1__ModelSettings *ms = s->model_settings;
    assert_non_null(ms);
    assert_string_equal(ms->base_url, "http://127.0.0.1:11434/v1");
    assert_true(ms->stream);
    assert_true(ms->temperature_set); /* 0 is a temperature */
    assert_true(ms->temperature == 0);
    assert_int_equal(ms->max_tokens, 512);
    assert_int_equal(ms->n_headers, 1);
    assert_string_equal(ms->headers[0]->key, "X-Team");
    assert_string_equal(ms->headers[0]->value, "core");
    assert_string_equal(ms->api_key_env, "LOCAL_KEY");
    ag_arena_release(&a);
}

static void test_short_forms_and_nulls(void **state)
{
    (void)state;
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    Agentry__V1__AgentSpec *s = parse_ok(&a, "name: n\n"
                                             "model: anthropic/claude-3-5-haiku-latest\n"
                                             "system_prompt:\n"
                                             "limits: ~\n"
                                             "labels: {gpu: true, n: 4}\n"
                                             "max_iterations: null\n");
    assert_string_equal(s->model, "anthropic/claude-3-5-haiku-latest");
    assert_null(s->model_settings); /* the short form sets none */
    assert_string_equal(s->system_prompt, "");
    assert_null(s->limits);
    assert_int_equal(s->max_iterations, 0);
    assert_int_equal(s->n_labels, 2);
    assert_string_equal(s->labels[0]->value, "true"); /* as written */
    assert_string_equal(s->labels[1]->value, "4");
    ag_arena_release(&a);
}

static void test_tool_settings_as_json(void **state)
{
    (void)state;
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    Agentry__V1__AgentSpec *s = parse_ok(&a,
                                         "tools:\n"
                                         "  - echo\n"
                                         "  - name: http_request\n"
                                         "    settings:\n"
                                         "      allow_hosts: [a.example, '*.b.example']\n"
                                         "      max_bytes: 1000\n"
                                         "      ratio: -1.5\n"
                                         "      on: true\n"
                                         "      quoted: '12'\n"
                                         "      hex: 0x10\n"
                                         "      nothing: null\n"
                                         "      nested: {k: [1, {x: y}]}\n"
                                         "limits: {max_tokens: 100, max_cost_usd: 0.5, "
                                         "turn_timeout: 1m30s, "
                                         "approval_timeout: 2h}\n"
                                         "permissions:\n"
                                         "  - {tool: shell, decision: ask}\n"
                                         "  - {tool: '*', decision: allow, patterns: [a, b]}\n");
    assert_int_equal(s->n_tools, 2);
    assert_string_equal(s->tools[1], "http_request");
    assert_int_equal(s->n_tool_settings, 1);
    assert_string_equal(s->tool_settings[0]->key, "http_request");
    assert_string_equal(s->tool_settings[0]->value,
                        "{\"allow_hosts\":[\"a.example\",\"*.b.example\"],\"max_bytes\":1000,"
                        "\"ratio\":-1.5,\"on\":true,\"quoted\":\"12\",\"hex\":\"0x10\","
                        "\"nothing\":null,\"nested\":{\"k\":[1,{\"x\":\"y\"}]}}");
    assert_int_equal(s->limits->max_tokens, 100);
    assert_true(s->limits->max_cost_usd == 0.5);
    assert_int_equal(s->limits->turn_timeout_ms, 90000);
    assert_int_equal(s->limits->approval_timeout_ms, 7200000);
    assert_int_equal(s->n_permissions, 2);
    assert_string_equal(s->permissions[0]->decision, "ask");
    assert_string_equal(s->permissions[1]->tool, "*");
    assert_int_equal(s->permissions[1]->n_patterns, 2);
    ag_arena_release(&a);
}

/* Teams (issue 16): templates are specs of their own, and the team limits. */
static void test_templates_and_team_limits(void **state)
{
    (void)state;
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    Agentry__V1__AgentSpec *s = parse_ok(&a, "model: openai/gpt-4o-mini\n"
                                             "tools: [spawn_agent, wait_agent]\n"
                                             "limits: {max_depth: 2, max_children: 50}\n"
                                             "templates:\n"
                                             "  worker:\n"
                                             "    model: {provider: mock}\n"
                                             "    tools: [echo]\n"
                                             "    labels: {team: t}\n"
                                             "    anti_affinity: [team]\n"
                                             "  critic: {system_prompt: be brief}\n");
    assert_string_equal(s->model, "openai/gpt-4o-mini");
    assert_int_equal(s->limits->max_depth, 2);
    assert_int_equal(s->limits->max_children, 50);
    assert_int_equal(s->n_templates, 2);
    assert_string_equal(s->templates[0]->key, "worker");
    assert_string_equal(s->templates[0]->value->model, "mock");
    assert_int_equal(s->templates[0]->value->n_tools, 1);
    assert_int_equal(s->templates[0]->value->n_anti_affinity, 1);
    assert_string_equal(s->templates[1]->value->system_prompt, "be brief");
    ag_arena_release(&a);
    assert_refused("limits: {max_depth: 65}\n",
                   "t.yaml:1: limits.max_depth: 65 is out of range (0..64)");
    assert_refused("templates: [w]\n", "t.yaml:1: templates: expected a mapping of template names "
                                       "to specs, got a list");
    assert_refused("templates: {'bad name': {model: mock}}\n",
                   "t.yaml: spec.templates: the name 'bad name' must be 1..64 bytes of "
                   "[A-Za-z0-9_-]");
}

static void test_refusals_name_line_and_key(void **state)
{
    (void)state;
    assert_refused("name: x\nmodel:\n  provider: openai\n  temperature: hot\n",
                   "t.yaml:4: model.temperature: expected a number, got 'hot'");
    assert_refused("model:\n  provider: openai\n  temperature: 2.5\n",
                   "t.yaml:3: model.temperature: 2.5 is out of range (0..2)");
    assert_refused("tools:\n  - name: x\n    settings: {a: 1, a: 2}\n",
                   "t.yaml:3: tools[0].settings.a: duplicate key (first at line 3)");
    assert_refused("tools:\n  - name: x\n    setting: {}\n",
                   "t.yaml:3: tools[0]: unknown key 'setting' (expected name, settings)");
    assert_refused("resources: {memory: lots}\n",
                   "t.yaml:1: resources.memory: expected memory like 512Mi or 4Gi, got 'lots'");
    assert_refused("priority: 1.5\n", "t.yaml:1: priority: expected an integer, got '1.5'");
    assert_refused("name: [a]\n", "t.yaml:1: name: expected a string, got a list");
    assert_refused("x: &a 1\ny: *a\n", "t.yaml:1: anchors and aliases (&name, *name) are not "
                                       "supported in a spec; write the value out");
    assert_refused("", "t.yaml: the file is empty; a spec is a mapping with at least 'model' or "
                       "'name' (see docs/agent-spec.md)");
    assert_refused("scheduler: fastest\n",
                   "t.yaml: spec.scheduler 'fastest' is unknown; use one of: round-robin, "
                   "binpack, spread");
}

static void test_missing_file(void **state)
{
    (void)state;
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__AgentSpec *spec = NULL;
    assert_int_equal(cli_spec_load("/nonexistent/agent.yaml", &a, &spec, &err), -1);
    assert_int_equal(err.code, AG_NOT_FOUND);
    assert_string_equal(
        err.msg, "cannot read spec file '/nonexistent/agent.yaml': No such file or directory");
    ag_arena_release(&a);
}

/* mcp_servers and openapi: lists of mappings; map fields become protobuf map entries; the
 * timeout is a duration; the hub's checks name the field. */
static void test_mcp_servers_and_openapi(void **state)
{
    (void)state;
    struct ag_arena a;
    ag_arena_init(&a, NULL, 0);
    Agentry__V1__AgentSpec *s = parse_ok(&a, "mcp_servers:\n"
                                             "  - name: fs\n"
                                             "    command: [node, server.js, /data]\n"
                                             "    env: {LOG: debug}\n"
                                             "    tools: [read_text_file]\n"
                                             "    timeout: 30s\n"
                                             "    settings: {net: true, mem_limit: 512MiB}\n"
                                             "  - name: web\n"
                                             "    url: https://mcp.example.com/mcp\n"
                                             "    headers: {Authorization: Bearer x}\n"
                                             "openapi:\n"
                                             "  - name: shop\n"
                                             "    url: https://shop.example.com/openapi.json\n"
                                             "    base_url: https://api.shop.example.com\n"
                                             "    operations: [getItem, addNote]\n");
    assert_int_equal(s->n_mcp_servers, 2);
    const Agentry__V1__McpServer *fs = s->mcp_servers[0];
    assert_string_equal(fs->name, "fs");
    assert_int_equal(fs->n_command, 3);
    assert_string_equal(fs->command[2], "/data");
    assert_string_equal(fs->env[0]->key, "LOG");
    assert_string_equal(fs->tools[0], "read_text_file");
    assert_int_equal(fs->timeout_ms, 30000);
    assert_string_equal(fs->settings, "{\"net\":true,\"mem_limit\":\"512MiB\"}");
    assert_string_equal(s->mcp_servers[1]->headers[0]->value, "Bearer x");
    assert_int_equal(s->n_openapi, 1);
    assert_int_equal(s->openapi[0]->n_operations, 2);
    ag_arena_release(&a);
    assert_refused("mcp_servers:\n  - name: a\n    command: [x]\n    url: http://h/mcp\n",
                   "t.yaml: spec.mcp_servers[0] must have exactly one of command (a stdio server) "
                   "and url (a streamable HTTP one)");
    assert_refused("openapi:\n  - {name: a, url: 'ftp://h/doc'}\n",
                   "t.yaml: spec.openapi[0].url must be an http:// or https:// URL of at most 2048 "
                   "bytes without spaces");
    assert_refused("mcp_servers:\n  - {name: a, command: [x], timeout: 2h}\n",
                   "t.yaml:2: mcp_servers[0].timeout: 2h is out of range (1ms..1h)");
    assert_refused("mcp_servers:\n  - {name: a, command: [x], settings: [net]}\n",
                   "t.yaml:2: mcp_servers[0].settings: expected a mapping like {net: true, "
                   "mem_limit: 512MiB}, got a list");
    assert_refused("mcp_servers:\n  - {name: a, url: 'http://h/mcp', settings: {net: true}}\n",
                   "t.yaml: spec.mcp_servers[0].settings must be a JSON object of at most 65536 "
                   "bytes, for a command server only (docs/mcp.md)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_model_form),
        cmocka_unit_test(test_short_forms_and_nulls),
        cmocka_unit_test(test_tool_settings_as_json),
        cmocka_unit_test(test_templates_and_team_limits),
        cmocka_unit_test(test_refusals_name_line_and_key),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_mcp_servers_and_openapi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
