/* tests/unit/test-sched.c - the scheduler: round-robin within capacity, the FIFO of waiting
 * agents, node removal and replacement, slot accounting. No threads: the scheduler's decisions are
 * deterministic given its inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/xalloc.h"
#include "hub/sched.h"

/* Agents are opaque to the scheduler: any distinct addresses will do. */
static char agent_a, agent_b, agent_c, agent_d;
#define AGENT(x) ((struct hub_agent *)&(x))

static struct hub_node *node_new(const char *id, uint32_t capacity)
{
    struct hub_node *n = ag_xcalloc(1, sizeof(*n));
    snprintf(n->id, sizeof(n->id), "%s", id);
    n->capacity = capacity;
    n->refs = 1; /* the test's own reference */
    return n;
}

/* After the scheduler is freed only the test's reference may remain: this checks that every
 * reservation and table reference was given back. */
static void node_drop(struct hub_node *n)
{
    assert_int_equal(n->refs, 1);
    free(n);
}

static struct hub_sched *sched_new(void)
{
    const struct hub_sched_strategy *rr = hub_sched_find("round_robin");
    assert_non_null(rr);
    return hub_sched_new(rr);
}

static void add(struct hub_sched *s, struct hub_node *n)
{
    struct hub_node *replaced = NULL;
    struct hub_sched_decision d[4];
    assert_int_equal(hub_sched_add_node(s, n, &replaced, d, 4), 0);
    assert_null(replaced);
}

static void test_unknown_strategy(void **state)
{
    (void)state;
    assert_null(hub_sched_find("nope"));
}

static void test_round_robin_spreads(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n1 = node_new("n1", 2), *n2 = node_new("n2", 2), *n3 = node_new("n3", 2);
    add(s, n1);
    add(s, n2);
    add(s, n3);
    struct hub_node *got[6];
    for (int i = 0; i < 6; i++)
        got[i] = hub_sched_try_reserve(s);
    /* Consecutive turns land on consecutive nodes, wrapping around. */
    assert_ptr_equal(got[0], n1);
    assert_ptr_equal(got[1], n2);
    assert_ptr_equal(got[2], n3);
    assert_ptr_equal(got[3], n1);
    assert_ptr_equal(got[4], n2);
    assert_ptr_equal(got[5], n3);
    assert_null(hub_sched_try_reserve(s)); /* 3 x 2 slots used */
    struct hub_sched_stats st;
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.nodes, 3);
    assert_int_equal(st.capacity, 6);
    assert_int_equal(st.running, 6);
    struct hub_sched_decision d[1];
    for (int i = 0; i < 6; i++)
        assert_int_equal(hub_sched_release(s, got[i], d), 0);
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.running, 0);
    hub_sched_free(s);
    node_drop(n1), node_drop(n2), node_drop(n3);
}

static void test_capacity_skips_full_nodes(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *big = node_new("big", 3), *small = node_new("small", 1);
    add(s, big);
    add(s, small);
    struct hub_node *a = hub_sched_try_reserve(s), *b = hub_sched_try_reserve(s);
    assert_ptr_equal(a, big);
    assert_ptr_equal(b, small);
    /* small is full: the next two go to big, never over capacity. */
    assert_ptr_equal(hub_sched_try_reserve(s), big);
    assert_ptr_equal(hub_sched_try_reserve(s), big);
    assert_null(hub_sched_try_reserve(s));
    assert_true(big->running <= big->capacity && small->running <= small->capacity);
    struct hub_sched_decision d[1];
    hub_sched_release(s, a, d);
    hub_sched_release(s, b, d);
    hub_sched_release(s, big, d);
    hub_sched_release(s, big, d);
    hub_sched_free(s);
    node_drop(big), node_drop(small);
}

static void test_fifo_when_full(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n = node_new("n", 1);
    add(s, n);
    struct hub_node *slot = hub_sched_place_or_queue(s, AGENT(agent_a));
    assert_ptr_equal(slot, n);
    /* Full: b, c, d wait in arrival order. */
    assert_null(hub_sched_place_or_queue(s, AGENT(agent_b)));
    assert_null(hub_sched_place_or_queue(s, AGENT(agent_c)));
    assert_null(hub_sched_place_or_queue(s, AGENT(agent_d)));
    struct hub_sched_stats st;
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.queued, 3);
    /* While agents wait, a newcomer may not take a slot ahead of them. */
    struct hub_sched_decision d[1];
    assert_int_equal(hub_sched_release(s, slot, d), 1);
    assert_ptr_equal(d[0].agent, AGENT(agent_b));
    assert_ptr_equal(d[0].node, n);
    assert_int_equal(hub_sched_release(s, d[0].node, d), 1);
    assert_ptr_equal(d[0].agent, AGENT(agent_c));
    assert_int_equal(hub_sched_release(s, d[0].node, d), 1);
    assert_ptr_equal(d[0].agent, AGENT(agent_d));
    assert_int_equal(hub_sched_release(s, d[0].node, d), 0);
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    hub_sched_free(s);
    node_drop(n);
}

static void test_try_reserve_respects_queue(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n = node_new("n", 1);
    add(s, n);
    struct hub_node *slot = hub_sched_try_reserve(s);
    assert_null(hub_sched_place_or_queue(s, AGENT(agent_a)));
    struct hub_node *late = node_new("late", 1);
    struct hub_node *replaced = NULL;
    struct hub_sched_decision d[4];
    /* A node joining hands its slots to the waiting agents at once. */
    assert_int_equal(hub_sched_add_node(s, late, &replaced, d, 4), 1);
    assert_ptr_equal(d[0].agent, AGENT(agent_a));
    assert_ptr_equal(d[0].node, late);
    hub_sched_release(s, d[0].node, d);
    hub_sched_release(s, slot, d);
    hub_sched_free(s);
    node_drop(n), node_drop(late);
}

static void test_removed_node_never_chosen(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n1 = node_new("n1", 4), *n2 = node_new("n2", 4);
    add(s, n1);
    add(s, n2);
    struct hub_node *held = hub_sched_try_reserve(s);
    assert_ptr_equal(held, n1);
    hub_sched_remove_node(s, n1);
    hub_sched_remove_node(s, n1); /* idempotent */
    assert_false(hub_node_alive(s, n1));
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(hub_sched_try_reserve(s), n2);
    assert_null(hub_sched_try_reserve(s));
    /* A slot given back on a dead node goes nowhere, even with agents waiting. */
    assert_null(hub_sched_place_or_queue(s, AGENT(agent_a)));
    struct hub_sched_decision d[1];
    assert_int_equal(hub_sched_release(s, held, d), 0);
    /* The first slot freed on a live node goes to the waiter at once. */
    assert_int_equal(hub_sched_release(s, n2, d), 1);
    assert_ptr_equal(d[0].agent, AGENT(agent_a));
    assert_ptr_equal(d[0].node, n2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(hub_sched_release(s, n2, d), 0);
    hub_sched_free(s);
    node_drop(n1), node_drop(n2);
}

static void test_same_id_replaces(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *old = node_new("same", 2), *fresh = node_new("same", 2);
    add(s, old);
    struct hub_node *replaced = NULL;
    struct hub_sched_decision d[1];
    assert_int_equal(hub_sched_add_node(s, fresh, &replaced, d, 1), 0);
    assert_ptr_equal(replaced, old);
    assert_false(hub_node_alive(s, old));
    assert_true(hub_node_alive(s, fresh));
    hub_node_unref(s, replaced); /* the reference add_node handed us */
    struct hub_sched_stats st;
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.nodes, 1);
    hub_sched_free(s);
    node_drop(old), node_drop(fresh);
}

static void test_stale_nodes(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *quiet = node_new("quiet", 1), *chatty = node_new("chatty", 1);
    add(s, quiet);
    add(s, chatty);
    hub_node_touch(s, quiet, 1000);
    hub_node_touch(s, chatty, 9000);
    struct hub_node *out[4];
    size_t k = hub_sched_stale_nodes(s, 10000, 3000, out, 4);
    assert_int_equal(k, 1);
    assert_ptr_equal(out[0], quiet);
    hub_node_unref(s, out[0]);
    hub_sched_free(s);
    node_drop(quiet), node_drop(chatty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_strategy),
        cmocka_unit_test(test_round_robin_spreads),
        cmocka_unit_test(test_capacity_skips_full_nodes),
        cmocka_unit_test(test_fifo_when_full),
        cmocka_unit_test(test_try_reserve_respects_queue),
        cmocka_unit_test(test_removed_node_never_chosen),
        cmocka_unit_test(test_same_id_replaces),
        cmocka_unit_test(test_stale_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
