/* cmd/agentry/cmd_node.c - `agentry node join` (alias agent-node join): run a worker node until
 * SIGTERM/SIGINT. A small thread waits for the signal and asks the node to stop; the node says
 * goodbye to the hub (half-close), cancels its runs and returns. SIGHUP (a closed terminal, or an
 * operator's habit of "reload") is logged and ignored: the node reloads nothing (a changed
 * --policy file takes a restart), and dying on it would interrupt every agent it runs.
 *
 * --policy FILE (worker/policy.h) is read before the node starts, so that a bad file stops it with
 * one line naming the file, the line and the problem; the policy lives until the node is freed.
 *
 * With --etcd the node also keeps <prefix>nodes/<id> under a lease and, without --hub, dials the
 * hub that <prefix>leader names (worker/registry.h; docs/operations.md "Nodes through etcd").
 * $AGENTRY_HUB is then not used: etcd says where the hub is.
 *
 * --health-listen serves grpc.health.v1 in plaintext (common/rpc/health.h), bound before the node
 * starts: 'liveness' SERVING while the process runs; readiness ('' and agentry.v1.Node) SERVING
 * while registered with a hub and not draining (worker/conn.c keeps it). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/config.h"
#include "cmd/agentry/tls_flags.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/rpc/health.h"
#include "common/xalloc.h"
#include "worker/node.h"
#include "worker/policy.h"

struct sigctx {
    sigset_t set;
    struct wk_node *node;
};

static void *signal_thread(void *arg)
{
    struct sigctx *sc = arg;
    int sig = 0;
    while (sigwait(&sc->set, &sig) == 0 && sig == SIGHUP)
        ag_log_info("node.signalled", "signal=SIGHUP action=ignored");
    if (sig == SIGUSR1) /* our own wake-up at exit */
        return NULL;
    ag_log_info("node.signalled", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    wk_node_stop(sc->node);
    return NULL;
}

/* What the flags' own parsing does not check, before anything starts: the hub address, each
 * label, the handshake timeout. A bad one is a usage error (exit 2). */
static int check_values(const char *hub, const struct ag_strlist *labels, int64_t handshake_ms,
                        struct ag_err *err)
{
    if (hub && cli_check_hub(hub, err) < 0)
        return -1;
    for (size_t i = 0; i < labels->n; i++) {
        const char *eq = strchr(labels->items[i], '=');
        if (!eq || eq == labels->items[i])
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "invalid label '%s' for --labels: want key=value with a non-empty "
                              "key",
                              labels->items[i]);
    }
    if (handshake_ms <= 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid value for --handshake-timeout: want more than 0");
    return 0;
}

static int node_join(int argc, char **argv)
{
    const char *hub = NULL, *node_id = NULL, *level = "info", *address = NULL;
    const char *log_format = "text";
    const char *etcd = NULL, *etcd_ca = NULL, *etcd_cert = NULL, *etcd_key = NULL;
    const char *etcd_prefix = "/agentry/";
    int64_t capacity = 64, threads = 2, handshake = 5000, keep_mib = 256, lease_ttl = 10000;
    int64_t cpu = 0, mem = 0, max_iter = 10, turn_timeout = 0;
    const char *workspace_root = NULL, *sandbox = NULL, *sandbox_user = NULL, *policy_file = NULL;
    const char *metrics_listen = NULL, *health_listen = NULL;
    char *default_root = NULL;            /* owned */
    char *default_id = NULL;              /* owned */
    struct rpc_health *health = NULL;     /* owned */
    struct rpc_server *health_srv = NULL; /* owned: --health-listen */
    struct wk_policy *policy = NULL;      /* owned; outlives the node */
    struct ag_strlist labels = {0}, model_opts = {0}, tool_opts = {0}, prices = {0};
    struct cli_tls tls;
    struct ag_flag flags[40] = {
        {"hub", 0, AG_FLAG_STR, &hub, "ADDR",
         "hub address (default: the leader etcd names with --etcd, else $AGENTRY_HUB or 127.0.0.1:7070)",
         0, 0},
        {"capacity", 'c', AG_FLAG_INT, &capacity, "N", "agent turns run at once (default 64)", 1,
         100000},
        {"labels", 0, AG_FLAG_LIST, &labels, "K=V,...", "labels for scheduling and display", 0, 0},
        {"cpu", 0, AG_FLAG_CPU, &cpu, "CPU",
         "CPU offered to turns, as 2000m or 2 (default unknown: not limited)", 0, 1000000},
        {"memory", 0, AG_FLAG_BYTES, &mem, "BYTES",
         "memory offered to turns, as 4Gi or 512Mi (default unknown: not limited)", 0,
         INT64_C(16) << 40},
        {"node-id", 0, AG_FLAG_STR, &node_id, "ID",
         "unique node id (default: the node named by the TLS certificate, else <hostname>-<pid>)",
         0, 0},
        {"threads", 0, AG_FLAG_INT, &threads, "N", "agent-loop threads (default 2)", 1, 256},
        {"handshake-timeout", 0, AG_FLAG_DURATION, &handshake, "DUR",
         "give up on a hub that does not answer Register within DUR, and retry (default 5s)", 0, 0},
        {"model-opt", 0, AG_FLAG_LIST, &model_opts, "PROVIDER.KEY=VAL",
         "a model provider option, repeatable: mock.latency=DUR (added to every reply), PROVIDER.timeout=DUR (each call's deadline; default none)",
         0, 0},
        {"tool-opt", 0, AG_FLAG_LIST, &tool_opts, "TOOL.KEY=VAL",
         "a tool option, repeatable: echo.latency=DUR (delays every output), append.path=FILE (the file the append tool writes), TOOL.timeout=DUR (each call's deadline; default none)",
         0, 0},
        {"max-iterations", 0, AG_FLAG_INT, &max_iter, "N",
         "model calls per turn for agents whose spec gives 0 (default 10)", 1, 1000},
        {"turn-timeout", 0, AG_FLAG_DURATION, &turn_timeout, "DUR",
         "wall-clock limit of a turn for agents whose spec sets none: the turn then yields (default none)",
         0, 0},
        {"price", 0, AG_FLAG_LIST, &prices, "MODEL=IN:OUT",
         "what a model costs, repeatable: PROVIDER[/MODEL]=IN:OUT in US dollars per million input and output tokens, e.g. openai/gpt-4o=2.5:10 (for spec.limits.max_cost_usd; unpriced models cost 0)",
         0, 0},
        {"workspace-root", 0, AG_FLAG_STR, &workspace_root, "DIR",
         "where agents' workspaces live, one directory per agent, for the file tools and shell; one node per root (default $TMPDIR/agentry-workspaces-<uid>/<node id>)",
         0, 0},
        {"sandbox", 0, AG_FLAG_STR, &sandbox, "MODE",
         "where tools run programs: bwrap (default: bubblewrap as --sandbox-user, no network, read-only system), runsc (gVisor) or unsafe (unconfined, the node's own rights); docs/sandbox.md",
         0, 0},
        {"sandbox-user", 0, AG_FLAG_STR, &sandbox_user, "USER",
         "the unprivileged host user a root node's bwrap sandbox runs commands as (default agentry-sbx, made by make deps)",
         0, 0},
        {"policy", 0, AG_FLAG_STR, &policy_file, "FILE",
         "the node's permission policy (YAML: rules of allow, ask or deny per tool and subject, and a default), a ceiling over every agent spec's permissions; docs/permissions.md (default: none, specs decide)",
         0, 0},
        {"keep-state-mib", 0, AG_FLAG_INT, &keep_mib, "N",
         "MiB of agents' conversations kept between turns, so that an agent's next turn here needs no history from the hub (default 256; 0 keeps none)",
         0, 1 << 20},
        {"log-format", 0, AG_FLAG_STR, &log_format, "FORMAT",
         "text (logfmt) or json (one object per line) (default text)", 0, 0},
        {"log-level", 0, AG_FLAG_STR, &level, "LEVEL", "debug, info, warn or error (default info)",
         0, 0},
        {"address", 0, AG_FLAG_STR, &address, "HOST",
         "where this node runs, as 'agentry nodes' shows it (default: the host name)", 0, 0},
        {"etcd", 0, AG_FLAG_STR, &etcd, "URL[,URL]",
         "register this node in etcd under a lease; without --hub, also find the hub there", 0, 0},
        {"etcd-ca", 0, AG_FLAG_STR, &etcd_ca, "FILE", "CA bundle (PEM) for https etcd URLs", 0, 0},
        {"etcd-cert", 0, AG_FLAG_STR, &etcd_cert, "FILE",
         "client certificate (PEM) for etcd, with --etcd-key", 0, 0},
        {"etcd-key", 0, AG_FLAG_STR, &etcd_key, "FILE", "key (PEM) of --etcd-cert", 0, 0},
        {"etcd-prefix", 0, AG_FLAG_STR, &etcd_prefix, "PREFIX",
         "etcd key prefix, starting and ending with '/' (default /agentry/)", 0, 0},
        {"metrics-listen", 0, AG_FLAG_STR, &metrics_listen, "ADDR",
         "serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9465; no TLS, no auth: see docs/metrics.md) (default: off)",
         0, 0},
        {"health-listen", 0, AG_FLAG_STR, &health_listen, "ADDR",
         "serve the standard gRPC health checking protocol (grpc.health.v1) in plaintext on ADDR (e.g. 0.0.0.0:7071): service 'liveness' for liveness probes, '' or agentry.v1.Node for readiness (SERVING while registered with a hub and not draining); any address, no TLS (see docs/operations.md) (default: off)",
         0, 0},
        {"lease-ttl", 0, AG_FLAG_DURATION, &lease_ttl, "DUR",
         "TTL of the node's etcd lease: its key goes this long after the node stops renewing it (1s to 1h; default 10s)",
         0, 0},
    };
    size_t nflags = 0;
    while (flags[nflags].name)
        nflags++;
    cli_tls_flags(&tls, "node", flags, &nflags, AG_ARRAY_SIZE(flags));
    const struct ag_cmd_help help = {
        "agentry node join [flags]   (or: agent-node join [flags])",
        "Join a hub as a worker node: register, run the agent turns the hub assigns, and\n"
        "reconnect with backoff when the hub goes away. Stops on SIGTERM/SIGINT.\n"
        "\n"
        "Every flag but --hub can also be set by an environment variable: --capacity by "
        "AGENTRY_CAPACITY, and so on; a flag on the command line wins.",
        "agentry node join --hub 127.0.0.1:7070 --capacity 16 --labels zone=a,gpu=false\n"
        "agentry node join --model-opt mock.timeout=30s --tool-opt echo.latency=50ms\n"
        "agentry node join --etcd http://etcd1:2379,http://etcd2:2379 --lease-ttl 10s"};
    struct ag_err err = AG_ERR_INIT;
    size_t npos = 0;
    /* --hub is not read from $AGENTRY_HUB here: cli_default_hub does that, only without --etcd. */
    static const char *const no_env[] = {"hub", NULL};
    const struct ag_flags_env env = {cli_flags_env.prefix, no_env};
    int rc = ag_flags_parse_env("node join", &env, flags, nflags, argc, argv, NULL, 0, &npos, &err);
    if (rc == 0 && !hub && !etcd) /* not for --help: a broken config file must not hide it */
        hub = cli_default_hub();
    if (rc == 0 && cli_config_check(&err) < 0)
        rc = -1;
    struct wk_node_opts o = {.hub = hub,
                             .node_id = node_id,
                             .capacity = (unsigned)capacity,
                             .cpu_milli = (uint32_t)cpu,
                             .mem_bytes = (uint64_t)mem,
                             .labels = (const char *const *)labels.items,
                             .nlabels = labels.n,
                             .threads = (unsigned)threads,
                             .handshake_ms = handshake,
                             .model_opts = (const char *const *)model_opts.items,
                             .nmodel_opts = model_opts.n,
                             .tool_opts = (const char *const *)tool_opts.items,
                             .ntool_opts = tool_opts.n,
                             .keep_bytes = (size_t)keep_mib << 20,
                             .prices = (const char *const *)prices.items,
                             .nprices = prices.n,
                             .default_max_iterations = (uint32_t)max_iter,
                             .default_turn_timeout_ms = turn_timeout,
                             .address = address,
                             .etcd = etcd,
                             .etcd_ca = etcd_ca,
                             .etcd_cert = etcd_cert,
                             .etcd_key = etcd_key,
                             .etcd_prefix = etcd_prefix,
                             .lease_ttl_ms = lease_ttl,
                             .sandbox = sandbox,
                             .sandbox_user = sandbox_user,
                             .metrics_listen = metrics_listen};
    if (rc == 1) {
        ag_flags_print_help(stdout, &help, flags, nflags);
        rc = CLI_OK;
        goto out;
    }
    char cert_id[128];
    if (rc == 0)
        rc = cli_tls_resolve(&tls, "node", &o.tls, &err);
    if (rc == 0 && o.tls && !node_id) { /* the hub accepts only the id the certificate names */
        rc = cli_tls_cert_name(o.tls->cert, "node", cert_id, sizeof(cert_id), &err);
        o.node_id = cert_id;
    }
    if (rc == 0 && !o.node_id) {
        char host[64] = "node";
        gethostname(host, sizeof(host) - 1);
        o.node_id = default_id = ag_xasprintf("%s-%d", host, (int)getpid());
    }
    /* Per user and per node: two users' nodes never share agents' files, and two nodes never
     * share a root (wk_workspace_claim refuses it: each reports its root's workspaces to its
     * hub, which forgets those it does not know). */
    const char *tmp = getenv("TMPDIR");
    if (rc == 0 && !workspace_root)
        default_root = ag_xasprintf("%s/agentry-workspaces-%u/%s", tmp && *tmp ? tmp : "/tmp",
                                    (unsigned)getuid(), o.node_id);
    o.workspace_root = workspace_root ? workspace_root : default_root;
    if (rc == 0)
        rc = check_values(hub, &labels, handshake, &err);
    if (rc == 0)
        rc = wk_node_check_opts(&o, &err);
    if (rc == 0 && policy_file && !(o.policy = policy = wk_policy_load(policy_file, &err)))
        rc = -1;
    if (rc == 0)
        rc = cli_log_start("node", level, log_format, &err);
    if (rc != 0) {
        rc = cli_usage_error(&err);
        goto out;
    }
    if (policy)
        ag_log_info("node.policy_loaded", "file=%s rules=%zu default=%s", ag_log_q(policy_file),
                    policy->nrules, wk_policy_decision_name(policy->default_decision));

    struct sigctx sc;
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGHUP);
    sigaddset(&sc.set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL); /* before gRPC starts threads */

    /* Before the node starts anything that may take time: probes get an answer throughout. */
    char subject[200];
    snprintf(subject, sizeof(subject), "node=%s", o.node_id);
    health = o.health = rpc_health_new(subject, "agentry.v1.Node");
    if (health_listen && !(health_srv = rpc_health_serve(health, health_listen, &err))) {
        rc = cli_fail(&err);
        goto out;
    }
    struct wk_node *n = wk_node_new(&o, &err);
    if (!n) {
        rc = cli_fail(&err);
        goto out;
    }
    sc.node = n;
    pthread_t st;
    pthread_create(&st, NULL, signal_thread, &sc);
    rc = wk_node_run(n, &err);
    pthread_kill(st, SIGUSR1); /* no-op if it already returned after a signal */
    pthread_join(st, NULL);
    wk_node_free(n);
    rc = rc == 0 ? CLI_OK : cli_fail(&err);
out:
    rpc_health_shutdown(health);
    rpc_server_free(health_srv); /* last: liveness answers until the node is gone */
    rpc_health_free(health);
    ag_strlist_release(&labels);
    ag_strlist_release(&model_opts);
    ag_strlist_release(&tool_opts);
    ag_strlist_release(&prices);
    free(default_root);
    free(default_id);
    wk_policy_free(policy);
    return rc;
}

int cli_cmd_node(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "join") == 0)
        return node_join(argc - 1, argv + 1);
    int rc = argc >= 1 ? cli_node_admin(argv[0], argc - 1, argv + 1) : -1;
    if (rc >= 0)
        return rc;
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: agentry node join|cordon|uncordon|drain [flags] ...\n\n"
               "  join      run a worker node (agent-node join)\n"
               "  cordon    place no new turns on a node\n"
               "  uncordon  place turns on it again\n"
               "  drain     cordon it and move its turns elsewhere\n\n"
               "See 'agentry node SUBCOMMAND --help'.\n");
        return CLI_OK;
    }
    fprintf(stderr,
            "error: unknown node command '%s' (want join, cordon, uncordon or drain; see "
            "'agentry node --help')\n",
            argc >= 1 ? argv[0] : "");
    return CLI_USAGE;
}
