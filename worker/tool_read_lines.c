/* worker/tool_read_lines.c - the "read_lines" tool: a range of lines of a workspace file,
 * numbered, so that a model can quote them to edit_range.
 *
 * Arguments {"path": string, "start"?: integer, "end"?: integer}: lines start..end, 1-based and
 * inclusive (default: the first line to the last). Each output line is its number, a tab, and
 * the line's text (bytes that are not UTF-8, and NULs, become U+FFFD). An end past the file's
 * last line is clamped and the output says where the file ends; a start past it is an error
 * naming the file's line count. The output is at most read_lines.max_bytes (node option, may be
 * lowered by the spec's setting; default 1 MiB) and ends with a note of the next line to ask for
 * when cut short; a first line longer than that is shown cut, so asking again moves on. Lines are
 * read with at most that many bytes kept, so one huge line cannot take the node's memory. Paths
 * as worker/workspace.h resolves them.
 *
 * Threads: run() on the caller's thread; the work on the node's work pool (tool_job.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define READ_LINES_MAX_BYTES (1 << 20)

static const char *const read_lines_keys[] = {"max_bytes", NULL};

struct range {
    int64_t start, end;
    size_t max;
};

/* The next line of in, without its newline, into *line (grown as needed, at most max bytes kept:
 * a longer line is cut, so one huge line cannot take the node's memory). Its kept length, or -1
 * at the end of the file. */
static ssize_t next_line(FILE *in, char **line, size_t *cap, size_t max)
{
    size_t n = 0;
    int c = getc_unlocked(in);
    if (c == EOF)
        return -1;
    for (; c != EOF && c != '\n'; c = getc_unlocked(in)) {
        if (n == max)
            continue;
        if (n + 1 >= *cap) {
            *cap = *cap ? *cap * 2 : 256;
            *line = ag_xrealloc(*line, *cap);
        }
        (*line)[n++] = (char)c;
    }
    return (ssize_t)n;
}

/* Writes lines r->start..r->end of in to out; returns the number of the last line read. */
static int64_t copy_lines(FILE *in, FILE *out, const struct range *r, int64_t *cut_at)
{
    char *line = NULL;
    size_t cap = 0, written = 0;
    int64_t no = 0;
    ssize_t n;
    *cut_at = 0;
    while ((n = next_line(in, &line, &cap, r->max)) >= 0) {
        no++;
        if (no < r->start)
            continue;
        if (no > r->end)
            break;
        char *text = wk_tool__text(line ? line : "", (size_t)n);
        char *numbered = ag_xasprintf("%lld\t%s\n", (long long)no, text);
        free(text);
        size_t len = strlen(numbered);
        if (written + len > r->max) {
            /* A first line longer than the bound is shown cut, so that asking again moves on. */
            if (written == 0) {
                fwrite(numbered, 1, ag_utf8_prefix(numbered, r->max), out);
                fputc('\n', out);
            }
            *cut_at = written == 0 ? no + 1 : no;
            free(numbered);
            break;
        }
        fputs(numbered, out);
        written += len;
        free(numbered);
    }
    free(line);
    return no;
}

static char *read_lines_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    const char *path = NULL;
    struct range r = {1, INT64_MAX, (size_t)wk_tool__limit(job, "max_bytes", READ_LINES_MAX_BYTES)};
    if (wk_tool__arg_str(job->args, "path", true, &path, &err) != 0 ||
        wk_tool__arg_int(job->args, "start", false, &r.start, &err) != 0 ||
        wk_tool__arg_int(job->args, "end", false, &r.end, &err) != 0)
        return ag_xasprintf("tool 'read_lines': %s", err.msg);
    if (r.start < 1 || r.end < r.start)
        return ag_xasprintf("tool 'read_lines': lines %lld..%lld are not a range; lines are "
                            "numbered from 1 and end must not be before start",
                            (long long)r.start, (long long)r.end);
    struct stat st;
    int fd = wk_tool__open_file(job, path, &st, &err);
    if (fd < 0)
        return ag_xstrdup(err.msg);
    FILE *in = fdopen(fd, "r");
    if (!in) {
        close(fd);
        return ag_xasprintf("cannot read '%s': out of file handles", path);
    }
    char *body = NULL;
    size_t body_len = 0;
    FILE *out = open_memstream(&body, &body_len);
    int64_t cut_at = 0, last = copy_lines(in, out, &r, &cut_at);
    fclose(out);
    fclose(in);
    char *result;
    if (last == 0) {
        result = ag_xasprintf("'%s' is empty", path);
        *is_error = false;
    } else if (r.start > last && cut_at == 0) {
        result = ag_xasprintf("line %lld is past the end of '%s', which has %lld lines",
                              (long long)r.start, path, (long long)last);
    } else if (cut_at) {
        result = ag_xasprintf("%s[cut at %zu bytes; ask for lines from %lld on]", body, r.max,
                              (long long)cut_at);
        *is_error = false;
    } else if (r.end != INT64_MAX && r.end > last) {
        result = ag_xasprintf("%s[end of file: '%s' has %lld lines]", body, path, (long long)last);
        *is_error = false;
    } else {
        result = ag_xstrdup(body);
        *is_error = false;
    }
    free(body);
    return result;
}

int wk_tool__read_lines_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, read_lines_keys, err);
}

int wk_tool__read_lines_check_settings(const char *settings_json, struct ag_err *err)
{
    return wk_tool__check_settings(settings_json, read_lines_keys, err);
}

char *wk_tool__read_lines_subject(const char *args_json)
{
    return wk_tool__subject_arg(args_json, "path", NULL);
}

int wk_tool__read_lines_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err)
{
    return wk_tool__job_start(t, ctx, args_json, read_lines_work, false, done, arg, err);
}
