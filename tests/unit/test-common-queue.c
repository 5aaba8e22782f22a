/* tests/unit/test-common-queue.c - the bounded FIFO, its gauge and the totals by name
 * (common/queue.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "common/queue.h"
#include "common/strbuf.h"

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

static const struct ag_queue_total *total_of(struct ag_queue_total *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

/* Queues of one name add up, whoever owns them; take_all and refusals count too. */
static void test_totals_by_name(void **state)
{
    (void)state;
    struct ag_queue a, b, c;
    ag_queue_init(&a, "test.totals", 2, 0);
    ag_queue_init(&b, "test.totals", 0, 0);
    ag_queue_init(&c, "test.other-name", 0, 0);
    struct item it[6] = {{.id = 0}};
    assert_int_equal(ag_queue_push(&a, &it[0].node, 1, NULL), 0);
    assert_int_equal(ag_queue_push(&a, &it[1].node, 1, NULL), 0);
    assert_int_equal(ag_queue_push(&a, &it[2].node, 1, NULL), -1); /* refused */
    assert_int_equal(ag_queue_push(&b, &it[3].node, 1, NULL), 0);
    assert_int_equal(ag_queue_push(&b, &it[4].node, 1, NULL), 0);
    assert_int_equal(ag_queue_push(&c, &it[5].node, 1, NULL), 0);
    struct ag_queue_total t[AG_QUEUE_NAMES_MAX];
    size_t n = ag_queue_totals_read(t, AG_QUEUE_NAMES_MAX);
    const struct ag_queue_total *x = total_of(t, n, "test.totals");
    assert_non_null(x);
    assert_int_equal(x->depth, 4);
    assert_int_equal(x->refused, 1);
    assert_int_equal(total_of(t, n, "test.other-name")->depth, 1);
    ag_queue_pop(&a);
    ag_queue_take_all(&b);
    n = ag_queue_totals_read(t, AG_QUEUE_NAMES_MAX);
    assert_int_equal(total_of(t, n, "test.totals")->depth, 1);

    /* The families render them, one series per name. */
    struct ag_metrics *r = ag_metrics_new();
    ag_queue_metrics_add(r);
    struct ag_strbuf out = {0};
    ag_metrics_render(r, &out);
    assert_non_null(strstr(out.s, "agentry_queue_depth{queue=\"test.totals\"} 1\n"));
    assert_non_null(strstr(out.s, "agentry_queue_refusals_total{queue=\"test.totals\"} 1\n"));
    assert_non_null(strstr(out.s, "agentry_queue_depth{queue=\"test.other-name\"} 1\n"));
    free(out.s);
    ag_metrics_free(r);
    ag_queue_take_all(&a);
    ag_queue_take_all(&c);
}

/* Past AG_QUEUE_NAMES_MAX names, the rest count under "other". */
static void test_totals_bound(void **state)
{
    (void)state;
    static char names[AG_QUEUE_NAMES_MAX + 4][16];
    struct ag_queue q[AG_QUEUE_NAMES_MAX + 4];
    for (size_t i = 0; i < AG_QUEUE_NAMES_MAX + 4; i++) {
        snprintf(names[i], sizeof(names[i]), "test.n%zu", i);
        ag_queue_init(&q[i], names[i], 0, 0);
    }
    struct ag_queue_total t[AG_QUEUE_NAMES_MAX + 1];
    size_t n = ag_queue_totals_read(t, AG_QUEUE_NAMES_MAX + 1);
    assert_int_equal(n, AG_QUEUE_NAMES_MAX);
    assert_string_equal(t[n - 1].name, "other");
    struct item it = {.id = 1};
    ag_queue_push_over(&q[AG_QUEUE_NAMES_MAX + 3], &it.node, 1);
    n = ag_queue_totals_read(t, AG_QUEUE_NAMES_MAX);
    assert_int_equal(t[n - 1].depth, 1);
    ag_queue_take_all(&q[AG_QUEUE_NAMES_MAX + 3]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order),     cmocka_unit_test(test_bound_on_len),
        cmocka_unit_test(test_bound_on_bytes), cmocka_unit_test(test_push_over_and_gauge),
        cmocka_unit_test(test_take_all),       cmocka_unit_test(test_totals_by_name),
        cmocka_unit_test(test_totals_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
