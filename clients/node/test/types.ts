// clients/node/test/types.ts - compiled, never run: tests/clients/test_node.py's tsc pass
// (--skipLibCheck, so declarations are not re-checked, only how they are used) fails here if a
// helper's signature drifts from what a program writes, or if index.d.ts stops resolving a
// generated type: it would silently become `any`, and the @ts-expect-error lines, which need
// the real types to fail, would then be errors themselves.
import { connect, kind, payload, NotFound, type Agent, type AgentSpec } from "@agentry/client";

export async function typed(addr: string): Promise<string> {
  const hub = connect(addr, { tlsDir: "/etc/agentry/tls" });
  const spec: AgentSpec = { name: "t", tools: ["echo"], max_iterations: 2 };
  // @ts-expect-error: a spec has no such field
  const wrongSpec: AgentSpec = { nmae: "t" };
  const a = await hub.spawn({ spec, input: "hi", labels: { k: "v" } });
  const agent: Agent = await hub.get(a.agent_id);
  // @ts-expect-error: states are names, not numbers
  const wrongState: number = agent.state;
  for await (const ev of hub.trace(a.agent_id, { fromSeq: 1, reconnectTimeout: 1000 })) {
    const seq: string = ev.seq;
    // @ts-expect-error: a seq is a decimal string (64 bits)
    const wrongSeq: number = ev.seq;
    if (kind(ev) === "final") return `${seq} ${agent.state} ${payload(ev).output} ${wrongSeq}`;
  }
  try {
    await hub.kill(a.agent_id, "done");
  } catch (e) {
    if (e instanceof NotFound) return e.details + e.codeName;
  }
  return String([wrongSpec, wrongState]);
}
