// util.js - small DOM and formatting helpers shared by every panel of the dashboard.
//
// Everything the page shows from the hub goes through el()/text nodes, never innerHTML, so an
// agent's output or a tool's arguments cannot inject markup (the CSP forbids inline scripts
// anyway; this keeps stray markup out too).

// el('div', {class: 'x', 'aria-label': 'y'}, child, 'text', ...): a new element.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function $(sel, root) { return (root || document).querySelector(sel); }

// Shows an API error (or any Error) in a panel's alert slot; null clears it. Never silent.
export function showError(slot, err) {
  slot.replaceChildren();
  if (!err) return;
  const code = err.code ? err.code + ': ' : '';
  slot.append(el('div', {class: 'alert alert-danger py-2 mb-2', role: 'alert'},
    code + (err.message || String(err))));
}

export function showInfo(slot, msg) {
  slot.replaceChildren(el('div', {class: 'alert alert-success py-2 mb-2', role: 'status'}, msg));
}

// 64-bit integers arrive as strings (proto3 JSON); ns since the epoch -> ms as a Number.
export function nsToMs(ns) { return ns ? Number(ns) / 1e6 : 0; }

export function fmtAge(ms) {
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

export function fmtDuration(ms) {
  if (ms < 1) return '<1 ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  return Math.floor(ms / 60000) + 'm ' + Math.round((ms % 60000) / 1000) + 's';
}

export function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return d.toLocaleTimeString(undefined, {hour12: false}) + '.' +
    String(d.getMilliseconds()).padStart(3, '0');
}

export function fmtInt(n) { return Number(n || 0).toLocaleString(); }

export function fmtCost(usd) {
  const v = Number(usd || 0);
  return v === 0 ? '$0' : v < 0.01 ? '$' + v.toPrecision(2) : '$' + v.toFixed(2);
}

// "AGENT_STATE_RUNNING" -> "running"; the badge colour per state.
export function stateName(s) { return (s || 'AGENT_STATE_UNSPECIFIED').replace('AGENT_STATE_', '').toLowerCase(); }

const STATE_BADGE = {
  pending: 'text-bg-warning', running: 'text-bg-primary', idle: 'text-bg-success',
  yielded: 'text-bg-info', failed: 'text-bg-danger', killed: 'text-bg-dark',
  ready: 'text-bg-success', cordoned: 'text-bg-warning', draining: 'text-bg-info',
  drained: 'text-bg-secondary',
};

export function stateBadge(state) {
  const s = state.startsWith('AGENT_STATE_') ? stateName(state) : state;
  return el('span', {class: 'badge ' + (STATE_BADGE[s] || 'text-bg-secondary'), 'data-state': s}, s);
}

// Pretty JSON when the text parses, else the text as it is (tool arguments are kept verbatim).
export function prettyJson(v) {
  if (typeof v !== 'string') return JSON.stringify(v, null, 2);
  try { return JSON.stringify(JSON.parse(v), null, 2); } catch { return v; }
}

export function shortJson(v, max) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > (max || 120) ? s.slice(0, max || 120) + '…' : s;
}
