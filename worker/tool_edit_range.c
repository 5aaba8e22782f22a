/* worker/tool_edit_range.c - the "edit_range" tool: replace a range of lines of a workspace file.
 *
 * Arguments {"path": string, "start": integer, "end": integer, "replacement": string}: lines
 * start..end (1-based, inclusive, as read_lines numbers them) become the replacement's lines.
 * end = start - 1 replaces nothing: the replacement is inserted before line start (start = the
 * line count + 1 appends). An empty replacement deletes the lines. The replacement's last line
 * gets a newline if it has none, and so does a last line without one that lines are appended
 * after. The file must exist and be at most edit_range.max_bytes (node option, may be lowered by
 * the spec's setting; default 16 MiB). It is replaced atomically, as write_file does, and a
 * symbolic link as the last component is refused the same way.
 *
 * Not idempotent: replacing lines 3..5 twice replaces what the first call put there, so a call
 * lost after it started gets "outcome unknown" from the journal rather than running again.
 *
 * Threads: run() on the caller's thread; the work on the node's work pool (tool_job.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define EDIT_RANGE_MAX_BYTES (16 << 20)

static const char *const edit_range_keys[] = {"max_bytes", NULL};

struct edit {
    const char *path, *replacement;
    int64_t start, end;
};

/* The offset where line `no` (1-based) starts in buf, or len if the file has fewer lines. */
static size_t line_offset(const char *buf, size_t len, int64_t no)
{
    size_t off = 0;
    for (int64_t i = 1; i < no && off < len; i++) {
        const char *nl = memchr(buf + off, '\n', len - off);
        off = nl ? (size_t)(nl - buf) + 1 : len;
    }
    return off;
}

static int64_t count_lines(const char *buf, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    return n + (len > 0 && buf[len - 1] != '\n');
}

/* The new content: buf with e's lines replaced. Owned, its length in *out_len. */
static char *apply(const char *buf, size_t len, const struct edit *e, size_t *out_len)
{
    size_t from = line_offset(buf, len, e->start), to = line_offset(buf, len, e->end + 1);
    size_t rlen = strlen(e->replacement);
    bool add_nl = rlen > 0 && e->replacement[rlen - 1] != '\n';
    /* Appending after a last line that has no newline: give it one first. */
    bool fix_last = from == len && len > 0 && buf[len - 1] != '\n' && rlen > 0;
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    fwrite(buf, 1, from, f);
    if (fix_last)
        fputc('\n', f);
    fwrite(e->replacement, 1, rlen, f);
    if (add_nl)
        fputc('\n', f);
    fwrite(buf + to, 1, len - to, f);
    fclose(f);
    *out_len = n;
    return out;
}

static char *edit_file(struct wk_tool__job *job, const struct edit *e, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    struct wk_workspace_parent p;
    if (wk_workspace_parent(&job->ws, e->path, false, &p, &err) != 0)
        return ag_xstrdup(err.msg);
    char *buf = NULL, *out = NULL, *result = NULL;
    size_t len = 0, out_len = 0;
    bool more = false;
    int64_t max = wk_tool__limit(job, "max_bytes", EDIT_RANGE_MAX_BYTES);
    int fd = p.exists ? openat(p.dir_fd, p.leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                      : -1;
    if (!p.exists || fd < 0) {
        result = ag_xasprintf("cannot edit '%s': %s", e->path,
                              p.exists ? strerror(errno) : "no such file in the workspace");
    } else if (!S_ISREG(p.st.st_mode)) {
        result = ag_xasprintf("cannot edit '%s': not a regular file", e->path);
    } else if (wk_tool__read_fd(fd, (size_t)max, e->path, &buf, &len, &more, &err) != 0) {
        result = ag_xstrdup(err.msg);
    } else if (more) {
        result = ag_xasprintf("cannot edit '%s': it is larger than the %lld bytes this agent may "
                              "edit",
                              e->path, (long long)max);
    } else {
        int64_t lines = count_lines(buf, len);
        if (e->start < 1 || e->start > lines + 1 || e->end < e->start - 1 || e->end > lines) {
            result = ag_xasprintf("cannot edit '%s': lines %lld..%lld are not in the file, which "
                                  "has %lld lines (end = start - 1 inserts before start)",
                                  e->path, (long long)e->start, (long long)e->end,
                                  (long long)lines);
        } else {
            out = apply(buf, len, e, &out_len);
            if (wk_workspace_replace(&p, out, out_len, &err) != 0) {
                result = ag_xstrdup(err.msg);
            } else {
                *is_error = false;
                result = ag_xasprintf(
                    "replaced lines %lld..%lld of '%s' (%lld lines) with %lld "
                    "lines; it now has %lld lines",
                    (long long)e->start, (long long)e->end, e->path,
                    (long long)(e->end - e->start + 1),
                    (long long)count_lines(e->replacement, strlen(e->replacement)),
                    (long long)count_lines(out, out_len));
            }
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    free(out);
    wk_workspace_parent_release(&p);
    return result;
}

static char *edit_range_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    struct edit e = {NULL, NULL, 0, 0};
    if (wk_tool__arg_str(job->args, "path", true, &e.path, &err) != 0 ||
        wk_tool__arg_int(job->args, "start", true, &e.start, &err) != 0 ||
        wk_tool__arg_int(job->args, "end", true, &e.end, &err) != 0 ||
        wk_tool__arg_str(job->args, "replacement", true, &e.replacement, &err) != 0)
        return ag_xasprintf("tool 'edit_range': %s", err.msg);
    return edit_file(job, &e, is_error);
}

int wk_tool__edit_range_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, edit_range_keys, err);
}

int wk_tool__edit_range_check_settings(const char *settings_json, struct ag_err *err)
{
    return wk_tool__check_settings(settings_json, edit_range_keys, err);
}

char *wk_tool__edit_range_subject(const char *args_json)
{
    return wk_tool__subject_arg(args_json, "path", NULL);
}

int wk_tool__edit_range_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err)
{
    return wk_tool__job_start(t, ctx, args_json, edit_range_work, false, done, arg, err);
}
