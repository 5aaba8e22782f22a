"""tests/package/test_image.py SRC AGENTRY static|build - the container image
(deploy/docker/Dockerfile). ctest runs it twice: package/image-static and package/image.

static, without a container builder (a few seconds):
- the runtime stage's apt line provides every shared library the binary needs: each library
  `ldd AGENTRY` lists is mapped to its Debian package with `dpkg -S`; the packages of the
  libraries the binary links directly (its NEEDED entries) must be named on the line, and every
  other one must come with them (the Depends of the named packages, followed through what dpkg
  has installed here). This catches the image that builds but whose binary will not start.
- the image's contract (docs/container.md): the build and runtime stages on Debian 12, the user
  agentry with uid 10001, /var/lib/agentry and /etc/agentry/tls, the four ports, the entrypoint,
  the AGENTRY_GIT_REV build argument reaching CMake, and .dockerignore leaving out .git and the
  build trees.

build, where podman is installed and can build and run containers here: builds the image (from a
Debian 12 base made by deploy/docker/base_image.sh when no registry is reachable) and smoke-
tests it: `agentry version` shows the revision passed in, it runs as uid 10001, a hub and a node
container on the host's network run a turn (agentry nodes, agentry invoke), and a node started
with the options docs/container.md gives for the sandbox reports it ready. Where podman is
missing or cannot run a container, it exits 77 with the reason (ctest: skipped). It runs only
with AGENTRY_TEST_IMAGE=1 (make test-image, which installs podman, runc and debootstrap with
deploy/deps.sh --image); make test prints why it skipped.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

SRC = os.path.abspath(sys.argv[1])
AGENTRY = os.path.abspath(sys.argv[2])
DOCKERFILE = os.path.join(SRC, "deploy", "docker", "Dockerfile")
FAILS = []


def check(ok, what, detail=""):
    print("%s: %s%s" % ("ok" if ok else "FAIL", what, "" if ok or not detail else ": " + detail))
    if not ok:
        FAILS.append(what)


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


# --- static: the Dockerfile ---------------------------------------------------------------
def stages(text):
    """The Dockerfile's instructions per stage, continuation lines joined, comments dropped."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    out = []
    for line in lines:
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    args = {m.group(1): m.group(2) for m in
            (re.match(r"ARG (\w+)=(\S*)", l) for l in lines) if m}
    return out, args


def runtime_packages(stage):
    """The words apt-get install names in the stage (options and shell words dropped)."""
    pkgs = []
    for line in stage:
        m = re.search(r"apt-get install (.*?)(?:&&|$)", line)
        if m:
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def dpkg_owners(paths):
    """{path: package}: one dpkg -S for all (each call reads dpkg's whole database). Merged
    /usr: ldd says /lib/x86_64-linux-gnu/..., dpkg may know it as /usr/lib/... or by the
    symbolic link's target, so each path is asked in those forms too."""
    forms = {}
    for path in paths:
        cands = {path, os.path.realpath(path)}
        for c in list(cands):
            cands.add(c[4:] if c.startswith("/usr/") else "/usr" + c)
        forms[path] = cands
    r = run(["dpkg", "-S"] + sorted(set().union(*forms.values())), timeout=120)
    known = {}
    for line in r.stdout.splitlines():
        pkg, _, f = line.partition(": ")
        known[f.strip()] = pkg.split(":")[0].split(",")[0].strip()
    return {p: next((known[c] for c in sorted(cands) if c in known), None)
            for p, cands in forms.items()}


def depends_closure(roots):
    """The packages roots bring: their Depends and Pre-Depends, followed through what dpkg has
    installed (the host is Debian 12 too), every alternative counted."""
    r = run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"], timeout=120)
    deps = {}
    for line in r.stdout.splitlines():
        name, _, rest = line.partition("\t")
        deps[name] = [d.strip().split(" ")[0].split(":")[0]
                      for alt in rest.split(",") for d in alt.split("|") if d.strip()]
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += deps.get(p, [])
    return seen


def libraries_provided(pkgs, needed):
    """Each library ldd lists maps to a Debian package; the NEEDED ones' packages are on the
    runtime apt line, the rest come with them (their Depends)."""
    r = run(["ldd", AGENTRY])
    check(r.returncode == 0, "ldd " + AGENTRY, r.stderr)
    libs = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    check(len(needed) > 5, "readelf finds the NEEDED libraries", str(needed))
    closure = depends_closure(pkgs)
    by_path = dpkg_owners(libs.values())
    owners = {}
    for soname, path in sorted(libs.items()):
        owners[soname] = by_path[path]
        check(owners[soname] is not None, "%s (%s) belongs to a Debian package" % (soname, path))
    for soname in needed:
        p = owners.get(soname)
        check(p in pkgs, "%s: its package %s is on the runtime apt line" % (soname, p))
    for soname, p in sorted(owners.items()):
        if soname not in needed and p:
            check(p in closure, "%s (%s) comes with the runtime packages" % (soname, p))


def static_checks():
    text = open(DOCKERFILE).read()
    st, args = stages(text)
    check(len(st) == 2, "two stages (build, runtime)", "%d" % len(st))
    froms = [s[0].split()[1] for s in st]
    images = [args.get(f.strip("${}"), f) for f in froms]
    check(images and all(i.startswith("debian:12") for i in images),
          "both stages on Debian 12", " ".join(images))
    check("AS build" in st[0][0], "the first stage is named build")
    build, final = st[0], st[-1]
    check(any("deploy/deps.sh" in l for l in build), "the build stage installs deploy/deps.sh's list")
    check(any('-DAGENTRY_GIT_REV="${AGENTRY_GIT_REV}"' in l for l in build),
          "the build argument AGENTRY_GIT_REV reaches CMake")
    check(any("-DCMAKE_BUILD_TYPE=Release" in l for l in build), "a Release build")
    joined = "\n".join(final)
    check(re.search(r"groupadd .*--gid 10001 agentry", joined) is not None and
          re.search(r"useradd .*--uid 10001 --gid agentry .*agentry", joined) is not None,
          "user and group agentry, uid and gid 10001")
    check("USER 10001:10001" in final, "runs as 10001 (numeric: runAsNonRoot can check it)")
    check("/var/lib/agentry" in joined and "/etc/agentry/tls" in joined,
          "/var/lib/agentry and /etc/agentry/tls exist")
    ports = set()
    for l in final:
        if l.startswith("EXPOSE "):
            ports |= set(l.split()[1:])
    check(ports == {"7070", "7071", "8080", "9464"}, "EXPOSE 7070 7071 8080 9464", str(ports))
    check('ENTRYPOINT ["agentry"]' in final, 'ENTRYPOINT ["agentry"]')
    pkgs = runtime_packages(final)
    check("bubblewrap" in pkgs, "bubblewrap in the runtime stage (the node's sandbox)")
    check(not any(p.endswith("-dev") for p in pkgs), "no -dev package in the runtime stage")

    # Every library the binary needs, provided by the runtime stage's packages. A sanitizer
    # build (make test-asan) links libasan and, without --as-needed's trimming, libraries the
    # image's Release build does not: its libraries say nothing of the image.
    r = run(["readelf", "-d", AGENTRY])
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", r.stdout)
    if any(n.startswith(("libasan", "libubsan", "libtsan")) for n in needed):
        print("skip: the library checks (%s is a sanitizer build; the image's is Release)"
              % AGENTRY)
    else:
        libraries_provided(pkgs, needed)
    # A name that is not a bookworm package fails the image's apt-get: installed here (the host
    # is Debian 12 too), or known to apt-cache (whose lists may be absent on a fresh machine).
    r = run(["dpkg-query", "-W", "-f=${Package} ${Status}\n"] + pkgs)
    installed = {l.split()[0] for l in r.stdout.splitlines() if l.endswith(" installed")}
    for p in pkgs:
        if p not in installed:
            r = run(["apt-cache", "show", p])
            check(r.returncode == 0, "%s is a Debian 12 package" % p, r.stderr.strip())

    ignore = open(os.path.join(SRC, ".dockerignore")).read().split()
    check(".git" in ignore and "build" in ignore and "build-*" in ignore,
          ".dockerignore leaves out .git, build and build-*")
    return pkgs


# --- with podman: build and smoke-test -----------------------------------------------------
def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def podman_run_flags():
    """The flags podman needs on this machine to run a container, found by trying: none, or
    runc (crun refuses hybrid cgroups) with explicit ulimits (without CAP_SYS_RESOURCE podman's
    default ulimits cannot be set). Every container uses the host's network."""
    base = ["--network", "host"]
    tries = [base]
    if shutil.which("runc"):
        tries.append(base + ["--runtime", "runc", "--ulimit", "nofile=%d:%d" % nofile(),
                             "--ulimit", "nproc=4096:4096"])
    errors = []
    for flags in tries:
        r = run(["podman", "run", "--rm"] + flags + ["localhost/debian:12", "true"], timeout=120)
        if r.returncode == 0:
            return flags
        errors.append(" ".join(flags) + ": " + r.stderr.strip().splitlines()[-1])
    skip("podman cannot run a container here: " + "; ".join(errors))


def nofile():
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    return hard, hard


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.5)
    check(False, what, "not within %ds" % timeout)
    return False


def image_checks():
    if os.environ.get("AGENTRY_TEST_IMAGE") != "1":
        skip("building the image takes 5-10 minutes on 2 cores (a Debian base, the build "
             "stage's packages, a Release build), too long for make test: make test-image "
             "runs it (AGENTRY_TEST_IMAGE=1)")
    if not shutil.which("podman"):
        skip("podman is not installed: the image is not built (apt-get install podman runc; "
             "see docs/container.md)")
    for tag in ("debian:12", "debian:12-slim"):
        if run(["podman", "image", "exists", "localhost/" + tag]).returncode == 0:
            continue
        r = run(["podman", "pull", "docker.io/library/" + tag], timeout=120)
        if r.returncode == 0:
            run(["podman", "tag", "docker.io/library/" + tag, "localhost/" + tag])
            continue
        if not shutil.which("debootstrap"):
            skip("no %s image: the registry is unreachable (%s) and debootstrap, which "
                 "deploy/docker/base_image.sh needs to make one, is not installed"
                 % (tag, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "?"))
        r = run(["sh", os.path.join(SRC, "deploy", "docker", "base_image.sh")], timeout=900)
        if r.returncode != 0:
            skip("no Debian 12 base image: deploy/docker/base_image.sh failed: " +
                 (r.stdout + r.stderr).strip()[-500:])
    flags = podman_run_flags()
    rev = run(["cmake", "-DSRC=" + SRC, "-DPRINT=1", "-P",
               os.path.join(SRC, "cmd", "agentry", "version.cmake")]).stdout.strip()
    tag = "localhost/agentry:test"
    t0 = time.monotonic()
    r = subprocess.run(["podman", "build"] + flags + ["-f", DOCKERFILE, "-t", tag,
                        "--build-arg", "AGENTRY_GIT_REV=" + rev, SRC],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=3000)
    if r.returncode != 0:
        print(r.stdout[-4000:])
    check(r.returncode == 0, "podman build (%ds)" % (time.monotonic() - t0))
    if r.returncode != 0:
        return
    names = []

    def podman(*args, timeout=60):
        return run(["podman"] + list(args), timeout=timeout)

    def container(name, *args, extra=()):
        names.append(name)
        podman("rm", "-f", name)
        return podman("run", "-d", "--name", name, *flags, *extra, tag, *args)

    try:
        r = podman("run", "--rm", *flags, tag, "version")
        check(r.stdout == "agentry 0.1.0 (git %s)\n" % rev, "agentry version in the image",
              r.stdout + r.stderr)
        r = podman("run", "--rm", *flags, "--entrypoint", "id", tag)
        check(r.stdout.startswith("uid=10001(agentry) gid=10001(agentry)"), "runs as agentry",
              r.stdout)
        r = podman("run", "--rm", *flags, tag, "--help")
        check(r.returncode == 0 and "usage" in r.stdout, "the default command is --help")
        port = free_port()
        addr = "127.0.0.1:%d" % port
        r = container("agentry-test-hub", "hub", "--listen", addr)
        check(r.returncode == 0, "hub container started", r.stderr)
        r = container("agentry-test-node", "node", "join", "--hub", addr, "--node-id", "img1")
        check(r.returncode == 0, "node container started", r.stderr)

        def ready():
            r = podman("run", "--rm", *flags, tag, "nodes", "--hub", addr)
            return r.returncode == 0 and " ready " in r.stdout
        if wait_for(ready, 60, "the node container registers with the hub container"):
            r = podman("run", "--rm", *flags, tag, "ps", "--hub", addr)
            check(r.returncode == 0, "agentry ps against the hub container", r.stderr)
            r = podman("run", "--rm", *flags, tag, "invoke", "--hub", addr, "--tool", "echo",
                       "echo x; final from the image")
            check(r.stdout == "from the image\n", "a turn runs on the node container",
                  r.stdout + r.stderr)
            r = podman("run", "--rm", *flags, tag, "nodes", "--hub", addr, "--json")
            versions = [n["version"] for n in json.loads(r.stdout)["nodes"]]
            check(versions == ["0.1.0" if rev == "unknown" else "0.1.0+" + rev],
                  "the node registers the image's revision", str(versions))
        # The sandbox: with the options docs/container.md gives, bwrap works as uid 10001.
        r = container("agentry-test-sbx", "node", "join", "--hub", addr, "--node-id", "img2",
                      extra=("--security-opt", "seccomp=unconfined", "--security-opt",
                             "apparmor=unconfined", "--security-opt", "unmask=ALL"))

        def sandbox_line():
            log = podman("logs", "agentry-test-sbx").stdout + podman("logs", "agentry-test-sbx").stderr
            return re.search(r"event=node\.sandbox_(ready|unavailable).*", log)
        if wait_for(sandbox_line, 30, "the sandboxed node logs its sandbox"):
            line = sandbox_line().group(0)
            check("sandbox_ready" in line, "bwrap works in the container with those options", line)
    finally:
        for n in names:
            podman("rm", "-f", n)
        # Each build leaves the previous run's images behind, untagged (about 1.4 GB). Keep the
        # build stage tagged (its deps.sh layer is the slow one to remake), then drop the rest.
        r = run(["podman", "build"] + flags + ["--target", "build", "-f", DOCKERFILE, "-t",
                 "localhost/agentry-build:cache", "--build-arg", "AGENTRY_GIT_REV=" + rev, SRC],
                timeout=600)
        check(r.returncode == 0, "tag the cached build stage", r.stderr[-2000:])
        podman("image", "prune", "-f", timeout=300)


def main():
    if sys.argv[3] == "static":
        static_checks()
    else:
        image_checks()
    if FAILS:
        print("%d check(s) failed: %s" % (len(FAILS), ", ".join(FAILS)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
