/* tests/unit/test-api-json.c - the spec's JSON form (types.proto, EVENT_KIND_SPAWNED) has exactly
 * the documented keys, with a NULL spec and NULL strings handled, and escapes what JSON requires. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_keys),
        cmocka_unit_test(test_null_spec_and_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
