/* cmd/agentry/cmd_hub.c - `agentry hub` (alias agent-hub): run the hub daemon until SIGTERM or
 * SIGINT, then stop gracefully (stop placing, refuse new calls, end streams with a status, drain
 * writes). SIGHUP is logged and ignored: the hub has no configuration file to reload, and a
 * closed terminal must not take down every agent's state with it. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd/agentry/cli.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "hub/hub.h"
#include "hub/sched.h"

int cli_cmd_hub(int argc, char **argv)
{
    const char *listen = "127.0.0.1:7070", *store = "sqlite:agentry.db", *level = "info";
    const char *sched = "round-robin";
    /* A database URL may carry a password: the environment keeps it off the command line. */
    const char *env_store = getenv("AGENTRY_STORE");
    if (env_store && *env_store)
        store = env_store;
    int64_t threads = 0, max_msg = 4 << 20, heartbeat = 2000, interruptions = 5;
    int64_t backoff = 1000, backoff_max = 60000, grace = 10000, unload = 60000;
    const struct ag_flag flags[] = {
        {"listen", 'l', AG_FLAG_STR, &listen, "ADDR",
         "address to serve on (default 127.0.0.1:7070)", 0, 0},
        {"store", 0, AG_FLAG_STR, &store, "URL",
         "state store: sqlite:PATH, postgres://... (a libpq URI) or postgres:KEYWORDS (a libpq "
         "conninfo) (default $AGENTRY_STORE, else sqlite:agentry.db)",
         0, 0},
        {"scheduler", 0, AG_FLAG_STR, &sched, "NAME",
         "placement strategy: round-robin, binpack (fewest nodes) or spread (least-utilised "
         "first); an agent's spec may name another (default round-robin)",
         0, 0},
        {"threads", 0, AG_FLAG_INT, &threads, "N", "RPC threads (default: one per CPU)", 0, 256},
        {"max-message-bytes", 0, AG_FLAG_INT, &max_msg, "N",
         "largest request accepted (default 4194304)", 1024, 1 << 30},
        {"heartbeat", 0, AG_FLAG_DURATION, &heartbeat, "DUR",
         "node heartbeat interval (default 2s)", 0, 0},
        {"max-interruptions", 0, AG_FLAG_INT, &interruptions, "N",
         "a turn interrupted N times in a row for one reason, or 4N in all, fails (default 5)", 1,
         1000},
        {"retry-backoff", 0, AG_FLAG_DURATION, &backoff, "DUR",
         "wait before an interrupted turn's third attempt, doubling after (default 1s; the second is at once)",
         0, 0},
        {"retry-backoff-max", 0, AG_FLAG_DURATION, &backoff_max, "DUR",
         "longest wait between attempts of an interrupted turn (default 1m)", 0, 0},
        {"join-grace", 0, AG_FLAG_DURATION, &grace, "DUR",
         "after start, a Spawn of a model or tool no connected node offers waits instead of failing, while nodes reconnect (default 10s)",
         0, 0},
        {"unload-idle-after", 0, AG_FLAG_DURATION, &unload, "DUR",
         "an agent at rest (idle, yielded, failed or killed, nobody following it) this long leaves memory; it is read back from the store when asked for (default 1m; 0: at once)",
         0, 0},
        {"log-level", 0, AG_FLAG_STR, &level, "LEVEL", "debug, info, warn or error (default info)",
         0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry hub [flags]   (or: agent-hub [flags])",
        "Run the hub: it stores agents and their event logs, schedules agents' turns onto the\n"
        "nodes connected to it, and serves the AgentHub API. Stops gracefully on SIGTERM/SIGINT.",
        "agentry hub --listen 127.0.0.1:7070 --store sqlite:/var/lib/agentry/hub.db\n"
        "AGENTRY_STORE=postgres://agentry@db.internal/agentry agentry hub"};
    struct ag_err err = AG_ERR_INIT;
    size_t npos = 0;
    int rc = ag_flags_parse("hub", flags, AG_ARRAY_SIZE(flags), argc, argv, NULL, 0, &npos, &err);
    if (rc == 1) {
        ag_flags_print_help(stdout, &help, flags, AG_ARRAY_SIZE(flags));
        return CLI_OK;
    }
    if (rc != 0 || cli_log_start("hub", level, &err) != 0)
        return cli_usage_error(&err);
    if (!hub_sched_find(sched)) {
        char names[128];
        hub_sched_names(names, sizeof(names));
        ag_err_set(&err, AG_INVALID_ARGUMENT, "unknown scheduler '%s' (use one of: %s)", sched,
                   names);
        return cli_usage_error(&err);
    }

    /* Block the signals before gRPC starts its threads, so they inherit the mask and only
     * sigwait below sees SIGTERM/SIGINT. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (heartbeat < 1 || backoff < 1 || backoff_max < backoff) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--heartbeat and --retry-backoff must be positive, "
                   "and --retry-backoff-max at least --retry-backoff");
        return cli_usage_error(&err);
    }
    struct hub_opts o = {.listen = listen,
                         .store_url = store,
                         .sched = sched,
                         .threads = (unsigned)threads,
                         .max_message_bytes = (size_t)max_msg,
                         .heartbeat_ms = (unsigned)heartbeat,
                         .max_interruptions = (unsigned)interruptions,
                         .retry_backoff_ms = backoff,
                         .retry_backoff_max_ms = backoff_max,
                         .join_grace_ms = grace,
                         .unload_idle_ms = unload ? unload : -1};
    struct hub *h = hub_new(&o, &err);
    if (!h)
        return cli_fail(&err);
    hub_start(h);
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        ag_log_info("hub.signalled", "signal=SIGHUP action=ignored");
    ag_log_info("hub.signalled", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    hub_free(h);
    return CLI_OK;
}
