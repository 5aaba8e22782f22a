/* tests/unit/test-common-queue.c - the bounded FIFO and its gauge (common/queue.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/queue.h"

struct item {
    int id;
    struct ag_qnode node;
};

static int pop_id(struct ag_queue *q)
{
    struct ag_qnode *n = ag_queue_pop(q);
    assert_non_null(n);
    return AG_QUEUE_ENTRY(n, struct item, node)->id;
}

static void test_fifo_order(void **state)
{
    (void)state;
    struct ag_queue q;
    ag_queue_init(&q, "test.fifo", 0, 0);
    assert_true(ag_queue_empty(&q));
    assert_null(ag_queue_pop(&q));
    assert_null(ag_queue_peek(&q));
    struct item it[5];
    for (int i = 0; i < 5; i++) {
        it[i].id = i;
        assert_int_equal(ag_queue_push(&q, &it[i].node, 10, NULL), 0);
    }
    assert_int_equal(ag_queue_len(&q), 5);
    assert_int_equal(ag_queue_bytes(&q), 50);
    assert_ptr_equal(ag_queue_peek(&q), &it[0].node);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pop_id(&q), i);
    assert_true(ag_queue_empty(&q));
    assert_int_equal(ag_queue_bytes(&q), 0);
    /* usable again after draining */
    assert_int_equal(ag_queue_push(&q, &it[3].node, 1, NULL), 0);
    assert_int_equal(pop_id(&q), 3);
}

static void test_bound_on_len(void **state)
{
    (void)state;
    struct ag_queue q;
    ag_queue_init(&q, "test.len", 2, 0);
    struct item it[3] = {{0, {0}}, {1, {0}}, {2, {0}}};
    assert_int_equal(ag_queue_push(&q, &it[0].node, 0, NULL), 0);
    assert_int_equal(ag_queue_push(&q, &it[1].node, 0, NULL), 0);
    assert_false(ag_queue_has_room(&q, 0));
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_queue_push(&q, &it[2].node, 0, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "'test.len'"));
    assert_non_null(strstr(err.msg, "2"));
    assert_int_equal(ag_queue_len(&q), 2);
    assert_int_equal(pop_id(&q), 0);
    assert_int_equal(ag_queue_push(&q, &it[2].node, 0, NULL), 0);
    assert_int_equal(pop_id(&q), 1);
    assert_int_equal(pop_id(&q), 2);
}

static void test_bound_on_bytes(void **state)
{
    (void)state;
    struct ag_queue q;
    ag_queue_init(&q, "test.bytes", 0, 100);
    struct item it[4];
    memset(it, 0, sizeof(it));
    /* one item heavier than the bound is taken when the queue is empty, so it cannot stall */
    assert_true(ag_queue_has_room(&q, 500));
    assert_int_equal(ag_queue_push(&q, &it[0].node, 500, NULL), 0);
    assert_false(ag_queue_has_room(&q, 1));
    ag_queue_pop(&q);
    assert_int_equal(ag_queue_push(&q, &it[1].node, 60, NULL), 0);
    assert_true(ag_queue_has_room(&q, 40));
    assert_false(ag_queue_has_room(&q, 41));
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_queue_push(&q, &it[2].node, 41, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "'test.bytes'"));
    assert_non_null(strstr(err.msg, "100"));
    assert_false(ag_queue_has_room(&q, SIZE_MAX)); /* no overflow in the check */
    assert_int_equal(ag_queue_push(&q, &it[2].node, 40, NULL), 0);
    assert_int_equal(ag_queue_bytes(&q), 100);
    /* pop gives back each item's own weight */
    ag_queue_pop(&q);
    assert_int_equal(ag_queue_bytes(&q), 40);
}

static void test_push_over_and_gauge(void **state)
{
    (void)state;
    struct ag_queue q;
    ag_queue_init(&q, "test.gauge", 1, 0);
    struct item it[3];
    memset(it, 0, sizeof(it));
    assert_int_equal(ag_queue_push(&q, &it[0].node, 7, NULL), 0);
    assert_int_equal(ag_queue_push(&q, &it[1].node, 7, NULL), -1); /* err may be NULL */
    ag_queue_push_over(&q, &it[1].node, 8);
    ag_queue_push_over(&q, &it[2].node, 9);
    struct ag_queue_stats st;
    ag_queue_gauge_read(&q.gauge, &st);
    assert_int_equal(st.depth, 3);
    assert_int_equal(st.bytes, 24);
    assert_int_equal(st.high_water, 3);
    assert_int_equal(st.pushed, 3);
    assert_int_equal(st.refused, 1);
    ag_queue_pop(&q);
    ag_queue_gauge_read(&q.gauge, &st);
    assert_int_equal(st.depth, 2);
    assert_int_equal(st.bytes, 17);
    assert_int_equal(st.high_water, 3);
    assert_string_equal(q.gauge.name, "test.gauge");
}

static void test_take_all(void **state)
{
    (void)state;
    struct ag_queue q;
    ag_queue_init(&q, "test.take", 0, 0);
    assert_null(ag_queue_take_all(&q));
    struct item it[4];
    for (int i = 0; i < 4; i++) {
        it[i].id = i;
        ag_queue_push(&q, &it[i].node, 1, NULL);
    }
    struct ag_qnode *chain = ag_queue_take_all(&q);
    assert_true(ag_queue_empty(&q));
    assert_int_equal(ag_queue_len(&q), 0);
    assert_int_equal(ag_queue_bytes(&q), 0);
    struct ag_queue_stats st;
    ag_queue_gauge_read(&q.gauge, &st);
    assert_int_equal(st.depth, 0);
    int want = 0;
    for (struct ag_qnode *n = chain, *next; n; n = next) {
        next = n->next;
        assert_int_equal(AG_QUEUE_ENTRY(n, struct item, node)->id, want++);
    }
    assert_int_equal(want, 4);
    /* the queue works on after a take */
    ag_queue_push(&q, &it[2].node, 1, NULL);
    assert_int_equal(pop_id(&q), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order),     cmocka_unit_test(test_bound_on_len),
        cmocka_unit_test(test_bound_on_bytes), cmocka_unit_test(test_push_over_and_gauge),
        cmocka_unit_test(test_take_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
