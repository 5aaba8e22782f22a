/* tests/unit/test-hub-approval.c - a tool call waiting for a person (hub/approval.c): what an
 * APPROVAL_REQUIRED payload names once the hub stamped its deadline, the decision and refusal
 * payloads, the decision found among the turn's steps, and the waiting call rebuilt from the log
 * at load (hub_approval_note) as a restarted hub does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agentry/v1/types.pb-c.h"
#include "hub/agent.h"
#include "hub/approval.h"
#include "hub/store.h"

#define K_REQUIRED AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_REQUIRED
#define K_DECIDED AGENTRY__V1__EVENT_KIND__EVENT_KIND_APPROVAL_DECIDED

static const char *NODE_PAYLOAD = "{\"id\":\"call_7\",\"name\":\"shell\",\"arguments\":"
                                  "\"{\\\"command\\\":\\\"git push\\\"}\",\"reason\":\"rule 1 of "
                                  "the node's policy (ask shell 'git push*')\",\"iterations\":2}";

static const char *field(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_stamp_and_parse(void **state)
{
    (void)state;
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    const char *stamped = hub_approval_stamp(NODE_PAYLOAD, 1700000060000, &ar);
    assert_non_null(stamped);
    /* A node cannot choose its own deadline: the hub's replaces one it sent. */
    const char *again = hub_approval_stamp(stamped, 5, &ar);
    assert_non_null(strstr(again, "\"expires_at_ms\":5"));
    assert_null(strstr(again, "1700000060000"));
    assert_null(hub_approval_stamp("[1]", 5, &ar));

    struct hub_approval *ap = hub_approval_parse(stamped, strlen(stamped), 9,
                                                 1700000000000LL * 1000000);
    assert_non_null(ap);
    assert_string_equal(ap->call_id, "call_7");
    assert_string_equal(ap->tool, "shell");
    assert_string_equal(ap->arguments, "{\"command\":\"git push\"}");
    assert_non_null(strstr(ap->reason, "node's policy"));
    assert_int_equal(ap->seq, 9);
    assert_int_equal(ap->asked_ms, 1700000000000LL);
    assert_int_equal(ap->expires_ms, 1700000060000LL);
    hub_approval_free(ap);
    assert_null(hub_approval_parse("{\"name\":\"shell\"}", 16, 1, 0));
    assert_null(hub_approval_parse("nope", 4, 1, 0));
    hub_approval_free(NULL);
    ag_arena_release(&ar);
}

static void test_decision_payloads(void **state)
{
    (void)state;
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct hub_approval ap = {.call_id = "call_7", .tool = "shell", .arguments = "{}"};

    cJSON *o = cJSON_Parse(hub_approval_decided_json(&ap, HUB_APPROVAL_APPROVED, "user/alice", NULL,
                                                     "{\"command\":\"ls\"}", &ar));
    assert_string_equal(field(o, "id"), "call_7");
    assert_string_equal(field(o, "decision"), "approved");
    assert_string_equal(field(o, "by"), "user/alice");
    assert_string_equal(field(o, "arguments"), "{\"command\":\"ls\"}");
    assert_null(field(o, "reason"));
    cJSON_Delete(o);

    /* A refusal never carries arguments; a plaintext hub's caller is "anonymous". */
    o = cJSON_Parse(
        hub_approval_decided_json(&ap, HUB_APPROVAL_DENIED, NULL, "too risky", "{\"x\":1}", &ar));
    assert_string_equal(field(o, "decision"), "denied");
    assert_string_equal(field(o, "by"), "anonymous");
    assert_string_equal(field(o, "reason"), "too risky");
    assert_null(field(o, "arguments"));
    cJSON_Delete(o);

    o = cJSON_Parse(
        hub_approval_refusal_json(&ap, HUB_APPROVAL_DENIED, "user/bob", "not on main", &ar));
    assert_string_equal(field(o, "id"), "call_7");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "is_error")));
    assert_non_null(strstr(field(o, "output"), "denied by user/bob: not on main"));
    cJSON_Delete(o);
    o = cJSON_Parse(hub_approval_refusal_json(&ap, HUB_APPROVAL_EXPIRED, "timeout", NULL, &ar));
    assert_non_null(strstr(field(o, "output"), "approval deadline"));
    cJSON_Delete(o);
    ag_arena_release(&ar);
}

static void note(struct hub_approval **ap, int kind, const char *payload, uint64_t seq)
{
    struct hub_store_event ev = {.agent_id = "a",
                                 .seq = seq,
                                 .kind = kind,
                                 .payload = payload,
                                 .payload_len = strlen(payload),
                                 .time_ns = 1000000000};
    hub_approval_note(ap, &ev);
}

/* As a restarted hub reads the log: the waiting call is the last APPROVAL_REQUIRED that no
 * decision of the same call and no turn end followed. */
static void test_note(void **state)
{
    (void)state;
    struct hub_approval *ap = NULL;
    note(&ap, K_REQUIRED, "{\"id\":\"c1\",\"name\":\"shell\",\"expires_at_ms\":99}", 5);
    assert_non_null(ap);
    assert_int_equal(ap->seq, 5);
    assert_int_equal(ap->expires_ms, 99);
    note(&ap, AGENTRY__V1__EVENT_KIND__EVENT_KIND_INPUT, "{\"text\":\"hi\"}", 6);
    note(&ap, K_DECIDED, "{\"id\":\"other\",\"decision\":\"approved\"}", 7);
    assert_non_null(ap);
    note(&ap, K_DECIDED, "{\"id\":\"c1\",\"decision\":\"approved\"}", 8);
    assert_null(ap);
    note(&ap, K_REQUIRED, "{\"id\":\"c2\",\"name\":\"shell\"}", 9);
    assert_non_null(ap);
    note(&ap, AGENTRY__V1__EVENT_KIND__EVENT_KIND_KILLED, "{\"reason\":\"x\"}", 10);
    assert_null(ap);
    note(&ap, K_REQUIRED, "{\"id\":\"c3\"}", 11);
    note(&ap, K_REQUIRED, "{\"id\":\"c4\"}", 12); /* the newest wins */
    assert_string_equal(ap->call_id, "c4");
    hub_approval_free(ap);
}

/* ApproveCall's idempotency: the agent's recent decisions, newest first, at most
 * HUB_APPROVAL_KEEP of them. */
static void test_remembered_decisions(void **state)
{
    (void)state;
    struct hub_agent a;
    memset(&a, 0, sizeof(a));
    const char *c1 = "{\"id\":\"c1\",\"decision\":\"denied\"}";
    const char *c2 = "{\"id\":\"c2\",\"decision\":\"approved\"}";
    hub_approval_remember(&a, c1, strlen(c1), 5);
    hub_approval_remember(&a, c2, strlen(c2), 9);
    hub_approval_remember(&a, "{\"id\":\"c9\"}", 11, 10); /* no decision: not one */
    enum hub_approval_decision d;
    uint64_t seq = 0;
    assert_true(hub_approval_decided(&a, "c1", &d, &seq));
    assert_int_equal(d, HUB_APPROVAL_DENIED);
    assert_int_equal(seq, 5);
    assert_true(hub_approval_decided(&a, "c2", &d, &seq));
    assert_int_equal(d, HUB_APPROVAL_APPROVED);
    assert_int_equal(seq, 9);
    assert_false(hub_approval_decided(&a, "c9", &d, &seq));
    /* The oldest make room for new ones. */
    char p[64];
    for (int i = 0; i < HUB_APPROVAL_KEEP; i++) {
        int n = snprintf(p, sizeof(p), "{\"id\":\"x%d\",\"decision\":\"expired\"}", i);
        hub_approval_remember(&a, p, (size_t)n, 20 + (uint64_t)i);
    }
    assert_false(hub_approval_decided(&a, "c1", &d, &seq));
    assert_true(hub_approval_decided(&a, "x0", &d, &seq));
    assert_int_equal(d, HUB_APPROVAL_EXPIRED);
    assert_int_equal(seq, 20);
    hub_approval_forget(&a);
    assert_null(a.decided);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stamp_and_parse),
        cmocka_unit_test(test_decision_payloads),
        cmocka_unit_test(test_note),
        cmocka_unit_test(test_remembered_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
