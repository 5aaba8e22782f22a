"""tests/clients/test_node.py - clients/node (@agentry/client) against real hubs and nodes.

The npm packages pinned in clients/node/package-lock.json (@grpc/grpc-js, @grpc/proto-loader
as tests/node_client's, and typescript) are installed into the build directory at the first run
(H.npm_ci); the package's files are copied beside them and scripts/prepack.mjs copies the protos
in and generates the types, as `npm pack` does. Without node and npm, or without the registry,
the test is skipped (exit 77, ctest's SKIP_RETURN_CODE) with the reason printed.

- test_types: tsc --strict over the README's example (--checkJs) and test/types.ts, which
  fails if index.d.ts's types fall back to `any`. --skipLibCheck: checking @types/node and the
  generated types themselves would triple the time for nothing of ours.
- test_node_suite: `node --test test/` (clients/node/test/client.test.mjs) against a plaintext
  hub with one node (harness.py), restarted by SIGKILL on the suite's request (GET /restart-hub
  on a small HTTP server here), and a hub with mutual TLS and a token (fixtures.TlsHub).
- test_readme_example: the README's example, run verbatim against the plaintext hub.
"""
import http.server
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures as F  # noqa: E402
from fixtures import H  # noqa: E402

SKIP = 77
CLIENT_DIR = os.path.join(H.AGENTRY_SRC, "clients", "node")
README = os.path.join(CLIENT_DIR, "README.md")
CACHE = os.path.join(os.path.dirname(os.path.abspath(H.AGENTRY_BIN)), "clients-node")
GRPC_JS = os.path.join(CACHE, "node_modules", "@grpc", "grpc-js", "package.json")
TSC = os.path.join(CACHE, "node_modules", "typescript", "bin", "tsc")


def lay_out_package():
    """CACHE as a packed package: its files (as package.json's "files" lists them, and its
    tests) beside the installed node_modules, with api/ and generated/ made by prepack."""
    for name in ("index.js", "index.d.ts", "README.md", "scripts", "test"):
        src, dst = os.path.join(CLIENT_DIR, name), os.path.join(CACHE, name)
        if os.path.isdir(src):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
    env = dict(os.environ, AGENTRY_API_DIR=os.path.join(H.AGENTRY_SRC, "api"))
    subprocess.run(["node", "scripts/prepack.mjs"], cwd=CACHE, env=env, check=True,
                   capture_output=True, timeout=60)


class Restarter(http.server.BaseHTTPRequestHandler):
    """GET /restart-hub: SIGKILL the cluster's hub, start it again, answer 200 once it serves."""
    cluster = None

    def do_GET(self):
        try:
            if self.path != "/restart-hub":
                raise ValueError("unknown path %r" % self.path)
            F.kill_and_restart_hub(self.cluster)
            code, body = 200, b"restarted"
        except Exception as e:  # the suite shows it as its assertion's message
            code, body = 500, repr(e).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class NodeClient(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def run_node(self, args, env=None, timeout=120):
        e = dict(os.environ, **(env or {}))
        e.pop("AGENTRY_TLS_DIR", None)
        return subprocess.run(["node"] + args, cwd=CACHE, env=e, capture_output=True,
                              text=True, timeout=timeout)

    def write_example(self):
        path = os.path.join(CACHE, "readme_example.mjs")
        with open(path, "w") as f:
            f.write(F.readme_example(README, "js"))
        return path

    def test_types(self):
        self.write_example()
        r = self.run_node([TSC, "--noEmit", "--strict", "--allowJs", "--checkJs", "--target",
                           "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
                           "--types", "node", "--skipLibCheck", "readme_example.mjs",
                           "test/types.ts"])
        self.assertEqual(r.returncode, 0, "tsc:\n%s%s" % (r.stdout, r.stderr))

    def test_node_suite(self):
        tls = F.TlsHub()
        self.addCleanup(tls.stop)
        tls.start()
        Restarter.cluster = self.c
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Restarter)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        r = self.run_node(["--test", "--test-reporter=spec", "test/"], env={
            "AGENTRY_TEST_HUB": self.c.addr,
            "AGENTRY_TEST_CONTROL": "http://127.0.0.1:%d" % srv.server_address[1],
            "AGENTRY_TEST_TLS_HUB": tls.addr,
            "AGENTRY_TEST_TLS_DIR": tls.tls,
            "AGENTRY_TEST_TOKEN": tls.token})
        sys.stderr.write(r.stdout[-4000:])
        self.assertEqual(r.returncode, 0, "node --test failed:\n%s%s" % (r.stdout[-6000:],
                                                                       r.stderr[-2000:]))
        self.assertRegex(r.stdout, r"skipped 0\b", "every test ran")

    def test_readme_example(self):
        r = self.run_node([self.write_example()], env={"AGENTRY_HUB": self.c.addr}, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[:3], ["answer: hello from node",
                                     'approving echo {"text":"deploy"}',
                                     "final: deploy (approved)"])
        self.assertEqual(lines[3], "1 spawned")
        self.assertEqual(lines[-1].split()[1], "final")


if __name__ == "__main__":
    why = H.npm_ci(CLIENT_DIR, CACHE, TSC)
    if why:
        print("SKIP: the Node.js client library's test cannot run: %s" % why)
        sys.exit(SKIP)
    lay_out_package()
    H.main()
