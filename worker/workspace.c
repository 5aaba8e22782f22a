/* worker/workspace.c - paths beneath an agent's workspace (see workspace.h).
 *
 * Every resolution goes through ws_openat2, which always asks the kernel for RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS relative to the root's fd; nothing here resolves a path in user space,
 * so no ".." or symlink trick can be got wrong twice. The only names used outside openat2 are
 * single components (mkdirat, fstatat, renameat, unlinkat) relative to a directory fd that was
 * itself resolved beneath the root.
 *
 * Ownership: the node's user owns every workspace. When a sandbox runs commands as another user
 * (worker/sandbox.h), wk_workspace_share gives that user's group the directory; file tools then
 * add g+w to what they make in a group-writable directory, so that a file written by write_file
 * stays writable by the agent's shell commands. */
#include "worker/workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/id.h"
#include "common/log.h"
#include "common/xalloc.h"

/* openat2 returns EAGAIN under RESOLVE_BENEATH when a rename elsewhere raced the walk: retrying a
 * few times is what the man page advises. */
#define WS_OPENAT2_TRIES 8

static int ws_openat2(int dir_fd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (unsigned)flags | O_CLOEXEC,
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = -1;
    for (int i = 0; i < WS_OPENAT2_TRIES; i++) {
        fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof(how));
        if (fd >= 0 || errno != EAGAIN)
            break;
    }
    return (int)fd;
}

/* err from errno after resolving `shown` (the path as the model gave it) failed. */
static int ws_fail(struct ag_err *err, int e, const char *shown)
{
    switch (e) {
    case EXDEV:
        return ag_err_set(err, AG_PERMISSION_DENIED, "path '%s' is outside the workspace", shown);
    case ENOENT:
        return ag_err_set(err, AG_NOT_FOUND, "no file or directory '%s' in the workspace", shown);
    case ENOTDIR:
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "path '%s' goes through something that is not a directory", shown);
    case ELOOP:
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "path '%s' has a loop of symbolic links or too many of them", shown);
    case EACCES:
    case EPERM:
        return ag_err_set(err, AG_PERMISSION_DENIED, "cannot open '%s': %s", shown, strerror(e));
    case ENOSYS:
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot open '%s': the kernel has no openat2 (Linux 5.6 or later is "
                          "needed for file tools)",
                          shown);
    default:
        return ag_err_set(err, AG_UNAVAILABLE, "cannot open '%s': %s", shown, strerror(e));
    }
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return false;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* mkdir -p path (0755 for each level made). */
static int mkdir_p(const char *path)
{
    char *p = ag_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

/* Make root if missing and check it is a real directory this user owns. A root in a shared
 * directory such as /tmp could have been made by another user, to read or plant files in every
 * agent's workspace: checked before anything is made in it. */
static int root_ready(const char *root, struct ag_err *err)
{
    struct stat st;
    if (mkdir_p(root) != 0)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot create the workspace root '%s': %s",
                          root, strerror(errno));
    if (lstat(root, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "the workspace root '%s' is not a directory owned by this user; remove "
                          "it or give the node another root",
                          root);
    return 0;
}

char *wk_workspace_dir_for(const char *root, const char *agent_id, struct ag_err *err)
{
    if (!agent_id || !id_ok(agent_id)) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "agent id '%s' cannot name a workspace directory: want 1..128 of "
                   "[A-Za-z0-9._-]",
                   agent_id ? agent_id : "");
        return NULL;
    }
    if (root_ready(root, err) != 0)
        return NULL;
    char *dir = ag_xasprintf("%s/%s", root, agent_id);
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        ag_err_set(err, AG_FAILED_PRECONDITION, "cannot create the workspace '%s': %s", dir,
                   strerror(errno));
    } else if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        ag_err_set(err, AG_FAILED_PRECONDITION,
                   "the workspace '%s' is not a directory owned by this user (a symbolic "
                   "link?); remove it",
                   dir);
    } else {
        return dir;
    }
    free(dir);
    return NULL;
}

int wk_workspace_claim(const char *root, struct ag_err *err)
{
    if (root_ready(root, err) != 0)
        return -1;
    char *path = ag_xasprintf("%s/.lock", root);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        ag_err_set(err, AG_FAILED_PRECONDITION, "cannot open '%s': %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            ag_err_set(err, AG_ALREADY_EXISTS,
                       "the workspace root '%s' is in use by another node%s%s%s; give each node "
                       "its own --workspace-root (or its own --node-id)",
                       root, *pid ? " (pid " : "", pid, *pid ? ")" : "");
        else
            ag_err_set(err, AG_FAILED_PRECONDITION, "cannot lock '%s': %s", path, strerror(e));
        close(fd);
        free(path);
        return -1;
    }
    char line[32];
    int len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len)
        ag_log_warn("node.workspace_lock_unwritten", "path=%s err=%s", path,
                    ag_log_q(strerror(errno)));
    free(path);
    return fd;
}

static gid_t share_gid; /* for share_one: nftw passes no argument */
static int share_errno; /* the first failure of share_one */

static int share_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)type;
    (void)ftw;
    if (st->st_uid != geteuid())
        return 0; /* the sandbox user's own files: already its */
    mode_t add = S_IRGRP | S_IWGRP | ((st->st_mode & S_IXUSR) ? S_IXGRP : 0);
    if (lchown(path, (uid_t)-1, share_gid) != 0 ||
        (!S_ISLNK(st->st_mode) && chmod(path, (st->st_mode & 07777) | add) != 0))
        share_errno = share_errno ? share_errno : errno;
    return 0;
}

int wk_workspace_share(const char *dir, gid_t gid, struct ag_err *err)
{
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ag_err_set(err, AG_FAILED_PRECONDITION, "the workspace '%s' is not a directory",
                          dir);
    if (st.st_gid == gid && (st.st_mode & 07777) == 02770)
        return 0;
    /* nftw keeps its callback's state in globals: one share at a time. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    share_gid = gid;
    share_errno = 0;
    /* Before the sandbox user can write here nothing in it is that user's, so no link can be
     * swapped in under the walk. */
    int rc = nftw(dir, share_one, 16, FTW_PHYS | FTW_MOUNT);
    int e = rc != 0 ? errno : share_errno;
    pthread_mutex_unlock(&lock);
    if (e == 0 && (chown(dir, (uid_t)-1, gid) != 0 || chmod(dir, 02770) != 0))
        e = errno;
    if (e != 0)
        return ag_err_set(err, AG_FAILED_PRECONDITION,
                          "cannot give group %u the workspace '%s': %s", (unsigned)gid, dir,
                          strerror(e));
    return 0;
}

/* In a group-writable directory (a workspace shared with a sandbox), what the node makes is
 * group-writable too. fd: the new entry. */
static void share_new(int dir_fd, int fd)
{
    struct stat d, st;
    if (fstat(dir_fd, &d) == 0 && (d.st_mode & S_IWGRP) && fstat(fd, &st) == 0 &&
        !(st.st_mode & S_IWGRP))
        fchmod(fd, (st.st_mode & 07777) | S_IRGRP | S_IWGRP | (S_ISDIR(st.st_mode) ? S_IXGRP : 0));
}

int wk_workspace_open(struct wk_workspace *ws, const char *root, struct ag_err *err)
{
    ws->root = root;
    ws->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ws->root_fd < 0)
        return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot open the workspace '%s': %s", root,
                          strerror(errno));
    return 0;
}

void wk_workspace_close(struct wk_workspace *ws)
{
    if (ws->root_fd >= 0)
        close(ws->root_fd);
    ws->root_fd = -1;
}

/* The part of abs under root ("" for root itself), or NULL if abs is not under it. Compared by
 * components: "/ws2" is not under "/ws". */
static const char *under(const char *abs, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(abs, root, n) != 0)
        return NULL;
    if (abs[n] == '\0')
        return abs + n;
    if (abs[n] != '/' && !(n == 1 && root[0] == '/'))
        return NULL;
    while (abs[n] == '/')
        n++;
    return abs + n;
}

char *wk_workspace_rel(const struct wk_workspace *ws, const char *path, struct ag_err *err)
{
    if (!path || !*path) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "the path is empty; give one relative to the "
                   "workspace, such as \".\" or \"src/main.c\"");
        return NULL;
    }
    const char *rest = path;
    if (path[0] == '/') {
        rest = under(path, ws->root);
        char canon[PATH_MAX];
        if (!rest && realpath(ws->root, canon))
            rest = under(path, canon);
        if (!rest) {
            ag_err_set(err, AG_PERMISSION_DENIED,
                       "path '%s' is outside the workspace; give a path relative to it", path);
            return NULL;
        }
    }
    size_t n = strlen(rest);
    while (n > 1 && rest[n - 1] == '/')
        n--;
    return n ? ag_xstrndup(rest, n) : ag_xstrdup(".");
}

int wk_workspace_openat(const struct wk_workspace *ws, const char *path, int flags,
                        struct ag_err *err)
{
    char *rel = wk_workspace_rel(ws, path, err);
    if (!rel)
        return -1;
    int fd = ws_openat2(ws->root_fd, rel, flags & ~O_CREAT, 0);
    if (fd < 0)
        ws_fail(err, errno, path);
    free(rel);
    return fd;
}

/* Open directory rel beneath the root, creating each missing level when create. */
static int open_dir(const struct wk_workspace *ws, char *rel, bool create, const char *shown,
                    struct ag_err *err)
{
    int fd = ws_openat2(ws->root_fd, rel, O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0 || errno != ENOENT || !create)
        return fd >= 0 ? fd : ws_fail(err, errno, shown);
    /* Walk from the root, one more component each time, so that each mkdirat happens in a
     * directory that was itself resolved beneath the root. */
    int cur = ws_openat2(ws->root_fd, ".", O_RDONLY | O_DIRECTORY, 0);
    if (cur < 0)
        return ws_fail(err, errno, shown);
    char *p = rel;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            return cur;
        char *comp = p, *end = strchr(p, '/');
        char saved = end ? *end : '\0';
        if (end)
            *end = '\0';
        fd = ws_openat2(ws->root_fd, rel, O_RDONLY | O_DIRECTORY, 0);
        bool made = false;
        if (fd < 0 && errno == ENOENT && strcmp(comp, ".") != 0 && strcmp(comp, "..") != 0 &&
            ((made = mkdirat(cur, comp, 0777) == 0) || errno == EEXIST))
            fd = ws_openat2(ws->root_fd, rel, O_RDONLY | O_DIRECTORY, 0);
        int e = errno;
        if (made && fd >= 0)
            share_new(cur, fd);
        if (end)
            *end = saved;
        close(cur);
        if (fd < 0)
            return ws_fail(err, e, shown);
        cur = fd;
        p = end ? end : p + strlen(p);
    }
}

/* The leaf is a symbolic link: say where it leads, or that it leads out. */
static int leaf_is_link(const struct wk_workspace *ws, const struct wk_workspace_parent *p,
                        const char *shown, struct ag_err *err)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(p->dir_fd, p->leaf, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    int fd = ws_openat2(ws->root_fd, p->rel, O_PATH, 0);
    if (fd >= 0)
        close(fd);
    else if (errno == EXDEV)
        return ag_err_set(err, AG_PERMISSION_DENIED,
                          "path '%s' is outside the workspace (a symbolic link to '%s')", shown,
                          target);
    return ag_err_set(err, AG_FAILED_PRECONDITION,
                      "path '%s' is a symbolic link to '%s'; give the path of the file it points "
                      "to instead",
                      shown, target);
}

int wk_workspace_parent(const struct wk_workspace *ws, const char *path, bool create_dirs,
                        struct wk_workspace_parent *out, struct ag_err *err)
{
    memset(out, 0, sizeof(*out));
    out->dir_fd = -1;
    out->rel = wk_workspace_rel(ws, path, err);
    if (!out->rel)
        return -1;
    char *slash = strrchr(out->rel, '/');
    const char *leaf = slash ? slash + 1 : out->rel;
    if (strcmp(leaf, ".") == 0 || strcmp(leaf, "..") == 0) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "path '%s' does not name a file", path);
        goto fail;
    }
    out->leaf = ag_xstrdup(leaf);
    char *dir = slash ? ag_xstrndup(out->rel, (size_t)(slash - out->rel)) : ag_xstrdup(".");
    out->dir_fd = open_dir(ws, *dir ? dir : ".", create_dirs, path, err);
    free(dir);
    if (out->dir_fd < 0)
        goto fail;
    if (fstatat(out->dir_fd, out->leaf, &out->st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(out->st.st_mode)) {
            leaf_is_link(ws, out, path, err);
            goto fail;
        }
        out->exists = true;
    } else if (errno != ENOENT) {
        ws_fail(err, errno, path);
        goto fail;
    }
    return 0;
fail:
    wk_workspace_parent_release(out);
    return -1;
}

void wk_workspace_parent_release(struct wk_workspace_parent *p)
{
    if (p->dir_fd >= 0)
        close(p->dir_fd);
    p->dir_fd = -1;
    free(p->leaf);
    free(p->rel);
    p->leaf = p->rel = NULL;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A new temporary file beside the leaf; its name in tmp. */
static int open_temp(const struct wk_workspace_parent *p, char *tmp, size_t cap)
{
    for (int i = 0; i < 8; i++) {
        unsigned long long r = 0;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
            r = (unsigned long long)getpid() * 1000003u + (unsigned long long)i;
        snprintf(tmp, cap, ".%.100s.agentry-tmp-%016llx", p->leaf, r);
        int fd = openat(p->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int wk_workspace_replace(const struct wk_workspace_parent *p, const char *data, size_t len,
                         struct ag_err *err)
{
    if (p->exists && S_ISDIR(p->st.st_mode))
        return ag_err_set(err, AG_FAILED_PRECONDITION, "'%s' is a directory", p->rel);
    if (p->exists && !S_ISREG(p->st.st_mode))
        return ag_err_set(err, AG_FAILED_PRECONDITION, "'%s' is not a regular file", p->rel);
    char tmp[160];
    int fd = open_temp(p, tmp, sizeof(tmp));
    if (fd < 0)
        return ag_err_set(err, AG_UNAVAILABLE,
                          "cannot write '%s': cannot create a temporary "
                          "file beside it: %s",
                          p->rel, strerror(errno));
    const char *step = "write";
    if (!p->exists)
        share_new(p->dir_fd, fd);
    if (p->exists && fchmod(fd, p->st.st_mode & 07777) != 0)
        step = "chmod";
    else if (write_all(fd, data, len) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "fsync";
    else if (renameat(p->dir_fd, tmp, p->dir_fd, p->leaf) != 0)
        step = "rename";
    else
        step = NULL;
    int e = errno;
    close(fd);
    if (step) {
        unlinkat(p->dir_fd, tmp, 0);
        return ag_err_set(err, e == ENOSPC ? AG_RESOURCE_EXHAUSTED : AG_UNAVAILABLE,
                          "cannot write '%s': %s: %s", p->rel, step, strerror(e));
    }
    /* The rename is durable only once the directory is: without this a crash may bring back
     * the old file after the call said it was written. */
    if (fsync(p->dir_fd) != 0)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot write '%s': fsync of its directory: %s",
                          p->rel, strerror(errno));
    return 0;
}

/* --- the node's workspaces ------------------------------------------------------------------ */

/* Deeper than any tree a tool makes on purpose; a deeper one is left, and the error says so. */
#define WS_RM_MAX_DEPTH 256

int wk_workspace_list(const char *root, char ***ids, size_t *n, struct ag_err *err)
{
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (!d && errno == ENOENT)
        return 0;
    if (!d)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot list workspace root '%s': %s", root,
                          strerror(errno));
    size_t cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st;
        if (!ag_id_valid(e->d_name) ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *ids = ag_xrealloc(*ids, cap * sizeof(**ids));
        }
        (*ids)[(*n)++] = ag_xstrdup(e->d_name);
    }
    closedir(d);
    return 0;
}

/* Remove what dir_fd holds; 0, or the errno of the first entry that stayed (its name in bad). A
 * directory the node owns but may not write or search (a model's chmod) is opened up first. */
static int rm_below(int dir_fd, int depth, uint64_t *bytes, char *bad, size_t cap)
{
    int fd = dup(dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return errno;
    }
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        struct stat st;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        int r = 0;
        if (S_ISDIR(st.st_mode)) {
            if (st.st_uid == geteuid() && (st.st_mode & S_IRWXU) != S_IRWXU)
                fchmodat(dir_fd, name, (st.st_mode & 07777) | S_IRWXU, 0);
            int sub = depth < WS_RM_MAX_DEPTH
                          ? openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                          : -1;
            r = sub < 0 ? (depth < WS_RM_MAX_DEPTH ? errno : ELOOP)
                        : rm_below(sub, depth + 1, bytes, bad, cap);
            if (sub >= 0)
                close(sub);
            if (r == 0 && unlinkat(dir_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
                r = errno;
        } else if (unlinkat(dir_fd, name, 0) == 0) {
            if (S_ISREG(st.st_mode))
                *bytes += (uint64_t)st.st_size;
        } else if (errno != ENOENT) {
            r = errno;
        }
        if (r && !rc) {
            rc = r;
            if (!bad[0])
                snprintf(bad, cap, "%s", name);
        }
    }
    closedir(d);
    return rc;
}

int wk_workspace_remove(const char *root, const char *agent_id, bool *found, uint64_t *bytes,
                        struct ag_err *err)
{
    *found = false;
    *bytes = 0;
    if (!id_ok(agent_id))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "'%s' cannot name a workspace", agent_id);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root_fd < 0)
        return errno == ENOENT
                   ? 0
                   : ag_err_set(err, AG_UNAVAILABLE, "cannot open workspace root '%s': %s", root,
                                strerror(errno));
    struct stat st;
    int rc = 0;
    char bad[256] = "";
    if (fstatat(root_fd, agent_id, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT)
            rc = errno;
    } else if (!S_ISDIR(st.st_mode)) { /* a link or a file in its place: the name alone goes */
        *found = true;
        rc = unlinkat(root_fd, agent_id, 0) == 0 ? 0 : errno;
    } else {
        *found = true;
        if (st.st_uid == geteuid() && (st.st_mode & S_IRWXU) != S_IRWXU)
            fchmodat(root_fd, agent_id, (st.st_mode & 07777) | S_IRWXU, 0);
        int fd = openat(root_fd, agent_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        rc = fd < 0 ? errno : rm_below(fd, 0, bytes, bad, sizeof(bad));
        if (fd >= 0)
            close(fd);
        if (rc == 0 && unlinkat(root_fd, agent_id, AT_REMOVEDIR) != 0)
            rc = errno;
    }
    close(root_fd);
    if (rc == 0)
        return 0;
    return ag_err_set(err, AG_UNAVAILABLE, "cannot remove workspace '%s/%s'%s%s%s: %s", root,
                      agent_id, bad[0] ? " (at entry '" : "", bad, bad[0] ? "')" : "",
                      strerror(rc));
}
