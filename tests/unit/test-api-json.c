/* tests/unit/test-api-json.c - the spec's JSON form (types.proto, EVENT_KIND_SPAWNED) has exactly
 * the documented keys, with a NULL spec and NULL strings handled, and escapes what JSON requires;
 * model settings, tool settings, limits and permissions appear only when set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agentry/v1/json.h"

static cJSON *round_trip(const Agentry__V1__AgentSpec *spec)
{
    cJSON *o = agentry_json_spec(spec);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON *back = cJSON_Parse(text);
    free(text);
    assert_non_null(back);
    return back;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void test_spec_keys(void **state)
{
    (void)state;
    Agentry__V1__AgentSpec spec = AGENTRY__V1__AGENT_SPEC__INIT;
    char *tools[] = {"echo", "web.search"};
    Agentry__V1__AgentSpec__LabelsEntry team = AGENTRY__V1__AGENT_SPEC__LABELS_ENTRY__INIT;
    team.key = "team";
    team.value = "a \"quoted\"\nvalue";
    Agentry__V1__AgentSpec__LabelsEntry *labels[] = {&team};
    spec.name = "n";
    spec.model = "mock/x";
    spec.system_prompt = "be brief";
    spec.tools = tools;
    spec.n_tools = 2;
    spec.max_iterations = 7;
    spec.labels = labels;
    spec.n_labels = 1;
    cJSON *o = round_trip(&spec);
    assert_int_equal(cJSON_GetArraySize(o), 6);
    assert_string_equal(str(o, "name"), "n");
    assert_string_equal(str(o, "model"), "mock/x");
    assert_string_equal(str(o, "system_prompt"), "be brief");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tools");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_string_equal(cJSON_GetArrayItem(t, 1)->valuestring, "web.search");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "max_iterations")->valueint, 7);
    assert_string_equal(str(cJSON_GetObjectItemCaseSensitive(o, "labels"), "team"),
                        "a \"quoted\"\nvalue");
    cJSON_Delete(o);
}

static void test_null_spec_and_strings(void **state)
{
    (void)state;
    cJSON *o = round_trip(NULL);
    assert_int_equal(cJSON_GetArraySize(o), 0);
    cJSON_Delete(o);
    Agentry__V1__AgentSpec spec = AGENTRY__V1__AGENT_SPEC__INIT;
    spec.name = NULL; /* as a message built in C may leave it */
    o = round_trip(&spec);
    assert_string_equal(str(o, "name"), "");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "tools")), 0);
    cJSON_Delete(o);
}

static const cJSON *item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(v);
    return v;
}

static void test_model_tools_limits_permissions(void **state)
{
    (void)state;
    Agentry__V1__AgentSpec spec = AGENTRY__V1__AGENT_SPEC__INIT;
    Agentry__V1__ModelSettings ms = AGENTRY__V1__MODEL_SETTINGS__INIT;
    Agentry__V1__ModelSettings__HeadersEntry h = AGENTRY__V1__MODEL_SETTINGS__HEADERS_ENTRY__INIT;
    h.key = "X-Team";
    h.value = "core";
    Agentry__V1__ModelSettings__HeadersEntry *headers[] = {&h};
    ms.base_url = "http://127.0.0.1:11434/v1";
    ms.stream = 1;
    ms.max_tokens = 2000;
    ms.headers = headers;
    ms.n_headers = 1;
    ms.api_key_env = "MY_KEY";
    spec.model_settings = &ms;
    char *tools[] = {"http_request", "echo"};
    spec.tools = tools;
    spec.n_tools = 2;
    Agentry__V1__AgentSpec__ToolSettingsEntry ts =
        AGENTRY__V1__AGENT_SPEC__TOOL_SETTINGS_ENTRY__INIT;
    ts.key = "http_request";
    ts.value = "{\"allow_hosts\":[\"api.example.com\"]}";
    Agentry__V1__AgentSpec__ToolSettingsEntry *tsv[] = {&ts};
    spec.tool_settings = tsv;
    spec.n_tool_settings = 1;
    Agentry__V1__Limits lim = AGENTRY__V1__LIMITS__INIT;
    lim.max_tokens = 50000;
    lim.max_cost_usd = 0.25;
    lim.turn_timeout_ms = 300000;
    spec.limits = &lim;
    char *pats[] = {"*.internal"};
    Agentry__V1__PermissionRule rule = AGENTRY__V1__PERMISSION_RULE__INIT;
    rule.tool = "http_request";
    rule.decision = "deny";
    rule.patterns = pats;
    rule.n_patterns = 1;
    Agentry__V1__PermissionRule *rules[] = {&rule};
    spec.permissions = rules;
    spec.n_permissions = 1;

    cJSON *o = round_trip(&spec);
    assert_int_equal(cJSON_GetArraySize(o), 10);
    const cJSON *m = item(o, "model_settings");
    assert_int_equal(cJSON_GetArraySize(m), 5); /* no temperature: not set */
    assert_string_equal(str(m, "base_url"), "http://127.0.0.1:11434/v1");
    assert_true(cJSON_IsTrue(item(m, "stream")));
    assert_int_equal(item(m, "max_tokens")->valueint, 2000);
    assert_string_equal(str(item(m, "headers"), "X-Team"), "core");
    assert_string_equal(str(m, "api_key_env"), "MY_KEY");
    const cJSON *hosts = item(item(item(o, "tool_settings"), "http_request"), "allow_hosts");
    assert_string_equal(cJSON_GetArrayItem(hosts, 0)->valuestring, "api.example.com");
    const cJSON *l = item(o, "limits");
    assert_int_equal(item(l, "max_tokens")->valueint, 50000);
    assert_true(item(l, "max_cost_usd")->valuedouble == 0.25);
    assert_int_equal(item(l, "turn_timeout_ms")->valueint, 300000);
    const cJSON *r = cJSON_GetArrayItem(item(o, "permissions"), 0);
    assert_string_equal(str(r, "tool"), "http_request");
    assert_string_equal(str(r, "decision"), "deny");
    assert_string_equal(cJSON_GetArrayItem(item(r, "patterns"), 0)->valuestring, "*.internal");
    cJSON_Delete(o);

    ms.temperature_set = 1; /* 0 is a temperature: shown once set */
    o = round_trip(&spec);
    assert_int_equal(item(item(o, "model_settings"), "temperature")->valueint, 0);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_keys),
        cmocka_unit_test(test_null_spec_and_strings),
        cmocka_unit_test(test_model_tools_limits_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
