/* cmd/agentry/cmd_node_admin.c - 'agentry node cordon|uncordon|drain NODE_ID': take a node out
 * of placement, put it back, or move its turns away (CordonNode, DrainNode).
 *
 * drain asks the hub to move every turn off the node, each at its next step boundary, then
 * follows ListNodes until the node runs none (printing each change of count), as kubectl drain
 * does; --timeout bounds the wait (then exit 1, the node stays cordoned and its turns keep
 * moving), --force takes the turns away at once instead (a tool call under way may then end
 * "outcome unknown"), --no-wait returns after the request. The wait polls: the hub has no
 * stream of node changes yet. Every DRAIN_RESEND_POLLS polls without progress it asks again
 * (DrainNode is idempotent), so a turn that was being placed on the node when the first request
 * ran is asked to move too. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/clock.h"

#define DRAIN_POLL_MS 200
#define DRAIN_RESEND_POLLS 10

static const struct ag_cmd_help cordon_help = {
    "agentry node cordon [flags] NODE_ID",
    "Place no new turns on the node; the turns it runs go on. The hub remembers it by node id "
    "(a reconnect stays cordoned) until 'agentry node uncordon' or the hub's restart.",
    "agentry node cordon node-3",
};

static const struct ag_cmd_help uncordon_help = {
    "agentry node uncordon [flags] NODE_ID",
    "Let the hub place turns on the node again.",
    "agentry node uncordon node-3",
};

static const struct ag_cmd_help drain_help = {
    "agentry node drain [flags] NODE_ID",
    "Cordon the node and move every turn it runs to other nodes, each at its next step boundary "
    "(the model or tool call under way finishes and is stored first; nothing runs twice). Waits "
    "until the node runs no turn, printing progress.",
    "agentry node drain node-3\nagentry node drain --timeout 2m node-3 && systemctl stop "
    "agent-node\nagentry node drain --force node-3",
};

static int find_node(struct cli_client *c, const char *id, Agentry__V1__Node **out,
                     struct ag_err *err)
{
    Agentry__V1__ListNodesRequest req = AGENTRY__V1__LIST_NODES_REQUEST__INIT;
    Agentry__V1__ListNodesResponse *resp = NULL;
    if (cli_client_call(c, CLI_HUB_METHOD("ListNodes"), &req.base,
                        &agentry__v1__list_nodes_response__descriptor, (void **)&resp, err) < 0)
        return -1;
    *out = NULL;
    for (size_t i = 0; i < resp->n_nodes; i++)
        if (strcmp(resp->nodes[i]->node_id, id) == 0)
            *out = resp->nodes[i];
    return 0;
}

static void print_node(const struct cli_client *c, const Agentry__V1__Node *n)
{
    if (cli_client_machine(c))
        cli_client_emit(c, cli_print_node_json(n), NULL);
    else
        printf("node %s is %s (%u of %u slots running)\n", n->node_id, n->state, n->running,
               n->capacity);
}

static int cordon(int argc, char **argv, bool on)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    struct ag_flag flags[CLI_MAX_FLAGS];
    size_t nflags = 0, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    const char *cmd = on ? "node cordon" : "node uncordon";
    char *id = NULL;
    int rc;
    if (!cli_client_parse(&c, cmd, on ? &cordon_help : &uncordon_help, flags, nflags, argc, argv,
                          &id, 1, &npos, &rc) ||
        !cli_need_args(cmd, &id, npos, 1, "NODE_ID", &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__CordonNodeRequest req = AGENTRY__V1__CORDON_NODE_REQUEST__INIT;
    req.node_id = id;
    req.cordon = on;
    Agentry__V1__CordonNodeResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("CordonNode"), &req.base,
                        &agentry__v1__cordon_node_response__descriptor, (void **)&resp, &err) < 0)
        rc = cli_fail(&err);
    else if (resp->node)
        print_node(&c, resp->node);
    cli_client_close(&c);
    return rc;
}

/* Follow the node until it runs nothing, or it left, or the deadline. */
static int drain_wait(struct cli_client *c, const Agentry__V1__DrainNodeRequest *req,
                      int64_t timeout_ms, struct ag_err *err)
{
    const char *id = req->node_id;
    int64_t deadline = timeout_ms > 0 ? ag_now_mono_ms() + timeout_ms : 0;
    uint32_t last = UINT32_MAX;
    for (unsigned still = 0;; still++) {
        /* Each poll's answers live until the next: a drain of hours must not grow memory. */
        ag_arena_reset(&c->arena);
        Agentry__V1__Node *n = NULL;
        if (find_node(c, id, &n, err) != 0)
            return -1;
        if (!n) {
            fprintf(stderr, "node %s left the hub\n", id);
            return 0;
        }
        if (n->running == 0)
            return 0;
        if (n->running != last && !cli_client_machine(c))
            fprintf(stderr, "waiting for %u turn%s to move off node %s\n", n->running,
                    n->running == 1 ? "" : "s", id);
        if (n->running != last)
            still = 0;
        last = n->running;
        Agentry__V1__DrainNodeResponse *again = NULL;
        if (still == DRAIN_RESEND_POLLS &&
            cli_client_call(c, CLI_HUB_METHOD("DrainNode"), &req->base,
                            &agentry__v1__drain_node_response__descriptor, (void **)&again,
                            err) < 0)
            return -1;
        still %= DRAIN_RESEND_POLLS;
        if (deadline && ag_now_mono_ms() >= deadline)
            return ag_err_set(err, AG_DEADLINE_EXCEEDED,
                              "node %s still runs %u turn%s after %" PRId64
                              " ms; it stays cordoned and they keep moving (or use --force)",
                              id, n->running, n->running == 1 ? "" : "s", timeout_ms);
        struct timespec ts = {0, DRAIN_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int drain(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, CLI_TIMEOUT_DEFAULT_MS);
    bool force = false, no_wait = false;
    int64_t timeout = 0;
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"force", 0, AG_FLAG_BOOL, &force, NULL,
         "take the turns away at once, as if the node were lost (a tool call under way may end "
         "'outcome unknown')",
         0, 0},
        {"no-wait", 0, AG_FLAG_BOOL, &no_wait, NULL, "return once the hub took the request", 0, 0},
        {"drain-timeout", 0, AG_FLAG_DURATION, &timeout, "DUR",
         "give up waiting after DUR (exit 1; the node stays cordoned); default: wait as long as "
         "it takes",
         0, 0},
    };
    size_t nflags = 3, npos;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    char *id = NULL;
    int rc;
    if (!cli_client_parse(&c, "node drain", &drain_help, flags, nflags, argc, argv, &id, 1, &npos,
                          &rc) ||
        !cli_need_args("node drain", &id, npos, 1, "NODE_ID", &rc))
        return rc;
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__DrainNodeRequest req = AGENTRY__V1__DRAIN_NODE_REQUEST__INIT;
    req.node_id = id;
    req.force = force;
    Agentry__V1__DrainNodeResponse *resp = NULL;
    rc = CLI_OK;
    if (cli_client_call(&c, CLI_HUB_METHOD("DrainNode"), &req.base,
                        &agentry__v1__drain_node_response__descriptor, (void **)&resp, &err) < 0) {
        rc = cli_fail(&err);
    } else {
        if (!cli_client_machine(&c))
            printf("node %s cordoned; %u turn%s %s\n", id, resp->moving,
                   resp->moving == 1 ? "" : "s",
                   force ? "taken away" : "moving at their next step boundary");
        if (!no_wait && resp->moving && drain_wait(&c, &req, timeout, &err) != 0)
            rc = cli_fail(&err);
        else if (!no_wait && !cli_client_machine(&c))
            printf("node %s drained\n", id);
        Agentry__V1__Node *n = NULL;
        if (rc == CLI_OK && cli_client_machine(&c) && find_node(&c, id, &n, &err) == 0 && n)
            cli_client_emit(&c, cli_print_node_json(n), NULL);
    }
    cli_client_close(&c);
    return rc;
}

int cli_node_admin(const char *sub, int argc, char **argv)
{
    if (strcmp(sub, "cordon") == 0)
        return cordon(argc, argv, true);
    if (strcmp(sub, "uncordon") == 0)
        return cordon(argc, argv, false);
    if (strcmp(sub, "drain") == 0)
        return drain(argc, argv);
    return -1;
}
