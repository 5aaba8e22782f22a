/* tests/unit/test-hub-json.c - the INPUT payload writer escapes what JSON requires: every text
 * round-trips through a real JSON parser unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "hub/json_payload.h"

static void round_trip(const char *text)
{
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    const char *json = hub_json_text_payload(&ar, text);
    cJSON *o = cJSON_Parse(json);
    if (!o)
        fail_msg("not JSON: %s", json);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    assert_true(cJSON_IsString(t));
    assert_string_equal(t->valuestring, text);
    assert_int_equal(cJSON_GetArraySize(o), 1);
    cJSON_Delete(o);
    ag_arena_release(&ar);
}

static void test_round_trips(void **state)
{
    (void)state;
    round_trip("");
    round_trip("hello");
    round_trip("say \"hi\"");
    round_trip("back\\slash and \\\" mixed");
    round_trip("line one\nline two\ttabbed\r");
    round_trip("\x01\x02\x1f control bytes");
    round_trip("naïve агент 🤖 ✓");
    round_trip("</script>{}[]:,");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trips)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
