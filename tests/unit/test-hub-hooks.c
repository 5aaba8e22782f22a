/* tests/unit/test-hub-hooks.c - observers of what the hub committed (hub/hooks.c).
 *
 * The list itself: hooks run in the order added, only for the kinds they asked for, and a full
 * list is refused with a message. Then through an embedded hub (SQLite in a mkdtemp directory,
 * no node, so a spawned agent stays pending): a hook registered before hub_start sees the
 * Spawn's two events and the agent's first state, and a kill's end of the turn, before the
 * client has its answer (the actor runs hooks before replying), so no wait is needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/rpc/client.h"
#include "hub/hooks.h"
#include "hub/hub.h"
#include "hub/hub_internal.h"

#define CALL_MS 10000
#define MAX_SEEN 16

/* What the hooks saw: copied, since the event's pointers live only during the call. */
struct seen {
    pthread_mutex_t lock;
    size_t n;
    struct {
        int tag; /* which hook */
        enum hub_hook_kind kind;
        char agent_id[64];
        size_t nevents;
        int old_state, state;
        bool turn_ended;
    } ev[MAX_SEEN];
};

static struct seen *seen_new(void)
{
    struct seen *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

static void seen_free(struct seen *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void record(struct seen *s, int tag, const struct hub_hook_event *ev)
{
    pthread_mutex_lock(&s->lock);
    if (s->n < MAX_SEEN) {
        s->ev[s->n].tag = tag;
        s->ev[s->n].kind = ev->kind;
        snprintf(s->ev[s->n].agent_id, sizeof(s->ev[s->n].agent_id), "%s",
                 ev->agent_id ? ev->agent_id : "");
        s->ev[s->n].nevents = ev->nevents;
        s->ev[s->n].old_state = ev->old_state;
        s->ev[s->n].state = ev->state;
        s->ev[s->n].turn_ended = ev->turn_ended;
        s->n++;
    }
    pthread_mutex_unlock(&s->lock);
}

static void hook_a(void *arg, const struct hub_hook_event *ev)
{
    record(arg, 1, ev);
}

static void hook_b(void *arg, const struct hub_hook_event *ev)
{
    record(arg, 2, ev);
}

/* --- the list -------------------------------------------------------------------------------- */

static void test_order_and_kinds(void **state)
{
    (void)state;
    struct seen *s = seen_new();
    struct hub_hooks hk;
    hub_hooks_init(&hk);
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(hub_hooks_add(&hk, HUB_HOOK_ALL, hook_a, s, &err), 0);
    assert_int_equal(hub_hooks_add(&hk, HUB_HOOK_NODE_LOST, hook_b, s, &err), 0);
    struct hub_hook_event joined = {.kind = HUB_HOOK_NODE_JOINED, .node_id = "n1"};
    struct hub_hook_event lost = {.kind = HUB_HOOK_NODE_LOST, .node_id = "n1", .reason = "x"};
    hub_hooks_run(&hk, &joined);
    hub_hooks_run(&hk, &lost);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->ev[0].tag, 1); /* joined: only the hook that wants every kind */
    assert_int_equal(s->ev[0].kind, HUB_HOOK_NODE_JOINED);
    assert_int_equal(s->ev[1].tag, 1); /* lost: both, in the order they were added */
    assert_int_equal(s->ev[2].tag, 2);
    assert_int_equal(s->ev[2].kind, HUB_HOOK_NODE_LOST);
    seen_free(s);
}

static void test_full_list_refused(void **state)
{
    (void)state;
    struct hub_hooks hk;
    hub_hooks_init(&hk);
    struct ag_err err = AG_ERR_INIT;
    for (int i = 0; i < HUB_HOOKS_MAX; i++)
        assert_int_equal(hub_hooks_add(&hk, HUB_HOOK_ALL, hook_a, NULL, &err), 0);
    assert_int_equal(hub_hooks_add(&hk, HUB_HOOK_ALL, hook_a, NULL, &err), -1);
    assert_int_equal(err.code, AG_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "HUB_HOOKS_MAX"));
}

/* --- through the actor ----------------------------------------------------------------------- */

static void test_actor_runs_hooks(void **state)
{
    (void)state;
    char dir[64], url[128];
    snprintf(dir, sizeof(dir), "/tmp/test-hub-hooks-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/h.db", dir);
    struct ag_err err = AG_ERR_INIT;
    struct hub_opts o = {.listen = "127.0.0.1:0", .store_url = url, .threads = 2};
    struct hub *h = hub_new(&o, &err);
    assert_non_null(h);
    struct seen *s = seen_new();
    assert_int_equal(
        hub_hooks_add(&h->hooks, HUB_HOOK_EVENTS_STORED | HUB_HOOK_AGENT_CHANGED, hook_a, s, &err),
        0);
    hub_start(h);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", hub_port(h));
    struct rpc_channel *ch = rpc_channel_new(target, NULL, &err);
    assert_non_null(ch);
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);

    Agentry__V1__SpawnRequest sp = AGENTRY__V1__SPAWN_REQUEST__INIT;
    sp.input = "go";
    Agentry__V1__SpawnResponse *sr = NULL;
    assert_int_equal(rpc_unary(ch, "/agentry.v1.AgentHub/Spawn", &sp.base,
                               &agentry__v1__spawn_response__descriptor, &ar, (void **)&sr, CALL_MS,
                               &err),
                     0);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->n, 2);
    assert_int_equal(s->ev[0].kind, HUB_HOOK_EVENTS_STORED);
    assert_string_equal(s->ev[0].agent_id, sr->agent_id);
    assert_int_equal(s->ev[0].nevents, 2); /* SPAWNED, INPUT */
    assert_int_equal(s->ev[1].kind, HUB_HOOK_AGENT_CHANGED);
    assert_int_equal(s->ev[1].old_state, AGENTRY__V1__AGENT_STATE__AGENT_STATE_UNSPECIFIED);
    assert_int_equal(s->ev[1].state, AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING);
    assert_false(s->ev[1].turn_ended);
    pthread_mutex_unlock(&s->lock);

    Agentry__V1__KillAgentRequest kr = AGENTRY__V1__KILL_AGENT_REQUEST__INIT;
    kr.agent_id = sr->agent_id;
    Agentry__V1__KillAgentResponse *kres = NULL;
    assert_int_equal(rpc_unary(ch, "/agentry.v1.AgentHub/KillAgent", &kr.base,
                               &agentry__v1__kill_agent_response__descriptor, &ar, (void **)&kres,
                               CALL_MS, &err),
                     0);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->n, 4);
    assert_int_equal(s->ev[2].kind, HUB_HOOK_EVENTS_STORED);
    assert_int_equal(s->ev[2].nevents, 1); /* KILLED */
    assert_int_equal(s->ev[3].kind, HUB_HOOK_AGENT_CHANGED);
    assert_int_equal(s->ev[3].old_state, AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING);
    assert_int_equal(s->ev[3].state, AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED);
    assert_true(s->ev[3].turn_ended);
    pthread_mutex_unlock(&s->lock);

    ag_arena_release(&ar);
    rpc_channel_free(ch);
    hub_stop(h);
    hub_free(h);
    seen_free(s);
    static const char *const files[] = {"h.db", "h.db-wal", "h.db-shm", "h.db-journal"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_kinds),
        cmocka_unit_test(test_full_list_refused),
        cmocka_unit_test(test_actor_runs_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
