/* worker/tool_list_dir.c - the "list_dir" tool: what a workspace directory holds.
 *
 * Arguments {"path"?: string} (default "."). The output's first line names the directory and its
 * entry count; then one line per entry, sorted by name (bytes, as strcmp), tab-separated: the
 * type ("file", "dir", "link" or "other"), the size in bytes ("-" for a directory), and the name
 * (a directory's with a trailing "/", a link's followed by " -> " and its target, which is not
 * followed). "." and ".." are left out. At most list_dir.max_entries entries (node option, may be
 * lowered by the spec's setting; default 1000) are shown, then a line with how many were left
 * out. Paths as worker/workspace.h resolves them.
 *
 * Threads: run() on the caller's thread; the work on the node's work pool (tool_job.c). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define LIST_DIR_MAX_ENTRIES 1000

static const char *const list_dir_keys[] = {"max_entries", NULL};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir (owned, sorted), their count in *n. */
static char **read_names(DIR *dir, size_t *n)
{
    size_t cap = 16;
    char **names = ag_xmalloc(cap * sizeof(*names));
    *n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (*n == cap)
            names = ag_xrealloc(names, (cap *= 2) * sizeof(*names));
        names[(*n)++] = ag_xstrdup(de->d_name);
    }
    qsort(names, *n, sizeof(*names), cmp_names);
    return names;
}

static void print_entry(FILE *out, int dir_fd, const char *name)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        fprintf(out, "other\t-\t%s\n", name);
    } else if (S_ISDIR(st.st_mode)) {
        fprintf(out, "dir\t-\t%s/\n", name);
    } else if (S_ISREG(st.st_mode)) {
        fprintf(out, "file\t%lld\t%s\n", (long long)st.st_size, name);
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dir_fd, name, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        fprintf(out, "link\t%lld\t%s -> %s\n", (long long)st.st_size, name, target);
    } else {
        fprintf(out, "other\t-\t%s\n", name);
    }
}

static char *list_dir_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    const char *path = ".";
    if (wk_tool__arg_str(job->args, "path", false, &path, &err) != 0)
        return ag_xasprintf("tool 'list_dir': %s", err.msg);
    int fd = wk_workspace_openat(&job->ws, path, O_RDONLY | O_DIRECTORY, &err);
    if (fd < 0)
        return ag_xstrdup(err.msg);
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return ag_xasprintf("cannot list '%s': out of memory or file handles", path);
    }
    size_t n = 0, max = (size_t)wk_tool__limit(job, "max_entries", LIST_DIR_MAX_ENTRIES);
    char **names = read_names(dir, &n);
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    fprintf(out, "'%s': %zu entries\n", path, n);
    for (size_t i = 0; i < n; i++) {
        if (i < max)
            print_entry(out, dirfd(dir), names[i]);
        free(names[i]);
    }
    if (n > max)
        fprintf(out, "[%zu more entries not shown]\n", n - max);
    fclose(out);
    free(names);
    closedir(dir);
    char *text = wk_tool__text(body, len);
    free(body);
    *is_error = false;
    return text;
}

int wk_tool__list_dir_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, list_dir_keys, err);
}

int wk_tool__list_dir_check_settings(const char *settings_json, struct ag_err *err)
{
    return wk_tool__check_settings(settings_json, list_dir_keys, err);
}

char *wk_tool__list_dir_subject(const char *args_json)
{
    return wk_tool__subject_arg(args_json, "path", ".");
}

int wk_tool__list_dir_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                          const char *args_json, wk_tool_done_fn *done, void *arg,
                          struct ag_err *err)
{
    return wk_tool__job_start(t, ctx, args_json, list_dir_work, false, done, arg, err);
}
