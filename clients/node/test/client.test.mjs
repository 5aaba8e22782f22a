// clients/node/test/client.test.mjs - @agentry/client against real hubs, run by `node --test`
// from tests/clients/test_node.py, which starts them and passes, in the environment:
//   AGENTRY_TEST_HUB      a plaintext hub with one node
//   AGENTRY_TEST_CONTROL  http://... whose GET /restart-hub SIGKILLs that hub and starts it
//                         again on the same port and store, answering once it serves
//   AGENTRY_TEST_TLS_HUB, AGENTRY_TEST_TLS_DIR, AGENTRY_TEST_TOKEN
//                         a hub with mutual TLS (certificates of `agentry certs init`) and an
//                         operator token, with one node
// Without them every test is skipped. The tests of a file run one after the other, so the hub
// restart disturbs no other test.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";

import * as A from "@agentry/client";

const env = process.env;
const skip = env.AGENTRY_TEST_HUB ? false : "run by tests/clients/test_node.py, which starts the hubs";
const hub = skip ? null : A.connect(env.AGENTRY_TEST_HUB);

// An address nobody listens on: a port that was free a moment ago.
async function nobody() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return `127.0.0.1:${port}`;
}

async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

test("ping, spawn, get, send, kill twice, list by labels", { skip }, async () => {
  assert.equal((await hub.ping()).version, "0.1.0");
  const a = await hub.spawn({ name: "kw", tools: ["echo"], labels: { suite: "jsclient", way: "kw" }, input: "one" });
  assert.equal(a.input_seq, "2");
  let end = await hub.wait(a.agent_id);
  assert.deepEqual([A.kind(end), A.payload(end).output], ["final", "one"]);
  const sent = await hub.send(a.agent_id, "two");
  end = await hub.wait(a.agent_id, { fromSeq: sent.seq });
  assert.equal(A.payload(end).output, "two");
  const b = await hub.spawn({ spec: { name: "spec", tools: ["echo"], max_iterations: 3, labels: { suite: "jsclient" } }, labels: { way: "spec" } });
  const got = await hub.get(b.agent_id);
  assert.deepEqual([got.spec.name, got.spec.max_iterations, got.state], ["spec", 3, "AGENT_STATE_IDLE"]);
  assert.deepEqual({ ...got.spec.labels }, { suite: "jsclient", way: "spec" });
  const names = async (sel) => (await collect(hub.listAgents({ label_selector: sel }))).map((x) => x.spec.name);
  assert.deepEqual(await names("suite=jsclient"), ["kw", "spec"]);
  assert.deepEqual(await names("suite=jsclient,way=spec"), ["spec"]);
  const first = await hub.kill(b.agent_id, "done");
  const again = await hub.kill(b.agent_id, "retry");
  assert.deepEqual([again.seq, again.already_killed], [first.seq, true]);
  // A followed trace of a killed agent ends after its KILLED event.
  assert.equal(A.kind((await collect(hub.trace(b.agent_id))).at(-1)), "killed");
});

test("invoke", { skip }, async () => {
  const r = await hub.invoke({ tools: ["echo"], input: "hello invoke" });
  assert.deepEqual([r.state, r.output, r.usage.tool_calls], ["AGENT_STATE_IDLE", "hello invoke", 1]);
  const f = await hub.invoke({ input: "fail the model is down" });
  assert.equal(f.state, "AGENT_STATE_FAILED");
  assert.match(f.error, /the model is down/);
});

test("errors are typed, with the hub's message", { skip }, async () => {
  const err = await hub.get("0000000000000000").catch((e) => e);
  assert.ok(err instanceof A.NotFound && err instanceof A.AgentryError, String(err));
  assert.deepEqual([err.codeName, err.method], ["NOT_FOUND", "GetAgent"]);
  assert.match(err.details, /no agent with id '0000000000000000'/);
  await assert.rejects(hub.spawn({ tools: ["echo"], namespace: "Not_A_Namespace" }), A.InvalidArgument);
  const a = await hub.spawn({ tools: ["echo"] });
  await hub.kill(a.agent_id);
  await assert.rejects(hub.send(a.agent_id, "too late"), A.FailedPrecondition);
  await assert.rejects(collect(hub.trace("0000000000000000")), A.NotFound);
  assert.throws(() => A.connect(env.AGENTRY_TEST_HUB, { token: "agt_x" }), TypeError);
  const down = A.connect(await nobody());
  await assert.rejects(down.ping({ timeout: 5000 }), A.Unavailable);
  down.close();
});

test("approve and deny calls held by an ask rule", { skip }, async () => {
  const ask = [{ tool: "echo", decision: "ask" }];
  const a = await hub.spawn({ tools: ["echo"], permissions: ask, input: "echo ship it" });
  const d = await hub.spawn({ tools: ["echo"], permissions: ask, input: "echo rm -rf" });
  for (const agent of [a, d]) {
    for await (const ev of hub.trace(agent.agent_id)) {
      if (A.kind(ev) !== "approval_required") continue;
      assert.equal(A.payload(ev).id, "call_1");
      break;
    }
  }
  const waiting = await hub.listApprovals({ agent_id: a.agent_id });
  assert.deepEqual(waiting.map((w) => [w.call_id, w.tool]), [["call_1", "echo"]]);
  const ok = await hub.approve(a.agent_id, "call_1", { arguments: { text: "shipped" }, reason: "lgtm" });
  assert.equal((await hub.approve(a.agent_id, "call_1")).seq, ok.seq);
  assert.equal(A.payload(await hub.wait(a.agent_id, { fromSeq: ok.seq })).output, "shipped");
  const no = await hub.deny(d.agent_id, "call_1", "never");
  assert.match(A.payload(await hub.wait(d.agent_id, { fromSeq: no.seq })).output, /never/);
  await assert.rejects(hub.approve(d.agent_id, "call_1"), A.FailedPrecondition);
});

test("trace resumes after the hub is SIGKILLed mid-stream: no seq lost or repeated", { skip }, async () => {
  // The second echo's reply comes 1.5 s after the first call: the hub dies in that gap.
  const a = await hub.spawn({ tools: ["echo"], input: "echo before; sleep 1500; echo after; final done" });
  const seen = [];
  let restarted = false;
  for await (const ev of hub.trace(a.agent_id, { reconnectTimeout: 20000 })) {
    seen.push(ev);
    if (A.kind(ev) === "tool_result" && !restarted) {
      restarted = true;
      const r = await fetch(`${env.AGENTRY_TEST_CONTROL}/restart-hub`);
      assert.equal(r.status, 200, await r.text());
    }
    if (A.kind(ev) === "final") break;
  }
  assert.ok(restarted);
  assert.deepEqual(seen.map((e) => e.seq), seen.map((_, i) => String(i + 1)));
  assert.equal(A.payload(seen.at(-1)).output, "done");
  const stored = await collect(hub.trace(a.agent_id, { follow: false }));
  const fields = (e) => [e.seq, e.kind, e.payload];
  assert.deepEqual(seen.map(fields), stored.slice(0, seen.length).map(fields));
});

test("trace gives up once reconnectTimeout passes", { skip }, async () => {
  const down = A.connect(await nobody());
  const t0 = Date.now();
  await assert.rejects(collect(down.trace("0000000000000000", { reconnectTimeout: 1000 })), A.Unavailable);
  assert.ok(Date.now() - t0 < 5000);
  down.close();
});

test("mutual TLS", { skip }, async () => {
  const tls = A.connect(env.AGENTRY_TEST_TLS_HUB, { tlsDir: env.AGENTRY_TEST_TLS_DIR });
  const r = await tls.invoke({ tools: ["echo"], input: "over mtls" });
  assert.deepEqual([r.state, r.output], ["AGENT_STATE_IDLE", "over mtls"]);
  const [spawned] = await collect(tls.trace(r.agent_id, { follow: false }));
  assert.equal(A.payload(spawned).by, "user/admin");
  tls.close();
});

test("bearer token", { skip }, async () => {
  const ca = join(env.AGENTRY_TEST_TLS_DIR, "ca.crt");
  const tok = A.connect(env.AGENTRY_TEST_TLS_HUB, { ca, token: env.AGENTRY_TEST_TOKEN });
  const a = await tok.spawn({ tools: ["echo"], input: "by token" });
  assert.equal(A.payload(await tok.wait(a.agent_id)).output, "by token");
  const [spawned] = await collect(tok.trace(a.agent_id, { follow: false }));
  assert.equal(A.payload(spawned).by, "token/clients");
  tok.close();
  const wrong = A.connect(env.AGENTRY_TEST_TLS_HUB, { ca, token: env.AGENTRY_TEST_TOKEN + "x" });
  await assert.rejects(wrong.ping(), A.Unauthenticated);
  wrong.close();
  const plain = A.connect(env.AGENTRY_TEST_TLS_HUB);
  await assert.rejects(plain.ping({ timeout: 5000 }), A.Unavailable);
  plain.close();
});

test("close", { skip }, () => hub.close());
