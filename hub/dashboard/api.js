// api.js - the hub's HTTP API (docs/dashboard.md, "The HTTP API"): unary calls as JSON POSTs,
// Trace as an EventSource, and sign-in/sign-out.
//
// Every failure becomes an ApiError carrying the hub's {"code","message"} (or UNAVAILABLE when
// the hub cannot be reached), so each panel can show it inline. A 401 also calls the handler set
// with onUnauthorized (the sign-in view); the caller still gets the error.

const BASE = '/api/v1/agentry.v1.AgentHub/';

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

async function post(path, body) {
  let r;
  try {
    r = await fetch(path, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(body || {}),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError('UNAVAILABLE', 'cannot reach the hub (' + e.message + ')', 0);
  }
  const text = await r.text();
  let data = {};
  if (text) {
    try { data = JSON.parse(text); } catch {
      data = {code: r.ok ? 'INTERNAL' : 'HTTP_' + r.status, message: text.slice(0, 300)};
      if (r.ok) throw new ApiError(data.code, 'the hub answered something that is not JSON', r.status);
    }
  }
  if (!r.ok) {
    const err = new ApiError(data.code || 'HTTP_' + r.status, data.message || r.statusText, r.status);
    if (r.status === 401) unauthorized(err);
    throw err;
  }
  return data;
}

// call('ListAgents', {page_size: 50}) -> the response message as proto3 JSON.
export function call(method, req) { return post(BASE + method, req); }

export function login(token) { return post('/api/v1/login', {token}); }
export function logout() { return post('/api/v1/logout', {}); }

// A live Trace of one agent: handlers.event(json), .end(), .error(ApiError), .state(text).
// Returns the EventSource (close() it to stop following). The browser reconnects by itself with
// Last-Event-ID, which the hub reads as from_seq, so nothing is lost or repeated.
export function trace(agentId, fromSeq, handlers) {
  const q = new URLSearchParams({agent_id: agentId, follow: 'true'});
  if (fromSeq > 1) q.set('from_seq', String(fromSeq));
  const es = new EventSource(BASE + 'Trace?' + q, {withCredentials: true});
  es.onopen = () => handlers.state && handlers.state('live');
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch {
      handlers.error(new ApiError('INTERNAL', 'an event that is not JSON: ' + m.data.slice(0, 200)));
      return;
    }
    handlers.event(ev);
  };
  es.addEventListener('end', () => { es.close(); handlers.end && handlers.end(); });
  es.addEventListener('error', (m) => {
    if (m.data !== undefined) { // the hub's own "event: error" with {"code","message"}
      es.close();
      let e = {};
      try { e = JSON.parse(m.data); } catch { e = {message: m.data}; }
      handlers.error(new ApiError(e.code || 'UNKNOWN', e.message || 'the trace ended with an error'));
      return;
    }
    if (es.readyState === EventSource.CLOSED) {
      // Refused outright (401, 404, ...): a unary call tells which, with its message.
      handlers.error(new ApiError('UNAVAILABLE', 'the trace stream was refused or the hub is unreachable'));
    } else if (handlers.state) {
      handlers.state('reconnecting');
    }
  });
  return es;
}
