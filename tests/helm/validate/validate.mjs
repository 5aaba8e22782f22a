// tests/helm/validate/validate.mjs - checks every object of a rendered chart (a YAML stream on
// stdin, as JSON lines: one object a line, from tests/helm/test_chart.py) against Kubernetes'
// OpenAPI schemas, with the models of the kubernetes-models packages (each validates with the
// upstream schema of its kind), and cert-manager's and the Prometheus Operator's for their
// resources. An object of a kind with no model fails: the chart must render only known kinds.
//
// Kubernetes' schemas let unknown fields through (the API server drops or warns about them), so
// a misspelt field (readinesProbe) would pass them. The second check walks each object along
// its model's TypeScript declarations (the .d.ts files of the same packages, generated from the
// same schemas) and refuses a field that its type does not declare.
// Prints one line per object; exit 1 if any failed.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MODULES = join(dirname(fileURLToPath(import.meta.url)), "node_modules");


// apiVersion/kind -> the module that holds its model.
function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "cert-manager.io") return `@kubernetes-models/cert-manager/cert-manager.io/${version}/${kind}`;
  if (group === "monitoring.coreos.com") return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`;
  return `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`;
}

// The declarations of one .d.ts file: its interfaces (name -> {prop: type text}), the names it
// imports (name -> file) and the aliases it exports (exported name -> interface name).
const files = new Map();
function declarations(file) {
  if (files.has(file)) return files.get(file);
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const d = { file, interfaces: new Map(), imports: new Map(), aliases: new Map() };
  for (const m of text.matchAll(/import \{([^}]*)\} from "([^"]+)"/g)) {
    for (const name of m[1].split(",").map((x) => x.trim()).filter(Boolean)) {
      d.imports.set(name, resolveModule(m[2], file));
    }
  }
  for (const m of text.matchAll(/export type \{([^}]*)\}/g)) {
    for (const part of m[1].split(",")) {
      const [a, b] = part.split(" as ").map((x) => x.trim());
      if (b) d.aliases.set(b, a);
    }
  }
  for (const m of text.matchAll(/export interface (\w+)[^{]*\{/g)) {
    d.interfaces.set(m[1], props(text, m.index + m[0].length));
  }
  files.set(file, d);
  return d;
}

// The .d.ts file a module specifier names, from the file that imports it.
function resolveModule(spec, from) {
  const base = spec.startsWith(".") ? join(dirname(from), spec) : join(MODULES, spec);
  return base.replace(/\.js$/, "") + ".d.ts";
}

// The properties of a type literal whose body starts at text[i] (just after its "{").
function props(text, i) {
  const out = new Map();
  for (;;) {
    while (/[\s;]/.test(text[i])) i++;
    if (text[i] === "}" || i >= text.length) return out;
    const m = /^"([^"]+)"\??:\s*/.exec(text.slice(i));
    if (!m) { // an index signature or a method: not a field
      i = skipType(text, text.indexOf(":", i) + 1);
      continue;
    }
    const start = i + m[0].length;
    const end = skipType(text, start);
    out.set(m[1], text.slice(start, end).trim());
    i = end;
  }
}

// Where the type starting at text[i] ends: its ";" (or the closing "}") outside brackets.
function skipType(text, i) {
  let depth = 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if ("{<([".includes(c)) depth++;
    else if ("}>)]".includes(c)) {
      if (depth === 0) return i;
      depth--;
    } else if (c === ";" && depth === 0) return i;
    else if (c === '"') i = text.indexOf('"', i + 1);
  }
  return i;
}

// Check value against a type's text, read in the declarations d; errors go to errs.
function strict(value, type, d, path, errs) {
  if (value === null || typeof value !== "object") return;
  type = type.trim();
  let m;
  if ((m = /^Array<(.*)>$/s.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, k) => strict(v, m[1], d, `${path}[${k}]`, errs));
    return;
  }
  if ((m = /^\{\s*\[key: string\]:\s*(.*?);?\s*\}$/s.exec(type))) {
    for (const [k, v] of Object.entries(value)) strict(v, m[1], d, `${path}.${k}`, errs);
    return;
  }
  let fields, where = d;
  if (type.startsWith("{")) {
    fields = props(type, 1);
  } else if (/^\w+$/.test(type)) {
    const file = d.imports.get(type);
    where = file ? declarations(file) : d;
    const name = where.aliases.get(type) || type;
    fields = where.interfaces.get(name) || (where.interfaces.size === 1 ? [...where.interfaces.values()][0] : null);
    if (!fields) return; // a type alias (IntOrString, Quantity): a scalar
  } else {
    return; // a union or a scalar
  }
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) errs.push(`${path}.${k}: no such field`);
    else strict(v, fields.get(k), where, `${path}.${k}`, errs);
  }
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
    const model = join(MODULES, modulePath(obj.apiVersion, obj.kind) + ".d.ts");
    const errs = [];
    if (!existsSync(model)) errs.push(`no declarations at ${model}`);
    else strict(obj, `I${obj.kind}`, declarations(model), obj.kind, errs);
    if (errs.length) throw new Error(errs.join("; "));
    console.log(`ok   ${what}`);
  } catch (e) {
    console.log(`FAIL ${what}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
