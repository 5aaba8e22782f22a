"""tests/helm/test_chart.py - renders helm/agentry as `helm template` would and checks the result.

- The renderer is tests/helm/render (Go's text/template + sprig, Debian has no helm binary),
  built once into WORK (argv[1], a directory under the build tree) with go's cache there too.
- Renders the default values and three files of tests/helm/values (ha: active + standby hub on
  PostgreSQL and etcd, cert-manager, Ingress, ServiceMonitor; secret-tls: TLS from a Secret,
  policies, a drain token; minimal) and asserts what each must hold: flags, probes, replicas,
  the PDB, the preStop drain, the TLS volumes.
- Invalid values must fail: schema violations (a misspelt key, a bad enum), and the rules
  between values both in the schema and in the templates (fail), e.g. SQLite with 2 hubs.
- Every rendered object is validated against Kubernetes' OpenAPI schemas (npm kubernetes-models,
  and cert-manager's and the Prometheus Operator's models; pinned in validate/package-lock.json,
  installed into WORK at the first run), unknown fields refused too, and every output is linted
  with yamllint (helm/.yamllint), as are values.yaml and Chart.yaml.
Exits 77 (skipped, reason printed) when go, Debian's Go libraries, yamllint, node/npm or the npm
registry are missing.
"""
import json
import os
import shutil
import subprocess
import sys
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import harness as H  # noqa: E402

CHART = os.path.join(SRC, "helm", "agentry")
LINT = os.path.join(SRC, "helm", ".yamllint")
GOPATH = "/usr/share/gocode"
SKIP = 77
WORK = None
RENDER = None


def render(*args, ok=True):
    """Render the chart with args (-f FILE, --set K=V ...): (documents, stdout, stderr)."""
    r = subprocess.run([RENDER, CHART, "--namespace", "agents", "--name", "ag", *args],
                       capture_output=True, text=True, timeout=60)
    if ok and r.returncode != 0:
        raise AssertionError("render %s failed: %s" % (" ".join(args), r.stderr))
    if not ok:
        return None, r.stdout, r.stderr if r.returncode != 0 else None
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    return docs, r.stdout, r.stderr


def values(name):
    return ["-f", os.path.join(HERE, "values", name + ".yaml")]


def find(docs, kind, suffix=""):
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    if len(hits) != 1:
        raise AssertionError("want one %s *%s, have %s" % (kind, suffix, [
            d["metadata"]["name"] for d in hits]))
    return hits[0]


def container(deploy):
    return deploy["spec"]["template"]["spec"]["containers"][0]


def flag(c, name):
    """The value after flag name in the container's args (None if absent)."""
    a = c["args"]
    return a[a.index(name) + 1] if name in a else None


class Chart(unittest.TestCase):
    rendered = {}  # name -> text, for the lint and the schema checks at the end

    def render(self, name, *args):
        docs, text, _ = render(*args)
        Chart.rendered[name] = text
        return docs

    def test_default(self):
        docs = self.render("default")
        hub = find(docs, "Deployment", "-hub")
        self.assertEqual(hub["spec"]["replicas"], 1)
        self.assertEqual(hub["spec"]["strategy"]["type"], "Recreate")
        c = container(hub)
        self.assertEqual(c["args"][0], "hub")
        self.assertIsNone(flag(c, "--etcd"))
        self.assertEqual(flag(c, "--health-listen"), "0.0.0.0:7071")
        self.assertEqual(flag(c, "--listen"), "0.0.0.0:7070")
        self.assertEqual(flag(c, "--http-listen"), "0.0.0.0:8080")
        self.assertEqual(flag(c, "--metrics-listen"), "0.0.0.0:9464")
        self.assertEqual(flag(c, "--store"), "sqlite:/var/lib/agentry/hub.db")
        self.assertIn("--insecure", c["args"])
        self.assertNotIn("--tls-dir", c["args"])
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 7071, "service": ""})
        self.assertEqual(c["livenessProbe"]["grpc"], {"port": 7071, "service": "liveness"})
        self.assertEqual(c["startupProbe"]["grpc"], {"port": 7071, "service": "liveness"})
        self.assertEqual(c["securityContext"]["readOnlyRootFilesystem"], True)
        pod = hub["spec"]["template"]["spec"]
        self.assertEqual(pod["securityContext"]["runAsUser"], 10001)
        self.assertEqual(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "ag-agentry-hub-data")
        pvc = find(docs, "PersistentVolumeClaim")
        self.assertEqual(pvc["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        svc = find(docs, "Service", "-hub")
        self.assertEqual(svc["spec"]["ports"][0]["port"], 7070)
        self.assertNotIn("publishNotReadyAddresses", svc["spec"])

        node = find(docs, "Deployment", "-node")
        self.assertEqual(node["spec"]["replicas"], 2)
        n = container(node)
        self.assertEqual(n["args"][:2], ["node", "join"])
        self.assertEqual(flag(n, "--hub"), "ag-agentry-hub.agents.svc.cluster.local:7070")
        self.assertEqual(flag(n, "--node-id"), "$(NODE_ID)")
        self.assertEqual(flag(n, "--capacity"), "16")
        self.assertEqual(flag(n, "--health-listen"), "0.0.0.0:7071")
        self.assertEqual(flag(n, "--sandbox"), "bwrap")
        self.assertEqual(n["readinessProbe"]["grpc"], {"port": 7071, "service": ""})
        self.assertEqual(n["livenessProbe"]["grpc"]["service"], "liveness")
        self.assertEqual(n["securityContext"]["seccompProfile"], {"type": "Unconfined"})
        self.assertEqual(n["securityContext"]["appArmorProfile"], {"type": "Unconfined"})
        pre = n["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[:2], ["/bin/sh", "-c"])
        self.assertIn('agentry node drain "$@" "$NODE_ID"', pre[2])
        self.assertEqual(pre[pre.index("--drain-timeout") + 1], "600s")
        self.assertEqual(node["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 630)
        pdb = find(docs, "PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"], "node")
        self.assertFalse([d for d in docs if d["kind"] in ("Certificate", "ServiceMonitor", "Ingress")])
        # etcd with SQLite: one hub, still replaced by Recreate (its volume is ReadWriteOnce)
        docs2, _, _ = render("--set", "etcd.endpoints={http://etcd:2379}")
        self.assertEqual(find(docs2, "Deployment", "-hub")["spec"]["strategy"]["type"], "Recreate")
        self.assertEqual(flag(container(find(docs2, "Deployment", "-node")), "--etcd"), "http://etcd:2379")
        # NOTES.txt renders too.
        r = subprocess.run([RENDER, CHART, "--notes"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("tls.mode is none", r.stdout)

    def test_ha(self):
        docs = self.render("ha", *values("ha"))
        hub = find(docs, "Deployment", "-hub")
        self.assertEqual(hub["spec"]["replicas"], 2)
        self.assertEqual(hub["spec"]["strategy"]["rollingUpdate"],
                         {"maxSurge": "100%", "maxUnavailable": "100%"})
        c = container(hub)
        self.assertEqual(flag(c, "--etcd"), "https://etcd-0.etcd:2379,https://etcd-1.etcd:2379")
        self.assertEqual(flag(c, "--etcd-cert"), "/run/agentry/etcd/client.crt")
        self.assertEqual(flag(c, "--hub-id"), "$(POD_NAME)")
        self.assertEqual(flag(c, "--advertise"), "ag-agentry-hub.agents.svc.cluster.local:7070")
        self.assertEqual(flag(c, "--lease-ttl"), "5s")
        self.assertEqual(flag(c, "--tls-dir"), "/etc/agentry/tls")
        self.assertEqual(flag(c, "--policy"), "/etc/agentry/policy/policy.yaml")
        self.assertIsNone(flag(c, "--store"))
        env = {e["name"]: e for e in c["env"]}
        self.assertTrue(env["AGENTRY_STORE"]["value"].startswith("postgres://agentry@db.example"))
        self.assertEqual(env["PGPASSWORD"]["valueFrom"]["secretKeyRef"], {"name": "agentry-db", "key": "password"})
        self.assertNotIn("--insecure", c["args"])
        self.assertEqual(c["readinessProbe"]["grpc"]["service"], "")
        pod = hub["spec"]["template"]["spec"]
        self.assertIn("podAntiAffinity", pod["affinity"])
        tls = [v for v in pod["volumes"] if v["name"] == "tls"][0]
        self.assertEqual(tls["secret"]["secretName"], "ag-agentry-hub-tls")
        self.assertIn({"key": "tls.key", "path": "hub.key"}, tls["secret"]["items"])
        self.assertFalse([d for d in docs if d["kind"] == "PersistentVolumeClaim"])

        cert = find(docs, "Certificate", "-hub")
        self.assertIn("ag-agentry-hub.agents.svc.cluster.local", cert["spec"]["dnsNames"])
        self.assertIn("localhost", cert["spec"]["dnsNames"])
        self.assertIn("agentry.example.com", cert["spec"]["dnsNames"])
        self.assertEqual(cert["spec"]["uris"], ["agentry://hub/ag-agentry-hub"])
        self.assertEqual(cert["spec"]["issuerRef"]["kind"], "ClusterIssuer")
        drain = find(docs, "Certificate", "-drain")
        self.assertIn("agentry://role/operator", drain["spec"]["uris"])

        node = find(docs, "Deployment", "-node")
        self.assertEqual(node["spec"]["replicas"], 5)
        n = container(node)
        self.assertIsNone(flag(n, "--hub"))  # follows the leader etcd names
        self.assertEqual(flag(n, "--etcd"), "https://etcd-0.etcd:2379,https://etcd-1.etcd:2379")
        self.assertEqual(flag(n, "--labels"), "gpu=false,zone=a")
        self.assertEqual(flag(n, "--cpu"), "8")
        self.assertEqual(flag(n, "--memory"), "32Gi")
        self.assertEqual(flag(n, "--cert"), "/run/agentry/tls/tls.crt")
        vols = {v["name"]: v for v in node["spec"]["template"]["spec"]["volumes"]}
        attrs = vols["tls"]["csi"]["volumeAttributes"]
        self.assertEqual(vols["tls"]["csi"]["driver"], "csi.cert-manager.io")
        self.assertEqual(attrs["csi.cert-manager.io/uri-sans"], "agentry://node/${POD_NAME},agentry://role/node")
        pre = n["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[pre.index("--cert") + 1], "/run/agentry/drain/tls.crt")
        self.assertEqual(pre[pre.index("--ca") + 1], "/run/agentry/tls/ca.crt")
        # TLS files stay out of /etc, which bwrap shows to every sandboxed command.
        for m in n["volumeMounts"]:
            if m["name"] in ("tls", "drain", "etcd-tls"):
                self.assertTrue(m["mountPath"].startswith("/run/"), m)
        self.assertEqual(find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"], 2)

        ing = find(docs, "Ingress")
        self.assertEqual(ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
                         "ag-agentry-hub-dashboard")
        sm = find(docs, "ServiceMonitor")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prometheus")
        self.assertEqual(sm["spec"]["endpoints"][0]["port"], "metrics")
        self.assertEqual(find(docs, "Service", "-dashboard")["spec"]["ports"][0]["appProtocol"], "https")

    def test_secret_tls(self):
        docs = self.render("secret-tls", *values("secret-tls"))
        hub = find(docs, "Deployment", "-hub")
        c = container(hub)
        self.assertEqual(flag(c, "--tls-dir"), "/etc/agentry/tls")
        self.assertEqual(flag(c, "--retention"), "30d")
        pod = hub["spec"]["template"]["spec"]
        tls = [v for v in pod["volumes"] if v["name"] == "tls"][0]
        self.assertEqual(tls["secret"]["secretName"], "agentry-tls")
        cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        self.assertIn("node-drain", cms["ag-agentry-hub-policy"]["data"]["policy.yaml"])
        self.assertIn("default: ask", cms["ag-agentry-node-policy"]["data"]["policy.yaml"])

        node = find(docs, "Deployment", "-node")
        self.assertEqual(node["spec"]["strategy"]["type"], "Recreate")
        n = container(node)
        self.assertEqual(flag(n, "--tls-dir"), "/run/agentry/tls")
        self.assertEqual(flag(n, "--policy"), "/etc/agentry/node-policy/policy.yaml")
        env = {e["name"]: e for e in n["env"]}
        self.assertEqual(env["NODE_ID"]["value"], "node1")
        pre = n["lifecycle"]["preStop"]["exec"]["command"]
        self.assertTrue(pre[2].startswith("AGENTRY_TOKEN=$(cat /run/agentry/token/token) exec"))
        self.assertNotIn("--cert", pre)
        pod = node["spec"]["template"]["spec"]
        self.assertIs(pod["hostUsers"], False)
        self.assertEqual(n["securityContext"]["procMount"], "Unmasked")
        self.assertFalse([d for d in docs if d["kind"] == "Certificate"])

    def test_minimal(self):
        docs = self.render("minimal", *values("minimal"))
        kinds = sorted(d["kind"] for d in docs)
        self.assertEqual(kinds, ["Deployment", "Deployment", "Service"])
        hub = container(find(docs, "Deployment", "-hub"))
        self.assertIsNone(flag(hub, "--http-listen"))
        self.assertIsNone(flag(hub, "--metrics-listen"))
        self.assertEqual(hub["args"].count("--health-listen"), 1)
        node = find(docs, "Deployment", "-node")
        n = container(node)
        self.assertNotIn("lifecycle", n)
        self.assertEqual(flag(n, "--sandbox"), "unsafe")
        self.assertNotIn("seccompProfile", n["securityContext"])
        self.assertEqual(node["spec"]["template"]["spec"]["runtimeClassName"], "gvisor")
        self.assertEqual(node["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30)
        self.assertEqual(node["spec"]["template"]["spec"]["serviceAccountName"], "default")

    def test_invalid(self):
        cases = [
            # the schema: a misspelt key, a bad enum, a wrong type
            (["--set", "hub.replcas=1"], "replcas"),
            (["--set", "tls.mode=vault"], "tls.mode"),
            (["--set", "nodes.capacity=many"], "nodes.capacity"),
            (["--set", "etcd.endpoints={etcd:2379}"], "etcd.endpoints"),
            # the schema's rules between values
            (["--set", "hub.replicas=2"], "store.type"),
            (["--set", "hub.policy=tokens: []"], "hub.policy"),
        ]
        for args, want in cases:
            _, _, err = render(*args, ok=False)
            self.assertIsNotNone(err, "render %s should fail" % args)
            self.assertIn(want, err, args)
        # the templates' own checks, the schema skipped (a chart used with an older helm, or
        # whose schema a user removed, still refuses these)
        fails = [
            (["--set", "hub.replicas=2"], "a standby hub needs store.type postgres"),
            (["--set", "hub.replicas=2", "--set", "store.type=postgres",
              "--set", "store.postgres.url=postgres://a@db/a"], "set etcd.endpoints"),
            (["--set", "store.type=postgres"], "set store.postgres.url"),
            (["--set", "tls.mode=secret"], "set tls.existingSecret"),
            (["--set", "tls.mode=certManager"], "issuerRef.name"),
            (["--set", "tls.mode=secret", "--set", "tls.existingSecret=x", "--set", "hub.policy=x: 1"],
             "nodes.replicas is 2"),
            (["--set", "tls.mode=secret", "--set", "tls.existingSecret=x", "--set", "nodes.replicas=1"],
             "the dashboard with TLS"),
            (["--set", "hub.policy=tokens: []"], "hub.policy needs TLS"),
            (["--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"],
             "needs metrics.enabled"),
        ]
        for args, want in fails:
            _, _, err = render("--skip-schema-validation", *args, ok=False)
            self.assertIsNotNone(err, "render %s should fail" % args)
            self.assertIn(want, err, args)

    def test_zz_schemas_and_lint(self):
        """After the others (unittest runs in name order): every output they rendered."""
        self.assertEqual(sorted(Chart.rendered), ["default", "ha", "minimal", "secret-tls"])
        lines = []
        for name, text in sorted(Chart.rendered.items()):
            lines += [json.dumps(d) for d in yaml.safe_load_all(text) if d]
            path = os.path.join(WORK, "rendered-%s.yaml" % name)
            with open(path, "w") as f:
                f.write(text)
        r = subprocess.run(["node", os.path.join(WORK, "validate", "validate.mjs")],
                           input="\n".join(lines), capture_output=True, text=True, timeout=120)
        print(r.stdout, end="")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The checker refuses what the schemas let through: a misspelt field, at any depth, and
        # a kind it has no model for.
        bad = json.loads(lines[0])
        self.assertEqual(bad["kind"], "Deployment")
        c = bad["spec"]["template"]["spec"]["containers"][0]
        c["readinesProbe"] = c.pop("readinessProbe")
        c["livenessProbe"]["grpc"]["sevice"] = "liveness"
        unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
        r = subprocess.run(["node", os.path.join(WORK, "validate", "validate.mjs")],
                           input=json.dumps(bad) + "\n" + json.dumps(unknown), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("containers[0].readinesProbe: no such field", r.stdout)
        self.assertIn("livenessProbe.grpc.sevice: no such field", r.stdout)
        self.assertIn("FAIL Widget w: no model", r.stdout)
        files = [os.path.join(CHART, "values.yaml"), os.path.join(CHART, "Chart.yaml")]
        files += [os.path.join(HERE, "values", f) for f in sorted(os.listdir(os.path.join(HERE, "values")))]
        files += [os.path.join(WORK, "rendered-%s.yaml" % n) for n in sorted(Chart.rendered)]
        r = subprocess.run(["yamllint", "-s", "-c", LINT, *files], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def build():
    """Build the renderer into WORK (go's cache there too). The reason to skip, or None."""
    global RENDER
    if not shutil.which("go"):
        return "go is not installed (Debian: golang-go)"
    for lib in ("github.com/Masterminds/sprig", "gopkg.in/yaml.v3", "github.com/xeipuuv/gojsonschema"):
        if not os.path.isdir(os.path.join(GOPATH, "src", lib)):
            return "%s is not in %s (deploy/deps.sh --test installs it)" % (lib, GOPATH)
    if not shutil.which("yamllint"):
        return "yamllint is not installed"
    RENDER = os.path.join(WORK, "render")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOFLAGS="",
               GOCACHE=os.path.join(WORK, "gocache"))
    r = subprocess.run(["go", "build", "-o", RENDER, "."], cwd=os.path.join(HERE, "render"),
                       env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit("cannot build tests/helm/render:\n" + r.stderr)
    return None


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: test_chart.py WORK_DIR")
    WORK = os.path.abspath(sys.argv.pop(1))
    os.makedirs(WORK, exist_ok=True)
    why = build()
    if not why and shutil.which("node"):
        major = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
        if int(major.strip().lstrip("v").split(".")[0] or 0) < 20:
            why = "node %s is older than kubernetes-models needs (20)" % major.strip()
    if not why:
        cache = os.path.join(WORK, "validate")
        why = H.npm_ci(os.path.join(HERE, "validate"), cache,
                       os.path.join(cache, "node_modules", "kubernetes-models", "package.json"))
        if not why:
            shutil.copy(os.path.join(HERE, "validate", "validate.mjs"), cache)
    if why:
        print("SKIP: the chart's test cannot run: %s" % why)
        sys.exit(SKIP)
    unittest.main(verbosity=2)
