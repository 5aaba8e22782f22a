// clients/node/index.js - @agentry/client: a Node.js client of the Agentry hub
// (api/agentry/v1/hub.proto) over @grpc/grpc-js, with thin helpers: connect with mutual TLS or a
// bearer token, spawn, invoke, send, kill, approve, and trace() as an async iterable that resumes
// after a disconnect. Types: index.d.ts, over the message types proto-loader-gen-types makes in
// generated/ (scripts/gen-types.mjs).
//
// The protos are loaded at run time (@grpc/proto-loader), from the first of: connect()'s apiDir
// option, $AGENTRY_API_DIR, the package's own api/ (a packed package: `npm pack` copies it in,
// scripts/prepack.mjs), and the repository's api/ two levels up (a checkout's clients/node).
//
// Messages keep hub.proto's field names (agent_id, from_seq), 64-bit integers are decimal
// strings (seq, time_unix_nano: JavaScript numbers would lose the nanoseconds) and enums are
// names ("AGENT_STATE_IDLE"); the helpers' own options are camelCase (timeout, tlsDir).
//
// Retry rule, as the Python client's: only UNAVAILABLE is retried, only by trace() (from the
// last seq received + 1) and invoke() (with the same request_id), with a delay doubling from
// 50 ms to 2 s, until reconnectTimeout ms (30 s) of failures in a row; then the error is thrown.
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PACKAGE_DIR = dirname(fileURLToPath(import.meta.url));
const HUB_PROTO = join("agentry", "v1", "hub.proto");
const DEFAULT_TIMEOUT = 30000;
const DEFAULT_INVOKE_TIMEOUT = 300000;
const DEFAULT_RECONNECT_TIMEOUT = 30000;
const BACKOFF_FIRST = 50;
const BACKOFF_MAX = 2000;

// What proto-loader builds the message objects with; scripts/gen-types.mjs generates the types
// with the same choices.
export const LOAD_OPTIONS = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

// A client that outlives a hub restart should find it again within a second or two, not after
// grpc's default reconnect backoff (up to 120 s).
const CHANNEL_OPTIONS = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 2000,
};

const TURN_END = new Set(["EVENT_KIND_FINAL", "EVENT_KIND_YIELD", "EVENT_KIND_ERROR", "EVENT_KIND_KILLED"]);

/** The api/ directory: see the top of this file. */
export function findApiDir(apiDir) {
  const candidates = [apiDir, process.env.AGENTRY_API_DIR, join(PACKAGE_DIR, "api"), join(PACKAGE_DIR, "..", "..", "api")];
  for (const dir of candidates) {
    if (dir && existsSync(join(dir, HUB_PROTO))) return dir;
  }
  throw new Error(
    `cannot find ${HUB_PROTO}: pass connect()'s apiDir option or set AGENTRY_API_DIR to the repository's api directory`,
  );
}

const packages = new Map(); // apiDir -> the loaded agentry.v1 package

function loadPackage(apiDir) {
  if (!packages.has(apiDir)) {
    const def = protoLoader.loadSync(join(apiDir, HUB_PROTO), { ...LOAD_OPTIONS, includeDirs: [apiDir] });
    packages.set(apiDir, grpc.loadPackageDefinition(def).agentry.v1);
  }
  return packages.get(apiDir);
}

// --- errors ---------------------------------------------------------------------------------

/** A call to the hub failed: code (grpc.status), codeName ("NOT_FOUND"), details (the hub's
 * message), method ("GetAgent"). One subclass per status the hub sends. */
export class AgentryError extends Error {
  constructor(code, details, method) {
    super(`${method ? method + ": " : ""}${details} (${grpc.status[code]})`);
    this.name = this.constructor.name;
    this.code = code;
    this.codeName = grpc.status[code];
    this.details = details;
    this.method = method;
  }
}
export class InvalidArgument extends AgentryError {}
export class NotFound extends AgentryError {}
export class AlreadyExists extends AgentryError {}
export class PermissionDenied extends AgentryError {}
export class Unauthenticated extends AgentryError {}
export class FailedPrecondition extends AgentryError {}
export class ResourceExhausted extends AgentryError {}
export class Unavailable extends AgentryError {}
export class DeadlineExceeded extends AgentryError {}
export class Cancelled extends AgentryError {}
export class Internal extends AgentryError {}
export class DataLoss extends AgentryError {}

const ERROR_CLASSES = {
  [grpc.status.INVALID_ARGUMENT]: InvalidArgument,
  [grpc.status.NOT_FOUND]: NotFound,
  [grpc.status.ALREADY_EXISTS]: AlreadyExists,
  [grpc.status.PERMISSION_DENIED]: PermissionDenied,
  [grpc.status.UNAUTHENTICATED]: Unauthenticated,
  [grpc.status.FAILED_PRECONDITION]: FailedPrecondition,
  [grpc.status.RESOURCE_EXHAUSTED]: ResourceExhausted,
  [grpc.status.UNAVAILABLE]: Unavailable,
  [grpc.status.DEADLINE_EXCEEDED]: DeadlineExceeded,
  [grpc.status.CANCELLED]: Cancelled,
  [grpc.status.INTERNAL]: Internal,
  [grpc.status.DATA_LOSS]: DataLoss,
};

function toError(err, method, note) {
  const Class = ERROR_CLASSES[err.code] ?? AgentryError;
  const details = err.details ?? err.message;
  const e = new Class(err.code, note ? `${details}; ${note}` : details, method);
  e.cause = err;
  return e;
}

// --- small helpers --------------------------------------------------------------------------

/** An event's kind as a short name: "EVENT_KIND_TOOL_CALL" -> "tool_call". */
export function kind(ev) {
  return ev.kind.slice("EVENT_KIND_".length).toLowerCase();
}

/** An event's payload, parsed (an object with the keys types.proto lists for its kind). */
export function payload(ev) {
  return JSON.parse(ev.payload);
}

function expand(path) {
  return path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
}

function credentials({ tlsDir, ca, cert, key, token }) {
  if (tlsDir) {
    ca ??= join(tlsDir, "ca.crt");
    if (!token) {
      cert ??= join(tlsDir, "admin.crt");
      key ??= join(tlsDir, "admin.key");
    }
  }
  if (!cert !== !key) throw new TypeError("a client certificate needs both cert and key");
  if (!ca) {
    if (cert || token) {
      throw new TypeError("a client certificate or a token needs TLS: give tlsDir or ca (the hub refuses tokens over plaintext)");
    }
    return grpc.credentials.createInsecure();
  }
  const read = (p) => (p ? readFileSync(expand(p)) : null);
  const ssl = grpc.credentials.createSsl(read(ca), read(key), read(cert));
  if (!token) return ssl;
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    callback(null, md);
  });
  return grpc.credentials.combineChannelCredentials(ssl, bearer);
}

/** Consecutive failures of one resumable call (see the retry rule above). */
class Backoff {
  constructor(limitMs) {
    this.limitMs = limitMs;
    this.ok();
  }
  ok() {
    this.since = null;
    this.delay = BACKOFF_FIRST;
  }
  // The delay before the next attempt, or null once the limit (or deadline) has passed.
  next(deadline) {
    const now = Date.now();
    this.since ??= now;
    const end = Math.min(this.since + this.limitMs, deadline ?? Infinity);
    if (now >= end) return null;
    const d = Math.min(this.delay, end - now);
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX);
    return d;
  }
}

function spawnFields(args) {
  const { spec, input = "", namespace = "", request_id = "", ...fields } = args ?? {};
  const merged = { ...(spec ?? {}) };
  for (const f of ["name", "model", "tools", "system_prompt", "max_iterations", "permissions"]) {
    if (fields[f] !== undefined) merged[f] = fields[f];
  }
  // Labels go over the spec's key by key, as the CLI's --label over a spec file's.
  if (fields.labels !== undefined) merged.labels = { ...(spec?.labels ?? {}), ...fields.labels };
  return { spec: merged, input, namespace, request_id };
}

// --- the client -----------------------------------------------------------------------------

/** A connection to one hub; see connect(). */
export class Client {
  constructor(stub) {
    this.stub = stub;
  }

  close() {
    this.stub.close();
  }

  _call(method, request, timeout = DEFAULT_TIMEOUT, note) {
    return new Promise((resolve, reject) => {
      this.stub[method](request, { deadline: Date.now() + timeout }, (err, res) =>
        err ? reject(toError(err, method, note)) : resolve(res),
      );
    });
  }

  ping({ timeout } = {}) {
    return this._call("Ping", {}, timeout);
  }

  spawn(args = {}, { timeout } = {}) {
    return this._call("Spawn", spawnFields(args), timeout);
  }

  async invoke(args = {}, { timeout = DEFAULT_INVOKE_TIMEOUT, reconnectTimeout = DEFAULT_RECONNECT_TIMEOUT } = {}) {
    const req = spawnFields(args);
    req.request_id ||= `js-${randomUUID()}`;
    const deadline = Date.now() + timeout;
    const backoff = new Backoff(reconnectTimeout);
    for (;;) {
      try {
        return await this._call("Invoke", req, Math.max(deadline - Date.now(), 1), `request_id '${req.request_id}'`);
      } catch (err) {
        const delay = backoff.next(deadline);
        if (!(err instanceof Unavailable) || delay === null) throw err;
        await sleep(delay);
      }
    }
  }

  send(agentId, text, { timeout } = {}) {
    return this._call("SendMessage", { agent_id: agentId, input: text }, timeout);
  }

  get(agentId, { timeout } = {}) {
    return this._call("GetAgent", { agent_id: agentId }, timeout);
  }

  async *listAgents(filter = {}, { timeout } = {}) {
    const req = { ...filter, page_token: "" };
    do {
      const page = await this._call("ListAgents", req, timeout);
      yield* page.agents;
      req.page_token = page.next_page_token;
    } while (req.page_token);
  }

  kill(agentId, reason = "", { timeout } = {}) {
    return this._call("KillAgent", { agent_id: agentId, reason }, timeout);
  }

  resume(agentId, maxIterations = 0, { timeout } = {}) {
    return this._call("ResumeAgent", { agent_id: agentId, max_iterations: maxIterations }, timeout);
  }

  async listApprovals(filter = {}, { timeout } = {}) {
    return (await this._call("ListApprovals", filter, timeout)).approvals;
  }

  approve(agentId, callId, { arguments: args, reason = "", timeout } = {}) {
    const text = args === undefined ? "" : typeof args === "string" ? args : JSON.stringify(args);
    return this._call("ApproveCall", { agent_id: agentId, call_id: callId, arguments: text, reason }, timeout);
  }

  deny(agentId, callId, reason, { timeout } = {}) {
    return this._call("DenyCall", { agent_id: agentId, call_id: callId, reason }, timeout);
  }

  /** The agent's events from fromSeq on, in order, each once; see index.d.ts. */
  async *trace(agentId, { fromSeq = 1, follow = true, timeout, reconnectTimeout = DEFAULT_RECONNECT_TIMEOUT } = {}) {
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    let next = BigInt(fromSeq);
    if (next < 1n) next = 1n;
    const backoff = new Backoff(reconnectTimeout);
    for (;;) {
      const opts = deadline === undefined ? {} : { deadline };
      const call = this.stub.Trace({ agent_id: agentId, from_seq: next.toString(), follow }, opts);
      try {
        for await (const ev of call) {
          next = BigInt(ev.seq) + 1n;
          backoff.ok();
          yield ev;
        }
        return;
      } catch (err) {
        const delay = backoff.next(deadline);
        if (err.code !== grpc.status.UNAVAILABLE || delay === null) throw toError(err, "Trace");
        await sleep(delay);
      } finally {
        call.cancel();
      }
    }
  }

  /** Follows the trace from fromSeq until a turn ends; resolves to that event. */
  async wait(agentId, { fromSeq = 1, timeout } = {}) {
    for await (const ev of this.trace(agentId, { fromSeq, timeout })) {
      if (TURN_END.has(ev.kind)) return ev;
    }
    // A followed trace ends (OK) only after KILLED, a turn end: the hub broke its contract.
    throw new Internal(grpc.status.INTERNAL, `the trace of '${agentId}' ended before its turn did`, "Trace");
  }
}

/** A Client for the hub at addr (host:port); see index.d.ts for the options. */
export function connect(addr, options = {}) {
  const v1 = loadPackage(findApiDir(options.apiDir));
  const stub = new v1.AgentHub(addr, credentials(options), { ...CHANNEL_OPTIONS, ...options.channelOptions });
  return new Client(stub);
}
