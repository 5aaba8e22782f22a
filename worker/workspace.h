/* worker/workspace.h - confinement of the file tools to an agent's workspace directory.
 *
 * Every path a model gives a file tool is resolved beneath the workspace's root with openat2(2)
 * and RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, by the kernel, in one step: there is no window
 * between a check and a use. Symbolic links that stay inside the workspace are followed; a path
 * whose resolution would leave it ("..", "a/../../x", "sub/link/../..", a link to "/etc" or to
 * "../x", at any depth of a chain) fails with the error "path 'x' is outside the workspace", as
 * do /proc-style magic links. Absolute paths are refused unless they lie under the root as the
 * node names it (or under its canonical form): then they mean the same file relative to it, so
 * a path that shell printed (its cwd is the root) can be given back to read_file. "/etc/passwd"
 * is outside, not "etc/passwd": a model that means the workspace learns to say so, and nothing
 * surprising is read or written.
 *
 * Writes go through wk_workspace_parent: the parent directory is resolved as above (created on
 * request, each missing level with mkdirat on a directory already resolved beneath), and the last
 * component is then used with *at calls relative to that directory, never followed: a last
 * component that is a symbolic link is refused (its target named, so the model can write there
 * instead), and wk_workspace_replace writes a new temporary file beside it (O_CREAT | O_EXCL |
 * O_NOFOLLOW) and renameat()s it over the name. A reader sees the old or the new file, never a
 * part, and a crash leaves at most a stray ".NAME.agentry-tmp-*" file.
 *
 * Needs Linux 5.6+ (openat2); on an older kernel every call fails with FAILED_PRECONDITION.
 * Threads: no shared state; the fds belong to the caller. Calls block on the file system: the
 * tools make them on the node's work pool (common/workpool.h). */
#ifndef AGENTRY_WORKER_WORKSPACE_H
#define AGENTRY_WORKER_WORKSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/err.h"

struct wk_workspace {
    int root_fd;      /* owned: the root directory, O_PATH */
    const char *root; /* borrowed: the root as the node names it */
};

/* The workspace of agent_id under the node's workspace root: "ROOT/AGENT_ID", created if
 * missing (ROOT too, with its parents, 0755; the agent's directory 0700), owned. ROOT and the
 * workspace must be real directories (not symbolic links) owned by the node's user: a root in a
 * shared directory such as /tmp that another user made first is refused. INVALID_ARGUMENT if agent_id is not one path component of
 * [A-Za-z0-9._-] (1..128 characters, not "." or ".."); FAILED_PRECONDITION naming the directory
 * if it cannot be made. Blocks on the file system: the runner calls it off its loop threads, or
 * once before a run's first tool call. */
char *wk_workspace_dir_for(const char *root, const char *agent_id, struct ag_err *err);

/* Claim root for this node: made if missing (as wk_workspace_dir_for makes it), then an
 * exclusive flock on ROOT/.lock, held through the returned fd (O_CLOEXEC, so a sandboxed or MCP
 * child never keeps it past the node) until the node closes it. Two live nodes never share a
 * root: the Workspaces a node reports are every agent directory in it, and its hub forgets those
 * it does not know, so a root shared with another cluster's node would lose that cluster's
 * workspaces. The lock file holds the owner's pid, for the message. ALREADY_EXISTS naming root
 * (and the pid) if another process holds it. */
int wk_workspace_claim(const char *root, struct ag_err *err);

/* Let group gid (a sandbox's user, worker/sandbox.h) read and write the workspace dir: the dir
 * gets that group and mode 02770 (setgid, so what is made in it inherits the group), and what
 * the node already made in it gets the group and g+rw (g+x where u+x). Symbolic links are never
 * followed. Quick when done before (the dir's own group and mode say so). From then on the file
 * tools make new files and directories group-writable in a group-writable directory.
 * FAILED_PRECONDITION naming the path if it cannot. */
int wk_workspace_share(const char *dir, gid_t gid, struct ag_err *err);

/* Open root (a directory that exists). FAILED_PRECONDITION naming it if it cannot be opened. */
int wk_workspace_open(struct wk_workspace *ws, const char *root, struct ag_err *err);
void wk_workspace_close(struct wk_workspace *ws);

/* path as the model gave it, relative to the root: trailing slashes dropped, an absolute path
 * under the root made relative ("." for the root itself). Owned. NULL with INVALID_ARGUMENT
 * (empty path) or PERMISSION_DENIED (an absolute path elsewhere). */
char *wk_workspace_rel(const struct wk_workspace *ws, const char *path, struct ag_err *err);

/* Open path (as the model gave it) beneath the root with open(2) flags (O_CLOEXEC is added;
 * no O_CREAT: see wk_workspace_parent). The fd, or -1 with a message naming the path:
 * PERMISSION_DENIED "... is outside the workspace", NOT_FOUND, or another code. */
int wk_workspace_openat(const struct wk_workspace *ws, const char *path, int flags,
                        struct ag_err *err);

/* The directory that holds a path's last component, for writing. */
struct wk_workspace_parent {
    int dir_fd;  /* owned: the parent directory, opened O_RDONLY | O_DIRECTORY */
    char *leaf;  /* owned: the last component, one name (never "." or "..") */
    char *rel;   /* owned: the path relative to the root, for messages */
    bool exists; /* the leaf exists (and is not a symbolic link); st describes it */
    struct stat st;
};

/* Resolve path's parent beneath the root (mkdir -p on the way when create_dirs) and look at the
 * leaf without following it. A leaf that is a symbolic link fails: PERMISSION_DENIED "... is
 * outside the workspace" when it leads out, FAILED_PRECONDITION naming its target otherwise. */
int wk_workspace_parent(const struct wk_workspace *ws, const char *path, bool create_dirs,
                        struct wk_workspace_parent *out, struct ag_err *err);
void wk_workspace_parent_release(struct wk_workspace_parent *p);

/* Replace (or create) p's leaf with data, atomically (a temporary file, fsync, renameat, fsync of
 * the directory). An existing file keeps its permission bits; a new one gets 0666 less the
 * umask. FAILED_PRECONDITION if the leaf is a directory or another non-regular file. */
int wk_workspace_replace(const struct wk_workspace_parent *p, const char *data, size_t len,
                         struct ag_err *err);

/* The node's workspaces (node.proto, Workspaces and Forget). */

/* The names of the directories directly under root that are agent ids (common/id.h), owned
 * (free each and the array); none if root does not exist. -1 with a message naming root if it
 * cannot be read. Blocks on the file system. */
int wk_workspace_list(const char *root, char ***ids, size_t *n, struct ag_err *err);

/* Remove root/agent_id and everything beneath it (a deleted agent's workspace), whoever owns the
 * files (a node running as root removes what its sandbox user made). A symbolic link is never
 * followed: each directory is opened O_NOFOLLOW relative to its parent's fd and its entries are
 * removed with unlinkat, so nothing outside the workspace is touched, whatever links it holds.
 * *found: it existed; *bytes: the sizes of the regular files removed. -1 with a message naming
 * the first entry that could not be removed (what could be is gone). Blocks on the file system:
 * the node's work pool calls it. */
int wk_workspace_remove(const char *root, const char *agent_id, bool *found, uint64_t *bytes,
                        struct ag_err *err);

#endif
