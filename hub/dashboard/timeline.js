// timeline.js - one agent's steps as they happen (live over Trace, or replayed from a JSONL file),
// and the tool invocation log derived from the same events.
//
// Timeline.add(ev) takes a normalized event (events.js) in seq order and renders it at once:
// model request/reply (MODEL_DELTA text appends to the reply in progress until its MODEL_REPLY
// replaces it), tool call and result, approvals, yields, errors, interruptions, kills, sub-agents.
// Related events are paired to show durations: request->reply by iteration, call->result and
// approval required->decided by call id, turn start (input/resume) -> turn end. A seq already
// seen is ignored, so a replayed stream never shows a step twice.

import {el, fmtDuration, fmtTime, fmtInt, fmtCost, prettyJson, shortJson} from './util.js';
import {KIND_STYLE, replyUsage} from './events.js';

const TURN_ENDS = new Set(['final', 'yield', 'error', 'killed']);

function pre(text, cls) {
  return el('pre', {class: 'step-pre ' + (cls || '')}, text);
}

// Arguments as the model wrote them: on one line when short, indented when long.
function argsText(args) {
  return args.length > 100 ? prettyJson(args) : args;
}

function agentLink(id) {
  return el('a', {href: '#/agent/' + encodeURIComponent(id), class: 'font-monospace'}, id);
}

export class Timeline {
  // list: the <ol> to fill. opts.onDecide(agentId, callId, tool, args): approve/deny buttons
  // (live only). opts.onChange(): the tool calls changed. opts.onRendered(ev, li).
  constructor(list, opts) {
    this.list = list;
    this.opts = opts || {};
    this.reset();
  }

  reset() {
    this.list.replaceChildren();
    this.seen = new Set();
    this.requests = new Map(); // agent/iteration -> {timeMs}
    this.calls = new Map(); // agent/call id -> tool call record
    this.asked = new Map(); // agent/call id -> {timeMs, li}
    this.streams = new Map(); // agent/iteration -> {li, text node}
    this.turnStart = new Map(); // agent -> timeMs
    this.lastTime = 0;
    this.toolCalls = []; // in call order: {agentId, id, name, args, callMs, resultMs, outcome, output, seq}
    this.live = false;
  }

  get size() { return this.seen.size; }

  add(ev) {
    const key = ev.agentId + '/' + ev.seq;
    if (this.seen.has(key)) return null;
    this.seen.add(key);
    if (ev.kind === 'model_delta') return this.delta(ev);
    const li = this.step(ev);
    this.list.append(li);
    this.lastTime = ev.timeMs;
    if (this.opts.onRendered) this.opts.onRendered(ev, li);
    return li;
  }

  // The streamed text of one model call: one step that grows, removed when the reply lands.
  delta(ev) {
    const k = ev.agentId + '/' + (ev.payload.iteration || 0);
    let s = this.streams.get(k);
    if (!s) {
      const text = document.createTextNode('');
      const li = this.frame(ev, null);
      li.append(el('pre', {class: 'step-pre streaming', 'aria-live': 'off'}, text));
      this.list.append(li);
      s = {li, text};
      this.streams.set(k, s);
    }
    s.text.appendData(ev.payload.text || '');
    if (this.opts.onRendered) this.opts.onRendered(ev, s.li);
    return s.li;
  }

  // The common frame of a step: kind badge, seq, time, node, gap since the previous step.
  frame(ev, duration) {
    const [label, colour] = KIND_STYLE[ev.kind] || [ev.kind, 'secondary'];
    const head = el('div', {class: 'step-head'},
      el('span', {class: 'badge text-bg-' + colour + ' step-kind'}, label),
      el('span', {class: 'text-body-secondary small font-monospace'}, '#' + ev.seq),
      el('time', {class: 'small', datetime: new Date(ev.timeMs).toISOString()}, fmtTime(ev.timeMs)),
      ev.nodeId ? el('span', {class: 'small text-body-secondary'}, 'on ' + ev.nodeId) : null,
      duration !== null && duration !== undefined ?
        el('span', {class: 'badge rounded-pill text-bg-light border step-duration',
          title: 'duration'}, fmtDuration(duration)) : null,
      this.lastTime ? el('span', {class: 'small text-body-secondary ms-auto',
        title: 'time since the previous step'}, '+' + fmtDuration(Math.max(0, ev.timeMs - this.lastTime))) : null);
    return el('li', {class: 'step step-' + ev.kind, 'data-kind': ev.kind, 'data-seq': ev.seq, 'data-time': ev.timeMs,
      'data-agent': ev.agentId}, head);
  }

  step(ev) {
    const p = ev.payload, a = ev.agentId;
    let duration = null;
    const body = [];
    switch (ev.kind) {
      case 'spawned':
        body.push(el('div', {}, el('strong', {}, p.name || '(no name)'), ' · model ', el('code', {}, p.model || 'mock'),
          ' · tools ', el('code', {}, (p.tools || []).join(', ') || 'none'),
          p.namespace ? ' · namespace ' + p.namespace : '', p.by ? ' · by ' + p.by : ''));
        break;
      case 'input':
        this.turnStart.set(a, this.turnStart.get(a) || ev.timeMs);
        body.push(pre(p.text || ''));
        if (p.by) body.push(el('div', {class: 'small text-body-secondary'}, 'by ' + p.by));
        break;
      case 'assigned':
        body.push(el('div', {}, 'placed on ', el('strong', {}, p.node || ev.nodeId || '?'), ', epoch ' + (p.epoch || '')));
        break;
      case 'model_request':
        this.requests.set(a + '/' + p.iteration, {timeMs: ev.timeMs});
        body.push(el('div', {}, 'asks ', el('code', {}, p.model || ''), ' (iteration ' + (p.iteration || 0) +
          ', ' + (p.messages || 0) + ' messages)'));
        break;
      case 'model_reply': {
        const it = this.requestFor(a, p);
        if (it) duration = ev.timeMs - it.timeMs;
        const s = this.streams.get(a + '/' + (p.iteration || this.lastIteration(a)));
        if (s) { s.li.remove(); this.streams.delete(a + '/' + (p.iteration || this.lastIteration(a))); }
        if (p.content) body.push(pre(p.content));
        for (const c of p.tool_calls || [])
          body.push(el('div', {}, 'calls ', el('code', {}, c.name), ' ', el('code', {class: 'small'}, shortJson(c.arguments || '', 200))));
        const u = replyUsage(ev);
        body.push(el('div', {class: 'small text-body-secondary'}, fmtInt(u.input) + ' in · ' + fmtInt(u.output) +
          ' out tokens' + (u.cost ? ' · ' + fmtCost(u.cost) : '')));
        break;
      }
      case 'tool_call': {
        const rec = {agentId: a, id: p.id, name: p.name, args: p.arguments || '', callMs: ev.timeMs,
          resultMs: 0, outcome: 'running', output: '', seq: ev.seq};
        const prev = this.calls.get(a + '/' + p.id);
        if (prev) Object.assign(prev, {args: rec.args, callMs: ev.timeMs, outcome: 'running', seq: ev.seq});
        else { this.calls.set(a + '/' + p.id, rec); this.toolCalls.push(rec); }
        body.push(el('div', {}, el('code', {}, p.name), ' ', el('span', {class: 'small text-body-secondary'}, p.id)));
        body.push(pre(argsText(p.arguments || ''), 'args'));
        this.changed();
        break;
      }
      case 'tool_result': {
        const rec = this.calls.get(a + '/' + p.id);
        if (rec) {
          duration = ev.timeMs - rec.callMs;
          Object.assign(rec, {resultMs: ev.timeMs, outcome: p.is_error ? 'error' : 'ok', output: p.output || ''});
          this.changed();
        }
        body.push(el('div', {}, el('code', {}, p.name || ''), ' ',
          el('span', {class: 'badge ' + (p.is_error ? 'text-bg-danger' : 'text-bg-success')}, p.is_error ? 'error' : 'ok')));
        body.push(pre(p.output || '', p.is_error ? 'text-danger' : ''));
        break;
      }
      case 'final':
      case 'yield':
      case 'error':
      case 'killed':
        if (this.turnStart.has(a)) duration = ev.timeMs - this.turnStart.get(a);
        this.turnStart.delete(a);
        body.push(ev.kind === 'final' ? pre(p.output || '') :
          el('div', {class: ev.kind === 'yield' ? '' : 'text-danger'}, p.reason || p.message || ''));
        if (p.iterations) body.push(el('div', {class: 'small text-body-secondary'}, p.iterations + ' iterations'));
        break;
      case 'interrupted':
        body.push(el('div', {}, 'node ' + (p.node || '?') + ': ' + (p.reason || '') + ' (attempt ' + (p.attempt || '?') +
          '/' + (p.limit || '?') + ', ' + (p.retry_in_ms < 0 ? 'no retry' : 'retry in ' + fmtDuration(p.retry_in_ms || 0)) + ')'));
        break;
      case 'resumed':
        this.turnStart.set(a, ev.timeMs);
        body.push(el('div', {}, 'from ' + (p.from || '?') + (p.by ? ' by ' + p.by : '')));
        break;
      case 'waiting':
        body.push(el('div', {}, 'waits for ', ...(p.agents || []).flatMap((id, i) => [i ? ', ' : '', agentLink(id)])));
        break;
      case 'child':
        body.push(el('div', {}, 'sub-agent ', agentLink(p.agent_id || ''), ' ended its turn: ',
          el('strong', {}, p.state || '')));
        if (p.output || p.error) body.push(pre(p.output || p.error, p.error ? 'text-danger' : ''));
        break;
      case 'approval_required': {
        this.asked.set(a + '/' + p.id, {timeMs: ev.timeMs});
        const rec = this.calls.get(a + '/' + p.id);
        if (rec) { rec.outcome = 'awaiting approval'; this.changed(); }
        body.push(el('div', {}, el('code', {}, p.name), ' waits for a decision: ' + (p.reason || '')));
        body.push(pre(argsText(p.arguments || ''), 'args'));
        if (p.expires_at_ms) body.push(el('div', {class: 'small text-body-secondary'}, 'expires ' + new Date(Number(p.expires_at_ms)).toLocaleString()));
        if (this.live && this.opts.onDecide) {
          body.push(el('button', {type: 'button', class: 'btn btn-sm btn-warning mt-1 decide',
            onclick: () => this.opts.onDecide(a, p.id, p.name, p.arguments || '')}, 'Approve or deny…'));
        }
        break;
      }
      case 'approval_decided': {
        const q = this.asked.get(a + '/' + p.id);
        if (q) duration = ev.timeMs - q.timeMs;
        const rec = this.calls.get(a + '/' + p.id);
        if (rec && p.decision !== 'approved') { rec.outcome = p.decision; this.changed(); }
        body.push(el('div', {}, el('code', {}, p.name || ''), ' ', el('strong', {}, p.decision || ''),
          p.by ? ' by ' + p.by : '', p.reason ? ': ' + p.reason : ''));
        if (p.arguments) body.push(pre(argsText(p.arguments), 'args'));
        for (const b of this.list.querySelectorAll('li[data-agent="' + CSS.escape(a) + '"] button.decide')) b.remove();
        break;
      }
      default:
        body.push(pre(JSON.stringify(p, null, 2)));
    }
    const li = this.frame(ev, duration);
    li.append(el('div', {class: 'step-body'}, body));
    if (TURN_ENDS.has(ev.kind)) li.classList.add('turn-end');
    return li;
  }

  requestFor(agentId, p) {
    return this.requests.get(agentId + '/' + (p.iteration || this.lastIteration(agentId)));
  }

  // MODEL_REPLY carries no iteration: it answers the latest MODEL_REQUEST of its agent.
  lastIteration(agentId) {
    let last = 0;
    for (const k of this.requests.keys()) {
      const [a, it] = k.split('/');
      if (a === agentId) last = Math.max(last, Number(it));
    }
    return last;
  }

  changed() { if (this.opts.onChange) this.opts.onChange(); }
}

// The tool invocation log: one row per call, filterable by tool name.
export function renderToolLog(table, filterSelect, calls) {
  const names = [...new Set(calls.map((c) => c.name))].sort();
  const cur = filterSelect.value;
  filterSelect.replaceChildren(el('option', {value: ''}, 'all tools (' + calls.length + ')'),
    ...names.map((n) => el('option', {value: n, selected: n === cur}, n)));
  const rows = calls.filter((c) => !filterSelect.value || c.name === filterSelect.value).map((c) =>
    el('tr', {'data-tool': c.name, 'data-outcome': c.outcome},
      el('td', {class: 'small'}, fmtTime(c.callMs)),
      el('td', {}, el('code', {}, c.name)),
      el('td', {}, el('code', {class: 'small args-cell', title: prettyJson(c.args)}, shortJson(c.args, 160))),
      el('td', {class: 'text-end'}, c.resultMs ? fmtDuration(c.resultMs - c.callMs) : '—'),
      el('td', {}, el('span', {class: 'badge ' + ({ok: 'text-bg-success', error: 'text-bg-danger',
        running: 'text-bg-primary'}[c.outcome] || 'text-bg-warning')}, c.outcome)),
      el('td', {}, el('code', {class: 'small', title: c.output}, shortJson(c.output || '', 120)))));
  table.tBodies[0].replaceChildren(...(rows.length ? rows :
    [el('tr', {}, el('td', {colspan: 6, class: 'text-body-secondary'}, 'No tool calls yet.'))]));
}
