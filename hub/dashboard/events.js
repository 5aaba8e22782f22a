// events.js - one internal shape for trace events, whichever way they came:
//   - the gateway's Trace (proto3 JSON): {"agent_id","seq":"12","time_unix_nano":"...",
//     "kind":"EVENT_KIND_TOOL_CALL","payload":"{...json text...}","node_id"}
//   - a line of `agentry trace --jsonl` (cmd/agentry/print.c): {"agent_id","seq":12,
//     "time":"2026-...Z","kind":"tool_call","payload":{...},"node_id"}
// Both become {agentId, seq, timeMs, kind, nodeId, payload} with kind the short lowercase name
// and payload an object, so the timeline has one renderer for live and replayed traces.

export const KINDS = [
  'unspecified', 'spawned', 'input', 'assigned', 'model_request', 'model_reply', 'tool_call',
  'tool_result', 'final', 'yield', 'error', 'killed', 'interrupted', 'resumed', 'model_delta',
  'waiting', 'child', 'approval_required', 'approval_decided',
];

// Label and Bootstrap colour of each kind's badge.
export const KIND_STYLE = {
  spawned: ['spawned', 'secondary'], input: ['input', 'dark'], assigned: ['assigned', 'secondary'],
  model_request: ['model request', 'info'], model_reply: ['model reply', 'info'],
  model_delta: ['streaming', 'info'], tool_call: ['tool call', 'primary'],
  tool_result: ['tool result', 'primary'], final: ['final', 'success'], yield: ['yield', 'warning'],
  error: ['error', 'danger'], killed: ['killed', 'danger'], interrupted: ['interrupted', 'warning'],
  resumed: ['resumed', 'success'], waiting: ['waiting', 'secondary'], child: ['child', 'secondary'],
  approval_required: ['approval required', 'warning'], approval_decided: ['approval decided', 'success'],
};

function kindName(k) {
  if (typeof k === 'number') return KINDS[k] || 'unspecified';
  const s = String(k || '').toLowerCase();
  return s.startsWith('event_kind_') ? s.slice(11) : s;
}

// RFC 3339 with up to 9 fractional digits -> ms (Date.parse keeps only 3).
function rfc3339ToMs(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)$/.exec(s || '');
  if (!m) return Date.parse(s) || 0;
  const base = Date.parse(m[1] + m[3]);
  const frac = m[2] ? Number('0.' + m[2]) * 1000 : 0;
  return base + frac;
}

// Throws an Error naming what is wrong when ev is neither shape.
export function normalize(ev) {
  if (!ev || typeof ev !== 'object') throw new Error('an event must be a JSON object');
  let payload = ev.payload;
  if (typeof payload === 'string') {
    try { payload = payload ? JSON.parse(payload) : {}; } catch { payload = {text: payload}; }
  }
  const timeMs = ev.time_unix_nano !== undefined ? Number(ev.time_unix_nano) / 1e6 :
    typeof ev.time === 'string' ? rfc3339ToMs(ev.time) : Number(ev.time || 0);
  const seq = Number(ev.seq || 0);
  if (!seq) throw new Error('an event without a seq');
  return {
    agentId: ev.agent_id || ev.agentId || '',
    seq,
    timeMs,
    kind: kindName(ev.kind),
    nodeId: ev.node_id || ev.nodeId || '',
    payload: payload && typeof payload === 'object' ? payload : {value: payload},
  };
}

// A JSONL file's text -> {events, errors}: a bad line is reported by number, the rest kept.
export function parseJsonl(text) {
  const events = [], errors = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    try { events.push(normalize(JSON.parse(line))); } catch (e) {
      errors.push('line ' + (i + 1) + ': ' + e.message);
    }
  });
  events.sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : a.seq - b.seq));
  return {events, errors};
}

// Usage of a MODEL_REPLY: {input, output, cost}.
export function replyUsage(ev) {
  const u = (ev.payload && ev.payload.usage) || {};
  return {input: Number(u.input_tokens || 0), output: Number(u.output_tokens || 0),
    cost: Number(u.cost_usd || 0)};
}
