/* cmd/agentry/cmd_dev.c - `agentry dev`: a hub, N nodes and the dashboard on this machine, as one
 * long-running command (as `temporal server start-dev` is), for trying things and for developing
 * agents. Not for production: plaintext on loopback, one SQLite file.
 *
 * The hub and the nodes are child processes: this binary again (/proc/self/exe) with `hub` and
 * `node join` arguments, each in its own process group (a Ctrl-C in the terminal reaches only
 * us, so the stop is ordered) and with PR_SET_PDEATHSIG, so that they stop even if we are
 * SIGKILLed. Their output goes to DATA_DIR/logs/<name>.log (truncated at each start), never to
 * the terminal, which shows one banner. The children get no AGENTRY_* variable: what they do is
 * decided here, not by a shell's leftovers (an AGENTRY_TLS_DIR would give both nodes one
 * certificate, hence one node id).
 *
 * Order: the hub, until its log says event=hub.started (or it exits: its error line is shown);
 * then the nodes, until each log says event=node.registered; then the banner, and wait. Stop
 * (SIGINT, SIGTERM, SIGHUP): the nodes, then the hub, each sent SIGTERM and given DEV_STOP_MS
 * before SIGKILL; a second Ctrl-C kills at once. A child that exits on its own stops the others
 * and makes the command fail. Exit: 130 after Ctrl-C, 0 after SIGTERM or SIGHUP, 1 on a failure.
 *
 * Thread: one. Signals are blocked and taken with sigtimedwait, which is also the poll of the
 * logs while starting. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/config.h"
#include "common/clock.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/xalloc.h"

#define DEV_MAX_NODES 16
#define DEV_START_MS 30000 /* the hub started, or a node registered, within this */
#define DEV_STOP_MS 10000  /* after SIGTERM, a child gets this long before SIGKILL */
#define DEV_POLL_MS 50     /* how often the logs are read while starting */

struct dev_child {
    char name[16];           /* "hub", "n1", ...: its log's name and a node's id */
    char shown[24];          /* "the hub", "node n1": in messages */
    char log[PATH_MAX + 32]; /* its stdout and stderr: DATA_DIR/logs/<name>.log */
    pid_t pid;               /* 0 once reaped */
    int status;              /* from waitpid, once reaped */
};

struct dev {
    struct dev_child kids[1 + DEV_MAX_NODES]; /* [0] is the hub */
    size_t n;
    char **envp; /* owned array, strings borrowed from environ: ours minus AGENTRY_* */
    sigset_t set;
    int sig; /* the stop signal that came, 0 if none */
};

/* --- children -------------------------------------------------------------------------------- */

static char **child_env(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **e = ag_xcalloc(n + 1, sizeof(*e));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "AGENTRY_", 8) != 0)
            e[k++] = environ[i];
    return e;
}

/* Fork and exec /proc/self/exe with argv (NULL-terminated), output to c->log. */
static int spawn(struct dev *d, struct dev_child *c, char **argv, struct ag_err *err)
{
    int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot open the log file '%s': %s", c->log,
                          strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED, "cannot start %s: fork: %s", c->shown,
                          strerror(errno));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) /* we died before the line above: nobody would stop it */
            _exit(1);
        setpgid(0, 0);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC); /* dup2 clears it on 0 */
        if (null >= 0)
            dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        sigprocmask(SIG_UNBLOCK, &d->set, NULL); /* a blocked mask survives exec */
        execve("/proc/self/exe", argv, d->envp);
        dprintf(2, "error: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd);
    c->pid = pid;
    return 0;
}

/* Reap every child that exited; true if one did. */
static bool reap(struct dev *d)
{
    bool any = false;
    for (size_t i = 0; i < d->n; i++) {
        struct dev_child *c = &d->kids[i];
        if (c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
            c->pid = 0;
            any = true;
        }
    }
    return any;
}

static bool running(const struct dev *d, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (d->kids[i].pid > 0)
            return true;
    return false;
}

/* Wait up to ms for a signal; the stop signals are noted in d->sig. Returns the signal, 0 on
 * timeout. */
static int wait_signal(struct dev *d, int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    int sig = sigtimedwait(&d->set, NULL, ms < 0 ? NULL : &ts);
    if (sig > 0 && sig != SIGCHLD && !d->sig)
        d->sig = sig;
    return sig > 0 ? sig : 0;
}

/* SIGTERM kids[from..to), wait DEV_STOP_MS, then SIGKILL what is left. */
static void stop_range(struct dev *d, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (d->kids[i].pid > 0)
            kill(d->kids[i].pid, SIGTERM);
    int64_t deadline = ag_now_mono_ms() + DEV_STOP_MS;
    bool now = false;
    while (!now && running(d, from, to)) {
        int64_t left = deadline - ag_now_mono_ms();
        if (left <= 0)
            break;
        int sig = wait_signal(d, left);
        now = sig == SIGINT; /* a second Ctrl-C: no more waiting */
        reap(d);
    }
    for (size_t i = from; i < to; i++) {
        struct dev_child *c = &d->kids[i];
        if (c->pid <= 0)
            continue;
        if (!now)
            fprintf(stderr, "agentry dev: %s did not stop within %ds; killing it\n", c->shown,
                    DEV_STOP_MS / 1000);
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &c->status, 0);
        c->pid = 0;
    }
}

/* The nodes first, so that they say goodbye to a hub still there. */
static void stop_all(struct dev *d)
{
    stop_range(d, 1, d->n);
    stop_range(d, 0, 1);
}

/* --- logs ------------------------------------------------------------------------------------ */

/* Whether the log of c holds needle. */
static bool log_has(const struct dev_child *c, const char *needle)
{
    FILE *f = fopen(c->log, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* The child's last "error: " line (without the prefix) into buf, "" if it printed none: its
 * other lines are log events, which say less than "see its log". */
static void log_last_error(const struct dev_child *c, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(c->log, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "error: ", 7) != 0)
            continue;
        size_t len = strnlen(line + 7, cap - 1);
        memcpy(buf, line + 7, len);
        buf[len] = '\0';
    }
    fclose(f);
}

static const char *exit_text(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    return buf;
}

/* One line for a child that ended when it should not have. */
static int child_died(const struct dev_child *c, const char *when, struct ag_err *err)
{
    char last[160], how[48];
    log_last_error(c, last, sizeof(last));
    return ag_err_set(err, AG_UNAVAILABLE, "%s %s (%s)%s%s (see %s)", c->shown, when,
                      exit_text(c->status, how, sizeof(how)), last[0] ? ": " : "", last, c->log);
}

/* Wait until c's log holds needle. -1 with err if c exits, time runs out, or a stop signal. */
static int wait_log(struct dev *d, struct dev_child *c, const char *needle, const char *what,
                    struct ag_err *err)
{
    int64_t deadline = ag_now_mono_ms() + DEV_START_MS;
    while (!log_has(c, needle)) {
        if (d->sig)
            return -1;
        if (reap(d))
            for (size_t i = 0; i < d->n; i++)
                if (d->kids[i].pid == 0)
                    return child_died(&d->kids[i], "did not start", err);
        if (ag_now_mono_ms() > deadline)
            return ag_err_set(err, AG_DEADLINE_EXCEEDED, "%s did not %s within %ds (see %s)",
                              c->shown, what, DEV_START_MS / 1000, c->log);
        wait_signal(d, DEV_POLL_MS);
    }
    return 0;
}

/* --- the command ----------------------------------------------------------------------------- */

/* -1 with err if host:port cannot be bound now (in use, or not an address of this machine). */
static int check_free(const char *addr, const char *flag, struct ag_err *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid address '%s' for %s: want host:port",
                          addr, flag);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid address '%s' for %s: want host:port",
                          addr, flag);
    /* SO_REUSEADDR: a port the last run left in TIME_WAIT is not in use. */
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    int rc = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                     bind(fd, ai->ai_addr, ai->ai_addrlen) == 0
                 ? 0
                 : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    if (rc == 0)
        return 0;
    if (e == EADDRINUSE)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "%s is in use (another hub, or 'agentry dev' already running?); "
                          "pick another with %s",
                          addr, flag);
    return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot listen on %s: %s (see %s)", addr,
                      strerror(e), flag);
}

struct dev_opts {
    int64_t port, nodes;
    const char *http_listen, *data_dir, *level;
};

static void banner(const struct dev_opts *o, const char *hub, const char *dir)
{
    printf("agentry dev: a hub and %d node%s on this machine; Ctrl-C stops them\n", (int)o->nodes,
           o->nodes == 1 ? "" : "s");
    printf("  hub        %s%s\n", hub,
           o->port == 7070 ? "  (the CLI's default)" : "  (export AGENTRY_HUB to use it)");
    printf("  dashboard  http://%s/\n", o->http_listen);
    printf("  data       %s (store dev.db)\n", dir);
    printf("  logs       %s/logs/{hub%s}.log\n", dir,
           o->nodes > 1 ? ",n1,..."
           : o->nodes   ? ",n1"
                        : "");
    if (o->port != 7070)
        printf("\n  export AGENTRY_HUB=%s\n", hub);
    fflush(stdout);
}

/* Start the hub and the nodes, and wait for each. */
static int start(struct dev *d, const struct dev_opts *o, const char *hub, const char *dir,
                 struct ag_err *err)
{
    char store[PATH_MAX + 32];
    snprintf(store, sizeof(store), "sqlite:%s/dev.db", dir);
    struct dev_child *h = &d->kids[d->n++];
    snprintf(h->name, sizeof(h->name), "hub");
    snprintf(h->shown, sizeof(h->shown), "the hub");
    snprintf(h->log, sizeof(h->log), "%s/logs/hub.log", dir);
    char *hub_argv[] = {"agentry",
                        "hub",
                        "--listen",
                        (char *)hub,
                        "--store",
                        store,
                        "--http-listen",
                        (char *)o->http_listen,
                        "--log-level",
                        (char *)o->level,
                        NULL};
    if (spawn(d, h, hub_argv, err) != 0 || wait_log(d, h, "event=hub.started", "start", err) != 0)
        return -1;
    for (int64_t i = 1; i <= o->nodes; i++) {
        struct dev_child *c = &d->kids[d->n++];
        char name[16];
        snprintf(name, sizeof(name), "n%d", (int)i);
        memcpy(c->name, name, sizeof(name));
        snprintf(c->shown, sizeof(c->shown), "node %s", name);
        snprintf(c->log, sizeof(c->log), "%s/logs/%s.log", dir, name);
        char *argv[] = {"agentry",   "node",  "join",        "--hub",          (char *)hub,
                        "--node-id", c->name, "--log-level", (char *)o->level, NULL};
        if (spawn(d, c, argv, err) != 0)
            return -1;
    }
    for (size_t i = 1; i < d->n; i++)
        if (wait_log(d, &d->kids[i], "event=node.registered", "register with the hub", err) != 0)
            return -1;
    return 0;
}

/* Wait for a stop signal or a child's end. -1 with err for the latter. */
static int serve(struct dev *d, struct ag_err *err)
{
    /* Reap first: the SIGCHLD of a child that died while starting may have been taken already. */
    while (!d->sig) {
        if (reap(d))
            for (size_t i = 0; i < d->n; i++)
                if (d->kids[i].pid == 0)
                    return child_died(&d->kids[i], "exited", err);
        wait_signal(d, -1);
    }
    return 0;
}

static int run(const struct dev_opts *o)
{
    struct ag_err err = AG_ERR_INIT;
    char hub[64], dir[PATH_MAX], logs[PATH_MAX + 8];
    snprintf(hub, sizeof(hub), "127.0.0.1:%d", (int)o->port);
    if (check_free(hub, "--port", &err) != 0 ||
        check_free(o->http_listen, "--http-listen", &err) != 0)
        return cli_usage_error(&err);
    if (cli_data_dir(o->data_dir, dir, sizeof(dir), &err) != 0)
        return cli_usage_error(&err);
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    if (mkdir(logs, 0700) != 0 && errno != EEXIST) {
        ag_err_set(&err, AG_FAILED_PRECONDITION, "cannot make '%s': %s", logs, strerror(errno));
        return cli_fail(&err);
    }
    struct dev d = {.envp = child_env()};
    sigemptyset(&d.set);
    sigaddset(&d.set, SIGINT);
    sigaddset(&d.set, SIGTERM);
    sigaddset(&d.set, SIGHUP);
    sigaddset(&d.set, SIGCHLD);
    signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would reap the children for us */
    sigprocmask(SIG_BLOCK, &d.set, NULL);
    int rc = start(&d, o, hub, dir, &err);
    if (rc == 0) {
        banner(o, hub, dir);
        rc = serve(&d, &err);
    }
    bool failed = rc != 0 && !d.sig; /* not merely interrupted by a stop signal */
    if (failed)
        fprintf(stderr, "error: %s\n", err.msg);
    stop_all(&d);
    free(d.envp);
    if (failed)
        return CLI_FAIL;
    return d.sig == SIGINT ? 128 + SIGINT : CLI_OK;
}

int cli_cmd_dev(int argc, char **argv)
{
    struct dev_opts o = {
        .port = 7070, .nodes = 2, .http_listen = "127.0.0.1:8080", .level = "info"};
    struct ag_flag flags[] = {
        {"port", 'p', AG_FLAG_INT, &o.port, "PORT", "the hub's port on 127.0.0.1 (default 7070)", 1,
         65535},
        {"nodes", 0, AG_FLAG_INT, &o.nodes, "N", "worker nodes to run, n1..nN (default 2)", 0,
         DEV_MAX_NODES},
        {"http-listen", 0, AG_FLAG_STR, &o.http_listen, "ADDR",
         "where the web dashboard is served (default 127.0.0.1:8080)", 0, 0},
        {"data-dir", 0, AG_FLAG_STR, &o.data_dir, "DIR",
         "where the store (dev.db) and the logs (logs/) live, made 0700 if missing (default "
         "$XDG_DATA_HOME/agentry, else ~/.local/share/agentry)",
         0, 0},
        {"log-level", 0, AG_FLAG_STR, &o.level, "LEVEL",
         "the hub's and nodes' log level: debug, info, warn or error (default info)", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry dev [flags]",
        "Run a hub, worker nodes and the web dashboard on this machine until Ctrl-C: a place to "
        "try agents without setting anything up. The store and the logs are files in the data "
        "directory (the terminal shows only where they are); the agents stay there from one run "
        "to the next. Plaintext on loopback: not for production (see docs/operations.md).\n"
        "\n"
        "Every flag can also be set by an environment variable (--port by AGENTRY_PORT, and so "
        "on); the hub and the nodes themselves get no AGENTRY_* variable.",
        "agentry dev                       # hub on 127.0.0.1:7070, dashboard on :8080\n"
        "agentry dev --port 7171 --nodes 3 --http-listen 127.0.0.1:8181"};
    struct ag_err err = AG_ERR_INIT;
    size_t npos = 0;
    int rc = ag_flags_parse_env("dev", &cli_flags_env, flags, AG_ARRAY_SIZE(flags), argc, argv,
                                NULL, 0, &npos, &err);
    if (rc == 1) {
        ag_flags_print_help(stdout, &help, flags, AG_ARRAY_SIZE(flags));
        return CLI_OK;
    }
    enum ag_log_level level;
    if (rc != 0 || ag_log_level_parse(o.level, &level, &err) != 0) /* before the children */
        return cli_usage_error(&err);
    return run(&o);
}
