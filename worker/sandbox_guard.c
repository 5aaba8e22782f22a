/* worker/sandbox_guard.c - a first, small layer in front of the sandbox: refuse shell commands
 * shaped like a wipe of the whole system, so that "rm -rf /" is refused the same way every time
 * and never reaches even a sandbox.
 *
 * Not the security boundary (the sandbox is; a determined command can always be spelled past a
 * pattern): it reads the command as the shell would split it, not as a string. Words are split
 * on blanks with '...', "..." and backslash quoting removed, and simple commands on ; & | ( ) `
 * and newlines. In each simple command, leading VAR=value words and wrappers (sudo, env, nice,
 * nohup, time, command, exec, xargs, busybox) are skipped, then the rules look at the program's
 * base name and its words. A path is "the root" when it cleans ("//", "/.", "/usr/..") to "/"
 * or to the glob of everything in it ("/" and a star); "the home" is ~, ~/, $HOME, ${HOME}.
 *
 * Threads: pure functions. */
#include "worker/sandbox.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define GUARD_MAX_WORDS 256

/* "/" or "/" plus a star after cleaning: repeated slashes, "." and ".." (which cannot go above "/"). */
static bool is_root(const char *w)
{
    if (w[0] != '/')
        return false;
    int depth = 0;
    const char *p = w;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = p + strcspn(p, "/");
        size_t n = (size_t)(e - p);
        if (n == 0)
            break;
        if (n == 1 && p[0] == '*' && !*e && depth == 0)
            return true;
        if (n == 2 && p[0] == '.' && p[1] == '.')
            depth = depth ? depth - 1 : 0;
        else if (!(n == 1 && p[0] == '.'))
            depth++;
        p = e;
    }
    return depth == 0;
}

static bool is_home(const char *w)
{
    return strcmp(w, "~") == 0 || strcmp(w, "~/") == 0 || strcmp(w, "$HOME") == 0 ||
           strcmp(w, "${HOME}") == 0 || strcmp(w, "$HOME/") == 0 || strcmp(w, "~/*") == 0 ||
           strcmp(w, "$HOME/*") == 0;
}

static const char *base_name(const char *w)
{
    const char *s = strrchr(w, '/');
    return s ? s + 1 : w;
}

/* -r, -R, -rf, -fr, --recursive: the command's options ask for recursion. */
static bool recursive(char **w, int n)
{
    for (int i = 1; i < n && strcmp(w[i], "--") != 0; i++) {
        if (strcmp(w[i], "--recursive") == 0)
            return true;
        if (w[i][0] == '-' && w[i][1] != '-' && strpbrk(w[i] + 1, "rR"))
            return true;
    }
    return false;
}

static bool any_target(char **w, int n, bool (*pred)(const char *))
{
    for (int i = 1; i < n; i++)
        if (pred(w[i]))
            return true;
    return false;
}

/* The rule a simple command breaks, or NULL. */
static const char *check_simple(char **w, int n)
{
    static const char *const wrappers[] = {"sudo",    "env",  "nice",  "nohup",   "time",
                                           "command", "exec", "xargs", "busybox", NULL};
    int i = 0;
    for (;;) {
        while (i < n && strchr(w[i], '=') && w[i][0] != '=' && w[i][0] != '-')
            i++; /* VAR=value */
        bool wrapped = false;
        for (const char *const *x = wrappers; i < n && *x; x++)
            if (strcmp(base_name(w[i]), *x) == 0)
                wrapped = true;
        if (!wrapped)
            break;
        for (i++; i < n && w[i][0] == '-'; i++) {
        }
    }
    if (i >= n)
        return NULL;
    w += i;
    n -= i;
    const char *prog = base_name(w[0]);
    if (strcmp(prog, "rm") == 0) {
        for (int j = 1; j < n; j++)
            if (strcmp(w[j], "--no-preserve-root") == 0)
                return "rm --no-preserve-root";
        if (recursive(w, n) && any_target(w, n, is_root))
            return "rm -r of the root";
        if (recursive(w, n) && any_target(w, n, is_home))
            return "rm -r of the home directory";
    }
    if ((strcmp(prog, "chmod") == 0 || strcmp(prog, "chown") == 0 || strcmp(prog, "chgrp") == 0) &&
        recursive(w, n) && any_target(w, n, is_root))
        return "recursive chmod/chown of the root";
    if (strncmp(prog, "mkfs", 4) == 0 || strcmp(prog, "wipefs") == 0)
        return "making a file system";
    if (strcmp(prog, "dd") == 0)
        for (int j = 1; j < n; j++)
            if (strncmp(w[j], "of=/dev/", 8) == 0 && strcmp(w[j], "of=/dev/null") != 0)
                return "dd onto a device";
    if (strcmp(prog, "shutdown") == 0 || strcmp(prog, "reboot") == 0 || strcmp(prog, "halt") == 0 ||
        strcmp(prog, "poweroff") == 0)
        return "shutting the machine down";
    return NULL;
}

/* A function that pipes itself into itself in the background, the classic fork bomb:
 * "NAME(){ NAME|NAME& };NAME", in any spacing. */
static bool fork_bomb(const char *cmd)
{
    size_t len = strlen(cmd), n = 0;
    char *s = ag_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        if (cmd[i] != ' ' && cmd[i] != '\t' && cmd[i] != '\n')
            s[n++] = cmd[i];
    s[n] = '\0';
    bool bomb = false;
    for (char *p = strstr(s, "(){"); p && !bomb; p = strstr(p + 1, "(){")) {
        char *name = p;
        while (name > s && !strchr(";&|(){} ", name[-1]))
            name--;
        size_t nl = (size_t)(p - name);
        if (nl == 0 || nl > 64)
            continue;
        char pat[160];
        memcpy(pat, name, nl);
        pat[nl] = '|';
        memcpy(pat + nl + 1, name, nl);
        pat[2 * nl + 1] = '&';
        pat[2 * nl + 2] = '\0';
        bomb = strstr(p, pat) != NULL;
    }
    free(s);
    return bomb;
}

const char *wk_sandbox_guard(const char *command)
{
    if (fork_bomb(command))
        return "a fork bomb";
    size_t len = strlen(command);
    char *buf = ag_xmalloc(len + 1); /* words, NUL-separated: never longer than the command */
    char *words[GUARD_MAX_WORDS];
    int n = 0;
    size_t o = 0;
    bool in_word = false;
    const char *rule = NULL;
    for (const char *p = command;; p++) {
        char c = *p;
        bool sep = c == '\0' || strchr(";&|()`\n", c);
        if (sep || c == ' ' || c == '\t') {
            if (in_word) {
                buf[o++] = '\0';
                in_word = false;
            }
            if (sep) {
                rule = rule ? rule : check_simple(words, n);
                n = 0;
            }
            if (c == '\0')
                break;
            continue;
        }
        if (!in_word && n < GUARD_MAX_WORDS) {
            words[n++] = buf + o;
            in_word = true;
        } else if (!in_word) {
            continue; /* a command this long is not one the rules are about */
        }
        if (c == '\\' && p[1]) {
            buf[o++] = *++p;
        } else if (c == '\'' || c == '"') {
            const char *end = strchr(p + 1, c);
            size_t k = end ? (size_t)(end - p - 1) : strlen(p + 1);
            memcpy(buf + o, p + 1, k);
            o += k;
            p += k + (end ? 1 : 0);
        } else {
            buf[o++] = c;
        }
    }
    free(buf);
    return rule;
}
