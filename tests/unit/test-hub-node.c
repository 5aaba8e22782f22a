/* tests/unit/test-hub-node.c - one node (hub/node.c): labels are kept parsed and print back for
 * display; which models and tools it offers; serves (what it offers, its labels, its whole
 * capacity) against fits (serves, and room beside its reservations). No scheduler: a node
 * answers these on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/xalloc.h"
#include "hub/node.h"

static char *mock_models[] = {"mock", "openai/gpt-4o"}, *tools[] = {"echo", "shell"};

static struct hub_node *node_new(uint32_t slots)
{
    struct hub_node *n = hub_node_new("n", "proc-1", NULL);
    n->capacity.slots = slots;
    hub_node_offer(n, mock_models, 2, tools, 2);
    return n;
}

static void test_new_node(void **state)
{
    (void)state;
    struct hub_node *n = hub_node_new("node-1", NULL, NULL);
    assert_string_equal(n->id, "node-1");
    assert_string_equal(n->instance_id, "");
    assert_int_equal(n->refs, 1);
    assert_int_equal(n->nmodels, 0);
    assert_int_equal(n->nlabels, 0);
    assert_true(ag_list_empty(&n->agents));
    hub_node_free(n);
    hub_node_free(NULL);
}

/* Labels come in as key=value pairs and are kept parsed (a repeated key keeps its last value, as
 * a protobuf map does); they print back as "k=v,k=v" for display. */
static void test_labels_parsed(void **state)
{
    (void)state;
    struct hub_node *n = node_new(1);
    const char *pairs[][2] = {{"zone", "a"}, {"gpu", "true"}, {"zone", "b"}, {"empty", ""}};
    for (size_t i = 0; i < 4; i++)
        hub_node_add_label(n, pairs[i][0], pairs[i][1]);
    assert_int_equal(n->nlabels, 3);
    assert_string_equal(n->labels[0].key, "zone");
    assert_string_equal(n->labels[0].value, "b");
    assert_string_equal(n->labels[1].key, "gpu");
    assert_string_equal(n->labels[1].value, "true");
    assert_string_equal(n->labels[2].key, "empty");
    assert_string_equal(n->labels[2].value, "");
    assert_true(hub_node_has_label(n, &(struct hub_sched_label){"zone", "b"}));
    assert_false(hub_node_has_label(n, &(struct hub_sched_label){"zone", "a"}));
    assert_false(hub_node_has_label(n, &(struct hub_sched_label){"region", "a"}));
    char buf[64];
    hub_node_labels_format(n, buf, sizeof(buf));
    assert_string_equal(buf, "zone=b,gpu=true,empty=");
    hub_node_labels_format(n, buf, 10); /* truncated, still terminated */
    assert_string_equal(buf, "zone=b,gp");
    struct hub_node *bare = node_new(1);
    hub_node_labels_format(bare, buf, sizeof(buf));
    assert_string_equal(buf, "");
    hub_node_free(n);
    hub_node_free(bare);
}

/* A bare provider name offers every model under it; a full name offers only itself. */
static void test_offers(void **state)
{
    (void)state;
    struct hub_node *n = node_new(1);
    static const struct {
        const char *model;
        bool offered;
    } rows[] = {
        {"mock", true},          {"mock/fast", true}, {"mockery", false}, {"openai/gpt-4o", true},
        {"openai/gpt-5", false}, {"openai", false},   {"mock/", true},    {"", false},
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(rows); i++) {
        print_message("model '%s'\n", rows[i].model);
        assert_int_equal(hub_node_offers_model(n, rows[i].model), rows[i].offered);
    }
    assert_true(hub_node_offers_tool(n, "shell"));
    assert_false(hub_node_offers_tool(n, "she"));
    /* Offering again replaces what it offered. */
    char *only[] = {"echo"};
    hub_node_offer(n, only, 1, only, 1);
    assert_false(hub_node_offers_model(n, "mock"));
    assert_false(hub_node_offers_tool(n, "shell"));
    assert_true(hub_node_offers_tool(n, "echo"));
    hub_node_free(n);
}

/* serves ignores reservations; fits needs room beside them. Unknown (0) cpu or memory capacity
 * limits nothing. */
static void test_serves_and_fits(void **state)
{
    (void)state;
    struct hub_node *n = node_new(2);
    hub_node_add_label(n, "zone", "a");
    struct hub_sched_label zone_a = {"zone", "a"}, zone_b = {"zone", "b"};
    struct hub_sched_req req;
    hub_sched_req_init(&req, NULL, NULL, "mock/fast", tools, 2);
    req.selector = &zone_a;
    req.nselector = 1;
    assert_true(hub_node_serves(n, &req));
    assert_true(hub_node_fits(n, &req));
    n->reserved.slots = 2; /* full */
    assert_true(hub_node_serves(n, &req));
    assert_false(hub_node_fits(n, &req));
    n->reserved.slots = 1;
    req.need.slots = 2; /* more than is free, not more than it has */
    assert_true(hub_node_serves(n, &req));
    assert_false(hub_node_fits(n, &req));
    req.need.slots = 3; /* more than it has */
    assert_false(hub_node_covers(n, &req.need));
    assert_false(hub_node_serves(n, &req));
    req.need = (struct hub_sched_res){.slots = 1, .cpu_milli = 4000, .mem_bytes = 1ull << 40};
    assert_true(hub_node_fits(n, &req)); /* cpu and memory unknown: not limited */
    n->capacity.cpu_milli = 2000;
    assert_false(hub_node_serves(n, &req));
    req.need.cpu_milli = 1500;
    assert_true(hub_node_fits(n, &req));
    n->reserved.cpu_milli = 1000;
    assert_false(hub_node_fits(n, &req));
    n->reserved = (struct hub_sched_res){0};
    req.selector = &zone_b;
    assert_false(hub_node_serves(n, &req));
    req.selector = &zone_a;
    char *missing[] = {"echo", "browser"};
    req.tools = missing;
    assert_false(hub_node_serves(n, &req));
    req.tools = tools;
    req.model = "other";
    assert_false(hub_node_serves(n, &req));
    hub_node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_node),
        cmocka_unit_test(test_labels_parsed),
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_serves_and_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
