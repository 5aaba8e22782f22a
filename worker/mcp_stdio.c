/* worker/mcp_stdio.c - the MCP stdio transport: a child process and the I/O thread that owns it.
 * worker/mcp.c reaches it through its row, wk_mcp_stdio_transport (worker/mcp_rpc.h).
 *
 * Owns: the process (started on the first request, initialized before anything else is sent,
 * restarted after a crash with a backoff, stopped when idle or when the client stops), the
 * requests sent to it and waiting for it, and the lines going in and out. One thread per server,
 * started with its first request: poll(2) on the process's stdout and stderr, its stdin while
 * there is something to write, and an eventfd that says "new request, a cancel, or stop". The
 * thread alone touches the process and its lists; requesters hand requests over under wk_mcp_rpc.mu
 * (the incoming list), and a cancel listener only sets the request's flag and wakes the thread.
 *
 * The process starts through the node's executor (wk_sandbox_spawn: the sandbox, or directly
 * when privileged) with its stdin, stdout and stderr on pipes, and ends through it
 * (wk_sandbox_stop, then wk_sandbox_proc_release, which also removes its cgroups). The executor
 * forks on this thread, and the wrapper dies with it (PR_SET_PDEATHSIG): the thread reaps the
 * process before it ends, so that only happens if the node dies.
 *
 * SIGPIPE is blocked on the thread (a write to a process that just died is EPIPE, not the node's
 * death) and a pending one is consumed after each EPIPE. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "worker/cancel.h"
#include "worker/mcp_rpc.h"

#define STDIO_BACKOFF_MIN_MS 100
#define STDIO_BACKOFF_MAX_MS 30000
#define STDIO_STABLE_MS 10000 /* up this long: a crash after it restarts without delay growth */
#define STDIO_TERM_GRACE_MS 1000
#define STDIO_STDERR_LINE 512
#define STDIO_IDLE_MS (10 * 60 * 1000) /* nobody sent a request this long: the process is stopped */

/* The I/O thread's own state. */
struct stdio {
    struct wk_mcp_rpc *m;
    struct wk_sandbox_proc proc; /* while pid */
    pid_t pid;                   /* 0: no process; else proc.pid */
    int in_fd, out_fd, err_fd;   /* proc's, borrowed; -1 without a process */
    bool ready;                  /* initialize answered */
    int64_t init_id;             /* the initialize request in flight, -1 if none */
    int64_t started_ms;          /* when the process started */
    int64_t next_start_ms;       /* no start before this */
    int64_t backoff_ms;
    int64_t last_used_ms;
    struct wk_mcp_rpc_req *waiting; /* not sent yet, in order */
    struct wk_mcp_rpc_req *sent;    /* sent, waiting for their answer */
    struct ag_strbuf out, err, wbuf;
    char last_stderr[160]; /* the process's last stderr line, for a start that fails */
};

static void wake(struct wk_mcp_rpc *m)
{
    uint64_t one = 1;
    ssize_t w = write(m->wake_fd, &one, sizeof(one));
    (void)w; /* a full counter is still readable: the thread wakes either way */
}

/* wk_cancel listener: quick, under the handle's lock. */
static void on_cancel(void *arg)
{
    struct wk_mcp_rpc_req *r = arg;
    atomic_store(&r->cancelled, true);
    wake(r->m);
}

static void list_push(struct wk_mcp_rpc_req **head, struct wk_mcp_rpc_req *r)
{
    r->next = NULL;
    while (*head)
        head = &(*head)->next;
    *head = r;
}

/* --- the process --------------------------------------------------------------------------- */

/* Wait for the process to be gone (wk_sandbox_stop: stdin closed, as a well-behaved server
 * exits on EOF; SIGTERM after the grace; SIGKILL to the whole tree after another). *status: as
 * waitpid's; *wrapped: it is the sandbox's wrapper's. */
static void proc_reap(struct stdio *io, int *status, bool *wrapped)
{
    wk_sandbox_stop(&io->proc, STDIO_TERM_GRACE_MS);
    *status = io->proc.status;
    *wrapped = io->proc.wrapped;
    wk_sandbox_proc_release(&io->proc);
    io->pid = 0;
    io->ready = false;
    io->init_id = -1;
    io->in_fd = io->out_fd = io->err_fd = -1;
    io->out.len = io->err.len = io->wbuf.len = 0;
}

static void status_text(int st, bool wrapped, char *buf, size_t cap)
{
    if (WIFEXITED(st) && wrapped && WEXITSTATUS(st) > 128)
        /* bwrap and runsc report a server that died of signal N as 128+N */
        snprintf(buf, cap, "was killed by signal %d inside the sandbox", WEXITSTATUS(st) - 128);
    else if (WIFEXITED(st))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "was killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, cap, "ended");
}

static void fail_list(struct wk_mcp_rpc_req **head, enum ag_code code, const char *why)
{
    while (*head) {
        struct wk_mcp_rpc_req *r = *head;
        *head = r->next;
        wk_mcp_rpc_fail(r, code, "%s", why);
    }
}

/* The process is gone (crashed, stopped, or never initialized): requests sent to it end with
 * why; those waiting end too if it died before it could answer initialize (starting it again
 * would just fail again, at the backoff's pace). */
static void proc_gone(struct stdio *io, const char *why, bool crashed)
{
    bool was_ready = io->ready;
    int st;
    bool wrapped;
    pid_t pid = io->pid;
    proc_reap(io, &st, &wrapped);
    char how[64];
    status_text(st, wrapped, how, sizeof(how));
    ag_log_info("mcp.exited", "server=%s pid=%d status=%s reason=%s", io->m->name, (int)pid,
                ag_log_q(how), why);
    int64_t now = ag_now_mono_ms();
    if (crashed) {
        io->backoff_ms = now - io->started_ms >= STDIO_STABLE_MS     ? STDIO_BACKOFF_MIN_MS
                         : io->backoff_ms * 2 > STDIO_BACKOFF_MAX_MS ? STDIO_BACKOFF_MAX_MS
                                                                     : io->backoff_ms * 2;
        io->next_start_ms = now + io->backoff_ms;
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "MCP server '%.32s' %.63s %s%s%.159s", io->m->name, how,
             was_ready ? "while the call was in flight; it is started again for the next call"
                       : "before it answered initialize",
             io->last_stderr[0] ? "; its last stderr line: " : "", io->last_stderr);
    fail_list(&io->sent, AG_UNAVAILABLE, msg);
    if (!was_ready && crashed)
        fail_list(&io->waiting, AG_UNAVAILABLE, msg);
}

static int proc_spawn(struct stdio *io, struct ag_err *err)
{
    struct wk_mcp_rpc *m = io->m;
    struct wk_sandbox_req req = {.argv = (const char *const *)m->argv,
                                 .envp = (const char *const *)m->envp,
                                 .workspace = m->cwd,
                                 .net = m->net,
                                 .privileged = m->privileged,
                                 .stdin_pipe = true,
                                 .ro_paths = (const char *const *)m->ro_paths,
                                 .limits = m->limits};
    if (wk_sandbox_spawn(m->sandbox, &req, &io->proc, err) != 0) {
        io->pid = 0;
        return -1;
    }
    io->pid = io->proc.pid;
    io->in_fd = io->proc.in_fd;
    io->out_fd = io->proc.out_fd;
    io->err_fd = io->proc.err_fd;
    fcntl(io->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(io->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(io->err_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Start the process and send initialize; a start that fails ends the waiting requests. */
static void proc_start(struct stdio *io)
{
    struct ag_err err = AG_ERR_INIT;
    io->last_stderr[0] = '\0';
    io->started_ms = ag_now_mono_ms();
    if (proc_spawn(io, &err) != 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "MCP server '%s': %s", io->m->name, err.msg);
        ag_log_warn("mcp.start_failed", "server=%s error=%s", io->m->name, ag_log_q(err.msg));
        fail_list(&io->waiting, AG_UNAVAILABLE, msg);
        io->backoff_ms = io->backoff_ms * 2 > STDIO_BACKOFF_MAX_MS ? STDIO_BACKOFF_MAX_MS
                                                                   : io->backoff_ms * 2;
        io->next_start_ms = io->started_ms + io->backoff_ms;
        return;
    }
    ag_log_info("mcp.started", "server=%s pid=%d command=%s applied=%s", io->m->name, (int)io->pid,
                ag_log_q(io->m->argv[0]), ag_log_q(io->proc.applied));
    size_t len;
    io->init_id = (int64_t)atomic_fetch_add(&io->m->next_id, 1);
    char *line = wk_mcp_rpc_frame(io->init_id, "initialize", wk_mcp_rpc_init_params(), &len);
    ag_strbuf_add(&io->wbuf, line, len);
    free(line);
}

/* --- messages from the process ------------------------------------------------------------- */

static void answer_server(struct stdio *io, cJSON *msg, const char *method)
{
    cJSON *reply = cJSON_CreateObject();
    cJSON_AddStringToObject(reply, "jsonrpc", "2.0");
    cJSON_AddItemToObject(reply, "id",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(msg, "id"), true));
    if (strcmp(method, "ping") == 0) {
        cJSON_AddObjectToObject(reply, "result");
    } else {
        cJSON *e = cJSON_AddObjectToObject(reply, "error");
        cJSON_AddNumberToObject(e, "code", -32601);
        cJSON_AddStringToObject(e, "message", "method not supported by this client");
    }
    char *s = cJSON_PrintUnformatted(reply);
    cJSON_Delete(reply);
    ag_strbuf_add(&io->wbuf, s, strlen(s));
    ag_strbuf_add(&io->wbuf, "\n", 1);
    cJSON_free(s);
}

static void on_initialized(struct stdio *io, cJSON *msg)
{
    struct ag_err err = AG_ERR_INIT;
    cJSON *result = wk_mcp_rpc_result(msg, &err);
    cJSON_Delete(msg);
    io->init_id = -1;
    if (!result) {
        ag_log_warn("mcp.init_failed", "server=%s error=%s", io->m->name, ag_log_q(err.msg));
        char why[300];
        snprintf(why, sizeof(why), "MCP server '%s' refused initialize: %s", io->m->name, err.msg);
        fail_list(&io->waiting, AG_UNAVAILABLE, why);
        proc_gone(io, "init_failed", true);
        return;
    }
    cJSON_Delete(result);
    io->ready = true;
    size_t len;
    char *line = wk_mcp_rpc_frame(-1, "notifications/initialized", NULL, &len);
    ag_strbuf_add(&io->wbuf, line, len);
    free(line);
}

static void on_line(struct stdio *io, const char *line, size_t len)
{
    cJSON *msg;
    enum wk_mcp_rpc_kind kind;
    int64_t id;
    const char *method;
    struct ag_err err = AG_ERR_INIT;
    if (wk_mcp_rpc_parse(line, len, &msg, &kind, &id, &method, &err) != 0) {
        ag_log_warn("mcp.bad_message", "server=%s error=%s", io->m->name, ag_log_q(err.msg));
        return;
    }
    if (kind == WK_MCP_RPC_REQUEST) {
        answer_server(io, msg, method);
        cJSON_Delete(msg);
        return;
    }
    if (kind == WK_MCP_RPC_NOTIFICATION) {
        cJSON_Delete(msg);
        return;
    }
    if (id == io->init_id) {
        on_initialized(io, msg);
        return;
    }
    for (struct wk_mcp_rpc_req **p = &io->sent; *p; p = &(*p)->next) {
        if ((*p)->id != id)
            continue;
        struct wk_mcp_rpc_req *r = *p;
        *p = r->next;
        io->last_used_ms = ag_now_mono_ms(); /* idle counts from a call's end, not its start */
        wk_mcp_rpc_finish(r, msg, NULL);
        return;
    }
    cJSON_Delete(msg); /* an answer to a call that already timed out or was cancelled */
}

/* Read what is there; false at EOF or a read error (the process is gone or going). */
static bool read_out(struct stdio *io)
{
    char buf[65536];
    for (;;) {
        if (!io->pid)
            return true; /* stopped while reading (initialize refused): nothing more to read */
        ssize_t n = read(io->out_fd, buf, sizeof(buf));
        if (n == 0)
            return false;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        ag_strbuf_add(&io->out, buf, (size_t)n);
        char *nl;
        while (io->pid && (nl = memchr(io->out.s, '\n', io->out.len))) {
            size_t l = (size_t)(nl - io->out.s);
            if (l > 0)
                on_line(io, io->out.s, l);
            if (io->pid) /* on_line may have stopped the process (and emptied the buffer) */
                ag_strbuf_drop(&io->out, l + 1);
        }
        if (io->out.len > WK_MCP_RPC_MAX_LINE)
            return false;
        if ((size_t)n < sizeof(buf))
            return true;
    }
}

static void read_err(struct stdio *io)
{
    char buf[8192];
    ssize_t n;
    while ((n = read(io->err_fd, buf, sizeof(buf))) > 0) {
        ag_strbuf_add(&io->err, buf, (size_t)n);
        char *nl;
        while ((nl = memchr(io->err.s, '\n', io->err.len)) || io->err.len > STDIO_STDERR_LINE) {
            size_t l = nl ? (size_t)(nl - io->err.s) : io->err.len;
            size_t shown = l > STDIO_STDERR_LINE ? STDIO_STDERR_LINE : l;
            char line[STDIO_STDERR_LINE + 1];
            memcpy(line, io->err.s, shown);
            line[shown] = '\0';
            if (shown) {
                ag_log_info("mcp.stderr", "server=%s line=%s", io->m->name, ag_log_q(line));
                snprintf(io->last_stderr, sizeof(io->last_stderr), "%.159s", line);
            }
            ag_strbuf_drop(&io->err, nl ? l + 1 : l);
        }
    }
}

static void write_in(struct stdio *io)
{
    while (io->wbuf.len > 0) {
        ssize_t n = write(io->in_fd, io->wbuf.s, io->wbuf.len);
        if (n > 0) {
            ag_strbuf_drop(&io->wbuf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EPIPE) {
            /* The process is going: its stdout's EOF says so next. */
            sigset_t pipe;
            sigemptyset(&pipe);
            sigaddset(&pipe, SIGPIPE);
            sigtimedwait(&pipe, NULL, &(struct timespec){0, 0});
            io->wbuf.len = 0;
        }
        return;
    }
}

/* --- the loop ------------------------------------------------------------------------------ */

/* Requests cancelled or past their deadline end now; one already sent is cancelled at the
 * server too (notifications/cancelled), which may stop its work. */
static void sweep(struct stdio *io, struct wk_mcp_rpc_req **head, int64_t now)
{
    for (struct wk_mcp_rpc_req **p = head; *p;) {
        struct wk_mcp_rpc_req *r = *p;
        bool cancelled = atomic_load(&r->cancelled);
        if (!cancelled && (!r->deadline_ms || now < r->deadline_ms)) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        if (head == &io->sent && io->pid) {
            cJSON *params = cJSON_CreateObject();
            cJSON_AddNumberToObject(params, "requestId", (double)r->id);
            cJSON_AddStringToObject(params, "reason", cancelled ? "cancelled" : "timed out");
            size_t len;
            char *line = wk_mcp_rpc_frame(-1, "notifications/cancelled", params, &len);
            ag_strbuf_add(&io->wbuf, line, len);
            free(line);
        }
        if (cancelled)
            wk_mcp_rpc_fail(r, AG_CANCELLED, "MCP call cancelled");
        else
            wk_mcp_rpc_fail(r, AG_DEADLINE_EXCEEDED, "MCP server '%s' did not answer in time",
                            io->m->name);
    }
}

static int64_t nearest_deadline(const struct wk_mcp_rpc_req *r, int64_t d)
{
    for (; r; r = r->next)
        if (r->deadline_ms && (!d || r->deadline_ms < d))
            d = r->deadline_ms;
    return d;
}

/* Take the incoming requests; true once the client is stopping. */
static bool take_incoming(struct stdio *io)
{
    struct wk_mcp_rpc *m = io->m;
    pthread_mutex_lock(&m->mu);
    bool stop = m->stopped;
    struct wk_mcp_rpc_req *in = m->incoming;
    m->incoming = NULL;
    m->incoming_tail = &m->incoming;
    pthread_mutex_unlock(&m->mu);
    while (in) {
        struct wk_mcp_rpc_req *r = in;
        in = r->next;
        list_push(&io->waiting, r);
        io->last_used_ms = ag_now_mono_ms();
    }
    return stop;
}

/* Everything that is due now: timeouts, the idle stop, a start, sending what waits. */
static void advance(struct stdio *io, int64_t now)
{
    sweep(io, &io->waiting, now);
    sweep(io, &io->sent, now);
    if (io->pid && !io->waiting && !io->sent && now - io->last_used_ms >= STDIO_IDLE_MS)
        proc_gone(io, "idle", false);
    if (!io->pid && io->waiting && now >= io->next_start_ms)
        proc_start(io);
    while (io->pid && io->ready && io->waiting) {
        struct wk_mcp_rpc_req *r = io->waiting;
        io->waiting = r->next;
        ag_strbuf_add(&io->wbuf, r->line, r->len);
        if (r->id < 0)
            wk_mcp_rpc_finish(r, NULL, NULL);
        else
            list_push(&io->sent, r);
    }
}

static int poll_timeout(const struct stdio *io, int64_t now)
{
    int64_t d = nearest_deadline(io->waiting, nearest_deadline(io->sent, 0));
    if (!io->pid && io->waiting && (!d || io->next_start_ms < d))
        d = io->next_start_ms;
    if (io->pid && !io->waiting && !io->sent && (!d || io->last_used_ms + STDIO_IDLE_MS < d))
        d = io->last_used_ms + STDIO_IDLE_MS;
    if (!d)
        return -1;
    return d <= now ? 0 : d - now > 60000 ? 60000 : (int)(d - now);
}

static void io_wait(struct stdio *io)
{
    struct pollfd fds[4] = {{io->m->wake_fd, POLLIN, 0}};
    nfds_t n = 1;
    int iout = -1, ierr = -1, iin = -1;
    if (io->pid) {
        iout = (int)n;
        fds[n++] = (struct pollfd){io->out_fd, POLLIN, 0};
        ierr = (int)n;
        fds[n++] = (struct pollfd){io->err_fd, POLLIN, 0};
        if (io->wbuf.len) {
            iin = (int)n;
            fds[n++] = (struct pollfd){io->in_fd, POLLOUT, 0};
        }
    }
    if (poll(fds, n, poll_timeout(io, ag_now_mono_ms())) < 0)
        return;
    if (fds[0].revents) {
        uint64_t v;
        ssize_t r = read(io->m->wake_fd, &v, sizeof(v));
        (void)r;
    }
    if (ierr >= 0 && fds[ierr].revents && io->pid)
        read_err(io);
    if (iout >= 0 && fds[iout].revents && !read_out(io) && io->pid) {
        read_err(io); /* its last words, for the error */
        proc_gone(io, "crashed", true);
        return;
    }
    if (iin >= 0 && io->pid && fds[iin].revents)
        write_in(io);
}

static void *stdio_main(void *arg)
{
    struct stdio io = {.m = arg,
                       .in_fd = -1,
                       .out_fd = -1,
                       .err_fd = -1,
                       .init_id = -1,
                       .backoff_ms = STDIO_BACKOFF_MIN_MS};
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    while (!take_incoming(&io)) {
        advance(&io, ag_now_mono_ms());
        if (io.pid && io.wbuf.len)
            write_in(&io);
        io_wait(&io);
    }
    if (io.pid)
        proc_gone(&io, "stopped", false);
    char why[160];
    snprintf(why, sizeof(why), "MCP server '%s' was stopped (the node is shutting down)",
             io.m->name);
    fail_list(&io.waiting, AG_CANCELLED, why);
    fail_list(&io.sent, AG_CANCELLED, why);
    free(io.out.s);
    free(io.err.s);
    free(io.wbuf.s);
    return NULL;
}

/* --- the transport's entry points ---------------------------------------------------------- */

static int stdio_submit(struct wk_mcp_rpc *m, struct wk_mcp_rpc_req *r, struct ag_err *err)
{
    pthread_mutex_lock(&m->mu);
    if (m->stopped) {
        pthread_mutex_unlock(&m->mu);
        return ag_err_set(err, AG_UNAVAILABLE, "MCP server '%s' is stopped", m->name);
    }
    if (!m->thread_started) {
        m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int rc = m->wake_fd < 0 ? errno : pthread_create(&m->thread, NULL, stdio_main, m);
        if (rc != 0) {
            if (m->wake_fd >= 0)
                close(m->wake_fd);
            m->wake_fd = -1;
            pthread_mutex_unlock(&m->mu);
            return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                              "cannot start the I/O thread of MCP server '%s': %s", m->name,
                              strerror(rc));
        }
        m->thread_started = true;
    }
    /* Listening before the hand-over: a cancel from now on reaches the thread. */
    if (r->cancel) {
        r->listening = wk_cancel_listen(r->cancel, on_cancel, r);
        if (!r->listening)
            atomic_store(&r->cancelled, true); /* already cancelled: the thread ends it */
    }
    r->next = NULL;
    *m->incoming_tail = r;
    m->incoming_tail = &r->next;
    pthread_mutex_unlock(&m->mu);
    wake(m);
    return 0;
}

static void stdio_stop(struct wk_mcp_rpc *m)
{
    pthread_mutex_lock(&m->mu);
    bool join = m->thread_started && !m->stopped;
    m->stopped = true;
    pthread_mutex_unlock(&m->mu);
    if (!join)
        return;
    wake(m);
    pthread_join(m->thread, NULL);
    close(m->wake_fd);
    m->wake_fd = -1;
}

const struct wk_mcp_rpc_transport wk_mcp_stdio_transport = {
    .submit = stdio_submit,
    .stop = stdio_stop,
};
