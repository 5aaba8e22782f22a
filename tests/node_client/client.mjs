// tests/node_client/client.mjs - what a Node.js user of the AgentHub API writes, for
// tests/e2e/test_node_client.py: load api/agentry/v1/hub.proto at run time (@grpc/proto-loader,
// no code generation), spawn agents with labels and follow one to its final answer, list them by
// label selector, and kill an agent twice (a retry). Prints one JSON object of what it saw.
//
//   node client.mjs API_DIR HOST:PORT      (AGENTRY_TLS_DIR set: mutual TLS with admin.crt)
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const [apiDir, addr] = process.argv.slice(2);
const def = protoLoader.loadSync(join(apiDir, "agentry", "v1", "hub.proto"), {
  includeDirs: [apiDir],
  keepCase: true, // fields as hub.proto names them: agent_id, label_selector
  longs: String, // uint64 seqs as decimal strings
  enums: String, // states and kinds by name
  defaults: true,
});
const v1 = grpc.loadPackageDefinition(def).agentry.v1;
const tls = process.env.AGENTRY_TLS_DIR;
const creds = tls
  ? grpc.credentials.createSsl(
      readFileSync(join(tls, "ca.crt")),
      readFileSync(join(tls, "admin.key")),
      readFileSync(join(tls, "admin.crt")),
    )
  : grpc.credentials.createInsecure();
const hub = new v1.AgentHub(addr, creds);

// A unary call as a promise, with a 5 s deadline.
function call(method, req) {
  return new Promise((resolve, reject) => {
    hub[method](req, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

// The stored events of an agent; with untilKind, follow until an event of that kind.
function trace(agentId, untilKind) {
  return new Promise((resolve, reject) => {
    const events = [];
    const stream = hub.Trace({ agent_id: agentId, follow: !!untilKind }, { deadline: Date.now() + 30000 });
    stream.on("data", (ev) => {
      events.push(ev);
      if (untilKind && ev.kind === untilKind) {
        stream.cancel();
        resolve(events);
      }
    });
    stream.on("error", (err) => (err.code === grpc.status.CANCELLED ? null : reject(err)));
    stream.on("end", () => resolve(events));
  });
}

const run = randomBytes(6).toString("hex"); // this run's agents only, whatever else the hub holds
const names = {};
let followed = null;
for (const [name, labels] of [
  ["gold-a", { team: "a", tier: "gold" }],
  ["plain-a", { team: "a" }],
  ["silver-b", { team: "b", tier: "silver" }],
]) {
  const r = await call("Spawn", { spec: { name, tools: ["echo"], labels: { ...labels, run } }, input: "hi from node" });
  names[r.agent_id] = name;
  followed ??= r.agent_id;
}
const events = await trace(followed, "EVENT_KIND_FINAL");
const final = JSON.parse(events.at(-1).payload);

async function select(selector) {
  const out = [];
  let token = "";
  do {
    let page;
    try {
      page = await call("ListAgents", { label_selector: selector, page_token: token });
    } catch (err) {
      return grpc.status[err.code]; // the status's name, e.g. INVALID_ARGUMENT
    }
    out.push(...page.agents.map((a) => names[a.id] ?? "other"));
    token = page.next_page_token;
  } while (token);
  return out.sort();
}

const found = {};
for (const term of ["", "team=a", "team==b", "team!=a", "tier", "!tier", "team=c", "team in (a,b)"])
  found[term] = await select(term ? `run=${run},${term}` : `run=${run}`);

const victim = (await call("Spawn", { spec: { name: "victim" }, input: "sleep 60000; final late" })).agent_id;
while ((await call("GetAgent", { agent_id: victim })).state !== "AGENT_STATE_RUNNING")
  await new Promise((r) => setTimeout(r, 20));
const kills = [];
for (const reason of ["first", "retried"]) {
  const k = await call("KillAgent", { agent_id: victim, reason });
  kills.push({ seq: k.seq, already_killed: k.already_killed });
}
const state = (await call("GetAgent", { agent_id: victim })).state;
const killed = (await trace(victim))
  .filter((ev) => ev.kind === "EVENT_KIND_KILLED")
  .map((ev) => ({ seq: ev.seq, reason: JSON.parse(ev.payload).reason }));

console.log(
  JSON.stringify({
    kinds: events.map((ev) => ev.kind),
    seqs: events.map((ev) => ev.seq),
    output: final.output,
    found,
    kills,
    killed,
    state,
  }),
);
hub.close();
