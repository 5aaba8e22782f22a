/* hub/audit.c - the audit log file (see audit.h): JSON lines with cJSON, size-based rotation.
 *
 * Owns: the file's descriptor and its size so far, under mu. Rotation renames in place (FILE.k
 * to FILE.k+1, oldest first) while holding mu, so no line is written between the rename and the
 * reopen. */
#include "hub/audit.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"

#define AUDIT_DEFAULT_MAX (64u << 20)
#define AUDIT_DEFAULT_KEEP 5

struct hub_audit {
    pthread_mutex_t mu;
    char *path;
    size_t max_bytes;
    unsigned keep;
    int fd;
    size_t size;
    uint64_t failures;
    bool failing; /* in a streak of failed writes: logged once */
};

static int open_file(struct hub_audit *a, struct ag_err *err)
{
    a->fd = open(a->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (a->fd < 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot open audit log '%s': %s", a->path,
                          strerror(errno));
    struct stat st;
    a->size = fstat(a->fd, &st) == 0 ? (size_t)st.st_size : 0;
    return 0;
}

struct hub_audit *hub_audit_open(const struct hub_audit_opts *o, struct ag_err *err)
{
    struct hub_audit *a = ag_xcalloc(1, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    a->path = ag_xstrdup(o->path);
    a->max_bytes = o->max_bytes ? o->max_bytes : AUDIT_DEFAULT_MAX;
    a->keep = o->keep ? o->keep : AUDIT_DEFAULT_KEEP;
    if (open_file(a, err) != 0) {
        hub_audit_close(a);
        return NULL;
    }
    return a;
}

void hub_audit_close(struct hub_audit *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

/* FILE -> FILE.1 -> ... -> FILE.keep (dropped beyond). Under mu. */
static void rotate(struct hub_audit *a)
{
    size_t n = strlen(a->path) + 16;
    char *from = ag_xmalloc(n), *to = ag_xmalloc(n);
    snprintf(to, n, "%s.%u", a->path, a->keep);
    unlink(to);
    for (unsigned k = a->keep; k > 1; k--) {
        snprintf(from, n, "%s.%u", a->path, k - 1);
        snprintf(to, n, "%s.%u", a->path, k);
        rename(from, to); /* a missing FILE.k-1 is fine */
    }
    snprintf(to, n, "%s.1", a->path);
    close(a->fd);
    if (rename(a->path, to) != 0)
        ag_log_warn("audit.rotate_failed", "path=%s err=%s", ag_log_q(a->path),
                    ag_log_q(strerror(errno)));
    struct ag_err err = AG_ERR_INIT;
    if (open_file(a, &err) != 0)
        ag_log_error("audit.reopen_failed", "err=%s", ag_log_q(err.msg));
    free(from);
    free(to);
}

static void add(cJSON *o, const char *k, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, k, v);
}

void hub_audit_write(struct hub_audit *a, const struct hub_audit_rec *r)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(
        o, "time", ag_clock_rfc3339(t, sizeof(t), r->time_ns ? r->time_ns : ag_now_unix_ns()));
    add(o, "identity", r->identity);
    add(o, "role", r->role);
    add(o, "rpc", r->rpc);
    add(o, "agent_id", r->agent_id);
    add(o, "namespace", r->namespace_);
    add(o, "decision", r->decision);
    add(o, "code", r->code);
    add(o, "reason", r->reason);
    add(o, "peer", r->peer);
    char *line = cJSON_PrintUnformatted(o); /* escapes newlines: one line, always */
    cJSON_Delete(o);
    size_t len = strlen(line);
    line[len++] = '\n'; /* over the NUL: the buffer has it */
    pthread_mutex_lock(&a->mu);
    if (a->size && a->size + len > a->max_bytes)
        rotate(a);
    ssize_t w = a->fd >= 0 ? write(a->fd, line, len) : -1;
    if (w == (ssize_t)len) {
        a->size += len;
        if (a->failing)
            ag_log_info("audit.writing", "path=%s lost=%llu", ag_log_q(a->path),
                        (unsigned long long)a->failures);
        a->failing = false;
    } else {
        a->failures++;
        if (!a->failing)
            ag_log_error("audit.write_failed", "path=%s err=%s", ag_log_q(a->path),
                         ag_log_q(w < 0 ? strerror(errno) : "short write"));
        a->failing = true;
    }
    pthread_mutex_unlock(&a->mu);
    cJSON_free(line);
}

uint64_t hub_audit_failures(struct hub_audit *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t f = a->failures;
    pthread_mutex_unlock(&a->mu);
    return f;
}
