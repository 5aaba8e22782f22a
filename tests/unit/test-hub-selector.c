/* tests/unit/test-hub-selector.c - ListAgents label selectors (hub/selector.c): every term form
 * parses to the right operator, key and value; malformed selectors are refused naming the bad
 * term; matching follows Kubernetes (key!=value holds when the key is absent). Tables of rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hub/selector.h"

/* --- parsing ------------------------------------------------------------------------------- */

struct parse_row {
    const char *text;
    size_t n;
    struct {
        enum hub_selector_op op;
        const char *key, *value;
    } terms[3];
};

static const struct parse_row parse_rows[] = {
    {"", 0, {{0}}},
    {"   ", 0, {{0}}},
    {"team=core", 1, {{HUB_SELECTOR_EQ, "team", "core"}}},
    {"team==core", 1, {{HUB_SELECTOR_EQ, "team", "core"}}},
    {"team!=core", 1, {{HUB_SELECTOR_NE, "team", "core"}}},
    {"tier", 1, {{HUB_SELECTOR_EXISTS, "tier", NULL}}},
    {"!tier", 1, {{HUB_SELECTOR_ABSENT, "tier", NULL}}},
    {"tier=", 1, {{HUB_SELECTOR_EQ, "tier", ""}}},
    {"tier!=", 1, {{HUB_SELECTOR_NE, "tier", ""}}},
    {" team = core , ! tier ,gpu ",
     3,
     {{HUB_SELECTOR_EQ, "team", "core"},
      {HUB_SELECTOR_ABSENT, "tier", NULL},
      {HUB_SELECTOR_EXISTS, "gpu", NULL}}},
    /* Values are literal: inner spaces, '=' and '!' are part of them. */
    {"msg=hello world", 1, {{HUB_SELECTOR_EQ, "msg", "hello world"}}},
    {"eq=a=b", 1, {{HUB_SELECTOR_EQ, "eq", "a=b"}}},
    {"bang!=x!", 1, {{HUB_SELECTOR_NE, "bang", "x!"}}},
    {"k.io/name=v_1-2", 1, {{HUB_SELECTOR_EQ, "k.io/name", "v_1-2"}}},
    {"ключ=значение", 1, {{HUB_SELECTOR_EQ, "ключ", "значение"}}},
};

static void test_parse_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
        const struct parse_row *r = &parse_rows[i];
        struct ag_arena ar;
        ag_arena_init(&ar, NULL, 0);
        struct hub_selector sel;
        struct ag_err err = AG_ERR_INIT;
        if (hub_selector_parse(r->text, &ar, &sel, &err) != 0)
            fail_msg("'%s': %s", r->text, err.msg);
        assert_int_equal(sel.n, r->n);
        for (size_t t = 0; t < r->n; t++) {
            assert_int_equal(sel.terms[t].op, r->terms[t].op);
            assert_string_equal(sel.terms[t].key, r->terms[t].key);
            if (r->terms[t].value)
                assert_string_equal(sel.terms[t].value, r->terms[t].value);
            else
                assert_null(sel.terms[t].value);
        }
        ag_arena_release(&ar);
    }
}

static void test_parse_null_is_empty(void **state)
{
    (void)state;
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct hub_selector sel = {(void *)1, 7};
    assert_int_equal(hub_selector_parse(NULL, &ar, &sel, NULL), 0);
    assert_int_equal(sel.n, 0);
    assert_null(sel.terms);
    ag_arena_release(&ar);
}

/* Each bad selector, and what its error must quote. */
static const struct {
    const char *text, *named;
} bad_rows[] = {
    {"a b", "'a b'"},
    {"=v", "'=v'"},
    {"==v", "'==v'"},
    {"!=v", "'!=v'"},
    {"!", "'!'"},
    {"!k=v", "'!k=v'"},
    {"! k v", "'! k v'"},
    {"k!", "'k!'"},
    {"k!v", "'k!v'"},
    {"team=core, x y ", "'x y'"},
    {"a=b,", "term 2 is empty"},
    {",a=b", "term 1 is empty"},
    {"a=b,,c=d", "term 2 is empty"},
    {"a=b, ,c=d", "term 2 is empty"},
    {"\xff=1", "not valid UTF-8"},
};

static void test_malformed_names_the_term(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        struct ag_arena ar;
        ag_arena_init(&ar, NULL, 0);
        struct hub_selector sel;
        struct ag_err err = AG_ERR_INIT;
        if (hub_selector_parse(bad_rows[i].text, &ar, &sel, &err) != -1)
            fail_msg("'%s' parsed, want an error", bad_rows[i].text);
        assert_int_equal(err.code, AG_INVALID_ARGUMENT);
        if (!strstr(err.msg, bad_rows[i].named))
            fail_msg("'%s': error '%s' does not name %s", bad_rows[i].text, err.msg,
                     bad_rows[i].named);
        assert_int_equal(sel.n, 0);
        ag_arena_release(&ar);
    }
}

static void test_length_limit(void **state)
{
    (void)state;
    static char text[HUB_SELECTOR_MAX_BYTES + 2];
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct hub_selector sel;
    struct ag_err err = AG_ERR_INIT;
    memset(text, 'v', sizeof(text) - 1);
    memcpy(text, "k=", 2);
    text[HUB_SELECTOR_MAX_BYTES] = '\0'; /* exactly the limit: fine */
    assert_int_equal(hub_selector_parse(text, &ar, &sel, &err), 0);
    assert_int_equal(sel.n, 1);
    assert_int_equal(strlen(sel.terms[0].value), HUB_SELECTOR_MAX_BYTES - 2);
    text[HUB_SELECTOR_MAX_BYTES] = 'v'; /* one byte over */
    assert_int_equal(hub_selector_parse(text, &ar, &sel, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "4096"));
    ag_arena_release(&ar);
}

static void test_long_bad_term_is_cut_on_a_character(void **state)
{
    (void)state;
    /* 200 two-byte characters and a space: malformed, and too long to quote whole. */
    char text[512] = "k";
    for (int i = 0; i < 200; i++)
        strcat(text, "é");
    strcat(text, " x");
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct hub_selector sel;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_selector_parse(text, &ar, &sel, &err), -1);
    assert_non_null(strstr(err.msg, "...'"));
    /* The quote must end on a whole "é" (0xC3 0xA9), never on its first byte. */
    const char *dots = strstr(err.msg, "...'");
    assert_int_equal((unsigned char)dots[-1], 0xA9);
    ag_arena_release(&ar);
}

/* --- matching ------------------------------------------------------------------------------ */

struct label {
    const char *key, *value;
};

static bool matches(const char *selector, const struct label *labels, size_t n)
{
    Agentry__V1__AgentSpec__LabelsEntry entries[8], *ptrs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        agentry__v1__agent_spec__labels_entry__init(&entries[i]);
        entries[i].key = (char *)labels[i].key;
        entries[i].value = (char *)labels[i].value;
        ptrs[i] = &entries[i];
    }
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct hub_selector sel;
    struct ag_err err = AG_ERR_INIT;
    if (hub_selector_parse(selector, &ar, &sel, &err) != 0)
        fail_msg("'%s': %s", selector, err.msg);
    bool m = hub_selector_match(&sel, ptrs, n);
    ag_arena_release(&ar);
    return m;
}

static const struct label gold[] = {{"team", "core"}, {"tier", "gold"}};
static const struct label plain[] = {{"team", "core"}};
static const struct label empty_tier[] = {{"team", "ml"}, {"tier", ""}};

static const struct {
    const char *selector;
    bool gold, plain, empty_tier, none;
} match_rows[] = {
    {"", true, true, true, true},
    {"team=core", true, true, false, false},
    {"team==core", true, true, false, false},
    {"team!=core", false, false, true, true}, /* absent counts as "not core" */
    {"tier", true, false, true, false},
    {"!tier", false, true, false, true},
    {"tier=", false, false, true, false},
    {"tier!=", true, true, false, true},
    {"team=core,!tier", false, true, false, false},
    {"team=core,tier=gold", true, false, false, false},
    {" team = core , tier ", true, false, false, false},
    {"team=Core", false, false, false, false}, /* literal: case matters */
    {"team=cor", false, false, false, false},  /* literal: no prefixes */
    {"team!=core,team!=ml", false, false, false, true},
};

static void test_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
        const char *s = match_rows[i].selector;
        if (matches(s, gold, 2) != match_rows[i].gold)
            fail_msg("'%s' on {team=core,tier=gold}: want %d", s, match_rows[i].gold);
        if (matches(s, plain, 1) != match_rows[i].plain)
            fail_msg("'%s' on {team=core}: want %d", s, match_rows[i].plain);
        if (matches(s, empty_tier, 2) != match_rows[i].empty_tier)
            fail_msg("'%s' on {team=ml,tier=}: want %d", s, match_rows[i].empty_tier);
        if (matches(s, NULL, 0) != match_rows[i].none)
            fail_msg("'%s' on {}: want %d", s, match_rows[i].none);
    }
}

static void test_duplicate_key_last_wins(void **state)
{
    (void)state;
    static const struct label dup[] = {{"team", "old"}, {"team", "new"}};
    assert_true(matches("team=new", dup, 2));
    assert_false(matches("team=old", dup, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_null_is_empty),
        cmocka_unit_test(test_malformed_names_the_term),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_long_bad_term_is_cut_on_a_character),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_duplicate_key_last_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
