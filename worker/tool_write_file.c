/* worker/tool_write_file.c - the "write_file" tool: create or replace a workspace file.
 *
 * Arguments {"path": string, "content": string}. Missing parent directories are created. The
 * file is replaced atomically (worker/workspace.h, wk_workspace_replace): a reader sees the old
 * or the new content, never a mix, and a crash leaves one or the other. Writing the same content
 * twice leaves what writing it once does, so the tool is declared idempotent. A path whose last
 * component is a symbolic link is refused (naming its target, or saying that it leads out of the
 * workspace) rather than replacing the link or writing through it. Content longer than
 * write_file.max_bytes (node option, may be lowered by the spec's setting; default 16 MiB) is
 * refused. The output says how many bytes were written to which path.
 *
 * Threads: run() on the caller's thread; the work on the node's work pool (tool_job.c). */
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define WRITE_FILE_MAX_BYTES (16 << 20)

static const char *const write_file_keys[] = {"max_bytes", NULL};

static char *write_file_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    const char *path = NULL, *content = NULL;
    if (wk_tool__arg_str(job->args, "path", true, &path, &err) != 0 ||
        wk_tool__arg_str(job->args, "content", true, &content, &err) != 0)
        return ag_xasprintf("tool 'write_file': %s", err.msg);
    size_t len = strlen(content);
    int64_t max = wk_tool__limit(job, "max_bytes", WRITE_FILE_MAX_BYTES);
    if ((int64_t)len > max)
        return ag_xasprintf("tool 'write_file': the content is %zu bytes, more than the %lld "
                            "this agent may write at once",
                            len, (long long)max);
    struct wk_workspace_parent p;
    if (wk_workspace_parent(&job->ws, path, true, &p, &err) != 0)
        return ag_xstrdup(err.msg);
    bool existed = p.exists;
    int rc = wk_workspace_replace(&p, content, len, &err);
    wk_workspace_parent_release(&p);
    if (rc != 0)
        return ag_xstrdup(err.msg);
    *is_error = false;
    return ag_xasprintf("wrote %zu bytes to '%s' (%s)", len, path,
                        existed ? "replaced" : "created");
}

int wk_tool__write_file_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, write_file_keys, err);
}

int wk_tool__write_file_check_settings(const char *settings_json, struct ag_err *err)
{
    return wk_tool__check_settings(settings_json, write_file_keys, err);
}

char *wk_tool__write_file_subject(const char *args_json)
{
    return wk_tool__subject_arg(args_json, "path", NULL);
}

int wk_tool__write_file_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err)
{
    return wk_tool__job_start(t, ctx, args_json, write_file_work, false, done, arg, err);
}
