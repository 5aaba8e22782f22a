/* tests/unit/test-hub-team.c - a parent's wait (hub/team.c): what a WAITING payload names, how
 * children's ends count, the TOOL_RESULT the last one makes, and the wait rebuilt from the log at
 * load (hub_team_wait_note) as a restarted hub does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agentry/v1/types.pb-c.h"
#include "hub/agent.h"
#include "hub/store.h"
#include "hub/team.h"

#define IDLE AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE
#define FAILED AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED

static struct hub_team_wait *parse(const char *payload)
{
    return hub_team_wait_parse(payload, strlen(payload));
}

static void test_parse(void **state)
{
    (void)state;
    struct hub_team_wait *w = parse("{\"id\":\"c4\",\"agents\":[\"a\",\"b\"],\"iterations\":2}");
    assert_non_null(w);
    assert_int_equal(hub_team_wait_left(w), 2);
    hub_team_wait_free(w);
    assert_null(parse("{\"id\":\"c4\",\"agents\":[]}"));
    assert_null(parse("{\"agents\":[\"a\"]}"));
    assert_null(parse("not json"));
    assert_int_equal(hub_team_wait_left(NULL), 0);
    hub_team_wait_free(NULL);
}

/* Only a settled end of a child awaited counts, each child once; the last one completes it. */
static void test_mark_and_result(void **state)
{
    (void)state;
    struct hub_team_wait *w = parse("{\"id\":\"c4\",\"agents\":[\"a\",\"b\"]}");
    struct hub_team_end a = {.child_id = "a", .state = IDLE, .text = "A!", .settled = true};
    struct hub_team_end busy = {.child_id = "b", .state = IDLE, .text = "x", .settled = false};
    struct hub_team_end other = {.child_id = "z", .state = IDLE, .text = "x", .settled = true};
    struct hub_team_end b = {.child_id = "b", .state = FAILED, .text = "boom", .settled = true};
    assert_false(hub_team_wait_mark(w, &busy)); /* an input waits: it has more to do */
    assert_false(hub_team_wait_mark(w, &other));
    assert_false(hub_team_wait_mark(w, &a));
    assert_false(hub_team_wait_mark(w, &a)); /* twice is once */
    assert_int_equal(hub_team_wait_left(w), 1);
    assert_true(hub_team_wait_mark(w, &b));
    assert_int_equal(hub_team_wait_left(w), 0);

    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    cJSON *r = cJSON_Parse(hub_team_wait_result(w, &ar));
    assert_string_equal(cJSON_GetObjectItem(r, "id")->valuestring, "c4");
    assert_string_equal(cJSON_GetObjectItem(r, "name")->valuestring, "wait_agent");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "is_error")));
    assert_string_equal(cJSON_GetObjectItem(r, "output")->valuestring,
                        "[{\"agent_id\":\"a\",\"state\":\"idle\",\"output\":\"A!\"},"
                        "{\"agent_id\":\"b\",\"state\":\"failed\",\"error\":\"boom\"}]");
    cJSON_Delete(r);
    ag_arena_release(&ar);

    hub_team_wait_reset(w); /* the write that completed it failed: ask again */
    assert_int_equal(hub_team_wait_left(w), 2);
    hub_team_wait_free(w);
}

static void note(struct hub_agent *a, int kind, const char *payload)
{
    struct hub_store_event ev = {
        .agent_id = "p", .kind = kind, .payload = payload, .payload_len = strlen(payload)};
    hub_team_wait_note(&a->wait, &ev);
}

/* At load, the wait is the turn's last WAITING not followed by its result or a turn end. */
static void test_note_rebuilds_the_wait(void **state)
{
    (void)state;
    struct hub_agent a = {0};
    note(&a, AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING, "{\"id\":\"c1\",\"agents\":[\"x\"]}");
    assert_int_equal(hub_team_wait_left(a.wait), 1);
    note(&a, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT, "{\"id\":\"other\"}");
    assert_non_null(a.wait);
    note(&a, AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_RESULT, "{\"id\":\"c1\"}");
    assert_null(a.wait);
    note(&a, AGENTRY__V1__EVENT_KIND__EVENT_KIND_WAITING,
         "{\"id\":\"c2\",\"agents\":[\"x\",\"y\"]}");
    assert_int_equal(hub_team_wait_left(a.wait), 2);
    note(&a, AGENTRY__V1__EVENT_KIND__EVENT_KIND_CHILD, "{\"agent_id\":\"x\"}");
    assert_int_equal(hub_team_wait_left(a.wait), 2); /* marks are asked again, not read */
    note(&a, AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED, "{}");
    assert_null(a.wait);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_mark_and_result),
        cmocka_unit_test(test_note_rebuilds_the_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
