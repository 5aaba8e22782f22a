/* tests/unit/test-sched-props.c - the scheduler's strategies and waiting rules as properties over
 * many randomized placements: capacity, node selectors, anti-affinity and cordons are never
 * violated; no waiter fits a node (no head-of-line blocking, nothing left idle); binpack uses the
 * fewest nodes and takes the most-utilised node that fits, spread the least-utilised;
 * round-robin is even. Then priority order, no starvation of a big waiter behind a stream of
 * small ones, cordons, anti-affinity and requests built from a spec, case by case.
 *
 * Randomness: one xorshift generator seeded from AGENTRY_TEST_SEED (default fixed); every
 * failure message carries the seed, so a run can be repeated exactly.
 *
 * `test-sched-props --bench` instead measures placement decisions per second with 1,000 nodes
 * for each strategy (docs/benchmarks.md); it asserts nothing. No threads: the scheduler's
 * decisions are deterministic given its inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/log.h"
#include "hub/node.h"
#include "hub/sched.h"

static uint64_t seed = 0x5eed13, rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Uniform in [0, n). */
static uint32_t below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* fail_msg with the seed, so the run can be repeated with AGENTRY_TEST_SEED. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        print_error("seed %llu (AGENTRY_TEST_SEED): ", (unsigned long long)seed);                  \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static char *mock_models[] = {"mock"}, *echo_tools[] = {"echo"};

static const char *zones[] = {"a", "b", "c"}, *teams[] = {"t0", "t1", "t2", "t3", "t4", "t5"};

/* --- a random cluster ------------------------------------------------------------------------ */

#define MAX_NODES 24
#define MAX_AGENTS 160

/* One simulated agent: its request and where it is. */
struct sim_agent {
    struct hub_sched_req req;
    struct hub_sched_label selector, labels[2], anti;
    struct hub_node *on; /* reserved there, or NULL */
    bool queued;
    int id;
    char name[16];
};

struct sim {
    struct hub_sched *s;
    const struct hub_sched_strategy *st;
    struct hub_node *nodes[MAX_NODES];
    size_t nnodes;
    struct sim_agent agents[MAX_AGENTS];
    size_t nagents;
    size_t placements;
};

/* The simulated agents are the scheduler's opaque agents. */
static struct sim_agent *agent_of(struct hub_agent *a)
{
    return (struct sim_agent *)a;
}

static struct hub_node *sim_node(struct sim *sm, size_t i, uint32_t slots, uint32_t cpu,
                                 uint64_t mem, const char *zone, bool gpu)
{
    char id[32];
    snprintf(id, sizeof(id), "n%zu", i);
    struct hub_node *n = hub_node_new(id, NULL, NULL);
    n->capacity = (struct hub_sched_res){slots, cpu, mem};
    hub_node_offer(n, mock_models, 1, echo_tools, 1);
    hub_node_add_label(n, "zone", zone);
    hub_node_add_label(n, "gpu", gpu ? "true" : "false");
    struct hub_sched_join_req j = {.node = n, .alive_ms = 3000};
    enum hub_sched_join outcome;
    struct hub_node *other;
    struct hub_sched_decision d[MAX_AGENTS];
    size_t k = hub_sched_add_node(sm->s, &j, &outcome, &other, d, MAX_AGENTS);
    assert_int_equal(k, 0); /* nodes join before any agent */
    return n;
}

static void sim_agent_init(struct sim_agent *a, int id, bool constrained)
{
    memset(a, 0, sizeof(*a));
    a->id = id;
    snprintf(a->name, sizeof(a->name), "a%d", id);
    hub_sched_req_init(&a->req, (struct hub_agent *)a, a->name, "mock", echo_tools, 1);
    if (!constrained)
        return;
    a->req.need.cpu_milli = below(3) ? 0 : 250 * (1 + below(8));
    a->req.need.mem_bytes = below(3) ? 0 : (uint64_t)(1 + below(4)) << 29;
    a->req.need.slots = 1 + (below(8) == 0); /* a few take two slots */
    if (below(4) == 0) {
        a->selector = (struct hub_sched_label){"zone", (char *)zones[below(3)]};
        a->req.selector = &a->selector;
        a->req.nselector = 1;
    }
    a->labels[0] = (struct hub_sched_label){"team", (char *)teams[below(6)]};
    a->labels[1] = (struct hub_sched_label){"tier", below(2) ? "web" : "batch"};
    a->req.labels = a->labels;
    a->req.nlabels = 2;
    if (below(3) == 0) {
        a->anti = a->labels[0];
        a->req.anti = &a->anti;
        a->req.nanti = 1;
    }
    a->req.priority = (int32_t)below(3) - 1;
}

static void sim_init(struct sim *sm, const char *strategy, bool constrained)
{
    memset(sm, 0, sizeof(*sm));
    sm->st = hub_sched_find(strategy);
    assert_non_null(sm->st);
    sm->s = hub_sched_new(sm->st);
    sm->nnodes = 4 + below(MAX_NODES - 4);
    for (size_t i = 0; i < sm->nnodes; i++) {
        uint32_t cpu = constrained && below(2) ? 1000 * (1 + below(8)) : 0;
        uint64_t mem = constrained && below(2) ? (uint64_t)(1 + below(16)) << 30 : 0;
        sm->nodes[i] = sim_node(sm, i, 1 + below(8), cpu, mem, zones[below(3)], below(2) == 0);
    }
    sm->nagents = MAX_AGENTS;
    for (size_t i = 0; i < sm->nagents; i++)
        sim_agent_init(&sm->agents[i], (int)i, constrained);
}

static void sim_free(struct sim *sm)
{
    for (size_t i = 0; i < sm->nagents; i++)
        if (sm->agents[i].on)
            hub_sched_release(sm->s, sm->agents[i].on, &sm->agents[i].req, NULL, 0);
    hub_sched_free(sm->s);
    for (size_t i = 0; i < sm->nnodes; i++) {
        assert_int_equal(sm->nodes[i]->refs, 1);
        assert_int_equal(sm->nodes[i]->label_counts.len, 0);
        hub_node_free(sm->nodes[i]);
    }
}

/* The strategy's own rule, checked against what fit just before the placement. */
static void check_choice(struct sim *sm, const struct sim_agent *a, const struct hub_node *got,
                         const bool *fit, const double *util)
{
    bool any = false;
    for (size_t i = 0; i < sm->nnodes; i++) {
        any |= fit[i];
        if (sm->nodes[i] == got && !fit[i])
            FAIL("%s placed on %s, which did not fit it", a->name, got->id);
    }
    if (!got && any)
        FAIL("%s was queued though a node fitted it", a->name);
    if (!got)
        return;
    size_t g = 0;
    while (sm->nodes[g] != got)
        g++;
    for (size_t i = 0; i < sm->nnodes; i++) {
        if (!fit[i])
            continue;
        if (strcmp(sm->st->name, "binpack") == 0 && util[i] > util[g])
            FAIL("binpack chose %s (%.3f) over the fuller %s (%.3f)", got->id, util[g],
                 sm->nodes[i]->id, util[i]);
        if (strcmp(sm->st->name, "spread") == 0 && util[i] < util[g])
            FAIL("spread chose %s (%.3f) over the emptier %s (%.3f)", got->id, util[g],
                 sm->nodes[i]->id, util[i]);
    }
}

static void mark_placed(struct sim *sm, struct sim_agent *a, struct hub_node *n)
{
    if (n->cordoned)
        FAIL("%s placed on cordoned node %s", a->name, n->id);
    a->on = n;
    a->queued = false;
    sm->placements++;
}

static void take_decisions(struct sim *sm, struct hub_sched_decision *d, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        struct sim_agent *a = agent_of(d[i].agent);
        if (!a->queued || a->on)
            FAIL("%s handed a node while not waiting", a->name);
        mark_placed(sm, a, d[i].node);
    }
}

/* Spawn-like: place an idle agent now or queue it. */
static void op_place(struct sim *sm, struct sim_agent *a)
{
    bool fit[MAX_NODES];
    double util[MAX_NODES];
    for (size_t i = 0; i < sm->nnodes; i++) {
        fit[i] = hub_node_fits(sm->nodes[i], &a->req);
        util[i] = hub_node_utilisation(sm->nodes[i]);
    }
    struct hub_node *n = hub_sched_place_or_queue(sm->s, &a->req);
    if (n) {
        check_choice(sm, a, n, fit, util);
        mark_placed(sm, a, n);
    } else {
        a->queued = true;
    }
}

static void drain_all(struct sim *sm)
{
    struct hub_sched_decision d[8];
    size_t k;
    do {
        k = hub_sched_drain(sm->s, d, 8);
        take_decisions(sm, d, k);
    } while (k == 8);
}

static void op_release(struct sim *sm, struct sim_agent *a)
{
    struct hub_sched_decision d[8];
    size_t k = hub_sched_release(sm->s, a->on, &a->req, d, 8);
    a->on = NULL;
    take_decisions(sm, d, k);
    if (k == 8)
        drain_all(sm);
}

static void op_cordon(struct sim *sm)
{
    struct hub_node *n = sm->nodes[below((uint32_t)sm->nnodes)];
    bool on = below(3) == 0; /* mostly uncordon: keep most nodes usable */
    assert_int_equal(hub_sched_cordon(sm->s, n->id, on ? HUB_SCHED_CORDON : HUB_SCHED_UNCORDON), 0);
    if (!on)
        drain_all(sm);
}

/* Everything that must hold between operations. */
static void check_invariants(struct sim *sm)
{
    for (size_t i = 0; i < sm->nnodes; i++) {
        struct hub_node *n = sm->nodes[i];
        struct hub_sched_res sum = {0};
        for (size_t j = 0; j < sm->nagents; j++) {
            struct sim_agent *a = &sm->agents[j];
            if (a->on != n)
                continue;
            sum.slots += a->req.need.slots;
            sum.cpu_milli += a->req.need.cpu_milli;
            sum.mem_bytes += a->req.need.mem_bytes;
            for (size_t l = 0; l < a->req.nselector; l++)
                if (!hub_node_has_label(n, &a->req.selector[l]))
                    FAIL("%s runs on %s without label %s=%s", a->name, n->id,
                         a->req.selector[l].key, a->req.selector[l].value);
            for (size_t k = j + 1; k < sm->nagents; k++) {
                struct sim_agent *b = &sm->agents[k];
                bool anti = (a->req.nanti || b->req.nanti) &&
                            strcmp(a->labels[0].value, b->labels[0].value) == 0;
                if (b->on == n && anti)
                    FAIL("%s and %s (team %s, anti-affine) share %s", a->name, b->name,
                         a->labels[0].value, n->id);
            }
        }
        if (memcmp(&sum, &n->reserved, sizeof(sum)) != 0)
            FAIL("%s: reserved %u slots but its agents hold %u", n->id, n->reserved.slots,
                 sum.slots);
        const struct hub_sched_res *c = &n->capacity;
        if (sum.slots > c->slots || (c->cpu_milli && sum.cpu_milli > c->cpu_milli) ||
            (c->mem_bytes && sum.mem_bytes > c->mem_bytes))
            FAIL("%s is over capacity", n->id);
    }
    /* Work conservation: nothing that waits fits anywhere (a hold counts: fits knows it). */
    for (size_t j = 0; j < sm->nagents; j++) {
        struct sim_agent *a = &sm->agents[j];
        for (size_t i = 0; a->queued && i < sm->nnodes; i++)
            if (hub_node_fits(sm->nodes[i], &a->req))
                FAIL("%s waits though %s fits it", a->name, sm->nodes[i]->id);
    }
}

static void run_random(const char *strategy, bool constrained, int ops)
{
    struct sim sm;
    sim_init(&sm, strategy, constrained);
    for (int op = 0; op < ops; op++) {
        struct sim_agent *a = &sm.agents[below((uint32_t)sm.nagents)];
        uint32_t r = below(20);
        if (constrained && r == 0)
            op_cordon(&sm);
        else if (a->on)
            op_release(&sm, a);
        else if (!a->queued)
            op_place(&sm, a);
        check_invariants(&sm);
    }
    sim_free(&sm);
}

static void test_random_placements(void **state)
{
    (void)state;
    for (const struct hub_sched_strategy *st = hub_sched_strategies; st->name; st++) {
        rng = seed;
        for (int round = 0; round < 5; round++)
            run_random(st->name, true, 2000); /* 10,000 operations per strategy */
        run_random(st->name, false, 2000);
    }
}

/* --- the strategies' shapes ------------------------------------------------------------------ */

/* nodes of the given slot capacities, plain mock/echo, no other limits. */
static struct hub_sched *plain_cluster(const char *strategy, const uint32_t *caps, size_t n,
                                       struct hub_node **nodes)
{
    struct sim sm; /* only for sim_node */
    sm.s = hub_sched_new(hub_sched_find(strategy));
    for (size_t i = 0; i < n; i++)
        nodes[i] = sim_node(&sm, i, caps[i], 0, 0, "a", false);
    return sm.s;
}

static void cluster_free(struct hub_sched *s, struct hub_node **nodes, size_t n,
                         struct hub_sched_req *held, struct hub_node **on, size_t nheld)
{
    for (size_t i = 0; i < nheld; i++)
        if (on[i])
            hub_sched_release(s, on[i], &held[i], NULL, 0);
    hub_sched_free(s);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nodes[i]->refs, 1);
        hub_node_free(nodes[i]);
    }
}

static size_t nodes_in_use(struct hub_node **nodes, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += nodes[i]->reserved.slots > 0;
    return k;
}

/* The fewest nodes that can hold k slots: the largest first (optimal for one-slot turns). */
static size_t fewest_nodes(const uint32_t *caps, size_t n, size_t k)
{
    uint32_t sorted[MAX_NODES];
    memcpy(sorted, caps, n * sizeof(*caps));
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (sorted[j] > sorted[i]) {
                uint32_t t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    size_t used = 0, room = 0;
    while (room < k)
        room += sorted[used++];
    return used;
}

/* Binpack on one-slot turns: after each placement, as few nodes in use as could hold them. */
static void test_binpack_fewest_nodes(void **state)
{
    (void)state;
    rng = seed;
    for (int round = 0; round < 50; round++) {
        size_t n = 2 + below(MAX_NODES - 2), total = 0;
        uint32_t caps[MAX_NODES];
        for (size_t i = 0; i < n; i++) /* odd rounds: mixed sizes; even rounds: all 5 */
            total += caps[i] = round % 2 ? 1 + below(8) : 5;
        struct hub_node *nodes[MAX_NODES], *on[MAX_AGENTS * 2];
        struct hub_sched_req reqs[MAX_AGENTS * 2];
        struct hub_sched *s = plain_cluster("binpack", caps, n, nodes);
        for (size_t k = 0; k < total; k++) {
            hub_sched_req_init(&reqs[k], NULL, NULL, "mock", echo_tools, 1);
            on[k] = hub_sched_try_reserve(s, &reqs[k]);
            assert_non_null(on[k]);
            size_t used = nodes_in_use(nodes, n), best = fewest_nodes(caps, n, k + 1);
            if (used != best)
                FAIL("binpack uses %zu nodes for %zu turns; %zu would do", used, k + 1, best);
        }
        cluster_free(s, nodes, n, reqs, on, total);
    }
}

/* Spread and round-robin on equal nodes: the slots in use never differ by more than one. */
static void check_even_fill(const char *strategy)
{
    rng = seed;
    for (int round = 0; round < 20; round++) {
        size_t n = 2 + below(MAX_NODES - 2);
        uint32_t caps[MAX_NODES], cap = 1 + below(6);
        for (size_t i = 0; i < n; i++)
            caps[i] = cap;
        struct hub_node *nodes[MAX_NODES], *on[MAX_NODES * 8];
        struct hub_sched_req reqs[MAX_NODES * 8];
        struct hub_sched *s = plain_cluster(strategy, caps, n, nodes);
        for (size_t k = 0; k < n * cap; k++) {
            hub_sched_req_init(&reqs[k], NULL, NULL, "mock", echo_tools, 1);
            on[k] = hub_sched_try_reserve(s, &reqs[k]);
            uint32_t lo = UINT32_MAX, hi = 0;
            for (size_t i = 0; i < n; i++) {
                lo = nodes[i]->reserved.slots < lo ? nodes[i]->reserved.slots : lo;
                hi = nodes[i]->reserved.slots > hi ? nodes[i]->reserved.slots : hi;
            }
            if (hi - lo > 1)
                FAIL("%s: %u and %u slots in use after %zu turns", strategy, lo, hi, k + 1);
        }
        cluster_free(s, nodes, n, reqs, on, n * cap);
    }
}

static void test_spread_even(void **state)
{
    (void)state;
    check_even_fill("spread");
}

/* Round-robin: with room everywhere, turns go to each node in turn, whatever is released. */
static void test_round_robin_even(void **state)
{
    (void)state;
    check_even_fill("round-robin");
    rng = seed;
    uint32_t caps[8];
    for (size_t i = 0; i < 8; i++)
        caps[i] = 1000;
    struct hub_node *nodes[8], *on[64] = {0};
    struct hub_sched_req reqs[64];
    struct hub_sched *s = plain_cluster("round-robin", caps, 8, nodes);
    size_t count[8] = {0};
    for (int op = 0; op < 10000; op++) {
        size_t k = below(64);
        if (on[k]) {
            hub_sched_release(s, on[k], &reqs[k], NULL, 0);
            on[k] = NULL;
            continue;
        }
        hub_sched_req_init(&reqs[k], NULL, NULL, "mock", echo_tools, 1);
        on[k] = hub_sched_try_reserve(s, &reqs[k]);
        count[on[k]->id[1] - '0']++;
    }
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < 8; i++) {
        lo = count[i] < lo ? count[i] : lo;
        hi = count[i] > hi ? count[i] : hi;
    }
    if (hi - lo > 1)
        FAIL("round-robin placed %zu on one node and %zu on another", lo, hi);
    cluster_free(s, nodes, 8, reqs, on, 64);
}

/* --- waiting: priority, no head-of-line blocking, no starvation ------------------------------ */

static char ag[8][1]; /* opaque agents: distinct addresses */
#define AGENT(i) ((struct hub_agent *)ag[i])

static struct hub_sched_req req_for(int i, int32_t prio, uint32_t slots)
{
    struct hub_sched_req r;
    hub_sched_req_init(&r, AGENT(i), "x", "mock", echo_tools, 1);
    r.priority = prio;
    r.need.slots = slots;
    return r;
}

/* Room that frees goes to the highest priority first, then the oldest. */
static void test_priority_then_fifo(void **state)
{
    (void)state;
    uint32_t caps[] = {1};
    struct hub_node *nodes[1];
    struct hub_sched *s = plain_cluster("round-robin", caps, 1, nodes);
    struct hub_sched_req run = req_for(0, 0, 1), low = req_for(1, 0, 1), high = req_for(2, 5, 1),
                         mid = req_for(3, 2, 1), high2 = req_for(4, 5, 1);
    assert_non_null(hub_sched_place_or_queue(s, &run));
    assert_null(hub_sched_place_or_queue(s, &low));
    assert_null(hub_sched_place_or_queue(s, &high));
    assert_null(hub_sched_place_or_queue(s, &mid));
    assert_null(hub_sched_place_or_queue(s, &high2));
    struct hub_sched_req *order[] = {&high, &high2, &mid, &low};
    const struct hub_sched_req *last = &run;
    for (size_t i = 0; i < 4; i++) {
        struct hub_sched_decision d[2];
        assert_int_equal(hub_sched_release(s, nodes[0], last, d, 2), 1);
        assert_ptr_equal(d[0].agent, order[i]->agent);
        last = order[i];
    }
    struct hub_node *on[] = {nodes[0]};
    cluster_free(s, nodes, 1, (struct hub_sched_req *)last, on, 1);
}

/* A big agent that cannot fit yet does not hold up small ones behind it; once passed over
 * HUB_SCHED_STARVE_PASSES times, room is held for it, and it runs as soon as the small turns
 * already on the held node end. Turns end oldest first here, so that is within STARVE_PASSES
 * + (slots in the cluster) releases, however many small agents keep arriving. */
static void test_big_waiter_not_starved(void **state)
{
    (void)state;
    uint32_t caps[] = {4, 4};
    struct hub_node *nodes[2];
    struct hub_sched *s = plain_cluster("spread", caps, 2, nodes);
    enum { NSMALL = 64 };
    static char small_agents[NSMALL];
    struct hub_sched_req small[NSMALL], big = req_for(7, 0, 4);
    struct hub_node *on[NSMALL] = {0};
    bool queued[NSMALL] = {0};
    size_t running[1024], head = 0, tail = 0, next = 0; /* running smalls, oldest first */
    for (size_t i = 0; i < NSMALL; i++)
        hub_sched_req_init(&small[i], (struct hub_agent *)&small_agents[i], "small", "mock",
                           echo_tools, 1);
    for (; next < 8; next++) { /* both nodes full */
        on[next] = hub_sched_place_or_queue(s, &small[next]);
        running[tail++] = next;
    }
    assert_null(hub_sched_place_or_queue(s, &big));
    char why[256];
    hub_sched_explain(s, &big, why, sizeof(why));
    assert_string_equal(why, "waiting for room on the 2 nodes that can run it");
    /* A stream: each step the oldest small turn ends and a new small agent arrives. */
    struct hub_node *big_on = NULL;
    bool held_seen = false;
    size_t steps = 0;
    while (!big_on && steps < 200) {
        size_t j = running[head++];
        struct hub_sched_decision d[4];
        size_t k = hub_sched_release(s, on[j], &small[j], d, 4);
        on[j] = NULL;
        steps++;
        for (size_t i = 0; i < k; i++) {
            if (d[i].agent == big.agent) {
                big_on = d[i].node;
                continue;
            }
            size_t w = (size_t)((char *)d[i].agent - small_agents);
            on[w] = d[i].node;
            queued[w] = false;
            running[tail++] = w;
        }
        size_t w = next++ % NSMALL;
        if (on[w] || queued[w])
            continue;
        on[w] = hub_sched_place_or_queue(s, &small[w]);
        queued[w] = !on[w];
        if (on[w])
            running[tail++] = w;
        hub_sched_explain(s, &big, why, sizeof(why));
        held_seen |= strstr(why, "room held for it on node") != NULL;
    }
    if (!big_on || steps > HUB_SCHED_STARVE_PASSES + 8)
        FAIL("the big agent was placed after %zu releases (bound %d)", steps,
             HUB_SCHED_STARVE_PASSES + 8);
    assert_true(held_seen);
    struct hub_sched_node_info info;
    hub_sched_node_info(s, big_on, &info);
    assert_false(info.held); /* the hold ended with its placement */
    assert_int_equal(info.reserved.slots, 4);
    hub_sched_release(s, big_on, &big, NULL, 0); /* any decisions: the queue is dropped below */
    hub_sched_close(s);
    cluster_free(s, nodes, 2, small, on, NSMALL);
}

/* --- cordons --------------------------------------------------------------------------------- */

/* A cordoned node is never chosen; its turns stay; an agent only it serves waits (it is not
 * refused), with the reason; uncordoning and draining places it. */
static void test_cordon(void **state)
{
    (void)state;
    uint32_t caps[] = {2, 2};
    struct hub_node *nodes[2];
    struct hub_sched *s = plain_cluster("round-robin", caps, 2, nodes);
    struct hub_sched_req a = req_for(0, 0, 1), b = req_for(1, 0, 1), c = req_for(2, 0, 1);
    assert_ptr_equal(hub_sched_place_or_queue(s, &a), nodes[0]);
    assert_int_equal(hub_sched_cordon(s, "n0", HUB_SCHED_CORDON), 0);
    assert_int_equal(hub_sched_cordon(s, "n0", HUB_SCHED_CORDON), 0); /* idempotent */
    assert_int_equal(hub_sched_cordon(s, "nope", HUB_SCHED_CORDON), -1);
    struct hub_sched_node_info info;
    hub_sched_node_info(s, nodes[0], &info);
    assert_true(info.cordoned);
    assert_int_equal(info.reserved.slots, 1); /* its turn stays */
    assert_ptr_equal(hub_sched_place_or_queue(s, &b), nodes[1]);
    assert_int_equal(hub_sched_cordon(s, "n1", HUB_SCHED_CORDON), 0);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_sched_check(s, &c, &err), 0); /* waits: cordons end */
    assert_null(hub_sched_place_or_queue(s, &c));
    char why[200];
    hub_sched_explain(s, &c, why, sizeof(why));
    assert_string_equal(why, "waiting: the nodes that can run it are cordoned");
    assert_int_equal(hub_sched_cordon(s, "n1", HUB_SCHED_UNCORDON), 0);
    struct hub_sched_decision d[2];
    assert_int_equal(hub_sched_drain(s, d, 2), 1);
    assert_ptr_equal(d[0].agent, c.agent);
    assert_ptr_equal(d[0].node, nodes[1]);
    struct hub_sched_req held[] = {a, b, c};
    struct hub_node *on[] = {nodes[0], nodes[1], nodes[1]};
    cluster_free(s, nodes, 2, held, on, 3);
}

/* --- anti-affinity --------------------------------------------------------------------------- */

/* Agents of one team that list "team" as anti-affine take different nodes; a third waits with
 * the reason, and it works both ways: an agent of that team that lists nothing still may not
 * join one that does. Other teams are not affected. */
static void test_anti_affinity(void **state)
{
    (void)state;
    uint32_t caps[] = {4, 4};
    struct hub_node *nodes[2];
    struct hub_sched *s = plain_cluster("binpack", caps, 2, nodes);
    struct hub_sched_label team_a = {"team", "a"}, team_b = {"team", "b"};
    struct hub_sched_req r[5];
    for (int i = 0; i < 5; i++) {
        r[i] = req_for(i, 0, 1);
        r[i].labels = i == 4 ? &team_b : &team_a;
        r[i].nlabels = 1;
        if (i < 3 || i == 4) {
            r[i].anti = r[i].labels;
            r[i].nanti = 1;
        }
    }
    assert_ptr_equal(hub_sched_place_or_queue(s, &r[0]), nodes[0]);
    assert_ptr_equal(hub_sched_place_or_queue(s, &r[1]), nodes[1]); /* binpack would say n0 */
    assert_null(hub_sched_place_or_queue(s, &r[2]));
    char why[200];
    hub_sched_explain(s, &r[2], why, sizeof(why));
    assert_string_equal(why, "waiting: the 2 nodes with room for it run an agent with the same "
                             "'team' label (anti-affinity)");
    assert_null(hub_sched_try_reserve(s, &r[3]));                   /* team=a, lists nothing */
    assert_ptr_equal(hub_sched_place_or_queue(s, &r[4]), nodes[0]); /* team=b: anywhere */
    struct hub_sched_decision d[2];
    assert_int_equal(hub_sched_release(s, nodes[0], &r[0], d, 2), 1);
    assert_ptr_equal(d[0].agent, r[2].agent);
    assert_ptr_equal(d[0].node, nodes[0]);
    struct hub_node *on[] = {NULL, nodes[1], nodes[0], NULL, nodes[0]};
    cluster_free(s, nodes, 2, r, on, 5);
}

/* --- requests from a spec -------------------------------------------------------------------- */

static void test_req_from_spec(void **state)
{
    (void)state;
    Agentry__V1__AgentSpec spec = AGENTRY__V1__AGENT_SPEC__INIT;
    Agentry__V1__Resources res = AGENTRY__V1__RESOURCES__INIT;
    res.cpu_milli = 1500;
    res.memory_bytes = 1 << 30;
    spec.resources = &res;
    Agentry__V1__AgentSpec__LabelsEntry l[3] = {AGENTRY__V1__AGENT_SPEC__LABELS_ENTRY__INIT,
                                                AGENTRY__V1__AGENT_SPEC__LABELS_ENTRY__INIT,
                                                AGENTRY__V1__AGENT_SPEC__LABELS_ENTRY__INIT};
    l[0].key = "team", l[0].value = "old";
    l[1].key = "tier", l[1].value = "web";
    l[2].key = "team", l[2].value = "new"; /* the last value of a key counts */
    Agentry__V1__AgentSpec__LabelsEntry *lp[] = {&l[0], &l[1], &l[2]};
    spec.labels = lp;
    spec.n_labels = 3;
    Agentry__V1__AgentSpec__NodeSelectorEntry sel =
        AGENTRY__V1__AGENT_SPEC__NODE_SELECTOR_ENTRY__INIT;
    sel.key = "gpu", sel.value = "true";
    Agentry__V1__AgentSpec__NodeSelectorEntry *sp[] = {&sel};
    spec.node_selector = sp;
    spec.n_node_selector = 1;
    char *anti[] = {"team"};
    spec.anti_affinity = anti;
    spec.n_anti_affinity = 1;
    spec.priority = -7;
    spec.scheduler = "spread";
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct hub_sched_req r;
    hub_sched_req_from_spec(&r, NULL, NULL, &spec, &ar);
    assert_string_equal(r.model, "mock");
    assert_int_equal(r.need.slots, 1);
    assert_int_equal(r.need.cpu_milli, 1500);
    assert_int_equal(r.need.mem_bytes, 1 << 30);
    assert_int_equal(r.nselector, 1);
    assert_string_equal(r.selector[0].key, "gpu");
    assert_int_equal(r.nlabels, 2);
    assert_string_equal(r.labels[0].key, "tier");
    assert_string_equal(r.labels[1].value, "new");
    assert_int_equal(r.nanti, 1);
    assert_string_equal(r.anti[0].value, "new");
    assert_int_equal(r.priority, -7);
    assert_ptr_equal(r.strategy, hub_sched_find("spread"));
    ag_arena_release(&ar);
}

/* An agent's own strategy overrides the hub's; the table lists the three, by name. */
static void test_strategy_override(void **state)
{
    (void)state;
    char names[128];
    hub_sched_names(names, sizeof(names));
    assert_string_equal(names, "round-robin, binpack, spread");
    uint32_t caps[] = {4, 4, 4};
    struct hub_node *nodes[3];
    struct hub_sched *s = plain_cluster("round-robin", caps, 3, nodes);
    struct hub_sched_req r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = req_for(i, 0, 1);
        r[i].strategy = i ? hub_sched_find("binpack") : NULL;
    }
    assert_ptr_equal(hub_sched_try_reserve(s, &r[0]), nodes[0]); /* round-robin: the first */
    for (int i = 1; i < 4; i++)                                  /* binpack: onto the node in use */
        assert_ptr_equal(hub_sched_try_reserve(s, &r[i]), nodes[0]);
    struct hub_node *on[] = {nodes[0], nodes[0], nodes[0], nodes[0]};
    cluster_free(s, nodes, 3, r, on, 4);
}

/* Spawn's refusal of what no node could ever hold names the numbers on both sides. */
static void test_check_names_numbers(void **state)
{
    (void)state;
    struct sim sm;
    sm.s = hub_sched_new(hub_sched_find("round-robin"));
    struct hub_node *n = sim_node(&sm, 0, 4, 2000, 0, "a", false);
    struct hub_sched_req r = req_for(0, 0, 1);
    r.need.cpu_milli = 3000;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_sched_check(sm.s, &r, &err), -1);
    assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "no connected node has room for 1 slot, 3000 millicores in all "
                                 "(the most a node has: 4 slots, 2000 millicores, unlimited "
                                 "memory); ask for less (spec.resources) or start a larger node");
    hub_sched_free(sm.s);
    hub_node_free(n);
}

/* --- benchmark ------------------------------------------------------------------------------- */

#define BENCH_NODES 1000

/* The strategies as they were before the utilisation order: one scan over every node per
 * decision, computing utilisation, the full fit test only for a node that would beat the best.
 * Kept here as the "before" of the benchmark. */
static struct hub_node *scan_place(const struct hub_sched_view *v, const struct hub_sched_req *req,
                                   bool most)
{
    struct hub_node *best = NULL;
    double best_u = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (!hub_node_has_room(v->nodes[i], &req->need))
            continue;
        double u = hub_node_utilisation(v->nodes[i]);
        if ((!best || (most ? u > best_u : u < best_u)) && hub_node_fits(v->nodes[i], req)) {
            best = v->nodes[i];
            best_u = u;
        }
    }
    return best;
}

static struct hub_node *scan_binpack(void *state, const struct hub_sched_view *v,
                                     const struct hub_sched_req *req)
{
    (void)state;
    return scan_place(v, req, true);
}

static struct hub_node *scan_spread(void *state, const struct hub_sched_view *v,
                                    const struct hub_sched_req *req)
{
    (void)state;
    return scan_place(v, req, false);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Placements per second with BENCH_NODES nodes (64 slots, 64 cores, 256 GiB each, 4 zones) at
 * about half load: each step places one turn (500m, 1 GiB, a zone selector on one in four) and
 * releases the oldest. */
static void bench(const struct hub_sched_strategy *strategy)
{
    enum { LIVE = BENCH_NODES * 32, STEPS = 400000 };
    struct sim sm;
    sm.s = hub_sched_new(strategy);
    static struct hub_node *nodes[BENCH_NODES];
    for (size_t i = 0; i < BENCH_NODES; i++)
        nodes[i] = sim_node(&sm, i, 64, 64000, UINT64_C(256) << 30, zones[i % 3], i % 2);
    static struct hub_sched_req reqs[LIVE];
    static struct hub_node *on[LIVE];
    struct hub_sched_label sel = {"zone", "b"};
    for (size_t i = 0; i < LIVE; i++) {
        hub_sched_req_init(&reqs[i], NULL, NULL, "mock", echo_tools, 1);
        reqs[i].need.cpu_milli = 500;
        reqs[i].need.mem_bytes = UINT64_C(1) << 30;
        if (i % 4 == 0) {
            reqs[i].selector = &sel;
            reqs[i].nselector = 1;
        }
        on[i] = hub_sched_try_reserve(sm.s, &reqs[i]);
    }
    double t0 = now_s();
    size_t placed = 0;
    for (size_t step = 0; step < STEPS; step++) {
        size_t i = step % LIVE;
        if (on[i])
            hub_sched_release(sm.s, on[i], &reqs[i], NULL, 0);
        on[i] = hub_sched_try_reserve(sm.s, &reqs[i]);
        placed += on[i] != NULL;
    }
    double dt = now_s() - t0;
    printf("%-20s nodes=%d placements=%zu seconds=%.3f placements/s=%.0f us/placement=%.2f\n",
           strategy->name, BENCH_NODES, placed, dt, (double)placed / dt, dt * 1e6 / (double)placed);
    for (size_t i = 0; i < LIVE; i++)
        if (on[i])
            hub_sched_release(sm.s, on[i], &reqs[i], NULL, 0);
    hub_sched_free(sm.s);
    for (size_t i = 0; i < BENCH_NODES; i++)
        hub_node_free(nodes[i]);
}

int main(int argc, char **argv)
{
    ag_log_init("test", AG_LOG_ERROR);
    const char *env = getenv("AGENTRY_TEST_SEED");
    if (env && *env)
        seed = strtoull(env, NULL, 10);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        static const struct hub_sched_strategy before[] = {
            {"binpack (scan)", scan_binpack, NULL, NULL},
            {"spread (scan)", scan_spread, NULL, NULL}};
        for (size_t i = 0; i < 2; i++)
            bench(&before[i]);
        for (const struct hub_sched_strategy *st = hub_sched_strategies; st->name; st++)
            bench(st);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_placements),
        cmocka_unit_test(test_binpack_fewest_nodes),
        cmocka_unit_test(test_spread_even),
        cmocka_unit_test(test_round_robin_even),
        cmocka_unit_test(test_priority_then_fifo),
        cmocka_unit_test(test_big_waiter_not_starved),
        cmocka_unit_test(test_cordon),
        cmocka_unit_test(test_anti_affinity),
        cmocka_unit_test(test_req_from_spec),
        cmocka_unit_test(test_strategy_override),
        cmocka_unit_test(test_check_names_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
