/* worker/tool_args.c - the small pieces the builtin file tools and shell share: reading their
 * arguments, their limits (node options lowered by spec settings) and making text safe to send
 * (see tool_internal.h). No state: safe from any thread. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/utf8.h"
#include "common/xalloc.h"
#include "worker/tool_internal.h"

int wk_tool__arg_str(const cJSON *args, const char *key, bool required, const char **out,
                     struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v))
        return required ? ag_err_set(err, AG_INVALID_ARGUMENT, "argument '%s' is required", key)
                        : 0;
    if (!cJSON_IsString(v))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "argument '%s' must be a string", key);
    *out = v->valuestring;
    return 0;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = n;
    return true;
}

int wk_tool__arg_int(const cJSON *args, const char *key, bool required, int64_t *out,
                     struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v))
        return required ? ag_err_set(err, AG_INVALID_ARGUMENT, "argument '%s' is required", key)
                        : 0;
    /* Models sometimes quote numbers; "12" means 12. */
    if (cJSON_IsString(v) && parse_int(v->valuestring, out))
        return 0;
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
        fabs(v->valuedouble) < 9e15) {
        *out = (int64_t)v->valuedouble;
        return 0;
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT, "argument '%s' must be an integer", key);
}

int wk_tool__arg_bool(const cJSON *args, const char *key, bool *out, struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "argument '%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int wk_tool__parse_size(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || n <= 0)
        return -1;
    static const struct {
        const char *suffix;
        int shift;
    } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    for (size_t i = 0; i < AG_ARRAY_SIZE(units); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        if (n > (INT64_MAX >> units[i].shift))
            return -1;
        *out = (int64_t)n << units[i].shift;
        return 0;
    }
    return -1;
}

int wk_tool__check_limits(const struct wk_config *c, const char *const *keys, struct ag_err *err)
{
    if (wk_config_check_keys(c, keys, err) != 0)
        return -1;
    for (const char *const *k = keys; *k; k++) {
        const char *v = wk_config_get(c, *k);
        int64_t n;
        if (v && wk_tool__parse_size(v, &n) != 0)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "option '%s.%s=%s' needs a positive number such as 1000, 64KiB "
                              "or 1MiB",
                              c->owner, *k, v);
    }
    return 0;
}

/* A positive whole number, or a size string, from a spec's setting; -1 if neither. */
static int setting_value(const cJSON *v, int64_t *out)
{
    if (cJSON_IsString(v))
        return wk_tool__parse_size(v->valuestring, out);
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 9e15 &&
        v->valuedouble == floor(v->valuedouble)) {
        *out = (int64_t)v->valuedouble;
        return 0;
    }
    return -1;
}

static bool in_list(const char *key, const char *const *keys)
{
    for (const char *const *k = keys; *k; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return false;
}

static int unknown_setting(const char *key, const char *const *keys, struct ag_err *err)
{
    char known[160] = "";
    for (const char *const *k = keys; *k; k++)
        snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                 k == keys ? "" : ", ", *k);
    return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown tool setting '%s' (it takes: %s)", key,
                      known);
}

int wk_tool__check_settings(const char *settings_json, const char *const *keys, struct ag_err *err)
{
    cJSON *s = cJSON_Parse(settings_json ? settings_json : "{}");
    int rc = 0;
    if (!cJSON_IsObject(s))
        rc = ag_err_set(err, AG_INVALID_ARGUMENT, "tool settings must be a JSON object");
    for (const cJSON *it = cJSON_IsObject(s) ? s->child : NULL; it && rc == 0; it = it->next) {
        int64_t n;
        if (!in_list(it->string, keys))
            rc = unknown_setting(it->string, keys, err);
        else if (setting_value(it, &n) != 0)
            rc = ag_err_set(err, AG_INVALID_ARGUMENT,
                            "tool setting '%s' needs a positive number such as 1000 or \"64KiB\"",
                            it->string);
    }
    cJSON_Delete(s);
    return rc;
}

int64_t wk_tool__limit(const struct wk_tool__job *job, const char *key, int64_t def)
{
    int64_t limit = def, n;
    const char *v = wk_config_get(job->ctx.config, key);
    if (v && wk_tool__parse_size(v, &n) == 0)
        limit = n;
    cJSON *s = job->ctx.settings_json ? cJSON_Parse(job->ctx.settings_json) : NULL;
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(s, key);
    if (sv && setting_value(sv, &n) == 0 && n < limit)
        limit = n;
    cJSON_Delete(s);
    return limit;
}

/* Lexical clean-up of a path, in place: no empty or "." components, ".." folded into the
 * component before it where there is one. */
static void clean_path(char *p)
{
    bool abs = p[0] == '/';
    char *out = p + abs, *in = p + abs;
    char *start = out; /* ".." never folds past here */
    while (*in) {
        char *end = strchr(in, '/');
        size_t n = end ? (size_t)(end - in) : strlen(in);
        if (n == 0 || (n == 1 && in[0] == '.')) {
            /* skip */
        } else if (n == 2 && in[0] == '.' && in[1] == '.' && out > start &&
                   !(out - start >= 2 && out[-1] == '.' && out[-2] == '.' &&
                     (out - start == 2 || out[-3] == '/'))) {
            while (out > start && out[-1] != '/')
                out--;
            if (out > start)
                out--;
        } else if (!(n == 2 && in[0] == '.' && in[1] == '.' && abs)) {
            if (out > start)
                *out++ = '/';
            memmove(out, in, n);
            out += n;
        }
        in += n + (end != NULL);
    }
    if (out == p)
        *out++ = '.';
    *out = '\0';
}

char *wk_tool__subject_arg(const char *args_json, const char *key, const char *def)
{
    cJSON *args = cJSON_Parse(args_json ? args_json : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    char *out = NULL;
    if (cJSON_IsString(v))
        out = ag_xstrdup(v->valuestring);
    else if (def)
        out = ag_xstrdup(def);
    cJSON_Delete(args);
    if (out && *out)
        clean_path(out);
    return out;
}

int wk_tool__open_file(const struct wk_tool__job *job, const char *path, struct stat *st,
                       struct ag_err *err)
{
    int fd = wk_workspace_openat(&job->ws, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, err);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        bool dir = S_ISDIR(st->st_mode);
        close(fd);
        return dir ? ag_err_set(err, AG_FAILED_PRECONDITION,
                                "'%s' is a directory; list_dir shows what it holds", path)
                   : ag_err_set(err, AG_FAILED_PRECONDITION, "'%s' is not a regular file", path);
    }
    return fd;
}

int wk_tool__read_fd(int fd, size_t max, const char *shown, char **buf, size_t *len, bool *more,
                     struct ag_err *err)
{
    size_t cap = 4096, n = 0;
    char *b = ag_xmalloc(cap + 1);
    *more = false;
    for (;;) {
        if (n == cap) {
            if (n >= max + 1)
                break;
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            b = ag_xrealloc(b, cap + 1);
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(b);
            return ag_err_set(err, AG_UNAVAILABLE, "cannot read '%s': %s", shown, strerror(errno));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        n = ag_utf8_prefix(b, max);
        *more = true;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* The length of the well-formed character at s (n bytes left), or 0. */
static size_t char_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n || !ag_utf8_valid((const char *)s, len))
        return 0;
    return len;
}

char *wk_tool__text(const char *s, size_t n)
{
    /* Each bad byte becomes 3 bytes at most. */
    char *out = ag_xmalloc(n * 3 + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] ? char_len(p + i, n - i) : 0;
        if (len) {
            memcpy(o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}
