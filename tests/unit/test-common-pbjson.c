/* tests/unit/test-common-pbjson.c - protobuf <-> canonical JSON (common/pbjson.h) on messages of
 * its own (tests/unit/proto): every scalar type, enums, nested and repeated messages, maps,
 * oneofs and proto2's optional fields; a round trip through JSON keeps the message; input takes
 * the proto and the lowerCamelCase names and integers as strings; anything that does not fit is
 * INVALID_ARGUMENT naming the field, and nothing leaks on the way (the sanitizer build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/pbjson.h"
#include "pbjson_test.pb-c.h"
#include "pbjson_test2.pb-c.h"

/* json text of m, as the caller's string. */
static char *encode_text(const ProtobufCMessage *m)
{
    cJSON *j = ag_pbjson_encode(m);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static ProtobufCMessage *decode_text(const ProtobufCMessageDescriptor *d, const char *text,
                                     struct ag_err *err)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    ProtobufCMessage *m = ag_pbjson_decode(d, j, err);
    cJSON_Delete(j);
    return m;
}

static void test_defaults_are_omitted(void **state)
{
    (void)state;
    Pbjson__Test__All m = PBJSON__TEST__ALL__INIT;
    char *s = encode_text(&m.base);
    assert_string_equal(s, "{}");
    free(s);
}

static void test_every_type_out(void **state)
{
    (void)state;
    Pbjson__Test__Inner inner = PBJSON__TEST__INNER__INIT;
    inner.name = "in";
    inner.big = -9007199254740993LL; /* past 2^53: only a string keeps it */
    Pbjson__Test__Inner *items[] = {&inner};
    char *tags[] = {"a", "b"};
    Pbjson__Test__Color colors[] = {PBJSON__TEST__COLOR__COLOR_GREEN, 7};
    uint64_t seqs[] = {UINT64_MAX};
    Pbjson__Test__All__LabelsEntry l1 = PBJSON__TEST__ALL__LABELS_ENTRY__INIT;
    l1.key = "k";
    l1.value = "v";
    Pbjson__Test__All__LabelsEntry *labels[] = {&l1};
    Pbjson__Test__All__ByIdEntry b1 = PBJSON__TEST__ALL__BY_ID_ENTRY__INIT;
    b1.key = -4;
    b1.value = &inner;
    Pbjson__Test__All__ByIdEntry *by_id[] = {&b1};
    Pbjson__Test__All m = PBJSON__TEST__ALL__INIT;
    m.i32 = -1, m.s32 = -2, m.sf32 = -3, m.u32 = 4000000000u, m.f32 = 5;
    m.i64 = INT64_MIN, m.s64 = -7, m.sf64 = -8, m.u64 = UINT64_MAX, m.f64 = 10;
    m.fl = 0.1f, m.db = 2.5, m.flag = 1, m.text = "héllo \"q\"";
    m.data.data = (uint8_t *)"\x00\xff\x10", m.data.len = 3;
    m.color = PBJSON__TEST__COLOR__COLOR_RED, m.inner = &inner;
    m.n_tags = 2, m.tags = tags, m.n_items = 1, m.items = items;
    m.n_colors = 2, m.colors = colors, m.n_seqs = 1, m.seqs = seqs;
    m.n_labels = 1, m.labels = labels, m.n_by_id = 1, m.by_id = by_id;
    m.choice_case = PBJSON__TEST__ALL__CHOICE_AS_TEXT, m.as_text = "";
    char *s = encode_text(&m.base);
    assert_string_equal(
        s, "{\"i32\":-1,\"s32\":-2,\"sf32\":-3,\"u32\":4000000000,\"f32\":5,"
           "\"i64\":\"-9223372036854775808\",\"s64\":\"-7\",\"sf64\":\"-8\","
           "\"u64\":\"18446744073709551615\",\"f64\":\"10\",\"fl\":0.1,\"db\":2.5,\"flag\":true,"
           "\"text\":\"héllo \\\"q\\\"\",\"data\":\"AP8Q\",\"color\":\"COLOR_RED\","
           "\"inner\":{\"name\":\"in\",\"big\":\"-9007199254740993\"},\"tags\":[\"a\",\"b\"],"
           "\"items\":[{\"name\":\"in\",\"big\":\"-9007199254740993\"}],"
           "\"colors\":[\"COLOR_GREEN\",7],\"seqs\":[\"18446744073709551615\"],"
           "\"labels\":{\"k\":\"v\"},"
           "\"by_id\":{\"-4\":{\"name\":\"in\",\"big\":\"-9007199254740993\"}},"
           "\"as_text\":\"\"}");
    /* ... and back: the same message, so the same text. */
    struct ag_err err = AG_ERR_INIT;
    ProtobufCMessage *back = decode_text(&pbjson__test__all__descriptor, s, &err);
    assert_non_null(back);
    char *again = encode_text(back);
    assert_string_equal(again, s);
    protobuf_c_message_free_unpacked(back, NULL);
    free(again);
    free(s);
}

static void test_input_forms(void **state)
{
    (void)state;
    struct ag_err err = AG_ERR_INIT;
    ProtobufCMessage *m = decode_text(
        &pbjson__test__all__descriptor,
        "{\"agentId\":\"a1\",\"i64\":12,\"u64\":\"18446744073709551615\",\"u32\":\"7\","
        "\"color\":2,\"colors\":[\"COLOR_RED\",1],\"data\":\"AP8Q-_8=\",\"fl\":\"NaN\","
        "\"db\":\"-Infinity\",\"text\":null,\"asInner\":{\"name\":\"x\"},\"byId\":{\"3\":{}}}",
        &err);
    assert_non_null(m);
    Pbjson__Test__All *a = (Pbjson__Test__All *)m;
    assert_string_equal(a->agent_id, "a1");
    assert_int_equal(a->i64, 12);
    assert_true(a->u64 == UINT64_MAX);
    assert_int_equal(a->u32, 7);
    assert_int_equal(a->color, PBJSON__TEST__COLOR__COLOR_GREEN);
    assert_int_equal(a->n_colors, 2);
    assert_int_equal(a->data.len, 5);
    assert_memory_equal(a->data.data, "\x00\xff\x10\xfb\xff", 5);
    assert_true(a->fl != a->fl);
    assert_true(a->db < -1e308);
    assert_string_equal(a->text, "");
    assert_int_equal(a->choice_case, PBJSON__TEST__ALL__CHOICE_AS_INNER);
    assert_string_equal(a->as_inner->name, "x");
    assert_int_equal(a->n_by_id, 1);
    assert_int_equal(a->by_id[0]->key, 3);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Each bad input: NULL, INVALID_ARGUMENT, and the message names `want`. */
static void test_errors_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"nope\":1}", "unknown field 'nope' in pbjson.test.All"},
        {"{\"inner\":{\"name\":\"x\",\"extra\":1}}", "unknown field 'inner.extra'"},
        {"{\"i32\":2147483648}", "field 'i32'"},
        {"{\"u32\":-1}", "field 'u32'"},
        {"{\"u64\":\"-1\"}", "field 'u64'"},
        {"{\"i64\":\"12x\"}", "field 'i64'"},
        {"{\"i32\":1.5}", "field 'i32'"},
        {"{\"flag\":\"yes\"}", "field 'flag': want true or false, got a string"},
        {"{\"text\":5}", "field 'text': want a string, got a number"},
        {"{\"color\":\"PURPLE\"}", "'PURPLE' is not a value of pbjson.test.Color"},
        {"{\"data\":\"abc\"}", "field 'data': not padded base64"},
        {"{\"tags\":\"a\"}", "field 'tags': want an array"},
        {"{\"items\":[{},{\"big\":true}]}", "field 'items[1].big'"},
        {"{\"labels\":{\"k\":1}}", "field 'labels.k'"},
        {"{\"by_id\":{\"x\":{}}}", "field 'by_id.x'"},
        {"{\"as_text\":\"a\",\"as_inner\":{}}", "'as_text' is already set"},
        {"{\"text\":\"a\",\"text\":\"b\"}", "field 'text' is given twice"},
        {"{\"agent_id\":\"a\",\"agentId\":\"b\"}", "is given twice"},
        {"[]", "want an object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ag_err err = AG_ERR_INIT;
        ProtobufCMessage *m = decode_text(&pbjson__test__all__descriptor, cases[i].json, &err);
        if (m || err.code != AG_INVALID_ARGUMENT || !strstr(err.msg, cases[i].want))
            fail_msg("%s: got %s '%s', want INVALID_ARGUMENT naming \"%s\"", cases[i].json,
                     m ? "a message" : ag_code_name(err.code), err.msg, cases[i].want);
    }
}

/* proto2: an optional field set to its zero value is written; one not set is not. */
static void test_optional_fields(void **state)
{
    (void)state;
    Pbjson__Test2__Opt o = PBJSON__TEST2__OPT__INIT;
    o.has_maybe = 1;
    char *s = encode_text(&o.base);
    assert_string_equal(s, "{\"maybe\":0,\"must\":false}");
    free(s);
    struct ag_err err = AG_ERR_INIT;
    ProtobufCMessage *m = decode_text(&pbjson__test2__opt__descriptor, "{\"maybe\":0}", &err);
    assert_non_null(m);
    assert_true(((Pbjson__Test2__Opt *)m)->has_maybe);
    assert_null(((Pbjson__Test2__Opt *)m)->note);
    protobuf_c_message_free_unpacked(m, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_omitted), cmocka_unit_test(test_every_type_out),
        cmocka_unit_test(test_input_forms),          cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_optional_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
