/* cmd/agentry/cmd_hub.c - `agentry hub` (alias agent-hub): run the hub daemon until SIGTERM or
 * SIGINT, then stop gracefully (stop placing, refuse new calls, end streams with a status, drain
 * writes). SIGHUP re-reads the TLS certificate files for new connections (and is logged); it
 * never stops the hub, so a closed terminal cannot take down every agent's state with it.
 *
 * Plaintext is for one machine: without TLS the hub listens only on a loopback address (with a
 * warning), unless --insecure says the operator means it.
 *
 * With --etcd the hub first campaigns for leadership (hub/cluster.h) and waits as a standby
 * until it wins; only then does it bind its address and open the store, taking it over with its
 * fencing token. A leader that loses leadership stops at once and exits 1 (its writes are
 * fenced off anyway): a supervisor restarts it, and it becomes the standby. A signal thread
 * turns SIGTERM/SIGINT into a stop, whichever phase the main thread is in.
 *
 * --health-listen serves grpc.health.v1 in plaintext (common/rpc/health.h) from the very start,
 * before the campaign: a standby answers liveness SERVING and readiness NOT_SERVING, and flips to
 * SERVING once it leads and serves. SIGTERM clears readiness first, from the signal thread. It
 * may listen on any address without --insecure: it tells only whether the hub is up and ready. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/config.h"
#include "cmd/agentry/tls_flags.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/rpc/health.h"
#include "common/xalloc.h"
#include "hub/cluster.h"
#include "hub/hub.h"
#include "hub/retention.h"
#include "hub/sched.h"

/* What the main thread waits for: a stop signal, or leadership lost. */
struct hub_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sig;   /* SIGTERM or SIGINT once one came */
    bool lost; /* leadership lost */
    sigset_t set;
    struct hub_cluster *cl;
    struct hub *h; /* guarded by mu: set while serving, for SIGHUP */
    bool tls;
    bool policy; /* --policy: SIGHUP re-reads it */
    struct rpc_health *health;
};

static void *signal_thread(void *arg)
{
    struct hub_wait *w = arg;
    int sig = 0;
    while (sigwait(&w->set, &sig) == 0 && sig == SIGHUP) {
        pthread_mutex_lock(&w->mu);
        const char *action = !w->h || (!w->tls && !w->policy) ? "ignored"
                             : w->policy                      ? "reload_tls_and_policy"
                                                              : "reload_tls";
        ag_log_info("hub.signalled", "signal=SIGHUP action=%s", action);
        if (w->h && (w->tls || w->policy))
            hub_reload(w->h);
        pthread_mutex_unlock(&w->mu);
    }
    if (sig == SIGUSR1) /* our own wake-up at exit */
        return NULL;
    ag_log_info("hub.signalled", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rpc_health_stopping(w->health, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    pthread_mutex_lock(&w->mu);
    w->sig = sig;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->cl)
        hub_cluster_abort(w->cl);
    return NULL;
}

static void on_lost(void *arg, const char *why)
{
    (void)why; /* logged by the cluster */
    struct hub_wait *w = arg;
    rpc_health_stopping(w->health, "leadership lost");
    pthread_mutex_lock(&w->mu);
    w->lost = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static struct hub *node_gone_hub; /* set once the hub serves; the watch starts after */

static void on_node_gone(void *arg, const char *node_id, const char *instance_id, const char *why)
{
    (void)arg;
    hub_node_unregistered(node_gone_hub, node_id, instance_id, why);
}

/* 127.0.0.0/8, ::1 or localhost: reachable from this machine only. */
static bool listen_loopback(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return false;
    size_t hl = (size_t)(colon - listen);
    return (hl == 9 && strncmp(listen, "localhost", 9) == 0) ||
           (hl == 5 && strncmp(listen, "[::1]", 5) == 0) ||
           (hl >= 9 && strncmp(listen, "127.", 4) == 0 && strspn(listen, "0123456789.") == hl);
}

/* The address nodes dial: --advertise, else --listen unless it names every interface. */
static const char *advertise_default(const char *listen, char *buf, size_t cap)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return listen;
    size_t hl = (size_t)(colon - listen);
    bool any = hl == 0 || (hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
               (hl == 4 && strncmp(listen, "[::]", 4) == 0);
    if (!any)
        return listen;
    char host[200] = "localhost";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(buf, cap, "%s%s", host, colon);
    return buf;
}

int cli_cmd_hub(int argc, char **argv)
{
    const char *listen = "127.0.0.1:7070", *store = NULL, *level = "info", *data_dir = NULL;
    const char *log_format = "text";
    const char *sched = "round-robin";
    int64_t threads = 0, max_msg = 4 << 20, heartbeat = 2000, interruptions = 5;
    int64_t backoff = 1000, backoff_max = 60000, grace = 10000, unload = 60000, ttl = 10000;
    int64_t approval = 24LL * 3600 * 1000, retention = 0;
    const char *etcd = NULL, *etcd_ca = NULL, *etcd_cert = NULL, *etcd_key = NULL;
    const char *prefix = "/agentry/", *hub_id = NULL, *advertise = NULL;
    const char *policy = NULL, *audit = NULL, *otlp = NULL;
    const char *metrics_listen = NULL, *http_listen = NULL, *health_listen = NULL;
    int64_t audit_max_mib = 64;
    bool insecure = false;
    struct cli_tls tls;
    struct ag_flag flags[40] = {
        {"listen", 'l', AG_FLAG_STR, &listen, "ADDR",
         "address to serve on (default 127.0.0.1:7070)", 0, 0},
        {"store", 0, AG_FLAG_STR, &store, "URL",
         "state store: sqlite:PATH, postgres://... (a libpq URI) or postgres:KEYWORDS (a libpq "
         "conninfo); $AGENTRY_STORE keeps a password off the command line (default "
         "sqlite:DATA_DIR/agentry.db)",
         0, 0},
        {"data-dir", 0, AG_FLAG_STR, &data_dir, "DIR",
         "where the default store lives, made 0700 if missing (default $XDG_DATA_HOME/agentry, "
         "else ~/.local/share/agentry)",
         0, 0},
        {"scheduler", 0, AG_FLAG_STR, &sched, "NAME",
         "placement strategy: round-robin, binpack (fewest nodes) or spread (least-utilised "
         "first); an agent's spec may name another (default round-robin)",
         0, 0},
        {"threads", 0, AG_FLAG_INT, &threads, "N", "RPC threads (default: one per CPU)", 1, 256},
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
        {"approval-timeout", 0, AG_FLAG_DURATION, &approval, "DUR",
         "a tool call waiting for a person's approval is denied as expired after this, unless its spec.limits.approval_timeout_ms says (default 24h; at most 30 days)",
         0, 0},
        {"retention", 0, AG_FLAG_DURATION, &retention, "DUR",
         "delete agents failed or killed longer ago than this (e.g. 30d or 720h), with their sub-agents, events and memory, in the background; idle agents stay (default 0: keep forever; at most 36500d; see docs/operations.md)",
         0, HUB_RETENTION_MAX_MS},
        {"log-level", 0, AG_FLAG_STR, &level, "LEVEL", "debug, info, warn or error (default info)",
         0, 0},
        {"log-format", 0, AG_FLAG_STR, &log_format, "FORMAT",
         "text (logfmt) or json (one object per line) (default text)", 0, 0},
        {"etcd", 0, AG_FLAG_STR, &etcd, "URLS",
         "join an etcd cluster (comma-separated http(s) URLs): register, lead or wait as a "
         "standby, and watch the nodes' registrations",
         0, 0},
        {"etcd-ca", 0, AG_FLAG_STR, &etcd_ca, "FILE", "CA bundle for https etcd URLs", 0, 0},
        {"etcd-cert", 0, AG_FLAG_STR, &etcd_cert, "FILE", "client certificate for etcd", 0, 0},
        {"etcd-key", 0, AG_FLAG_STR, &etcd_key, "FILE", "key of --etcd-cert", 0, 0},
        {"etcd-prefix", 0, AG_FLAG_STR, &prefix, "PREFIX", "key prefix in etcd (default /agentry/)",
         0, 0},
        {"hub-id", 0, AG_FLAG_STR, &hub_id, "ID",
         "this hub's id in etcd (default <hostname>-<pid>)", 0, 0},
        {"advertise", 0, AG_FLAG_STR, &advertise, "HOST:PORT",
         "the address nodes and clients dial, published in etcd (default --listen, or "
         "<hostname>:PORT when it listens on every interface)",
         0, 0},
        {"lease-ttl", 0, AG_FLAG_DURATION, &ttl, "DUR",
         "the hub's etcd lease: a leader that stops renewing it for this long is replaced by a "
         "standby (default 10s)",
         0, 0},
        {"policy", 0, AG_FLAG_STR, &policy, "FILE",
         "RBAC policy (YAML: roles, identity bindings, bearer tokens; see docs/operations.md); "
         "re-read on SIGHUP; needs TLS (default: built-in roles, as certificates name them)",
         0, 0},
        {"audit-log", 0, AG_FLAG_STR, &audit, "FILE",
         "append a JSON line per state-changing call and per denial to FILE (rotated by size)", 0,
         0},
        {"otlp-endpoint", 0, AG_FLAG_STR, &otlp, "URL",
         "export agent turns as OpenTelemetry spans over OTLP/HTTP JSON to URL/v1/traces, e.g. "
         "http://127.0.0.1:4318 (see docs/observability.md)",
         0, 0},
        {"audit-max-mib", 0, AG_FLAG_INT, &audit_max_mib, "N",
         "rotate the audit log at N MiB, keeping 5 old files (default 64)", 1, 1 << 20},
        {"metrics-listen", 0, AG_FLAG_STR, &metrics_listen, "ADDR",
         "serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464; no TLS, no "
         "auth: see docs/metrics.md) (default: off)",
         0, 0},
        {"http-listen", 0, AG_FLAG_STR, &http_listen, "ADDR",
         "serve the web dashboard and its JSON API on http://ADDR/ (https with --tls-dir, "
         "where users sign in with a --policy token; see docs/dashboard.md) (default: off)",
         0, 0},
        {"health-listen", 0, AG_FLAG_STR, &health_listen, "ADDR",
         "serve the standard gRPC health checking protocol (grpc.health.v1) in plaintext on ADDR "
         "(e.g. 0.0.0.0:7071), from start-up on, a standby included: service 'liveness' for "
         "liveness probes, '' or agentry.v1.AgentHub for readiness (SERVING only on the active "
         "hub); any address, no --insecure needed (see docs/operations.md) (default: off)",
         0, 0},
        {"insecure", 0, AG_FLAG_BOOL, &insecure, NULL,
         "serve plaintext on a non-loopback address (anyone who reaches it can call anything)", 0,
         0},
    };
    size_t nflags = 0;
    while (flags[nflags].name)
        nflags++;
    cli_tls_flags(&tls, "hub", flags, &nflags, AG_ARRAY_SIZE(flags));
    const struct ag_cmd_help help = {
        "agentry hub [flags]   (or: agent-hub [flags])",
        "Run the hub: it stores agents and their event logs, schedules agents' turns onto the\n"
        "nodes connected to it, and serves the AgentHub API. Stops gracefully on SIGTERM/SIGINT.\n"
        "\n"
        "Every flag can also be set by an environment variable: --http-listen by "
        "AGENTRY_HTTP_LISTEN, and so on; a flag on the command line wins.",
        "agentry hub --listen 127.0.0.1:7070 --store sqlite:/var/lib/agentry/hub.db\n"
        "AGENTRY_LISTEN=127.0.0.1:7071 AGENTRY_HTTP_LISTEN=127.0.0.1:8080 agentry hub\n"
        "AGENTRY_STORE=postgres://agentry@db.internal/agentry agentry hub\n"
        "agentry hub --listen 0.0.0.0:7070 --tls-dir /etc/agentry/tls --store postgres://db/agentry "
        "--etcd https://etcd:2379"};
    struct ag_err err = AG_ERR_INIT;
    size_t npos = 0;
    int rc = ag_flags_parse_env("hub", &cli_flags_env, flags, nflags, argc, argv, NULL, 0, &npos,
                                &err);
    if (rc == 1) {
        ag_flags_print_help(stdout, &help, flags, nflags);
        return CLI_OK;
    }
    if (rc != 0 || cli_log_start("hub", level, log_format, &err) != 0)
        return cli_usage_error(&err);
    if (!hub_sched_find(sched)) {
        char names[128];
        hub_sched_names(names, sizeof(names));
        ag_err_set(&err, AG_INVALID_ARGUMENT, "unknown scheduler '%s' (use one of: %s)", sched,
                   names);
        return cli_usage_error(&err);
    }

    if (approval < 1 || approval > 30LL * 24 * 3600 * 1000) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--approval-timeout must be more than 0 and at most 30 days (720h)");
        return cli_usage_error(&err);
    }
    if (heartbeat < 1 || backoff < 1 || backoff_max < backoff) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--heartbeat and --retry-backoff must be positive, "
                   "and --retry-backoff-max at least --retry-backoff");
        return cli_usage_error(&err);
    }
    const struct rpc_tls_files *tf = NULL;
    if (cli_tls_resolve(&tls, "hub", &tf, &err) != 0)
        return cli_usage_error(&err);
    char dir[PATH_MAX], default_store[PATH_MAX + 32];
    if (!store) {
        if (cli_data_dir(data_dir, dir, sizeof(dir), &err) != 0)
            return cli_usage_error(&err);
        snprintf(default_store, sizeof(default_store), "sqlite:%s/agentry.db", dir);
        store = default_store;
    }
    if (policy && !tf) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--policy needs TLS (--tls-dir): callers are known by their certificates and "
                   "tokens");
        return cli_usage_error(&err);
    }
    /* With a policy, callers may show a bearer token instead of a certificate. */
    tls.files.client_cert_optional = tf && policy;
    if (!tf && !insecure && !listen_loopback(listen)) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "refusing to serve plaintext on '%s': give --tls-dir (see 'agentry certs "
                   "init'), listen on 127.0.0.1, or pass --insecure",
                   listen);
        return cli_usage_error(&err);
    }
    struct hub_opts o = {.listen = listen,
                         .tls = tf,
                         .store_url = store,
                         .sched = sched,
                         .threads = (unsigned)threads,
                         .max_message_bytes = (size_t)max_msg,
                         .heartbeat_ms = (unsigned)heartbeat,
                         .max_interruptions = (unsigned)interruptions,
                         .retry_backoff_ms = backoff,
                         .retry_backoff_max_ms = backoff_max,
                         .approval_timeout_ms = approval,
                         .retention_ms = retention,
                         .join_grace_ms = grace,
                         .unload_idle_ms = unload ? unload : -1,
                         .policy_path = policy,
                         .audit_path = audit,
                         .otlp_endpoint = otlp,
                         .audit_max_bytes = (size_t)audit_max_mib << 20,
                         .metrics_listen = metrics_listen,
                         .http_listen = http_listen};
    char adv[256];
    struct hub_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER,
                         .cv = PTHREAD_COND_INITIALIZER,
                         .tls = tf != NULL,
                         .policy = policy != NULL};
    struct hub_cluster_opts co = {
        .endpoints = etcd,
        .ca_file = etcd_ca,
        .cert_file = etcd_cert,
        .key_file = etcd_key,
        .prefix = prefix,
        .hub_id = hub_id,
        .advertise = advertise ? advertise : advertise_default(listen, adv, sizeof(adv)),
        .ttl_s = ttl < 1000 ? 1 : ttl / 1000,
        .lost = on_lost,
        .node_gone = on_node_gone,
        .arg = &w};
    /* Both would bind, and the second would report a port "in use", as if by another hub. */
    if (health_listen && strcmp(health_listen, listen) == 0) {
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--health-listen %s is also --listen: the health server is a second, plaintext "
                   "one and needs its own port (e.g. 127.0.0.1:7071)",
                   health_listen);
        return cli_usage_error(&err);
    }
    if (etcd && hub_cluster_new(&co, &w.cl, &err) != 0)
        return cli_usage_error(&err);

    /* Block the signals before gRPC and etcd start their threads, so they inherit the mask and
     * only the signal thread sees them. */
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGINT);
    sigaddset(&w.set, SIGTERM);
    sigaddset(&w.set, SIGHUP);
    sigaddset(&w.set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &w.set, NULL);
    /* Before anything can block (the campaign, the store): probes get their answer throughout. */
    char subject[300];
    snprintf(subject, sizeof(subject), "hub=%s",
             w.cl     ? hub_cluster_id(w.cl)
             : hub_id ? hub_id
                      : listen);
    w.health = rpc_health_new(subject, HUB_HEALTH_SERVICE);
    o.health = w.health;
    struct rpc_server *health_srv = NULL;
    if (health_listen && !(health_srv = rpc_health_serve(w.health, health_listen, &err))) {
        hub_cluster_free(w.cl);
        rpc_health_free(w.health);
        return cli_fail(&err);
    }
    pthread_t st;
    ag_xthread_create(&st, signal_thread, &w, "signals");

    rc = CLI_OK;
    struct hub *h = NULL;
    if (w.cl) {
        int64_t token = 0;
        if (hub_cluster_lead(w.cl, &token) != 0)
            goto out; /* stopped while a standby */
        o.fence = token;
        o.fence_holder = hub_cluster_id(w.cl);
    }
    h = hub_new(&o, &err);
    if (!h) {
        rc = cli_fail(&err);
        goto out;
    }
    hub_start(h);
    /* Said once it serves, so a hub that fails to start prints only its error. */
    if (!tf)
        ag_log_warn("hub.plaintext", "listen=%s msg=%s", listen,
                    ag_log_q(insecure && !listen_loopback(listen)
                                 ? "serving plaintext without TLS (--insecure): every caller is "
                                   "admin"
                                 : "serving plaintext on loopback: every local caller is admin; "
                                   "use --tls-dir to require certificates"));
    node_gone_hub = h;
    pthread_mutex_lock(&w.mu);
    w.h = h;
    pthread_mutex_unlock(&w.mu);
    if (w.cl && hub_cluster_watch(w.cl, &err) != 0)
        ag_log_error("cluster.watch_failed", "err=%s", ag_log_q(err.msg));
    pthread_mutex_lock(&w.mu);
    while (!w.sig && !w.lost)
        pthread_cond_wait(&w.cv, &w.mu);
    bool lost = w.lost;
    pthread_mutex_unlock(&w.mu);
    if (lost) {
        fprintf(stderr, "error: this hub lost its leadership (see its log); stopping\n");
        rc = CLI_FAIL;
    }
out:
    pthread_mutex_lock(&w.mu);
    w.h = NULL;
    pthread_mutex_unlock(&w.mu);
    /* The hub first (its writes drain), then the cluster: revoking the lease lets a standby
     * take over at once. */
    hub_free(h);
    hub_cluster_free(w.cl);
    pthread_kill(st, SIGUSR1); /* no-op if it already returned after a signal */
    pthread_join(st, NULL);
    /* Last: probes see liveness until the hub is gone. */
    rpc_health_shutdown(w.health);
    rpc_server_free(health_srv);
    rpc_health_free(w.health);
    return rc;
}
