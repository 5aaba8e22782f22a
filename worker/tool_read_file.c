/* worker/tool_read_file.c - the "read_file" tool: a text file of the agent's workspace.
 *
 * Arguments {"path": string, "max_bytes"?: integer}. The output is the file's text, at most
 * max_bytes (the smallest of the argument, the spec's setting and the node's option
 * read_file.max_bytes, default 1 MiB), cut at a character boundary; a longer file ends with a
 * line saying how much was shown and that read_lines reads further. Text only: a file with a NUL
 * byte in what would be shown is refused as binary (the model could do nothing with it), and
 * bytes that are not UTF-8 become U+FFFD. Paths as worker/workspace.h resolves them.
 *
 * Threads: run() on the caller's thread; the work on the node's work pool (tool_job.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define READ_FILE_MAX_BYTES (1 << 20)

static const char *const read_file_keys[] = {"max_bytes", NULL};

static char *read_file_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    const char *path = NULL;
    int64_t max = wk_tool__limit(job, "max_bytes", READ_FILE_MAX_BYTES), want = max;
    if (wk_tool__arg_str(job->args, "path", true, &path, &err) != 0 ||
        wk_tool__arg_int(job->args, "max_bytes", false, &want, &err) != 0)
        return ag_xasprintf("tool 'read_file': %s", err.msg);
    if (want < 1)
        return ag_xstrdup("tool 'read_file': argument 'max_bytes' must be at least 1");
    if (want < max)
        max = want;
    struct stat st;
    int fd = wk_tool__open_file(job, path, &st, &err);
    if (fd < 0)
        return ag_xstrdup(err.msg);
    char *buf = NULL;
    size_t len = 0;
    bool more = false;
    int rc = wk_tool__read_fd(fd, (size_t)max, path, &buf, &len, &more, &err);
    close(fd);
    if (rc != 0)
        return ag_xstrdup(err.msg);
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        char *out = ag_xasprintf("'%s' looks binary (a NUL byte at offset %zu); read_file reads "
                                 "text files only",
                                 path, (size_t)(nul - buf));
        free(buf);
        return out;
    }
    char *text = wk_tool__text(buf, len);
    free(buf);
    *is_error = false;
    if (!more)
        return text;
    char *out = ag_xasprintf("%s\n[truncated: showed the first %zu of %lld bytes of '%s'; "
                             "read_lines reads further]",
                             text, len, (long long)st.st_size, path);
    free(text);
    return out;
}

int wk_tool__read_file_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, read_file_keys, err);
}

int wk_tool__read_file_check_settings(const char *settings_json, struct ag_err *err)
{
    return wk_tool__check_settings(settings_json, read_file_keys, err);
}

char *wk_tool__read_file_subject(const char *args_json)
{
    return wk_tool__subject_arg(args_json, "path", NULL);
}

int wk_tool__read_file_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                           const char *args_json, wk_tool_done_fn *done, void *arg,
                           struct ag_err *err)
{
    return wk_tool__job_start(t, ctx, args_json, read_file_work, false, done, arg, err);
}
