// tests/helm/validate/validate.mjs - checks every object of a rendered chart (a YAML stream on
// stdin, as JSON lines: one object a line, from tests/helm/test_chart.py) against Kubernetes'
// OpenAPI schemas, with the models of the kubernetes-models packages (each validates with the
// upstream schema of its kind), and cert-manager's and the Prometheus Operator's for their
// resources. An object of a kind with no model fails: the chart must render only known kinds.
// Prints one line per object; exit 1 if any failed.
import { readFileSync } from "node:fs";


// apiVersion/kind -> the module that holds its model.
function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "cert-manager.io") return `@kubernetes-models/cert-manager/cert-manager.io/${version}/${kind}`;
  if (group === "monitoring.coreos.com") return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`;
  return `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`;
}

const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.trim());
let failed = 0;
for (const line of lines) {
  const obj = JSON.parse(line);
  const what = `${obj.kind} ${obj.metadata && obj.metadata.name}`;
  let mod;
  try {
    mod = await import(modulePath(obj.apiVersion, obj.kind));
  } catch (e) {
    console.log(`FAIL ${what}: no model for ${obj.apiVersion} ${obj.kind} (${e.code || e.message})`);
    failed++;
    continue;
  }
  const Model = mod[obj.kind];
  try {
    new Model(obj).validate();
    console.log(`ok   ${what}`);
  } catch (e) {
    console.log(`FAIL ${what}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
