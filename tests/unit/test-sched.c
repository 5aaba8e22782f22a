/* tests/unit/test-sched.c - the scheduler: round-robin within capacity, the FIFO of waiting
 * agents, what nodes offer against what agents need (model, tools, node labels, resources), what a
 * strategy is given, node removal, replacement and refusal of a live node's id, slot accounting,
 * closing. No threads: the scheduler's decisions are deterministic given its inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hub/node.h"
#include "hub/sched.h"

/* Agents are opaque to the scheduler: any distinct addresses will do. */
static char agent_a, agent_b, agent_c, agent_d;
#define AGENT(x) ((struct hub_agent *)&(x))

static char *mock_models[] = {"mock"}, *echo_tools[] = {"echo"};
/* What most turns below need: the mock model and the echo tool, one slot, any node. */
static const struct hub_sched_req MOCK = {
    .model = "mock", .tools = echo_tools, .ntools = 1, .need = {.slots = 1}};

/* Agent x's request: base's requirements, for the agent named id. */
static struct hub_sched_req req_of(char *x, const char *id, struct hub_sched_req base)
{
    base.agent = (struct hub_agent *)x;
    base.agent_id = id;
    return base;
}

static struct hub_node *node_offering(const char *id, uint32_t capacity, char **models,
                                      size_t nmodels, char **tools, size_t ntools)
{
    struct hub_node *n = hub_node_new(id, NULL, NULL); /* the test's own reference */
    n->capacity.slots = capacity;
    hub_node_offer(n, models, nmodels, tools, ntools);
    return n;
}

static struct hub_node *node_new(const char *id, uint32_t capacity)
{
    return node_offering(id, capacity, mock_models, 1, echo_tools, 1);
}

/* A mock/echo node with capacity slots and one label. */
static struct hub_node *node_labelled(const char *id, uint32_t capacity, const char *key,
                                      const char *value)
{
    struct hub_node *n = node_new(id, capacity);
    hub_node_add_label(n, key, value);
    return n;
}

static struct hub_node *node_instance(const char *id, const char *instance_id)
{
    struct hub_node *n = node_new(id, 2);
    snprintf(n->instance_id, sizeof(n->instance_id), "%s", instance_id);
    return n;
}

/* After the scheduler is freed only the test's reference may remain: this checks that every
 * reservation and table reference was given back. */
static void node_drop(struct hub_node *n)
{
    assert_int_equal(n->refs, 1);
    hub_node_free(n);
}

/* Join n at time now_ms (liveness: 3000 ms); returns the decisions made. */
static size_t join(struct hub_sched *s, struct hub_node *n, int64_t now_ms,
                   enum hub_sched_join *outcome, struct hub_node **other,
                   struct hub_sched_decision *d, size_t max)
{
    struct hub_sched_join_req j = {.node = n, .now_ms = now_ms, .alive_ms = 3000};
    return hub_sched_add_node(s, &j, outcome, other, d, max);
}

/* Join a new id at t=0; returns the decisions made (at most max). */
static size_t join_new(struct hub_sched *s, struct hub_node *n, struct hub_sched_decision *d,
                       size_t max)
{
    struct hub_node *replaced = NULL;
    enum hub_sched_join outcome;
    size_t k = join(s, n, 0, &outcome, &replaced, d, max);
    assert_int_equal(outcome, HUB_SCHED_JOINED);
    assert_null(replaced);
    return k;
}

static struct hub_sched *sched_new(void)
{
    const struct hub_sched_strategy *rr = hub_sched_find("round-robin");
    assert_non_null(rr);
    return hub_sched_new(rr);
}

static void add(struct hub_sched *s, struct hub_node *n)
{
    struct hub_sched_decision d[4];
    assert_int_equal(join_new(s, n, d, 4), 0);
}

static void expect_decision(const struct hub_sched_decision *d, char *agent, struct hub_node *n)
{
    assert_ptr_equal(d->agent, AGENT(*agent));
    assert_ptr_equal(d->node, n);
}

/* Give back req's reservation on node, expecting the room to go to `agent` (NULL: to nobody). */
static void release_to(struct hub_sched *s, struct hub_node *node, const struct hub_sched_req *req,
                       char *agent, struct hub_node *to)
{
    struct hub_sched_decision d[4];
    size_t k = hub_sched_release(s, node, req, d, 4);
    assert_int_equal(k, agent ? 1 : 0);
    if (agent)
        expect_decision(&d[0], agent, to);
}

/* Give back one MOCK reservation on each of nodes[0..n), expecting nobody to get the room. */
static void release_each(struct hub_sched *s, struct hub_node *const *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        release_to(s, nodes[i], &MOCK, NULL, NULL);
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
        got[i] = hub_sched_try_reserve(s, &MOCK);
    /* Consecutive turns land on consecutive nodes, wrapping around. */
    struct hub_node *want[6] = {n1, n2, n3, n1, n2, n3};
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(got[i], want[i]);
    assert_null(hub_sched_try_reserve(s, &MOCK)); /* 3 x 2 slots used */
    struct hub_sched_stats st;
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.nodes, 3);
    assert_int_equal(st.capacity, 6);
    assert_int_equal(st.running, 6);
    release_each(s, got, 6);
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
    struct hub_node *got[4];
    for (int i = 0; i < 4; i++)
        got[i] = hub_sched_try_reserve(s, &MOCK);
    /* small is full after the second: the next two go to big, never over capacity. */
    struct hub_node *want[4] = {big, small, big, big};
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(got[i], want[i]);
    assert_null(hub_sched_try_reserve(s, &MOCK));
    assert_int_equal(big->reserved.slots, 3);
    assert_int_equal(small->reserved.slots, 1);
    release_each(s, got, 4);
    hub_sched_free(s);
    node_drop(big), node_drop(small);
}

static void test_fifo_when_full(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n = node_new("n", 1);
    add(s, n);
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK), b = req_of(&agent_b, "b", MOCK),
                         c = req_of(&agent_c, "c", MOCK), d = req_of(&agent_d, "d", MOCK);
    assert_ptr_equal(hub_sched_place_or_queue(s, &a), n);
    /* Full: b, c, d wait in arrival order. */
    assert_null(hub_sched_place_or_queue(s, &b));
    assert_null(hub_sched_place_or_queue(s, &c));
    assert_null(hub_sched_place_or_queue(s, &d));
    struct hub_sched_stats st;
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.queued, 3);
    /* While agents wait, a newcomer may not take a slot ahead of them. */
    assert_null(hub_sched_try_reserve(s, &MOCK));
    release_to(s, n, &a, &agent_b, n);
    release_to(s, n, &b, &agent_c, n);
    release_to(s, n, &c, &agent_d, n);
    release_to(s, n, &d, NULL, NULL);
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
    struct hub_node *slot = hub_sched_try_reserve(s, &MOCK);
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK);
    assert_null(hub_sched_place_or_queue(s, &a));
    assert_null(hub_sched_try_reserve(s, &MOCK)); /* a waits with the same needs: it goes first */
    /* A node joining hands its slots to the waiting agents at once. */
    struct hub_node *late = node_new("late", 1);
    struct hub_sched_decision d[4];
    assert_int_equal(join_new(s, late, d, 4), 1);
    expect_decision(&d[0], &agent_a, late);
    release_to(s, late, &a, NULL, NULL);
    release_to(s, slot, &MOCK, NULL, NULL);
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
    struct hub_node *held = hub_sched_try_reserve(s, &MOCK);
    assert_ptr_equal(held, n1);
    hub_sched_remove_node(s, n1, "gone");
    hub_sched_remove_node(s, n1, "again"); /* idempotent: the first reason stays */
    char why[HUB_REASON_MAX];
    assert_false(hub_sched_node_alive(s, n1, why, sizeof(why)));
    assert_string_equal(why, "gone");
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(hub_sched_try_reserve(s, &MOCK), n2);
    assert_null(hub_sched_try_reserve(s, &MOCK));
    /* A slot given back on a dead node goes nowhere, even with agents waiting. */
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK);
    assert_null(hub_sched_place_or_queue(s, &a));
    release_to(s, held, &MOCK, NULL, NULL);
    /* The first slot freed on a live node goes to the waiter at once. */
    release_to(s, n2, &MOCK, &agent_a, n2);
    struct hub_node *rest[4] = {n2, n2, n2, n2};
    release_each(s, rest, 4);
    hub_sched_free(s);
    node_drop(n1), node_drop(n2);
}

/* The same process reconnecting (same instance id) takes over its id at once: its old stream is
 * dead to it even if the hub has not noticed yet. */
static void test_same_instance_replaces(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *old = node_instance("same", "proc-1");
    struct hub_node *fresh = node_instance("same", "proc-1");
    add(s, old);
    struct hub_node *replaced = NULL;
    struct hub_sched_decision d[1];
    enum hub_sched_join outcome;
    assert_int_equal(join(s, fresh, 10, &outcome, &replaced, d, 1), 0);
    assert_int_equal(outcome, HUB_SCHED_REPLACED);
    assert_ptr_equal(replaced, old);
    assert_false(hub_sched_node_alive(s, old, NULL, 0));
    assert_true(hub_sched_node_alive(s, fresh, NULL, 0));
    hub_sched_node_unref(s, replaced); /* the reference add_node handed us */
    struct hub_sched_stats st;
    hub_sched_get_stats(s, &st);
    assert_int_equal(st.nodes, 1);
    hub_sched_free(s);
    node_drop(old), node_drop(fresh);
}

/* Another process with a live node's id is refused (two nodes flapping over one id otherwise);
 * once the first has been silent past the liveness timeout, the newcomer takes over. */
static void test_live_id_refused_silent_id_taken_over(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *first = node_instance("n", "proc-1"), *second = node_instance("n", "proc-2"),
                    *third = node_instance("n", "proc-3");
    add(s, first); /* heard from at t=0 */
    struct hub_node *other = NULL;
    struct hub_sched_decision d[1];
    enum hub_sched_join outcome;
    assert_int_equal(join(s, second, 2999, &outcome, &other, d, 1), 0);
    assert_int_equal(outcome, HUB_SCHED_REFUSED);
    assert_ptr_equal(other, first);
    assert_true(hub_sched_node_alive(s, first, NULL, 0));
    assert_false(hub_sched_node_alive(s, second, NULL, 0));
    hub_sched_node_unref(s, other);
    assert_ptr_equal(hub_sched_try_reserve(s, &MOCK), first); /* first still schedules */
    assert_int_equal(join(s, third, 3001, &outcome, &other, d, 1), 0);
    assert_int_equal(outcome, HUB_SCHED_REPLACED);
    assert_ptr_equal(other, first);
    assert_false(hub_sched_node_alive(s, first, NULL, 0));
    hub_sched_node_unref(s, other);
    release_to(s, first, &MOCK, NULL, NULL);
    hub_sched_free(s);
    node_drop(first), node_drop(second), node_drop(third);
}

/* A turn goes only where its model and every tool are offered; "mock" offers "mock/anything". */
static void test_requirements_choose_nodes(void **state)
{
    (void)state;
    char *openai[] = {"openai/gpt-4o"}, *both[] = {"echo", "search"};
    struct hub_sched *s = sched_new();
    struct hub_node *plain = node_offering("plain", 4, mock_models, 1, NULL, 0);
    struct hub_node *tooled = node_offering("tooled", 4, mock_models, 1, both, 2);
    struct hub_node *gpt = node_offering("gpt", 4, openai, 1, echo_tools, 1);
    add(s, plain), add(s, tooled), add(s, gpt);
    struct hub_sched_req bare, search, on_gpt, other_gpt, bad_tool;
    hub_sched_req_init(&bare, NULL, NULL, "mock/large", NULL, 0);
    hub_sched_req_init(&search, NULL, NULL, "mock", both + 1, 1);
    hub_sched_req_init(&on_gpt, NULL, NULL, "openai/gpt-4o", echo_tools, 1);
    hub_sched_req_init(&other_gpt, NULL, NULL, "openai/gpt-5", NULL, 0);
    const char *bad_tool_list[] = {"echo", "nosuch"};
    hub_sched_req_init(&bad_tool, NULL, NULL, "mock", (char *const *)bad_tool_list, 2);
    struct hub_node *got[4] = {hub_sched_try_reserve(s, &bare), hub_sched_try_reserve(s, &search),
                               hub_sched_try_reserve(s, &on_gpt), hub_sched_try_reserve(s, &MOCK)};
    /* The last goes to tooled: plain lacks echo, gpt lacks mock. */
    struct hub_node *want[4] = {plain, tooled, gpt, tooled};
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(got[i], want[i]);
    assert_null(hub_sched_try_reserve(s, &other_gpt));
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_sched_check(s, &other_gpt, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "model 'openai/gpt-5'"));
    assert_non_null(strstr(err.msg, "mock"));
    assert_int_equal(hub_sched_check(s, &bad_tool, &err), -1);
    assert_non_null(strstr(err.msg, "tool 'nosuch'"));
    assert_int_equal(hub_sched_check(s, &search, &err), 0);
    char why[200];
    hub_sched_explain(s, &bad_tool, why, sizeof(why));
    assert_non_null(strstr(why, "tool 'nosuch'"));
    release_each(s, got, 4); /* every request above takes one slot, as MOCK does */
    hub_sched_free(s);
    node_drop(plain), node_drop(tooled), node_drop(gpt);
}

/* An agent no node can run waits without holding up the others: a free slot goes to the oldest
 * waiter the node can run. */
static void test_unservable_waiter_blocks_nobody(void **state)
{
    (void)state;
    char *openai[] = {"openai"};
    struct hub_sched *s = sched_new();
    struct hub_sched_req gpt;
    hub_sched_req_init(&gpt, AGENT(agent_b), "b", "openai/gpt-4o", NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_sched_check(s, &gpt, &err), 1); /* no node at all yet */
    struct hub_node *n = node_new("n", 1);
    add(s, n);
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK), c = req_of(&agent_c, "c", MOCK);
    assert_ptr_equal(hub_sched_place_or_queue(s, &a), n);
    assert_null(hub_sched_place_or_queue(s, &gpt)); /* nobody offers it */
    assert_null(hub_sched_place_or_queue(s, &c));   /* n is full */
    release_to(s, n, &a, &agent_c, n);              /* b is older, but n cannot run it */
    struct hub_node *g = node_offering("g", 1, openai, 1, NULL, 0);
    struct hub_sched_decision d[1];
    assert_int_equal(join_new(s, g, d, 1), 1);
    expect_decision(&d[0], &agent_b, g);
    release_to(s, n, &c, NULL, NULL);
    release_to(s, g, &gpt, NULL, NULL);
    hub_sched_free(s);
    node_drop(n), node_drop(g);
}

/* Once closed (the hub stopping), nothing is placed: not new turns, not the queue. */
static void test_close_stops_placing(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n = node_new("n", 1);
    add(s, n);
    struct hub_node *slot = hub_sched_try_reserve(s, &MOCK);
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK), b = req_of(&agent_b, "b", MOCK);
    assert_null(hub_sched_place_or_queue(s, &a));
    hub_sched_close(s);
    release_to(s, slot, &MOCK, NULL, NULL);
    assert_null(hub_sched_try_reserve(s, &MOCK));
    assert_null(hub_sched_place_or_queue(s, &b));
    char why[100];
    hub_sched_explain(s, &MOCK, why, sizeof(why));
    assert_string_equal(why, "the hub is shutting down");
    hub_sched_free(s);
    node_drop(n);
}

static void test_stale_nodes(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *quiet = node_new("quiet", 1), *chatty = node_new("chatty", 1);
    add(s, quiet);
    add(s, chatty);
    hub_sched_node_touch(s, quiet, 1000);
    hub_sched_node_touch(s, chatty, 9000);
    struct hub_node *out[4];
    size_t k = hub_sched_stale_nodes(s, 10000, 3000, out, 4);
    assert_int_equal(k, 1);
    assert_ptr_equal(out[0], quiet);
    hub_sched_node_unref(s, out[0]);
    hub_sched_free(s);
    node_drop(quiet), node_drop(chatty);
}

/* --- what a strategy is given ---------------------------------------------------------------- */

/* What the recording strategy saw: calls, nodes on the last one, the last request it placed. */
static struct {
    int calls;
    size_t nnodes;
    const struct hub_sched_req *req;
} seen;

/* Records its inputs, then places like a first-fit. */
static struct hub_node *place_recording(void *state, const struct hub_sched_view *v,
                                        const struct hub_sched_req *req)
{
    assert_null(state); /* the row has no state_new */
    seen.calls++;
    seen.nnodes = v->n;
    for (size_t i = 0; i < v->n; i++) {
        if (hub_node_fits(v->nodes[i], req)) {
            seen.req = req; /* the last request placed */
            return v->nodes[i];
        }
    }
    return NULL;
}

/* The place function sees the whole request: the agent, its id, model, tools, resources and node
 * selector; for a waiter handed a slot, that waiter's own request. */
static void test_place_sees_request(void **state)
{
    (void)state;
    static const struct hub_sched_strategy recording = {"recording", place_recording, NULL, NULL};
    memset(&seen, 0, sizeof(seen));
    struct hub_sched *s = hub_sched_new(&recording);
    struct hub_node *n1 = node_labelled("n1", 2, "zone", "a"), *n2 = node_new("n2", 2);
    add(s, n1);
    add(s, n2);
    struct hub_sched_label zone_a = {"zone", "a"};
    struct hub_sched_req a = req_of(&agent_a, "agent-a", MOCK);
    a.need = (struct hub_sched_res){.slots = 2, .cpu_milli = 500, .mem_bytes = 1 << 20};
    a.selector = &zone_a;
    a.nselector = 1;
    assert_ptr_equal(hub_sched_place_or_queue(s, &a), n1);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.nnodes, 2);
    assert_ptr_equal(seen.req, &a);
    assert_ptr_equal(seen.req->agent, AGENT(agent_a));
    assert_string_equal(seen.req->agent_id, "agent-a");
    assert_string_equal(seen.req->model, "mock");
    assert_int_equal(seen.req->ntools, 1);
    assert_string_equal(seen.req->tools[0], "echo");
    assert_int_equal(seen.req->need.slots, 2);
    assert_int_equal(seen.req->need.cpu_milli, 500);
    assert_int_equal(seen.req->need.mem_bytes, 1 << 20);
    assert_int_equal(seen.req->nselector, 1);
    assert_string_equal(seen.req->selector[0].key, "zone");
    assert_string_equal(seen.req->selector[0].value, "a");
    /* Two waiters of one class: each is placed with its own request, not the first one's. */
    struct hub_sched_req b = req_of(&agent_b, "agent-b", a), c = req_of(&agent_c, "agent-c", a);
    assert_null(hub_sched_place_or_queue(s, &b));
    assert_null(hub_sched_place_or_queue(s, &c));
    release_to(s, n1, &a, &agent_b, n1);
    assert_ptr_equal(seen.req, &b);
    release_to(s, n1, &b, &agent_c, n1);
    assert_ptr_equal(seen.req, &c);
    release_to(s, n1, &c, NULL, NULL);
    hub_sched_free(s);
    node_drop(n1), node_drop(n2);
}

/* --- node labels and resources --------------------------------------------------------------- */

/* An agent that requires zone=a runs only on a node labelled zone=a: it waits while that node is
 * full, even with room elsewhere, and does not hold up an agent without constraints. */
static void test_label_constraints(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *nb = node_labelled("nb", 1, "zone", "b");
    struct hub_node *na = node_labelled("na", 1, "zone", "a");
    add(s, nb);
    add(s, na);
    struct hub_sched_label zone_a = {"zone", "a"}, zone_c = {"zone", "c"};
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK);
    a.selector = &zone_a;
    a.nselector = 1;
    struct hub_sched_req b = req_of(&agent_b, "b", a), c = req_of(&agent_c, "c", MOCK);
    assert_ptr_equal(hub_sched_place_or_queue(s, &a), na); /* round-robin would pick nb first */
    assert_null(hub_sched_place_or_queue(s, &b));          /* na is full; nb has room but zone=b */
    assert_ptr_equal(hub_sched_place_or_queue(s, &c), nb); /* b does not hold c up */
    char why[200];
    hub_sched_explain(s, &b, why, sizeof(why));
    assert_string_equal(why, "waiting for a free slot on the 1 node that can run it");
    /* nb's slot coming back is no use to b; na's is. */
    release_to(s, nb, &c, NULL, NULL);
    release_to(s, na, &a, &agent_b, na);
    /* No node has zone=c: refused at the check, and explained while waiting. */
    struct hub_sched_req d = req_of(&agent_d, "d", MOCK);
    d.selector = &zone_c;
    d.nselector = 1;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_sched_check(s, &d, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "label 'zone=c'"));
    assert_null(hub_sched_place_or_queue(s, &d));
    hub_sched_explain(s, &d, why, sizeof(why));
    assert_string_equal(why, "waiting for a node with label 'zone=c'");
    release_to(s, na, &b, NULL, NULL);
    hub_sched_free(s);
    node_drop(na), node_drop(nb);
}

/* An agent that needs 2 slots is not handed a single free slot; a smaller agent behind it is.
 * Once 2 slots are free it gets them, and gives both back. */
static void test_resource_fit(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *n = node_new("n", 2);
    add(s, n);
    struct hub_sched_req a = req_of(&agent_a, "a", MOCK), b = req_of(&agent_b, "b", MOCK);
    struct hub_sched_req big = req_of(&agent_c, "big", MOCK), small = req_of(&agent_d, "d", MOCK);
    big.need.slots = 2;
    assert_ptr_equal(hub_sched_place_or_queue(s, &a), n);
    assert_ptr_equal(hub_sched_place_or_queue(s, &b), n);
    assert_null(hub_sched_place_or_queue(s, &big));
    assert_null(hub_sched_place_or_queue(s, &small)); /* behind big */
    release_to(s, n, &a, &agent_d, n);                /* 1 free: too little for big */
    release_to(s, n, &b, NULL, NULL);                 /* 1 free again, still */
    char why[200];
    hub_sched_explain(s, &big, why, sizeof(why));
    assert_string_equal(why, "waiting for room on the 1 node that can run it");
    release_to(s, n, &small, &agent_c, n); /* 2 free: big's turn */
    assert_int_equal(n->reserved.slots, 2);
    release_to(s, n, &big, NULL, NULL);
    assert_int_equal(n->reserved.slots, 0);
    /* More than any node has in all: refused at the check. */
    struct hub_sched_req huge = MOCK;
    huge.need.slots = 3;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_sched_check(s, &huge, &err), -1);
    assert_non_null(strstr(err.msg, "room for 3 slots"));
    assert_null(hub_sched_try_reserve(s, &huge));
    hub_sched_free(s);
    node_drop(n);
}

/* cpu and memory: a node's known capacity limits them, an unknown one (0) does not. */
static void test_cpu_memory_fit(void **state)
{
    (void)state;
    struct hub_sched *s = sched_new();
    struct hub_node *sized = node_new("sized", 4), *unsized = node_new("unsized", 4);
    sized->capacity.cpu_milli = 1000;
    sized->capacity.mem_bytes = 1024;
    add(s, sized);
    struct hub_sched_req cpu = MOCK, mem = MOCK;
    cpu.need.cpu_milli = 600;
    mem.need.mem_bytes = 2048;
    assert_ptr_equal(hub_sched_try_reserve(s, &cpu), sized);
    assert_null(hub_sched_try_reserve(s, &cpu)); /* 400 millicores left */
    assert_null(hub_sched_try_reserve(s, &mem)); /* never fits: 1024 bytes in all */
    add(s, unsized);
    assert_ptr_equal(hub_sched_try_reserve(s, &cpu), unsized);
    assert_ptr_equal(hub_sched_try_reserve(s, &mem), unsized);
    release_to(s, sized, &cpu, NULL, NULL);
    release_to(s, unsized, &cpu, NULL, NULL);
    release_to(s, unsized, &mem, NULL, NULL);
    assert_int_equal(sized->reserved.cpu_milli, 0);
    assert_int_equal(unsized->reserved.mem_bytes, 0);
    hub_sched_free(s);
    node_drop(sized), node_drop(unsized);
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
        cmocka_unit_test(test_same_instance_replaces),
        cmocka_unit_test(test_live_id_refused_silent_id_taken_over),
        cmocka_unit_test(test_requirements_choose_nodes),
        cmocka_unit_test(test_unservable_waiter_blocks_nobody),
        cmocka_unit_test(test_close_stops_placing),
        cmocka_unit_test(test_stale_nodes),
        cmocka_unit_test(test_place_sees_request),
        cmocka_unit_test(test_label_constraints),
        cmocka_unit_test(test_resource_fit),
        cmocka_unit_test(test_cpu_memory_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
