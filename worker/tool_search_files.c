/* worker/tool_search_files.c - the "search_files" tool: lines of workspace files that match.
 *
 * Arguments {"pattern": string, "path"?: string, "glob"?: string, "literal"?: boolean}. pattern
 * is a POSIX extended regular expression (regcomp REG_EXTENDED), matched against each line, or,
 * with "literal": true, a plain substring. path (default ".") is a file or a directory searched
 * recursively; glob (fnmatch) keeps the files whose name matches it, or whose path relative to
 * the workspace does when the glob has a "/". Output: one line per match, "path:line:text", path
 * relative to the workspace, the text cut to 300 bytes; files in name order, depth first.
 *
 * Bounds: at most search_files.max_matches matches (default 200) and search_files.max_bytes of
 * output (default 64 KiB); files larger than search_files.max_file_bytes (default 8 MiB) and
 * files with a NUL byte in their first 8 KiB (binary) are skipped, and so are ".git" directories;
 * the last line says what was cut or skipped. The walk stops at the call's deadline or cancel.
 * Node options, each may be lowered by the spec's setting of the same name.
 *
 * Confinement: the starting path is resolved as worker/workspace.h does; the walk below it opens
 * every entry with O_NOFOLLOW relative to its directory's fd and never follows a symbolic link,
 * inside or out, so it cannot leave the workspace (nor loop).
 *
 * Threads: run() on the caller's thread; the work on the node's work pool (tool_job.c). */
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/tool_internal.h"
#include "worker/tool_rows.h"

#define SEARCH_MAX_MATCHES 200
#define SEARCH_MAX_BYTES (64 << 10)
#define SEARCH_MAX_FILE_BYTES (8 << 20)
#define SEARCH_LINE_BYTES 300
#define SEARCH_BINARY_PROBE 8192
#define SEARCH_MAX_DEPTH 64

static const char *const search_keys[] = {"max_matches", "max_bytes", "max_file_bytes", NULL};

struct search {
    struct wk_tool__job *job;
    const char *pattern, *glob;
    bool literal;
    regex_t re;
    size_t max_matches, max_bytes, max_file_bytes;
    FILE *out;
    size_t matches, bytes, skipped_large, skipped_binary;
    bool full;    /* a bound was reached */
    bool stopped; /* cancelled or late */
};

static bool line_matches(const struct search *s, const char *line)
{
    return s->literal ? strstr(line, s->pattern) != NULL : regexec(&s->re, line, 0, NULL, 0) == 0;
}

static void emit(struct search *s, const char *rel, int64_t no, const char *line)
{
    size_t n = strlen(line);
    size_t cut = n > SEARCH_LINE_BYTES ? ag_utf8_prefix(line, SEARCH_LINE_BYTES) : n;
    char *text = wk_tool__text(line, cut);
    char *entry = ag_xasprintf("%s:%lld:%s%s\n", rel, (long long)no, text, cut < n ? "..." : "");
    free(text);
    size_t len = strlen(entry);
    if (s->matches >= s->max_matches || s->bytes + len > s->max_bytes) {
        s->full = true;
    } else {
        fputs(entry, s->out);
        s->bytes += len;
        s->matches++;
    }
    free(entry);
}

static void search_buf(struct search *s, const char *rel, char *buf, size_t len)
{
    int64_t no = 0;
    for (char *line = buf; line < buf + len && !s->full;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        if (nl)
            *nl = '\0';
        no++;
        if (line_matches(s, line))
            emit(s, rel, no, line);
        line = nl ? nl + 1 : buf + len;
    }
}

static void search_file(struct search *s, int fd, const char *rel, const struct stat *st)
{
    if (st->st_size > (off_t)s->max_file_bytes) {
        s->skipped_large++;
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    bool more = false;
    if (wk_tool__read_fd(fd, s->max_file_bytes, rel, &buf, &len, &more, NULL) != 0)
        return;
    if (memchr(buf, '\0', len < SEARCH_BINARY_PROBE ? len : SEARCH_BINARY_PROBE))
        s->skipped_binary++;
    else
        search_buf(s, rel, buf, len);
    free(buf);
}

static bool glob_keeps(const struct search *s, const char *rel, const char *name)
{
    if (!s->glob)
        return true;
    return strchr(s->glob, '/') ? fnmatch(s->glob, rel, FNM_PATHNAME) == 0
                                : fnmatch(s->glob, name, 0) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(struct search *s, int dir_fd, const char *rel, int depth);

/* One entry of a directory, never followed if it is a link. */
static void visit(struct search *s, int dir_fd, const char *rel, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISLNK(st.st_mode))
        return;
    char *child = strcmp(rel, ".") == 0 ? ag_xstrdup(name) : ag_xasprintf("%s/%s", rel, name);
    if (S_ISDIR(st.st_mode) && strcmp(name, ".git") != 0 && depth < SEARCH_MAX_DEPTH) {
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            walk(s, fd, child, depth + 1); /* takes fd */
    } else if (S_ISREG(st.st_mode) && glob_keeps(s, child, name)) {
        int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            search_file(s, fd, child, &st);
            close(fd);
        }
    }
    free(child);
}

/* Search the directory dir_fd (taken: closed here), named rel. */
static void walk(struct search *s, int dir_fd, const char *rel, int depth)
{
    DIR *dir = fdopendir(dir_fd);
    if (!dir) {
        close(dir_fd);
        return;
    }
    size_t n = 0, cap = 16;
    char **names = ag_xmalloc(cap * sizeof(*names));
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap)
            names = ag_xrealloc(names, (cap *= 2) * sizeof(*names));
        names[n++] = ag_xstrdup(de->d_name);
    }
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (!s->full && !s->stopped) {
            s->stopped = wk_tool__job_over(s->job) != AG_OK;
            if (!s->stopped)
                visit(s, dirfd(dir), rel, names[i], depth);
        }
        free(names[i]);
    }
    free(names);
    closedir(dir);
}

/* The last line: how many matches, and what was cut or skipped. */
static void summary(const struct search *s)
{
    fprintf(s->out, "[%zu matches", s->matches);
    if (s->full)
        fputs("; stopped at search_files.max_matches or max_bytes: narrow the search", s->out);
    if (s->stopped)
        fputs("; stopped: the call was cancelled or ran out of time", s->out);
    if (s->skipped_binary)
        fprintf(s->out, "; skipped %zu binary files", s->skipped_binary);
    if (s->skipped_large)
        fprintf(s->out, "; skipped %zu files larger than %zu bytes", s->skipped_large,
                s->max_file_bytes);
    fputs("]", s->out);
}

/* Search from path (a file or a directory); the matches and summary go to s->out. */
static int search_from(struct search *s, const char *path, struct ag_err *err)
{
    int fd = wk_workspace_openat(&s->job->ws, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, err);
    if (fd < 0)
        return -1;
    char *rel = wk_workspace_rel(&s->job->ws, path, err);
    struct stat st;
    if (!rel || fstat(fd, &st) != 0) {
        close(fd);
        free(rel);
        return ag_err_set(err, AG_UNAVAILABLE, "cannot search '%s'", path);
    }
    if (S_ISDIR(st.st_mode)) {
        walk(s, fd, rel, 0);
    } else {
        if (S_ISREG(st.st_mode))
            search_file(s, fd, rel, &st);
        close(fd);
    }
    free(rel);
    return 0;
}

static char *search_files_work(struct wk_tool__job *job, bool *is_error)
{
    struct ag_err err = AG_ERR_INIT;
    struct search s = {.job = job};
    const char *path = ".";
    if (wk_tool__arg_str(job->args, "pattern", true, &s.pattern, &err) != 0 ||
        wk_tool__arg_str(job->args, "path", false, &path, &err) != 0 ||
        wk_tool__arg_str(job->args, "glob", false, &s.glob, &err) != 0 ||
        wk_tool__arg_bool(job->args, "literal", &s.literal, &err) != 0)
        return ag_xasprintf("tool 'search_files': %s", err.msg);
    if (!*s.pattern)
        return ag_xstrdup("tool 'search_files': argument 'pattern' is empty");
    int rc = s.literal ? 0 : regcomp(&s.re, s.pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &s.re, why, sizeof(why));
        return ag_xasprintf("tool 'search_files': pattern '%s' is not a POSIX extended regular "
                            "expression: %s (or pass \"literal\": true)",
                            s.pattern, why);
    }
    s.max_matches = (size_t)wk_tool__limit(job, "max_matches", SEARCH_MAX_MATCHES);
    s.max_bytes = (size_t)wk_tool__limit(job, "max_bytes", SEARCH_MAX_BYTES);
    s.max_file_bytes = (size_t)wk_tool__limit(job, "max_file_bytes", SEARCH_MAX_FILE_BYTES);
    char *body = NULL;
    size_t len = 0;
    s.out = open_memstream(&body, &len);
    rc = search_from(&s, path, &err);
    if (rc == 0)
        summary(&s);
    fclose(s.out);
    if (!s.literal)
        regfree(&s.re);
    if (rc != 0) {
        free(body);
        return ag_xstrdup(err.msg);
    }
    char *text = wk_tool__text(body, len); /* names need not be UTF-8 */
    free(body);
    *is_error = false;
    return text;
}

int wk_tool__search_files_check_config(const struct wk_config *c, struct ag_err *err)
{
    return wk_tool__check_limits(c, search_keys, err);
}

int wk_tool__search_files_check_settings(const char *settings_json, struct ag_err *err)
{
    return wk_tool__check_settings(settings_json, search_keys, err);
}

char *wk_tool__search_files_subject(const char *args_json)
{
    return wk_tool__subject_arg(args_json, "path", ".");
}

int wk_tool__search_files_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                              const char *args_json, wk_tool_done_fn *done, void *arg,
                              struct ag_err *err)
{
    return wk_tool__job_start(t, ctx, args_json, search_files_work, false, done, arg, err);
}
