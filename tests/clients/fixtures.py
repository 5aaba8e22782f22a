"""tests/clients/fixtures.py - what the client libraries' tests share beside tests/e2e/harness.py:
a hub with mutual TLS and a token, a hub restart by SIGKILL, and a README's example block.

TlsHub: `agentry certs init` in a temp dir (ca.crt, hub, node1 and admin pairs), an operator
token of namespace "default" (`agentry token create`, named "clients") in the hub's --policy,
the hub on a free port and node1 joined with its certificate. stop() requires exit 0 of both.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "e2e"))
import harness as H  # noqa: E402


def cli(args):
    r = H.run_cli(args)
    if r.returncode != 0:
        raise AssertionError("agentry %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


class TlsHub:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-clients-tls-")
        self.tls = os.path.join(self.dir, "tls")
        self.ca = os.path.join(self.tls, "ca.crt")
        self.hub = self.node = None

    def start(self):
        cli(["certs", "init", "--dir", self.tls])
        out = cli(["token", "create", "--role", "operator", "--namespace", "default", "--name",
                   "clients"])
        self.token = out.splitlines()[0].split()[1]
        policy = os.path.join(self.dir, "policy.yaml")
        with open(policy, "w") as f:
            f.write("tokens:\n" + out.split("\n\n", 1)[1].split("\n", 1)[1])
        self.addr = "127.0.0.1:%d" % H.free_port()
        self.hub = H.Proc("hub", [H.AGENTRY_BIN, "hub", "--listen", self.addr, "--store",
                                  "sqlite:" + os.path.join(self.dir, "hub.db"), "--tls-dir",
                                  self.tls, "--policy", policy],
                          os.path.join(self.dir, "hub.log")).start()
        H.wait_for(lambda: "event=hub.started" in self.hub.text(), 15,
                   what="the TLS hub to start")
        self.node = H.Proc("node1", [H.AGENTRY_BIN, "node", "join", "--hub", self.addr,
                                     "--node-id", "node1", "--tls-dir", self.tls,
                                     "--workspace-root", os.path.join(self.dir, "ws")],
                           os.path.join(self.dir, "node1.log")).start()
        H.wait_for(lambda: "event=node.registered node=node1 " in self.hub.text(), 15,
                   what="node1 to register with the TLS hub")
        return self

    def stop(self):
        problems = [e for e in (p.stop() for p in (self.node, self.hub) if p) if e]
        if problems:
            raise AssertionError("\n".join(problems))
        if not H.KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)


def kill_and_restart_hub(c):
    """SIGKILL the cluster's hub (no goodbye to its streams) and start it again on its port and
    store."""
    p = c.hub_proc
    p.sigkill()
    c.retired.append(p)
    c.start_hub(port=c.port)


def readme_example(path, lang):
    """The first ```lang block under a README's "## Example" heading."""
    with open(path) as f:
        section = f.read().split("\n## Example\n", 1)[1]
    return re.search(r"```%s\n(.*?)```" % re.escape(lang), section, re.S).group(1)
