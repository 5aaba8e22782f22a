// clients/node/index.d.ts - the types of @agentry/client's helpers (index.js), written by hand
// over the message types proto-loader-gen-types generates from api/agentry/v1 into generated/
// (scripts/gen-types.mjs; made at pack and test time, never committed). A message an RPC
// answers is its `__Output` type: every field present, 64-bit integers as decimal strings,
// enums as names.
import type * as grpc from "@grpc/grpc-js";

import type { Agent__Output } from "./generated/agentry/v1/Agent.js";
import type { AgentHubClient } from "./generated/agentry/v1/AgentHub.js";
import type { AgentSpec } from "./generated/agentry/v1/AgentSpec.js";
import type { AgentState } from "./generated/agentry/v1/AgentState.js";
import type { Approval__Output } from "./generated/agentry/v1/Approval.js";
import type { ApproveCallResponse__Output } from "./generated/agentry/v1/ApproveCallResponse.js";
import type { DenyCallResponse__Output } from "./generated/agentry/v1/DenyCallResponse.js";
import type { EventKind__Output } from "./generated/agentry/v1/EventKind.js";
import type { InvokeResponse__Output } from "./generated/agentry/v1/InvokeResponse.js";
import type { KillAgentResponse__Output } from "./generated/agentry/v1/KillAgentResponse.js";
import type { PermissionRule } from "./generated/agentry/v1/PermissionRule.js";
import type { PingResponse__Output } from "./generated/agentry/v1/PingResponse.js";
import type { ResumeAgentResponse__Output } from "./generated/agentry/v1/ResumeAgentResponse.js";
import type { SendMessageResponse__Output } from "./generated/agentry/v1/SendMessageResponse.js";
import type { SpawnResponse__Output } from "./generated/agentry/v1/SpawnResponse.js";
import type { TraceEvent__Output } from "./generated/agentry/v1/TraceEvent.js";

export type {
  Agent__Output as Agent,
  AgentHubClient,
  AgentSpec,
  AgentState,
  Approval__Output as Approval,
  EventKind__Output as EventKind,
  InvokeResponse__Output as InvokeResponse,
  PermissionRule,
  SpawnResponse__Output as SpawnResponse,
  TraceEvent__Output as TraceEvent,
};

export interface ConnectOptions {
  /** A directory from `agentry certs init`: ca.crt, and admin.crt/admin.key unless a token is given. */
  tlsDir?: string;
  /** The CA that signs the hub's certificate (a file); TLS. */
  ca?: string;
  /** A client certificate and its key (files): mutual TLS. */
  cert?: string;
  key?: string;
  /** A bearer token (`agentry token create`), sent as `authorization: Bearer ...`; needs TLS. */
  token?: string;
  /** Where api/agentry/v1/hub.proto is; default: $AGENTRY_API_DIR, the package's api/, the repository's. */
  apiDir?: string;
  /** Extra grpc channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export interface CallOptions {
  /** Milliseconds before the call gives up (DeadlineExceeded); default 30000. */
  timeout?: number;
}

export interface RetryOptions {
  /** Milliseconds the whole call may take; invoke's default 300000, trace's none. */
  timeout?: number;
  /** Milliseconds of UNAVAILABLE in a row before giving up (default 30000). */
  reconnectTimeout?: number;
}

/** Spawn's and Invoke's request: a spec, and the fields set over it. */
export interface SpawnArgs {
  spec?: AgentSpec;
  input?: string;
  name?: string;
  model?: string;
  tools?: string[];
  labels?: Record<string, string>;
  system_prompt?: string;
  max_iterations?: number;
  permissions?: PermissionRule[];
  namespace?: string;
  /** Idempotency key; invoke() makes one up when it is empty. */
  request_id?: string;
}

export interface ListAgentsFilter {
  namespace?: string;
  state?: AgentState;
  label_selector?: string;
  name?: string;
  request_id?: string;
  parent_id?: string;
  page_size?: number;
}

export interface TraceOptions extends RetryOptions {
  /** The first seq to give (default 1). */
  fromSeq?: number | string;
  /** Wait for new events until the agent is killed (default true). */
  follow?: boolean;
}

export declare class Client {
  /** The generated grpc-js client, for the RPCs without a helper. */
  readonly stub: AgentHubClient;
  close(): void;
  ping(options?: CallOptions): Promise<PingResponse__Output>;
  spawn(args?: SpawnArgs, options?: CallOptions): Promise<SpawnResponse__Output>;
  /** Spawns and waits for the end of the first turn (state IDLE with output, or YIELDED, FAILED, KILLED with error). */
  invoke(args?: SpawnArgs, options?: RetryOptions): Promise<InvokeResponse__Output>;
  send(agentId: string, text: string, options?: CallOptions): Promise<SendMessageResponse__Output>;
  get(agentId: string, options?: CallOptions): Promise<Agent__Output>;
  /** Every matching agent in creation order, a page at a time. */
  listAgents(filter?: ListAgentsFilter, options?: CallOptions): AsyncIterable<Agent__Output>;
  kill(agentId: string, reason?: string, options?: CallOptions): Promise<KillAgentResponse__Output>;
  resume(agentId: string, maxIterations?: number, options?: CallOptions): Promise<ResumeAgentResponse__Output>;
  listApprovals(filter?: { namespace?: string; agent_id?: string; limit?: number }, options?: CallOptions): Promise<Approval__Output[]>;
  /** Runs a waiting tool call, as asked or with other arguments (an object or JSON text). */
  approve(agentId: string, callId: string, options?: CallOptions & { arguments?: string | Record<string, unknown>; reason?: string }): Promise<ApproveCallResponse__Output>;
  deny(agentId: string, callId: string, reason: string, options?: CallOptions): Promise<DenyCallResponse__Output>;
  /** The agent's events in order, each once; a broken stream is opened again from the last seq + 1. */
  trace(agentId: string, options?: TraceOptions): AsyncIterable<TraceEvent__Output>;
  /** The event that ends the next turn (FINAL, YIELD, ERROR or KILLED). */
  wait(agentId: string, options?: { fromSeq?: number | string; timeout?: number }): Promise<TraceEvent__Output>;
}

export declare function connect(addr: string, options?: ConnectOptions): Client;
export declare function findApiDir(apiDir?: string): string;
export declare const LOAD_OPTIONS: Readonly<Record<string, unknown>>;

/** "EVENT_KIND_TOOL_CALL" -> "tool_call". */
export declare function kind(ev: TraceEvent__Output): string;
/** The payload parsed: the keys types.proto lists for the event's kind. */
export declare function payload(ev: TraceEvent__Output): any;

export declare class AgentryError extends Error {
  readonly code: grpc.status;
  /** "NOT_FOUND", ... */
  readonly codeName: string;
  /** The hub's message. */
  readonly details: string;
  /** The RPC: "Spawn", "Trace", ... */
  readonly method: string;
}
export declare class InvalidArgument extends AgentryError {}
export declare class NotFound extends AgentryError {}
export declare class AlreadyExists extends AgentryError {}
export declare class PermissionDenied extends AgentryError {}
export declare class Unauthenticated extends AgentryError {}
export declare class FailedPrecondition extends AgentryError {}
export declare class ResourceExhausted extends AgentryError {}
export declare class Unavailable extends AgentryError {}
export declare class DeadlineExceeded extends AgentryError {}
export declare class Cancelled extends AgentryError {}
export declare class Internal extends AgentryError {}
export declare class DataLoss extends AgentryError {}
