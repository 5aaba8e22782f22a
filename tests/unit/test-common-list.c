/* tests/unit/test-common-list.c - the intrusive list (common/list.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/list.h"

struct item {
    int id;
    struct ag_list link;
};

static void items_init(struct item *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        it[i].id = (int)i;
        ag_list_init(&it[i].link);
    }
}

/* The ids along head, in order, into out; returns how many. */
static size_t ids(struct ag_list *head, int *out, size_t cap)
{
    size_t n = 0;
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, head)
    {
        if (n < cap)
            out[n] = AG_LIST_ENTRY(pos, struct item, link)->id;
        n++;
    }
    return n;
}

static void test_insert_order(void **state)
{
    (void)state;
    struct ag_list head;
    ag_list_init(&head);
    assert_true(ag_list_empty(&head));
    assert_null(ag_list_first(&head));
    struct item it[4];
    items_init(it, 4);
    ag_list_insert_tail(&head, &it[1].link);
    ag_list_insert_tail(&head, &it[2].link);
    ag_list_insert_head(&head, &it[0].link);
    ag_list_insert_tail(&head, &it[3].link);
    int got[8];
    assert_int_equal(ids(&head, got, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(got[i], i);
    assert_ptr_equal(ag_list_first(&head), &it[0].link);
    assert_false(ag_list_empty(&head));
}

static void test_remove_is_idempotent(void **state)
{
    (void)state;
    struct ag_list head;
    ag_list_init(&head);
    struct item it[3];
    items_init(it, 3);
    for (int i = 0; i < 3; i++)
        ag_list_insert_tail(&head, &it[i].link);
    assert_true(ag_list_linked(&it[1].link));
    ag_list_remove(&it[1].link);
    assert_false(ag_list_linked(&it[1].link));
    ag_list_remove(&it[1].link); /* a second remove does nothing */
    int got[8];
    assert_int_equal(ids(&head, got, 8), 2);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 2);
    /* never inserted, only initialised */
    struct item lone;
    ag_list_init(&lone.link);
    ag_list_remove(&lone.link);
    assert_false(ag_list_linked(&lone.link));
}

static void test_foreach_safe_removes_all(void **state)
{
    (void)state;
    struct ag_list head;
    ag_list_init(&head);
    struct item it[5];
    items_init(it, 5);
    for (int i = 0; i < 5; i++)
        ag_list_insert_tail(&head, &it[i].link);
    struct ag_list *pos, *tmp;
    int seen = 0;
    AG_LIST_FOREACH_SAFE(pos, tmp, &head)
    {
        assert_int_equal(AG_LIST_ENTRY(pos, struct item, link)->id, seen++);
        ag_list_remove(pos);
    }
    assert_int_equal(seen, 5);
    assert_true(ag_list_empty(&head));
    for (int i = 0; i < 5; i++)
        assert_false(ag_list_linked(&it[i].link));
}

static void test_move_all(void **state)
{
    (void)state;
    struct ag_list a, b;
    ag_list_init(&a);
    ag_list_init(&b);
    struct item it[4];
    items_init(it, 4);
    ag_list_move_all(&b, &a); /* empty into empty */
    assert_true(ag_list_empty(&b));
    ag_list_insert_tail(&b, &it[0].link);
    ag_list_insert_tail(&a, &it[1].link);
    ag_list_insert_tail(&a, &it[2].link);
    ag_list_move_all(&b, &a);
    assert_true(ag_list_empty(&a));
    ag_list_insert_tail(&b, &it[3].link);
    int got[8];
    assert_int_equal(ids(&b, got, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(got[i], i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_order),
        cmocka_unit_test(test_remove_is_idempotent),
        cmocka_unit_test(test_foreach_safe_removes_all),
        cmocka_unit_test(test_move_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
